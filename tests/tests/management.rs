//! Invitation management over GraphQL (the organization's side): companies, sites, connections,
//! create / list / inspect / revoke / resend / bulk, idempotency, tenant isolation, limits.

use std::time::Duration;

use entity::entities::{email_deliveries, invitation_events, invitations};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tests::graphql::Gql;
use tests::pg::Backend;

use crate::app::{self, TestApp};
use crate::both;

const INVITATION_FIELDS: &str = "id invitationType status token invitationUrl companyId connectionId
    allowedEmails expiresAt maxUses useCount remainingUses createdAt createdBy revokedAt revokedReason
    remindBeforeExpirySeconds lockedFields
    prefill { datasourceId url country initialSites utilityTypes connectionOwnerEmail dataCollectionStartDate }
    company { id name displayName }
    events(first: 10) { edges { cursor node { id eventType actor email detail occurredAt } } pageInfo { hasNextPage } }
    createdConnections { id }
    deliveries { id recipient kind status messageId }";

async fn create_site(gql: &Gql, company: &str, name: &str) -> String {
    let r = gql
        .query(
            "mutation($c: ID!, $input: CreateSiteInput!) { createSite(companyId: $c, input: $input) { id companyId } }",
            json!({ "c": company, "input": { "name": name, "address": "1 Main St" } }),
        )
        .await;
    r.data()["createSite"]["id"].as_str().unwrap().to_owned()
}

async fn create_connection(gql: &Gql, company: &str, sites: &[&str]) -> String {
    let r = gql
        .query(
            "mutation($c: ID!, $input: ConnectionInput!) { createConnection(companyId: $c, input: $input) { id status siteIds utilityUsername } }",
            json!({ "c": company, "input": {
                "providerUrl": "https://power.example.com", "country": "DE",
                "utilityTypes": ["ELECTRICITY"], "siteIds": sites,
                "utilityUsername": "meter-owner", "utilityPassword": "s3cret-pass"
            } }),
        )
        .await;
    let c = &r.data()["createConnection"];
    assert_eq!(c["status"], "PENDING");
    assert_eq!(c["siteIds"].as_array().unwrap().len(), sites.len());
    c["id"].as_str().unwrap().to_owned()
}

async fn create_invitation(gql: &Gql, company: &str, input: Value) -> Value {
    let q = format!(
        "mutation($c: ID!, $input: InvitationInput!) {{ createContributorInvitation(companyId: $c, input: $input) {{ {INVITATION_FIELDS} }} }}"
    );
    let r = gql.query(&q, json!({ "c": company, "input": input })).await;
    r.data()["createContributorInvitation"].clone()
}

async fn invitation_count(app: &TestApp) -> u64 {
    invitations::Entity::find().count(&app.db).await.unwrap()
}

async fn event_count(app: &TestApp) -> u64 {
    invitation_events::Entity::find()
        .count(&app.db)
        .await
        .unwrap()
}

