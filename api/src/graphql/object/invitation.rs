use std::sync::{Mutex, PoisonError};

use async_graphql::connection::{Connection as Page, EmptyFields};
use async_graphql::{Context, ID, Json, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use entity::crypto::Slot;
use entity::entities::{email_deliveries, invitation_events, invitations};
use entity::invitation::EventWindow;

pub use super::page::{event_page, event_window};
use super::{Company, Connection};
use crate::graphql::context::{load, settings, store, viewer};
use crate::graphql::enums::{
    DeliveryKind, DeliveryStatus, EventType, InvitationStatus, InvitationType, PrefillField,
    UtilityType,
};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::id;
use crate::graphql::loader::{
    CompanyById, ConnectionsCreatedBy, DeliveriesOf, EventsPage, LastActivityOf,
};
use crate::graphql::paging::{NESTED_LIST_DEFAULT, nested_complexity, page_size};
use crate::graphql::plain::{Plain, plain_fields};

/// An invitation: a link that lets an outside person connect or repair a utility account.
pub struct Invitation(pub invitations::Model, pub Prefetched);

impl From<invitations::Model> for Invitation {
    fn from(row: invitations::Model) -> Self {
        Self(row, Prefetched::default())
    }
}

/// Event pages read for this invitation together with the rest of a list (one statement for
/// the whole list), handed to its `events` fields directly: a page of twenty invitations then
/// neither hashes its keys into the DataLoader's cache nor clones each page out of it.
#[derive(Default)]
pub struct Prefetched(Mutex<Vec<PrefetchedPage>>);

struct PrefetchedPage {
    window: EventWindow,
    rows: Vec<invitation_events::Model>,
    /// Selections of this window in the query still to read it: the last one takes the rows,
    /// the others clone them.
    readers: usize,
}

impl Prefetched {
    /// Events of `window` for `readers` selections of it.
    pub fn add(
        &mut self,
        window: EventWindow,
        rows: Vec<invitation_events::Model>,
        readers: usize,
    ) {
        self.0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .push(PrefetchedPage {
                window,
                rows,
                readers,
            });
    }

    /// The rows of `window`, if they were read with the list and a reader is left.
    fn take(&self, window: EventWindow) -> Option<Vec<invitation_events::Model>> {
        let mut pages = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let index = pages
            .iter()
            .position(|p| p.window == window && p.readers > 0)?;
        let page = &mut pages[index];
        page.readers -= 1;
        Some(if page.readers == 0 {
            pages.swap_remove(index).rows
        } else {
            page.rows.clone()
        })
    }
}

/// Prefill data of a contributor invitation.
#[derive(SimpleObject)]
pub struct Prefill {
    pub datasource_id: Option<String>,
    pub url: Option<String>,
    pub country: Option<String>,
    pub initial_sites: Vec<ID>,
    pub utility_types: Vec<UtilityType>,
    pub connection_owner_email: Option<String>,
    pub data_collection_start_date: Option<NaiveDate>,
}

impl From<&entity::Prefill> for Prefill {
    fn from(p: &entity::Prefill) -> Self {
        Self {
            datasource_id: p.datasource_id.clone(),
            url: p.url.clone(),
            country: p.country.clone(),
            initial_sites: p.initial_sites.iter().copied().map(id).collect(),
            utility_types: p.utility_types.iter().map(|t| (*t).into()).collect(),
            connection_owner_email: p.connection_owner_email.clone(),
            data_collection_start_date: p.data_collection_start_date,
        }
    }
}

#[Object]
impl Invitation {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn invitation_type(&self) -> InvitationType {
        self.0.invitation_type.into()
    }
    /// The status at the moment of this read (an ACTIVE invitation past its deadline is EXPIRED).
    async fn status(&self) -> InvitationStatus {
        self.0.effective_status(entity::now()).into()
    }
    /// The opaque token carried by the link.
    async fn token(&self, ctx: &Context<'_>) -> Result<String> {
        store(ctx)?
            .keys
            .open_string(&self.0.token_sealed, &Slot::invitation_token(self.0.id))
            .gql()
    }
    /// `{PUBLIC_BASE_URL}/p/i/{token}`.
    async fn invitation_url(&self, ctx: &Context<'_>) -> Result<String> {
        let token = store(ctx)?
            .keys
            .open_string(&self.0.token_sealed, &Slot::invitation_token(self.0.id))
            .gql()?;
        Ok(settings(ctx)?.invitation_url(&token))
    }
    async fn company_id(&self) -> ID {
        id(self.0.company_id)
    }
    async fn company(&self, ctx: &Context<'_>) -> Result<Option<Company>> {
        Ok(load(ctx, CompanyById(self.0.company_id))
            .await?
            .map(Company))
    }
    /// The connection to repair (reconnect invitations only).
    async fn connection_id(&self) -> Option<ID> {
        self.0.connection_id.map(id)
    }
    async fn connection(&self, ctx: &Context<'_>) -> Result<Option<Connection>> {
        let Some(connection_id) = self.0.connection_id else {
            return Ok(None);
        };
        let org = viewer(ctx)?.organization_id;
        let reads = &store(ctx)?.reads;
        match reads
            .find_owned::<entity::entities::connections::Entity>(org, connection_id)
            .await
        {
            Ok(row) => Ok(Some(Connection(row))),
            Err(entity::DomainError::NotFound) => Ok(None),
            Err(e) => Err(crate::graphql::error::into_gql(e)),
        }
    }
    /// Addresses allowed to use the link; empty means anyone with the link.
    async fn allowed_emails(&self) -> &[String] {
        &self.0.allowed_emails.0
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// Null means unlimited.
    async fn max_uses(&self) -> Option<i32> {
        self.0.max_uses
    }
    async fn use_count(&self) -> i32 {
        self.0.use_count
    }
    /// Uses left; null means unlimited.
    async fn remaining_uses(&self) -> Option<i32> {
        self.0.max_uses.map(|m| (m - self.0.use_count).max(0))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Name of the API key that created the invitation.
    async fn created_by(&self) -> &str {
        &self.0.created_by
    }
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at
    }
    async fn revoked_reason(&self) -> Option<&str> {
        self.0.revoked_reason.as_deref()
    }
    async fn fulfilled_at(&self) -> Option<DateTime<Utc>> {
        self.0.fulfilled_at
    }
    /// When the last event of the activity log happened (the newest `occurredAt`).
    async fn last_activity_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        load(ctx, LastActivityOf(self.0.id)).await
    }
    /// Seconds before `expiresAt` at which a reminder is emailed, if asked for.
    async fn remind_before_expiry_seconds(&self) -> Option<i64> {
        self.0.remind_before_expiry_seconds
    }
    async fn prefill(&self) -> Prefill {
        (&self.0.prefill).into()
    }
    /// Prefill fields the recipient cannot change.
    async fn locked_fields(&self) -> Vec<PrefillField> {
        self.0
            .locked_fields
            .0
            .iter()
            .filter_map(|f| PrefillField::from_api_name(f))
            .collect()
    }
    /// Connections created through this invitation, oldest first (the first `first` of them).
    #[graphql(complexity = "nested_complexity(first, child_complexity)")]
    async fn created_connections(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, 1 to 100 (default 10).")] first: Option<i32>,
    ) -> Result<Vec<Connection>> {
        let first = page_size(first, NESTED_LIST_DEFAULT)?;
        let rows = load(ctx, ConnectionsCreatedBy(self.0.id, first as u64))
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Connection).collect())
    }
    /// Email deliveries of this invitation, oldest first (the first `first` of them).
    #[graphql(complexity = "nested_complexity(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, 1 to 100 (default 10).")] first: Option<i32>,
    ) -> Result<Vec<Delivery>> {
        let first = page_size(first, NESTED_LIST_DEFAULT)?;
        let rows = load(ctx, DeliveriesOf(self.0.id, first as u64))
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Delivery).collect())
    }
    /// The activity log, oldest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity + 1")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last event already seen.")] after: Option<String>,
    ) -> Result<Plain<Page<i64, Plain<InvitationEvent>, EmptyFields, EmptyFields>>> {
        let window = event_window(first, after.as_deref())?;
        let rows = match self.1.take(window) {
            Some(rows) => rows,
            None => load(ctx, EventsPage(self.0.id, window))
                .await?
                .unwrap_or_default(),
        };
        Ok(Plain(event_page(
            window,
            rows,
            |e| e.id,
            |e| Plain(InvitationEvent(e)),
        )))
    }
}

