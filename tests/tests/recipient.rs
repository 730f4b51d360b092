//! The recipient's side over HTTP only: public view, email gate, submit, reason codes, the hosted
//! page, rate limits and legacy magic links.

use std::time::Duration;

use entity::entities::{connections, invitation_events};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::app::{self, TestApp, details, invite};
use crate::both;

const SUBMIT: &str = "mutation($t: String!, $g: String, $i: ConnectionInput!) {
    submitInvitation(token: $t, grant: $g, input: $i) { connectionId invitationStatus } }";
const PUBLIC: &str = "query($t: String!) { publicInvitation(token: $t) { invitationType companyName
    emailVerificationRequired lockedFields prefill { country url utilityTypes initialSites } } }";

pub(crate) async fn events_of(app: &TestApp, invitation: &str, kind: entity::EventType) -> u64 {
    invitation_events::Entity::find()
        .filter(
            invitation_events::Column::InvitationId.eq(invitation.parse::<uuid::Uuid>().unwrap()),
        )
        .filter(invitation_events::Column::EventType.eq(kind))
        .count(&app.db)
        .await
        .unwrap()
}

both!(open_invitation_end_to_end, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let (id, token) = invite(
        &gql,
        &c,
        json!({ "maxUses": 2, "prefill": { "country": "FR" }, "lockedFields": ["COUNTRY"] }),
    )
    .await;
    let public = app.anon();

    // The bare GET serves the page but records no view; the page's script does.
    let page = reqwest::get(format!("{}/p/i/{token}", app.url))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("/p/assets/page.js") && !html.contains("https://"),
        "no third-party origin"
    );
    assert_eq!(events_of(&app, &id, entity::EventType::Viewed).await, 0);
    let js = reqwest::get(format!("{}/p/assets/page.js", app.url))
        .await
        .unwrap();
    assert_eq!(js.status(), 200);
    assert!(js.text().await.unwrap().contains("recordInvitationView"));
    public
        .query(
            "mutation($t: String!) { recordInvitationView(token: $t) }",
            json!({ "t": token }),
        )
        .await
        .data();
    assert_eq!(events_of(&app, &id, entity::EventType::Viewed).await, 1);

    let view = public.query(PUBLIC, json!({ "t": token })).await;
    let v = &view.data()["publicInvitation"];
    assert_eq!(v["companyName"], "Acme Co Ltd", "the display name");
    assert_eq!(v["invitationType"], "CREATE_CONNECTION");
    assert_eq!(v["emailVerificationRequired"], false);
    assert_eq!(v["lockedFields"], json!(["COUNTRY"]));
    assert!(!view.body.to_string().contains("allowedEmails"));

    // A locked field cannot be changed.
    let mut changed = details("holder");
    changed["country"] = json!("DE");
    public
        .query(SUBMIT, json!({ "t": token, "i": changed }))
        .await
        .assert_error("BAD_USER_INPUT", Some("country"));

    let r = public
        .query(SUBMIT, json!({ "t": token, "i": details("holder") }))
        .await;
    assert_eq!(r.data()["submitInvitation"]["invitationStatus"], "ACTIVE");
    let r = public
        .query(SUBMIT, json!({ "t": token, "i": details("holder") }))
        .await;
    assert_eq!(
        r.data()["submitInvitation"]["invitationStatus"],
        "FULFILLED"
    );
    let connection_id = r.data()["submitInvitation"]["connectionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = public
        .query(SUBMIT, json!({ "t": token, "i": details("holder") }))
        .await;
    r.assert_error("INVITATION_NOT_ACTIVE", None);
    assert_eq!(r.body["errors"][0]["extensions"]["reason"], "FULFILLED");

    // The organization sees the connection; the password is sealed and never returned.
    let q = "query($id: ID!) { invitation(id: $id) { status useCount createdConnections { id status country utilityUsername createdByInvitationId } } }";
    let r = gql.query(q, json!({ "id": id })).await;
    let inv = &r.data()["invitation"];
    assert_eq!(inv["useCount"], 2);
    assert_eq!(inv["status"], "FULFILLED");
    let created = inv["createdConnections"].as_array().unwrap();
    assert_eq!(created.len(), 2);
    assert!(
        created
            .iter()
            .all(|c| c["status"] == "PENDING" && c["country"] == "FR")
    );
    assert!(!r.body.to_string().contains("correct horse"));
    let row = connections::Entity::find_by_id(connection_id.parse::<uuid::Uuid>().unwrap())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    let sealed = row.password_sealed.unwrap();
    assert!(!sealed.contains("correct horse"));
    let keys = entity::crypto::Keyring::new(app::SECRET_KEY.as_bytes());
    assert_eq!(
        keys.open_string(&sealed, &entity::crypto::Slot::connection_password(row.id))
            .unwrap(),
        "correct horse battery staple"
    );
    assert_eq!(events_of(&app, &id, entity::EventType::Submitted).await, 2);
    assert_eq!(events_of(&app, &id, entity::EventType::Fulfilled).await, 1);
    // Used up: the page answers 410.
    assert_eq!(
        reqwest::get(format!("{}/p/i/{token}", app.url))
            .await
            .unwrap()
            .status(),
        410
    );
    app.stop().await;
});

