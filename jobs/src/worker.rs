//! The job workers (send email, deliver webhook), the webhook dispatcher and the outbox sweeper.
//!
//! Email and webhook deliveries follow the same discipline; it is described here for email, and
//! in `entity::webhook::delivery` for webhooks.
//!
//! # Delivery guarantees
//!
//! The `email_deliveries` row decides; a queued [`SendEmail`] only points at it. A run first
//! takes the row's send lease ([`delivery::claim`]: one conditional update that moves
//! `next_attempt_at` [`LEASE`] into the future, only if the row is PENDING and due). Exactly one
//! of any number of concurrent runs gets it; the others find nothing to do and finish. So a job
//! queued twice, re-run after a worker died, or re-queued by the sweeper while the first copy
//! still waits never reaches SMTP twice.
//!
//! After the attempt the holder records the outcome in one transaction with its activity event:
//! SENT, FAILED, or PENDING again with `next_attempt_at` moved to the retry time, and queues a
//! follow-up job for that time. The sweeper re-queues every PENDING row that has been due for a
//! while (a job lost with Redis' data, a follow-up that could not be queued, a lease whose
//! holder died), so nothing the database still owes is forgotten.
//!
//! Retries are never left to apalis: its retry layer would re-run the job before the row is due
//! (finding nothing to do), and a retry pending when shutdown starts waits on a worker that no
//! longer accepts work until the monitor's hard stop.
//!
//! One window cannot be closed: the SMTP server accepted the message, and the process died (or
//! the database stayed unreachable) before SENT was written. When the lease ends the message is
//! sent again, with the same `Message-ID` (chosen when the row was written), so receiving
//! servers and clients can recognise the duplicate. Sending first and recording after is the
//! right order: the opposite would lose mail instead of rarely duplicating it.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::{
    AbortError, Attempt, BackendExt, BoxDynError, Data, Monitor, WorkerBuilder, WorkerBuilderExt,
    WorkerContext,
};
use entity::delivery::{self, Claim, FailureOutcome, RetrySchedule};
use entity::entities::{companies, invitation_events, invitations};
use entity::webhook::delivery as webhook_outbox;
use entity::{DeliveryKind, DomainError, InvitationStatus};
use sea_orm::{DatabaseConnection, EntityTrait};

use crate::email::{ComposeError, Composer};
use crate::mailer::{Mailer, SendError};
use crate::queue::{Backend, Queues, SendEmail};
use crate::shutdown::Shutdown;
use crate::webhook::{WebhookContext, deliver_webhook};

/// Longest one send may take before it counts as a transient failure.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a claim keeps others away: a send, plus the writes that record it, plus margin.
/// Also how long an email waits when its sender died mid-send.
pub const LEASE: Duration = Duration::from_secs(180);
/// Rows re-queued per sweep.
const SWEEP_BATCH: u64 = 500;
/// How often the sweeper deletes finished jobs from the queue backend, and how old they must be.
/// An hour keeps recent jobs visible to queue tooling while bounding Redis memory and the
/// embedded queue file.
const VACUUM_INTERVAL: Duration = Duration::from_secs(3600);
const FINISHED_JOB_RETENTION: Duration = Duration::from_secs(3600);
/// Webhook deliveries queued per dispatcher query; a full batch is followed by another at once.
const DISPATCH_BATCH: u64 = 1000;
/// Immediate restarts of a failed worker before its generation ends and the supervisor waits.
const RESTARTS: usize = 3;
/// Longest wait between worker generations while the queue backend stays down.
const MAX_SUPERVISOR_PAUSE: Duration = Duration::from_secs(60);
/// Hard stop for jobs still running this long after shutdown started.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(90);

/// Receives the activity events a job wrote, after they committed (to publish them).
pub type EventSink = Arc<dyn Fn(Vec<invitation_events::Model>) + Send + Sync>;

/// What the job handlers need.
#[derive(Clone)]
pub struct JobContext {
    pub db: DatabaseConnection,
    pub mailer: Mailer,
    pub composer: Composer,
    /// The attempt cap lives here and on the row, not in apalis: apalis-redis ignores
    /// `max_attempts`.
    pub retry: RetrySchedule,
    /// How long a send may take before another worker may try the delivery (see [`LEASE`]).
    pub lease: Duration,
    pub on_events: EventSink,
    pub webhooks: WebhookContext,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("mailer", &self.mailer)
            .field("composer", &self.composer)
            .field("retry", &self.retry)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The default email retry schedule, and events dropped until
    /// [`JobContext::with_on_events`].
    pub fn new(
        db: DatabaseConnection,
        mailer: Mailer,
        composer: Composer,
        webhooks: WebhookContext,
    ) -> Self {
        Self {
            db,
            mailer,
            composer,
            retry: RetrySchedule::default(),
            lease: LEASE,
            on_events: Arc::new(|_| {}),
            webhooks,
        }
    }

