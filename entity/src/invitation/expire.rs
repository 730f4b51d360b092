//! The expiry sweep's batch: ACTIVE invitations past their deadline become EXPIRED, one `EXPIRED`
//! event each, in a few set-based statements.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveEnum, ConnectionTrait, DatabaseBackend, FromQueryResult, Statement, Value as SqlValue,
};
use serde_json::Value;
use uuid::Uuid;

use crate::activity::{self, Actor};
use crate::entities::invitation_events;
use crate::webhook::events::Subject;
use crate::work::{Command, Work};
use crate::{DomainError, EventType, InvitationStatus, InvitationType, now};

/// Persists EXPIRED for up to `batch` invitations past their deadline, one `EXPIRED` event each.
/// Safe to run on several replicas at once: the conditional update hands each row to exactly one
/// of them. Its output is how many it changed; run it again while that is `batch`.
pub struct ExpireDue {
    pub batch: u64,
}

impl Command for ExpireDue {
    type Output = u64;

    async fn execute(&self, work: &Work) -> Result<u64, DomainError> {
        expire_due(work, self.batch).await
    }
}

/// One invitation the batch expired, with its new event: what the event and its webhook payload
/// are built from, so the statements return these few columns instead of whole rows.
#[derive(Debug, FromQueryResult)]
struct Expired {
    event_id: i64,
    position: Option<i64>,
    invitation_id: Uuid,
    organization_id: Uuid,
    company_id: Uuid,
    invitation_type: InvitationType,
    connection_id: Option<Uuid>,
}

async fn expire_due(work: &Work, batch: u64) -> Result<u64, DomainError> {
    let at = now();
    let batch = i64::try_from(batch).unwrap_or(i64::MAX);
    let expired = match work.txn().get_database_backend() {
        DatabaseBackend::Sqlite => expire_sqlite(work, at, batch).await?,
        backend => expire_postgres(work, backend, at, batch).await?,
    };
    let actor = Actor::System.label().to_owned();
    let events = expired
        .iter()
        .map(|e| invitation_events::Model {
            id: e.event_id,
            invitation_id: e.invitation_id,
            organization_id: e.organization_id,
            company_id: e.company_id,
            event_type: EventType::Expired,
            occurred_at: at,
            email: None,
            connection_id: None,
            actor: actor.clone(),
            detail: no_detail(),
            position: e.position,
        })
        .collect();
    let subjects: HashMap<Uuid, Subject> = expired
        .into_iter()
        .map(|e| {
            let subject = Subject {
                id: e.invitation_id,
                organization_id: e.organization_id,
                company_id: e.company_id,
                invitation_type: e.invitation_type,
                status: InvitationStatus::Expired,
                connection_id: e.connection_id,
            };
            (e.invitation_id, subject)
        })
        .collect();
    let count = subjects.len() as u64;
    activity::recorded(work, &subjects, events).await?;
    Ok(count)
}

fn no_detail() -> Value {
    Value::Object(Default::default())
}

/// The statuses as SQL literals, not parameters: the batch is found through the partial index
/// on ACTIVE deadlines, and a planner only uses a partial index when it can see that the query
/// implies the index's condition, which a bound parameter hides.
fn status_literal(status: InvitationStatus) -> String {
    format!("'{}'", status.to_value())
}

/// The values every new event shares: when, which type, who, no detail.
fn event_values(at: DateTime<Utc>) -> [SqlValue; 4] {
    [
        at.into(),
        EventType::Expired.to_value().into(),
        Actor::System.label().to_owned().into(),
        no_detail().into(),
    ]
}