both!(reason_coded_answers, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let public = app.anon();
    let c = app::create_company(&gql, "Acme Co").await;
    let (revoked_id, revoked) = invite(&gql, &c, json!({})).await;
    gql.query(
        "mutation($id: ID!) { revokeInvitation(id: $id) { id } }",
        json!({ "id": revoked_id }),
    )
    .await
    .data();
    let (expired_id, expired) = invite(
        &gql,
        &c,
        json!({ "expiresInSeconds": 60, "allowedEmails": ["late@example.com"] }),
    )
    .await;
    entity::entities::invitations::Entity::update_many()
        .col_expr(
            entity::entities::invitations::Column::ExpiresAt,
            Expr::value(entity::now() - chrono::Duration::seconds(1)),
        )
        .filter(
            entity::entities::invitations::Column::Id.eq(expired_id.parse::<uuid::Uuid>().unwrap()),
        )
        .exec(&app.db)
        .await
        .unwrap();
    for (token, reason) in [(&revoked, "REVOKED"), (&expired, "EXPIRED")] {
        let r = public.query(PUBLIC, json!({ "t": token })).await;
        r.assert_error("INVITATION_NOT_ACTIVE", None);
        assert_eq!(r.body["errors"][0]["extensions"]["reason"], reason);
        let page = reqwest::get(format!("{}/p/i/{token}", app.url))
            .await
            .unwrap();
        assert_eq!(page.status(), 410);
    }
    let r = public.query(PUBLIC, json!({ "t": "no-such-token" })).await;
    r.assert_error("NOT_FOUND", None);
    assert_eq!(
        reqwest::get(format!("{}/p/i/no-such-token", app.url))
            .await
            .unwrap()
            .status(),
        404
    );

    // From the expired page: a listed address asks for a new link; others leave no trace.
    let renew =
        "mutation($t: String!, $e: String!) { requestInvitationRenewal(token: $t, email: $e) }";
    assert_eq!(
        public
            .query(renew, json!({ "t": expired, "e": "LATE@example.com" }))
            .await
            .data()["requestInvitationRenewal"],
        true
    );
    assert_eq!(
        public
            .query(renew, json!({ "t": expired, "e": "stranger@example.com" }))
            .await
            .data()["requestInvitationRenewal"],
        true
    );
    assert_eq!(
        events_of(&app, &expired_id, entity::EventType::RenewalRequested).await,
        1
    );
    app.stop().await;
});

/// The 6-digit code of the newest verification email to `to`.
pub(crate) fn code_in(messages: &[tests::smtp::Captured], to: &str) -> Option<String> {
    messages.iter().rev().filter(|m| m.is_to(to)).find_map(|m| {
        let text = m.mail().text()?;
        text.split(|c: char| !c.is_ascii_digit())
            .find(|w| w.len() == 6)
            .map(str::to_owned)
    })
}

