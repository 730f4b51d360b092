//! The GraphQL schema, built once and shared by HTTP and WebSocket.

pub mod context;
pub mod enums;
pub mod error;
pub mod http;
pub mod ids;
pub mod loader;
mod mutation;
pub mod object;
mod query;

use async_graphql::{EmptySubscription, Schema};

use crate::config::GraphqlSettings;
use crate::state::AppState;

pub use mutation::Mutation;
pub use query::Query;

pub type AppSchema = Schema<Query, Mutation, EmptySubscription>;

/// The schema with the configured limits; `state` is `None` only for printing the SDL.
pub fn build_schema(limits: &GraphqlSettings, state: Option<AppState>) -> AppSchema {
    let mut builder = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL as committed in `schema.graphql`.
pub fn sdl() -> String {
    let limits = GraphqlSettings {
        max_depth: 64,
        max_complexity: 1_000_000,
        max_body_bytes: 1,
        introspection: true,
        graphiql: false,
    };
    build_schema(&limits, None).sdl()
}
