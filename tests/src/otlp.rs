//! A small OTLP/HTTP trace receiver on loopback: it decodes what an exporter posts to
//! `/v1/traces` (protobuf) and keeps the spans for the test to read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    pub name: String,
    /// Hex, as W3C `traceparent` writes it.
    pub trace_id: String,
    pub attributes: HashMap<String, String>,
}

pub struct Collector {
    /// Base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the OTLP receiver");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, spans }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("spans lock").clone()
    }
}

async fn receive(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
    let mut received = spans.lock().expect("spans lock");
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .into_iter()
                    .filter_map(|kv| {
                        let value = match kv.value?.value? {
                            any_value::Value::StringValue(s) => s,
                            other => format!("{other:?}"),
                        };
                        Some((kv.key, value))
                    })
                    .collect();
                received.push(Span {
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    attributes,
                });
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}
