//! The operator console (`/console`) in a real browser (headless Chromium over WebDriver), on
//! both backends: sign in, companies, the live Invitations table, invitation details with
//! revoke and resend, webhook endpoints; accessibility (axe-core) at 1280 px and 375 px; and the
//! README's screenshot.

use std::time::Duration;

use serde_json::{Value, json};
use tests::browser::Browser;
use tests::poll::eventually;
use tests::webhook_receiver::{Receiver, Reply};

use crate::app::{self, TestApp, invite};
use crate::both;
use crate::browser::assert_accessible;

/// Where the README's screenshot of the console lives; `UPDATE_SCREENSHOTS=1` rewrites it.
const SCREENSHOT: &str = "browser/console.png";

/// Bound of a wait for a background effect (an email, a webhook delivery). Generous: once,
/// under a loaded parallel run, a webhook delivery took longer than 40 s.
const WAIT: Duration = Duration::from_secs(90);

/// Nothing overflows sideways (the page is usable without horizontal scrolling).
async fn assert_fits(browser: &Browser, what: &str) {
    let scroll = browser
        .eval("return document.documentElement.scrollWidth")
        .await;
    let client = browser
        .eval("return document.documentElement.clientWidth")
        .await;
    assert!(
        scroll.as_u64().unwrap() <= client.as_u64().unwrap(),
        "{what} overflows: {scroll} > {client}"
    );
}

async fn text(browser: &Browser, css: &str) -> String {
    browser.wait(css).await.text().await.unwrap()
}

/// Waits until the element `css` shows `needle` (views render after their requests).
async fn wait_text(browser: &Browser, css: &str, needle: &str) {
    eventually(&format!("{needle:?} in {css}"), WAIT, || async move {
        let found = browser.client.find(fantoccini::Locator::Css(css)).await;
        let shown = match found {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => return Err("not there".to_owned()),
        };
        if shown.contains(needle) {
            Ok(())
        } else {
            Err(format!("it shows {shown:?}"))
        }
    })
    .await;
}

/// The value of the input `css`, read in the page in one step (a live view may replace the
/// element between a lookup and a read).
async fn value(browser: &Browser, css: &str) -> String {
    browser.wait(css).await;
    let script = format!("return document.querySelector({}).value", json!(css));
    browser.eval(&script).await.as_str().unwrap().to_owned()
}

/// Opens the console and signs in with the app's key; the companies page is shown.
async fn signed_in(app: &TestApp, width: u32, height: u32) -> Browser {
    let browser = Browser::open(width, height).await;
    browser.goto(&format!("{}/console", app.url)).await;
    browser.fill("#api-key", &app.api_key).await;
    browser.click("#sign-in button[type=submit]").await;
    browser.wait_heading("Companies").await;
    browser
}

/// Whether `text` names no origin: no `://` followed by a host (a bare `https://` placeholder
/// and `ws://${location.host}` are fine).
fn names_no_origin(text: &str) -> bool {
    text.match_indices("://")
        .all(|(i, _)| !text[i + 3..].starts_with(|c: char| c.is_ascii_alphanumeric()))
}

async fn status_of(app: &TestApp, invitation: &str) -> Value {
    app.gql()
        .query(
            "query($id: ID!) { invitation(id: $id) { status token events(first: 100) { nodes { eventType actor } } } }",
            json!({ "id": invitation }),
        )
        .await
        .data()["invitation"]
        .clone()
}

both!(
    the_console_is_one_origin_under_a_strict_policy,
    |backend| async move {
        let app = app::spawn(backend).await;
        let http = reqwest::Client::new();
        let page = http
            .get(format!("{}/console", app.url))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} missing in {csp}");
        }
        let html = page.text().await.unwrap();
        // Nothing inline (the policy would block it) and nothing from another origin.
        assert!(
            !html.contains("<style") && !html.contains("style="),
            "{html}"
        );
        assert!(names_no_origin(&html), "{html}");
        for module in ["console.js", "api.js", "views.js", "console.css"] {
            let asset = http
                .get(format!("{}/console/assets/{module}", app.url))
                .send()
                .await
                .unwrap();
            assert_eq!(asset.status(), 200, "{module}");
            let body = asset.text().await.unwrap();
            assert!(names_no_origin(&body), "{module} names another origin");
        }
        app.stop().await;
    }
);

