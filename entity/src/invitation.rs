//! Invitation status rules and transitions (SPEC §3.1, §3.2).
//!
//! Every transition is one conditional `UPDATE … WHERE status = 'ACTIVE' AND <not expired>` with
//! `RETURNING`, followed by its activity row in the same transaction: under concurrency exactly
//! one caller wins and the others see zero rows and get a clean error.

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use crate::activity::{self, Actor, EventExtra};
use crate::crypto::{Keyring, generate_token, hash_token};
use crate::entities::{companies, connections, invitation_events, invitations};
use crate::scope::find_owned;
use crate::{
    DomainError, EventType, InvitationStatus, InvitationType, Prefill, StringList, begin_write,
    email, now,
};

pub mod events;
pub mod list;

pub use events::{EventWindow, count_events, event_pages};
pub use list::{ListCursor, ListFilter, ListRequest, Page, list, status_condition};

/// Shortest lifetime an invitation may be given.
pub const MIN_EXPIRES_IN_SECONDS: i64 = 60;
/// Longest lifetime (about ten years): far enough for any real use, near enough that
/// `createdAt + expiresInSeconds` can never overflow a timestamp.
pub const MAX_EXPIRES_IN_SECONDS: i64 = 10 * 366 * 24 * 3600;
/// Upper bound of `maxUses`; larger values are meaningless and would risk counter overflow.
pub const MAX_USES_LIMIT: i32 = 1_000_000;
/// Most addresses one allow-list may hold.
pub const MAX_ALLOWED_EMAILS: usize = 100;
/// Prefill fields an organization may lock (SPEC §3.4), in their API spelling.
pub const LOCKABLE_FIELDS: [&str; 7] = [
    "datasourceId",
    "url",
    "country",
    "initialSites",
    "utilityTypes",
    "connectionOwnerEmail",
    "dataCollectionStartDate",
];

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

/// `status = 'ACTIVE' AND (expires_at IS NULL OR expires_at > at)`: the rows a transition may touch.
fn active_at(at: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(invitations::Column::Status.eq(InvitationStatus::Active))
        .add(
            Condition::any()
                .add(invitations::Column::ExpiresAt.is_null())
                .add(invitations::Column::ExpiresAt.gt(at)),
        )
}

/// The result of a change: the row after it, and the events it recorded (to publish after commit).
#[derive(Debug, Clone)]
pub struct Transition {
    pub invitation: invitations::Model,
    pub events: Vec<invitation_events::Model>,
}

/// Validated create-time input (SPEC §3.1). Raw values go in; [`create`] checks every rule.
#[derive(Debug, Clone, Default)]
pub struct CreateInvitation {
    pub organization_id: Uuid,
    /// Contributor invitations name the company; reconnect invitations name the connection.
    pub company_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    pub allowed_emails: Vec<String>,
    pub expires_in_seconds: Option<i64>,
    pub max_uses: Option<i64>,
    pub send_email: bool,
    pub prefill: Option<Prefill>,
    pub locked_fields: Option<Vec<String>>,
    pub remind_before_expiry_seconds: Option<i64>,
}

/// A created invitation with its token, which exists in clear only here.
pub struct Created {
    pub transition: Transition,
    pub token: String,
}

impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("transition", &self.transition)
            .finish_non_exhaustive()
    }
}

struct Checked {
    allowed_emails: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    max_uses: Option<i32>,
    prefill: Prefill,
    locked_fields: Vec<String>,
    remind_before_expiry_seconds: Option<i64>,
}

