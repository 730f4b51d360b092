//! Shared fan-out of live subscriptions: the cost of an event is paid once per distinct document,
//! not once per subscriber.
//!
//! Subscribers whose operations are the same (query text, operation name, variables other than
//! `since`) under the same authorized scope (the organization: every key of an organization may
//! do the same) form a [`Group`]. A group runs its subscription once, as one GraphQL execution fed
//! by one receiver of the event bus: for each event it checks the resolver's filter once,
//! resolves the event once, serializes the response once, and writes each member's frame (the
//! same payload under the member's own operation id) into the member's socket itself, with a
//! write that does not wait ([`Outlet::try_write`]). A subscriber that receives nothing costs
//! nothing per event; one that receives an event costs the frame and its `send`, and wakes no
//! task. Where the socket is not free (its connection's task is writing, or the peer reads slowly
//! and the socket is backed up) or the member still has frames queued, the payload goes into the
//! member's bounded queue instead, and its connection's task writes it, in order.
//!
//! What is per subscriber stays per subscriber: the access check (each subscriber's document
//! runs once for it, as in [`LiveMode::Replay`]), the replay of `since` from the activity log,
//! and the bounded queue that ends a slow subscriber with `SUBSCRIBER_LAGGED`. A subscriber joins
//! its group before reading its replay, so every event committed after the replay's read reaches
//! it live; the live events at or below its last replayed position are skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::http::WebSocketProtocols;
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection};
use async_graphql::{Executor, Request, Response, ServerError, Value};
use entity::entities::invitation_events;
use futures::stream::{self, BoxStream, StreamExt};
use jobs::metrics::Metrics;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::connection::connection_data;
use super::document_key::document_key;
use super::gateway::Gateway;
use super::public::ClientAddr;
use super::ws::Outlet;
use crate::auth::Viewer;
use crate::events::{BUFFER, Event};
use crate::state::AppState;

/// Which events a group's subscription keeps, as its resolver decided.
pub type Filter = Box<dyn Fn(&invitation_events::Model) -> bool + Send + Sync>;

/// How a subscription resolver runs, put into the request's data by [`subscribe`].
pub enum LiveMode {
    /// Once per subscriber: check access and replay what `since` asks for, recording the last
    /// position replayed; nothing live.
    Replay(Arc<AtomicI64>),
    /// Once per group: check access, hand the filter to the group, then resolve the events the
    /// group feeds.
    Shared(SharedFeed),
}

/// The group's side of a shared execution.
pub struct SharedFeed {
    filter: Mutex<Option<oneshot::Sender<Filter>>>,
    events: Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
}

impl SharedFeed {
    /// Gives the group the filter and takes the events it will feed (each one passed `keep`).
    /// `None` if called twice (one field per subscription).
    pub fn attach(&self, keep: Filter) -> Option<mpsc::UnboundedReceiver<Event>> {
        let sender = self
            .filter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        let _ = sender.send(keep);
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

/// What a group hands to a member.
#[derive(Clone)]
enum Delivery {
    /// One event's serialized response.
    Event { position: i64, payload: Arc<str> },
    /// A last response (lagging, or the group's execution failing); the subscription ends.
    Final(Arc<str>),
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct GroupKey {
    /// The document without what GraphQL ignores: layout alone makes no group of its own.
    query: String,
    operation_name: Option<String>,
    /// The variables as canonical JSON (sorted keys), without the ones that feed `since`.
    variables: String,
    organization_id: Uuid,
}

struct Members {
    next: u64,
    /// By id, i.e. in the order the members joined: the fan-out walks them in that order, about
    /// the order their sockets and connections were allocated in, rather than a hash map's. The
    /// intent is memory read more in sequence; measured, it lowered the p99 in one run under
    /// heavy load and was within the noise on a quiet machine (README, Benchmarks).
    queues: BTreeMap<u64, Queue>,
}

/// A member as its group sees it.
struct Queue {
    /// The member's bounded queue, read by its connection's task.
    sender: mpsc::Sender<Delivery>,
    /// Where the group writes the member's frames itself; `None` for a member without a socket
    /// (the unit tests' queues alone). Held inline: the fan-out reads it for every member, so
    /// that is one pointer fewer to follow per member (its effect alone was not measured).
    direct: Option<Direct>,
}

/// Members a fan-out thread takes at least: below that a thread costs more than it saves.
const PER_THREAD: usize = 1024;

/// Threads a large group's fan-out uses: one per core.
fn fan_out_threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from))
}

