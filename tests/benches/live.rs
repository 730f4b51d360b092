//! Subscription fan-out benchmark: `tests/bench/run live`.
//!
//! Builds and starts the release `invitations serve --no-workers` as its own process against a
//! fresh PostgreSQL database and Redis (a new server for each shape, so its memory growth is that
//! shape's), connects WebSocket subscribers to `companyActivity`, creates invitations at a steady
//! rate, and reports for each shape the delivery latency (event `occurredAt`, stamped inside the
//! committing transaction, to arrival at the client), the events lost (expected minus received,
//! and `SUBSCRIBER_LAGGED` closes) and the server's resident memory per subscriber. Then it
//! measures the rate of `createContributorInvitation` with 16 clients in parallel. With
//! `--build NAME=PATH` (repeated) every measurement runs against each build in turn, e.g. this
//! one and a build without the commit-order sequencer. Needs PostgreSQL and Redis
//! (`TEST_DATABASE_URL`, `TEST_REDIS_URL`) and a file descriptor limit above the subscriber count.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tests::graphql::Gql;
use tests::pg::TestDatabase;
use tests::release::{Server, rss_kib};
use tests::ws::{FrameReader, WsClient};

const CREATE: &str =
    "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: {}) { id } }";
const SUBSCRIPTION: &str =
    "subscription($c: ID!) { companyActivity(companyId: $c) { id occurredAt } }";
/// How long a subscriber waits for the rest of its events after the last one was created.
const GRACE: Duration = Duration::from_secs(30);

struct Shape {
    subscribers: usize,
    companies: usize,
    /// Invitations created per second, round-robin over the companies.
    rate: u64,
    seconds: u64,
}

const SHAPES: [Shape; 3] = [
    Shape {
        subscribers: 1_000,
        companies: 1,
        rate: 10,
        seconds: 5,
    },
    Shape {
        subscribers: 10_000,
        companies: 1,
        rate: 10,
        seconds: 5,
    },
    Shape {
        subscribers: 10_000,
        companies: 1_000,
        rate: 100,
        seconds: 10,
    },
];

async fn start(database: &TestDatabase, redis: &str, binary: PathBuf) -> Server {
    let prefix = tests::redis_env::unique_prefix();
    let env = [
        ("DATABASE_URL", database.url()),
        ("REDIS_URL", redis),
        ("REDIS_KEY_PREFIX", &prefix),
    ];
    Server::start_binary(binary, &env).await
}

/// An organization's key on `server`'s database.
async fn api_key(database: &TestDatabase) -> String {
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    let org = entity::organization::create(&db, "Bench").await.unwrap();
    entity::organization::create_api_key(&db, org.id, "bench")
        .await
        .unwrap()
        .key
}

async fn companies(gql: &Gql, n: usize) -> Vec<String> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            gql.query(
                "mutation($n: String!) { createCompany(input: { name: $n }) { id } }",
                json!({ "n": format!("Live {i}") }),
            )
            .await
            .data()["createCompany"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .buffered(16)
        .collect()
        .await
}

/// The fields of a `next` message the benchmark reads, borrowed from the frame: ten thousand
/// clients share the two cores with the server they measure, so each frame costs them one pass
/// of the JSON parser and no allocation.
#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    payload: Payload<'a>,
}

#[derive(Deserialize)]
struct Payload<'a> {
    /// Null (with `errors`) when the subscription ended with an error, e.g. `SUBSCRIBER_LAGGED`.
    #[serde(borrow)]
    data: Option<Data<'a>>,
}

#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "companyActivity", borrow)]
    activity: Activity<'a>,
}

#[derive(Deserialize)]
struct Activity<'a> {
    id: &'a str,
    #[serde(rename = "occurredAt")]
    occurred_at: &'a str,
}

/// What one subscriber saw.
struct Seen {
    company: usize,
    /// Event ids in the order received, compared with the activity log afterwards.
    ids: Vec<i64>,
    latencies_ms: Vec<f64>,
    /// Ended with `SUBSCRIBER_LAGGED`.
    lagged: bool,
}

/// Reads `ws` until `expected` events arrived or the subscription ended.
async fn read(ws: &mut FrameReader, seen: &mut Seen, expected: usize) {
    while seen.ids.len() < expected {
        let Some(text) = ws.next_text().await else {
            return;
        };
        match serde_json::from_str::<Frame>(text) {
            Ok(Frame {
                payload:
                    Payload {
                        data: Some(Data { activity }),
                    },
            }) => {
                // The clock first: the parsing below is the client's time, not the server's.
                let now = chrono::Utc::now();
                let at = chrono::DateTime::parse_from_rfc3339(activity.occurred_at).unwrap();
                let ms = (now - at.with_timezone(&chrono::Utc))
                    .num_microseconds()
                    .unwrap() as f64
                    / 1000.0;
                seen.latencies_ms.push(ms);
                seen.ids.push(activity.id.parse().unwrap());
            }
            _ => {
                seen.lagged = text.contains("SUBSCRIBER_LAGGED");
                return;
            }
        }
    }
}

