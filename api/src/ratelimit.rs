//! Fixed-window rate limits for the public operations. With Redis every replica shares one
//! counter per key; without it (or while Redis fails) the counters live in this process.
//!
//! The in-process store cannot be reset or slowed by volume: each limit has its own bounded
//! cache (so a flood of one kind of key never pushes out the counters of another), a full cache
//! evicts its least recently used counters one by one instead of being wiped, every counter
//! expires with its window, and a hit costs one hash lookup whatever the number of keys.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jobs::metrics::{LimitLabel, Metrics};
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

/// A limit: at most `max` hits per `window`. `name` keys its counters and its local store.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub name: &'static str,
    pub max: u64,
    pub window: Duration,
}

pub const PER_CLIENT: Limit = Limit {
    name: "ip",
    max: 300,
    window: Duration::from_secs(60),
};
pub const PER_TOKEN: Limit = Limit {
    name: "tok",
    max: 120,
    window: Duration::from_secs(60),
};
/// Verification codes per invitation and address.
pub const CODES_PER_EMAIL: Limit = Limit {
    name: "codes-email",
    max: 5,
    window: Duration::from_secs(600),
};
/// Verification codes per invitation, whatever the address.
pub const CODES_PER_INVITATION: Limit = Limit {
    name: "codes",
    max: 30,
    window: Duration::from_secs(600),
};
/// Renewal requests per invitation and address.
pub const RENEWALS_PER_EMAIL: Limit = Limit {
    name: "renewal",
    max: 3,
    window: Duration::from_secs(3600),
};
/// Activity events a link holder may add by opening the page or a pre-verified link, per
/// invitation; past it the operation still answers, but records nothing more.
pub const RECIPIENT_EVENTS: Limit = Limit {
    name: "events",
    max: 10,
    window: Duration::from_secs(600),
};

const LIMITS: [Limit; 6] = [
    PER_CLIENT,
    PER_TOKEN,
    CODES_PER_EMAIL,
    CODES_PER_INVITATION,
    RENEWALS_PER_EMAIL,
    RECIPIENT_EVENTS,
];

/// The network a client address counts as: IPv4 as is, IPv6 by its /64 (one subscriber's
/// network; a host picks freely among its 2^64 addresses). IPv4-mapped IPv6 counts as IPv4.
pub fn client_network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(
                v6.to_bits() & !((1u128 << 64) - 1),
            )),
        },
    }
}

/// The counter key of a client address: its [`client_network`], an IPv6 one written `…::/64`.
pub fn client_key(ip: IpAddr) -> String {
    match client_network(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{v6}/64"),
    }
}

type Counter = Arc<AtomicU64>;

pub struct RateLimiter {
    redis: Option<redis::aio::ConnectionManager>,
    prefix: String,
    /// One store per limit, in the order of [`LIMITS`].
    local: Vec<Cache<String, Counter>>,
    metrics: Arc<Metrics>,
}

impl RateLimiter {
    /// `max_keys`: counters each local store keeps before it evicts the least recently used.
    pub fn new(
        redis: Option<redis::aio::ConnectionManager>,
        prefix: String,
        max_keys: u64,
        metrics: Arc<Metrics>,
    ) -> Self {
        let local = LIMITS
            .iter()
            .map(|limit| {
                Cache::builder()
                    .max_capacity(max_keys)
                    .eviction_policy(EvictionPolicy::lru())
                    // A counter's window ends at most one window after it was created.
                    .time_to_live(limit.window)
                    .build()
            })
            .collect();
        Self {
            redis,
            prefix,
            local,
            metrics,
        }
    }

    /// Counts a hit on `key` under `limit`; `Err(retry_after_seconds)` when the limit is
    /// exceeded. If Redis fails, the local counter decides: a Redis outage must not open the
    /// gates nor close them.
    pub async fn hit(&self, key: &str, limit: Limit) -> Result<(), u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let window = limit.window.as_secs().max(1);
        let slot = now / window;
        let retry_after = (slot + 1) * window - now;
        let full_key = format!("{}rl:{}:{key}:{slot}", self.prefix, limit.name);
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
                        self.local_hit(full_key, limit)
                    }
                }
            }
            None => self.local_hit(full_key, limit),
        };
        if count > limit.max {
            self.metrics
                .rate_limited
                .get_or_create(&LimitLabel { limit: limit.name })
                .inc();
            Err(retry_after)
        } else {
            Ok(())
        }
    }

    fn local_hit(&self, key: String, limit: Limit) -> u64 {
        let index = LIMITS
            .iter()
            .position(|l| l.name == limit.name)
            .unwrap_or_default();
        let Some(store) = self.local.get(index) else {
            return 0;
        };
        store
            .get_with(key, Counter::default)
            .fetch_add(1, Ordering::Relaxed)
            + 1
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const TEST: Limit = Limit {
        name: "codes",
        max: 3,
        window: Duration::from_secs(3600),
    };

    #[tokio::test]
    async fn local_counter_refuses_past_the_limit() {
        let limiter = RateLimiter::new(None, "t:".into(), 1000, Arc::default());
        for _ in 0..3 {
            assert!(limiter.hit("k", TEST).await.is_ok());
        }
        let retry = limiter.hit("k", TEST).await.unwrap_err();
        assert!(retry > 0 && retry <= 3600);
        assert!(limiter.hit("other", TEST).await.is_ok());
    }

    #[tokio::test]
    async fn a_flood_of_other_keys_does_not_reset_a_counter() {
        let limiter = RateLimiter::new(None, "t:".into(), 100, Arc::default());
        for _ in 0..3 {
            limiter.hit("victim", TEST).await.unwrap();
        }
        // Far more keys than the store holds, in another limit and in the same one.
        for i in 0..1000 {
            let _ = limiter.hit(&format!("flood-{i}"), PER_CLIENT).await;
        }
        for i in 0..50 {
            let _ = limiter.hit(&format!("flood-{i}"), TEST).await;
        }
        assert!(limiter.hit("victim", TEST).await.is_err());
    }

    #[test]
    fn ipv6_clients_are_grouped_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key(a), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7");
        assert_eq!(client_key("192.0.2.7".parse().unwrap()), "192.0.2.7");
    }
}