/// What a group needs to write a member's frames into its socket.
struct Direct {
    outlet: Arc<Outlet>,
    framing: Arc<Framing>,
    /// Set once the member's own execution (access check and replay) has ended and its last
    /// frame was taken: before that, every live event waits in the queue behind the replay.
    live: Arc<AtomicBool>,
    /// The last position the replay sent: live events up to it are skipped.
    replayed: Arc<AtomicI64>,
}

impl Queue {
    /// Hands `delivery` to the member: into its socket if free, else into its queue if that has
    /// room, else the lagging error; `false` when the member lags and leaves.
    fn hand(&self, delivery: &Delivery, lagged: &Arc<str>) -> bool {
        if let Delivery::Event { position, payload } = delivery
            && self.write(*position, payload)
        {
            true
        } else if self.sender.capacity() > 1 {
            // Closed: the member is leaving; its drop removes it.
            let _ = self.sender.try_send(delivery.clone());
            true
        } else {
            let _ = self.sender.try_send(Delivery::Final(lagged.clone()));
            false
        }
    }

    /// Hands an event to the member straight through its socket: `true` if written (or skipped
    /// as replayed already), `false` if it has to be queued.
    fn write(&self, position: i64, payload: &str) -> bool {
        let Some(direct) = &self.direct else {
            return false;
        };
        if !direct.live.load(Ordering::Acquire) {
            return false;
        }
        if position <= direct.replayed.load(Ordering::Relaxed) {
            return true;
        }
        direct.outlet.try_write(|| {
            // A queued frame (taken by the connection's task or not) goes first; with the
            // socket's lock held, the task can neither take one nor write one meanwhile.
            (self.sender.capacity() == self.sender.max_capacity())
                .then(|| direct.framing.frame(payload))
        })
    }
}

struct Group {
    key: GroupKey,
    members: Mutex<Members>,
    /// Fires when the last member leaves.
    stop: CancellationToken,
}

/// Live subscriptions of this process: its groups, and what a group executes with.
#[derive(Clone)]
pub struct Live {
    groups: Arc<LiveGroups>,
    gateway: Gateway,
    state: AppState,
}

impl Live {
    pub fn new(gateway: Gateway, state: AppState) -> Self {
        Self {
            groups: Arc::default(),
            gateway,
            state,
        }
    }
}

/// This process's groups, by document and scope.
#[derive(Default)]
struct LiveGroups {
    groups: Mutex<HashMap<GroupKey, Arc<Group>>>,
}

/// One subscriber's place in a group: its queue; leaving the group when dropped.
struct Member {
    groups: Arc<LiveGroups>,
    group: Arc<Group>,
    id: u64,
    queue: mpsc::Receiver<Delivery>,
    metrics: Arc<Metrics>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.metrics.live_subscribers.dec();
        let mut groups = self
            .groups
            .groups
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut members = self
            .group
            .members
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        members.queues.remove(&self.id);
        if members.queues.is_empty() {
            self.group.stop.cancel();
            drop(members);
            remove(&mut groups, &self.group, &self.metrics);
        }
    }
}

