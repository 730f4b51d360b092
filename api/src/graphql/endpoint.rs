//! What the GraphQL transports (HTTP and WebSocket) share.

use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use super::documents::Documents;
use super::gateway::Gateway;
use super::live::Live;
use super::ws_pending::PendingSockets;
use crate::state::AppState;

#[derive(Clone)]
pub struct GraphqlEndpoint {
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
