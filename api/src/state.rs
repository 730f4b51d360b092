//! The application's state, as parts that each serve one purpose. Handlers take the parts they
//! use as axum substates (`State<Arc<Store>>`, `State<Arc<Settings>>`, …: `AppState` derives
//! `FromRef` for each); resolvers take them from the schema's data (see
//! [`crate::graphql::context`]), which holds the store, the guards and the settings only.

use std::sync::Arc;

use axum::extract::FromRef;
use entity::DomainError;
use entity::crypto::Keyring;
use entity::outbox::email::SendQuota;
use entity::work::{self, Command, IdempotencyKey, Stored};
use jobs::metrics::Metrics;
use sea_orm::DatabaseConnection;

use crate::auth::KeyCache;
use crate::config::Settings;
use crate::events::EventBus;
use crate::ratelimit::RateLimiter;

/// The router's state: every part, each cheap to clone and taken on its own.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub store: Arc<Store>,
    pub guards: Arc<Guards>,
    pub outbound: Arc<Outbound>,
    /// Committed activity events, fanned out to live subscriptions.
    pub events: EventBus,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
}

/// The database and what reading and writing it take: the read path, the keyring that seals,
/// signs and hashes what is stored, the unit of work whose outbox goes to the dispatcher, and
/// the email quota the commands that queue invitation emails enforce.
pub struct Store {
    pub db: DatabaseConnection,
    /// The same database for resolvers and lookups that only read (see [`crate::db::Reads`]).
    pub reads: crate::db::Reads,
    pub keys: Keyring,
    /// Publishes and queues what each unit of work wrote, once it committed.
    pub dispatcher: jobs::dispatch::Dispatcher,
    /// `EMAIL_ORGANIZATION_HOURLY_LIMIT`, for creates and resends.
    pub email_quota: SendQuota,
}

/// What a request passes before it runs: the API key check and the rate limits.
pub struct Guards {
    pub key_cache: KeyCache,
    pub limiter: RateLimiter,
}

/// What the process talks to besides the database: the mail server, the job queues, and Redis
/// (for the readiness check; the queues, the event bus and the limiter hold their own handles).
/// Only the workers and `/readyz` use it.
pub struct Outbound {
    pub mailer: jobs::mailer::Mailer,
    pub queues: jobs::queue::Queues,
    pub redis: Option<redis::aio::ConnectionManager>,
}

/// Hands a committed outbox to the dispatcher without waiting for it.
struct Detached(jobs::dispatch::Dispatcher);

impl work::Dispatch for Detached {
    async fn dispatch(&self, outbox: work::Outbox) {
        let dispatcher = self.0.clone();
        tokio::spawn(async move { work::Dispatch::dispatch(&dispatcher, outbox).await });
    }
}

impl Store {
    /// Runs a domain command in its own unit of work.
    pub async fn run<C: Command>(&self, command: &C) -> Result<C::Output, DomainError> {
        work::run(&self.db, &self.dispatcher, command).await
    }

    /// [`Store::run`], answering as soon as the unit of work commits: what it wrote is
    /// published and queued in the background. For operations whose answer time must not tell
    /// whether they queued anything (a verification code for a listed address, or a decoy).
    pub async fn run_detached<C: Command>(&self, command: &C) -> Result<C::Output, DomainError> {
        work::run(&self.db, &Detached(self.dispatcher.clone()), command).await
    }

    /// [`Store::run`] under an optional idempotency key.
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
}
