//! Organizations (tenants) and their API keys.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::crypto::{constant_time_eq, generate_token, hash_token};
use crate::entities::{api_keys, organizations};
use crate::{DomainError, StringList, now};

/// Every API key starts with this, so secret scanners and people recognise one.
pub const API_KEY_PREFIX: &str = "igw_";
/// How many characters of a key are kept in clear for display.
const DISPLAY_PREFIX_LEN: usize = 12;
const MAX_NAME_LEN: usize = 200;

fn validate_name(field: &str, name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    }
    Ok(name.to_owned())
}

pub async fn create(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<organizations::Model, DomainError> {
    let name = validate_name("name", name)?;
    Ok(organizations::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name),
        allowed_embed_origins: Set(StringList::default()),
        created_at: Set(now()),
    }
    .insert(db)
    .await?)
}

pub async fn find(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<organizations::Model, DomainError> {
    organizations::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or(DomainError::NotFound)
}

/// Most origins one organization may allow to frame its pages (each is in every page's
/// `Content-Security-Policy`, so the list stays short).
pub const MAX_EMBED_ORIGINS: usize = 20;

/// Checks one origin that may frame the hosted pages: exactly `https://host[:port]` as a browser
/// serializes it (lower-case host, no default port, no path, no trailing slash), because
/// `frame-ancestors` and `postMessage` compare origins exactly. Plain `http` is admitted only for
/// loopback hosts (`localhost`, `127.0.0.1`, `[::1]`), which browsers treat as secure, so an
/// integration can be tried on a developer's machine.
pub fn check_embed_origin(field: &str, value: &str) -> Result<String, DomainError> {
    let invalid = |m: String| DomainError::invalid(field, m);
    let url = url::Url::parse(value.trim())
        .map_err(|_| invalid("must be an origin such as https://app.example.com".into()))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err(invalid("must use https (http only for localhost)".into())),
    }
    if url.host_str().is_none_or(|h| h.contains('*')) {
        return Err(invalid("must name one host (no wildcards)".into()));
    }
    let origin = url.origin().ascii_serialization();
    if value.trim() != origin {
        return Err(invalid(format!(
            "must be an exact origin without path, credentials or trailing slash: {origin}"
        )));
    }
    Ok(origin)
}

/// Replaces the organization's embed origins (validated, de-duplicated, in the order given).
pub async fn set_embed_origins(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    origins: &[String],
) -> Result<organizations::Model, DomainError> {
    if origins.len() > MAX_EMBED_ORIGINS {
        return Err(DomainError::invalid(
            "allowedEmbedOrigins",
            format!("at most {MAX_EMBED_ORIGINS} origins"),
        ));
    }
    let mut checked: Vec<String> = Vec::with_capacity(origins.len());
    for (i, origin) in origins.iter().enumerate() {
        let origin = check_embed_origin(&format!("allowedEmbedOrigins[{i}]"), origin)?;
        if !checked.contains(&origin) {
            checked.push(origin);
        }
    }
    let mut active: organizations::ActiveModel = find(db, organization_id).await?.into();
    active.allowed_embed_origins = Set(StringList(checked));
    Ok(active.update(db).await?)
}

/// A new API key: the stored row and the key itself, which is shown once and never stored.
pub struct NewApiKey {
    pub row: api_keys::Model,
    pub key: String,
}

impl std::fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewApiKey")
            .field("row", &self.row)
            .finish_non_exhaustive()
    }
}

pub async fn create_api_key(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    name: &str,
) -> Result<NewApiKey, DomainError> {
    let name = validate_name("name", name)?;
    find(db, organization_id).await?;
    let key = format!("{API_KEY_PREFIX}{}", generate_token());
    let row = api_keys::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        name: Set(name),
        prefix: Set(key.chars().take(DISPLAY_PREFIX_LEN).collect()),
        key_hash: Set(hash_token(&key)),
        created_at: Set(now()),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(NewApiKey { row, key })
}

pub async fn list_api_keys(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
) -> Result<Vec<api_keys::Model>, DomainError> {
    Ok(api_keys::Entity::find()
        .filter(api_keys::Column::OrganizationId.eq(organization_id))
        .order_by_asc(api_keys::Column::CreatedAt)
        .all(db)
        .await?)
}

/// Revokes a key of the organization. Revoking twice is a conflict, so scripts notice typos.
pub async fn revoke_api_key(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    id: Uuid,
) -> Result<api_keys::Model, DomainError> {
    let result = api_keys::Entity::update_many()
        .col_expr(
            api_keys::Column::RevokedAt,
            sea_orm::sea_query::Expr::value(now()),
        )
        .filter(api_keys::Column::Id.eq(id))
        .filter(api_keys::Column::OrganizationId.eq(organization_id))
        .filter(api_keys::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    let row = api_keys::Entity::find_by_id(id)
        .filter(api_keys::Column::OrganizationId.eq(organization_id))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound)?;
    if result.rows_affected == 0 {
        return Err(DomainError::Conflict("API key is already revoked".into()));
    }
    Ok(row)
}

/// The organization and key row a presented key belongs to, if it is valid and not revoked.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    presented: &str,
) -> Result<Option<api_keys::Model>, DomainError> {
    if !presented.starts_with(API_KEY_PREFIX) || presented.len() > 128 {
        return Ok(None);
    }
    let hash = hash_token(presented);
    let row = api_keys::Entity::find()
        .filter(api_keys::Column::KeyHash.eq(hash.as_str()))
        .one(db)
        .await?;
    Ok(row.filter(|r| r.revoked_at.is_none() && constant_time_eq(&r.key_hash, &hash)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::check_embed_origin;

    #[test]
    fn embed_origins_are_exact() {
        for ok in [
            "https://app.example.com",
            "https://app.example.com:8443",
            "http://localhost:3000",
            "http://127.0.0.1:9000",
        ] {
            assert_eq!(check_embed_origin("o", ok).unwrap(), ok);
        }
        for bad in [
            "app.example.com",
            "http://app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://APP.example.com",
            "https://app.example.com:443",
            "https://user:pw@app.example.com",
            "https://*.example.com",
            "javascript:alert(1)",
            "'none'",
            "https://a.example.com https://b.example.com",
        ] {
            assert!(check_embed_origin("o", bad).is_err(), "{bad}");
        }
    }
}
