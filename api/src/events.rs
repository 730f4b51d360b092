//! Live activity: every committed event reaches every subscriber on every replica, in position
//! order.
//!
//! An event is published once it has its position (its cursor): on SQLite it took it at insert
//! and is published as its unit of work commits; on PostgreSQL the unit of work only wakes the
//! sequencer ([`entity::positions::sequence`]), which gives positions to committed events and
//! publishes them. Every process runs a sequencer (they take turns under a lock), woken by its
//! own commits and every [`SEQUENCER_POLL`] for events whose writer died before waking one.
//!
//! Without Redis the bus is an in-process broadcast. With Redis, events are published to one
//! channel and each process relays what it receives to its local broadcast, so an event from any
//! API replica or worker reaches every subscriber. Pub/sub drops what is published while a
//! subscriber is disconnected; clients recover it by resubscribing with `since`, which replays
//! from the activity log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use entity::entities::invitation_events;
use futures::StreamExt;
use jobs::metrics::Metrics;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, broadcast, mpsc};

/// Events buffered per local subscriber; one that falls further behind is closed with an error
/// telling it to resubscribe with `since` (it never silently loses events).
pub const BUFFER: usize = 4096;

pub type Event = Arc<invitation_events::Model>;

/// How often a sequencer runs when nothing woke it.
pub const SEQUENCER_POLL: Duration = Duration::from_secs(1);
/// Events sequenced per run; a full run is followed by another at once.
const SEQUENCER_BATCH: u64 = 1000;

#[derive(Clone)]
pub struct EventBus {
    /// This process's subscribers, fed in position order.
    local: broadcast::Sender<Event>,
    publisher: Publisher,
    /// PostgreSQL: wakes this process's sequencer.
    sequencer: Option<Arc<Notify>>,
}

/// Hands sequenced events to every subscriber: through Redis to every replica, or straight to
/// this process's [`order_loop`].
#[derive(Clone)]
struct Publisher {
    ordered: mpsc::UnboundedSender<invitation_events::Model>,
    /// With Redis: the ordered queue of events to publish (one publisher task keeps the order).
    outgoing: Option<mpsc::UnboundedSender<Vec<invitation_events::Model>>>,
}

/// How long a relay waits for an event that was overtaken on its way before reading it from the
/// database.
const GAP_WAIT: Duration = Duration::from_millis(50);

impl EventBus {
    /// An in-process bus, or one relayed through Redis channel `{prefix}events`; with
    /// `sequencer_db` (PostgreSQL), a sequencer that gives committed events their positions.
    pub async fn start(
        db: DatabaseConnection,
        redis: Option<(redis::Client, redis::aio::ConnectionManager)>,
        prefix: &str,
        sequencer_db: Option<DatabaseConnection>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (local, _) = broadcast::channel(BUFFER);
        let (ordered, arrivals) = mpsc::unbounded_channel();
        // Events sequenced before this process started are for replay, not for live delivery.
        let next = match entity::positions::next_position(&db).await {
            Ok(next) => Some(next),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the last event position; live delivery starts at the first event received");
                None
            }
        };
        tokio::spawn(order_loop(db, next, arrivals, local.clone(), metrics));
        let outgoing = redis.map(|(client, conn)| {
            let channel = format!("{prefix}events");
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(publish_loop(conn, channel.clone(), rx));
            tokio::spawn(relay_loop(client, channel, ordered.clone()));
            tx
        });
        let local_subscribers = local;
        let publisher = Publisher { ordered, outgoing };
        let sequencer = sequencer_db.map(|db| {
            let wake = Arc::new(Notify::new());
            tokio::spawn(sequence_loop(db, publisher.clone(), wake.clone()));
            wake
        });
        Self {
            local: local_subscribers,
            publisher,
            sequencer,
        }
    }

    /// Takes the events of a unit of work that committed: those with a position are published
    /// now, the others once the sequencer has given them one.
    pub fn committed(&self, events: Vec<invitation_events::Model>) {
        let (ready, waiting): (Vec<_>, Vec<_>) =
            events.into_iter().partition(|e| e.position.is_some());
        self.publisher.publish(&ready);
        if !waiting.is_empty()
            && let Some(wake) = &self.sequencer
        {
            wake.notify_one();
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.local.subscribe()
    }
}

/// Sequences what is waiting whenever woken (or every [`SEQUENCER_POLL`]), and publishes it.
async fn sequence_loop(db: DatabaseConnection, publisher: Publisher, wake: Arc<Notify>) {
    loop {
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(SEQUENCER_POLL) => {}
        }
        loop {
            match entity::positions::sequence(&db, SEQUENCER_BATCH).await {
                Ok(events) => {
                    publisher.publish(&events);
                    if (events.len() as u64) < SEQUENCER_BATCH {
                        break;
                    }
                }
                Err(e) => {
                    // The events stay waiting; the next run takes them.
                    tracing::warn!(error = %e, "cannot sequence events");
                    break;
                }
            }
        }
    }
}

