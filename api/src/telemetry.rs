//! Structured logs through `tracing`, request ids, and trace export over OTLP/HTTP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

/// Flushes the exported spans when dropped (at the end of `main`).
pub struct Telemetry(Option<SdkTracerProvider>);

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "cannot flush the exported spans");
        }
    }
}

/// Installs the global subscriber once; later calls (tests start many apps) are no-ops. Call it
/// inside the async runtime: the span exporter runs on it.
pub fn init(log: &LogSettings) -> Telemetry {
    let provider = log.otlp_endpoint.as_ref().and_then(|endpoint| {
        let url = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
        match SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(url)
            .build()
        {
            Ok(exporter) => Some(
                SdkTracerProvider::builder()
                    .with_span_processor(
                        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio)
                            .build(),
                    )
                    .with_resource(
                        Resource::builder()
                            .with_service_name(log.service_name.clone())
                            .build(),
                    )
                    .build(),
            ),
            Err(e) => {
                eprintln!("warning: traces are not exported: {e}");
                None
            }
        }
    });
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(log.service_name.clone())));
    let registry = tracing_subscriber::registry()
        .with(log.level.to_env_filter())
        .with(otel);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let installed = match log.format {
        LogFormat::Text => registry.with(fmt).try_init(),
        LogFormat::Json => registry.with(fmt.json().flatten_event(true)).try_init(),
    };
    // Another subscriber came first (a test process): its exporter, if any, is the one used.
    Telemetry(provider.filter(|_| installed.is_ok()))
}

/// Longest `x-request-id` taken from a client; a longer or odd one is replaced.
const MAX_REQUEST_ID: usize = 128;

/// Gives every request an id (the client's `x-request-id` when it is a plain token, else a new
/// UUID), echoes it in the response, and runs the request in an `http` span that carries it, so
/// every log line of the request names it.
///
/// The layers wrap the router from outside rather than through `Router::layer`, which wraps every
/// route in each layer separately: a request then cloned the whole boxed stack of its route, one
/// allocation per layer, and polled a boxed future per layer.
pub fn with_request_ids(router: Router) -> crate::server::App {
    let service = ServiceBuilder::new()
        .layer(axum::middleware::map_request(drop_odd_request_id))
        .layer(SetRequestIdLayer::x_request_id(RandomRequestId))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                let id = req
                    .extensions()
                    .get::<RequestId>()
                    .and_then(|id| id.header_value().to_str().ok())
                    .unwrap_or_default();
                // Never the raw URI: recipient links carry their credential in the path.
                tracing::info_span!(
                    "http",
                    method = %req.method(),
                    path = %crate::public::loggable_path(req.uri().path()),
                    request_id = %id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .map_response(IntoResponse::into_response)
        .service(router);
    crate::server::App::new(service)
}

/// A random (version 4) UUID per request, drawn from the thread's generator. tower-http's
/// `MakeRequestUuid` asks the operating system for every one (a `getrandom` system call per
/// request, and a `String` in between); an id has to be unique, not secret.
#[derive(Clone, Copy)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .ok()
            .map(RequestId::new)
    }
}

async fn drop_odd_request_id(mut request: Request) -> Request {
    let plain = |v: &HeaderValue| {
        let bytes = v.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= MAX_REQUEST_ID
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    };
    if request
        .headers()
        .get("x-request-id")
        .is_some_and(|v| !plain(v))
    {
        request.headers_mut().remove("x-request-id");
    }
    request
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_request_ids_are_distinct_random_uuids() {
        let request = Request::new(axum::body::Body::empty());
        let mut make = RandomRequestId;
        let mut id = || {
            let id = make.make_request_id(&request).unwrap();
            uuid::Uuid::parse_str(id.header_value().to_str().unwrap()).unwrap()
        };
        let (a, b) = (id(), id());
        assert_eq!(a.get_version(), Some(uuid::Version::Random));
        assert_eq!(b.get_version(), Some(uuid::Version::Random));
        assert_ne!(a, b);
    }
}
