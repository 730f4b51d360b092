//! The webhook event catalogue, the payloads, and the fan-out that writes one delivery per
//! subscribed endpoint inside the caller's unit of work.
//!
//! Every body has the Standard Webhooks shape `{"type", "timestamp", "data"}`. Payloads carry
//! ids (invitation, connection, company, activity event), never secrets: no token, no password,
//! no verification code.

use std::collections::{BTreeSet, HashMap};

use chrono::SecondsFormat;
use sea_orm::{ColumnTrait, EntityTrait, Iterable, QueryFilter, QuerySelect};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::entities::{
    connection_sites, connections, invitation_events, invitations, webhook_deliveries,
    webhook_endpoints,
};
use crate::work::Work;
use crate::{
    DomainError, EndpointStatus, EventType, InvitationStatus, InvitationType,
    WebhookDeliveryStatus, now,
};

pub const CONNECTION_CREATED: &str = "connection.created.v2";
pub const CONNECTION_UPDATED: &str = "connection.updated.v2";
/// Sent to the organization's other endpoints when one is disabled for failing.
pub const ENDPOINT_DISABLED: &str = "webhook_endpoint.disabled";

/// `invitation.<activity type in lower case>`, e.g. `invitation.email_verified`.
pub fn invitation_event_type(event_type: EventType) -> String {
    use sea_orm::ActiveEnum;
    format!("invitation.{}", event_type.to_value().to_ascii_lowercase())
}

/// Every event type an endpoint can subscribe to.
pub fn event_types() -> Vec<String> {
    let mut types = vec![CONNECTION_CREATED.to_owned(), CONNECTION_UPDATED.to_owned()];
    types.extend(EventType::iter().map(invitation_event_type));
    types.push(ENDPOINT_DISABLED.to_owned());
    types
}

/// Writes a delivery of `data` as `event_type` to every enabled endpoint of the organization
/// that subscribes to it; all of them share one `webhook-id`. The unit of work queues them after
/// commit. Returns how many were written.
pub async fn emit(
    work: &Work,
    organization_id: Uuid,
    event_type: &str,
    data: Value,
) -> Result<usize, DomainError> {
    let message = Message {
        organization_id,
        event_type: event_type.to_owned(),
        data,
    };
    emit_all(work, vec![message]).await
}

/// One webhook message for [`emit_all`].
#[derive(Debug)]
pub struct Message {
    pub organization_id: Uuid,
    pub event_type: String,
    pub data: Value,
}

/// [`emit`] for many messages, possibly of several organizations: one query for the endpoints
/// of all of them and one multi-row INSERT (per thousand deliveries). Each message only goes
/// to endpoints of its own organization.
pub async fn emit_all(work: &Work, messages: Vec<Message>) -> Result<usize, DomainError> {
    let organizations: BTreeSet<Uuid> = messages.iter().map(|m| m.organization_id).collect();
    if organizations.is_empty() {
        return Ok(0);
    }
    let endpoints: Vec<(Uuid, Uuid, crate::StringList)> = webhook_endpoints::Entity::find()
        .select_only()
        .column(webhook_endpoints::Column::Id)
        .column(webhook_endpoints::Column::OrganizationId)
        .column(webhook_endpoints::Column::EventTypes)
        .filter(webhook_endpoints::Column::OrganizationId.is_in(organizations))
        .filter(webhook_endpoints::Column::Status.eq(EndpointStatus::Enabled))
        .into_tuple()
        .all(work.txn())
        .await?;
    if endpoints.is_empty() {
        return Ok(0);
    }
    let at = now();
    let timestamp = at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut rows = Vec::new();
    for message in messages {
        let targets: Vec<Uuid> = endpoints
            .iter()
            .filter(|(_, org, types)| {
                *org == message.organization_id && types.0.contains(&message.event_type)
            })
            .map(|(id, _, _)| *id)
            .collect();
        if targets.is_empty() {
            continue;
        }
        let message_id = format!("msg_{}", Uuid::now_v7().simple());
        let body = json!({
            "type": message.event_type,
            "timestamp": timestamp,
            "data": message.data,
        })
        .to_string();
        for endpoint_id in targets {
            rows.push(webhook_deliveries::ActiveModel {
                id: sea_orm::Set(Uuid::now_v7()),
                organization_id: sea_orm::Set(message.organization_id),
                endpoint_id: sea_orm::Set(endpoint_id),
                message_id: sea_orm::Set(message_id.clone()),
                event_type: sea_orm::Set(message.event_type.clone()),
                body: sea_orm::Set(body.clone()),
                status: sea_orm::Set(WebhookDeliveryStatus::Pending),
                attempts: sea_orm::Set(0),
                last_http_status: sea_orm::Set(None),
                last_error: sea_orm::Set(None),
                next_attempt_at: sea_orm::Set(at),
                enqueued_for: sea_orm::Set(None),
                replay_of: sea_orm::Set(None),
                created_at: sea_orm::Set(at),
                updated_at: sea_orm::Set(at),
                finished_at: sea_orm::Set(None),
            });
        }
    }
    let written = rows.len();
    let mut chunks = rows.into_iter().peekable();
    while chunks.peek().is_some() {
        let chunk: Vec<_> = chunks.by_ref().take(crate::work::INSERT_CHUNK).collect();
        let ids: Vec<Uuid> = chunk
            .iter()
            .filter_map(|row| row.id.try_as_ref().copied())
            .collect();
        webhook_deliveries::Entity::insert_many(chunk)
            .exec_without_returning(work.txn())
            .await?;
        for id in ids {
            work.push_webhook(id, at);
        }
    }
    Ok(written)
}

