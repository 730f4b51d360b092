//! Email deliveries: the outbox rows that jobs send (SPEC §7), under the discipline described
//! in [`crate::outbox`].

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{RetrySchedule, pending_due, still_held, take_leases, to_chrono};
use crate::activity::{self, Actor, EventExtra};
use crate::crypto::{Keyring, Slot, hash_token};
use crate::entities::{email_deliveries, invitations};
use crate::work::{Command, Work};
use crate::{DeliveryKind, DeliveryStatus, DomainError, EventType, email, now};

/// Right-hand side of every `Message-ID`. It names no host and no tenant: the header is visible
/// to recipients and must not reveal anything about the deployment.
pub const MESSAGE_ID_DOMAIN: &str = "invitations.local";

/// The string whose signature (`Keyring::sign`) an emailed link carries as `sig`, proving that
/// we sent this link to this address. The recipient page verifies the same string.
pub fn preverify_message(invitation_id: Uuid, email: &str) -> String {
    format!("preverify:{invitation_id}:{email}")
}

/// The `payload` of a `VERIFICATION_CODE` delivery. The code is sealed: the outbox must not
/// hold a usable code in clear.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationCodePayload {
    pub sealed_code: String,
    /// When the code stops working; a message that could not go out by then is not sent.
    pub expires_at: DateTime<Utc>,
}

