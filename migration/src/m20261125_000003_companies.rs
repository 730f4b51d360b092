use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_organizations::Organizations;
use crate::{fk_cascade, ts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Companies {
    Table,
    Id,
    OrganizationId,
    Name,
    DisplayName,
    /// Public identifier used by legacy magic links; never the internal id.
    PublicId,
    /// Legacy company magic link: hash for lookup, sealed copy to show the link again.
    MagicLinkSecretHash,
    MagicLinkSecretSealed,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Companies::Table)
                    .col(pk_uuid(Companies::Id))
                    .col(uuid(Companies::OrganizationId))
                    .col(string_len(Companies::Name, 200))
                    .col(string_len_null(Companies::DisplayName, 200))
                    .col(string_len_uniq(Companies::PublicId, 64))
                    .col(string_len_null(Companies::MagicLinkSecretHash, 64).unique_key())
                    .col(text_null(Companies::MagicLinkSecretSealed))
                    .col(ts(Companies::CreatedAt))
                    .foreign_key(&mut fk_cascade(
                        Companies::Table,
                        Companies::OrganizationId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_companies_organization_created")
                    .table(Companies::Table)
                    .col(Companies::OrganizationId)
                    .col(Companies::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Companies::Table).to_owned())
            .await
    }
}
