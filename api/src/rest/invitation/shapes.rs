//! The JSON shapes of the invitation endpoints: request bodies, views and query parameters,
//! with their OpenAPI schemas.

use async_graphql::ID;
use chrono::{DateTime, NaiveDate, Utc};
use entity::crypto::Slot;
use entity::entities::{connections, invitation_events, invitations};
use entity::{ConnectionStatus, EventType, InvitationStatus, InvitationType, UtilityType};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::config::Settings;
use crate::graphql::enums;
use crate::graphql::inputs::{InvitationInput, PrefillInput};
use crate::rest::error::ApiError;
use crate::state::Store;

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
    pub(super) fn into_input(
        self,
        prefill: Option<PrefillBody>,
        key: Option<String>,
    ) -> InvitationInput {
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
    pub(super) fn new(
        store: &Store,
        settings: &Settings,
        row: invitations::Model,
        created: Vec<connections::Model>,
    ) -> Result<Self, ApiError> {
        let token = store
            .keys
            .open_string(&row.token_sealed, &Slot::invitation_token(row.id))?;
        Ok(Self {
            id: row.id,
            invitation_url: settings.invitation_url(&token),
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