both!(
    sign_in_and_the_live_invitations_table,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let browser = Browser::open(1280, 900).await;
        browser.goto(&format!("{}/console", app.url)).await;
        browser.wait_heading("Sign in").await;
        assert_accessible(&browser, "the sign-in form").await;

        // A wrong key: a clear error next to the key, which keeps the focus.
        browser.fill("#api-key", "inv_not-a-real-key").await;
        browser.click("#sign-in button[type=submit]").await;
        let error = text(&browser, "#api-key-error:not([hidden])").await;
        assert!(error.contains("not accepted"), "{error}");
        assert!(error.contains("UNAUTHENTICATED"), "{error}");
        assert_eq!(browser.focused_id().await, "api-key");
        // The key is never put in the URL.
        browser.fill("#api-key", &app.api_key).await;
        browser.click("#sign-in button[type=submit]").await;
        browser.wait_heading("Companies").await;
        let url = browser.client.current_url().await.unwrap();
        assert!(!url.as_str().contains(&app.api_key), "{url}");
        wait_text(&browser, "#companies", "No companies yet").await;

        // A company, through the UI.
        browser.fill("#company-name", "Acme Co").await;
        browser.click("#create-company button[type=submit]").await;
        browser.wait_heading("Acme Co").await;
        wait_text(&browser, "#invitations", "no invitations yet").await;
        browser.wait("#live[data-state='live']").await;

        // A contributor invitation, through the UI; a bad address is named next to the list.
        browser.click("#new-invitation").await;
        browser.wait_heading("New contributor invitation").await;
        browser
            .fill(
                "[data-field=allowedEmails]",
                "ann@example.com\nnot-an-address",
            )
            .await;
        browser.fill("[data-field=maxUses]", "3").await;
        browser
            .click("#create-invitation button[type=submit]")
            .await;
        let error = browser
            .wait("[data-field=allowedEmails][aria-invalid=true]")
            .await;
        let message = text(
            &browser,
            &format!(
                "#{}-error",
                error.attr("id").await.unwrap().unwrap_or_default()
            ),
        )
        .await;
        assert!(message.contains("BAD_USER_INPUT"), "{message}");
        browser
            .fill("[data-field=allowedEmails]", "ann@example.com")
            .await;
        browser
            .click("#create-invitation button[type=submit]")
            .await;
        let link = value(&browser, "#created input.copy-value").await;
        assert!(link.contains("/p/i/"), "{link}");
        assert_accessible(&browser, "the created invitation's link").await;
        browser.click("#created a[href^='#/companies/']").await;
        browser.wait("#invitations tr[data-id]").await;
        // Read in the page: the live feed may refresh the row meanwhile.
        let id = browser
            .eval("return document.querySelector('#invitations tr[data-id]').dataset.id")
            .await
            .as_str()
            .unwrap()
            .to_owned();
        let row = format!("tr[data-id='{id}']");
        for shown in ["ACTIVE", "ann@example.com", "0 / 3", "Contributor"] {
            wait_text(&browser, &row, shown).await;
        }
        browser.wait("#live[data-state='live']").await;
        assert_accessible(&browser, "the Invitations table").await;

        // Live, without a reload (the marker would be gone after one): a revoke through the API
        // turns the row REVOKED, and an invitation created through the API appears.
        browser.eval("window.notReloaded = true; return null").await;
        let r = gql
        .query(
            "mutation($id: ID!) { revokeInvitation(id: $id, reason: \"sent to the wrong person\") { status } }",
            json!({ "id": id }),
        )
        .await;
        assert_eq!(r.data()["revokeInvitation"]["status"], "REVOKED");
        browser
            .wait(&format!("tr[data-id='{id}'] [data-status='REVOKED']"))
            .await;
        let company = app::create_company(&gql, "Other Co").await;
        let (elsewhere, _) = invite(&gql, &company, json!({})).await;
        let companies = app
            .gql()
            .query("{ companies { id name } }", json!({}))
            .await;
        let acme = companies.data()["companies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "Acme Co")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (second, _) = invite(&gql, &acme, json!({ "maxUses": 1 })).await;
        browser.wait(&format!("tr[data-id='{second}']")).await;
        assert!(
            browser
                .find_all(&format!("tr[data-id='{elsewhere}']"))
                .await
                .is_empty(),
            "another company's invitation stays out"
        );
        assert_eq!(browser.eval("return window.notReloaded").await, true);

        // Filters: only the revoked one.
        browser
            .client
            .find(fantoccini::Locator::Css("#filter-status"))
            .await
            .unwrap()
            .select_by_value("REVOKED")
            .await
            .unwrap();
        browser.click("#filters button[type=submit]").await;
        wait_text(&browser, "#table-summary", "of 1 matching").await;
        assert_eq!(browser.find_all("#invitations tr[data-id]").await.len(), 1);
        if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            browser.click("#filters button[type=reset]").await;
            browser.wait(&format!("tr[data-id='{second}']")).await;
            std::fs::write(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCREENSHOT),
                browser.screenshot().await,
            )
            .unwrap();
        }

        // The detail: the timeline has CREATED and REVOKED, each with its actor.
        browser.click(&format!("tr[data-id='{id}'] a")).await;
        browser.wait("#timeline li[data-event='REVOKED']").await;
        let created = text(&browser, "#timeline li[data-event='CREATED']").await;
        assert!(created.contains("by test-key"), "{created}");
        let revoked = text(&browser, "#timeline li[data-event='REVOKED']").await;
        assert!(revoked.contains("sent to the wrong person"), "{revoked}");
        wait_text(&browser, "h1", "REVOKED").await;
        assert!(
            browser.find_all("#revoke").await.is_empty(),
            "nothing to revoke"
        );
        assert_accessible(&browser, "the invitation detail").await;

        // 375 px: the detail and the table still fit, and stay accessible.
        browser.client.set_window_size(375, 800).await.unwrap();
        assert_fits(&browser, "the detail at 375 px").await;
        assert_accessible(&browser, "the detail at 375 px").await;
        browser.client.back().await.unwrap();
        browser.wait(&format!("tr[data-id='{second}']")).await;
        assert_fits(&browser, "the table at 375 px").await;
        assert_accessible(&browser, "the table at 375 px").await;

        // Signing out forgets the key.
        browser.click("#signout").await;
        browser.wait("#api-key").await;
        assert_eq!(browser.eval("return sessionStorage.length").await, 0);
        browser.close().await;
        app.stop().await;
    }
);

