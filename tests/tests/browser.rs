//! The hosted page in a real browser (headless Chromium over WebDriver): what a recipient
//! does, with the page's own script, on both backends. Also the accessibility scan (axe-core),
//! embedding in another origin's page, and the README's screenshot.

use std::time::Duration;

use entity::EventType;
use entity::entities::connections;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tests::browser::Browser;
use tokio::net::TcpListener;

use crate::app::{self, TestApp, invite};
use crate::both;
use crate::recipient::{code_in, events_of};

/// Where the README's screenshot lives; `UPDATE_SCREENSHOTS=1` rewrites it.
const SCREENSHOT: &str = "browser/recipient-page.png";

async fn connection(app: &TestApp, id: &str) -> connections::Model {
    connections::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap())
        .one(&app.db)
        .await
        .unwrap()
        .unwrap()
}

/// The connection an invitation created (the newest).
async fn created_by(app: &TestApp, invitation: &str) -> connections::Model {
    let rows = connections::Entity::find()
        .filter(
            connections::Column::CreatedByInvitationId
                .eq(invitation.parse::<uuid::Uuid>().unwrap()),
        )
        .all(&app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "one connection created");
    rows.into_iter().next().unwrap()
}

async fn create_site(app: &TestApp, company: &str, name: &str) -> String {
    let r = app
        .gql()
        .query(
            "mutation($c: ID!, $n: String!) { createSite(companyId: $c, input: { name: $n }) { id } }",
            json!({ "c": company, "n": name }),
        )
        .await;
    r.data()["createSite"]["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn assert_accessible(browser: &Browser, what: &str) {
    let violations = browser.accessibility_violations().await;
    assert!(
        violations.is_empty(),
        "serious or critical accessibility violations on {what}: {}",
        serde_json::to_string_pretty(&violations).unwrap()
    );
}

/// Every control of the page's form has a label (by `for`, or a fieldset's legend for the
/// checkbox groups).
async fn assert_labelled(browser: &Browser) {
    let unlabelled = browser
        .eval(
            "return Array.from(document.querySelectorAll('input')).filter(function (i) {
               return !(i.labels && i.labels.length);
             }).map(function (i) { return i.id || i.name; });",
        )
        .await;
    assert_eq!(unlabelled, json!([]), "inputs without a label");
}

both!(contributor_form_in_the_browser, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let hq = create_site(&app, &c, "Head office").await;
    let depot = create_site(&app, &c, "Depot").await;
    let (id, token) = invite(
        &gql,
        &c,
        json!({ "prefill": { "country": "FR", "initialSites": [hq] } }),
    )
    .await;
    let browser = Browser::open(900, 1300).await;
    browser.goto(&format!("{}/p/i/{token}", app.url)).await;
    browser
        .wait_heading("Acme Co Ltd asks you to connect")
        .await;
    assert_eq!(
        browser.eval("return document.documentElement.lang").await,
        "en"
    );
    assert_labelled(&browser).await;
    // The page's script reported the view.
    let site_boxes = browser.find_all("input[name=sites]").await;
    assert_eq!(site_boxes.len(), 2, "one checkbox per site of the company");
    assert!(
        browser
            .wait(&format!("input[value='{hq}']"))
            .await
            .is_selected()
            .await
            .unwrap()
    );
    assert!(
        !browser
            .wait(&format!("input[value='{depot}']"))
            .await
            .is_selected()
            .await
            .unwrap()
    );
    assert_accessible(&browser, "the contributor form").await;
    let shot = browser.screenshot().await;
    assert!(shot.starts_with(b"\x89PNG"), "a PNG screenshot");
    if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        std::fs::write(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCREENSHOT),
            &shot,
        )
        .unwrap();
    }

    // A required field left empty is named next to it, and the focus goes there.
    browser.click("form button[type=submit]").await;
    for id in ["providerUrl", "username", "password"] {
        browser.wait(&format!("#{id}-error:not([hidden])")).await;
    }
    assert_eq!(browser.focused_id().await, "providerUrl", "the first one");
    assert_accessible(&browser, "the form showing errors").await;

    // A wrong value from the server is shown next to its field.
    browser
        .fill("#providerUrl", "https://grid.example.com")
        .await;
    browser.fill("#country", "F1").await;
    browser.click("#utilityTypes-GAS").await;
    browser.click(&format!("input[value='{depot}']")).await;
    browser.fill("#username", "holder").await;
    browser.fill("#password", app::PASSWORD).await;
    browser.click("#mfaForwarding").await;
    browser.click("form button[type=submit]").await;
    let error = browser.wait("#country-error:not([hidden])").await;
    assert!(error.text().await.unwrap().contains("ISO 3166"));
    assert_eq!(browser.focused_id().await, "country");

    browser.fill("#country", "de").await;
    browser.click("form button[type=submit]").await;
    browser.wait_heading("Thank you").await;
    browser.close().await;

    let conn = created_by(&app, &id).await;
    assert_eq!(conn.country.as_deref(), Some("DE"));
    assert_eq!(conn.utility_types.0, vec![entity::UtilityType::Gas]);
    assert!(conn.mfa_forwarding);
    let r = gql
        .query(
            "query($id: ID!) { connection(id: $id) { siteIds } }",
            json!({ "id": conn.id.to_string() }),
        )
        .await;
    let mut sites: Vec<String> =
        serde_json::from_value(r.data()["connection"]["siteIds"].clone()).unwrap();
    sites.sort();
    let mut expected = vec![hq, depot];
    expected.sort();
    assert_eq!(sites, expected);
    assert_eq!(events_of(&app, &id, EventType::Viewed).await, 1);
    app.stop().await;
});

