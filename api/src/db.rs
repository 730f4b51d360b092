//! Database connection and migrations.

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::config::{ConfigError, Settings};

/// Connects to `DATABASE_URL`. SQLite gets WAL, a busy timeout and several connections (one
/// connection deadlocks code that uses the pool while a transaction is open).
pub async fn connect(settings: &Settings) -> Result<DatabaseConnection, ConfigError> {
    let url = settings.database_url.expose();
    let mut options = ConnectOptions::new(url.clone());
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    if settings.is_sqlite() {
        options
            .max_connections(settings.database_max_connections.min(8))
            .map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
    } else {
        options.max_connections(settings.database_max_connections);
    }
    let db = Database::connect(options).await.map_err(|e| {
        ConfigError::new("DATABASE_URL", format!("cannot connect ({})", describe(&e)))
    })?;
    // A pool connects lazily on some backends; prove the server answers now.
    db.execute_unprepared("SELECT 1").await.map_err(|e| {
        ConfigError::new("DATABASE_URL", format!("cannot connect ({})", describe(&e)))
    })?;
    Ok(db)
}

/// The error text without anything that could echo the URL (and its password).
fn describe(e: &sea_orm::DbErr) -> String {
    let text = e.to_string();
    match text.find("://") {
        Some(_) => "the server refused or could not be reached".to_owned(),
        None => text,
    }
}

/// Applies pending migrations. On PostgreSQL it holds a transaction-scoped advisory lock, so
/// replicas starting together migrate once and the others wait, then find nothing to do.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    use sea_orm::{DatabaseBackend, TransactionTrait};
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Migrator::up(db, None).await;
    }
    let txn = db.begin().await?;
    txn.execute_unprepared("SELECT pg_advisory_xact_lock(7466915301)")
        .await?;
    Migrator::up(&txn, None).await?;
    txn.commit().await
}
