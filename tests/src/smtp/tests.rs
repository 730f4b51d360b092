//! The SMTP server driven by a raw TCP conversation.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use super::{Mode, SmtpServer};

struct Client {
    r: BufReader<OwnedReadHalf>,
    w: OwnedWriteHalf,
}

impl Client {
    /// Connects and reads the 220 greeting.
    async fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (r, w) = stream.into_split();
        let mut client = Client {
            r: BufReader::new(r),
            w,
        };
        let (code, _) = client.reply().await;
        assert_eq!(code, 220);
        client
    }

    /// One (possibly multi-line) reply: its code and its lines.
    async fn reply(&mut self) -> (u16, Vec<String>) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(5), self.r.read_line(&mut line))
                .await
                .expect("reply within 5 s")
                .unwrap();
            assert!(n > 0, "connection closed while waiting for a reply");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                break;
            }
        }
        (lines[0][..3].parse().unwrap(), lines)
    }

    async fn send(&mut self, raw: &str) {
        self.w.write_all(raw.as_bytes()).await.unwrap();
    }

    async fn cmd(&mut self, line: &str) -> (u16, Vec<String>) {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// MAIL, RCPT for each of `to`, DATA with `message` dot-stuffed as a real client does;
    /// returns the reply to the final dot.
    async fn transaction(&mut self, from: &str, to: &[&str], message: &str) -> (u16, Vec<String>) {
        let body = stuff(message);
        assert_eq!(
            self.cmd(&format!("MAIL FROM:<{from}> BODY=8BITMIME"))
                .await
                .0,
            250
        );
        for rcpt in to {
            assert_eq!(self.cmd(&format!("RCPT TO:<{rcpt}>")).await.0, 250);
        }
        assert_eq!(self.cmd("DATA").await.0, 354);
        self.send(&body).await;
        self.send(".\r\n").await;
        self.reply().await
    }
}

/// RFC 5321 4.5.2 transparency: a line starting with `.` gets one more.
fn stuff(message: &str) -> String {
    message
        .split_inclusive("\r\n")
        .map(|line| {
            if line.starts_with('.') {
                format!(".{line}")
            } else {
                line.to_owned()
            }
        })
        .collect()
}

const MESSAGE: &str = "From: Sender <sender@example.test>\r\n\
To: a@example.test, b@example.test\r\n\
Subject: =?utf-8?b?SW52aXRhdGlvbiDDoCB2b3Vz?=\r\n\
Message-ID: <abc.123@example.test>\r\n\
X-Folded: first part\r\n\
\tsecond part\r\n\
\r\n\
..leading dot line\r\n\
...\r\n\
Join: http://127.0.0.1:1/i/tok?x=1\r\n";

#[tokio::test]
async fn captures_a_message_and_unstuffs_dots() {
    let smtp = SmtpServer::start().await;
    assert_eq!(smtp.url(), format!("smtp://127.0.0.1:{}", smtp.port()));
    let mut c = Client::connect(smtp.port()).await;

    let (code, lines) = c.cmd("EHLO client.test").await;
    assert_eq!(code, 250);
    assert_eq!(lines, ["250-localhost", "250-AUTH PLAIN", "250 8BITMIME"]);
    assert!(!lines.iter().any(|l| l.contains("STARTTLS")));
    // AUTH PLAIN: base64 of "\0user\0pass"; any credentials are accepted and recorded.
    assert_eq!(c.cmd("AUTH PLAIN AHVzZXIAcGFzcw==").await.0, 235);
    assert_eq!(c.cmd("AUTH PLAIN !!").await.0, 501);
    assert_eq!(smtp.logins(), [("user".to_owned(), "pass".to_owned())]);
    assert_eq!(c.cmd("NOOP").await.0, 250);
    assert_eq!(
        c.cmd("DATA").await.0,
        503,
        "DATA before MAIL is a sequence error"
    );
    assert_eq!(c.cmd("BDAT 10").await.0, 500);

    // On the wire the body lines are "...leading dot line" and "....": the server unstuffs them.
    assert!(stuff(MESSAGE).contains("\r\n...leading dot line\r\n....\r\n"));
    let (code, _) = c
        .transaction(
            "sender@example.test",
            &["a@example.test", "b@example.test"],
            MESSAGE,
        )
        .await;
    assert_eq!(code, 250);
    assert_eq!(c.cmd("QUIT").await.0, 221);

    let messages = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.from, "sender@example.test");
    assert_eq!(m.to, ["a@example.test", "b@example.test"]);
    assert!(m.is_to("B@example.test"));
    assert_eq!(m.data, MESSAGE);
    let mail = m.mail();
    assert_eq!(
        mail.body(),
        "..leading dot line\r\n...\r\nJoin: http://127.0.0.1:1/i/tok?x=1\r\n"
    );
    assert_eq!(
        mail.header("subject").as_deref(),
        Some("=?utf-8?b?SW52aXRhdGlvbiDDoCB2b3Vz?=")
    );
    assert_eq!(mail.subject().as_deref(), Some("Invitation à vous"));
    assert_eq!(
        mail.header("X-FOLDED").as_deref(),
        Some("first part\tsecond part")
    );
    assert_eq!(mail.message_id().as_deref(), Some("<abc.123@example.test>"));
    assert_eq!(mail.header("missing"), None);
    assert_eq!(
        mail.text().as_deref(),
        Some("..leading dot line\n...\nJoin: http://127.0.0.1:1/i/tok?x=1\n")
    );
    assert_eq!(mail.links(), ["http://127.0.0.1:1/i/tok?x=1"]);
    assert_eq!(smtp.connection_count(), 1);
}

