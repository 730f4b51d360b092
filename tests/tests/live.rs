//! Live activity over WebSocket: order, replay with `since`, tenancy, close codes, and fan-out
//! across replicas through Redis.

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tests::graphql::Gql;
use tests::pg::Backend;
use tests::poll::eventually;
use tests::scrape::scrape;
use tests::ws::{Received, WsClient};

use crate::app::{self, TestApp};
use crate::both;

const WAIT: Duration = Duration::from_secs(20);
const COMPANY_ACTIVITY: &str =
    "subscription($c: ID!, $s: String) { companyActivity(companyId: $c, since: $s) {
    id cursor eventType invitationId email } }";

async fn subscribed(app_url: &str, key: &str, company: &str, since: Option<&str>) -> WsClient {
    let mut ws = WsClient::connect(app_url).await;
    ws.init(key).await.expect("connection_ack");
    ws.subscribe("1", COMPANY_ACTIVITY, json!({ "c": company, "s": since }))
        .await;
    // Let the subscription register before the test makes changes.
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws
}

async fn next_event(ws: &mut WsClient) -> Value {
    ws.next_data(WAIT).await["companyActivity"].clone()
}

async fn events(ws: &mut WsClient, n: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(next_event(ws).await);
    }
    out
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect()
}

both!(events_arrive_in_commit_order, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let mut ws = subscribed(&app.url, &app.api_key, &c, None).await;
    let r = gql
        .query(
            "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: { allowedEmails: [\"v@example.com\"], sendEmail: true, maxUses: 1 }) { id token } }",
            json!({ "c": c }),
        )
        .await;
    let inv = r.data()["createContributorInvitation"].clone();
    let token = inv["token"].as_str().unwrap();
    assert_eq!(types(&events(&mut ws, 2).await), ["CREATED", "EMAIL_SENT"]);
    let public = app.anon();
    public
        .query(
            "mutation($t: String!) { recordInvitationView(token: $t) }",
            json!({ "t": token }),
        )
        .await
        .data();
    assert_eq!(types(&events(&mut ws, 1).await), ["VIEWED"]);
    let link = app.smtp.messages()[0]
        .mail()
        .links()
        .into_iter()
        .find(|l| l.contains(token))
        .unwrap();
    let url = reqwest::Url::parse(&link).unwrap();
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let g = public
        .query(
            "mutation($t: String!, $e: String!, $s: String!) { verifyEmailLink(token: $t, email: $e, signature: $s) { grant } }",
            json!({ "t": token, "e": params["email"], "s": params["sig"] }),
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
    let later = events(&mut ws, 3).await;
    assert_eq!(types(&later), ["EMAIL_VERIFIED", "SUBMITTED", "FULFILLED"]);
    // Revoke and expiry of other invitations follow, in order, with increasing cursors.
    let r = gql
        .query("mutation($c: ID!) { a: createContributorInvitation(companyId: $c, input: {}) { id } b: createContributorInvitation(companyId: $c, input: { expiresInSeconds: 60 }) { id } }", json!({ "c": c }))
        .await;
    let (a, b) = (r.data()["a"]["id"].clone(), r.data()["b"]["id"].clone());
    gql.query(
        "mutation($id: ID!) { revokeInvitation(id: $id) { id } }",
        json!({ "id": a }),
    )
    .await
    .data();
    entity::entities::invitations::Entity::update_many()
        .col_expr(
            entity::entities::invitations::Column::ExpiresAt,
            sea_orm::sea_query::Expr::value(entity::now() - chrono::Duration::seconds(1)),
        )
        .filter(
            entity::entities::invitations::Column::Id.eq(b
                .as_str()
                .unwrap()
                .parse::<uuid::Uuid>()
                .unwrap()),
        )
        .exec(&app.db)
        .await
        .unwrap();
    let last = events(&mut ws, 4).await;
    assert_eq!(types(&last), ["CREATED", "CREATED", "REVOKED", "EXPIRED"]);
    let ids: Vec<i64> = later
        .iter()
        .chain(&last)
        .map(|e| e["cursor"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "cursors increase: {ids:?}"
    );
    ws.close().await;
    app.stop().await;
});

/// Creates `n` invitations in company `c`, one after the other; their ids.
async fn create_invitations(gql: &Gql, c: &str, n: usize) -> Vec<Value> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let created = gql
            .query(
                "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: {}) { id } }",
                json!({ "c": c }),
            )
            .await;
        ids.push(created.data()["createContributorInvitation"]["id"].clone());
    }
    ids
}