impl Publisher {
    fn publish(&self, events: &[invitation_events::Model]) {
        if events.is_empty() {
            return;
        }
        match &self.outgoing {
            Some(tx) => {
                let _ = tx.send(events.to_vec());
            }
            None => {
                for e in events {
                    let _ = self.ordered.send(e.clone());
                }
            }
        }
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

/// Hands this process's subscribers every event in position order, each once. Positions are
/// dense (each is the one after the last given), so an event that arrives early shows a gap: it
/// waits [`GAP_WAIT`] for the ones it overtook (another replica's sequencer run, or a unit of
/// work that committed first but dispatched second), then reads them from the database, where
/// they are committed already.
async fn order_loop(
    db: DatabaseConnection,
    mut next: Option<i64>,
    mut arrivals: mpsc::UnboundedReceiver<invitation_events::Model>,
    local: broadcast::Sender<Event>,
    metrics: Arc<Metrics>,
) {
    let mut pending: BTreeMap<i64, invitation_events::Model> = BTreeMap::new();
    let mut gap_deadline: Option<tokio::time::Instant> = None;
    loop {
        // `None`: the wait for an overtaken event ran out; `Some(None)`: no more arrivals.
        let arrival = match gap_deadline {
            None => Some(arrivals.recv().await),
            Some(deadline) => tokio::time::timeout_at(deadline, arrivals.recv())
                .await
                .ok(),
        };
        match arrival {
            Some(None) => return,
            Some(Some(event)) => {
                if let Some(position) = event.position
                    && next.is_none_or(|n| position >= n)
                {
                    pending.insert(position, event);
                }
            }
            None => {
                fill_gap(&db, &mut next, &mut pending).await;
                gap_deadline = None;
            }
        }
        let Some(mut expected) = next.or_else(|| pending.keys().next().copied()) else {
            continue;
        };
        while let Some(event) = pending.remove(&expected) {
            // No receiver is not an error: nobody is watching.
            let _ = local.send(Arc::new(event));
            metrics.live_events_published.inc();
            expected += 1;
        }
        next = Some(expected);
        if pending.is_empty() {
            gap_deadline = None;
        } else if gap_deadline.is_none() {
            gap_deadline = Some(tokio::time::Instant::now() + GAP_WAIT);
        }
    }
}

/// Reads the events between the next expected position and the first one waiting.
async fn fill_gap(
    db: &DatabaseConnection,
    next: &mut Option<i64>,
    pending: &mut BTreeMap<i64, invitation_events::Model>,
) {
    let (Some(from), Some(&to)) = (*next, pending.keys().next()) else {
        return;
    };
    match entity::positions::events_between(db, from, to).await {
        Ok(events) => {
            let found = events.len();
            for event in events {
                if let Some(position) = event.position {
                    pending.insert(position, event);
                }
            }
            if i64::try_from(found).ok() != Some(to - from) {
                // Not expected (positions are dense); do not stall the live stream on it.
                tracing::warn!(
                    from,
                    to,
                    found,
                    "events missing from the log; skipping ahead"
                );
                *next = Some(to);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read overtaken events; retrying"),
    }
}

/// Receives the channel and feeds this process's orderer, reconnecting and resubscribing forever.
async fn relay_loop(
    client: redis::Client,
    channel: String,
    ordered: mpsc::UnboundedSender<invitation_events::Model>,
) {
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
                                let _ = ordered.send(event);
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use migration::{Migrator, MigratorTrait};
    use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, IntoActiveModel};

    use super::*;

    fn event(position: i64) -> invitation_events::Model {
        invitation_events::Model {
            id: position,
            invitation_id: uuid::Uuid::nil(),
            organization_id: uuid::Uuid::nil(),
            company_id: uuid::Uuid::nil(),
            event_type: entity::EventType::Viewed,
            occurred_at: entity::now(),
            email: None,
            connection_id: None,
            actor: "recipient".into(),
            detail: serde_json::json!({}),
            position: Some(position),
        }
    }

    /// Events that overtook others are held back; one that never arrives is read from the log;
    /// what was delivered before is not delivered again.
    #[tokio::test]
    async fn live_events_leave_in_position_order_each_once() {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        Migrator::up(&db, None).await.unwrap();
        // Only in the log: position 3 is committed but its publication is lost.
        db.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .unwrap();
        event(3)
            .into_active_model()
            .reset_all()
            .insert(&db)
            .await
            .unwrap();

        let (local, mut subscriber) = broadcast::channel(16);
        let (arrivals, rx) = mpsc::unbounded_channel();
        tokio::spawn(order_loop(db, Some(1), rx, local, Arc::default()));
        for position in [2, 1, 4, 1] {
            arrivals.send(event(position)).unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..4 {
            let e = tokio::time::timeout(Duration::from_secs(5), subscriber.recv())
                .await
                .unwrap()
                .unwrap();
            got.push(e.position.unwrap());
        }
        assert_eq!(got, [1, 2, 3, 4]);
        arrivals.send(event(5)).unwrap();
        let e = tokio::time::timeout(Duration::from_secs(5), subscriber.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(e.position, Some(5), "the repeated 1 was dropped");
    }
}
