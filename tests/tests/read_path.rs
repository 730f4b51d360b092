//! The read path: what a page costs in statements, that every list filter is served by an index,
//! that nested event pages never read a whole log, and the document cache and persisted queries.

use chrono::Duration as ChronoDuration;
use entity::entities::invitation_events;
use entity::invitation::{EventWindow, ListFilter, ListRequest};
use entity::{EventType, InvitationStatus, InvitationType};
use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};
use sea_orm::{
    ActiveValue::NotSet, ConnectionTrait, DatabaseBackend, EntityTrait, Iterable, QuerySelect, Set,
    Statement,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tests::pg::Backend;
use uuid::Uuid;

use crate::app::{self, TestApp};
use crate::both;

/// Invitations of a new company through the API; returns the company and the ids, newest first.
async fn seed(app: &TestApp, count: usize, emails: bool) -> (String, Vec<Uuid>) {
    let gql = app.gql();
    let company = app::create_company(&gql, "Reader").await;
    let inputs: Vec<Value> = (0..count)
        .map(|i| {
            if emails {
                json!({ "allowedEmails": [format!("r{i}@example.com"), "all@example.com"] })
            } else {
                json!({})
            }
        })
        .collect();
    let r = gql
        .query(
            "mutation($c: ID!, $i: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $i) { id } }",
            json!({ "c": company, "i": inputs }),
        )
        .await;
    let mut ids: Vec<Uuid> = r.data()["createContributorInvitations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.reverse();
    (company, ids)
}

/// Appends `n` VIEWED events to an invitation's log (besides its CREATED one).
async fn add_events(app: &TestApp, company: &str, invitation: Uuid, n: usize) {
    let company: Uuid = company.parse().unwrap();
    let rows = (0..n).map(|_| invitation_events::ActiveModel {
        id: NotSet,
        invitation_id: Set(invitation),
        organization_id: Set(app.org_id),
        company_id: Set(company),
        event_type: Set(EventType::Viewed),
        occurred_at: Set(entity::now()),
        email: Set(None),
        connection_id: Set(None),
        actor: Set("recipient".into()),
        detail: Set(json!({})),
        position: Set(None),
    });
    invitation_events::Entity::insert_many(rows)
        .exec_without_returning(&app.db)
        .await
        .unwrap();
}

both!(
    a_page_with_total_and_events_costs_at_most_three_statements,
    |backend| async move {
        // No workers: only the requests below run SQL.
        let app = app::spawn_api_only(backend, |_| {}).await;
        let gql = app.gql();
        let (company, ids) = seed(&app, 100, false).await;
        // The newest invitation has a long log: its page must stop at five.
        add_events(&app, &company, ids[0], 12).await;
        let q = "query($c: ID!, $first: Int) { invitations(companyId: $c, first: $first) {
            totalCount edges { node { id events(first: 5) { edges { node { id eventType } }
            pageInfo { hasNextPage } } } } } }";
        let mut costs = Vec::new();
        for first in [10, 100] {
            let (r, cost) = app
                .fewest_statements(&gql, q, json!({ "c": company, "first": first }))
                .await;
            costs.push(cost);
            let page = &r.data()["invitations"];
            assert_eq!(page["totalCount"], 100);
            let edges = page["edges"].as_array().unwrap();
            assert_eq!(edges.len(), first);
            let newest = &edges[0]["node"]["events"];
            assert_eq!(newest["edges"].as_array().unwrap().len(), 5);
            assert_eq!(newest["pageInfo"]["hasNextPage"], true);
            assert_eq!(newest["edges"][0]["node"]["eventType"], "CREATED");
            let other = &edges[1]["node"]["events"];
            assert_eq!(other["edges"].as_array().unwrap().len(), 1);
            assert_eq!(other["pageInfo"]["hasNextPage"], false);
        }
        assert!(
            costs.iter().all(|&c| c <= 3),
            "statements per page with totalCount and events: {costs:?}"
        );
        assert_eq!(costs[0], costs[1], "cost does not grow with the page size");
        // The unfiltered total is the company's counter; a filter counts rows: they agree.
        let r = gql
            .query(
                "query($c: ID!) { invitations(companyId: $c, filter: { invitationType: CREATE_CONNECTION }) { totalCount } }",
                json!({ "c": company }),
            )
            .await;
        assert_eq!(r.data()["invitations"]["totalCount"], 100);

        // The page's events are read once and handed to each selection of their window: two
        // aliases and a fragment of the same window each get the whole page, a window asked for
        // once more through a fragment still costs no more statements.
        let q = "query($c: ID!) { invitations(companyId: $c, first: 3) { edges { node {
            a: events(first: 5) { edges { node { id } } }
            b: events(first: 5) { edges { node { id } } }
            ... on Invitation { c: events(first: 5) { edges { node { id } } } } } } } }";
        let (r, cost) = app
            .fewest_statements(&gql, q, json!({ "c": company }))
            .await;
        assert!(cost <= costs[0], "repeated selections: {cost} statements");
        let edges = r.data()["invitations"]["edges"].as_array().unwrap();
        for (edge, len) in edges.iter().zip([5, 1, 1]) {
            let node = &edge["node"];
            assert_eq!(node["a"]["edges"].as_array().unwrap().len(), len, "{node}");
            assert_eq!(node["a"], node["b"]);
            assert_eq!(node["a"], node["c"]);
        }

        // Without totalCount the count is not run; the second page of a log follows its cursor.
        let r = gql
            .query(
                "query($c: ID!) { invitations(companyId: $c, first: 1) { edges { node {
                 a: events(first: 5) { edges { cursor node { id } } }
                 b: events(first: 100) { edges { node { id } } pageInfo { hasNextPage } } } } } }",
                json!({ "c": company }),
            )
            .await;
        let node = &r.data()["invitations"]["edges"][0]["node"];
        let all: Vec<&Value> = node["b"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["node"]["id"])
            .collect();
        assert_eq!(all.len(), 13, "CREATED and twelve views");
        assert_eq!(node["b"]["pageInfo"]["hasNextPage"], false);
        let cursor = node["a"]["edges"][4]["cursor"].as_str().unwrap().to_owned();
        let r = gql
            .query(
                "query($id: ID!, $after: String) { invitation(id: $id) { events(first: 5, after: $after) {
                 edges { node { id } } pageInfo { hasNextPage hasPreviousPage } } } }",
                json!({ "id": ids[0], "after": cursor }),
            )
            .await;
        let events = &r.data()["invitation"]["events"];
        let second: Vec<&Value> = events["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["node"]["id"])
            .collect();
        assert_eq!(second, all[5..10]);
        assert_eq!(events["pageInfo"]["hasNextPage"], true);
        assert_eq!(events["pageInfo"]["hasPreviousPage"], true);

        // An empty page still tells the caller's company from another's.
        let r = gql
            .query(
                "query($c: ID!) { invitations(companyId: $c, filter: { status: REVOKED }) { totalCount edges { cursor } } }",
                json!({ "c": company }),
            )
            .await;
        assert_eq!(r.data()["invitations"]["totalCount"], 0);
        let (_, other) = app.other_org().await;
        other
            .query(
                "query($c: ID!) { invitations(companyId: $c) { totalCount edges { cursor } } }",
                json!({ "c": company }),
            )
            .await
            .assert_error("NOT_FOUND", None);
        app.stop().await;
    }
);