both!(revoke_and_resend_from_the_detail, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Acme Co").await;
    let (id, token) = invite(
        &gql,
        &company,
        json!({ "allowedEmails": ["ann@example.com", "bob@example.com"], "expiresInSeconds": 3600 }),
    )
    .await;
    let browser = signed_in(&app, 1280, 900).await;
    browser
        .goto(&format!("{}/console#/invitations/{id}", app.url))
        .await;
    browser.wait("#timeline li[data-event='CREATED']").await;

    // Resend to one address with a new link.
    browser.click("#resend").await;
    browser.wait("dialog[open] #resend-form").await;
    assert_accessible(&browser, "the resend dialog").await;
    let bob = browser
        .wait("#resend-form input[value='bob@example.com']")
        .await;
    bob.click().await.unwrap();
    browser.click("#resend-rotate").await;
    browser.click("#resend-confirm").await;
    browser
        .wait("#timeline li[data-event='TOKEN_ROTATED']")
        .await;
    wait_text(&browser, "#detail-notice", "new link").await;
    let after = status_of(&app, &id).await;
    assert_ne!(after["token"], token, "the link was rotated");
    assert!(
        value(&browser, "#main input.copy-value")
            .await
            .ends_with(after["token"].as_str().unwrap()),
        "the detail shows the new link"
    );
    let messages = app.wait_for_mail(1, WAIT).await;
    assert!(
        messages.iter().all(|m| m.is_to("ann@example.com")),
        "only the chosen address is emailed"
    );
    // The delivery is listed, and its outcome is in the timeline (the last change the resend
    // brings, so the page stops re-rendering before the next click).
    browser.wait("#timeline li[data-event='EMAIL_SENT']").await;
    wait_text(&browser, "#detail table", "ann@example.com").await;

    // Revoke with a reason, after a confirmation.
    browser.click("#revoke").await;
    browser.wait("dialog[open] #revoke-form").await;
    let reason = browser.wait("#revoke-form textarea").await;
    reason.send_keys("left the company").await.unwrap();
    browser.click("#revoke-confirm").await;
    browser.wait("#timeline li[data-event='REVOKED']").await;
    wait_text(&browser, "h1", "REVOKED").await;
    let after = status_of(&app, &id).await;
    assert_eq!(after["status"], "REVOKED");
    assert!(
        after["events"]["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["eventType"] == "REVOKED" && e["actor"] == "test-key"),
        "{after}"
    );
    browser.close().await;
    app.stop().await;
});