both!(
    reconnect_with_since_yields_exactly_the_missed_events,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        let mut ws = subscribed(&app.url, &app.api_key, &c, None).await;
        create_invitations(&gql, &c, 1).await;
        let seen = next_event(&mut ws).await;
        ws.close().await;
        // Missed while disconnected.
        let missed = create_invitations(&gql, &c, 3).await;
        let mut ws = subscribed(&app.url, &app.api_key, &c, seen["cursor"].as_str()).await;
        let replayed = events(&mut ws, 3).await;
        let got: Vec<Value> = replayed.iter().map(|e| e["invitationId"].clone()).collect();
        assert_eq!(got, missed, "exactly the missed events, in order");
        // Then live, without a duplicate.
        let live = create_invitations(&gql, &c, 1).await;
        assert_eq!(next_event(&mut ws).await["invitationId"], live[0]);
        ws.close().await;
        app.stop().await;
    }
);

both!(
    the_benchmarks_frame_reader_reads_each_message_whole_and_in_order,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        let mut frames = subscribed(&app.url, &app.api_key, &c, None)
            .await
            .into_frames();
        let created = create_invitations(&gql, &c, 3).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            let text = tokio::time::timeout(WAIT, frames.next_text())
                .await
                .expect("a message in time")
                .expect("the socket open");
            let message: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                (message["type"].as_str(), message["id"].as_str()),
                (Some("next"), Some("1"))
            );
            got.push(message["payload"]["data"]["companyActivity"]["invitationId"].clone());
        }
        assert_eq!(got, created, "every event, whole, in order");
        frames.close().await;
        app.stop().await;
    }
);

/// A random number below `n` (test-only: no need for a random number crate).
fn below(n: u128) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % n) as u64
}

both!(
    resumed_subscribers_miss_nothing_when_commits_interleave,
    |backend| async move {
        const WRITERS: usize = 16;
        const EACH: usize = 10;
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Busy Co").await;
        let (_, token) = app::invite(&gql, &c, json!({})).await;
        // Each writer records views one unit of work at a time and holds every commit back for a
        // random while, so on PostgreSQL later ids routinely commit before earlier ones (on
        // SQLite the single writer serializes them).
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (db, dispatcher, token) =
                    (app.db.clone(), app.dispatcher.clone(), token.clone());
                tokio::spawn(async move {
                    for _ in 0..EACH {
                        let work = entity::work::Work::begin(&db).await.unwrap();
                        let view = entity::recipient::RecordView {
                            token: token.clone(),
                        };
                        entity::work::Command::execute(&view, &work).await.unwrap();
                        tokio::time::sleep(Duration::from_millis(below(40))).await;
                        work.commit(&dispatcher).await.unwrap();
                    }
                })
            })
            .collect();
        // The subscriber starts from the beginning of the log (cursor 0), takes a few events at
        // a time, drops the connection, and resumes from the last cursor it received, until it
        // has every event.
        let expected = 1 + WRITERS * EACH;
        let mut received: Vec<Value> = Vec::new();
        let mut cursor = Some("0".to_owned());
        let mut resumes = 0;
        while received.len() < expected {
            let mut ws = subscribed(&app.url, &app.api_key, &c, cursor.as_deref()).await;
            for _ in 0..=below(12) {
                if received.len() == expected {
                    break;
                }
                let event = next_event(&mut ws).await;
                cursor = Some(event["cursor"].as_str().unwrap().to_owned());
                received.push(event);
            }
            ws.close().await;
            resumes += 1;
        }
        for writer in writers {
            writer.await.unwrap();
        }
        assert!(resumes > 5, "the subscriber resumed {resumes} times");
        let cursors: Vec<i64> = received
            .iter()
            .map(|e| e["cursor"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(
            cursors.windows(2).all(|w| w[0] < w[1]),
            "each event once, in cursor order"
        );
        let mut got: Vec<i64> = received
            .iter()
            .map(|e| e["id"].as_str().unwrap().parse().unwrap())
            .collect();
        got.sort_unstable();
        let company: uuid::Uuid = c.parse().unwrap();
        let mut logged: Vec<i64> = entity::entities::invitation_events::Entity::find()
            .filter(entity::entities::invitation_events::Column::CompanyId.eq(company))
            .all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect();
        logged.sort_unstable();
        assert_eq!(got, logged, "what was received is the log, each event once");
        app.stop().await;
    }
);

