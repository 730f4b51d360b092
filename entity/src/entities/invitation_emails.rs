use sea_orm::entity::prelude::*;

/// One address of an invitation's allow-list; it lets the list's `email` filter use an index.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitation_emails")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub invitation_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub email: String,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
