use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000013_webhook_deliveries::WebhookDeliveries;
use crate::{enum_str, fk_cascade, ts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    Id,
    DeliveryId,
    AttemptedAt,
    DurationMs,
    /// SUCCEEDED, HTTP_ERROR, TIMEOUT, NETWORK_ERROR or TARGET_FORBIDDEN.
    Outcome,
    HttpStatus,
    Error,
    /// The start of the response body, bounded.
    ResponseExcerpt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookAttempts::Table)
                    .col(pk_uuid(WebhookAttempts::Id))
                    .col(uuid(WebhookAttempts::DeliveryId))
                    .col(ts(WebhookAttempts::AttemptedAt))
                    .col(integer(WebhookAttempts::DurationMs))
                    .col(enum_str(WebhookAttempts::Outcome))
                    .col(integer_null(WebhookAttempts::HttpStatus))
                    .col(text_null(WebhookAttempts::Error))
                    .col(text_null(WebhookAttempts::ResponseExcerpt))
                    .foreign_key(&mut fk_cascade(
                        WebhookAttempts::Table,
                        WebhookAttempts::DeliveryId,
                        WebhookDeliveries::Table,
                        WebhookDeliveries::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_attempts_delivery")
                    .table(WebhookAttempts::Table)
                    .col(WebhookAttempts::DeliveryId)
                    .col(WebhookAttempts::AttemptedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookAttempts::Table).to_owned())
            .await
    }
}
