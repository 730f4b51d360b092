//! A `graphql-transport-ws` client for subscription tests.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The server's keepalive ping, as it writes it.
const PING: &str = r#"{"type":"ping"}"#;

pub struct WsClient {
    stream: Stream,
}

/// What the server sent next.
#[derive(Debug)]
pub enum Received {
    /// A `next` message: the subscription id and its payload.
    Next(String, Value),
    /// An `error` message: the subscription id and its errors.
    Error(String, Value),
    Complete(String),
    /// The server closed the socket with this code.
    Closed(u16),
}

impl WsClient {
    /// Opens `ws://…/graphql` offering `graphql-transport-ws`.
    pub async fn connect(base: &str) -> Self {
        match Self::try_connect(base).await {
            Ok(client) => client,
            Err((status, body)) => panic!("WebSocket upgrade refused: {status} {body}"),
        }
    }

    /// [`WsClient::connect`], or the status and body of a refused upgrade.
    pub async fn try_connect(base: &str) -> Result<Self, (u16, String)> {
        let url = format!("{}/graphql", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        // A small read buffer: tungstenite zeroes the free part of it before every read (128 KiB
        // by default), which made a benchmark's ten thousand clients mostly `memset`.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096);
        match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
            Ok((stream, _)) => Ok(Self { stream }),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                let body = response
                    .body()
                    .as_deref()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .unwrap_or_default();
                Err((response.status().as_u16(), body))
            }
            Err(e) => panic!("WebSocket connection: {e}"),
        }
    }

    /// Sends `connection_init` with the key; `Ok` on `connection_ack`, `Err(close code)` otherwise.
    pub async fn init(&mut self, api_key: &str) -> Result<(), u16> {
        self.init_with(json!({ "apiKey": api_key })).await
    }

    /// [`WsClient::init`] with any payload.
    pub async fn init_with(&mut self, payload: Value) -> Result<(), u16> {
        self.send(json!({ "type": "connection_init", "payload": payload }))
            .await;
        match self.recv(Duration::from_secs(10)).await {
            Some(Ok(v)) if v["type"] == "connection_ack" => Ok(()),
            Some(Err(code)) => Err(code),
            other => panic!("unexpected answer to connection_init: {other:?}"),
        }
    }

    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } }))
            .await;
    }

    /// Like [`WsClient::subscribe`], for a socket the server may have closed already: `false`
    /// when the message could not be sent.
    pub async fn try_subscribe(&mut self, id: &str, query: &str, variables: Value) -> bool {
        let message = json!({ "id": id, "type": "subscribe", "payload": { "query": query, "variables": variables } });
        self.stream
            .send(Message::Text(message.to_string().into()))
            .await
            .is_ok()
    }

    /// Sends `text` as one text message, whatever its size.
    pub async fn send_text(&mut self, text: String) {
        self.stream.send(Message::Text(text.into())).await.unwrap();
    }

    /// Writes `bytes` straight to the TCP connection, under the WebSocket framing: for frames a
    /// well-behaved client would not send (e.g. a header announcing more than it sends).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        match self.stream.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.write_all(bytes).await.unwrap(),
            _ => panic!("raw writes need a plain TCP connection"),
        }
    }

    async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// The next protocol message (answering pings), `Err(code)` on close, `None` on timeout.
    async fn recv(&mut self, timeout: Duration) -> Option<Result<Value, u16>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "ping" {
                        // The server may have closed the socket since its ping; the close
                        // frame is what the caller wants then, not a failed pong.
                        let pong = Message::Text(json!({ "type": "pong" }).to_string().into());
                        let _ = self.stream.send(pong).await;
                        continue;
                    }
                    return Some(Ok(v));
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(Err(frame.map_or(1005, |f| f.code.into())));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Some(Err(1006)),
            }
        }
    }

    /// The next message, panicking after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Received {
        match self.try_next(timeout).await {
            Some(received) => received,
            None => panic!("no WebSocket message within {timeout:?}"),
        }
    }

    /// The next message, or `None` after `timeout` (benchmarks count what did not arrive).
    pub async fn try_next(&mut self, timeout: Duration) -> Option<Received> {
        Some(match self.recv(timeout).await? {
            Err(code) => Received::Closed(code),
            Ok(mut v) => {
                let id = v["id"].as_str().unwrap_or_default().to_owned();
                let payload = v["payload"].take();
                match v["type"].as_str() {
                    Some("next") => Received::Next(id, payload),
                    Some("error") => Received::Error(id, payload),
                    Some("complete") => Received::Complete(id),
                    _ => panic!("unexpected message {v}"),
                }
            }
        })
    }

    /// The next text message as the server sent it, unparsed (a server ping is answered and
    /// skipped); `None` once the socket is closed or broken. For benchmarks, which parse only the
    /// fields they check: the clients share the machine with the server they measure.
    pub async fn next_text(&mut self) -> Option<Utf8Bytes> {
        loop {
            match self.stream.next().await? {
                Ok(Message::Text(text)) if text.as_str() == PING => {
                    let pong = Message::Text(json!({ "type": "pong" }).to_string().into());
                    let _ = self.stream.send(pong).await;
                }
                Ok(Message::Text(text)) => return Some(text),
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The payload `data` of the next `next` message.
    pub async fn next_data(&mut self, timeout: Duration) -> Value {
        match self.next(timeout).await {
            Received::Next(_, payload) => {
                assert!(payload.get("errors").is_none(), "{payload}");
                payload["data"].clone()
            }
            other => panic!("expected data, got {other:?}"),
        }
    }

    /// Waits for the server to close, returning its code.
    pub async fn closed(&mut self, timeout: Duration) -> u16 {
        match self.recv(timeout).await {
            Some(Err(code)) => code,
            other => panic!("expected a close, got {other:?}"),
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
