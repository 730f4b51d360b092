use sea_orm_migration::{prelude::*, schema::*};

use crate::fk_cascade;
use crate::m20261125_000004_sites::Sites;
use crate::m20261125_000005_connections::Connections;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ConnectionSites {
    Table,
    ConnectionId,
    SiteId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ConnectionSites::Table)
                    .col(uuid(ConnectionSites::ConnectionId))
                    .col(uuid(ConnectionSites::SiteId))
                    .primary_key(
                        Index::create()
                            .col(ConnectionSites::ConnectionId)
                            .col(ConnectionSites::SiteId),
                    )
                    .foreign_key(&mut fk_cascade(
                        ConnectionSites::Table,
                        ConnectionSites::ConnectionId,
                        Connections::Table,
                        Connections::Id,
                    ))
                    .foreign_key(&mut fk_cascade(
                        ConnectionSites::Table,
                        ConnectionSites::SiteId,
                        Sites::Table,
                        Sites::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_connection_sites_site")
                    .table(ConnectionSites::Table)
                    .col(ConnectionSites::SiteId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ConnectionSites::Table).to_owned())
            .await
    }
}