    pub fn with_on_events(
        self,
        on_events: impl Fn(Vec<invitation_events::Model>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            on_events: Arc::new(on_events),
            ..self
        }
    }

    fn publish(&self, events: Vec<invitation_events::Model>) {
        if !events.is_empty() {
            (self.on_events)(events);
        }
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
    /// Emails sent at the same time by this process.
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
    pub fn new(instance: impl Into<String>) -> Self {
        Self {
            instance: instance.into(),
            poll_interval: Duration::from_millis(250),
            concurrency: 4,
            webhook_concurrency: 16,
            dispatch_interval: Duration::from_millis(250),
            sweep_interval: Duration::from_secs(5),
            sweep_grace: Duration::from_secs(30),
            webhook_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// `pid-random`: unique per process even when a restarted container reuses its pid.
pub fn default_instance() -> String {
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{}", std::process::id(), &random[..8])
}

/// What one attempt came to, before it is recorded.
enum Outcome {
    Sent,
    /// Not sent, and it never will be: the invitation can no longer be used.
    Moot(String),
    Unsendable(ComposeError),
    Failed(SendError),
}

/// Sends one delivery, or finds that there is nothing to do (see the module documentation).
/// Errors are either [`AbortError`]s (the delivery is FAILED) or failures to reach the
/// database, after which the lease runs out and the sweeper brings the delivery back.
#[tracing::instrument(name = "send_email", skip_all, fields(delivery_id = %job.delivery_id, job_attempt = attempt.current()))]
pub async fn send_email(
    job: SendEmail,
    ctx: Data<JobContext>,
    queues: Data<Queues>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let Some(claim) = delivery::claim(&ctx.db, job.delivery_id, ctx.lease).await? else {
        tracing::debug!("nothing to do: already final, not due yet, or another worker holds it");
        return Ok(());
    };
    let outcome = attempt_send(&ctx, &claim).await?;
    settle(&ctx, &queues, &claim, outcome).await
}

async fn attempt_send(ctx: &JobContext, claim: &Claim) -> Result<Outcome, DomainError> {
    let row = claim.delivery();
    let invitation = invitations::Entity::find_by_id(row.invitation_id)
        .one(&ctx.db)
        .await?
        .ok_or(DomainError::NotFound)?;
    let at = entity::now();
    let status = invitation.effective_status(at);
    if row.kind != DeliveryKind::VerificationCode && status != InvitationStatus::Active {
        return Ok(Outcome::Moot(format!(
            "not sent: the invitation is {}",
            status.as_str()
        )));
    }
    let company = companies::Entity::find_by_id(invitation.company_id)
        .one(&ctx.db)
        .await?
        .ok_or(DomainError::NotFound)?;
    let company_name = company
        .display_name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(company.name);
    let message = match ctx.composer.compose(row, &invitation, &company_name, at) {
        Ok(message) => message,
        Err(e) => return Ok(Outcome::Unsendable(e)),
    };
    Ok(
        match tokio::time::timeout(SEND_TIMEOUT, ctx.mailer.send(message)).await {
            Ok(Ok(())) => Outcome::Sent,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed(SendError::Transient(format!(
                "no answer from the mail server within {} s",
                SEND_TIMEOUT.as_secs()
            ))),
        },
    )
}

async fn settle(
    ctx: &JobContext,
    queues: &Queues,
    claim: &Claim,
    outcome: Outcome,
) -> Result<(), BoxDynError> {
    let row = claim.delivery();
    match outcome {
        Outcome::Sent => {
            ctx.publish(record_sent(ctx, claim).await?);
            tracing::info!(kind = ?row.kind, "email sent");
            Ok(())
        }
        Outcome::Moot(reason) => {
            ctx.publish(delivery::cancel(&ctx.db, claim, &reason).await?);
            tracing::info!(%reason, "email dropped");
            Ok(())
        }
        Outcome::Unsendable(e) => {
            ctx.publish(delivery::cancel(&ctx.db, claim, &e.to_string()).await?);
            tracing::error!(error = %e, "email cannot be built");
            Err(AbortError::new(e).into())
        }
        Outcome::Failed(e) => {
            let (reply, permanent) = match &e {
                SendError::Transient(reply) => (reply, false),
                SendError::Permanent(reply) => (reply, true),
            };
            match delivery::record_failure(&ctx.db, claim, reply, permanent, &ctx.retry).await? {
                FailureOutcome::RetryAt(due) => {
                    tracing::warn!(error = %e, next_attempt_at = %due, "email not sent; will retry");
                    // If this push fails, the sweeper queues the row once it is due.
                    if let Err(push) = queues.requeue(row.id, due).await {
                        tracing::warn!(error = %push, "cannot queue the retry; the sweeper will");
                    }
                    Ok(())
                }
                FailureOutcome::Failed(events) => {
                    ctx.publish(events);
                    tracing::error!(error = %e, "email failed for good");
                    Err(AbortError::new(e).into())
                }
                FailureOutcome::Superseded => Ok(()),
            }
        }
    }
}

/// The message is out: recording it is worth a few quick tries, because each failure here
/// means the recipient gets it twice once the lease ends.
async fn record_sent(
    ctx: &JobContext,
    claim: &Claim,
) -> Result<Vec<invitation_events::Model>, DomainError> {
    let mut pause = Duration::from_millis(200);
    loop {
        match delivery::mark_sent(&ctx.db, claim).await {
            Ok(events) => return Ok(events),
            Err(e) if pause <= Duration::from_secs(2) => {
                tracing::warn!(error = %e, "sent, but cannot record it yet; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, "sent, but cannot record it; it will be sent again when the lease ends");
                return Err(e);
            }
        }
    }
}

/// Runs the send-email and deliver-webhook workers, the webhook dispatcher and the sweeper
/// until `shutdown`; jobs already running finish (up to a hard stop after
/// [`SHUTDOWN_TIMEOUT`]).
pub async fn run(queues: Queues, ctx: JobContext, options: WorkerOptions, shutdown: Shutdown) {
    tokio::join!(
        sweep_until(
            queues.clone(),
            ctx.db.clone(),
            options.clone(),
            shutdown.clone()
        ),
        dispatch_until(
            queues.clone(),
            ctx.db.clone(),
            options.dispatch_interval,
            shutdown.clone()
        ),
        supervise(queues, ctx, options, shutdown),
    );
}

/// apalis restarts a failed worker at once, with no pause: fine for a blip, a hot loop while
/// Redis is down. So each generation of workers gets a few immediate restarts, and between
/// generations this waits, doubling up to [`MAX_SUPERVISOR_PAUSE`].
async fn supervise(
    queues: Queues,
    ctx: JobContext,
    options: WorkerOptions,
    mut shutdown: Shutdown,
) {
    let mut pause = Duration::from_secs(1);
    for generation in 0u64.. {
        let started = tokio::time::Instant::now();
        run_generation(&queues, &ctx, &options, generation, shutdown.clone()).await;
        if shutdown.is_fired() {
            return;
        }
        if started.elapsed() > MAX_SUPERVISOR_PAUSE {
            pause = Duration::from_secs(1);
        }
        tracing::error!(
            pause_s = pause.as_secs(),
            "job workers stopped; starting them again"
        );
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_SUPERVISOR_PAUSE);
    }
}

/// Registers one worker over either backend; a macro because the two storage types share no
/// trait that names everything `Monitor::register` requires.
macro_rules! register {
    ($monitor:expr, $backend:expr, $kind:literal, $options:expr, $generation:expr, $concurrency:expr, $handler:expr, $($name:ident = $data:expr),+) => {{
        let options = $options.clone();
        $(let $name = $data.clone();)+
        let generation = $generation;
        let concurrency = $concurrency;
        match $backend.clone() {
            Backend::Sqlite(storage) => $monitor.register(move |restarts: usize| {
                WorkerBuilder::new(format!("{}-{}-g{generation}-r{restarts}", $kind, options.instance))
                    .backend(storage.clone().poll_with_interval(options.poll_interval))
                    .enable_tracing()
                    .concurrency(concurrency)
                    .catch_panic()
                    $(.data($name.clone()))+
                    .build($handler)
            }),
            Backend::Redis(storage) => $monitor.register(move |restarts: usize| {
                WorkerBuilder::new(format!("{}-{}-g{generation}-r{restarts}", $kind, options.instance))
                    .backend(storage.clone().poll_with_interval(options.poll_interval))
                    .enable_tracing()
                    .concurrency(concurrency)
                    .catch_panic()
                    $(.data($name.clone()))+
                    .build($handler)
            }),
        }
    }};
}

async fn run_generation(
    queues: &Queues,
    ctx: &JobContext,
    options: &WorkerOptions,
    generation: u64,
    shutdown: Shutdown,
) {
    let monitor = Monitor::new()
        .should_restart(|worker: &WorkerContext, error| {
            tracing::error!(worker = worker.name(), %error, "worker failed");
            worker.restarts() < RESTARTS
        })
        // Also makes `run_with_signal` return when every worker has given up, instead of
        // waiting for the signal.
        .shutdown_timeout(SHUTDOWN_TIMEOUT);
    let monitor = register!(
        monitor,
        queues.email,
        "send-email",
        options,
        generation,
        options.concurrency,
        send_email,
        ctx = ctx,
        queues = queues
    );
    let monitor = register!(
        monitor,
        queues.webhooks,
        "deliver-webhook",
        options,
        generation,
        options.webhook_concurrency,
        deliver_webhook,
        webhooks = ctx.webhooks
    );
    let mut stop = shutdown;
    let signal = async move {
        stop.wait().await;
        Ok(())
    };
    if let Err(e) = monitor.run_with_signal(signal).await {
        tracing::error!(error = %e, "job monitor failed");
    }
}

/// Queues webhook deliveries as they become due, every `interval`, until shutdown. Every
/// replica runs it; the queue keys make their pushes of one row collapse into one job.
async fn dispatch_until(
    queues: Queues,
    db: DatabaseConnection,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        if let Err(e) = dispatch_webhooks(&queues, &db).await {
            tracing::warn!(error = %e, "webhook dispatch failed");
        }
    }
}

/// Queues every due webhook delivery that has no job for its due time yet; returns how many.
pub async fn dispatch_webhooks(
    queues: &Queues,
    db: &DatabaseConnection,
) -> Result<usize, SweepError> {
    let mut total = 0;
    loop {
        let due = webhook_outbox::dispatchable(db, DISPATCH_BATCH).await?;
        for (id, at) in &due {
            queues.requeue_webhook(*id, *at).await?;
        }
        let ids: Vec<_> = due.iter().map(|(id, _)| *id).collect();
        webhook_outbox::mark_enqueued(db, &ids).await?;
        total += due.len();
        if (due.len() as u64) < DISPATCH_BATCH {
            return Ok(total);
        }
    }
}

async fn sweep_until(
    queues: Queues,
    db: DatabaseConnection,
    options: WorkerOptions,
    mut shutdown: Shutdown,
) {
    let mut ticker = tokio::time::interval(options.sweep_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_vacuum = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        if last_vacuum.elapsed() >= VACUUM_INTERVAL {
            last_vacuum = tokio::time::Instant::now();
            match queues.vacuum(FINISHED_JOB_RETENTION).await {
                Ok(0) => {}
                Ok(count) => tracing::info!(count, "deleted finished jobs from the queue"),
                Err(e) => tracing::warn!(error = %e, "queue vacuum failed"),
            }
        }
        match remind(&queues, &db).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "queued reminder emails"),
            Err(e) => tracing::warn!(error = %e, "reminder sweep failed"),
        }
        match sweep(&queues, &db, options.sweep_grace).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "re-queued pending deliveries"),
            Err(e) => tracing::warn!(error = %e, "outbox sweep failed"),
        }
        match purge(&db, options.webhook_retention).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(count, "deleted finished webhook deliveries past retention")
            }
            Err(e) => tracing::warn!(error = %e, "webhook retention sweep failed"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Db(#[from] DomainError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// Deletes finished webhook deliveries older than `retention`, batch by batch; returns how
/// many. Every replica may run it: a row deleted twice is deleted once.
pub async fn purge(db: &DatabaseConnection, retention: Duration) -> Result<u64, DomainError> {
    let mut total = 0;
    loop {
        let deleted = webhook_outbox::purge_finished(db, retention, SWEEP_BATCH).await?;
        total += deleted;
        if deleted < SWEEP_BATCH {
            return Ok(total);
        }
    }
}

/// Writes and queues the reminders that are due (see
/// [`entity::invitation::queue_due_reminders`]); returns how many emails.
pub async fn remind(queues: &Queues, db: &DatabaseConnection) -> Result<usize, SweepError> {
    let rows = entity::invitation::queue_due_reminders(db, SWEEP_BATCH).await?;
    for row in &rows {
        // A failed push is retried by `sweep`: the row is PENDING in the database.
        if let Err(e) = queues.enqueue_email(row.id).await {
            tracing::warn!(delivery = %row.id, error = %e, "could not queue a reminder");
        }
    }
    Ok(rows.len())
}

/// Queues every email and webhook delivery that has been due for at least `grace`; returns
/// how many. Repeated sweeps (from any replica) of an unchanged row queue it once: the job key
/// names its state.
pub async fn sweep(
    queues: &Queues,
    db: &DatabaseConnection,
    grace: Duration,
) -> Result<usize, SweepError> {
    let due = delivery::due_pending(db, grace, SWEEP_BATCH).await?;
    for row in &due {
        queues.requeue(row.id, row.next_attempt_at).await?;
    }
    let hooks = webhook_outbox::due_pending(db, grace, SWEEP_BATCH).await?;
    for (id, at) in &hooks {
        queues.requeue_webhook(*id, *at).await?;
    }
    Ok(due.len() + hooks.len())
}