impl VerificationCodePayload {
    /// The code sealed for the invitation and address it is sent to.
    pub fn new(
        keys: &Keyring,
        slot: &Slot,
        code: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Self, DomainError> {
        Ok(Self {
            sealed_code: keys.seal(code.as_bytes(), slot)?,
            expires_at,
        })
    }

    pub fn from_json(payload: &Value) -> Result<Self, DomainError> {
        Self::deserialize(payload).map_err(|e| {
            DomainError::invalid("payload", format!("not a verification code payload ({e})"))
        })
    }

    pub fn to_json(&self) -> Value {
        json!(self)
    }

    /// The code, sealed for `slot` ([`Slot::verification_code`] of the delivery's invitation
    /// and recipient).
    pub fn code(&self, keys: &Keyring, slot: &Slot) -> Result<String, DomainError> {
        keys.open_string(&self.sealed_code, slot)
    }
}

/// Writes one PENDING delivery per recipient, due now, inside the caller's unit of work (the
/// outbox pattern: the rows commit or roll back with the change that asked for the email, and
/// are queued once they have).
///
/// With `idempotency_prefix`, a recipient whose delivery under the same prefix already exists
/// is skipped, so a repeated request sends nothing new. Returns only the rows written.
pub async fn enqueue(
    work: &Work,
    invitation: &invitations::Model,
    kind: DeliveryKind,
    recipients: &[String],
    payload: Value,
    idempotency_prefix: Option<&str>,
) -> Result<Vec<email_deliveries::Model>, DomainError> {
    let at = now();
    let mut written = Vec::with_capacity(recipients.len());
    for recipient in email::normalize_list(recipients, "recipients")? {
        // Hashed, so any prefix fits the column and the key does not repeat the address.
        let idempotency_key = idempotency_prefix.map(|p| hash_token(&format!("{p}\n{recipient}")));
        let row = delivery_row(
            invitation,
            kind,
            recipient,
            payload.clone(),
            idempotency_key,
            at,
        );
        if insert(work, &row).await? {
            work.push_email(row.id);
            written.push(row);
        }
    }
    Ok(written)
}

/// Writes the row a message to `recipient` would have, already FAILED with `reason`, and
/// queues nothing: the same write as [`enqueue`], for a request whose answer time must not
/// tell whether a message goes out (a verification code asked for an address that is not on
/// the allow-list).
pub async fn withhold(
    work: &Work,
    invitation: &invitations::Model,
    kind: DeliveryKind,
    recipient: String,
    payload: Value,
    reason: &str,
) -> Result<(), DomainError> {
    let mut row = delivery_row(invitation, kind, recipient, payload, None, now());
    row.status = DeliveryStatus::Failed;
    row.last_error = Some(reason.to_owned());
    insert(work, &row).await?;
    Ok(())
}

/// A new PENDING delivery of `kind` to `recipient`, due at `at`, with its `Message-ID` fixed now.
pub fn delivery_row(
    invitation: &invitations::Model,
    kind: DeliveryKind,
    recipient: String,
    payload: Value,
    idempotency_key: Option<String>,
    at: DateTime<Utc>,
) -> email_deliveries::Model {
    let id = Uuid::now_v7();
    email_deliveries::Model {
        id,
        organization_id: invitation.organization_id,
        invitation_id: invitation.id,
        kind,
        recipient,
        status: DeliveryStatus::Pending,
        attempts: 0,
        last_error: None,
        message_id: format!("<{id}@{MESSAGE_ID_DOMAIN}>"),
        idempotency_key,
        payload,
        next_attempt_at: at,
        created_at: at,
        updated_at: at,
        sent_at: None,
    }
}

/// Inserts `row` unless its idempotency key is taken; whether it was written.
async fn insert(work: &Work, row: &email_deliveries::Model) -> Result<bool, DomainError> {
    // Without RETURNING: sea-orm reports a conflict under RETURNING as "inserted row not
    // found" instead of `Conflicted`, and the row is already known in full anyway.
    let inserted = email_deliveries::Entity::insert(row.clone().into_active_model().reset_all())
        .on_conflict_do_nothing_on([email_deliveries::Column::IdempotencyKey])
        .exec_without_returning(work.txn())
        .await?;
    Ok(matches!(inserted, sea_orm::TryInsertResult::Inserted(n) if n > 0))
}

/// Rows per insert statement in [`insert_all`]: 15 values each stays well inside the bound
/// both databases put on the parameters of one statement.
const INSERT_CHUNK: usize = 1000;

/// Writes new deliveries without idempotency keys, a statement per thousand, and queues them
/// once the unit of work commits.
pub(crate) async fn insert_all(
    work: &Work,
    rows: &[email_deliveries::Model],
) -> Result<(), DomainError> {
    for chunk in rows.chunks(INSERT_CHUNK) {
        email_deliveries::Entity::insert_many(
            chunk
                .iter()
                .map(|row| row.clone().into_active_model().reset_all()),
        )
        .exec_without_returning(work.txn())
        .await?;
    }
    for row in rows {
        work.push_email(row.id);
    }
    Ok(())
}

/// How many invitation emails (initial and resent) one organization may have queued in the
/// last hour, all its API keys together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendQuota {
    pub per_hour: u64,
}

const QUOTA_WINDOW_SECONDS: i64 = 3600;

/// Checks, after a command queued its emails, that the organization is still within its
/// quota; otherwise `RATE_LIMITED`, and the caller's unit of work rolls back with nothing
/// queued. Reminders and verification codes do not count: the organization does not send them.
pub async fn check_quota(
    work: &Work,
    organization_id: Uuid,
    quota: SendQuota,
) -> Result<(), DomainError> {
    use sea_orm::{PaginatorTrait, QueryOrder, QuerySelect};
    let since = now() - chrono::Duration::seconds(QUOTA_WINDOW_SECONDS);
    let recent = || {
        email_deliveries::Entity::find()
            .filter(email_deliveries::Column::OrganizationId.eq(organization_id))
            .filter(email_deliveries::Column::CreatedAt.gt(since))
            .filter(
                email_deliveries::Column::Kind
                    .is_in([DeliveryKind::Invitation, DeliveryKind::Resend]),
            )
    };
    // Counts no further than one over the quota: the answer is the same, and a busy
    // organization's create does not read every email of its last hour.
    let counted = recent()
        .select_only()
        .column(email_deliveries::Column::Id)
        .limit(quota.per_hour.saturating_add(1))
        .count(work.txn())
        .await?;
    if counted <= quota.per_hour {
        return Ok(());
    }
    let oldest = recent()
        .order_by_asc(email_deliveries::Column::CreatedAt)
        .one(work.txn())
        .await?
        .map_or(since, |d| d.created_at);
    let free_at = oldest + chrono::Duration::seconds(QUOTA_WINDOW_SECONDS);
    Err(DomainError::RateLimited {
        retry_after: u64::try_from((free_at - now()).num_seconds())
            .unwrap_or(0)
            .max(1),
    })
}

