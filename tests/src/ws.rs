//! A `graphql-transport-ws` client for subscription tests.

use std::ops::Range;
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
const PONG: &str = r#"{"type":"pong"}"#;

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
        // Longer than the server's database acquire timeout (10 s), so a check that fails
        // there is answered before this gives up.
        match self.recv(Duration::from_secs(30)).await {
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

    /// The socket, read frame by frame from here on ([`FrameReader`]). Call it right after
    /// [`WsClient::subscribe`]: tungstenite may have read ahead of the last message it returned,
    /// and such bytes would be lost; up to `connection_ack` the server answers only what it is
    /// sent, so nothing is read ahead, and nothing it sends after the `subscribe` is read yet.
    pub fn into_frames(self) -> FrameReader {
        match self.stream.into_inner() {
            tokio_tungstenite::MaybeTlsStream::Plain(tcp) => FrameReader {
                tcp,
                buffer: vec![0; 4096],
                start: 0,
                end: 0,
            },
            _ => panic!("raw reads need a plain TCP connection"),
        }
    }
}

/// The server's messages on a subscribed socket, read from the TCP stream with a minimal
/// WebSocket frame parser: for benchmarks, whose ten thousand clients share the two cores with
/// the server they measure. tungstenite cost a client about as much CPU per frame as the server
/// spent writing it (its waker proxies, the read buffer's bookkeeping, a `Bytes` per message);
/// this reads into one buffer it reuses and hands out each message borrowed from it. It reads
/// every frame and answers pings, as [`WsClient::next_text`] does.
pub struct FrameReader {
    tcp: tokio::net::TcpStream,
    buffer: Vec<u8>,
    /// The bytes read and not yet handed out: `buffer[start..end]`.
    start: usize,
    end: usize,
}

const TEXT: u8 = 1;
const BINARY: u8 = 2;
const CLOSE: u8 = 8;
const WS_PING: u8 = 9;
const WS_PONG: u8 = 10;

impl FrameReader {
    /// The next text message as the server sent it (a server ping is answered and skipped);
    /// `None` once the socket is closed or broken.
    pub async fn next_text(&mut self) -> Option<&str> {
        loop {
            let (opcode, payload) = self.frame().await?;
            match opcode {
                TEXT | BINARY if &self.buffer[payload.clone()] == PING.as_bytes() => {
                    self.send(TEXT, PONG.as_bytes()).await;
                }
                TEXT | BINARY => return std::str::from_utf8(&self.buffer[payload]).ok(),
                WS_PING => {
                    let data = self.buffer[payload].to_vec();
                    self.send(WS_PONG, &data).await;
                }
                CLOSE => return None,
                _ => {}
            }
        }
    }

    /// Sends a close frame (1000) and drops the socket.
    pub async fn close(mut self) {
        self.send(CLOSE, &1000u16.to_be_bytes()).await;
    }

    /// The next whole frame: its opcode and where its payload is in the buffer (until the next
    /// call); `None` at the end of the stream or on an error.
    async fn frame(&mut self) -> Option<(u8, Range<usize>)> {
        use tokio::io::AsyncReadExt;
        loop {
            let parsed = header(&self.buffer[self.start..self.end]);
            if let Some((opcode, head, length)) = parsed
                && self.end - self.start >= head + length
            {
                let payload = self.start + head..self.start + head + length;
                self.start = payload.end;
                return Some((opcode, payload));
            }
            // What the frame needs, or at least the longest header.
            let needed = parsed.map_or(14, |(_, head, length)| head + length);
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            } else if self.buffer.len() - self.start < needed {
                self.buffer.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            }
            if self.buffer.len() < needed {
                self.buffer.resize(needed, 0);
            }
            // One `recv` per wake-up: tokio takes a read that does not fill the buffer as the
            // socket drained.
            match self.tcp.read(&mut self.buffer[self.end..]).await {
                Ok(0) | Err(_) => return None,
                Ok(read) => self.end += read,
            }
        }
    }

    /// Writes one frame; a client's frames are masked, and with a zero key the payload goes
    /// unchanged. Errors are left to the next read.
    async fn send(&mut self, opcode: u8, payload: &[u8]) {
        use tokio::io::AsyncWriteExt;
        let length = u8::try_from(payload.len())
            .ok()
            .filter(|n| *n < 126)
            .expect("a control message");
        let mut frame = vec![0x80 | opcode, 0x80 | length, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        let _ = self.tcp.write_all(&frame).await;
    }
}

/// A server frame's opcode, header length and payload length, once `bytes` hold its header.
/// The server sends each message as one unmasked frame.
fn header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let (first, second) = (*bytes.first()?, *bytes.get(1)?);
    assert!(first & 0x80 != 0, "a fragmented message");
    assert!(second & 0x80 == 0, "a masked frame from the server");
    let length = match second & 0x7f {
        126 => (
            4,
            usize::from(u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?)),
        ),
        127 => (
            10,
            usize::try_from(u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?)).ok()?,
        ),
        short => (2, usize::from(short)),
    };
    Some((first & 0x0f, length.0, length.1))
}
