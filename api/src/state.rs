//! What every request handler and resolver shares.

use std::sync::Arc;

use entity::DomainError;
use entity::crypto::Keyring;
use entity::work::{self, Command, IdempotencyKey, Stored};
use sea_orm::DatabaseConnection;

use crate::config::Settings;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: DatabaseConnection,
    /// The same database for resolvers and lookups that only read (see [`crate::db::Reads`]).
    pub reads: crate::db::Reads,
    pub keys: Keyring,
    pub settings: Settings,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub key_cache: crate::auth::KeyCache,
    pub queues: jobs::queue::Queues,
    pub metrics: Arc<jobs::metrics::Metrics>,
    pub limiter: crate::ratelimit::RateLimiter,
    pub mailer: jobs::mailer::Mailer,
    pub events: crate::events::EventBus,
    /// Publishes and queues what each unit of work wrote, once it committed.
    pub dispatcher: jobs::dispatch::Dispatcher,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

/// Hands a committed outbox to the dispatcher without waiting for it.
struct Detached(jobs::dispatch::Dispatcher);

impl work::Dispatch for Detached {
    async fn dispatch(&self, outbox: work::Outbox) {
        let dispatcher = self.0.clone();
        tokio::spawn(async move { work::Dispatch::dispatch(&dispatcher, outbox).await });
    }
}

impl Inner {
    /// Runs a domain command in its own unit of work (the only way resolvers write).
    pub async fn run<C: Command>(&self, command: &C) -> Result<C::Output, DomainError> {
        work::run(&self.db, &self.dispatcher, command).await
    }

    /// [`Inner::run`], answering as soon as the unit of work commits: what it wrote is
    /// published and queued in the background. For operations whose answer time must not tell
    /// whether they queued anything (a verification code for a listed address, or a decoy).
    pub async fn run_detached<C: Command>(&self, command: &C) -> Result<C::Output, DomainError> {
        work::run(&self.db, &Detached(self.dispatcher.clone()), command).await
    }

    /// [`Inner::run`] under an optional idempotency key.
    pub async fn run_idempotent<C>(
        &self,
        command: &C,
        key: Option<IdempotencyKey<'_>>,
    ) -> Result<C::Output, DomainError>
    where
        C: Command,
        C::Output: Stored,
    {
        work::run_idempotent(&self.db, &self.dispatcher, command, key).await
    }

    /// `{PUBLIC_BASE_URL}/p/connect/{publicCompanyId}[/workflow]/{secret}`.
    pub fn magic_link_url(&self, public_company_id: &str, secret: &str, edit: bool) -> String {
        let base = self.settings.public_base_url.as_str().trim_end_matches('/');
        let workflow = if edit { "/workflow" } else { "" };
        format!("{base}/p/connect/{public_company_id}{workflow}/{secret}")
    }

    /// `{PUBLIC_BASE_URL}/p/i/{token}`.
    pub fn invitation_url(&self, token: &str) -> String {
        entity::invitation::page_url(&self.settings.public_base_url, token).into()
    }
}

/// Lets handlers that only need the metrics take them alone.
impl axum::extract::FromRef<AppState> for Arc<jobs::metrics::Metrics> {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}

impl axum::extract::FromRef<AppState> for crate::metrics::Scrape {
    fn from_ref(state: &AppState) -> Self {
        Self {
            metrics: state.metrics.clone(),
            db: state.db.clone(),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
