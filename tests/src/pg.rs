//! A fresh database per test: a new PostgreSQL database, or a temporary SQLite file.
//!
//! PostgreSQL comes from `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it is unreachable the test panics with
//! a message naming the URL — it never passes silently.

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

/// Which database engine a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// A fresh database on the PostgreSQL server of `TEST_DATABASE_URL`.
    Postgres,
    /// A fresh SQLite file in a temporary folder.
    Sqlite,
}

/// The default of `TEST_DATABASE_URL`.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The maintenance URL the test databases are created from: `TEST_DATABASE_URL` or
/// [`DEFAULT_ADMIN_URL`].
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its password replaced by `***`, for messages.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

async fn connect_admin(admin_url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let mut options = ConnectOptions::new(admin_url.to_owned());
    options
        .max_connections(1)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(options).await
}

enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite { dir: PathBuf },
}

/// A database that exists for one test and is removed when this value is dropped.
pub struct TestDatabase {
    backend: Backend,
    url: String,
    name: String,
    cleanup: Cleanup,
}

impl std::fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDatabase")
            .field("backend", &self.backend)
            .field("url", &redacted(&self.url))
            .finish()
    }
}

impl TestDatabase {
    /// A fresh database of `backend` (see [`TestDatabase::postgres`] and
    /// [`TestDatabase::sqlite`]).
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Postgres => Self::postgres().await,
            Backend::Sqlite => Self::sqlite(),
        }
    }

    /// Creates the database `t_<uuid simple>` on the server of [`admin_url`]; panics with a
    /// clear message (naming the URL) if PostgreSQL is unreachable or refuses.
    pub async fn postgres() -> Self {
        let admin_url = admin_url();
        let admin = connect_admin(&admin_url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for this test but is not reachable at {} \
                 (set TEST_DATABASE_URL, or run tests/run which starts it): {e}",
                redacted(&admin_url)
            )
        });
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
        {
            panic!(
                "cannot create test database {name} on {}: {e}",
                redacted(&admin_url)
            );
        }
        let _ = admin.close().await;
        let mut url = reqwest::Url::parse(&admin_url).unwrap_or_else(|e| {
            panic!(
                "TEST_DATABASE_URL {} is not a URL: {e}",
                redacted(&admin_url)
            )
        });
        url.set_path(&format!("/{name}"));
        Self {
            backend: Backend::Postgres,
            url: url.to_string(),
            name: name.clone(),
            cleanup: Cleanup::Postgres { admin_url, name },
        }
    }

    /// A database file in a new folder under the system temp dir (removed on drop);
    /// the URL is `sqlite://{path}?mode=rwc`, the file is created on first connect.
    pub fn sqlite() -> Self {
        let dir =
            std::env::temp_dir().join(format!("invitations-db-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| {
            panic!("cannot create the temporary folder {}: {e}", dir.display())
        });
        let file = dir.join("test.db");
        Self {
            backend: Backend::Sqlite,
            url: format!("sqlite://{}?mode=rwc", file.display()),
            name: file.display().to_string(),
            cleanup: Cleanup::Sqlite { dir },
        }
    }

    /// The connection URL of this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Which engine it is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The PostgreSQL database name (`t_…`), or the SQLite file path.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A new SeaORM connection pool to this database (no migrations applied).
    pub async fn connect(&self) -> DatabaseConnection {
        let mut options = ConnectOptions::new(self.url.clone());
        options.max_connections(4).sqlx_logging(false);
        Database::connect(options).await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to test database {}: {e}",
                redacted(&self.url)
            )
        })
    }
}

/// `DROP DATABASE … WITH (FORCE)` (PostgreSQL 13+), else terminate its sessions and drop.
async fn drop_postgres(admin_url: &str, name: &str) {
    let Ok(admin) = connect_admin(admin_url).await else {
        return;
    };
    let forced = admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
    if forced.is_err() {
        let _ = admin
            .execute_unprepared(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            ))
            .await;
        let _ = admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .await;
    }
    let _ = admin.close().await;
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                // Drop may run inside the test's runtime: clean up on a thread with its own
                // runtime, and wait for it (bounded) so the process does not exit first.
                let (admin_url, name) = (admin_url.clone(), name.clone());
                let (done, finished) = std::sync::mpsc::channel::<()>();
                let spawned = std::thread::Builder::new()
                    .name("drop-test-database".to_owned())
                    .spawn(move || {
                        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                        {
                            rt.block_on(async {
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(20),
                                    drop_postgres(&admin_url, &name),
                                )
                                .await;
                            });
                        }
                        let _ = done.send(());
                    });
                if spawned.is_ok() {
                    let _ = finished.recv_timeout(Duration::from_secs(25));
                }
            }
        }
    }
}
