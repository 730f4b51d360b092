//! GraphQL over WebSocket on `/graphql` (`graphql-transport-ws`, and the older `graphql-ws`
//! subprotocol), under the rules HTTP requests obey:
//!
//! - a message or frame larger than `GRAPHQL_MAX_BODY_BYTES` closes the socket with 1009 (a
//!   frame is refused at its header, before its payload is read);
//! - at most [`super::ws_pending::PENDING_PER_CLIENT`] sockets per client network (an IPv6
//!   /64), and [`super::ws_pending::PENDING_TOTAL`] in all, may wait for `connection_init`;
//!   beyond that the upgrade answers 429 / 503;
//! - the API key comes in the `connection_init` payload (`apiKey`) and is checked again on every
//!   operation and whenever the key cache's answer expires (`API_KEY_CACHE_SECONDS`): a bad or
//!   revoked key closes with 4403, a key the database could not check with 1011 (the client
//!   reconnects; it does not give up its key);
//! - the client address goes into the connection data, so public operations count against the
//!   same per-client rate limits as over HTTP.
//!
//! No `connection_init` within `GRAPHQL_WS_INIT_TIMEOUT_SECONDS` closes with 4408, shutdown
//! closes with 1001, and the server pings every 30 s.
//!
//! Why this glue rather than async-graphql-axum's `GraphQLWebSocket`: that one hands the whole
//! socket to async-graphql's protocol driver, which runs every subscription as an execution of its
//! own; live subscriptions here join shared groups ([`super::live`]), so the connection must take
//! them out of the input and serve them itself. The driver (`async_graphql::http::WebSocket`) still
//! speaks the protocol and runs queries and mutations. Owning the socket is also what the rules
//! above need: tungstenite's size error is seen and answered with 1009 (that glue just ends the
//! input on a read error), before `connection_init` too; each operation's key is checked before the
//! driver sees it, and a revoked key closes with 4403 even on an idle connection (the driver has
//! only `on_connection_init`, and closes a refused init with 1002). Rate limits hold through the
//! same guard as over HTTP, fed by the client address the connection puts into its data.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_graphql::http::{ClientMessage, WebSocket, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket as Socket};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::{FutureExt, Sink, SinkExt, Stream, StreamExt};
use std::collections::HashMap;

use futures::stream::SelectAll;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::connection::connection_data;
use super::endpoint::GraphqlEndpoint;
use super::public::ClientAddr;
use super::ws_pending::PendingSlot;
use crate::auth::Viewer;
use crate::state::AppState;

const FORBIDDEN: &str = "Forbidden";
/// The close reason when the key could not be checked (the database failed): 1011, which a
/// client retries, unlike 4403, which tells it to ask for another key.
const CHECK_FAILED: &str = "internal server error";
/// Interval of server pings on an acknowledged connection.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Shortest interval between two checks of an open connection's key (when
/// `API_KEY_CACHE_SECONDS` is 0, every operation is still checked against the database).
const MIN_RECHECK: Duration = Duration::from_secs(1);
/// Initial read buffer of a socket, and the most read from it at once. Client messages are small
/// (`connection_init`, `subscribe`, `pong`); a larger one grows the buffer to its size, up to the
/// limit. Kept small because every socket holds it while idle, and because tungstenite zeroes
/// its free part each time it tries to read (every time the connection wakes).
const READ_BUFFER: usize = 512;
/// Frames queued for a socket are written together up to this many bytes (one `send` for the
/// events a subscriber's connection finds waiting, rather than one each); a message is written
/// at once when nothing else is waiting. The buffer grows only as far as a batch needs.
const WRITE_BATCH: usize = 16 * 1024;
/// Retry interval when the key could not be checked (the database did not answer).
const RECHECK_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// A connection's socket, shared by the connection's task and the groups of its live
/// subscriptions ([`super::live`]). A group writes an event's frame into the socket itself when
/// nothing is in its way, so an event reaches ten thousand subscribers without waking ten
/// thousand tasks (each waking meant a queue pop, the connection's select over its socket,
/// timers and subscriptions, and a lock of the split socket: most of the server's own time in
/// the fan-out). When something is in the way, the frame goes through the subscriber's bounded
/// queue and the connection's task, as before: that keeps each subscriber's frames in order, and
/// a peer that does not read still ends with `SUBSCRIBER_LAGGED` once its queue is full.
pub struct Outlet {
    io: Mutex<Io>,
    /// The connection task's: a group's frame that the kernel did not take whole registers it,
    /// so the task finishes the write when the socket can take more.
    waker: Waker,
}

