//! Abuse resistance: limits that a flood cannot reset, guessing that locks out, an allow-list
//! that cannot be probed, clients behind proxies, bounded connections and queries, nothing
//! leaked by validation errors, private files, and configuration that refuses to weaken.

use std::collections::HashMap;
use std::time::Duration;

use entity::entities::{email_deliveries, invitation_events, invitations, maintenance};
use entity::{DeliveryKind, DeliveryStatus};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use tests::graphql::{Gql, GqlResponse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::app::{self, TestApp, invite};
use crate::both;

const REQUEST_CODE: &str =
    "mutation($t: String!, $e: String!) { requestEmailVerification(token: $t, email: $e) }";
const VERIFY: &str = "mutation($t: String!, $e: String!, $c: String!) {
    verifyEmail(token: $t, email: $e, code: $c) { grant } }";

/// A client that says it is `ip` through a trusted proxy's `X-Forwarded-For`.
fn from(app: &TestApp, ip: &str) -> Gql {
    app.anon().with_header("x-forwarded-for", ip)
}

fn reason(r: &GqlResponse) -> String {
    let e = &r.body["errors"][0]["extensions"];
    format!(
        "{}/{}",
        e["code"].as_str().unwrap_or("none"),
        e["reason"].as_str().unwrap_or("-")
    )
}

/// The code in the newest verification email to `to` (after `n` emails in all arrived).
async fn code_for(app: &TestApp, n: usize, to: &str) -> String {
    let messages = app.wait_for_mail(n, Duration::from_secs(30)).await;
    messages
        .iter()
        .rev()
        .filter(|m| m.is_to(to))
        .find_map(|m| {
            let text = m.mail().text()?;
            text.split(|c: char| !c.is_ascii_digit())
                .find(|w| w.len() == 6)
                .map(str::to_owned)
        })
        .expect("a code in the email")
}

/// The token of a new invitation whose allow-list is `ann@example.com`.
async fn gated_invitation(app: &TestApp) -> String {
    let c = app::create_company(&app.gql(), "Acme Co").await;
    let allowed = json!({ "allowedEmails": ["ann@example.com"] });
    invite(&app.gql(), &c, allowed).await.1
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" { "111111" } else { "000000" }
}

both!(
    a_flood_does_not_reset_the_code_limit,
    |backend| async move {
        let app = app::spawn_with(backend, |env| {
            env.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
            env.insert("RATE_LIMIT_MAX_KEYS".into(), "100".into());
        })
        .await;
        let client = from(&app, "198.51.100.7");
        // The code limit counts in windows of ten minutes aligned to the clock: a run that
        // straddles a window's end starts afresh in the next one (a CI run met one), so it is
        // run once more then, on a new invitation, with a whole window ahead of it.
        let window = || {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_secs() / api::ratelimit::CODES_PER_EMAIL.window.as_secs()
        };
        let mut attempt = 0;
        let sixth = loop {
            attempt += 1;
            let started = window();
            // Three times more client addresses than a store holds, each asking about made-up
            // tokens.
            let flood: String = (0..10)
                .map(|i| {
                    format!("f{i}: publicInvitation(token: \"made-up-{attempt}-{i}\") {{ companyName }} ")
                })
                .collect();
            let token = gated_invitation(&app).await;
            let ask = json!({ "t": token, "e": "ann@example.com" });
            for _ in 0..5 {
                assert_eq!(
                    client.query(REQUEST_CODE, ask.clone()).await.data()["requestEmailVerification"],
                    true
                );
            }
            for n in 0..300 {
                let r = from(&app, &format!("10.0.{}.{}", n / 250, n % 250 + 1))
                    .query(&format!("{{ {flood} }}"), json!({}))
                    .await;
                assert_eq!(r.error_code().as_deref(), Some("NOT_FOUND"), "{}", r.body);
            }
            let sixth = client.query(REQUEST_CODE, ask).await;
            if window() == started {
                break sixth;
            }
        };
        sixth.assert_error("RATE_LIMITED", None);
        app.stop().await;
    }
);

