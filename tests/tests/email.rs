//! Email and background jobs against a real SMTP server (and Redis on the PostgreSQL runs):
//! delivery, resend, retries, permanent failures, lost queues, killed workers, several workers.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use entity::entities::{email_deliveries, invitation_events, invitations};
use entity::{DeliveryStatus, EventType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tests::graphql::Gql;
use tests::pg::Backend;
use tests::poll::eventually;
use tests::smtp::Mode;

use crate::app::{self, TestApp};
use crate::both;

const WAIT: Duration = Duration::from_secs(30);

async fn invite(gql: &Gql, company: &str, emails: &[&str]) -> Value {
    let r = gql
        .query(
            "mutation($c: ID!, $i: InvitationInput!) { createContributorInvitation(companyId: $c, input: $i) {
                id token deliveries { id recipient messageId } } }",
            json!({ "c": company, "i": { "allowedEmails": emails, "sendEmail": true, "expiresInSeconds": 259200 } }),
        )
        .await;
    r.data()["createContributorInvitation"].clone()
}

async fn deliveries(app: &TestApp) -> Vec<email_deliveries::Model> {
    email_deliveries::Entity::find().all(&app.db).await.unwrap()
}

async fn count_events(app: &TestApp, kind: EventType) -> u64 {
    invitation_events::Entity::find()
        .filter(invitation_events::Column::EventType.eq(kind))
        .count(&app.db)
        .await
        .unwrap()
}

/// Waits until no delivery is PENDING any more.
async fn settled(app: &TestApp) -> Vec<email_deliveries::Model> {
    let db = app.db.clone();
    eventually("every delivery to be SENT or FAILED", WAIT, || {
        let db = db.clone();
        async move {
            let rows = email_deliveries::Entity::find().all(&db).await.unwrap();
            rows.iter()
                .all(|d| d.status != DeliveryStatus::Pending)
                .then_some(rows)
        }
    })
    .await
}

