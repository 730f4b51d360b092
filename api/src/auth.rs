//! API-key authentication with a short-lived in-memory cache, so verifying a key does not cost a
//! database round trip on every request. A revoked key stops working within the cache TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Cache entries for this many keys at most; past it the cache is cleared (keys are few).
const MAX_CACHED: usize = 10_000;

#[derive(Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Option<Viewer>, Instant)>>,
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
    /// The viewer for `key`, or `None` when the key is unknown or revoked. Negative answers are
    /// cached too, so a flood of bad keys cannot turn into a flood of queries.
    pub async fn authenticate(
        &self,
        db: &DatabaseConnection,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<Viewer>, entity::DomainError> {
        let hash = hash_token(key);
        if let Some((viewer, at)) = self.lock().get(&hash)
            && at.elapsed() < ttl
        {
            return Ok(viewer.clone());
        }
        let viewer = entity::organization::authenticate(db, key)
            .await?
            .map(|row| Viewer {
                organization_id: row.organization_id,
                api_key_id: row.id,
                api_key_name: row.name,
            });
        let mut entries = self.lock();
        if entries.len() >= MAX_CACHED {
            entries.clear();
        }
        entries.insert(hash, (viewer.clone(), Instant::now()));
        Ok(viewer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Option<Viewer>, Instant)>> {
        // A panic while holding the lock leaves only cache entries behind: safe to keep using.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}