both!(email_gate_with_codes, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let public = app.anon();
    let c = app::create_company(&gql, "Acme Co").await;
    let (id, token) = invite(&gql, &c, json!({ "allowedEmails": ["ann@example.com"] })).await;
    let request =
        "mutation($t: String!, $e: String!) { requestEmailVerification(token: $t, email: $e) }";
    // The same answer whether or not the address is listed; only the listed one gets mail.
    let listed = public
        .query(request, json!({ "t": token, "e": "Ann@Example.com" }))
        .await;
    let unlisted = public
        .query(request, json!({ "t": token, "e": "eve@example.com" }))
        .await;
    assert_eq!(listed.body, unlisted.body);
    let messages = app.wait_for_mail(1, Duration::from_secs(20)).await;
    assert!(messages.iter().all(|m| !m.is_to("eve@example.com")));
    let code = code_in(&messages, "ann@example.com").expect("a code in the email");
    // Submitting without a grant is refused.
    public
        .query(SUBMIT, json!({ "t": token, "i": details("holder") }))
        .await
        .assert_error("EMAIL_NOT_VERIFIED", None);
    let verify = "mutation($t: String!, $e: String!, $c: String!) { verifyEmail(token: $t, email: $e, code: $c) { grant email } }";
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let r = public
        .query(
            verify,
            json!({ "t": token, "e": "ann@example.com", "c": wrong }),
        )
        .await;
    r.assert_error("EMAIL_NOT_VERIFIED", None);
    assert_eq!(r.body["errors"][0]["extensions"]["reason"], "INVALID_CODE");
    let r = public
        .query(
            verify,
            json!({ "t": token, "e": "ann@example.com", "c": code }),
        )
        .await;
    let grant = r.data()["verifyEmail"]["grant"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = public
        .query(
            SUBMIT,
            json!({ "t": token, "g": grant, "i": details("holder") }),
        )
        .await;
    assert!(r.data()["submitInvitation"]["connectionId"].is_string());
    assert_eq!(
        events_of(&app, &id, entity::EventType::EmailVerified).await,
        1
    );
    assert_eq!(
        events_of(&app, &id, entity::EventType::EmailVerificationFailed).await,
        1
    );
    // A grant is bound to its invitation.
    let (_, other) = invite(&gql, &c, json!({ "allowedEmails": ["ann@example.com"] })).await;
    public
        .query(
            SUBMIT,
            json!({ "t": other, "g": grant, "i": details("holder") }),
        )
        .await
        .assert_error("EMAIL_NOT_VERIFIED", None);

    // Five wrong attempts void a code.
    public
        .query(request, json!({ "t": other, "e": "ann@example.com" }))
        .await
        .data();
    let messages = app.wait_for_mail(2, Duration::from_secs(20)).await;
    let code = code_in(&messages, "ann@example.com").unwrap();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        public
            .query(
                verify,
                json!({ "t": other, "e": "ann@example.com", "c": wrong }),
            )
            .await;
    }
    let r = public
        .query(
            verify,
            json!({ "t": other, "e": "ann@example.com", "c": code }),
        )
        .await;
    assert_eq!(
        r.body["errors"][0]["extensions"]["reason"],
        "TOO_MANY_ATTEMPTS"
    );
    app.stop().await;
});

