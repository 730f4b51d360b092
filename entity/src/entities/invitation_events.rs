use sea_orm::entity::prelude::*;

use super::enums::EventType;

/// Serializable so events can travel between replicas (Redis pub/sub) and to webhooks.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "invitation_events")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub invitation_id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub event_type: EventType,
    pub occurred_at: DateTimeUtc,
    pub email: Option<String>,
    pub connection_id: Option<Uuid>,
    pub actor: String,
    pub detail: Json,
    /// The live-activity cursor: set once the event is committed and sequenced (see
    /// [`crate::positions::sequence`]); `None` only until then.
    pub position: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