both!(three_recipients_three_messages, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let inv = invite(
        &gql,
        &c,
        &["a@example.com", "b@example.com", "c@example.com"],
    )
    .await;
    let token = inv["token"].as_str().unwrap();
    let messages = app.wait_for_mail(3, WAIT).await;
    let by_id: HashMap<String, String> = inv["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["recipient"].as_str().unwrap().to_owned(),
                d["messageId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut links = HashSet::new();
    for m in &messages {
        let to = m.to[0].clone();
        let mail = m.mail();
        assert!(
            mail.header("Content-Type")
                .unwrap()
                .contains("multipart/alternative"),
            "{}",
            m.data
        );
        assert_eq!(
            mail.message_id().as_deref(),
            Some(by_id[&to].as_str()),
            "the Message-ID chosen at write time"
        );
        assert!(mail.header("Date").is_some());
        assert!(
            mail.subject().unwrap().contains("Acme Co Ltd"),
            "the display name"
        );
        let text = mail.text().unwrap();
        let html = mail.html().unwrap();
        let link = mail
            .links()
            .into_iter()
            .find(|l| l.contains(token))
            .expect("the link");
        assert!(
            link.contains(&format!("email={}", to.replace('@', "%40"))),
            "{link}"
        );
        assert!(
            text.contains(&link),
            "a plain copyable link in the text part"
        );
        assert!(
            html.contains(&link.replace('&', "&#38;")),
            "the same link, escaped, in the HTML part"
        );
        links.insert(link);
    }
    assert_eq!(
        links.len(),
        3,
        "each recipient has its own pre-verified link"
    );
    let rows = settled(&app).await;
    assert!(
        rows.iter()
            .all(|d| d.status == DeliveryStatus::Sent && d.attempts == 1)
    );
    assert_eq!(count_events(&app, EventType::EmailSent).await, 3);
    app.stop().await;
});

both!(
    resend_keeps_the_link_rotation_replaces_it,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        let inv = invite(&gql, &c, &["r@example.com"]).await;
        let old = inv["token"].as_str().unwrap().to_owned();
        app.wait_for_mail(1, WAIT).await;
        let resend = "mutation($id: ID!, $i: ResendInvitationInput) { resendInvitation(id: $id, input: $i) { token } }";
        gql.query(resend, json!({ "id": inv["id"] })).await.data();
        let messages = app.wait_for_mail(2, WAIT).await;
        assert!(
            messages[1].mail().links().iter().any(|l| l.contains(&old)),
            "the same link again"
        );
        assert_ne!(
            messages[0].mail().message_id(),
            messages[1].mail().message_id(),
            "a new message"
        );
        let r = gql
            .query(
                resend,
                json!({ "id": inv["id"], "i": { "rotateToken": true } }),
            )
            .await;
        let new = r.data()["resendInvitation"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_ne!(new, old);
        let messages = app.wait_for_mail(3, WAIT).await;
        assert!(messages[2].mail().links().iter().any(|l| l.contains(&new)));
        let q = "query($t: String!) { publicInvitation(token: $t) { companyName } }";
        app.anon()
            .query(q, json!({ "t": old }))
            .await
            .assert_error("NOT_FOUND", None);
        app.anon().query(q, json!({ "t": new })).await.data();
        app.stop().await;
    }
);

both!(smtp_down_then_up_delivers_once, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    app.smtp.stop().await;
    invite(&gql, &c, &["x@example.com", "y@example.com"]).await;
    let db = app.db.clone();
    eventually("a failed attempt while SMTP is down", WAIT, || {
        let db = db.clone();
        async move {
            let rows = email_deliveries::Entity::find().all(&db).await.unwrap();
            rows.iter()
                .all(|d| d.attempts >= 1 && d.status == DeliveryStatus::Pending)
                .then_some(())
        }
    })
    .await;
    app.smtp.restart_on_same_port().await;
    app.wait_for_mail(2, WAIT).await;
    let rows = settled(&app).await;
    assert!(rows.iter().all(|d| d.status == DeliveryStatus::Sent));
    // Let any stray retry happen, then count again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.smtp.messages().len(), 2, "each message once");
    app.stop().await;
});

both!(
    a_connection_the_server_dropped_is_replaced_at_once,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        invite(&gql, &c, &["first@example.com"]).await;
        app.wait_for_mail(1, WAIT).await;
        // The worker keeps the connection for the next message; the server drops it meanwhile.
        app.smtp.stop().await;
        app.smtp.restart_on_same_port().await;
        invite(&gql, &c, &["second@example.com"]).await;
        let messages = app.wait_for_mail(2, WAIT).await;
        assert!(messages[1].is_to("second@example.com"));
        let rows = settled(&app).await;
        // The dead connection failed at MAIL FROM, before anything of the message went out:
        // it is sent over a new connection in the same attempt, not retried later.
        assert!(
            rows.iter()
                .all(|d| d.status == DeliveryStatus::Sent && d.attempts == 1),
            "{rows:?}"
        );
        // SENT is written after the attempt's last write to the server: nothing more can come.
        assert_eq!(app.smtp.messages().len(), 2, "each message once");
        app.stop().await;
    }
);

both!(credentials_in_the_smtp_url_log_in, |backend| async move {
    let smtp = tests::smtp::SmtpServer::start().await;
    // Percent-encoded as a URL must be; the server must see them decoded.
    let url = format!(
        "smtp://relay%40acme.example:p%3Ass%2Fw0rd@127.0.0.1:{}",
        smtp.port()
    );
    let app = app::spawn_with(backend, |env| {
        env.insert("SMTP_URL".to_owned(), url);
    })
    .await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    invite(&gql, &c, &["x@example.com"]).await;
    smtp.wait_for(1, WAIT).await;
    assert_eq!(
        smtp.logins(),
        [("relay@acme.example".to_owned(), "p:ss/w0rd".to_owned())]
    );
    // The test app's own server, which the URL replaced, saw nothing.
    assert!(app.smtp.messages().is_empty());
    app.stop().await;
});