struct Io {
    socket: Socket,
    /// The connection's task has taken frames from its subscriptions and not yet written them:
    /// a group's frame written now could overtake one of them.
    in_hand: bool,
    /// The socket holds bytes the kernel did not take (the peer reads slowly): frames wait in
    /// their subscribers' queues until the connection's task has written these.
    backed_up: bool,
}

impl Outlet {
    fn new(socket: Socket, waker: Waker) -> Self {
        Self {
            io: Mutex::new(Io {
                socket,
                in_hand: false,
                backed_up: false,
            }),
            waker,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Io> {
        self.io.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the frame `frame` gives into the socket at once, unless the connection's task is
    /// using the socket or holds frames, or the socket is backed up; `frame` gives none when the
    /// subscriber has frames queued (they go first). Whether the frame was written; if not,
    /// the caller queues it. Never waits: a group does not stop for one connection.
    pub(super) fn try_write(&self, frame: impl FnOnce() -> Option<String>) -> bool {
        let Ok(mut io) = self.io.try_lock() else {
            return false;
        };
        if io.in_hand || io.backed_up {
            return false;
        }
        let Some(frame) = frame() else {
            return false;
        };
        let mut cx = Context::from_waker(&self.waker);
        let mut socket = Pin::new(&mut io.socket);
        if !matches!(socket.as_mut().poll_ready(&mut cx), Poll::Ready(Ok(())))
            || socket
                .as_mut()
                .start_send(Message::Text(frame.into()))
                .is_err()
        {
            // Closing or closed: the connection's task is ending it.
            return false;
        }
        // The frame is in the socket's buffer now, ahead of anything written later. An error
        // (the peer gone) is the connection task's to see when it next reads or writes.
        io.backed_up = socket.poll_flush(&mut cx).is_pending();
        true
    }

    /// Finishes writing what a group's frame left in the socket; pending while there is none.
    pub(super) fn poll_backlog(&self, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        let mut io = self.lock();
        if !io.backed_up {
            // The group that backs the socket up registers this task's waker with it.
            return Poll::Pending;
        }
        let flushed = io.socket.poll_flush_unpin(cx);
        io.backed_up = flushed.is_pending();
        flushed
    }

    fn set_in_hand(&self, in_hand: bool) {
        self.lock().in_hand = in_hand;
    }
}

/// The connection task's side of the shared socket: each call holds the lock for its duration.
#[derive(Clone)]
struct Shared(Arc<Outlet>);

impl Stream for Shared {
    type Item = Result<Message, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.lock().socket.poll_next_unpin(cx)
    }
}

impl Sink<Message> for Shared {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.lock().socket.poll_ready_unpin(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        self.0.lock().socket.start_send_unpin(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let mut io = self.0.lock();
        let flushed = io.socket.poll_flush_unpin(cx);
        io.backed_up = flushed.is_pending();
        flushed
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.lock().socket.poll_close_unpin(cx)
    }
}

/// Upgrades a `GET /graphql` that asks for WebSocket to a GraphQL connection.
pub async fn upgrade(
    endpoint: GraphqlEndpoint,
    client: ClientAddr,
    parts: &mut axum::http::request::Parts,
) -> Response {
    use axum::extract::FromRequestParts;
    use axum::extract::ws::WebSocketUpgrade;
    use std::str::FromStr;
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .find_map(|p| async_graphql::http::WebSocketProtocols::from_str(p.trim()).ok())
        });
    let Some(protocol) = protocol else {
        return (
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Protocol must offer graphql-transport-ws or graphql-ws",
        )
            .into_response();
    };
    let ws = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let slot = match endpoint.pending.admit(client.0) {
        Ok(slot) => slot,
        Err(full) => {
            return full.into_response(endpoint.state.settings.graphql.ws_init_timeout);
        }
    };
    // The same bound as an HTTP body; tungstenite checks a frame's length from its header.
    let max = endpoint.state.settings.graphql.max_body_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        // Idle sockets are most of a live server's memory: tungstenite allocates its read buffer
        // up front (128 KiB by default), and grows it only for a message that needs it. The
        // write buffer starts empty and holds only a batch of frames until its flush.
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BATCH)
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(socket, endpoint, protocol, client, slot))
}

/// The key a connection was opened with, once `connection_init` accepted it.
struct Session {
    key: String,
    viewer: Viewer,
    /// When the key's verdict expires, so the next check asks the database.
    recheck_at: std::time::Instant,
}

