//! The job queues (send email, deliver webhook): Redis when configured, otherwise an embedded
//! SQLite file.
//!
//! Jobs carry ids only. The outbox row in the application database is the truth (see
//! `entity::outbox::email`); a job is a prompt to look at it, so losing one delays an email until the
//! sweeper finds the row, and running one twice sends nothing twice.

use std::path::PathBuf;
use std::sync::Arc;

use apalis::prelude::{TaskBuilder, TaskSink};
use chrono::{DateTime, Utc};
use sea_orm::sqlx::sqlite as sqlx_pool;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::metrics::{Metrics, QueueLabel};
use crate::origin::Origin;

mod backend;

pub(crate) use backend::Backend;
pub use backend::{RedisPatience, connect_redis};
use backend::{connect_sqlite, redis_storage, sqlite_storage};

/// Queue name. Named explicitly: the default is the Rust type name, and moving the type would
/// silently orphan queued jobs.
pub const SEND_EMAIL_QUEUE: &str = "invitations:send_email";
pub const DELIVER_WEBHOOK_QUEUE: &str = "invitations:deliver_webhook";

/// Send (or give up on) email deliveries: those a unit of work wrote (up to
/// [`JOB_BATCH`]), or those whose retry is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BatchWire")]
pub struct SendEmail {
    pub delivery_ids: Vec<Uuid>,
    #[serde(flatten)]
    pub origin: Origin,
}

/// Make one attempt at each of up to [`JOB_BATCH`] webhook deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "BatchWire")]
pub struct DeliverWebhook {
    pub delivery_ids: Vec<Uuid>,
    #[serde(flatten)]
    pub origin: Origin,
}

/// Deliveries per job (email or webhook): one job for a bulk create instead of one per
/// message, so fetching and acknowledging jobs costs little next to sending.
pub const JOB_BATCH: usize = 100;

/// What a queued job of either kind may hold: jobs queued before batching carry one
/// `delivery_id`.
#[derive(Deserialize)]
struct BatchWire {
    #[serde(default)]
    delivery_ids: Vec<Uuid>,
    #[serde(default)]
    delivery_id: Option<Uuid>,
    #[serde(flatten)]
    origin: Origin,
}

impl BatchWire {
    fn ids(mut self) -> (Vec<Uuid>, Origin) {
        self.delivery_ids.extend(self.delivery_id);
        (self.delivery_ids, self.origin)
    }
}

impl From<BatchWire> for SendEmail {
    fn from(wire: BatchWire) -> Self {
        let (delivery_ids, origin) = wire.ids();
        Self {
            delivery_ids,
            origin,
        }
    }
}

impl From<BatchWire> for DeliverWebhook {
    fn from(wire: BatchWire) -> Self {
        let (delivery_ids, origin) = wire.ids();
        Self {
            delivery_ids,
            origin,
        }
    }
}

#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// `redis://…`; `None` uses the SQLite file at `sqlite_path`.
    pub redis_url: Option<String>,
    /// Prepended to the Redis queue name, so deployments (and tests) can share a server.
    pub redis_prefix: String,
    /// The embedded queue's own database file, never the application database: apalis adds
    /// its own tables and migrations there.
    pub sqlite_path: PathBuf,
    /// Counts what is queued.
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The queue backend could not be opened. The text never contains the URL.
    #[error("cannot open the job queue: {0}")]
    Connect(String),
    #[error("cannot enqueue job: {0}")]
    Push(String),
    #[error("cannot delete finished jobs: {0}")]
    Vacuum(String),
}

/// Handles to the queues; cheap to clone.
#[derive(Clone)]
pub struct Queues {
    pub(crate) email: Backend<SendEmail>,
    pub(crate) webhooks: Backend<DeliverWebhook>,
    /// The embedded queue's pool (both queues share one file), for [`Queues::vacuum`].
    pub(crate) sqlite: Option<sqlx_pool::SqlitePool>,
    pub(crate) metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.email {
            Backend::Sqlite(_) => "Queues::Sqlite",
            Backend::Redis(_) => "Queues::Redis",
        })
    }
}

impl Queues {
    pub async fn connect(config: QueueConfig) -> Result<Self, QueueError> {
        Ok(match &config.redis_url {
            Some(url) => {
                let conn = connect_redis(url, RedisPatience::QUEUE).await?;
                let prefix = &config.redis_prefix;
                Self {
                    email: Backend::Redis(redis_storage(conn.clone(), prefix, SEND_EMAIL_QUEUE)),
                    webhooks: Backend::Redis(redis_storage(conn, prefix, DELIVER_WEBHOOK_QUEUE)),
                    sqlite: None,
                    metrics: config.metrics.clone(),
                }
            }
            None => {
                let pool = connect_sqlite(&config.sqlite_path).await?;
                Self {
                    email: Backend::Sqlite(sqlite_storage(&pool, SEND_EMAIL_QUEUE)),
                    webhooks: Backend::Sqlite(sqlite_storage(&pool, DELIVER_WEBHOOK_QUEUE)),
                    sqlite: Some(pool),
                    metrics: config.metrics.clone(),
                }
            }
        })
    }

    /// Queues the first send of deliveries, [`JOB_BATCH`] to a job. Call it after the
    /// transaction that wrote the rows commits; if it fails, the sweeper queues the rows later,
    /// so callers may log and go on.
    pub async fn enqueue_emails(&self, delivery_ids: &[Uuid]) -> Result<(), QueueError> {
        for batch in delivery_ids.chunks(JOB_BATCH) {
            let job = SendEmail {
                delivery_ids: batch.to_vec(),
                origin: Origin::here(),
            };
            // The first id is new with this batch, so it names the batch.
            let key = batch[0].to_string();
            push(&self.email, TaskBuilder::new(job), key).await?;
            self.count(SEND_EMAIL_QUEUE);
        }
        Ok(())
    }

