//! The outboxes: rows written in the unit of work of the change that asks for a message (an
//! email, a webhook call) and drained by the workers. Both follow one discipline.
//!
//! The row is the source of truth; a queued job only says "look at delivery X". Whoever works
//! on a row first takes its lease ([`email::claim_all`], [`webhook::claim_all`]: one conditional update
//! that moves `next_attempt_at` into the future), so two copies of one job never both send, and
//! a job lost from the queue is found again by `due_pending`. Every change after that is one
//! conditional `UPDATE … WHERE status = 'PENDING'` fenced by the lease, so a duplicate run
//! records nothing twice and a holder whose lease ran out cannot overwrite its successor. A
//! failed attempt waits out a [`RetrySchedule`]; `Cancel` gives a row up without sending it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::{DomainError, now};

pub mod email;
pub mod webhook;

/// When a failed delivery is tried again, and when it is given up. No `Default`: each outbox
/// states its own (email: `jobs::settings::EmailSettings`, webhooks: `WebhookPolicy::default`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// Attempts (sends that reached the mailer) before the delivery is FAILED.
    pub max_attempts: u32,
    /// Wait after the first failure; each further failure doubles it.
    pub first_delay: Duration,
    /// Upper bound of one wait.
    pub max_delay: Duration,
}

impl RetrySchedule {
    /// The wait after `attempts` failed attempts: `first_delay · 2^(attempts-1)`, capped.
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(31);
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// Whether a delivery that has failed `attempts` times is out of attempts.
    pub fn exhausted(&self, attempts: u32) -> bool {
        attempts >= self.max_attempts
    }
}

/// An outbox table (email or webhook deliveries): rows stay PENDING until they are done, and a
/// worker leases one by moving its `next_attempt_at` into the future.
pub(crate) trait Leased: EntityTrait {
    const ID: Self::Column;
    const STATUS: Self::Column;
    const NEXT_ATTEMPT_AT: Self::Column;
    const UPDATED_AT: Self::Column;
    /// The stored value of the PENDING status.
    fn pending() -> sea_orm::Value;
}

/// Both outbox tables name their lease columns alike.
macro_rules! leased {
    ($($module:ident => $pending:expr),*) => {$(
        impl Leased for crate::entities::$module::Entity {
            const ID: Self::Column = crate::entities::$module::Column::Id;
            const STATUS: Self::Column = crate::entities::$module::Column::Status;
            const NEXT_ATTEMPT_AT: Self::Column = crate::entities::$module::Column::NextAttemptAt;
            const UPDATED_AT: Self::Column = crate::entities::$module::Column::UpdatedAt;
            fn pending() -> sea_orm::Value {
                $pending.into()
            }
        }
    )*};
}

leased!(
    email_deliveries => crate::DeliveryStatus::Pending,
    webhook_deliveries => crate::WebhookDeliveryStatus::Pending
);

