//! The webhook delivery outbox: one row per (event, endpoint), drained by the workers.
//!
//! The discipline of [`crate::outbox`]: a worker takes a row's lease with a
//! conditional update before it calls the endpoint, so one delivery is never in flight twice,
//! and it records the attempt, the row's new state and the endpoint's health in one
//! transaction fenced by that lease. Delivery is at least once: a worker that dies after the
//! receiver answered but before the record commits leaves the row to be sent again when the
//! lease ends, with the same `webhook-id`, which is what receivers deduplicate on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::{RetrySchedule, pending_due, still_held, take_lease, to_chrono};
use crate::entities::{webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::scope::find_owned;
use crate::webhook::events::{ENDPOINT_DISABLED, emit};
use crate::work::{Command, Dispatch, Work};
use crate::{
    AttemptOutcome, DisabledReason, DomainError, EndpointStatus, WebhookDeliveryStatus, now,
};

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

/// Takes the lease of a due PENDING delivery (see [`super::take_lease`]): of any number
/// of concurrent callers exactly one gets `Some`.
pub async fn claim(
    db: &impl ConnectionTrait,
    id: Uuid,
    lease: Duration,
) -> Result<Option<Claim>, DomainError> {
    let Some(delivery) = take_lease::<webhook_deliveries::Entity>(db, id, lease).await? else {
        return Ok(None);
    };
    // Deleting an endpoint deletes its deliveries, so it exists unless it went in between.
    let Some(endpoint) = webhook_endpoints::Entity::find_by_id(delivery.endpoint_id)
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Claim { delivery, endpoint }))
}

/// One HTTP attempt, as the sender saw it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempted_at: DateTime<Utc>,
    pub duration: Duration,
    pub outcome: AttemptOutcome,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// What [`record_attempt`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Succeeded,
    /// Still PENDING, due again at this time.
    RetryAt(DateTime<Utc>),
    /// FAILED: out of attempts, or the target is forbidden.
    Failed,
    /// The lease had passed to someone else; nothing was written.
    Superseded,
}

/// Records an attempt and what follows from it, in one unit of work: the attempt row, the
/// delivery's state, and the endpoint's health. An endpoint whose attempts have failed for
/// longer than [`WebhookPolicy::disable_after`] is disabled here, and `webhook_endpoint.disabled`
/// goes to the organization's other endpoints. Returns the decision and whether this attempt
/// disabled the endpoint.
pub async fn record_attempt(
    db: &DatabaseConnection,
    dispatch: &impl Dispatch,
    claim: &Claim,
    attempt: &AttemptRecord,
    policy: &WebhookPolicy,
) -> Result<(Settled, bool), DomainError> {
    let work = Work::begin(db).await?;
    let txn = work.txn();
    let at = now();
    let succeeded = attempt.outcome == AttemptOutcome::Succeeded;
    // The endpoint's health first: whether this attempt disables it decides the delivery too.
    // If the lease turns out to have passed on, the rollback below undoes this as well.
    let disabled = if succeeded {
        webhook_endpoints::Entity::update_many()
            .col_expr(
                webhook_endpoints::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(webhook_endpoints::Column::Id.eq(claim.endpoint.id))
            .filter(webhook_endpoints::Column::FailingSince.is_not_null())
            .exec(txn)
            .await?;
        false
    } else {
        note_failure(&work, &claim.endpoint, policy, at).await?
    };
    let attempts = u32::try_from(claim.delivery.attempts)
        .unwrap_or(0)
        .saturating_add(1);
    let permanent = attempt.outcome == AttemptOutcome::TargetForbidden;
    let settled = if succeeded {
        Settled::Succeeded
    } else if permanent || disabled || policy.retry.exhausted(attempts) {
        // No further attempts go to a disabled endpoint: the delivery ends with it.
        Settled::Failed
    } else {
        Settled::RetryAt(at + to_chrono(policy.retry.delay_after(attempts)))
    };
    let (status, next_attempt_at, finished_at) = match settled {
        Settled::Succeeded => (WebhookDeliveryStatus::Succeeded, at, Some(at)),
        Settled::RetryAt(due) => (WebhookDeliveryStatus::Pending, due, None),
        _ => (WebhookDeliveryStatus::Failed, at, Some(at)),
    };
    let error = match (&attempt.error, disabled) {
        (Some(e), true) => Some(format!(
            "{e}; the endpoint was disabled after failing too long"
        )),
        (e, _) => e.clone(),
    };
    let updated = webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::Status, Expr::value(status))
        .col_expr(
            webhook_deliveries::Column::Attempts,
            Expr::value(i32::try_from(attempts).unwrap_or(i32::MAX)),
        )
        .col_expr(
            webhook_deliveries::Column::LastHttpStatus,
            Expr::value(attempt.http_status.map(i32::from)),
        )
        .col_expr(webhook_deliveries::Column::LastError, Expr::value(error))
        .col_expr(
            webhook_deliveries::Column::NextAttemptAt,
            Expr::value(next_attempt_at),
        )
        .col_expr(
            webhook_deliveries::Column::FinishedAt,
            Expr::value(finished_at),
        )
        .col_expr(webhook_deliveries::Column::UpdatedAt, Expr::value(at))
        .filter(held(claim))
        .exec(txn)
        .await?;
    if updated.rows_affected == 0 {
        // Dropping the unit of work rolls the endpoint's health change back too.
        return Ok((Settled::Superseded, false));
    }
    webhook_attempts::ActiveModel {
        id: Set(Uuid::now_v7()),
        delivery_id: Set(claim.delivery.id),
        attempted_at: Set(attempt.attempted_at),
        duration_ms: Set(i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX)),
        outcome: Set(attempt.outcome),
        http_status: Set(attempt.http_status.map(i32::from)),
        error: Set(attempt.error.clone()),
        response_excerpt: Set(attempt.response_excerpt.clone()),
    }
    .insert(txn)
    .await?;
    work.commit(dispatch).await?;
    Ok((settled, disabled))
}

