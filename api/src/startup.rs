//! `build` turns settings into a ready application; `App::run` serves until shutdown. Tests call
//! both with a listener on port 0.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use entity::crypto::Keyring;
use entity::organization::NewApiKey;
use jobs::conf::ExposeSecret;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;

use crate::config::{ConfigError, Settings};
use crate::error::StartupError;
use crate::graphql::{
    self,
    endpoint::{Endpoint, GraphqlEndpoint},
};
use crate::state::{AppState, Guards, Outbound, Store};
use crate::{db, health};

/// Which parts of the process to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub http: bool,
    pub workers: bool,
}

pub struct App {
    pub state: AppState,
    listener: Option<TcpListener>,
    roles: Roles,
}

/// Everything both the API and the workers need: checked settings, the database (migrated),
/// Redis when configured.
pub async fn prepare(mut settings: Settings) -> Result<AppState, StartupError> {
    settings.prepare_data_dir()?;
    if settings.load_secret_key()? {
        tracing::warn!(
            path = %settings.data_dir.join(crate::config::SECRET_KEY_FILE).display(),
            "SECRET_KEY is not set: using a generated key kept in the data folder; production must set SECRET_KEY"
        );
    }
    let keys = Keyring::new(
        settings
            .secret_key
            .as_ref()
            .map(|k| k.expose_secret().as_bytes())
            .unwrap_or_default(),
    );
    let mut db = db::connect(&settings).await?;
    let metrics = Arc::new(jobs::metrics::Metrics::new());
    crate::metrics::observe_database(&metrics, &mut db);
    db::migrate(&db).await.map_err(StartupError::failed)?;
    let resealed = entity::reseal::run(&db, &keys).await?;
    if resealed > 0 {
        tracing::info!(resealed, "sealed values bound to their row and column");
    }
    let redis_url = settings.redis.url.as_ref().map(|u| u.expose_secret());
    let redis = match redis_url {
        Some(url) => Some(
            jobs::queue::connect_redis(url, jobs::queue::RedisPatience::REQUEST)
                .await
                .map_err(|e| ConfigError::caused("REDIS_URL", "cannot reach Redis", e))?,
        ),
        None => None,
    };
    let queues = jobs::queue::Queues::connect(jobs::queue::QueueConfig {
        redis_url: redis_url.map(str::to_owned),
        redis_prefix: settings.redis.key_prefix.clone(),
        sqlite_path: settings.queue_db_path(),
        metrics: metrics.clone(),
    })
    .await
    .map_err(|e| {
        let key = if redis_url.is_some() {
            "REDIS_URL"
        } else {
            "DATA_DIR"
        };
        ConfigError::from_source(key, e)
    })?;
    let smtp_url = settings.mail.smtp_url.as_ref().map(|u| u.expose_secret());
    let mailer =
        jobs::mailer::Mailer::new(smtp_url, &settings.outbox_dir(), settings.email.concurrency)
            .map_err(|e| {
                let key = if smtp_url.is_some() {
                    "SMTP_URL"
                } else {
                    "DATA_DIR"
                };
                ConfigError::from_source(key, e)
            })?;
    let events = crate::events::EventBus::start(
        db.clone(),
        match (redis_url, &redis) {
            (Some(url), Some(conn)) => redis::Client::open(url)
                .ok()
                .map(|client| (client, conn.clone())),
            _ => None,
        },
        &settings.redis.key_prefix,
        db::connect_sequencer(&settings).await?,
        metrics.clone(),
    )
    .await;
    let limiter = crate::ratelimit::RateLimiter::new(
        redis.clone(),
        settings.redis.key_prefix.clone(),
        settings.http.rate_limit_max_keys,
        metrics.clone(),
    );
    let bus = events.clone();
    let dispatcher = jobs::dispatch::Dispatcher::new(db.clone(), queues.clone(), move |events| {
        bus.committed(events);
    });
    let key_cache = crate::auth::KeyCache::new(settings.api_key_cache_ttl, metrics.clone());
    let reads = crate::db::Reads::new(db.clone(), metrics.clone());
    Ok(AppState {
        store: Arc::new(Store {
            db,
            reads,
            keys,
            dispatcher,
            email_quota: settings.email.quota(),
        }),
        guards: Arc::new(Guards { key_cache, limiter }),
        outbound: Arc::new(Outbound {
            mailer,
            queues,
            redis,
        }),
        events,
        settings: Arc::new(settings),
        metrics,
    })
}

/// Creates a first organization and API key when the database has none (a fresh install).
/// Under the start-up write lock, so of processes starting together on a fresh database one
/// creates them.
pub async fn bootstrap(db: &DatabaseConnection) -> Result<Option<NewApiKey>, StartupError> {
    let txn = crate::db::write_locked(db).await?;
    if entity::entities::organizations::Entity::find()
        .count(&txn)
        .await?
        > 0
    {
        return Ok(None);
    }
    let org = entity::organization::create(&txn, "default").await?;
    let key = entity::organization::create_api_key(&txn, org.id, "bootstrap").await?;
    txn.commit().await?;
    Ok(Some(key))
}

