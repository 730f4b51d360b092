use sea_orm::entity::prelude::*;

use super::enums::{InvitationStatus, InvitationType, Prefill, StringList};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub connection_id: Option<Uuid>,
    pub invitation_type: InvitationType,
    /// The stored status; read [`Model::effective_status`] instead, which accounts for expiry.
    pub status: InvitationStatus,
    pub token_hash: String,
    pub token_sealed: String,
    pub allowed_emails: StringList,
    pub expires_at: Option<DateTimeUtc>,
    pub max_uses: Option<i32>,
    pub use_count: i32,
    pub prefill: Prefill,
    pub locked_fields: StringList,
    pub remind_before_expiry_seconds: Option<i64>,
    pub reminder_sent_at: Option<DateTimeUtc>,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_reason: Option<String>,
    pub fulfilled_at: Option<DateTimeUtc>,
    pub expired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