/// The query plan of `sql` as text lines (SQLite) or JSON (PostgreSQL), with sequential scans
/// made as costly as possible on PostgreSQL so that a missing index cannot hide behind a small
/// table.
async fn plan(app: &TestApp, sql: &str, analyze: bool) -> Value {
    match app.backend {
        Backend::Postgres => {
            use sea_orm::TransactionTrait;
            let txn = app.db.begin().await.unwrap();
            txn.execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .unwrap();
            let options = if analyze {
                "ANALYZE, FORMAT JSON"
            } else {
                "FORMAT JSON"
            };
            let row = txn
                .query_one_raw(Statement::from_string(
                    DatabaseBackend::Postgres,
                    format!("EXPLAIN ({options}) {sql}"),
                ))
                .await
                .unwrap()
                .unwrap();
            let plan: Value = row.try_get_by_index(0).unwrap();
            txn.rollback().await.unwrap();
            plan
        }
        Backend::Sqlite => {
            let rows = app
                .db
                .query_all_raw(Statement::from_string(
                    DatabaseBackend::Sqlite,
                    format!("EXPLAIN QUERY PLAN {sql}"),
                ))
                .await
                .unwrap();
            Value::Array(
                rows.iter()
                    .map(|r| Value::String(r.try_get::<String>("", "detail").unwrap()))
                    .collect(),
            )
        }
    }
}

/// Every node of a PostgreSQL JSON plan.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut out = vec![];
    let mut stack: Vec<&Value> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["Plan"])
        .collect();
    while let Some(node) = stack.pop() {
        out.push(node);
        if let Some(children) = node["Plans"].as_array() {
            stack.extend(children);
        }
    }
    out
}

/// A statement built by sea-query, with its values inlined, for `EXPLAIN`.
fn inline(backend: Backend, query: &sea_orm::sea_query::SelectStatement) -> String {
    match backend {
        Backend::Postgres => query.to_string(PostgresQueryBuilder),
        Backend::Sqlite => query.to_string(SqliteQueryBuilder),
    }
}

/// Every filter the list offers, one at a time and all at once.
fn list_filters(at: chrono::DateTime<chrono::Utc>) -> Vec<(&'static str, ListFilter)> {
    let mut filters: Vec<(&'static str, ListFilter)> = vec![("none", ListFilter::default())];
    for status in [
        InvitationStatus::Active,
        InvitationStatus::Expired,
        InvitationStatus::Revoked,
        InvitationStatus::Fulfilled,
    ] {
        filters.push((
            status.as_str(),
            ListFilter {
                status: Some(status),
                ..Default::default()
            },
        ));
    }
    for t in [
        InvitationType::CreateConnection,
        InvitationType::EditConnection,
    ] {
        filters.push((
            "type",
            ListFilter {
                invitation_type: Some(t),
                ..Default::default()
            },
        ));
    }
    filters.push((
        "email",
        ListFilter {
            email: Some("all@example.com".into()),
            ..Default::default()
        },
    ));
    filters.push((
        "created range",
        ListFilter {
            created_after: Some(at - ChronoDuration::days(1)),
            created_before: Some(at),
            ..Default::default()
        },
    ));
    filters.push((
        "all at once",
        ListFilter {
            status: Some(InvitationStatus::Active),
            invitation_type: Some(InvitationType::CreateConnection),
            email: Some("all@example.com".into()),
            created_after: Some(at - ChronoDuration::days(1)),
            created_before: Some(at),
        },
    ));
    filters
}

both!(
    every_list_filter_is_served_by_an_index,
    |backend| async move {
        let app = app::spawn_api_only(backend, |_| {}).await;
        let (company, _) = seed(&app, 50, true).await;
        let company: Uuid = company.parse().unwrap();
        if backend == Backend::Postgres {
            app.db.execute_unprepared("ANALYZE").await.unwrap();
        }
        let at = entity::now();
        let filters = list_filters(at);
        for (name, filter) in &filters {
            let request = ListRequest {
                organization_id: app.org_id,
                company_id: company,
                filter,
                first: 20,
                after: None,
                with_total: true,
            };
            let page = entity::invitation::list::page_statement(
                app.db.get_database_backend(),
                &request,
                at,
            )
            .unwrap();
            let empty = entity::invitation::list::company_query(&request, at).unwrap();
            for sql in [tests::sql::inline(&page), inline(backend, &empty)] {
                let plan = plan(&app, &sql, false).await;
                match backend {
                    Backend::Postgres => {
                        for node in nodes(&plan) {
                            let kind = node["Node Type"].as_str().unwrap();
                            assert_ne!(kind, "Seq Scan", "filter {name}: {plan:#}");
                            // The list's indexes are entered by the tenant and the company, never
                            // walked whole. (EXPIRED may also read the expiry sweep's partial index
                            // up to now: ACTIVE rows past their deadline that the sweep has not
                            // yet persisted, which it keeps few.)
                            let index = node["Index Name"].as_str().unwrap_or_default();
                            if index.starts_with("idx_invitation")
                                && index != "idx_invitations_active_expires"
                            {
                                let cond = node["Index Cond"].as_str().unwrap_or_default();
                                assert!(
                                    cond.contains("organization_id") && cond.contains("company_id"),
                                    "filter {name}: {index} entered by {cond:?}: {plan:#}"
                                );
                            }
                        }
                    }
                    Backend::Sqlite => {
                        for line in plan.as_array().unwrap() {
                            let line = line.as_str().unwrap();
                            assert!(
                                !line.starts_with("SCAN invitation"),
                                "filter {name}: {plan:#}"
                            );
                        }
                    }
                }
            }
        }
        app.stop().await;
    }
);

/// A page's statements, once prepared on a connection, run on PostgreSQL's generic plan: for
/// every filter but the time-bound statuses, on the first page and after a cursor, and the
/// nested event pages. A limit or a status bound as a parameter kept the page's statement from
/// it (planned again at every execution, and planning took longer than running it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_statements_run_on_a_generic_plan() {
    use sea_orm::TransactionTrait;

    let app = app::spawn_api_only(Backend::Postgres, |_| {}).await;
    let (company, ids) = seed(&app, 50, true).await;
    let company: Uuid = company.parse().unwrap();
    for id in &ids[..20] {
        add_events(&app, &company.to_string(), *id, 8).await;
    }
    // Thousands of older rows: with a few dozen, a guessed limit costs no more than the real
    // one and any plan passes.
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO invitations (id, organization_id, company_id, invitation_type, status, \
             token_hash, token_sealed, allowed_emails, expires_at, max_uses, use_count, prefill, \
             locked_fields, created_by, created_at, updated_at) \
             SELECT gen_random_uuid(), '{org}', '{company}', 'CREATE_CONNECTION', 'ACTIVE', \
             md5('{company}/' || g), 'unsealed', '[]', now() + interval '30 days', 1, 0, '{{}}', \
             '[]', 'test', now() - g * interval '1 hour', now() - g * interval '1 hour' \
             FROM generate_series(1, 3000) g",
            org = app.org_id,
        ))
        .await
        .unwrap();
    app.db.execute_unprepared("ANALYZE").await.unwrap();
    let at = entity::now();
    let row = entity::entities::invitations::Entity::find_by_id(ids[20])
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let cursor = entity::invitation::ListCursor::at(&row);
    let filters = list_filters(at);
    let mut statements = vec![(
        "events".to_owned(),
        entity::invitation::events::event_pages_statement(
            DatabaseBackend::Postgres,
            app.org_id,
            &ids[..20],
            EventWindow {
                first: 5,
                after: None,
            },
        ),
    )];
    // The effective ACTIVE and EXPIRED compare `expires_at` with now, a bound value whose
    // selectivity PostgreSQL estimates per execution: those pages may be planned each time.
    let timed = [
        Some(InvitationStatus::Active),
        Some(InvitationStatus::Expired),
    ];
    for (name, filter) in filters.iter().filter(|(_, f)| !timed.contains(&f.status)) {
        for after in [None, Some(cursor)] {
            let request = ListRequest {
                organization_id: app.org_id,
                company_id: company,
                filter,
                first: 20,
                after,
                with_total: true,
            };
            let page =
                entity::invitation::list::page_statement(DatabaseBackend::Postgres, &request, at)
                    .unwrap();
            statements.push((format!("filter {name}, after {after:?}"), page));
        }
    }
    // One transaction: one connection, whose prepared statements PostgreSQL lists.
    let txn = app.db.begin().await.unwrap();
    let mut replanned = Vec::new();
    for (name, statement) in statements {
        for _ in 0..10 {
            txn.query_all_raw(statement.clone()).await.unwrap();
        }
        let plans = txn
            .query_one_raw(Statement::from_sql_and_values(
                DatabaseBackend::Postgres,
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements \
                 WHERE statement = $1",
                [statement.sql.clone().into()],
            ))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: not prepared"));
        let generic: i64 = plans.try_get("", "generic_plans").unwrap();
        let custom: i64 = plans.try_get("", "custom_plans").unwrap();
        // PostgreSQL tries five custom plans before it compares them with the generic one.
        if generic < 5 || custom > 5 {
            replanned.push(format!(
                "{name}: {generic} generic and {custom} custom plans {}",
                tests::sql::inline(&statement)
            ));
        }
    }
    txn.rollback().await.unwrap();
    assert!(
        replanned.is_empty(),
        "in 10 executions each: {replanned:#?}"
    );
    app.stop().await;
}