both!(guesses_add_up_per_invitation, |backend| async move {
    let app = app::spawn(backend).await;
    let c = app::create_company(&app.gql(), "Acme Co").await;
    let listed: Vec<String> = (0..6).map(|i| format!("a{i}@example.com")).collect();
    let token = invite(&app.gql(), &c, json!({ "allowedEmails": listed }))
        .await
        .1;
    let public = app.anon();
    let mut emails = 0;
    let mut judged = 0;
    // Five addresses use up their ten guesses each, over two codes apiece: fifty in all.
    for address in &listed[..5] {
        for _ in 0..2 {
            public
                .query(REQUEST_CODE, json!({ "t": token, "e": address }))
                .await
                .data();
            emails += 1;
            let code = code_for(&app, emails, address).await;
            loop {
                let r = public
                    .query(
                        VERIFY,
                        json!({ "t": token, "e": address, "c": wrong(&code) }),
                    )
                    .await;
                match reason(&r).as_str() {
                    "EMAIL_NOT_VERIFIED/INVALID_CODE" => judged += 1,
                    "EMAIL_NOT_VERIFIED/TOO_MANY_ATTEMPTS" => break,
                    other => panic!("unexpected {other}: {}", r.body),
                }
                assert!(judged <= 50, "more than 50 wrong guesses judged");
            }
        }
    }
    assert_eq!(judged, 50, "ten guesses for each of five addresses");
    // The invitation has had its fifty: a sixth address's right code is refused too.
    let address = &listed[5];
    public
        .query(REQUEST_CODE, json!({ "t": token, "e": address }))
        .await
        .data();
    let code = code_for(&app, emails + 1, address).await;
    let r = public
        .query(VERIFY, json!({ "t": token, "e": address, "c": code }))
        .await;
    assert_eq!(reason(&r), "EMAIL_NOT_VERIFIED/TOO_MANY_ATTEMPTS");
    app.stop().await;
});

both!(guesses_add_up_across_codes, |backend| async move {
    let app = app::spawn(backend).await;
    let token = gated_invitation(&app).await;
    let public = app.anon();
    let mut judged = 0;
    let mut last = String::new();
    for n in 1..=5 {
        public
            .query(REQUEST_CODE, json!({ "t": token, "e": "ann@example.com" }))
            .await
            .data();
        last = code_for(&app, n, "ann@example.com").await;
        // Guess until the gate stops judging.
        loop {
            let r = public
                .query(
                    VERIFY,
                    json!({ "t": token, "e": "ann@example.com", "c": wrong(&last) }),
                )
                .await;
            match reason(&r).as_str() {
                "EMAIL_NOT_VERIFIED/INVALID_CODE" => judged += 1,
                "EMAIL_NOT_VERIFIED/TOO_MANY_ATTEMPTS" => break,
                other => panic!("unexpected {other}: {}", r.body),
            }
            assert!(judged <= 10, "more than 10 wrong guesses judged");
        }
    }
    assert_eq!(judged, 10, "five codes, ten guesses in all");
    // Even the right code is refused until the window has passed.
    let r = public
        .query(
            VERIFY,
            json!({ "t": token, "e": "ann@example.com", "c": last }),
        )
        .await;
    assert_eq!(reason(&r), "EMAIL_NOT_VERIFIED/TOO_MANY_ATTEMPTS");
    app.stop().await;
});

