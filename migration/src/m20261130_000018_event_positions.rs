use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InvitationEvents {
    Table,
    Position,
}

/// `position`: an event's place in the order in which events became visible, the cursor of live
/// activity. Ids come from a sequence in insert order, and a transaction that took a smaller id
/// can commit after one that took a larger id, so an id cursor could skip an event. A position
/// is only given to committed events, by one sequencer at a time (see
/// `entity::positions::sequence`), so the positions readers can see always form a prefix.
/// Events written before this migration are all committed: their position is their id.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(InvitationEvents::Table)
                    .add_column(
                        ColumnDef::new(InvitationEvents::Position)
                            .big_integer()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared("UPDATE invitation_events SET position = id")
            .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX idx_invitation_events_position ON invitation_events (position)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX idx_invitation_events_company_position \
             ON invitation_events (organization_id, company_id, position)",
        )
        .await?;
        // What the sequencer reads: only the few events that wait for a position.
        db.execute_unprepared(
            "CREATE INDEX idx_invitation_events_unsequenced ON invitation_events (id) \
             WHERE position IS NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for index in [
            "idx_invitation_events_unsequenced",
            "idx_invitation_events_company_position",
            "idx_invitation_events_position",
        ] {
            db.execute_unprepared(&format!("DROP INDEX {index}"))
                .await?;
        }
        if manager.get_database_backend() == DatabaseBackend::Sqlite {
            // SQLite drops a column only when no index names it; the indexes are gone.
            db.execute_unprepared("ALTER TABLE invitation_events DROP COLUMN position")
                .await?;
            return Ok(());
        }
        manager
            .alter_table(
                Table::alter()
                    .table(InvitationEvents::Table)
                    .drop_column(InvitationEvents::Position)
                    .to_owned(),
            )
            .await
    }
}
