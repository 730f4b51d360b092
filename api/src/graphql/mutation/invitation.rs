use async_graphql::{Context, ID, Object, Result};
use entity::DomainError;
use entity::invitation::{self, CreateInvitation, ResendInvitation, Revoke};
use entity::work::IdempotencyKey;
use serde_json::{Value, json};

use crate::graphql::context::{actor, state, viewer};
use crate::graphql::error::{GqlResult, bad_input, into_gql};
use crate::graphql::ids::parse_id;
use crate::graphql::inputs::{InvitationInput, ResendInvitationInput};
use crate::graphql::object::Invitation;

/// Most invitations one bulk call may create.
pub const MAX_BULK: usize = 100;

#[derive(Default)]
pub struct InvitationMutation;

fn single(mut list: Vec<entity::entities::invitations::Model>) -> Result<Invitation> {
    list.pop()
        .map(Invitation)
        .ok_or_else(|| into_gql(DomainError::NotFound))
}

/// The key of an idempotent call, if the client sent one.
fn idempotency<'a>(
    ctx: &Context<'_>,
    scope: &'static str,
    key: Option<&'a str>,
    request: &'a Value,
) -> Result<Option<IdempotencyKey<'a>>> {
    let organization_id = viewer(ctx)?.organization_id;
    Ok(key.map(|key| IdempotencyKey {
        organization_id,
        scope,
        key,
        request,
    }))
}

/// Creates invitations (one, or a bulk batch) through the unit of work.
async fn create(
    ctx: &Context<'_>,
    scope: &'static str,
    items: Vec<CreateInvitation>,
    bulk: bool,
    key: Option<&str>,
    request: &Value,
) -> Result<Vec<entity::entities::invitations::Model>> {
    let state = state(ctx)?;
    let command = invitation::Create {
        keys: &state.keys,
        actor: actor(ctx)?,
        items,
        bulk,
        email_quota: state.settings.email.quota(),
    };
    let key = idempotency(ctx, scope, key, request)?;
    state.run_idempotent(&command, key).await.gql()
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
        let company = parse_id("companyId", &company_id)?;
        let key = input.idempotency_key.clone();
        let item = input.into_domain(org, Some(company), None).gql()?;
        let scope = "createContributorInvitation";
        single(create(ctx, scope, vec![item], false, key.as_deref(), &request).await?)
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
        let connection = parse_id("connectionId", &connection_id)?;
        let key = input.idempotency_key.clone();
        let item = input.into_domain(org, None, Some(connection)).gql()?;
        let scope = "createReconnectInvitation";
        single(create(ctx, scope, vec![item], false, key.as_deref(), &request).await?)
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
            return Err(bad_input(
                "inputs",
                format!("give 1 to {MAX_BULK} invitations"),
            ));
        }
        let request = json!({ "companyId": company_id, "inputs": inputs });
        let company = parse_id("companyId", &company_id)?;
        let items = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| {
                let prefix = format!("inputs[{i}].");
                if input.idempotency_key.is_some() {
                    return Err(DomainError::invalid(
                        format!("{prefix}idempotencyKey"),
                        "use the idempotencyKey argument of the bulk call",
                    ));
                }
                input
                    .into_domain(org, Some(company), None)
                    .map_err(|e| e.within(&prefix))
            })
            .collect::<Result<Vec<_>, _>>()
            .gql()?;
        let key = idempotency_key.as_deref();
        let created = create(
            ctx,
            "createContributorInvitations",
            items,
            true,
            key,
            &request,
        );
        Ok(created.await?.into_iter().map(Invitation).collect())
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
        let request = json!({ "id": id, "reason": reason });
        let command = Revoke {
            organization_id: viewer(ctx)?.organization_id,
            id: parse_id("id", &id)?,
            reason,
            actor: actor(ctx)?,
        };
        let key = idempotency(
            ctx,
            "revokeInvitation",
            idempotency_key.as_deref(),
            &request,
        )?;
        single(state(ctx)?.run_idempotent(&command, key).await.gql()?)
    }

    /// Emails the link again, without a new link unless `rotateToken`. See `ResendInvitationInput`.
    async fn resend_invitation(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: Option<ResendInvitationInput>,
    ) -> Result<Invitation> {
        let state = state(ctx)?;
        let input = input.unwrap_or_default();
        let request = json!({ "id": id, "input": input });
        let key = input.idempotency_key.clone();
        let command = ResendInvitation {
            keys: &state.keys,
            organization_id: viewer(ctx)?.organization_id,
            id: parse_id("id", &id)?,
            request: input.into(),
            actor: actor(ctx)?,
            email_quota: state.settings.email.quota(),
        };
        let key = idempotency(ctx, "resendInvitation", key.as_deref(), &request)?;
        single(state.run_idempotent(&command, key).await.gql()?)
    }
}