both!(
    listed_and_unlisted_addresses_answer_alike,
    |backend| async move {
        let app = app::spawn(backend).await;
        let token = gated_invitation(&app).await;
        let public = app.anon();
        // A guess that is wrong for the listed address's codes (which only its mailbox knows).
        let mut sequences: HashMap<&str, Vec<serde_json::Value>> = HashMap::new();
        for (email, n) in [("ann@example.com", 1), ("eve@example.com", 1)] {
            let mut answers = Vec::new();
            let guess = |code: &str| wrong(code).to_owned();
            answers.push(
                public
                    .query(VERIFY, json!({ "t": token, "e": email, "c": "123456" }))
                    .await
                    .body,
            );
            answers.push(
                public
                    .query(REQUEST_CODE, json!({ "t": token, "e": email }))
                    .await
                    .body,
            );
            let ann_code = code_for(&app, n, "ann@example.com").await;
            for _ in 0..6 {
                answers.push(
                    public
                        .query(
                            VERIFY,
                            json!({ "t": token, "e": email, "c": guess(&ann_code) }),
                        )
                        .await
                        .body,
                );
            }
            sequences.insert(email, answers);
        }
        let ann = &sequences["ann@example.com"];
        assert_eq!(ann, &sequences["eve@example.com"]);
        let reasons: Vec<&str> = ann
            .iter()
            .map(|b| {
                b["errors"][0]["extensions"]["reason"]
                    .as_str()
                    .unwrap_or("-")
            })
            .collect();
        assert_eq!(
            reasons,
            [
                "INVALID_CODE",
                "-",
                "INVALID_CODE",
                "INVALID_CODE",
                "INVALID_CODE",
                "INVALID_CODE",
                "INVALID_CODE",
                "TOO_MANY_ATTEMPTS"
            ]
        );
        // Only the listed address got mail. The other's code request wrote the same outbox
        // row, withheld: FAILED, never queued, saying why.
        let all = app.wait_for_mail(1, Duration::from_secs(5)).await;
        assert!(all.iter().all(|m| !m.is_to("eve@example.com")));
        let rows = email_deliveries::Entity::find()
            .filter(email_deliveries::Column::Kind.eq(DeliveryKind::VerificationCode))
            .all(&app.db)
            .await
            .unwrap();
        let by = |to: &str| {
            rows.iter()
                .find(|r| r.recipient == to)
                .map(|r| (r.status, r.attempts, r.last_error.clone()))
        };
        assert_eq!(rows.len(), 2);
        // Sent, or about to be recorded as sent.
        assert!(matches!(
            by("ann@example.com"),
            Some((DeliveryStatus::Sent | DeliveryStatus::Pending, _, None))
        ));
        assert_eq!(
            by("eve@example.com"),
            Some((
                DeliveryStatus::Failed,
                0,
                Some(entity::recipient::NOT_LISTED.to_owned())
            ))
        );
        app.stop().await;
    }
);

/// The per-client limit counts in fixed one-minute windows: a check that follows the request
/// that filled a window must not fall into the next one. Waits out the last 10 s of a window.
async fn minute_to_spare() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now % 60 >= 50 {
        tokio::time::sleep(Duration::from_secs(60 - now % 60)).await;
    }
}

both!(
    clients_are_told_apart_behind_trusted_proxies_only,
    |backend| async move {
        let app = app::spawn_with(backend, |env| {
            env.insert("TRUSTED_PROXIES".into(), "127.0.0.0/8".into());
        })
        .await;
        // 301 public fields in one request: the per-client limit is 300 a minute.
        let wide: String = (0..301)
            .map(|i| format!("f{i}: publicInvitation(token: \"x{i}\") {{ companyName }} "))
            .collect();
        let wide = format!("{{ {wide} }}");
        let exhaust = |client: Gql| {
            let wide = wide.clone();
            async move {
                minute_to_spare().await;
                let r = client.query(&wide, json!({})).await;
                assert!(
                    r.error_codes().iter().any(|c| c == "RATE_LIMITED"),
                    "{}",
                    r.body
                );
            }
        };
        let one = "{ publicInvitation(token: \"nope\") { companyName } }";
        let limited = |r: GqlResponse| r.error_code().as_deref() == Some("RATE_LIMITED");

        // The right-most address a trusted hop reports is the client; what it wrote itself is not.
        exhaust(from(&app, "1.2.3.4, 203.0.113.1")).await;
        assert!(limited(
            from(&app, "203.0.113.1").query(one, json!({})).await
        ));
        assert!(!limited(from(&app, "1.2.3.4").query(one, json!({})).await));
        assert!(!limited(
            from(&app, "203.0.113.2").query(one, json!({})).await
        ));
        // IPv6 clients count by their /64.
        exhaust(from(&app, "2001:db8:0:1::1")).await;
        assert!(limited(
            from(&app, "2001:db8:0:1:ffff::9")
                .query(one, json!({}))
                .await
        ));
        assert!(!limited(
            from(&app, "2001:db8:0:2::1").query(one, json!({})).await
        ));
        // The `Forwarded` header is read as well.
        let forwarded = app
            .anon()
            .with_header("forwarded", "for=\"[2001:db8:0:1::5]:443\"");
        assert!(limited(forwarded.query(one, json!({})).await));
        app.stop().await;

        // By default nobody is trusted: the header changes nothing, all share the socket's bucket.
        let app = app::spawn(backend).await;
        exhaust(from(&app, "203.0.113.1")).await;
        assert!(limited(
            from(&app, "203.0.113.77").query(one, json!({})).await
        ));
        app.stop().await;
    }
);