both!(locked_prefill_in_the_browser, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let hq = create_site(&app, &c, "Head office").await;
    create_site(&app, &c, "Depot").await;
    // Utility types in another order than the page lists them (it sends ELECTRICITY first).
    let (id, token) = invite(
        &gql,
        &c,
        json!({ "prefill": { "utilityTypes": ["GAS", "ELECTRICITY"], "country": "DE", "initialSites": [hq],
                             "datasourceId": "ds-gridco", "url": "https://gridco.example.com" },
                "lockedFields": ["UTILITY_TYPES", "COUNTRY", "INITIAL_SITES", "DATASOURCE_ID", "URL"] }),
    )
    .await;
    let browser = Browser::open(320, 900).await;
    browser.goto(&format!("{}/p/i/{token}", app.url)).await;
    browser.wait_heading("asks you to connect").await;
    // Locked values are shown, read-only, with a hint saying who set them.
    let provider = browser.wait("#datasourceId").await;
    assert_eq!(
        provider.prop("value").await.unwrap().as_deref(),
        Some("ds-gridco")
    );
    assert!(provider.attr("readonly").await.unwrap().is_some());
    assert!(
        browser
            .wait("#datasourceId-hint")
            .await
            .text()
            .await
            .unwrap()
            .contains("Acme Co Ltd")
    );
    assert!(
        browser
            .wait("#country")
            .await
            .attr("readonly")
            .await
            .unwrap()
            .is_some()
    );
    for t in ["GAS", "ELECTRICITY"] {
        let b = browser.wait(&format!("#utilityTypes-{t}")).await;
        assert!(
            b.is_selected().await.unwrap() && !b.is_enabled().await.unwrap(),
            "{t} locked on"
        );
    }
    assert!(
        !browser
            .wait("#utilityTypes-WATER")
            .await
            .is_enabled()
            .await
            .unwrap()
    );
    // 320 px wide: nothing overflows sideways.
    let (scroll, client) = (
        browser
            .eval("return document.documentElement.scrollWidth")
            .await,
        browser
            .eval("return document.documentElement.clientWidth")
            .await,
    );
    assert!(
        scroll.as_u64().unwrap() <= client.as_u64().unwrap(),
        "{scroll} > {client}"
    );
    assert_accessible(&browser, "the locked form at 320 px").await;

    browser.fill("#username", "holder").await;
    browser.fill("#password", app::PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_heading("Thank you").await;
    browser.close().await;
    let conn = created_by(&app, &id).await;
    assert_eq!(
        conn.utility_types.0,
        vec![entity::UtilityType::Gas, entity::UtilityType::Electricity]
    );
    assert_eq!(conn.country.as_deref(), Some("DE"));
    assert_eq!(conn.datasource_id.as_deref(), Some("ds-gridco"));
    app.stop().await;
});