both!(
    permanent_rejection_fails_without_retry,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        app.smtp
            .set_mode(Mode::reject_data(550, "5.1.1 mailbox unavailable"));
        let inv = invite(&gql, &c, &["gone@example.com"]).await;
        let rows = settled(&app).await;
        assert_eq!(rows[0].status, DeliveryStatus::Failed);
        assert_eq!(rows[0].attempts, 1);
        assert!(
            rows[0]
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("550")
        );
        let failed = invitation_events::Entity::find()
            .filter(invitation_events::Column::EventType.eq(EventType::EmailFailed))
            .one(&app.db)
            .await
            .unwrap()
            .expect("EMAIL_FAILED");
        assert!(
            failed.detail.to_string().contains("550"),
            "{}",
            failed.detail
        );
        assert_eq!(failed.email.as_deref(), Some("gone@example.com"));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(deliveries(&app).await[0].attempts, 1, "no retries");
        let q = "query($id: ID!) { invitation(id: $id) { deliveries { status lastError } } }";
        let r = gql.query(q, json!({ "id": inv["id"] })).await;
        assert_eq!(r.data()["invitation"]["deliveries"][0]["status"], "FAILED");
        app.stop().await;
    }
);

/// Redis loses its data with jobs queued: the sweeper finds the PENDING rows and queues them
/// again; every message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lost_queue_is_recovered_by_the_sweeper() {
    // The API process queues the jobs but runs no workers.
    let api = app::spawn_api_only(Backend::Postgres, |_| {}).await;
    let gql = api.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    for i in 0..3 {
        invite(&gql, &c, &[&format!("q{i}@example.com")]).await;
    }
    let prefix = api.env["REDIS_KEY_PREFIX"].clone();
    let url = tests::redis_env::redis_url();
    // FLUSHALL for this test's keys only (other tests share the server).
    assert!(
        tests::redis_env::delete_prefix(&url, &prefix).await > 0,
        "jobs were queued in Redis"
    );
    let worker = app::spawn_worker(&api, |env| {
        env.insert("EMAIL_SWEEP_INTERVAL_SECONDS".into(), "1".into());
        env.insert("EMAIL_SWEEP_GRACE_SECONDS".into(), "1".into());
    })
    .await;
    api.wait_for_mail(3, WAIT).await;
    settled(&api).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ids: HashSet<_> = api
        .smtp
        .messages()
        .iter()
        .map(|m| m.mail().message_id())
        .collect();
    assert_eq!(
        (api.smtp.messages().len(), ids.len()),
        (3, 3),
        "each message exactly once"
    );
    worker.stop().await;
    api.stop().await;
}

/// Two worker processes on one Redis: every job runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_the_queue() {
    let api = app::spawn_api_only(Backend::Postgres, |_| {}).await;
    let w1 = app::spawn_worker(&api, |_| {}).await;
    let w2 = app::spawn_worker(&api, |_| {}).await;
    let gql = api.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    for i in 0..20 {
        invite(&gql, &c, &[&format!("w{i}@example.com")]).await;
    }
    api.wait_for_mail(20, WAIT).await;
    settled(&api).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let messages = api.smtp.messages();
    let ids: HashSet<_> = messages.iter().map(|m| m.mail().message_id()).collect();
    assert_eq!((messages.len(), ids.len()), (20, 20));
    assert_eq!(count_events(&api, EventType::EmailSent).await, 20);
    w1.stop().await;
    w2.stop().await;
    api.stop().await;
}

