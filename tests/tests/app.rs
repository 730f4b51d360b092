//! Starting the application for a test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use api::config::Settings;
use api::startup::{self, Roles};
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use serde_json::json;
use tests::graphql::Gql;
use tests::pg::{Backend, TestDatabase};
use tests::smtp::SmtpServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub const SECRET_KEY: &str = "test-secret-key-that-is-long-enough-0123456789";

/// Runs one async test body once per backend: `both!(name, |backend| async move { … })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                ($body)(tests::pg::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                ($body)(tests::pg::Backend::Postgres).await
            }
        }
    };
}

pub struct TestApp {
    pub url: String,
    pub db: DatabaseConnection,
    /// What the app's units of work commit through (publishes and queues), for tests that run
    /// domain commands directly.
    pub dispatcher: jobs::dispatch::Dispatcher,
    pub org_id: Uuid,
    pub api_key: String,
    pub smtp: SmtpServer,
    pub backend: Backend,
    pub data_dir: PathBuf,
    pub env: HashMap<String, String>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _database: TestDatabase,
}

/// A fresh temporary folder, removed by the test's end of life (best effort).
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("invitations-test-{}", Uuid::now_v7().simple()));
    // 0700, as the app wants its data folder: it warns about a looser one at every start.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .unwrap();
    dir
}

/// The environment the app gets: its own database, data folder, Redis prefix and SMTP server.
pub fn base_env(
    database: &TestDatabase,
    data_dir: &Path,
    smtp: &SmtpServer,
) -> HashMap<String, String> {
    let mut env = HashMap::from([
        ("DATABASE_URL".to_owned(), database.url().to_owned()),
        ("DATA_DIR".to_owned(), data_dir.display().to_string()),
        ("SECRET_KEY".to_owned(), SECRET_KEY.to_owned()),
        ("SMTP_URL".to_owned(), smtp.url()),
        ("LOG_LEVEL".to_owned(), "warn".to_owned()),
        ("EXPIRY_INTERVAL_SECONDS".to_owned(), "1".to_owned()),
        ("API_KEY_CACHE_SECONDS".to_owned(), "1".to_owned()),
        ("DATABASE_MAX_CONNECTIONS".to_owned(), "8".to_owned()),
    ]);
    if database.backend() == Backend::Postgres {
        env.insert("REDIS_URL".to_owned(), tests::redis_env::redis_url());
        env.insert(
            "REDIS_KEY_PREFIX".to_owned(),
            tests::redis_env::unique_prefix(),
        );
    }
    env
}

pub async fn spawn(backend: Backend) -> TestApp {
    spawn_with(backend, |_| {}).await
}

/// Starts the app with `tweak` applied to its environment.
pub async fn spawn_with(
    backend: Backend,
    tweak: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    spawn_roles(
        backend,
        tweak,
        Roles {
            http: true,
            workers: true,
        },
    )
    .await
}

/// The in-process apps' warnings and errors go to the output of the test that started them
/// (the harness captures what a test's threads print, and shows it when the test fails), so a
/// failure comes with what the server logged. The first app installs it for the whole test
/// binary; later calls find it installed and change nothing.
fn capture_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("warn")
        .with_test_writer()
        .with_ansi(false)
        .try_init();
}

/// Starts only what `roles` asks for (e.g. no workers, so nothing runs SQL in the background).
pub async fn spawn_roles(
    backend: Backend,
    tweak: impl FnOnce(&mut HashMap<String, String>),
    roles: Roles,
) -> TestApp {
    capture_logs();
    let database = TestDatabase::new(backend).await;
    if backend == Backend::Postgres {
        tests::redis_env::require_redis(&tests::redis_env::redis_url()).await;
    }
    let smtp = SmtpServer::start().await;
    let data_dir = temp_dir();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut env = base_env(&database, &data_dir, &smtp);
    env.insert(
        "PUBLIC_BASE_URL".to_owned(),
        format!("http://127.0.0.1:{port}"),
    );
    tweak(&mut env);
    let settings = Settings::from_lookup(&|k| env.get(k).cloned()).unwrap();
    let app = startup::build(settings, Some(listener), roles)
        .await
        .unwrap();
    let db = app.state.store.db.clone();
    let dispatcher = app.state.store.dispatcher.clone();
    let org = entity::organization::create(&db, "Acme Energy")
        .await
        .unwrap();
    let key = entity::organization::create_api_key(&db, org.id, "test-key")
        .await
        .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        url: format!("http://127.0.0.1:{port}"),
        db,
        dispatcher,
        org_id: org.id,
        api_key: key.key,
        smtp,
        backend,
        data_dir,
        env,
        stop: Some(stop),
        task: Some(task),
        _database: database,
    }
}

