use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    AllowedEmbedOrigins,
}

/// `allowed_embed_origins`: the origins (`https://host[:port]`) that may frame the hosted pages
/// of an organization's invitations and links, as a JSON array. Empty: no one may.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(
                        ColumnDef::new(Organizations::AllowedEmbedOrigins)
                            .json()
                            .not_null()
                            .default("[]"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE organizations DROP COLUMN allowed_embed_origins")
                .await?;
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .drop_column(Organizations::AllowedEmbedOrigins)
                    .to_owned(),
            )
            .await
    }
}