/// The event ids of each company's activity log in cursor order, by company index.
async fn logged_ids(database: &TestDatabase, companies: &[String]) -> Vec<Vec<i64>> {
    use entity::entities::invitation_events;
    use sea_orm::{EntityTrait, QueryOrder};
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    let index: HashMap<uuid::Uuid, usize> = companies
        .iter()
        .enumerate()
        .map(|(i, id)| (id.parse().unwrap(), i))
        .collect();
    let mut logged = vec![Vec::new(); companies.len()];
    for event in invitation_events::Entity::find()
        .order_by_asc(invitation_events::Column::Position)
        .all(&db)
        .await
        .unwrap()
    {
        logged[index[&event.company_id]].push(event.id);
    }
    logged
}

async fn run(shape: &Shape, build: &Build, database: &TestDatabase, redis: &str) {
    let server = start(database, redis, build.binary.clone()).await;
    let key = api_key(database).await;
    let base = server.base().to_owned();
    let gql = Gql::new(&base).with_api_key(&key);
    let companies = companies(&gql, shape.companies).await;
    let events = (shape.rate * shape.seconds) as usize;
    // Company `i` gets events i, i + companies, …
    let expected_for =
        |company: usize| events / shape.companies + usize::from(company < events % shape.companies);

    let before = rss_kib(server.pid());
    let connect = (0..shape.subscribers).map(|i| {
        let (base, key) = (base.clone(), key.clone());
        let company = i % shape.companies;
        let id = companies[company].clone();
        async move {
            let mut ws = WsClient::connect(&base).await;
            ws.init(&key).await.unwrap();
            ws.subscribe("1", SUBSCRIPTION, json!({ "c": id })).await;
            (ws.into_frames(), company)
        }
    });
    let clients: Vec<_> = futures::stream::iter(connect)
        // Below the server's 64 sockets per address that may wait for `connection_init`.
        .buffer_unordered(48)
        .collect()
        .await;
    // Idle for a moment: every subscription registered, the server's memory settled.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_subscriber =
        rss_kib(server.pid()).saturating_sub(before) as f64 / shape.subscribers as f64;

    // Until the last event is due, then `GRACE` more: one timer per client, not one per frame.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(shape.seconds) + GRACE;
    let readers: Vec<_> = clients
        .into_iter()
        .map(|(mut ws, company)| {
            let expected = expected_for(company);
            tokio::spawn(async move {
                let mut seen = Seen {
                    company,
                    ids: Vec::with_capacity(expected),
                    latencies_ms: Vec::with_capacity(expected),
                    lagged: false,
                };
                let _ = tokio::time::timeout_at(deadline, read(&mut ws, &mut seen, expected)).await;
                (seen, ws)
            })
        })
        .collect();

    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / shape.rate));
    let mut creating = Vec::with_capacity(events);
    for i in 0..events {
        ticker.tick().await;
        let (gql, company) = (gql.clone(), companies[i % shape.companies].clone());
        // Each on its own task, so a slow answer does not hold back the schedule.
        creating.push(tokio::spawn(async move {
            gql.query(CREATE, json!({ "c": company })).await.data();
        }));
    }
    for c in creating {
        c.await.unwrap();
    }
    let logged = logged_ids(database, &companies).await;
    for (company, ids) in logged.iter().enumerate() {
        assert_eq!(
            ids.len(),
            expected_for(company),
            "events logged for company {company}"
        );
    }
    let mut all = Vec::new();
    let mut by_event: HashMap<i64, Vec<f64>> = HashMap::new();
    let mut sockets = Vec::with_capacity(readers.len());
    let (mut lost, mut lagged, mut wrong) = (0, 0, 0);
    for r in readers {
        let (seen, ws) = r.await.unwrap();
        sockets.push(ws);
        let log = &logged[seen.company];
        lost += log.len() - seen.ids.len();
        lagged += usize::from(seen.lagged);
        // Every event of the log, each once, in cursor order: what arrived is a prefix of it.
        wrong += usize::from(!log.starts_with(&seen.ids));
        for (id, ms) in seen.ids.iter().zip(&seen.latencies_ms) {
            by_event.entry(*id).or_default().push(*ms);
        }
        all.extend(seen.latencies_ms);
    }
    // Closed only once every client has read all it will: a client closing as soon as it has
    // its last event made the server and the other clients handle thousands of closing
    // handshakes while that event was still being delivered, and the last event alone then
    // took the whole tail (p50 160 ms against about 40 ms for every other event).
    futures::future::join_all(sockets.into_iter().map(FrameReader::close)).await;
    let slowest = by_event
        .into_values()
        .map(|mut latencies| percentile(&mut latencies, 0.99))
        .fold(0.0, f64::max);
    let (p50, p99) = (percentile(&mut all, 0.5), percentile(&mut all, 0.99));
    println!(
        "| {} | {} | {} | {} ev/s × {} s | {} | {lost} ({lagged} lagged) | {wrong} | {p50:.1} | {p99:.1} | {slowest:.1} | {per_subscriber:.1} KiB |",
        build.name,
        shape.subscribers,
        shape.companies,
        shape.rate,
        shape.seconds,
        all.len(),
    );
}

