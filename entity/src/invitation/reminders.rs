//! The reminder scheduler: one email per allowed address shortly before the deadline.

use chrono::Duration;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::active_at;
use crate::entities::{invitation_events, invitations};
use crate::work::{Command, Work};
use crate::{DomainError, EventType, now};

/// Writes the reminder emails that are due: ACTIVE invitations with `remindBeforeExpirySeconds`
/// whose deadline is that close, not reminded yet. Each invitation is claimed with a conditional
/// update of `reminder_sent_at`, so however many workers run this, it reminds once; recipients
/// who already submitted are skipped. Looks at up to `batch` invitations; its output is how many
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
    let candidates = invitations::Entity::find()
        .filter(active_at(at))
        .filter(invitations::Column::RemindBeforeExpirySeconds.is_not_null())
        .filter(invitations::Column::ReminderSentAt.is_null())
        .order_by_asc(invitations::Column::ExpiresAt)
        .limit(batch)
        .all(txn)
        .await?;
    let mut written = 0;
    for row in candidates {
        let (Some(expires_at), Some(before)) = (row.expires_at, row.remind_before_expiry_seconds)
        else {
            continue;
        };
        if expires_at - Duration::seconds(before) > at {
            continue;
        }
        let claimed = invitations::Entity::update_many()
            .col_expr(invitations::Column::ReminderSentAt, Expr::value(at))
            .filter(invitations::Column::Id.eq(row.id))
            .filter(invitations::Column::ReminderSentAt.is_null())
            .exec(txn)
            .await?;
        if claimed.rows_affected == 0 {
            continue;
        }
        let submitted: Vec<Option<String>> = invitation_events::Entity::find()
            .select_only()
            .column(invitation_events::Column::Email)
            .filter(invitation_events::Column::InvitationId.eq(row.id))
            .filter(invitation_events::Column::EventType.eq(EventType::Submitted))
            .into_tuple()
            .all(txn)
            .await?;
        let recipients: Vec<String> = row
            .allowed_emails
            .0
            .iter()
            .filter(|e| !submitted.iter().flatten().any(|s| s == *e))
            .cloned()
            .collect();
        if recipients.is_empty() {
            continue;
        }
        written += crate::outbox::email::enqueue(
            work,
            &row,
            crate::DeliveryKind::Reminder,
            &recipients,
            serde_json::json!({}),
            None,
        )
        .await?
        .len();
    }
    Ok(written)
}