both!(event_pages_never_read_a_whole_log, |backend| async move {
    let app = app::spawn_api_only(backend, |_| {}).await;
    let (company, ids) = seed(&app, 20, false).await;
    for id in &ids {
        add_events(&app, &company, *id, 40).await;
    }
    if backend == Backend::Postgres {
        app.db.execute_unprepared("ANALYZE").await.unwrap();
    }
    let window = EventWindow {
        first: 5,
        after: None,
    };
    let statement = entity::invitation::events::event_pages_statement(
        app.db.get_database_backend(),
        app.org_id,
        &ids,
        window,
    );
    // The statement itself returns six events of each log.
    let pages = entity::invitation::event_pages(&app.db, app.org_id, &ids, window)
        .await
        .unwrap();
    assert_eq!(pages.len(), 20);
    assert!(pages.values().all(|p| p.len() == 6));
    // Another organization's ids give nothing.
    let (other, _) = app.other_org().await;
    let foreign = entity::invitation::event_pages(&app.db, other, &ids, window)
        .await
        .unwrap();
    assert!(foreign.is_empty());

    let sql = tests::sql::inline(&statement);
    match backend {
        Backend::Postgres => {
            let plan = plan(&app, &sql, true).await;
            let scans: Vec<&Value> = nodes(&plan)
                .into_iter()
                .filter(|n| n["Relation Name"] == "invitation_events")
                .collect();
            assert!(!scans.is_empty(), "{plan:#}");
            for scan in scans {
                assert_ne!(scan["Node Type"], "Seq Scan", "{plan:#}");
                // Rows per loop: what one invitation's log gave up; 41 would be all of it.
                let rows = scan["Actual Rows"].as_f64().unwrap();
                assert!(rows <= 6.0, "{rows} rows read per log: {plan:#}");
            }
        }
        Backend::Sqlite => {
            let plan = plan(&app, &sql, false).await;
            let lines: Vec<&str> = plan
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap())
                .collect();
            // Each log is entered through its index and left after the limit; the events
            // themselves are fetched by primary key.
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("USING INDEX idx_invitation_events_invitation")),
                "{lines:?}"
            );
            assert!(
                lines.iter().any(|l| l.contains("INTEGER PRIMARY KEY")),
                "{lines:?}"
            );
            assert!(
                lines
                    .iter()
                    .all(|l| !l.starts_with("SCAN e") && !l.starts_with("SCAN x")),
                "{lines:?}"
            );
        }
    }
    app.stop().await;
});

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn persisted_queries_and_cached_documents() {
    let app = app::spawn_api_only(Backend::Sqlite, |_| {}).await;
    let gql = app.gql();
    let query = "query Me { viewer { organizationId } }";
    let persisted = |hash: &str| json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    // Hash only, unknown: a 200 that tells the client to send the text.
    let r = gql
        .post(json!({ "extensions": persisted(&sha256(query)) }))
        .await;
    assert_eq!(r.status, 200);
    r.assert_error("PERSISTED_QUERY_NOT_FOUND", None);
    assert_eq!(r.error_message().as_deref(), Some("PersistedQueryNotFound"));
    // Text with a hash that is not its own: refused.
    let r = gql
        .post(json!({ "query": query, "extensions": persisted(&sha256("{ x }")) }))
        .await;
    assert_eq!(r.status, 400);
    r.assert_error("BAD_USER_INPUT", None);
    // Text and hash: run and remembered; then the hash alone runs it, over POST and GET.
    let r = gql
        .post(json!({ "query": query, "extensions": persisted(&sha256(query)) }))
        .await;
    assert_eq!(r.data()["viewer"]["organizationId"], app.org_id.to_string());
    let r = gql
        .post(json!({ "extensions": persisted(&sha256(query)) }))
        .await;
    assert_eq!(r.data()["viewer"]["organizationId"], app.org_id.to_string());
    let client = reqwest::Client::new();
    let get = |extensions: Value| {
        client
            .get(gql.endpoint())
            .query(&[("extensions", extensions.to_string())])
            .header("x-api-key", &app.api_key)
            .header("accept", "application/json")
            .send()
    };
    let r = get(persisted(&sha256(query))).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["data"]["viewer"]["organizationId"],
        app.org_id.to_string()
    );
    // A persisted mutation still cannot run over GET.
    let mutation = "mutation { createCompany(input: { name: \"Via GET\" }) { id } }";
    gql.post(json!({ "query": mutation, "extensions": persisted(&sha256(mutation)) }))
        .await
        .data();
    let r = get(persisted(&sha256(mutation))).await.unwrap();
    assert_eq!(r.status(), 405);

    // A cached document still has its variables checked on every request.
    let typed = "query($first: Int) { companies { id } invitations(companyId: \"00000000-0000-0000-0000-000000000000\", first: $first) { totalCount } }";
    let r = gql.query(typed, json!({ "first": 5 })).await;
    r.assert_error("NOT_FOUND", None);
    for _ in 0..2 {
        let r = gql.query(typed, json!({ "first": "many" })).await;
        assert_eq!(
            r.status, 400,
            "a variable of the wrong type is a request error"
        );
        r.assert_error("BAD_USER_INPUT", None);
    }
    // A document that does not validate is refused every time, the same way.
    for _ in 0..2 {
        let r = gql.query("{ viewer { nope } }", json!({})).await;
        assert_eq!(r.status, 400);
        r.assert_error("BAD_USER_INPUT", None);
    }
    app.stop().await;
}

