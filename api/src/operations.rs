//! The management operations that both APIs offer (GraphQL resolvers and REST handlers). Each
//! one builds the domain command from a parsed request and runs it in one unit of work, so the
//! validation, the idempotency keys (scope and request fingerprint), the tenant scoping and what
//! a change emits (activity events, webhooks, live events, emails) are the same whichever API
//! was called: a key used over REST and repeated over GraphQL returns the same invitation.

use entity::DomainError;
use entity::entities::invitations;
use entity::invitation::{self, CreateInvitation, ResendInvitation, Revoke};
use entity::magic_link::{IssueLink, LinkChange, LinkOf, MagicLink};
use entity::work::IdempotencyKey;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::Viewer;
use crate::graphql::inputs::{InvitationInput, ResendInvitationInput};
use crate::state::Store;

/// What a single invitation is created for.
#[derive(Debug, Clone, Copy)]
pub enum InvitationFor {
    /// A contributor invitation for the company.
    Company(Uuid),
    /// A reconnect invitation for the connection.
    Connection(Uuid),
}

/// The one invitation of a command's output.
fn single(mut list: Vec<invitations::Model>) -> Result<invitations::Model, DomainError> {
    list.pop().ok_or(DomainError::NotFound)
}

/// The key of an idempotent call, if the client sent one.
fn idempotency<'a>(
    viewer: &Viewer,
    scope: &'static str,
    key: Option<&'a str>,
    request: &'a Value,
) -> Option<IdempotencyKey<'a>> {
    key.map(|key| IdempotencyKey {
        organization_id: viewer.organization_id,
        scope,
        key,
        request,
    })
}

/// Creates invitations (one, or a bulk batch) through the unit of work.
pub async fn create_invitations(
    store: &Store,
    viewer: &Viewer,
    scope: &'static str,
    items: Vec<CreateInvitation>,
    bulk: bool,
    key: Option<&str>,
    request: &Value,
) -> Result<Vec<invitations::Model>, DomainError> {
    let command = invitation::Create {
        keys: &store.keys,
        actor: viewer.actor(),
        items,
        bulk,
        email_quota: store.email_quota,
    };
    let key = idempotency(viewer, scope, key, request);
    store.run_idempotent(&command, key).await
}

/// `createContributorInvitation` / `createReconnectInvitation`; the idempotency key is the
/// input's.
pub async fn create_invitation(
    store: &Store,
    viewer: &Viewer,
    target: InvitationFor,
    input: InvitationInput,
) -> Result<invitations::Model, DomainError> {
    let (scope, request, company, connection) = match target {
        InvitationFor::Company(id) => (
            "createContributorInvitation",
            json!({ "companyId": id, "input": input }),
            Some(id),
            None,
        ),
        InvitationFor::Connection(id) => (
            "createReconnectInvitation",
            json!({ "connectionId": id, "input": input }),
            None,
            Some(id),
        ),
    };
    let key = input.idempotency_key.clone();
    let item = input.into_domain(viewer.organization_id, company, connection)?;
    let created = create_invitations(
        store,
        viewer,
        scope,
        vec![item],
        false,
        key.as_deref(),
        &request,
    );
    single(created.await?)
}

/// `revokeInvitation`.
pub async fn revoke_invitation(
    store: &Store,
    viewer: &Viewer,
    id: Uuid,
    reason: Option<String>,
    key: Option<&str>,
) -> Result<invitations::Model, DomainError> {
    let request = json!({ "id": id, "reason": reason });
    let command = Revoke {
        organization_id: viewer.organization_id,
        id,
        reason,
        actor: viewer.actor(),
    };
    let key = idempotency(viewer, "revokeInvitation", key, &request);
    single(store.run_idempotent(&command, key).await?)
}

/// `resendInvitation`; the idempotency key is the input's.
pub async fn resend_invitation(
    store: &Store,
    viewer: &Viewer,
    id: Uuid,
    input: ResendInvitationInput,
) -> Result<invitations::Model, DomainError> {
    let request = json!({ "id": id, "input": input });
    let key = input.idempotency_key.clone();
    let command = ResendInvitation {
        keys: &store.keys,
        organization_id: viewer.organization_id,
        id,
        request: input.into(),
        actor: viewer.actor(),
        email_quota: store.email_quota,
    };
    let key = idempotency(viewer, "resendInvitation", key.as_deref(), &request);
    single(store.run_idempotent(&command, key).await?)
}

/// Returns (issuing or rotating when asked) a legacy company link or edit link.
pub async fn issue_link(
    store: &Store,
    viewer: &Viewer,
    of: LinkOf,
    change: LinkChange,
) -> Result<MagicLink, DomainError> {
    let command = IssueLink {
        keys: &store.keys,
        actor: viewer.actor(),
        organization_id: viewer.organization_id,
        of,
        change,
    };
    store.run(&command).await
}
