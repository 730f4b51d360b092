//! The job queues (send email, deliver webhook): Redis when configured, otherwise an embedded
//! SQLite file.
//!
//! Jobs carry ids only. The outbox row in the application database is the truth (see
//! `entity::outbox::email`); a job is a prompt to look at it, so losing one delays an email until the
//! sweeper finds the row, and running one twice sends nothing twice.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteStorage};
use chrono::{DateTime, Utc};
use sea_orm::sqlx::sqlite as sqlx_pool;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::metrics::{Metrics, QueueLabel};
use crate::origin::Origin;

/// Queue name. Named explicitly: the default is the Rust type name, and moving the type would
/// silently orphan queued jobs.
pub const SEND_EMAIL_QUEUE: &str = "invitations:send_email";
pub const DELIVER_WEBHOOK_QUEUE: &str = "invitations:deliver_webhook";

/// How often workers prove they are alive. Together with [`MISSED_HEARTBEATS`] this bounds how
/// long the jobs of a dead worker stay stuck before another worker takes them back.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);
pub(crate) const MISSED_HEARTBEATS: usize = 3;

/// Redis keeps idempotency keys until they expire. A day is far longer than any job waits, and
/// keeps the key set from growing with every email ever sent.
const REDIS_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

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

#[derive(Clone)]
pub(crate) enum Backend<T> {
    Sqlite(SqliteStorage<T>),
    Redis(RedisStorage<T>),
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

impl Queues {
    /// Deletes jobs that finished (done, or failed for good) more than `age` ago from both
    /// queues; returns how many. Only the backend's bookkeeping goes: the outbox rows in the
    /// application database are the record of what was sent. Jobs still waiting or running are
    /// never touched.
    pub async fn vacuum(&self, age: Duration) -> Result<u64, QueueError> {
        let fail = |e: &dyn std::fmt::Display| QueueError::Vacuum(e.to_string());
        let cutoff = i64::try_from(
            (std::time::SystemTime::now() - age)
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| fail(&e))?
                .as_secs(),
        )
        .map_err(|e| fail(&e))?;
        if let Some(pool) = &self.sqlite {
            // Every job is pushed with `max_attempts(1)`, so a Failed job is final too.
            let result = sea_orm::sqlx::query(
                "DELETE FROM Jobs WHERE status IN ('Done', 'Killed', 'Failed') \
                 AND done_at IS NOT NULL AND done_at <= ?",
            )
            .bind(cutoff)
            .execute(pool)
            .await
            .map_err(|e| fail(&e))?;
            return Ok(result.rows_affected());
        }
        let mut total = 0;
        if let Backend::Redis(storage) = &self.email {
            total += vacuum_redis(storage, cutoff).await?;
        }
        if let Backend::Redis(storage) = &self.webhooks {
            total += vacuum_redis(storage, cutoff).await?;
        }
        Ok(total)
    }
}

/// Drops one finished task's data, metadata and result, and its id from the done or dead set,
/// if it finished at or before the cutoff. KEYS: data hash, meta prefix, the set; ARGV: cutoff,
/// then the task ids.
const VACUUM_SCRIPT: &str = r"
local deleted = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local meta = KEYS[2] .. ':' .. id
  local done_at = tonumber(redis.call('HGET', meta, 'done_at'))
  if done_at == nil or done_at <= tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], id)
    redis.call('HDEL', KEYS[2] .. ':result', id)
    redis.call('DEL', meta)
    redis.call('SREM', KEYS[3], id)
    deleted = deleted + 1
  end
end
return deleted
";

