//! Listed and unlisted addresses timed side by side at the email gate: `tests/bench/run gate`.
//!
//! The allow-list must not be readable from how long the gate takes to answer. A release
//! `serve --no-workers` process (PostgreSQL + Redis, then the embedded default) holds
//! `INVITATIONS` invitations whose allow-list is one address. For each of `ROUNDS` rounds and
//! each invitation, the listed and an unlisted address each ask for a code
//! (`requestEmailVerification`), then each sends one wrong code (`verifyEmail`); which of the
//! two goes first alternates, and every request comes from its own client address (through
//! `TRUSTED_PROXIES`), so no limit is reached and the samples interleave. Requests are sent one
//! at a time over one kept-alive connection.
//!
//! Reported per operation: the median and p90 of each class and the difference of the medians
//! with a 95 % bootstrap interval, beside the same figures for two halves of the listed class
//! (even against odd invitations): the noise a difference has to stand out from. Needs
//! PostgreSQL and Redis (`TEST_DATABASE_URL`, `TEST_REDIS_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tests::graphql::Gql;
use tests::pg::{Backend, TestDatabase};
use tests::release::Server;

const INVITATIONS: usize = 300;
const ROUNDS: usize = 5;
const BATCH: usize = 100;
const LISTED: &str = "listed@example.com";
const UNLISTED: &str = "unlisted@example.com";
const REQUEST_CODE: &str =
    "mutation($t: String!, $e: String!) { requestEmailVerification(token: $t, email: $e) }";
const VERIFY: &str = "mutation($t: String!, $e: String!, $c: String!) {
    verifyEmail(token: $t, email: $e, code: $c) { grant } }";

/// Samples of one operation, split by class and by the invitation's parity.
#[derive(Default)]
struct Samples {
    listed: [Vec<Duration>; 2],
    unlisted: [Vec<Duration>; 2],
}

impl Samples {
    fn push(&mut self, listed: bool, invitation: usize, took: Duration) {
        let class = if listed {
            &mut self.listed
        } else {
            &mut self.unlisted
        };
        class[invitation % 2].push(took);
    }
}

/// A small deterministic generator for the bootstrap (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

fn micros(d: &[Duration]) -> Vec<f64> {
    d.iter().map(|d| d.as_secs_f64() * 1e6).collect()
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// The difference of the medians of `a` and `b` (µs) and its 95 % bootstrap interval.
fn median_difference(a: &[f64], b: &[f64], rng: &mut Rng) -> (f64, f64, f64) {
    let resample = |v: &[f64], rng: &mut Rng| -> Vec<f64> {
        (0..v.len()).map(|_| v[rng.below(v.len())]).collect()
    };
    let mut diffs: Vec<f64> = (0..2_000)
        .map(|_| quantile(&resample(a, rng), 0.5) - quantile(&resample(b, rng), 0.5))
        .collect();
    diffs.sort_by(f64::total_cmp);
    (quantile(a, 0.5) - quantile(b, 0.5), diffs[50], diffs[1_949])
}

fn report(backend: &str, operation: &str, s: &Samples) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let listed = micros(&[s.listed[0].clone(), s.listed[1].clone()].concat());
    let unlisted = micros(&[s.unlisted[0].clone(), s.unlisted[1].clone()].concat());
    let (d, lo, hi) = median_difference(&listed, &unlisted, &mut rng);
    let (nd, nlo, nhi) = median_difference(&micros(&s.listed[0]), &micros(&s.listed[1]), &mut rng);
    println!(
        "{backend:<10} {operation:<26} n={:>5}+{:<5} listed p50 {:>7.0} p90 {:>7.0} | unlisted p50 {:>7.0} p90 {:>7.0} | listed-unlisted {:>+6.0} [{:>+5.0}, {:>+5.0}] | listed even-odd {:>+6.0} [{:>+5.0}, {:>+5.0}] µs",
        listed.len(),
        unlisted.len(),
        quantile(&listed, 0.5),
        quantile(&listed, 0.9),
        quantile(&unlisted, 0.5),
        quantile(&unlisted, 0.9),
        d,
        lo,
        hi,
        nd,
        nlo,
        nhi,
    );
}

/// One timed request from client address number `n`.
async fn timed(gql: &Gql, n: usize, query: &str, variables: Value) -> (Duration, Value) {
    let client = gql.with_header(
        "x-forwarded-for",
        &format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255),
    );
    let started = Instant::now();
    let response = client.query(query, variables).await;
    (started.elapsed(), response.body)
}

async fn run(backend: Backend) {
    let database = TestDatabase::new(backend).await;
    let redis = tests::redis_env::redis_url();
    let prefix = tests::redis_env::unique_prefix();
    let mut env = vec![
        ("DATABASE_URL", database.url()),
        ("TRUSTED_PROXIES", "127.0.0.1"),
    ];
    if backend == Backend::Postgres {
        tests::redis_env::require_redis(&redis).await;
        env.extend([("REDIS_URL", redis.as_str()), ("REDIS_KEY_PREFIX", &prefix)]);
    }
    let server = Server::start(&env).await;
    let (gql, company) = server.organization_with_company().await;
    let mut tokens = Vec::new();
    for _ in 0..INVITATIONS / BATCH {
        let inputs = vec![json!({ "allowedEmails": [LISTED] }); BATCH];
        let r = gql
            .query(
                "mutation($c: ID!, $i: [InvitationInput!]!) { createContributorInvitations(companyId: $c, inputs: $i) { token } }",
                json!({ "c": company, "i": inputs }),
            )
            .await;
        tokens.extend(
            r.data()["createContributorInvitations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["token"].as_str().unwrap().to_owned()),
        );
    }

    let public = Gql::new(server.base());
    let (mut requests, mut guesses) = (Samples::default(), Samples::default());
    let mut client = 0;
    for round in 0..ROUNDS {
        for (i, token) in tokens.iter().enumerate() {
            let order = if (i + round) % 2 == 0 {
                [LISTED, UNLISTED]
            } else {
                [UNLISTED, LISTED]
            };
            for email in order {
                client += 1;
                let (took, body) = timed(
                    &public,
                    client,
                    REQUEST_CODE,
                    json!({ "t": token, "e": email }),
                )
                .await;
                assert_eq!(body["data"]["requestEmailVerification"], true, "{body}");
                requests.push(email == LISTED, i, took);
            }
            for email in order {
                client += 1;
                let (took, body) = timed(
                    &public,
                    client,
                    VERIFY,
                    json!({ "t": token, "e": email, "c": "000000" }),
                )
                .await;
                let reason = &body["errors"][0]["extensions"]["reason"];
                // One real code in a million is 000000; that sample is dropped, not counted.
                if reason == "INVALID_CODE" {
                    guesses.push(email == LISTED, i, took);
                } else {
                    assert!(body["data"]["verifyEmail"]["grant"].is_string(), "{body}");
                }
            }
        }
    }
    let name = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "embedded",
    };
    report(name, "requestEmailVerification", &requests);
    report(name, "verifyEmail (wrong code)", &guesses);
    drop(server);
    if backend == Backend::Postgres {
        tests::redis_env::delete_prefix(&redis, &prefix).await;
    }
}

#[tokio::main]
async fn main() {
    println!(
        "{INVITATIONS} invitations x {ROUNDS} rounds; medians, p90 and differences in µs, [95 % bootstrap interval]"
    );
    run(Backend::Postgres).await;
    run(Backend::Sqlite).await;
}