both!(
    subscribers_of_one_document_share_one_execution_per_organization,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        // Two keys of one organization, one of them resuming from the start of the log: the
        // same document and scope (`since` only chooses the replay), so one group.
        let second = entity::organization::create_api_key(&app.db, app.org_id, "second")
            .await
            .unwrap()
            .key;
        let mut one = subscribed(&app.url, &app.api_key, &c, None).await;
        let mut two = subscribed(&app.url, &second, &c, Some("0")).await;
        // Another organization sends the very same document and variables: refused. Its own
        // company, with the same document, is a group of its own.
        let other_key = other_key(&app).await;
        let other_gql = Gql::new(&app.url).with_api_key(&other_key);
        let own = app::create_company(&other_gql, "Else Co").await;
        let mut other = subscribed(&app.url, &other_key, &c, None).await;
        assert_not_found(next_answer(&mut other).await);
        assert!(
            matches!(other.next(WAIT).await, Received::Complete(id) if id == "1"),
            "the refused subscription ends"
        );
        other
            .subscribe("2", COMPANY_ACTIVITY, json!({ "c": own }))
            .await;
        eventually("three subscribers in two groups", WAIT, || async {
            let m = scrape(&app.url).await;
            m.value("invitations_live_subscribers", &[]) == 3.0
                && m.value("invitations_live_groups", &[]) == 2.0
        })
        .await;
        // A named subscription sent without `operationName` is a subscription all the same:
        // another document, so a group of its own.
        let mut named = WsClient::connect(&app.url).await;
        named.init(&app.api_key).await.expect("connection_ack");
        named
            .subscribe(
                "1",
                "subscription Watch($c: ID!) { companyActivity(companyId: $c) { invitationId } }",
                json!({ "c": c }),
            )
            .await;
        eventually("four subscribers in three groups", WAIT, || async {
            let m = scrape(&app.url).await;
            m.value("invitations_live_subscribers", &[]) == 4.0
                && m.value("invitations_live_groups", &[]) == 3.0
        })
        .await;
        // The first document laid out otherwise (spaces, commas, a comment) is the same
        // document: it joins the first group.
        let mut relaid = WsClient::connect(&app.url).await;
        relaid.init(&app.api_key).await.expect("connection_ack");
        relaid
            .subscribe(
                "1",
                "# the same, laid out otherwise\nsubscription ( $c : ID! , $s : String ){\n  companyActivity(companyId:$c,since:$s){id,cursor,eventType,invitationId,email}}",
                json!({ "c": c }),
            )
            .await;
        eventually("five subscribers in three groups", WAIT, || async {
            let m = scrape(&app.url).await;
            m.value("invitations_live_subscribers", &[]) == 5.0
                && m.value("invitations_live_groups", &[]) == 3.0
        })
        .await;

        let (ours, _) = app::invite(&gql, &c, json!({})).await;
        let first = one.next(WAIT).await;
        let second = two.next(WAIT).await;
        let (Received::Next(_, first), Received::Next(_, second)) = (first, second) else {
            panic!("expected events");
        };
        assert_eq!(first, second, "the same payload");
        let Received::Next(_, third) = relaid.next(WAIT).await else {
            panic!("expected an event");
        };
        assert_eq!(first, third, "the same payload, laid out otherwise");
        assert_eq!(first["data"]["companyActivity"]["invitationId"], ours);
        assert_eq!(next_event(&mut named).await["invitationId"], ours);
        // The other organization's next event is its own, not the one before it.
        let (theirs, _) = app::invite(&other_gql, &own, json!({})).await;
        assert_eq!(next_event(&mut other).await["invitationId"], theirs);
        for ws in [one, two, other, named, relaid] {
            ws.close().await;
        }
        eventually("the groups end with their members", WAIT, || async {
            scrape(&app.url).await.value("invitations_live_groups", &[]) == 0.0
        })
        .await;
        app.stop().await;
    }
);

