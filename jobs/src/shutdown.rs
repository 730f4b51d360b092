//! A shutdown signal that many tasks can wait on.

use tokio::sync::watch;

/// Fires the signal (dropping it fires it too, so a crashed owner never leaves tasks running).
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// Waits for the signal; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves once the signal fired or its trigger is gone.
    pub async fn wait(&mut self) {
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    /// Whether [`Shutdown::wait`] would return at once.
    pub fn is_fired(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }
}
