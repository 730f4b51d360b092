//! GraphQL mirrors of the domain enumerations (the domain crate knows nothing of GraphQL). The
//! REST API's OpenAPI document describes the domain enumerations with these too (`ToSchema`).

use async_graphql::Enum;

/// Kind of invitation.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize, utoipa::ToSchema)]
#[graphql(remote = "entity::InvitationType")]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvitationType {
    /// Contributor invitation: submitting creates a new connection.
    CreateConnection,
    /// Reconnect invitation: submitting updates the credentials of one connection.
    EditConnection,
}

/// Status of an invitation, always correct at the time of the read.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize, utoipa::ToSchema)]
#[graphql(remote = "entity::InvitationStatus")]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvitationStatus {
    Active,
    Expired,
    Revoked,
    Fulfilled,
}

/// Status of a connection.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, utoipa::ToSchema)]
#[graphql(remote = "entity::ConnectionStatus")]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionStatus {
    Pending,
    Connected,
    UnderInvestigation,
    WebsiteDown,
    UrlInaccessible,
    NoAccountsFound,
    OtherError,
    MfaTokenExpired,
    PasswordIncorrect,
    NewPasswordNeeded,
    AdditionalCredentialsNeeded,
    CompanyInactive,
}

/// Type of an activity-log event.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, utoipa::ToSchema)]
#[graphql(remote = "entity::EventType")]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    Created,
    EmailSent,
    EmailFailed,
    Resent,
    TokenRotated,
    Viewed,
    EmailVerificationSent,
    EmailVerified,
    EmailVerificationFailed,
    Submitted,
    Fulfilled,
    Revoked,
    Expired,
    ReminderSent,
    RenewalRequested,
}

/// Utility type of a connection.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, serde::Serialize, utoipa::ToSchema)]
#[graphql(remote = "entity::UtilityType")]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UtilityType {
    Electricity,
    Gas,
    Water,
    Solar,
    Fuel,
    Waste,
    District,
}

/// What an email delivery carries.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::DeliveryKind")]
pub enum DeliveryKind {
    Invitation,
    Resend,
    Reminder,
    VerificationCode,
}

/// State of an email delivery.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::DeliveryStatus")]
pub enum DeliveryStatus {
    Pending,
    Sent,
    Failed,
}

/// A prefill field the organization can lock so the recipient cannot change it.
#[derive(
    Enum,
    Copy,
    Clone,
    Eq,
    PartialEq,
    Debug,
    serde::Serialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::EnumIter,
)]
#[strum(serialize_all = "camelCase")]
pub enum PrefillField {
    DatasourceId,
    Url,
    Country,
    InitialSites,
    UtilityTypes,
    ConnectionOwnerEmail,
    DataCollectionStartDate,
}

impl PrefillField {
    /// The field's name in prefill objects (as stored).
    pub fn api_name(self) -> &'static str {
        self.into()
    }

    pub fn from_api_name(name: &str) -> Option<Self> {
        name.parse().ok()
    }
}

/// Which legacy link an event concerns.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::MagicLinkType")]
pub enum MagicLinkType {
    /// The company link (`/p/connect/{publicCompanyId}/{secret}`).
    CompanyLink,
    /// A connection's edit link (`/p/connect/{publicCompanyId}/workflow/{secret}`).
    EditLink,
}

/// What happened to or through a legacy link.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::MagicLinkEventType")]
pub enum MagicLinkEventType {
    /// The organization asked for the link and there was none, so one was issued.
    Created,
    /// The organization replaced the secret; the old link stopped working.
    Rotated,
    /// The organization revoked the link.
    Revoked,
    /// A recipient submitted through the link (`connectionId` is the connection created or
    /// updated; `detail` says what an edit link changed).
    Submitted,
}

/// Whether an endpoint receives events.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::EndpointStatus")]
pub enum WebhookEndpointStatus {
    Enabled,
    Disabled,
}

/// Why an endpoint is disabled.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::DisabledReason")]
pub enum WebhookDisabledReason {
    /// Disabled through the API.
    Manual,
    /// Every attempt failed for longer than the configured period (5 days by default).
    Failing,
}

/// State of one webhook delivery.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::WebhookDeliveryStatus")]
pub enum WebhookDeliveryStatus {
    /// Not delivered yet; `nextAttemptAt` says when it is tried (again).
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Out of attempts, refused target, or the endpoint was disabled.
    Failed,
}

/// What one HTTP attempt came to.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
#[graphql(remote = "entity::AttemptOutcome")]
pub enum WebhookAttemptOutcome {
    /// The endpoint answered 2xx.
    Succeeded,
    /// Any other status, redirects included (they are not followed).
    HttpError,
    /// No complete answer within the timeout (15 s by default).
    Timeout,
    /// DNS failure, refused connection, TLS error, reset.
    NetworkError,
    /// The URL resolved to an address webhooks may not reach; nothing was sent.
    TargetForbidden,
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::PrefillField;

    /// The lockable fields the API offers are exactly the ones the domain accepts, by name.
    #[test]
    fn prefill_fields_are_the_domain_lockable_fields() {
        let names: Vec<&str> = PrefillField::iter().map(PrefillField::api_name).collect();
        assert_eq!(names, entity::invitation::LOCKABLE_FIELDS);
        for name in names {
            assert_eq!(
                PrefillField::from_api_name(name).map(|f| f.api_name()),
                Some(name)
            );
        }
        assert_eq!(PrefillField::from_api_name("password"), None);
    }
}
