use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_organizations::Organizations;
use crate::m20261125_000003_companies::Companies;
use crate::{fk_cascade, ts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Sites {
    Table,
    Id,
    OrganizationId,
    CompanyId,
    Name,
    Address,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sites::Table)
                    .col(pk_uuid(Sites::Id))
                    .col(uuid(Sites::OrganizationId))
                    .col(uuid(Sites::CompanyId))
                    .col(string_len(Sites::Name, 200))
                    .col(string_len_null(Sites::Address, 500))
                    .col(ts(Sites::CreatedAt))
                    .foreign_key(&mut fk_cascade(
                        Sites::Table,
                        Sites::OrganizationId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .foreign_key(&mut fk_cascade(
                        Sites::Table,
                        Sites::CompanyId,
                        Companies::Table,
                        Companies::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sites_company")
                    .table(Sites::Table)
                    .col(Sites::CompanyId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Sites::Table).to_owned())
            .await
    }
}
