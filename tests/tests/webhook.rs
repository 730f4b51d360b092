//! Webhooks against a real HTTP receiver on loopback: signatures checked with the
//! `standardwebhooks` crate, retries, timeouts, automatic disabling, replay, secret rotation,
//! the refusal of internal targets, validation and tenant isolation.

use std::collections::HashSet;
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tests::graphql::Gql;
use tests::poll::eventually;
use tests::webhook_receiver::{Receiver, Reply};

use crate::app::{self, PASSWORD, TestApp, details, invite};
use crate::both;

const CREATE: &str = "mutation($i: CreateWebhookEndpointInput!) {
    createWebhookEndpoint(input: $i) { secret endpoint { id url status eventTypes description } } }";
const DELIVERIES: &str = "query($e: ID!, $f: WebhookDeliveryFilter) {
    webhookDeliveries(endpointId: $e, filter: $f, first: 100) { edges { node {
        id endpointId messageId eventType status attemptCount replayOf lastError payload nextAttemptAt finishedAt
        attempts { attemptedAt durationMs outcome httpStatus error responseExcerpt } } } } }";
const ENDPOINT: &str = "query($id: ID!) { webhookEndpoint(id: $id) {
    id url status disabledReason disabledAt failingSince previousSecretExpiresAt eventTypes description } }";
const SUBMIT: &str = "mutation($t: String!, $i: ConnectionInput!) {
    submitInvitation(token: $t, input: $i) { connectionId invitationStatus } }";
const TIMEOUT: Duration = Duration::from_secs(40);

/// Every test app may call loopback receivers, and retries come quickly.
fn fast(env: &mut std::collections::HashMap<String, String>) {
    env.insert("WEBHOOK_ALLOW_LOOPBACK".into(), "true".into());
    env.insert("WEBHOOK_RETRY_FIRST_DELAY_SECONDS".into(), "1".into());
}

async fn spawn(backend: tests::pg::Backend) -> TestApp {
    spawn_tuned(backend, &[]).await
}