/// A worker process killed with SIGKILL while the SMTP server holds its message: another worker
/// recovers the delivery and it arrives once, with the same Message-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_worker_mid_send_is_recovered() {
    let api = app::spawn_api_only(Backend::Postgres, |env| {
        env.insert("EMAIL_SEND_LEASE_SECONDS".into(), "4".into());
        env.insert("EMAIL_SWEEP_INTERVAL_SECONDS".into(), "1".into());
        env.insert("EMAIL_SWEEP_GRACE_SECONDS".into(), "1".into());
    })
    .await;
    api.smtp.set_mode(Mode::HoldData);
    let mut child = std::process::Command::new(app::binary())
        .arg("worker")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&api.env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let gql = api.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let inv = invite(&gql, &c, &["k@example.com"]).await;
    let expected = inv["deliveries"][0]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    api.smtp.wait_for_held(1, WAIT).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The held conversation dies with its client: drop it unaccepted, then accept again.
    api.smtp.stop().await;
    api.smtp.set_mode(Mode::Accept);
    api.smtp.restart_on_same_port().await;
    assert!(api.smtp.messages().is_empty());
    let worker = app::spawn_worker(&api, |_| {}).await;
    let messages = api.wait_for_mail(1, WAIT).await;
    assert_eq!(
        messages[0].mail().message_id().as_deref(),
        Some(expected.as_str())
    );
    settled(&api).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.smtp.messages().len(), 1, "delivered exactly once");
    worker.stop().await;
    api.stop().await;
}

/// 10,000 stale invitations expired by two workers at once: one EXPIRED event each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_expiries_by_two_workers() {
    let api = app::spawn_api_only(Backend::Postgres, |_| {}).await;
    let company = api.company("Stale").await;
    let template = {
        let gql = api.gql();
        let r = gql
            .query(
                "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: { expiresInSeconds: 3600 }) { id } }",
                json!({ "c": company.id }),
            )
            .await;
        r.data()["createContributorInvitation"]["id"]
            .as_str()
            .unwrap()
            .parse::<uuid::Uuid>()
            .unwrap()
    };
    // Clone the row 9,999 times with fresh ids and token hashes, already past their deadline.
    api.db
        .execute_unprepared(&format!(
            "INSERT INTO invitations (id, organization_id, company_id, connection_id, invitation_type, status, token_hash,
               token_sealed, allowed_emails, expires_at, max_uses, use_count, prefill, locked_fields,
               remind_before_expiry_seconds, reminder_sent_at, created_by, created_at, updated_at)
             SELECT gen_random_uuid(), organization_id, company_id, connection_id, invitation_type, status,
               md5(random()::text || g::text) || md5(g::text), token_sealed, allowed_emails, now() - interval '1 minute',
               max_uses, use_count, prefill, locked_fields, remind_before_expiry_seconds, reminder_sent_at,
               created_by, created_at, updated_at
             FROM invitations, generate_series(1, 9999) g WHERE id = '{template}'"
        ))
        .await
        .unwrap();
    api.db
        .execute_unprepared(&format!("UPDATE invitations SET expires_at = now() - interval '1 minute' WHERE id = '{template}'"))
        .await
        .unwrap();
    assert_eq!(
        invitations::Entity::find().count(&api.db).await.unwrap(),
        10_000
    );
    let fast = |env: &mut HashMap<String, String>| {
        env.insert("EXPIRY_INTERVAL_SECONDS".into(), "1".into());
    };
    let w1 = app::spawn_worker(&api, fast).await;
    let w2 = app::spawn_worker(&api, fast).await;
    let db = api.db.clone();
    eventually("all 10,000 to be EXPIRED", Duration::from_secs(120), || {
        let db = db.clone();
        async move {
            let left = invitations::Entity::find()
                .filter(invitations::Column::Status.eq(entity::InvitationStatus::Active))
                .count(&db)
                .await
                .unwrap();
            (left == 0).then_some(())
        }
    })
    .await;
    assert_eq!(count_events(&api, EventType::Expired).await, 10_000);
    let row = api
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DatabaseBackend::Postgres,
            "SELECT COUNT(DISTINCT invitation_id) AS n FROM invitation_events WHERE event_type = 'EXPIRED'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        row.try_get::<i64>("", "n").unwrap(),
        10_000,
        "no invitation expired twice"
    );
    w1.stop().await;
    w2.stop().await;
    api.stop().await;
}