plain_fields!(Invitation {
    "id" => id,
    "invitationType" => invitation_type,
    "status" => status,
    "companyId" => company_id,
    "connectionId" => connection_id,
    "allowedEmails" => allowed_emails,
    "expiresAt" => expires_at,
    "maxUses" => max_uses,
    "useCount" => use_count,
    "remainingUses" => remaining_uses,
    "createdAt" => created_at,
    "createdBy" => created_by,
    "revokedAt" => revoked_at,
    "revokedReason" => revoked_reason,
    "fulfilledAt" => fulfilled_at,
    "remindBeforeExpirySeconds" => remind_before_expiry_seconds,
    "lockedFields" => locked_fields,
});

/// One entry of an invitation's activity log.
pub struct InvitationEvent(pub invitation_events::Model);

// `serial`: every field is a plain read of the row, so resolving them one after another gives
// the same answer without the `FuturesUnordered` that async-graphql builds for each object
// resolved in parallel (its tasks, wakers and `Arc`s were about a tenth of a nested page's
// profile, over all its objects; a page of twenty invitations with five events each has a
// hundred events). (Not a doc comment: that would become the type's GraphQL description.)
#[Object(serial)]
impl InvitationEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Where this event stands in the order events became visible: pass the last one received
    /// as `since` to `companyActivity` to resume with nothing missed and nothing repeated. Null
    /// only for an event read in the instant between its commit and its sequencing.
    async fn cursor(&self) -> Option<String> {
        self.0.position.map(|p| p.to_string())
    }
    async fn invitation_id(&self) -> ID {
        id(self.0.invitation_id)
    }
    async fn company_id(&self) -> ID {
        id(self.0.company_id)
    }
    async fn event_type(&self) -> EventType {
        self.0.event_type.into()
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
    async fn email(&self) -> Option<&str> {
        self.0.email.as_deref()
    }
    async fn connection_id(&self) -> Option<ID> {
        self.0.connection_id.map(id)
    }
    /// API key name, `recipient`, or `system`.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    async fn detail(&self) -> Json<serde_json::Value> {
        Json(self.0.detail.clone())
    }
}

plain_fields!(InvitationEvent {
    "id" => id,
    "cursor" => cursor,
    "invitationId" => invitation_id,
    "companyId" => company_id,
    "eventType" => event_type,
    "occurredAt" => occurred_at,
    "email" => email,
    "connectionId" => connection_id,
    "actor" => actor,
    "detail" => detail,
});

/// One email of the outbox.
pub struct Delivery(pub email_deliveries::Model);

// `serial` for the reason `InvitationEvent` is: every field is a plain read of the row.
#[Object(serial)]
impl Delivery {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn kind(&self) -> DeliveryKind {
        self.0.kind.into()
    }
    async fn recipient(&self) -> &str {
        &self.0.recipient
    }
    async fn status(&self) -> DeliveryStatus {
        self.0.status.into()
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The last SMTP error, if any; for a verification code asked for an address that is not on
    /// the allow-list (a FAILED delivery that never went out), that nothing was sent.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// The `Message-ID` every attempt of this delivery carries.
    async fn message_id(&self) -> &str {
        &self.0.message_id
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
}
