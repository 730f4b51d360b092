//! The email gate: verification codes, pre-verified links, and the grants that prove an address.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    CODE_TTL_MINUTES, GRANT_TTL_MINUTES, GUESS_WINDOW_MINUTES, MAX_CODE_ATTEMPTS,
    MAX_GUESSES_PER_EMAIL, MAX_GUESSES_PER_INVITATION, find_active,
};
use crate::activity::{self, Actor, EventExtra};
use crate::crypto::{Keyring, Slot, constant_time_eq};
use crate::entities::{email_verifications, invitations};
use crate::outbox::email as delivery;
use crate::work::{Command, Work};
use crate::{DeliveryKind, DomainError, EventType, email, now};

fn code_hash(keys: &Keyring, invitation_id: Uuid, email: &str, code: &str) -> String {
    keys.keyed_hash(format!("code:{invitation_id}:{email}:{code}").as_bytes())
}

/// Starts the email gate for `email`. A code row is stored either way: when the address is on
/// the allow-list it holds the hash of a real code, which an outbox row carries (sealed) to the
/// worker; otherwise it is a decoy whose hash no code matches and nothing is sent. So every
/// later guess takes the same path, with the same answers in the same order (`INVALID_CODE`,
/// then `TOO_MANY_ATTEMPTS`), whether or not the address is listed, and the list cannot be
/// probed through the gate.
pub struct RequestCode<'a> {
    pub keys: &'a Keyring,
    pub token: String,
    pub email: String,
}

impl Command for RequestCode<'_> {
    type Output = ();

    async fn execute(&self, work: &Work) -> Result<(), DomainError> {
        request_code(work, self.keys, &self.token, &self.email).await
    }
}

async fn request_code(
    work: &Work,
    keys: &Keyring,
    token: &str,
    raw_email: &str,
) -> Result<(), DomainError> {
    let txn = work.txn();
    let row = find_active(txn, token).await?;
    let email = email::normalize(raw_email).map_err(|m| DomainError::invalid("email", m))?;
    let listed = row.allowed_emails.0.contains(&email);
    let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
    let at = now();
    let expires_at = at + Duration::minutes(CODE_TTL_MINUTES);
    let hash = if listed {
        code_hash(keys, row.id, &email, &code)
    } else {
        // Keyed hashes are hex; this is not, so no guess can ever match a decoy.
        format!("decoy:{}", &code_hash(keys, row.id, &email, &code)[6..])
    };
    email_verifications::ActiveModel {
        id: Set(Uuid::now_v7()),
        invitation_id: Set(row.id),
        email: Set(email.clone()),
        code_hash: Set(hash),
        attempts: Set(0),
        expires_at: Set(expires_at),
        created_at: Set(at),
        verified_at: Set(None),
    }
    .insert(txn)
    .await?;
    let slot = Slot::verification_code(row.id, &email);
    let payload = delivery::VerificationCodePayload::new(keys, &slot, &code, expires_at)?;
    // The same write either way (a row in the email outbox), so the answer takes as long; only
    // the listed address's row is queued, after the answer.
    if listed {
        delivery::enqueue(
            work,
            &row,
            DeliveryKind::VerificationCode,
            &[email],
            payload.to_json(),
            None,
        )
        .await?;
    } else {
        delivery::withhold(
            work,
            &row,
            DeliveryKind::VerificationCode,
            email,
            payload.to_json(),
            NOT_LISTED,
        )
        .await?;
    }
    Ok(())
}

/// The `lastError` of the withheld delivery of a code asked for an address off the allow-list.
pub const NOT_LISTED: &str = "not on the allow-list: nothing was sent";

/// A verified address and the grant that proves it.
#[derive(Debug)]
pub struct Verified {
    pub grant: String,
    pub email: String,
}

/// The outcome of a code check. A failure is an outcome, not an error, because its attempt
/// count and `EMAIL_VERIFICATION_FAILED` event must be committed.
#[derive(Debug)]
pub enum CodeCheck {
    Verified(Verified),
    Failed { reason: &'static str },
}

/// Checks a code against the newest code sent to `email` for this invitation.
pub struct VerifyCode<'a> {
    pub keys: &'a Keyring,
    pub token: String,
    pub email: String,
    pub code: String,
}

impl Command for VerifyCode<'_> {
    type Output = CodeCheck;

    async fn execute(&self, work: &Work) -> Result<CodeCheck, DomainError> {
        verify_code(work, self.keys, &self.token, &self.email, &self.code).await
    }
}