both!(contributor_invitation_round_trip, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Northwind").await;
    let site = create_site(&gql, &company, "HQ").await;
    let inv = create_invitation(
        &gql,
        &company,
        json!({
            "allowedEmails": [" Ann@Example.com ", "ann@example.com", "bob@example.com"],
            "expiresInSeconds": 86400, "maxUses": 2, "remindBeforeExpirySeconds": 3600,
            "prefill": { "url": "https://power.example.com", "country": "GB", "initialSites": [site],
                         "utilityTypes": ["ELECTRICITY", "GAS"], "connectionOwnerEmail": "Owner@Example.com",
                         "dataCollectionStartDate": "2024-01-01" },
            "lockedFields": ["COUNTRY", "INITIAL_SITES"]
        }),
    )
    .await;
    assert_eq!(inv["invitationType"], "CREATE_CONNECTION");
    assert_eq!(inv["status"], "ACTIVE");
    assert_eq!(
        inv["allowedEmails"],
        json!(["ann@example.com", "bob@example.com"])
    );
    assert_eq!(inv["maxUses"], 2);
    assert_eq!(inv["useCount"], 0);
    assert_eq!(inv["remainingUses"], 2);
    assert_eq!(inv["createdBy"], "test-key");
    assert_eq!(inv["prefill"]["initialSites"], json!([site]));
    assert_eq!(inv["prefill"]["connectionOwnerEmail"], "owner@example.com");
    assert_eq!(inv["prefill"]["dataCollectionStartDate"], "2024-01-01");
    assert_eq!(inv["lockedFields"], json!(["COUNTRY", "INITIAL_SITES"]));
    assert_eq!(inv["company"]["displayName"], "Northwind Ltd");
    let token = inv["token"].as_str().unwrap();
    assert!(token.len() >= 43);
    assert_eq!(inv["invitationUrl"], format!("{}/p/i/{token}", app.url));
    let events = inv["events"]["edges"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["node"]["eventType"], "CREATED");
    assert_eq!(events[0]["node"]["actor"], "test-key");
    // The database keeps only a hash and a sealed copy of the token.
    let row = invitations::Entity::find()
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(row.token_hash, token);
    assert!(!row.token_sealed.contains(token));

    // invitation(id) reads the same.
    let q = format!("query($id: ID!) {{ invitation(id: $id) {{ {INVITATION_FIELDS} }} }}");
    let again = gql.query(&q, json!({ "id": inv["id"] })).await;
    assert_eq!(again.data()["invitation"]["token"], inv["token"]);

    // Reconnect invitation for a connection; prefill is refused there.
    let connection = create_connection(&gql, &company, &[&site]).await;
    let q = format!(
        "mutation($c: ID!, $input: InvitationInput!) {{ createReconnectInvitation(connectionId: $c, input: $input) {{ {INVITATION_FIELDS} }} }}"
    );
    let r = gql
        .query(&q, json!({ "c": connection, "input": { "maxUses": 1 } }))
        .await;
    let re = &r.data()["createReconnectInvitation"];
    assert_eq!(re["invitationType"], "EDIT_CONNECTION");
    assert_eq!(re["connectionId"], json!(connection));
    assert_eq!(re["companyId"], json!(company));
    let r = gql
        .query(
            &q,
            json!({ "c": connection, "input": { "prefill": { "country": "DE" } } }),
        )
        .await;
    r.assert_error("BAD_USER_INPUT", Some("prefill"));
    app.stop().await;
});

