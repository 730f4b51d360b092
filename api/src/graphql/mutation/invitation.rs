use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::activity::Actor;
use entity::entities::{email_deliveries, invitation_events, invitations};
use entity::invitation::{self, CreateInvitation, Resend};
use entity::scope::find_owned;
use entity::{DeliveryKind, DomainError, idempotency};
use futures::future::BoxFuture;
use sea_orm::{DatabaseTransaction, DbErr, SqlErr};
use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::graphql::context::{state, viewer};
use crate::graphql::enums::{PrefillField, UtilityType};
use crate::graphql::error::{GqlResult, into_gql};
use crate::graphql::object::Invitation;
use crate::state::AppState;

/// Most invitations one bulk call may create.
pub const MAX_BULK: usize = 100;

#[derive(Default)]
pub struct InvitationMutation;

/// Create-time settings of an invitation (SPEC §3.1).
#[derive(InputObject, Serialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct InvitationInput {
    /// Addresses allowed to use the link (normalized, de-duplicated, at most 100). Empty or
    /// omitted: anyone with the link.
    pub allowed_emails: Option<Vec<String>>,
    /// Lifetime in seconds, at least 60. Omitted: never expires.
    pub expires_in_seconds: Option<i64>,
    /// At least 1. Omitted: unlimited.
    pub max_uses: Option<i64>,
    /// Email the link to every allowed address (needs a non-empty allow-list).
    pub send_email: Option<bool>,
    /// Contributor invitations only.
    pub prefill: Option<PrefillInput>,
    /// Contributor invitations only: prefill fields the recipient cannot change.
    pub locked_fields: Option<Vec<PrefillField>>,
    /// Email a reminder this many seconds before the deadline if the invitation is unused.
    pub remind_before_expiry_seconds: Option<i64>,
    /// Repeating a request with the same key returns the first result and creates nothing.
    pub idempotency_key: Option<String>,
}

/// Prefill of a contributor invitation (SPEC §3.4).
#[derive(InputObject, Serialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrefillInput {
    pub datasource_id: Option<String>,
    /// The provider's website.
    pub url: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// Sites of the invitation's company.
    pub initial_sites: Option<Vec<ID>>,
    pub utility_types: Option<Vec<UtilityType>>,
    pub connection_owner_email: Option<String>,
    /// `YYYY-MM-DD`.
    pub data_collection_start_date: Option<String>,
}

/// What `resendInvitation` should do (SPEC §3.3).
#[derive(InputObject, Serialize, Clone, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResendInvitationInput {
    /// A subset of the allow-list; omitted: all of it.
    pub emails: Option<Vec<String>>,
    /// New deadline this many seconds from now (never shortens the current one). Required to
    /// resend an EXPIRED invitation, which makes it ACTIVE again.
    pub extend_expires_in_seconds: Option<i64>,
    /// Issue a new link; the old one stops working at once.
    pub rotate_token: Option<bool>,
    pub idempotency_key: Option<String>,
}

fn prefixed(e: DomainError, prefix: &str) -> DomainError {
    match e {
        DomainError::InvalidInput { field, message } => DomainError::InvalidInput {
            field: format!("{prefix}{field}"),
            message,
        },
        other => other,
    }
}

fn parse_uuid(field: &str, id: &ID) -> Result<Uuid, DomainError> {
    Uuid::parse_str(id.as_str()).map_err(|_| DomainError::invalid(field, "not a valid id"))
}

fn to_prefill(input: PrefillInput) -> Result<entity::Prefill, DomainError> {
    let initial_sites = input
        .initial_sites
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, id)| parse_uuid(&format!("prefill.initialSites[{i}]"), id))
        .collect::<Result<Vec<_>, _>>()?;
    let date = input
        .data_collection_start_date
        .map(|d| {
            chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").map_err(|_| {
                DomainError::invalid(
                    "prefill.dataCollectionStartDate",
                    "must be a date as YYYY-MM-DD",
                )
            })
        })
        .transpose()?;
    Ok(entity::Prefill {
        datasource_id: input.datasource_id,
        url: input.url,
        country: input.country,
        initial_sites,
        utility_types: input
            .utility_types
            .unwrap_or_default()
            .into_iter()
            .map(Into::into)
            .collect(),
        connection_owner_email: input.connection_owner_email,
        data_collection_start_date: date,
    })
}