/// [`spawn`] with more settings (which may override `fast`'s).
async fn spawn_tuned(backend: tests::pg::Backend, settings: &[(&str, &str)]) -> TestApp {
    app::spawn_with(backend, |env| {
        fast(env);
        for (key, value) in settings {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
    })
    .await
}

/// Creates a company and an invitation, and waits for the endpoint's `invitation.created`
/// delivery to finish; returns the company id and the delivery.
async fn created_delivery(gql: &Gql, endpoint: &str, company: &str) -> (String, Value) {
    let company = app::create_company(gql, company).await;
    invite(gql, &company, json!({})).await;
    let delivery = finished(gql, endpoint, "invitation.created").await;
    (company, delivery)
}

/// Registers an endpoint; returns its id and secret.
async fn register(gql: &Gql, url: &str, types: &[&str]) -> (String, String) {
    let r = gql
        .query(CREATE, json!({ "i": { "url": url, "eventTypes": types } }))
        .await;
    let created = &r.data()["createWebhookEndpoint"];
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(created["endpoint"]["status"], "ENABLED");
    (
        created["endpoint"]["id"].as_str().unwrap().to_owned(),
        secret,
    )
}

async fn deliveries(gql: &Gql, endpoint: &str, filter: Value) -> Vec<Value> {
    let r = gql
        .query(DELIVERIES, json!({ "e": endpoint, "f": filter }))
        .await;
    r.data()["webhookDeliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Waits until the endpoint has a finished delivery of `event_type`, and returns it.
async fn finished(gql: &Gql, endpoint: &str, event_type: &str) -> Value {
    eventually(
        &format!("a finished {event_type} delivery"),
        TIMEOUT,
        || async {
            deliveries(gql, endpoint, json!({ "eventType": event_type }))
                .await
                .into_iter()
                .find(|d| d["status"] != "PENDING")
        },
    )
    .await
}

async fn endpoint_state(gql: &Gql, id: &str) -> Value {
    gql.query(ENDPOINT, json!({ "id": id })).await.data()["webhookEndpoint"].clone()
}

both!(
    signed_events_correlate_invitations_and_connections,
    |backend| async move {
        let app = spawn(backend).await;
        let gql = app.gql();
        let receiver = Receiver::start(Reply::Status(200)).await;
        let types = [
            "invitation.created",
            "invitation.email_sent",
            "invitation.viewed",
            "invitation.submitted",
            "invitation.fulfilled",
            "connection.created.v2",
            "connection.updated.v2",
        ];
        let (endpoint, secret) = register(&gql, &receiver.url, &types).await;
        let company = app::create_company(&gql, "Hooked").await;

        // An emailed invitation: CREATED from the API, EMAIL_SENT from the worker.
        let (emailed, _) = invite(
            &gql,
            &company,
            json!({ "allowedEmails": ["ops@example.com"], "sendEmail": true }),
        )
        .await;
        // An open one, viewed and submitted: VIEWED, SUBMITTED, FULFILLED and the new connection.
        let (open, token) = invite(&gql, &company, json!({ "maxUses": 1 })).await;
        app.anon()
            .query(
                "mutation($t: String!) { recordInvitationView(token: $t) }",
                json!({ "t": token }),
            )
            .await
            .data();
        let r = app
            .anon()
            .query(SUBMIT, json!({ "t": token, "i": details("first-login") }))
            .await;
        let connection = r.data()["submitInvitation"]["connectionId"]
            .as_str()
            .unwrap()
            .to_owned();
        // New credentials through a reconnect invitation: connection.updated.v2.
        let (reconnect, reconnect_token) = app::reconnect_invite(&gql, &connection).await;
        app.anon()
            .query(
                SUBMIT,
                json!({ "t": reconnect_token, "i": details("second-login") }),
            )
            .await
            .data();
        // Not subscribed: must not arrive.
        let (revoked, _) = invite(&gql, &company, json!({})).await;
        gql.query(
            "mutation($id: ID!) { revokeInvitation(id: $id) { status } }",
            json!({ "id": revoked }),
        )
        .await
        .data();

        // created ×4 (three contributor, one reconnect), email_sent, viewed, submitted ×2,
        // fulfilled ×2, connection created, connection updated.
        let expected = 12;
        eventually("every subscribed event delivered", TIMEOUT, || async {
            let got: Vec<Value> = receiver
                .received()
                .iter()
                .map(|r| r.json()["type"].clone())
                .collect();
            if got.len() >= expected {
                Ok(())
            } else {
                Err(got)
            }
        })
        .await;
        let received = receiver.received();
        for r in &received {
            r.verify(&secret)
                .unwrap_or_else(|e| panic!("signature of {}: {e}", r.body));
            assert!(!r.body.contains(PASSWORD), "no password in a payload");
            assert!(!r.body.contains(&token), "no invitation token in a payload");
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
        let kinds: Vec<String> = received
            .iter()
            .map(|r| r.json()["type"].as_str().unwrap().to_owned())
            .collect();
        for t in types {
            assert!(kinds.iter().any(|k| k == t), "{t} delivered: {kinds:?}");
        }
        assert!(
            !kinds.iter().any(|k| k == "invitation.revoked"),
            "{kinds:?}"
        );
        let ids: HashSet<_> = received
            .iter()
            .map(|r| r.header("webhook-id").unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), received.len(), "one webhook-id per event");

        let one = |t: &str| receiver.of_type(t).into_iter().next().unwrap().json();
        let created = one("connection.created.v2");
        assert_eq!(created["data"]["invitationId"], open.as_str());
        assert_eq!(created["data"]["connection"]["id"], connection.as_str());
        assert_eq!(
            created["data"]["connection"]["utilityUsername"],
            "first-login"
        );
        let submitted: Vec<Value> = receiver
            .of_type("invitation.submitted")
            .iter()
            .map(|r| r.json())
            .collect();
        assert!(
            submitted
                .iter()
                .any(|s| s["data"]["invitationId"] == open.as_str()
                    && s["data"]["connectionId"] == connection.as_str())
        );
        let email_sent = one("invitation.email_sent");
        assert_eq!(email_sent["data"]["invitationId"], emailed.as_str());
        assert_eq!(email_sent["data"]["email"], "ops@example.com");
        let updated = one("connection.updated.v2");
        assert_eq!(updated["data"]["invitationId"], reconnect.as_str());
        assert_eq!(
            updated["data"]["connection"]["utilityUsername"],
            "second-login"
        );
        let changed: Vec<&str> = updated["data"]["changedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in ["utilityUsername", "utilityPassword", "lastInvitationId"] {
            assert!(changed.contains(&field), "{field} in {changed:?}");
        }
        assert_eq!(
            updated["data"]["previousValues"]["utilityUsername"],
            "first-login"
        );
        assert_eq!(
            updated["data"]["previousValues"]["lastInvitationId"],
            open.as_str()
        );
        assert!(
            updated["data"]["previousValues"]
                .get("utilityPassword")
                .is_none()
        );

        // The log shows each delivery with its one successful attempt.
        let log = eventually("every delivery recorded as SUCCEEDED", TIMEOUT, || async {
            let all = deliveries(&gql, &endpoint, Value::Null).await;
            (all.len() == expected && all.iter().all(|d| d["status"] == "SUCCEEDED")).then_some(all)
        })
        .await;
        for d in &log {
            assert_eq!(d["attemptCount"], 1);
            let attempt = &d["attempts"][0];
            assert_eq!(attempt["outcome"], "SUCCEEDED");
            assert_eq!(attempt["httpStatus"], 200);
            assert_eq!(attempt["responseExcerpt"], "receiver says 200");
            assert!(attempt["durationMs"].as_i64().unwrap() >= 0);
            assert!(d["nextAttemptAt"].is_null() && d["finishedAt"].is_string());
        }
        let only = deliveries(
            &gql,
            &endpoint,
            json!({ "eventType": "invitation.viewed", "status": "SUCCEEDED" }),
        )
        .await;
        assert_eq!(only.len(), 1);
        assert_eq!(only[0]["payload"]["data"]["invitationId"], open.as_str());
        app.stop().await;
    }
);

both!(
    retries_after_server_errors_until_the_receiver_recovers,
    |backend| async move {
        let app = spawn(backend).await;
        let gql = app.gql();
        let receiver = Receiver::start(Reply::Status(200)).await;
        receiver.then([Reply::Status(500), Reply::Status(503)]);
        let (endpoint, secret) = register(&gql, &receiver.url, &["invitation.created"]).await;
        let (_, d) = created_delivery(&gql, &endpoint, "Flaky").await;
        assert_eq!(d["status"], "SUCCEEDED");
        assert_eq!(d["attemptCount"], 3);
        let attempts = d["attempts"].as_array().unwrap();
        let statuses: Vec<_> = attempts
            .iter()
            .map(|a| a["httpStatus"].as_i64().unwrap())
            .collect();
        assert_eq!(statuses, [500, 503, 200]);
        let outcomes: Vec<_> = attempts
            .iter()
            .map(|a| a["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(outcomes, ["HTTP_ERROR", "HTTP_ERROR", "SUCCEEDED"]);
        assert_eq!(attempts[0]["responseExcerpt"], "receiver says 500");
        assert!(attempts[0]["error"].as_str().unwrap().contains("500"));
        // Backoff: 1 s, then 2 s (whole-second scheduling may only add to it).
        let at = |i: usize| {
            attempts[i]["attemptedAt"]
                .as_str()
                .unwrap()
                .parse::<chrono::DateTime<chrono::Utc>>()
                .unwrap()
        };
        assert!(
            at(1) - at(0) >= chrono::TimeDelta::milliseconds(900),
            "{:?}",
            at(1) - at(0)
        );
        assert!(
            at(2) - at(1) >= chrono::TimeDelta::milliseconds(1900),
            "{:?}",
            at(2) - at(1)
        );

        // Three requests of one message: same webhook-id and body, each signed with its own time.
        let received = receiver.received();
        assert_eq!(received.len(), 3);
        let ids: HashSet<_> = received
            .iter()
            .map(|r| r.header("webhook-id").unwrap())
            .collect();
        assert_eq!(ids.len(), 1);
        assert_eq!(
            ids.iter().next().unwrap(),
            &d["messageId"].as_str().unwrap()
        );
        for r in &received {
            r.verify(&secret).unwrap();
            assert_eq!(r.body, received[0].body);
        }
        let endpoint = endpoint_state(&gql, &endpoint).await;
        assert!(
            endpoint["failingSince"].is_null(),
            "a success clears the failure clock"
        );
        app.stop().await;
    }
);

both!(
    slow_receiver_times_out_and_is_retried,
    |backend| async move {
        let app = spawn_tuned(backend, &[("WEBHOOK_TIMEOUT_SECONDS", "1")]).await;
        let gql = app.gql();
        let receiver = Receiver::start(Reply::Status(204)).await;
        receiver.then([Reply::Slow(Duration::from_secs(4), 200)]);
        let (endpoint, secret) = register(&gql, &receiver.url, &["invitation.created"]).await;
        let (_, d) = created_delivery(&gql, &endpoint, "Sluggish").await;
        assert_eq!(d["status"], "SUCCEEDED");
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 2);
        assert_eq!(attempts[0]["outcome"], "TIMEOUT");
        assert!(attempts[0]["httpStatus"].is_null());
        assert!(
            attempts[0]["error"]
                .as_str()
                .unwrap()
                .contains("within 1 s"),
            "{}",
            attempts[0]["error"]
        );
        assert!(attempts[0]["durationMs"].as_i64().unwrap() >= 900);
        assert_eq!(attempts[1]["outcome"], "SUCCEEDED");
        assert_eq!(attempts[1]["httpStatus"], 204);
        let received = receiver.received();
        assert_eq!(received.len(), 2);
        assert_eq!(
            received[0].header("webhook-id"),
            received[1].header("webhook-id")
        );
        received[1].verify(&secret).unwrap();
        app.stop().await;
    }
);

both!(
    persistent_failure_disables_the_endpoint_and_says_so,
    |backend| async move {
        let app = spawn_tuned(backend, &[("WEBHOOK_DISABLE_AFTER_SECONDS", "2")]).await;
        let gql = app.gql();
        let failing = Receiver::start(Reply::Status(500)).await;
        let watcher = Receiver::start(Reply::Status(200)).await;
        let (endpoint, _) = register(&gql, &failing.url, &["invitation.created"]).await;
        let (_, watcher_secret) =
            register(&gql, &watcher.url, &["webhook_endpoint.disabled"]).await;
        // Attempts 1 s, 2 s, … apart: the first one at least 2 s after the first failure disables
        // the endpoint, and the delivery fails with it (long before its 12 attempts are used).
        let (company, d) = created_delivery(&gql, &endpoint, "Down").await;
        assert_eq!(d["status"], "FAILED");
        let attempts = d["attempts"].as_array().unwrap();
        assert!((2..12).contains(&attempts.len()), "{attempts:?}");
        assert!(attempts.iter().all(|a| a["httpStatus"] == 500));
        assert!(
            d["lastError"]
                .as_str()
                .unwrap()
                .contains("the endpoint was disabled"),
            "{}",
            d["lastError"]
        );
        let state = endpoint_state(&gql, &endpoint).await;
        assert_eq!(state["status"], "DISABLED");
        assert_eq!(state["disabledReason"], "FAILING");
        assert!(state["disabledAt"].is_string() && state["failingSince"].is_string());

        // The organization's other endpoint is told.
        eventually("webhook_endpoint.disabled delivered", TIMEOUT, || async {
            watcher.count() >= 1
        })
        .await;
        let notice = &watcher.received()[0];
        notice.verify(&watcher_secret).unwrap();
        assert_eq!(notice.json()["type"], "webhook_endpoint.disabled");
        assert_eq!(notice.json()["data"]["endpointId"], endpoint.as_str());
        assert_eq!(notice.json()["data"]["reason"], "FAILING");

        // A disabled endpoint gets no new deliveries, and cannot be replayed to.
        invite(&gql, &company, json!({})).await;
        let r = gql
            .query(
                "mutation($id: ID!) { replayWebhookDelivery(id: $id) { id } }",
                json!({ "id": d["id"] }),
            )
            .await;
        r.assert_error("CONFLICT", None);
        assert_eq!(deliveries(&gql, &endpoint, Value::Null).await.len(), 1);

        // Enabled again and replayed once the receiver is back: same webhook-id, new delivery.
        failing.otherwise(Reply::Status(200));
        let r = gql
        .query("mutation($id: ID!) { enableWebhookEndpoint(id: $id) { status disabledReason failingSince } }", json!({ "id": endpoint }))
        .await;
        assert_eq!(
            r.data()["enableWebhookEndpoint"],
            json!({ "status": "ENABLED", "disabledReason": null, "failingSince": null })
        );
        let r = gql
        .query("mutation($id: ID!) { replayWebhookDelivery(id: $id) { id status replayOf messageId } }", json!({ "id": d["id"] }))
        .await;
        let replay = r.data()["replayWebhookDelivery"].clone();
        assert_eq!(replay["status"], "PENDING");
        assert_eq!(replay["replayOf"], d["id"]);
        assert_eq!(replay["messageId"], d["messageId"]);
        let done = eventually("the replay delivered", TIMEOUT, || async {
            deliveries(&gql, &endpoint, json!({ "status": "SUCCEEDED" }))
                .await
                .into_iter()
                .next()
        })
        .await;
        assert_eq!(done["id"], replay["id"]);
        assert_eq!(
            failing.received().last().unwrap().header("webhook-id"),
            d["messageId"].as_str()
        );
        app.stop().await;
    }
);

both!(
    rotation_signs_with_both_secrets_during_the_overlap,
    |backend| async move {
        let app = spawn(backend).await;
        let gql = app.gql();
        let receiver = Receiver::start(Reply::Status(200)).await;
        let (endpoint, old) = register(&gql, &receiver.url, &["invitation.created"]).await;
        let r = gql
        .query(
            "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { secret endpoint { previousSecretExpiresAt } } }",
            json!({ "id": endpoint }),
        )
        .await;
        let rotated = &r.data()["rotateWebhookEndpointSecret"];
        let new = rotated["secret"].as_str().unwrap().to_owned();
        assert_ne!(new, old);
        let until: chrono::DateTime<chrono::Utc> = rotated["endpoint"]["previousSecretExpiresAt"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let overlap = until - chrono::Utc::now();
        assert!(overlap > chrono::TimeDelta::hours(23) && overlap <= chrono::TimeDelta::hours(24));

        let company = app::create_company(&gql, "Rotating").await;
        invite(&gql, &company, json!({})).await;
        eventually("delivery", TIMEOUT, || async { receiver.count() == 1 }).await;
        let got = &receiver.received()[0];
        assert_eq!(
            got.header("webhook-signature").unwrap().split(' ').count(),
            2
        );
        got.verify(&new).unwrap();
        got.verify(&old).unwrap();
        got.verify(&tests_secret()).unwrap_err();
        app.stop().await;
    }
);

/// A well-formed secret nobody was given.
fn tests_secret() -> String {
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()
}

both!(
    internal_targets_are_refused_and_change_nothing,
    |backend| async move {
        let app = spawn(backend).await;
        let gql = app.gql();
        for url in [
            "https://10.0.0.1/hook",
            "https://192.168.1.20:8443/hook",
            "https://169.254.169.254/latest/meta-data/",
            "https://[fe80::1]/hook",
            "https://[::ffff:172.16.0.1]/hook",
            "https://[fd00::1]/hook",
            "http://hooks.example.com/plain-http",
            "https://user:secret@hooks.example.com/",
            "not a url",
        ] {
            let r = gql
                .query(
                    CREATE,
                    json!({ "i": { "url": url, "eventTypes": ["invitation.created"] } }),
                )
                .await;
            r.assert_error("BAD_USER_INPUT", Some("url"));
        }
        let r = gql
            .query(
                "{ webhookEndpoints { edges { node { id } } } }",
                Value::Null,
            )
            .await;
        assert_eq!(r.data()["webhookEndpoints"]["edges"], json!([]));

        let receiver = Receiver::start(Reply::Status(200)).await;
        let (endpoint, _) = register(&gql, &receiver.url, &["invitation.created"]).await;
        let r = gql
        .query(
            "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { url: \"https://10.1.2.3/\", description: \"x\" }) { url } }",
            json!({ "id": endpoint }),
        )
        .await;
        r.assert_error("BAD_USER_INPUT", Some("url"));
        let state = endpoint_state(&gql, &endpoint).await;
        assert_eq!(state["url"], receiver.url.as_str());
        assert!(state["description"].is_null(), "nothing changed");
        app.stop().await;
    }
);

// Only loopback could show that names are checked after resolution: the test machine has no
// DNS name for a private address, and loopback is what the development switch admits.
both!(
    names_resolving_to_loopback_are_refused_when_loopback_is_not_allowed,
    |backend| async move {
        let app = spawn_tuned(backend, &[("WEBHOOK_ALLOW_LOOPBACK", "false")]).await;
        let gql = app.gql();
        let receiver = Receiver::start(Reply::Status(200)).await;
        // The literal is refused when saved; the name passes, and is refused at delivery.
        let r = gql
            .query(
                CREATE,
                json!({ "i": { "url": receiver.url, "eventTypes": ["invitation.created"] } }),
            )
            .await;
        r.assert_error("BAD_USER_INPUT", Some("url"));
        let port = receiver
            .url
            .trim_start_matches("http://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let (endpoint, _) = register(
            &gql,
            &format!("https://localhost:{port}/hook"),
            &["invitation.created"],
        )
        .await;
        let (_, d) = created_delivery(&gql, &endpoint, "Sneaky").await;
        assert_eq!(d["status"], "FAILED", "a forbidden target is not retried");
        assert_eq!(d["attemptCount"], 1);
        let attempt = &d["attempts"][0];
        assert_eq!(attempt["outcome"], "TARGET_FORBIDDEN");
        assert!(attempt["httpStatus"].is_null());
        assert!(
            attempt["error"].as_str().unwrap().contains("loopback"),
            "{}",
            attempt["error"]
        );
        assert_eq!(receiver.count(), 0, "nothing reached the address");
        app.stop().await;
    }
);

both!(redirects_are_not_followed, |backend| async move {
    let app = spawn_tuned(backend, &[("WEBHOOK_MAX_ATTEMPTS", "1")]).await;
    let gql = app.gql();
    let inside = Receiver::start(Reply::Status(200)).await;
    let front = Receiver::start(Reply::Redirect(inside.url.clone())).await;
    let (endpoint, _) = register(&gql, &front.url, &["invitation.created"]).await;
    let (_, d) = created_delivery(&gql, &endpoint, "Redirecting").await;
    assert_eq!(d["status"], "FAILED");
    let attempt = &d["attempts"][0];
    assert_eq!(attempt["outcome"], "HTTP_ERROR");
    assert_eq!(attempt["httpStatus"], 307);
    assert!(
        attempt["error"]
            .as_str()
            .unwrap()
            .contains("redirects are not followed")
    );
    assert_eq!(front.count(), 1);
    assert_eq!(inside.count(), 0, "the redirect target was never called");
    app.stop().await;
});

both!(
    endpoint_management_validation_and_isolation,
    |backend| async move {
        let app = spawn(backend).await;
        let gql = app.gql();
        let r = gql.query("{ webhookEventTypes }", Value::Null).await;
        let catalogue = r.data()["webhookEventTypes"].as_array().unwrap().clone();
        for t in [
            "connection.created.v2",
            "connection.updated.v2",
            "invitation.created",
            "invitation.expired",
            "invitation.revoked",
            "webhook_endpoint.disabled",
        ] {
            assert!(catalogue.contains(&json!(t)), "{t}");
        }

        // Validation: nothing is created.
        let bad = |types: Value, description: Value| {
            let gql = gql.clone();
            async move {
                gql.query(CREATE, json!({ "i": { "url": "https://hooks.example.com/in", "eventTypes": types, "description": description } }))
                .await
            }
        };
        bad(json!([]), Value::Null)
            .await
            .assert_error("BAD_USER_INPUT", Some("eventTypes"));
        bad(
            json!(["invitation.created", "invitation.nope"]),
            Value::Null,
        )
        .await
        .assert_error("BAD_USER_INPUT", Some("eventTypes[1]"));
        bad(json!(["invitation.created"]), json!("x".repeat(201)))
            .await
            .assert_error("BAD_USER_INPUT", Some("description"));
        let r = gql
            .query(
                "{ webhookEndpoints { edges { node { id } } } }",
                Value::Null,
            )
            .await;
        assert_eq!(r.data()["webhookEndpoints"]["edges"], json!([]));

        // Create, list with pages, update, disable.
        let mut ids = Vec::new();
        for i in 0..3 {
            let r = gql
            .query(CREATE, json!({ "i": { "url": format!("https://hooks.example.com/{i}"), "eventTypes": ["invitation.created", "invitation.created"], "description": "ops" } }))
            .await;
            let e = &r.data()["createWebhookEndpoint"]["endpoint"];
            assert_eq!(e["eventTypes"], json!(["invitation.created"]));
            ids.push(e["id"].as_str().unwrap().to_owned());
        }
        let page = |after: Value| {
            let gql = gql.clone();
            async move {
                gql.query(
                "query($a: String) { webhookEndpoints(first: 2, after: $a) { pageInfo { hasNextPage endCursor } edges { node { id } } } }",
                json!({ "a": after }),
            )
            .await
            .data()["webhookEndpoints"]
                .clone()
            }
        };
        let first = page(Value::Null).await;
        assert_eq!(first["pageInfo"]["hasNextPage"], true);
        let second = page(first["pageInfo"]["endCursor"].clone()).await;
        let listed: Vec<_> = first["edges"]
            .as_array()
            .unwrap()
            .iter()
            .chain(second["edges"].as_array().unwrap())
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(listed, ids);
        assert_eq!(second["pageInfo"]["hasNextPage"], false);

        let r = gql
        .query(
            "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { eventTypes: [\"connection.created.v2\"], description: null }) { eventTypes description url } }",
            json!({ "id": ids[0] }),
        )
        .await;
        assert_eq!(
            r.data()["updateWebhookEndpoint"],
            json!({ "eventTypes": ["connection.created.v2"], "description": null, "url": "https://hooks.example.com/0" })
        );
        let r = gql
            .query(
                "mutation($id: ID!) { disableWebhookEndpoint(id: $id) { status disabledReason } }",
                json!({ "id": ids[1] }),
            )
            .await;
        assert_eq!(
            r.data()["disableWebhookEndpoint"],
            json!({ "status": "DISABLED", "disabledReason": "MANUAL" })
        );

        // Another organization sees none of it and can change none of it.
        let (_, other) = app.other_org().await;
        for (query, vars) in [
            (ENDPOINT, json!({ "id": ids[0] })),
            (DELIVERIES, json!({ "e": ids[0] })),
            (
                "mutation($id: ID!) { updateWebhookEndpoint(id: $id, input: { description: \"mine\" }) { id } }",
                json!({ "id": ids[0] }),
            ),
            (
                "mutation($id: ID!) { disableWebhookEndpoint(id: $id) { id } }",
                json!({ "id": ids[0] }),
            ),
            (
                "mutation($id: ID!) { enableWebhookEndpoint(id: $id) { id } }",
                json!({ "id": ids[1] }),
            ),
            (
                "mutation($id: ID!) { rotateWebhookEndpointSecret(id: $id) { secret } }",
                json!({ "id": ids[0] }),
            ),
            (
                "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }",
                json!({ "id": ids[0] }),
            ),
        ] {
            other
                .query(query, vars)
                .await
                .assert_error("NOT_FOUND", None);
        }
        let r = other
            .query(
                "{ webhookEndpoints { edges { node { id } } } }",
                Value::Null,
            )
            .await;
        assert_eq!(r.data()["webhookEndpoints"]["edges"], json!([]));
        assert_eq!(endpoint_state(&gql, &ids[1]).await["status"], "DISABLED");

        // A delivery of this organization cannot be replayed by the other.
        let receiver = Receiver::start(Reply::Status(200)).await;
        let (hooked, _) = register(&gql, &receiver.url, &["invitation.created"]).await;
        let (_, d) = created_delivery(&gql, &hooked, "Isolated").await;
        other
            .query(
                "mutation($id: ID!) { replayWebhookDelivery(id: $id) { id } }",
                json!({ "id": d["id"] }),
            )
            .await
            .assert_error("NOT_FOUND", None);

        // Delete removes the endpoint and its log.
        let r = gql
            .query(
                "mutation($id: ID!) { deleteWebhookEndpoint(id: $id) { id } }",
                json!({ "id": hooked }),
            )
            .await;
        assert_eq!(r.data()["deleteWebhookEndpoint"]["id"], hooked.as_str());
        gql.query(ENDPOINT, json!({ "id": hooked }))
            .await
            .assert_error("NOT_FOUND", None);
        gql.query(
            "mutation($id: ID!) { replayWebhookDelivery(id: $id) { id } }",
            json!({ "id": d["id"] }),
        )
        .await
        .assert_error("NOT_FOUND", None);
        app.stop().await;
    }
);

both!(
    two_workers_deliver_each_message_once_and_lost_jobs_are_swept,
    |backend| async move {
        use entity::entities::{invitations, webhook_deliveries};
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};

        let api = app::spawn_api_only(backend, fast).await;
        let gql = api.gql();
        let receiver = Receiver::start(Reply::Status(200)).await;
        let (_, secret) = register(
            &gql,
            &receiver.url,
            &["invitation.created", "invitation.expired"],
        )
        .await;
        let company = app::create_company(&gql, "Busy").await;
        let inputs: Vec<Value> = (0..100).map(|_| json!({})).collect();
        let r = gql
        .query(
            "mutation($c: ID!, $i: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $i) { id } }",
            json!({ "c": company, "i": inputs }),
        )
        .await;
        let first_invitation = r.data()["createContributorInvitations"][0]["id"]
            .as_str()
            .unwrap()
            .to_owned();

        // Ten deliveries look queued already, as if Redis (or the queue file) had lost their jobs:
        // the dispatcher skips them and only the sweeper can bring them back.
        let ten: Vec<uuid::Uuid> = webhook_deliveries::Entity::find()
            .select_only()
            .column(webhook_deliveries::Column::Id)
            .limit(10)
            .into_tuple()
            .all(&api.db)
            .await
            .unwrap();
        webhook_deliveries::Entity::update_many()
            .col_expr(
                webhook_deliveries::Column::EnqueuedFor,
                Expr::col(webhook_deliveries::Column::NextAttemptAt),
            )
            .filter(webhook_deliveries::Column::Id.is_in(ten))
            .exec(&api.db)
            .await
            .unwrap();

        let quick_sweep = |env: &mut std::collections::HashMap<String, String>| {
            env.insert("EMAIL_SWEEP_INTERVAL_SECONDS".into(), "1".into());
            env.insert("EMAIL_SWEEP_GRACE_SECONDS".into(), "1".into());
        };
        let w1 = app::spawn_worker(&api, quick_sweep).await;
        let w2 = app::spawn_worker(&api, quick_sweep).await;
        eventually("100 deliveries", TIMEOUT, || async {
            receiver.count() >= 100
        })
        .await;
        // Nothing may follow: wait past another sweep and dispatch round, then count again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let received = receiver.received();
        assert_eq!(
            received.len(),
            100,
            "each delivery sent once by two workers"
        );
        let ids: HashSet<_> = received
            .iter()
            .map(|r| r.header("webhook-id").unwrap())
            .collect();
        assert_eq!(ids.len(), 100);
        for r in &received {
            r.verify(&secret).unwrap();
        }

        // The periodic expiry sweep's EXPIRED events go out too.
        invitations::Entity::update_many()
            .col_expr(
                invitations::Column::ExpiresAt,
                Expr::value(chrono::Utc::now() - chrono::TimeDelta::seconds(5)),
            )
            .filter(invitations::Column::Id.eq(first_invitation.parse::<uuid::Uuid>().unwrap()))
            .exec(&api.db)
            .await
            .unwrap();
        let expired = eventually("invitation.expired delivered", TIMEOUT, || async {
            receiver.of_type("invitation.expired").into_iter().next()
        })
        .await;
        expired.verify(&secret).unwrap();
        assert_eq!(
            expired.json()["data"]["invitationId"],
            first_invitation.as_str()
        );
        assert_eq!(expired.json()["data"]["invitationStatus"], "EXPIRED");
        w1.stop().await;
        w2.stop().await;
        api.stop().await;
    }
);

both!(
    finished_deliveries_are_deleted_after_retention,
    |backend| async move {
        use entity::entities::webhook_attempts;
        use sea_orm::{EntityTrait, PaginatorTrait};

        let app = spawn_tuned(
            backend,
            &[
                ("WEBHOOK_RETENTION_SECONDS", "3"),
                ("EMAIL_SWEEP_INTERVAL_SECONDS", "1"),
            ],
        )
        .await;
        let gql = app.gql();
        let receiver = Receiver::start(Reply::Status(200)).await;
        receiver.then([Reply::Status(500)]);
        let (endpoint, _) = register(&gql, &receiver.url, &["invitation.created"]).await;
        let (_, d) = created_delivery(&gql, &endpoint, "Forgetful").await;
        assert_eq!(d["attemptCount"], 2);
        eventually("the delivery log emptied by retention", TIMEOUT, || async {
            deliveries(&gql, &endpoint, Value::Null).await.is_empty()
        })
        .await;
        let attempts = webhook_attempts::Entity::find()
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(attempts, 0, "attempts go with their delivery");
        assert_eq!(endpoint_state(&gql, &endpoint).await["status"], "ENABLED");
        app.stop().await;
    }
);

both!(
    legacy_link_submits_queue_their_webhooks_at_commit,
    |backend| async move {
        // No worker in this process and none elsewhere yet: no dispatcher loop runs, so only the
        // unit of work that wrote the deliveries can have queued them.
        let app = app::spawn_api_only(backend, fast).await;
        let gql = app.gql();
        let receiver = Receiver::start(Reply::Status(200)).await;
        let (endpoint, secret) = register(&gql, &receiver.url, &["connection.created.v2"]).await;
        let company = app::create_company(&gql, "Legacy").await;
        let link = gql
            .query(
                "mutation($c: ID!) { createCompanyMagicLink(companyId: $c) { publicCompanyId companyMagicLinkSecret } }",
                json!({ "c": company }),
            )
            .await
            .data()["createCompanyMagicLink"]
            .clone();
        let r = app
            .anon()
            .query(
                "mutation($p: String!, $s: String!, $i: ConnectionInput!) {
                    submitMagicLink(publicCompanyId: $p, secret: $s, input: $i) { connectionId } }",
                json!({ "p": link["publicCompanyId"], "s": link["companyMagicLinkSecret"],
                        "i": details("legacy") }),
            )
            .await;
        let connection = r.data()["submitMagicLink"]["connectionId"].clone();

        let rows = entity::entities::webhook_deliveries::Entity::find()
            .filter(
                entity::entities::webhook_deliveries::Column::EndpointId
                    .eq(endpoint.parse::<uuid::Uuid>().unwrap()),
            )
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].event_type, "connection.created.v2");
        assert_eq!(
            rows[0].enqueued_for,
            Some(rows[0].next_attempt_at),
            "queued by the submit itself"
        );

        // A worker process takes the queued job and the receiver gets the new connection.
        let worker = app::spawn_worker(&app, |_| {}).await;
        let received = eventually("the connection.created delivery", TIMEOUT, || async {
            receiver.of_type("connection.created.v2").into_iter().next()
        })
        .await;
        received.verify(&secret).unwrap();
        assert_eq!(received.json()["data"]["connection"]["id"], connection);
        worker.stop().await;
        app.stop().await;
    }
);

/// Creates `count` invitations in one request: their deliveries are written in one unit of
/// work, so they reach a worker as one deliver-webhook job.
async fn invite_many(gql: &Gql, company: &str, count: usize) {
    let inputs: Vec<Value> = (0..count).map(|_| json!({})).collect();
    gql.query(
        "mutation($c: ID!, $i: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $i) { id } }",
        json!({ "c": company, "i": inputs }),
    )
    .await
    .data();
}

both!(
    one_batch_for_a_failing_and_a_healthy_endpoint_records_each_delivery_once,
    |backend| async move {
        // No worker while the deliveries are written; retries far away, so every delivery gets
        // exactly one attempt here.
        let slow_retries = |env: &mut std::collections::HashMap<String, String>| {
            fast(env);
            env.insert("WEBHOOK_RETRY_FIRST_DELAY_SECONDS".into(), "3600".into());
        };
        let api = app::spawn_api_only(backend, slow_retries).await;
        let gql = api.gql();
        let healthy = Receiver::start(Reply::Status(200)).await;
        let failing = Receiver::start(Reply::Status(500)).await;
        let (good, secret) = register(&gql, &healthy.url, &["invitation.created"]).await;
        let (bad, _) = register(&gql, &failing.url, &["invitation.created"]).await;
        let company = app::create_company(&gql, "Batched").await;
        invite_many(&gql, &company, 30).await;

        let worker = app::spawn_worker(&api, |_| {}).await;
        let all_recorded = |endpoint: String, status: &'static str| {
            let gql = gql.clone();
            async move {
                let list = deliveries(&gql, &endpoint, Value::Null).await;
                (list.len() == 30
                    && list
                        .iter()
                        .all(|d| d["attemptCount"] == 1 && d["status"] == status))
                .then_some(list)
            }
        };
        let delivered = eventually("30 deliveries succeeded", TIMEOUT, || {
            all_recorded(good.clone(), "SUCCEEDED")
        })
        .await;
        let retrying = eventually("30 failed attempts recorded", TIMEOUT, || {
            all_recorded(bad.clone(), "PENDING")
        })
        .await;
        for d in &delivered {
            let attempts = d["attempts"].as_array().unwrap();
            assert_eq!(attempts.len(), 1, "{d}");
            assert_eq!(attempts[0]["outcome"], "SUCCEEDED");
            assert_eq!(attempts[0]["httpStatus"], 200);
            assert!(
                d["lastError"].is_null() && d["finishedAt"].is_string(),
                "{d}"
            );
        }
        let now = chrono::Utc::now();
        for d in &retrying {
            let attempts = d["attempts"].as_array().unwrap();
            assert_eq!(attempts.len(), 1, "{d}");
            assert_eq!(attempts[0]["outcome"], "HTTP_ERROR");
            assert_eq!(attempts[0]["httpStatus"], 500);
            assert!(d["finishedAt"].is_null(), "{d}");
            let next: chrono::DateTime<chrono::Utc> =
                d["nextAttemptAt"].as_str().unwrap().parse().unwrap();
            // The first retry of the schedule: an hour after the attempt.
            assert!(next > now + chrono::TimeDelta::minutes(50), "{d}");
        }
        // The failing endpoint's clock runs; the healthy one's does not.
        let bad_state = endpoint_state(&gql, &bad).await;
        assert_eq!(bad_state["status"], "ENABLED");
        assert!(bad_state["failingSince"].is_string(), "{bad_state}");
        assert!(endpoint_state(&gql, &good).await["failingSince"].is_null());

        // Nothing follows: each delivery reached its receiver once, signed.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let received = healthy.received();
        assert_eq!(received.len(), 30);
        let ids: HashSet<_> = received
            .iter()
            .map(|r| r.header("webhook-id").unwrap().to_owned())
            .collect();
        assert_eq!(ids.len(), 30);
        for r in &received {
            r.verify(&secret).unwrap();
        }
        assert_eq!(failing.count(), 30);
        worker.stop().await;
        api.stop().await;
    }
);

