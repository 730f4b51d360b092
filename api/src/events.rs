//! Live activity: every committed event reaches every subscriber on every replica.
//!
//! Without Redis the bus is an in-process broadcast. With Redis, events are published to one
//! channel (after their transaction committed) and each process relays what it receives to its
//! local broadcast, so an event from any API replica or worker reaches every subscriber. Pub/sub
//! drops what is published while a subscriber is disconnected; clients recover it by
//! resubscribing with `since`, which replays from the activity log.

use std::sync::Arc;
use std::time::Duration;

use entity::entities::invitation_events;
use futures::StreamExt;
use tokio::sync::{broadcast, mpsc};

/// Events buffered per local subscriber; one that falls further behind is closed with an error
/// telling it to resubscribe with `since` (it never silently loses events).
pub const BUFFER: usize = 4096;

pub type Event = Arc<invitation_events::Model>;

#[derive(Clone)]
pub struct EventBus {
    local: broadcast::Sender<Event>,
    /// With Redis: the ordered queue of events to publish (one publisher task keeps commit order).
    outgoing: Option<mpsc::UnboundedSender<Vec<invitation_events::Model>>>,
}

impl EventBus {
    /// An in-process bus, or one relayed through Redis channel `{prefix}events`.
    pub fn start(
        redis: Option<(redis::Client, redis::aio::ConnectionManager)>,
        prefix: &str,
    ) -> Self {
        let (local, _) = broadcast::channel(BUFFER);
        let Some((client, conn)) = redis else {
            return Self {
                local,
                outgoing: None,
            };
        };
        let channel = format!("{prefix}events");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish_loop(conn, channel.clone(), rx));
        tokio::spawn(relay_loop(client, channel, local.clone()));
        Self {
            local,
            outgoing: Some(tx),
        }
    }

    /// Publishes events that have committed.
    pub fn publish(&self, events: &[invitation_events::Model]) {
        if events.is_empty() {
            return;
        }
        match &self.outgoing {
            Some(tx) => {
                let _ = tx.send(events.to_vec());
            }
            None => {
                for e in events {
                    // No receiver is not an error: nobody is watching.
                    let _ = self.local.send(Arc::new(e.clone()));
                }
            }
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }
}

async fn publish_loop(
    mut conn: redis::aio::ConnectionManager,
    channel: String,
    mut rx: mpsc::UnboundedReceiver<Vec<invitation_events::Model>>,
) {
    while let Some(events) = rx.recv().await {
        let mut pipe = redis::pipe();
        for e in &events {
            if let Ok(json) = serde_json::to_string(e) {
                pipe.publish(&channel, json).ignore();
            }
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            // Subscribers recover through `since` replay from the log.
            tracing::warn!(error = %e, count = events.len(), "could not publish events");
        }
    }
}

/// Receives the channel and feeds the local broadcast, reconnecting and resubscribing forever.
async fn relay_loop(client: redis::Client, channel: String, local: broadcast::Sender<Event>) {
    let mut pause = Duration::from_millis(200);
    loop {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                Ok(()) => {
                    pause = Duration::from_millis(200);
                    let mut messages = pubsub.into_on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        match serde_json::from_str::<invitation_events::Model>(&payload) {
                            Ok(event) => {
                                let _ = local.send(Arc::new(event));
                            }
                            Err(e) => tracing::warn!(error = %e, "unreadable event on the bus"),
                        }
                    }
                    tracing::warn!("event subscription ended; resubscribing");
                }
                Err(e) => tracing::warn!(error = %e, "cannot subscribe to events"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot connect for events"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
