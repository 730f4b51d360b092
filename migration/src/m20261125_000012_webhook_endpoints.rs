use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000001_organizations::Organizations;
use crate::{enum_str, fk_cascade, ts, ts_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
pub(crate) enum WebhookEndpoints {
    Table,
    Id,
    OrganizationId,
    Url,
    Description,
    /// JSON array of subscribed event types.
    EventTypes,
    /// ENABLED or DISABLED.
    Status,
    /// Why it is disabled: MANUAL or FAILING.
    DisabledReason,
    DisabledAt,
    /// The signing secret, sealed (it must be usable to sign, so it cannot be hashed).
    SecretSealed,
    /// The secret before the last rotation, still signing until `previous_secret_expires_at`.
    PreviousSecretSealed,
    PreviousSecretExpiresAt,
    /// First failed attempt since the last success; drives automatic disabling.
    FailingSince,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookEndpoints::Table)
                    .col(pk_uuid(WebhookEndpoints::Id))
                    .col(uuid(WebhookEndpoints::OrganizationId))
                    .col(string_len(WebhookEndpoints::Url, 2048))
                    .col(string_len_null(WebhookEndpoints::Description, 500))
                    .col(json(WebhookEndpoints::EventTypes))
                    .col(enum_str(WebhookEndpoints::Status))
                    .col(string_len_null(WebhookEndpoints::DisabledReason, 32))
                    .col(ts_null(WebhookEndpoints::DisabledAt))
                    .col(text(WebhookEndpoints::SecretSealed))
                    .col(text_null(WebhookEndpoints::PreviousSecretSealed))
                    .col(ts_null(WebhookEndpoints::PreviousSecretExpiresAt))
                    .col(ts_null(WebhookEndpoints::FailingSince))
                    .col(ts(WebhookEndpoints::CreatedAt))
                    .col(ts(WebhookEndpoints::UpdatedAt))
                    .foreign_key(&mut fk_cascade(
                        WebhookEndpoints::Table,
                        WebhookEndpoints::OrganizationId,
                        Organizations::Table,
                        Organizations::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        // Every recorded event looks up the organization's endpoints.
        manager
            .create_index(
                Index::create()
                    .name("idx_webhook_endpoints_organization")
                    .table(WebhookEndpoints::Table)
                    .col(WebhookEndpoints::OrganizationId)
                    .col(WebhookEndpoints::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned())
            .await
    }
}
