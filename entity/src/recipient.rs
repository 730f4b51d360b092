//! The recipient's side (SPEC §4): public view, email gate, grants, and the submit that counts a
//! use. The token is the credential; nothing here reveals the allow-list.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::activity::{self, Actor, EventExtra};
use crate::company::{ConnectionDetails, create_connection, seal_credentials};
use crate::crypto::{Keyring, constant_time_eq, hash_token};
use crate::entities::{
    connections, email_deliveries, email_verifications, invitation_events, invitations,
};
use crate::invitation::{Transition, record_use};
use crate::scope::find_owned;
use crate::{
    ConnectionStatus, DeliveryKind, DomainError, EventType, InvitationStatus, InvitationType,
    UtilityType, delivery, email, now,
};

/// How long a verification code is valid.
pub const CODE_TTL_MINUTES: i64 = 10;
/// Wrong codes allowed before a code is void.
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// How long a verification grant is valid.
pub const GRANT_TTL_MINUTES: i64 = 30;

/// The invitation a token opens, or `NOT_FOUND`. Lookup is by hash.
pub async fn find_by_token(
    db: &impl ConnectionTrait,
    token: &str,
) -> Result<invitations::Model, DomainError> {
    if token.is_empty() || token.len() > 128 {
        return Err(DomainError::NotFound);
    }
    invitations::Entity::find()
        .filter(invitations::Column::TokenHash.eq(hash_token(token)))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound)
}

/// The invitation a token opens, if it can still be used.
pub async fn find_active(
    db: &impl ConnectionTrait,
    token: &str,
) -> Result<invitations::Model, DomainError> {
    let row = find_by_token(db, token).await?;
    match row.effective_status(now()) {
        InvitationStatus::Active => Ok(row),
        other => Err(DomainError::NotActive(other)),
    }
}

/// Records that a person opened the page (the page's script calls this, not the bare GET).
pub async fn record_view(
    txn: &impl ConnectionTrait,
    token: &str,
) -> Result<invitation_events::Model, DomainError> {
    let row = find_active(txn, token).await?;
    activity::record(
        txn,
        &row,
        EventType::Viewed,
        &Actor::Recipient,
        EventExtra::default(),
    )
    .await
}

fn code_hash(keys: &Keyring, invitation_id: Uuid, email: &str, code: &str) -> String {
    keys.keyed_hash(format!("code:{invitation_id}:{email}:{code}").as_bytes())
}

/// Starts the email gate for `email`. When the address is on the allow-list a code is stored
/// (hashed) and an outbox row carries it (sealed) to the worker; otherwise nothing happens.
/// Callers answer the same either way, so the list cannot be probed.
pub async fn request_code(
    txn: &impl ConnectionTrait,
    keys: &Keyring,
    token: &str,
    raw_email: &str,
) -> Result<Vec<email_deliveries::Model>, DomainError> {
    let row = find_active(txn, token).await?;
    let email = email::normalize(raw_email).map_err(|m| DomainError::invalid("email", m))?;
    if !row.allowed_emails.0.contains(&email) {
        return Ok(Vec::new());
    }
    let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
    let at = now();
    let expires_at = at + Duration::minutes(CODE_TTL_MINUTES);
    email_verifications::ActiveModel {
        id: Set(Uuid::now_v7()),
        invitation_id: Set(row.id),
        email: Set(email.clone()),
        code_hash: Set(code_hash(keys, row.id, &email, &code)),
        attempts: Set(0),
        expires_at: Set(expires_at),
        created_at: Set(at),
        verified_at: Set(None),
    }
    .insert(txn)
    .await?;
    let payload = delivery::VerificationCodePayload::new(keys, &code, expires_at)?;
    delivery::enqueue(
        txn,
        &row,
        DeliveryKind::VerificationCode,
        &[email],
        payload.to_json(),
        None,
    )
    .await
}

