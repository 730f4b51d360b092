//! The sweeper: re-queues outbox rows whose job was lost, writes due reminders, and deletes
//! what has been kept long enough (finished jobs, finished webhook deliveries).

use std::time::Duration;

use entity::DomainError;
use entity::invitation::QueueReminders;
use entity::outbox::email as email_outbox;
use entity::outbox::webhook as webhook_outbox;
use sea_orm::DatabaseConnection;

use crate::context::{JobContext, WorkerOptions};
use crate::dispatch::QueueingError;
use crate::metrics::QueueLabel;
use crate::queue::{DELIVER_WEBHOOK_QUEUE, Queues, SEND_EMAIL_QUEUE};
use tokio_util::sync::CancellationToken;

/// Rows re-queued per sweep.
const SWEEP_BATCH: u64 = 500;
/// How often the sweeper deletes finished jobs from the queue backend, and how old they must be.
/// An hour keeps recent jobs visible to queue tooling while bounding Redis memory and the
/// embedded queue file.
const VACUUM_INTERVAL: Duration = Duration::from_secs(3600);
const FINISHED_JOB_RETENTION: Duration = Duration::from_secs(3600);

pub(crate) async fn sweep_until(
    queues: Queues,
    ctx: JobContext,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    let db = &ctx.db;
    let mut ticker = tokio::time::interval(options.sweep_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_vacuum = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
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
        match remind(&ctx).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "queued reminder emails"),
            Err(e) => tracing::warn!(error = %e, "reminder sweep failed"),
        }
        match sweep(&queues, db, options.sweep_grace).await {
            Ok(0) => {}
            Ok(count) => tracing::info!(count, "re-queued pending deliveries"),
            Err(e) => tracing::warn!(error = %e, "outbox sweep failed"),
        }
        if let Err(e) = count_backlog(&ctx).await {
            tracing::warn!(error = %e, "cannot count the job backlog");
        }
        match purge(db, options.webhook_retention).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(count, "deleted finished webhook deliveries past retention")
            }
            Err(e) => tracing::warn!(error = %e, "webhook retention sweep failed"),
        }
    }
}

/// Sets the backlog gauges of both queues from the outbox tables, which hold the truth of what
/// is owed (a queue backend only holds prompts).
async fn count_backlog(ctx: &JobContext) -> Result<(), DomainError> {
    let queues = [
        (SEND_EMAIL_QUEUE, email_outbox::backlog(&ctx.db).await?),
        (
            DELIVER_WEBHOOK_QUEUE,
            webhook_outbox::backlog(&ctx.db).await?,
        ),
    ];
    for (queue, (count, oldest)) in queues {
        let label = QueueLabel { queue };
        ctx.metrics
            .job_backlog
            .get_or_create(&label)
            .set(i64::try_from(count).unwrap_or(i64::MAX));
        ctx.metrics
            .job_backlog_oldest
            .get_or_create(&label)
            .set(oldest.map_or(0, |at| at.timestamp()));
    }
    Ok(())
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

/// Writes the reminders that are due (see [`QueueReminders`]); the unit of work queues them.
/// Returns how many emails.
pub async fn remind(ctx: &JobContext) -> Result<usize, QueueingError> {
    Ok(ctx.run(&QueueReminders { batch: SWEEP_BATCH }).await?)
}

/// Queues every email and webhook delivery that has been due for at least `grace`; returns
/// how many. Repeated sweeps (from any replica) of an unchanged row queue it once: the job key
/// names its state.
pub async fn sweep(
    queues: &Queues,
    db: &DatabaseConnection,
    grace: Duration,
) -> Result<usize, QueueingError> {
    let emails = email_outbox::due_pending(db, grace, SWEEP_BATCH).await?;
    queues.requeue(&emails).await?;
    let hooks = webhook_outbox::due_pending(db, grace, SWEEP_BATCH).await?;
    queues.requeue_webhooks(&hooks).await?;
    Ok(emails.len() + hooks.len())
}