fn check_input(
    input: &CreateInvitation,
    invitation_type: InvitationType,
    at: DateTime<Utc>,
) -> Result<Checked, DomainError> {
    if input.allowed_emails.len() > MAX_ALLOWED_EMAILS {
        return Err(DomainError::invalid(
            "allowedEmails",
            format!("at most {MAX_ALLOWED_EMAILS} addresses"),
        ));
    }
    let allowed_emails = email::normalize_list(&input.allowed_emails, "allowedEmails")?;
    if input.send_email && allowed_emails.is_empty() {
        return Err(DomainError::invalid(
            "sendEmail",
            "sendEmail needs at least one address in allowedEmails",
        ));
    }
    let expires_at = match input.expires_in_seconds {
        None => None,
        Some(s) if !(MIN_EXPIRES_IN_SECONDS..=MAX_EXPIRES_IN_SECONDS).contains(&s) => {
            return Err(DomainError::invalid(
                "expiresInSeconds",
                format!("must be between {MIN_EXPIRES_IN_SECONDS} and {MAX_EXPIRES_IN_SECONDS}"),
            ));
        }
        Some(s) => Some(at + Duration::seconds(s)),
    };
    let max_uses = match input.max_uses {
        None => None,
        Some(n) if !(1..=i64::from(MAX_USES_LIMIT)).contains(&n) => {
            return Err(DomainError::invalid(
                "maxUses",
                format!("must be between 1 and {MAX_USES_LIMIT}"),
            ));
        }
        Some(n) => i32::try_from(n).ok(),
    };
    if let Some(r) = input.remind_before_expiry_seconds {
        match input.expires_in_seconds {
            None => {
                return Err(DomainError::invalid(
                    "remindBeforeExpirySeconds",
                    "a reminder needs expiresInSeconds",
                ));
            }
            Some(e) if r < 1 || r >= e => {
                return Err(DomainError::invalid(
                    "remindBeforeExpirySeconds",
                    "must be positive and less than expiresInSeconds",
                ));
            }
            Some(_) if allowed_emails.is_empty() => {
                return Err(DomainError::invalid(
                    "remindBeforeExpirySeconds",
                    "a reminder needs at least one address in allowedEmails",
                ));
            }
            Some(_) => {}
        }
    }
    if invitation_type == InvitationType::EditConnection {
        if input.prefill.is_some() {
            return Err(DomainError::invalid(
                "prefill",
                "prefill applies to contributor invitations only",
            ));
        }
        if input.locked_fields.is_some() {
            return Err(DomainError::invalid(
                "lockedFields",
                "lockedFields applies to contributor invitations only",
            ));
        }
    }
    let prefill = input.prefill.clone().unwrap_or_default();
    check_prefill(&prefill)?;
    let mut locked_fields: Vec<String> = Vec::new();
    for (i, field) in input.locked_fields.iter().flatten().enumerate() {
        if !LOCKABLE_FIELDS.contains(&field.as_str()) {
            return Err(DomainError::invalid(
                format!("lockedFields[{i}]"),
                format!("unknown field; one of {}", LOCKABLE_FIELDS.join(", ")),
            ));
        }
        if !locked_fields.contains(field) {
            locked_fields.push(field.clone());
        }
    }
    Ok(Checked {
        allowed_emails,
        expires_at,
        max_uses,
        prefill,
        locked_fields,
        remind_before_expiry_seconds: input.remind_before_expiry_seconds,
    })
}

fn check_prefill(prefill: &Prefill) -> Result<(), DomainError> {
    if prefill
        .datasource_id
        .as_ref()
        .is_some_and(|d| d.is_empty() || d.len() > 100)
    {
        return Err(DomainError::invalid(
            "prefill.datasourceId",
            "must be 1 to 100 characters",
        ));
    }
    if let Some(u) = &prefill.url {
        let ok = u.len() <= 2000
            && (u.starts_with("https://") || u.starts_with("http://"))
            && !u.contains(char::is_whitespace);
        if !ok {
            return Err(DomainError::invalid(
                "prefill.url",
                "must be an http(s) URL of at most 2000 characters",
            ));
        }
    }
    if let Some(c) = &prefill.country
        && (c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()))
    {
        return Err(DomainError::invalid(
            "prefill.country",
            "must be an ISO 3166-1 alpha-2 code in upper case",
        ));
    }
    if prefill.initial_sites.len() > 100 {
        return Err(DomainError::invalid(
            "prefill.initialSites",
            "at most 100 sites",
        ));
    }
    if let Some(owner) = &prefill.connection_owner_email {
        email::normalize(owner)
            .map_err(|m| DomainError::invalid("prefill.connectionOwnerEmail", m))?;
    }
    Ok(())
}