both!(webhook_endpoints_in_the_console, |backend| async move {
    let app = app::spawn_with(backend, |env| {
        env.insert("WEBHOOK_ALLOW_LOOPBACK".into(), "true".into());
    })
    .await;
    let receiver = Receiver::start(Reply::Status(204)).await;
    let browser = signed_in(&app, 1280, 900).await;
    browser
        .goto(&format!("{}/console#/webhooks", app.url))
        .await;
    browser.wait_heading("Webhooks").await;
    wait_text(&browser, "#endpoints", "No endpoints yet").await;

    // No event type chosen: the error sits on the event types.
    browser.fill("#endpoint-url", &receiver.url).await;
    browser.click("#create-endpoint button[type=submit]").await;
    browser
        .wait("#create-endpoint fieldset[data-field=eventTypes][aria-invalid=true]")
        .await;
    browser
        .click("#create-endpoint input[value='invitation.created']")
        .await;
    browser.click("#create-endpoint button[type=submit]").await;
    let secret = value(&browser, "#secret input.copy-value").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_accessible(&browser, "the new endpoint's secret").await;

    // Shown once: the endpoint's own page does not have it.
    browser.click("#main a[href^='#/webhooks/']").await;
    browser.wait("#edit-endpoint").await;
    let source = browser.client.source().await.unwrap();
    assert!(!source.contains(&secret), "the secret is shown only once");

    // An invitation event is delivered; its delivery and attempt are listed, and it can be
    // replayed.
    let company = app::create_company(&app.gql(), "Acme Co").await;
    invite(&app.gql(), &company, json!({})).await;
    let r = &receiver;
    eventually("the delivery", WAIT, || async move { r.count() > 0 }).await;
    browser
        .goto(&format!("{}/console#/webhooks", app.url))
        .await;
    browser.wait_heading("Webhooks").await;
    browser.click("#endpoints a").await;
    let replay = browser.wait("[data-replay]").await;
    wait_text(&browser, "tr[data-delivery]", "SUCCEEDED").await;
    assert_accessible(&browser, "the endpoint's deliveries").await;
    replay.click().await.unwrap();
    eventually(
        "the replay's delivery",
        WAIT,
        || async move { r.count() > 1 },
    )
    .await;

    // Rotate: a new secret, shown once; disable.
    browser.click("#rotate-secret").await;
    browser.click("#rotate-confirm").await;
    let rotated = value(&browser, "#secret input.copy-value").await;
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    // The old secret still signs for a while, and the page says until when.
    wait_text(&browser, "#endpoint .facts", "Previous secret valid until").await;
    browser.click("#toggle-endpoint").await;
    browser.wait("h1 [data-status='DISABLED']").await;
    browser.close().await;
    app.stop().await;
});

/// Run on the sign-in form, before the console opens its WebSocket: every socket the page
/// opens is kept in `window.sockets`, and while `window.blockSockets` is set new ones go to a
/// closed port on loopback, so the test can drop the connection and hold it down.
const SOCKET_CONTROL: &str = "const Real = window.WebSocket;
    window.sockets = [];
    window.blockSockets = false;
    window.WebSocket = function (url, protocols) {
      const socket = new Real(window.blockSockets ? 'ws://127.0.0.1:9/graphql' : url, protocols);
      window.sockets.push(socket);
      return socket;
    };
    window.WebSocket.prototype = Real.prototype;
    return null;";

