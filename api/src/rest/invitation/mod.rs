//! Invitations over REST: create (contributor, reconnect), list, detail with the activity log,
//! revoke and resend. Each write is the GraphQL mutation's operation (`crate::operations`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use entity::entities::{connections, invitations};
use entity::invitation::{ListCursor, ListFilter, ListRequest};
use uuid::Uuid;

use super::error::{ApiError, ChangeErrors, CommonErrors, ErrorBody};
use super::extract::{Caller, IdempotencyKey, JsonBody, PathId, QueryParams};
use crate::auth::Viewer;
use crate::config::Settings;
use crate::graphql::inputs::{InvitationInput, ResendInvitationInput};
use crate::graphql::object::page::log_window;
use crate::graphql::paging::{MAX_PAGE, checked_size};
use crate::operations::{self, InvitationFor};
use crate::state::Store;

pub const TAG: &str = "invitations";

mod shapes;

pub use shapes::*;

/// The REST view of invitations, with their created connections read in one statement.
async fn views(
    store: &Store,
    settings: &Settings,
    organization_id: Uuid,
    rows: Vec<invitations::Model>,
) -> Result<Vec<Invitation>, ApiError> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let created: Vec<connections::Model> = entity::finders::CREATED_CONNECTIONS
        .first(&store.reads, organization_id, &ids, MAX_PAGE as u64)
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
            Invitation::new(store, settings, row, created)
        })
        .collect()
}

async fn view(
    store: &Store,
    settings: &Settings,
    organization_id: Uuid,
    row: invitations::Model,
) -> Result<Invitation, ApiError> {
    let mut list = views(store, settings, organization_id, vec![row]).await?;
    list.pop()
        .ok_or_else(|| ApiError::internal(&"an invitation without its view"))
}

async fn create(
    store: &Store,
    settings: &Settings,
    viewer: &Viewer,
    target: InvitationFor,
    input: InvitationInput,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let row = operations::create_invitation(store, viewer, target, input).await?;
    let view = view(store, settings, viewer.organization_id, row).await?;
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
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
    Caller(viewer): Caller,
    PathId(company_id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<ContributorBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let input = body.settings.into_input(body.prefill, key);
    create(
        &store,
        &settings,
        &viewer,
        InvitationFor::Company(company_id),
        input,
    )
    .await
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
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
    Caller(viewer): Caller,
    PathId(connection_id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<ReconnectBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    let input = body.into_input(None, key);
    create(
        &store,
        &settings,
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
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
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
    let page = entity::invitation::list(&store.reads, &request).await?;
    let next_cursor = page
        .has_next
        .then(|| page.rows.last().map(ListCursor::of))
        .flatten();
    Ok(Json(InvitationList {
        items: views(&store, &settings, organization_id, page.rows).await?,
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
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
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
    let row = store
        .reads
        .find_owned::<invitations::Entity>(organization_id, id)
        .await?;
    let mut events = entity::invitation::event_pages(&store.reads, organization_id, &[id], window)
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
        invitation: view(&store, &settings, organization_id, row).await?,
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
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
    Caller(viewer): Caller,
    PathId(id): PathId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<RevokeBody>,
) -> Result<Json<Invitation>, ApiError> {
    let row =
        operations::revoke_invitation(&store, &viewer, id, body.reason, key.as_deref()).await?;
    Ok(Json(
        view(&store, &settings, viewer.organization_id, row).await?,
    ))
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
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
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
    let row = operations::resend_invitation(&store, &viewer, id, input).await?;
    Ok(Json(
        view(&store, &settings, viewer.organization_id, row).await?,
    ))
}