/// Creates an invitation and records `CREATED`, inside the caller's transaction.
pub async fn create(
    txn: &impl ConnectionTrait,
    keys: &Keyring,
    input: CreateInvitation,
    actor: &Actor,
) -> Result<Created, DomainError> {
    let at = now();
    let org = input.organization_id;
    let (invitation_type, company_id, connection_id) = match (input.company_id, input.connection_id)
    {
        (Some(company_id), None) => {
            find_owned::<companies::Entity>(txn, org, company_id).await?;
            (InvitationType::CreateConnection, company_id, None)
        }
        (None, Some(connection_id)) => {
            let connection = find_owned::<connections::Entity>(txn, org, connection_id).await?;
            (
                InvitationType::EditConnection,
                connection.company_id,
                Some(connection_id),
            )
        }
        _ => {
            return Err(DomainError::invalid(
                "companyId",
                "give exactly one of companyId (contributor) or connectionId (reconnect)",
            ));
        }
    };
    let mut checked = check_input(&input, invitation_type, at)?;
    crate::company::check_sites(
        txn,
        org,
        company_id,
        &checked.prefill.initial_sites,
        "prefill.initialSites",
    )
    .await?;
    if let Some(owner) = checked.prefill.connection_owner_email.take() {
        checked.prefill.connection_owner_email = email::normalize(&owner).ok();
    }

    let token = generate_token();
    let row = invitations::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(org),
        company_id: Set(company_id),
        connection_id: Set(connection_id),
        invitation_type: Set(invitation_type),
        status: Set(InvitationStatus::Active),
        token_hash: Set(hash_token(&token)),
        token_sealed: Set(keys.seal(token.as_bytes())?),
        allowed_emails: Set(StringList(checked.allowed_emails)),
        expires_at: Set(checked.expires_at),
        max_uses: Set(checked.max_uses),
        use_count: Set(0),
        prefill: Set(checked.prefill),
        locked_fields: Set(StringList(checked.locked_fields)),
        remind_before_expiry_seconds: Set(checked.remind_before_expiry_seconds),
        reminder_sent_at: Set(None),
        created_by: Set(actor.label().to_owned()),
        created_at: Set(at),
        updated_at: Set(at),
        revoked_at: Set(None),
        revoked_reason: Set(None),
        fulfilled_at: Set(None),
        expired_at: Set(None),
    }
    .insert(txn)
    .await?;
    list::index_new(txn, &row).await?;
    let event =
        activity::record(txn, &row, EventType::Created, actor, EventExtra::default()).await?;
    Ok(Created {
        transition: Transition {
            invitation: row,
            events: vec![event],
        },
        token,
    })
}

