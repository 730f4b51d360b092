//! The webhook delivery outbox: one row per (event, endpoint), drained by the workers.
//!
//! The discipline of [`crate::outbox`]: a worker takes a row's lease with a
//! conditional update before it calls the endpoint, so one delivery is never in flight twice,
//! and it records the attempt, the row's new state and the endpoint's health in one
//! transaction fenced by that lease. Delivery is at least once: a worker that dies after the
//! receiver answered but before the record commits leaves the row to be sent again when the
//! lease ends, with the same `webhook-id`, which is what receivers deduplicate on.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect, Set,
};
use uuid::Uuid;

use super::{RetrySchedule, pending_due, still_held_all, take_leases, to_chrono};
use crate::entities::{webhook_deliveries, webhook_endpoints};
use crate::scope::find_owned;
use crate::work::{Command, Work};
use crate::{DomainError, EndpointStatus, WebhookDeliveryStatus, now};

mod record;
pub use record::{AttemptRecord, Recorded, Settled, record_attempts};

/// How long failures may go on before giving up on a delivery, and on an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookPolicy {
    pub retry: RetrySchedule,
    /// An endpoint whose attempts have all failed for this long is disabled.
    pub disable_after: Duration,
}

impl Default for WebhookPolicy {
    /// 12 attempts: at once, then after 15 s, 30 s, 1 min, 2 min, 4 min, 8 min, 16 min, 32 min,
    /// 64 min, 128 min and 4 h (about 8 h 15 min in all), so a receiver that is down for a
    /// deploy or an afternoon still gets everything. An endpoint failing for 5 days is disabled.
    fn default() -> Self {
        Self {
            retry: RetrySchedule {
                max_attempts: 12,
                first_delay: Duration::from_secs(15),
                max_delay: Duration::from_secs(4 * 3600),
            },
            disable_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// A delivery whose lease the caller holds, with its endpoint as it was when the lease was
/// taken.
#[derive(Debug, Clone)]
pub struct Claim {
    pub delivery: webhook_deliveries::Model,
    pub endpoint: webhook_endpoints::Model,
}

/// Takes the leases of those of `ids` that are PENDING and due, in one statement (see
/// [`super::take_leases`]: of any number of concurrent callers exactly one gets each row), and
/// reads their endpoints in one more.
pub async fn claim_all(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    lease: Duration,
) -> Result<Vec<Claim>, DomainError> {
    let deliveries = take_leases::<webhook_deliveries::Entity>(db, ids, lease).await?;
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let endpoint_ids: BTreeSet<Uuid> = deliveries.iter().map(|d| d.endpoint_id).collect();
    let endpoints: HashMap<Uuid, webhook_endpoints::Model> = webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::Id.is_in(endpoint_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|e| (e.id, e))
        .collect();
    Ok(deliveries
        .into_iter()
        .filter_map(|delivery| {
            // Deleting an endpoint deletes its deliveries, so it exists unless it went in
            // between; a delivery only ever goes to its own organization's endpoint.
            let endpoint = endpoints
                .get(&delivery.endpoint_id)
                .filter(|e| e.organization_id == delivery.organization_id)?
                .clone();
            Some(Claim { delivery, endpoint })
        })
        .collect())
}

/// Gives claimed deliveries up without calling their endpoints (disabled, or a secret that
/// cannot be used): FAILED with the reason. No attempt is recorded because none was made.
pub struct Cancel<'a> {
    pub claims: &'a [&'a Claim],
    pub reason: &'a str,
}

impl Command for Cancel<'_> {
    type Output = ();

    async fn execute(&self, work: &Work) -> Result<(), DomainError> {
        if self.claims.is_empty() {
            return Ok(());
        }
        let at = now();
        webhook_deliveries::Entity::update_many()
            .col_expr(
                webhook_deliveries::Column::Status,
                Expr::value(WebhookDeliveryStatus::Failed),
            )
            .col_expr(
                webhook_deliveries::Column::LastError,
                Expr::value(self.reason),
            )
            .col_expr(webhook_deliveries::Column::FinishedAt, Expr::value(at))
            .col_expr(webhook_deliveries::Column::UpdatedAt, Expr::value(at))
            .filter(held(self.claims.iter().copied()))
            .exec(work.txn())
            .await?;
        Ok(())
    }
}