/// PENDING rows due by `due_by` (and matching `extra`), with their due time, soonest first.
pub(crate) async fn pending_due<E: Leased>(
    db: &impl ConnectionTrait,
    due_by: DateTime<Utc>,
    extra: Option<Condition>,
    limit: u64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, DomainError> {
    let mut query = E::find()
        .select_only()
        .column(E::ID)
        .column(E::NEXT_ATTEMPT_AT)
        .filter(E::STATUS.eq(E::pending()))
        .filter(E::NEXT_ATTEMPT_AT.lte(due_by));
    if let Some(extra) = extra {
        query = query.filter(extra);
    }
    Ok(query
        .order_by_asc(E::NEXT_ATTEMPT_AT)
        .limit(limit)
        .into_tuple()
        .all(db)
        .await?)
}

/// What waits: the number of PENDING rows due by now (rows under a lease or backing off are not
/// due) and when the longest-waiting of them became due.
pub(crate) async fn backlog<E: Leased>(
    db: &impl ConnectionTrait,
) -> Result<(u64, Option<DateTime<Utc>>), DomainError> {
    let row: Option<(i64, Option<DateTime<Utc>>)> = E::find()
        .select_only()
        .column_as(Expr::from(Func::count(Expr::col(E::ID))), "count")
        .column_as(
            Expr::from(Func::min(Expr::col(E::NEXT_ATTEMPT_AT))),
            "oldest",
        )
        .filter(E::STATUS.eq(E::pending()))
        .filter(E::NEXT_ATTEMPT_AT.lte(now()))
        .into_tuple()
        .one(db)
        .await?;
    let (count, oldest) = row.unwrap_or_default();
    Ok((u64::try_from(count).unwrap_or_default(), oldest))
}

/// Takes the leases of those of `ids` that are due PENDING rows, for `lease`: one conditional
/// update, so of any number of concurrent callers exactly one gets each row. A row not returned
/// has nothing to do now: already final, not due yet (backing off), or leased by someone else.
pub(crate) async fn take_leases<E: Leased>(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    lease: Duration,
) -> Result<Vec<E::Model>, DomainError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let at = now();
    Ok(E::update_many()
        .col_expr(E::NEXT_ATTEMPT_AT, Expr::value(at + to_chrono(lease)))
        .col_expr(E::UPDATED_AT, Expr::value(at))
        .filter(E::ID.is_in(ids.iter().copied()))
        .filter(E::STATUS.eq(E::pending()))
        .filter(E::NEXT_ATTEMPT_AT.lte(at))
        .exec_with_returning(db)
        .await?)
}

/// The row is still PENDING and still under the lease that set `next_attempt_at`: a holder
/// whose lease ran out cannot overwrite the state written by the one that took over.
pub(crate) fn still_held<E: Leased>(id: Uuid, next_attempt_at: DateTime<Utc>) -> Condition {
    still_held_all::<E>(std::iter::once((id, next_attempt_at)))
}

/// [`still_held`] for many rows: one condition, grouped by lease end (the rows of one claim
/// share it), instead of one per row.
pub(crate) fn still_held_all<E: Leased>(
    rows: impl Iterator<Item = (Uuid, DateTime<Utc>)>,
) -> Condition {
    let mut by_lease: Vec<(DateTime<Utc>, Vec<Uuid>)> = Vec::new();
    for (id, lease) in rows {
        match by_lease.iter_mut().find(|(l, _)| *l == lease) {
            Some((_, ids)) => ids.push(id),
            None => by_lease.push((lease, vec![id])),
        }
    }
    let any = by_lease
        .into_iter()
        .fold(Condition::any(), |any, (lease, ids)| {
            any.add(
                Condition::all()
                    .add(E::ID.is_in(ids))
                    .add(E::NEXT_ATTEMPT_AT.eq(lease)),
            )
        });
    Condition::all().add(E::STATUS.eq(E::pending())).add(any)
}

/// Leases and backoffs are seconds to minutes; anything beyond chrono's range (hundreds of
/// millions of years) is clamped rather than treated as an error.
pub(crate) fn to_chrono(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_delay_and_is_capped() {
        let s = RetrySchedule {
            max_attempts: 50,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(60),
        };
        let waits: Vec<u64> = (1..=7).map(|n| s.delay_after(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 60, 60]);
        // Huge attempt counts neither overflow nor exceed the cap.
        assert_eq!(s.delay_after(u32::MAX), Duration::from_secs(60));
        // Attempt 0 never happens in practice; it must not shrink the first wait.
        assert_eq!(s.delay_after(0), Duration::from_secs(2));
    }

    #[test]
    fn schedule_gives_up_at_max_attempts() {
        let s = RetrySchedule {
            max_attempts: 3,
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(600),
        };
        assert!(!s.exhausted(2));
        assert!(s.exhausted(3));
        assert!(s.exhausted(4));
    }
}
