use sea_orm_migration::{prelude::*, schema::*};

use crate::m20261125_000007_invitations::Invitations;
use crate::{enum_str, fk_cascade, ts};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InvitationEvents {
    Table,
    /// Monotonic, so it doubles as the replay cursor.
    Id,
    InvitationId,
    OrganizationId,
    CompanyId,
    EventType,
    OccurredAt,
    Email,
    ConnectionId,
    Actor,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InvitationEvents::Table)
                    .col(big_pk_auto(InvitationEvents::Id))
                    .col(uuid(InvitationEvents::InvitationId))
                    .col(uuid(InvitationEvents::OrganizationId))
                    .col(uuid(InvitationEvents::CompanyId))
                    .col(enum_str(InvitationEvents::EventType))
                    .col(ts(InvitationEvents::OccurredAt))
                    .col(string_len_null(InvitationEvents::Email, 320))
                    .col(uuid_null(InvitationEvents::ConnectionId))
                    .col(string_len(InvitationEvents::Actor, 200))
                    .col(json(InvitationEvents::Detail))
                    .foreign_key(&mut fk_cascade(
                        InvitationEvents::Table,
                        InvitationEvents::InvitationId,
                        Invitations::Table,
                        Invitations::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            (
                "idx_invitation_events_invitation",
                InvitationEvents::InvitationId,
            ),
            ("idx_invitation_events_company", InvitationEvents::CompanyId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(InvitationEvents::Table)
                        .col(col)
                        .col(InvitationEvents::Id)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InvitationEvents::Table).to_owned())
            .await
    }
}