fn to_domain(
    organization_id: Uuid,
    company_id: Option<Uuid>,
    connection_id: Option<Uuid>,
    input: InvitationInput,
) -> Result<CreateInvitation, DomainError> {
    Ok(CreateInvitation {
        organization_id,
        company_id,
        connection_id,
        allowed_emails: input.allowed_emails.unwrap_or_default(),
        expires_in_seconds: input.expires_in_seconds,
        max_uses: input.max_uses,
        send_email: input.send_email.unwrap_or(false),
        prefill: input.prefill.map(to_prefill).transpose()?,
        locked_fields: input.locked_fields.map(|fields| {
            fields
                .into_iter()
                .map(|f| f.api_name().to_owned())
                .collect()
        }),
        remind_before_expiry_seconds: input.remind_before_expiry_seconds,
    })
}

/// What a write produced: its result, the response stored under the idempotency key, and what
/// must happen after commit.
struct Written<T> {
    value: T,
    response: Value,
    events: Vec<invitation_events::Model>,
    deliveries: Vec<email_deliveries::Model>,
}

fn is_unique_violation(e: &DomainError) -> bool {
    matches!(e, DomainError::Db(db) if matches!(db.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))))
}

/// Runs `op` in one write transaction. With an idempotency key, a repeated request returns the
/// first result (`replay` rebuilds it from the stored response) and writes nothing; a racing
/// duplicate loses on the unique index, rolls back, and replays the winner's result.
async fn idempotent_write<T>(
    state: &AppState,
    organization_id: Uuid,
    scope: &str,
    key: Option<&str>,
    request: &Value,
    op: impl for<'t> Fn(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Written<T>, DomainError>>,
    replay: impl for<'t> Fn(&'t DatabaseTransaction, Value) -> BoxFuture<'t, Result<T, DomainError>>,
) -> Result<T> {
    if let Some(key) = key {
        idempotency::check_key(key).gql()?;
    }
    for attempt in 0..2 {
        let txn = entity::begin_write(&state.db).await.gql()?;
        let stored = match key {
            Some(key) => idempotency::lookup(&txn, organization_id, scope, key, request)
                .await
                .gql()?,
            None => None,
        };
        if let Some(stored) = stored {
            let value = replay(&txn, stored).await.gql()?;
            txn.commit().await.gql()?;
            return Ok(value);
        }
        let written = op(&txn).await.gql()?;
        if let Some(key) = key {
            let stored = idempotency::store(
                &txn,
                organization_id,
                scope,
                key,
                request,
                written.response.clone(),
            )
            .await;
            match stored {
                Err(e) if attempt == 0 && is_unique_violation(&e) => continue,
                other => other.gql()?,
            }
        }
        txn.commit().await.gql()?;
        state
            .after_commit(&written.events, &written.deliveries)
            .await;
        return Ok(written.value);
    }
    Err(into_gql(DomainError::Db(DbErr::Custom(
        "idempotency retry exhausted".into(),
    ))))
}

/// Pins down the higher-ranked signature of a transaction closure (closures do not infer it).
fn txn_op<T, F>(f: F) -> F
where
    F: for<'t> Fn(&'t DatabaseTransaction) -> BoxFuture<'t, Result<Written<T>, DomainError>>,
{
    f
}

/// Re-reads the invitations whose ids a stored response lists.
fn replay_invitations(
    organization_id: Uuid,
) -> impl for<'t> Fn(&'t DatabaseTransaction, Value) -> BoxFuture<'t, Result<Vec<Invitation>, DomainError>>
{
    move |txn, stored| {
        Box::pin(async move {
            let ids: Vec<Uuid> =
                serde_json::from_value(stored["invitationIds"].clone()).unwrap_or_default();
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.push(Invitation(
                    find_owned::<invitations::Entity>(txn, organization_id, id).await?,
                ));
            }
            Ok(out)
        })
    }
}

