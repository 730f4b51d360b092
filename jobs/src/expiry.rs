//! The periodic expiry sweep: persists EXPIRED for invitations past their deadline.
//!
//! Readers never depend on it (status is computed at read time); it makes the stored status and
//! the activity log catch up. It is a set-based conditional update, so any number of replicas
//! may run it at once and each invitation still gets exactly one `EXPIRED` event.

use std::time::Duration;

use entity::invitation::{Transition, expire_due};
use sea_orm::DatabaseConnection;

use crate::shutdown::Shutdown;

/// Rows per transaction: large enough to be fast, small enough to keep locks short.
pub const EXPIRY_BATCH: u64 = 500;

/// Expires everything that is due, batch by batch. Returns the changes, for publishing.
pub async fn expire_all(db: &DatabaseConnection) -> Result<Vec<Transition>, entity::DomainError> {
    let mut all = Vec::new();
    loop {
        let batch = expire_due(db, EXPIRY_BATCH).await?;
        let full = batch.len() as u64 == EXPIRY_BATCH;
        all.extend(batch);
        if !full {
            return Ok(all);
        }
    }
}

/// Runs [`expire_all`] every `interval` until shutdown. `on_change` receives what changed.
pub async fn run(
    db: DatabaseConnection,
    interval: Duration,
    mut shutdown: Shutdown,
    on_change: impl Fn(Vec<Transition>) + Send + Sync,
) {
    // The first sweep waits one interval: readers never depend on it, and starting replicas
    // should not all sweep at the same instant.
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = ticker.tick() => {}
        }
        match expire_all(&db).await {
            Ok(changed) if changed.is_empty() => {}
            Ok(changed) => {
                tracing::info!(count = changed.len(), "expired invitations");
                on_change(changed);
            }
            Err(e) => tracing::error!(error = %e, "expiry sweep failed"),
        }
    }
}
