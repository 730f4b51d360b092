//! Reading invitations' activity logs: a page of each of many logs in one statement.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    Statement,
};
use uuid::Uuid;

use crate::entities::invitation_events;
use crate::finders::Children;
use crate::{DomainError, EventType};

/// Which part of each log to read: the `first` events after the event id `after`, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventWindow {
    pub first: u64,
    pub after: Option<i64>,
}

/// The statement behind [`event_pages`]: for each invitation at most `window.first + 1` events
/// (the extra one tells the caller that another page follows), read through the
/// `(invitation_id, id)` index and stopped at the limit, so no log is read whole (see
/// [`Children::first_statement`]). Public so tests can `EXPLAIN` it.
pub fn event_pages_statement(
    backend: DatabaseBackend,
    organization_id: Uuid,
    invitation_ids: &[Uuid],
    window: EventWindow,
) -> Statement {
    // Log ids start at 1, so 0 means "from the start".
    LOGS.first_statement(
        backend,
        organization_id,
        invitation_ids,
        window.first.saturating_add(1),
        Some(window.after.unwrap_or(0)),
    )
}

/// Invitations' activity logs, in id order.
const LOGS: Children = Children {
    table: "invitation_events",
    parent: "invitation_id",
    order: &["id"],
};

/// A page of the log of each invitation of the organization (ids of other organizations give
/// empty pages), oldest first, with one event more than `window.first` where more follow.
pub async fn event_pages(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    invitation_ids: &[Uuid],
    window: EventWindow,
) -> Result<HashMap<Uuid, Vec<invitation_events::Model>>, DbErr> {
    let mut pages: HashMap<Uuid, Vec<invitation_events::Model>> = HashMap::new();
    if invitation_ids.is_empty() {
        return Ok(pages);
    }
    let statement = event_pages_statement(
        db.get_database_backend(),
        organization_id,
        invitation_ids,
        window,
    );
    let rows = db.query_all_raw(statement).await?;
    // Each page holds at most `first + 1` events: sized once, not grown event by event.
    let page_size = usize::try_from(window.first.saturating_add(1)).unwrap_or(usize::MAX);
    for event in crate::rows::decode::<invitation_events::Model>(&rows)? {
        pages
            .entry(event.invitation_id)
            .or_insert_with(|| Vec::with_capacity(page_size.min(rows.len())))
            .push(event);
    }
    for page in pages.values_mut() {
        page.sort_unstable_by_key(|e| e.id);
    }
    Ok(pages)
}

/// Number of events of one invitation with the given type (used by jobs and tests).
pub async fn count_events(
    db: &impl ConnectionTrait,
    invitation_id: Uuid,
    event_type: EventType,
) -> Result<u64, DomainError> {
    Ok(invitation_events::Entity::find()
        .filter(invitation_events::Column::InvitationId.eq(invitation_id))
        .filter(invitation_events::Column::EventType.eq(event_type))
        .count(db)
        .await?)
}