fn single(mut list: Vec<Invitation>) -> Result<Invitation> {
    list.pop().ok_or_else(|| into_gql(DomainError::NotFound))
}

/// Creates invitations (one, or a bulk batch) with their CREATED events and outbox rows.
async fn create_invitations(
    ctx: &Context<'_>,
    scope: &str,
    items: Vec<CreateInvitation>,
    bulk: bool,
    key: Option<&str>,
    request: &Value,
) -> Result<Vec<Invitation>> {
    let state = state(ctx)?;
    let viewer = viewer(ctx)?;
    let org = viewer.organization_id;
    let actor = Actor::ApiKey(viewer.api_key_name.clone());
    let keys = state.keys.clone();
    let op = txn_op(|txn| {
        let items = items.clone();
        let actor = actor.clone();
        let keys = keys.clone();
        Box::pin(async move {
            let mut created = Vec::with_capacity(items.len());
            let mut events = Vec::new();
            let mut deliveries = Vec::new();
            for (i, item) in items.into_iter().enumerate() {
                let send = item.send_email;
                let prefix = if bulk {
                    format!("inputs[{i}].")
                } else {
                    String::new()
                };
                let c = invitation::create(txn, &keys, item, &actor)
                    .await
                    .map_err(|e| prefixed(e, &prefix))?;
                let row = c.transition.invitation;
                if send {
                    let recipients = row.allowed_emails.0.clone();
                    deliveries.extend(
                        entity::delivery::enqueue(
                            txn,
                            &row,
                            DeliveryKind::Invitation,
                            &recipients,
                            json!({}),
                            None,
                        )
                        .await?,
                    );
                }
                events.extend(c.transition.events);
                created.push(row);
            }
            let ids: Vec<Uuid> = created.iter().map(|r| r.id).collect();
            Ok(Written {
                value: created.into_iter().map(Invitation).collect(),
                response: json!({ "invitationIds": ids }),
                events,
                deliveries,
            })
        })
    });
    idempotent_write(state, org, scope, key, request, op, replay_invitations(org)).await
}

#[Object]
impl InvitationMutation {
    /// Creates a contributor invitation: submitting it creates a new connection for the company.
    async fn create_contributor_invitation(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        input: InvitationInput,
    ) -> Result<Invitation> {
        let org = viewer(ctx)?.organization_id;
        let request = json!({ "companyId": company_id, "input": input });
        let company = parse_uuid("companyId", &company_id).gql()?;
        let key = input.idempotency_key.clone();
        let item = to_domain(org, Some(company), None, input).gql()?;
        single(
            create_invitations(
                ctx,
                "createContributorInvitation",
                vec![item],
                false,
                key.as_deref(),
                &request,
            )
            .await?,
        )
    }

    /// Creates a reconnect invitation for a connection: submitting it updates its credentials.
    async fn create_reconnect_invitation(
        &self,
        ctx: &Context<'_>,
        connection_id: ID,
        input: InvitationInput,
    ) -> Result<Invitation> {
        let org = viewer(ctx)?.organization_id;
        let request = json!({ "connectionId": connection_id, "input": input });
        let connection = parse_uuid("connectionId", &connection_id).gql()?;
        let key = input.idempotency_key.clone();
        let item = to_domain(org, None, Some(connection), input).gql()?;
        single(
            create_invitations(
                ctx,
                "createReconnectInvitation",
                vec![item],
                false,
                key.as_deref(),
                &request,
            )
            .await?,
        )
    }

