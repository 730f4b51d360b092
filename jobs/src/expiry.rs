//! The periodic expiry sweep: persists EXPIRED for invitations past their deadline.
//!
//! Readers never depend on it (status is computed at read time); it makes the stored status and
//! the activity log catch up. Each batch is a few set-based statements (the conditional update
//! and the `INSERT … SELECT` of the events, see [`ExpireDue`], then the webhook deliveries), so
//! any number of replicas may run it at once and each invitation still gets exactly one
//! `EXPIRED` event.

use std::sync::Arc;
use std::time::Duration;

use entity::invitation::ExpireDue;
use entity::work::{self, Dispatch};
use sea_orm::DatabaseConnection;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Rows per transaction: each batch is a few statements whatever its size (see
/// [`ExpireDue`]), so a large one costs little more than one bare statement, while its row
/// locks (held for a few tens of milliseconds) stay short.
pub const EXPIRY_BATCH: u64 = 5000;

/// Expires everything that is due, batch by batch, each batch one unit of work. Returns how
/// many invitations it expired.
pub async fn expire_all(
    db: &DatabaseConnection,
    dispatch: &impl Dispatch,
) -> Result<u64, entity::DomainError> {
    let command = ExpireDue {
        batch: EXPIRY_BATCH,
    };
    let mut total = 0;
    loop {
        let expired = work::run(db, dispatch, &command).await?;
        total += expired;
        if expired < EXPIRY_BATCH {
            return Ok(total);
        }
    }
}

/// Runs [`expire_all`] every `interval` until shutdown.
pub async fn run(
    db: DatabaseConnection,
    interval: Duration,
    shutdown: CancellationToken,
    dispatch: impl Dispatch,
    metrics: Arc<Metrics>,
) {
    // The first sweep runs at start, so a process that was down catches up at once; replicas
    // starting together take disjoint batches (see `ExpireDue`).
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match expire_all(&db, &dispatch).await {
            Ok(0) => {}
            Ok(count) => {
                metrics.expired.inc_by(count);
                tracing::info!(count, "expired invitations")
            }
            Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
        }
    }
}
