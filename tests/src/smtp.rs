//! A real (plain-text, no TLS) SMTP server on loopback that captures every message.
//!
//! It speaks enough of RFC 5321 for lettre's SMTP client: greeting, `EHLO`/`HELO`, `AUTH PLAIN`
//! (any credentials are accepted and recorded), `MAIL FROM`, `RCPT TO`, `DATA` (with
//! dot-unstuffing), `RSET`, `NOOP`, `QUIT`; anything else gets `500`.
//! Faults are injected at run time with [`SmtpServer::set_mode`], and [`SmtpServer::stop`] /
//! [`SmtpServer::restart_on_same_port`] simulate "SMTP down, then up again".

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use test_support::mail::Mail;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// How the server answers; change it at any time with [`SmtpServer::set_mode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Accept and capture every message (the default).
    #[default]
    Accept,
    /// Answer the final `.` of `DATA` with `code text` (e.g. 451 or 550) and capture nothing.
    RejectData {
        /// Reply code, e.g. 451 (transient) or 550 (permanent).
        code: u16,
        /// Reply text.
        text: String,
    },
    /// Answer every `RCPT TO` with `code text`.
    RejectRcpt {
        /// Reply code, e.g. 450 or 550.
        code: u16,
        /// Reply text.
        text: String,
    },
    /// After the whole `DATA` body was received, send no answer until [`SmtpServer::release`];
    /// released sessions then answer 250 and the message is captured.
    HoldData,
}

impl Mode {
    /// `Mode::RejectData { code, text }`.
    pub fn reject_data(code: u16, text: impl Into<String>) -> Self {
        Mode::RejectData {
            code,
            text: text.into(),
        }
    }

    /// `Mode::RejectRcpt { code, text }`.
    pub fn reject_rcpt(code: u16, text: impl Into<String>) -> Self {
        Mode::RejectRcpt {
            code,
            text: text.into(),
        }
    }
}

/// One accepted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The `MAIL FROM` reverse path, without angle brackets.
    pub from: String,
    /// The `RCPT TO` forward paths, without angle brackets, in order.
    pub to: Vec<String>,
    /// The raw RFC 5322 message (headers and body, CRLF line endings, dots unstuffed).
    pub data: String,
}

impl Captured {
    /// The message, read: header values, decoded subject and parts, links.
    pub fn mail(&self) -> Mail<'_> {
        Mail::parse(&self.data)
    }

    /// Whether the message is addressed (envelope `RCPT TO`) to `address`, case-insensitively.
    pub fn is_to(&self, address: &str) -> bool {
        self.to.iter().any(|t| t.eq_ignore_ascii_case(address))
    }
}

struct State {
    mode: Mode,
    messages: Vec<Captured>,
    held: usize,
    connections: usize,
    logins: Vec<(String, String)>,
}

struct Shared {
    state: Mutex<State>,
    /// Release generation: [`SmtpServer::release`] bumps it, held sessions wait for a bump.
    release: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The SMTP server. Dropping it closes the listener and every open session.
pub struct SmtpServer {
    port: u16,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SmtpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpServer")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl SmtpServer {
    /// Binds `127.0.0.1:0` and starts serving in the background (in [`Mode::Accept`]).
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("SMTP test server: cannot bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("SMTP test server: local address")
            .port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                mode: Mode::Accept,
                messages: Vec::new(),
                held: 0,
                connections: 0,
                logins: Vec::new(),
            }),
            release: watch::Sender::new(0),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        SmtpServer {
            port,
            shared,
            task: Mutex::new(Some(task)),
        }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Changes how the server answers from now on (sessions already held stay held).
    pub fn set_mode(&self, mode: Mode) {
        self.shared.lock().mode = mode;
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.lock().mode.clone()
    }

    /// Every message captured so far, in acceptance order.
    pub fn messages(&self) -> Vec<Captured> {
        self.shared.lock().messages.clone()
    }

    /// Forgets the captured messages.
    pub fn clear(&self) {
        self.shared.lock().messages.clear();
    }