#[tokio::test]
async fn tenants_and_bad_clients_are_refused() {
    let app = app::spawn(Backend::Sqlite).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let inv = gql
        .query(
            "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: {}) { id } }",
            json!({ "c": c }),
        )
        .await
        .data()["createContributorInvitation"]["id"]
        .clone();
    let (_, other) = app.other_org().await;
    let other_key = other_key(&app).await;
    let _ = other;
    let mut ws = WsClient::connect(&app.url).await;
    ws.init(&other_key).await.unwrap();
    ws.subscribe("1", COMPANY_ACTIVITY, json!({ "c": c })).await;
    assert_not_found(next_answer(&mut ws).await);
    ws.subscribe(
        "2",
        "subscription($i: ID!) { invitationActivity(invitationId: $i) { id } }",
        json!({ "i": inv }),
    )
    .await;
    assert_not_found(next_answer(&mut ws).await);
    ws.close().await;

    let mut bad = WsClient::connect(&app.url).await;
    assert_eq!(bad.init("igw_wrong").await, Err(4403));
    app.stop().await;

    let app = app::spawn_with(Backend::Sqlite, |env| {
        env.insert("GRAPHQL_WS_INIT_TIMEOUT_SECONDS".into(), "1".into());
    })
    .await;
    let mut silent = WsClient::connect(&app.url).await;
    assert_eq!(silent.closed(Duration::from_secs(5)).await, 4408);
    app.stop().await;
}

/// The next message that is not the `complete` of an earlier subscription.
async fn next_answer(ws: &mut WsClient) -> Received {
    loop {
        match ws.next(WAIT).await {
            Received::Complete(_) => continue,
            other => return other,
        }
    }
}

/// A refused subscription: an `error` message, or a `next` whose payload carries the error.
fn assert_not_found(received: Received) {
    let errors = match received {
        Received::Error(_, errors) => errors,
        Received::Next(_, payload) => payload["errors"].clone(),
        other => panic!("expected NOT_FOUND, got {other:?}"),
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{errors}");
}

async fn other_key(app: &TestApp) -> String {
    let org = entity::organization::create(&app.db, "Else").await.unwrap();
    entity::organization::create_api_key(&app.db, org.id, "else")
        .await
        .unwrap()
        .key
}

/// Two API replicas and a separate worker on one PostgreSQL and one Redis: a subscriber on one
/// server sees mutations made on the other and events recorded by the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn events_cross_replicas_through_redis() {
    let one = app::spawn_api_only(Backend::Postgres, |_| {}).await;
    let two = app::spawn_peer(
        &one,
        |_| {},
        api::startup::Roles {
            http: true,
            workers: false,
        },
    )
    .await;
    let worker = app::spawn_worker(&one, |_| {}).await;
    let c = app::create_company(&one.gql(), "Acme Co").await;
    let mut ws = subscribed(&one.url, &one.api_key, &c, None).await;
    let on_two = Gql::new(&two.url).with_api_key(&one.api_key);
    on_two
        .query(
            "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: { allowedEmails: [\"far@example.com\"], sendEmail: true }) { id } }",
            json!({ "c": c }),
        )
        .await
        .data();
    let got = events(&mut ws, 2).await;
    assert_eq!(
        types(&got),
        ["CREATED", "EMAIL_SENT"],
        "from the other server, then from the worker"
    );
    ws.close().await;
    worker.stop().await;
    two.stop().await;
    one.stop().await;
}