/// Starts the endpoint's failure clock if it is not running, and disables the endpoint when
/// the clock has run past the policy. Returns whether it disabled it.
async fn note_failure(
    work: &Work,
    endpoint: &webhook_endpoints::Model,
    policy: &WebhookPolicy,
    at: DateTime<Utc>,
) -> Result<bool, DomainError> {
    webhook_endpoints::Entity::update_many()
        .col_expr(webhook_endpoints::Column::FailingSince, Expr::value(at))
        .filter(webhook_endpoints::Column::Id.eq(endpoint.id))
        .filter(webhook_endpoints::Column::FailingSince.is_null())
        .exec(work.txn())
        .await?;
    let disabled = webhook_endpoints::Entity::update_many()
        .col_expr(
            webhook_endpoints::Column::Status,
            Expr::value(EndpointStatus::Disabled),
        )
        .col_expr(
            webhook_endpoints::Column::DisabledReason,
            Expr::value(DisabledReason::Failing),
        )
        .col_expr(webhook_endpoints::Column::DisabledAt, Expr::value(at))
        .col_expr(webhook_endpoints::Column::UpdatedAt, Expr::value(at))
        .filter(webhook_endpoints::Column::Id.eq(endpoint.id))
        .filter(webhook_endpoints::Column::Status.eq(EndpointStatus::Enabled))
        .filter(webhook_endpoints::Column::FailingSince.lte(at - to_chrono(policy.disable_after)))
        .exec_with_returning(work.txn())
        .await?;
    let Some(row) = disabled.into_iter().next() else {
        return Ok(false);
    };
    let data = json!({
        "endpointId": row.id,
        "url": row.url,
        "reason": DisabledReason::Failing,
        "failingSince": row.failing_since,
        "disabledAt": row.disabled_at,
    });
    emit(work, row.organization_id, ENDPOINT_DISABLED, data).await?;
    Ok(true)
}

/// Gives a claimed delivery up without calling the endpoint (it was disabled): FAILED with the
/// reason. No attempt is recorded because none was made.
pub struct Cancel<'a> {
    pub claim: &'a Claim,
    pub reason: &'a str,
}

impl Command for Cancel<'_> {
    type Output = ();

    async fn execute(&self, work: &Work) -> Result<(), DomainError> {
        cancel(work.txn(), self.claim, self.reason).await
    }
}

async fn cancel(db: &impl ConnectionTrait, claim: &Claim, reason: &str) -> Result<(), DomainError> {
    let at = now();
    webhook_deliveries::Entity::update_many()
        .col_expr(
            webhook_deliveries::Column::Status,
            Expr::value(WebhookDeliveryStatus::Failed),
        )
        .col_expr(webhook_deliveries::Column::LastError, Expr::value(reason))
        .col_expr(webhook_deliveries::Column::FinishedAt, Expr::value(at))
        .col_expr(webhook_deliveries::Column::UpdatedAt, Expr::value(at))
        .filter(held(claim))
        .exec(db)
        .await?;
    Ok(())
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

fn held(claim: &Claim) -> Condition {
    still_held::<webhook_deliveries::Entity>(claim.delivery.id, claim.delivery.next_attempt_at)
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