impl Group {
    /// Hands `delivery` to every member: written into its socket where that is free, else into
    /// its queue if that has room; a member whose queue is full gets the lagging error in the
    /// slot kept for it, and leaves. A large group shares the members out over one thread per
    /// core: the writes are `send`s, and from one thread the benchmark's 10,000 subscribers of
    /// one company saw a p99 no better than with a task per connection writing, from two a lower
    /// one (README, Benchmarks). Each member is handed the event by one thread, and the next
    /// event only once every thread is done, so its frames keep their order.
    fn deliver(&self, delivery: &Delivery, lagged: &Arc<str>, metrics: &Metrics) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        let hand_all = |queues: &[(&u64, &Queue)]| -> Vec<u64> {
            let lagging: Vec<u64> = queues
                .iter()
                .filter(|(_, queue)| !queue.hand(delivery, lagged))
                .map(|(id, _)| **id)
                .collect();
            // Counted once per thread, not per member: two threads incrementing one counter
            // for each of thousands of members would pass its cache line between the cores.
            let relayed = queues.len() - lagging.len();
            metrics.live_events_relayed.inc_by(relayed as u64);
            metrics.live_lagged.inc_by(lagging.len() as u64);
            lagging
        };
        let queues: Vec<(&u64, &Queue)> = members.queues.iter().collect();
        let threads = fan_out_threads().min(queues.len().div_ceil(PER_THREAD));
        let lagging = if threads <= 1 {
            hand_all(&queues)
        } else {
            let fan_out = || {
                std::thread::scope(|scope| {
                    let mut chunks = queues.chunks(queues.len().div_ceil(threads));
                    let mine = chunks.next().unwrap_or_default();
                    let others: Vec<_> = chunks
                        .map(|chunk| scope.spawn(move || hand_all(chunk)))
                        .collect();
                    let mut lagging = hand_all(mine);
                    for other in others {
                        lagging.extend(
                            other
                                .join()
                                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                        );
                    }
                    lagging
                })
            };
            // Thousands of `send`s hold this thread for milliseconds: on a multi-threaded
            // runtime tokio hands this worker's other tasks (requests among them) to another
            // thread meanwhile, instead of leaving them to wait behind the fan-out.
            match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
                Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                    tokio::task::block_in_place(fan_out)
                }
                _ => fan_out(),
            }
        };
        for id in lagging {
            members.queues.remove(&id);
        }
    }

    /// Ends every member's subscription with `last`, or quietly.
    fn end(&self, last: Option<Arc<str>>) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = last {
            for queue in members.queues.values() {
                let _ = queue.sender.try_send(Delivery::Final(last.clone()));
            }
        }
        members.queues.clear();
    }
}

impl LiveGroups {
    /// Joins the group of `key`, starting it with `start` when there is none.
    fn join(
        self: &Arc<Self>,
        key: GroupKey,
        direct: Option<Direct>,
        metrics: &Arc<Metrics>,
        start: impl FnOnce(Arc<Group>),
    ) -> Member {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        let group = match groups.get(&key) {
            Some(group) => group.clone(),
            None => {
                metrics.live_groups.inc();
                let group = Arc::new(Group {
                    key: key.clone(),
                    members: Mutex::new(Members {
                        next: 0,
                        queues: BTreeMap::new(),
                    }),
                    stop: CancellationToken::new(),
                });
                groups.insert(key, group.clone());
                start(group.clone());
                group
            }
        };
        // One slot more than the buffer, for the lagging error.
        let (sender, queue) = mpsc::channel(BUFFER + 1);
        let id = {
            let mut members = group.members.lock().unwrap_or_else(PoisonError::into_inner);
            let id = members.next;
            members.next += 1;
            members.queues.insert(id, Queue { sender, direct });
            id
        };
        metrics.live_subscribers.inc();
        Member {
            groups: self.clone(),
            group,
            id,
            queue,
            metrics: metrics.clone(),
        }
    }

    /// Forgets `group` once it has ended, so the next subscriber starts a new one.
    fn forget(&self, group: &Arc<Group>, metrics: &Metrics) {
        let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
        remove(&mut groups, group, metrics);
    }
}

