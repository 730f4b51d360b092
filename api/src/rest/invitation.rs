//! Invitations over REST: create (contributor, reconnect), list, detail with the activity log,
//! revoke and resend. Each write is the GraphQL mutation's operation (`crate::operations`).

use std::collections::HashMap;

use async_graphql::ID;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use entity::crypto::Slot;
use entity::entities::{connections, invitation_events, invitations};
use entity::invitation::{ListCursor, ListFilter, ListRequest};
use entity::scope::find_owned;
use entity::{ConnectionStatus, EventType, InvitationStatus, InvitationType, UtilityType};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{ApiError, ChangeErrors, CommonErrors, ErrorBody};
use super::extract::{Caller, IdempotencyKey, JsonBody, PathId, QueryParams};
use crate::auth::Viewer;
use crate::graphql::enums;
use crate::graphql::inputs::{InvitationInput, PrefillInput, ResendInvitationInput};
use crate::graphql::object::page::log_window;
use crate::graphql::paging::{MAX_PAGE, checked_size};
use crate::operations::{self, InvitationFor};
use crate::state::AppState;

pub const TAG: &str = "invitations";

/// Settings of a new invitation; every field is optional.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReconnectBody {
    /// Addresses allowed to use the link (trimmed, lower-cased, de-duplicated, at most 100).
    /// Empty or omitted: anyone with the link.
    #[schema(max_items = 100)]
    pub allowed_emails: Option<Vec<String>>,
    /// Lifetime in seconds, at least 60. Omitted: never expires.
    #[schema(minimum = 60, maximum = 316_224_000)]
    pub expires_in_seconds: Option<i64>,
    /// At least 1. Omitted: unlimited.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_uses: Option<i64>,
    /// Email the link to every allowed address (needs a non-empty allow-list).
    pub send_email: Option<bool>,
}

/// Settings of a new contributor invitation; every field is optional.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ContributorBody {
    #[serde(flatten)]
    pub settings: ReconnectBody,
    pub prefill: Option<PrefillBody>,
}

/// Values the recipient's form starts with.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrefillBody {
    pub datasource_id: Option<String>,
    /// The provider's website.
    pub url: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// Sites of the invitation's company.
    #[schema(value_type = Option<Vec<Uuid>>)]
    pub initial_sites: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<enums::UtilityType>>)]
    pub utility_types: Option<Vec<UtilityType>>,
    pub connection_owner_email: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(value_type = Option<NaiveDate>)]
    pub data_collection_start_date: Option<String>,
}

impl ReconnectBody {
    /// The GraphQL input with the same meaning, so both APIs validate (and fingerprint
    /// idempotent requests) through one conversion.
    fn into_input(self, prefill: Option<PrefillBody>, key: Option<String>) -> InvitationInput {
        InvitationInput {
            allowed_emails: self.allowed_emails,
            expires_in_seconds: self.expires_in_seconds,
            max_uses: self.max_uses,
            send_email: self.send_email,
            prefill: prefill.map(|p| PrefillInput {
                datasource_id: p.datasource_id,
                url: p.url,
                country: p.country,
                initial_sites: p
                    .initial_sites
                    .map(|sites| sites.into_iter().map(ID).collect()),
                utility_types: p
                    .utility_types
                    .map(|types| types.into_iter().map(Into::into).collect()),
                connection_owner_email: p.connection_owner_email,
                data_collection_start_date: p.data_collection_start_date,
            }),
            locked_fields: None,
            remind_before_expiry_seconds: None,
            idempotency_key: key,
        }
    }
}

/// Body of a revoke; optional.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevokeBody {
    /// Kept with the invitation and in its `REVOKED` event.
    pub reason: Option<String>,
}

/// Body of a resend; optional.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResendBody {
    /// A subset of the allow-list; omitted: all of it.
    pub emails: Option<Vec<String>>,
    /// New deadline this many seconds from now (never shortens the current one). Required to
    /// resend an EXPIRED invitation, which makes it ACTIVE again.
    pub extend_expires_in_seconds: Option<i64>,
    /// Issue a new link; the old one stops working at once.
    pub rotate_token: Option<bool>,
}

