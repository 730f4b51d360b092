//! Getting outbox rows onto the queues: at once after the unit of work that wrote them commits
//! ([`Dispatcher`]), and for webhook deliveries that come due later (the dispatcher loop).

use std::sync::Arc;
use std::time::Duration;

use entity::entities::invitation_events;
use entity::outbox::webhook as webhook_outbox;
use entity::work::{Dispatch, Outbox};
use sea_orm::DatabaseConnection;

use crate::queue::Queues;
use tokio_util::sync::CancellationToken;

/// Reading due outbox rows, or queueing them, failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueingError {
    #[error(transparent)]
    Db(#[from] entity::DomainError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
}

/// Webhook deliveries queued per dispatcher query; a full batch is followed by another at once.
const DISPATCH_BATCH: u64 = 1000;

/// Receives the activity events of committed units of work (to publish them to subscribers).
pub type EventSink = Arc<dyn Fn(Vec<invitation_events::Model>) + Send + Sync>;

/// What follows every commit, in the API and in the workers alike: publish the events, queue a
/// job for each new email and webhook delivery. A failed push is only logged: the rows are in
/// the database, and the sweeper (emails) or the dispatcher loop (webhooks) queues them later.
#[derive(Clone)]
pub struct Dispatcher {
    db: DatabaseConnection,
    queues: Queues,
    publish: EventSink,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

impl Dispatcher {
    pub fn new(
        db: DatabaseConnection,
        queues: Queues,
        publish: impl Fn(Vec<invitation_events::Model>) + Send + Sync + 'static,
    ) -> Self {
        Self {
            db,
            queues,
            publish: Arc::new(publish),
        }
    }
}

impl Dispatch for Dispatcher {
    async fn dispatch(&self, outbox: Outbox) {
        if !outbox.events.is_empty() {
            (self.publish)(outbox.events);
        }
        if let Err(e) = self.queues.enqueue_emails(&outbox.emails).await {
            tracing::warn!(emails = outbox.emails.len(), error = %e, "enqueue failed; the sweeper will retry");
        }
        // All or nothing is enough: a batch that could not be queued stays for the dispatcher.
        let queued: Vec<_> = match self.queues.requeue_webhooks(&outbox.webhooks).await {
            Ok(()) => outbox.webhooks.iter().map(|(id, _)| *id).collect(),
            Err(e) => {
                tracing::warn!(deliveries = outbox.webhooks.len(), error = %e, "enqueue failed; the dispatcher will retry");
                Vec::new()
            }
        };
        // Saves the dispatcher loop a second push of the same rows (a second job would only find
        // them leased or finished).
        if let Err(e) = webhook_outbox::mark_enqueued(&self.db, &queued).await {
            tracing::warn!(error = %e, "could not note queued webhook deliveries");
        }
    }
}

/// Queues webhook deliveries as they become due, every `interval`, until shutdown. Every
/// replica runs it; the queue keys make their pushes of one row collapse into one job.
pub(crate) async fn dispatch_until(
    queues: Queues,
    db: DatabaseConnection,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
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
) -> Result<usize, QueueingError> {
    let mut total = 0;
    loop {
        let due = webhook_outbox::dispatchable(db, DISPATCH_BATCH).await?;
        queues.requeue_webhooks(&due).await?;
        let ids: Vec<_> = due.iter().map(|(id, _)| *id).collect();
        webhook_outbox::mark_enqueued(db, &ids).await?;
        total += due.len();
        if (due.len() as u64) < DISPATCH_BATCH {
            return Ok(total);
        }
    }
}
