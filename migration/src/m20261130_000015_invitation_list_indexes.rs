use sea_orm_migration::prelude::*;

use crate::m20261125_000007_invitations::Invitations;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The list indexes lead with `organization_id, company_id`, the two equalities every list query
/// has, so a page, its `totalCount` and each filter are answered from one index range; the
/// status index carries `expires_at` too, because ACTIVE and EXPIRED are decided by it at read
/// time, which keeps the status count inside the index.
fn list_indexes() -> Vec<(&'static str, IndexCreateStatement)> {
    let list = |name: &'static str, middle: Vec<Invitations>, tail: Vec<Invitations>| {
        let mut index = Index::create();
        index
            .name(name)
            .table(Invitations::Table)
            .col(Invitations::OrganizationId)
            .col(Invitations::CompanyId);
        for col in middle {
            index.col(col);
        }
        index.col(Invitations::CreatedAt).col(Invitations::Id);
        for col in tail {
            index.col(col);
        }
        (name, index.to_owned())
    };
    vec![
        list("idx_invitations_list", vec![], vec![]),
        list(
            "idx_invitations_list_status",
            vec![Invitations::Status],
            vec![Invitations::ExpiresAt],
        ),
        list(
            "idx_invitations_list_type",
            vec![Invitations::InvitationType],
            vec![],
        ),
    ]
}

/// The indexes of the first schema that the list indexes replace.
fn first_indexes() -> Vec<(&'static str, IndexCreateStatement)> {
    vec![
        (
            "idx_invitations_company_created",
            Index::create()
                .name("idx_invitations_company_created")
                .table(Invitations::Table)
                .col(Invitations::CompanyId)
                .col(Invitations::CreatedAt)
                .col(Invitations::Id)
                .to_owned(),
        ),
        (
            "idx_invitations_company_status",
            Index::create()
                .name("idx_invitations_company_status")
                .table(Invitations::Table)
                .col(Invitations::CompanyId)
                .col(Invitations::Status)
                .to_owned(),
        ),
    ]
}

async fn swap(
    manager: &SchemaManager<'_>,
    drop: Vec<(&'static str, IndexCreateStatement)>,
    create: Vec<(&'static str, IndexCreateStatement)>,
) -> Result<(), DbErr> {
    for (_, index) in create {
        manager.create_index(index).await?;
    }
    for (name, _) in drop {
        manager
            .drop_index(
                Index::drop()
                    .name(name)
                    .table(Invitations::Table)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        swap(manager, first_indexes(), list_indexes()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        swap(manager, list_indexes(), first_indexes()).await
    }
}
