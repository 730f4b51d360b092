//! The process's Prometheus metrics: one registry per process (per app in the tests, which run
//! several in one process), handed to whatever records into it. Label values come from closed
//! sets (route templates, queue names, outcome words, error codes); no id, email or token ever
//! becomes a label.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// Latency buckets: 1 ms to about 33 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Waiting buckets (job queue wait, webhook delivery): 10 ms to about 5.8 h, quadrupling.
fn waiting() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 4.0, 12))
}

type Latencies<L> = Family<L, Histogram, fn() -> Histogram>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    /// The route template (`/p/i/{token}`), never the path itself.
    pub route: String,
    pub status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpRoute {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GraphqlLabels {
    pub operation_type: &'static str,
    pub operation_name: String,
    /// The first error's `extensions.code`; `none` when the operation had no error.
    pub error_code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GraphqlOperation {
    pub operation_type: &'static str,
    pub operation_name: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobOutcome {
    pub queue: &'static str,
    /// `succeeded` or `failed` (the handler returned an error: the database was unreachable).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailKind {
    /// `invitation`, `reminder`, `verification_code` …
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailFailure {
    pub kind: &'static str,
    /// `4xx` and `5xx` (the SMTP reply's class), `timeout`, `connection` (no reply), `unsendable`
    /// (the message could not be built), `moot` (the invitation can no longer be used).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PreparationLabel {
    /// `parsed`, `validated`, `fast` or `direct` (see `graphql_preparations`).
    pub preparation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabel {
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolState {
    /// `in_use` or `idle`.
    pub state: &'static str,
}

/// Distinct GraphQL operation names kept as label values; later names count as `other`, so a
/// client sending a new name with every request cannot grow the series without bound.
const MAX_OPERATION_NAMES: usize = 200;

/// Every metric of the process. Cheap to share: clone the `Arc`.
pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Latencies<HttpRoute>,
    pub graphql_operations: Family<GraphqlLabels, Counter>,
    pub graphql_duration: Latencies<GraphqlOperation>,
    pub graphql_preparations: Family<PreparationLabel, Counter>,
    operation_names: Mutex<HashSet<String>>,
    pub db_statement_duration: Histogram,
    pub db_statement_errors: Counter,
    pub db_pool_connections: Family<PoolState, Gauge>,
    pub db_pool_max: Gauge,
    pub db_pool_waiting: Gauge,
    pub jobs_enqueued: Family<QueueLabel, Counter>,
    pub jobs_started: Family<QueueLabel, Counter>,
    pub jobs_finished: Family<JobOutcome, Counter>,
    pub job_retries: Family<QueueLabel, Counter>,
    pub job_wait: Family<QueueLabel, Histogram, fn() -> Histogram>,
    pub job_duration: Latencies<QueueLabel>,
    pub job_backlog: Family<QueueLabel, Gauge>,
    pub job_backlog_oldest: Family<QueueLabel, Gauge>,
    pub emails_sent: Family<EmailKind, Counter>,
    pub emails_failed: Family<EmailFailure, Counter>,
    pub webhook_attempts: Family<OutcomeLabel, Counter>,
    pub webhook_attempt_duration: Histogram,
    pub webhook_delivery_latency: Histogram,
    pub webhook_endpoints_disabled: Counter,
    pub live_subscribers: Gauge,
    pub live_groups: Gauge,
    pub live_events_published: Counter,
    pub live_events_relayed: Counter,
    pub live_lagged: Counter,
    pub rate_limited: Family<LimitLabel, Counter>,
    pub api_key_cache: Family<OutcomeLabel, Counter>,
    pub expired: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("invitations");
        macro_rules! reg {
            ($name:literal, $help:literal, $metric:expr) => {{
                let metric = $metric;
                r.register($name, $help, metric.clone());
                metric
            }};
            ($name:literal, $help:literal, $unit:expr, $metric:expr) => {{
                let metric = $metric;
                r.register_with_unit($name, $help, $unit, metric.clone());
                metric
            }};
        }
        let s = Unit::Seconds;
        Self {
            http_requests: reg!(
                "http_requests",
                "HTTP requests answered, by route template and status class.",
                Family::default()
            ),
            http_duration: reg!(
                "http_request_duration",
                "Time to answer an HTTP request (to the response head).",
                s.clone(),
                Family::new_with_constructor(latency as fn() -> Histogram)
            ),
            graphql_operations: reg!(
                "graphql_operations",
                "GraphQL operations executed, by type, name and first error code.",
                Family::default()
            ),
            graphql_duration: reg!(
                "graphql_operation_duration",
                "Time to execute a GraphQL operation.",
                s.clone(),
                Family::new_with_constructor(latency as fn() -> Histogram)
            ),
            graphql_preparations: reg!(
                "graphql_preparations",
                "GraphQL queries and mutations over HTTP, by how their document was prepared: parsed (new: parsed and fully validated), validated (cached, fully validated again: a variable did not fit, or introspection), fast (cached: variables checked, the rest of validation skipped), direct (cached: no preparation at all).",
                Family::default()
            ),
            operation_names: Mutex::default(),
            db_statement_duration: reg!(
                "db_statement_duration",
                "Time of each SQL statement of the application pool (count: statements run).",
                s.clone(),
                latency()
            ),
            db_statement_errors: reg!(
                "db_statement_errors",
                "SQL statements that failed.",
                Counter::default()
            ),
            db_pool_connections: reg!(
                "db_pool_connections",
                "Connections of the application pool, by state (read at scrape time).",
                Family::default()
            ),
            db_pool_max: reg!(
                "db_pool_max_connections",
                "Most connections the application pool opens.",
                Gauge::default()
            ),
            db_pool_waiting: reg!(
                "db_pool_waiting",
                "Callers waiting for a database connection (read at scrape time): units of work until their BEGIN answered, and reads on PostgreSQL.",
                Gauge::default()
            ),
            jobs_enqueued: reg!(
                "jobs_enqueued",
                "Jobs pushed to a queue.",
                Family::default()
            ),
            jobs_started: reg!(
                "jobs_started",
                "Jobs a worker of this process started.",
                Family::default()
            ),
            jobs_finished: reg!(
                "jobs_finished",
                "Jobs a worker of this process finished, by outcome.",
                Family::default()
            ),
            job_retries: reg!(
                "job_retries_scheduled",
                "Deliveries whose attempt failed and that were queued again for later.",
                Family::default()
            ),
            job_wait: reg!(
                "job_queue_wait",
                "Time from a job's enqueue to its start.",
                s.clone(),
                Family::new_with_constructor(waiting as fn() -> Histogram)
            ),
            job_duration: reg!(
                "job_run_duration",
                "Time a job ran.",
                s.clone(),
                Family::new_with_constructor(latency as fn() -> Histogram)
            ),
            job_backlog: reg!(
                "job_backlog",
                "Deliveries waiting to be attempted (PENDING outbox rows), as last counted by the sweeper.",
                Family::default()
            ),
            job_backlog_oldest: reg!(
                "job_backlog_oldest_timestamp_seconds",
                "When the longest-waiting PENDING delivery became due (Unix time; 0 when none waits).",
                Family::default()
            ),
            emails_sent: reg!(
                "emails_sent",
                "Emails the SMTP server accepted, by kind.",
                Family::default()
            ),
            emails_failed: reg!(
                "emails_failed",
                "Email attempts that did not go out, by kind and reason.",
                Family::default()
            ),
            webhook_attempts: reg!(
                "webhook_attempts",
                "Webhook delivery attempts, by outcome.",
                Family::default()
            ),
            webhook_attempt_duration: reg!(
                "webhook_attempt_duration",
                "Time of one webhook attempt (request to response or failure).",
                s.clone(),
                latency()
            ),
            webhook_delivery_latency: reg!(
                "webhook_delivery_latency",
                "Time from a webhook delivery's creation to its successful attempt.",
                s.clone(),
                waiting()
            ),
            webhook_endpoints_disabled: reg!(
                "webhook_endpoints_disabled",
                "Webhook endpoints disabled because they kept failing.",
                Counter::default()
            ),
            live_subscribers: reg!(
                "live_subscribers",
                "Open live subscriptions (companyActivity, invitationActivity) in this process.",
                Gauge::default()
            ),
            live_groups: reg!(
                "live_groups",
                "Groups of live subscriptions sharing one document and scope (one execution per event each).",
                Gauge::default()
            ),
            live_events_published: reg!(
                "live_events_published",
                "Activity events this process published to live subscribers (its own commits and peers').",
                Counter::default()
            ),
            live_events_relayed: reg!(
                "live_events_relayed",
                "Activity events sent to live subscribers (one per subscriber that received it).",
                Counter::default()
            ),
            live_lagged: reg!(
                "live_subscribers_lagged",
                "Live subscribers told SUBSCRIBER_LAGGED: their queue filled up, or their group fell behind the in-process bus.",
                Counter::default()
            ),
            rate_limited: reg!(
                "rate_limited",
                "Requests refused by a rate limit, by limit.",
                Family::default()
            ),
            api_key_cache: reg!(
                "api_key_cache_lookups",
                "API key checks, by whether the cache answered (hit) or the database (miss).",
                Family::default()
            ),
            expired: reg!(
                "invitations_expired",
                "Invitations the expiry sweep moved to EXPIRED.",
                Counter::default()
            ),
            registry: r,
        }
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode the metrics");
        }
        out
    }

    /// `name` when it is a plain GraphQL name and one of the first [`MAX_OPERATION_NAMES`]
    /// seen; `other` past that; `anonymous` for none.
    pub fn operation_name(&self, name: Option<&str>) -> String {
        let Some(name) = name else {
            return "anonymous".to_owned();
        };
        let plain = name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !plain {
            return "other".to_owned();
        }
        let mut names = self
            .operation_names
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if names.contains(name) || names.len() < MAX_OPERATION_NAMES && names.insert(name.into()) {
            name.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Counts a job of `queue` that starts now, `waited` after its enqueue (when known), and
    /// returns what ends it.
    pub fn job_started(
        self: &Arc<Self>,
        queue: &'static str,
        waited: Option<Duration>,
    ) -> JobTimer {
        let label = QueueLabel { queue };
        self.jobs_started.get_or_create(&label).inc();
        if let Some(waited) = waited {
            self.job_wait
                .get_or_create(&label)
                .observe(waited.as_secs_f64());
        }
        JobTimer {
            metrics: self.clone(),
            queue,
            started: std::time::Instant::now(),
        }
    }
}

/// A running job; [`JobTimer::finish`] records its run time and outcome.
pub struct JobTimer {
    metrics: Arc<Metrics>,
    queue: &'static str,
    started: std::time::Instant,
}

impl JobTimer {
    pub fn finish(self, succeeded: bool) {
        let queue = self.queue;
        self.metrics
            .job_duration
            .get_or_create(&QueueLabel { queue })
            .observe(self.started.elapsed().as_secs_f64());
        let outcome = if succeeded { "succeeded" } else { "failed" };
        self.metrics
            .jobs_finished
            .get_or_create(&JobOutcome { queue, outcome })
            .inc();
    }
}
