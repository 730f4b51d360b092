//! The webhook delivery outbox: one row per (event, endpoint), drained by the workers.
//!
//! The discipline of [`crate::outbox`]: a worker takes a row's lease with a
//! conditional update before it calls the endpoint, so one delivery is never in flight twice,
//! and it records the attempt, the row's new state and the endpoint's health in one
//! transaction fenced by that lease. Delivery is at least once: a worker that dies after the
//! receiver answered but before the record commits leaves the row to be sent again when the
//! lease ends, with the same `webhook-id`, which is what receivers deduplicate on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, EntityTrait,
    QueryFilter, QuerySelect, QueryTrait, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::{RetrySchedule, pending_due, still_held_all, take_leases, to_chrono};
use crate::entities::{webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::scope::find_owned;
use crate::webhook::events::{ENDPOINT_DISABLED, emit};
use crate::work::{Command, Dispatch, INSERT_CHUNK, Work};
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

/// What [`record_attempts`] decided for one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Succeeded,
    /// Still PENDING, due again at this time.
    RetryAt(DateTime<Utc>),
    /// FAILED: out of attempts, the target is forbidden, or the endpoint was disabled.
    Failed,
    /// The lease had passed to someone else; nothing was written.
    Superseded,
}

/// What [`record_attempts`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// One decision per attempt, in the order given.
    pub settled: Vec<Settled>,
    /// The endpoints these attempts disabled.
    pub disabled: Vec<Uuid>,
}

/// How an endpoint's attempts in one group went, in the order they finished.
#[derive(Debug, Default)]
struct Health {
    any_succeeded: bool,
    last_succeeded: bool,
}

/// Records attempts and what follows from them, in one unit of work: the attempt rows, the
/// deliveries' states, and their endpoints' health. Attempts whose lease passed to someone else
/// record nothing (`Superseded`), and count for nothing in their endpoint's health.
///
/// The attempts are applied to an endpoint's health in the order given (the order they
/// finished): one that ends with a success clears the endpoint's failure clock; one that ends
/// with a failure starts the clock if it is not running, and disables the endpoint when the
/// clock has run past [`WebhookPolicy::disable_after`], which also sends
/// `webhook_endpoint.disabled` to the organization's other endpoints. The failed attempts of an
/// endpoint disabled here end their deliveries (FAILED): no further attempts go to it. Each
/// group costs a few statements, however many attempts it holds.
pub async fn record_attempts(
    db: &DatabaseConnection,
    dispatch: &impl Dispatch,
    attempts: &[(&Claim, AttemptRecord)],
    policy: &WebhookPolicy,
) -> Result<Recorded, DomainError> {
    if attempts.is_empty() {
        return Ok(Recorded {
            settled: Vec::new(),
            disabled: Vec::new(),
        });
    }
    let work = Work::begin(db).await?;
    let txn = work.txn();
    let at = now();
    let held = lock_held(txn, attempts.iter().map(|(claim, _)| *claim), at).await?;
    let mut health: HashMap<Uuid, Health> = HashMap::new();
    for (claim, attempt) in attempts {
        if held.contains(&claim.delivery.id) {
            let h = health.entry(claim.endpoint.id).or_default();
            h.last_succeeded = attempt.outcome == AttemptOutcome::Succeeded;
            h.any_succeeded |= h.last_succeeded;
        }
    }
    // A success clears the clock; failures after it start it again below.
    let cleared: Vec<Uuid> = health
        .iter()
        .filter(|(_, h)| h.any_succeeded)
        .map(|(id, _)| *id)
        .collect();
    if !cleared.is_empty() {
        webhook_endpoints::Entity::update_many()
            .col_expr(
                webhook_endpoints::Column::FailingSince,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(webhook_endpoints::Column::Id.is_in(cleared))
            .filter(webhook_endpoints::Column::FailingSince.is_not_null())
            .exec(txn)
            .await?;
    }
    let failing: Vec<Uuid> = health
        .iter()
        .filter(|(_, h)| !h.last_succeeded)
        .map(|(id, _)| *id)
        .collect();
    let disabled = note_failures(&work, &failing, policy, at).await?;

    // The deliveries' new states, one statement per distinct state.
    let mut settled = Vec::with_capacity(attempts.len());
    let mut updates: Vec<(DeliveryUpdate, Vec<Uuid>)> = Vec::new();
    let mut rows = Vec::new();
    for (claim, attempt) in attempts {
        if !held.contains(&claim.delivery.id) {
            settled.push(Settled::Superseded);
            continue;
        }
        let succeeded = attempt.outcome == AttemptOutcome::Succeeded;
        let attempts = u32::try_from(claim.delivery.attempts)
            .unwrap_or(0)
            .saturating_add(1);
        let ended_by_disabling = !succeeded && disabled.contains(&claim.endpoint.id);
        let permanent = attempt.outcome == AttemptOutcome::TargetForbidden;
        let decision = if succeeded {
            Settled::Succeeded
        } else if permanent || ended_by_disabling || policy.retry.exhausted(attempts) {
            Settled::Failed
        } else {
            Settled::RetryAt(at + to_chrono(policy.retry.delay_after(attempts)))
        };
        let (status, next_attempt_at, finished_at) = match decision {
            Settled::Succeeded => (WebhookDeliveryStatus::Succeeded, at, Some(at)),
            Settled::RetryAt(due) => (WebhookDeliveryStatus::Pending, due, None),
            _ => (WebhookDeliveryStatus::Failed, at, Some(at)),
        };
        let error = match (&attempt.error, ended_by_disabling) {
            (Some(e), true) => Some(format!(
                "{e}; the endpoint was disabled after failing too long"
            )),
            (e, _) => e.clone(),
        };
        let update = DeliveryUpdate {
            status,
            http_status: attempt.http_status.map(i32::from),
            error,
            next_attempt_at,
            finished_at,
        };
        match updates.iter_mut().find(|(u, _)| *u == update) {
            Some((_, ids)) => ids.push(claim.delivery.id),
            None => updates.push((update, vec![claim.delivery.id])),
        }
        rows.push(webhook_attempts::ActiveModel {
            id: Set(Uuid::now_v7()),
            delivery_id: Set(claim.delivery.id),
            attempted_at: Set(attempt.attempted_at),
            duration_ms: Set(i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX)),
            outcome: Set(attempt.outcome),
            http_status: Set(attempt.http_status.map(i32::from)),
            error: Set(attempt.error.clone()),
            response_excerpt: Set(attempt.response_excerpt.clone()),
        });
        settled.push(decision);
    }
    for (update, ids) in updates {
        update.apply(txn, ids, at).await?;
    }
    for chunk in rows.chunks(INSERT_CHUNK) {
        webhook_attempts::Entity::insert_many(chunk.to_vec())
            .exec(txn)
            .await?;
    }
    work.commit(dispatch).await?;
    Ok(Recorded {
        settled,
        disabled: disabled.into_iter().collect(),
    })
}

