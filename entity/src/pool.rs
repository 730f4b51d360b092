//! Callers waiting for a connection of this process's database pools.
//!
//! sqlx keeps no count of the callers queued on its pool, so the service counts them where it
//! asks for a connection: a unit of work's begin ([`crate::work::Work::begin`], which counts
//! until its `BEGIN` has answered) and the API's held reads. A single statement that sea-orm
//! runs straight on the pool (an API key lookup on a cache miss, a health check) is not counted.

use std::sync::atomic::{AtomicI64, Ordering};

static WAITING: AtomicI64 = AtomicI64::new(0);

/// One caller waiting for a connection, from [`Waiting::start`] until dropped.
pub struct Waiting(());

impl Waiting {
    pub fn start() -> Self {
        WAITING.fetch_add(1, Ordering::Relaxed);
        Self(())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Callers of this process waiting for a connection now.
pub fn waiting() -> i64 {
    WAITING.load(Ordering::Relaxed)
}
