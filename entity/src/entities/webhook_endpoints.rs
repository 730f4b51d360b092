use sea_orm::entity::prelude::*;

use super::enums::{DisabledReason, EndpointStatus, StringList};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub description: Option<String>,
    pub event_types: StringList,
    pub status: EndpointStatus,
    pub disabled_reason: Option<DisabledReason>,
    pub disabled_at: Option<DateTimeUtc>,
    pub secret_sealed: String,
    pub previous_secret_sealed: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    pub failing_since: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
