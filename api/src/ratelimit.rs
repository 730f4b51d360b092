//! Fixed-window rate limits for the public operations. With Redis every replica shares one
//! counter per key; without it the counters live in this process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A limit: at most `max` hits per `window`.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: u64,
    pub window: Duration,
}

pub const PER_CLIENT: Limit = Limit {
    max: 300,
    window: Duration::from_secs(60),
};
pub const PER_TOKEN: Limit = Limit {
    max: 120,
    window: Duration::from_secs(60),
};
/// Verification codes per invitation and address.
pub const CODES_PER_EMAIL: Limit = Limit {
    max: 5,
    window: Duration::from_secs(600),
};
/// Verification codes per invitation, whatever the address.
pub const CODES_PER_INVITATION: Limit = Limit {
    max: 30,
    window: Duration::from_secs(600),
};
/// Renewal requests per invitation and address.
pub const RENEWALS_PER_EMAIL: Limit = Limit {
    max: 3,
    window: Duration::from_secs(3600),
};

pub struct RateLimiter {
    redis: Option<redis::aio::ConnectionManager>,
    prefix: String,
    local: Mutex<HashMap<String, u64>>,
}

impl RateLimiter {
    pub fn new(redis: Option<redis::aio::ConnectionManager>, prefix: String) -> Self {
        Self {
            redis,
            prefix,
            local: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit on `key`; `Err(retry_after_seconds)` when the limit is exceeded. If Redis
    /// fails, the local counter decides: a Redis outage must not open the gates nor close them.
    pub async fn hit(&self, key: &str, limit: Limit) -> Result<(), u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let window = limit.window.as_secs().max(1);
        let slot = now / window;
        let retry_after = (slot + 1) * window - now;
        let full_key = format!("{}rl:{key}:{slot}", self.prefix);
        let count = match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                let counted: Result<(u64,), _> = redis::pipe()
                    .atomic()
                    .incr(&full_key, 1u64)
                    .expire(&full_key, window as i64)
                    .ignore()
                    .query_async(&mut conn)
                    .await;
                match counted {
                    Ok((n,)) => n,
                    Err(e) => {
                        tracing::warn!(error = %e, "rate limit counter unavailable in Redis");
                        self.local_hit(full_key, slot)
                    }
                }
            }
            None => self.local_hit(full_key, slot),
        };
        if count > limit.max {
            Err(retry_after)
        } else {
            Ok(())
        }
    }

    fn local_hit(&self, key: String, slot: u64) -> u64 {
        let mut map = self.local.lock().unwrap_or_else(|p| p.into_inner());
        // Old windows end with their slot number; drop them now and then to bound memory.
        if map.len() > 100_000 {
            let suffix = format!(":{slot}");
            map.retain(|k, _| k.ends_with(&suffix));
        }
        let n = map.entry(key).or_insert(0);
        *n += 1;
        *n
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_counter_refuses_past_the_limit() {
        let limiter = RateLimiter::new(None, "t:".into());
        let limit = Limit {
            max: 3,
            window: Duration::from_secs(3600),
        };
        for _ in 0..3 {
            assert!(limiter.hit("k", limit).await.is_ok());
        }
        let retry = limiter.hit("k", limit).await.unwrap_err();
        assert!(retry > 0 && retry <= 3600);
        assert!(limiter.hit("other", limit).await.is_ok());
    }
}