pub async fn build(
    settings: Settings,
    listener: Option<TcpListener>,
    roles: Roles,
) -> Result<App, StartupError> {
    let bind = settings.bind_addr;
    let state = prepare(settings).await?;
    let listener = match (roles.http, listener) {
        (false, _) => None,
        (true, Some(l)) => Some(l),
        (true, None) => Some(TcpListener::bind(bind).await.map_err(|e| {
            ConfigError::caused("BIND_ADDR", format!("cannot listen on {bind}"), e)
        })?),
    };
    Ok(App {
        state,
        listener,
        roles,
    })
}

pub fn router(state: AppState, shutdown: CancellationToken) -> crate::server::App {
    let request_timeout = state.settings.http.request_timeout;
    let gateway = graphql::gateway(&state.settings.graphql, state.clone());
    let endpoint = GraphqlEndpoint::new(Endpoint {
        live: graphql::live::Live::new(gateway.clone(), state.clone()),
        gateway,
        documents: Arc::new(graphql::documents::Documents::new(
            state.settings.graphql.document_cache_bytes,
        )),
        state: state.clone(),
        shutdown,
        pending: Arc::default(),
    });
    let rest_routes = crate::rest::routes(state.clone());
    let graphql_routes = Router::new()
        .route(
            "/graphql",
            get(graphql::http::graphiql_or_get).post(graphql::http::post),
        )
        .layer(DefaultBodyLimit::max(state.settings.graphql.max_body_bytes))
        .with_state(endpoint);
    let mut routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if state.settings.metrics_addr.is_none() {
        routes = routes.route("/metrics", get(crate::metrics::render));
    }
    let metrics = state.metrics.clone();
    let app = routes
        .merge(crate::public::routes())
        .merge(crate::console::routes())
        .with_state(state)
        .merge(graphql_routes)
        .merge(rest_routes)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            request_timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ));
    crate::telemetry::with_request_ids(app)
}

/// `/metrics`, `/healthz` and `/readyz` for `METRICS_ADDR`.
fn ops_router(state: AppState, workers: bool) -> Router {
    Router::new()
        .route("/metrics", get(crate::metrics::render))
        .route("/healthz", get(health::healthz))
        .with_state(state.clone())
        .route("/readyz", get(health::readyz_ops))
        .with_state(health::Ops {
            store: state.store,
            outbound: state.outbound,
            workers,
        })
}

impl App {
    /// The bound port (0 when the process runs workers only).
    pub fn port(&self) -> u16 {
        self.listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map_or(0, |a| a.port())
    }

    /// Serves HTTP and runs the workers until `signal` resolves, then stops accepting work,
    /// lets in-flight requests and jobs finish, and returns.
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let stop = CancellationToken::new();
        // Whatever ends this function (a panic too) stops what it started.
        let _stop_on_drop = stop.clone().drop_guard();
        let mut tasks = tokio::task::JoinSet::new();
        if self.roles.workers {
            tasks.spawn(run_workers(self.state.clone(), stop.clone()));
        }
        if let Some(addr) = self.state.settings.metrics_addr {
            let listener = TcpListener::bind(addr).await.map_err(|e| {
                ConfigError::caused("METRICS_ADDR", format!("cannot listen on {addr}"), e)
            })?;
            let app = crate::server::App::new(ops_router(self.state.clone(), self.roles.workers));
            let limits = self.state.settings.http.clone();
            let stop = stop.clone();
            tasks.spawn(async move { crate::server::serve(listener, app, &limits, stop).await });
        }
        if let Some(listener) = self.listener {
            let app = router(self.state.clone(), stop.clone());
            let limits = self.state.settings.http.clone();
            let stop = stop.clone();
            tasks.spawn(async move { crate::server::serve(listener, app, &limits, stop).await });
        }
        signal.await;
        tracing::info!("shutting down");
        stop.cancel();
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

async fn run_workers(state: AppState, stop: CancellationToken) {
    let AppState {
        store,
        outbound,
        settings,
        metrics,
        ..
    } = state;
    let composer = jobs::email::Composer {
        keys: store.keys.clone(),
        public_base_url: settings.public_base_url.clone(),
        from: settings.mail.from.clone(),
    };
    let hooks = &settings.webhooks;
    let sender = match jobs::webhook::Sender::new(hooks.targets(), hooks.timeout) {
        Ok(sender) => sender,
        Err(e) => {
            tracing::error!(error = %e, "workers not started");
            return;
        }
    };
    let webhooks = jobs::webhook::WebhookContext {
        db: store.db.clone(),
        keys: store.keys.clone(),
        dispatcher: store.dispatcher.clone(),
        sender,
        policy: hooks.policy(),
        gate: jobs::mailer::SendGate::new(hooks.concurrency, 0),
        metrics: metrics.clone(),
    };
    let ctx = jobs::context::JobContext::new(
        store.db.clone(),
        outbound.mailer.clone(),
        composer,
        webhooks,
        store.dispatcher.clone(),
        &settings.email,
        metrics.clone(),
    );
    let options = jobs::context::WorkerOptions::new(
        jobs::context::default_instance(),
        &settings.workers,
        &settings.email,
        hooks,
    );
    tokio::join!(
        jobs::expiry::run(
            store.db.clone(),
            settings.workers.expiry_interval,
            stop.clone(),
            store.dispatcher.clone(),
            metrics.clone(),
        ),
        jobs::runtime::run(outbound.queues.clone(), ctx, options, stop),
    );
}

/// Resolves on SIGINT or SIGTERM.
pub async fn termination_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