/// The outcome of a code check. A failure is an outcome, not an error, because its attempt
/// count and `EMAIL_VERIFICATION_FAILED` event must be committed.
#[derive(Debug)]
pub enum CodeCheck {
    Verified {
        grant: String,
        event: invitation_events::Model,
    },
    Failed {
        reason: &'static str,
        event: invitation_events::Model,
    },
}

/// Checks a code against the newest code sent to `email` for this invitation.
pub async fn verify_code(
    txn: &impl ConnectionTrait,
    keys: &Keyring,
    token: &str,
    raw_email: &str,
    code: &str,
) -> Result<CodeCheck, DomainError> {
    let row = find_active(txn, token).await?;
    let email = email::normalize(raw_email).map_err(|m| DomainError::invalid("email", m))?;
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return Err(DomainError::invalid("code", "must be 6 digits"));
    }
    let latest = email_verifications::Entity::find()
        .filter(email_verifications::Column::InvitationId.eq(row.id))
        .filter(email_verifications::Column::Email.eq(email.as_str()))
        .order_by_desc(email_verifications::Column::CreatedAt)
        .one(txn)
        .await?;
    let at = now();
    let (row_ref, email_ref) = (&row, &email);
    let fail = |reason: &'static str| async move {
        let detail = serde_json::json!({ "reason": reason });
        let event = activity::record(
            txn,
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
        Ok::<_, DomainError>(CodeCheck::Failed { reason, event })
    };
    let Some(v) = latest else {
        return fail("INVALID_CODE").await;
    };
    if v.verified_at.is_some() || v.expires_at <= at {
        return fail("CODE_EXPIRED").await;
    }
    if v.attempts >= MAX_CODE_ATTEMPTS {
        return fail("TOO_MANY_ATTEMPTS").await;
    }
    // Count the attempt first, conditionally, so parallel guesses cannot exceed the limit.
    let counted = email_verifications::Entity::update_many()
        .col_expr(
            email_verifications::Column::Attempts,
            Expr::col(email_verifications::Column::Attempts).add(1),
        )
        .filter(email_verifications::Column::Id.eq(v.id))
        .filter(email_verifications::Column::Attempts.lt(MAX_CODE_ATTEMPTS))
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
    let event = record_verified(txn, &row, &email, "code").await?;
    Ok(CodeCheck::Verified {
        grant: issue_grant(keys, row.id, &email, at),
        event,
    })
}

/// `EMAIL_VERIFIED`, saying how (`code` or `link`).
async fn record_verified(
    txn: &impl ConnectionTrait,
    row: &invitations::Model,
    email: &str,
    method: &str,
) -> Result<invitation_events::Model, DomainError> {
    let extra = EventExtra {
        email: Some(email.to_owned()),
        detail: Some(serde_json::json!({ "method": method })),
        ..Default::default()
    };
    activity::record(txn, row, EventType::EmailVerified, &Actor::Recipient, extra).await
}

