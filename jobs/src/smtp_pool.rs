//! SMTP connections kept open between messages, reused without a round trip spent on checking
//! them.
//!
//! lettre's own pool sends `NOOP` each time it hands out a connection, to see that it still
//! stands: one round trip of the five a message costs (`NOOP`, `MAIL`, `RCPT`, `DATA`, the body),
//! so a fifth of what a connection can carry, and more against a relay across a network. Here
//! `MAIL FROM` is that check: a reused connection that gives no reply to `MAIL` (or `421`, the
//! server closing it) has carried nothing of the message, so the message goes over another
//! connection at once, and is never sent twice.
//!
//! Connections are opened the way lettre's transport opens them from `SMTP_URL` (see
//! [`SmtpPool::from_url`]), and any error within a conversation closes its connection, as
//! lettre does.

use std::borrow::Cow;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::{Error, SMTP_PORT, SUBMISSION_PORT, SUBMISSIONS_PORT};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::mailer::SendError;

/// A connection idle this long is closed instead of reused: servers drop idle clients after a
/// few minutes, and lettre's pool keeps them 60 s.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// How the connection is secured, from the URL's scheme and `tls` parameter.
enum Security {
    /// `smtp://` without `tls`: plain text (loopback only, see the settings).
    Plain,
    /// `smtp://…?tls=required` (STARTTLS or fail) or `?tls=opportunistic` (STARTTLS when the
    /// server offers it).
    StartTls {
        parameters: TlsParameters,
        required: bool,
    },
    /// `smtps://`: TLS from the first byte.
    Implicit(TlsParameters),
}

/// Where and how connections are opened.
struct Server {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    credentials: Option<Credentials>,
    /// How long opening a connection may take (the send as a whole is bounded by its caller).
    connect_timeout: Duration,
}

/// The pool; shared by the clones of a [`crate::mailer::Mailer`].
pub struct SmtpPool {
    server: Server,
    /// Connections between two messages, the most recently used last.
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    /// Most connections kept idle: as many as messages are sent at once.
    keep: usize,
}

impl SmtpPool {
    /// Reads `url` as lettre's `AsyncSmtpTransport::from_url` does: `smtp://host[:port]` (plain,
    /// port 25), `smtp://host[:port]?tls=required` or `?tls=opportunistic` (STARTTLS, port
    /// 587), `smtps://host[:port]` (implicit TLS, port 465); the user and password, when given,
    /// authenticate (PLAIN or LOGIN), and a path names the client in `EHLO`. Keeps up to `keep`
    /// connections; opening one that takes longer than `connect_timeout` fails. The error names what
    /// is wrong, never the password.
    pub fn from_url(url: &str, keep: usize, connect_timeout: Duration) -> Result<Self, String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("no host")?.to_owned();
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let parameters = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let (security, port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, SMTP_PORT),
            ("smtp", Some(mode @ ("required" | "opportunistic"))) => (
                Security::StartTls {
                    parameters: parameters()?,
                    required: mode == "required",
                },
                SUBMISSION_PORT,
            ),
            ("smtps", _) => (Security::Implicit(parameters()?), SUBMISSIONS_PORT),
            (scheme, tls) => {
                return Err(format!(
                    "unknown scheme {scheme:?} or tls parameter {tls:?} (smtp, smtp with tls=required or tls=opportunistic, smtps)"
                ));
            }
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(Cow::into_owned)
                .map_err(|_| "the user or password is not UTF-8 once percent-decoded".to_owned())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        Ok(Self {
            server: Server {
                port: url.port().unwrap_or(port),
                host,
                security,
                hello,
                credentials,
                connect_timeout,
            },
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
        })
    }

    /// Sends `body` (the formatted message) to the envelope's recipients.
    pub async fn send(&self, envelope: &Envelope, body: &[u8]) -> Result<(), SendError> {
        loop {
            let (mut conn, reused) = match self.take() {
                Some(conn) => (conn, true),
                None => (self.server.connect().await?, false),
            };
            let mail = match mail_parameters(&conn, envelope, body) {
                Ok(mail) => mail,
                Err(refused) => {
                    self.put(conn);
                    return Err(refused);
                }
            };
            match conn.command(mail).await {
                Ok(_) => {}
                Err(e) if reused && closed(&e) => {
                    close(conn);
                    continue;
                }
                Err(e) => {
                    close(conn);
                    return Err(classify(e));
                }
            }
            return match converse(&mut conn, envelope, body).await {
                Ok(()) => {
                    self.put(conn);
                    Ok(())
                }
                Err(e) => {
                    close(conn);
                    Err(classify(e))
                }
            };
        }
    }

    /// Whether the server answers a new connection's `NOOP` (the health check).
    pub async fn reachable(&self) -> bool {
        match self.server.connect().await {
            Ok(mut conn) => {
                let answered = conn.test_connected().await;
                close(conn);
                answered
            }
            Err(_) => false,
        }
    }

    /// The most recently used idle connection, closing those idle too long.
    fn take(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < IDLE_LIMIT {
                return Some(conn);
            }
            close(conn);
        }
        None
    }

    fn put(&self, conn: AsyncSmtpConnection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.keep {
            idle.push((conn, Instant::now()));
        } else {
            drop(idle);
            close(conn);
        }
    }
}