/// The HTTP API without workers (another process runs them, or nothing must run in the
/// background).
pub async fn spawn_api_only(
    backend: Backend,
    tweak: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    spawn_roles(
        backend,
        tweak,
        Roles {
            http: true,
            workers: false,
        },
    )
    .await
}

/// Creates a company through the API and returns its id.
pub async fn create_company(gql: &Gql, name: &str) -> String {
    let r = gql
        .query(
            "mutation($input: CreateCompanyInput!) { createCompany(input: $input) { id name displayName } }",
            json!({ "input": { "name": name, "displayName": format!("{name} Ltd") } }),
        )
        .await;
    r.data()["createCompany"]["id"].as_str().unwrap().to_owned()
}

/// Creates a contributor invitation through the API; returns its id and token.
pub async fn invite(gql: &Gql, company: &str, input: serde_json::Value) -> (String, String) {
    let r = gql
        .query(
            "mutation($c: ID!, $i: InvitationInput!) { createContributorInvitation(companyId: $c, input: $i) { id token } }",
            json!({ "c": company, "i": input }),
        )
        .await;
    let inv = &r.data()["createContributorInvitation"];
    (
        inv["id"].as_str().unwrap().to_owned(),
        inv["token"].as_str().unwrap().to_owned(),
    )
}

/// Creates a single-use reconnect invitation for a connection; returns its id and token.
pub async fn reconnect_invite(gql: &Gql, connection: &str) -> (String, String) {
    let r = gql
        .query(
            "mutation($c: ID!) { createReconnectInvitation(connectionId: $c, input: { maxUses: 1 }) { id token } }",
            json!({ "c": connection }),
        )
        .await;
    let inv = &r.data()["createReconnectInvitation"];
    (
        inv["id"].as_str().unwrap().to_owned(),
        inv["token"].as_str().unwrap().to_owned(),
    )
}

