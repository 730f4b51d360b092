//! What the GraphQL transports (HTTP and WebSocket) share.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::documents::Documents;
use super::gateway::Gateway;
use super::live::Live;
use super::ws_pending::PendingSockets;
use crate::state::AppState;

/// Cloned for every request (axum's `State`), so it is one `Arc`: cloning the parts instead
/// took and dropped a score of reference counts per request, about 3 % of a point lookup's
/// profile.
#[derive(Clone)]
pub struct GraphqlEndpoint(Arc<Endpoint>);

impl GraphqlEndpoint {
    pub fn new(endpoint: Endpoint) -> Self {
        Self(Arc::new(endpoint))
    }
}

impl std::ops::Deref for GraphqlEndpoint {
    type Target = Endpoint;

    fn deref(&self) -> &Endpoint {
        &self.0
    }
}

pub struct Endpoint {
    /// The schema, reached only through the gateway's checks.
    pub gateway: Gateway,
    pub state: AppState,
    /// Parsed documents and persisted queries, shared by every request.
    pub documents: Arc<Documents>,
    /// Fires when the process shuts down, so WebSocket connections close with a proper code.
    pub shutdown: CancellationToken,
    /// WebSocket connections that have not sent `connection_init` yet.
    pub pending: Arc<PendingSockets>,
    /// Live subscriptions that share a document, each group resolving an event once.
    pub live: Live,
}