both!(emailed_links_are_pre_verified, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let (_, token) = invite(
        &gql,
        &c,
        json!({ "allowedEmails": ["bo@example.com"], "sendEmail": true }),
    )
    .await;
    let messages = app.wait_for_mail(1, Duration::from_secs(20)).await;
    let link = messages[0]
        .mail()
        .links()
        .into_iter()
        .find(|l| l.contains(&token))
        .expect("the invitation link in the email");
    let url = reqwest::Url::parse(&link).unwrap();
    let params: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    let m = "mutation($t: String!, $e: String!, $s: String!) { verifyEmailLink(token: $t, email: $e, signature: $s) { grant } }";
    let public = app.anon();
    let r = public
        .query(
            m,
            json!({ "t": token, "e": params["email"], "s": params["sig"] }),
        )
        .await;
    let grant = r.data()["verifyEmailLink"]["grant"]
        .as_str()
        .unwrap()
        .to_owned();
    public
        .query(
            SUBMIT,
            json!({ "t": token, "g": grant, "i": details("holder") }),
        )
        .await
        .data();
    // A signature for another address does not pass.
    let r = public
        .query(
            m,
            json!({ "t": token, "e": "eve@example.com", "s": params["sig"] }),
        )
        .await;
    r.assert_error("EMAIL_NOT_VERIFIED", None);
    app.stop().await;
});

both!(
    reconnect_updates_the_same_connection,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        let connection = app::gridco_connection(&gql, &c, false).await;
        let (_, token) = app::reconnect_invite(&gql, &connection).await;
        let public = app.anon();
        let view = public
        .query("query($t: String!) { publicInvitation(token: $t) { invitationType connectionProvider connectionUsername } }", json!({ "t": token }))
        .await;
        assert_eq!(
            view.data()["publicInvitation"]["invitationType"],
            "EDIT_CONNECTION"
        );
        assert_eq!(
            view.data()["publicInvitation"]["connectionProvider"],
            "Gridco"
        );
        let r = public
        .query(SUBMIT, json!({ "t": token, "i": { "utilityUsername": "new", "utilityPassword": "new-pass", "mfaForwarding": true } }))
        .await;
        assert_eq!(
            r.data()["submitInvitation"]["connectionId"],
            json!(connection)
        );
        assert_eq!(
            r.data()["submitInvitation"]["invitationStatus"],
            "FULFILLED"
        );
        let r = gql
        .query("query($id: ID!) { connection(id: $id) { status utilityUsername mfaForwarding lastInvitationId } }", json!({ "id": connection }))
        .await;
        let conn = &r.data()["connection"];
        assert_eq!(conn["status"], "PENDING");
        assert_eq!(conn["utilityUsername"], "new");
        assert_eq!(conn["mfaForwarding"], true);
        assert!(conn["lastInvitationId"].is_string());
        assert_eq!(
            connections::Entity::find().count(&app.db).await.unwrap(),
            1,
            "no new connection"
        );
        app.stop().await;
    }
);

both!(
    parallel_submits_never_exceed_max_uses,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        let (id, token) = invite(&gql, &c, json!({ "maxUses": 3 })).await;
        let public = app.anon();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let public = public.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    public
                        .query(SUBMIT, json!({ "t": token, "i": details("holder") }))
                        .await
                })
            })
            .collect();
        let (mut ok, mut fulfilled) = (0, 0);
        for t in tasks {
            let r = t.await.unwrap();
            match r.error_code().as_deref() {
                None => ok += 1,
                Some("INVITATION_NOT_ACTIVE") => {
                    assert_eq!(r.body["errors"][0]["extensions"]["reason"], "FULFILLED");
                    fulfilled += 1;
                }
                other => panic!("unexpected {other:?}: {}", r.body),
            }
        }
        assert_eq!((ok, fulfilled), (3, 97));
        let created = connections::Entity::find()
            .filter(
                connections::Column::CreatedByInvitationId.eq(id.parse::<uuid::Uuid>().unwrap()),
            )
            .count(&app.db)
            .await
            .unwrap();
        assert_eq!(created, 3);
        let r = gql
            .query(
                "query($id: ID!) { invitation(id: $id) { useCount status } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(
            r.data()["invitation"],
            json!({ "useCount": 3, "status": "FULFILLED" })
        );
        app.stop().await;
    }
);

