//! Read-only statements on PostgreSQL without the pool's release ping.
//!
//! sqlx pings every connection its pool takes back, unconditionally (sqlx 0.9 has no option for
//! it): a second round trip for every statement, which wakes PostgreSQL's backend as well (the
//! pool's ping before use already only runs after 30 s idle). [`Reads`] keeps the
//! connections its statements used in a small stack of its own and hands them out again
//! without the ping; such a connection goes back to the pool (ping and all, so sqlx can still
//! check it) after an error, when its statement was abandoned half-way (a client went away),
//! when it sat unused longer than the pool's own ping-if-idle bound, once it has been held for
//! [`HOLD_AT_MOST`] (so the pool's lifetime rules still apply), or when the stack is full.
//!
//! Only reads go through here (resolvers, loaders, REST lookups), so a connection in the stack
//! never carries an open transaction. SQLite runs in-process with nothing to ping over a
//! network, so there the pool serves reads as it serves everything else.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use entity::DomainError;
use jobs::metrics::Metrics;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::{self, PgPool, Postgres};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseConnectionType, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, Statement,
};
use sea_query_sqlx::SqlxValues;
use uuid::Uuid;

use super::lookups::{AllLookups, Coalesced};

/// How long one connection serves reads before it goes back to the pool, whose lifetime and
/// health rules then apply to it again.
const HOLD_AT_MOST: Duration = Duration::from_secs(300);

/// The application pool for writes, plus the held connections for reads. sqlx's `close()`
/// waits for every connection the pool lent, so a pool that is to be closed must outlive no
/// `Reads` of it (the process ends without closing it today).
#[derive(Clone)]
pub struct Reads {
    db: DatabaseConnection,
    held: Option<Arc<Held>>,
}

pub(super) struct Held {
    pool: PgPool,
    /// Connections free to read on, the most recently used last.
    free: Mutex<Vec<Connection>>,
    /// The most the stack keeps: the rest of the pool stays free for writes.
    keep: usize,
    metrics: Arc<Metrics>,
    pub(super) lookups: AllLookups,
}

struct Connection {
    conn: PoolConnection<Postgres>,
    taken_at: Instant,
    used_at: Instant,
}

impl Reads {
    /// Reads for `db`; on PostgreSQL they hold at most half its connections (rounded down).
    pub fn new(db: DatabaseConnection, metrics: Arc<Metrics>) -> Self {
        let held = match &db.inner {
            DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
                let pool = db.get_postgres_connection_pool().clone();
                // A pool of one keeps nothing back: its connection must stay free for writes.
                let keep = pool.options().get_max_connections() as usize / 2;
                Some(Arc::new(Held {
                    pool,
                    free: Mutex::new(Vec::with_capacity(keep)),
                    keep,
                    metrics,
                    lookups: AllLookups::new(),
                }))
            }
            _ => None,
        };
        Self { db, held }
    }

    /// One object of the organization by id, as [`entity::scope::find_owned`]; on PostgreSQL
    /// the lookups of one kind that arrive together share a statement (see [`super::lookups`]).
    pub async fn find_owned<E: Coalesced>(
        &self,
        org: Uuid,
        id: Uuid,
    ) -> Result<E::Model, DomainError> {
        match &self.held {
            Some(held) => held.lookup::<E>(org, id).await,
            // Boxed, so that this future is the size of the coalesced lookup's, not of
            // sea-orm's query (kilobytes), when it is moved into the resolvers' futures.
            None => Box::pin(entity::scope::find_owned::<E>(&self.db, org, id)).await,
        }
    }
}

impl Held {
    /// A connection to read on: the most recently used free one, else one from the pool.
    async fn take(&self) -> Result<Connection, DbErr> {
        loop {
            let popped = self
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match popped {
                // Idle too long to trust without a ping: back to the pool, which pings it on
                // release, and on to the next one.
                Some(c) if c.used_at.elapsed() >= super::PING_IF_IDLE_FOR => drop(c),
                Some(c) => return Ok(c),
                None => break,
            }
        }
        let waiting = entity::pool::Waiting::start();
        let acquired = self.pool.acquire().await;
        drop(waiting);
        let conn = acquired.map_err(|e| match e {
            sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
            sqlx::Error::PoolClosed => {
                DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::ConnectionClosed)
            }
            e => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))),
        })?;
        let now = Instant::now();
        Ok(Connection {
            conn,
            taken_at: now,
            used_at: now,
        })
    }

    /// Keeps a connection whose statement ran to its end (so it is clean) for the next read;
    /// one held long enough, or one more than the stack keeps, goes back to the pool.
    fn give_back(&self, mut c: Connection) {
        if c.taken_at.elapsed() >= HOLD_AT_MOST {
            return;
        }
        c.used_at = Instant::now();
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < self.keep {
            free.push(c);
        }
    }

    /// Runs `run` on a read connection and times it as the pool's metric callback times the
    /// others. Should the caller stop waiting half-way, the connection is dropped with this
    /// future and so returns to the pool, whose release ping recovers or closes it.
    pub(super) async fn with_connection<T>(
        &self,
        run: impl AsyncFnOnce(&mut PoolConnection<Postgres>) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbErr> {
        let mut c = self.take().await?;
        let started = Instant::now();
        let result = run(&mut c.conn).await;
        self.metrics
            .db_statement_duration
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(rows) => {
                self.give_back(c);
                Ok(rows)
            }
            Err(e) => {
                self.metrics.db_statement_errors.inc();
                Err(DbErr::Query(RuntimeErr::SqlxError(Arc::new(e))))
            }
        }
    }

    /// Runs one read statement.
    async fn read<T>(
        &self,
        stmt: Statement,
        run: impl AsyncFnOnce(
            sqlx::query::Query<'_, Postgres, SqlxValues>,
            &mut PoolConnection<Postgres>,
        ) -> Result<T, sqlx::Error>,
    ) -> Result<T, DbErr> {
        // The statement is ours: its values move into the query, uncopied.
        let values = stmt.values.unwrap_or(sea_orm::Values(Vec::new()));
        let query = sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values));
        self.with_connection(async |c| run(query, c).await).await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Reads {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.db.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.db.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match &self.held {
            Some(held) => {
                let row: Option<PgRow> = held
                    .read(stmt, async |q, c| q.fetch_optional(&mut **c).await)
                    .await?;
                Ok(row.map(QueryResult::from))
            }
            None => self.db.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match &self.held {
            Some(held) => {
                let rows = held
                    .read(stmt, async |q, c| q.fetch_all(&mut **c).await)
                    .await?;
                Ok(rows.into_iter().map(QueryResult::from).collect())
            }
            None => self.db.query_all_raw(stmt).await,
        }
    }
}
