use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000007_invitations::Invitations;
use crate::{fk_cascade, ts, ts_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailVerifications {
    Table,
    Id,
    InvitationId,
    Email,
    /// Keyed hash of the 6-digit code; the code itself is never stored.
    CodeHash,
    Attempts,
    ExpiresAt,
    CreatedAt,
    VerifiedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailVerifications::Table)
                    .col(pk_uuid(EmailVerifications::Id))
                    .col(uuid(EmailVerifications::InvitationId))
                    .col(string_len(EmailVerifications::Email, 320))
                    .col(string_len(EmailVerifications::CodeHash, 64))
                    .col(integer(EmailVerifications::Attempts).default(0))
                    .col(ts(EmailVerifications::ExpiresAt))
                    .col(ts(EmailVerifications::CreatedAt))
                    .col(ts_null(EmailVerifications::VerifiedAt))
                    .foreign_key(&mut fk_cascade(
                        EmailVerifications::Table,
                        EmailVerifications::InvitationId,
                        Invitations::Table,
                        Invitations::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_email_verifications_lookup")
                    .table(EmailVerifications::Table)
                    .col(EmailVerifications::InvitationId)
                    .col(EmailVerifications::Email)
                    .col(EmailVerifications::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EmailVerifications::Table).to_owned())
            .await
    }
}
