//! The invitation inputs and the invitation list filter, and their conversion to the domain's.

use async_graphql::{ID, InputObject};
use chrono::{DateTime, Utc};
use entity::invitation::{CreateInvitation, ListFilter, Resend};
use entity::{DomainError, Prefill};
use serde::Serialize;
use uuid::Uuid;

use crate::graphql::enums::{InvitationStatus, InvitationType, PrefillField, UtilityType};
use crate::graphql::ids;

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

impl PrefillInput {
    fn into_domain(self) -> Result<Prefill, DomainError> {
        Ok(Prefill {
            datasource_id: self.datasource_id,
            url: self.url,
            country: self.country,
            initial_sites: ids::uuids(
                "prefill.initialSites",
                &self.initial_sites.unwrap_or_default(),
            )?,
            utility_types: self
                .utility_types
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            connection_owner_email: self.connection_owner_email,
            data_collection_start_date: ids::date(
                "prefill.dataCollectionStartDate",
                self.data_collection_start_date.as_deref(),
            )?,
        })
    }
}

impl InvitationInput {
    /// The domain input for a contributor (`company_id`) or reconnect (`connection_id`)
    /// invitation.
    pub fn into_domain(
        self,
        organization_id: Uuid,
        company_id: Option<Uuid>,
        connection_id: Option<Uuid>,
    ) -> Result<CreateInvitation, DomainError> {
        Ok(CreateInvitation {
            organization_id,
            company_id,
            connection_id,
            allowed_emails: self.allowed_emails.unwrap_or_default(),
            expires_in_seconds: self.expires_in_seconds,
            max_uses: self.max_uses,
            send_email: self.send_email.unwrap_or(false),
            prefill: self.prefill.map(PrefillInput::into_domain).transpose()?,
            locked_fields: self.locked_fields.map(|fields| {
                fields
                    .into_iter()
                    .map(|f| f.api_name().to_owned())
                    .collect()
            }),
            remind_before_expiry_seconds: self.remind_before_expiry_seconds,
        })
    }
}

impl From<ResendInvitationInput> for Resend {
    fn from(input: ResendInvitationInput) -> Self {
        Self {
            emails: input.emails,
            extend_expires_in_seconds: input.extend_expires_in_seconds,
            rotate_token: input.rotate_token.unwrap_or(false),
        }
    }
}

/// Filters of `invitations`; all given filters must match.
#[derive(InputObject, Default)]
pub struct InvitationFilter {
    /// Effective status (an ACTIVE row past its deadline counts as EXPIRED).
    pub status: Option<InvitationStatus>,
    pub invitation_type: Option<InvitationType>,
    /// Invitations whose allow-list contains this address.
    pub email: Option<String>,
    /// Created at or after this instant.
    pub created_after: Option<DateTime<Utc>>,
    /// Created before this instant.
    pub created_before: Option<DateTime<Utc>>,
}

impl From<InvitationFilter> for ListFilter {
    fn from(filter: InvitationFilter) -> Self {
        Self {
            status: filter.status.map(Into::into),
            invitation_type: filter.invitation_type.map(Into::into),
            email: filter.email,
            created_after: filter.created_after,
            created_before: filter.created_before,
        }
    }
}