impl Server {
    /// Connects, secures and authenticates, as lettre's transport does, except that a connection
    /// not wrapped in TLS from the start sends without delay: lettre writes a message's body and
    /// its closing `.` line separately, and with Nagle's algorithm the second write waits for
    /// the first to be acknowledged before the server can answer.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let mut conn = match &self.security {
            Security::Implicit(parameters) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.connect_timeout),
                &self.hello,
                Some(parameters.clone()),
                None,
            )
            .await
            .map_err(classify)?,
            Security::Plain | Security::StartTls { .. } => {
                let address = (self.host.as_str(), self.port);
                let stream =
                    tokio::time::timeout(self.connect_timeout, TcpStream::connect(address))
                        .await
                        .map_err(|_| {
                            SendError::Transient(
                                format!(
                                    "no connection to the mail server within {} s",
                                    self.connect_timeout.as_secs()
                                ),
                                "timeout",
                            )
                        })?
                        .and_then(|stream| stream.set_nodelay(true).map(|()| stream))
                        .map_err(|e| {
                            SendError::Transient(
                                format!("cannot connect to the mail server: {e}"),
                                "connection",
                            )
                        })?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(classify)?
            }
        };
        if let Security::StartTls {
            parameters,
            required,
        } = &self.security
            && (*required || conn.can_starttls())
        {
            // Refused by a server that does not offer STARTTLS when it is required.
            conn.starttls(parameters.clone(), &self.hello)
                .await
                .map_err(classify)?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(classify)?;
        }
        Ok(conn)
    }
}

/// `MAIL FROM` with what the message needs of the server (SMTPUTF8 for a non-ASCII address,
/// 8BITMIME for a non-ASCII body); refused, as lettre refuses it, when the server lacks it.
fn mail_parameters(
    conn: &AsyncSmtpConnection,
    envelope: &Envelope,
    body: &[u8],
) -> Result<Mail, SendError> {
    let mut parameters = Vec::new();
    let needs = |extension, what: &str| {
        if conn.server_info().supports_feature(extension) {
            Ok(())
        } else {
            Err(SendError::Permanent(format!(
                "the mail server does not support {what}"
            )))
        }
    };
    let non_ascii_address = envelope
        .from()
        .into_iter()
        .chain(envelope.to())
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii());
    if non_ascii_address {
        needs(
            Extension::SmtpUtfEight,
            "SMTPUTF8, needed for a non-ASCII address",
        )?;
        parameters.push(MailParameter::SmtpUtfEight);
    }
    if !body.is_ascii() {
        needs(
            Extension::EightBitMime,
            "8BITMIME, needed for a non-ASCII message",
        )?;
        parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    Ok(Mail::new(envelope.from().cloned(), parameters))
}

/// The rest of a message after `MAIL`: the recipients, `DATA`, the body.
async fn converse(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    body: &[u8],
) -> Result<(), Error> {
    for to in envelope.to() {
        conn.command(Rcpt::new(to.clone(), vec![])).await?;
    }
    conn.command(Data).await?;
    conn.message(body).await?;
    Ok(())
}

/// Whether a reused connection turned out to be gone: no reply at all, or `421` (the server
/// closing it, as servers do to clients idle too long).
fn closed(error: &Error) -> bool {
    match error.status() {
        None => !error.is_timeout(),
        Some(code) => code.to_string() == "421",
    }
}

/// Says goodbye (`QUIT`) and closes, without holding up the caller.
fn close(mut conn: AsyncSmtpConnection) {
    tokio::spawn(async move { conn.abort().await });
}

/// Splits a lettre error the way the retry policy needs it.
fn classify(e: Error) -> SendError {
    let text = e.to_string();
    if e.is_permanent() {
        SendError::Permanent(text)
    } else if e.is_timeout() {
        SendError::Transient(text, "timeout")
    } else if e.status().is_some() {
        SendError::Transient(text, "4xx")
    } else {
        SendError::Transient(text, "connection")
    }
}