/// Removes `group` from the registry unless it was replaced there already.
fn remove(groups: &mut HashMap<GroupKey, Arc<Group>>, group: &Arc<Group>, metrics: &Metrics) {
    if groups
        .get(&group.key)
        .is_some_and(|g| Arc::ptr_eq(g, group))
    {
        groups.remove(&group.key);
        metrics.live_groups.dec();
    }
}

/// The error that ends a subscriber that fell a whole buffer behind.
fn lagged_payload() -> Arc<str> {
    let mut error = ServerError::new(
        format!(
            "subscriber fell {BUFFER} events behind; resubscribe with `since` set to the last cursor received"
        ),
        None,
    );
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", "SUBSCRIBER_LAGGED");
    serialize(&Response::from_errors(vec![error]))
}

fn serialize(response: &Response) -> Arc<str> {
    serde_json::to_string(response)
        .unwrap_or_else(|_| r#"{"data":null}"#.to_owned())
        .into()
}

/// Runs a group's execution until its last member leaves, its execution ends or it falls
/// behind the bus; then ends its members' subscriptions.
async fn run_group(
    groups: Arc<LiveGroups>,
    group: Arc<Group>,
    gateway: Gateway,
    request: Request,
    bus: tokio::sync::broadcast::Receiver<Event>,
    metrics: Arc<Metrics>,
) {
    let last = execute_group(&group, gateway, request, bus, &metrics).await;
    // Out of the registry first, so nobody joins a group that no longer delivers.
    groups.forget(&group, &metrics);
    group.end(last);
}

/// Resolves and delivers the group's events; returns the response that ends its members'
/// subscriptions, if any.
async fn execute_group(
    group: &Group,
    gateway: Gateway,
    request: Request,
    mut bus: tokio::sync::broadcast::Receiver<Event>,
    metrics: &Metrics,
) -> Option<Arc<str>> {
    let (filter_tx, filter_rx) = oneshot::channel();
    let (feed, events) = mpsc::unbounded_channel();
    let request = request.data(LiveMode::Shared(SharedFeed {
        filter: Mutex::new(Some(filter_tx)),
        events: Mutex::new(Some(events)),
    }));
    let mut responses = gateway.execute_stream(request, None);
    // The resolver runs on the first poll; it either hands over its filter or fails.
    let filter = tokio::select! {
        filter = filter_rx => filter.ok(),
        first = responses.next() => return first.as_ref().map(serialize),
        () = group.stop.cancelled() => return None,
    }?;
    let lagged = lagged_payload();
    loop {
        let received = tokio::select! {
            () = group.stop.cancelled() => return None,
            received = bus.recv() => received,
        };
        match received {
            Ok(event) => {
                let Some(position) = event.position.filter(|_| filter(&event)) else {
                    continue;
                };
                let _ = feed.send(event);
                let response = responses.next().await?;
                let payload = serialize(&response);
                group.deliver(&Delivery::Event { position, payload }, &lagged, metrics);
            }
            Err(RecvError::Lagged(_)) => {
                // The group itself fell a bus buffer behind: its members resume with `since`.
                metrics.live_lagged.inc();
                return Some(lagged);
            }
            Err(RecvError::Closed) => return None,
        }
    }
}

/// Whether `request` runs a subscription (parsing it, once, if needed).
pub fn is_subscription(request: &mut Request) -> bool {
    let name = request.operation_name.clone();
    request
        .parsed_query()
        .ok()
        .and_then(|doc| super::selected_operation(doc, name.as_deref()))
        .map(|(_, op)| op.node.ty)
        == Some(OperationType::Subscription)
}

/// The names of the variables given as a `since` argument of the operation's fields: they only
/// choose a subscriber's replay, so subscribers that differ only in them share a group.
fn since_variables(doc: &ExecutableDocument, name: Option<&str>) -> Vec<String> {
    let Some((_, operation)) = super::selected_operation(doc, name) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for selection in &operation.node.selection_set.node.items {
        if let Selection::Field(field) = &selection.node
            && let Some(since) = field.node.get_argument("since")
        {
            // Substituting the variables is how the parser lets one see which they are.
            let _ = since.node.clone().into_const_with(|name| {
                names.push(name.to_string());
                Ok::<_, std::convert::Infallible>(Value::Null)
            });
        }
    }
    names
}

/// One subscription over a WebSocket: the frames to send, until it ends. The
/// subscriber's own execution checks its access and replays `since`; live events come from its
/// group.
pub fn subscribe(
    live: &Live,
    viewer: &Viewer,
    client: ClientAddr,
    protocol: WebSocketProtocols,
    outlet: &Arc<Outlet>,
    id: &str,
    mut request: Request,
) -> BoxStream<'static, String> {
    let state = &live.state;
    let operation_name = request.operation_name.clone();
    let since = request
        .parsed_query()
        .map(|doc| since_variables(doc, operation_name.as_deref()))
        .unwrap_or_default();
    let mut shared = request.variables.clone();
    for name in &since {
        shared.remove(&async_graphql::Name::new(name));
    }
    let key = GroupKey {
        query: document_key(&request.query),
        operation_name: request.operation_name.clone(),
        variables: serde_json::to_string(&shared).unwrap_or_default(),
        organization_id: viewer.organization_id,
    };
    let framing = Arc::new(Framing {
        next: match protocol {
            WebSocketProtocols::GraphQLWS => "next",
            WebSocketProtocols::SubscriptionsTransportWS => "data",
        },
        id: serde_json::to_string(id).unwrap_or_default(),
    });
    let replayed = Arc::new(AtomicI64::new(i64::MIN));
    let live_now = Arc::new(AtomicBool::new(false));
    let direct = Direct {
        outlet: outlet.clone(),
        framing: framing.clone(),
        live: live_now.clone(),
        replayed: replayed.clone(),
    };
    let member = live
        .groups
        .join(key, Some(direct), &state.metrics, |group| {
            let mut first =
                Request::new(request.query.clone()).variables(request.variables.clone());
            first.operation_name = request.operation_name.clone();
            first.data = connection_data(state, viewer, client);
            tokio::spawn(run_group(
                live.groups.clone(),
                group,
                live.gateway.clone(),
                first,
                state.events.subscribe(),
                state.metrics.clone(),
            ));
        });
    // A client's request brings no data of its own.
    request.data = connection_data(state, viewer, client);
    let request = request.data(LiveMode::Replay(replayed.clone()));
    let subscriber = Subscriber {
        own: Some(live.gateway.execute_stream(request, None)),
        member: Some(member),
        replayed,
        live: live_now,
        framing,
    };
    stream::unfold(subscriber, |mut s| async move {
        let text = s.next().await?;
        Some((text, s))
    })
    .boxed()
}

