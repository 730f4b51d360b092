//! The WebSocket obeys the rules HTTP does: key revocation, body size, a bound on sockets that
//! have not authenticated, and the public operations' rate limits.

use std::time::Duration;

use sea_orm::{EntityTrait, PaginatorTrait, TransactionTrait};
use serde_json::{Value, json};
use tests::pg::Backend;
use tests::ws::{Received, WsClient};

use crate::app;
use crate::both;

/// Far above the bounds under test (a key cache of 1 s, an init timeout of seconds): only a
/// broken rule, not a slow machine, runs into it.
const WAIT: Duration = Duration::from_secs(20);
const CREATE: &str =
    "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: {}) { id } }";

/// Skips live events until the server closes the socket; its close code.
async fn close_code(ws: &mut WsClient) -> u16 {
    loop {
        match ws.next(WAIT).await {
            Received::Closed(code) => return code,
            Received::Next(..) | Received::Complete(_) => continue,
            other => panic!("expected the socket to close, got {other:?}"),
        }
    }
}

async fn invitations(app: &app::TestApp) -> u64 {
    entity::entities::invitations::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

both!(
    a_revoked_key_closes_its_sockets_and_runs_nothing_more,
    |backend| async move {
        let app = app::spawn_with(backend, |env| {
            env.insert("API_KEY_CACHE_SECONDS".into(), "1".into());
        })
        .await;
        let c = app::create_company(&app.gql(), "Acme Co").await;
        let key = entity::organization::create_api_key(&app.db, app.org_id, "socket")
            .await
            .unwrap();
        // One socket watches the company; the other runs mutations.
        let mut watching = WsClient::connect(&app.url).await;
        watching.init(&key.key).await.unwrap();
        watching
            .subscribe(
                "1",
                "subscription($c: ID!) { companyActivity(companyId: $c) { id } }",
                json!({ "c": c }),
            )
            .await;
        let mut writing = WsClient::connect(&app.url).await;
        writing.init(&key.key).await.unwrap();
        writing.subscribe("m1", CREATE, json!({ "c": c })).await;
        let created = writing.next_data(WAIT).await;
        assert!(created["createContributorInvitation"]["id"].is_string());
        assert_eq!(invitations(&app).await, 1);

        let org = app.org_id.to_string();
        let key_id = key.row.id.to_string();
        let out = app::run_binary(&app.env, &["api-key", "revoke", "--org", &org, &key_id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // An open subscription is cut off once the key cache's answer expires.
        assert_eq!(close_code(&mut watching).await, 4403);

        // The key cache now knows: a mutation sent on the other socket is not run. The socket
        // may already have been closed by its own periodic check; either way it ends with 4403.
        let sent = writing.try_subscribe("m2", CREATE, json!({ "c": c })).await;
        assert_eq!(
            close_code(&mut writing).await,
            4403,
            "mutation sent: {sent}"
        );
        assert_eq!(invitations(&app).await, 1, "nothing ran after revocation");
        let over_http = app
            .anon()
            .with_api_key(&key.key)
            .query(CREATE, json!({ "c": c }))
            .await;
        assert_eq!(over_http.error_code().as_deref(), Some("UNAUTHENTICATED"));
        app.stop().await;
    }
);

both!(
    a_key_the_database_cannot_check_closes_with_1011_not_4403,
    |backend| async move {
        // The smallest pool (two connections), which the test takes: the key check waits out
        // the pool's acquire timeout and fails, as under a database outage.
        let app = app::spawn_roles(
            backend,
            |env| {
                env.insert("DATABASE_MAX_CONNECTIONS".into(), "2".into());
                // Shorter than the check's wait for a connection (10 s): the timeout is for
                // sending connection_init, and a check still running past it is not cut off.
                env.insert("GRAPHQL_WS_INIT_TIMEOUT_SECONDS".into(), "2".into());
            },
            api::startup::Roles {
                http: true,
                workers: false,
            },
        )
        .await;
        // A key no request has used yet, so no cached answer hides the database.
        let key = entity::organization::create_api_key(&app.db, app.org_id, "socket")
            .await
            .unwrap();
        let held = [app.db.begin().await.unwrap(), app.db.begin().await.unwrap()];
        let mut ws = WsClient::connect(&app.url).await;
        // Not 4403: that would tell the client its key is bad, and the console would sign out.
        assert_eq!(ws.init(&key.key).await, Err(1011));
        for transaction in held {
            transaction.rollback().await.unwrap();
        }
        // The database is back: the same key is accepted.
        let mut ws = WsClient::connect(&app.url).await;
        ws.init(&key.key).await.unwrap();
        ws.close().await;
        app.stop().await;
    }
);

#[tokio::test]
async fn a_message_over_the_body_limit_closes_the_socket_with_1009() {
    let app = app::spawn_with(Backend::Sqlite, |env| {
        env.insert("GRAPHQL_MAX_BODY_BYTES".into(), "8192".into());
    })
    .await;
    let padded = |pad: usize| json!({ "apiKey": app.api_key, "pad": "x".repeat(pad) });

    // Under the limit, a message is read as usual.
    let mut ws = WsClient::connect(&app.url).await;
    ws.init_with(padded(6000)).await.unwrap();
    // Over it, after authentication too.
    let query = format!("{{ viewer {{ apiKeyName }} }} # {}", "x".repeat(10_000));
    ws.subscribe("1", &query, json!({})).await;
    assert_eq!(ws.closed(WAIT).await, 1009);

    // Before connection_init.
    let mut ws = WsClient::connect(&app.url).await;
    assert_eq!(ws.init_with(padded(10_000)).await, Err(1009));

    // A frame that announces 64 MiB is refused at its header: the server does not wait for (nor
    // make room for) the payload, which never comes.
    let mut ws = WsClient::connect(&app.url).await;
    let mut frame = vec![0x81, 0x80 | 127];
    frame.extend_from_slice(&(64u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]); // mask
    frame.extend_from_slice(b"{\"type\":");
    ws.send_raw(&frame).await;
    assert_eq!(ws.closed(WAIT).await, 1009);
    app.stop().await;
}

#[tokio::test]
async fn sockets_that_have_not_initialised_are_capped_per_address() {
    let app = app::spawn_with(Backend::Sqlite, |env| {
        // Long enough that no socket of this test times out on its own.
        env.insert("GRAPHQL_WS_INIT_TIMEOUT_SECONDS".into(), "120".into());
    })
    .await;
    let cap = api::graphql::ws_pending::PENDING_PER_CLIENT;
    let mut pending = Vec::new();
    for _ in 0..cap {
        pending.push(WsClient::connect(&app.url).await);
    }
    let refused = WsClient::try_connect(&app.url).await.err();
    let (status, body) = refused.expect("the upgrade past the cap to be refused");
    assert_eq!(status, 429, "{body}");

    // An initialised socket no longer counts...
    pending[0].init(&app.api_key).await.unwrap();
    let mut admitted = WsClient::try_connect(&app.url)
        .await
        .map_err(|(status, _)| status)
        .expect("a place freed by connection_init");
    assert_eq!(
        WsClient::try_connect(&app.url).await.err().map(|e| e.0),
        Some(429)
    );
    // ...nor does a closed one (once the server has seen it go).
    pending.pop().unwrap().close().await;
    let replacement = tests::poll::eventually("a place freed by a close", WAIT, || {
        let url = app.url.clone();
        async move { WsClient::try_connect(&url).await.ok() }
    })
    .await;
    // Both admitted sockets work as usual.
    admitted.init(&app.api_key).await.unwrap();
    let mut replacement = replacement;
    replacement.init(&app.api_key).await.unwrap();
    app.stop().await;
}

both!(
    public_operations_over_the_socket_are_rate_limited_per_client,
    |backend| async move {
        let app = app::spawn(backend).await;
        let mut ws = WsClient::connect(&app.url).await;
        ws.init(&app.api_key).await.unwrap();
        // Distinct tokens, so only the per-client limit (300 a minute) can trip. 700 fields
        // exceed it by at least 100 even if a minute boundary splits them.
        let fields: String = (0..700)
            .map(|i| format!("f{i}: publicInvitation(token: \"unknown-{i}\") {{ companyName }} "))
            .collect();
        ws.subscribe("1", &format!("{{ {fields} }}"), json!({}))
            .await;
        let errors = match ws.next(WAIT).await {
            Received::Next(_, payload) => payload["errors"].as_array().cloned().unwrap(),
            other => panic!("expected a result, got {other:?}"),
        };
        let limited: Vec<&Value> = errors
            .iter()
            .filter(|e| e["extensions"]["code"] == "RATE_LIMITED")
            .collect();
        assert!(
            limited.len() >= 100,
            "{} of 700 fields rate limited",
            limited.len()
        );
        assert!(
            limited
                .iter()
                .all(|e| e["extensions"]["retryAfter"].as_u64().unwrap() >= 1)
        );
        ws.close().await;
        app.stop().await;
    }
);
