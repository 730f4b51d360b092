//! The REST API: every endpoint, bare and under `/v2.2`, its error statuses, tenant isolation,
//! idempotency, and that it is the same invitation and the same events as over GraphQL.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use tests::graphql::Gql;
use tests::poll::eventually;
use tests::rest::{Rest, RestResponse};
use tests::webhook_receiver::{Receiver, Reply};
use tests::ws::WsClient;

use crate::app::{self, TestApp};
use crate::both;

const GQL_INVITATION: &str = "id token invitationType status invitationUrl companyId connectionId
    allowedEmails expiresAt maxUses useCount createdAt revokedAt
    prefill { datasourceId url country initialSites utilityTypes connectionOwnerEmail dataCollectionStartDate }
    createdConnections { id providerName status createdAt }
    events(first: 100) { edges { node { id cursor eventType actor email connectionId occurredAt detail } } }";

fn rest(app: &TestApp) -> Rest {
    Rest::new(&app.url, Some(&app.api_key))
}

async fn create_site(gql: &Gql, company: &str) -> String {
    let r = gql
        .query(
            "mutation($c: ID!) { createSite(companyId: $c, input: { name: \"HQ\" }) { id } }",
            json!({ "c": company }),
        )
        .await;
    r.data()["createSite"]["id"].as_str().unwrap().to_owned()
}

async fn gql_invitation(gql: &Gql, id: &str) -> Value {
    let q = format!("query($id: ID!) {{ invitation(id: $id) {{ {GQL_INVITATION} }} }}");
    gql.query(&q, json!({ "id": id })).await.data()["invitation"].clone()
}

