//! The reminder scheduler: one email per allowed address shortly before the deadline.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QuerySelect,
};
use uuid::Uuid;

use super::active_at;
use crate::entities::{invitation_events, invitations};
use crate::outbox::email::{delivery_row, insert_all};
use crate::work::{Command, Work};
use crate::{DeliveryKind, DomainError, EventType, email, now};

/// Writes the reminder emails that are due: ACTIVE invitations with `remindBeforeExpirySeconds`
/// whose deadline is that close, not reminded yet. Set-based, a few statements per batch
/// whatever its size: the due invitations are claimed with one conditional update of
/// `reminder_sent_at` (so however many workers run this, each invitation is reminded once),
/// the addresses that already submitted are read in one query and skipped, and the emails are
/// written an insert per thousand. Looks at up to `batch` invitations; its output is how many
/// emails it wrote.
pub struct QueueReminders {
    pub batch: u64,
}

impl Command for QueueReminders {
    type Output = usize;

    async fn execute(&self, work: &Work) -> Result<usize, DomainError> {
        queue_due_reminders(work, self.batch).await
    }
}

async fn queue_due_reminders(work: &Work, batch: u64) -> Result<usize, DomainError> {
    let txn = work.txn();
    let at = now();
    let due = Query::select()
        .column(invitations::Column::Id)
        .from(invitations::Entity)
        .cond_where(active_at(at))
        .and_where(invitations::Column::RemindBeforeExpirySeconds.is_not_null())
        .and_where(invitations::Column::ReminderSentAt.is_null())
        .and_where(reminder_due(txn.get_database_backend(), at))
        .order_by(invitations::Column::ExpiresAt, sea_orm::Order::Asc)
        .limit(batch)
        .to_owned();
    let claimed = invitations::Entity::update_many()
        .col_expr(invitations::Column::ReminderSentAt, Expr::value(at))
        .filter(invitations::Column::Id.in_subquery(due))
        .filter(invitations::Column::ReminderSentAt.is_null())
        .exec_with_returning(txn)
        .await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let submitted: Vec<(Uuid, Option<String>)> = invitation_events::Entity::find()
        .select_only()
        .column(invitation_events::Column::InvitationId)
        .column(invitation_events::Column::Email)
        .filter(invitation_events::Column::InvitationId.is_in(claimed.iter().map(|i| i.id)))
        .filter(invitation_events::Column::EventType.eq(EventType::Submitted))
        .into_tuple()
        .all(txn)
        .await?;
    let mut done: HashMap<Uuid, Vec<String>> = HashMap::new();
    for (invitation, address) in submitted {
        done.entry(invitation).or_default().extend(address);
    }
    let mut rows = Vec::new();
    for invitation in &claimed {
        let submitted = done.get(&invitation.id);
        // Stored addresses were normalized when the invitation was written; normalizing
        // again only drops duplicates an older row may hold.
        for recipient in email::normalize_list(&invitation.allowed_emails.0, "allowedEmails")? {
            if submitted.is_some_and(|s| s.contains(&recipient)) {
                continue;
            }
            rows.push(delivery_row(
                invitation,
                DeliveryKind::Reminder,
                recipient,
                serde_json::json!({}),
                None,
                at,
            ));
        }
    }
    insert_all(work, &rows).await?;
    Ok(rows.len())
}

/// `expires_at - remind_before_expiry_seconds <= at`, in each backend's date arithmetic, so the
/// batch holds only invitations whose reminder is due: filtering after the `LIMIT` would let
/// a batch of not-yet-due invitations with early deadlines hide a due one behind them.
fn reminder_due(backend: DatabaseBackend, at: DateTime<Utc>) -> sea_orm::sea_query::SimpleExpr {
    match backend {
        // Timestamps are RFC 3339 text, which `julianday` reads (fractions and offset included).
        DatabaseBackend::Sqlite => Expr::cust_with_values(
            "julianday(expires_at) - remind_before_expiry_seconds / 86400.0 <= julianday(?)",
            [at],
        ),
        _ => Expr::cust_with_values(
            "expires_at - remind_before_expiry_seconds * INTERVAL '1 second' <= $1",
            [at],
        ),
    }
}