both!(
    validation_errors_name_the_field_and_change_nothing,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let company = app::create_company(&gql, "Acme").await;
        let other_company = app::create_company(&gql, "Other").await;
        let foreign_site = create_site(&gql, &other_company, "Elsewhere").await;
        let q = "mutation($c: ID!, $input: InvitationInput!) { createContributorInvitation(companyId: $c, input: $input) { id } }";
        let cases: Vec<(Value, &str)> = vec![
            (json!({ "expiresInSeconds": 59 }), "expiresInSeconds"),
            (
                json!({ "expiresInSeconds": 999_999_999 }),
                "expiresInSeconds",
            ),
            (json!({ "maxUses": 0 }), "maxUses"),
            (json!({ "sendEmail": true }), "sendEmail"),
            (
                json!({ "allowedEmails": ["ok@example.com", "not-an-email"] }),
                "allowedEmails[1]",
            ),
            (
                json!({ "prefill": { "country": "Germany" } }),
                "prefill.country",
            ),
            (
                json!({ "prefill": { "initialSites": [foreign_site] } }),
                "prefill.initialSites[0]",
            ),
            (
                json!({ "prefill": { "initialSites": ["not-a-uuid"] } }),
                "prefill.initialSites[0]",
            ),
            (
                json!({ "prefill": { "dataCollectionStartDate": "01/02/2024" } }),
                "prefill.dataCollectionStartDate",
            ),
            (
                json!({ "prefill": { "connectionOwnerEmail": "nope" } }),
                "prefill.connectionOwnerEmail",
            ),
            (
                json!({ "remindBeforeExpirySeconds": 30 }),
                "remindBeforeExpirySeconds",
            ),
            (json!({ "idempotencyKey": "" }), "idempotencyKey"),
        ];
        for (input, field) in cases {
            let r = gql.query(q, json!({ "c": company, "input": input })).await;
            r.assert_error("BAD_USER_INPUT", Some(field));
        }
        // Unknown enum values and wrong types are request errors with a code.
        let r = gql
            .query(
                q,
                json!({ "c": company, "input": { "lockedFields": ["PASSWORD"] } }),
            )
            .await;
        r.assert_error("BAD_USER_INPUT", None);
        let r = gql.query(q, json!({ "c": "not-an-id", "input": {} })).await;
        r.assert_error("BAD_USER_INPUT", Some("companyId"));
        let r = gql
            .query(
                "mutation($input: CreateCompanyInput!) { createCompany(input: $input) { id } }",
                json!({ "input": { "name": "x".repeat(201) } }),
            )
            .await;
        r.assert_error("BAD_USER_INPUT", Some("name"));
        assert_eq!(
            invitation_count(&app).await,
            0,
            "a rejected mutation changed nothing"
        );
        assert_eq!(event_count(&app).await, 0);
        app.stop().await;
    }
);

both!(bulk_create_is_all_or_nothing, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Bulk Co").await;
    let q = "mutation($c: ID!, $inputs: [InvitationInput!]!, $k: String) {
        createContributorInvitations(companyId: $c, inputs: $inputs, idempotencyKey: $k) { id allowedEmails } }";
    let good: Vec<Value> = (0..5)
        .map(|i| json!({ "allowedEmails": [format!("user{i}@example.com")], "maxUses": 1 }))
        .collect();
    let r = gql
        .query(q, json!({ "c": company, "inputs": good, "k": "batch-1" }))
        .await;
    assert_eq!(
        r.data()["createContributorInvitations"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(invitation_count(&app).await, 5);
    // The same key and input: the same invitations, nothing new.
    let again = gql
        .query(q, json!({ "c": company, "inputs": good, "k": "batch-1" }))
        .await;
    assert_eq!(again.data(), r.data());
    assert_eq!(invitation_count(&app).await, 5);

    let mut bad = good.clone();
    bad[3] = json!({ "allowedEmails": ["fine@example.com", "broken"] });
    let r = gql.query(q, json!({ "c": company, "inputs": bad })).await;
    r.assert_error("BAD_USER_INPUT", Some("inputs[3].allowedEmails[1]"));
    let mut bad = good.clone();
    bad[4] = json!({ "expiresInSeconds": 10 });
    let r = gql.query(q, json!({ "c": company, "inputs": bad })).await;
    r.assert_error("BAD_USER_INPUT", Some("inputs[4].expiresInSeconds"));
    let too_many: Vec<Value> = (0..101).map(|_| json!({})).collect();
    let r = gql
        .query(q, json!({ "c": company, "inputs": too_many }))
        .await;
    r.assert_error("BAD_USER_INPUT", Some("inputs"));
    assert_eq!(
        invitation_count(&app).await,
        5,
        "failed batches created nothing"
    );
    app.stop().await;
});

