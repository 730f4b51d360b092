//! `/metrics` (Prometheus) and what feeds it from the HTTP side: every request by route
//! template and status class, every SQL statement of the application pool, the pool's
//! connections read at scrape time. The families themselves are in [`jobs::metrics`], shared
//! with the workers.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jobs::metrics::{HttpLabels, HttpRoute, Metrics, PoolState};
use sea_orm::{DatabaseConnection, DatabaseConnectionType};

use crate::state::Store;

/// Times every SQL statement the application pool runs.
pub fn observe_database(metrics: &Arc<Metrics>, db: &mut DatabaseConnection) {
    let metrics = metrics.clone();
    db.set_metric_callback(move |info| {
        metrics
            .db_statement_duration
            .observe(info.elapsed.as_secs_f64());
        if info.failed {
            metrics.db_statement_errors.inc();
        }
    });
}

/// `/metrics`: the families, with the pool's connections read now.
pub async fn render(
    State(m): State<Arc<Metrics>>,
    State(store): State<Arc<Store>>,
) -> impl IntoResponse {
    let (size, idle, max) = pool_state(&store.db);
    m.db_pool_connections
        .get_or_create(&PoolState { state: "in_use" })
        .set(size.saturating_sub(idle));
    m.db_pool_connections
        .get_or_create(&PoolState { state: "idle" })
        .set(idle);
    m.db_pool_max.set(max);
    m.db_pool_waiting.set(entity::pool::waiting());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.encode(),
    )
}

/// Open connections, idle ones, and the most the pool opens.
fn pool_state(db: &DatabaseConnection) -> (i64, i64, i64) {
    let wide = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    match &db.inner {
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            (
                i64::from(pool.size()),
                wide(pool.num_idle()),
                i64::from(pool.options().get_max_connections()),
            )
        }
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            let pool = db.get_sqlite_connection_pool();
            (
                i64::from(pool.size()),
                wide(pool.num_idle()),
                i64::from(pool.options().get_max_connections()),
            )
        }
        _ => (0, 0, 0),
    }
}

/// Counts and times every request by its route template (never the path: recipient links
/// carry their credential in it). Requests no route matched count as `unmatched`.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = match *request.method() {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        // Any token is a valid method: the rest share one label value.
        _ => "other",
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status_class = match response.status().as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics
        .http_duration
        .get_or_create(&HttpRoute {
            method,
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .http_requests
        .get_or_create(&HttpLabels {
            method,
            route,
            status_class,
        })
        .inc();
    response
}
