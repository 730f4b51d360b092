//! Invitations: the create-time rules, the status transitions, listing, the activity log's
//! pages and the reminder scheduler (SPEC §3.1, §3.2).
//!
//! Every transition is one conditional `UPDATE … WHERE status = 'ACTIVE' AND <not expired>` with
//! `RETURNING`, followed by its activity row in the same unit of work: under concurrency exactly
//! one caller wins and the others see zero rows and get a clean error.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, SimpleExpr};
use sea_orm::{ActiveEnum, ColumnTrait, Condition};
use url::Url;

use crate::InvitationStatus;
use crate::entities::invitations;

mod create;
pub mod events;
mod expire;
pub mod list;
mod reminders;
mod resend;
mod rules;
mod transitions;

pub use create::{Create, Created, create};
pub use events::{EventWindow, count_events, event_pages};
pub use expire::ExpireDue;
pub use list::{ListCursor, ListFilter, ListRequest, Page, list, status_condition};
pub use reminders::QueueReminders;
pub use resend::{Resend, ResendInvitation};
pub use rules::{
    CreateInvitation, LOCKABLE_FIELDS, MAX_ALLOWED_EMAILS, MAX_EXPIRES_IN_SECONDS, MAX_USES_LIMIT,
    MIN_EXPIRES_IN_SECONDS,
};
pub use transitions::{Revoke, record_use};

impl invitations::Model {
    /// The status a reader must see at `at`: a stored ACTIVE row past its deadline is EXPIRED even
    /// before the expiry job persists it. Terminal states never change.
    pub fn effective_status(&self, at: DateTime<Utc>) -> InvitationStatus {
        match self.status {
            InvitationStatus::Active if self.expires_at.is_some_and(|e| e <= at) => {
                InvitationStatus::Expired
            }
            status => status,
        }
    }
}

/// The recipient page of an invitation, `{base}/p/i/{token}`: the one place that spells the
/// link (the API shows it, emails carry it). `base` is the service's public http(s) address.
pub fn page_url(base: &Url, token: &str) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(["p", "i", token]);
    }
    url
}

/// `status = 'ACTIVE' AND (expires_at IS NULL OR expires_at > at)`: the rows a transition may touch.
pub(crate) fn active_at(at: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(is_variant(
            invitations::Column::Status,
            InvitationStatus::Active,
        ))
        .add(
            Condition::any()
                .add(invitations::Column::ExpiresAt.is_null())
                .add(invitations::Column::ExpiresAt.gt(at)),
        )
}

/// `column = 'VARIANT'`, the enumeration's stored string written into the statement's text
/// rather than bound: one of a handful of fixed strings, so each gets a statement of its own,
/// which PostgreSQL plans with that value's statistics once and for all. Bound, a rare status
/// (no REVOKED among thousands of ACTIVE, in the test) made every custom plan cheaper than the
/// generic one, and the list was planned again at every execution (see
/// [`crate::finders::with_limit`]).
pub(crate) fn is_variant<E: ActiveEnum<Value = String>>(
    column: invitations::Column,
    variant: E,
) -> SimpleExpr {
    Expr::col((invitations::Entity, column)).eq(Expr::cust(format!("'{}'", variant.to_value())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use chrono::Duration;
    use uuid::Uuid;

    use super::*;
    use crate::{InvitationType, Prefill, StringList, now};

    fn row(status: InvitationStatus, expires_at: Option<DateTime<Utc>>) -> invitations::Model {
        let at = now();
        invitations::Model {
            id: Uuid::now_v7(),
            organization_id: Uuid::now_v7(),
            company_id: Uuid::now_v7(),
            connection_id: None,
            invitation_type: InvitationType::CreateConnection,
            status,
            token_hash: String::new(),
            token_sealed: String::new(),
            allowed_emails: StringList::default(),
            expires_at,
            max_uses: None,
            use_count: 0,
            prefill: Prefill::default(),
            locked_fields: StringList::default(),
            remind_before_expiry_seconds: None,
            reminder_sent_at: None,
            created_by: "test".into(),
            created_at: at,
            updated_at: at,
            revoked_at: None,
            revoked_reason: None,
            fulfilled_at: None,
            expired_at: None,
        }
    }

    #[test]
    fn active_past_deadline_reads_as_expired() {
        let t = now();
        let r = row(InvitationStatus::Active, Some(t));
        assert_eq!(
            r.effective_status(t - Duration::seconds(1)),
            InvitationStatus::Active
        );
        assert_eq!(r.effective_status(t), InvitationStatus::Expired);
        assert_eq!(
            row(InvitationStatus::Active, None).effective_status(t + Duration::days(9999)),
            InvitationStatus::Active
        );
    }

    #[test]
    fn terminal_states_win_over_expiry() {
        let t = now();
        for s in [InvitationStatus::Fulfilled, InvitationStatus::Revoked] {
            let r = row(s, Some(t - Duration::seconds(10)));
            assert_eq!(r.effective_status(t), s);
        }
    }
}