/// Due PENDING deliveries that no job has been queued for at their current due time: what the
/// dispatcher queues next.
pub async fn dispatchable(
    db: &impl ConnectionTrait,
    limit: u64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, DomainError> {
    // Scoped here: at module level its `min`/`max` shadow `Ord`'s on plain integers.
    use sea_orm::sea_query::ExprTrait;

    let not_queued = Condition::any()
        .add(webhook_deliveries::Column::EnqueuedFor.is_null())
        .add(
            Expr::col(webhook_deliveries::Column::EnqueuedFor)
                .ne(Expr::col(webhook_deliveries::Column::NextAttemptAt)),
        );
    pending_due::<webhook_deliveries::Entity>(db, now(), Some(not_queued), limit).await
}

/// Notes that jobs were queued for these deliveries at their current due time. A row claimed
/// in between gets its lease end noted instead; if that holder dies, the sweeper (not the
/// dispatcher) queues the row again, after its grace.
pub async fn mark_enqueued(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<(), DomainError> {
    if ids.is_empty() {
        return Ok(());
    }
    webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::EnqueuedFor,
            Expr::col(webhook_deliveries::Column::NextAttemptAt),
        )
        .filter(webhook_deliveries::Column::Id.is_in(ids.iter().copied()))
        .filter(webhook_deliveries::Column::Status.eq(WebhookDeliveryStatus::Pending))
        .exec(db)
        .await?;
    Ok(())
}

/// How many deliveries are due and waiting, and since when the oldest has been (see
/// [`super::backlog`]).
pub async fn backlog(
    db: &impl ConnectionTrait,
) -> Result<(u64, Option<DateTime<Utc>>), DomainError> {
    super::backlog::<webhook_deliveries::Entity>(db).await
}

/// PENDING deliveries due for at least `grace`, queued or not: the sweeper queues these again
/// in case their job was lost (a flushed Redis, a worker that died holding the lease).
pub async fn due_pending(
    db: &impl ConnectionTrait,
    grace: Duration,
    limit: u64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, DomainError> {
    pending_due::<webhook_deliveries::Entity>(db, now() - to_chrono(grace), None, limit).await
}

/// Deletes up to `limit` deliveries (with their attempts) that finished more than `retention`
/// ago; returns how many. Call again while it returns `limit`.
pub async fn purge_finished(
    db: &impl ConnectionTrait,
    retention: Duration,
    limit: u64,
) -> Result<u64, DomainError> {
    let old: Vec<Uuid> = webhook_deliveries::Entity::find()
        .select_only()
        .column(webhook_deliveries::Column::Id)
        .filter(webhook_deliveries::Column::FinishedAt.lt(now() - to_chrono(retention)))
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?;
    if old.is_empty() {
        return Ok(0);
    }
    // Attempts go with their delivery (foreign key, ON DELETE CASCADE).
    let deleted = webhook_deliveries::Entity::delete_many()
        .filter(webhook_deliveries::Column::Id.is_in(old))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}

/// Sends a delivery's message again as a new delivery (same `webhook-id`, same body) to its
/// endpoint, which must be enabled; the unit of work queues it.
pub struct Replay {
    pub organization_id: Uuid,
    pub id: Uuid,
}

impl Command for Replay {
    type Output = webhook_deliveries::Model;

    async fn execute(&self, work: &Work) -> Result<Self::Output, DomainError> {
        replay(work, self.organization_id, self.id).await
    }
}

async fn replay(
    work: &Work,
    organization_id: Uuid,
    id: Uuid,
) -> Result<webhook_deliveries::Model, DomainError> {
    let db = work.txn();
    let original = find_owned::<webhook_deliveries::Entity>(db, organization_id, id).await?;
    let endpoint =
        find_owned::<webhook_endpoints::Entity>(db, organization_id, original.endpoint_id).await?;
    if endpoint.status != EndpointStatus::Enabled {
        return Err(DomainError::Conflict(
            "the endpoint is disabled; enable it before replaying".into(),
        ));
    }
    let at = now();
    let row = webhook_deliveries::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(organization_id),
        endpoint_id: Set(original.endpoint_id),
        message_id: Set(original.message_id),
        event_type: Set(original.event_type),
        body: Set(original.body),
        status: Set(WebhookDeliveryStatus::Pending),
        attempts: Set(0),
        last_http_status: Set(None),
        last_error: Set(None),
        next_attempt_at: Set(at),
        enqueued_for: Set(None),
        replay_of: Set(Some(original.id)),
        created_at: Set(at),
        updated_at: Set(at),
        finished_at: Set(None),
    }
    .insert(db)
    .await?;
    work.push_webhook(row.id, row.next_attempt_at);
    Ok(row)
}

/// The claims whose lease the caller still holds (see [`super::still_held_all`]).
fn held<'a>(claims: impl Iterator<Item = &'a Claim>) -> Condition {
    still_held_all::<webhook_deliveries::Entity>(
        claims.map(|c| (c.delivery.id, c.delivery.next_attempt_at)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_matches_its_documentation() {
        let p = WebhookPolicy::default();
        let waits: Vec<u64> = (1..p.retry.max_attempts)
            .map(|n| p.retry.delay_after(n).as_secs())
            .collect();
        assert_eq!(
            waits,
            [15, 30, 60, 120, 240, 480, 960, 1920, 3840, 7680, 14400]
        );
        let total: u64 = waits.iter().sum();
        assert_eq!(total, 29_745); // 8 h 15 min 45 s
        assert_eq!(p.disable_after, Duration::from_secs(432_000));
    }
}
