use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000003_companies::Companies;
use crate::{enum_str, fk_cascade, ts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MagicLinkEvents {
    Table,
    /// Monotonic: the page cursor.
    Id,
    OrganizationId,
    CompanyId,
    /// `COMPANY_LINK` or `EDIT_LINK`.
    LinkType,
    /// The edit link's connection, or the connection a company link created.
    ConnectionId,
    EventType,
    Actor,
    Detail,
    OccurredAt,
}

/// The activity of the legacy magic links of a company: links issued, rotated and revoked, and
/// every submit through one (they have no invitation to log against).
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MagicLinkEvents::Table)
                    .col(big_pk_auto(MagicLinkEvents::Id))
                    .col(uuid(MagicLinkEvents::OrganizationId))
                    .col(uuid(MagicLinkEvents::CompanyId))
                    .col(enum_str(MagicLinkEvents::LinkType))
                    .col(uuid_null(MagicLinkEvents::ConnectionId))
                    .col(enum_str(MagicLinkEvents::EventType))
                    .col(string_len(MagicLinkEvents::Actor, 200))
                    .col(json(MagicLinkEvents::Detail))
                    .col(ts(MagicLinkEvents::OccurredAt))
                    .foreign_key(&mut fk_cascade(
                        MagicLinkEvents::Table,
                        MagicLinkEvents::CompanyId,
                        Companies::Table,
                        Companies::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_magic_link_events_company")
                    .table(MagicLinkEvents::Table)
                    .col(MagicLinkEvents::OrganizationId)
                    .col(MagicLinkEvents::CompanyId)
                    .col(MagicLinkEvents::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(MagicLinkEvents::Table).to_owned())
            .await
    }
}