#[tokio::test]
async fn trickling_clients_are_cut_off() {
    let app = app::spawn_with(tests::pg::Backend::Sqlite, |env| {
        env.insert("HTTP_HEADER_TIMEOUT_SECONDS".into(), "1".into());
        env.insert("HTTP_REQUEST_TIMEOUT_SECONDS".into(), "1".into());
    })
    .await;
    let address = app.url.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(b"POST /graphql HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header line every 200 ms, for up to a minute: far longer than the timeout.
    let mut closed = false;
    let mut buffer = [0u8; 1024];
    for i in 0..300 {
        let line = format!("x-slow-{i}: a\r\n");
        if socket.write_all(line.as_bytes()).await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buffer)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => {
                let answer = String::from_utf8_lossy(&buffer[..n]);
                assert!(!answer.starts_with("HTTP/1.1 2"), "{answer}");
            }
        }
    }
    assert!(closed, "the server kept a trickling client for a minute");

    // A body sent as slowly is cut off by the request timeout, with 408.
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(
            b"POST /graphql HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    for _ in 0..300 {
        if socket.write_all(b" ").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buffer)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                answer.extend_from_slice(&buffer[..n]);
                break;
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // Well-behaved clients are still served.
    app.gql()
        .query("{ viewer { organizationId } }", json!({}))
        .await
        .data();
    app.stop().await;
}