/// The `q` quantile of `latencies` (sorting them), 0 if there are none.
fn percentile(latencies: &mut [f64], q: f64) -> f64 {
    latencies.sort_by(|a, b| a.total_cmp(b));
    let last = latencies.len().saturating_sub(1);
    latencies
        .get(((latencies.len() as f64 * q) as usize).min(last))
        .copied()
        .unwrap_or_default()
}

/// Invitations created per second by 16 clients in a loop for 10 s, on a fresh database.
async fn create_rate(redis: &str, build: &Build) -> f64 {
    let database = TestDatabase::postgres().await;
    let server = start(&database, redis, build.binary.clone()).await;
    let key = api_key(&database).await;
    let gql = Gql::new(server.base()).with_api_key(&key);
    let company = companies(&gql, 1).await.remove(0);
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(10);
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (gql, company, done) = (gql.clone(), company.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    gql.query(CREATE, json!({ "c": company })).await.data();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// A build of `invitations` the shapes run against.
struct Build {
    name: String,
    binary: PathBuf,
}

/// What the command line asks for: `[SHAPE…] [create] [--build NAME=PATH…] [--rounds N]`, where
/// a shape is `SUBSCRIBERSxCOMPANIES` (`10000x1`); nothing selected runs every shape and the
/// create rate. Each round runs each selected shape against each build in turn (by default the
/// one `tests/bench/run` built), so two builds are compared under the same load.
struct Options {
    shapes: Vec<&'static Shape>,
    create: bool,
    builds: Vec<Build>,
    rounds: usize,
}

fn options() -> Options {
    let (mut shapes, mut create, mut builds, mut rounds) = (Vec::new(), false, Vec::new(), 1);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // `cargo bench` passes it to every benchmark.
            "--bench" => {}
            "create" => create = true,
            "--build" => {
                let value = args.next().expect("--build NAME=PATH");
                let (name, path) = value.split_once('=').expect("--build NAME=PATH");
                builds.push(Build {
                    name: name.to_owned(),
                    binary: PathBuf::from(path),
                });
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--rounds N")
            }
            name => shapes.push(
                SHAPES
                    .iter()
                    .find(|s| format!("{}x{}", s.subscribers, s.companies) == name)
                    .unwrap_or_else(|| {
                        panic!("unknown shape {name}: one of 1000x1, 10000x1, 10000x1000")
                    }),
            ),
        }
    }
    if shapes.is_empty() && !create {
        shapes = SHAPES.iter().collect();
        create = true;
    }
    if builds.is_empty() {
        builds.push(Build {
            name: "this one".to_owned(),
            binary: tests::release::binary(),
        });
    }
    Options {
        shapes,
        create,
        builds,
        rounds,
    }
}

#[tokio::main]
async fn main() {
    let options = options();
    let redis = tests::redis_env::redis_url();
    tests::redis_env::require_redis(&redis).await;
    let most = options
        .shapes
        .iter()
        .map(|s| s.subscribers)
        .max()
        .unwrap_or(0);
    let limit = tests::release::open_files_limit();
    assert!(
        limit > most as u64 + 1_000,
        "the open files limit ({limit}) is too low for {most} sockets: raise `ulimit -n`"
    );

    if !options.shapes.is_empty() {
        println!("\nSubscription fan-out, `companyActivity`, PostgreSQL + Redis\n");
        println!(
            "| build | subscribers | companies | events created | events delivered | lost | out of order or repeated | p50 ms | p99 ms | slowest event's p99 ms | server RSS per subscriber |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
    }
    for _ in 0..options.rounds {
        for shape in &options.shapes {
            for build in &options.builds {
                let database = TestDatabase::postgres().await;
                run(shape, build, &database, &redis).await;
            }
        }
    }
    if !options.create {
        return;
    }
    println!("\ncreateContributorInvitation, 16 clients in parallel for 10 s, no subscribers\n");
    println!("| build | invitations/s |");
    println!("|---|---|");
    for _ in 0..options.rounds {
        for build in &options.builds {
            println!(
                "| {} | {:.0} |",
                build.name,
                create_rate(&redis, build).await
            );
        }
    }
}