/// apalis-redis keeps every finished task (data, metadata, and its id in the done or dead set)
/// forever, and its own vacuum reads the whole data hash in one blocking script. This walks the
/// two sets with `SSCAN` instead, a few hundred ids per script call.
async fn vacuum_redis<T>(storage: &RedisStorage<T>, cutoff: i64) -> Result<u64, QueueError> {
    let fail = |e: &dyn std::fmt::Display| QueueError::Vacuum(e.to_string());
    let config = storage.get_config();
    let mut conn = storage.clone().get_connection().clone();
    let script = redis::Script::new(VACUUM_SCRIPT);
    let mut total = 0;
    for set in [config.done_jobs_set(), config.dead_jobs_set()] {
        let mut cursor = 0u64;
        loop {
            let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
                .arg(&set)
                .arg(cursor)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await
                .map_err(|e| fail(&e))?;
            if !ids.is_empty() {
                let deleted: u64 = script
                    .key(config.job_data_hash())
                    .key(config.job_meta_hash())
                    .key(&set)
                    .arg(cutoff)
                    .arg(ids)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| fail(&e))?;
                total += deleted;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(total)
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

async fn connect_sqlite(path: &std::path::Path) -> Result<sqlx_pool::SqlitePool, QueueError> {
    let fail = |e: &dyn std::fmt::Display| QueueError::Connect(format!("{} ({e})", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir).await.map_err(|e| fail(&e))?;
    }
    // Pragmas on every connection instead of `SqliteStorage::setup`, which would also switch one
    // pooled connection to `synchronous = OFF` and risk losing queued jobs on a power cut.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .map_err(|e| fail(&e))?;
    // sqlx takes no lock around migrations on SQLite, so processes starting together on one
    // file would apply apalis' migrations twice (and fail): a lock file beside the queue makes
    // them take turns.
    let lock = migration_lock(path).await.map_err(|e| fail(&e))?;
    let migrated = SqliteStorage::<()>::migrations().run(&pool).await;
    drop(lock);
    migrated.map_err(|e| fail(&e))?;
    Ok(pool)
}

/// Holds an exclusive lock on `<queue file>.lock` until dropped.
async fn migration_lock(queue: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(queue.with_extension("db.lock"))?;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(std::io::Error::other)?
}

fn sqlite_storage<T>(pool: &sqlx_pool::SqlitePool, queue: &str) -> SqliteStorage<T> {
    let config = apalis_sqlite::Config::default()
        .queue(queue)
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS);
    SqliteStorage::new(pool).with_config(config)
}

/// How patient a Redis connection is.
#[derive(Debug, Clone, Copy)]
pub struct RedisPatience {
    /// A reply slower than this is an error, so a hung server cannot stall a caller forever.
    pub response_timeout: Duration,
    /// Reconnection attempts (with growing pauses) before a command fails.
    pub retries: usize,
}

impl RedisPatience {
    /// For the job queues: workers can wait.
    pub const QUEUE: Self = Self {
        response_timeout: Duration::from_secs(10),
        retries: 6,
    };
    /// For request paths (rate limits, the event bus): fail fast and fall back.
    pub const REQUEST: Self = Self {
        response_timeout: Duration::from_secs(3),
        retries: 1,
    };
}

/// Opens a self-reconnecting Redis connection and checks it with a `PING`; the queues, the rate
/// limiter and the event bus each hold one.
pub async fn connect_redis(
    url: &str,
    patience: RedisPatience,
) -> Result<ConnectionManager, QueueError> {
    let fail = |e: &dyn std::fmt::Display| QueueError::Connect(format!("Redis: {e}"));
    let client = apalis_redis::Client::open(url).map_err(|_| fail(&"invalid REDIS_URL"))?;
    let options = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(3)))
        .set_response_timeout(Some(patience.response_timeout))
        .set_number_of_retries(patience.retries);
    let connect = ConnectionManager::new_with_config(client, options);
    let mut conn = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .map_err(|_| fail(&"timed out"))?
        .map_err(|e| fail(&e))?;
    redis::cmd("PING")
        .query_async::<String>(&mut conn)
        .await
        .map_err(|e| fail(&e))?;
    Ok(conn)
}

fn redis_storage<T>(conn: ConnectionManager, prefix: &str, queue: &str) -> RedisStorage<T> {
    // apalis-redis's default tolerates 10 missed heartbeats (five minutes before a dead
    // worker's jobs are recovered); set both explicitly.
    let config = apalis_redis::Config::default()
        .queue(format!("{prefix}{queue}"))
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .idempotency_ttl(Some(REDIS_IDEMPOTENCY_TTL));
    RedisStorage::new(conn).with_config(config)
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
