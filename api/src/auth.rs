//! API-key authentication with a short-lived in-memory cache, so verifying a key does not cost a
//! database round trip on every request. A revoked key stops working within the cache TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use jobs::metrics::{Metrics, OutcomeLabel};
use prometheus_client::metrics::counter::Counter;
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The caller of an admin operation: the organization its key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub organization_id: Uuid,
    pub api_key_id: Uuid,
    pub api_key_name: String,
}

impl Viewer {
    /// Who a management operation is recorded as: the API key, by name.
    pub fn actor(&self) -> entity::activity::Actor {
        entity::activity::Actor::ApiKey(self.api_key_name.clone())
    }
}

/// Keys remembered at most (keys are few; bad keys are remembered too, and the least useful
/// entries go first).
const MAX_CACHED: u64 = 10_000;

/// Key hash → the viewer it authenticates (`None`: unknown or revoked), for the cache TTL.
///
/// Entries are keyed by the SHA-256 digest itself, not its hex text (which is what the database
/// stores): a cached check then builds no string, and hashes and compares 32 bytes.
pub struct KeyCache {
    entries: moka::future::Cache<[u8; 32], Entry>,
    ttl: Duration,
    /// The `api_key_cache_lookups` counters, looked up in their family once.
    hits: Counter,
    misses: Counter,
}

#[derive(Clone)]
struct Entry {
    viewer: Option<Viewer>,
    /// Taken before the database was asked, so the answer is at least this recent.
    checked_at: Instant,
}

/// What the cache says about a key, and until when it will keep saying it.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `None`: unknown or revoked.
    pub viewer: Option<Viewer>,
    /// The answer is trusted until then; a check after it asks the database again. A key
    /// revoked at any moment is therefore refused by every check after `expires_at` of the
    /// answer given at that moment, i.e. within the TTL.
    pub expires_at: Instant,
}

/// The `api_key_cache_lookups` counter of `outcome`. Its own function: the family's guard must
/// be dropped before the next label is created, or that creation waits for it forever.
fn counter(metrics: &Metrics, outcome: &'static str) -> Counter {
    metrics
        .api_key_cache
        .get_or_create(&OutcomeLabel { outcome })
        .clone()
}

/// The key presented in `X-API-Key` or `Authorization: Bearer …`, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_owned());
    }
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

impl KeyCache {
    pub fn new(ttl: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(ttl)
                .build(),
            ttl,
            hits: counter(&metrics, "hit"),
            misses: counter(&metrics, "miss"),
        }
    }

    /// The viewer for `key`, or `None` when the key is unknown or revoked. Negative answers are
    /// cached too, so a flood of bad keys cannot turn into a flood of queries.
    pub async fn authenticate(
        &self,
        db: &DatabaseConnection,
        key: &str,
    ) -> Result<Option<Viewer>, entity::DomainError> {
        Ok(self.verify(db, key).await?.viewer)
    }

    /// [`KeyCache::authenticate`], with the moment the answer stops being trusted, so that a
    /// long-lived connection can check again exactly when a revocation would show.
    pub async fn verify(
        &self,
        db: &DatabaseConnection,
        key: &str,
    ) -> Result<Verdict, entity::DomainError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // The age is checked here too, so the bound holds by this clock whatever moka's says.
        let cached = self
            .entries
            .get(&digest)
            .await
            .filter(|entry| entry.checked_at.elapsed() < self.ttl);
        if let Some(entry) = cached {
            self.hits.inc();
            return Ok(self.verdict(entry));
        }
        self.misses.inc();
        let checked_at = Instant::now();
        let viewer = entity::organization::authenticate(db, key)
            .await?
            .map(|row| Viewer {
                organization_id: row.organization_id,
                api_key_id: row.id,
                api_key_name: row.name,
            });
        let entry = Entry { viewer, checked_at };
        self.entries.insert(digest, entry.clone()).await;
        Ok(self.verdict(entry))
    }

    fn verdict(&self, entry: Entry) -> Verdict {
        Verdict {
            viewer: entry.viewer,
            expires_at: entry.checked_at + self.ttl,
        }
    }
}
