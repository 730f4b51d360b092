//! API-key authentication with a short-lived in-memory cache, so verifying a key does not cost a
//! database round trip on every request. A revoked key stops working within the cache TTL.

use std::time::Duration;

use axum::http::{HeaderMap, header};
use entity::crypto::hash_token;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

/// The caller of an admin operation: the organization its key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub organization_id: Uuid,
    pub api_key_id: Uuid,
    pub api_key_name: String,
}

/// Keys remembered at most (keys are few; bad keys are remembered too, and the least useful
/// entries go first).
const MAX_CACHED: u64 = 10_000;

/// Key hash → the viewer it authenticates (`None`: unknown or revoked), for the cache TTL.
pub struct KeyCache {
    entries: moka::future::Cache<String, Option<Viewer>>,
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
    pub fn new(ttl: Duration) -> Self {
        Self {
            entries: moka::future::Cache::builder()
                .max_capacity(MAX_CACHED)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The viewer for `key`, or `None` when the key is unknown or revoked. Negative answers are
    /// cached too, so a flood of bad keys cannot turn into a flood of queries.
    pub async fn authenticate(
        &self,
        db: &DatabaseConnection,
        key: &str,
    ) -> Result<Option<Viewer>, entity::DomainError> {
        let hash = hash_token(key);
        if let Some(viewer) = self.entries.get(&hash).await {
            return Ok(viewer);
        }
        let viewer = entity::organization::authenticate(db, key)
            .await?
            .map(|row| Viewer {
                organization_id: row.organization_id,
                api_key_id: row.id,
                api_key_name: row.name,
            });
        self.entries.insert(hash, viewer.clone()).await;
        Ok(viewer)
    }
}
