//! The HTTP server: hyper driven by hand (as `axum::serve` does) so that slow and idle clients
//! are bounded: a client has `HTTP_HEADER_TIMEOUT_SECONDS` to send a request's headers (and a
//! keep-alive connection may idle that long between requests), at most
//! `HTTP_MAX_CONNECTIONS` connections are served at once (further ones wait in the listen
//! backlog until one closes), and `HTTP_REQUEST_TIMEOUT_SECONDS` bounds each request (a layer
//! in [`crate::startup::router`]).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
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
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    // `half_close`: while a request runs, hyper otherwise keeps reading its connection to
    // notice the client leaving, and drops the request's future when it does. Each of those
    // reads first reserves a fresh read buffer (the request still holds the old one): an
    // allocation of 16 KiB or more per request. A request that has started now runs to its end
    // (bounded by the request timeout), so a mutation is never cut off between its statements
    // because its client hung up; the answer to a client that has gone is dropped when it is
    // written.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .half_close(true);
    // HTTP/2 has no header timeout: an idle or silent peer is found by pings instead.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
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
        tokio::spawn(async move {
            // Clients that vanish or time out end here; nothing to report.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