async fn verify_code(
    work: &Work,
    keys: &Keyring,
    token: &str,
    raw_email: &str,
    code: &str,
) -> Result<CodeCheck, DomainError> {
    let txn = work.txn();
    let row = find_active(txn, token).await?;
    let email = email::normalize(raw_email).map_err(|m| DomainError::invalid("email", m))?;
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(DomainError::invalid("code", "must be 6 digits"));
    }
    let at = now();
    let since = at - Duration::minutes(GUESS_WINDOW_MINUTES);
    let by_invitation = guesses_since(txn, row.id, None, since).await?;
    let by_email = guesses_since(txn, row.id, Some(&email), since).await?;
    let latest = email_verifications::Entity::find()
        .filter(email_verifications::Column::InvitationId.eq(row.id))
        .filter(email_verifications::Column::Email.eq(email.as_str()))
        .order_by_desc(email_verifications::Column::CreatedAt)
        .one(txn)
        .await?;
    let (row_ref, email_ref) = (&row, &email);
    let fail = |reason: &'static str| async move {
        let detail = serde_json::json!({ "reason": reason });
        activity::record(
            work,
            row_ref,
            EventType::EmailVerificationFailed,
            &Actor::Recipient,
            EventExtra {
                email: Some(email_ref.clone()),
                detail: Some(detail),
                ..Default::default()
            },
        )
        .await?;
        Ok::<_, DomainError>(CodeCheck::Failed { reason })
    };
    // Guesses add up across codes: a new code brings no new guesses once the address (or the
    // invitation) has used its share of the window.
    if by_email >= MAX_GUESSES_PER_EMAIL || by_invitation >= MAX_GUESSES_PER_INVITATION {
        return fail("TOO_MANY_ATTEMPTS").await;
    }
    let Some(v) = latest else {
        return fail("INVALID_CODE").await;
    };
    if v.verified_at.is_some() || v.expires_at <= at {
        return fail("CODE_EXPIRED").await;
    }
    if v.attempts >= MAX_CODE_ATTEMPTS {
        return fail("TOO_MANY_ATTEMPTS").await;
    }
    // Count the attempt first, conditionally, so parallel guesses cannot exceed either limit:
    // the code's own, and what the address has left in the window (its older codes are no
    // longer guessed against, so their counts are settled).
    let earlier = if v.created_at > since {
        by_email - i64::from(v.attempts)
    } else {
        by_email
    };
    let left = i32::try_from(MAX_GUESSES_PER_EMAIL - earlier).unwrap_or(0);
    let counted = email_verifications::Entity::update_many()
        .col_expr(
            email_verifications::Column::Attempts,
            Expr::col(email_verifications::Column::Attempts).add(1),
        )
        .filter(email_verifications::Column::Id.eq(v.id))
        .filter(email_verifications::Column::Attempts.lt(std::cmp::min(MAX_CODE_ATTEMPTS, left)))
        .filter(email_verifications::Column::VerifiedAt.is_null())
        .exec(txn)
        .await?;
    if counted.rows_affected == 0 {
        return fail("TOO_MANY_ATTEMPTS").await;
    }
    if !constant_time_eq(&v.code_hash, &code_hash(keys, row.id, &email, code)) {
        return fail("INVALID_CODE").await;
    }
    email_verifications::Entity::update_many()
        .col_expr(email_verifications::Column::VerifiedAt, Expr::value(at))
        .filter(email_verifications::Column::Id.eq(v.id))
        .exec(txn)
        .await?;
    record_verified(work, &row, &email, "code").await?;
    Ok(CodeCheck::Verified(Verified {
        grant: issue_grant(keys, row.id, &email, at),
        email,
    }))
}

/// Guesses judged since `since` on the codes of an invitation (of one address, or of all).
async fn guesses_since(
    db: &impl ConnectionTrait,
    invitation_id: Uuid,
    email: Option<&str>,
    since: DateTime<Utc>,
) -> Result<i64, DomainError> {
    let mut query = email_verifications::Entity::find()
        .select_only()
        .column_as(
            Expr::col(email_verifications::Column::Attempts).sum(),
            "guesses",
        )
        .filter(email_verifications::Column::InvitationId.eq(invitation_id))
        .filter(email_verifications::Column::CreatedAt.gt(since));
    if let Some(email) = email {
        query = query.filter(email_verifications::Column::Email.eq(email));
    }
    let sum: Option<Option<i64>> = query.into_tuple().one(db).await?;
    Ok(sum.flatten().unwrap_or(0))
}

