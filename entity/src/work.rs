//! The unit of work: every write that records activity, queues an email or a webhook, or takes
//! an idempotency key goes through one. Writes with nothing to follow them (a company, a site, an
//! organization's or a webhook endpoint's settings) are single statements on the connection.
//!
//! A [`Work`] is a write transaction plus what the domain commands running in it leave for after
//! commit: the activity events to publish, and the email and webhook outbox rows to queue. The
//! functions that write those rows ([`crate::activity::record`], [`crate::outbox::email::enqueue`],
//! [`crate::webhook::events::emit`]) take the `Work`, so nothing written can be left out, and
//! the only way to commit hands everything to a [`Dispatch`] once the data is durable. A command
//! that fails drops its `Work`, which rolls back and dispatches nothing.
//!
//! Callers with one request to serve use [`run`] (or [`run_idempotent`]) with a [`Command`];
//! long-running workers that loop over batches use [`Work::begin`] and [`Work::commit`].

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, DatabaseTransaction, DbErr, SqlErr,
    TransactionTrait,
};
use serde_json::Value;
use uuid::Uuid;

use crate::entities::invitation_events;
use crate::{DomainError, idempotency};

/// What a committed unit of work leaves to do.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Activity events, in the order they were written.
    pub events: Vec<invitation_events::Model>,
    /// New email deliveries, due now.
    pub emails: Vec<Uuid>,
    /// New webhook deliveries with their due time.
    pub webhooks: Vec<(Uuid, DateTime<Utc>)>,
}

impl Outbox {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.emails.is_empty() && self.webhooks.is_empty()
    }
}

/// Publishes and queues what a unit of work wrote, after it committed. Failures are the
/// dispatcher's to log: the rows are durable, and the outbox sweepers pick up whatever was not
/// queued; subscribers recover missed events through `since` replay.
pub trait Dispatch: Sync {
    fn dispatch(&self, outbox: Outbox) -> impl Future<Output = ()> + Send;
}

/// Rows per multi-row INSERT in a unit of work (activity events, webhook deliveries): at up to
/// 16 values a row, well inside the bind-parameter limits of both databases (SQLite 32,766,
/// PostgreSQL 65,535).
pub(crate) const INSERT_CHUNK: usize = 1000;

/// A write transaction and the outbox its commands filled.
pub struct Work {
    txn: DatabaseTransaction,
    outbox: Mutex<Outbox>,
    /// SQLite only: the position the next event of this unit of work takes.
    next_position: Mutex<Option<i64>>,
}

