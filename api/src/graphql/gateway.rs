//! The one way operations reach the schema, over HTTP and WebSocket alike: the depth and
//! fragment-expansion bound ([`DepthLimit`]) runs first, then the operation executes in a
//! `graphql` span, and each query or mutation is counted by type, (bounded) name and first
//! error code and timed from the request to its response.
//!
//! This is deliberately not an async-graphql extension: with any extension registered,
//! async-graphql sends every field of every response through the extension chain (a registry
//! lookup and a boxed future per extension per field), so their cost grew with the size of the
//! answer. Done here, it costs once per operation.

use std::sync::Arc;
use std::time::Instant;

use async_graphql::futures_util::stream::{self, BoxStream, StreamExt};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Data, Executor, Request, Response, Value};
use jobs::metrics::{GraphqlLabels, GraphqlOperation, Metrics, PreparationLabel};
use prometheus_client::metrics::counter::Counter;
use tracing::Instrument;

use super::AppSchema;
use super::arguments::{InputTypes, Uses};
use super::depth::DepthLimit;
use super::direct::Direct;
use super::documents::Known;
use super::error::classify_request_error;

#[derive(Clone)]
pub struct Gateway {
    schema: AppSchema,
    /// The same schema with async-graphql's fast validation, for documents that passed the
    /// full one before; the request-dependent rule is checked here instead (see `arguments`).
    validated: AppSchema,
    /// Queries of `validated` without its per-request preparation, where a document allows.
    direct: Arc<Direct>,
    inputs: Arc<InputTypes>,
    depth: DepthLimit,
    metrics: Arc<Metrics>,
    prepared: Arc<Prepared>,
}

/// The `graphql_preparations` counters, looked up in their family once.
struct Prepared {
    parsed: Counter,
    validated: Counter,
    fast: Counter,
    direct: Counter,
}

/// The `graphql_preparations` counter of `preparation`. Its own function: the family's guard
/// must be dropped before the next label is created, or that creation waits for it forever.
fn prepared(metrics: &Metrics, preparation: &'static str) -> Counter {
    metrics
        .graphql_preparations
        .get_or_create(&PreparationLabel { preparation })
        .clone()
}

/// What the gateway learned of a request before running it.
struct Checked {
    labels: GraphqlOperation,
    subscription: bool,
    /// The bound's refusal, answered instead of running the operation.
    refused: Option<async_graphql::ServerError>,
}

impl Gateway {
    /// `schema` validates fully and `validated` fast; both are the same schema, and `direct`
    /// runs `validated`'s queries.
    pub fn new(
        schema: AppSchema,
        validated: AppSchema,
        direct: Direct,
        depth: DepthLimit,
        metrics: Arc<Metrics>,
    ) -> Self {
        let inputs = InputTypes::from_sdl(&schema.sdl())
            .unwrap_or_else(|e| panic!("the schema's own SDL does not parse: {e}"));
        Self {
            schema,
            validated,
            direct: Arc::new(direct),
            inputs: Arc::new(inputs),
            depth,
            prepared: Arc::new(Prepared {
                parsed: prepared(&metrics, "parsed"),
                validated: prepared(&metrics, "validated"),
                fast: prepared(&metrics, "fast"),
                direct: prepared(&metrics, "direct"),
            }),
            metrics,
        }
    }

    /// What a document, once validated, needs checked on each request; `None` when it
    /// must be validated fully every time.
    pub fn uses(&self, doc: &async_graphql::parser::types::ExecutableDocument) -> Option<Uses> {
        self.inputs.uses(doc)
    }

    /// Whether the queries of a document, once validated, run without async-graphql's
    /// per-request preparation ([`Direct`]).
    pub fn runs_directly(&self, doc: &ExecutableDocument) -> bool {
        self.direct.runs(doc)
    }

    /// Runs a request for a document that ran before without a request error; the request
    /// carries no parsed document (`known` has it).
    pub async fn execute_known(&self, request: Request, known: &Known) -> Response {
        self.run(request, Some(known)).await
    }

    async fn run(&self, mut request: Request, known: Option<&Known>) -> Response {
        let started = Instant::now();
        let checked = self.check(&mut request, known.map(|k| &k.doc));
        let response = match checked.refused {
            Some(error) => Response::from_errors(vec![error]),
            None => {
                let span = Self::span(&checked.labels);
                self.answer(request, known).instrument(span).await
            }
        };
        Self::observe(&self.metrics, checked.labels, started, &response);
        response
    }

