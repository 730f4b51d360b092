//! Email throughput and latency: `cargo bench -p tests --bench email`.
//!
//! A fast SMTP sink on loopback (in this process: accept and discard) receives, in one run and
//! interleaved:
//!
//! - a plain lettre client sending 2,000 messages of the same shape over `CONNECTIONS` pooled
//!   connections: the rate the sink and this machine allow. It runs as its own process (this
//!   benchmark's executable, started again with `PLAIN_CLIENT_PORT`) and builds each message
//!   as it sends it, as the worker does; the same client run inside this process, beside the
//!   sink, with its messages built beforehand, is printed too. That one is faster than any
//!   separate process can be: its writes reach the sink without crossing to another process
//!   (the same thread often reads what it just wrote), so it is shown, not compared with;
//! - the service on PostgreSQL + Redis, then on the embedded default (SQLite file and embedded
//!   queue): a release `serve --no-workers` process takes 2,000 invitations with `sendEmail`
//!   (20 mutations of 100), then one release `invitations worker` process with
//!   `EMAIL_CONCURRENCY=CONNECTIONS` drains them (**backlog**: messages/s from the first to the
//!   last acceptance); with that worker running, 2,000 more are created as fast as the API takes
//!   them (**burst**: the time from each delivery row's creation, inside the creating
//!   transaction, to its acceptance by the sink, p50 / p99).
//!
//! Each backend runs `--rounds N` times (3 by default), the plain client again before each
//! service run; the summary gives the median ratio of the backlog rate to the plain client's.
//!
//! Every delivery row must end SENT and every Message-ID must reach the sink exactly once;
//! the benchmark panics otherwise. Needs PostgreSQL and Redis (`TEST_DATABASE_URL`,
//! `TEST_REDIS_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use entity::DeliveryStatus;
use entity::entities::email_deliveries;
use futures::StreamExt;
use lettre::message::{MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::{EntityTrait, QuerySelect};
use serde_json::json;
use tests::graphql::Gql;
use tests::pg::{Backend, TestDatabase};
use tests::release::Server;
use tests::smtp_sink::{Accepted, Sink};

const EMAILS: usize = 2_000;
const BATCH: usize = 100;
const CONNECTIONS: usize = 4;

/// A message shaped like an invitation email (multipart text + HTML, a few KiB).
fn message(i: usize) -> Message {
    let link = format!("http://127.0.0.1:8080/p/i/{i:064}");
    let text = format!(
        "Bench Company invites you to connect your utility account.\n\nOpen this link: {link}\n\n{}",
        "This link is personal. ".repeat(20)
    );
    let html = format!(
        "<!doctype html><html><body><h1>Bench Company</h1><p>{}</p><p><a href=\"{link}\">Connect</a></p></body></html>",
        "This link is personal. ".repeat(60)
    );
    Message::builder()
        .from("Invitations <invitations@localhost>".parse().unwrap())
        .to(format!("r{i}@example.com").parse().unwrap())
        .subject("Bench Company invites you to connect your utility account")
        .multipart(
            MultiPart::alternative()
                .singlepart(SinglePart::plain(text))
                .singlepart(SinglePart::html(html)),
        )
        .unwrap()
}

/// The plain client: `EMAILS` messages over `CONNECTIONS` pooled connections to `port`, as
/// many in flight as connections. With `prebuilt`, the messages are built before the clock
/// starts. Returns messages/s.
async fn plain_client(port: u16, prebuilt: bool) -> f64 {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(port)
        .pool_config(PoolConfig::new().max_size(CONNECTIONS as u32))
        .build();
    let messages: Vec<Option<Message>> =
        (0..EMAILS).map(|i| prebuilt.then(|| message(i))).collect();
    let started = Instant::now();
    futures::stream::iter(messages.into_iter().enumerate())
        .map(|(i, m)| {
            let t = transport.clone();
            async move { t.send(m.unwrap_or_else(|| message(i))).await.unwrap() }
        })
        .buffer_unordered(CONNECTIONS)
        .collect::<Vec<_>>()
        .await;
    EMAILS as f64 / started.elapsed().as_secs_f64()
}

/// The plain client in a process of its own (see the module documentation): this executable
/// again, which prints its rate.
fn plain_client_process(sink: &Sink) -> f64 {
    let before = sink.count();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env(PLAIN_CLIENT_PORT, sink.port().to_string())
        .output()
        .unwrap();
    assert!(out.status.success(), "the plain client failed: {out:?}");
    assert_eq!(sink.count() - before, EMAILS);
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Set in the plain client's own process: the sink's port.
const PLAIN_CLIENT_PORT: &str = "PLAIN_CLIENT_PORT";

struct Run {
    backlog_rate: f64,
    burst_rate: f64,
    p50: Duration,
    p99: Duration,
    lost: usize,
    doubled: usize,
    /// SMTP connections the worker opened for the backlog.
    connections: usize,
}

async fn create_invitations(gql: &Gql, company: &serde_json::Value, round: usize) {
    for b in 0..EMAILS / BATCH {
        let inputs: Vec<_> = (0..BATCH)
            .map(|i| {
                json!({ "allowedEmails": [format!("r{round}-{b}-{i}@example.com")], "sendEmail": true })
            })
            .collect();
        gql.query(
            "mutation($c: ID!, $i: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $i) { id } }",
            json!({ "c": company, "i": inputs }),
        )
        .await
        .data();
    }
}

/// Waits until the sink has accepted `n` messages after `from`; returns them.
async fn accepted(sink: &Sink, from: usize, n: usize) -> Vec<Accepted> {
    let started = Instant::now();
    while sink.count() < from + n {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "stalled at {} of {n}",
            sink.count() - from
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Anything more (a duplicate) would arrive right after: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sink.since(from)
}

fn rate(messages: &[Accepted]) -> f64 {
    let first = messages.iter().map(|m| m.at).min().unwrap();
    let last = messages.iter().map(|m| m.at).max().unwrap();
    (messages.len() - 1) as f64 / last.duration_since(first).unwrap().as_secs_f64()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

async fn run_service(backend: Backend, sink: &Sink) -> Run {
    let database = TestDatabase::new(backend).await;
    let smtp = sink.url();
    let concurrency = CONNECTIONS.to_string();
    let redis = tests::redis_env::redis_url();
    let prefix = tests::redis_env::unique_prefix();
    let mut env = vec![
        ("DATABASE_URL", database.url()),
        ("SMTP_URL", smtp.as_str()),
        ("EMAIL_CONCURRENCY", concurrency.as_str()),
        // The benchmark sends twice the default hourly allowance of one organization.
        ("EMAIL_ORGANIZATION_HOURLY_LIMIT", "100000"),
    ];
    if backend == Backend::Postgres {
        tests::redis_env::require_redis(&redis).await;
        env.extend([("REDIS_URL", redis.as_str()), ("REDIS_KEY_PREFIX", &prefix)]);
    }
    let server = Server::start(&env).await;
    let (gql, company) = server.organization_with_company().await;

    // Backlog: everything is queued before the worker starts.
    create_invitations(&gql, &company, 0).await;
    let from = sink.count();
    let opened = sink.connections();
    let mut worker = server.worker(&[]);
    let backlog = accepted(sink, from, EMAILS).await;
    let connections = sink.connections() - opened;

    // Burst: the worker is running while the invitations are created.
    let from = sink.count();
    create_invitations(&gql, &company, 1).await;
    let burst = accepted(sink, from, EMAILS).await;
    worker.kill().unwrap();
    worker.wait().unwrap();
    // Jobs leave their bookkeeping in Redis; a benchmark leaves nothing behind.
    if backend == Backend::Postgres {
        tests::redis_env::delete_prefix(&redis, &prefix).await;
    }

    let db = database.connect().await;
    let rows: Vec<(String, chrono::DateTime<chrono::Utc>, DeliveryStatus)> =
        email_deliveries::Entity::find()
            .select_only()
            .column(email_deliveries::Column::MessageId)
            .column(email_deliveries::Column::CreatedAt)
            .column(email_deliveries::Column::Status)
            .into_tuple()
            .all(&db)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2 * EMAILS);
    let mut received: HashMap<&str, usize> = HashMap::new();
    for m in backlog.iter().chain(&burst) {
        *received.entry(m.message_id.as_str()).or_default() += 1;
    }
    let lost = rows
        .iter()
        .filter(|(id, _, status)| {
            !received.contains_key(id.as_str()) || *status != DeliveryStatus::Sent
        })
        .count();
    let doubled = received.values().filter(|n| **n > 1).count();
    let created_at: HashMap<&str, SystemTime> = rows
        .iter()
        .map(|(id, at, _)| (id.as_str(), SystemTime::from(*at)))
        .collect();
    let mut latencies: Vec<Duration> = burst
        .iter()
        .map(|m| {
            m.at.duration_since(created_at[m.message_id.as_str()])
                .unwrap_or_default()
        })
        .collect();
    latencies.sort();
    Run {
        backlog_rate: rate(&backlog),
        burst_rate: rate(&burst),
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
        lost,
        doubled,
        connections,
    }
}

#[tokio::main]
async fn main() {
    if let Ok(port) = std::env::var(PLAIN_CLIENT_PORT) {
        println!("{}", plain_client(port.parse().unwrap(), false).await);
        return;
    }
    // `--rounds N`: each round runs the plain client and then the service again, so the two are
    // compared under the same conditions however the machine's load moves.
    // (`cargo bench` adds `--bench`.)
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let rounds: usize = match args.as_slice() {
        [] => 3,
        [flag, n] if flag == "--rounds" => n.parse().expect("--rounds N"),
        other => panic!("unexpected arguments {other:?}; usage: [--rounds N]"),
    };
    let sink = Sink::start().await;
    tests::release::binary();
    println!(
        "\nEmail: {EMAILS} invitation emails to a loopback SMTP sink, {CONNECTIONS} connections, one worker process, {rounds} rounds\n"
    );
    println!(
        "| backend | round | plain lettre, own process, msg/s | backlog msg/s | ratio | burst msg/s | commit→accept p50 | p99 | lost | doubled | SMTP connections (backlog) | plain lettre in the sink's process |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut summary = Vec::new();
    for (name, backend) in [
        ("PostgreSQL + Redis", Backend::Postgres),
        ("embedded (SQLite)", Backend::Sqlite),
    ] {
        let mut ratios = Vec::new();
        for round in 1..=rounds {
            let beside = {
                let before = sink.count();
                let rate = plain_client(sink.port(), true).await;
                assert_eq!(sink.count() - before, EMAILS);
                rate
            };
            let plain = plain_client_process(&sink);
            let run = run_service(backend, &sink).await;
            let ratio = run.backlog_rate / plain;
            ratios.push(ratio);
            println!(
                "| {name} | {round} | {plain:.0} | {:.0} | {:.0}% | {:.0} | {:.0} ms | {:.0} ms | {} | {} | {} | {beside:.0} |",
                run.backlog_rate,
                100.0 * ratio,
                run.burst_rate,
                run.p50.as_secs_f64() * 1e3,
                run.p99.as_secs_f64() * 1e3,
                run.lost,
                run.doubled,
                run.connections
            );
            assert_eq!((run.lost, run.doubled), (0, 0), "lost or doubled email");
        }
        ratios.sort_by(f64::total_cmp);
        summary.push((name, ratios));
    }
    println!();
    for (name, ratios) in summary {
        let shown: Vec<String> = ratios
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r))
            .collect();
        println!(
            "{name}: backlog rate / plain client rate, median of {} rounds {:.0}% (each: {})",
            ratios.len(),
            100.0 * ratios[ratios.len() / 2],
            shown.join(", ")
        );
    }
}
