//! Webhook endpoints: the URL, the event types it receives, its signing secrets and whether it
//! is enabled. All finders are scoped by organization.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use super::events::event_types;
use super::signing::generate_secret;
use super::target::TargetPolicy;
use crate::company::{MAX_TEXT_LEN, optional_text};
use crate::crypto::{Keyring, Slot};
use crate::entities::webhook_endpoints;
use crate::scope::{Owned, find_owned};
use crate::{DisabledReason, DomainError, EndpointStatus, StringList, now};

/// Endpoints one organization may register: enough for every consumer it has, few enough that
/// fanning an event out stays cheap.
pub const MAX_ENDPOINTS: u64 = 50;
/// How long the secret replaced by a rotation keeps signing deliveries (next to the new one),
/// so receivers can switch without losing a message.
pub const SECRET_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// A new endpoint, or the changed parts of one (`None` keeps the stored value).
#[derive(Debug, Clone, Default)]
pub struct EndpointInput {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// `Some(None)` clears the description.
    pub description: Option<Option<String>>,
}

/// Creates an ENABLED endpoint and returns it with its secret in clear, which is shown once
/// and stored only sealed.
pub async fn create(
    db: &impl ConnectionTrait,
    keys: &Keyring,
    policy: TargetPolicy,
    organization_id: Uuid,
    input: EndpointInput,
) -> Result<(webhook_endpoints::Model, String), DomainError> {
    let url = policy.check_url(input.url.as_deref().unwrap_or_default())?;
    let types = check_event_types(input.event_types.as_deref().unwrap_or_default())?;
    let description = optional_text(
        "description",
        input.description.flatten().as_deref(),
        MAX_TEXT_LEN,
    )?;
    let count = webhook_endpoints::Entity::find_in(organization_id)
        .count(db)
        .await?;
    if count >= MAX_ENDPOINTS {
        return Err(DomainError::Conflict(format!(
            "an organization may register at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    let secret = generate_secret();
    let at = now();
    let id = Uuid::now_v7();
    let row = webhook_endpoints::ActiveModel {
        id: Set(id),
        organization_id: Set(organization_id),
        url: Set(url.to_string()),
        description: Set(description),
        event_types: Set(StringList(types)),
        status: Set(EndpointStatus::Enabled),
        disabled_reason: Set(None),
        disabled_at: Set(None),
        secret_sealed: Set(keys.seal(secret.as_bytes(), &Slot::webhook_secret(id))?),
        previous_secret_sealed: Set(None),
        previous_secret_expires_at: Set(None),
        failing_since: Set(None),
        created_at: Set(at),
        updated_at: Set(at),
    }
    .insert(db)
    .await?;
    Ok((row, secret))
}

/// Changes the URL, event types or description; everything is checked before anything is
/// written.
pub async fn update(
    db: &impl ConnectionTrait,
    policy: TargetPolicy,
    organization_id: Uuid,
    id: Uuid,
    input: EndpointInput,
) -> Result<webhook_endpoints::Model, DomainError> {
    let existing = find_owned::<webhook_endpoints::Entity>(db, organization_id, id).await?;
    let mut row = existing.into_active_model();
    if let Some(url) = &input.url {
        row.url = Set(policy.check_url(url)?.to_string());
    }
    if let Some(types) = &input.event_types {
        row.event_types = Set(StringList(check_event_types(types)?));
    }
    if let Some(description) = &input.description {
        row.description = Set(optional_text(
            "description",
            description.as_deref(),
            MAX_TEXT_LEN,
        )?);
    }
    row.updated_at = Set(now());
    Ok(row.update(db).await?)
}

/// Enables (clearing the failure history that may have disabled it) or disables by hand.
/// Deliveries still pending for a disabled endpoint fail when their turn comes; replay them
/// after enabling it again.
pub async fn set_enabled(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    id: Uuid,
    enabled: bool,
) -> Result<webhook_endpoints::Model, DomainError> {
    let existing = find_owned::<webhook_endpoints::Entity>(db, organization_id, id).await?;
    let at = now();
    let mut row = existing.into_active_model();
    if enabled {
        row.status = Set(EndpointStatus::Enabled);
        row.disabled_reason = Set(None);
        row.disabled_at = Set(None);
        row.failing_since = Set(None);
    } else {
        row.status = Set(EndpointStatus::Disabled);
        row.disabled_reason = Set(Some(DisabledReason::Manual));
        row.disabled_at = Set(Some(at));
    }
    row.updated_at = Set(at);
    Ok(row.update(db).await?)
}

/// A new secret, returned in clear once. The replaced one keeps signing next to it for
/// [`SECRET_OVERLAP`]; a secret older than that is dropped at once.
pub async fn rotate_secret(
    db: &impl ConnectionTrait,
    keys: &Keyring,
    organization_id: Uuid,
    id: Uuid,
) -> Result<(webhook_endpoints::Model, String), DomainError> {
    let existing = find_owned::<webhook_endpoints::Entity>(db, organization_id, id).await?;
    let secret = generate_secret();
    let at = now();
    let overlap = chrono::TimeDelta::from_std(SECRET_OVERLAP).unwrap_or(chrono::TimeDelta::MAX);
    let mut row = existing.clone().into_active_model();
    // Sealed values are bound to their column: the current secret moves by being sealed again.
    let current = keys.open(&existing.secret_sealed, &Slot::webhook_secret(id))?;
    row.previous_secret_sealed = Set(Some(
        keys.seal(&current, &Slot::webhook_previous_secret(id))?,
    ));
    row.previous_secret_expires_at = Set(Some(at + overlap));
    row.secret_sealed = Set(keys.seal(secret.as_bytes(), &Slot::webhook_secret(id))?);
    row.updated_at = Set(at);
    Ok((row.update(db).await?, secret))
}

/// Deletes the endpoint with its delivery log.
pub async fn delete(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    id: Uuid,
) -> Result<(), DomainError> {
    let result = webhook_endpoints::Entity::delete_many()
        .filter(webhook_endpoints::Column::OrganizationId.eq(organization_id))
        .filter(webhook_endpoints::Column::Id.eq(id))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// The organization's endpoints in creation order, `limit` after `after`.
pub async fn list(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<webhook_endpoints::Model>, DomainError> {
    let mut query = webhook_endpoints::Entity::find_in(organization_id);
    if let Some(after) = after {
        query = query.filter(webhook_endpoints::Column::Id.gt(after));
    }
    Ok(
        crate::finders::all_with_limit(
            db,
            query.order_by_asc(webhook_endpoints::Column::Id),
            limit,
        )
        .await?,
    )
}

/// The secrets that sign a delivery at `at`: the current one, and the previous one while its
/// overlap lasts.
pub fn signing_secrets(
    keys: &Keyring,
    endpoint: &webhook_endpoints::Model,
    at: DateTime<Utc>,
) -> Result<Vec<String>, DomainError> {
    let mut secrets =
        vec![keys.open_string(&endpoint.secret_sealed, &Slot::webhook_secret(endpoint.id))?];
    if let (Some(sealed), Some(until)) = (
        &endpoint.previous_secret_sealed,
        endpoint.previous_secret_expires_at,
    ) && at < until
    {
        secrets.push(keys.open_string(sealed, &Slot::webhook_previous_secret(endpoint.id))?);
    }
    Ok(secrets)
}

/// Non-empty, known, without duplicates (the first occurrence's order is kept).
fn check_event_types(types: &[String]) -> Result<Vec<String>, DomainError> {
    if types.is_empty() {
        return Err(DomainError::invalid(
            "eventTypes",
            "name at least one event type",
        ));
    }
    let known = event_types();
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for (i, t) in types.iter().enumerate() {
        let t = t.trim();
        if !known.iter().any(|k| k == t) {
            return Err(DomainError::invalid(
                format!("eventTypes[{i}]"),
                format!(
                    "unknown event type `{}`",
                    t.chars().take(64).collect::<String>()
                ),
            ));
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_checked_and_deduplicated() {
        let ok = check_event_types(&[
            "invitation.created".into(),
            " connection.created.v2 ".into(),
            "invitation.created".into(),
        ])
        .unwrap();
        assert_eq!(ok, ["invitation.created", "connection.created.v2"]);
        assert!(check_event_types(&[]).is_err());
        let err = check_event_types(&["invitation.created".into(), "nope".into()]).unwrap_err();
        assert!(matches!(err, DomainError::InvalidInput { field, .. } if field == "eventTypes[1]"));
    }

    #[test]
    fn the_previous_secret_signs_only_during_the_overlap() {
        let keys = Keyring::new(&[7u8; 32]);
        let at = now();
        let endpoint = webhook_endpoints::Model {
            id: Uuid::nil(),
            organization_id: Uuid::nil(),
            url: "https://x.example.com/".into(),
            description: None,
            event_types: StringList(vec![]),
            status: EndpointStatus::Enabled,
            disabled_reason: None,
            disabled_at: None,
            secret_sealed: keys
                .seal(b"whsec_new", &Slot::webhook_secret(Uuid::nil()))
                .unwrap(),
            previous_secret_sealed: Some(
                keys.seal(b"whsec_old", &Slot::webhook_previous_secret(Uuid::nil()))
                    .unwrap(),
            ),
            previous_secret_expires_at: Some(at + chrono::TimeDelta::hours(1)),
            failing_since: None,
            created_at: at,
            updated_at: at,
        };
        assert_eq!(
            signing_secrets(&keys, &endpoint, at).unwrap(),
            ["whsec_new", "whsec_old"]
        );
        let later = at + chrono::TimeDelta::hours(2);
        assert_eq!(
            signing_secrets(&keys, &endpoint, later).unwrap(),
            ["whsec_new"]
        );
    }
}