both!(
    concurrent_lookups_share_a_statement_and_stay_in_their_organization,
    |backend| async move {
        use futures::future::{MaybeDone, join_all, maybe_done};
        use sea_orm::TransactionTrait;
        use std::pin::Pin;

        let app = app::spawn_api_only(backend, |_| {}).await;
        let (_, ours) = seed(&app, 20, false).await;
        let (other_org, other) = app.other_org().await;
        let their_company = app::create_company(&other, "Theirs").await;
        let (theirs, _) = app::invite(&other, &their_company, json!({})).await;
        let theirs: Uuid = theirs.parse().unwrap();
        let metrics = std::sync::Arc::new(jobs::metrics::Metrics::new());
        let reads = api::db::Reads::new(app.db.clone(), metrics.clone());

        // (asking organization, id, whether it is that organization's): each organization's
        // own ids, and each asking for the other's, mixed in one batch.
        let mut wanted: Vec<(Uuid, Uuid, bool)> = Vec::new();
        for &id in &ours {
            wanted.push((app.org_id, id, true));
            wanted.push((other_org, id, false));
        }
        wanted.push((other_org, theirs, true));
        wanted.push((app.org_id, theirs, false));

        // On PostgreSQL the table is held, so the first lookup's statement waits in the
        // database while every other lookup joins the queue behind it.
        let hold = match backend {
            Backend::Postgres => {
                let txn = app.db.begin().await.unwrap();
                txn.execute_unprepared("LOCK TABLE invitations IN ACCESS EXCLUSIVE MODE")
                    .await
                    .unwrap();
                Some(txn)
            }
            Backend::Sqlite => None,
        };
        let mut lookups: Vec<Pin<Box<MaybeDone<_>>>> = wanted
            .iter()
            .map(|&(org, id, _)| {
                Box::pin(maybe_done(
                    reads.find_owned::<entity::entities::invitations::Entity>(org, id),
                ))
            })
            .collect();
        // One poll each queues every lookup, before any statement can answer.
        for lookup in &mut lookups {
            let _ = futures::poll!(lookup.as_mut());
        }
        if let Some(txn) = hold {
            let blocked = "SELECT count(*)::int8 AS n FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT %FROM \"invitations\"%'";
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let row = app
                    .db
                    .query_one_raw(Statement::from_string(DatabaseBackend::Postgres, blocked))
                    .await
                    .unwrap()
                    .unwrap();
                if row.try_get::<i64>("", "n").unwrap() == 1 {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the first lookup's statement never waited on the held table"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            txn.commit().await.unwrap();
        }
        join_all(lookups.iter_mut().map(|l| l.as_mut())).await;
        for ((org, id, owned), lookup) in wanted.iter().zip(&mut lookups) {
            match lookup.as_mut().take_output().unwrap() {
                Ok(row) => {
                    assert!(owned, "{org} must not read {id}");
                    assert_eq!((row.id, row.organization_id), (*id, *org));
                }
                Err(entity::DomainError::NotFound) => {
                    assert!(!owned, "{org} must read its own {id}")
                }
                Err(e) => panic!("{e}"),
            }
        }
        if backend == Backend::Postgres {
            // The first, alone, then everything that queued behind it in one statement.
            let statements = metrics
                .encode()
                .lines()
                .find_map(|l| l.strip_prefix("invitations_db_statement_duration_seconds_count "))
                .map(|n| n.trim().parse::<f64>().unwrap());
            assert_eq!(statements, Some(2.0), "{} lookups", wanted.len());
        }
        app.stop().await;
    }
);

/// A lookup statement, once prepared on a connection, runs on PostgreSQL's generic plan instead
/// of being planned again on every execution (as it was while its pairs were two arrays, whose
/// length a generic plan cannot know). Planning cost two to three times what running it did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_statements_run_on_a_generic_plan() {
    use sea_orm::sqlx::{self, AssertSqlSafe};

    let app = app::spawn_api_only(Backend::Postgres, |_| {}).await;
    let (_, ours) = seed(&app, 64, false).await;
    let mut connection = app
        .db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .unwrap();
    for size in [1, 4, 64] {
        let sql = entity::scope::find_owned_many_sql::<entity::entities::invitations::Entity>(size);
        for _ in 0..10 {
            let mut query = sqlx::query(AssertSqlSafe(&*sql));
            for &id in &ours[..size] {
                query = query.bind(app.org_id).bind(id);
            }
            let rows = query.fetch_all(&mut *connection).await.unwrap();
            assert_eq!(rows.len(), size, "{size} pairs");
        }
        let (generic, custom): (i64, i64) = sqlx::query_as(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
        )
        .bind(&*sql)
        .fetch_one(&mut *connection)
        .await
        .unwrap();
        // PostgreSQL tries five custom plans before it compares them with the generic one.
        assert!(
            generic >= 5 && custom <= 5,
            "{size} pairs: {generic} generic and {custom} custom plans in 10 executions"
        );
    }
    drop(connection);
    app.stop().await;
}

/// Reads over a pool of `size` connections to a fresh PostgreSQL database.
async fn reads_over(
    size: u32,
) -> (
    tests::pg::TestDatabase,
    sea_orm::DatabaseConnection,
    api::db::Reads,
) {
    let database = tests::pg::TestDatabase::postgres().await;
    let mut options = sea_orm::ConnectOptions::new(database.url());
    options.max_connections(size).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await.unwrap();
    let reads = api::db::Reads::new(
        db.clone(),
        std::sync::Arc::new(jobs::metrics::Metrics::new()),
    );
    (database, db, reads)
}

async fn read_number(reads: &api::db::Reads, n: i32) -> i32 {
    let statement = Statement::from_sql_and_values(
        DatabaseBackend::Postgres,
        "SELECT $1::int4 AS n",
        [n.into()],
    );
    let row = reads.query_one_raw(statement).await.unwrap().unwrap();
    row.try_get::<i32>("", "n").unwrap()
}

