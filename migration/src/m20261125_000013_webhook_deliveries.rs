use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_organizations::Organizations;
use crate::m20261125_000012_webhook_endpoints::WebhookEndpoints;
use crate::{enum_str, fk_cascade, ts, ts_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum WebhookDeliveries {
    Table,
    Id,
    OrganizationId,
    EndpointId,
    /// The `webhook-id` header: the same on every attempt and on replays.
    MessageId,
    EventType,
    /// The exact bytes that are signed and sent.
    Body,
    /// PENDING, SUCCEEDED or FAILED.
    Status,
    Attempts,
    LastHttpStatus,
    LastError,
    NextAttemptAt,
    /// The `next_attempt_at` a job was last queued for; the dispatcher skips rows already queued.
    EnqueuedFor,
    /// The delivery this one replays.
    ReplayOf,
    CreatedAt,
    UpdatedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(pk_uuid(WebhookDeliveries::Id))
                    .col(uuid(WebhookDeliveries::OrganizationId))
                    .col(uuid(WebhookDeliveries::EndpointId))
                    .col(string_len(WebhookDeliveries::MessageId, 64))
                    .col(string_len(WebhookDeliveries::EventType, 64))
                    .col(text(WebhookDeliveries::Body))
                    .col(enum_str(WebhookDeliveries::Status))
                    .col(integer(WebhookDeliveries::Attempts).default(0))
                    .col(integer_null(WebhookDeliveries::LastHttpStatus))
                    .col(text_null(WebhookDeliveries::LastError))
                    .col(ts(WebhookDeliveries::NextAttemptAt))
                    .col(ts_null(WebhookDeliveries::EnqueuedFor))
                    .col(uuid_null(WebhookDeliveries::ReplayOf))
                    .col(ts(WebhookDeliveries::CreatedAt))
                    .col(ts(WebhookDeliveries::UpdatedAt))
                    .col(ts_null(WebhookDeliveries::FinishedAt))
                    .foreign_key(&mut fk_cascade(
                        WebhookDeliveries::Table,
                        WebhookDeliveries::OrganizationId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .foreign_key(&mut fk_cascade(
                        WebhookDeliveries::Table,
                        WebhookDeliveries::EndpointId,
                        WebhookEndpoints::Table,
                        WebhookEndpoints::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        // The delivery log of an endpoint, newest first.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_endpoint")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::EndpointId)
                    .col(WebhookDeliveries::CreatedAt)
                    .to_owned(),
            )
            .await?;
        // Retention deletes finished deliveries by age.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_finished")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::FinishedAt)
                    .to_owned(),
            )
            .await?;
        // The dispatcher and the sweeper scan only what is still pending.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_deliveries_pending")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::NextAttemptAt)
                    .and_where(Expr::col(WebhookDeliveries::Status).eq("PENDING"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned())
            .await
    }
}