/// An app whose sweeper (and so its reminder scheduler) runs every second, with its client
/// and a company.
async fn sweeping_every_second(backend: Backend) -> (TestApp, Gql, String) {
    let app = app::spawn_with(backend, |env| {
        env.insert("EMAIL_SWEEP_INTERVAL_SECONDS".into(), "1".into());
    })
    .await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    (app, gql, c)
}

both!(
    a_due_reminder_is_not_hidden_behind_earlier_deadlines,
    |backend| async move {
        let (app, gql, c) = sweeping_every_second(backend).await;
        // A sweep's batch (500) of invitations with earlier deadlines whose reminders are not
        // due for an hour, then one with a later deadline whose reminder is due at once.
        for b in 0..5 {
            let inputs: Vec<Value> = (0..100)
                .map(|i| {
                    json!({ "allowedEmails": [format!("early{b}-{i}@example.com")],
                        "expiresInSeconds": 7200, "remindBeforeExpirySeconds": 3600 })
                })
                .collect();
            gql.query(
                "mutation($c: ID!, $i: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $i) { id } }",
                json!({ "c": c, "i": inputs }),
            )
            .await
            .data();
        }
        gql.query(
            "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: {
                allowedEmails: [\"due@example.com\"], expiresInSeconds: 86400,
                remindBeforeExpirySeconds: 86399 }) { id } }",
            json!({ "c": c }),
        )
        .await
        .data();
        let messages = app.wait_for_mail(1, WAIT).await;
        assert!(messages[0].is_to("due@example.com"), "{}", messages[0].data);
        settled(&app).await;
        assert_eq!(app.smtp.messages().len(), 1, "only the due reminder");
        assert_eq!(count_events(&app, EventType::ReminderSent).await, 1);
        app.stop().await;
    }
);

both!(
    reminder_once_to_those_who_have_not_submitted,
    |backend| async move {
        let (app, gql, c) = sweeping_every_second(backend).await;
        let r = gql
            .query(
                "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: {
                allowedEmails: [\"done@example.com\", \"late@example.com\"], maxUses: 5,
                expiresInSeconds: 3600, remindBeforeExpirySeconds: 3596 }) { id token } }",
                json!({ "c": c }),
            )
            .await;
        let inv = r.data()["createContributorInvitation"].clone();
        let (id, token) = (inv["id"].as_str().unwrap(), inv["token"].as_str().unwrap());
        // done@ submits through its pre-verified link before the reminder is due (4 s).
        let keys = entity::crypto::Keyring::new(app::SECRET_KEY.as_bytes());
        let sig = keys.sign(
            entity::outbox::email::preverify_message(id.parse().unwrap(), "done@example.com")
                .as_bytes(),
        );
        let public = app.anon();
        let g = public
        .query(
            "mutation($t: String!, $s: String!) { verifyEmailLink(token: $t, email: \"done@example.com\", signature: $s) { grant } }",
            json!({ "t": token, "s": sig }),
        )
        .await;
        let grant = g.data()["verifyEmailLink"]["grant"].clone();
        public
        .query(
            "mutation($t: String!, $g: String) { submitInvitation(token: $t, grant: $g, input: { providerName: \"P\", utilityUsername: \"u\", utilityPassword: \"p\" }) { connectionId } }",
            json!({ "t": token, "g": grant }),
        )
        .await
        .data();
        let messages = app.wait_for_mail(1, WAIT).await;
        assert!(messages[0].is_to("late@example.com"));
        assert!(
            messages[0]
                .mail()
                .text()
                .unwrap()
                .to_lowercase()
                .contains("remind"),
            "{}",
            messages[0].data
        );
        settled(&app).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(
            app.smtp.messages().len(),
            1,
            "one reminder, to the one who has not submitted"
        );
        assert_eq!(count_events(&app, EventType::ReminderSent).await, 1);
        app.stop().await;
    }
);
