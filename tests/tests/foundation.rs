//! The foundation: the HTTP endpoint, migrations, status rules on a real database, the binary's
//! command line and its configuration errors.

use chrono::Duration;
use entity::activity::Actor;
use entity::entities::{invitation_events, invitations, webhook_deliveries};
use entity::invitation::{self, CreateInvitation, ExpireDue, Revoke};
use entity::work::{self, Command, Work};
use entity::{DomainError, EventType, InvitationStatus};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use tests::pg::{Backend, TestDatabase};
use tests::published::Published;

use crate::app::{self, TestApp};
use crate::both;

both!(typename_answers, |backend| async move {
    let app = app::spawn(backend).await;
    let r = app.anon().query("{ __typename }", json!({})).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["__typename"], "Query");
    app.stop().await;
});

both!(readiness_reports_dependencies, |backend| async move {
    let app = app::spawn(backend).await;
    let client = reqwest::Client::new();
    let health = client
        .get(format!("{}/healthz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = client
        .get(format!("{}/readyz", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
    let expected_redis = if backend == Backend::Postgres {
        "ok"
    } else {
        "not configured"
    };
    assert_eq!(body["redis"], expected_redis);
    app.stop().await;
});

both!(
    api_key_authenticates_the_organization,
    |backend| async move {
        let app = app::spawn(backend).await;
        let q = "{ viewer { organizationId apiKeyName } }";
        let r = app.gql().query(q, json!({})).await;
        assert_eq!(r.data()["viewer"]["organizationId"], app.org_id.to_string());
        assert_eq!(r.data()["viewer"]["apiKeyName"], "test-key");
        assert_eq!(
            app.anon().query(q, json!({})).await.error_code().as_deref(),
            Some("UNAUTHENTICATED")
        );
        let forged = app
            .anon()
            .with_api_key("igw_not-a-real-key")
            .query(q, json!({}))
            .await;
        assert_eq!(forged.error_code().as_deref(), Some("UNAUTHENTICATED"));
        // The same key through `Authorization: Bearer`.
        let client = reqwest::Client::new();
        let bearer: Value = client
            .post(format!("{}/graphql", app.url))
            .bearer_auth(&app.api_key)
            .json(&json!({ "query": q }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            bearer["data"]["viewer"]["organizationId"],
            app.org_id.to_string()
        );
        app.stop().await;
    }
);

#[tokio::test]
async fn graphql_over_http_status_codes_and_media_types() {
    let app = app::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::new();
    let url = format!("{}/graphql", app.url);

    // A parse error: 400 without `data` under graphql-response+json, 200 under application/json.
    let strict = client
        .post(&url)
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(strict.status(), 400);
    assert_eq!(
        strict.headers()["content-type"],
        "application/graphql-response+json"
    );
    let body: Value = strict.json().await.unwrap();
    assert!(body.get("data").is_none(), "{body}");
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");

    let legacy = client
        .post(&url)
        .header("accept", "application/json")
        .json(&json!({ "query": "{ nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200);
    assert_eq!(legacy.headers()["content-type"], "application/json");

    // No content type: 415. Nothing acceptable: 406.
    let untyped = client
        .post(&url)
        .body(r#"{"query":"{ __typename }"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(untyped.status(), 415);
    let unacceptable = client
        .post(&url)
        .header("accept", "text/csv")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(unacceptable.status(), 406);

    // Queries work over GET; mutations do not.
    let get = client
        .get(&url)
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let body: Value = get.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query");
    let get_mutation = client
        .get(&url)
        .query(&[("query", "mutation { __typename }")])
        .send()
        .await
        .unwrap();
    assert_eq!(get_mutation.status(), 405);
    // A lone named mutation runs without `operationName`: still not over GET.
    let named_mutation = client
        .get(&url)
        .query(&[("query", "mutation Named { __typename }")])
        .send()
        .await
        .unwrap();
    assert_eq!(named_mutation.status(), 405);

    app.stop().await;
}

#[tokio::test]
async fn query_limits_answer_query_too_complex() {
    let app = app::spawn_with(Backend::Sqlite, |env| {
        env.insert("GRAPHQL_MAX_DEPTH".into(), "3".into());
    })
    .await;
    let shallow = app
        .gql()
        .query("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(shallow.errors().is_empty(), "{:?}", shallow.body);
    // Introspection is spared (tests/tests/tooling.rs); ordinary fields are not.
    let deep = app
        .gql()
        .query(
            "{ invitation(id: \"x\") { company { sites { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(deep.error_code().as_deref(), Some("QUERY_TOO_COMPLEX"));
    app.stop().await;
}

both!(migrations_go_up_down_and_up_again, |backend| async move {
    let database = TestDatabase::new(backend).await;
    let db = sea_orm::Database::connect(database.url()).await.unwrap();
    let table_count = |db: sea_orm::DatabaseConnection| async move {
        let sql = match db.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'seaql_migrations'"
            }
            _ => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'seaql_migrations'"
            }
        };
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                sql,
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    };
    Migrator::up(&db, None).await.unwrap();
    // One table per migration, but for the four that change existing tables (the invitation
    // list indexes, the event positions, the email deliveries' organization index, the embed
    // origins).
    let applied = Migrator::migrations().len() - 4;
    assert_eq!(
        table_count(db.clone()).await,
        applied as i64,
        "one table per migration"
    );
    Migrator::down(&db, None).await.unwrap();
    assert_eq!(table_count(db.clone()).await, 0);
    Migrator::up(&db, None).await.unwrap();
    assert_eq!(table_count(db.clone()).await, applied as i64);
    assert!(
        Migrator::get_pending_migrations(&db)
            .await
            .unwrap()
            .is_empty()
    );
});

async fn new_invitation(
    app: &TestApp,
    expires_in: Option<i64>,
    max_uses: Option<i64>,
) -> invitations::Model {
    let company = app.company("Northwind").await;
    let keys = entity::crypto::Keyring::new(app::SECRET_KEY.as_bytes());
    let work = Work::begin(&app.db).await.unwrap();
    let created = invitation::create(
        &work,
        &keys,
        CreateInvitation {
            organization_id: app.org_id,
            company_id: Some(company.id),
            expires_in_seconds: expires_in,
            max_uses,
            ..Default::default()
        },
        &Actor::ApiKey("test".into()),
    )
    .await
    .unwrap();
    let published = Published::default();
    work.commit(&published).await.unwrap();
    assert_eq!(published.events()[0].event_type, EventType::Created);
    created.invitation
}

/// Runs the expiry sweep once; returns how many invitations it expired.
async fn expire_due(app: &TestApp) -> u64 {
    work::run(&app.db, &Published::default(), &ExpireDue { batch: 100 })
        .await
        .unwrap()
}

fn revoke(organization_id: uuid::Uuid, id: uuid::Uuid, reason: Option<String>) -> Revoke {
    Revoke {
        organization_id,
        id,
        reason,
        actor: Actor::System,
    }
}

/// Moves a deadline into the past, as if time had passed.
async fn backdate(app: &TestApp, id: uuid::Uuid) {
    invitations::Entity::update_many()
        .col_expr(
            invitations::Column::ExpiresAt,
            Expr::value(entity::now() - Duration::seconds(5)),
        )
        .filter(invitations::Column::Id.eq(id))
        .exec(&app.db)
        .await
        .unwrap();
}

async fn reload(app: &TestApp, id: uuid::Uuid) -> invitations::Model {
    invitations::Entity::find_by_id(id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
}

both!(
    expiry_sweep_writes_what_it_announces,
    |backend| async move {
        // No workers: this test drives expiry itself, and a worker sweeps at start.
        let app = app::spawn_api_only(backend, |_| {}).await;
        let keys = entity::crypto::Keyring::new(app::SECRET_KEY.as_bytes());
        let endpoint = entity::webhook::endpoint::EndpointInput {
            url: Some("https://hooks.example.com/in".into()),
            event_types: Some(vec!["invitation.expired".into()]),
            description: None,
        };
        entity::webhook::endpoint::create(&app.db, &keys, Default::default(), app.org_id, endpoint)
            .await
            .unwrap();
        // Three invitations past their deadline, a minute apart, and one that is not.
        let mut due = Vec::new();
        for minutes in [3, 1, 2] {
            let inv = new_invitation(&app, Some(3600), None).await;
            invitations::Entity::update_many()
                .col_expr(
                    invitations::Column::ExpiresAt,
                    Expr::value(entity::now() - Duration::minutes(minutes)),
                )
                .filter(invitations::Column::Id.eq(inv.id))
                .exec(&app.db)
                .await
                .unwrap();
            due.push(reload(&app, inv.id).await);
        }
        let later = new_invitation(&app, Some(3600), None).await;
        due.sort_by_key(|i| i.expires_at);

        // A batch of two takes the two soonest deadlines; the next batch the third; then nothing.
        let published = Published::default();
        let mut counts = Vec::new();
        for _ in 0..3 {
            counts.push(
                work::run(&app.db, &published, &ExpireDue { batch: 2 })
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(counts, [2, 1, 0]);
        let announced = published.events();
        assert_eq!(
            announced
                .iter()
                .map(|e| e.invitation_id)
                .collect::<Vec<_>>(),
            due.iter().map(|i| i.id).collect::<Vec<_>>()
        );
        for invitation in &due {
            let row = reload(&app, invitation.id).await;
            assert_eq!(row.status, InvitationStatus::Expired);
            assert_eq!(row.expired_at, invitation.expires_at);
        }
        assert_eq!(
            reload(&app, later.id).await.status,
            InvitationStatus::Active
        );

        // What was published is what was stored (positions aside on PostgreSQL, where the
        // sequencer gives them after commit).
        let mut stored = invitation_events::Entity::find()
            .filter(invitation_events::Column::EventType.eq(EventType::Expired))
            .order_by_asc(invitation_events::Column::Id)
            .all(&app.db)
            .await
            .unwrap();
        if backend == Backend::Postgres {
            for event in &mut stored {
                event.position = None;
            }
        }
        assert_eq!(stored, announced);
        for event in &announced {
            assert_eq!(event.actor, "system");
            assert_eq!(event.detail, json!({}));
            assert_eq!(event.email, None);
        }
        if backend == Backend::Sqlite {
            // Positions at insert: every event of the log has its own, with no gap.
            let positions: Vec<Option<i64>> = invitation_events::Entity::find()
                .order_by_asc(invitation_events::Column::Position)
                .all(&app.db)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.position)
                .collect();
            let expected: Vec<Option<i64>> = (1..=positions.len() as i64).map(Some).collect();
            assert_eq!(positions, expected);
        }

        // One webhook delivery per event, saying what the invitation is now.
        let deliveries = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::EventType.eq("invitation.expired"))
            .all(&app.db)
            .await
            .unwrap();
        assert_eq!(deliveries.len(), 3);
        for event in &announced {
            let invitation = due.iter().find(|i| i.id == event.invitation_id).unwrap();
            let event_id = event.id.to_string();
            let delivery = deliveries
                .iter()
                .map(|d| serde_json::from_str::<Value>(&d.body).unwrap())
                .find(|body| body["data"]["eventId"] == event_id)
                .unwrap();
            let data = &delivery["data"];
            assert_eq!(data["invitationId"], invitation.id.to_string());
            assert_eq!(data["companyId"], invitation.company_id.to_string());
            assert_eq!(data["invitationType"], json!(invitation.invitation_type));
            assert_eq!(data["invitationStatus"], "EXPIRED");
            assert_eq!(data["connectionId"], Value::Null);
            assert_eq!(data["actor"], "system");
        }
        app.stop().await;
    }
);

both!(status_rules_hold_on_the_database, |backend| async move {
    // No workers: this test drives expiry itself, and a worker sweeps at start.
    let app = app::spawn_api_only(backend, |_| {}).await;
    let actor = Actor::System;

    // Read-time expiry: past its deadline an ACTIVE row reads EXPIRED before any job ran.
    let inv = new_invitation(&app, Some(3600), None).await;
    backdate(&app, inv.id).await;
    let row = reload(&app, inv.id).await;
    assert_eq!(row.status, InvitationStatus::Active);
    assert_eq!(
        row.effective_status(entity::now()),
        InvitationStatus::Expired
    );
    // Nothing can happen to it any more.
    let work = Work::begin(&app.db).await.unwrap();
    match revoke(app.org_id, inv.id, None).execute(&work).await {
        Err(DomainError::Conflict(m)) => assert_eq!(m, "invitation is EXPIRED"),
        other => panic!("unexpected {other:?}"),
    }
    match invitation::record_use(&work, inv.id, Default::default(), &actor).await {
        Err(DomainError::NotActive(InvitationStatus::Expired)) => {}
        other => panic!("unexpected {other:?}"),
    }
    drop(work);
    // The sweep persists it once, with one EXPIRED event, however often it runs.
    assert_eq!(expire_due(&app).await, 1);
    assert_eq!(expire_due(&app).await, 0);
    assert_eq!(reload(&app, inv.id).await.status, InvitationStatus::Expired);
    assert_eq!(
        invitation::count_events(&app.db, inv.id, EventType::Expired)
            .await
            .unwrap(),
        1
    );

    // Uses: maxUses = 2 gives two uses, the second one fulfils; a third fails.
    let inv = new_invitation(&app, Some(3600), Some(2)).await;
    for expected in [InvitationStatus::Active, InvitationStatus::Fulfilled] {
        let work = Work::begin(&app.db).await.unwrap();
        let t = invitation::record_use(&work, inv.id, Default::default(), &actor)
            .await
            .unwrap();
        work.commit(&Published::default()).await.unwrap();
        assert_eq!(t.status, expected);
    }
    let work = Work::begin(&app.db).await.unwrap();
    assert!(matches!(
        invitation::record_use(&work, inv.id, Default::default(), &actor).await,
        Err(DomainError::NotActive(InvitationStatus::Fulfilled))
    ));
    drop(work);
    let row = reload(&app, inv.id).await;
    assert_eq!(row.use_count, 2);
    assert_eq!(
        invitation::count_events(&app.db, inv.id, EventType::Submitted)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        invitation::count_events(&app.db, inv.id, EventType::Fulfilled)
            .await
            .unwrap(),
        1
    );
    // Precedence: fulfilled before its deadline stays FULFILLED after it, and the sweep skips it.
    backdate(&app, inv.id).await;
    assert_eq!(expire_due(&app).await, 0);
    let row = reload(&app, inv.id).await;
    assert_eq!(
        row.effective_status(entity::now()),
        InvitationStatus::Fulfilled
    );

    // Revoke: once; a second revoke is a conflict naming the status; revoked never expires.
    let inv = new_invitation(&app, Some(3600), None).await;
    let reason = Some("sent to the wrong person".into());
    let t = work::run(
        &app.db,
        &Published::default(),
        &revoke(app.org_id, inv.id, reason),
    )
    .await
    .unwrap();
    assert_eq!(t[0].status, InvitationStatus::Revoked);
    assert!(t[0].revoked_at.is_some());
    // Another organization (created before the transaction: SQLite has one writer at a time).
    let other = entity::organization::create(&app.db, "Other")
        .await
        .unwrap();
    let work = Work::begin(&app.db).await.unwrap();
    match revoke(app.org_id, inv.id, None).execute(&work).await {
        Err(DomainError::Conflict(m)) => assert_eq!(m, "invitation is REVOKED"),
        other => panic!("unexpected {other:?}"),
    }
    // ...cannot see it at all.
    assert!(matches!(
        revoke(other.id, inv.id, None).execute(&work).await,
        Err(DomainError::NotFound)
    ));
    drop(work);
    backdate(&app, inv.id).await;
    assert_eq!(expire_due(&app).await, 0);
    assert_eq!(
        reload(&app, inv.id).await.effective_status(entity::now()),
        InvitationStatus::Revoked
    );

    // The token is stored only as a hash and a sealed copy.
    let row = reload(&app, inv.id).await;
    assert_eq!(row.token_hash.len(), 64);
    let keys = entity::crypto::Keyring::new(app::SECRET_KEY.as_bytes());
    let token = keys
        .open_string(
            &row.token_sealed,
            &entity::crypto::Slot::invitation_token(row.id),
        )
        .unwrap();
    assert_eq!(entity::crypto::hash_token(&token), row.token_hash);
    assert!(!row.token_sealed.contains(&token));
    app.stop().await;
});

both!(
    periodic_sweep_expires_without_being_asked,
    |backend| async move {
        let app = app::spawn(backend).await;
        let inv = new_invitation(&app, Some(3600), None).await;
        backdate(&app, inv.id).await;
        let db = app.db.clone();
        tests::poll::eventually(
            "the expiry job to persist EXPIRED",
            std::time::Duration::from_secs(15),
            || {
                let db = db.clone();
                async move {
                    let row = invitations::Entity::find_by_id(inv.id)
                        .one(&db)
                        .await
                        .unwrap()
                        .unwrap();
                    (row.status == InvitationStatus::Expired).then_some(())
                }
            },
        )
        .await;
        assert_eq!(
            invitation::count_events(&app.db, inv.id, EventType::Expired)
                .await
                .unwrap(),
            1
        );
        app.stop().await;
    }
);

/// The error line of a failed start: exactly one line on stderr naming the key, exit code 2.
fn assert_config_error(output: &std::process::Output, key: &str) {
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit code; stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got: {stderr}");
    assert!(
        lines[0].starts_with(&format!("configuration error: {key}:")),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn configuration_errors_are_one_clear_line() {
    let dir = app::temp_dir();
    let data = dir.join("data").display().to_string();
    let env = |pairs: &[(&str, &str)]| {
        let mut map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        map.entry("DATA_DIR".into()).or_insert_with(|| data.clone());
        map.insert("LOG_LEVEL".into(), "error".into());
        map
    };
    let out = app::run_binary(
        &env(&[("DATABASE_URL", "postgres//missing-colon")]),
        &["migrate", "status"],
    );
    assert_config_error(&out, "DATABASE_URL");
    let out = app::run_binary(&env(&[("DATABASE_URL", "mysql://db/x")]), &["serve"]);
    assert_config_error(&out, "DATABASE_URL");
    // Nothing listens on port 1.
    let out = app::run_binary(&env(&[("REDIS_URL", "redis://127.0.0.1:1")]), &["serve"]);
    assert_config_error(&out, "REDIS_URL");
    // A data folder below a regular file cannot be created, even by root.
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = app::run_binary(
        &env(&[("DATA_DIR", &file.join("data").display().to_string())]),
        &["serve"],
    );
    assert_config_error(&out, "DATA_DIR");
    let out = app::run_binary(&env(&[("BIND_ADDR", "not-an-address")]), &["serve"]);
    assert_config_error(&out, "BIND_ADDR");
    let _ = std::fs::remove_dir_all(&dir);
}

both!(
    cli_creates_an_organization_with_a_working_key,
    |backend| async move {
        let app = app::spawn(backend).await;
        let out = app::run_binary(&app.env, &["org", "create", "acme", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
        let key = printed["apiKey"].as_str().unwrap();
        let org = printed["organizationId"].as_str().unwrap();
        let r = app
            .anon()
            .with_api_key(key)
            .query("{ viewer { organizationId } }", json!({}))
            .await;
        assert_eq!(r.data()["viewer"]["organizationId"], org);

        // Listing shows the prefix only; revoking stops the key (after the cache TTL of 1 s).
        let out = app::run_binary(&app.env, &["api-key", "list", "--org", org, "--json"]);
        let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert!(key.starts_with(listed[0]["prefix"].as_str().unwrap()));
        assert!(!String::from_utf8_lossy(&out.stdout).contains(key));
        let key_id = listed[0]["id"].as_str().unwrap();
        let out = app::run_binary(&app.env, &["api-key", "revoke", "--org", org, key_id]);
        assert!(out.status.success());
        let gql = app.anon().with_api_key(key);
        tests::poll::eventually(
            "the revoked key to be refused",
            std::time::Duration::from_secs(5),
            || {
                let gql = gql.clone();
                async move {
                    let r = gql.query("{ viewer { organizationId } }", json!({})).await;
                    (r.error_code().as_deref() == Some("UNAUTHENTICATED")).then_some(())
                }
            },
        )
        .await;
        app.stop().await;
    }
);

#[tokio::test]
async fn introspection_and_graphiql_can_be_switched_off() {
    let app = app::spawn_with(Backend::Sqlite, |env| {
        env.insert("GRAPHQL_INTROSPECTION".into(), "false".into());
        env.insert("GRAPHQL_GRAPHIQL".into(), "false".into());
    })
    .await;
    let r = app
        .gql()
        .query("{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(r.body["data"]["__schema"].is_null(), "{}", r.body);
    let page = reqwest::Client::new()
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    app.stop().await;

    let app = app::spawn(Backend::Sqlite).await;
    let page = reqwest::Client::new()
        .get(format!("{}/graphql", app.url))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("graphiql"));
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = app::spawn_with(Backend::Sqlite, |env| {
        env.insert("GRAPHQL_MAX_BODY_BYTES".into(), "2048".into());
    })
    .await;
    let padding = "x".repeat(4096);
    let r = reqwest::Client::new()
        .post(format!("{}/graphql", app.url))
        .json(&json!({ "query": format!("{{ __typename }} # {padding}") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    app.stop().await;
}

/// Processes started at the same moment on one fresh `DATA_DIR` (the embedded default: SQLite
/// database, queue file, generated secret key) all come up, share one key, and bootstrap one
/// organization between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn processes_starting_together_on_one_data_dir_all_come_up() {
    use std::process::{Child, Command, Stdio};
    for round in 0..3 {
        let data_dir = std::env::temp_dir().join(format!(
            "invitations-together-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let spawn = |args: &[&str], port: Option<u16>| -> Child {
            let mut command = Command::new(app::binary());
            command
                .args(args)
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("DATA_DIR", &data_dir)
                .env("LOG_LEVEL", "error")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            if let Some(port) = port {
                command
                    .env("BIND_ADDR", format!("127.0.0.1:{port}"))
                    .env("PUBLIC_BASE_URL", format!("http://127.0.0.1:{port}"));
            }
            command.spawn().unwrap()
        };
        let ports: Vec<u16> = (0..4).map(|_| tests::release::free_port()).collect();
        let mut children: Vec<Child> = ports.iter().map(|p| spawn(&["serve"], Some(*p))).collect();
        children.extend((0..2).map(|_| spawn(&["worker"], None)));
        for port in &ports {
            let url = format!("http://127.0.0.1:{port}/readyz");
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let ready = reqwest::get(&url).await.is_ok_and(|r| r.status() == 200);
                if ready {
                    break;
                }
                if let Some((i, status)) = children
                    .iter_mut()
                    .enumerate()
                    .find_map(|(i, c)| c.try_wait().unwrap().map(|s| (i, s)))
                {
                    let output = children.remove(i).wait_with_output().unwrap();
                    panic!(
                        "round {round}: a process exited ({status}): {}",
                        String::from_utf8_lossy(&output.stderr)
                    );
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: {url} not ready"
                );
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
        for child in &mut children {
            assert!(
                child.try_wait().unwrap().is_none(),
                "round {round}: every process keeps running"
            );
            child.kill().unwrap();
        }
        let (mut bootstrapped, mut pointed) = (0, 0);
        for child in children {
            let output = child.wait_with_output().unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            bootstrapped += stdout.matches("Bootstrap API key").count();
            // The key comes with where to use it.
            pointed += stdout.matches("/console and sign in with this key").count();
        }
        assert_eq!(
            bootstrapped, 1,
            "round {round}: one organization bootstrapped"
        );
        assert_eq!(pointed, 1, "round {round}: the key points to the console");
        let key = std::fs::read_to_string(data_dir.join("secret.key")).unwrap();
        assert!(key.trim().len() >= 32, "round {round}: a whole key");
        let leftovers: Vec<_> = std::fs::read_dir(&data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".write-test") || n.contains(".new-"))
            .collect();
        assert!(
            leftovers.is_empty(),
            "round {round}: left behind {leftovers:?}"
        );
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}