/// A connection of `company` at "Gridco" signed in as `old` (with `mfa` forwarding), registered
/// by the organization; returns its id.
pub async fn gridco_connection(gql: &Gql, company: &str, mfa: bool) -> String {
    let r = gql
        .query(
            "mutation($c: ID!, $m: Boolean) { createConnection(companyId: $c, input: { providerName: \"Gridco\", utilityUsername: \"old\", utilityPassword: \"old-pass\", mfaForwarding: $m }) { id } }",
            json!({ "c": company, "m": mfa }),
        )
        .await;
    r.data()["createConnection"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The password every test submission uses.
pub const PASSWORD: &str = "correct horse battery staple";

/// A complete `ConnectionInput` signing in as `username`.
pub fn details(username: &str) -> serde_json::Value {
    json!({ "providerUrl": "https://grid.example.com", "country": "FR", "utilityTypes": ["GAS"],
            "utilityUsername": username, "utilityPassword": PASSWORD })
}

/// Another process's worth of workers on `api`'s database, Redis prefix and SMTP server.
pub async fn spawn_worker(
    api: &TestApp,
    tweak: impl FnOnce(&mut HashMap<String, String>),
) -> Worker {
    spawn_peer(
        api,
        tweak,
        Roles {
            http: false,
            workers: true,
        },
    )
    .await
}

/// Another replica sharing `api`'s database, Redis prefix and SMTP server; its HTTP address
/// (when it serves HTTP) is [`Worker::url`].
pub async fn spawn_peer(
    api: &TestApp,
    tweak: impl FnOnce(&mut HashMap<String, String>),
    roles: Roles,
) -> Worker {
    let mut env = api.env.clone();
    tweak(&mut env);
    let settings = Settings::from_lookup(&|k| env.get(k).cloned()).unwrap();
    let listener = if roles.http {
        Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let app = startup::build(settings, listener, roles).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Worker { stop, task, url }
}

pub struct Worker {
    pub url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Worker {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

impl TestApp {
    /// The answer to `query` and the fewest SQL statements it cost over three tries: on a loaded
    /// machine one batching window of a DataLoader can be split in two, which is not what a
    /// statement-count test is about (an N+1 costs more on every try).
    pub async fn fewest_statements(
        &self,
        gql: &tests::graphql::Gql,
        query: &str,
        variables: serde_json::Value,
    ) -> (tests::graphql::GqlResponse, u64) {
        let mut fewest = u64::MAX;
        let mut answer = None;
        for _ in 0..3 {
            let before = self.statements().await;
            answer = Some(gql.query(query, variables.clone()).await);
            fewest = fewest.min(self.statements().await - before);
        }
        (answer.unwrap(), fewest)
    }

    /// [`SmtpServer::wait_for`] on this app's SMTP server; when the messages do not come, the
    /// failure also lists the app's email deliveries (written, leased, failed or never queued).
    pub async fn wait_for_mail(
        &self,
        n: usize,
        timeout: std::time::Duration,
    ) -> Vec<tests::smtp::Captured> {
        match self.smtp.try_wait_for(n, timeout).await {
            Ok(messages) => messages,
            Err(why) => {
                use sea_orm::EntityTrait;
                let deliveries = entity::entities::email_deliveries::Entity::find()
                    .all(&self.db)
                    .await
                    .map(|rows| {
                        rows.iter()
                            .map(|d| {
                                format!(
                                    "\n  {} {:?} to {:?}: {:?}, {} attempt(s), last error {:?}, \
                                     next attempt {}, created {}, sent {:?}",
                                    d.id,
                                    d.kind,
                                    d.recipient,
                                    d.status,
                                    d.attempts,
                                    d.last_error,
                                    d.next_attempt_at,
                                    d.created_at,
                                    d.sent_at,
                                )
                            })
                            .collect::<String>()
                    });
                panic!(
                    "{why}\nthe app's email deliveries at {}: {deliveries:?}",
                    chrono::Utc::now()
                );
            }
        }
    }

    /// SQL statements the app's pool has run (`/metrics`).
    pub async fn statements(&self) -> u64 {
        let count = tests::scrape::scrape(&self.url)
            .await
            .value("invitations_db_statement_duration_seconds_count", &[]);
        count as u64
    }

    /// A GraphQL client with this app's API key.
    pub fn gql(&self) -> Gql {
        Gql::new(&self.url).with_api_key(&self.api_key)
    }

    /// A GraphQL client without credentials (recipient operations, auth checks).
    pub fn anon(&self) -> Gql {
        Gql::new(&self.url)
    }

    /// A second organization with its own key, for isolation tests.
    pub async fn other_org(&self) -> (Uuid, Gql) {
        let org = entity::organization::create(&self.db, "Other Org")
            .await
            .unwrap();
        let key = entity::organization::create_api_key(&self.db, org.id, "other")
            .await
            .unwrap();
        (org.id, Gql::new(&self.url).with_api_key(&key.key))
    }

    /// A company of this app's organization, inserted directly (for domain-level tests).
    pub async fn company(&self, name: &str) -> entity::entities::companies::Model {
        insert_company(&self.db, self.org_id, name).await
    }

    /// Stops the server and workers and waits for them to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

pub async fn insert_company(
    db: &DatabaseConnection,
    org: Uuid,
    name: &str,
) -> entity::entities::companies::Model {
    entity::entities::companies::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org),
        name: Set(name.to_owned()),
        display_name: Set(None),
        public_id: Set(Uuid::now_v7().simple().to_string()),
        magic_link_secret_hash: Set(None),
        magic_link_secret_sealed: Set(None),
        created_at: Set(entity::now()),
    }
    .insert(db)
    .await
    .unwrap()
}

/// Path of the `invitations` binary, built once per test run.
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
            let mut build = std::process::Command::new(cargo);
            build.args(["build", "--quiet", "--workspace", "--bins"]);
            // Under `cargo test` this process has the test crate's variables. Passed on, they
            // look like a changed environment to build scripts that read them (ring's reads
            // CARGO_MANIFEST_DIR): half the tree would be rebuilt here, a minute of both cores
            // in the middle of the tests, and again by the next plain `cargo build`.
            for (key, _) in std::env::vars_os() {
                if key.to_str().is_some_and(set_by_cargo_for_tests) {
                    build.env_remove(key);
                }
            }
            let status = build
                .status()
                .expect("cargo build of the invitations binary");
            assert!(status.success(), "building the invitations binary failed");
            // target/debug/deps/e2e-… -> target/debug/invitations
            let exe = std::env::current_exe().unwrap();
            let dir = exe.parent().and_then(Path::parent).unwrap();
            let bin = dir.join("invitations");
            assert!(bin.exists(), "{} is missing", bin.display());
            bin
        })
        .clone()
}

/// Whether cargo sets `name` for the crate it builds or tests, rather than taking it from the
/// user's environment.
fn set_by_cargo_for_tests(name: &str) -> bool {
    ["CARGO_PKG_", "CARGO_BIN_EXE_"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
        || matches!(
            name,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_TARGET_TMPDIR"
                | "CARGO_RUSTC_CURRENT_DIR"
                | "OUT_DIR"
        )
}

/// Runs the binary with exactly `env` (plus PATH) and `args`.
pub fn run_binary(env: &HashMap<String, String>, args: &[&str]) -> Output {
    std::process::Command::new(binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .output()
        .unwrap()
}