both!(email_gate_in_the_browser, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let (id, token) = invite(&gql, &c, json!({ "allowedEmails": ["ann@example.com"] })).await;
    let browser = Browser::open(900, 1100).await;
    browser.goto(&format!("{}/p/i/{token}", app.url)).await;
    browser.wait_heading("Acme Co Ltd invited you").await;
    assert_accessible(&browser, "the email step").await;
    // Keyboard only: the address field has the focus, Enter sends, the focus moves on.
    assert_eq!(browser.focused_id().await, "email");
    let outline = browser
        .eval("return getComputedStyle(document.activeElement).outlineStyle")
        .await;
    assert_ne!(outline, "none", "the focus is visible");
    browser.type_keys("ann@example.com\n").await;
    browser.wait_heading("Check your inbox").await;
    assert_eq!(browser.focused_id().await, "code");
    let messages = app.wait_for_mail(1, Duration::from_secs(20)).await;
    let code = code_in(&messages, "ann@example.com").expect("a code in the email");
    browser.type_keys(&format!("{code}\n")).await;
    browser.wait_heading("asks you to connect").await;
    browser
        .fill("#providerUrl", "https://grid.example.com")
        .await;
    browser.fill("#username", "ann-login").await;
    browser.fill("#password", app::PASSWORD).await;
    browser.type_keys("\n").await;
    browser.wait_heading("Thank you").await;
    assert_eq!(events_of(&app, &id, EventType::EmailVerified).await, 1);
    assert_eq!(
        created_by(&app, &id).await.utility_username.as_deref(),
        Some("ann-login")
    );

    // A link we emailed is pre-verified: straight to the form.
    let (pre_id, pre_token) = invite(
        &gql,
        &c,
        json!({ "allowedEmails": ["bo@example.com"], "sendEmail": true }),
    )
    .await;
    let messages = app.wait_for_mail(2, Duration::from_secs(20)).await;
    let link = messages
        .iter()
        .filter(|m| m.is_to("bo@example.com"))
        .flat_map(|m| m.mail().links())
        .find(|l| l.contains(&pre_token))
        .expect("the invitation link in the email");
    browser.goto(&link).await;
    browser.wait_heading("asks you to connect").await;
    browser
        .fill("#providerUrl", "https://grid.example.com")
        .await;
    browser.fill("#username", "bo-login").await;
    browser.fill("#password", app::PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_heading("Thank you").await;
    assert_eq!(
        created_by(&app, &pre_id).await.utility_username.as_deref(),
        Some("bo-login")
    );

    // An expired link: the 410 page asks for a new one.
    let (old_id, old_token) = invite(
        &gql,
        &c,
        json!({ "allowedEmails": ["cy@example.com"], "expiresInSeconds": 60 }),
    )
    .await;
    entity::entities::invitations::Entity::update_many()
        .col_expr(
            entity::entities::invitations::Column::ExpiresAt,
            Expr::value(entity::now() - chrono::Duration::seconds(1)),
        )
        .filter(entity::entities::invitations::Column::Id.eq(old_id.parse::<uuid::Uuid>().unwrap()))
        .exec(&app.db)
        .await
        .unwrap();
    browser.goto(&format!("{}/p/i/{old_token}", app.url)).await;
    browser.wait_heading("This invitation has expired").await;
    assert_accessible(&browser, "the expired page").await;
    browser.fill("#renewal-email", "cy@example.com").await;
    browser.click("#renewal button").await;
    browser.wait_heading("Request sent").await;
    browser.close().await;
    assert_eq!(
        events_of(&app, &old_id, EventType::RenewalRequested).await,
        1
    );
    app.stop().await;
});

both!(reconnect_in_the_browser_keeps_mfa, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let conn = app::gridco_connection(&gql, &c, true).await;
    let (_, token) = app::reconnect_invite(&gql, &conn).await;
    let browser = Browser::open(900, 1000).await;
    browser.goto(&format!("{}/p/i/{token}", app.url)).await;
    browser.wait_heading("update your utility login").await;
    assert!(
        browser
            .wait("#mfaForwarding")
            .await
            .is_selected()
            .await
            .unwrap(),
        "the current choice"
    );
    assert_eq!(
        browser
            .wait("#username")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("old")
    );
    assert_accessible(&browser, "the reconnect form").await;
    browser.fill("#username", "new").await;
    browser.fill("#password", "new-pass").await;
    browser.click("form button[type=submit]").await;
    browser.wait_heading("Thank you").await;
    browser.close().await;
    let row = connection(&app, &conn).await;
    assert_eq!(row.utility_username.as_deref(), Some("new"));
    assert!(row.mfa_forwarding, "MFA forwarding kept");
    app.stop().await;
});

/// A page of the integrator's product that embeds the invitation with `/p/embed.js` and lists
/// the events it receives (`li[data-type]`), or notes that the frame finished loading.
fn host_page(gateway: &str, invitation_url: &str) -> String {
    format!(
        r#"<!doctype html><html lang="en"><head><title>Integrator</title></head><body>
<main><h1>Integrator</h1><div id="slot"></div><ul id="events"></ul></main>
<script src="{gateway}/p/embed.js"></script>
<script>
  function log(kind) {{ return function (e) {{
    var li = document.createElement("li");
    li.setAttribute("data-type", e.type); li.setAttribute("data-handler", kind);
    li.textContent = JSON.stringify(e); document.getElementById("events").appendChild(li);
  }}; }}
  var modal = window.location.search.indexOf("modal") >= 0;
  var handle = InvitationsEmbed.open({{ url: "{invitation_url}", container: modal ? null : document.getElementById("slot"),
    onLoaded: log("onLoaded"), onSubmitted: log("onSubmitted"), onExit: log("onExit"), onError: log("onError") }});
  handle.iframe.addEventListener("load", function () {{
    var p = document.createElement("p"); p.id = "frame-loaded"; document.body.appendChild(p);
  }});
</script></body></html>"#
    )
}

