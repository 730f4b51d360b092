use sea_orm::entity::prelude::*;

use super::enums::AttemptOutcome;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub delivery_id: Uuid,
    pub attempted_at: DateTimeUtc,
    pub duration_ms: i32,
    pub outcome: AttemptOutcome,
    pub http_status: Option<i32>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
