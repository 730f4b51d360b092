//! End-to-end runs of the send-email worker: a migrated SQLite application database, the
//! embedded SQLite queue and the file mailer, all in a temporary folder.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use entity::activity::Actor;
use entity::crypto::Keyring;
use entity::entities::{companies, email_deliveries, invitation_events, invitations};
use entity::invitation::{self, CreateInvitation, Revoke};
use entity::outbox::RetrySchedule;
use entity::outbox::email::{self as delivery, VerificationCodePayload};
use entity::work::{self, Dispatch, Outbox, Work};
use entity::{DeliveryKind, DeliveryStatus, EventType};
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectOptions, Database, DatabaseConnection, EntityTrait,
    QueryFilter, QueryOrder, Set,
};
use serde_json::json;
use test_support::mail::Mail;
use url::Url;
use uuid::Uuid;

use crate::context::{JobContext, WorkerOptions};
use crate::dispatch::Dispatcher;
use crate::email::Composer;
use crate::mailer::Mailer;
use crate::queue::{QueueConfig, Queues};
use crate::runtime;
use crate::settings::{EmailSettings, WebhookSettings, WorkerSettings};

/// Drops what units of work hand over: the tests here queue jobs themselves, as they need them.
struct Discard;

impl Dispatch for Discard {
    async fn dispatch(&self, _: Outbox) {}
}

