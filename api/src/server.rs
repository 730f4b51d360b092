//! The HTTP server: hyper driven by hand (as `axum::serve` does) so that slow and idle clients
//! are bounded: a client has `HTTP_HEADER_TIMEOUT_SECONDS` to send a request's headers (and a
//! keep-alive connection may idle that long between requests), at most
//! `HTTP_MAX_CONNECTIONS` connections are served at once (further ones wait in the listen
//! backlog until one closes), and `HTTP_REQUEST_TIMEOUT_SECONDS` bounds each request (a layer
//! in [`crate::startup::router`]). The public listener is served from `HTTP_THREADS` threads
//! of their own ([`serve_on_threads`]); the metrics listener from the main runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::config::HttpSettings;

/// HTTP/2 streams one connection may run at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What a listener serves: a router with the layers every request passes, as one service.
pub type App = tower::util::BoxCloneSyncService<Request, Response, Infallible>;

/// Serves `app` on `listener` until `stop` is cancelled, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: &HttpSettings,
    stop: CancellationToken,
) {
    let loops = Loops::new(limits.max_connections, 1);
    accept(listener, app, limits, stop, &loops, 0).await;
}

/// [`serve`] from `HTTP_THREADS` threads of its own, each an event loop (a current-thread
/// runtime) that accepts connections from the shared listener and serves each to its end.
/// Each thread first runs `setup` and keeps what it returns while it serves (its own read
/// connections, see `crate::db::Reads::serve_this_thread`). `HTTP_MAX_CONNECTIONS` bounds the
/// connections of all threads together, and a thread that serves more connections than another
/// leaves the next ones to the others (see [`Loops`]). Returns once every thread has let its
/// open requests finish.
///
/// Why not the process's multi-threaded runtime: there a request, the statement it joins and
/// the answer hop between worker threads that park and wake each other. In the read
/// benchmark's point lookup a server on one such runtime with two workers spent 36 % more CPU
/// per request than one with a single worker, and two single-threaded processes side by side
/// answered 1.3 to 1.6 times what one two-worker process did (README, design notes).
pub async fn serve_on_threads<S, F, G>(
    listener: TcpListener,
    app: App,
    limits: &HttpSettings,
    stop: CancellationToken,
    setup: S,
) where
    S: Fn() -> F + Clone + Send + 'static,
    F: Future<Output = G>,
{
    let listener = match listener.into_std() {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, "the HTTP listener cannot be shared between threads");
            return;
        }
    };
    let loops = Loops::new(limits.max_connections, limits.threads);
    let mut finished = Vec::with_capacity(limits.threads);
    for n in 0..limits.threads {
        let (done, finish) = tokio::sync::oneshot::channel::<()>();
        let thread = listener.try_clone().and_then(|listener| {
            let (app, limits, stop) = (app.clone(), limits.clone(), stop.clone());
            let (loops, setup) = (loops.clone(), setup.clone());
            std::thread::Builder::new()
                .name(format!("http-{n}"))
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build();
                    match runtime {
                        Ok(runtime) => runtime.block_on(async move {
                            let _kept = setup().await;
                            match TcpListener::from_std(listener) {
                                Ok(listener) => {
                                    accept(listener, app, &limits, stop, &loops, n).await;
                                }
                                Err(e) => tracing::error!(error = %e, "HTTP thread not started"),
                            }
                        }),
                        Err(e) => tracing::error!(error = %e, "HTTP thread not started"),
                    }
                    drop(done);
                })
        });
        match thread {
            Ok(_) => finished.push(finish),
            Err(e) => tracing::error!(error = %e, "HTTP thread not started"),
        }
    }
    if finished.is_empty() {
        // Serving from fewer threads beats not serving at all.
        tracing::error!("no HTTP thread started: serving on the main runtime");
        if let Ok(listener) = TcpListener::from_std(listener) {
            let loops = Loops::new(limits.max_connections, 1);
            accept(listener, app, limits, stop, &loops, 0).await;
        }
        return;
    }
    for finish in finished {
        // An error only says the thread ended without saying so (a panic), which is the end too.
        let _ = finish.await;
    }
}

