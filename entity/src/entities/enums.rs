//! Enumerations stored as short strings, plus the typed JSON columns.

use sea_orm::FromJsonQueryResult;
use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvitationType {
    #[sea_orm(string_value = "CREATE_CONNECTION")]
    CreateConnection,
    #[sea_orm(string_value = "EDIT_CONNECTION")]
    EditConnection,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "SCREAMING_SNAKE_CASE")]
pub enum InvitationStatus {
    #[sea_orm(string_value = "ACTIVE")]
    Active,
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    #[sea_orm(string_value = "REVOKED")]
    Revoked,
    #[sea_orm(string_value = "FULFILLED")]
    Fulfilled,
}

impl InvitationStatus {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "CONNECTED")]
    Connected,
    #[sea_orm(string_value = "UNDER_INVESTIGATION")]
    UnderInvestigation,
    #[sea_orm(string_value = "WEBSITE_DOWN")]
    WebsiteDown,
    #[sea_orm(string_value = "URL_INACCESSIBLE")]
    UrlInaccessible,
    #[sea_orm(string_value = "NO_ACCOUNTS_FOUND")]
    NoAccountsFound,
    #[sea_orm(string_value = "OTHER_ERROR")]
    OtherError,
    #[sea_orm(string_value = "MFA_TOKEN_EXPIRED")]
    MfaTokenExpired,
    #[sea_orm(string_value = "PASSWORD_INCORRECT")]
    PasswordIncorrect,
    #[sea_orm(string_value = "NEW_PASSWORD_NEEDED")]
    NewPasswordNeeded,
    #[sea_orm(string_value = "ADDITIONAL_CREDENTIALS_NEEDED")]
    AdditionalCredentialsNeeded,
    #[sea_orm(string_value = "COMPANY_INACTIVE")]
    CompanyInactive,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventType {
    #[sea_orm(string_value = "CREATED")]
    Created,
    #[sea_orm(string_value = "EMAIL_SENT")]
    EmailSent,
    #[sea_orm(string_value = "EMAIL_FAILED")]
    EmailFailed,
    #[sea_orm(string_value = "RESENT")]
    Resent,
    #[sea_orm(string_value = "TOKEN_ROTATED")]
    TokenRotated,
    #[sea_orm(string_value = "VIEWED")]
    Viewed,
    #[sea_orm(string_value = "EMAIL_VERIFICATION_SENT")]
    EmailVerificationSent,
    #[sea_orm(string_value = "EMAIL_VERIFIED")]
    EmailVerified,
    #[sea_orm(string_value = "EMAIL_VERIFICATION_FAILED")]
    EmailVerificationFailed,
    #[sea_orm(string_value = "SUBMITTED")]
    Submitted,
    #[sea_orm(string_value = "FULFILLED")]
    Fulfilled,
    #[sea_orm(string_value = "REVOKED")]
    Revoked,
    #[sea_orm(string_value = "EXPIRED")]
    Expired,
    #[sea_orm(string_value = "REMINDER_SENT")]
    ReminderSent,
    #[sea_orm(string_value = "RENEWAL_REQUESTED")]
    RenewalRequested,
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "snake_case")]
pub enum DeliveryKind {
    #[sea_orm(string_value = "INVITATION")]
    Invitation,
    #[sea_orm(string_value = "RESEND")]
    Resend,
    #[sea_orm(string_value = "REMINDER")]
    Reminder,
    #[sea_orm(string_value = "VERIFICATION_CODE")]
    VerificationCode,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SENT")]
    Sent,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UtilityType {
    Electricity,
    Gas,
    Water,
    Solar,
    Fuel,
    Waste,
    District,
}

/// A JSON array of strings (allow-lists, locked field names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
pub struct StringList(pub Vec<String>);

/// A JSON array of utility types.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
pub struct UtilityTypes(pub Vec<UtilityType>);

/// Prefill data of a contributor invitation (SPEC §3.4). Empty for reconnect invitations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(rename_all = "camelCase")]
pub struct Prefill {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datasource_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub initial_sites: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub utility_types: Vec<UtilityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_owner_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_collection_start_date: Option<chrono::NaiveDate>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EndpointStatus {
    #[sea_orm(string_value = "ENABLED")]
    Enabled,
    #[sea_orm(string_value = "DISABLED")]
    Disabled,
}

/// Why an endpoint is disabled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DisabledReason {
    /// An API call disabled it.
    #[sea_orm(string_value = "MANUAL")]
    Manual,
    /// It kept failing for longer than the configured period.
    #[sea_orm(string_value = "FAILING")]
    Failing,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WebhookDeliveryStatus {
    #[sea_orm(string_value = "PENDING")]
    Pending,
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    #[sea_orm(string_value = "FAILED")]
    Failed,
}

/// What one HTTP attempt of a webhook delivery came to.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[strum(serialize_all = "snake_case")]
pub enum AttemptOutcome {
    /// A 2xx answer.
    #[sea_orm(string_value = "SUCCEEDED")]
    Succeeded,
    /// Any other answer, redirects included (they are never followed).
    #[sea_orm(string_value = "HTTP_ERROR")]
    HttpError,
    /// No complete answer within the timeout.
    #[sea_orm(string_value = "TIMEOUT")]
    Timeout,
    /// DNS failure, refused connection, TLS failure, reset.
    #[sea_orm(string_value = "NETWORK_ERROR")]
    NetworkError,
    /// The target resolved to an address webhooks may not reach; nothing was sent.
    #[sea_orm(string_value = "TARGET_FORBIDDEN")]
    TargetForbidden,
}

/// Which legacy link an activity event concerns.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MagicLinkType {
    /// The company link (`/p/connect/{publicCompanyId}/{secret}`).
    #[sea_orm(string_value = "COMPANY_LINK")]
    CompanyLink,
    /// A connection's edit link (`/p/connect/{publicCompanyId}/workflow/{secret}`).
    #[sea_orm(string_value = "EDIT_LINK")]
    EditLink,
}

/// What happened to or through a legacy link.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MagicLinkEventType {
    #[sea_orm(string_value = "CREATED")]
    Created,
    #[sea_orm(string_value = "ROTATED")]
    Rotated,
    #[sea_orm(string_value = "REVOKED")]
    Revoked,
    #[sea_orm(string_value = "SUBMITTED")]
    Submitted,
}

impl DeliveryKind {
    /// The snake_case name (a metric label value).
    pub fn label(self) -> &'static str {
        self.into()
    }
}

impl AttemptOutcome {
    /// The snake_case name (a metric label value).
    pub fn label(self) -> &'static str {
        self.into()
    }
}