impl Work {
    /// Begins a transaction that will write. On SQLite it starts `IMMEDIATE`, so a transaction
    /// that reads before it writes takes the write lock up front instead of failing with
    /// `SQLITE_BUSY` when it tries to upgrade; PostgreSQL ignores the option.
    pub async fn begin(db: &DatabaseConnection) -> Result<Self, DbErr> {
        let waiting = crate::pool::Waiting::start();
        let txn = db
            .begin_with_options(sea_orm::TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        drop(waiting);
        Ok(Self {
            txn,
            outbox: Mutex::default(),
            next_position: Mutex::default(),
        })
    }

    /// The transaction, for reads and for writes that leave nothing to publish.
    pub fn txn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Commits, then hands the outbox to `dispatch`.
    pub async fn commit(self, dispatch: &impl Dispatch) -> Result<(), DbErr> {
        let outbox = self
            .outbox
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        self.txn.commit().await?;
        if !outbox.is_empty() {
            dispatch.dispatch(outbox).await;
        }
        Ok(())
    }

    fn with_outbox(&self, f: impl FnOnce(&mut Outbox)) {
        f(&mut self.outbox.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The position a new event takes at insert: on SQLite the next one in line, because its
    /// single writer commits write transactions in the order they run (they start `IMMEDIATE`,
    /// so the write lock is held from the first statement). On PostgreSQL `None`: commits
    /// interleave there, and the sequencer gives positions once events are committed.
    pub(crate) async fn next_position(&self) -> Result<Option<i64>, DbErr> {
        if self.txn.get_database_backend() != DatabaseBackend::Sqlite {
            return Ok(None);
        }
        let cached = *self
            .next_position
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let position = match cached {
            Some(position) => position,
            None => crate::positions::next_position(&self.txn).await?,
        };
        *self
            .next_position
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(position + 1);
        Ok(Some(position))
    }

    /// [`Work::next_position`] without taking it, for a statement that numbers its events
    /// itself (an `INSERT … SELECT`); [`Work::advance_positions`] then takes as many as it wrote.
    pub(crate) async fn peek_position(&self) -> Result<Option<i64>, DbErr> {
        let next = self.next_position().await?;
        if let Some(position) = next {
            *self
                .next_position
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(position);
        }
        Ok(next)
    }

    /// Takes `count` positions from [`Work::peek_position`] on (SQLite; nothing on PostgreSQL).
    pub(crate) fn advance_positions(&self, count: i64) {
        let mut next = self
            .next_position
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(position) = next.as_mut() {
            *position += count;
        }
    }

    pub(crate) fn push_event(&self, event: invitation_events::Model) {
        self.with_outbox(|o| o.events.push(event));
    }

    pub(crate) fn push_email(&self, delivery_id: Uuid) {
        self.with_outbox(|o| o.emails.push(delivery_id));
    }

    pub(crate) fn push_webhook(&self, delivery_id: Uuid, due: DateTime<Utc>) {
        self.with_outbox(|o| o.webhooks.push((delivery_id, due)));
    }
}

/// One domain operation, run in a unit of work. `execute` may run twice under an idempotency
/// key (see [`run_idempotent`]), so it takes `&self`.
pub trait Command: Sync {
    type Output: Send;
    fn execute(
        &self,
        work: &Work,
    ) -> impl Future<Output = Result<Self::Output, DomainError>> + Send;
}

/// Runs `command` in its own unit of work: commit and dispatch on success, roll back on error.
pub async fn run<C: Command>(
    db: &DatabaseConnection,
    dispatch: &impl Dispatch,
    command: &C,
) -> Result<C::Output, DomainError> {
    let work = Work::begin(db).await?;
    let output = command.execute(&work).await?;
    work.commit(dispatch).await?;
    Ok(output)
}

/// A command output that can be stored under an idempotency key and rebuilt from what was
/// stored.
pub trait Stored: Sized + Send {
    fn to_stored(&self) -> Value;
    fn from_stored(
        work: &Work,
        organization_id: Uuid,
        stored: Value,
    ) -> impl Future<Output = Result<Self, DomainError>> + Send;
}

/// An idempotency key and the request it guards.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyKey<'a> {
    pub organization_id: Uuid,
    /// The operation's name: the same key may be used once per operation.
    pub scope: &'static str,
    pub key: &'a str,
    pub request: &'a Value,
}

/// [`run`] under an optional idempotency key: a repeated request returns the first result
/// (rebuilt from the stored response) and writes nothing; the same key with another request is
/// a `CONFLICT`; a racing duplicate loses on the unique index, rolls back, and returns the
/// winner's result.
pub async fn run_idempotent<C>(
    db: &DatabaseConnection,
    dispatch: &impl Dispatch,
    command: &C,
    key: Option<IdempotencyKey<'_>>,
) -> Result<C::Output, DomainError>
where
    C: Command,
    C::Output: Stored,
{
    let Some(key) = key else {
        return run(db, dispatch, command).await;
    };
    idempotency::check_key(key.key)?;
    for attempt in 0..2 {
        let work = Work::begin(db).await?;
        let (org, scope) = (key.organization_id, key.scope);
        if let Some(stored) =
            idempotency::lookup(work.txn(), org, scope, key.key, key.request).await?
        {
            let output = C::Output::from_stored(&work, org, stored).await?;
            work.commit(dispatch).await?;
            return Ok(output);
        }
        let output = command.execute(&work).await?;
        let response = output.to_stored();
        match idempotency::store(work.txn(), org, scope, key.key, key.request, response).await {
            Err(e) if attempt == 0 && is_unique_violation(&e) => continue,
            other => other?,
        }
        work.commit(dispatch).await?;
        return Ok(output);
    }
    Err(DomainError::Db(DbErr::Custom(
        "idempotency retry exhausted".into(),
    )))
}

fn is_unique_violation(e: &DomainError) -> bool {
    matches!(e, DomainError::Db(db) if matches!(db.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))))
}