both!(
    submits_racing_a_revoke_stay_consistent,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        let (id, token) = invite(&gql, &c, json!({})).await;
        let public = app.anon();
        let mut tasks: Vec<_> = (0..30)
            .map(|_| {
                let public = public.clone();
                let token = token.clone();
                tokio::spawn(async move {
                    public
                        .query(SUBMIT, json!({ "t": token, "i": details("holder") }))
                        .await
                })
            })
            .collect();
        let g = gql.clone();
        let rid = id.clone();
        tasks.insert(
            10,
            tokio::spawn(async move {
                g.query(
                    "mutation($id: ID!) { revokeInvitation(id: $id) { id } }",
                    json!({ "id": rid }),
                )
                .await
            }),
        );
        for t in tasks {
            let r = t.await.unwrap();
            assert!(
                matches!(
                    r.error_code().as_deref(),
                    None | Some("INVITATION_NOT_ACTIVE")
                ),
                "{}",
                r.body
            );
        }
        let r = gql.query("query($id: ID!) { invitation(id: $id) { useCount status createdConnections(first: 100) { id } } }", json!({ "id": id })).await;
        let inv = &r.data()["invitation"];
        assert_eq!(inv["status"], "REVOKED");
        assert_eq!(
            inv["useCount"].as_u64().unwrap() as usize,
            inv["createdConnections"].as_array().unwrap().len()
        );
        app.stop().await;
    }
);

both!(legacy_magic_links_keep_working, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let m = "mutation($c: ID!) { createCompanyMagicLink(companyId: $c) { publicCompanyId companyMagicLinkSecret magicLinkUrl } }";
    let link = gql.query(m, json!({ "c": c })).await.data()["createCompanyMagicLink"].clone();
    let again = gql.query(m, json!({ "c": c })).await.data()["createCompanyMagicLink"].clone();
    assert_eq!(link, again, "the same link every time");
    let pid = link["publicCompanyId"].as_str().unwrap();
    let secret = link["companyMagicLinkSecret"].as_str().unwrap();
    assert_eq!(
        link["magicLinkUrl"],
        format!("{}/p/connect/{pid}/{secret}", app.url)
    );
    assert_ne!(pid, c, "the public id is not the internal id");
    assert_eq!(
        reqwest::get(link["magicLinkUrl"].as_str().unwrap())
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{}/p/connect/{pid}/wrong", app.url))
            .await
            .unwrap()
            .status(),
        404
    );

    let submit = "mutation($p: String!, $s: String!, $e: Boolean!, $i: ConnectionInput!) {
        submitMagicLink(publicCompanyId: $p, secret: $s, edit: $e, input: $i) { connectionId } }";
    let public = app.anon();
    for _ in 0..2 {
        public
            .query(
                submit,
                json!({ "p": pid, "s": secret, "e": false, "i": details("holder") }),
            )
            .await
            .data();
    }
    public
        .query(
            submit,
            json!({ "p": pid, "s": "wrong", "e": false, "i": details("holder") }),
        )
        .await
        .assert_error("NOT_FOUND", None);
    let r = gql
        .query(
            "query($c: ID!) { connections(companyId: $c) { id status } }",
            json!({ "c": c }),
        )
        .await;
    let conns = r.data()["connections"].as_array().unwrap().clone();
    assert_eq!(conns.len(), 2, "unlimited uses, no expiry");

    // Edit link for one connection.
    let connection = conns[0]["id"].as_str().unwrap();
    let e = "mutation($c: ID!) { createConnectionEditLink(connectionId: $c) { publicCompanyId connectionMagicLinkSecret magicLinkUrl } }";
    let edit =
        gql.query(e, json!({ "c": connection })).await.data()["createConnectionEditLink"].clone();
    assert!(
        edit["magicLinkUrl"]
            .as_str()
            .unwrap()
            .contains("/workflow/")
    );
    assert_eq!(
        reqwest::get(edit["magicLinkUrl"].as_str().unwrap())
            .await
            .unwrap()
            .status(),
        200
    );
    let r = public
        .query(
            submit,
            json!({ "p": edit["publicCompanyId"], "s": edit["connectionMagicLinkSecret"], "e": true,
                               "i": { "utilityUsername": "renewed", "utilityPassword": "pw2" } }),
        )
        .await;
    assert_eq!(
        r.data()["submitMagicLink"]["connectionId"],
        json!(connection)
    );
    let r = gql
        .query(
            "query($id: ID!) { connection(id: $id) { utilityUsername } }",
            json!({ "id": connection }),
        )
        .await;
    assert_eq!(r.data()["connection"]["utilityUsername"], "renewed");

    // The operations are marked deprecated with a pointer to invitations.
    let r = gql
        .query("{ __type(name: \"Mutation\") { fields(includeDeprecated: true) { name isDeprecated deprecationReason } } }", json!({}))
        .await;
    let fields = r.data()["__type"]["fields"].as_array().unwrap().clone();
    for name in [
        "createCompanyMagicLink",
        "createConnectionEditLink",
        "submitMagicLink",
    ] {
        let f = fields.iter().find(|f| f["name"] == name).unwrap();
        assert_eq!(f["isDeprecated"], true);
        assert!(
            f["deprecationReason"]
                .as_str()
                .unwrap()
                .contains("Invitation"),
            "{f}"
        );
    }
    app.stop().await;
});

