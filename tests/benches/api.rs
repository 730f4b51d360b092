//! Gateway overhead benchmark: `cargo bench -p tests --bench api`.
//!
//! Starts the real application (release build) against a fresh PostgreSQL database, seeds a
//! company with invitations, then measures with concurrent clients over HTTP:
//! - `invitation(id)` (a point lookup), and
//! - a 20-item `invitations` page with nested events,
//!
//! and, in the same run, the same SQL sent straight to the database with the same concurrency,
//! so the gateway's overhead shows as a ratio. Needs PostgreSQL (`TEST_DATABASE_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::config::Settings;
use api::startup::{self, Roles};
use entity::entities::{invitation_events, invitations};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::json;
use tests::graphql::Gql;
use tests::pg::TestDatabase;
use tokio::net::TcpListener;

const CLIENTS: usize = 16;
const DURATION: Duration = Duration::from_secs(5);

struct Figures {
    requests: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `op` from `CLIENTS` concurrent tasks for `DURATION` and collects latencies.
async fn measure<F, Fut>(op: F) -> Figures
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    // Warm-up: connections, caches, prepared statements.
    for _ in 0..50 {
        op().await;
    }
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while start.elapsed() < DURATION {
                    let t = Instant::now();
                    op().await;
                    latencies.push(t.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    all.sort();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Figures {
        requests: all.len(),
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

fn row(name: &str, f: &Figures) {
    println!(
        "| {name:<44} | {:>9.0} | {:>8.2} | {:>8.2} |",
        f.rate(),
        f.p50.as_secs_f64() * 1000.0,
        f.p99.as_secs_f64() * 1000.0
    );
}

#[tokio::main]
async fn main() {
    let database = TestDatabase::postgres().await;
    let data_dir = std::env::temp_dir().join(format!(
        "invitations-bench-{}",
        uuid::Uuid::now_v7().simple()
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = HashMap::from([
        ("DATABASE_URL".to_owned(), database.url().to_owned()),
        ("DATA_DIR".to_owned(), data_dir.display().to_string()),
        (
            "SECRET_KEY".to_owned(),
            "bench-secret-key-that-is-long-enough-0123456789".to_owned(),
        ),
        (
            "PUBLIC_BASE_URL".to_owned(),
            format!("http://127.0.0.1:{port}"),
        ),
        ("LOG_LEVEL".to_owned(), "error".to_owned()),
        ("DATABASE_MAX_CONNECTIONS".to_owned(), "32".to_owned()),
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
    let db: DatabaseConnection = app.state.db.clone();
    let org = entity::organization::create(&db, "Bench").await.unwrap();
    let key = entity::organization::create_api_key(&db, org.id, "bench")
        .await
        .unwrap();
    tokio::spawn(app.run(std::future::pending()));
    let gql = Gql::new(&format!("http://127.0.0.1:{port}")).with_api_key(&key.key);

    // Seed: one company, 200 invitations with 3 events each.
    let company = entity::company::create_company(&db, org.id, "Bench Co", None)
        .await
        .unwrap();
    let inputs: Vec<_> = (0..100)
        .map(|i| json!({ "allowedEmails": [format!("r{i}@example.com")] }))
        .collect();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = gql
            .query(
                "mutation($c: ID!, $i: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $i) { id } }",
                json!({ "c": company.id, "i": inputs }),
            )
            .await;
        for inv in r.data()["createContributorInvitations"].as_array().unwrap() {
            ids.push(inv["id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap());
        }
    }
    for id in &ids {
        for _ in 0..2 {
            gql.query(
                "mutation($id: ID!) { resendInvitation(id: $id, input: { extendExpiresInSeconds: 3600 }) { id } }",
                json!({ "id": id }),
            )
            .await
            .data();
        }
    }
    let target = ids[ids.len() / 2];

    println!(
        "\nGateway vs. database, PostgreSQL, {CLIENTS} concurrent clients, {DURATION:?} each\n"
    );
    println!(
        "| {:<44} | {:>9} | {:>8} | {:>8} |",
        "operation", "req/s", "p50 ms", "p99 ms"
    );
    println!(
        "|{}|{}|{}|{}|",
        "-".repeat(46),
        "-".repeat(11),
        "-".repeat(10),
        "-".repeat(10)
    );

    let g = gql.clone();
    let point = measure(move || {
        let g = g.clone();
        async move {
            let r = g
                .query(
                    "query($id: ID!) { invitation(id: $id) { id status expiresAt } }",
                    json!({ "id": target }),
                )
                .await;
            assert!(r.errors().is_empty());
        }
    })
    .await;
    row("gateway: invitation(id)", &point);
    let d = db.clone();
    let org_id = org.id;
    let point_sql = measure(move || {
        let d = d.clone();
        async move {
            invitations::Entity::find()
                .filter(invitations::Column::OrganizationId.eq(org_id))
                .filter(invitations::Column::Id.eq(target))
                .one(&d)
                .await
                .unwrap()
                .unwrap();
        }
    })
    .await;
    row("database: the same SELECT", &point_sql);

    let g = gql.clone();
    let company_id = company.id;
    let page = measure(move || {
        let g = g.clone();
        async move {
            let r = g
                .query(
                    "query($c: ID!) { invitations(companyId: $c, first: 20) { totalCount edges { node { id status events(first: 10) { edges { node { eventType occurredAt } } } } } } }",
                    json!({ "c": company_id }),
                )
                .await;
            assert!(r.errors().is_empty());
        }
    })
    .await;
    row("gateway: 20-item page with nested events", &page);
    let d = db.clone();
    let page_sql = measure(move || {
        let d = d.clone();
        async move {
            // What the gateway runs: company check, count, page, events of the page.
            entity::scope::find_owned::<entity::entities::companies::Entity>(
                &d, org_id, company_id,
            )
            .await
            .unwrap();
            let base = invitations::Entity::find()
                .filter(invitations::Column::OrganizationId.eq(org_id))
                .filter(invitations::Column::CompanyId.eq(company_id));
            base.clone().count(&d).await.unwrap();
            let rows = base
                .order_by_desc(invitations::Column::CreatedAt)
                .order_by_desc(invitations::Column::Id)
                .limit(21)
                .all(&d)
                .await
                .unwrap();
            invitation_events::Entity::find()
                .filter(invitation_events::Column::OrganizationId.eq(org_id))
                .filter(invitation_events::Column::InvitationId.is_in(rows.iter().map(|r| r.id)))
                .order_by_asc(invitation_events::Column::Id)
                .all(&d)
                .await
                .unwrap();
        }
    })
    .await;
    row("database: the same four statements", &page_sql);

    println!();
    println!(
        "point lookup: gateway at {:.0}% of the database's own rate",
        100.0 * point.rate() / point_sql.rate()
    );
    println!(
        "20-item page: gateway at {:.0}% of the database's own rate",
        100.0 * page.rate() / page_sql.rate()
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