/// A delivery whose send lease the caller holds, from [`claim_all`]. Its `next_attempt_at` is the
/// lease expiry, which [`record_failure`] and [`cancel`] check so that a holder whose lease ran
/// out cannot overwrite the state of the one that took over.
#[derive(Debug, Clone)]
pub struct Claim {
    pub delivery: email_deliveries::Model,
}

/// Takes the send leases of those of `ids` that are PENDING, due and not held by anyone else,
/// for `lease`, in one statement (see [`take_leases`]).
///
/// Choose `lease` longer than a send can take (mailer timeout plus the write that records it);
/// if the holder dies, the delivery becomes due again when the lease ends.
pub async fn claim_all(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
    lease: Duration,
) -> Result<Vec<Claim>, DomainError> {
    Ok(take_leases::<email_deliveries::Entity>(db, ids, lease)
        .await?
        .into_iter()
        .map(|delivery| Claim { delivery })
        .collect())
}

/// Records that the mailer accepted the messages: SENT, and `EMAIL_SENT` (`REMINDER_SENT`,
/// `EMAIL_VERIFICATION_SENT` for those kinds) in the same unit of work, for all of them in a
/// few statements. Records nothing for a delivery that was no longer PENDING (a duplicate run).
///
/// Not fenced by the lease: once a message went out, recording it is right whoever holds the
/// lease, and it stops a slower duplicate from scheduling a retry.
pub struct MarkSent<'a>(pub &'a [Claim]);

impl Command for MarkSent<'_> {
    type Output = ();

    async fn execute(&self, work: &Work) -> Result<(), DomainError> {
        mark_sent(work, self.0).await
    }
}

async fn mark_sent(work: &Work, claims: &[Claim]) -> Result<(), DomainError> {
    // Scoped here: at module level its `min`/`max` shadow `Ord`'s on plain integers.
    use sea_orm::sea_query::ExprTrait;

    if claims.is_empty() {
        return Ok(());
    }
    let at = now();
    let rows = email_deliveries::Entity::update_many()
        .col_expr(
            email_deliveries::Column::Status,
            Expr::value(DeliveryStatus::Sent),
        )
        .col_expr(email_deliveries::Column::SentAt, Expr::value(at))
        .col_expr(
            email_deliveries::Column::Attempts,
            Expr::col(email_deliveries::Column::Attempts).add(1),
        )
        .col_expr(email_deliveries::Column::UpdatedAt, Expr::value(at))
        .filter(email_deliveries::Column::Id.is_in(claims.iter().map(|c| c.delivery.id)))
        .filter(email_deliveries::Column::Status.eq(DeliveryStatus::Pending))
        .exec_with_returning(work.txn())
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    let invitations = invitations_of(work, &rows).await?;
    let entries = rows
        .iter()
        .filter_map(|row| {
            let event_type = match row.kind {
                DeliveryKind::Invitation | DeliveryKind::Resend => EventType::EmailSent,
                DeliveryKind::Reminder => EventType::ReminderSent,
                DeliveryKind::VerificationCode => EventType::EmailVerificationSent,
            };
            let detail =
                json!({ "deliveryId": row.id, "kind": row.kind, "messageId": row.message_id });
            Some(entry(
                invitations.get(&row.invitation_id)?,
                row,
                event_type,
                detail,
            ))
        })
        .collect();
    activity::record_all(work, entries).await?;
    Ok(())
}