/// A subscription's progress: its own execution, then its group's events.
struct Subscriber {
    own: Option<BoxStream<'static, Response>>,
    member: Option<Member>,
    /// The last position the own execution replayed.
    replayed: Arc<AtomicI64>,
    /// Set when the own execution has ended: the group may write events itself from then on.
    live: Arc<AtomicBool>,
    framing: Arc<Framing>,
}

/// How a subscriber's result messages look.
struct Framing {
    /// The protocol's name for a result message.
    next: &'static str,
    /// The subscription's id, as JSON.
    id: String,
}

impl Framing {
    fn frame(&self, payload: &str) -> String {
        // `concat` sizes the string once; `format!` grew it at the payload, a `realloc` per frame
        // per subscriber that took an eighth of the server's samples at 10,000 subscribers.
        [
            r#"{"type":""#,
            self.next,
            r#"","id":"#,
            &self.id,
            r#","payload":"#,
            payload,
            "}",
        ]
        .concat()
    }
}

impl Subscriber {
    fn frame(&self, payload: &str) -> String {
        self.framing.frame(payload)
    }

    async fn next(&mut self) -> Option<String> {
        if let Some(own) = self.own.as_mut() {
            match own.next().await {
                Some(response) => {
                    if response.is_err() && response.data == Value::Null {
                        // Refused (or failed): nothing live follows.
                        self.own = None;
                        self.member = None;
                    }
                    return Some(self.frame(&serialize(&response)));
                }
                None => {
                    self.own = None;
                    // Its frames are all taken; what the connection's task holds of them it
                    // writes before a group may write (see `Outlet`).
                    self.live.store(true, Ordering::Release);
                }
            }
        }
        if let Some(member) = self.member.as_mut() {
            loop {
                match member.queue.recv().await {
                    Some(Delivery::Event { position, .. })
                        if position <= self.replayed.load(Ordering::Relaxed) => {}
                    Some(Delivery::Event { payload, .. }) => return Some(self.frame(&payload)),
                    Some(Delivery::Final(payload)) => {
                        self.member = None;
                        return Some(self.frame(&payload));
                    }
                    None => {
                        self.member = None;
                        break;
                    }
                }
            }
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    /// An empty registry of groups, its metrics, and the key of one document's group.
    fn registry() -> (Arc<LiveGroups>, Arc<Metrics>, GroupKey) {
        let key = GroupKey {
            query: "subscription { x }".into(),
            operation_name: None,
            variables: "{}".into(),
            organization_id: Uuid::nil(),
        };
        (Arc::default(), Arc::new(Metrics::default()), key)
    }

    async fn position(member: &mut Member) -> i64 {
        match member.queue.recv().await {
            Some(Delivery::Event { position, .. }) => position,
            _ => panic!("expected an event"),
        }
    }

    /// A group large enough to share its fan-out over threads hands each member every event,
    /// once and in order.
    #[tokio::test]
    async fn a_large_group_hands_every_member_each_event_once_in_order() {
        let (groups, metrics, key) = registry();
        let mut started = None;
        let mut members: Vec<Member> = (0..2 * PER_THREAD + 1)
            .map(|_| groups.join(key.clone(), None, &metrics, |g| started = Some(g)))
            .collect();
        let group = started.unwrap();
        let lagged = lagged_payload();
        for p in 0..3 {
            let event = Delivery::Event {
                position: p,
                payload: p.to_string().into(),
            };
            group.deliver(&event, &lagged, &metrics);
        }
        for member in &mut members {
            for p in 0..3 {
                assert_eq!(position(member).await, p);
            }
            assert!(member.queue.is_empty(), "each event once");
        }
        assert_eq!(
            metrics.live_events_relayed.get(),
            3 * members.len() as u64,
            "each handing counted once, whichever thread made it"
        );
    }

    /// A member's events go straight into its socket while its peer reads; once the peer stops
    /// reading and the socket backs up, they wait in the member's queue, in order and each once,
    /// and a member that stays a whole buffer behind still ends with `SUBSCRIBER_LAGGED`.
    #[tokio::test]
    async fn a_member_whose_socket_backs_up_falls_back_to_its_queue() {
        let (outlet, peer) = super::super::ws::tests::outlet_and_peer().await;
        let (groups, metrics, key) = registry();
        let direct = Direct {
            outlet: outlet.clone(),
            framing: Arc::new(Framing {
                next: "next",
                id: r#""7""#.into(),
            }),
            live: Arc::new(AtomicBool::new(true)),
            replayed: Arc::new(AtomicI64::new(i64::MIN)),
        };
        let mut started = None;
        let mut member = groups.join(key, Some(direct), &metrics, |g| started = Some(g));
        let group = started.unwrap();
        let lagged = lagged_payload();
        let event = |position: i64| Delivery::Event {
            position,
            payload: format!(r#"{{"p":{position},"pad":"{}"}}"#, "x".repeat(1000)).into(),
        };
        // The peer reads nothing: written until the socket backs up.
        let mut sent = 0;
        while member.queue.is_empty() {
            assert!(sent < 100_000, "the socket never backed up");
            group.deliver(&event(sent), &lagged, &metrics);
            sent += 1;
        }
        let written = sent - 1;
        assert!(written > 0, "the first events were written directly");
        // Everything after it queues, even once the socket could take more, until the queue
        // is full and the member lags.
        while !group.members.lock().unwrap().queues.is_empty() {
            group.deliver(&event(sent), &lagged, &metrics);
            sent += 1;
        }
        for p in written..written + BUFFER as i64 {
            assert_eq!(position(&mut member).await, p);
        }
        match member.queue.recv().await {
            Some(Delivery::Final(payload)) => assert!(payload.contains("SUBSCRIBER_LAGGED")),
            _ => panic!("expected the lagging error"),
        }
        assert!(member.queue.recv().await.is_none());
        assert_eq!(metrics.live_lagged.get(), 1);

        // The peer reads what was written (the connection's task would finish the backlog);
        // then the socket closes.
        let reader = tokio::task::spawn_blocking(move || {
            let mut socket = tungstenite::WebSocket::from_raw_socket(
                peer,
                tungstenite::protocol::Role::Client,
                None,
            );
            let mut positions = Vec::new();
            while let Ok(message) = socket.read() {
                let frame: serde_json::Value =
                    serde_json::from_str(message.to_text().unwrap()).unwrap();
                assert_eq!(
                    (frame["type"].as_str(), frame["id"].as_str()),
                    (Some("next"), Some("7"))
                );
                positions.push(frame["payload"]["p"].as_i64().unwrap());
            }
            positions
        });
        std::future::poll_fn(|cx| outlet.poll_backlog(cx))
            .await
            .unwrap();
        drop((member, group, outlet));
        assert_eq!(reader.await.unwrap(), (0..written).collect::<Vec<_>>());
    }

    /// A member whose queue is full gets `SUBSCRIBER_LAGGED` after what it had, and leaves; the
    /// others keep receiving; the group stops with its last member.
    #[tokio::test]
    async fn a_lagging_member_ends_while_the_others_continue() {
        let (groups, metrics, key) = registry();
        let mut started = None;
        let mut fast = groups.join(key.clone(), None, &metrics, |g| started = Some(g));
        let mut slow = groups.join(key, None, &metrics, |_| panic!("one group per key"));
        let group = started.unwrap();
        let lagged = lagged_payload();
        let event = |position: i64| Delivery::Event {
            position,
            payload: position.to_string().into(),
        };
        for p in 0..=BUFFER as i64 {
            group.deliver(&event(p), &lagged, &metrics);
            assert_eq!(position(&mut fast).await, p);
        }
        for p in 0..BUFFER as i64 {
            assert_eq!(position(&mut slow).await, p);
        }
        match slow.queue.recv().await {
            Some(Delivery::Final(payload)) => assert!(payload.contains("SUBSCRIBER_LAGGED")),
            _ => panic!("expected the lagging error"),
        }
        assert!(slow.queue.recv().await.is_none(), "and nothing after it");
        group.deliver(&event(BUFFER as i64 + 1), &lagged, &metrics);
        assert_eq!(position(&mut fast).await, BUFFER as i64 + 1);
        assert_eq!(metrics.live_lagged.get(), 1);

        drop(slow);
        assert!(!group.stop.is_cancelled(), "a member is left");
        drop(fast);
        assert!(group.stop.is_cancelled());
        assert!(groups.groups.lock().unwrap().is_empty());
        assert_eq!(metrics.live_groups.get(), 0);
    }
}