/// What the accept loops of one listener share: the `HTTP_MAX_CONNECTIONS` permits, and the
/// connections each loop serves. Every loop waits on the same listener, and the kernel wakes
/// whichever it wakes: left to it, one thread may end up with most of a client's keep-alive
/// connections while the other core idles (a read benchmark round with 31 % of both cores
/// idle). So only the loops that serve the fewest connections accept.
#[derive(Clone)]
struct Loops {
    permits: Arc<Semaphore>,
    /// Connections per loop; [`NOT_SERVING`] for a loop that has not started or has ended.
    open: Arc<[AtomicUsize]>,
    /// Signalled whenever a count changes.
    changed: Arc<Notify>,
}

const NOT_SERVING: usize = usize::MAX;

impl Loops {
    fn new(max_connections: usize, loops: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max_connections)),
            open: (0..loops).map(|_| AtomicUsize::new(NOT_SERVING)).collect(),
            changed: Arc::new(Notify::new()),
        }
    }

    /// Waits until loop `me` serves no more connections than any other.
    async fn my_turn(&self, me: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the counts are read, so a change after the read wakes it.
            changed.as_mut().enable();
            let mine = self.open[me].load(Ordering::Acquire);
            if self.open.iter().all(|n| mine <= n.load(Ordering::Acquire)) {
                return;
            }
            changed.await;
        }
    }

    /// Changes loop `me`'s count by `change`, and wakes the loops waiting for their turn.
    fn count(&self, me: usize, change: impl Fn(usize) -> usize) {
        let _ =
            self.open[me].fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(change(n)));
        self.changed.notify_waiters();
    }
}

/// Loop `me` of [`Loops`] while it accepts; not counted any more once dropped (also on panic).
struct Serving<'a>(&'a Loops, usize);

impl<'a> Serving<'a> {
    fn start(loops: &'a Loops, me: usize) -> Self {
        loops.count(me, |_| 0);
        Self(loops, me)
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.0.count(self.1, |_| NOT_SERVING);
    }
}

/// Accepts and serves connections as loop `me` of `loops` (when its turn and a permit allow),
/// until `stop` is cancelled; then lets this loop's open requests finish.
async fn accept(
    listener: TcpListener,
    app: App,
    limits: &HttpSettings,
    stop: CancellationToken,
    loops: &Loops,
    me: usize,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    // HTTP/2 has no header timeout: an idle or silent peer is found by pings instead.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    let serving = Serving::start(loops, me);
    loop {
        tokio::select! {
            () = loops.my_turn(me) => {}
            () = stop.cancelled() => break,
        }
        let permit = tokio::select! {
            permit = loops.permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = stop.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        // Responses and WebSocket frames are written whole, each when it is ready: Nagle's
        // algorithm would hold one back until the peer acknowledged the previous one (up to the
        // peer's delayed-ACK timer), which is what a live subscriber's second queued event hit.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY could not be set");
        }
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            let app = app.clone();
            let request = request.map(axum::body::Body::new);
            async move { Ok::<_, Infallible>(app.oneshot(request).await.unwrap_or_else(|e| match e {})) }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        loops.count(me, |n| n.saturating_add(1));
        let loops = loops.clone();
        tokio::spawn(async move {
            // Clients that vanish or time out end here; nothing to report.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            // Once the loop has stopped serving, its count stays NOT_SERVING.
            loops.count(me, |n| if n == NOT_SERVING { n } else { n - 1 });
            drop(permit);
        });
    }
    drop((listener, serving));
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::{Loops, Serving};

    #[tokio::test]
    async fn only_the_loops_with_the_fewest_connections_accept() {
        let loops = Loops::new(10, 3);
        let (first, second) = (Serving::start(&loops, 0), Serving::start(&loops, 1));
        // Loop 2 never started: it holds nobody back.
        assert!(loops.my_turn(0).now_or_never().is_some());
        assert!(loops.my_turn(1).now_or_never().is_some());

        loops.count(0, |n| n + 1);
        let waiting = loops.my_turn(0);
        tokio::pin!(waiting);
        assert!(
            waiting.as_mut().now_or_never().is_none(),
            "loop 0 serves more"
        );
        assert!(loops.my_turn(1).now_or_never().is_some());

        // Loop 1 catches up: loop 0's turn comes back, and the waiting future sees it.
        loops.count(1, |n| n + 1);
        assert!(waiting.now_or_never().is_some());

        // A loop that stopped serving holds nobody back either.
        loops.count(0, |n| n + 1);
        drop(second);
        assert!(loops.my_turn(0).now_or_never().is_some());
        drop(first);
    }
}