both!(listing_pages_filters_and_counts, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Lister").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let emails = if i % 2 == 0 {
            json!(["even@example.com"])
        } else {
            json!([format!("odd_{i}@example.com")])
        };
        ids.push(
            create_invitation(
                &gql,
                &company,
                json!({ "allowedEmails": emails, "expiresInSeconds": 3600 }),
            )
            .await["id"]
                .clone(),
        );
    }
    // One expired at read time (still ACTIVE in the table), one revoked.
    invitations::Entity::update_many()
        .col_expr(
            invitations::Column::ExpiresAt,
            Expr::value(entity::now() - chrono::Duration::seconds(1)),
        )
        .filter(invitations::Column::Id.eq(ids[0].as_str().unwrap().parse::<uuid::Uuid>().unwrap()))
        .exec(&app.db)
        .await
        .unwrap();
    gql.query(
        "mutation($id: ID!) { revokeInvitation(id: $id) { status } }",
        json!({ "id": ids[1] }),
    )
    .await
    .data();

    let q = "query($c: ID!, $f: InvitationFilter, $first: Int, $after: String) {
        invitations(companyId: $c, filter: $f, first: $first, after: $after) {
          totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status } } } }";
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let r = gql
            .query(q, json!({ "c": company, "first": 3, "after": after }))
            .await;
        let page = &r.data()["invitations"];
        assert_eq!(page["totalCount"], 7);
        for e in page["edges"].as_array().unwrap() {
            seen.push(e["node"]["id"].clone());
        }
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let newest_first: Vec<Value> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "every invitation once, newest first");

    let count = |filter: Value| {
        let gql = gql.clone();
        let company = company.clone();
        async move {
            let r = gql
                .query(q, json!({ "c": company, "f": filter, "first": 100 }))
                .await;
            r.data()["invitations"]["totalCount"].as_u64().unwrap()
        }
    };
    assert_eq!(
        count(json!({ "status": "EXPIRED" })).await,
        1,
        "read-time expiry counts"
    );
    assert_eq!(count(json!({ "status": "REVOKED" })).await, 1);
    assert_eq!(count(json!({ "status": "ACTIVE" })).await, 5);
    assert_eq!(count(json!({ "email": "EVEN@example.com" })).await, 4);
    // `_` in an address is literal, not a LIKE wildcard.
    assert_eq!(count(json!({ "email": "odd_1@example.com" })).await, 1);
    assert_eq!(count(json!({ "email": "oddx1@example.com" })).await, 0);
    assert_eq!(
        count(json!({ "invitationType": "EDIT_CONNECTION" })).await,
        0
    );
    assert_eq!(
        count(json!({ "createdBefore": "2000-01-01T00:00:00Z" })).await,
        0
    );
    assert_eq!(
        count(json!({ "createdAfter": "2000-01-01T00:00:00Z" })).await,
        7
    );
    let r = gql.query(q, json!({ "c": company, "first": 101 })).await;
    r.assert_error("BAD_USER_INPUT", Some("first"));
    let r = gql
        .query(q, json!({ "c": company, "after": "garbage" }))
        .await;
    r.assert_error("BAD_USER_INPUT", Some("after"));
    app.stop().await;
});

both!(revoke_once_then_conflict, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Revoker").await;
    let inv = create_invitation(&gql, &company, json!({})).await;
    let q = "mutation($id: ID!, $k: String) { revokeInvitation(id: $id, reason: \"wrong person\", idempotencyKey: $k) { status revokedAt revokedReason } }";
    let r = gql.query(q, json!({ "id": inv["id"], "k": "rv-1" })).await;
    assert_eq!(r.data()["revokeInvitation"]["status"], "REVOKED");
    assert_eq!(
        r.data()["revokeInvitation"]["revokedReason"],
        "wrong person"
    );
    // Repeating the key answers the first result; a new call is a conflict naming the status.
    let again = gql.query(q, json!({ "id": inv["id"], "k": "rv-1" })).await;
    assert_eq!(again.data(), r.data());
    let conflict = gql.query(q, json!({ "id": inv["id"] })).await;
    conflict.assert_error("CONFLICT", None);
    assert!(
        conflict.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("REVOKED")
    );
    app.stop().await;
});

