//! Outgoing mail through lettre: SMTP over a pool of connections in production
//! ([`SmtpPool`]), `.eml` files in the embedded default.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use lettre::Message;
use lettre::address::Envelope;

use crate::smtp_pool::SmtpPool;

pub use lettre::message::Mailbox;

#[derive(Clone)]
pub enum Mailer {
    /// SMTP; clones share the pool.
    Smtp(Arc<SmtpPool>),
    /// Writes each message as `<uuid>.eml` into `dir` (the embedded default), readable by the
    /// owner only: a message holds a live link or code.
    File { dir: PathBuf },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Mailer::Smtp"),
            Self::File { .. } => f.write_str("Mailer::File"),
        }
    }
}

/// Why a message was not sent, split the way the retry policy needs it.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Worth another attempt: 4xx replies, timeouts, refused or dropped connections. The
    /// second field is the failure's class for the metrics: `4xx`, `timeout` or `connection`.
    #[error("transient: {0}")]
    Transient(String, &'static str),
    /// Will not succeed on retry: 5xx replies, rejected addresses.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl SendError {
    /// A bounded word for the metrics: the SMTP reply class, or why there was no reply.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Transient(_, class) => class,
            Self::Permanent(_) => "5xx",
        }
    }
}

/// Why a mailer cannot be built; names the cause.
#[derive(Debug, thiserror::Error)]
pub enum MailerConfigError {
    #[error("invalid SMTP URL ({0})")]
    SmtpUrl(String),
    #[error("cannot create {} ({source})", path.display())]
    Outbox {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Time allowed for opening a connection to the mail server; a whole send is bounded by
/// [`crate::email_sender::SEND_TIMEOUT`].
const SMTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Mailer {
    /// `smtp://` / `smtps://` URLs as lettre reads them (see the README), over at most
    /// `connections` pooled connections; `None` writes files into `outbox`.
    pub fn new(
        smtp_url: Option<&str>,
        outbox: &Path,
        connections: usize,
    ) -> Result<Self, MailerConfigError> {
        match smtp_url {
            Some(url) => Ok(Self::Smtp(Arc::new(
                SmtpPool::from_url(url, connections, SMTP_CONNECT_TIMEOUT)
                    .map_err(MailerConfigError::SmtpUrl)?,
            ))),
            None => {
                create_private_dir(outbox).map_err(|source| MailerConfigError::Outbox {
                    path: outbox.to_owned(),
                    source,
                })?;
                Ok(Self::file(outbox))
            }
        }
    }

    /// Writes `.eml` files into `dir`, which must exist.
    pub fn file(dir: &Path) -> Self {
        Self::File {
            dir: dir.to_owned(),
        }
    }

    /// Whether the mail server answers (a connection and a NOOP); `None` when mail goes to files.
    pub async fn reachable(&self) -> Option<bool> {
        match self {
            Self::Smtp(pool) => Some(pool.reachable().await),
            Self::File { .. } => None,
        }
    }

    pub async fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        match self {
            Self::Smtp(pool) => pool.send(&message.envelope, &message.body).await,
            Self::File { dir } => write_eml(dir, &message.body)
                .await
                .map_err(|e| SendError::Transient(e.to_string(), "connection")),
        }
    }
}

/// A message as it goes on the wire: its envelope and its formatted bytes. Formatting (headers,
/// quoted-printable bodies) happens before a send waits for its slot, so that a slot is held only
/// for the conversation with the server.
pub struct Outgoing {
    envelope: Envelope,
    body: Vec<u8>,
}

impl From<Message> for Outgoing {
    fn from(message: Message) -> Self {
        Self {
            envelope: message.envelope().clone(),
            body: message.formatted(),
        }
    }
}

/// How many messages a worker process has in flight at once, and how fast: every send,
/// whichever job it belongs to, passes here first. One for email (`EMAIL_CONCURRENCY`, the
/// optional rate cap), one for webhook requests (`WEBHOOK_CONCURRENCY`).
#[derive(Debug, Clone)]
pub struct SendGate {
    slots: Arc<Semaphore>,
    concurrency: usize,
    /// With a rate cap: the earliest moment the next send may start.
    pace: Option<(Duration, Arc<Mutex<Instant>>)>,
}

impl SendGate {
    /// `concurrency` sends at once; at most `per_second` sends started per second (0: no cap).
    pub fn new(concurrency: usize, per_second: u32) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            concurrency,
            pace: (per_second > 0).then(|| {
                (
                    Duration::from_secs(1) / per_second,
                    Arc::new(Mutex::new(Instant::now())),
                )
            }),
        }
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Waits for a free slot (and, with a rate cap, for this send's turn); the send holds the
    /// returned permit until it is done. `None` only if the gate were closed, which nothing
    /// does.
    pub async fn enter(&self) -> Option<OwnedSemaphorePermit> {
        let permit = Arc::clone(&self.slots).acquire_owned().await.ok()?;
        if let Some((period, next)) = &self.pace {
            // Each send books the next free tick, so sends are spread evenly however many
            // wait at once.
            let turn = {
                let mut next = next.lock().unwrap_or_else(PoisonError::into_inner);
                let turn = (*next).max(Instant::now());
                *next = turn + *period;
                turn
            };
            tokio::time::sleep_until(turn).await;
        }
        Some(permit)
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Writes `body` as `<uuid>.eml` into `dir`. The file is created owner-only (the folder is
/// already 0700; the file follows so a copied or re-permissioned folder does not expose it)
/// under a hidden temporary name and renamed once complete, so a reader of the folder never
/// sees a partial message or one with the umask's mode.
async fn write_eml(dir: &Path, body: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let id = uuid::Uuid::new_v4();
    let partial = dir.join(format!(".{id}.eml.partial"));
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&partial).await?;
    file.write_all(body).await?;
    file.flush().await?;
    drop(file);
    tokio::fs::rename(&partial, dir.join(format!("{id}.eml"))).await
}
