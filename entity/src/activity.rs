//! The append-only activity log of an invitation (SPEC §3.5).

use std::collections::HashMap;

use sea_orm::{EntityTrait, NotSet, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::entities::{invitation_events, invitations};
use crate::webhook::events::Subject;
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
    let entry = Entry {
        invitation,
        event_type,
        actor,
        extra,
    };
    record_all(work, vec![entry])
        .await?
        .pop()
        .ok_or_else(|| DomainError::Db(sea_orm::DbErr::RecordNotInserted))
}

/// One event for [`record_all`].
#[derive(Debug)]
pub struct Entry<'a> {
    pub invitation: &'a invitations::Model,
    pub event_type: EventType,
    pub actor: &'a Actor,
    pub extra: EventExtra,
}

/// [`record`] for many events at once: one multi-row INSERT (per thousand events) and one
/// webhook fan-out for all of them, so a batch job (expiry, a run of sent emails) costs a few
/// statements instead of a few per event. Returns the events in log order.
pub async fn record_all(
    work: &Work,
    entries: Vec<Entry<'_>>,
) -> Result<Vec<invitation_events::Model>, DomainError> {
    let at = now();
    let mut events = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(crate::work::INSERT_CHUNK) {
        let mut rows = Vec::with_capacity(chunk.len());
        for entry in chunk {
            let extra = entry.extra.clone();
            rows.push(invitation_events::ActiveModel {
                id: NotSet,
                invitation_id: Set(entry.invitation.id),
                organization_id: Set(entry.invitation.organization_id),
                company_id: Set(entry.invitation.company_id),
                event_type: Set(entry.event_type),
                occurred_at: Set(at),
                email: Set(extra.email),
                connection_id: Set(extra.connection_id),
                actor: Set(entry.actor.label().to_owned()),
                detail: Set(extra
                    .detail
                    .unwrap_or_else(|| Value::Object(Default::default()))),
                position: Set(work.next_position().await?),
            });
        }
        events.extend(
            invitation_events::Entity::insert_many(rows)
                .exec_with_returning(work.txn())
                .await?,
        );
    }
    let invitations: HashMap<Uuid, Subject> = entries
        .iter()
        .map(|e| (e.invitation.id, Subject::from(e.invitation)))
        .collect();
    recorded(work, &invitations, events).await
}

/// What follows the insert of events, however they were written: their webhook deliveries
/// (`invitations` holds what the payloads say about each event's invitation), and their
/// publication once the unit of work commits. Returns the events in log order.
pub(crate) async fn recorded(
    work: &Work,
    invitations: &HashMap<Uuid, Subject>,
    mut events: Vec<invitation_events::Model>,
) -> Result<Vec<invitation_events::Model>, DomainError> {
    // Ids follow insert order; RETURNING need not.
    events.sort_by_key(|e| e.id);
    crate::webhook::events::invitation_events(work, invitations, &events).await?;
    for event in &events {
        work.push_event(event.clone());
    }
    Ok(events)
}