/// One statement: the batch is picked (soonest deadline first, `SKIP LOCKED` so replicas
/// sweeping at once take disjoint batches), updated with the condition checked again (a row
/// another replica expired in the meantime is left alone), and its events inserted from the
/// updated rows. Positions are given later by the sequencer.
async fn expire_postgres(
    work: &Work,
    backend: DatabaseBackend,
    at: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<Expired>, DomainError> {
    let active = status_literal(InvitationStatus::Active);
    let expired = status_literal(InvitationStatus::Expired);
    let sql = format!(
        "WITH due AS ( \
           SELECT id FROM invitations WHERE status = {active} AND expires_at <= $1 \
           ORDER BY expires_at LIMIT $5 FOR UPDATE SKIP LOCKED), \
         expired AS ( \
           UPDATE invitations i SET status = {expired}, expired_at = i.expires_at, updated_at = $1 \
           FROM due WHERE i.id = due.id AND i.status = {active} AND i.expires_at <= $1 \
           RETURNING i.id, i.organization_id, i.company_id, i.invitation_type, i.connection_id), \
         events AS ( \
           INSERT INTO invitation_events \
             (invitation_id, organization_id, company_id, event_type, occurred_at, actor, detail) \
           SELECT id, organization_id, company_id, $2, $1, $3, $4 FROM expired \
           RETURNING id, invitation_id) \
         SELECT events.id AS event_id, CAST(NULL AS BIGINT) AS position, \
           expired.id AS invitation_id, expired.organization_id, expired.company_id, \
           expired.invitation_type, expired.connection_id \
         FROM events JOIN expired ON expired.id = events.invitation_id"
    );
    let mut values = event_values(at).to_vec();
    values.push(batch.into());
    Ok(
        Expired::find_by_statement(Statement::from_sql_and_values(backend, sql, values))
            .all(work.txn())
            .await?,
    )
}

/// SQLite has no data-modifying `WITH`, and its write transactions run one at a time (the unit
/// of work holds the write lock from its first statement), so two statements in a row see the
/// same rows: the events are inserted straight from the due invitations, numbered with the
/// positions this unit of work hands out, and the invitations those positions name are updated.
async fn expire_sqlite(
    work: &Work,
    at: DateTime<Utc>,
    batch: i64,
) -> Result<Vec<Expired>, DomainError> {
    let active = status_literal(InvitationStatus::Active);
    let expired = status_literal(InvitationStatus::Expired);
    let first = work.peek_position().await?.unwrap_or(1);
    let mut values = event_values(at).to_vec();
    values.extend([batch.into(), first.into()]);
    let inserted = work
        .txn()
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            format!(
                "INSERT INTO invitation_events \
                   (invitation_id, organization_id, company_id, event_type, occurred_at, actor, detail, position) \
                 SELECT id, organization_id, company_id, ?2, ?1, ?3, ?4, \
                   ?6 - 1 + row_number() OVER (ORDER BY expires_at, id) \
                 FROM invitations WHERE status = {active} AND expires_at <= ?1 \
                 ORDER BY expires_at, id LIMIT ?5 \
                 RETURNING id, invitation_id, position"
            ),
            values,
        ))
        .await?;
    if inserted.is_empty() {
        return Ok(Vec::new());
    }
    let count = i64::try_from(inserted.len()).unwrap_or(i64::MAX);
    work.advance_positions(count);
    let updated = work
        .txn()
        .query_all_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            format!(
                "UPDATE invitations SET status = {expired}, expired_at = expires_at, updated_at = ?1 \
                 WHERE id IN (SELECT invitation_id FROM invitation_events \
                   WHERE position >= ?2 AND position < ?3) \
                 RETURNING id, organization_id, company_id, invitation_type, connection_id"
            ),
            [at.into(), first.into(), (first + count).into()],
        ))
        .await?;
    let mut invitations = HashMap::with_capacity(updated.len());
    for row in updated {
        let id: Uuid = row.try_get("", "id")?;
        invitations.insert(id, row);
    }
    let mut expired = Vec::with_capacity(inserted.len());
    for event in inserted {
        let invitation_id: Uuid = event.try_get("", "invitation_id")?;
        let invitation = invitations
            .get(&invitation_id)
            .ok_or(DomainError::Db(sea_orm::DbErr::RecordNotUpdated))?;
        expired.push(Expired {
            event_id: event.try_get("", "id")?,
            position: event.try_get("", "position")?,
            invitation_id,
            organization_id: invitation.try_get("", "organization_id")?,
            company_id: invitation.try_get("", "company_id")?,
            invitation_type: invitation.try_get("", "invitation_type")?,
            connection_id: invitation.try_get("", "connection_id")?,
        });
    }
    Ok(expired)
}
