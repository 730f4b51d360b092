//! An endpoint's delivery log, as the API reads it (the outbox itself is
//! [`crate::outbox::webhook`]).

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::entities::{webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::scope::{Owned, find_owned};
use crate::{DomainError, WebhookDeliveryStatus};

/// Filters of an endpoint's delivery log.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<WebhookDeliveryStatus>,
    pub event_type: Option<String>,
}

/// An endpoint's deliveries, newest first, `limit` after `after` (NOT_FOUND for an endpoint of
/// another organization).
pub async fn list(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    endpoint_id: Uuid,
    filter: &DeliveryFilter,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<webhook_deliveries::Model>, DomainError> {
    find_owned::<webhook_endpoints::Entity>(db, organization_id, endpoint_id).await?;
    let mut query = webhook_deliveries::Entity::find_in(organization_id)
        .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id));
    if let Some(status) = filter.status {
        query = query.filter(webhook_deliveries::Column::Status.eq(status));
    }
    if let Some(event_type) = &filter.event_type {
        query = query.filter(webhook_deliveries::Column::EventType.eq(event_type.as_str()));
    }
    if let Some(after) = after {
        query = query.filter(webhook_deliveries::Column::Id.lt(after));
    }
    Ok(crate::finders::all_with_limit(
        db,
        query.order_by_desc(webhook_deliveries::Column::Id),
        limit,
    )
    .await?)
}

/// The attempts of these deliveries, oldest first.
pub async fn attempts_of(
    db: &impl ConnectionTrait,
    delivery_ids: &[Uuid],
) -> Result<Vec<webhook_attempts::Model>, DomainError> {
    if delivery_ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(webhook_attempts::Entity::find()
        .filter(webhook_attempts::Column::DeliveryId.is_in(delivery_ids.iter().copied()))
        .order_by_asc(webhook_attempts::Column::AttemptedAt)
        .order_by_asc(webhook_attempts::Column::Id)
        .all(db)
        .await?)
}
