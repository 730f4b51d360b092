//! Resending an invitation's email (SPEC §3.3).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::rules::{MAX_EXPIRES_IN_SECONDS, MIN_EXPIRES_IN_SECONDS};
use crate::activity::{self, Actor, EventExtra};
use crate::crypto::{Keyring, Slot, generate_token, hash_token};
use crate::entities::invitations;
use crate::scope::find_owned;
use crate::work::{Command, Work};
use crate::{DeliveryKind, DomainError, EventType, InvitationStatus, email, now};

/// What a resend asks for (SPEC §3.3).
#[derive(Debug, Clone, Default)]
pub struct Resend {
    /// A subset of the allow-list; `None` = all of it.
    pub emails: Option<Vec<String>>,
    pub extend_expires_in_seconds: Option<i64>,
    pub rotate_token: bool,
}

/// Emails the link again. May extend the deadline, which is the only way out of EXPIRED, and
/// may rotate the token, which makes the old link stop working at once.
pub struct ResendInvitation<'a> {
    pub keys: &'a Keyring,
    pub organization_id: Uuid,
    pub id: Uuid,
    pub request: Resend,
    pub actor: Actor,
    pub email_quota: crate::outbox::email::SendQuota,
}

impl Command for ResendInvitation<'_> {
    type Output = Vec<invitations::Model>;

    async fn execute(&self, work: &Work) -> Result<Self::Output, DomainError> {
        let row = resend(work, self).await?;
        crate::outbox::email::check_quota(work, self.organization_id, self.email_quota).await?;
        Ok(vec![row])
    }
}

async fn resend(
    work: &Work,
    command: &ResendInvitation<'_>,
) -> Result<invitations::Model, DomainError> {
    let ResendInvitation {
        keys,
        organization_id,
        id,
        request,
        actor,
        ..
    } = command;
    let (organization_id, id) = (*organization_id, *id);
    let txn = work.txn();
    let at = now();
    let current = find_owned::<invitations::Entity>(txn, organization_id, id).await?;
    let status = current.effective_status(at);
    let extension = match request.extend_expires_in_seconds {
        None => None,
        Some(s) if !(MIN_EXPIRES_IN_SECONDS..=MAX_EXPIRES_IN_SECONDS).contains(&s) => {
            return Err(DomainError::invalid(
                "extendExpiresInSeconds",
                format!("must be between {MIN_EXPIRES_IN_SECONDS} and {MAX_EXPIRES_IN_SECONDS}"),
            ));
        }
        Some(s) => Some(at + Duration::seconds(s)),
    };
    match (status, extension) {
        (InvitationStatus::Active, _) | (InvitationStatus::Expired, Some(_)) => {}
        (InvitationStatus::Expired, None) => {
            return Err(DomainError::Conflict(
                "invitation is EXPIRED; resend it with extendExpiresInSeconds to reactivate it"
                    .into(),
            ));
        }
        (other, _) => {
            return Err(DomainError::Conflict(format!(
                "invitation is {}",
                other.as_str()
            )));
        }
    }
    let allowed = &current.allowed_emails.0;
    if allowed.is_empty() {
        return Err(DomainError::invalid(
            "emails",
            "the invitation has no allowedEmails: there is nobody to send it to",
        ));
    }
    let recipients = match &request.emails {
        None => allowed.clone(),
        Some(list) if list.is_empty() => {
            return Err(DomainError::invalid(
                "emails",
                "give at least one address, or omit emails",
            ));
        }
        Some(list) => {
            let normalized = email::normalize_list(list, "emails")?;
            if let Some(i) = normalized.iter().position(|e| !allowed.contains(e)) {
                return Err(DomainError::invalid(
                    format!("emails[{i}]"),
                    "not on the invitation's allowedEmails",
                ));
            }
            normalized
        }
    };
    // Never shorten a deadline: the later of the current one and the extension wins.
    let new_deadline = match (extension, current.expires_at) {
        (Some(ext), Some(old)) if old > ext && status == InvitationStatus::Active => Some(old),
        (Some(ext), _) => Some(ext),
        (None, old) => old,
    };
    let new_token = request.rotate_token.then(generate_token);

    let mut update = invitations::Entity::update_many()
        .col_expr(
            invitations::Column::Status,
            Expr::value(InvitationStatus::Active),
        )
        .col_expr(invitations::Column::ExpiresAt, Expr::value(new_deadline))
        .col_expr(
            invitations::Column::ExpiredAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(invitations::Column::UpdatedAt, Expr::value(at))
        .filter(invitations::Column::Id.eq(id))
        .filter(invitations::Column::OrganizationId.eq(organization_id))
        // The row must still be what we judged above: a concurrent revoke or use wins cleanly.
        .filter(invitations::Column::Status.eq(current.status))
        .filter(invitations::Column::UseCount.eq(current.use_count))
        .filter(invitations::Column::TokenHash.eq(current.token_hash.as_str()));
    if extension.is_some() {
        // A new deadline means the reminder may be due again.
        update = update.col_expr(
            invitations::Column::ReminderSentAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        );
    }
    if let Some(token) = &new_token {
        update = update
            .col_expr(
                invitations::Column::TokenHash,
                Expr::value(hash_token(token)),
            )
            .col_expr(
                invitations::Column::TokenSealed,
                Expr::value(keys.seal(token.as_bytes(), &Slot::invitation_token(id))?),
            );
    }
    let Some(row) = update.exec_with_returning(txn).await?.into_iter().next() else {
        return Err(DomainError::Conflict(
            "invitation changed while resending; try again".into(),
        ));
    };
    if new_token.is_some() {
        activity::record(
            work,
            &row,
            EventType::TokenRotated,
            actor,
            EventExtra::default(),
        )
        .await?;
    }
    let detail = serde_json::json!({
        "recipients": recipients,
        "reactivated": status == InvitationStatus::Expired,
        "expiresAt": row.expires_at,
        "tokenRotated": new_token.is_some(),
    });
    activity::record(
        work,
        &row,
        EventType::Resent,
        actor,
        EventExtra {
            detail: Some(detail),
            ..Default::default()
        },
    )
    .await?;
    crate::outbox::email::enqueue(
        work,
        &row,
        DeliveryKind::Resend,
        &recipients,
        serde_json::json!({}),
        None,
    )
    .await?;
    Ok(row)
}
