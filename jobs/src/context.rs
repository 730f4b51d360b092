//! What the job handlers of one process share, and how its workers run.

use std::sync::Arc;
use std::time::Duration;

use entity::DomainError;
use entity::outbox::RetrySchedule;
use entity::work::{self, Command};
use sea_orm::DatabaseConnection;

use crate::dispatch::Dispatcher;
use crate::email::Composer;
use crate::mailer::{Mailer, SendGate};
use crate::metrics::Metrics;
use crate::settings::{EmailSettings, WebhookSettings, WorkerSettings};
use crate::webhook::WebhookContext;

/// What the job handlers need.
#[derive(Clone)]
pub struct JobContext {
    pub db: DatabaseConnection,
    pub mailer: Mailer,
    pub composer: Composer,
    /// The attempt cap lives here and on the row, not in apalis: apalis-redis ignores
    /// `max_attempts`.
    pub retry: RetrySchedule,
    /// How long a send may take before another worker may try the delivery (see
    /// [`EmailSettings::send_lease`]).
    pub lease: Duration,
    /// Publishes and queues what the jobs' units of work wrote.
    pub dispatcher: Dispatcher,
    pub webhooks: WebhookContext,
    /// Every send of this process passes here (`EMAIL_CONCURRENCY`, the rate cap).
    pub gate: SendGate,
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("mailer", &self.mailer)
            .field("composer", &self.composer)
            .field("retry", &self.retry)
            .field("webhooks", &self.webhooks)
            .field("gate", &self.gate)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// With the email retry schedule, send lease, concurrency and rate cap of `email`.
    pub fn new(
        db: DatabaseConnection,
        mailer: Mailer,
        composer: Composer,
        webhooks: WebhookContext,
        dispatcher: Dispatcher,
        email: &EmailSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            db,
            mailer,
            composer,
            retry: email.retry(),
            lease: email.send_lease,
            dispatcher,
            webhooks,
            gate: SendGate::new(email.concurrency, email.rate_limit),
            metrics,
        }
    }

    /// Runs a domain command in its own unit of work, dispatching what it wrote.
    pub(crate) async fn run<C: Command>(&self, command: &C) -> Result<C::Output, DomainError> {
        work::run(&self.db, &self.dispatcher, command).await
    }
}

/// How the workers of one process run.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Unique per process (see [`default_instance`]): worker names derive from it, and a backend
    /// refuses a name whose previous owner still looks alive.
    pub instance: String,
    /// How often an idle worker asks the queue for jobs; apalis would otherwise wait for the
    /// next heartbeat.
    pub poll_interval: Duration,
    /// Send-email jobs run at the same time by this process (their sends share the
    /// [`SendGate`]).
    pub concurrency: usize,
    /// Webhook requests in flight at the same time in this process.
    pub webhook_concurrency: usize,
    /// How often the dispatcher queues webhook deliveries that have become due.
    pub dispatch_interval: Duration,
    /// How often the sweeper looks for deliveries that no queued job will handle.
    pub sweep_interval: Duration,
    /// How long a delivery must have been due before the sweeper queues it again; leaves fresh
    /// rows to the jobs queued with them.
    pub sweep_grace: Duration,
    /// How long finished webhook deliveries (and their attempts) are kept.
    pub webhook_retention: Duration,
}

impl WorkerOptions {
    /// The configured sweep, email and webhook settings; polling and the dispatch interval are
    /// fixed.
    pub fn new(
        instance: impl Into<String>,
        workers: &WorkerSettings,
        email: &EmailSettings,
        webhooks: &WebhookSettings,
    ) -> Self {
        Self {
            instance: instance.into(),
            // An idle worker's cost (one queue round trip) against the wait of a message
            // queued by another process.
            poll_interval: Duration::from_millis(100),
            // Twice as many jobs as sends: single-message jobs (retries, verification codes)
            // fill the gate too, and while the oldest of full jobs ends (the gate serves them in
            // order), the next ones are already fetched and claimed, so the connections do not
            // wait for the queue's next poll.
            concurrency: email.concurrency.saturating_mul(2),
            webhook_concurrency: webhooks.concurrency,
            dispatch_interval: Duration::from_millis(250),
            sweep_interval: workers.sweep_interval,
            sweep_grace: workers.sweep_grace,
            webhook_retention: webhooks.retention,
        }
    }
}

/// `pid-random`: unique per process even when a restarted container reuses its pid.
pub fn default_instance() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", std::process::id(), &random[..8])
}
