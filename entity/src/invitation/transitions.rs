//! The status transitions after creation: revoke and use (SPEC §3.2); expiry is in `expire`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::active_at;
use crate::activity::{self, Actor, EventExtra};
use crate::entities::invitations;
use crate::work::{Command, Work};
use crate::{DomainError, EventType, InvitationStatus, now};

/// Re-reads an invitation after a conditional update touched nothing and names why.
pub(super) async fn not_active(
    db: &impl ConnectionTrait,
    filter: Condition,
    at: DateTime<Utc>,
) -> DomainError {
    match invitations::Entity::find().filter(filter).one(db).await {
        Ok(Some(row)) => DomainError::NotActive(row.effective_status(at)),
        Ok(None) => DomainError::NotFound,
        Err(e) => DomainError::Db(e),
    }
}

/// ACTIVE → REVOKED. Revoking anything else is a conflict naming its status.
pub struct Revoke {
    pub organization_id: Uuid,
    pub id: Uuid,
    pub reason: Option<String>,
    pub actor: Actor,
}

impl Command for Revoke {
    type Output = Vec<invitations::Model>;

    async fn execute(&self, work: &Work) -> Result<Self::Output, DomainError> {
        let row = revoke(
            work,
            self.organization_id,
            self.id,
            self.reason.clone(),
            &self.actor,
        )
        .await?;
        Ok(vec![row])
    }
}

async fn revoke(
    work: &Work,
    organization_id: Uuid,
    id: Uuid,
    reason: Option<String>,
    actor: &Actor,
) -> Result<invitations::Model, DomainError> {
    let txn = work.txn();
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(DomainError::invalid(
            "reason",
            "must be at most 500 characters",
        ));
    }
    let at = now();
    let scope = Condition::all()
        .add(invitations::Column::Id.eq(id))
        .add(invitations::Column::OrganizationId.eq(organization_id));
    let updated = invitations::Entity::update_many()
        .col_expr(
            invitations::Column::Status,
            Expr::value(InvitationStatus::Revoked),
        )
        .col_expr(invitations::Column::RevokedAt, Expr::value(at))
        .col_expr(
            invitations::Column::RevokedReason,
            Expr::value(reason.clone()),
        )
        .col_expr(invitations::Column::UpdatedAt, Expr::value(at))
        .filter(scope.clone())
        .filter(active_at(at))
        .exec_with_returning(txn)
        .await?;
    let Some(row) = updated.into_iter().next() else {
        return Err(match not_active(txn, scope, at).await {
            DomainError::NotActive(status) => {
                DomainError::Conflict(format!("invitation is {}", status.as_str()))
            }
            other => other,
        });
    };
    let detail = reason.map(|r| serde_json::json!({ "reason": r }));
    activity::record(
        work,
        &row,
        EventType::Revoked,
        actor,
        EventExtra {
            detail,
            ..Default::default()
        },
    )
    .await?;
    Ok(row)
}

/// Counts one use (a successful submit): `useCount + 1`, and FULFILLED when it reaches `maxUses`.
/// One conditional `UPDATE`, so N concurrent submits on `maxUses = N` yield exactly N uses, and a
/// submit racing a revoke or the deadline either lands wholly before it or fails.
pub async fn record_use(
    work: &Work,
    id: Uuid,
    extra: EventExtra,
    actor: &Actor,
) -> Result<invitations::Model, DomainError> {
    let txn = work.txn();
    let at = now();
    let use_count = Expr::col(invitations::Column::UseCount);
    let reaches_max = Condition::all()
        .add(invitations::Column::MaxUses.is_not_null())
        .add(
            use_count
                .clone()
                .add(1)
                .gte(Expr::col(invitations::Column::MaxUses)),
        );
    let updated = invitations::Entity::update_many()
        .col_expr(invitations::Column::UseCount, use_count.clone().add(1))
        .col_expr(
            invitations::Column::Status,
            Expr::case(
                reaches_max.clone(),
                Expr::value(InvitationStatus::Fulfilled),
            )
            .finally(Expr::col(invitations::Column::Status))
            .into(),
        )
        .col_expr(
            invitations::Column::FulfilledAt,
            Expr::case(reaches_max, Expr::value(at))
                .finally(Expr::col(invitations::Column::FulfilledAt))
                .into(),
        )
        .col_expr(invitations::Column::UpdatedAt, Expr::value(at))
        .filter(invitations::Column::Id.eq(id))
        .filter(active_at(at))
        .filter(
            Condition::any()
                .add(invitations::Column::MaxUses.is_null())
                .add(use_count.lt(Expr::col(invitations::Column::MaxUses))),
        )
        .exec_with_returning(txn)
        .await?;
    let Some(row) = updated.into_iter().next() else {
        return Err(not_active(
            txn,
            Condition::all().add(invitations::Column::Id.eq(id)),
            at,
        )
        .await);
    };
    activity::record(work, &row, EventType::Submitted, actor, extra.clone()).await?;
    if row.status == InvitationStatus::Fulfilled {
        let fulfilled = EventExtra {
            detail: None,
            ..extra
        };
        activity::record(work, &row, EventType::Fulfilled, actor, fulfilled).await?;
    }
    Ok(row)
}