/// Accepts the signed parameter of a link we emailed as a verified address.
pub async fn verify_link(
    txn: &impl ConnectionTrait,
    keys: &Keyring,
    token: &str,
    raw_email: &str,
    signature: &str,
) -> Result<(String, invitation_events::Model), DomainError> {
    let row = find_active(txn, token).await?;
    let email = email::normalize(raw_email).map_err(|m| DomainError::invalid("email", m))?;
    let message = delivery::preverify_message(row.id, &email);
    if !row.allowed_emails.0.contains(&email) || !keys.verify(message.as_bytes(), signature) {
        return Err(DomainError::EmailNotVerified("GRANT_INVALID"));
    }
    let event = record_verified(txn, &row, &email, "link").await?;
    Ok((issue_grant(keys, row.id, &email, now()), event))
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

/// What the recipient submits. Contributor submits use every field; reconnect submits only the
/// credentials and the MFA choice.
#[derive(Debug, Clone, Default)]
pub struct Submission {
    pub datasource_id: Option<String>,
    pub provider_url: Option<String>,
    pub provider_name: Option<String>,
    pub country: Option<String>,
    pub utility_types: Option<Vec<UtilityType>>,
    pub site_ids: Option<Vec<Uuid>>,
    pub owner_email: Option<String>,
    pub data_collection_start_date: Option<chrono::NaiveDate>,
    pub utility_username: String,
    pub utility_password: String,
    pub mfa_forwarding: bool,
}

/// A submission taken as it is (no invitation prefill to merge): legacy links and connections
/// the organization registers itself.
impl From<Submission> for ConnectionDetails {
    fn from(input: Submission) -> Self {
        Self {
            datasource_id: input.datasource_id,
            provider_name: input.provider_name,
            provider_url: input.provider_url,
            country: input.country,
            utility_types: input.utility_types.unwrap_or_default(),
            site_ids: input.site_ids.unwrap_or_default(),
            owner_email: input.owner_email,
            data_collection_start_date: input.data_collection_start_date,
            utility_username: input.utility_username,
            utility_password: input.utility_password,
            mfa_forwarding: input.mfa_forwarding,
        }
    }
}

/// Merges one field: a locked prefilled value wins and may not be changed; otherwise the
/// submitted value, else the prefilled one.
fn merge<T: PartialEq + Clone>(
    field: &str,
    locked: &[String],
    prefilled: Option<T>,
    submitted: Option<T>,
) -> Result<Option<T>, DomainError> {
    match (locked.iter().any(|l| l == field), prefilled, submitted) {
        (true, Some(p), Some(s)) if p != s => Err(DomainError::invalid(
            field,
            "this field is locked by the organization",
        )),
        (true, Some(p), _) => Ok(Some(p)),
        (_, p, s) => Ok(s.or(p)),
    }
}

/// The result of a submit: the invitation after the use, its events, and the connection.
pub struct Submitted {
    pub transition: Transition,
    pub connection: connections::Model,
}

/// Submits through an invitation: creates (contributor) or repairs (reconnect) a connection and
/// counts the use, all in the caller's transaction. `verified_email` is the address a grant
/// proved, required when the allow-list is not empty.
pub async fn submit(
    txn: &impl ConnectionTrait,
    keys: &Keyring,
    token: &str,
    verified_email: Option<String>,
    input: Submission,
) -> Result<Submitted, DomainError> {
    let row = find_active(txn, token).await?;
    if !row.allowed_emails.0.is_empty() {
        match &verified_email {
            Some(e) if row.allowed_emails.0.contains(e) => {}
            Some(_) => return Err(DomainError::EmailNotVerified("GRANT_INVALID")),
            None => return Err(DomainError::EmailNotVerified("GRANT_REQUIRED")),
        }
    }
    let connection = match row.invitation_type {
        InvitationType::CreateConnection => {
            let p = &row.prefill;
            let locked = &row.locked_fields.0;
            let sites = merge(
                "initialSites",
                locked,
                (!p.initial_sites.is_empty()).then(|| p.initial_sites.clone()),
                input.site_ids,
            )?;
            let types = merge(
                "utilityTypes",
                locked,
                (!p.utility_types.is_empty()).then(|| p.utility_types.clone()),
                input.utility_types,
            )?;
            let details = ConnectionDetails {
                datasource_id: merge(
                    "datasourceId",
                    locked,
                    p.datasource_id.clone(),
                    input.datasource_id,
                )?,
                provider_url: merge("url", locked, p.url.clone(), input.provider_url)?,
                provider_name: input.provider_name,
                country: merge(
                    "country",
                    locked,
                    p.country.clone(),
                    input.country.map(|c| c.trim().to_ascii_uppercase()),
                )?,
                utility_types: types.unwrap_or_default(),
                site_ids: sites.unwrap_or_default(),
                owner_email: merge(
                    "connectionOwnerEmail",
                    locked,
                    p.connection_owner_email.clone(),
                    input
                        .owner_email
                        .map(|e| {
                            email::normalize(&e).map_err(|m| DomainError::invalid("ownerEmail", m))
                        })
                        .transpose()?,
                )?,
                data_collection_start_date: merge(
                    "dataCollectionStartDate",
                    locked,
                    p.data_collection_start_date,
                    input.data_collection_start_date,
                )?,
                utility_username: input.utility_username,
                utility_password: input.utility_password,
                mfa_forwarding: input.mfa_forwarding,
            };
            create_connection(
                txn,
                keys,
                row.organization_id,
                row.company_id,
                details,
                Some(row.id),
            )
            .await?
        }
        InvitationType::EditConnection => {
            let connection_id = row.connection_id.ok_or(DomainError::NotFound)?;
            reconnect(
                txn,
                keys,
                row.organization_id,
                connection_id,
                &input,
                Some(row.id),
            )
            .await?
        }
    };
    let extra = EventExtra {
        email: verified_email,
        connection_id: Some(connection.id),
        detail: None,
    };
    let transition = record_use(txn, row.id, extra, &Actor::Recipient).await?;
    Ok(Submitted {
        transition,
        connection,
    })
}

/// New credentials for an existing connection: it keeps its history and sites and goes back to
/// PENDING.
pub async fn reconnect(
    txn: &impl ConnectionTrait,
    keys: &Keyring,
    organization_id: Uuid,
    connection_id: Uuid,
    input: &Submission,
    invitation_id: Option<Uuid>,
) -> Result<connections::Model, DomainError> {
    let existing = find_owned::<connections::Entity>(txn, organization_id, connection_id).await?;
    let credentials = seal_credentials(keys, &input.utility_username, &input.utility_password)?;
    let mut active: connections::ActiveModel = existing.clone().into();
    active.utility_username = Set(Some(credentials.username));
    active.password_sealed = Set(Some(credentials.password_sealed));
    active.mfa_forwarding = Set(input.mfa_forwarding);
    active.status = Set(ConnectionStatus::Pending);
    if invitation_id.is_some() {
        active.last_invitation_id = Set(invitation_id);
    }
    active.updated_at = Set(now());
    let updated = active.update(txn).await?;
    crate::webhook::events::connection_updated(txn, &existing, &updated, invitation_id).await?;
    Ok(updated)
}

/// A recipient on the allow-list of an expired invitation asks for a new link. Recorded for the
/// organization to act on; callers answer the same whether or not the address is listed.
pub async fn request_renewal(
    txn: &impl ConnectionTrait,
    token: &str,
    raw_email: &str,
) -> Result<Option<invitation_events::Model>, DomainError> {
    let row = find_by_token(txn, token).await?;
    let email = email::normalize(raw_email).map_err(|m| DomainError::invalid("email", m))?;
    if row.effective_status(now()) != InvitationStatus::Expired
        || !row.allowed_emails.0.contains(&email)
    {
        return Ok(None);
    }
    let event = activity::record(
        txn,
        &row,
        EventType::RenewalRequested,
        &Actor::Recipient,
        EventExtra {
            email: Some(email),
            ..Default::default()
        },
    )
    .await?;
    Ok(Some(event))
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

    #[test]
    fn locked_fields_keep_their_prefill() {
        let locked = vec!["country".to_owned()];
        assert_eq!(
            merge("country", &locked, Some("DE"), None).unwrap(),
            Some("DE")
        );
        assert_eq!(
            merge("country", &locked, Some("DE"), Some("DE")).unwrap(),
            Some("DE")
        );
        assert!(merge("country", &locked, Some("DE"), Some("FR")).is_err());
        assert_eq!(
            merge("url", &locked, Some("a"), Some("b")).unwrap(),
            Some("b")
        );
        assert_eq!(merge::<&str>("url", &locked, None, None).unwrap(), None);
    }
}