/// The invitations the deliveries belong to, by id, in one query.
async fn invitations_of(
    work: &Work,
    rows: &[email_deliveries::Model],
) -> Result<HashMap<Uuid, invitations::Model>, DomainError> {
    let ids: BTreeSet<Uuid> = rows.iter().map(|r| r.invitation_id).collect();
    Ok(invitations::Entity::find()
        .filter(invitations::Column::Id.is_in(ids))
        .all(work.txn())
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect())
}

/// The activity event that records what happened to one delivery.
fn entry<'a>(
    invitation: &'a invitations::Model,
    row: &email_deliveries::Model,
    event_type: EventType,
    detail: Value,
) -> activity::Entry<'a> {
    activity::Entry {
        invitation,
        event_type,
        actor: &Actor::System,
        extra: EventExtra {
            email: Some(row.recipient.clone()),
            detail: Some(detail),
            ..Default::default()
        },
    }
}

/// What [`record_failure`] decided.
#[derive(Debug, Clone)]
pub enum FailureOutcome {
    /// Still PENDING; the next attempt is due at this time.
    RetryAt(DateTime<Utc>),
    /// FAILED now, with `EMAIL_FAILED` recorded.
    Failed,
    /// The lease had passed on, or the row was already final: nothing was written.
    Superseded,
}

/// Records a failed send attempt. A permanent failure, or the last allowed attempt, makes the
/// delivery FAILED and logs `EMAIL_FAILED` with the SMTP reply; otherwise it stays PENDING and
/// becomes due again after the [`RetrySchedule`] wait.
pub struct RecordFailure<'a> {
    pub claim: &'a Claim,
    pub smtp_reply: &'a str,
    pub permanent: bool,
    pub schedule: &'a RetrySchedule,
}

impl Command for RecordFailure<'_> {
    type Output = FailureOutcome;

    async fn execute(&self, work: &Work) -> Result<FailureOutcome, DomainError> {
        let RecordFailure {
            claim,
            smtp_reply,
            permanent,
            schedule,
        } = *self;
        record_failure(work, claim, smtp_reply, permanent, schedule).await
    }
}

async fn record_failure(
    work: &Work,
    claim: &Claim,
    smtp_reply: &str,
    permanent: bool,
    schedule: &RetrySchedule,
) -> Result<FailureOutcome, DomainError> {
    let attempts = u32::try_from(claim.delivery.attempts)
        .unwrap_or(0)
        .saturating_add(1);
    let stored_attempts = i32::try_from(attempts).unwrap_or(i32::MAX);
    if permanent || schedule.exhausted(attempts) {
        let detail = json!({
            "deliveryId": claim.delivery.id,
            "kind": claim.delivery.kind,
            "smtpReply": smtp_reply,
            "attempts": attempts,
        });
        return finish_failed(work, claim, stored_attempts, smtp_reply, detail).await;
    }
    let at = now();
    let retry_at = at + to_chrono(schedule.delay_after(attempts));
    let result = email_deliveries::Entity::update_many()
        .col_expr(
            email_deliveries::Column::Attempts,
            Expr::value(stored_attempts),
        )
        .col_expr(email_deliveries::Column::LastError, Expr::value(smtp_reply))
        .col_expr(
            email_deliveries::Column::NextAttemptAt,
            Expr::value(retry_at),
        )
        .col_expr(email_deliveries::Column::UpdatedAt, Expr::value(at))
        .filter(held(claim))
        .exec(work.txn())
        .await?;
    Ok(if result.rows_affected == 0 {
        FailureOutcome::Superseded
    } else {
        FailureOutcome::RetryAt(retry_at)
    })
}

/// Gives a claimed delivery up without sending it (the invitation is no longer active, the
/// message cannot be built): FAILED, and `EMAIL_FAILED` naming the reason. Records nothing when
/// the lease had passed on.
pub struct Cancel<'a> {
    pub claim: &'a Claim,
    pub reason: &'a str,
}

