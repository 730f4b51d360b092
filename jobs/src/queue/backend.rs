//! The two queue backends: opening them (the embedded SQLite file with apalis' migrations, or
//! Redis), each with the same heartbeat settings, and deleting what they keep of finished jobs.

use std::time::Duration;

use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::{SqliteConnectOptions, SqlitePoolOptions, SqliteStorage};
use sea_orm::sqlx::sqlite as sqlx_pool;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};

use super::{QueueError, Queues};

/// How often workers prove they are alive. Together with [`MISSED_HEARTBEATS`] this bounds how
/// long the jobs of a dead worker stay stuck before another worker takes them back.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(5);
pub(crate) const MISSED_HEARTBEATS: usize = 3;

/// Redis keeps idempotency keys until they expire. A day is far longer than any job waits, and
/// keeps the key set from growing with every email ever sent.
const REDIS_IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub(crate) enum Backend<T> {
    Sqlite(SqliteStorage<T>),
    Redis(RedisStorage<T>),
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

pub(super) async fn connect_sqlite(
    path: &std::path::Path,
) -> Result<sqlx_pool::SqlitePool, QueueError> {
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
    // sqlx takes no lock around migrations on SQLite, so processes starting together on one
    // file would apply apalis' migrations twice (and fail): a lock file beside the queue makes
    // them take turns. The first connection is opened under it too: switching a new file to
    // WAL takes an exclusive lock that SQLite may refuse at once ("database is locked"), busy
    // timeout or not, while another process is doing the same.
    let lock = migration_lock(path).await.map_err(|e| fail(&e))?;
    let opened = async {
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| fail(&e))?;
        SqliteStorage::<()>::migrations()
            .run(&pool)
            .await
            .map_err(|e| fail(&e))?;
        Ok(pool)
    }
    .await;
    drop(lock);
    opened
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

pub(super) fn sqlite_storage<T>(pool: &sqlx_pool::SqlitePool, queue: &str) -> SqliteStorage<T> {
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

pub(super) fn redis_storage<T>(
    conn: ConnectionManager,
    prefix: &str,
    queue: &str,
) -> RedisStorage<T> {
    // apalis-redis's default tolerates 10 missed heartbeats (five minutes before a dead
    // worker's jobs are recovered); set both explicitly.
    let config = apalis_redis::Config::default()
        .queue(format!("{prefix}{queue}"))
        .heartbeat_interval(HEARTBEAT)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .idempotency_ttl(Some(REDIS_IDEMPOTENCY_TTL));
    RedisStorage::new(conn).with_config(config)
}
