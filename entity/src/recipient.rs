//! The recipient's side (SPEC §4): public view, email gate, grants, and the submit that counts a
//! use. The token is the credential; nothing here reveals the allow-list.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use crate::activity::{self, Actor, EventExtra};
use crate::crypto::hash_token;
use crate::entities::invitations;
use crate::work::{Command, Work};
use crate::{DomainError, EventType, InvitationStatus, email, now};

mod gate;
mod submit;

pub use gate::{
    CodeCheck, NOT_LISTED, RequestCode, Verified, VerifyCode, VerifyLink, check_grant, issue_grant,
};
pub use submit::{Submission, Submit, Submitted, reconnect};

/// How long a verification code is valid.
pub const CODE_TTL_MINUTES: i64 = 10;
/// Guesses allowed on one code before it is void.
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// The window over which guesses add up across codes; an address (or invitation) that used
/// its share is refused (`TOO_MANY_ATTEMPTS`) until its codes of that window are this old.
pub const GUESS_WINDOW_MINUTES: i64 = 60;
/// Guesses per invitation and address in [`GUESS_WINDOW_MINUTES`], whatever the codes.
pub const MAX_GUESSES_PER_EMAIL: i64 = 10;
/// Guesses per invitation in [`GUESS_WINDOW_MINUTES`], all addresses together.
pub const MAX_GUESSES_PER_INVITATION: i64 = 50;
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
pub struct RecordView {
    pub token: String,
}

impl Command for RecordView {
    type Output = ();

    async fn execute(&self, work: &Work) -> Result<(), DomainError> {
        let row = find_active(work.txn(), &self.token).await?;
        activity::record(
            work,
            &row,
            EventType::Viewed,
            &Actor::Recipient,
            EventExtra::default(),
        )
        .await?;
        Ok(())
    }
}

/// A recipient on the allow-list of an expired invitation asks for a new link. Recorded for the
/// organization to act on; callers answer the same whether or not the address is listed.
pub struct RequestRenewal {
    pub token: String,
    pub email: String,
}

impl Command for RequestRenewal {
    type Output = ();

    async fn execute(&self, work: &Work) -> Result<(), DomainError> {
        let row = find_by_token(work.txn(), &self.token).await?;
        let email = email::normalize(&self.email).map_err(|m| DomainError::invalid("email", m))?;
        if row.effective_status(now()) != InvitationStatus::Expired
            || !row.allowed_emails.0.contains(&email)
        {
            return Ok(());
        }
        activity::record(
            work,
            &row,
            EventType::RenewalRequested,
            &Actor::Recipient,
            EventExtra {
                email: Some(email),
                ..Default::default()
            },
        )
        .await?;
        Ok(())
    }
}