/// Re-reads an invitation after a conditional update touched nothing and names why.
async fn not_active(
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
pub async fn revoke(
    txn: &impl ConnectionTrait,
    organization_id: Uuid,
    id: Uuid,
    reason: Option<String>,
    actor: &Actor,
) -> Result<Transition, DomainError> {
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
    let event = activity::record(
        txn,
        &row,
        EventType::Revoked,
        actor,
        EventExtra {
            detail,
            ..Default::default()
        },
    )
    .await?;
    Ok(Transition {
        invitation: row,
        events: vec![event],
    })
}

/// Counts one use (a successful submit): `useCount + 1`, and FULFILLED when it reaches `maxUses`.
/// One conditional `UPDATE`, so N concurrent submits on `maxUses = N` yield exactly N uses, and a
/// submit racing a revoke or the deadline either lands wholly before it or fails.
pub async fn record_use(
    txn: &impl ConnectionTrait,
    id: Uuid,
    extra: EventExtra,
    actor: &Actor,
) -> Result<Transition, DomainError> {
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
    let mut events =
        vec![activity::record(txn, &row, EventType::Submitted, actor, extra.clone()).await?];
    if row.status == InvitationStatus::Fulfilled {
        let fulfilled = EventExtra {
            detail: None,
            ..extra
        };
        events.push(activity::record(txn, &row, EventType::Fulfilled, actor, fulfilled).await?);
    }
    Ok(Transition {
        invitation: row,
        events,
    })
}

/// Persists EXPIRED for up to `batch` invitations past their deadline, one `EXPIRED` event each,
/// in one transaction. Safe to run on several replicas at once: the conditional update hands
/// each row to exactly one of them. Returns what it changed; call again while it returns `batch`.
pub async fn expire_due<C: TransactionTrait>(
    db: &C,
    batch: u64,
) -> Result<Vec<Transition>, DomainError> {
    let txn = begin_write(db).await?;
    let at = now();
    let due: Vec<Uuid> = invitations::Entity::find()
        .select_only()
        .column(invitations::Column::Id)
        .filter(invitations::Column::Status.eq(InvitationStatus::Active))
        .filter(invitations::Column::ExpiresAt.lte(at))
        .order_by_asc(invitations::Column::ExpiresAt)
        .limit(batch)
        .into_tuple()
        .all(&txn)
        .await?;
    if due.is_empty() {
        txn.commit().await?;
        return Ok(Vec::new());
    }
    let rows = invitations::Entity::update_many()
        .col_expr(
            invitations::Column::Status,
            Expr::value(InvitationStatus::Expired),
        )
        .col_expr(
            invitations::Column::ExpiredAt,
            Expr::col(invitations::Column::ExpiresAt),
        )
        .col_expr(invitations::Column::UpdatedAt, Expr::value(at))
        .filter(invitations::Column::Id.is_in(due))
        .filter(invitations::Column::Status.eq(InvitationStatus::Active))
        .filter(invitations::Column::ExpiresAt.lte(at))
        .exec_with_returning(&txn)
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let event = activity::record(
            &txn,
            &row,
            EventType::Expired,
            &Actor::System,
            EventExtra::default(),
        )
        .await?;
        out.push(Transition {
            invitation: row,
            events: vec![event],
        });
    }
    txn.commit().await?;
    Ok(out)
}

/// What a resend asks for (SPEC §3.3).
#[derive(Debug, Clone, Default)]
pub struct Resend {
    /// A subset of the allow-list; `None` = all of it.
    pub emails: Option<Vec<String>>,
    pub extend_expires_in_seconds: Option<i64>,
    pub rotate_token: bool,
}

/// The result of a resend: the row after it, its events, the recipients to email, and the new
/// token when it was rotated.
pub struct Resent {
    pub transition: Transition,
    pub recipients: Vec<String>,
    pub new_token: Option<String>,
}

/// Emails the link again (the caller writes the outbox rows for `recipients` in the same
/// transaction). May extend the deadline, which is the only way out of EXPIRED, and may rotate
/// the token, which makes the old link stop working at once.
pub async fn resend(
    txn: &impl ConnectionTrait,
    keys: &Keyring,
    organization_id: Uuid,
    id: Uuid,
    request: Resend,
    actor: &Actor,
) -> Result<Resent, DomainError> {
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
                Expr::value(keys.seal(token.as_bytes())?),
            );
    }
    let Some(row) = update.exec_with_returning(txn).await?.into_iter().next() else {
        return Err(DomainError::Conflict(
            "invitation changed while resending; try again".into(),
        ));
    };
    let mut events = Vec::new();
    if new_token.is_some() {
        events.push(
            activity::record(
                txn,
                &row,
                EventType::TokenRotated,
                actor,
                EventExtra::default(),
            )
            .await?,
        );
    }
    let detail = serde_json::json!({
        "recipients": recipients,
        "reactivated": status == InvitationStatus::Expired,
        "expiresAt": row.expires_at,
        "tokenRotated": new_token.is_some(),
    });
    events.push(
        activity::record(
            txn,
            &row,
            EventType::Resent,
            actor,
            EventExtra {
                detail: Some(detail),
                ..Default::default()
            },
        )
        .await?,
    );
    Ok(Resent {
        transition: Transition {
            invitation: row,
            events,
        },
        recipients,
        new_token,
    })
}