    /// Polls every 20 ms until at least `n` messages were captured and returns them all;
    /// panics with a clear message after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Captured> {
        self.try_wait_for(n, timeout)
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`Self::wait_for`], with what the server saw as the error after `timeout`, for a caller
    /// that adds what the sender saw before it fails.
    pub async fn try_wait_for(&self, n: usize, timeout: Duration) -> Result<Vec<Captured>, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return Ok(messages);
            }
            if tokio::time::Instant::now() >= deadline {
                let summary: Vec<String> = messages
                    .iter()
                    .map(|m| format!("to {:?}, subject {:?}", m.to, m.mail().subject()))
                    .collect();
                return Err(format!(
                    "SMTP test server on port {}: expected at least {n} message(s) within {timeout:?}, \
                     got {} {summary:?} (mode {:?}, {} held session(s), {} connection(s))",
                    self.port,
                    messages.len(),
                    self.mode(),
                    self.held_count(),
                    self.connection_count(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets every session currently held by [`Mode::HoldData`] answer 250 (capturing its
    /// message). The mode itself is unchanged: later messages are held again until the mode
    /// is changed with [`SmtpServer::set_mode`].
    pub fn release(&self) {
        let mut state = self.shared.lock();
        self.shared.release.send_modify(|g| *g += 1);
        state.held = 0;
    }

    /// How many sessions are currently held (full `DATA` received, no answer sent yet).
    pub fn held_count(&self) -> usize {
        self.shared.lock().held
    }

    /// Polls until at least `n` sessions are held; panics after `timeout`.
    pub async fn wait_for_held(&self, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.held_count() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "SMTP test server on port {}: expected {n} held session(s) within {timeout:?}, got {} \
                 (mode {:?}, {} message(s) captured)",
                self.port,
                self.held_count(),
                self.mode(),
                self.messages().len(),
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many TCP connections were accepted since the start.
    pub fn connection_count(&self) -> usize {
        self.shared.lock().connections
    }

    /// The user and password of every `AUTH PLAIN`, in order.
    pub fn logins(&self) -> Vec<(String, String)> {
        self.shared.lock().logins.clone()
    }

    /// Whether the listener is open.
    pub fn is_running(&self) -> bool {
        self.task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|t| !t.is_finished())
    }

    /// Closes the listener and every open session (held sessions are dropped without
    /// capturing their message). New connections are refused until
    /// [`SmtpServer::restart_on_same_port`]. Returns once the port is closed.
    pub async fn stop(&self) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops the server if it runs, then listens again on the same port (retrying for up to
    /// 5 s while the port is busy); captured messages and the mode are kept.
    pub async fn restart_on_same_port(&self) {
        self.stop().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!(
                    "SMTP test server: cannot rebind 127.0.0.1:{}: {e}",
                    self.port
                ),
            }
        };
        let task = tokio::spawn(serve(listener, self.shared.clone()));
        *self.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

/// Accept loop; the sessions live in a `JoinSet` so aborting this task aborts all of them.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    shared.lock().connections += 1;
                    let shared = shared.clone();
                    sessions.spawn(async move {
                        let _ = session(stream, &shared).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

async fn reply(w: &mut OwnedWriteHalf, line: &str) -> std::io::Result<()> {
    w.write_all(format!("{line}\r\n").as_bytes()).await?;
    w.flush().await
}

/// `FROM:<a@b> BODY=8BITMIME` → `a@b` (prefix matched case-insensitively).
fn parse_path(arg: &str, prefix: &str) -> Option<String> {
    let head = arg.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = arg[prefix.len()..].trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some(inner[..end].to_owned())
    } else {
        rest.split_whitespace().next().map(str::to_owned)
    }
}

/// Decrements the held count if the session goes away (e.g. `stop()`) before a release.
struct HeldGuard<'a> {
    shared: &'a Shared,
    generation: u64,
}

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        if *self.shared.release.borrow() == self.generation {
            state.held = state.held.saturating_sub(1);
        }
    }
}

/// Waits (answering nothing) until the next [`SmtpServer::release`].
async fn hold(shared: &Shared) {
    let (mut rx, generation) = {
        let mut state = shared.lock();
        state.held += 1;
        let rx = shared.release.subscribe();
        let generation = *rx.borrow();
        (rx, generation)
    };
    let _guard = HeldGuard { shared, generation };
    let _ = rx.wait_for(|g| *g != generation).await;
}

fn capture(shared: &Shared, message: Captured) -> usize {
    let mut state = shared.lock();
    state.messages.push(message);
    state.messages.len()
}

/// The user and password of an `AUTH PLAIN` response: base64 of `authzid NUL user NUL password`.
fn plain_login(b64: &str) -> Option<(String, String)> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('\0').skip(1);
    Some((parts.next()?.to_owned(), parts.next()?.to_owned()))
}

async fn session(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    reply(&mut w, "220 localhost ESMTP test server ready").await?;
    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end_matches(['\r', '\n']);
        let (verb, arg) = match command.split_once(' ') {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (command, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                greeted = true;
                from = None;
                rcpts.clear();
                w.write_all(b"250-localhost\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
                    .await?;
                w.flush().await?;
            }
            "HELO" => {
                greeted = true;
                from = None;
                rcpts.clear();
                reply(&mut w, "250 localhost").await?;
            }
            "MAIL" => {
                if !greeted {
                    reply(&mut w, "503 5.5.1 Send EHLO or HELO first").await?;
                } else if from.is_some() {
                    reply(&mut w, "503 5.5.1 Nested MAIL command").await?;
                } else if let Some(path) = parse_path(arg, "FROM:") {
                    from = Some(path);
                    rcpts.clear();
                    reply(&mut w, "250 2.1.0 OK").await?;
                } else {
                    reply(&mut w, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
                }
            }
            "RCPT" => {
                if from.is_none() {
                    reply(&mut w, "503 5.5.1 Need MAIL before RCPT").await?;
                    continue;
                }
                match parse_path(arg, "TO:").filter(|p| !p.is_empty()) {
                    None => reply(&mut w, "501 5.5.4 Syntax: RCPT TO:<address>").await?,
                    Some(path) => {
                        let mode = shared.lock().mode.clone();
                        if let Mode::RejectRcpt { code, text } = mode {
                            reply(&mut w, &format!("{code} {text}")).await?;
                        } else {
                            rcpts.push(path);
                            reply(&mut w, "250 2.1.5 OK").await?;
                        }
                    }
                }
            }
            "DATA" => {
                if from.is_none() || rcpts.is_empty() {
                    reply(&mut w, "503 5.5.1 Need MAIL and RCPT before DATA").await?;
                    continue;
                }
                reply(&mut w, "354 Start mail input; end with <CRLF>.<CRLF>").await?;
                let mut data: Vec<u8> = Vec::new();
                loop {
                    line.clear();
                    if r.read_until(b'\n', &mut line).await? == 0 {
                        return Ok(()); // client went away mid-DATA: nothing is captured
                    }
                    if line == b".\r\n" || line == b".\n" {
                        break;
                    }
                    let content = line.strip_prefix(b".").unwrap_or(&line);
                    data.extend_from_slice(content);
                }
                let message = Captured {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut rcpts),
                    data: String::from_utf8_lossy(&data).into_owned(),
                };
                let mode = shared.lock().mode.clone();
                match mode {
                    Mode::RejectData { code, text } => {
                        reply(&mut w, &format!("{code} {text}")).await?
                    }
                    Mode::HoldData => {
                        hold(shared).await;
                        let n = capture(shared, message);
                        reply(&mut w, &format!("250 2.0.0 OK queued as {n}")).await?;
                    }
                    Mode::Accept | Mode::RejectRcpt { .. } => {
                        let n = capture(shared, message);
                        reply(&mut w, &format!("250 2.0.0 OK queued as {n}")).await?;
                    }
                }
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                reply(&mut w, "250 2.0.0 OK").await?;
            }
            "AUTH" => match arg.split_once(' ').and_then(|(_, b64)| plain_login(b64)) {
                Some(login) if greeted => {
                    shared.lock().logins.push(login);
                    reply(&mut w, "235 2.7.0 Authentication successful").await?;
                }
                _ => reply(&mut w, "501 5.5.4 Syntax: AUTH PLAIN <base64>").await?,
            },
            "NOOP" => reply(&mut w, "250 2.0.0 OK").await?,
            "QUIT" => {
                reply(&mut w, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            _ => reply(&mut w, "500 5.5.2 Command not recognized").await?,
        }
    }
}

#[cfg(test)]
mod tests;