/// A read abandoned half-way (its client went away) must not leave its connection, with the
/// abandoned statement's answer still unread, to the next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_read_does_not_answer_the_next_one() {
    let (_database, _db, reads) = reads_over(2).await;
    assert_eq!(read_number(&reads, 1).await, 1);
    for round in 0..3 {
        let slow = Statement::from_string(
            DatabaseBackend::Postgres,
            "SELECT 999 AS n FROM pg_sleep(0.3)",
        );
        let abandoned = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            reads.query_one_raw(slow),
        )
        .await;
        assert!(abandoned.is_err(), "the slow read was abandoned");
        for n in 0..4 {
            assert_eq!(read_number(&reads, round * 10 + n).await, round * 10 + n);
        }
    }
}

/// With a pool of one, reads keep nothing back: a write transaction still gets the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_leave_a_pool_of_one_to_writes() {
    use sea_orm::TransactionTrait;
    let (_database, db, reads) = reads_over(1).await;
    for n in 0..3 {
        assert_eq!(read_number(&reads, n).await, n);
        // sqlx would wait out its 30 s acquire timeout and fail if reads held the connection.
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared("SELECT 1").await.unwrap();
        txn.commit().await.unwrap();
    }
}

/// The fields of `type_name` that take no arguments and hold a scalar or an enum (or lists of
/// them), as the schema's introspection lists them.
async fn leaf_fields(gql: &tests::graphql::Gql, type_name: &str) -> Vec<String> {
    let r = gql
        .query(
            "query($t: String!) { __type(name: $t) { fields { name args { name }
             type { kind ofType { kind ofType { kind ofType { kind } } } } } } }",
            json!({ "t": type_name }),
        )
        .await;
    let innermost = |mut ty: &Value| {
        while ty["ofType"].is_object() {
            ty = &ty["ofType"];
        }
        ty["kind"].as_str().unwrap().to_owned()
    };
    r.data()["__type"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["args"].as_array().unwrap().is_empty())
        .filter(|f| matches!(innermost(&f["type"]).as_str(), "SCALAR" | "ENUM"))
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

both!(
    plain_fields_answer_as_their_resolvers_do,
    |backend| async move {
        use sea_orm::{ActiveModelTrait, IntoActiveModel};

        let app = app::spawn_api_only(backend, |_| {}).await;
        let gql = app.gql();
        let company = app::create_company(&gql, "Plain").await;
        let connection = app::gridco_connection(&gql, &company, false).await;
        let (reconnect, _) = app::reconnect_invite(&gql, &connection).await;
        app::invite(
            &gql,
            &company,
            json!({ "allowedEmails": ["a@example.com", "b@example.com"], "expiresInSeconds": 3600,
                "maxUses": 3, "prefill": { "country": "DE" }, "lockedFields": ["COUNTRY"],
                "remindBeforeExpirySeconds": 600 }),
        )
        .await;
        let (revoked, _) = app::invite(&gql, &company, json!({})).await;
        gql.query(
            "mutation($id: ID!) { revokeInvitation(id: $id, reason: \"sent twice\") { id } }",
            json!({ "id": revoked }),
        )
        .await
        .data();
        // On PostgreSQL the sequencer numbers committed events just after their commit: once it
        // has, both queries below read the same cursors, and the event written below by hand
        // comes after every numbered one.
        let db = &app.db;
        tests::poll::eventually(
            "every event numbered",
            std::time::Duration::from_secs(30),
            || async move {
                use sea_orm::{ColumnTrait, PaginatorTrait, QueryFilter};
                invitation_events::Entity::find()
                    .filter(invitation_events::Column::Position.is_null())
                    .count(db)
                    .await
                    .unwrap()
                    == 0
            },
        )
        .await;
        // What a recipient's submission leaves behind, written to the rows: a fulfilled invitation
        // and an event with every column set.
        let reconnect: Uuid = reconnect.parse().unwrap();
        let row = entity::entities::invitations::Entity::find_by_id(reconnect)
            .one(&app.db)
            .await
            .unwrap()
            .unwrap();
        let mut row = row.into_active_model();
        row.fulfilled_at = Set(Some(entity::now()));
        row.update(&app.db).await.unwrap();
        invitation_events::ActiveModel {
            id: NotSet,
            invitation_id: Set(reconnect),
            organization_id: Set(app.org_id),
            company_id: Set(company.parse().unwrap()),
            event_type: Set(EventType::Submitted),
            occurred_at: Set(entity::now()),
            email: Set(Some("owner@example.com".into())),
            connection_id: Set(Some(connection.parse().unwrap())),
            actor: Set("recipient".into()),
            detail: Set(json!({ "fields": ["url"], "attempt": 2 })),
            position: Set(Some(1_000_000)),
        }
        .insert(&app.db)
        .await
        .unwrap();

        let invitation = leaf_fields(&gql, "Invitation").await.join(" ");
        let event = leaf_fields(&gql, "InvitationEvent").await.join(" ");
        // Every selection set of the query, plain or inside an inline fragment on its own type:
        // a fragment sends the selection through async-graphql's resolvers.
        let query = |wrap: bool| {
            let on = |ty: &str, body: String| {
                if wrap {
                    format!("{{ ... on {ty} {{ {body} }} }}")
                } else {
                    format!("{{ {body} }}")
                }
            };
            let events = on(
                "InvitationEventConnection",
                format!(
                    "pageInfo {{ hasNextPage }} edges {}",
                    on(
                        "InvitationEventEdge",
                        format!(
                            "cursor node {}",
                            on("InvitationEvent", format!("__typename {event}"))
                        )
                    )
                ),
            );
            let node = on(
                "Invitation",
                format!(
                    "__typename alias: id {invitation} prefill {{ country }} events(first: 10) {events}"
                ),
            );
            format!(
                "query($c: ID!, $id: ID!) {{ invitations(companyId: $c, first: 10) {} invitation(id: $id) {node} }}",
                on(
                    "InvitationConnection",
                    format!(
                        "totalCount pageInfo {{ hasNextPage endCursor }} edges {}",
                        on("InvitationEdge", format!("cursor node {node}"))
                    )
                )
            )
        };
        let variables = json!({ "c": company, "id": reconnect });
        let plain = gql.query(&query(false), variables.clone()).await;
        let resolved = gql.query(&query(true), variables).await;
        assert_eq!(plain.data(), resolved.data());

        // The comparison covers a value in every field, not only nulls.
        let nodes: Vec<&Value> = plain.data()["invitations"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["node"])
            .collect();
        assert_eq!(nodes.len(), 3);
        let events: Vec<&Value> = nodes
            .iter()
            .flat_map(|n| n["events"]["edges"].as_array().unwrap())
            .map(|e| &e["node"])
            .collect();
        for (fields, objects) in [(&invitation, &nodes), (&event, &events)] {
            for field in fields.split(' ') {
                assert!(
                    objects.iter().any(|o| !o[field].is_null()),
                    "{field} is null in every object"
                );
            }
        }
        assert_eq!(plain.data()["invitation"]["revokedReason"], Value::Null);
        assert_eq!(plain.data()["invitation"]["alias"], reconnect.to_string());
        app.stop().await;
    }
);

