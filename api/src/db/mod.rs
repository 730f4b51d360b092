//! Database connection and migrations.

mod lookups;
mod reads;
pub use lookups::Coalesced;
pub use reads::Reads;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::postgres::{PgConnectOptions, PgSslMode};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::config::{ConfigError, Settings};

/// Prepared statements kept per connection. The list and its nested pages vary their text
/// with the number of ids they are given (1 to 100), so the cache must hold all of those
/// beside the point lookups and the writes, or hot statements get parsed again.
const STATEMENT_CACHE: usize = 512;

/// A pooled connection idle at least this long is pinged before use; busy ones are not. (sqlx
/// still pings every connection it takes back, so a statement on the pool costs two round
/// trips; reads skip that one too, see [`Reads`].)
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(30);

/// Connects to `DATABASE_URL`. SQLite gets WAL, a busy timeout and several connections (one
/// connection deadlocks code that uses the pool while a transaction is open).
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, ConfigError> {
    open(settings, settings.database_max_connections).await
}

/// One PostgreSQL connection of its own for the live-activity sequencer, so its runs never wait
/// for the request pool (and are not counted as the application's statements). `None` on
/// SQLite, where events need no sequencer.
pub async fn connect_sequencer(
    settings: &Settings,
) -> Result<Option<DatabaseConnection>, ConfigError> {
    if settings.is_sqlite() {
        return Ok(None);
    }
    open(settings, 1).await.map(Some)
}

async fn open(settings: &Settings, pool_size: u32) -> Result<DatabaseConnection, ConfigError> {
    let url = settings.database_url.expose();
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false);
    if settings.is_sqlite() {
        options
            .max_connections(pool_size.min(8))
            .map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    .statement_cache_capacity(STATEMENT_CACHE)
            });
    } else {
        let tls = default_tls(url, std::env::var_os("PGSSLMODE").is_some());
        options
            .max_connections(pool_size)
            .map_sqlx_postgres_opts(move |o: PgConnectOptions| {
                let o = o.statement_cache_capacity(STATEMENT_CACHE);
                match tls {
                    Some(mode) => o.ssl_mode(mode),
                    None => o,
                }
            });
    }
    // Not kept as the cause: a driver error's text may echo the URL, password and all, so only
    // what `describe` lets through is said.
    let db = Database::connect(options).await.map_err(|e| {
        ConfigError::new("DATABASE_URL", format!("cannot connect ({})", describe(&e)))
    })?;
    // A pool connects lazily on some backends; prove the server answers now.
    db.execute_unprepared("SELECT 1").await.map_err(|e| {
        ConfigError::new("DATABASE_URL", format!("cannot connect ({})", describe(&e)))
    })?;
    Ok(db)
}

/// TLS to PostgreSQL when neither the URL's `sslmode` nor `PGSSLMODE` says: none to a server
/// on this machine (loopback or a Unix socket), where it only costs a handshake and
/// encryption, and `require` to any other, as production expects. Verifying the server's
/// certificate is chosen in the URL (`sslmode=verify-full&sslrootcert=…`).
fn default_tls(url: &str, env_mode: bool) -> Option<PgSslMode> {
    let parsed = url::Url::parse(url).ok()?;
    if env_mode || parsed.query_pairs().any(|(k, _)| k == "sslmode") {
        return None;
    }
    let socket = parsed.query_pairs().any(|(k, _)| k == "host");
    let local = match parsed.host() {
        None => true,
        // `postgres:` is not a scheme the URL standard knows, so addresses stay text.
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost")
                || d.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
    };
    Some(if socket || local {
        PgSslMode::Disable
    } else {
        PgSslMode::Require
    })
}

/// The error text without anything that could echo the URL (and its password).
fn describe(e: &sea_orm::DbErr) -> String {
    let text = e.to_string();
    match text.find("://") {
        Some(_) => "the server refused or could not be reached".to_owned(),
        None => text,
    }
}

/// Applies pending migrations in one transaction that holds the database's write lock from the
/// start: on PostgreSQL a transaction-scoped advisory lock, on SQLite an `IMMEDIATE`
/// transaction. Processes starting together migrate once; the others wait, then find nothing
/// to do.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    let txn = write_locked(db).await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}

/// A transaction that holds the database's write lock (see [`migrate`]); start-up work that
/// must happen once however many processes start runs inside one.
pub async fn write_locked(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{DatabaseBackend, TransactionTrait};
    let txn = db
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?;
    if db.get_database_backend() == DatabaseBackend::Postgres {
        txn.execute_unprepared("SELECT pg_advisory_xact_lock(7466915301)")
            .await?;
    }
    Ok(txn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_defaults_by_where_the_server_is() {
        // PgSslMode has no PartialEq: compare its Debug form.
        let mode = |url: &str| format!("{:?}", default_tls(url, false));
        assert_eq!(mode("postgres://u@127.0.0.1:5432/db"), "Some(Disable)");
        assert_eq!(mode("postgres://u@localhost/db"), "Some(Disable)");
        assert_eq!(mode("postgres://u@[::1]/db"), "Some(Disable)");
        assert_eq!(
            mode("postgres://u@db/db?host=/var/run/postgresql"),
            "Some(Disable)"
        );
        assert_eq!(mode("postgres://u@db.internal:5432/db"), "Some(Require)");
        assert_eq!(mode("postgres://u@10.0.0.5/db"), "Some(Require)");
        // What the operator wrote wins.
        assert_eq!(mode("postgres://u@db.internal/db?sslmode=disable"), "None");
        assert_eq!(
            mode("postgres://u@127.0.0.1/db?sslmode=verify-full"),
            "None"
        );
        assert!(default_tls("postgres://u@db.internal/db", true).is_none());
    }
}
