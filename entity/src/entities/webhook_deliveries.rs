use sea_orm::entity::prelude::*;

use super::enums::WebhookDeliveryStatus;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub endpoint_id: Uuid,
    pub message_id: String,
    pub event_type: String,
    pub body: String,
    pub status: WebhookDeliveryStatus,
    pub attempts: i32,
    pub last_http_status: Option<i32>,
    pub last_error: Option<String>,
    pub next_attempt_at: DateTimeUtc,
    pub enqueued_for: Option<DateTimeUtc>,
    pub replay_of: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
