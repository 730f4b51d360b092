//! GraphQL subscriptions over WebSocket on `/graphql` (`graphql-transport-ws`, and the older
//! `graphql-ws` subprotocol). The API key comes in the `connection_init` payload (`apiKey`):
//! a bad key closes with 4403, no `connection_init` within `GRAPHQL_WS_INIT_TIMEOUT_SECONDS`
//! closes with 4408, shutdown closes with 1001, and the server pings every 30 s.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

use async_graphql::Data;
use async_graphql::http::{WebSocket, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket as Socket};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};

use super::endpoint::GraphqlEndpoint;
use super::loader::{Loaders, RequestLoader};

const FORBIDDEN: &str = "Forbidden";
/// Interval of server pings on an acknowledged connection.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Upgrades a `GET /graphql` that asks for WebSocket to a subscription connection.
pub async fn upgrade(
    endpoint: GraphqlEndpoint,
    parts: &mut axum::http::request::Parts,
) -> Response {
    use axum::extract::FromRequestParts;
    use axum::extract::ws::WebSocketUpgrade;
    use std::str::FromStr;
    let protocol = parts
        .headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .find_map(|p| async_graphql::http::WebSocketProtocols::from_str(p.trim()).ok())
        });
    let Some(protocol) = protocol else {
        return (
            StatusCode::BAD_REQUEST,
            "Sec-WebSocket-Protocol must offer graphql-transport-ws or graphql-ws",
        )
            .into_response();
    };
    let ws = match WebSocketUpgrade::from_request_parts(parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let shutdown = endpoint.shutdown.clone();
    ws.protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve(socket, endpoint, protocol, shutdown))
}

/// Serves one upgraded connection until it closes or the process shuts down.
async fn serve(
    socket: Socket,
    endpoint: GraphqlEndpoint,
    protocol: WebSocketProtocols,
    shutdown: CancellationToken,
) {
    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|m| futures::future::ready(!matches!(m, Err(_) | Ok(Message::Close(_)))))
        .filter_map(|m| {
            futures::future::ready(match m {
                Ok(Message::Text(t)) => Some(t.to_string()),
                Ok(Message::Binary(b)) => String::from_utf8(b.to_vec()).ok(),
                _ => None,
            })
        });
    let state = endpoint.state.clone();
    let init = move |payload: serde_json::Value| async move {
        let key = payload
            .get("apiKey")
            .and_then(|k| k.as_str())
            .map(str::to_owned)
            .unwrap_or_default();
        let viewer = state
            .key_cache
            .authenticate(&state.db, &key)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| async_graphql::Error::new(FORBIDDEN))?;
        let mut data = Data::default();
        // A loader per connection, as per request over HTTP (subscriptions resolve few fields).
        data.insert(RequestLoader::with_cache(
            Loaders {
                db: state.db.clone(),
                organization_id: viewer.organization_id,
            },
            tokio::spawn,
            async_graphql::dataloader::HashMapCache::default(),
        ));
        data.insert(Some(viewer));
        Ok(data)
    };
    let timeout = endpoint.state.settings.graphql.ws_init_timeout;
    let ping = match protocol {
        WebSocketProtocols::GraphQLWS => r#"{"type":"ping"}"#,
        WebSocketProtocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
    };
    let mut messages =
        WebSocket::new(endpoint.schema.clone(), input, protocol).on_connection_init(init);
    // Server pings keep idle subscriptions alive through proxies and reveal dead peers.
    let mut keepalive =
        tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut acknowledged = false;
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        }))
    };
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(WsMessage::Text(text)) => {
                    if !acknowledged && text.contains("connection_ack") {
                        acknowledged = true;
                    }
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Some(WsMessage::Close(code, reason)) => {
                    // async-graphql answers a refused connection_init with 1002; the protocol
                    // says 4403.
                    let code = if reason == FORBIDDEN { 4403 } else { code };
                    let _ = sink.send(close(code, &reason)).await;
                    return;
                }
                None => return,
            },
            () = &mut deadline, if !acknowledged => {
                let _ = sink.send(close(4408, "Connection initialisation timeout")).await;
                return;
            }
            _ = keepalive.tick(), if acknowledged => {
                if sink.send(Message::Text(ping.into())).await.is_err() {
                    return;
                }
            }
            () = shutdown.cancelled() => {
                let _ = sink.send(close(1001, "server shutting down")).await;
                return;
            }
        }
    }
}
