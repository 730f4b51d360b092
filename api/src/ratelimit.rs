//! Rate limits for the public operations, over a sliding window. With Redis every replica
//! shares one counter per key and window; without it (or while Redis fails) the counters live
//! in this process.
//!
//! Each key counts its hits per fixed window, and a hit is judged on the current window's count
//! plus the previous window's, weighted by the share of the previous window that still lies
//! within one window of now (the approximation Cloudflare describes). Judged on the current
//! window alone, a client could spend a whole allowance just before a window's end and another
//! just after it: twice the limit within a second.
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
                    // A counter is read during its own window and the next one.
                    .time_to_live(limit.window * 2)
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
        self.hit_at(key, limit, now).await
    }

    /// [`Self::hit`] at `now`, in seconds since the Unix epoch.
    async fn hit_at(&self, key: &str, limit: Limit, now: u64) -> Result<(), u64> {
        let window = limit.window.as_secs().max(1);
        let slot = now / window;
        let counter = |slot: u64| format!("{}rl:{}:{key}:{slot}", self.prefix, limit.name);
        let (current, previous) = (counter(slot), counter(slot.saturating_sub(1)));
        let counts = match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                let counted: Result<(u64, Option<u64>), _> = redis::pipe()
                    .atomic()
                    .incr(&current, 1u64)
                    .expire(&current, (2 * window) as i64)
                    .ignore()
                    .get(&previous)
                    .query_async(&mut conn)
                    .await;
                match counted {
                    Ok((current, previous)) => Counts {
                        previous: previous.unwrap_or(0),
                        current,
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "rate limit counter unavailable in Redis");
                        self.local_hit(current, &previous, limit)
                    }
                }
            }
            None => self.local_hit(current, &previous, limit),
        };
        match counts.judge(limit.max, window, now % window) {
            Ok(()) => Ok(()),
            Err(retry_after) => {
                self.metrics
                    .rate_limited
                    .get_or_create(&LimitLabel { limit: limit.name })
                    .inc();
                Err(retry_after)
            }
        }
    }

    fn local_hit(&self, current: String, previous: &str, limit: Limit) -> Counts {
        let index = LIMITS
            .iter()
            .position(|l| l.name == limit.name)
            .unwrap_or_default();
        let Some(store) = self.local.get(index) else {
            return Counts::default();
        };
        Counts {
            previous: store.get(previous).map_or(0, |c| c.load(Ordering::Relaxed)),
            current: store
                .get_with(current, Counter::default)
                .fetch_add(1, Ordering::Relaxed)
                + 1,
        }
    }
}

/// A key's hits in the previous window and in the current one (this hit included; refused hits
/// count too, so a client that keeps trying stays refused).
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    previous: u64,
    current: u64,
}

impl Counts {
    /// The weighted count at `elapsed` seconds into a window of `window` seconds, times
    /// `window` (so it stays whole): `previous × (window − elapsed) + current × window`.
    fn weighted(self, window: u64, elapsed: u64) -> u128 {
        u128::from(self.previous) * u128::from(window - elapsed)
            + u128::from(self.current) * u128::from(window)
    }

    /// `Ok` when the weighted count is at most `max`; otherwise the seconds (at least 1) until a
    /// next hit would be admitted if none came meanwhile.
    fn judge(self, max: u64, window: u64, elapsed: u64) -> Result<(), u64> {
        let allowed = u128::from(max) * u128::from(window);
        if self.weighted(window, elapsed) <= allowed {
            return Ok(());
        }
        // A next hit in this window counts `current + 1` while the previous window's weight
        // falls; in the next window, this one is the previous and the hit counts alone.
        let later = Self {
            previous: self.previous,
            current: self.current + 1,
        };
        let next = Self {
            previous: self.current,
            current: 1,
        };
        Err(match later.admitted_from(window, allowed, elapsed + 1) {
            Some(at) => at - elapsed,
            None => window - elapsed + next.admitted_from(window, allowed, 0).unwrap_or(window),
        })
    }

    /// The first second, from `from` on, of the window at which these counts are admitted.
    fn admitted_from(self, window: u64, allowed: u128, from: u64) -> Option<u64> {
        let room = allowed.checked_sub(u128::from(self.current) * u128::from(window))?;
        let first = match self.previous {
            0 => from,
            // previous × (window − e) ≤ room  ⇔  e ≥ window − ⌊room / previous⌋.
            previous => {
                let kept = u64::try_from(room / u128::from(previous)).unwrap_or(u64::MAX);
                window.saturating_sub(kept).max(from)
            }
        };
        (first < window).then_some(first)
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

    #[tokio::test]
    async fn a_burst_across_a_window_boundary_gets_one_allowance() {
        let limiter = RateLimiter::new(None, "t:".into(), 1000, Arc::default());
        let boundary = 3600 * 500_000;
        // Two hits in the last second of one window, then the rest in the first of the next.
        assert!(limiter.hit_at("k", TEST, boundary - 1).await.is_ok());
        assert!(limiter.hit_at("k", TEST, boundary - 1).await.is_ok());
        assert!(limiter.hit_at("k", TEST, boundary).await.is_ok());
        let retry = limiter.hit_at("k", TEST, boundary).await.unwrap_err();
        assert!(limiter.hit_at("k", TEST, boundary + 1).await.is_err());
        // Two windows on, nothing weighs any more.
        assert!(limiter.hit_at("k", TEST, boundary + 7200).await.is_ok());
        // When the fourth hit was refused, this window held 2 (refused hits count): a next hit
        // here would make 3, too many whatever the last window's weight; in the next window
        // the 2 weigh 2 × (3600 − e) + 3600 ≤ 3 × 3600 from its start.
        assert_eq!(retry, 3600);
    }

    #[test]
    fn the_retry_time_is_when_a_next_hit_would_pass() {
        let counts = |previous, current| Counts { previous, current };
        // Within the limit.
        assert!(counts(9, 1).judge(10, 600, 0).is_ok());
        assert!(counts(0, 10).judge(10, 600, 599).is_ok());
        // The previous window's 10 weigh less as this one goes on: a second hit here passes
        // once 10 × (600 − e) + 2 × 600 ≤ 6000, at e = 120.
        assert_eq!(counts(10, 1).judge(10, 600, 0), Err(120));
        assert_eq!(counts(10, 1).judge(10, 600, 50), Err(70));
        assert!(counts(10, 1).judge(10, 600, 100).is_ok());
        // This window is full: in the next, its 11 weigh 11 × (600 − e) + 600 ≤ 6000 from
        // e = 110 (11 × 491 + 600 = 6001).
        assert_eq!(counts(0, 11).judge(10, 600, 100), Err(500 + 110));
        // Never less than a second: a flood in the last window weighs 1200 × (600 − e), and
        // a second hit here passes at e = 596.
        assert_eq!(counts(1200, 1).judge(10, 600, 595), Err(1));
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
