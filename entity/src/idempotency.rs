//! Idempotency keys: the same key with the same input returns the first result and changes
//! nothing; the same key with a different input is a conflict.

use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::entities::idempotency_keys;
use crate::{DomainError, now};

pub const MAX_KEY_LEN: usize = 255;

/// Hash of the canonical request (serde_json sorts object keys, so equal inputs hash equally).
pub fn request_hash(request: &Value) -> String {
    let digest = Sha256::digest(request.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn check_key(key: &str) -> Result<(), DomainError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "idempotencyKey",
            format!("must be 1 to {MAX_KEY_LEN} printable characters"),
        ));
    }
    Ok(())
}

/// The stored response for `(organization, scope, key)` if the key was used before with the same
/// request; `CONFLICT` if it was used with another one; `None` if it is new.
pub async fn lookup(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    scope: &str,
    key: &str,
    request: &Value,
) -> Result<Option<Value>, DomainError> {
    check_key(key)?;
    let found = idempotency_keys::Entity::find()
        .filter(idempotency_keys::Column::OrganizationId.eq(organization_id))
        .filter(idempotency_keys::Column::Scope.eq(scope))
        .filter(idempotency_keys::Column::Key.eq(key))
        .one(db)
        .await?;
    match found {
        None => Ok(None),
        Some(row) if row.request_hash == request_hash(request) => Ok(Some(row.response)),
        Some(_) => Err(DomainError::Conflict(
            "idempotencyKey was already used with a different input".into(),
        )),
    }
}

/// Stores the response in the transaction of the operation it belongs to. A concurrent request
/// with the same key fails on the unique index and its transaction rolls back; the caller then
/// looks the key up again and returns the winner's response.
pub async fn store(
    txn: &impl ConnectionTrait,
    organization_id: Uuid,
    scope: &str,
    key: &str,
    request: &Value,
    response: Value,
) -> Result<(), DomainError> {
    idempotency_keys::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        scope: Set(scope.to_owned()),
        key: Set(key.to_owned()),
        request_hash: Set(request_hash(request)),
        response: Set(response),
        created_at: Set(now()),
    }
    .insert(txn)
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equal_requests_hash_equally_regardless_of_key_order() {
        assert_eq!(
            request_hash(&json!({"a": 1, "b": [1, 2]})),
            request_hash(&json!({"b": [1, 2], "a": 1}))
        );
        assert_ne!(
            request_hash(&json!({"a": 1})),
            request_hash(&json!({"a": 2}))
        );
    }

    #[test]
    fn keys_are_bounded() {
        assert!(check_key("").is_err());
        assert!(check_key(&"k".repeat(256)).is_err());
        assert!(check_key("order-42").is_ok());
    }
}