struct Env {
    dir: PathBuf,
    db: DatabaseConnection,
    queues: Queues,
    keys: Keyring,
    outbox: PathBuf,
    invitation: invitations::Model,
    token: String,
    /// URL and key prefix of this test's Redis queue, removed when the test ends.
    redis: Option<(String, String)>,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some((url, prefix)) = &self.redis {
            let mut conn = redis::Client::open(url.as_str())
                .unwrap()
                .get_connection()
                .unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query(&mut conn)
                .unwrap();
            for key in keys {
                let _: () = redis::cmd("DEL").arg(key).query(&mut conn).unwrap();
            }
            for queue in [
                crate::queue::SEND_EMAIL_QUEUE,
                crate::queue::DELIVER_WEBHOOK_QUEUE,
            ] {
                let _: () = redis::cmd("ZREM")
                    .arg("core:apalis:queues:list")
                    .arg(format!("{prefix}{queue}:workers"))
                    .query(&mut conn)
                    .unwrap();
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Sqlite,
    /// The server in `TEST_REDIS_URL` (default local), under a key prefix of its own.
    Redis,
}

async fn env(queue: Queue) -> Env {
    let dir = std::env::temp_dir().join(format!("jobs-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut options = ConnectOptions::new(format!("sqlite://{}", dir.join("app.db").display()));
    options
        .max_connections(4)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o: SqliteConnectOptions| {
            o.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    let db = Database::connect(options).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    let redis = (queue == Queue::Redis).then(|| {
        let url =
            std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        (url, format!("test-{}:", Uuid::new_v4().simple()))
    });
    let queues = Queues::connect(QueueConfig {
        redis_url: redis.as_ref().map(|(url, _)| url.clone()),
        redis_prefix: redis.as_ref().map(|(_, p)| p.clone()).unwrap_or_default(),
        sqlite_path: dir.join("queue").join("jobs.db"),
        metrics: Default::default(),
    })
    .await
    .unwrap();
    let keys = Keyring::new(&[42u8; 32]);

    let org = entity::organization::create(&db, "Org").await.unwrap();
    let company = companies::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org.id),
        name: Set("acme-legal-name".into()),
        display_name: Set(Some("Acme <Energy>".into())),
        public_id: Set(Uuid::new_v4().simple().to_string()),
        magic_link_secret_hash: Set(None),
        magic_link_secret_sealed: Set(None),
        created_at: Set(entity::now()),
    }
    .insert(&db)
    .await
    .unwrap();
    let work = Work::begin(&db).await.unwrap();
    let created = invitation::create(
        &work,
        &keys,
        CreateInvitation {
            organization_id: org.id,
            company_id: Some(company.id),
            allowed_emails: vec!["ann@example.com".into(), "bob@example.com".into()],
            expires_in_seconds: Some(3 * 86_400),
            ..Default::default()
        },
        &Actor::ApiKey("test".into()),
    )
    .await
    .unwrap();
    work.commit(&Discard).await.unwrap();
    Env {
        outbox: dir.join("outbox"),
        dir,
        db,
        queues,
        keys,
        invitation: created.invitation,
        token: created.token,
        redis,
    }
}

impl Env {
    /// Publishes nowhere and queues what it is handed, like the service's own dispatcher.
    fn dispatcher(&self) -> Dispatcher {
        Dispatcher::new(self.db.clone(), self.queues.clone(), |_| {})
    }

    fn context(&self, outbox: &Path) -> JobContext {
        let composer = Composer {
            keys: self.keys.clone(),
            public_base_url: Url::parse("http://gateway.test").unwrap(),
            from: "Invitations <invitations@gateway.test>".parse().unwrap(),
        };
        let webhooks = crate::webhook::WebhookContext {
            db: self.db.clone(),
            keys: self.keys.clone(),
            sender: crate::webhook::Sender::new(
                Default::default(),
                WebhookSettings::default().timeout,
            )
            .unwrap(),
            policy: Default::default(),
            gate: crate::mailer::SendGate::new(WebhookSettings::default().concurrency, 0),
            dispatcher: self.dispatcher(),
            metrics: Default::default(),
        };
        JobContext::new(
            self.db.clone(),
            Mailer::new(None, outbox, 1).unwrap(),
            composer,
            webhooks,
            self.dispatcher(),
            &EmailSettings::default(),
            Default::default(),
        )
    }

    /// Outbox rows, written the way the API writes them (in a unit of work), but not queued:
    /// each test queues what it needs.
    async fn enqueue(
        &self,
        kind: DeliveryKind,
        recipients: &[&str],
        payload: serde_json::Value,
    ) -> Vec<email_deliveries::Model> {
        let work = Work::begin(&self.db).await.unwrap();
        let recipients: Vec<String> = recipients.iter().map(|r| (*r).to_owned()).collect();
        let rows = delivery::enqueue(&work, &self.invitation, kind, &recipients, payload, None)
            .await
            .unwrap();
        work.commit(&Discard).await.unwrap();
        rows
    }

    async fn row(&self, id: Uuid) -> email_deliveries::Model {
        email_deliveries::Entity::find_by_id(id)
            .one(&self.db)
            .await
            .unwrap()
            .unwrap()
    }

    async fn events(&self, event_type: EventType) -> Vec<invitation_events::Model> {
        invitation_events::Entity::find()
            .filter(invitation_events::Column::InvitationId.eq(self.invitation.id))
            .filter(invitation_events::Column::EventType.eq(event_type))
            .order_by_asc(invitation_events::Column::Id)
            .all(&self.db)
            .await
            .unwrap()
    }

    /// Runs the worker until `done` holds for every row (or a deadline), then shuts it down and
    /// checks that shutdown completes.
    async fn run_until(
        &self,
        ctx: JobContext,
        options: WorkerOptions,
        ids: &[Uuid],
        done: impl Fn(&email_deliveries::Model) -> bool,
    ) {
        let stop = CancellationToken::new();
        // Whatever ends this function (a panic too) stops what it started.
        let _stop_on_drop = stop.clone().drop_guard();
        let running = tokio::spawn(runtime::run(
            self.queues.clone(),
            ctx,
            options,
            stop.clone(),
        ));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let mut all = true;
            for id in ids {
                all &= done(&self.row(*id).await);
            }
            if all {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "deliveries did not settle in time"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .expect("worker stops promptly after shutdown")
            .unwrap();
    }
}

fn fast(instance: &str) -> WorkerOptions {
    WorkerOptions {
        poll_interval: Duration::from_millis(50),
        sweep_interval: Duration::from_millis(200),
        ..WorkerOptions::new(
            format!("{instance}-{}", Uuid::new_v4().simple()),
            &WorkerSettings::default(),
            &EmailSettings::default(),
            &WebhookSettings::default(),
        )
    }
}

fn sent(row: &email_deliveries::Model) -> bool {
    row.status == DeliveryStatus::Sent
}

fn settled(row: &email_deliveries::Model) -> bool {
    row.status != DeliveryStatus::Pending
}

fn eml_files(outbox: &Path) -> Vec<String> {
    std::fs::read_dir(outbox)
        .map(|entries| {
            entries
                .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

async fn sends_each_delivery_once_and_records_it(queue: Queue) {
    let env = env(queue).await;
    let published = Arc::new(Mutex::new(Vec::new()));
    let sink = published.clone();
    let mut ctx = env.context(&env.outbox);
    ctx.dispatcher = Dispatcher::new(env.db.clone(), env.queues.clone(), move |events| {
        sink.lock().unwrap().extend(events)
    });

    let mut rows = env
        .enqueue(
            DeliveryKind::Invitation,
            &["ann@example.com", "bob@example.com"],
            json!({}),
        )
        .await;
    let code = VerificationCodePayload::new(
        &env.keys,
        &entity::crypto::Slot::verification_code(env.invitation.id, "ann@example.com"),
        "123456",
        entity::now() + chrono::Duration::minutes(10),
    )
    .unwrap();
    rows.extend(
        env.enqueue(
            DeliveryKind::VerificationCode,
            &["ann@example.com"],
            code.to_json(),
        )
        .await,
    );
    for row in &rows {
        env.queues.enqueue_emails(&[row.id]).await.unwrap();
        // Copies of one job, as after a lost acknowledgement or a sweep: still one email.
        env.queues.enqueue_emails(&[row.id]).await.unwrap();
        env.queues
            .requeue(&[(row.id, row.next_attempt_at)])
            .await
            .unwrap();
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    env.run_until(ctx, fast("send"), &ids, sent).await;

    let files = eml_files(&env.outbox);
    assert_eq!(files.len(), 3, "one message per delivery");
    for row in &rows {
        let row = env.row(row.id).await;
        assert_eq!((row.attempts, row.sent_at.is_some()), (1, true));
        let eml = files
            .iter()
            .map(|f| Mail::parse(f))
            .find(|m| m.message_id().as_deref() == Some(row.message_id.as_str()))
            .expect("message carries the row's Message-ID");
        assert_eq!(eml.header("To").as_deref(), Some(row.recipient.as_str()));
        assert!(
            eml.header("Content-Type")
                .unwrap()
                .starts_with("multipart/alternative")
        );
        let text = eml.text().unwrap();
        if row.kind == DeliveryKind::Invitation {
            assert_eq!(
                eml.subject().as_deref(),
                Some("Connect your utility account for Acme <Energy>")
            );
            let link = format!(
                "http://gateway.test/p/i/{}?email={}&sig=",
                env.token,
                row.recipient.replace('@', "%40")
            );
            assert!(text.contains(&link), "{text}");
        } else {
            assert_eq!(
                eml.subject().as_deref(),
                Some("Your verification code for Acme <Energy>")
            );
            assert!(text.contains("123456"));
        }
    }
    let email_sent = env.events(EventType::EmailSent).await;
    assert_eq!(email_sent.len(), 2);
    assert_eq!(env.events(EventType::EmailVerificationSent).await.len(), 1);
    let detail = &email_sent[0].detail;
    assert_eq!(detail["kind"], "INVITATION");
    assert!(
        rows.iter().any(
            |r| detail["deliveryId"] == r.id.to_string() && detail["messageId"] == r.message_id
        )
    );
    assert_eq!(email_sent[0].actor, "system");
    assert_eq!(
        published.lock().unwrap().len(),
        3,
        "every event is handed over after commit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_each_delivery_once_and_records_it_sqlite() {
    sends_each_delivery_once_and_records_it(Queue::Sqlite).await;
}

/// Needs Redis (`TEST_REDIS_URL`, default `redis://127.0.0.1:6379`); fails when it is missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_each_delivery_once_and_records_it_redis() {
    sends_each_delivery_once_and_records_it(Queue::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_invitation_is_not_emailed() {
    let env = env(Queue::Sqlite).await;
    let rows = env
        .enqueue(DeliveryKind::Resend, &["ann@example.com"], json!({}))
        .await;
    let revoke = Revoke {
        organization_id: env.invitation.organization_id,
        id: env.invitation.id,
        reason: None,
        actor: Actor::System,
    };
    work::run(&env.db, &Discard, &revoke).await.unwrap();
    env.queues.enqueue_emails(&[rows[0].id]).await.unwrap();
    env.run_until(
        env.context(&env.outbox),
        fast("revoked"),
        &[rows[0].id],
        settled,
    )
    .await;

    let row = env.row(rows[0].id).await;
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Failed, 0));
    assert_eq!(
        row.last_error.as_deref(),
        Some("not sent: the invitation is REVOKED")
    );
    assert!(eml_files(&env.outbox).is_empty());
    let failed = env.events(EventType::EmailFailed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        failed[0].detail["reason"],
        "not sent: the invitation is REVOKED"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_sends_what_no_job_was_queued_for() {
    let env = env(Queue::Sqlite).await;
    let rows = env
        .enqueue(DeliveryKind::Invitation, &["bob@example.com"], json!({}))
        .await;
    let options = WorkerOptions {
        sweep_grace: Duration::ZERO,
        ..fast("sweep")
    };
    env.run_until(env.context(&env.outbox), options, &[rows[0].id], sent)
        .await;
    assert_eq!(eml_files(&env.outbox).len(), 1);
    assert_eq!(env.events(EventType::EmailSent).await.len(), 1);
}

/// A mailer that cannot write (its outbox path is a file) fails transiently.
fn broken_outbox(env: &Env) -> PathBuf {
    let path = env.dir.join("not-a-folder");
    std::fs::write(&path, b"").unwrap();
    path
}

fn quick_retries(max_attempts: u32) -> RetrySchedule {
    RetrySchedule {
        max_attempts,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_on_the_rows_schedule_sqlite() {
    a_transient_failure_is_retried_on_the_rows_schedule(Queue::Sqlite).await;
}

/// Needs Redis, like the test above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_on_the_rows_schedule_redis() {
    a_transient_failure_is_retried_on_the_rows_schedule(Queue::Redis).await;
}

async fn a_transient_failure_is_retried_on_the_rows_schedule(queue: Queue) {
    let env = env(queue).await;
    let outbox = broken_outbox(&env);
    let mut ctx = env.context(&env.outbox);
    ctx.mailer = Mailer::file(&outbox);
    ctx.retry = quick_retries(3);
    let rows = env
        .enqueue(DeliveryKind::Invitation, &["ann@example.com"], json!({}))
        .await;
    env.queues.enqueue_emails(&[rows[0].id]).await.unwrap();

    let stop = CancellationToken::new();
    // Whatever ends this function (a panic too) stops what it started.
    let _stop_on_drop = stop.clone().drop_guard();
    let running = tokio::spawn(runtime::run(
        env.queues.clone(),
        ctx,
        fast("retry"),
        stop.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.row(rows[0].id).await.attempts < 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed_once = env.row(rows[0].id).await;
    assert_eq!(failed_once.status, DeliveryStatus::Pending);
    assert!(failed_once.last_error.is_some());
    // The mail server comes back before the retry is due.
    std::fs::remove_file(&outbox).unwrap();
    std::fs::create_dir(&outbox).unwrap();
    while !sent(&env.row(rows[0].id).await) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "retry did not happen"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(env.row(rows[0].id).await.attempts, 2);
    assert_eq!(eml_files(&outbox).len(), 1);
    assert!(env.events(EventType::EmailFailed).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_failed_attempt_fails_the_delivery_with_the_reply() {
    let env = env(Queue::Sqlite).await;
    let mut ctx = env.context(&env.outbox);
    ctx.mailer = Mailer::file(&broken_outbox(&env));
    ctx.retry = quick_retries(2);
    let rows = env
        .enqueue(DeliveryKind::Invitation, &["ann@example.com"], json!({}))
        .await;
    env.queues.enqueue_emails(&[rows[0].id]).await.unwrap();
    env.run_until(ctx, fast("exhaust"), &[rows[0].id], settled)
        .await;

    let row = env.row(rows[0].id).await;
    assert_eq!((row.status, row.attempts), (DeliveryStatus::Failed, 2));
    let failed = env.events(EventType::EmailFailed).await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].email.as_deref(), Some("ann@example.com"));
    assert_eq!(
        failed[0].detail["smtpReply"],
        row.last_error.unwrap().as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_of_concurrent_claims_wins() {
    let env = env(Queue::Sqlite).await;
    let rows = env
        .enqueue(DeliveryKind::Invitation, &["ann@example.com"], json!({}))
        .await;
    let lease = EmailSettings::default().send_lease;
    let ids = [rows[0].id];
    let claims =
        futures::future::join_all((0..8).map(|_| delivery::claim_all(&env.db, &ids, lease))).await;
    let won: Vec<_> = claims.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(won.len(), 1);
    // Leased: neither another claim nor the sweeper touches it until the lease ends.
    assert!(
        delivery::claim_all(&env.db, &ids, lease)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        delivery::due_pending(&env.db, Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Whoever holds it records once; a duplicate run records nothing.
    let mark_sent = delivery::MarkSent(std::slice::from_ref(&won[0]));
    work::run(&env.db, &Discard, &mark_sent).await.unwrap();
    assert_eq!(env.events(EventType::EmailSent).await.len(), 1);
    work::run(&env.db, &Discard, &mark_sent).await.unwrap();
    assert_eq!(env.events(EventType::EmailSent).await.len(), 1);
    let late = delivery::RecordFailure {
        claim: &won[0],
        smtp_reply: "late",
        permanent: false,
        schedule: &EmailSettings::default().retry(),
    };
    assert!(matches!(
        work::run(&env.db, &Discard, &late).await.unwrap(),
        delivery::FailureOutcome::Superseded
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_idempotency_prefix_writes_nothing_new() {
    let env = env(Queue::Sqlite).await;
    let recipients = vec!["ann@example.com".to_owned(), "bob@example.com".to_owned()];
    let write = |recipients: Vec<String>| {
        let env = &env;
        async move {
            let work = Work::begin(&env.db).await.unwrap();
            let rows = delivery::enqueue(
                &work,
                &env.invitation,
                DeliveryKind::Resend,
                &recipients,
                json!({}),
                Some("resend:key-1"),
            )
            .await
            .unwrap();
            work.commit(&Discard).await.unwrap();
            rows
        }
    };
    assert_eq!(write(recipients.clone()).await.len(), 2);
    assert!(write(recipients).await.is_empty());
    assert_eq!(
        write(vec!["Carol@Example.com ".into()]).await[0].recipient,
        "carol@example.com"
    );
}

/// Finished jobs leave the queue backend; waiting ones stay. `Queues::vacuum` is what the
/// sweeper runs every hour for jobs finished over an hour ago; here the age is zero.
async fn finished_jobs_are_vacuumed(queue: Queue) {
    let env = env(queue).await;
    let rows = env
        .enqueue(
            DeliveryKind::Invitation,
            &["ann@example.com", "bob@example.com"],
            json!({}),
        )
        .await;
    for row in &rows {
        env.queues.enqueue_emails(&[row.id]).await.unwrap();
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    env.run_until(env.context(&env.outbox), fast("vacuum"), &ids, sent)
        .await;
    // A job waiting for its time (a retry an hour out) must survive.
    let later = entity::now() + chrono::TimeDelta::hours(1);
    env.queues.requeue(&[(ids[0], later)]).await.unwrap();

    assert_eq!(jobs(&env).await, (2, 1), "two finished, one waiting");
    assert!(env.queues.vacuum(Duration::from_secs(3600)).await.unwrap() == 0);
    assert_eq!(env.queues.vacuum(Duration::ZERO).await.unwrap(), 2);
    assert_eq!(jobs(&env).await, (0, 1));
}

/// (finished, waiting) jobs of the send-email queue, read from the backend itself.
async fn jobs(env: &Env) -> (u64, u64) {
    use crate::queue::Backend;
    match &env.queues.email {
        Backend::Sqlite(_) => {
            let pool = env.queues.sqlite.as_ref().unwrap();
            let count = |sql: &'static str| async move {
                let (n,): (i64,) = sea_orm::sqlx::query_as(sql).fetch_one(pool).await.unwrap();
                u64::try_from(n).unwrap()
            };
            (
                count("SELECT COUNT(*) FROM Jobs WHERE status IN ('Done', 'Killed', 'Failed')")
                    .await,
                count("SELECT COUNT(*) FROM Jobs WHERE status IN ('Pending', 'Queued')").await,
            )
        }
        Backend::Redis(storage) => {
            let config = storage.get_config();
            let mut conn = storage.clone().get_connection().clone();
            let done: u64 = redis::cmd("SCARD")
                .arg(config.done_jobs_set())
                .query_async(&mut conn)
                .await
                .unwrap();
            let data: u64 = redis::cmd("HLEN")
                .arg(config.job_data_hash())
                .query_async(&mut conn)
                .await
                .unwrap();
            (done, data - done)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_vacuumed_sqlite() {
    finished_jobs_are_vacuumed(Queue::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_are_vacuumed_redis() {
    finished_jobs_are_vacuumed(Queue::Redis).await;
}