both!(rows_decode_as_sea_orm_decodes_them, |backend| async move {
    use entity::entities::invitations;
    use sea_orm::{ActiveModelTrait, ColumnTrait, FromQueryResult, QueryFilter, QueryTrait};

    let app = app::spawn_api_only(backend, |_| {}).await;
    let company = app::insert_company(&app.db, app.org_id, "Rows").await;
    let connection = app::gridco_connection(&app.gql(), &company.id.to_string(), false).await;
    let connection: Uuid = connection.parse().unwrap();
    let at = entity::now();
    // Every optional column set, and every optional column NULL.
    let full = invitations::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(app.org_id),
        company_id: Set(company.id),
        connection_id: Set(Some(connection)),
        invitation_type: Set(InvitationType::EditConnection),
        status: Set(InvitationStatus::Revoked),
        token_hash: Set("hash-of-the-full-row".into()),
        token_sealed: Set("sealed-token".into()),
        allowed_emails: Set(entity::StringList(vec!["a@example.com".into()])),
        expires_at: Set(Some(at + ChronoDuration::hours(1))),
        max_uses: Set(Some(3)),
        use_count: Set(2),
        prefill: Set(entity::Prefill {
            country: Some("DE".into()),
            initial_sites: vec![Uuid::now_v7()],
            utility_types: vec![entity::UtilityType::Gas],
            ..Default::default()
        }),
        locked_fields: Set(entity::StringList(vec!["country".into()])),
        remind_before_expiry_seconds: Set(Some(600)),
        reminder_sent_at: Set(Some(at)),
        created_by: Set("rows-key".into()),
        created_at: Set(at),
        updated_at: Set(at + ChronoDuration::seconds(5)),
        revoked_at: Set(Some(at + ChronoDuration::seconds(6))),
        revoked_reason: Set(Some("sent twice".into())),
        fulfilled_at: Set(Some(at + ChronoDuration::seconds(7))),
        expired_at: Set(Some(at + ChronoDuration::seconds(8))),
    }
    .insert(&app.db)
    .await
    .unwrap();
    let sparse = invitations::ActiveModel {
        id: Set(Uuid::now_v7()),
        token_hash: Set("hash-of-the-sparse-row".into()),
        connection_id: Set(None),
        invitation_type: Set(InvitationType::CreateConnection),
        status: Set(InvitationStatus::Active),
        allowed_emails: Set(entity::StringList::default()),
        expires_at: Set(None),
        max_uses: Set(None),
        prefill: Set(entity::Prefill::default()),
        locked_fields: Set(entity::StringList::default()),
        remind_before_expiry_seconds: Set(None),
        reminder_sent_at: Set(None),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        fulfilled_at: Set(None),
        expired_at: Set(None),
        ..full.clone().into()
    }
    .insert(&app.db)
    .await
    .unwrap();
    let event = |email: Option<&str>, connection_id, position| invitation_events::ActiveModel {
        id: NotSet,
        invitation_id: Set(full.id),
        organization_id: Set(app.org_id),
        company_id: Set(company.id),
        event_type: Set(EventType::Submitted),
        occurred_at: Set(at),
        email: Set(email.map(str::to_owned)),
        connection_id: Set(connection_id),
        actor: Set("recipient".into()),
        detail: Set(json!({ "fields": ["url"], "n": 2 })),
        position: Set(position),
    };
    event(Some("owner@example.com"), Some(connection), Some(1_000_000))
        .insert(&app.db)
        .await
        .unwrap();
    event(None, None, None).insert(&app.db).await.unwrap();

    let builder = app.db.get_database_backend();
    let invitation_rows = app
        .db
        .query_all_raw(
            invitations::Entity::find()
                .filter(invitations::Column::Id.is_in([full.id, sparse.id]))
                .build(builder),
        )
        .await
        .unwrap();
    let decoded: Vec<invitations::Model> = entity::rows::decode(&invitation_rows).unwrap();
    let by_name: Vec<invitations::Model> = invitation_rows
        .iter()
        .map(|r| invitations::Model::from_query_result(r, "").unwrap())
        .collect();
    assert_eq!(decoded.len(), 2);
    assert_eq!(decoded, by_name);
    assert!(decoded.contains(&full) && decoded.contains(&sparse));
    // Columns found where the declared order puts them, and by name when they are elsewhere:
    // the same rows selected in the reverse order decode the same.
    let reversed_rows = app
        .db
        .query_all_raw(
            invitations::Entity::find()
                .select_only()
                .columns(invitations::Column::iter().rev())
                .filter(invitations::Column::Id.is_in([full.id, sparse.id]))
                .build(builder),
        )
        .await
        .unwrap();
    let reversed: Vec<invitations::Model> = entity::rows::decode(&reversed_rows).unwrap();
    assert_eq!(reversed, decoded);

    // The events as the page reads them, through the statement that selects them.
    let pages = entity::invitation::events::event_pages(
        &app.db,
        app.org_id,
        &[full.id],
        EventWindow {
            first: 10,
            after: None,
        },
    )
    .await
    .unwrap();
    let event_rows = app
        .db
        .query_all_raw(
            invitation_events::Entity::find()
                .filter(invitation_events::Column::InvitationId.eq(full.id))
                .build(builder),
        )
        .await
        .unwrap();
    let mut by_name: Vec<invitation_events::Model> = event_rows
        .iter()
        .map(|r| invitation_events::Model::from_query_result(r, "").unwrap())
        .collect();
    by_name.sort_by_key(|e| e.id);
    assert_eq!(by_name.len(), 2);
    assert_eq!(pages[&full.id], by_name);

    // The point lookup (coalesced on PostgreSQL) reads the same row.
    let r = app
        .gql()
        .query(
            "query($id: ID!) { invitation(id: $id) { connectionId status maxUses useCount
             allowedEmails lockedFields remindBeforeExpirySeconds revokedReason fulfilledAt
             prefill { country utilityTypes } } }",
            json!({ "id": full.id }),
        )
        .await;
    assert_eq!(
        r.data()["invitation"],
        json!({
            "connectionId": connection, "status": "REVOKED", "maxUses": 3, "useCount": 2,
            "allowedEmails": ["a@example.com"], "lockedFields": ["COUNTRY"],
            "remindBeforeExpirySeconds": 600, "revokedReason": "sent twice",
            "fulfilledAt": full.fulfilled_at.unwrap().to_rfc3339(),
            "prefill": { "country": "DE", "utilityTypes": ["GAS"] },
        })
    );
    app.stop().await;
});

