//! A [`Dispatch`] that keeps what units of work hand it, for tests that drive domain commands
//! directly and check what would have been published and queued.

use std::sync::Mutex;

use entity::entities::invitation_events;
use entity::work::{Dispatch, Outbox};

#[derive(Default)]
pub struct Published(Mutex<Vec<Outbox>>);

impl Published {
    /// Every event dispatched so far, in order.
    pub fn events(&self) -> Vec<invitation_events::Model> {
        let outboxes = self.0.lock().unwrap();
        outboxes.iter().flat_map(|o| o.events.clone()).collect()
    }
}

impl Dispatch for Published {
    async fn dispatch(&self, outbox: Outbox) {
        self.0.lock().unwrap().push(outbox);
    }
}
