//! Positions: the order in which activity events become visible, and the cursor of live
//! activity (see the README, "Live activity"). On SQLite an event takes its position at insert
//! (`Work::next_position`); on PostgreSQL the sequencer below gives it once the event committed.

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement, TransactionTrait,
};

use crate::entities::invitation_events;

/// Gives positions to up to `batch` committed events that have none, in id order, continuing
/// after the highest position given so far; returns them, to be published. PostgreSQL only (on
/// SQLite events take their position at insert, see `Work`).
///
/// One sequencer at a time (a transaction-scoped advisory lock; others wait for it), and it
/// reads only committed rows, so every position it hands out is final and the positions
/// readers can see always form a prefix: a cursor never skips an event that commits later.
/// Writers pay nothing for this; an event becomes visible to live readers one sequencer run
/// after its commit.
pub async fn sequence(
    db: &DatabaseConnection,
    batch: u64,
) -> Result<Vec<invitation_events::Model>, DbErr> {
    let txn = db.begin().await?;
    txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({SEQUENCER_LOCK})"))
        .await?;
    let mut events = invitation_events::Entity::find().from_raw_sql(Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "WITH top AS (SELECT COALESCE(MAX(position), 0) AS position FROM invitation_events),          waiting AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM invitation_events                      WHERE position IS NULL ORDER BY id LIMIT $1)          UPDATE invitation_events e SET position = top.position + waiting.n          FROM top, waiting WHERE e.id = waiting.id RETURNING e.*",
        [i64::try_from(batch).unwrap_or(i64::MAX).into()],
    ))
    .all(&txn)
    .await?;
    txn.commit().await?;
    events.sort_by_key(|e| e.position);
    Ok(events)
}

/// The position the next sequenced event will take (1 for an empty log).
pub async fn next_position(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let top: Option<i64> = invitation_events::Entity::find()
        .select_only()
        .column_as(invitation_events::Column::Position.max(), "top")
        .into_tuple()
        .one(db)
        .await?
        .flatten();
    Ok(top.unwrap_or(0) + 1)
}

/// The events with positions in `from..to`, in position order: what a live relay fetches when a
/// published event overtook earlier ones on the way (they are committed, or they would have no
/// position).
pub async fn events_between(
    db: &impl ConnectionTrait,
    from: i64,
    to: i64,
) -> Result<Vec<invitation_events::Model>, DbErr> {
    invitation_events::Entity::find()
        .filter(invitation_events::Column::Position.gte(from))
        .filter(invitation_events::Column::Position.lt(to))
        .order_by_asc(invitation_events::Column::Position)
        .all(db)
        .await
}

/// The advisory lock that makes the sequencer run one at a time ("invt").
const SEQUENCER_LOCK: i64 = 0x696e_7674;