/// Prefill of a contributor invitation (empty for a reconnect invitation).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrefillView {
    pub datasource_id: Option<String>,
    pub url: Option<String>,
    pub country: Option<String>,
    pub initial_sites: Vec<Uuid>,
    #[schema(value_type = Vec<enums::UtilityType>)]
    pub utility_types: Vec<UtilityType>,
    pub connection_owner_email: Option<String>,
    pub data_collection_start_date: Option<NaiveDate>,
}

/// A connection created through the invitation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedConnection {
    pub id: Uuid,
    /// The provider's name, when known.
    pub datasource_name: Option<String>,
    #[schema(value_type = enums::ConnectionStatus)]
    pub status: ConnectionStatus,
    pub created: DateTime<Utc>,
}

/// An invitation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub id: Uuid,
    /// The opaque token carried by the link.
    pub token: String,
    #[schema(value_type = enums::InvitationType)]
    pub invitation_type: InvitationType,
    /// The status at the moment of this read (an ACTIVE invitation past its deadline is EXPIRED).
    #[schema(value_type = enums::InvitationStatus)]
    pub status: InvitationStatus,
    /// `{PUBLIC_BASE_URL}/p/i/{token}`.
    pub invitation_url: String,
    pub company_id: Uuid,
    /// The connection to repair (reconnect invitations only).
    pub connection_id: Option<Uuid>,
    /// Empty: anyone with the link.
    pub allowed_emails: Vec<String>,
    /// Null: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Null: unlimited.
    pub max_uses: Option<i32>,
    pub use_count: i32,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub prefill: PrefillView,
    /// Oldest first; at most 100.
    pub created_connections: Vec<CreatedConnection>,
}

/// One entry of an invitation's activity log.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: String,
    /// Position in the order events became visible (GraphQL `companyActivity(since)`).
    pub cursor: Option<String>,
    pub invitation_id: Uuid,
    #[schema(value_type = enums::EventType)]
    pub event_type: EventType,
    pub occurred_at: DateTime<Utc>,
    pub email: Option<String>,
    pub connection_id: Option<Uuid>,
    /// API key name, `recipient`, or `system`.
    pub actor: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// An invitation with its activity log.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationDetail {
    #[serde(flatten)]
    pub invitation: Invitation,
    /// Oldest first: at most `eventsLimit` events after `eventsAfter`.
    pub events: Vec<Event>,
    /// Pass as `eventsAfter` for the next events; null when there are none.
    pub events_next_cursor: Option<String>,
}

/// A page of a company's invitations.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvitationList {
    /// Newest first (ties by id).
    pub items: Vec<Invitation>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
    /// Invitations matching the filters, over all pages.
    pub total_count: u64,
}

/// Paging and filters of the list.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ListParams {
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
    /// `nextCursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
    /// Effective status (an ACTIVE invitation past its deadline counts as EXPIRED).
    #[param(value_type = Option<enums::InvitationStatus>)]
    pub status: Option<InvitationStatus>,
    #[param(value_type = Option<enums::InvitationType>)]
    pub invitation_type: Option<InvitationType>,
    /// Invitations whose allow-list contains this address.
    pub email: Option<String>,
    /// Created at or after this instant (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this instant (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
}

/// Which events of the log the detail includes.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct DetailParams {
    /// Events to include, 1 to 100 (default 100).
    #[param(minimum = 1, maximum = 100)]
    pub events_limit: Option<i64>,
    /// `eventsNextCursor` of a previous read.
    #[param(pattern = "^[0-9]+$")]
    pub events_after: Option<String>,
}

impl From<&entity::Prefill> for PrefillView {
    fn from(p: &entity::Prefill) -> Self {
        Self {
            datasource_id: p.datasource_id.clone(),
            url: p.url.clone(),
            country: p.country.clone(),
            initial_sites: p.initial_sites.clone(),
            utility_types: p.utility_types.clone(),
            connection_owner_email: p.connection_owner_email.clone(),
            data_collection_start_date: p.data_collection_start_date,
        }
    }
}

impl From<invitation_events::Model> for Event {
    fn from(e: invitation_events::Model) -> Self {
        Self {
            id: e.id.to_string(),
            cursor: e.position.map(|p| p.to_string()),
            invitation_id: e.invitation_id,
            event_type: e.event_type,
            occurred_at: e.occurred_at,
            email: e.email,
            connection_id: e.connection_id,
            actor: e.actor,
            detail: e.detail,
        }
    }
}