/// A cached document skips async-graphql's full validation and has its variables checked by
/// the gateway instead; a client must not be able to tell. Every wrong value below is sent
/// while its document is new (fully validated), then again once a good request has cached
/// it: the two answers must be the same, byte for byte of the JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cached_document_answers_wrong_variables_as_a_new_one() {
    let app = app::spawn_api_only(Backend::Sqlite, |_| {}).await;
    let gql = app.gql();
    let zero = "00000000-0000-0000-0000-000000000000";
    // (document, operation, a good request's variables, wrong ones)
    let cases: Vec<(&str, Option<&str>, Value, Vec<Value>)> = vec![
        (
            "query($id: ID!) { invitation(id: $id) { id } }",
            None,
            json!({ "id": zero }),
            vec![
                json!({ "id": null }),
                json!({ "id": true }),
                json!({ "id": 1.5 }),
                json!({ "id": 5 }),
                json!({ "id": { "a": 1 } }),
                json!({ "id": ["x"] }),
                json!({}),
            ],
        ),
        (
            "query($c: ID!, $n: Int, $f: InvitationFilter) { invitations(companyId: $c, first: $n, filter: $f) { totalCount } }",
            None,
            json!({ "c": zero, "n": 5 }),
            vec![
                json!({ "c": zero, "n": "many" }),
                json!({ "c": zero, "n": 1.5 }),
                json!({ "c": zero, "n": -1 }),
                json!({ "c": zero, "n": 10_000_000_000_i64 }),
                json!({ "c": zero, "f": { "status": "NOPE" } }),
                json!({ "c": zero, "f": { "status": 3 } }),
                json!({ "c": zero, "f": { "nope": 1 } }),
                json!({ "c": zero, "f": "x" }),
                json!({ "c": zero, "f": { "createdAfter": "not a date" } }),
                json!({ "c": zero, "f": { "status": "ACTIVE", "invitationType": "X" } }),
                json!({ "c": null, "n": "many" }),
            ],
        ),
        (
            "query($s: InvitationStatus) { invitations(companyId: \"00000000-0000-0000-0000-000000000000\", filter: { status: $s, email: \"a@b.co\" }) { totalCount } }",
            None,
            json!({ "s": "ACTIVE" }),
            vec![
                json!({ "s": "NOPE" }),
                json!({ "s": true }),
                json!({ "s": ["ACTIVE"] }),
            ],
        ),
        (
            "query($flag: Boolean!, $n: Int) { viewer @include(if: $flag) { organizationId } ...F __typename @skip(if: $n) } fragment F on Query { companies(first: $n) { id } }",
            None,
            json!({ "flag": true, "n": 1 }),
            vec![
                json!({ "flag": "yes", "n": 1 }),
                json!({ "flag": true, "n": "x" }),
                json!({ "flag": null, "n": "x" }),
            ],
        ),
        (
            "mutation($c: ID!, $in: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $in) { id } }",
            None,
            json!({ "c": zero, "in": [] }),
            vec![
                json!({ "c": zero, "in": [{ "allowedEmails": ["a@b.co", 1] }] }),
                json!({ "c": zero, "in": [null] }),
                json!({ "c": zero, "in": { "maxUses": "x" } }),
                json!({ "c": zero, "in": [{ "nope": 1 }] }),
                json!({ "c": zero, "in": [{ "prefill": { "lockedFields": ["NOPE"] } }] }),
            ],
        ),
        (
            "mutation($i: CreateCompanyInput!) { createCompany(input: $i) { id } }",
            None,
            json!({ "i": { "name": "Cached" } }),
            vec![
                json!({ "i": {} }),
                json!({ "i": { "name": 5 } }),
                json!({ "i": { "name": "x", "nope": 1 } }),
            ],
        ),
        (
            "query A($id: ID!) { invitation(id: $id) { id } } query B($n: Int) { companies(first: $n) { id } }",
            Some("B"),
            json!({ "n": 1 }),
            vec![
                json!({ "n": "x", "id": true }),
                json!({ "n": 1, "id": true }),
            ],
        ),
    ];
    let send = |query: &str, operation: Option<&str>, variables: &Value| {
        let mut body = json!({ "query": query, "variables": variables });
        if let Some(name) = operation {
            body["operationName"] = json!(name);
        }
        gql.post(body)
    };
    let mut compared = 0;
    for (index, (query, operation, good, wrong)) in cases.iter().enumerate() {
        // A text of its own, so that no earlier case has cached it.
        let query = format!("{query} # case {index}");
        let mut new = Vec::new();
        for variables in wrong {
            let r = send(&query, *operation, variables).await;
            new.push((r.status, r.body));
        }
        let r = send(&query, *operation, good).await;
        assert_eq!(r.status, 200, "{query}: {:?}", r.body);
        assert!(
            !r.body["data"].is_null() || r.errors().iter().all(|e| e.get("path").is_some()),
            "the good request must run, so that its document is cached: {:?}",
            r.body
        );
        for (variables, (status, body)) in wrong.iter().zip(new) {
            let r = send(&query, *operation, variables).await;
            assert_eq!(
                (r.status, &r.body),
                (status, &body),
                "{query} with {variables}: cached, then new"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 34);
    app.stop().await;
}

/// The body of a POST to `/graphql` as the server wrote it.
async fn raw_answer(app: &TestApp, body: &Value) -> String {
    let response = tests::graphql::client()
        .post(format!("{}/graphql", app.url))
        .header("content-type", "application/json")
        .header("x-api-key", &app.api_key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

both!(
    a_cached_query_runs_without_preparation_and_answers_as_its_first_run,
    |backend| async move {
        // A cached query without directives or variable page sizes skips async-graphql's
        // preparation (`api/src/graphql/direct.rs`); the rest keep it. Either way a client must
        // not be able to tell: each document's repeats answer byte for byte as its first run,
        // and `graphql_preparations` says which way each went.
        let app = app::spawn_api_only(backend, |_| {}).await;
        let (company, ids) = seed(&app, 3, true).await;
        add_events(&app, &company, ids[0], 3).await;
        let id = ids[0].to_string();
        let zero = "00000000-0000-0000-0000-000000000000";
        // (document, operation name, variables, how its repeats are prepared)
        let cases: Vec<(&str, Option<&str>, Value, &str)> = vec![
            (
                "query($id: ID!) { invitation(id: $id) { id status allowedEmails createdAt
                 events(first: 2) { edges { node { eventType actor } } } } }",
                None,
                json!({ "id": id }),
                "direct",
            ),
            // An error: `invitation` is non-null, so `data` is null.
            (
                "query($id: ID!) { invitation(id: $id) { id } }",
                None,
                json!({ "id": zero }),
                "direct",
            ),
            (
                "{ __typename apiVersion viewer { organizationId apiKeyName } }",
                None,
                json!({}),
                "direct",
            ),
            (
                "query Q($id: ID!) { ...Root } fragment Root on Query { invitation(id: $id) {
                 ... on Invitation { id __typename } a: status } }",
                None,
                json!({ "id": id }),
                "direct",
            ),
            (
                "query A { viewer { organizationId } } query B($c: ID!) {
                 invitations(companyId: $c, first: 2) { totalCount nodes { id } } }",
                Some("B"),
                json!({ "c": company }),
                "direct",
            ),
            // The page size is a variable: the complexity bound depends on the request.
            (
                "query($c: ID!, $n: Int = 2) { invitations(companyId: $c, first: $n) {
                 totalCount nodes { id } } }",
                None,
                json!({ "c": company }),
                "fast",
            ),
            // `@include` is applied in preparation.
            (
                "query($on: Boolean!) { apiVersion viewer @include(if: $on) { organizationId } }",
                None,
                json!({ "on": false }),
                "fast",
            ),
            (
                "mutation($i: CreateCompanyInput!) { createCompany(input: $i) { name } }",
                None,
                json!({ "i": { "name": "Again" } }),
                "fast",
            ),
        ];
        let prepared = |metrics: &tests::scrape::Metrics, how: &str| {
            metrics.value(
                "invitations_graphql_preparations_total",
                &[("preparation", how)],
            )
        };
        for (index, (query, operation, variables, how)) in cases.iter().enumerate() {
            // A text of its own, so that no earlier case has cached it.
            let mut body = json!({ "query": format!("{query} # {index}"), "variables": variables });
            if let Some(name) = operation {
                body["operationName"] = json!(name);
            }
            let before = tests::scrape::scrape(&app.url).await;
            let first = raw_answer(&app, &body).await;
            for _ in 0..2 {
                assert_eq!(raw_answer(&app, &body).await, first, "{query}");
            }
            let after = tests::scrape::scrape(&app.url).await;
            assert_eq!(
                prepared(&after, "parsed") - prepared(&before, "parsed"),
                1.0,
                "{query}"
            );
            assert_eq!(
                prepared(&after, how) - prepared(&before, how),
                2.0,
                "{query}: {first}"
            );
            let answer: Value = serde_json::from_str(&first).unwrap();
            match index {
                0 => {
                    let invitation = &answer["data"]["invitation"];
                    assert_eq!(invitation["id"], id.as_str(), "{first}");
                    let events = invitation["events"]["edges"].as_array().unwrap();
                    assert_eq!(events.len(), 2, "{first}");
                }
                1 => {
                    assert!(answer["data"].is_null(), "{first}");
                    assert_eq!(answer["errors"][0]["extensions"]["code"], "NOT_FOUND");
                    assert_eq!(answer["errors"][0]["path"][0], "invitation");
                }
                2 => {
                    assert_eq!(answer["data"]["__typename"], "Query", "{first}");
                    let viewer = &answer["data"]["viewer"];
                    assert_eq!(viewer["organizationId"], app.org_id.to_string());
                }
                3 => assert_eq!(answer["data"]["invitation"]["__typename"], "Invitation"),
                4 | 5 => {
                    assert_eq!(answer["data"]["invitations"]["totalCount"], 3, "{first}");
                    let nodes = answer["data"]["invitations"]["nodes"].as_array().unwrap();
                    assert_eq!(nodes.len(), 2, "{first}");
                }
                6 => assert!(answer["data"].get("viewer").is_none(), "{first}"),
                _ => assert_eq!(answer["data"]["createCompany"]["name"], "Again"),
            }
        }
        // The directive the gateway uses once at start-up to reach the schema's parts is
        // unknown to clients.
        for _ in 0..2 {
            let r = app
                .gql()
                .query("{ apiVersion @gatewayProbe }", json!({}))
                .await;
            assert_eq!(r.status, 400);
            r.assert_error("BAD_USER_INPUT", None);
        }
        app.stop().await;
    }
);

