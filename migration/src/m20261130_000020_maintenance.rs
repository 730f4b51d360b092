use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::string_len;

use crate::ts;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Data upgrades that need the secret key, which migrations never see: the application runs
/// each once after migrating and records it here. The first is re-sealing every sealed value
/// bound to its row and column (values sealed before this migration carry no binding).
#[derive(DeriveIden)]
enum Maintenance {
    Table,
    Name,
    DoneAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Maintenance::Table)
                    .col(string_len(Maintenance::Name, 64).primary_key())
                    .col(ts(Maintenance::DoneAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Maintenance::Table).to_owned())
            .await
    }
}
