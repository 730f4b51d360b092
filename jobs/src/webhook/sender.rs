//! The webhook HTTP sender. It only ever connects to addresses the [`TargetPolicy`] admits:
//! literal addresses are checked before the request, host names are resolved by
//! [`CheckedResolver`], which refuses the whole name if any address it resolves to is internal,
//! and the connection is made to exactly the addresses it checked (no second lookup an attacker
//! could rebind). Redirects are never followed and proxies from the environment are ignored.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use entity::AttemptOutcome;
use entity::outbox::webhook::AttemptRecord;
use entity::webhook::target::TargetPolicy;
use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Bytes of the response body kept with an attempt.
pub const EXCERPT_BYTES: usize = 1024;

/// Refused before any connection: the address is not one webhooks may reach.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Forbidden(String);

/// Resolves with the system resolver, then refuses the name unless every address passes.
struct CheckedResolver {
    policy: TargetPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            for addr in &addrs {
                policy
                    .check_ip(addr.ip())
                    .map_err(|why| Forbidden(format!("{host} resolves to {why}")))?;
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Sends signed webhook requests; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    pub(super) timeout: Duration,
    policy: TargetPolicy,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("timeout", &self.timeout)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// The headers that identify and sign one attempt.
#[derive(Debug, Clone)]
pub struct Signed<'a> {
    pub message_id: &'a str,
    pub timestamp: i64,
    pub signature: &'a str,
}

impl Sender {
    pub fn new(policy: TargetPolicy, timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("invitations-webhooks/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(CheckedResolver { policy }))
            .connect_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the webhook HTTP client: {e}"))?;
        Ok(Self {
            client,
            timeout,
            policy,
        })
    }

    /// One attempt; never fails, every problem is an outcome to record.
    pub async fn send(&self, url: &str, signed: &Signed<'_>, body: String) -> AttemptRecord {
        let attempted_at = entity::now();
        let started = tokio::time::Instant::now();
        let (outcome, http_status, error, response_excerpt) = match self.policy.check_url(url) {
            Err(e) => (
                AttemptOutcome::TargetForbidden,
                None,
                Some(e.to_string()),
                None,
            ),
            Ok(_) => match tokio::time::timeout(self.timeout, self.post(url, signed, body)).await {
                Ok(result) => result,
                Err(_) => (
                    AttemptOutcome::Timeout,
                    None,
                    Some(format!(
                        "no complete answer within {} s",
                        self.timeout.as_secs_f32()
                    )),
                    None,
                ),
            },
        };
        AttemptRecord {
            attempted_at,
            duration: started.elapsed(),
            outcome,
            http_status,
            error,
            response_excerpt,
        }
    }

    async fn post(
        &self,
        url: &str,
        signed: &Signed<'_>,
        body: String,
    ) -> (AttemptOutcome, Option<u16>, Option<String>, Option<String>) {
        let request = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", signed.message_id)
            .header("webhook-timestamp", signed.timestamp.to_string())
            .header("webhook-signature", signed.signature)
            .body(body);
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return (classify(&e), None, Some(describe(&e)), None),
        };
        let status = response.status();
        let excerpt = match read_excerpt(response).await {
            Ok(excerpt) => excerpt,
            Err(e) => {
                return (
                    classify(&e),
                    Some(status.as_u16()),
                    Some(describe(&e)),
                    None,
                );
            }
        };
        let (outcome, error) = if status.is_success() {
            (AttemptOutcome::Succeeded, None)
        } else if status.is_redirection() {
            (
                AttemptOutcome::HttpError,
                Some(format!("answered {status}; redirects are not followed")),
            )
        } else {
            (
                AttemptOutcome::HttpError,
                Some(format!("answered {status}")),
            )
        };
        (outcome, Some(status.as_u16()), error, Some(excerpt))
    }
}

/// The first [`EXCERPT_BYTES`] of the body; the rest is not read.
async fn read_excerpt(response: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut stream = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk?);
        if bytes.len() >= EXCERPT_BYTES {
            bytes.truncate(EXCERPT_BYTES);
            break;
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn forbidden(e: &reqwest::Error) -> Option<&Forbidden> {
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(f) = err.downcast_ref::<Forbidden>() {
            return Some(f);
        }
        source = err.source();
    }
    None
}

fn without_url(e: &reqwest::Error) -> String {
    let text = e.to_string();
    match e.url() {
        Some(url) => text
            .replace(&format!(" ({url})"), "")
            .replace(url.as_str(), "…"),
        None => text,
    }
}

fn classify(e: &reqwest::Error) -> AttemptOutcome {
    if forbidden(e).is_some() {
        AttemptOutcome::TargetForbidden
    } else if e.is_timeout() {
        AttemptOutcome::Timeout
    } else {
        AttemptOutcome::NetworkError
    }
}

/// The error with its causes.
fn describe(e: &reqwest::Error) -> String {
    if let Some(f) = forbidden(e) {
        return format!("refused: {f}");
    }
    // The URL is on the endpoint already, and may carry a token in its query.
    let mut text = without_url(e);
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}