both!(
    a_repeated_query_answers_byte_for_byte_as_its_first_run,
    |backend| async move {
        // The first run of a document builds async-graphql's values; once it is cached, its
        // plain objects write their JSON themselves (`api/src/graphql/json.rs`).
        let app = app::spawn_api_only(backend, |_| {}).await;
        let (company, ids) = seed(&app, 4, true).await;
        add_events(&app, &company, ids[0], 7).await;
        let queries = [
            // The dashboard's page, with the page cursors (not the events' live `cursor`,
            // which the sequencer may set between two requests).
            "query($c: ID!) { invitations(companyId: $c, first: 3) { totalCount edges { cursor
             node { id status createdAt events(first: 5) { edges { cursor node { id eventType
             occurredAt actor email detail invitationId } } pageInfo { hasNextPage
             endCursor } } } } pageInfo { hasNextPage endCursor } } }",
            // Every plain field of an invitation, beside loaded and nested ones.
            "query($c: ID!) { invitations(companyId: $c, first: 2) { edges { node { id
             invitationType status companyId connectionId allowedEmails expiresAt maxUses
             useCount remainingUses createdAt createdBy revokedAt revokedReason fulfilledAt
             remindBeforeExpirySeconds lockedFields __typename prefill { url country }
             company { id name } } } } }",
            // A field error inside the page (a page size out of range): reported, the rest
            // answered.
            "query($c: ID!) { invitations(companyId: $c, first: 2) { edges { node { id
             events(first: 500) { edges { node { id } } } status } } } }",
            // Fragments and aliases.
            "query($c: ID!) { invitations(companyId: $c, first: 2) { edges { node { ...F a: id }
             } } } fragment F on Invitation { status events(first: 2) { edges { node {
             eventType } } } }",
            // A repeated key, whose two selections async-graphql merges into one object (in
            // the order they complete, so only the values are compared).
            "query($c: ID!) { invitations(companyId: $c, first: 2) { totalCount }
             invitations(companyId: $c, first: 2) { edges { node { id } } } }",
        ];
        for (i, query) in queries.iter().enumerate() {
            let body = json!({ "query": query, "variables": { "c": company } });
            let first = raw_answer(&app, &body).await;
            let parsed: Value = serde_json::from_str(&first).unwrap();
            assert!(parsed["data"]["invitations"].is_object(), "{first}");
            for _ in 0..2 {
                let again = raw_answer(&app, &body).await;
                if i == 4 {
                    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), parsed);
                } else {
                    assert_eq!(again, first, "{query}");
                }
            }
        }
        // What the queries above answer: the events, the error, the merged selections.
        let body = |i: usize| json!({ "query": queries[i], "variables": { "c": company } });
        let page: Value = serde_json::from_str(&raw_answer(&app, &body(0)).await).unwrap();
        let events = &page["data"]["invitations"]["edges"][0]["node"]["events"];
        assert_eq!(events["edges"].as_array().unwrap().len(), 5, "{page}");
        assert_eq!(events["pageInfo"]["hasNextPage"], true);
        let failed: Value = serde_json::from_str(&raw_answer(&app, &body(2)).await).unwrap();
        assert_eq!(failed["errors"][0]["path"][4], "events", "{failed}");
        let node = &failed["data"]["invitations"]["edges"][0]["node"];
        assert_eq!(node["status"], "ACTIVE", "{failed}");
        assert!(node.get("events").is_none(), "{failed}");
        let merged: Value = serde_json::from_str(&raw_answer(&app, &body(4)).await).unwrap();
        assert_eq!(merged["data"]["invitations"]["totalCount"], 4, "{merged}");
        assert_eq!(
            merged["data"]["invitations"]["edges"]
                .as_array()
                .unwrap()
                .len(),
            2,
            "{merged}"
        );
        app.stop().await;
    }
);
