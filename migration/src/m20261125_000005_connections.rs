use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_organizations::Organizations;
use crate::m20261125_000003_companies::Companies;
use crate::{enum_str, fk_cascade, ts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Connections {
    Table,
    Id,
    OrganizationId,
    CompanyId,
    DatasourceId,
    ProviderName,
    ProviderUrl,
    Country,
    Status,
    UtilityTypes,
    OwnerEmail,
    DataCollectionStartDate,
    UtilityUsername,
    /// AEAD-sealed utility password; never returned by any API.
    PasswordSealed,
    MfaForwarding,
    /// Invitation that created / last updated the connection. No foreign key: invitations point
    /// back at connections (reconnect), and SQLite cannot add a constraint to an existing table.
    CreatedByInvitationId,
    LastInvitationId,
    /// Legacy edit magic link: hash for lookup, sealed copy to show the link again.
    EditLinkSecretHash,
    EditLinkSecretSealed,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Connections::Table)
                    .col(pk_uuid(Connections::Id))
                    .col(uuid(Connections::OrganizationId))
                    .col(uuid(Connections::CompanyId))
                    .col(string_len_null(Connections::DatasourceId, 100))
                    .col(string_len_null(Connections::ProviderName, 200))
                    .col(string_len_null(Connections::ProviderUrl, 2000))
                    .col(string_len_null(Connections::Country, 2))
                    .col(enum_str(Connections::Status))
                    .col(json(Connections::UtilityTypes))
                    .col(string_len_null(Connections::OwnerEmail, 320))
                    .col(date_null(Connections::DataCollectionStartDate))
                    .col(string_len_null(Connections::UtilityUsername, 500))
                    .col(text_null(Connections::PasswordSealed))
                    .col(boolean(Connections::MfaForwarding).default(false))
                    .col(uuid_null(Connections::CreatedByInvitationId))
                    .col(uuid_null(Connections::LastInvitationId))
                    .col(string_len_null(Connections::EditLinkSecretHash, 64).unique_key())
                    .col(text_null(Connections::EditLinkSecretSealed))
                    .col(ts(Connections::CreatedAt))
                    .col(ts(Connections::UpdatedAt))
                    .foreign_key(&mut fk_cascade(
                        Connections::Table,
                        Connections::OrganizationId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .foreign_key(&mut fk_cascade(
                        Connections::Table,
                        Connections::CompanyId,
                        Companies::Table,
                        Companies::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_connections_company", Connections::CompanyId),
            (
                "idx_connections_created_by_invitation",
                Connections::CreatedByInvitationId,
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Connections::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Connections::Table).to_owned())
            .await
    }
}
