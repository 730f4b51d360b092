//! The append-only activity log of an invitation (SPEC §3.5).

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr,
    EntityTrait, NotSet, QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

use crate::entities::{invitation_events, invitations};
use crate::work::Work;
use crate::{DomainError, EventType, now};

/// Who caused an event: an API key (by name), the recipient, or the system (jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(String),
    Recipient,
    System,
}

impl Actor {
    pub fn label(&self) -> &str {
        match self {
            Self::ApiKey(name) => name,
            Self::Recipient => "recipient",
            Self::System => "system",
        }
    }
}

/// Optional parts of an event.
#[derive(Debug, Clone, Default)]
pub struct EventExtra {
    pub email: Option<String>,
    pub connection_id: Option<Uuid>,
    pub detail: Option<Value>,
}

/// Appends one event and writes its webhook deliveries, in the unit of work that makes the change
/// it records: the log, the outbox and the change commit (or roll back) together, and the event
/// is published once they have.
pub async fn record(
    work: &Work,
    invitation: &invitations::Model,
    event_type: EventType,
    actor: &Actor,
    extra: EventExtra,
) -> Result<invitation_events::Model, DomainError> {
    let event = invitation_events::ActiveModel {
        id: NotSet,
        invitation_id: Set(invitation.id),
        organization_id: Set(invitation.organization_id),
        company_id: Set(invitation.company_id),
        event_type: Set(event_type),
        occurred_at: Set(now()),
        email: Set(extra.email),
        connection_id: Set(extra.connection_id),
        actor: Set(actor.label().to_owned()),
        detail: Set(extra
            .detail
            .unwrap_or_else(|| Value::Object(Default::default()))),
        position: Set(work.next_position().await?),
    }
    .insert(work.txn())
    .await?;
    crate::webhook::events::invitation_event(work, invitation, &event).await?;
    work.push_event(event.clone());
    Ok(event)
}

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
