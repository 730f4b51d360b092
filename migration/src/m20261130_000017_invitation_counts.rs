use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{big_integer, uuid};

use crate::fk_cascade;
use crate::m20261125_000003_companies::Companies;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// How many invitations each company has, kept in step by the transaction that creates one, so
/// an unfiltered `totalCount` is one row read instead of a count over the company's invitations.
#[derive(DeriveIden)]
enum InvitationCounts {
    Table,
    CompanyId,
    OrganizationId,
    Total,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InvitationCounts::Table)
                    .col(uuid(InvitationCounts::CompanyId).primary_key())
                    .col(uuid(InvitationCounts::OrganizationId))
                    .col(big_integer(InvitationCounts::Total))
                    .foreign_key(&mut fk_cascade(
                        InvitationCounts::Table,
                        InvitationCounts::CompanyId,
                        Companies::Table,
                        Companies::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        // The invitations written before this table existed.
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO invitation_counts (company_id, organization_id, total) \
                 SELECT company_id, organization_id, COUNT(*) FROM invitations \
                 GROUP BY company_id, organization_id",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InvitationCounts::Table).to_owned())
            .await
    }
}
