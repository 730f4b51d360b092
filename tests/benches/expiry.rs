//! The expiry sweep against bare SQL: `tests/bench/run expiry`.
//!
//! 100,000 invitations in one company, 10,000 of them past their deadline. Interleaved, three
//! times each on PostgreSQL and then on SQLite: **bare SQL**, one transaction that makes the
//! whole change by hand (every due invitation EXPIRED, one `EXPIRED` event each), and **the
//! sweep**, `jobs::expiry::expire_all` with the workers' dispatcher (Redis queues on
//! PostgreSQL, the embedded queue on SQLite). The data is reset between runs. Reported: the
//! median of each and their ratio. Then two sweeps run at once on separate pools, and every due
//! invitation must have exactly one `EXPIRED` event. Needs PostgreSQL and Redis
//! (`TEST_DATABASE_URL`, `TEST_REDIS_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use chrono::Utc;
use entity::entities::invitations;
use entity::{InvitationStatus, InvitationType, Prefill, StringList};
use jobs::dispatch::Dispatcher;
use jobs::queue::{QueueConfig, Queues};
use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, Set, TransactionTrait,
};
use tests::pg::{Backend, TestDatabase};
use uuid::Uuid;

const INVITATIONS: usize = 100_000;
const DUE: usize = 10_000;
const ROUNDS: usize = 3;

async fn seed(db: &DatabaseConnection) {
    api::db::migrate(db).await.unwrap();
    let org = entity::organization::create(db, "Bench").await.unwrap();
    let now = Utc::now();
    let company = entity::company::create_company(db, org.id, "Bench Company", None)
        .await
        .unwrap()
        .id;
    let rows: Vec<invitations::ActiveModel> = (0..INVITATIONS)
        .map(|i| {
            // Every tenth invitation passed its deadline a minute ago; the rest have a day.
            let expires_at = if i % (INVITATIONS / DUE) == 0 {
                now - chrono::Duration::minutes(1)
            } else {
                now + chrono::Duration::days(1)
            };
            invitations::ActiveModel {
                id: Set(Uuid::now_v7()),
                organization_id: Set(org.id),
                company_id: Set(company),
                connection_id: Set(None),
                invitation_type: Set(InvitationType::CreateConnection),
                status: Set(InvitationStatus::Active),
                token_hash: Set(format!("bench-{i}")),
                token_sealed: Set(String::new()),
                allowed_emails: Set(StringList(vec![format!("r{i}@example.com")])),
                expires_at: Set(Some(expires_at)),
                max_uses: Set(None),
                use_count: Set(0),
                prefill: Set(Prefill::default()),
                locked_fields: Set(StringList(Vec::new())),
                remind_before_expiry_seconds: Set(None),
                reminder_sent_at: Set(None),
                created_by: Set("bench".to_owned()),
                created_at: Set(now),
                updated_at: Set(now),
                revoked_at: Set(None),
                revoked_reason: Set(None),
                fulfilled_at: Set(None),
                expired_at: Set(None),
            }
        })
        .collect();
    for chunk in rows.chunks(1000) {
        invitations::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await
            .unwrap();
    }
    analyze(db).await;
}

async fn analyze(db: &DatabaseConnection) {
    let sql = match db.get_database_backend() {
        DatabaseBackend::Postgres => "VACUUM ANALYZE",
        _ => "ANALYZE",
    };
    db.execute_unprepared(sql).await.unwrap();
}

/// Puts every invitation back to ACTIVE and empties the log.
async fn reset(db: &DatabaseConnection) {
    db.execute_unprepared(
        "UPDATE invitations SET status = 'ACTIVE', expired_at = NULL WHERE status = 'EXPIRED'",
    )
    .await
    .unwrap();
    db.execute_unprepared("DELETE FROM invitation_events")
        .await
        .unwrap();
    analyze(db).await;
}