both!(concurrent_revokes_have_one_winner, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Racer").await;
    let inv = create_invitation(&gql, &company, json!({})).await;
    let q = "mutation($id: ID!) { revokeInvitation(id: $id) { status } }";
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let gql = gql.clone();
            let id = inv["id"].clone();
            tokio::spawn(async move { gql.query(q, json!({ "id": id })).await })
        })
        .collect();
    let mut ok = 0;
    let mut conflicts = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.error_code().as_deref() {
            None => ok += 1,
            Some("CONFLICT") => conflicts += 1,
            other => panic!("unexpected {other:?}: {}", r.body),
        }
    }
    assert_eq!((ok, conflicts), (1, 49));
    let revoked = invitation_events::Entity::find()
        .filter(invitation_events::Column::EventType.eq(entity::EventType::Revoked))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(revoked, 1);
    app.stop().await;
});

both!(resend_rules, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Resender").await;
    let inv = create_invitation(
        &gql,
        &company,
        json!({ "allowedEmails": ["a@example.com", "b@example.com"], "expiresInSeconds": 3600 }),
    )
    .await;
    let q = "mutation($id: ID!, $input: ResendInvitationInput) { resendInvitation(id: $id, input: $input) {
        status token expiresAt deliveries { recipient kind } events(first: 50) { edges { node { eventType detail } } } } }";
    // A subset: same link, one delivery.
    let r = gql.query(q, json!({ "id": inv["id"], "input": { "emails": ["B@example.com"], "idempotencyKey": "r1" } })).await;
    let out = &r.data()["resendInvitation"];
    assert_eq!(out["token"], inv["token"], "no new link unless asked");
    let resends: Vec<&Value> = out["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"] == "RESEND")
        .collect();
    assert_eq!(resends.len(), 1);
    assert_eq!(resends[0]["recipient"], "b@example.com");
    // A repeated key sends nothing new.
    gql.query(q, json!({ "id": inv["id"], "input": { "emails": ["B@example.com"], "idempotencyKey": "r1" } }))
        .await
        .data();
    let resend_rows = email_deliveries::Entity::find()
        .filter(email_deliveries::Column::Kind.eq(entity::DeliveryKind::Resend))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(resend_rows, 1);
    // Not on the list: refused.
    let r = gql
        .query(
            q,
            json!({ "id": inv["id"], "input": { "emails": ["c@example.com"] } }),
        )
        .await;
    r.assert_error("BAD_USER_INPUT", Some("emails[0]"));
    // Rotate: a new token, TOKEN_ROTATED logged.
    let r = gql
        .query(
            q,
            json!({ "id": inv["id"], "input": { "rotateToken": true } }),
        )
        .await;
    let rotated = &r.data()["resendInvitation"];
    assert_ne!(rotated["token"], inv["token"]);
    let types: Vec<&str> = rotated["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["eventType"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"TOKEN_ROTATED") && types.contains(&"RESENT"),
        "{types:?}"
    );

    // Expired: a conflict without extension; reactivated with one.
    invitations::Entity::update_many()
        .col_expr(
            invitations::Column::ExpiresAt,
            Expr::value(entity::now() - chrono::Duration::seconds(1)),
        )
        .exec(&app.db)
        .await
        .unwrap();
    let r = gql.query(q, json!({ "id": inv["id"] })).await;
    r.assert_error("CONFLICT", None);
    let r = gql
        .query(
            q,
            json!({ "id": inv["id"], "input": { "extendExpiresInSeconds": 7200 } }),
        )
        .await;
    let back = &r.data()["resendInvitation"];
    assert_eq!(back["status"], "ACTIVE");
    // Workers append EMAIL_SENT events meanwhile: look for the newest RESENT.
    let last = back["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["node"]["eventType"] == "RESENT")
        .unwrap();
    assert_eq!(last["node"]["detail"]["reactivated"], true);

    // Revoked: always a conflict. No allow-list: nobody to send to.
    gql.query(
        "mutation($id: ID!) { revokeInvitation(id: $id) { id } }",
        json!({ "id": inv["id"] }),
    )
    .await
    .data();
    let r = gql
        .query(
            q,
            json!({ "id": inv["id"], "input": { "extendExpiresInSeconds": 7200 } }),
        )
        .await;
    r.assert_error("CONFLICT", None);
    let open = create_invitation(&gql, &company, json!({})).await;
    let r = gql.query(q, json!({ "id": open["id"] })).await;
    r.assert_error("BAD_USER_INPUT", Some("emails"));
    app.stop().await;
});

