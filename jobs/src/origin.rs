//! Where a job comes from: when it was queued (for the queue-wait histogram) and the trace of
//! the request or sweep that queued it, carried in the job so that the send of an email or a
//! webhook is a child span of the request that caused it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics::Metrics;

/// Carried inside every job (flattened into its JSON; jobs queued before it existed decode with
/// neither field).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Milliseconds since the Unix epoch when the job was queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enqueued_at_ms: Option<i64>,
    /// The W3C `traceparent` of the span that queued the job; `None` when traces are not
    /// exported (the span has no trace context then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl Origin {
    /// Now, in the current span.
    pub fn here() -> Self {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new()
            .inject_context(&tracing::Span::current().context(), &mut carrier);
        Self {
            enqueued_at_ms: Some(chrono::Utc::now().timestamp_millis()),
            traceparent: carrier.remove("traceparent"),
        }
    }

    /// How long the job waited in its queue (for a scheduled job: since it was queued, which
    /// includes the time until it was due).
    fn waited(&self) -> Option<Duration> {
        let ms = chrono::Utc::now().timestamp_millis() - self.enqueued_at_ms?;
        u64::try_from(ms).ok().map(Duration::from_millis)
    }

    /// Runs a job's work in `span`, made a child of the span that queued the job, and counts it
    /// in the job metrics of `queue`.
    pub async fn run<T, E>(
        &self,
        metrics: &Arc<Metrics>,
        queue: &'static str,
        span: tracing::Span,
        work: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        if let Some(traceparent) = &self.traceparent {
            let carrier = HashMap::from([("traceparent".to_owned(), traceparent.clone())]);
            let parent = TraceContextPropagator::new().extract(&carrier);
            // Fails only when no OpenTelemetry layer is installed: then nothing is exported.
            let _ = span.set_parent(parent);
        }
        let timer = metrics.job_started(queue, self.waited());
        let result = work.instrument(span).await;
        timer.finish(result.is_ok());
        result
    }
}