    /// The answer to a request within the bound. A document that ran before skips what it
    /// can: validation but for its variables when they fit (a value that does not fit is
    /// answered by full validation, word for word), and preparation too where [`Direct`]
    /// allows.
    async fn answer(&self, mut request: Request, known: Option<&Known>) -> Response {
        let Some(known) = known else {
            self.prepared.parsed.inc();
            return self.schema.execute(request).await;
        };
        let fits = known.uses.as_ref().is_some_and(|uses| {
            let operation = request.operation_name.as_deref();
            uses.fit(&self.inputs, operation, &request.variables)
        });
        if fits && known.direct {
            match self.direct.execute(request, &known.doc).await {
                Ok(response) => {
                    self.prepared.direct.inc();
                    return response;
                }
                // Not a query: prepared as any other.
                Err(given_back) => request = given_back,
            }
        }
        request.set_parsed_query(known.doc.clone());
        let (schema, counter) = if fits {
            (&self.validated, &self.prepared.fast)
        } else {
            (&self.schema, &self.prepared.validated)
        };
        counter.inc();
        schema.execute(request).await
    }

    /// Parses the document (kept in the request, so it happens once) and bounds it before
    /// async-graphql's own recursion check, which walks every fragment spread without
    /// remembering fragments: exponential work for chained fragments, which only a check that
    /// comes first can refuse. A parse error is left for the schema to report. A document that
    /// ran before (`known`, not in the request) passed the bound then; it depends on the
    /// document alone.
    fn check(&self, request: &mut Request, known: Option<&ExecutableDocument>) -> Checked {
        let requested = request.operation_name.clone();
        let parsed = match known {
            Some(doc) => Some(doc),
            None => request.parsed_query().ok(),
        };
        let (operation, refused) = match parsed {
            Some(doc) => (
                super::selected_operation(doc, requested.as_deref())
                    .map(|(name, op)| (name.map(str::to_owned), op.node.ty)),
                if known.is_some() {
                    None
                } else {
                    self.depth.check(doc).err()
                },
            ),
            None => (None, None),
        };
        let kind = operation.as_ref().map(|(_, ty)| *ty);
        // The document's own name when it has one operation and the request named none.
        let name = operation.and_then(|(name, _)| name).or(requested);
        Checked {
            labels: GraphqlOperation {
                operation_type: kind.map_or("unknown", |ty| match ty {
                    OperationType::Query => "query",
                    OperationType::Mutation => "mutation",
                    OperationType::Subscription => "subscription",
                }),
                operation_name: self.metrics.operation_name(name.as_deref()),
            },
            subscription: kind == Some(OperationType::Subscription),
            refused,
        }
    }

    fn span(labels: &GraphqlOperation) -> tracing::Span {
        tracing::info_span!(
            "graphql",
            operation.r#type = labels.operation_type,
            operation.name = %labels.operation_name,
        )
    }

    /// Counts and times one answered query or mutation.
    fn observe(metrics: &Metrics, labels: GraphqlOperation, started: Instant, response: &Response) {
        metrics
            .graphql_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        let error_code = response.errors.first().map_or_else(
            || "none".to_owned(),
            |error| {
                // Parse and validation errors get their code when the answer is written;
                // the same rule names them here.
                let mut error = error.clone();
                classify_request_error(&mut error);
                match error.extensions.as_ref().and_then(|x| x.get("code")) {
                    Some(Value::String(code)) => code.clone(),
                    _ => "UNKNOWN".to_owned(),
                }
            },
        );
        metrics
            .graphql_operations
            .get_or_create(&GraphqlLabels {
                operation_type: labels.operation_type,
                operation_name: labels.operation_name,
                error_code,
            })
            .inc();
    }
}

impl Executor for Gateway {
    async fn execute(&self, request: Request) -> Response {
        self.run(request, None).await
    }

    /// Over WebSocket: a subscription streams on; a query or mutation answers once and is
    /// counted and traced as over HTTP.
    fn execute_stream(
        &self,
        mut request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let started = Instant::now();
        let checked = self.check(&mut request, None);
        if let Some(error) = checked.refused {
            return stream::once(async move { Response::from_errors(vec![error]) }).boxed();
        }
        let mut answers = self
            .schema
            .execute_stream_with_session_data(request, session_data.unwrap_or_default());
        if checked.subscription {
            return answers;
        }
        let metrics = self.metrics.clone();
        stream::once(async move {
            let span = Self::span(&checked.labels);
            let response = answers
                .next()
                .instrument(span)
                .await
                .unwrap_or_else(|| Response::new(Value::Null));
            Self::observe(&metrics, checked.labels, started, &response);
            response
        })
        .boxed()
    }
}
