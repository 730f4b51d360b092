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
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Request, Response, Value};
use jobs::metrics::{GraphqlLabels, GraphqlOperation, Metrics};
use tracing::Instrument;

use super::AppSchema;
use super::arguments::{InputTypes, Uses};
use super::depth::DepthLimit;
use super::error::classify_request_error;

#[derive(Clone)]
pub struct Gateway {
    schema: AppSchema,
    /// The same schema with async-graphql's fast validation, for documents that passed the
    /// full one before; the request-dependent rule is checked here instead (see `arguments`).
    validated: AppSchema,
    inputs: Arc<InputTypes>,
    depth: DepthLimit,
    metrics: Arc<Metrics>,
}

/// What the gateway learned of a request before running it.
struct Checked {
    labels: GraphqlOperation,
    subscription: bool,
    /// The bound's refusal, answered instead of running the operation.
    refused: Option<async_graphql::ServerError>,
}

impl Gateway {
    /// `schema` validates fully and `validated` fast; both are the same schema.
    pub fn new(
        schema: AppSchema,
        validated: AppSchema,
        depth: DepthLimit,
        metrics: Arc<Metrics>,
    ) -> Self {
        let inputs = InputTypes::from_sdl(&schema.sdl())
            .unwrap_or_else(|e| panic!("the schema's own SDL does not parse: {e}"));
        Self {
            schema,
            validated,
            inputs: Arc::new(inputs),
            depth,
            metrics,
        }
    }

    /// What a document, once validated, needs checked on each request; `None` when it
    /// must be validated fully every time.
    pub fn uses(&self, doc: &async_graphql::parser::types::ExecutableDocument) -> Option<Uses> {
        self.inputs.uses(doc)
    }

    /// Runs a request whose document passed full validation before, with `uses` from
    /// [`Self::uses`] of that document.
    pub async fn execute_validated(&self, request: Request, uses: &Uses) -> Response {
        self.run(request, Some(uses)).await
    }

    async fn run(&self, mut request: Request, validated: Option<&Uses>) -> Response {
        let started = Instant::now();
        let checked = self.check(&mut request, validated.is_some());
        let response = match checked.refused {
            Some(error) => Response::from_errors(vec![error]),
            None => {
                // A value that does not fit is answered by full validation, word for word.
                let fast = validated.is_some_and(|uses| {
                    let operation = request.operation_name.as_deref();
                    uses.fit(&self.inputs, operation, &request.variables)
                });
                let schema = if fast { &self.validated } else { &self.schema };
                let span = Self::span(&checked.labels);
                schema.execute(request).instrument(span).await
            }
        };
        Self::observe(&self.metrics, checked.labels, started, &response);
        response
    }

    /// Parses the document (kept in the request, so it happens once) and bounds it before
    /// async-graphql's own recursion check, which walks every fragment spread without
    /// remembering fragments: exponential work for chained fragments, which only a check that
    /// comes first can refuse. A parse error is left for the schema to report. A document that
    /// ran before (`seen`) passed the bound then; it depends on the document alone.
    fn check(&self, request: &mut Request, seen: bool) -> Checked {
        let requested = request.operation_name.clone();
        let (operation, refused) = match request.parsed_query() {
            Ok(doc) => (
                super::selected_operation(doc, requested.as_deref())
                    .map(|(name, ty)| (name.map(str::to_owned), ty)),
                if seen {
                    None
                } else {
                    self.depth.check(doc).err()
                },
            ),
            Err(_) => (None, None),
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
        let checked = self.check(&mut request, false);
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
