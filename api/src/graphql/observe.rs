//! Metrics and spans for GraphQL operations, over HTTP and WebSocket alike: each query or
//! mutation is counted by type, (bounded) name and first error code and timed from the request
//! to its response, parse and validation errors included; its execution runs in a `graphql`
//! span, and each root field (the resolvers that reach the database) in a span of its own.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextRequest, NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerResult, Value, Variables};
use jobs::metrics::{GraphqlLabels, GraphqlOperation, Metrics};
use tracing::Instrument;

use super::error::classify_request_error;

pub struct Observe(pub Arc<Metrics>);

impl ExtensionFactory for Observe {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Observed {
            metrics: self.0.clone(),
            operation: Mutex::default(),
        })
    }
}

/// One request's extension instance.
struct Observed {
    metrics: Arc<Metrics>,
    operation: Mutex<Operation>,
}

#[derive(Default)]
struct Operation {
    /// The operation the client named.
    name: Option<String>,
    /// `None` until the document is parsed (a parse error leaves it unknown).
    kind: Option<&'static str>,
}

impl Observed {
    fn operation(&self) -> std::sync::MutexGuard<'_, Operation> {
        self.operation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The operation's type and bounded name, as labels.
    fn labels(&self) -> GraphqlOperation {
        let operation = self.operation();
        GraphqlOperation {
            operation_type: operation.kind.unwrap_or("unknown"),
            operation_name: self.metrics.operation_name(operation.name.as_deref()),
        }
    }
}

#[async_trait::async_trait]
impl Extension for Observed {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let started = Instant::now();
        let response = next.run(ctx).await;
        let operation = self.labels();
        self.metrics
            .graphql_duration
            .get_or_create(&operation)
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
        self.metrics
            .graphql_operations
            .get_or_create(&GraphqlLabels {
                operation_type: operation.operation_type,
                operation_name: operation.operation_name,
                error_code,
            })
            .inc();
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.operation().name = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let mut operation = self.operation();
        operation.kind =
            super::selected_operation(&doc, operation.name.as_deref()).map(|ty| match ty {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            });
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let operation = self.labels();
        let span = tracing::info_span!(
            "graphql",
            operation.r#type = operation.operation_type,
            operation.name = %operation.operation_name,
        );
        next.run(ctx, operation_name).instrument(span).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        if info.path_node.parent.is_some() {
            // Nested fields read what their root loaded, or batch through DataLoaders.
            return next.run(ctx, info).await;
        }
        let span = tracing::info_span!("resolve", field = info.name);
        next.run(ctx, info).instrument(span).await
    }
}
