//! Subscription fan-out benchmark: `cargo bench -p tests --bench live`.
//!
//! Builds and starts the release `invitations serve --no-workers` as its own process against a
//! fresh PostgreSQL database and Redis, connects 1,000 then 10,000 WebSocket subscribers to one
//! company's `companyActivity`, creates invitations at a steady rate, and reports the delivery
//! latency (event `occurredAt`, stamped inside the committing transaction, to arrival at the
//! client) and the server's resident memory per subscriber. Needs PostgreSQL and Redis
//! (`TEST_DATABASE_URL`, `TEST_REDIS_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};
use tests::graphql::Gql;
use tests::pg::TestDatabase;
use tests::release::{Server, rss_kib};
use tests::ws::WsClient;
use tokio::sync::Mutex;

const RATE_PER_SECOND: u64 = 10;
const SECONDS: u64 = 5;

#[tokio::main]
async fn main() {
    let database = TestDatabase::postgres().await;
    let redis = tests::redis_env::redis_url();
    tests::redis_env::require_redis(&redis).await;
    let prefix = tests::redis_env::unique_prefix();
    let server = Server::start(&[
        ("DATABASE_URL", database.url()),
        ("REDIS_URL", &redis),
        ("REDIS_KEY_PREFIX", &prefix),
    ])
    .await;
    let pid = server.pid();
    let base = server.base().to_owned();
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    let org = entity::organization::create(&db, "Bench").await.unwrap();
    let key = entity::organization::create_api_key(&db, org.id, "bench")
        .await
        .unwrap()
        .key;
    let gql = Gql::new(&base).with_api_key(&key);
    let company = gql
        .query(
            "mutation { createCompany(input: { name: \"Live\" }) { id } }",
            json!({}),
        )
        .await
        .data()["createCompany"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    println!(
        "\nSubscription fan-out, one company, {RATE_PER_SECOND} events/s for {SECONDS} s, PostgreSQL + Redis\n"
    );
    println!("| subscribers | events delivered | p50 ms | p99 ms | server RSS per subscriber |");
    println!("|---|---|---|---|---|");
    for n in [1_000usize, 10_000] {
        let before = rss_kib(pid);
        let mut clients = Vec::with_capacity(n);
        let connect: Vec<_> = (0..n)
            .map(|_| {
                let (base, key, company) = (base.clone(), key.clone(), company.clone());
                async move {
                    let mut ws = WsClient::connect(&base).await;
                    ws.init(&key).await.unwrap();
                    ws.subscribe(
                        "1",
                        "subscription($c: ID!) { companyActivity(companyId: $c) { id occurredAt } }",
                        json!({ "c": company }),
                    )
                    .await;
                    ws
                }
            })
            .collect();
        let mut stream = futures::stream::iter(connect).buffer_unordered(200);
        while let Some(ws) = stream.next().await {
            clients.push(ws);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let per_subscriber = (rss_kib(pid).saturating_sub(before)) as f64 / n as f64;

        let expected = (RATE_PER_SECOND * SECONDS) as usize;
        let latencies = Arc::new(Mutex::new(Vec::with_capacity(n * expected)));
        let readers: Vec<_> = clients
            .into_iter()
            .map(|mut ws| {
                let latencies = latencies.clone();
                tokio::spawn(async move {
                    let mut mine = Vec::with_capacity(expected);
                    for _ in 0..expected {
                        let data: Value = ws.next_data(Duration::from_secs(60)).await;
                        let at = data["companyActivity"]["occurredAt"].as_str().unwrap();
                        let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
                        let ms = (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
                            .num_microseconds()
                            .unwrap() as f64
                            / 1000.0;
                        mine.push(ms);
                    }
                    latencies.lock().await.extend(mine);
                    ws.close().await;
                })
            })
            .collect();
        let mut ticker = tokio::time::interval(Duration::from_millis(1000 / RATE_PER_SECOND));
        for _ in 0..expected {
            ticker.tick().await;
            gql.query(
                "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: {}) { id } }",
                json!({ "c": company }),
            )
            .await
            .data();
        }
        for r in readers {
            r.await.unwrap();
        }
        let mut all = latencies.lock().await.clone();
        all.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
        println!(
            "| {n} | {} | {:.1} | {:.1} | {:.1} KiB |",
            all.len(),
            pick(0.5),
            pick(0.99),
            per_subscriber
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