/// `EMAIL_VERIFIED`, saying how (`code` or `link`).
async fn record_verified(
    work: &Work,
    row: &invitations::Model,
    email: &str,
    method: &str,
) -> Result<(), DomainError> {
    let extra = EventExtra {
        email: Some(email.to_owned()),
        detail: Some(serde_json::json!({ "method": method })),
        ..Default::default()
    };
    activity::record(
        work,
        row,
        EventType::EmailVerified,
        &Actor::Recipient,
        extra,
    )
    .await?;
    Ok(())
}

/// Accepts the signed parameter of a link we emailed as a verified address.
pub struct VerifyLink<'a> {
    pub keys: &'a Keyring,
    /// Whether to add `EMAIL_VERIFIED` to the log (the caller bounds how often a link holder
    /// may add events).
    pub record: bool,
    pub token: String,
    pub email: String,
    pub signature: String,
}

impl Command for VerifyLink<'_> {
    type Output = Verified;

    async fn execute(&self, work: &Work) -> Result<Verified, DomainError> {
        let keys = self.keys;
        let row = find_active(work.txn(), &self.token).await?;
        let email = email::normalize(&self.email).map_err(|m| DomainError::invalid("email", m))?;
        let message = delivery::preverify_message(row.id, &email);
        if !row.allowed_emails.0.contains(&email)
            || !keys.verify(message.as_bytes(), &self.signature)
        {
            return Err(DomainError::EmailNotVerified("GRANT_INVALID"));
        }
        if self.record {
            record_verified(work, &row, &email, "link").await?;
        }
        Ok(Verified {
            grant: issue_grant(keys, row.id, &email, now()),
            email,
        })
    }
}

#[derive(Serialize, Deserialize)]
struct GrantBody {
    /// Invitation id.
    i: Uuid,
    /// Verified address.
    e: String,
    /// Expiry, seconds since the epoch.
    x: i64,
}

/// A short-lived signed statement "this email was verified for this invitation".
pub fn issue_grant(keys: &Keyring, invitation_id: Uuid, email: &str, at: DateTime<Utc>) -> String {
    let body = GrantBody {
        i: invitation_id,
        e: email.to_owned(),
        x: (at + Duration::minutes(GRANT_TTL_MINUTES)).timestamp(),
    };
    let encoded = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&body).unwrap_or_default());
    let signature = keys.sign(format!("grant:{encoded}").as_bytes());
    format!("{encoded}.{signature}")
}

/// The verified address a grant carries, if it is genuine, unexpired and for this invitation.
pub fn check_grant(
    keys: &Keyring,
    grant: &str,
    invitation_id: Uuid,
) -> Result<String, DomainError> {
    let invalid = DomainError::EmailNotVerified("GRANT_INVALID");
    let (encoded, signature) = grant
        .split_once('.')
        .ok_or(DomainError::EmailNotVerified("GRANT_INVALID"))?;
    if !keys.verify(format!("grant:{encoded}").as_bytes(), signature) {
        return Err(invalid);
    }
    let raw = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| DomainError::EmailNotVerified("GRANT_INVALID"))?;
    let body: GrantBody =
        serde_json::from_slice(&raw).map_err(|_| DomainError::EmailNotVerified("GRANT_INVALID"))?;
    if body.i != invitation_id || body.x <= now().timestamp() {
        return Err(invalid);
    }
    Ok(body.e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn grants_are_bound_to_invitation_and_expire() {
        let keys = Keyring::new(&[3u8; 32]);
        let id = Uuid::now_v7();
        let grant = issue_grant(&keys, id, "a@x.com", now());
        assert_eq!(check_grant(&keys, &grant, id).unwrap(), "a@x.com");
        assert!(check_grant(&keys, &grant, Uuid::now_v7()).is_err());
        assert!(check_grant(&Keyring::new(&[4u8; 32]), &grant, id).is_err());
        let old = issue_grant(
            &keys,
            id,
            "a@x.com",
            now() - Duration::minutes(GRANT_TTL_MINUTES + 1),
        );
        assert!(check_grant(&keys, &old, id).is_err());
        let (body, sig) = grant.split_once('.').unwrap();
        let forged = format!("{}x.{sig}", body);
        assert!(check_grant(&keys, &forged, id).is_err());
    }
}