impl Invitation {
    fn new(
        state: &AppState,
        row: invitations::Model,
        created: Vec<connections::Model>,
    ) -> Result<Self, ApiError> {
        let token = state
            .keys
            .open_string(&row.token_sealed, &Slot::invitation_token(row.id))?;
        Ok(Self {
            id: row.id,
            invitation_url: state.invitation_url(&token),
            token,
            invitation_type: row.invitation_type,
            status: row.effective_status(entity::now()),
            company_id: row.company_id,
            connection_id: row.connection_id,
            allowed_emails: row.allowed_emails.0,
            expires_at: row.expires_at,
            max_uses: row.max_uses,
            use_count: row.use_count,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
            prefill: (&row.prefill).into(),
            created_connections: created
                .into_iter()
                .map(|c| CreatedConnection {
                    id: c.id,
                    datasource_name: c.provider_name,
                    status: c.status,
                    created: c.created_at,
                })
                .collect(),
        })
    }
}

/// The REST view of invitations, with their created connections read in one statement.
async fn views(
    state: &AppState,
    organization_id: Uuid,
    rows: Vec<invitations::Model>,
) -> Result<Vec<Invitation>, ApiError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let created: Vec<connections::Model> = entity::finders::CREATED_CONNECTIONS
        .first(&state.db, organization_id, &ids, MAX_PAGE as u64)
        .await
        .map_err(entity::DomainError::from)?;
    let mut by_invitation: HashMap<Uuid, Vec<connections::Model>> = HashMap::new();
    for c in created {
        if let Some(invitation) = c.created_by_invitation_id {
            by_invitation.entry(invitation).or_default().push(c);
        }
    }
    rows.into_iter()
        .map(|row| {
            let created = by_invitation.remove(&row.id).unwrap_or_default();
            Invitation::new(state, row, created)
        })
        .collect()
}

async fn view(
    state: &AppState,
    organization_id: Uuid,
    row: invitations::Model,
) -> Result<Invitation, ApiError> {
    let mut list = views(state, organization_id, vec![row]).await?;
    list.pop()
        .ok_or_else(|| ApiError::internal(&"an invitation without its view"))
}

