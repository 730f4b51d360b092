use sea_orm::entity::prelude::*;

use super::enums::{ConnectionStatus, UtilityTypes};

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub datasource_id: Option<String>,
    pub provider_name: Option<String>,
    pub provider_url: Option<String>,
    pub country: Option<String>,
    pub status: ConnectionStatus,
    pub utility_types: UtilityTypes,
    pub owner_email: Option<String>,
    pub data_collection_start_date: Option<Date>,
    pub utility_username: Option<String>,
    pub password_sealed: Option<String>,
    pub mfa_forwarding: bool,
    pub created_by_invitation_id: Option<Uuid>,
    pub last_invitation_id: Option<Uuid>,
    pub edit_link_secret_hash: Option<String>,
    pub edit_link_secret_sealed: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
