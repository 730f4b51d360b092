use sea_orm::entity::prelude::*;

use super::enums::{MagicLinkEventType, MagicLinkType};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "magic_link_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub link_type: MagicLinkType,
    pub connection_id: Option<Uuid>,
    pub event_type: MagicLinkEventType,
    pub actor: String,
    pub detail: Json,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
