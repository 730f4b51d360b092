//! Redis for tests: the URL, a unique key prefix per test, and a loud failure when it is down.

use std::time::Duration;

/// The default of `TEST_REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// `TEST_REDIS_URL`, or [`DEFAULT_REDIS_URL`].
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// A key prefix no other test uses (`t:<uuid simple>:`), so tests share one Redis without
/// seeing each other's keys.
pub fn unique_prefix() -> String {
    format!("t:{}:", uuid::Uuid::new_v4().simple())
}

/// A multiplexed connection to `url`; panics with a clear message naming the URL if Redis
/// does not answer within 5 s.
pub async fn connect(url: &str) -> redis::aio::MultiplexedConnection {
    let fail = |e: &dyn std::fmt::Display| -> ! {
        panic!(
            "Redis is required for this test but is not reachable at {url} \
             (set TEST_REDIS_URL, or run tests/run which starts it): {e}"
        )
    };
    let client = redis::Client::open(url).unwrap_or_else(|e| fail(&e));
    match tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => fail(&e),
        Err(_) => fail(&"no connection within 5 s"),
    }
}

/// Panics (naming the URL) unless Redis at `url` answers `PING` with `PONG`: a test that
/// needs Redis must not pass without it.
pub async fn require_redis(url: &str) {
    let mut conn = connect(url).await;
    let pong = tokio::time::timeout(
        Duration::from_secs(5),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await;
    match pong {
        Ok(Ok(pong)) if pong == "PONG" => {}
        Ok(Ok(other)) => panic!("Redis at {url} answered PING with {other:?}"),
        Ok(Err(e)) => panic!("Redis is required for this test but PING failed at {url}: {e}"),
        Err(_) => panic!("Redis is required for this test but PING timed out at {url}"),
    }
}

/// The keys starting with `prefix` (via `SCAN`), sorted.
pub async fn keys_with_prefix(url: &str, prefix: &str) -> Vec<String> {
    let mut conn = connect(url).await;
    let pattern = format!("{}*", glob_escape(prefix));
    let mut cursor: u64 = 0;
    let mut keys = Vec::new();
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("SCAN on Redis at {url} failed: {e}"));
        keys.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// Deletes every key starting with `prefix`; returns how many were deleted.
pub async fn delete_prefix(url: &str, prefix: &str) -> usize {
    let keys = keys_with_prefix(url, prefix).await;
    if keys.is_empty() {
        return 0;
    }
    let mut conn = connect(url).await;
    let mut deleted = 0;
    for chunk in keys.chunks(500) {
        let n: usize = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("DEL on Redis at {url} failed: {e}"));
        deleted += n;
    }
    deleted
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
