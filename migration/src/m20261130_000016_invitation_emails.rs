use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_len, uuid};
use sea_orm_migration::sea_orm::DatabaseBackend;

use crate::m20261125_000007_invitations::Invitations;
use crate::{fk_cascade, ts};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// One row per address of an invitation's allow-list, so the `email` filter of the invitation
/// list is an index lookup instead of a text search through every row's JSON.
#[derive(DeriveIden)]
enum InvitationEmails {
    Table,
    InvitationId,
    OrganizationId,
    CompanyId,
    Email,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InvitationEmails::Table)
                    .col(uuid(InvitationEmails::InvitationId))
                    .col(uuid(InvitationEmails::OrganizationId))
                    .col(uuid(InvitationEmails::CompanyId))
                    .col(string_len(InvitationEmails::Email, 320))
                    .col(ts(InvitationEmails::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(InvitationEmails::InvitationId)
                            .col(InvitationEmails::Email),
                    )
                    .foreign_key(&mut fk_cascade(
                        InvitationEmails::Table,
                        InvitationEmails::InvitationId,
                        Invitations::Table,
                        Invitations::Id,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_invitation_emails_list")
                    .table(InvitationEmails::Table)
                    .col(InvitationEmails::OrganizationId)
                    .col(InvitationEmails::CompanyId)
                    .col(InvitationEmails::Email)
                    .col(InvitationEmails::CreatedAt)
                    .col(InvitationEmails::InvitationId)
                    .to_owned(),
            )
            .await?;
        // The allow-lists written before this table existed.
        let elements = match manager.get_database_backend() {
            DatabaseBackend::Postgres => {
                "json_array_elements_text(i.allowed_emails::json) AS e(value)"
            }
            _ => "json_each(i.allowed_emails) AS e",
        };
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO invitation_emails \
                 (invitation_id, organization_id, company_id, email, created_at) \
                 SELECT DISTINCT i.id, i.organization_id, i.company_id, e.value, i.created_at \
                 FROM invitations i, {elements}"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InvitationEmails::Table).to_owned())
            .await
    }
}
