//! Operability: `/metrics` read with a Prometheus parser after real traffic, request ids,
//! `METRICS_ADDR` on `serve` and on a separate `invitations worker` process, and trace export
//! over OTLP received by a collector in the test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::{Value, json};
use tests::graphql::Gql;
use tests::otlp::Collector;
use tests::pg::Backend;
use tests::poll::eventually;
use tests::scrape::scrape;
use tests::smtp::SmtpServer;
use tests::webhook_receiver::{Receiver, Reply};
use tests::ws::WsClient;

use crate::app::{self, invite};
use crate::both;

const WAIT: Duration = Duration::from_secs(30);
const SENT: &str = "invitations_emails_sent_total";

/// A child process killed when the test ends, whatever way it ends; its stderr is kept in a
/// file to show when it does not come up.
struct Process {
    child: Child,
    stderr: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the `invitations` binary with exactly `env` (plus PATH).
fn start(args: &[&str], env: &HashMap<String, String>) -> Process {
    let stderr = app::temp_dir().join("stderr.log");
    let child = Command::new(app::binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    Process { child, stderr }
}

impl Process {
    /// `GET url` once it answers 200; its JSON body. Panics with the process's stderr if it
    /// exits first.
    async fn ready(&mut self, url: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(r) = reqwest::get(url).await
                && r.status() == 200
                && let Ok(body) = r.json::<Value>().await
            {
                return body;
            }
            let exited = self.child.try_wait().unwrap();
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                panic!(
                    "{url} never answered 200 (process: {exited:?}); its stderr:\n{}",
                    std::fs::read_to_string(&self.stderr).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// `GET url` once it answers 200 (a listener of an app in this process); its JSON body.
async fn ready(url: &str) -> Value {
    eventually(
        &format!("{url} answers 200"),
        Duration::from_secs(60),
        || async {
            match reqwest::get(url).await {
                Ok(r) if r.status() == 200 => r.json::<Value>().await.ok(),
                _ => None,
            }
        },
    )
    .await
}

both!(metrics_follow_real_traffic, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Metered").await;
    invite(
        &gql,
        &company,
        json!({ "allowedEmails": ["ann@example.com"], "sendEmail": true }),
    )
    .await;
    app.wait_for_mail(1, WAIT).await;
    // The job is counted as finished after its handler returned, a moment after the send.
    eventually(
        "the sent email and its finished job are counted",
        WAIT,
        || async {
            let m = scrape(&app.url).await;
            m.value(SENT, &[("kind", "invitation")]) >= 1.0
                && m.value(
                    "invitations_jobs_finished_total",
                    &[
                        ("queue", "invitations:send_email"),
                        ("outcome", "succeeded"),
                    ],
                ) >= 1.0
        },
    )
    .await;

    let named = gql
        .query_named(
            "query CompanyPage($c: ID!) { company(id: $c) { id } }",
            "CompanyPage",
            json!({ "c": company }),
        )
        .await;
    named.data();
    let refused = gql.query("{ noSuchField }", json!({})).await;
    let refused_code = refused.error_code().unwrap();

    let m = scrape(&app.url).await;
    let ops = "invitations_graphql_operations_total";
    assert!(
        m.value(
            ops,
            &[("operation_type", "mutation"), ("error_code", "none")]
        ) >= 2.0
    );
    assert_eq!(
        m.value(
            ops,
            &[
                ("operation_type", "query"),
                ("operation_name", "CompanyPage"),
                ("error_code", "none"),
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value(ops, &[("error_code", &refused_code)]),
        1.0,
        "{refused_code}: {}",
        m.text
    );
    assert!(
        m.value(
            "invitations_graphql_operation_duration_seconds_count",
            &[("operation_name", "CompanyPage")]
        ) >= 1.0
    );
    assert!(
        m.value(
            "invitations_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/graphql"),
                ("status_class", "2xx")
            ]
        ) >= 3.0
    );
    assert!(m.value("invitations_db_statement_duration_seconds_count", &[]) > 0.0);
    assert_eq!(m.value("invitations_db_pool_max_connections", &[]), 8.0);
    assert!(m.has("invitations_db_pool_connections"));
    let email_queue = [("queue", "invitations:send_email")];
    assert!(m.value("invitations_jobs_enqueued_total", &email_queue) >= 1.0);
    assert!(
        m.value(
            "invitations_jobs_finished_total",
            &[
                ("queue", "invitations:send_email"),
                ("outcome", "succeeded")
            ]
        ) >= 1.0
    );
    assert!(m.value("invitations_job_queue_wait_seconds_count", &email_queue) >= 1.0);
    assert!(
        m.value(
            "invitations_api_key_cache_lookups_total",
            &[("outcome", "miss")]
        ) >= 1.0
    );
    // No id, token or email ever becomes a label value.
    assert!(!m.text.contains(&company), "{}", m.text);
    assert!(!m.text.contains("ann@example.com"));

    // A subscription raises the gauge; closing it lowers it again.
    let gauge = "invitations_live_subscribers";
    assert_eq!(m.value(gauge, &[]), 0.0);
    let mut ws = WsClient::connect(&app.url).await;
    ws.init(&app.api_key).await.unwrap();
    // A query over the socket is counted like one over HTTP.
    ws.subscribe(
        "0",
        "query SocketQuery { viewer { organizationId } }",
        json!({}),
    )
    .await;
    let answer = ws.next_data(WAIT).await;
    assert_eq!(answer["viewer"]["organizationId"], app.org_id.to_string());
    let m = scrape(&app.url).await;
    assert_eq!(
        m.value(
            ops,
            &[
                ("operation_type", "query"),
                ("operation_name", "SocketQuery"),
                ("error_code", "none"),
            ]
        ),
        1.0,
        "{}",
        m.text
    );
    ws.subscribe(
        "1",
        "subscription($c: ID!) { companyActivity(companyId: $c) { cursor } }",
        json!({ "c": company }),
    )
    .await;
    eventually("the subscriber is counted", WAIT, || async {
        scrape(&app.url).await.value(gauge, &[]) == 1.0
    })
    .await;
    invite(&gql, &company, json!({})).await;
    eventually("the event is relayed", WAIT, || async {
        scrape(&app.url)
            .await
            .value("invitations_live_events_relayed_total", &[])
            >= 1.0
    })
    .await;
    drop(ws);
    eventually(
        "the closed subscriber is no longer counted",
        WAIT,
        || async { scrape(&app.url).await.value(gauge, &[]) == 0.0 },
    )
    .await;
});

both!(requests_carry_an_id, |backend| async move {
    let app = app::spawn_api_only(backend, |_| {}).await;
    let client = reqwest::Client::new();
    let echoed = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let given = client
        .get(format!("{}/healthz", app.url))
        .header("x-request-id", "edge-7f3a.1")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed(&given).as_deref(), Some("edge-7f3a.1"));
    let none = client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    let generated = echoed(&none).unwrap();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    // A value that could forge a log line is replaced, not echoed.
    let odd = client
        .get(format!("{}/healthz", app.url))
        .header("x-request-id", "a b\"c")
        .send()
        .await
        .unwrap();
    let replaced = echoed(&odd).unwrap();
    assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
});

both!(
    failed_webhook_attempts_are_counted_by_outcome,
    |backend| async move {
        let app = app::spawn_with(backend, |env| {
            env.insert("WEBHOOK_ALLOW_LOOPBACK".into(), "true".into());
        })
        .await;
        let receiver = Receiver::start(Reply::Status(500)).await;
        let gql = app.gql();
        gql.query(
        "mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret } }",
        json!({ "i": { "url": receiver.url, "eventTypes": ["invitation.created"] } }),
    )
    .await
    .data();
        let company = app::create_company(&gql, "Hooked").await;
        invite(&gql, &company, json!({})).await;
        eventually("the failed attempt is counted", WAIT, || async {
            scrape(&app.url).await.value(
                "invitations_webhook_attempts_total",
                &[("outcome", "http_error")],
            ) >= 1.0
        })
        .await;
        let m = scrape(&app.url).await;
        assert_eq!(
            m.value(
                "invitations_webhook_attempts_total",
                &[("outcome", "succeeded")]
            ),
            0.0
        );
        assert!(m.value("invitations_webhook_attempt_duration_seconds_count", &[]) >= 1.0);
        assert!(
            m.value(
                "invitations_job_retries_scheduled_total",
                &[("queue", "invitations:deliver_webhook")]
            ) >= 1.0
        );
    }
);

both!(
    metrics_addr_moves_metrics_off_the_public_port,
    |backend| async move {
        let port = tests::release::free_port();
        let ops = format!("http://127.0.0.1:{port}");
        let app = app::spawn_api_only(backend, |env| {
            env.insert("METRICS_ADDR".into(), format!("127.0.0.1:{port}"));
        })
        .await;
        let health = ready(&format!("{ops}/readyz")).await;
        assert_eq!(health["database"], "ok");
        // This process sends no email: its readiness does not depend on the mail server.
        assert!(health.get("smtp").is_none(), "{health}");
        let public = reqwest::get(format!("{}/metrics", app.url)).await.unwrap();
        assert_eq!(public.status(), 404);
        app.gql()
            .query("{ companies { id } }", json!({}))
            .await
            .data();
        let m = scrape(&ops).await;
        assert!(m.value("invitations_http_requests_total", &[("route", "/graphql")]) >= 1.0);
        assert_eq!(
            reqwest::get(format!("{ops}/healthz"))
                .await
                .unwrap()
                .status(),
            200
        );
    }
);

both!(
    a_worker_process_serves_metrics_and_readiness,
    |backend| async move {
        let app = app::spawn_api_only(backend, |_| {}).await;
        let port = tests::release::free_port();
        let ops = format!("http://127.0.0.1:{port}");
        let mut env = app.env.clone();
        env.insert("METRICS_ADDR".into(), format!("127.0.0.1:{port}"));
        let mut worker = start(&["worker"], &env);
        let health = worker.ready(&format!("{ops}/readyz")).await;
        assert_eq!(health["status"], "ok", "{health}");
        assert_eq!(health["database"], "ok");
        assert_eq!(health["smtp"], "ok", "{health}");

        let gql = app.gql();
        let company = app::create_company(&gql, "Worked").await;
        invite(
            &gql,
            &company,
            json!({ "allowedEmails": ["bob@example.com"], "sendEmail": true }),
        )
        .await;
        app.wait_for_mail(1, WAIT).await;
        eventually("the worker counts the sent email", WAIT, || async {
            scrape(&ops).await.value(SENT, &[("kind", "invitation")]) >= 1.0
        })
        .await;
        let m = scrape(&ops).await;
        assert!(
            m.value(
                "invitations_jobs_started_total",
                &[("queue", "invitations:send_email")]
            ) >= 1.0
        );
        // The API process queued it; only the worker sent it.
        let api = scrape(&app.url).await;
        assert!(
            api.value(
                "invitations_jobs_enqueued_total",
                &[("queue", "invitations:send_email")]
            ) >= 1.0
        );
        assert_eq!(api.value(SENT, &[]), 0.0);
    }
);

/// Units of work queued behind a small pool's busy connections show in `invitations_db_pool_waiting`,
/// which falls back to 0 once they got through. A process of its own, so nothing else counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn callers_waiting_for_a_connection_are_counted() {
    let app = app::spawn_api_only(Backend::Postgres, |_| {}).await;
    let port = tests::release::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut env = app.env.clone();
    env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
    env.insert("PUBLIC_BASE_URL".into(), url.clone());
    env.insert("DATABASE_MAX_CONNECTIONS".into(), "2".into());
    env.insert("API_KEY_CACHE_SECONDS".into(), "300".into());
    let mut server = start(&["serve", "--no-workers"], &env);
    server.ready(&format!("{url}/readyz")).await;
    let gql = Gql::new(&url).with_api_key(&app.api_key);
    // Also puts the key in the cache, so the mutations below need no connection to sign in.
    let company = app::create_company(&gql, "Queued").await;
    let waiting = || async { scrape(&url).await.value("invitations_db_pool_waiting", &[]) };
    assert_eq!(waiting().await, 0.0);

    // The first mutations take the two connections (or the one that reads do not hold) and
    // stop at the lock; the others queue.
    let lock = app.db.begin().await.unwrap();
    lock.execute_unprepared("LOCK TABLE invitations IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let mutations: Vec<_> = (0..4)
        .map(|_| {
            let (gql, company) = (gql.clone(), company.clone());
            tokio::spawn(async move { invite(&gql, &company, json!({})).await })
        })
        .collect();
    eventually(
        "two units of work wait for the connection",
        WAIT,
        || async { waiting().await >= 2.0 },
    )
    .await;
    lock.rollback().await.unwrap();
    for m in mutations {
        m.await.unwrap();
    }
    assert_eq!(waiting().await, 0.0);
}

/// The email job's span belongs to the trace of the request that created the invitation.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_email_job_continues_the_creating_requests_trace() {
    let collector = Collector::start().await;
    let smtp = SmtpServer::start().await;
    let data_dir = app::temp_dir();
    let port = tests::release::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let env: HashMap<String, String> = [
        ("DATA_DIR", data_dir.display().to_string()),
        ("SECRET_KEY", app::SECRET_KEY.to_owned()),
        ("SMTP_URL", smtp.url()),
        ("BIND_ADDR", format!("127.0.0.1:{port}")),
        ("PUBLIC_BASE_URL", url.clone()),
        ("LOG_LEVEL", "info".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.clone()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let created = app::run_binary(&env, &["org", "create", "Traced", "--json"]);
    assert!(created.status.success());
    let created: Value = serde_json::from_slice(&created.stdout).unwrap();
    let key = created["apiKey"].as_str().unwrap();
    let mut server = start(&["serve"], &env);
    server.ready(&format!("{url}/readyz")).await;

    let gql = Gql::new(&url).with_api_key(key);
    let company = app::create_company(&gql, "Traced").await;
    let request_id = format!("invite-{}", uuid::Uuid::new_v4().simple());
    invite(
        &gql.with_header("x-request-id", &request_id),
        &company,
        json!({ "allowedEmails": ["cy@example.com"], "sendEmail": true }),
    )
    .await;
    smtp.wait_for(1, WAIT).await;
    let trace = eventually("the creating request's span is exported", WAIT, || async {
        collector
            .spans()
            .into_iter()
            .find(|s| s.name == "http" && s.attributes.get("request_id") == Some(&request_id))
            .map(|s| s.trace_id)
    })
    .await;
    eventually(
        "the email job's span is exported in that trace",
        WAIT,
        || async {
            collector
                .spans()
                .iter()
                .any(|s| s.name == "send_email" && s.trace_id == trace)
        },
    )
    .await;
    let spans = collector.spans();
    assert!(
        spans
            .iter()
            .any(|s| s.name == "graphql" && s.trace_id == trace),
        "the GraphQL operation has its span in the request's trace"
    );
}
