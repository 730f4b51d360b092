//! Recording webhook attempts in groups: the attempt rows, the deliveries' new states and the
//! endpoints' health, in one unit of work fenced by the deliveries' leases.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryTrait, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::{Claim, WebhookPolicy, held};
use crate::entities::{webhook_attempts, webhook_deliveries, webhook_endpoints};
use crate::outbox::to_chrono;
use crate::webhook::events::{ENDPOINT_DISABLED, emit};
use crate::work::{Dispatch, INSERT_CHUNK, Work};
use crate::{
    AttemptOutcome, DisabledReason, DomainError, EndpointStatus, WebhookDeliveryStatus, now,
};

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
