use async_graphql::{Context, ID, Object, Result, SimpleObject};
use chrono::{DateTime, Duration, Utc};
use entity::recipient::{
    CodeCheck, GRANT_TTL_MINUTES, RecordView, RequestCode, RequestRenewal, Submit, Verified,
    VerifyCode, VerifyLink,
};
use entity::{DomainError, magic_link};

use crate::graphql::context::store;
use crate::graphql::enums::InvitationStatus;
use crate::graphql::error::{GqlResult, into_gql};
use crate::graphql::ids::id;
use crate::graphql::inputs::ConnectionInput;
use crate::graphql::public::{RateLimited, may_record};

#[derive(Default)]
pub struct PublicMutation;

/// Proof that the recipient controls an allowed address; pass it to `submitInvitation`.
#[derive(SimpleObject)]
pub struct VerificationGrant {
    pub grant: String,
    pub email: String,
    pub expires_at: DateTime<Utc>,
}

/// The outcome of a submit.
#[derive(SimpleObject)]
pub struct SubmitResult {
    /// The connection created (contributor) or updated (reconnect).
    pub connection_id: ID,
    /// The invitation's status after this use (FULFILLED when it was the last one).
    pub invitation_status: Option<InvitationStatus>,
}

impl From<Verified> for VerificationGrant {
    fn from(v: Verified) -> Self {
        Self {
            grant: v.grant,
            email: v.email,
            expires_at: entity::now() + Duration::minutes(GRANT_TTL_MINUTES),
        }
    }
}

#[Object]
impl PublicMutation {
    /// Records that a person opened the invitation page (called by the page's script, so mail
    /// scanners that prefetch links do not count as views).
    #[graphql(guard = "RateLimited::token(&token)")]
    async fn record_invitation_view(&self, ctx: &Context<'_>, token: String) -> Result<bool> {
        let store = store(ctx)?;
        if may_record(ctx, &token).await? {
            store.run(&RecordView { token }).await.gql()?;
        } else {
            entity::recipient::find_active(&store.db, &token)
                .await
                .gql()?;
        }
        Ok(true)
    }

    /// Emails a 6-digit code (valid 10 minutes) if the address is on the allow-list. The answer,
    /// and how later guesses are answered, are the same either way, so the list cannot be
    /// probed.
    #[graphql(guard = "RateLimited::code_request(&token, &email)")]
    async fn request_email_verification(
        &self,
        ctx: &Context<'_>,
        token: String,
        email: String,
    ) -> Result<bool> {
        let store = store(ctx)?;
        let command = RequestCode {
            keys: &store.keys,
            token,
            email,
        };
        store.run_detached(&command).await.gql()?;
        Ok(true)
    }

    /// Checks a code. At most 5 guesses per code, and 10 per hour for the address whatever the
    /// codes; a wrong one is `EMAIL_NOT_VERIFIED` with a `reason` (`INVALID_CODE`,
    /// `CODE_EXPIRED`, `TOO_MANY_ATTEMPTS`).
    #[graphql(guard = "RateLimited::token(&token)")]
    async fn verify_email(
        &self,
        ctx: &Context<'_>,
        token: String,
        email: String,
        code: String,
    ) -> Result<VerificationGrant> {
        let store = store(ctx)?;
        let command = VerifyCode {
            keys: &store.keys,
            token,
            email,
            code,
        };
        // A failed check is committed (its attempt counts) before it becomes an error.
        match store.run(&command).await.gql()? {
            CodeCheck::Verified(verified) => Ok(verified.into()),
            CodeCheck::Failed { reason } => Err(into_gql(DomainError::EmailNotVerified(reason))),
        }
    }

    /// Exchanges the signed parameter of a link we emailed (`email`, `sig`) for a grant: such
    /// links are pre-verified.
    #[graphql(guard = "RateLimited::token(&token)")]
    async fn verify_email_link(
        &self,
        ctx: &Context<'_>,
        token: String,
        email: String,
        signature: String,
    ) -> Result<VerificationGrant> {
        let store = store(ctx)?;
        let command = VerifyLink {
            keys: &store.keys,
            record: may_record(ctx, &token).await?,
            token,
            email,
            signature,
        };
        Ok(store.run(&command).await.gql()?.into())
    }

    /// Submits the recipient's details. Counts one use atomically: at `maxUses` the invitation
    /// becomes FULFILLED, and further submits are `INVITATION_NOT_ACTIVE`.
    #[graphql(guard = "RateLimited::token(&token)")]
    async fn submit_invitation(
        &self,
        ctx: &Context<'_>,
        token: String,
        #[graphql(
            desc = "From verifyEmail / verifyEmailLink; required when the invitation has an allow-list."
        )]
        grant: Option<String>,
        input: ConnectionInput,
    ) -> Result<SubmitResult> {
        let store = store(ctx)?;
        let command = Submit {
            keys: &store.keys,
            token,
            grant,
            submission: input.into_submission()?,
        };
        let done = store.run(&command).await.gql()?;
        Ok(SubmitResult {
            connection_id: id(done.connection.id),
            invitation_status: Some(done.invitation.effective_status(entity::now()).into()),
        })
    }

    /// From the expired page: a recipient on the allow-list asks the organization for a new
    /// link (`RENEWAL_REQUESTED`). The answer is `true` either way.
    #[graphql(guard = "RateLimited::renewal_request(&token, &email)")]
    async fn request_invitation_renewal(
        &self,
        ctx: &Context<'_>,
        token: String,
        email: String,
    ) -> Result<bool> {
        store(ctx)?
            .run(&RequestRenewal { token, email })
            .await
            .gql()?;
        Ok(true)
    }

    /// Submits through a legacy link: a new connection (company link) or new credentials (edit
    /// link). A wrong secret is `NOT_FOUND`.
    #[graphql(
        deprecation = "Magic links are deprecated; use submitInvitation",
        guard = "RateLimited::magic_link(&public_company_id, &secret, edit)"
    )]
    async fn submit_magic_link(
        &self,
        ctx: &Context<'_>,
        public_company_id: String,
        secret: String,
        #[graphql(default = false, desc = "True for an edit (reconnect) link.")] edit: bool,
        input: ConnectionInput,
    ) -> Result<SubmitResult> {
        let store = store(ctx)?;
        let command = magic_link::Submit {
            keys: &store.keys,
            public_company_id,
            secret,
            edit,
            submission: input.into_submission()?,
        };
        let connection = store.run(&command).await.gql()?;
        Ok(SubmitResult {
            connection_id: id(connection.id),
            invitation_status: None,
        })
    }
}