both!(idempotent_create, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Idem").await;
    let a = create_invitation(
        &gql,
        &company,
        json!({ "maxUses": 3, "idempotencyKey": "k-1" }),
    )
    .await;
    let b = create_invitation(
        &gql,
        &company,
        json!({ "maxUses": 3, "idempotencyKey": "k-1" }),
    )
    .await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(invitation_count(&app).await, 1);
    let q = "mutation($c: ID!, $input: InvitationInput!) { createContributorInvitation(companyId: $c, input: $input) { id } }";
    let r = gql
        .query(
            q,
            json!({ "c": company, "input": { "maxUses": 4, "idempotencyKey": "k-1" } }),
        )
        .await;
    r.assert_error("CONFLICT", None);
    // Concurrent requests with one key create one invitation.
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let gql = gql.clone();
            let company = company.clone();
            tokio::spawn(async move {
                gql.query(
                    q,
                    json!({ "c": company, "input": { "idempotencyKey": "k-race" } }),
                )
                .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let r = t.await.unwrap();
        ids.insert(
            r.data()["createContributorInvitation"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(invitation_count(&app).await, 2);
    app.stop().await;
});

both!(tenants_cannot_see_each_other, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Mine").await;
    let site = create_site(&gql, &company, "Plant").await;
    let connection = create_connection(&gql, &company, &[&site]).await;
    let inv = create_invitation(
        &gql,
        &company,
        json!({ "allowedEmails": ["x@example.com"] }),
    )
    .await;
    let (_, other) = app.other_org().await;
    let vars =
        json!({ "company": company, "connection": connection, "inv": inv["id"], "site": site });
    let operations = [
        "query($company: ID!) { company(id: $company) { id } }",
        "query($connection: ID!) { connection(id: $connection) { id } }",
        "query($company: ID!) { connections(companyId: $company) { id } }",
        "query($inv: ID!) { invitation(id: $inv) { id } }",
        "query($company: ID!) { invitations(companyId: $company) { totalCount } }",
        "mutation($company: ID!) { createSite(companyId: $company, input: { name: \"x\" }) { id } }",
        "mutation($company: ID!) { createConnection(companyId: $company, input: { providerName: \"P\", utilityUsername: \"u\", utilityPassword: \"p\" }) { id } }",
        "mutation($company: ID!) { createContributorInvitation(companyId: $company, input: {}) { id } }",
        "mutation($company: ID!) { createContributorInvitations(companyId: $company, inputs: [{}]) { id } }",
        "mutation($connection: ID!) { createReconnectInvitation(connectionId: $connection, input: {}) { id } }",
        "mutation($inv: ID!) { revokeInvitation(id: $inv) { id } }",
        "mutation($inv: ID!) { resendInvitation(id: $inv) { id } }",
        "mutation($company: ID!) { createCompanyMagicLink(companyId: $company) { magicLinkUrl } }",
        "mutation($connection: ID!) { createConnectionEditLink(connectionId: $connection) { magicLinkUrl } }",
        "mutation($company: ID!) { rotateCompanyMagicLink(companyId: $company) { magicLinkUrl } }",
        "mutation($company: ID!) { revokeCompanyMagicLink(companyId: $company) }",
        "mutation($connection: ID!) { rotateConnectionEditLink(connectionId: $connection) { magicLinkUrl } }",
        "mutation($connection: ID!) { revokeConnectionEditLink(connectionId: $connection) }",
    ];
    for op in operations {
        let r = other.query(op, vars.clone()).await;
        r.assert_error("NOT_FOUND", None);
    }
    // The other organization's own lists are empty.
    let r = other.query("{ companies { id } }", json!({})).await;
    assert_eq!(r.data()["companies"], json!([]));
    // A foreign site in our own prefill is refused as an input error, not leaked.
    let (other_org, _) = (app.other_org().await.0, ());
    let foreign_company = crate::app::insert_company(&app.db, other_org, "Theirs").await;
    let foreign_site =
        entity::company::create_site(&app.db, other_org, foreign_company.id, "S", None)
            .await
            .unwrap();
    let q = "mutation($c: ID!, $input: InvitationInput!) { createContributorInvitation(companyId: $c, input: $input) { id } }";
    let r = gql
        .query(
            q,
            json!({ "c": company, "input": { "prefill": { "initialSites": [foreign_site.id] } } }),
        )
        .await;
    r.assert_error("BAD_USER_INPUT", Some("prefill.initialSites[0]"));
    // Without a key, nothing.
    app.anon()
        .query("{ companies { id } }", json!({}))
        .await
        .assert_error("UNAUTHENTICATED", None);
    app.stop().await;
});

both!(
    send_email_writes_the_outbox_in_the_same_transaction,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let company = app::create_company(&gql, "Mailer").await;
        let inv = create_invitation(
        &gql,
        &company,
        json!({ "allowedEmails": ["a@example.com", "b@example.com", "c@example.com"], "sendEmail": true }),
    )
    .await;
        let deliveries = inv["deliveries"].as_array().unwrap();
        assert_eq!(deliveries.len(), 3);
        assert!(deliveries.iter().all(|d| d["kind"] == "INVITATION"));
        let ids: std::collections::HashSet<&str> = deliveries
            .iter()
            .map(|d| d["messageId"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 3, "one Message-ID per delivery");
        // The worker sends them through the real SMTP server.
        let messages = app.wait_for_mail(3, Duration::from_secs(20)).await;
        let mut to: Vec<String> = messages.iter().flat_map(|m| m.to.clone()).collect();
        to.sort();
        assert_eq!(to, ["a@example.com", "b@example.com", "c@example.com"]);
        let _ = app.backend == Backend::Postgres;
        app.stop().await;
    }
);

both!(
    listing_costs_a_bounded_number_of_statements,
    |backend| async move {
        // No workers: only the requests below run SQL.
        let app = app::spawn_api_only(backend, |_| {}).await;
        let gql = app.gql();
        let company = app::create_company(&gql, "Counter").await;
        let inputs: Vec<Value> = (0..100)
            .map(|i| json!({ "allowedEmails": [format!("p{i}@example.com")], "maxUses": 1 }))
            .collect();
        gql.query(
        "mutation($c: ID!, $inputs: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $inputs) { id } }",
        json!({ "c": company, "inputs": inputs }),
    )
    .await
    .data();
        let q = "query($c: ID!, $first: Int) { invitations(companyId: $c, first: $first) { totalCount edges { node {
        id status invitationUrl company { id name } events(first: 5) { edges { node { eventType } } }
        createdConnections { id } deliveries { id } } } } }";
        let mut costs = Vec::new();
        for first in [10, 100] {
            let (r, cost) = app
                .fewest_statements(&gql, q, json!({ "c": company, "first": first }))
                .await;
            assert_eq!(
                r.data()["invitations"]["edges"].as_array().unwrap().len(),
                first
            );
            costs.push(cost);
        }
        // The page with its count, then one query per nested field (company, events,
        // connections, deliveries) whatever the page size.
        assert!(
            costs.iter().all(|&c| c <= 5),
            "statements per page: {costs:?}"
        );
        assert_eq!(
            costs[0], costs[1],
            "cost does not grow with the page size: {costs:?}"
        );
        app.stop().await;
    }
);