/// Serves `page` at `/` on a loopback port of its own; returns the port.
async fn serve_host_page(page: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    port
}

/// The event the host page logged for `kind`, once it arrived.
async fn host_event(browser: &Browser, kind: &str) -> Value {
    let li = browser.wait(&format!("li[data-type='{kind}']")).await;
    serde_json::from_str(&li.text().await.unwrap()).unwrap()
}

both!(embedded_in_an_allowed_origin_only, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let (id, token) = invite(&gql, &c, json!({})).await;
    let invitation_url = format!("{}/p/i/{token}", app.url);
    let port = serve_host_page(host_page(&app.url, &invitation_url)).await;
    let allowed = format!("http://127.0.0.1:{port}");
    let r = gql
        .query(
            "mutation($o: [String!]) { updateOrganization(input: { allowedEmbedOrigins: $o }) { allowedEmbedOrigins } }",
            json!({ "o": [allowed] }),
        )
        .await;
    assert_eq!(
        r.data()["updateOrganization"]["allowedEmbedOrigins"],
        json!([allowed])
    );

    let browser = Browser::open(900, 1300).await;
    // Another origin (the same server under another name): the browser refuses to show the
    // page in the frame, so the page never runs and the host hears nothing.
    browser.goto(&format!("http://localhost:{port}/")).await;
    browser.wait("#frame-loaded").await;
    browser.client.enter_frame(0).await.unwrap();
    assert!(
        browser.find_all("#app").await.is_empty(),
        "the page is not shown in another origin"
    );
    browser.client.enter_parent_frame().await.unwrap();
    assert!(browser.find_all("li[data-type]").await.is_empty());

    // The allowed origin: the page loads, and its events reach the host page.
    browser.goto(&format!("{allowed}/")).await;
    let loaded = host_event(&browser, "invitation.loaded").await;
    assert_eq!(loaded["invitationId"], json!(id));
    browser.client.enter_frame(0).await.unwrap();
    browser.wait_heading("asks you to connect").await;
    // Cancel tells the host the recipient left.
    browser.click("button.secondary").await;
    browser.client.enter_parent_frame().await.unwrap();
    let exit = host_event(&browser, "invitation.exit").await;
    assert_eq!(exit["reason"], "USER_EXIT");
    browser.client.enter_frame(0).await.unwrap();
    browser
        .fill("#providerUrl", "https://grid.example.com")
        .await;
    browser.fill("#username", "framed").await;
    browser.fill("#password", app::PASSWORD).await;
    browser.click("form button[type=submit]").await;
    browser.wait_heading("Thank you").await;
    browser.client.enter_parent_frame().await.unwrap();
    let submitted = host_event(&browser, "invitation.submitted").await;
    let conn = created_by(&app, &id).await;
    assert_eq!(submitted["invitationId"], json!(id));
    assert_eq!(submitted["connectionId"], json!(conn.id.to_string()));
    let handler = browser
        .wait("li[data-type='invitation.submitted']")
        .await
        .attr("data-handler")
        .await
        .unwrap();
    assert_eq!(handler.as_deref(), Some("onSubmitted"));

    // As a modal dialog: the same page; its close button ends it and reports the exit.
    browser.goto(&format!("{allowed}/?modal")).await;
    host_event(&browser, "invitation.loaded").await;
    assert_eq!(browser.find_all("[role=dialog] iframe").await.len(), 1);
    browser
        .click("[role=dialog] button[aria-label=Close]")
        .await;
    let exit = host_event(&browser, "invitation.exit").await;
    assert_eq!(exit["reason"], "CLOSED");
    assert!(
        browser.find_all("[role=dialog]").await.is_empty(),
        "the dialog is gone"
    );

    // A revoked invitation opened in the frame reports an error with its reason.
    gql.query(
        "mutation($id: ID!) { revokeInvitation(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await
    .data();
    browser.goto(&format!("{allowed}/")).await;
    let error = host_event(&browser, "invitation.error").await;
    assert_eq!(error["reason"], "REVOKED");
    browser.close().await;
    app.stop().await;
});