async fn create(
    state: &AppState,
    viewer: &Viewer,
    target: InvitationFor,
    input: InvitationInput,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let row = operations::create_invitation(state, viewer, target, input).await?;
    let view = view(state, viewer.organization_id, row).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Creates a contributor invitation: submitting it creates a new connection for the company
/// (GraphQL `createContributorInvitation`).
#[utoipa::path(
    post,
    path = "/invitation/company/{companyId}",
    operation_id = "createContributorInvitation",
    tag = TAG,
    params(
        ("companyId" = Uuid, Path, description = "The company"),
        IdempotencyKey,
    ),
    request_body(content = Option<ContributorBody>, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Invitation),
        ChangeErrors,
        (status = 429, description = "The organization's hourly email quota is used up", body = ErrorBody),
    ),
)]
pub async fn create_contributor(
    State(state): State<AppState>,
    Caller(viewer): Caller,
    PathId(company_id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<ContributorBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let input = body.settings.into_input(body.prefill, key);
    create(&state, &viewer, InvitationFor::Company(company_id), input).await
}

/// Creates a reconnect invitation for a connection: submitting it updates the connection's
/// credentials (GraphQL `createReconnectInvitation`).
#[utoipa::path(
    post,
    path = "/invitation/connection/{connectionId}",
    operation_id = "createReconnectInvitation",
    tag = TAG,
    params(
        ("connectionId" = Uuid, Path, description = "The connection to repair"),
        IdempotencyKey,
    ),
    request_body(content = Option<ReconnectBody>, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = Invitation),
        ChangeErrors,
        (status = 429, description = "The organization's hourly email quota is used up", body = ErrorBody),
    ),
)]
pub async fn create_reconnect(
    State(state): State<AppState>,
    Caller(viewer): Caller,
    PathId(connection_id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<ReconnectBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let input = body.into_input(None, key);
    create(
        &state,
        &viewer,
        InvitationFor::Connection(connection_id),
        input,
    )
    .await
}

/// A company's invitations, newest first, a page at a time (GraphQL `invitations`).
#[utoipa::path(
    get,
    path = "/invitation/company/{companyId}",
    operation_id = "listInvitations",
    tag = TAG,
    params(("companyId" = Uuid, Path, description = "The company"), ListParams),
    responses(
        (status = 200, description = "A page", body = InvitationList),
        CommonErrors,
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(viewer): Caller,
    PathId(company_id): PathId,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<InvitationList>, ApiError> {
    let organization_id = viewer.organization_id;
    let first = checked_size("limit", params.limit, 20)?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| ListCursor::decode("cursor", c))
        .transpose()?;
    let filter = ListFilter {
        status: params.status,
        invitation_type: params.invitation_type,
        email: params.email,
        created_after: params.created_after,
        created_before: params.created_before,
    };
    let request = ListRequest {
        organization_id,
        company_id,
        filter: &filter,
        first,
        after,
        with_total: true,
    };
    let page = entity::invitation::list(&state.db, &request).await?;
    let next_cursor = page
        .has_next
        .then(|| page.rows.last().map(ListCursor::of))
        .flatten();
    Ok(Json(InvitationList {
        items: views(&state, organization_id, page.rows).await?,
        next_cursor,
        total_count: page.total.unwrap_or_default(),
    }))
}

/// One invitation with its activity log, oldest event first (GraphQL `invitation(id)`).
#[utoipa::path(
    get,
    path = "/invitation/{invitationId}",
    operation_id = "getInvitation",
    tag = TAG,
    params(("invitationId" = Uuid, Path, description = "The invitation"), DetailParams),
    responses(
        (status = 200, description = "The invitation", body = InvitationDetail),
        CommonErrors,
    ),
)]
pub async fn detail(
    State(state): State<AppState>,
    Caller(viewer): Caller,
    PathId(id): PathId,
    QueryParams(params): QueryParams<DetailParams>,
) -> Result<Json<InvitationDetail>, ApiError> {
    let organization_id = viewer.organization_id;
    let window = log_window(
        ("eventsLimit", params.events_limit),
        ("eventsAfter", params.events_after.as_deref()),
        MAX_PAGE as i64,
    )?;
    let row = find_owned::<invitations::Entity>(&state.db, organization_id, id).await?;
    let mut events = entity::invitation::event_pages(&state.db, organization_id, &[id], window)
        .await
        .map_err(entity::DomainError::from)?
        .remove(&id)
        .unwrap_or_default();
    let more = events.len() as u64 > window.first;
    events.truncate(window.first as usize);
    let events_next_cursor = more
        .then(|| events.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Json(InvitationDetail {
        invitation: view(&state, organization_id, row).await?,
        events: events.into_iter().map(Event::from).collect(),
        events_next_cursor,
    }))
}

/// Revokes an ACTIVE invitation; its link stops working at once (GraphQL `revokeInvitation`).
#[utoipa::path(
    post,
    path = "/invitation/{invitationId}/revoke",
    operation_id = "revokeInvitation",
    tag = TAG,
    params(
        ("invitationId" = Uuid, Path, description = "The invitation"),
        IdempotencyKey,
    ),
    request_body(content = Option<RevokeBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Revoked", body = Invitation),
        ChangeErrors,
    ),
)]
pub async fn revoke(
    State(state): State<AppState>,
    Caller(viewer): Caller,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<RevokeBody>,
) -> Result<Json<Invitation>, ApiError> {
    let row =
        operations::revoke_invitation(&state, &viewer, id, body.reason, key.as_deref()).await?;
    Ok(Json(view(&state, viewer.organization_id, row).await?))
}

/// Emails the link again, without a new link unless `rotateToken` (GraphQL `resendInvitation`).
#[utoipa::path(
    post,
    path = "/invitation/{invitationId}/resend",
    operation_id = "resendInvitation",
    tag = TAG,
    params(
        ("invitationId" = Uuid, Path, description = "The invitation"),
        IdempotencyKey,
    ),
    request_body(content = Option<ResendBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "Resent", body = Invitation),
        ChangeErrors,
        (status = 429, description = "The organization's hourly email quota is used up", body = ErrorBody),
    ),
)]
pub async fn resend(
    State(state): State<AppState>,
    Caller(viewer): Caller,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<ResendBody>,
) -> Result<Json<Invitation>, ApiError> {
    let input = ResendInvitationInput {
        emails: body.emails,
        extend_expires_in_seconds: body.extend_expires_in_seconds,
        rotate_token: body.rotate_token,
        idempotency_key: key,
    };
    let row = operations::resend_invitation(&state, &viewer, id, input).await?;
    Ok(Json(view(&state, viewer.organization_id, row).await?))
}