impl Command for Cancel<'_> {
    type Output = ();

    async fn execute(&self, work: &Work) -> Result<(), DomainError> {
        let Cancel { claim, reason } = *self;
        let detail = json!({ "deliveryId": claim.delivery.id, "kind": claim.delivery.kind, "reason": reason });
        finish_failed(work, claim, claim.delivery.attempts, reason, detail).await?;
        Ok(())
    }
}

/// How many deliveries are due and waiting, and since when the oldest has been (see
/// [`super::backlog`]).
pub async fn backlog(
    db: &impl ConnectionTrait,
) -> Result<(u64, Option<DateTime<Utc>>), DomainError> {
    super::backlog::<email_deliveries::Entity>(db).await
}

/// PENDING deliveries due for at least `grace`, with their due time: the sweeper re-queues
/// these. The grace leaves fresh rows to the job pushed with them and keeps the sweeper from
/// racing it.
pub async fn due_pending(
    db: &impl ConnectionTrait,
    grace: Duration,
    limit: u64,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, DomainError> {
    pending_due::<email_deliveries::Entity>(db, now() - to_chrono(grace), None, limit).await
}

fn held(claim: &Claim) -> sea_orm::Condition {
    still_held::<email_deliveries::Entity>(claim.delivery.id, claim.delivery.next_attempt_at)
}

async fn finish_failed(
    work: &Work,
    claim: &Claim,
    attempts: i32,
    error: &str,
    detail: Value,
) -> Result<FailureOutcome, DomainError> {
    let at = now();
    let rows = email_deliveries::Entity::update_many()
        .col_expr(
            email_deliveries::Column::Status,
            Expr::value(DeliveryStatus::Failed),
        )
        .col_expr(email_deliveries::Column::Attempts, Expr::value(attempts))
        .col_expr(email_deliveries::Column::LastError, Expr::value(error))
        .col_expr(email_deliveries::Column::UpdatedAt, Expr::value(at))
        .filter(held(claim))
        .exec_with_returning(work.txn())
        .await?;
    let Some(row) = rows.into_iter().next() else {
        return Ok(FailureOutcome::Superseded);
    };
    record_event(work, &row, EventType::EmailFailed, detail).await?;
    Ok(FailureOutcome::Failed)
}

async fn record_event(
    work: &Work,
    row: &email_deliveries::Model,
    event_type: EventType,
    detail: Value,
) -> Result<(), DomainError> {
    let invitations = invitations_of(work, std::slice::from_ref(row)).await?;
    let invitation = invitations
        .get(&row.invitation_id)
        .ok_or(DomainError::NotFound)?;
    activity::record_all(work, vec![entry(invitation, row, event_type, detail)]).await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn preverify_message_binds_invitation_and_address() {
        let id = Uuid::nil();
        assert_eq!(
            preverify_message(id, "a@x.com"),
            "preverify:00000000-0000-0000-0000-000000000000:a@x.com"
        );
        assert_ne!(
            preverify_message(id, "a@x.com"),
            preverify_message(id, "b@x.com")
        );
    }

    #[test]
    fn verification_payload_round_trips_and_keeps_the_code_sealed() {
        let keys = Keyring::new(&[3u8; 32]);
        let expires_at = now();
        let slot = Slot::verification_code(Uuid::now_v7(), "a@x.com");
        let payload = VerificationCodePayload::new(&keys, &slot, "123456", expires_at).unwrap();
        let value = payload.to_json();
        assert!(!value.to_string().contains("123456"));
        let back = VerificationCodePayload::from_json(&value).unwrap();
        assert_eq!(back.expires_at, expires_at);
        assert_eq!(back.code(&keys, &slot).unwrap(), "123456");
        let elsewhere = Slot::verification_code(Uuid::now_v7(), "a@x.com");
        assert!(back.code(&keys, &elsewhere).is_err());
        assert!(VerificationCodePayload::from_json(&json!({})).is_err());
    }
}