/// What an `invitation.<type>` payload says about the invitation: a few columns, so a batch
/// that changes many invitations at once (expiry) need not read whole rows to announce them.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub invitation_type: InvitationType,
    pub status: InvitationStatus,
    pub connection_id: Option<Uuid>,
}

impl From<&invitations::Model> for Subject {
    fn from(invitation: &invitations::Model) -> Self {
        Self {
            id: invitation.id,
            organization_id: invitation.organization_id,
            company_id: invitation.company_id,
            invitation_type: invitation.invitation_type,
            status: invitation.status,
            connection_id: invitation.connection_id,
        }
    }
}

/// `invitation.<type>` for each activity event (of the invitations in `invitations`), with
/// everything needed to correlate it; one [`emit_all`] for all of them.
pub async fn invitation_events(
    work: &Work,
    invitations: &HashMap<Uuid, Subject>,
    events: &[invitation_events::Model],
) -> Result<usize, DomainError> {
    let messages = events
        .iter()
        .filter_map(|event| {
            let invitation = invitations.get(&event.invitation_id)?;
            Some(Message {
                organization_id: invitation.organization_id,
                event_type: invitation_event_type(event.event_type),
                data: invitation_event_data(invitation, event),
            })
        })
        .collect();
    emit_all(work, messages).await
}

fn invitation_event_data(invitation: &Subject, event: &invitation_events::Model) -> Value {
    json!({
        "eventId": event.id.to_string(),
        "invitationId": invitation.id,
        "companyId": invitation.company_id,
        "invitationType": invitation.invitation_type,
        "invitationStatus": invitation.status,
        "connectionId": event.connection_id.or(invitation.connection_id),
        "email": event.email,
        "actor": event.actor,
        "detail": event.detail,
        "occurredAt": event.occurred_at,
    })
}

/// `connection.created.v2`.
pub async fn connection_created(
    work: &Work,
    connection: &connections::Model,
    site_ids: &[Uuid],
) -> Result<usize, DomainError> {
    let data = json!({
        "connection": connection_json(connection, site_ids),
        "invitationId": connection.created_by_invitation_id,
    });
    emit(work, connection.organization_id, CONNECTION_CREATED, data).await
}

/// `connection.updated.v2`: the connection as it is now, the fields that changed and their old
/// values. A changed password is named but its values never appear.
pub async fn connection_updated(
    work: &Work,
    before: &connections::Model,
    after: &connections::Model,
    invitation_id: Option<Uuid>,
) -> Result<usize, DomainError> {
    let site_ids: Vec<Uuid> = connection_sites::Entity::find()
        .select_only()
        .column(connection_sites::Column::SiteId)
        .filter(connection_sites::Column::ConnectionId.eq(after.id))
        .into_tuple()
        .all(work.txn())
        .await?;
    let old = connection_json(before, &site_ids);
    let new = connection_json(after, &site_ids);
    let (mut changed, previous) = diff(&old, &new);
    if before.password_sealed != after.password_sealed {
        changed.push("utilityPassword".to_owned());
    }
    let data = json!({
        "connection": new,
        "changedFields": changed,
        "previousValues": previous,
        "invitationId": invitation_id,
    });
    emit(work, after.organization_id, CONNECTION_UPDATED, data).await
}

fn connection_json(c: &connections::Model, site_ids: &[Uuid]) -> Value {
    json!({
        "id": c.id,
        "companyId": c.company_id,
        "status": c.status,
        "datasourceId": c.datasource_id,
        "providerName": c.provider_name,
        "providerUrl": c.provider_url,
        "country": c.country,
        "utilityTypes": c.utility_types.0,
        "ownerEmail": c.owner_email,
        "dataCollectionStartDate": c.data_collection_start_date,
        "utilityUsername": c.utility_username,
        "mfaForwarding": c.mfa_forwarding,
        "siteIds": site_ids,
        "createdByInvitationId": c.created_by_invitation_id,
        "lastInvitationId": c.last_invitation_id,
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
    })
}

/// Top-level fields whose value differs (`updatedAt` aside, it always does), and their old
/// values.
fn diff(old: &Value, new: &Value) -> (Vec<String>, Map<String, Value>) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        return (Vec::new(), Map::new());
    };
    let mut changed = Vec::new();
    let mut previous = Map::new();
    for (key, value) in new {
        let before = old.get(key).unwrap_or(&Value::Null);
        if key != "updatedAt" && before != value {
            changed.push(key.clone());
            previous.insert(key.clone(), before.clone());
        }
    }
    (changed, previous)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_activity_type_has_an_invitation_event() {
        let types = event_types();
        assert!(types.contains(&"invitation.created".to_owned()));
        assert!(types.contains(&"invitation.email_verified".to_owned()));
        assert!(types.contains(&"invitation.expired".to_owned()));
        assert_eq!(
            types
                .iter()
                .filter(|t| t.starts_with("invitation."))
                .count(),
            EventType::iter().count()
        );
    }

    #[test]
    fn diff_names_changed_fields_with_old_values() {
        let old = json!({"status": "CONNECTED", "utilityUsername": "a", "updatedAt": 1, "x": null});
        let new = json!({"status": "PENDING", "utilityUsername": "a", "updatedAt": 2, "x": 3});
        let (changed, previous) = diff(&old, &new);
        assert_eq!(changed, ["status", "x"]);
        assert_eq!(
            Value::Object(previous),
            json!({"status": "CONNECTED", "x": null})
        );
    }
}