fn instant(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .map(|s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

/// The REST invitation and the GraphQL one are the same object, field by field.
fn assert_same_invitation(rest: &Value, gql: &Value) {
    for field in [
        "id",
        "token",
        "invitationType",
        "status",
        "invitationUrl",
        "companyId",
        "connectionId",
        "allowedEmails",
        "maxUses",
        "useCount",
        "prefill",
    ] {
        assert_eq!(rest[field], gql[field], "{field}");
    }
    for field in ["expiresAt", "createdAt", "revokedAt"] {
        assert_eq!(instant(&rest[field]), instant(&gql[field]), "{field}");
    }
    let created: Vec<&Value> = rest["createdConnections"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    let gql_created = gql["createdConnections"].as_array().unwrap();
    assert_eq!(created.len(), gql_created.len());
    for (r, g) in created.iter().zip(gql_created) {
        assert_eq!(r["id"], g["id"]);
        assert_eq!(r["datasourceName"], g["providerName"]);
        assert_eq!(r["status"], g["status"]);
        assert_eq!(instant(&r["created"]), instant(&g["createdAt"]));
    }
}

/// The detail's events and GraphQL's `events` are the same log, oldest first.
fn assert_same_events(rest: &Value, gql: &Value) {
    let events = rest["events"].as_array().unwrap();
    let gql_events = gql["events"]["edges"].as_array().unwrap();
    assert_eq!(events.len(), gql_events.len());
    for (r, edge) in events.iter().zip(gql_events) {
        let g = &edge["node"];
        assert_eq!(r["id"], g["id"]);
        // A PostgreSQL event gets its cursor just after commit: equal once both reads have it.
        if !r["cursor"].is_null() && !g["cursor"].is_null() {
            assert_eq!(r["cursor"], g["cursor"]);
        }
        for field in ["eventType", "actor", "email", "connectionId", "detail"] {
            assert_eq!(r[field], g[field], "{field}");
        }
        assert_eq!(instant(&r["occurredAt"]), instant(&g["occurredAt"]));
    }
}

fn event_types(detail: &Value) -> Vec<String> {
    detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect()
}

both!(
    rest_invitation_is_the_graphql_invitation,
    |backend| async move {
        let app = app::spawn(backend).await;
        let (gql, rest) = (app.gql(), rest(&app));
        let company = app::create_company(&gql, "Northwind").await;
        let site = create_site(&gql, &company).await;
        let created = rest
        .post(
            &format!("/invitation/company/{company}"),
            &json!({
                "allowedEmails": [" Ann@Example.com ", "ann@example.com"],
                "expiresInSeconds": 86400, "maxUses": 2, "sendEmail": true,
                "prefill": { "datasourceId": "ds-1", "country": "GB", "initialSites": [site],
                             "utilityTypes": ["ELECTRICITY", "GAS"], "connectionOwnerEmail": "Owner@Example.com",
                             "dataCollectionStartDate": "2024-01-01" }
            }),
        )
        .await;
        assert_eq!(created.status, 201, "{:?}", created.body);
        let inv = &created.body;
        assert_eq!(inv["invitationType"], "CREATE_CONNECTION");
        assert_eq!(inv["status"], "ACTIVE");
        assert_eq!(inv["allowedEmails"], json!(["ann@example.com"]));
        assert_eq!(inv["maxUses"], 2);
        assert_eq!(inv["useCount"], 0);
        assert_eq!(inv["connectionId"], Value::Null);
        assert_eq!(inv["prefill"]["initialSites"], json!([site]));
        assert_eq!(inv["prefill"]["connectionOwnerEmail"], "owner@example.com");
        assert_eq!(inv["prefill"]["dataCollectionStartDate"], "2024-01-01");
        let token = inv["token"].as_str().unwrap();
        assert_eq!(inv["invitationUrl"], format!("{}/p/i/{token}", app.url));
        let created_at = instant(&inv["createdAt"]).unwrap();
        assert_eq!(
            instant(&inv["expiresAt"]).unwrap(),
            created_at + chrono::Duration::seconds(86400)
        );
        let id = inv["id"].as_str().unwrap().to_owned();

        // The same email goes out as for a GraphQL create, and its event is in both logs.
        let mail = app.wait_for_mail(1, Duration::from_secs(20)).await;
        assert_eq!(mail[0].to, vec!["ann@example.com".to_owned()]);
        let detail = eventually(
            "EMAIL_SENT in the REST log",
            Duration::from_secs(20),
            || async {
                let d = rest.get(&format!("/invitation/{id}")).await;
                event_types(&d.body)
                    .contains(&"EMAIL_SENT".to_owned())
                    .then_some(d)
            },
        )
        .await;
        assert_eq!(detail.status, 200);
        assert_eq!(event_types(&detail.body), ["CREATED", "EMAIL_SENT"]);
        assert_eq!(detail.body["events"][0]["actor"], "test-key");
        assert_eq!(detail.body["eventsNextCursor"], Value::Null);
        let over_gql = gql_invitation(&gql, &id).await;
        assert_same_invitation(&detail.body, &over_gql);
        assert_same_invitation(inv, &over_gql);
        assert_same_events(&detail.body, &over_gql);

        // A recipient's submit shows the same in both: use count, status, created connection.
        let single = rest
            .post(
                &format!("/invitation/company/{company}"),
                &json!({ "maxUses": 1 }),
            )
            .await;
        let single_id = single.body["id"].as_str().unwrap();
        let submitted = app
        .anon()
        .query(
            "mutation($t: String!, $i: ConnectionInput!) { submitInvitation(token: $t, input: $i) { connectionId } }",
            json!({ "t": single.body["token"], "i": app::details("ann") }),
        )
        .await;
        let connection = submitted.data()["submitInvitation"]["connectionId"].clone();
        let used = rest.get(&format!("/invitation/{single_id}")).await;
        assert_eq!(used.body["status"], "FULFILLED");
        assert_eq!(used.body["useCount"], 1);
        assert_eq!(used.body["createdConnections"][0]["id"], connection);
        assert_eq!(used.body["createdConnections"][0]["status"], "PENDING");
        assert_eq!(
            event_types(&used.body),
            ["CREATED", "SUBMITTED", "FULFILLED"]
        );
        let used_gql = gql_invitation(&gql, single_id).await;
        assert_same_invitation(&used.body, &used_gql);
        assert_same_events(&used.body, &used_gql);

        // The versioned path serves the same invitation.
        let versioned = rest.get(&format!("/v2.2/invitation/{id}")).await;
        assert_eq!(versioned.status, 200);
        assert_same_invitation(&versioned.body, &over_gql);

        // Events page through `eventsLimit` / `eventsAfter`, oldest first.
        let first = rest.get(&format!("/invitation/{id}?eventsLimit=1")).await;
        assert_eq!(event_types(&first.body), ["CREATED"]);
        let cursor = first.body["eventsNextCursor"].as_str().unwrap().to_owned();
        let rest_of = rest
            .get(&format!(
                "/invitation/{id}?eventsLimit=1&eventsAfter={cursor}"
            ))
            .await;
        assert_eq!(event_types(&rest_of.body), ["EMAIL_SENT"]);
        assert_eq!(rest_of.body["eventsNextCursor"], Value::Null);
        app.stop().await;
    }
);

both!(
    rest_reconnect_and_list_pages_and_filters,
    |backend| async move {
        let app = app::spawn(backend).await;
        let (gql, rest) = (app.gql(), rest(&app));
        let company = app::create_company(&gql, "Northwind").await;
        let connection = app::gridco_connection(&gql, &company, false).await;
        let reconnect = rest
            .post(
                &format!("/v2.2/invitation/connection/{connection}"),
                &json!({ "allowedEmails": ["bob@example.com"], "maxUses": 1 }),
            )
            .await;
        assert_eq!(reconnect.status, 201, "{:?}", reconnect.body);
        assert_eq!(reconnect.body["invitationType"], "EDIT_CONNECTION");
        assert_eq!(reconnect.body["connectionId"], connection);
        assert_eq!(reconnect.body["companyId"], company);
        assert_eq!(reconnect.body["prefill"]["utilityTypes"], json!([]));
        // An empty body means all defaults.
        let plain = rest
            .send(
                Method::POST,
                &format!("/invitation/company/{company}"),
                None,
                &[],
            )
            .await;
        assert_eq!(plain.status, 201, "{:?}", plain.body);
        assert_eq!(plain.body["maxUses"], Value::Null);
        assert_eq!(plain.body["expiresAt"], Value::Null);
        let revoked = rest
            .post(&format!("/invitation/company/{company}"), &json!({}))
            .await;
        let revoked_id = revoked.body["id"].as_str().unwrap().to_owned();
        let r = rest
            .post(
                &format!("/invitation/{revoked_id}/revoke"),
                &json!({ "reason": "sent by mistake" }),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["status"], "REVOKED");
        assert!(r.body["revokedAt"].is_string());

        // Newest first, a page at a time.
        let ids = |page: &RestResponse| -> Vec<String> {
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let list = format!("/invitation/company/{company}");
        let page1 = rest.get(&format!("{list}?limit=2")).await;
        assert_eq!(page1.status, 200);
        assert_eq!(page1.body["totalCount"], 3);
        assert_eq!(
            ids(&page1),
            [
                revoked_id.clone(),
                plain.body["id"].as_str().unwrap().to_owned()
            ]
        );
        let cursor = page1.body["nextCursor"].as_str().unwrap();
        let page2 = rest.get(&format!("{list}?limit=2&cursor={cursor}")).await;
        assert_eq!(
            ids(&page2),
            [reconnect.body["id"].as_str().unwrap().to_owned()]
        );
        assert_eq!(page2.body["nextCursor"], Value::Null);
        // The GraphQL list hands out the same cursors.
        let over_gql = gql
        .query(
            "query($c: ID!) { invitations(companyId: $c, first: 2) { pageInfo { endCursor } } }",
            json!({ "c": company }),
        )
        .await;
        assert_eq!(
            over_gql.data()["invitations"]["pageInfo"]["endCursor"],
            page1.body["nextCursor"]
        );

        // Filters: status, type, email, created range.
        let filtered = rest.get(&format!("{list}?status=REVOKED")).await;
        assert_eq!(ids(&filtered), [revoked_id]);
        assert_eq!(filtered.body["totalCount"], 1);
        let filtered = rest
            .get(&format!("{list}?invitationType=EDIT_CONNECTION"))
            .await;
        assert_eq!(
            ids(&filtered),
            [reconnect.body["id"].as_str().unwrap().to_owned()]
        );
        let filtered = rest.get(&format!("{list}?email=BOB@example.com")).await;
        assert_eq!(filtered.body["totalCount"], 1);
        let created = plain.body["createdAt"].as_str().unwrap();
        let after = rest
            .send(
                Method::GET,
                &format!("{list}?createdAfter={}", created.replace('+', "%2B")),
                None,
                &[],
            )
            .await;
        assert_eq!(after.body["totalCount"], 2, "{:?}", after.body);
        let before = rest
            .get(&format!(
                "{list}?createdBefore={}",
                created.replace('+', "%2B")
            ))
            .await;
        assert_eq!(
            ids(&before),
            [reconnect.body["id"].as_str().unwrap().to_owned()]
        );

        // Bad parameters name themselves.
        rest.get(&format!("{list}?limit=0")).await.assert_error(
            400,
            "BAD_USER_INPUT",
            Some("limit"),
        );
        rest.get(&format!("{list}?cursor=nope")).await.assert_error(
            400,
            "BAD_USER_INPUT",
            Some("cursor"),
        );
        rest.get(&format!("{list}?status=SLEEPING"))
            .await
            .assert_error(400, "BAD_USER_INPUT", Some("query"));
        app.stop().await;
    }
);

both!(rest_revoke_resend_and_idempotency, |backend| async move {
    let app = app::spawn(backend).await;
    let (gql, rest) = (app.gql(), rest(&app));
    let company = app::create_company(&gql, "Northwind").await;
    let path = format!("/invitation/company/{company}");
    let body = json!({ "allowedEmails": ["ann@example.com"], "maxUses": 1 });
    let key = [("Idempotency-Key", "create-1")];
    let first = rest.send(Method::POST, &path, Some(&body), &key).await;
    let again = rest.send(Method::POST, &path, Some(&body), &key).await;
    assert_eq!(first.status, 201);
    assert_eq!(again.status, 201);
    assert_eq!(first.body, again.body);
    // The same key over GraphQL is the same request: the same invitation comes back.
    let over_gql = gql
        .query(
            "mutation($c: ID!) { createContributorInvitation(companyId: $c, input: { allowedEmails: [\"ann@example.com\"], maxUses: 1, idempotencyKey: \"create-1\" }) { id } }",
            json!({ "c": company }),
        )
        .await;
    assert_eq!(
        over_gql.data()["createContributorInvitation"]["id"],
        first.body["id"]
    );
    let list = rest.get(&path).await;
    assert_eq!(list.body["totalCount"], 1);
    // The same key with another body is a conflict, and creates nothing.
    let other = json!({ "maxUses": 5 });
    rest.send(Method::POST, &path, Some(&other), &key)
        .await
        .assert_error(409, "CONFLICT", None);
    assert_eq!(rest.get(&path).await.body["totalCount"], 1);

    // Resend: same link, a RESENT event and a second email.
    let id = first.body["id"].as_str().unwrap().to_owned();
    let resend = format!("/invitation/{id}/resend");
    let resend_key = [("Idempotency-Key", "resend-1")];
    let resent = rest.send(Method::POST, &resend, None, &resend_key).await;
    assert_eq!(resent.status, 200, "{:?}", resent.body);
    assert_eq!(resent.body["token"], first.body["token"]);
    let repeated = rest.send(Method::POST, &resend, None, &resend_key).await;
    assert_eq!(repeated.status, 200);
    let detail = rest.get(&format!("/invitation/{id}")).await;
    let resends = event_types(&detail.body)
        .iter()
        .filter(|t| *t == "RESENT")
        .count();
    assert_eq!(resends, 1, "a repeated key resends nothing");
    // A rotated token is a new link.
    let rotated = rest.post(&resend, &json!({ "rotateToken": true })).await;
    assert_eq!(rotated.status, 200);
    assert_ne!(rotated.body["token"], first.body["token"]);
    rest.post(&resend, &json!({ "emails": ["eve@example.com"] }))
        .await
        .assert_error(400, "BAD_USER_INPUT", Some("emails[0]"));

    // Revoke: idempotent under a key, a conflict naming the status otherwise.
    let revoke = format!("/invitation/{id}/revoke");
    let revoke_key = [("Idempotency-Key", "revoke-1")];
    let revoked = rest.send(Method::POST, &revoke, None, &revoke_key).await;
    assert_eq!(revoked.status, 200);
    assert_eq!(revoked.body["status"], "REVOKED");
    let repeated = rest.send(Method::POST, &revoke, None, &revoke_key).await;
    assert_eq!(repeated.status, 200);
    assert_eq!(repeated.body["status"], "REVOKED");
    let conflict = rest.post(&revoke, &json!({})).await;
    conflict.assert_error(409, "CONFLICT", None);
    assert!(
        conflict.body["detail"]
            .as_str()
            .unwrap()
            .contains("REVOKED")
    );
    rest.post(&resend, &json!({}))
        .await
        .assert_error(409, "CONFLICT", None);
    let detail = rest.get(&format!("/invitation/{id}")).await;
    let revokes = event_types(&detail.body)
        .iter()
        .filter(|t| *t == "REVOKED")
        .count();
    assert_eq!(revokes, 1);
    app.stop().await;
});

both!(rest_errors_and_tenant_isolation, |backend| async move {
    let app = app::spawn_with(backend, |env| {
        env.insert("EMAIL_ORGANIZATION_HOURLY_LIMIT".into(), "1".into());
        env.insert("GRAPHQL_MAX_BODY_BYTES".into(), "4096".into());
    })
    .await;
    let (gql, rest) = (app.gql(), rest(&app));
    let company = app::create_company(&gql, "Northwind").await;
    let connection = app::gridco_connection(&gql, &company, false).await;
    let created = rest
        .post(&format!("/invitation/company/{company}"), &json!({}))
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let site = create_site(&gql, &company).await;

    // Every endpoint, as (method, path with this organization's ids).
    let endpoints = [
        (Method::POST, format!("/invitation/company/{company}")),
        (Method::GET, format!("/invitation/company/{company}")),
        (Method::POST, format!("/invitation/connection/{connection}")),
        (Method::GET, format!("/invitation/{id}")),
        (Method::POST, format!("/invitation/{id}/revoke")),
        (Method::POST, format!("/invitation/{id}/resend")),
        (Method::GET, format!("/connection/company/{company}/link")),
        (Method::POST, format!("/connection/company/{company}/link")),
        (Method::POST, format!("/company/{company}/connection/link")),
        (Method::GET, format!("/connection/{connection}")),
        (Method::POST, format!("/connection/{connection}")),
    ];
    let anonymous = Rest::new(&app.url, None);
    let bad_key = Rest::new(&app.url, Some("igw_not_a_key"));
    let org = entity::organization::create(&app.db, "Other Org")
        .await
        .unwrap();
    let other_key = entity::organization::create_api_key(&app.db, org.id, "other")
        .await
        .unwrap();
    let other = Rest::new(&app.url, Some(&other_key.key));
    for (method, path) in &endpoints {
        for prefix in ["", "/v2.2"] {
            let path = format!("{prefix}{path}");
            for client in [&anonymous, &bad_key] {
                client
                    .send(method.clone(), &path, None, &[])
                    .await
                    .assert_error(401, "UNAUTHENTICATED", None);
            }
            // Another organization's ids are not found, whatever the endpoint.
            other
                .send(method.clone(), &path, None, &[])
                .await
                .assert_error(404, "NOT_FOUND", None);
        }
    }
    // Nothing changed for the owner.
    let detail = rest.get(&format!("/invitation/{id}")).await;
    assert_eq!(detail.body["status"], "ACTIVE");
    assert_eq!(event_types(&detail.body), ["CREATED"]);
    // Unknown ids are 404, malformed ones 400 naming the parameter.
    let unknown = uuid::Uuid::now_v7();
    rest.get(&format!("/invitation/{unknown}"))
        .await
        .assert_error(404, "NOT_FOUND", None);
    rest.post(&format!("/invitation/connection/{unknown}"), &json!({}))
        .await
        .assert_error(404, "NOT_FOUND", None);
    rest.get("/invitation/not-a-uuid").await.assert_error(
        400,
        "BAD_USER_INPUT",
        Some("invitationId"),
    );

    // Validation: the GraphQL rules and field names.
    let create = format!("/invitation/company/{company}");
    rest.post(&create, &json!({ "maxUses": 0 }))
        .await
        .assert_error(400, "BAD_USER_INPUT", Some("maxUses"));
    rest.post(
        &create,
        &json!({ "allowedEmails": ["a@example.com", "nope"] }),
    )
    .await
    .assert_error(400, "BAD_USER_INPUT", Some("allowedEmails[1]"));
    rest.post(&create, &json!({ "sendEmail": true }))
        .await
        .assert_error(400, "BAD_USER_INPUT", Some("sendEmail"));
    rest.post(
        &create,
        &json!({ "prefill": { "initialSites": [unknown.to_string()] } }),
    )
    .await
    .assert_error(400, "BAD_USER_INPUT", Some("prefill.initialSites[0]"));
    rest.post(
        &create,
        &json!({ "prefill": { "dataCollectionStartDate": "yesterday" } }),
    )
    .await
    .assert_error(
        400,
        "BAD_USER_INPUT",
        Some("prefill.dataCollectionStartDate"),
    );
    rest.post(&create, &json!({ "maxUses": "many" }))
        .await
        .assert_error(400, "BAD_USER_INPUT", Some("body"));
    // A raw body of the given media type, sent to the create operation.
    let raw = |media_type: &'static str, body: &'static str| {
        reqwest::Client::new()
            .post(format!("{}{create}", app.url))
            .header("x-api-key", &app.api_key)
            .header("content-type", media_type)
            .body(body)
            .send()
    };
    // Whitespace alone is not a JSON document, nor an empty body (Schemathesis found this one).
    let blank = raw("application/json", "\n").await.unwrap();
    assert_eq!(blank.status().as_u16(), 400);
    let blank: Value = blank.json().await.unwrap();
    assert_eq!(blank["code"], "BAD_USER_INPUT", "{blank}");
    // A struct's fields as an array are not an object (Schemathesis found this one).
    rest.post(
        &format!("/company/{company}/connection/link"),
        &json!([null]),
    )
    .await
    .assert_error(400, "BAD_USER_INPUT", Some("body"));
    rest.post(
        &format!("/company/{company}/connection/link"),
        &json!({ "sites": [unknown] }),
    )
    .await
    .assert_error(400, "BAD_USER_INPUT", Some("sites[0]"));
    // Media type and size.
    let form = raw("application/x-www-form-urlencoded", "maxUses=1")
        .await
        .unwrap();
    assert_eq!(form.status().as_u16(), 415);
    let big = json!({ "allowedEmails": vec!["someone@example.com"; 400] });
    rest.post(&create, &big)
        .await
        .assert_error(413, "BAD_USER_INPUT", None);
    // The organization's email quota (1 per hour here): 429 with Retry-After, nothing created.
    let before = rest.get(&create).await.body["totalCount"].clone();
    let over = rest
        .post(
            &create,
            &json!({ "allowedEmails": ["a@example.com", "b@example.com"], "sendEmail": true }),
        )
        .await;
    over.assert_error(429, "RATE_LIMITED", None);
    let retry_after: u64 = over.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);
    assert_eq!(over.body["retryAfter"], retry_after);
    assert_eq!(rest.get(&create).await.body["totalCount"], before);
    // A site of this company is fine for the legacy link.
    let link = rest
        .post(
            &format!("/company/{company}/connection/link"),
            &json!({ "sites": [site] }),
        )
        .await;
    assert_eq!(link.status, 200, "{:?}", link.body);
    app.stop().await;
});

both!(rest_legacy_magic_links_are_graphqls, |backend| async move {
    let app = app::spawn(backend).await;
    let (gql, rest) = (app.gql(), rest(&app));
    let company = app::create_company(&gql, "Northwind").await;
    let connection = app::gridco_connection(&gql, &company, true).await;
    let over_gql = gql
        .query(
            "mutation($c: ID!) { createCompanyMagicLink(companyId: $c) { publicCompanyId companyMagicLinkSecret magicLinkUrl } }",
            json!({ "c": company }),
        )
        .await;
    let link = &over_gql.data()["createCompanyMagicLink"];
    for (method, path) in [
        (Method::GET, format!("/connection/company/{company}/link")),
        (
            Method::POST,
            format!("/v2.2/connection/company/{company}/link"),
        ),
        (Method::POST, format!("/company/{company}/connection/link")),
    ] {
        let r = rest.send(method, &path, None, &[]).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(&r.body, link, "{path}");
    }
    let page = reqwest::get(link["magicLinkUrl"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);

    let edit = rest.get(&format!("/connection/{connection}")).await;
    assert_eq!(edit.status, 200, "{:?}", edit.body);
    assert_eq!(edit.body["id"], connection);
    assert_eq!(edit.body["companyId"], company);
    assert_eq!(edit.body["status"], "PENDING");
    assert_eq!(edit.body["datasourceName"], "Gridco");
    assert_eq!(edit.body["utilityUsername"], "old");
    assert!(edit.body.get("utilityPassword").is_none());
    let over_gql = gql
        .query(
            "mutation($c: ID!) { createConnectionEditLink(connectionId: $c) { publicCompanyId connectionMagicLinkSecret magicLinkUrl } }",
            json!({ "c": connection }),
        )
        .await;
    let edit_link = &over_gql.data()["createConnectionEditLink"];
    for field in [
        "publicCompanyId",
        "connectionMagicLinkSecret",
        "magicLinkUrl",
    ] {
        assert_eq!(edit.body[field], edit_link[field], "{field}");
    }
    let again = rest
        .post(&format!("/v2.2/connection/{connection}"), &json!({}))
        .await;
    assert_eq!(
        again.body["connectionMagicLinkSecret"],
        edit.body["connectionMagicLinkSecret"]
    );
    // Issuing is recorded in the company's legacy-link log, once per link.
    let events = gql
        .query(
            "query($c: ID!) { company(id: $c) { magicLinkEvents { edges { node { linkType eventType actor } } } } }",
            json!({ "c": company }),
        )
        .await;
    let events = events.data()["company"]["magicLinkEvents"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(events.len(), 2, "{events:?}");
    app.stop().await;
});

/// The document is served, is OpenAPI 3.1, marks the legacy operations deprecated, and is the
/// committed `api/openapi.json`.
#[tokio::test]
async fn openapi_document_is_served() {
    let app = app::spawn(tests::pg::Backend::Sqlite).await;
    let doc = Rest::new(&app.url, None).get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert_eq!(
        doc.headers["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(doc.body["openapi"], "3.1.0");
    let committed: Value = serde_json::from_str(include_str!("../../api/openapi.json")).unwrap();
    assert_eq!(doc.body, committed);
    let paths = doc.body["paths"].as_object().unwrap();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let legacy = path.starts_with("/connection") || path.starts_with("/company");
            assert_eq!(
                operation["deprecated"].as_bool().unwrap_or(false),
                legacy,
                "{method} {path}"
            );
        }
    }
    app.stop().await;
}

both!(
    rest_writes_are_published_live_and_as_webhooks,
    |backend| async move {
        let app = app::spawn_with(backend, |env| {
            env.insert("WEBHOOK_ALLOW_LOOPBACK".into(), "true".into());
        })
        .await;
        let (gql, rest) = (app.gql(), rest(&app));
        let receiver = Receiver::start(Reply::Status(200)).await;
        let registered = gql
        .query(
            "mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { endpoint { id } } }",
            json!({ "i": { "url": receiver.url, "eventTypes": ["invitation.created", "invitation.revoked"] } }),
        )
        .await;
        assert!(registered.errors().is_empty(), "{:?}", registered.errors());
        let company = app::create_company(&gql, "Northwind").await;
        let mut ws = WsClient::connect(&app.url).await;
        ws.init(&app.api_key).await.expect("connection_ack");
        ws.subscribe(
        "1",
        "subscription($c: ID!) { companyActivity(companyId: $c) { eventType invitationId actor } }",
        json!({ "c": company }),
    )
    .await;
        // Let the subscription register before the changes.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let created = rest
            .post(&format!("/invitation/company/{company}"), &json!({}))
            .await;
        let id = created.body["id"].as_str().unwrap().to_owned();
        let revoked = rest
            .post(&format!("/invitation/{id}/revoke"), &json!({}))
            .await;
        assert_eq!(revoked.status, 200);
        for expected in ["CREATED", "REVOKED"] {
            let event = ws.next_data(Duration::from_secs(20)).await["companyActivity"].clone();
            assert_eq!(event["eventType"], expected);
            assert_eq!(event["invitationId"], id.as_str());
            assert_eq!(event["actor"], "test-key");
        }
        for event_type in ["invitation.created", "invitation.revoked"] {
            let hooks = eventually(event_type, Duration::from_secs(30), || async {
                let hooks = receiver.of_type(event_type);
                (!hooks.is_empty()).then_some(hooks)
            })
            .await;
            assert_eq!(hooks.len(), 1, "{event_type}");
            assert_eq!(hooks[0].json()["data"]["invitationId"], id.as_str());
        }
        ws.close().await;
        app.stop().await;
    }
);