both!(
    the_table_catches_up_after_a_dropped_connection,
    |backend| async move {
        let app = app::spawn(backend).await;
        let gql = app.gql();
        let company = app::create_company(&gql, "Acme Co").await;
        let (first, _) = invite(&gql, &company, json!({})).await;
        let connection = app::gridco_connection(&gql, &company, false).await;
        let browser = Browser::open(1280, 900).await;
        browser.goto(&format!("{}/console", app.url)).await;
        browser.wait("#api-key").await;
        browser.eval(SOCKET_CONTROL).await;
        browser.fill("#api-key", &app.api_key).await;
        browser.click("#sign-in button[type=submit]").await;
        browser.wait_heading("Companies").await;
        browser
            .click(&format!("a[href='#/companies/{company}']"))
            .await;
        browser.wait(&format!("tr[data-id='{first}']")).await;
        browser.wait("#live[data-state='live']").await;

        // The connection drops and stays down: the indicator says so.
        browser
            .eval(
                "window.notReloaded = true; window.blockSockets = true;
             window.sockets.forEach(function (s) { s.close(); }); return null",
            )
            .await;
        browser.wait("#live[data-state='offline']").await;
        gql.query(
            "mutation($id: ID!) { revokeInvitation(id: $id) { status } }",
            json!({ "id": first }),
        )
        .await
        .data();
        let (second, _) = invite(&gql, &company, json!({})).await;
        // Back up: what happened meanwhile arrives, without a reload.
        browser
            .eval("window.blockSockets = false; return null")
            .await;
        // The next attempt comes after the backoff (up to 10 s), which a loaded machine
        // stretches: a longer bound than the browser's 30 s.
        let b = &browser;
        eventually("the connection back up", WAIT, || async move {
            b.find_all("#live[data-state='live']").await.len() == 1
        })
        .await;
        browser
            .wait(&format!("tr[data-id='{first}'] [data-status='REVOKED']"))
            .await;
        browser.wait(&format!("tr[data-id='{second}']")).await;
        assert_eq!(browser.eval("return window.notReloaded").await, true);

        // A reconnect invitation for the company's connection, through the UI.
        browser
            .click(&format!("a[href='#/companies/{company}/reconnect']"))
            .await;
        browser.wait_heading("New reconnect invitation").await;
        assert_eq!(value(&browser, "#connection").await, connection);
        assert!(
            browser.find_all("[data-field^='prefill']").await.is_empty(),
            "a reconnect invitation has no prefill"
        );
        browser.fill("[data-field=maxUses]", "1").await;
        browser
            .click("#create-invitation button[type=submit]")
            .await;
        let link = value(&browser, "#created input.copy-value").await;
        assert!(link.contains("/p/i/"), "{link}");
        browser.click("#created a[href^='#/invitations/']").await;
        wait_text(&browser, "h1", "Reconnect invitation").await;
        let r = gql
        .query(
            "query($c: ID!) { invitations(companyId: $c, filter: { invitationType: EDIT_CONNECTION }) { nodes { connectionId maxUses } } }",
            json!({ "c": company }),
        )
        .await;
        assert_eq!(
            r.data()["invitations"]["nodes"],
            json!([{ "connectionId": connection, "maxUses": 1 }])
        );
        browser.close().await;
        app.stop().await;
    }
);

both!(a_failed_email_shows_its_smtp_reply, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let company = app::create_company(&gql, "Acme Co").await;
    app.smtp.set_mode(tests::smtp::Mode::reject_data(
        550,
        "5.1.1 mailbox unavailable",
    ));
    let (id, _) = invite(
        &gql,
        &company,
        json!({ "allowedEmails": ["gone@example.com"], "sendEmail": true }),
    )
    .await;
    let browser = signed_in(&app, 1280, 900).await;
    browser
        .goto(&format!("{}/console#/invitations/{id}", app.url))
        .await;
    // The page follows the invitation: the failure arrives while it is open.
    wait_text(
        &browser,
        "#timeline li[data-event='EMAIL_FAILED']",
        "SMTP reply: permanent error (550): 5.1.1 mailbox unavailable",
    )
    .await;
    wait_text(&browser, "#detail table", "mailbox unavailable").await;
    assert!(text(&browser, "#detail table").await.contains("FAILED"));
    assert_accessible(&browser, "a detail with a failed delivery").await;
    browser.close().await;

    // The table's "last activity" is the newest event of the log.
    let r = gql
        .query(
            "query($id: ID!) { invitation(id: $id) { lastActivityAt events { nodes { occurredAt } } } }",
            json!({ "id": id }),
        )
        .await;
    let invitation = &r.data()["invitation"];
    let newest = invitation["events"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["occurredAt"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .max()
        .unwrap();
    let last = chrono::DateTime::parse_from_rfc3339(invitation["lastActivityAt"].as_str().unwrap())
        .unwrap();
    assert_eq!(last, newest);
    app.stop().await;
});
