//! Webhook delivery throughput: `cargo bench -p tests --bench webhooks`.
//!
//! Against a fresh PostgreSQL database and Redis: the API (in this process, workers off) seeds
//! a backlog of `invitation.created` deliveries to one endpoint, a loopback HTTP receiver (also
//! in this process) answers 200, then release `invitations worker` processes are started and
//! drain it. Reported: deliveries/s from the first to the last success, with one and with two
//! worker processes (16 requests in flight each, the default), beside a plain HTTP client
//! (reqwest, 16 requests in flight, bodies and headers of the same size) posting as many
//! requests to the same receiver in the same run. Everything, receiver included, shares this
//! machine's cores. Needs PostgreSQL and Redis (`TEST_DATABASE_URL`,
//! `TEST_REDIS_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::config::Settings;
use api::startup::{self, Roles};
use entity::WebhookDeliveryStatus;
use entity::entities::webhook_deliveries;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use serde_json::json;
use tests::graphql::Gql;
use tests::pg::TestDatabase;
use tests::webhook_receiver::{Receiver, Reply};
use tokio::net::TcpListener;
use uuid::Uuid;

const DELIVERIES: usize = 5_000;
const BATCH: usize = 100;

async fn seed(gql: &Gql, receiver: &Receiver, round: usize) -> Uuid {
    let r = gql
        .query(
            "mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { endpoint { id } } }",
            json!({ "i": { "url": receiver.url, "eventTypes": ["invitation.created"] } }),
        )
        .await;
    let endpoint: Uuid = r.data()["createWebhookEndpoint"]["endpoint"]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let r = gql
        .query(
            "mutation($i: CreateCompanyInput!) { createCompany(input: $i) { id } }",
            json!({ "i": { "name": format!("Bench {round}") } }),
        )
        .await;
    let company = r.data()["createCompany"]["id"].clone();
    let inputs: Vec<_> = (0..BATCH).map(|_| json!({})).collect();
    for _ in 0..DELIVERIES / BATCH {
        gql.query(
            "mutation($c: ID!, $i: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $i) { id } }",
            json!({ "c": company, "i": inputs }),
        )
        .await
        .data();
    }
    endpoint
}

fn start_worker(env: &HashMap<&str, String>) -> Child {
    Command::new(tests::release::binary())
        .arg("worker")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Waits for every delivery of the endpoint to succeed; returns deliveries/s between the first
/// and the last success.
async fn drain(db: &DatabaseConnection, endpoint: Uuid) -> f64 {
    let started = Instant::now();
    loop {
        let done = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::EndpointId.eq(endpoint))
            .filter(webhook_deliveries::Column::Status.eq(WebhookDeliveryStatus::Succeeded))
            .count(db)
            .await
            .unwrap();
        if done as usize >= DELIVERIES {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "drain stalled at {done}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished: Vec<Option<chrono::DateTime<chrono::Utc>>> = webhook_deliveries::Entity::find()
        .select_only()
        .column(webhook_deliveries::Column::FinishedAt)
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint))
        .into_tuple()
        .all(db)
        .await
        .unwrap();
    let times: Vec<_> = finished.into_iter().flatten().collect();
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    (times.len() - 1) as f64 / (span.num_microseconds().unwrap() as f64 / 1e6)
}

