//! A fast SMTP sink on loopback for benchmarks: it accepts every message, keeps only its
//! `Message-ID` and the moment it was accepted, and discards the rest.
//!
//! The capturing server of [`crate::smtp`] parses and stores whole messages and is built for
//! fault injection; this one does the least an SMTP server must, so that what a benchmark
//! measures is the client.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The `Message-ID` header's value, `<…>` included; empty when the message had none.
    pub message_id: String,
    pub at: SystemTime,
}

/// The running sink; stops with the process.
#[derive(Debug, Clone)]
pub struct Sink {
    port: u16,
    accepted: Arc<Mutex<Vec<Accepted>>>,
    /// Connections opened so far: a client that reuses its connections opens few.
    connections: Arc<AtomicUsize>,
}

impl Sink {
    /// Listens on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink");
        let port = listener.local_addr().expect("sink address").port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&accepted);
        let connections = Arc::new(AtomicUsize::new(0));
        let opened = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                opened.fetch_add(1, Ordering::Relaxed);
                let _ = stream.set_nodelay(true);
                tokio::spawn(session(stream, Arc::clone(&log)));
            }
        });
        Self {
            port,
            accepted,
            connections,
        }
    }

    /// How many connections clients opened so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// `smtp://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many messages were accepted so far.
    pub fn count(&self) -> usize {
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Every message accepted after the first `from`.
    pub fn since(&self, from: usize) -> Vec<Accepted> {
        self.accepted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(from..)
            .map(<[Accepted]>::to_vec)
            .unwrap_or_default()
    }
}

async fn session(stream: TcpStream, log: Arc<Mutex<Vec<Accepted>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut line = Vec::with_capacity(1024);
    write.write_all(b"220 sink ESMTP\r\n").await?;
    loop {
        line.clear();
        if read_line(&mut lines, &mut line).await? == 0 {
            return Ok(());
        }
        let verb = line
            .get(..4)
            .map(|v| v.to_ascii_uppercase())
            .unwrap_or_default();
        match verb.as_slice() {
            b"EHLO" => {
                write
                    .write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                    .await?;
            }
            b"DATA" => {
                write.write_all(b"354 go ahead\r\n").await?;
                let message_id = read_data(&mut lines, &mut line).await?;
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Accepted {
                        message_id,
                        at: SystemTime::now(),
                    });
                write.write_all(b"250 accepted\r\n").await?;
            }
            b"QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"250 ok\r\n").await?,
        }
    }
}

/// Reads one line, and acknowledges what arrived at once. Without that, Linux delays the ACK of
/// a message body (it expects to send it with the reply), while the client, whose terminating
/// `.` line waits behind that unacknowledged body (Nagle's algorithm), cannot send the line the
/// reply waits for: 40 ms per message. Real servers show the same stall; a sink should not.
async fn read_line(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let n = lines.read_until(b'\n', line).await?;
    socket2::SockRef::from(lines.get_ref().as_ref()).set_tcp_quickack(true)?;
    Ok(n)
}

/// Reads a message body up to the lone `.` line; returns its `Message-ID`.
async fn read_data(
    lines: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> std::io::Result<String> {
    let mut message_id = String::new();
    let mut in_headers = true;
    loop {
        line.clear();
        if read_line(lines, line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line.as_slice() == b".\r\n" {
            return Ok(message_id);
        }
        if in_headers {
            if line.as_slice() == b"\r\n" {
                in_headers = false;
            } else if line.len() > 11 && line[..11].eq_ignore_ascii_case(b"message-id:") {
                message_id = String::from_utf8_lossy(&line[11..]).trim().to_owned();
            }
        }
    }
}