#[tokio::test]
async fn reject_data_550_captures_nothing() {
    let smtp = SmtpServer::start().await;
    smtp.set_mode(Mode::reject_data(550, "5.7.1 Message rejected"));
    let mut c = Client::connect(smtp.port()).await;
    assert_eq!(c.cmd("EHLO client.test").await.0, 250);

    let (code, lines) = c
        .transaction("s@example.test", &["r@example.test"], MESSAGE)
        .await;
    assert_eq!(code, 550);
    assert_eq!(lines, ["550 5.7.1 Message rejected"]);
    assert!(smtp.messages().is_empty());

    // The session goes on: same connection, next transaction accepted once the mode changes.
    smtp.set_mode(Mode::Accept);
    assert_eq!(c.cmd("RSET").await.0, 250);
    assert_eq!(
        c.transaction("s@example.test", &["r@example.test"], MESSAGE)
            .await
            .0,
        250
    );
    assert_eq!(c.cmd("QUIT").await.0, 221);
    assert_eq!(smtp.wait_for(1, Duration::from_secs(5)).await.len(), 1);
}

#[tokio::test]
async fn reject_rcpt() {
    let smtp = SmtpServer::start().await;
    smtp.set_mode(Mode::reject_rcpt(450, "4.2.0 Mailbox busy"));
    let mut c = Client::connect(smtp.port()).await;
    assert_eq!(c.cmd("HELO client.test").await.0, 250);
    assert_eq!(c.cmd("MAIL FROM:<s@example.test>").await.0, 250);
    assert_eq!(
        c.cmd("RCPT TO:<r@example.test>").await,
        (450, vec!["450 4.2.0 Mailbox busy".to_owned()])
    );
    assert_eq!(c.cmd("DATA").await.0, 503, "no accepted recipient");
    assert_eq!(c.cmd("QUIT").await.0, 221);
    assert!(smtp.messages().is_empty());
}

#[tokio::test]
async fn hold_data_until_release() {
    let smtp = SmtpServer::start().await;
    smtp.set_mode(Mode::HoldData);
    let port = smtp.port();
    let client = tokio::spawn(async move {
        let mut c = Client::connect(port).await;
        assert_eq!(c.cmd("EHLO client.test").await.0, 250);
        c.transaction("s@example.test", &["r@example.test"], MESSAGE)
            .await
            .0
    });
    smtp.wait_for_held(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!client.is_finished(), "a held session must not answer");
    assert!(smtp.messages().is_empty());

    smtp.release();
    assert_eq!(smtp.held_count(), 0);
    assert_eq!(client.await.unwrap(), 250);
    assert_eq!(
        smtp.wait_for(1, Duration::from_secs(5)).await[0].data,
        MESSAGE
    );
}

#[tokio::test]
async fn stop_refuses_connections_and_restart_serves_again() {
    let smtp = SmtpServer::start().await;
    let port = smtp.port();
    let mut open = Client::connect(port).await;
    smtp.stop().await;
    assert!(!smtp.is_running());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).await.is_err(),
        "connection refused when stopped"
    );
    // Open sessions are closed too (as a pooled client would notice).
    open.send("NOOP\r\n").await;
    let mut line = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), open.r.read_line(&mut line))
        .await
        .unwrap();
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "session still answered: {line:?}"
    );

    smtp.restart_on_same_port().await;
    assert!(smtp.is_running());
    let mut c = Client::connect(port).await;
    assert_eq!(c.cmd("EHLO client.test").await.0, 250);
    assert_eq!(
        c.transaction("s@example.test", &["r@example.test"], MESSAGE)
            .await
            .0,
        250
    );
    assert_eq!(smtp.wait_for(1, Duration::from_secs(5)).await.len(), 1);
}
