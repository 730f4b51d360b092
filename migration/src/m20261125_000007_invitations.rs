use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_organizations::Organizations;
use crate::m20261125_000003_companies::Companies;
use crate::m20261125_000005_connections::Connections;
use crate::{enum_str, fk_cascade, ts, ts_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub enum Invitations {
    Table,
    Id,
    OrganizationId,
    CompanyId,
    ConnectionId,
    InvitationType,
    Status,
    /// SHA-256 of the token: a database dump does not reveal live links.
    TokenHash,
    /// AEAD-sealed token so the organization can display the link again.
    TokenSealed,
    AllowedEmails,
    ExpiresAt,
    MaxUses,
    UseCount,
    Prefill,
    LockedFields,
    RemindBeforeExpirySeconds,
    ReminderSentAt,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    RevokedAt,
    RevokedReason,
    FulfilledAt,
    ExpiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Invitations::Table)
                    .col(pk_uuid(Invitations::Id))
                    .col(uuid(Invitations::OrganizationId))
                    .col(uuid(Invitations::CompanyId))
                    .col(uuid_null(Invitations::ConnectionId))
                    .col(enum_str(Invitations::InvitationType))
                    .col(enum_str(Invitations::Status))
                    .col(string_len_uniq(Invitations::TokenHash, 64))
                    .col(text(Invitations::TokenSealed))
                    .col(json(Invitations::AllowedEmails))
                    .col(ts_null(Invitations::ExpiresAt))
                    .col(integer_null(Invitations::MaxUses))
                    .col(integer(Invitations::UseCount).default(0))
                    .col(json(Invitations::Prefill))
                    .col(json(Invitations::LockedFields))
                    .col(big_integer_null(Invitations::RemindBeforeExpirySeconds))
                    .col(ts_null(Invitations::ReminderSentAt))
                    .col(string_len(Invitations::CreatedBy, 200))
                    .col(ts(Invitations::CreatedAt))
                    .col(ts(Invitations::UpdatedAt))
                    .col(ts_null(Invitations::RevokedAt))
                    .col(string_len_null(Invitations::RevokedReason, 500))
                    .col(ts_null(Invitations::FulfilledAt))
                    .col(ts_null(Invitations::ExpiredAt))
                    .foreign_key(&mut fk_cascade(
                        Invitations::Table,
                        Invitations::OrganizationId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .foreign_key(&mut fk_cascade(
                        Invitations::Table,
                        Invitations::CompanyId,
                        Companies::Table,
                        Companies::Id,
                    ))
                    .foreign_key(&mut fk_cascade(
                        Invitations::Table,
                        Invitations::ConnectionId,
                        Connections::Table,
                        Connections::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        // Listing: newest first within a company, ties broken by id.
        manager
            .create_index(
                Index::create()
                    .name("idx_invitations_company_created")
                    .table(Invitations::Table)
                    .col(Invitations::CompanyId)
                    .col(Invitations::CreatedAt)
                    .col(Invitations::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invitations_company_status")
                    .table(Invitations::Table)
                    .col(Invitations::CompanyId)
                    .col(Invitations::Status)
                    .to_owned(),
            )
            .await?;
        // The expiry sweep only ever looks at ACTIVE rows with a deadline.
        manager
            .create_index(
                Index::create()
                    .name("idx_invitations_active_expires")
                    .table(Invitations::Table)
                    .col(Invitations::ExpiresAt)
                    .and_where(Expr::col(Invitations::Status).eq("ACTIVE"))
                    .and_where(Expr::col(Invitations::ExpiresAt).is_not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invitations_connection")
                    .table(Invitations::Table)
                    .col(Invitations::ConnectionId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Invitations::Table).to_owned())
            .await
    }
}