both!(
    a_batch_that_disables_its_endpoint_ends_its_deliveries_and_says_so_once,
    |backend| async move {
        use entity::entities::webhook_endpoints;
        use sea_orm::sea_query::Expr;

        let api = app::spawn_api_only(backend, fast).await;
        let gql = api.gql();
        let failing = Receiver::start(Reply::Status(500)).await;
        let watcher = Receiver::start(Reply::Status(200)).await;
        let (endpoint, _) = register(&gql, &failing.url, &["invitation.created"]).await;
        register(&gql, &watcher.url, &["webhook_endpoint.disabled"]).await;
        // Failing for six days already: the next failure disables it (the default allows five).
        webhook_endpoints::Entity::update_many()
            .col_expr(
                webhook_endpoints::Column::FailingSince,
                Expr::value(chrono::Utc::now() - chrono::TimeDelta::days(6)),
            )
            .filter(webhook_endpoints::Column::Id.eq(endpoint.parse::<uuid::Uuid>().unwrap()))
            .exec(&api.db)
            .await
            .unwrap();
        let company = app::create_company(&gql, "Doomed").await;
        invite_many(&gql, &company, 20).await;

        let worker = app::spawn_worker(&api, |_| {}).await;
        let ended = eventually("20 deliveries failed", TIMEOUT, || async {
            let list = deliveries(&gql, &endpoint, Value::Null).await;
            (list.len() == 20 && list.iter().all(|d| d["status"] == "FAILED")).then_some(list)
        })
        .await;
        // Attempts made before the endpoint was known to be disabled are recorded; the rest of
        // the batch is not sent. No delivery is attempted twice.
        let mut disabled_by = 0;
        for d in &ended {
            let attempts = d["attempts"].as_array().unwrap();
            assert!(attempts.len() <= 1, "{d}");
            let error = d["lastError"].as_str().unwrap();
            assert!(error.contains("disabled"), "{error}");
            if error.contains("the endpoint was disabled after failing too long") {
                disabled_by += 1;
                assert_eq!(attempts[0]["httpStatus"], 500);
            }
        }
        assert!(disabled_by >= 1, "{ended:?}");
        assert!(failing.count() <= 20);
        assert_eq!(endpoint_state(&gql, &endpoint).await["status"], "DISABLED");

        // The organization hears of it once.
        eventually("webhook_endpoint.disabled delivered", TIMEOUT, || async {
            watcher.count() >= 1
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(watcher.of_type("webhook_endpoint.disabled").len(), 1);
        assert_eq!(watcher.count(), 1);
        worker.stop().await;
        api.stop().await;
    }
);