    /// Queues email deliveries to run once they are due (their `next_attempt_at`), see
    /// [`batches`].
    pub(crate) async fn requeue(&self, due: &[(Uuid, DateTime<Utc>)]) -> Result<(), QueueError> {
        for (delivery_ids, key, at) in batches(due) {
            let job = SendEmail {
                delivery_ids,
                origin: Origin::here(),
            };
            schedule(&self.email, job, key, at).await?;
            self.count(SEND_EMAIL_QUEUE);
        }
        Ok(())
    }

    /// Queues attempts at webhook deliveries for their `next_attempt_at`, batched and keyed
    /// like [`Queues::requeue`].
    pub(crate) async fn requeue_webhooks(
        &self,
        due: &[(Uuid, DateTime<Utc>)],
    ) -> Result<(), QueueError> {
        for (delivery_ids, key, at) in batches(due) {
            let job = DeliverWebhook {
                delivery_ids,
                origin: Origin::here(),
            };
            schedule(&self.webhooks, job, key, at).await?;
            self.count(DELIVER_WEBHOOK_QUEUE);
        }
        Ok(())
    }

    /// A job pushed to `queue` (a key the backend already held counts too: the push was asked
    /// for).
    fn count(&self, queue: &'static str) {
        self.metrics
            .jobs_enqueued
            .get_or_create(&QueueLabel { queue })
            .inc();
    }
}

/// Splits due rows into jobs of [`JOB_BATCH`], each with its key and the time it runs: when
/// the last of its rows is due. The key names the rows' state, not just the rows: a row due
/// again after a failure or an expired lease needs a new job, while the worker's follow-up and
/// every replica's sweeper asking for the same state must not pile up copies. (Both backends
/// keep the keys of finished jobs, so a key per row alone would block every later attempt.)
fn batches(
    due: &[(Uuid, DateTime<Utc>)],
) -> impl Iterator<Item = (Vec<Uuid>, String, DateTime<Utc>)> + '_ {
    due.chunks(JOB_BATCH).map(|batch| {
        let (first, first_due) = batch[0];
        let last_due = batch.iter().map(|(_, at)| *at).max().unwrap_or(first_due);
        let mut key = format!("{first}@{}", first_due.timestamp_micros());
        if batch.len() > 1 {
            key.push_str(&format!("+{}", batch.len()));
        }
        (batch.iter().map(|(id, _)| *id).collect(), key, last_due)
    })
}

/// Queues `job` under `key` to run once it is due at `due`.
async fn schedule<T>(
    backend: &Backend<T>,
    job: T,
    key: String,
    due: DateTime<Utc>,
) -> Result<(), QueueError>
where
    T: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static,
{
    // Backends schedule in whole seconds; rounding down would run the job before the row is
    // due, and it would find nothing to do.
    let second = due.timestamp() + i64::from(due.timestamp_subsec_nanos() > 0);
    let task = TaskBuilder::new(job).run_at_timestamp(u64::try_from(second).unwrap_or_default());
    push(backend, task, key).await
}

async fn push<T>(
    backend: &Backend<T>,
    task: TaskBuilder<T>,
    idempotency_key: String,
) -> Result<(), QueueError>
where
    T: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static,
{
    // One run per job: retries are new jobs on the row's schedule, never SQLite's immediate
    // re-fetch of a failed job (Redis ignores this setting).
    let task = task
        .max_attempts(1)
        .idempotency_key(idempotency_key)
        .build();
    let pushed = match backend {
        Backend::Sqlite(storage) => storage
            .clone()
            .push_task(task)
            .await
            .map_err(|e| e.to_string()),
        Backend::Redis(storage) => storage
            .clone()
            .push_task(task)
            .await
            .map_err(|e| e.to_string()),
    };
    pushed.map_err(QueueError::Push)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn jobs_of_either_shape_decode() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let batch: SendEmail =
            serde_json::from_value(serde_json::json!({ "delivery_ids": [a, b] })).unwrap();
        assert_eq!(batch.delivery_ids, [a, b]);
        // Queued before jobs carried batches.
        let single: SendEmail =
            serde_json::from_value(serde_json::json!({ "delivery_id": a })).unwrap();
        assert_eq!(single.delivery_ids, [a]);
        let round_trip: SendEmail =
            serde_json::from_value(serde_json::to_value(&batch).unwrap()).unwrap();
        assert_eq!(round_trip, batch);

        let hooks: DeliverWebhook =
            serde_json::from_value(serde_json::json!({ "delivery_ids": [a, b] })).unwrap();
        assert_eq!(hooks.delivery_ids, [a, b]);
        // A deliver-webhook job from before batching, origin fields included.
        let old: DeliverWebhook = serde_json::from_value(serde_json::json!({
            "delivery_id": b, "enqueued_at_ms": 1_796_000_000_000_u64
        }))
        .unwrap();
        assert_eq!(old.delivery_ids, [b]);
        assert_eq!(old.origin.enqueued_at_ms, Some(1_796_000_000_000));
        let round_trip: DeliverWebhook =
            serde_json::from_value(serde_json::to_value(&hooks).unwrap()).unwrap();
        assert_eq!(round_trip, hooks);
    }
}