/// A client may shut its sending side once its request is out (a half-close) and still read the
/// answer; the request runs to its end rather than being dropped when the server sees the
/// client's end of stream, so a mutation is not cut off between its statements.
#[tokio::test]
async fn a_client_that_stops_sending_still_gets_its_answer() {
    let app = app::spawn(tests::pg::Backend::Sqlite).await;
    let address = app.url.trim_start_matches("http://").to_owned();
    let body = json!({ "query": "mutation { createCompany(input: { name: \"Half closed\" }) { id name } }" })
        .to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
         x-api-key: {}\r\ncontent-length: {}\r\n\r\n{body}",
        app.api_key,
        body.len()
    );
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    socket.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut answer))
        .await
        .expect("the server answered and closed the connection")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let created: serde_json::Value = serde_json::from_str(body).expect("a JSON answer");
    let id = created["data"]["createCompany"]["id"].clone();
    assert_eq!(created["data"]["createCompany"]["name"], "Half closed");
    // The company it answered with exists.
    let read = app
        .gql()
        .query(
            "query($id: ID!) { company(id: $id) { name } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(read.data()["company"]["name"], "Half closed");
    app.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait() {
    let app = app::spawn_with(tests::pg::Backend::Sqlite, |env| {
        env.insert("HTTP_MAX_CONNECTIONS".into(), "2".into());
    })
    .await;
    let address = app.url.trim_start_matches("http://").to_owned();
    // Two connections that have started a request take both places.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
        socket
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        held.push(socket);
    }
    let mut third = tokio::net::TcpStream::connect(&address).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    // No answer while both places are taken (a slow machine can only make this wait longer).
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buffer)).await;
    assert!(early.is_err(), "a third connection was served past the cap");
    drop(held);
    let n = tokio::time::timeout(Duration::from_secs(30), third.read(&mut buffer))
        .await
        .expect("served once a place is free")
        .unwrap();
    let answer = String::from_utf8_lossy(&buffer[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}

both!(lists_are_paged_and_priced, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let mut ids = Vec::new();
    for name in ["One", "Two", "Three"] {
        ids.push(app::create_company(&gql, name).await);
    }
    let page = |first: i64, after: Option<&str>| {
        let gql = gql.clone();
        let after = after.map(str::to_owned);
        async move {
            let r = gql
                .query(
                    "query($f: Int, $a: ID) { companies(first: $f, after: $a) { id } }",
                    json!({ "f": first, "a": after }),
                )
                .await;
            r.data()["companies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(page(2, None).await, ids[..2]);
    assert_eq!(page(2, Some(&ids[1])).await, ids[2..]);
    assert!(page(2, Some(&ids[2])).await.is_empty());
    gql.query("{ companies(first: 101) { id } }", json!({}))
        .await
        .assert_error("BAD_USER_INPUT", Some("first"));

    // Nested lists return their first rows, for each parent on its own.
    let mut sites = Vec::new();
    for (company, name) in [
        (&ids[0], "a"),
        (&ids[0], "b"),
        (&ids[0], "c"),
        (&ids[1], "d"),
    ] {
        let r = gql
            .query(
                "mutation($c: ID!, $n: String!) { createSite(companyId: $c, input: { name: $n }) { id } }",
                json!({ "c": company, "n": name }),
            )
            .await;
        sites.push(r.data()["createSite"]["id"].as_str().unwrap().to_owned());
    }
    let r = gql
        .query(
            "{ companies(first: 2) { sites(first: 2) { id } all: sites { id } } }",
            json!({}),
        )
        .await;
    let site_ids = |company: usize, field: &str| {
        r.data()["companies"][company][field]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(site_ids(0, "sites"), sites[..2]);
    assert_eq!(site_ids(0, "all"), sites[..3]);
    assert_eq!(site_ids(1, "sites"), sites[3..]);

    // 2,000 aliased lists are refused before anything runs.
    let aliased: String = (0..2000)
        .map(|i| format!("c{i}: companies {{ id }} "))
        .collect();
    let r = gql.query(&format!("{{ {aliased} }}"), json!({})).await;
    r.assert_error("QUERY_TOO_COMPLEX", None);
    let nested: String = (0..500)
        .map(|i| format!("s{i}: company(id: \"{}\") {{ sites {{ id }} }} ", ids[0]))
        .collect();
    let r = gql.query(&format!("{{ {nested} }}"), json!({})).await;
    r.assert_error("QUERY_TOO_COMPLEX", None);
    app.stop().await;
});

#[tokio::test]
async fn validation_names_no_hidden_field_when_introspection_is_off() {
    let typo = "{ invitatio(id: \"00000000-0000-0000-0000-000000000000\") { id } }";
    let app = app::spawn(tests::pg::Backend::Sqlite).await;
    let open = app.gql().query(typo, json!({})).await;
    assert!(
        open.body.to_string().contains("Did you mean"),
        "{}",
        open.body
    );
    app.stop().await;

    let app = app::spawn_with(tests::pg::Backend::Sqlite, |env| {
        env.insert("GRAPHQL_INTROSPECTION".into(), "false".into());
    })
    .await;
    for query in [
        typo,
        "{ companies { nam } }",
        "mutation { createCompan(input: {name: \"x\"}) { id } }",
        "{ viewer { organizationId invitations } }",
    ] {
        let r = app.gql().query(query, json!({})).await;
        r.assert_error("BAD_USER_INPUT", None);
        let text = r.body.to_string();
        for hidden in [
            "Did you mean",
            "\\\"invitation\\\"",
            "\\\"name\\\"",
            "createCompany",
            "publicInvitation",
        ] {
            assert!(!text.contains(hidden), "{query}: {text}");
        }
    }
    app.stop().await;
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_folder_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let data = app::temp_dir().join("data");
    let data_env = data.display().to_string();
    let app = app::spawn_with(tests::pg::Backend::Sqlite, |env| {
        env.insert("DATA_DIR".into(), data_env);
        for key in ["DATABASE_URL", "SMTP_URL", "SECRET_KEY"] {
            env.remove(key);
        }
    })
    .await;
    let c = app::create_company(&app.gql(), "Acme Co").await;
    invite(
        &app.gql(),
        &c,
        json!({ "allowedEmails": ["ann@example.com"], "sendEmail": true }),
    )
    .await;
    let outbox = data.join("outbox");
    let eml = tests::poll::eventually("an .eml file", Duration::from_secs(30), || {
        let outbox = outbox.clone();
        async move {
            std::fs::read_dir(&outbox)
                .ok()?
                .filter_map(Result::ok)
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        }
    })
    .await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&outbox), 0o700);
    assert_eq!(mode(&eml), 0o600, "{}", eml.display());
    let files: Vec<_> = std::fs::read_dir(&data)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.path())
        .collect();
    for name in ["invitations.db", "queue.db", "secret.key"] {
        assert!(
            files.iter().any(|f| f.ends_with(name)),
            "{name} in {files:?}"
        );
    }
    for file in &files {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    app.stop().await;
}

#[test]
fn plain_smtp_to_a_remote_host_is_a_configuration_error() {
    let dir = app::temp_dir();
    let env: HashMap<String, String> = [
        ("DATA_DIR", dir.join("data").display().to_string()),
        ("LOG_LEVEL", "error".into()),
        ("SMTP_URL", "smtp://user:hunter2@mail.example.com:25".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let out = app::run_binary(&env, &["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("configuration error: SMTP_URL:") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

both!(sealed_values_are_bound_to_their_row, |backend| async move {
    let app = app::spawn(backend).await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let (a, _) = invite(&gql, &c, json!({})).await;
    let (b, _) = invite(&gql, &c, json!({})).await;
    let (old, old_token) = invite(&gql, &c, json!({})).await;
    let row = |id: &str| {
        let db = app.db.clone();
        let id: uuid::Uuid = id.parse().unwrap();
        async move {
            invitations::Entity::find_by_id(id)
                .one(&db)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let set_sealed = |id: &str, value: String| {
        let db = app.db.clone();
        let id: uuid::Uuid = id.parse().unwrap();
        async move {
            invitations::Entity::update_many()
                .col_expr(invitations::Column::TokenSealed, Expr::value(value))
                .filter(invitations::Column::Id.eq(id))
                .exec(&db)
                .await
                .unwrap();
        }
    };
    let url = "query($id: ID!) { invitation(id: $id) { invitationUrl } }";
    // A database writer copies A's sealed link into B's row: it no longer opens.
    set_sealed(&b, row(&a).await.token_sealed).await;
    gql.query(url, json!({ "id": b }))
        .await
        .assert_error("INTERNAL_SERVER_ERROR", None);

    // A value sealed the old way (no binding) is re-sealed when a process starts.
    let keys = entity::crypto::Keyring::new(app::SECRET_KEY.as_bytes());
    set_sealed(&old, keys.seal_unbound(old_token.as_bytes()).unwrap()).await;
    maintenance::Entity::delete_many()
        .exec(&app.db)
        .await
        .unwrap();
    gql.query(url, json!({ "id": old }))
        .await
        .assert_error("INTERNAL_SERVER_ERROR", None);
    let peer = app::spawn_peer(
        &app,
        |_| {},
        api::startup::Roles {
            http: false,
            workers: false,
        },
    )
    .await;
    peer.stop().await;
    assert!(row(&old).await.token_sealed.starts_with("v2."));
    let r = gql.query(url, json!({ "id": old })).await;
    assert!(
        r.data()["invitation"]["invitationUrl"]
            .as_str()
            .unwrap()
            .ends_with(&old_token)
    );
    app.stop().await;
});

#[tokio::test]
async fn webhooks_cannot_target_teredo_or_local_nat64() {
    let app = app::spawn(tests::pg::Backend::Sqlite).await;
    for url in [
        "https://[2001::a00:1]/hook",
        "https://[64:ff9b:1::a00:1]/hook",
    ] {
        app.gql()
            .query(
                "mutation($u: String!) { createWebhookEndpoint(input: {url: $u, eventTypes: [\"invitation.created\"]}) { endpoint { id } } }",
                json!({ "u": url }),
            )
            .await
            .assert_error("BAD_USER_INPUT", Some("url"));
    }
    app.stop().await;
}

both!(an_organization_has_an_email_quota, |backend| async move {
    let app = app::spawn_with(backend, |env| {
        env.insert("EMAIL_ORGANIZATION_HOURLY_LIMIT".into(), "3".into());
    })
    .await;
    let gql = app.gql();
    let c = app::create_company(&gql, "Acme Co").await;
    let two = json!({ "allowedEmails": ["a@example.com", "b@example.com"], "sendEmail": true });
    let (first, _) = invite(&gql, &c, two.clone()).await;
    let create = "mutation($c: ID!, $i: InvitationInput!) {
        createContributorInvitation(companyId: $c, input: $i) { id } }";
    let r = gql.query(create, json!({ "c": c, "i": two })).await;
    r.assert_error("RATE_LIMITED", None);
    assert!(
        r.body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Nothing of the refused request was kept.
    let count = invitations::Entity::find().count(&app.db).await.unwrap();
    assert_eq!(count, 1);
    gql.query(
        "mutation($id: ID!) { resendInvitation(id: $id) { id } }",
        json!({ "id": first }),
    )
    .await
    .assert_error("RATE_LIMITED", None);
    // Without email the organization works on.
    invite(&gql, &c, json!({ "allowedEmails": ["a@example.com"] })).await;
    app.stop().await;
});

both!(a_link_holder_cannot_fill_the_log, |backend| async move {
    let app = app::spawn(backend).await;
    let c = app::create_company(&app.gql(), "Acme Co").await;
    let (id, token) = invite(&app.gql(), &c, json!({})).await;
    for _ in 0..15 {
        let r = app
            .anon()
            .query(
                "mutation($t: String!) { recordInvitationView(token: $t) }",
                json!({ "t": token }),
            )
            .await;
        assert_eq!(r.data()["recordInvitationView"], true);
    }
    let views = invitation_events::Entity::find()
        .filter(invitation_events::Column::InvitationId.eq(id.parse::<uuid::Uuid>().unwrap()))
        .filter(invitation_events::Column::EventType.eq(entity::EventType::Viewed))
        .count(&app.db)
        .await
        .unwrap();
    assert_eq!(views, 10);
    app.stop().await;
});

/// Fragments that each spread the next twice expand to 2^n fields from a document of a few
/// hundred bytes; `__typename` costs no complexity and the depth stays small. Refused before
/// validation (which would do the exponential work), while a document of the same shape that
/// stays small is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fragments_that_expand_exponentially_are_refused() {
    let app = app::spawn_api_only(tests::pg::Backend::Sqlite, |_| {}).await;
    let chain = |levels: usize| {
        let mut doc = String::from("query { ...F0 }");
        for i in 0..levels {
            doc.push_str(&format!(
                " fragment F{i} on Query {{ ...F{next} a{i}: __typename ...F{next} }}",
                next = i + 1
            ));
        }
        doc.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
        doc
    };
    let gql = app.gql();
    let small = gql.query(&chain(4), json!({})).await;
    assert!(small.errors().is_empty(), "{}", small.body);
    let huge = gql.query(&chain(25), json!({})).await;
    huge.assert_error("QUERY_TOO_COMPLEX", None);
    assert!(huge.body.get("data").is_none(), "{}", huge.body);
    // The same doubling through a cycle is refused as the cycle it is, before anything walks it.
    let cycle = gql
        .query(
            "query { ...A } fragment A on Query { ...B ...B } fragment B on Query { ...A ...A }",
            json!({}),
        )
        .await;
    cycle.assert_error("BAD_USER_INPUT", None);
    app.stop().await;
}

both!(
    renewal_requests_are_limited_per_address,
    |backend| async move {
        let app = app::spawn_api_only(backend, |_| {}).await;
        let gql = app.gql();
        let company = app::create_company(&gql, "Renewals").await;
        let (id, token) = invite(
        &gql,
        &company,
        json!({ "expiresInSeconds": 60, "allowedEmails": ["late@example.com", "later@example.com"] }),
    )
    .await;
        invitations::Entity::update_many()
            .col_expr(
                invitations::Column::ExpiresAt,
                Expr::value(entity::now() - chrono::Duration::seconds(1)),
            )
            .filter(invitations::Column::Id.eq(id.parse::<uuid::Uuid>().unwrap()))
            .exec(&app.db)
            .await
            .unwrap();
        let renew =
            "mutation($t: String!, $e: String!) { requestInvitationRenewal(token: $t, email: $e) }";
        let public = app.anon();
        for _ in 0..3 {
            let r = public
                .query(renew, json!({ "t": token, "e": "late@example.com" }))
                .await;
            assert_eq!(r.data()["requestInvitationRenewal"], true);
        }
        // The fourth request from the same address within the hour is refused and records nothing.
        let refused = public
            .query(renew, json!({ "t": token, "e": "late@example.com" }))
            .await;
        refused.assert_error("RATE_LIMITED", None);
        // Another listed address has its own allowance.
        let other = public
            .query(renew, json!({ "t": token, "e": "later@example.com" }))
            .await;
        assert_eq!(other.data()["requestInvitationRenewal"], true);
        let requested = invitation_events::Entity::find()
            .filter(invitation_events::Column::InvitationId.eq(id.parse::<uuid::Uuid>().unwrap()))
            .filter(invitation_events::Column::EventType.eq(entity::EventType::RenewalRequested))
            .count(&app.db)
            .await
            .unwrap();
        // Three from the first address, one from the second, none from the refused request.
        assert_eq!(requested, 4, "renewal events");
        app.stop().await;
    }
);
