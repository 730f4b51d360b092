//! Prometheus metrics on `/metrics` (text exposition format).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// Counters shared by the database callback and the handlers.
#[derive(Debug, Default)]
pub struct Metrics {
    pub db_statements: AtomicU64,
    pub db_statement_errors: AtomicU64,
    pub db_statement_micros: AtomicU64,
    pub graphql_requests: AtomicU64,
}

impl Metrics {
    /// Counts every SQL statement the application pool runs.
    pub fn observe_database(self: &Arc<Self>, db: &mut sea_orm::DatabaseConnection) {
        let metrics = self.clone();
        db.set_metric_callback(move |info| {
            metrics.db_statements.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(info.elapsed.as_micros()).unwrap_or(u64::MAX);
            metrics
                .db_statement_micros
                .fetch_add(micros, Ordering::Relaxed);
            if info.failed {
                metrics.db_statement_errors.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

pub async fn render(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "invitations_db_statements_total",
        "SQL statements executed by the application pool.",
        m.db_statements.load(Ordering::Relaxed),
    );
    counter(
        "invitations_db_statement_errors_total",
        "SQL statements that failed.",
        m.db_statement_errors.load(Ordering::Relaxed),
    );
    counter(
        "invitations_db_statement_seconds_total",
        "Time spent in SQL statements, in whole seconds.",
        m.db_statement_micros.load(Ordering::Relaxed) / 1_000_000,
    );
    counter(
        "invitations_graphql_requests_total",
        "GraphQL requests executed over HTTP.",
        m.graphql_requests.load(Ordering::Relaxed),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
