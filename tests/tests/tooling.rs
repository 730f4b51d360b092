//! Standard GraphQL tooling against the running server: graphql-js' own introspection query
//! loads the committed schema whatever the depth limit, and the `graphql-http` reference audit
//! of GraphQL over HTTP passes in full. graphql-js and graphql-http are the npm packages pinned in
//! `tests/browser/package-lock.json` (`tests/run` installs them with `npm ci`), run with `node`.
//!
//! One backend (SQLite): introspection, the depth limit and the HTTP layer answer before
//! anything reaches the database, so PostgreSQL would exercise nothing more.

use std::path::PathBuf;

use serde_json::{Value, json};
use tests::pg::Backend;

use crate::app;

/// graphql-js' standard introspection query, the exact text of graphql 16.15.0's
/// `getIntrospectionQuery({ descriptions: true, specifiedByUrl: true,
/// directiveIsRepeatable: true, schemaDescription: true, inputValueDeprecation: true })`
/// (written once with `node -e` in `tests/browser`; `client-schema.js` checks it still is).
const INTROSPECTION_QUERY: &str = include_str!("../browser/introspection-query.graphql");

fn browser_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// Runs `tests/browser/{script}` with `node` and returns what it printed, as JSON.
async fn node(script: &str, args: &[&str]) -> Value {
    let dir = browser_dir();
    assert!(
        dir.join("node_modules/graphql-http").is_dir() && dir.join("node_modules/graphql").is_dir(),
        "graphql and graphql-http are missing: run `npm ci` in tests/browser (tests/run does)"
    );
    let output = tokio::process::Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .current_dir(&dir)
        .output()
        .await
        .unwrap_or_else(|e| panic!("node {script}: {e}"));
    assert!(
        output.status.success(),
        "node {script} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "node {script} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standard_introspection_builds_the_committed_schema() {
    // The default limits (GRAPHQL_MAX_DEPTH=12 refused this query before).
    let app = app::spawn_api_only(Backend::Sqlite, |_| {}).await;
    let r = app.anon().query(INTROSPECTION_QUERY, json!({})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.errors().is_empty(), "{}", r.body);
    let answer = app.data_dir.join("introspection.json");
    std::fs::write(&answer, r.body.to_string()).unwrap();
    let schema = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schema.graphql");
    let query = browser_dir().join("introspection-query.graphql");
    let built = node(
        "client-schema.js",
        &[
            answer.to_str().unwrap(),
            schema.to_str().unwrap(),
            query.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        built["queryIsStandard"], true,
        "tests/browser/introspection-query.graphql is not graphql-js' standard query any more"
    );
    let client = built["client"].as_str().unwrap();
    let committed = built["committed"].as_str().unwrap();
    assert!(committed.contains("type Query"), "{committed}");
    assert!(
        client == committed,
        "the schema introspection answers differs from schema.graphql:\n{}",
        first_difference(client, committed)
    );
    app.stop().await;
}

/// The first line where two printed schemas part, with the line of each.
fn first_difference(client: &str, committed: &str) -> String {
    let mut committed_lines = committed.lines();
    for (n, line) in client.lines().enumerate() {
        let other = committed_lines.next();
        if other != Some(line) {
            return format!(
                "line {}: introspection `{line}`, schema.graphql `{}`",
                n + 1,
                other.unwrap_or("<end>")
            );
        }
    }
    format!("schema.graphql goes on: `{:?}`", committed_lines.next())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn depth_limit_spares_introspection_only() {
    let app = app::spawn_api_only(Backend::Sqlite, |env| {
        env.insert("GRAPHQL_MAX_DEPTH".into(), "2".into());
    })
    .await;
    let gql = app.gql();
    let accepted = [
        INTROSPECTION_QUERY,
        "{ viewer { organizationId } }",
        // Two nested lists of fields, as in the standard query's deepest corner.
        "{ __type(name: \"Query\") { fields { type { fields { name } } } } }",
        // Introspection reached through fragments at the operation's root.
        "query { ...Root } fragment Root on Query { ... on Query { __schema { types { name } } } }",
    ];
    for query in accepted {
        let r = gql.query(query, json!({})).await;
        assert!(r.errors().is_empty(), "{query}: {}", r.body);
    }
    let refused = [
        // Ordinary fields one level too deep.
        "{ viewer { organization { id } } }",
        // The same beside introspection, directly or through a fragment.
        "{ __schema { queryType { name } } viewer { organization { id } } }",
        "query { ...Root } fragment Root on Query { __typename viewer { organization { id } } }",
        // Lists of fields three deep multiply without end: refused as graphql-js does.
        "{ __type(name: \"Query\") { fields { type { fields { type { fields { name } } } } } } }",
        "{ __schema { types { ...T } } } fragment T on __Type { interfaces { possibleTypes { inputFields { name } } } }",
    ];
    for query in refused {
        let r = gql.query(query, json!({})).await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        r.assert_error("QUERY_TOO_COMPLEX", None);
        assert!(r.body.get("data").is_none(), "{query}: {}", r.body);
    }
    // A fragment that spreads itself ends the depth check and is refused by validation.
    let r = gql
        .query(
            "{ ...A } fragment A on Query { viewer { ...A } }",
            json!({}),
        )
        .await;
    r.assert_error("BAD_USER_INPUT", None);
    app.stop().await;

    // With introspection off, `__schema` answers null and counts like any other field.
    let app = app::spawn_api_only(Backend::Sqlite, |env| {
        env.insert("GRAPHQL_MAX_DEPTH".into(), "2".into());
        env.insert("GRAPHQL_INTROSPECTION".into(), "false".into());
    })
    .await;
    let r = app
        .gql()
        .query("{ __schema { types { fields { name } } } }", json!({}))
        .await;
    r.assert_error("QUERY_TOO_COMPLEX", None);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn graphql_over_http_audit_passes_in_full() {
    let app = app::spawn_api_only(Backend::Sqlite, |_| {}).await;
    let results = node("http-audit.js", &[&app.gql().endpoint()]).await;
    let results = results.as_array().unwrap();
    let failed: Vec<&Value> = results.iter().filter(|r| r["status"] != "ok").collect();
    assert!(
        failed.is_empty(),
        "{} of {} audits failed:\n{}",
        failed.len(),
        results.len(),
        serde_json::to_string_pretty(&failed).unwrap()
    );
    // graphql-http 1.23.1 has 61 server audits (MUST, SHOULD and MAY).
    assert_eq!(results.len(), 61);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn variables_and_extensions_that_are_not_maps_are_bad_requests() {
    let app = app::spawn_api_only(Backend::Sqlite, |_| {}).await;
    let gql = app.gql();
    let client = reqwest::Client::new();
    for what in ["variables", "extensions"] {
        for value in [
            json!("string"),
            json!(0),
            json!(-1.5),
            json!(false),
            json!(["array", { "a": 1 }]),
        ] {
            let r = gql
                .post(json!({ "query": "{ __typename }", what: value }))
                .await;
            assert_eq!(r.status, 400, "{what} {value}: {}", r.body);
            r.assert_error("BAD_USER_INPUT", None);
            let expected = format!("{what} must be an object");
            assert_eq!(r.error_message().as_deref(), Some(expected.as_str()));
            // The same over GET, under either media type.
            for accept in ["application/json", "application/graphql-response+json"] {
                let r = client
                    .get(gql.endpoint())
                    .query(&[
                        ("query", "{ __typename }".to_owned()),
                        (what, value.to_string()),
                    ])
                    .header("accept", accept)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 400, "{what} {value} ({accept})");
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
            }
        }
        // A map, or null, is fine.
        for value in [json!({ "some": "value" }), Value::Null] {
            let r = gql
                .post(json!({ "query": "{ __typename }", what: value }))
                .await;
            assert_eq!(r.data()["__typename"], "Query", "{what} {value}");
        }
    }
    // Variables arrive whole, nested values and all: the input object's enum value is checked
    // against its type, and the refusal names it.
    let r = gql
        .post(json!({
            "query": "query($f: InvitationFilter) { invitations(companyId: \"x\", filter: $f) { totalCount } }",
            "variables": { "f": { "status": "NOT_A_STATUS" } },
        }))
        .await;
    assert!(
        r.error_message()
            .is_some_and(|message| message.contains("NOT_A_STATUS")),
        "the nested variable reached validation: {}",
        r.body
    );
    app.stop().await;
}