/// Why the server stops reading a socket, when the peer must be told with a close code.
#[derive(Debug)]
enum Stop {
    /// A message or frame above the size limit: 1009.
    TooLarge,
    /// The key was revoked: 4403.
    Revoked,
    /// The key could not be checked: 1011.
    Failed,
}

impl Stop {
    fn close(&self) -> Message {
        match self {
            Stop::TooLarge => close(1009, "message too large"),
            Stop::Revoked => close(4403, FORBIDDEN),
            Stop::Failed => close(1011, CHECK_FAILED),
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// Whether a read error is tungstenite refusing a message or frame over the size limit.
fn too_large(error: &axum::Error) -> bool {
    use std::error::Error;
    error
        .source()
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// What the connection serves itself rather than through the GraphQL driver: subscriptions,
/// which share their live execution with other connections' (see [`super::live`]).
enum Diverted {
    Start(String, Box<async_graphql::Request>),
    Stop(String),
}

/// The client's messages as the GraphQL driver reads them. An operation (`subscribe`, `start`)
/// is let through only after the key has been checked again; a revoked key, an oversized
/// message or a failed check ends the input, and `stopped` says which. Subscriptions of an
/// acknowledged connection, and every `complete`/`stop`, go to `diverted`.
fn incoming(
    socket: Shared,
    state: AppState,
    session: Arc<OnceLock<Session>>,
    stopped: oneshot::Sender<Stop>,
    diverted: mpsc::UnboundedSender<Diverted>,
) -> impl Stream<Item = serde_json::Result<ClientMessage>> {
    futures::stream::unfold(
        Some((socket, state, session, stopped, diverted)),
        |input| async move {
            let (mut socket, state, session, stopped, diverted) = input?;
            let stop = loop {
                let message = match socket.next().await {
                    Some(Ok(Message::Text(t))) => ClientMessage::from_bytes(t.as_str()),
                    Some(Ok(Message::Binary(b))) => ClientMessage::from_bytes(&b),
                    Some(Ok(Message::Close(_))) | None => return None,
                    Some(Ok(_)) => continue,
                    Some(Err(e)) if too_large(&e) => break Stop::TooLarge,
                    Some(Err(_)) => return None,
                };
                if let (Ok(ClientMessage::Start { .. }), Some(session)) = (&message, session.get())
                {
                    // Boxed: the check's future (cache, then database) is kilobytes, and held
                    // inline it would be part of every idle connection.
                    match Box::pin(state.guards.key_cache.verify(&state.store.db, &session.key))
                        .await
                    {
                        Ok(verdict) if verdict.viewer.is_some() => {}
                        Ok(_) => break Stop::Revoked,
                        Err(e) => {
                            tracing::error!(error = %e, "API key check failed");
                            break Stop::Failed;
                        }
                    }
                }
                let message = match message {
                    Ok(ClientMessage::Start { id, mut payload }) if session.get().is_some() => {
                        if super::live::is_subscription(&mut payload) {
                            let _ = diverted.unbounded_send(Diverted::Start(id, Box::new(payload)));
                            continue;
                        }
                        Ok(ClientMessage::Start { id, payload })
                    }
                    Ok(ClientMessage::Stop { id }) => {
                        // The driver ignores ids it does not run; so does the connection.
                        let _ = diverted.unbounded_send(Diverted::Stop(id.clone()));
                        Ok(ClientMessage::Stop { id })
                    }
                    other => other,
                };
                return Some((message, Some((socket, state, session, stopped, diverted))));
            };
            let _ = stopped.send(stop);
            None
        },
    )
}

/// Serves one upgraded connection until it closes or the process shuts down.
async fn serve(
    socket: Socket,
    endpoint: GraphqlEndpoint,
    protocol: WebSocketProtocols,
    client: ClientAddr,
    slot: PendingSlot,
) {
    // Held until the connection is acknowledged, or closes without that.
    let mut slot = Some(slot);
    let waker = std::future::poll_fn(|cx| Poll::Ready(cx.waker().clone())).await;
    let outlet = Arc::new(Outlet::new(socket, waker));
    let mut sink = Shared(outlet.clone());
    let stream = sink.clone();
    let state = endpoint.state.clone();
    let session: Arc<OnceLock<Session>> = Arc::default();
    let (stopped, mut stop) = oneshot::channel();
    // futures' channel rather than tokio's: tokio's allocates a block of 32 slots and a
    // cache-padded header up front (1.5 KiB per connection), for a message or two per
    // subscription.
    let (divert, mut diverted) = mpsc::unbounded();
    let input = incoming(stream, state.clone(), session.clone(), stopped, divert);
    let opened = session.clone();
    // Set when `connection_init` arrives: the init timeout is for sending it, not for the key
    // check that follows (a slow database would otherwise answer 4408, blaming the client).
    let init_received = Arc::new(AtomicBool::new(false));
    let received = init_received.clone();
    let init = move |payload: serde_json::Value| async move {
        received.store(true, Ordering::Relaxed);
        let key = payload
            .get("apiKey")
            .and_then(|k| k.as_str())
            .map(str::to_owned)
            .unwrap_or_default();
        let verdict = match state.guards.key_cache.verify(&state.store.db, &key).await {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::error!(error = %e, "API key check failed");
                return Err(async_graphql::Error::new(CHECK_FAILED));
            }
        };
        let Some(viewer) = verdict.viewer else {
            return Err(async_graphql::Error::new(FORBIDDEN));
        };
        let recheck_at = verdict.expires_at;
        let data = connection_data(&state, &viewer, client);
        let _ = opened.set(Session {
            key,
            viewer,
            recheck_at,
        });
        Ok(data)
    };
    let timeout = endpoint.state.settings.graphql.ws_init_timeout;
    let ping = match protocol {
        WebSocketProtocols::GraphQLWS => r#"{"type":"ping"}"#,
        WebSocketProtocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
    };
    let mut messages = std::pin::pin!(
        WebSocket::from_message_stream(endpoint.gateway.clone(), input, protocol)
            .on_connection_init(init)
    );
    // Server pings keep idle subscriptions alive through proxies and reveal dead peers.
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let deadline = async move {
        tokio::time::sleep(timeout).await;
        if init_received.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(deadline);
    // Armed once the connection is acknowledged.
    let recheck = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(recheck);
    let mut acknowledged = false;
    // This connection's subscriptions, and what ends each one early (`complete` from the client).
    let mut subscriptions = SelectAll::new();
    let mut cancels: HashMap<String, oneshot::Sender<()>> = HashMap::new();
    // Registered once: a fresh `cancelled()` in every turn of the loop would take the token's
    // lock (one for every connection of the process) twice per frame sent.
    let shutdown = endpoint.shutdown.cancelled();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            // Frames first: a connection is woken mostly by its subscriptions' events, and then
            // need not poll the rest (reading the socket, timers) before writing them. The rest
            // is polled whenever no frame is ready; a subscriber that keeps frames ready for
            // longer than its queue lasts is ended as lagging.
            biased;
            Some(text) = next_frame(&outlet, &mut subscriptions), if !subscriptions.is_empty() => {
                // Everything the subscriptions have ready goes out in one write: when events
                // queue up (a busy server), a subscriber costs one `send` per batch, not one per
                // event.
                let mut batch = futures::stream::iter(std::iter::once(text).chain(
                    std::iter::from_fn(|| subscriptions.next().now_or_never().flatten()),
                ))
                .map(|text: String| Ok(Message::Text(text.into())));
                if sink.send_all(&mut batch).await.is_err() {
                    return;
                }
                // Written and flushed: the groups may write again.
                outlet.set_in_hand(false);
            }
            written = std::future::poll_fn(|cx| outlet.poll_backlog(cx)) => {
                if written.is_err() {
                    return;
                }
            }
            Some(diverted) = diverted.next() => match diverted {
                Diverted::Start(id, request) => {
                    let Some(session) = session.get() else { continue };
                    // Subscriptions that completed have dropped their end of `cancels`.
                    cancels.retain(|_, cancel| !cancel.is_closed());
                    let (cancel, cancelled) = oneshot::channel();
                    // A reused id replaces the subscription that had it.
                    cancels.insert(id.clone(), cancel);
                    let frames = super::live::subscribe(
                        &endpoint.live, &session.viewer, client, protocol, &outlet, &id, *request,
                    );
                    let complete = format!(
                        r#"{{"type":"complete","id":{}}}"#,
                        serde_json::Value::from(id)
                    );
                    subscriptions.push(
                        frames
                            .take_until(cancelled)
                            .chain(futures::stream::once(std::future::ready(complete))),
                    );
                }
                Diverted::Stop(id) => {
                    cancels.remove(&id);
                }
            },
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => {
                    // The first message after a successful init is its acknowledgement.
                    if !acknowledged && let Some(session) = session.get() {
                        acknowledged = true;
                        drop(slot.take());
                        recheck.as_mut().reset(next_check(session.recheck_at));
                    }
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    // async-graphql answers a refused connection_init with 1002; the protocol
                    // says 4403 for a bad key, and a check that failed is the server's error.
                    let code = match reason.as_str() {
                        FORBIDDEN => 4403,
                        CHECK_FAILED => 1011,
                        _ => code,
                    };
                    let _ = sink.send(close(code, &reason)).await;
                    return;
                }
                None => {
                    if let Ok(stop) = stop.try_recv() {
                        let _ = sink.send(stop.close()).await;
                    }
                    return;
                }
            },
            () = &mut recheck, if acknowledged => {
                let Some(session) = session.get() else { return };
                let state = &endpoint.state;
                // Boxed, like the check in `incoming`: not part of every idle connection.
                match Box::pin(state.guards.key_cache.verify(&state.store.db, &session.key)).await {
                    Ok(verdict) if verdict.viewer.is_some() => {
                        recheck.as_mut().reset(next_check(verdict.expires_at));
                    }
                    Ok(_) => {
                        let _ = sink.send(Stop::Revoked.close()).await;
                        return;
                    }
                    Err(e) => {
                        // Open subscriptions keep running through a database hiccup; the next
                        // operation is refused if the key cannot be checked then.
                        tracing::warn!(error = %e, "API key check failed; retrying");
                        recheck.as_mut().reset(Instant::now() + RECHECK_AFTER_FAILURE);
                    }
                }
            }
            () = &mut deadline, if !acknowledged => {
                let _ = sink.send(close(4408, "Connection initialisation timeout")).await;
                return;
            }
            _ = keepalive.tick(), if acknowledged => {
                if sink.send(Message::Text(ping.into())).await.is_err() {
                    return;
                }
            }
            () = &mut shutdown => {
                let _ = sink.send(close(1001, "server shutting down")).await;
                return;
            }
        }
    }
}

/// The next frame of the connection's subscriptions. From before a frame is taken until the
/// connection's task has written it, the groups leave the socket to the task: a frame of theirs
/// could overtake it.
fn next_frame<S: Stream<Item = String> + Unpin>(
    outlet: &Outlet,
    subscriptions: &mut S,
) -> impl Future<Output = Option<String>> {
    std::future::poll_fn(move |cx| {
        outlet.set_in_hand(true);
        let next = subscriptions.poll_next_unpin(cx);
        if !matches!(next, Poll::Ready(Some(_))) {
            outlet.set_in_hand(false);
        }
        next
    })
}

/// When to check a key again: when its verdict expires, and not more often than `MIN_RECHECK`.
fn next_check(expires_at: std::time::Instant) -> Instant {
    Instant::from_std(expires_at).max(Instant::now() + MIN_RECHECK)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(super) mod tests {
    use super::*;
    use axum::extract::ws::WebSocketUpgrade;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpSocket;

    /// An outlet on a real socket, upgraded by axum as the server's are, and the peer's end of
    /// it past the handshake. Both ends' kernel buffers are small, so a peer that does not read
    /// backs the outlet up after a few frames. Nothing flushes the outlet's backlog unless the
    /// test does ([`Outlet::poll_backlog`]).
    pub(in crate::graphql) async fn outlet_and_peer() -> (Arc<Outlet>, std::net::TcpStream) {
        let listening = TcpSocket::new_v4().unwrap();
        // Inherited by the accepted socket.
        listening.set_send_buffer_size(4096).unwrap();
        listening.bind(([127, 0, 0, 1], 0).into()).unwrap();
        let listener = listening.listen(8).unwrap();
        let address = listener.local_addr().unwrap();
        let (upgraded, socket) = oneshot::channel();
        let upgraded = Arc::new(Mutex::new(Some(upgraded)));
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(move |ws: WebSocketUpgrade| async move {
                ws.on_upgrade(move |socket| async move {
                    if let Some(upgraded) = upgraded.lock().unwrap().take() {
                        let _ = upgraded.send(socket);
                    }
                })
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let peer = TcpSocket::new_v4().unwrap();
        peer.set_recv_buffer_size(4096).unwrap();
        let mut peer = peer.connect(address).await.unwrap();
        peer.write_all(
            b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        // The response's head, byte by byte so that no frame is read with it.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(peer.read_u8().await.unwrap());
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "upgraded");
        let outlet = Outlet::new(socket.await.unwrap(), futures::task::noop_waker());
        let peer = peer.into_std().unwrap();
        peer.set_nonblocking(false).unwrap();
        (Arc::new(outlet), peer)
    }
}
