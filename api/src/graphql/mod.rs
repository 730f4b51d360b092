//! The GraphQL schema, built once and shared by HTTP and WebSocket.

pub mod arguments;
pub mod connection;
pub mod context;
mod depth;
mod direct;
mod document_key;
pub mod documents;
pub mod endpoint;
pub mod enums;
pub mod error;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod inputs;
pub mod json;
pub mod live;
pub mod loader;
pub mod mutation;
pub mod object;
pub mod paging;
pub mod plain;
pub mod public;
mod query;
mod subscription;
pub mod ws;
pub mod ws_pending;

use async_graphql::{SDLExportOptions, Schema, SchemaBuilder, ValidationMode};

use crate::config::GraphqlSettings;
use crate::state::AppState;

pub use mutation::Mutation;
pub use query::Query;
pub use subscription::Subscription;

pub type AppSchema = Schema<Query, Mutation, Subscription>;

/// The operation a request runs, with its name (if it has one): the one `name` selects, or the
/// only one. `None` when there is no such operation (execution reports it). The parser keeps a
/// lone *named* operation among the `Multiple` ones, and async-graphql runs it without
/// `operationName`, so it is the only one here too. An unnamed operation is selected whatever
/// `name` says, as for labels and checks; async-graphql refuses to run it under a name.
pub fn selected_operation<'d>(
    doc: &'d async_graphql::parser::types::ExecutableDocument,
    name: Option<&str>,
) -> Option<(
    Option<&'d str>,
    &'d async_graphql::Positioned<async_graphql::parser::types::OperationDefinition>,
)> {
    use async_graphql::parser::types::DocumentOperations;
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some((None, op)),
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get_key_value(name)
            .map(|(name, op)| (Some(name.as_str()), op)),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => ops
            .iter()
            .next()
            .map(|(name, op)| (Some(name.as_str()), op)),
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The schema with the configured limits; `state` is `None` only for printing the SDL. Its data
/// is the parts of the state resolvers use (the store, the guards and the settings; see
/// [`context`]). It has no extensions (see [`gateway`]): operations reach it through [`gateway`].
pub fn build_schema(
    limits: &GraphqlSettings,
    state: Option<AppState>,
    validation: ValidationMode,
) -> AppSchema {
    schema_builder(limits, state, validation).finish()
}

fn schema_builder(
    limits: &GraphqlSettings,
    state: Option<AppState>,
    validation: ValidationMode,
) -> SchemaBuilder<Query, Mutation, Subscription> {
    let mut builder = Schema::build(Query::default(), Mutation::default(), Subscription)
        // Not `limit_depth`: that one also counts the standard introspection query (see depth.rs).
        .limit_complexity(limits.max_complexity)
        .validation_mode(validation);
    if !limits.introspection {
        // "Did you mean …" in validation errors would name the fields introspection hides.
        builder = builder.disable_introspection().disable_suggestions();
    }
    if let Some(state) = state {
        builder = builder
            .data(state.store)
            .data(state.guards)
            .data(state.settings);
    }
    builder
}

/// The schema behind the gateway that bounds, traces and counts every operation.
pub fn gateway(limits: &GraphqlSettings, state: AppState) -> gateway::Gateway {
    let metrics = state.metrics.clone();
    let (validated, direct) = direct::Direct::build(schema_builder(
        limits,
        Some(state.clone()),
        ValidationMode::Fast,
    ));
    gateway::Gateway::new(
        build_schema(limits, Some(state), ValidationMode::Strict),
        validated,
        direct,
        depth::DepthLimit::new(limits.max_depth, limits.introspection),
        metrics,
    )
}

/// The SDL as committed in `schema.graphql`.
pub fn sdl() -> String {
    let limits = GraphqlSettings {
        max_depth: 64,
        max_complexity: 1_000_000,
        max_body_bytes: 1,
        introspection: true,
        graphiql: false,
        ws_init_timeout: std::time::Duration::from_secs(1),
        document_cache_bytes: 0,
    };
    // With `@specifiedBy`: introspection answers `specifiedByURL` (DateTime is RFC 3339), so the
    // committed schema says it too and matches what tools load from a running server.
    build_schema(&limits, None, ValidationMode::Strict)
        .sdl_with_options(SDLExportOptions::new().include_specified_by())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// `schema.graphql` is the contract frontends build against: regenerate it with
    /// `cargo run -p api -- schema > schema.graphql` when the schema changes on purpose.
    #[test]
    fn committed_schema_matches_the_code() {
        let committed = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql"));
        assert!(
            committed == super::sdl(),
            "schema.graphql is out of date: run `cargo run -p api -- schema > schema.graphql`"
        );
    }
}