/// The plain client: `DELIVERIES` signed-looking POSTs to the receiver, 16 in flight. Returns
/// requests/s.
async fn plain_client(receiver: &Receiver) -> f64 {
    use futures::StreamExt;
    let client = reqwest::Client::new();
    let body = json!({
        "type": "invitation.created",
        "timestamp": "2026-11-30T00:00:00.000000Z",
        "data": { "eventId": "1", "invitationId": Uuid::nil(), "companyId": Uuid::nil(),
                  "invitationType": "CREATE_CONNECTION", "invitationStatus": "ACTIVE",
                  "connectionId": null, "email": null, "actor": "bench", "detail": {},
                  "occurredAt": "2026-11-30T00:00:00Z" }
    })
    .to_string();
    let before = receiver.count();
    let started = Instant::now();
    futures::stream::iter(0..DELIVERIES)
        .map(|i| {
            let request = client
                .post(&receiver.url)
                .header("content-type", "application/json")
                .header("webhook-id", format!("msg_{i:032}"))
                .header("webhook-timestamp", "1796000000")
                .header("webhook-signature", format!("v1,{}", "A".repeat(44)))
                .body(body.clone());
            async move { request.send().await.unwrap().status() }
        })
        .buffer_unordered(16)
        .for_each(|status| async move { assert!(status.is_success()) })
        .await;
    let elapsed = started.elapsed();
    assert_eq!(receiver.count() - before, DELIVERIES);
    DELIVERIES as f64 / elapsed.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let database = TestDatabase::postgres().await;
    let redis = tests::redis_env::redis_url();
    tests::redis_env::require_redis(&redis).await;
    let prefix = tests::redis_env::unique_prefix();
    let data_dir =
        std::env::temp_dir().join(format!("invitations-hooks-{}", Uuid::now_v7().simple()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let env: HashMap<&str, String> = HashMap::from([
        ("DATABASE_URL", database.url().to_owned()),
        ("REDIS_URL", redis.clone()),
        ("REDIS_KEY_PREFIX", prefix.clone()),
        ("DATA_DIR", data_dir.display().to_string()),
        (
            "SECRET_KEY",
            "bench-secret-key-that-is-long-enough-0123456789".to_owned(),
        ),
        ("PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}")),
        ("WEBHOOK_ALLOW_LOOPBACK", "true".to_owned()),
        ("LOG_LEVEL", "error".to_owned()),
        ("DATABASE_MAX_CONNECTIONS", "16".to_owned()),
    ]);
    let settings = Settings::from_lookup(&|k| env.get(k).cloned()).unwrap();
    let app = startup::build(
        settings,
        Some(listener),
        Roles {
            http: true,
            workers: false,
        },
    )
    .await
    .unwrap();
    let db = app.state.store.db.clone();
    let org = entity::organization::create(&db, "Bench").await.unwrap();
    let key = entity::organization::create_api_key(&db, org.id, "bench")
        .await
        .unwrap();
    tokio::spawn(app.run(std::future::pending()));
    let gql = Gql::new(&format!("http://127.0.0.1:{port}")).with_api_key(&key.key);
    let receiver = Receiver::start(Reply::Status(200)).await;
    tests::release::binary();

    println!(
        "\nWebhook delivery, PostgreSQL + Redis, {DELIVERIES} deliveries drained from a backlog\n"
    );
    println!("| worker processes | deliveries/s | plain client requests/s | ratio |");
    println!("|---|---|---|---|");
    let mut previous: Option<Uuid> = None;
    for (round, workers) in [1usize, 2].into_iter().enumerate() {
        if let Some(endpoint) = previous {
            // Only the current round's endpoint receives the new backlog.
            gql.query(
                "mutation($id: ID!) { disableWebhookEndpoint(id: $id) { id } }",
                json!({ "id": endpoint }),
            )
            .await
            .data();
        }
        let endpoint = seed(&gql, &receiver, round).await;
        let plain = plain_client(&receiver).await;
        let mut children: Vec<Child> = (0..workers).map(|_| start_worker(&env)).collect();
        let rate = drain(&db, endpoint).await;
        println!(
            "| {workers} | {rate:.0} | {plain:.0} | {:.0}% |",
            100.0 * rate / plain
        );
        for child in &mut children {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        previous = Some(endpoint);
    }
    assert!(receiver.count() >= 4 * DELIVERIES);
    // Jobs leave their bookkeeping in Redis; a benchmark leaves nothing behind.
    tests::redis_env::delete_prefix(&redis, &prefix).await;
}
