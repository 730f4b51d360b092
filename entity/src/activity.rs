//! The append-only activity log of an invitation (SPEC §3.5).

use sea_orm::{ActiveModelTrait, NotSet, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::entities::{invitation_events, invitations};
use crate::work::Work;
use crate::{DomainError, EventType, now};

/// Who caused an event: an API key (by name), the recipient, or the system (jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    ApiKey(String),
    Recipient,
    System,
}

impl Actor {
    pub fn label(&self) -> &str {
        match self {
            Self::ApiKey(name) => name,
            Self::Recipient => "recipient",
            Self::System => "system",
        }
    }
}

/// Optional parts of an event.
#[derive(Debug, Clone, Default)]
pub struct EventExtra {
    pub email: Option<String>,
    pub connection_id: Option<Uuid>,
    pub detail: Option<Value>,
}

/// Appends one event and writes its webhook deliveries, in the unit of work that makes the change
/// it records: the log, the outbox and the change commit (or roll back) together, and the event
/// is published once they have.
pub async fn record(
    work: &Work,
    invitation: &invitations::Model,
    event_type: EventType,
    actor: &Actor,
    extra: EventExtra,
) -> Result<invitation_events::Model, DomainError> {
    let event = invitation_events::ActiveModel {
        id: NotSet,
        invitation_id: Set(invitation.id),
        organization_id: Set(invitation.organization_id),
        company_id: Set(invitation.company_id),
        event_type: Set(event_type),
        occurred_at: Set(now()),
        email: Set(extra.email),
        connection_id: Set(extra.connection_id),
        actor: Set(actor.label().to_owned()),
        detail: Set(extra
            .detail
            .unwrap_or_else(|| Value::Object(Default::default()))),
        position: Set(work.next_position().await?),
    }
    .insert(work.txn())
    .await?;
    crate::webhook::events::invitation_event(work, invitation, &event).await?;
    work.push_event(event.clone());
    Ok(event)
}