    /// Creates up to 100 contributor invitations for one company, all or nothing. An error names
    /// the item: `extensions.field` is e.g. `inputs[3].allowedEmails[0]`.
    #[graphql(complexity = "inputs.len() * child_complexity + 1")]
    async fn create_contributor_invitations(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        inputs: Vec<InvitationInput>,
        idempotency_key: Option<String>,
    ) -> Result<Vec<Invitation>> {
        let org = viewer(ctx)?.organization_id;
        if inputs.is_empty() || inputs.len() > MAX_BULK {
            return Err(crate::graphql::error::bad_input(
                "inputs",
                format!("give 1 to {MAX_BULK} invitations"),
            ));
        }
        let request = json!({ "companyId": company_id, "inputs": inputs });
        let company = parse_uuid("companyId", &company_id).gql()?;
        let items = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| {
                if input.idempotency_key.is_some() {
                    return Err(DomainError::invalid(
                        format!("inputs[{i}].idempotencyKey"),
                        "use the idempotencyKey argument of the bulk call",
                    ));
                }
                to_domain(org, Some(company), None, input)
                    .map_err(|e| prefixed(e, &format!("inputs[{i}].")))
            })
            .collect::<Result<Vec<_>, _>>()
            .gql()?;
        create_invitations(
            ctx,
            "createContributorInvitations",
            items,
            true,
            idempotency_key.as_deref(),
            &request,
        )
        .await
    }

    /// Revokes an ACTIVE invitation; its link stops working at once. Revoking anything else is a
    /// `CONFLICT` naming its status, unless the call repeats an earlier `idempotencyKey`.
    async fn revoke_invitation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Invitation> {
        let state = state(ctx)?;
        let viewer = viewer(ctx)?;
        let org = viewer.organization_id;
        let invitation_id = parse_uuid("id", &id).gql()?;
        let actor = Actor::ApiKey(viewer.api_key_name.clone());
        let request = json!({ "id": id, "reason": reason });
        let op = txn_op(|txn| {
            let (reason, actor) = (reason.clone(), actor.clone());
            Box::pin(async move {
                let t = invitation::revoke(txn, org, invitation_id, reason, &actor).await?;
                Ok(Written {
                    response: json!({ "invitationIds": [t.invitation.id] }),
                    value: vec![Invitation(t.invitation)],
                    events: t.events,
                    deliveries: Vec::new(),
                })
            })
        });
        let key = idempotency_key.as_deref();
        single(
            idempotent_write(
                state,
                org,
                "revokeInvitation",
                key,
                &request,
                op,
                replay_invitations(org),
            )
            .await?,
        )
    }

    /// Emails the link again, without a new link unless `rotateToken`. See `ResendInvitationInput`.
    async fn resend_invitation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: Option<ResendInvitationInput>,
    ) -> Result<Invitation> {
        let state = state(ctx)?;
        let viewer = viewer(ctx)?;
        let org = viewer.organization_id;
        let invitation_id = parse_uuid("id", &id).gql()?;
        let input = input.unwrap_or_default();
        let actor = Actor::ApiKey(viewer.api_key_name.clone());
        let request = json!({ "id": id, "input": input });
        let resend = Resend {
            emails: input.emails.clone(),
            extend_expires_in_seconds: input.extend_expires_in_seconds,
            rotate_token: input.rotate_token.unwrap_or(false),
        };
        let keys = state.keys.clone();
        let op = txn_op(|txn| {
            let (resend, actor, keys) = (resend.clone(), actor.clone(), keys.clone());
            Box::pin(async move {
                let r = invitation::resend(txn, &keys, org, invitation_id, resend, &actor).await?;
                let row = r.transition.invitation;
                let deliveries = entity::delivery::enqueue(
                    txn,
                    &row,
                    DeliveryKind::Resend,
                    &r.recipients,
                    json!({}),
                    None,
                )
                .await?;
                Ok(Written {
                    response: json!({ "invitationIds": [row.id] }),
                    value: vec![Invitation(row)],
                    events: r.transition.events,
                    deliveries,
                })
            })
        });
        let key = input.idempotency_key.as_deref();
        single(
            idempotent_write(
                state,
                org,
                "resendInvitation",
                key,
                &request,
                op,
                replay_invitations(org),
            )
            .await?,
        )
    }
}
