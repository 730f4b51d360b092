use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_organizations::Organizations;
use crate::m20261125_000007_invitations::Invitations;
use crate::{enum_str, fk_cascade, ts, ts_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EmailDeliveries {
    Table,
    Id,
    OrganizationId,
    InvitationId,
    Kind,
    Recipient,
    Status,
    Attempts,
    LastError,
    /// Chosen when the row is written, so every attempt carries the same `Message-ID`.
    MessageId,
    IdempotencyKey,
    /// Kind-specific data (sealed where secret, e.g. a verification code).
    Payload,
    NextAttemptAt,
    CreatedAt,
    UpdatedAt,
    SentAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EmailDeliveries::Table)
                    .col(pk_uuid(EmailDeliveries::Id))
                    .col(uuid(EmailDeliveries::OrganizationId))
                    .col(uuid(EmailDeliveries::InvitationId))
                    .col(enum_str(EmailDeliveries::Kind))
                    .col(string_len(EmailDeliveries::Recipient, 320))
                    .col(enum_str(EmailDeliveries::Status))
                    .col(integer(EmailDeliveries::Attempts).default(0))
                    .col(text_null(EmailDeliveries::LastError))
                    .col(string_len(EmailDeliveries::MessageId, 255))
                    .col(string_len_null(EmailDeliveries::IdempotencyKey, 255).unique_key())
                    .col(json(EmailDeliveries::Payload))
                    .col(ts(EmailDeliveries::NextAttemptAt))
                    .col(ts(EmailDeliveries::CreatedAt))
                    .col(ts(EmailDeliveries::UpdatedAt))
                    .col(ts_null(EmailDeliveries::SentAt))
                    .foreign_key(&mut fk_cascade(
                        EmailDeliveries::Table,
                        EmailDeliveries::OrganizationId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .foreign_key(&mut fk_cascade(
                        EmailDeliveries::Table,
                        EmailDeliveries::InvitationId,
                        Invitations::Table,
                        Invitations::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_email_deliveries_invitation")
                    .table(EmailDeliveries::Table)
                    .col(EmailDeliveries::InvitationId)
                    .to_owned(),
            )
            .await?;
        // The sweeper scans only what is still pending.
        manager
            .create_index(
                Index::create()
                    .name("idx_email_deliveries_pending")
                    .table(EmailDeliveries::Table)
                    .col(EmailDeliveries::NextAttemptAt)
                    .and_where(Expr::col(EmailDeliveries::Status).eq("PENDING"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(EmailDeliveries::Table).to_owned())
            .await
    }
}
