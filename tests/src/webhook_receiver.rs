//! A real HTTP server on loopback that receives webhooks: it records every request (headers
//! and body, as they arrived) and answers from a script, so tests can make it fail, recover,
//! stall past the sender's timeout or redirect.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status, with a short body naming it.
    Status(u16),
    /// Waits, then answers with the status (a sender with a shorter timeout gives up first).
    Slow(Duration, u16),
    /// `307 Temporary Redirect` to this URL.
    Redirect(String),
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).expect("webhook body is JSON")
    }

    /// Verifies the Standard Webhooks signature with the `standardwebhooks` crate (an
    /// implementation independent of the gateway's).
    pub fn verify(&self, secret: &str) -> Result<(), String> {
        let webhook = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
        webhook
            .verify(self.body.as_bytes(), &self.headers)
            .map_err(|e| e.to_string())
    }
}

#[derive(Default)]
struct Script {
    received: Vec<Received>,
    next: VecDeque<Reply>,
    otherwise: Option<Reply>,
}

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    script: Arc<Mutex<Script>>,
}

impl Receiver {
    /// Starts a receiver on a free loopback port that answers `otherwise` unless a scripted
    /// reply is queued.
    pub async fn start(otherwise: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the webhook receiver");
        let url = format!(
            "http://{}/hook",
            listener.local_addr().expect("local address")
        );
        let script = Arc::new(Mutex::new(Script {
            otherwise: Some(otherwise),
            ..Script::default()
        }));
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(script.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("webhook receiver");
        });
        Self { url, script }
    }

    /// Queues replies for the next requests, before the standing one applies again.
    pub fn then(&self, replies: impl IntoIterator<Item = Reply>) {
        self.lock().next.extend(replies);
    }

    /// Changes the standing reply.
    pub fn otherwise(&self, reply: Reply) {
        self.lock().otherwise = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    pub fn count(&self) -> usize {
        self.lock().received.len()
    }

    /// Requests whose body has this `type`.
    pub fn of_type(&self, event_type: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.json()["type"] == event_type)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().expect("receiver lock")
    }
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = {
        let mut s = script.lock().expect("receiver lock");
        s.received.push(Received {
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        let standing = s.otherwise.clone().unwrap_or(Reply::Status(200));
        s.next.pop_front().unwrap_or(standing)
    };
    let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    match reply {
        Reply::Status(code) => (status(code), format!("receiver says {code}")).into_response(),
        Reply::Slow(wait, code) => {
            tokio::time::sleep(wait).await;
            (status(code), "slow").into_response()
        }
        Reply::Redirect(to) => (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, to)],
            "moved",
        )
            .into_response(),
    }
}
