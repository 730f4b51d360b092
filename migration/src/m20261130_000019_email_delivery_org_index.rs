use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailDeliveries {
    Table,
    OrganizationId,
    CreatedAt,
}

const NAME: &str = "idx_email_deliveries_org_created";

/// The per-organization send limit counts an organization's deliveries of the last hour.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NAME)
                    .table(EmailDeliveries::Table)
                    .col(EmailDeliveries::OrganizationId)
                    .col(EmailDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(NAME)
                    .table(EmailDeliveries::Table)
                    .to_owned(),
            )
            .await
    }
}