/// The whole change in one transaction, by hand.
async fn bare(db: &DatabaseConnection) -> Duration {
    let started = Instant::now();
    let txn = db.begin().await.unwrap();
    let changed = match db.get_database_backend() {
        DatabaseBackend::Postgres => txn
            .execute_unprepared(
                "WITH expired AS ( \
                   UPDATE invitations SET status = 'EXPIRED', expired_at = expires_at, updated_at = now() \
                   WHERE status = 'ACTIVE' AND expires_at <= now() \
                   RETURNING id, organization_id, company_id) \
                 INSERT INTO invitation_events \
                   (invitation_id, organization_id, company_id, event_type, occurred_at, actor, detail) \
                 SELECT id, organization_id, company_id, 'EXPIRED', now(), 'system', '{}' FROM expired",
            )
            .await
            .unwrap()
            .rows_affected(),
        _ => {
            // SQLite has no data-modifying CTE: the events first, then the update.
            let now = Utc::now().to_rfc3339();
            let inserted = txn
                .execute_raw(sea_orm::Statement::from_sql_and_values(
                    DatabaseBackend::Sqlite,
                    "INSERT INTO invitation_events \
                       (invitation_id, organization_id, company_id, event_type, occurred_at, actor, detail, position) \
                     SELECT id, organization_id, company_id, 'EXPIRED', ?1, 'system', '{}', \
                       (SELECT COALESCE(MAX(position), 0) FROM invitation_events) + row_number() OVER (ORDER BY expires_at) \
                     FROM invitations WHERE status = 'ACTIVE' AND expires_at <= ?1",
                    [now.clone().into()],
                ))
                .await
                .unwrap()
                .rows_affected();
            txn.execute_raw(sea_orm::Statement::from_sql_and_values(
                DatabaseBackend::Sqlite,
                "UPDATE invitations SET status = 'EXPIRED', expired_at = expires_at, updated_at = ?1 \
                 WHERE status = 'ACTIVE' AND expires_at <= ?1",
                [now.into()],
            ))
            .await
            .unwrap();
            inserted
        }
    };
    txn.commit().await.unwrap();
    assert_eq!(changed as usize, DUE);
    started.elapsed()
}

async fn sweep(db: &DatabaseConnection, dispatcher: &Dispatcher) -> Duration {
    let started = Instant::now();
    let expired = jobs::expiry::expire_all(db, dispatcher).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(expired as usize, DUE);
    elapsed
}

async fn events(db: &DatabaseConnection) -> (i64, i64) {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*), COUNT(DISTINCT invitation_id) FROM invitation_events \
             WHERE event_type = 'EXPIRED'",
        ))
        .await
        .unwrap()
        .unwrap();
    (
        row.try_get_by_index(0).unwrap(),
        row.try_get_by_index(1).unwrap(),
    )
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

async fn run(backend: Backend) -> (Duration, Duration, (i64, i64)) {
    let database = TestDatabase::new(backend).await;
    let db = database.connect().await;
    seed(&db).await;
    let queue_dir = std::env::temp_dir().join(format!("invitations-expiry-{}", Uuid::now_v7()));
    let redis_url = (backend == Backend::Postgres).then(tests::redis_env::redis_url);
    let prefix = tests::redis_env::unique_prefix();
    let queues = Queues::connect(QueueConfig {
        redis_url: redis_url.clone(),
        redis_prefix: prefix.clone(),
        sqlite_path: queue_dir.join("queue.db"),
        metrics: Default::default(),
    })
    .await
    .unwrap();
    let dispatcher = Dispatcher::new(db.clone(), queues, |_| {});
    let (mut bares, mut sweeps) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bares.push(bare(&db).await);
        reset(&db).await;
        sweeps.push(sweep(&db, &dispatcher).await);
        reset(&db).await;
    }
    // Two sweepers at once, each with its own pool: every due invitation expires once.
    let other = database.connect().await;
    let (a, b) = tokio::join!(
        jobs::expiry::expire_all(&db, &dispatcher),
        jobs::expiry::expire_all(&other, &dispatcher)
    );
    assert_eq!(a.unwrap() + b.unwrap(), DUE as u64);
    let counted = events(&db).await;
    assert_eq!(counted, (DUE as i64, DUE as i64), "one EXPIRED event each");
    let _ = std::fs::remove_dir_all(queue_dir);
    if let Some(url) = redis_url {
        tests::redis_env::delete_prefix(&url, &prefix).await;
    }
    (median(bares), median(sweeps), counted)
}

#[tokio::main]
async fn main() {
    tests::redis_env::require_redis(&tests::redis_env::redis_url()).await;
    println!(
        "\nExpiry: {DUE} due of {INVITATIONS} invitations, median of {ROUNDS} interleaved runs\n"
    );
    println!(
        "| backend | bare SQL (one transaction) | sweep | ratio | EXPIRED events with two sweepers at once |"
    );
    println!("|---|---|---|---|---|");
    for (name, backend) in [
        ("PostgreSQL", Backend::Postgres),
        ("SQLite", Backend::Sqlite),
    ] {
        let (bare, sweep, (events, distinct)) = run(backend).await;
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {:.2}× | {events} for {distinct} invitations |",
            bare.as_secs_f64() * 1e3,
            sweep.as_secs_f64() * 1e3,
            sweep.as_secs_f64() / bare.as_secs_f64()
        );
    }
}