/// A delivery's state after an attempt; deliveries with equal states are written together.
#[derive(Debug, PartialEq, Eq)]
struct DeliveryUpdate {
    status: WebhookDeliveryStatus,
    http_status: Option<i32>,
    error: Option<String>,
    next_attempt_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl DeliveryUpdate {
    /// Writes the state to `ids`, which the caller has locked (see [`lock_held`]), counting one
    /// more attempt each.
    async fn apply(
        self,
        db: &impl ConnectionTrait,
        ids: Vec<Uuid>,
        at: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        // Scoped here: at module level its `min`/`max` shadow `Ord`'s on plain integers.
        use sea_orm::sea_query::ExprTrait;

        webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::Status, Expr::value(self.status))
            .col_expr(
                webhook_deliveries::Column::Attempts,
                Expr::col(webhook_deliveries::Column::Attempts).add(1),
            )
            .col_expr(
                webhook_deliveries::Column::LastHttpStatus,
                Expr::value(self.http_status),
            )
            .col_expr(
                webhook_deliveries::Column::LastError,
                Expr::value(self.error),
            )
            .col_expr(
                webhook_deliveries::Column::NextAttemptAt,
                Expr::value(self.next_attempt_at),
            )
            .col_expr(
                webhook_deliveries::Column::FinishedAt,
                Expr::value(self.finished_at),
            )
            .col_expr(webhook_deliveries::Column::UpdatedAt, Expr::value(at))
            .filter(webhook_deliveries::Column::Id.is_in(ids))
            .exec(db)
            .await?;
        Ok(())
    }
}

/// Of the claims, those whose lease the caller still holds, in one statement that also locks
/// them until the transaction ends (so the writes that follow need no fence of their own).
async fn lock_held<'a>(
    txn: &impl ConnectionTrait,
    claims: impl Iterator<Item = &'a Claim>,
    at: DateTime<Utc>,
) -> Result<HashSet<Uuid>, DomainError> {
    let fence = held(claims);
    let mut statement = webhook_deliveries::Entity::update_many()
        .col_expr(webhook_deliveries::Column::UpdatedAt, Expr::value(at))
        .filter(fence)
        .into_query();
    statement.returning_col(webhook_deliveries::Column::Id);
    txn.query_all(&statement)
        .await?
        .iter()
        .map(|row| Ok(row.try_get::<Uuid>("", "id")?))
        .collect()
}

/// Starts the failure clocks of `endpoints` where they are not running, and disables those
/// whose clock has run past the policy. Returns the ones it disabled.
async fn note_failures(
    work: &Work,
    endpoints: &[Uuid],
    policy: &WebhookPolicy,
    at: DateTime<Utc>,
) -> Result<HashSet<Uuid>, DomainError> {
    if endpoints.is_empty() {
        return Ok(HashSet::new());
    }
    webhook_endpoints::Entity::update_many()
        .col_expr(webhook_endpoints::Column::FailingSince, Expr::value(at))
        .filter(webhook_endpoints::Column::Id.is_in(endpoints.iter().copied()))
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
        .filter(webhook_endpoints::Column::Id.is_in(endpoints.iter().copied()))
        .filter(webhook_endpoints::Column::Status.eq(EndpointStatus::Enabled))
        .filter(webhook_endpoints::Column::FailingSince.lte(at - to_chrono(policy.disable_after)))
        .exec_with_returning(work.txn())
        .await?;
    let mut ids = HashSet::new();
    for row in disabled {
        let data = json!({
            "endpointId": row.id,
            "url": row.url,
            "reason": DisabledReason::Failing,
            "failingSince": row.failing_since,
            "disabledAt": row.disabled_at,
        });
        emit(work, row.organization_id, ENDPOINT_DISABLED, data).await?;
        ids.insert(row.id);
    }
    Ok(ids)
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