#[tokio::test]
async fn public_operations_are_rate_limited() {
    let app = app::spawn(tests::pg::Backend::Sqlite).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let (_, token) = invite(&gql, &c, json!({})).await;
    let public = app.anon();
    let mut limited = None;
    // 120 per token per minute, in windows aligned to the clock: requests that straddle a
    // window's end split between two windows, so only 2 × 120 + 1 are sure to trip it.
    for _ in 0..241 {
        let r = public.query(PUBLIC, json!({ "t": token })).await;
        if r.error_code().as_deref() == Some("RATE_LIMITED") {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the per-token limit to trip within 241 requests");
    assert!(
        r.body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    app.stop().await;
}

both!(locked_values_and_omitted_choices, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let public = app.anon();
    let c = app::create_company(&gql, "Acme Co").await;

    // Locked utility types compare as a set: another order is the same value.
    let (_, token) = invite(
        &gql,
        &c,
        json!({ "prefill": { "utilityTypes": ["GAS", "ELECTRICITY"] }, "lockedFields": ["UTILITY_TYPES"] }),
    )
    .await;
    let mut input = details("holder");
    input["utilityTypes"] = json!(["ELECTRICITY", "GAS", "GAS"]);
    let r = public
        .query(SUBMIT, json!({ "t": token, "i": input }))
        .await;
    let id = r.data()["submitInvitation"]["connectionId"].clone();
    let r = gql
        .query(
            "query($id: ID!) { connection(id: $id) { utilityTypes } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        r.data()["connection"]["utilityTypes"],
        json!(["GAS", "ELECTRICITY"])
    );
    let mut input = details("holder");
    input["utilityTypes"] = json!(["GAS"]);
    public
        .query(SUBMIT, json!({ "t": token, "i": input }))
        .await
        .assert_error("BAD_USER_INPUT", Some("utilityTypes"));

    // A lock needs a value to lock: refused at create time, naming the field.
    let r = gql
        .query(
            "mutation($c: ID!, $i: InvitationInput!) { createContributorInvitation(companyId: $c, input: $i) { id } }",
            json!({ "c": c, "i": { "prefill": { "url": "https://grid.example.com" }, "lockedFields": ["URL", "COUNTRY"] } }),
        )
        .await;
    r.assert_error("BAD_USER_INPUT", Some("lockedFields[1]"));
    assert!(
        r.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("country")
    );

    // A reconnect submit that does not mention MFA keeps the connection's choice.
    let connection = app::gridco_connection(&gql, &c, true).await;
    let (_, token) = app::reconnect_invite(&gql, &connection).await;
    let view = public
        .query(
            "query($t: String!) { publicInvitation(token: $t) { connectionMfaForwarding sites { id } } }",
            json!({ "t": token }),
        )
        .await;
    assert_eq!(
        view.data()["publicInvitation"],
        json!({ "connectionMfaForwarding": true, "sites": [] })
    );
    public
        .query(
            SUBMIT,
            json!({ "t": token, "i": { "utilityUsername": "new", "utilityPassword": "new-pass" } }),
        )
        .await
        .data();
    let r = gql
        .query(
            "query($id: ID!) { connection(id: $id) { utilityUsername mfaForwarding } }",
            json!({ "id": connection }),
        )
        .await;
    assert_eq!(
        r.data()["connection"],
        json!({ "utilityUsername": "new", "mfaForwarding": true })
    );
    app.stop().await;
});

both!(legacy_links_rotate_revoke_and_log, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let public = app.anon();
    let c = app::create_company(&gql, "Acme Co").await;
    let create = "mutation($c: ID!) { createCompanyMagicLink(companyId: $c) { publicCompanyId companyMagicLinkSecret magicLinkUrl } }";
    let first = gql.query(create, json!({ "c": c })).await.data()["createCompanyMagicLink"].clone();
    let rotated = gql
        .query(
            "mutation($c: ID!) { rotateCompanyMagicLink(companyId: $c) { publicCompanyId companyMagicLinkSecret magicLinkUrl } }",
            json!({ "c": c }),
        )
        .await
        .data()["rotateCompanyMagicLink"]
        .clone();
    assert_ne!(
        first["companyMagicLinkSecret"],
        rotated["companyMagicLinkSecret"]
    );
    let status = |url: &Value| {
        let url = url.as_str().unwrap().to_owned();
        async move { reqwest::get(url).await.unwrap().status().as_u16() }
    };
    assert_eq!(
        status(&first["magicLinkUrl"]).await,
        404,
        "the old link is dead"
    );
    assert_eq!(status(&rotated["magicLinkUrl"]).await, 200);
    let again = gql.query(create, json!({ "c": c })).await.data()["createCompanyMagicLink"].clone();
    assert_eq!(again, rotated, "asking again returns the rotated link");

    let submit = "mutation($p: String!, $s: String!, $e: Boolean!, $i: ConnectionInput!) {
        submitMagicLink(publicCompanyId: $p, secret: $s, edit: $e, input: $i) { connectionId } }";
    let r = public
        .query(
            submit,
            json!({ "p": rotated["publicCompanyId"], "s": rotated["companyMagicLinkSecret"], "e": false, "i": details("old-login") }),
        )
        .await;
    let connection = r.data()["submitMagicLink"]["connectionId"].clone();

    // An edit link: its use records what it overwrote.
    let edit = gql
        .query(
            "mutation($c: ID!) { createConnectionEditLink(connectionId: $c) { publicCompanyId connectionMagicLinkSecret magicLinkUrl } }",
            json!({ "c": connection }),
        )
        .await
        .data()["createConnectionEditLink"]
        .clone();
    public
        .query(
            submit,
            json!({ "p": edit["publicCompanyId"], "s": edit["connectionMagicLinkSecret"], "e": true,
                    "i": { "utilityUsername": "new-login", "utilityPassword": "pw2" } }),
        )
        .await
        .data();
    let revoke_edit = "mutation($c: ID!) { revokeConnectionEditLink(connectionId: $c) }";
    assert_eq!(
        gql.query(revoke_edit, json!({ "c": connection }))
            .await
            .data()["revokeConnectionEditLink"],
        true
    );
    assert_eq!(status(&edit["magicLinkUrl"]).await, 404);
    gql.query(revoke_edit, json!({ "c": connection }))
        .await
        .assert_error("CONFLICT", None);
    public
        .query(
            submit,
            json!({ "p": edit["publicCompanyId"], "s": edit["connectionMagicLinkSecret"], "e": true,
                    "i": { "utilityUsername": "late", "utilityPassword": "pw3" } }),
        )
        .await
        .assert_error("NOT_FOUND", None);

    let revoke = "mutation($c: ID!) { revokeCompanyMagicLink(companyId: $c) }";
    gql.query(revoke, json!({ "c": c })).await.data();
    assert_eq!(status(&rotated["magicLinkUrl"]).await, 404);
    // Another organization cannot touch the links.
    let (_, other) = app.other_org().await;
    other
        .query(revoke, json!({ "c": c }))
        .await
        .assert_error("NOT_FOUND", None);

    let r = gql
        .query(
            "query($c: ID!) { company(id: $c) { magicLinkEvents(first: 20) { edges { node { linkType eventType actor connectionId detail } } } } }",
            json!({ "c": c }),
        )
        .await;
    let events: Vec<Value> = r.data()["company"]["magicLinkEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    let kinds: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["linkType"].as_str().unwrap(),
                e["eventType"].as_str().unwrap(),
                e["actor"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("COMPANY_LINK", "CREATED", "test-key"),
            ("COMPANY_LINK", "ROTATED", "test-key"),
            ("COMPANY_LINK", "SUBMITTED", "recipient"),
            ("EDIT_LINK", "CREATED", "test-key"),
            ("EDIT_LINK", "SUBMITTED", "recipient"),
            ("EDIT_LINK", "REVOKED", "test-key"),
            ("COMPANY_LINK", "REVOKED", "test-key"),
        ]
    );
    assert_eq!(events[4]["connectionId"], connection);
    assert_eq!(
        events[4]["detail"]["previousValues"]["utilityUsername"],
        "old-login"
    );
    assert!(
        events[4]["detail"]["changedFields"]
            .as_array()
            .unwrap()
            .contains(&json!("utilityUsername"))
    );
    assert!(!r.body.to_string().contains("pw2"));
    app.stop().await;
});