/// Writes the reminder emails that are due: ACTIVE invitations with `remindBeforeExpirySeconds`
/// whose deadline is that close, not reminded yet. Each invitation is claimed with a conditional
/// update of `reminder_sent_at`, so however many workers run this, it reminds once; recipients
/// who already submitted are skipped. Returns the outbox rows to queue.
pub async fn queue_due_reminders<C: TransactionTrait>(
    db: &C,
    batch: u64,
) -> Result<Vec<crate::entities::email_deliveries::Model>, DomainError> {
    let txn = begin_write(db).await?;
    let at = now();
    let candidates = invitations::Entity::find()
        .filter(active_at(at))
        .filter(invitations::Column::RemindBeforeExpirySeconds.is_not_null())
        .filter(invitations::Column::ReminderSentAt.is_null())
        .order_by_asc(invitations::Column::ExpiresAt)
        .limit(batch)
        .all(&txn)
        .await?;
    let mut written = Vec::new();
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
            .exec(&txn)
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
            .all(&txn)
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
        written.extend(
            crate::delivery::enqueue(
                &txn,
                &row,
                crate::DeliveryKind::Reminder,
                &recipients,
                serde_json::json!({}),
                None,
            )
            .await?,
        );
    }
    txn.commit().await?;
    Ok(written)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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

    fn input() -> CreateInvitation {
        CreateInvitation {
            company_id: Some(Uuid::now_v7()),
            ..Default::default()
        }
    }

    fn field_of(r: Result<Checked, DomainError>) -> String {
        match r {
            Err(DomainError::InvalidInput { field, .. }) => field,
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("input was accepted"),
        }
    }

    #[test]
    fn input_rules_name_the_field() {
        let t = now();
        let c = InvitationType::CreateConnection;
        let e = InvitationType::EditConnection;
        let case = |f: &dyn Fn(&mut CreateInvitation)| {
            let mut i = input();
            f(&mut i);
            i
        };
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.expires_in_seconds = Some(59)),
                c,
                t
            )),
            "expiresInSeconds"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.expires_in_seconds = Some(MAX_EXPIRES_IN_SECONDS + 1)),
                c,
                t
            )),
            "expiresInSeconds"
        );
        assert_eq!(
            field_of(check_input(&case(&|i| i.max_uses = Some(0)), c, t)),
            "maxUses"
        );
        assert_eq!(
            field_of(check_input(&case(&|i| i.send_email = true), c, t)),
            "sendEmail"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.allowed_emails = vec!["x".into()]),
                c,
                t
            )),
            "allowedEmails[0]"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.prefill = Some(Prefill::default())),
                e,
                t
            )),
            "prefill"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.locked_fields = Some(vec![])),
                e,
                t
            )),
            "lockedFields"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.locked_fields = Some(vec!["password".into()])),
                c,
                t
            )),
            "lockedFields[0]"
        );
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.remind_before_expiry_seconds = Some(10)),
                c,
                t
            )),
            "remindBeforeExpirySeconds"
        );
        let bad_country = Prefill {
            country: Some("usa".into()),
            ..Default::default()
        };
        assert_eq!(
            field_of(check_input(
                &case(&|i| i.prefill = Some(bad_country.clone())),
                c,
                t
            )),
            "prefill.country"
        );
    }

    #[test]
    fn valid_input_is_normalized() {
        let t = now();
        let mut i = input();
        i.allowed_emails = vec![" A@X.com".into(), "a@x.com".into()];
        i.expires_in_seconds = Some(3600);
        i.max_uses = Some(3);
        let checked = check_input(&i, InvitationType::CreateConnection, t).unwrap();
        assert_eq!(checked.allowed_emails, ["a@x.com"]);
        assert_eq!(checked.expires_at, Some(t + Duration::seconds(3600)));
        assert_eq!(checked.max_uses, Some(3));
    }
}