both!(
    embed_origins_set_the_frame_ancestors,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let c = app::create_company(&gql, "Acme Co").await;
        let (_, token) = invite(&gql, &c, json!({})).await;
        let csp = |url: String| async move {
            let r = reqwest::get(url).await.unwrap();
            r.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned()
        };
        let page = format!("{}/p/i/{token}", app.url);
        assert!(csp(page.clone()).await.ends_with("frame-ancestors 'none'"));
        let update = "mutation($o: [String!]) { updateOrganization(input: { allowedEmbedOrigins: $o }) { allowedEmbedOrigins } }";
        gql.query(
            update,
            json!({ "o": ["https://app.example.com", "https://app.example.com/path"] }),
        )
        .await
        .assert_error("BAD_USER_INPUT", Some("allowedEmbedOrigins[1]"));
        let r = gql
        .query(
            update,
            json!({ "o": ["https://app.example.com", "http://localhost:3000", "https://app.example.com"] }),
        )
        .await;
        assert_eq!(
            r.data()["updateOrganization"]["allowedEmbedOrigins"],
            json!(["https://app.example.com", "http://localhost:3000"])
        );
        let r = gql
            .query(
                "{ viewer { organization { allowedEmbedOrigins } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            r.data()["viewer"]["organization"]["allowedEmbedOrigins"],
            json!(["https://app.example.com", "http://localhost:3000"])
        );
        assert!(
            csp(page.clone())
                .await
                .ends_with("frame-ancestors https://app.example.com http://localhost:3000")
        );
        // Another organization's setting does not apply to this one's pages.
        let (_, other) = app.other_org().await;
        other
            .query(update, json!({ "o": ["https://evil.example.com"] }))
            .await
            .data();
        assert!(!csp(page.clone()).await.contains("evil"));
        // Unknown links belong to no organization: nothing may frame them.
        assert!(
            csp(format!("{}/p/i/unknown", app.url))
                .await
                .ends_with("frame-ancestors 'none'")
        );
        for (path, kind) in [
            ("/p/embed.js", "text/javascript"),
            ("/favicon.ico", "image/x-icon"),
        ] {
            let r = reqwest::get(format!("{}{path}", app.url)).await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            assert!(
                r.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with(kind),
                "{path}"
            );
        }
        gql.query(update, json!({ "o": [] })).await.data();
        assert!(csp(page).await.ends_with("frame-ancestors 'none'"));
        app.stop().await;
    }
);
