//! The send-email job: one outbox row, leased, sent through the mailer, and recorded.
//!
//! Email and webhook deliveries follow the same discipline; it is described here for email, and
//! in `entity::outbox::webhook` for webhooks.
//!
//! # Delivery guarantees
//!
//! The `email_deliveries` row decides; a queued [`SendEmail`] only points at it. A run first
//! takes the row's send lease ([`delivery::claim`]: one conditional update that moves
//! `next_attempt_at` one [lease](crate::settings::EmailSettings::send_lease) into the future,
//! only if the row is PENDING and due). Exactly one of any number of concurrent runs gets it;
//! the others find nothing to do and finish. So a job queued twice, re-run after a worker died,
//! or re-queued by the sweeper while the first copy still waits never reaches SMTP twice.
//!
//! After the attempt the holder records the outcome in one transaction with its activity event:
//! SENT, FAILED, or PENDING again with `next_attempt_at` moved to the retry time, and queues a
//! follow-up job for that time. The sweeper re-queues every PENDING row that has been due for a
//! while (a job lost with Redis' data, a follow-up that could not be queued, a lease whose
//! holder died), so nothing the database still owes is forgotten.
//!
//! Retries are never left to apalis: its retry layer would re-run the job before the row is due
//! (finding nothing to do), and a retry pending when shutdown starts waits on a worker that no
//! longer accepts work until the monitor's hard stop.
//!
//! One window cannot be closed: the SMTP server accepted the message, and the process died (or
//! the database stayed unreachable) before SENT was written. When the lease ends the message is
//! sent again, with the same `Message-ID` (chosen when the row was written), so receiving
//! servers and clients can recognise the duplicate. Sending first and recording after is the
//! right order: the opposite would lose mail instead of rarely duplicating it.

use std::time::Duration;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use entity::entities::{companies, invitations};
use entity::outbox::email::{
    self as delivery, Cancel, Claim, FailureOutcome, MarkSent, RecordFailure,
};
use entity::{DeliveryKind, DomainError, InvitationStatus};
use sea_orm::EntityTrait;

use crate::context::JobContext;
use crate::email::ComposeError;
use crate::mailer::SendError;
use crate::queue::{Queues, SendEmail};

/// Longest one send may take before it counts as a transient failure.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// What one attempt came to, before it is recorded.
enum Outcome {
    Sent,
    /// Not sent, and it never will be: the invitation can no longer be used.
    Moot(String),
    Unsendable(ComposeError),
    Failed(SendError),
}

/// Sends one delivery, or finds that there is nothing to do (see the module documentation).
/// Errors are either [`AbortError`]s (the delivery is FAILED) or failures to reach the
/// database, after which the lease runs out and the sweeper brings the delivery back.
#[tracing::instrument(name = "send_email", skip_all, fields(delivery_id = %job.delivery_id, job_attempt = attempt.current()))]
pub async fn send_email(
    job: SendEmail,
    ctx: Data<JobContext>,
    queues: Data<Queues>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let Some(claim) = delivery::claim(&ctx.db, job.delivery_id, ctx.lease).await? else {
        tracing::debug!("nothing to do: already final, not due yet, or another worker holds it");
        return Ok(());
    };
    let outcome = attempt_send(&ctx, &claim).await?;
    settle(&ctx, &queues, &claim, outcome).await
}

async fn attempt_send(ctx: &JobContext, claim: &Claim) -> Result<Outcome, DomainError> {
    let row = &claim.delivery;
    let invitation = invitations::Entity::find_by_id(row.invitation_id)
        .one(&ctx.db)
        .await?
        .ok_or(DomainError::NotFound)?;
    let at = entity::now();
    let status = invitation.effective_status(at);
    if row.kind != DeliveryKind::VerificationCode && status != InvitationStatus::Active {
        return Ok(Outcome::Moot(format!(
            "not sent: the invitation is {}",
            status.as_str()
        )));
    }
    let company = companies::Entity::find_by_id(invitation.company_id)
        .one(&ctx.db)
        .await?
        .ok_or(DomainError::NotFound)?;
    let company_name = company
        .display_name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(company.name);
    let message = match ctx.composer.compose(row, &invitation, &company_name, at) {
        Ok(message) => message,
        Err(e) => return Ok(Outcome::Unsendable(e)),
    };
    Ok(
        match tokio::time::timeout(SEND_TIMEOUT, ctx.mailer.send(message)).await {
            Ok(Ok(())) => Outcome::Sent,
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed(SendError::Transient(format!(
                "no answer from the mail server within {} s",
                SEND_TIMEOUT.as_secs()
            ))),
        },
    )
}

async fn settle(
    ctx: &JobContext,
    queues: &Queues,
    claim: &Claim,
    outcome: Outcome,
) -> Result<(), BoxDynError> {
    let row = &claim.delivery;
    match outcome {
        Outcome::Sent => {
            record_sent(ctx, claim).await?;
            tracing::info!(kind = ?row.kind, "email sent");
            Ok(())
        }
        Outcome::Moot(reason) => {
            ctx.run(&Cancel {
                claim,
                reason: &reason,
            })
            .await?;
            tracing::info!(%reason, "email dropped");
            Ok(())
        }
        Outcome::Unsendable(e) => {
            let reason = e.to_string();
            ctx.run(&Cancel {
                claim,
                reason: &reason,
            })
            .await?;
            tracing::error!(error = %e, "email cannot be built");
            Err(AbortError::new(e).into())
        }
        Outcome::Failed(e) => {
            let (reply, permanent) = match &e {
                SendError::Transient(reply) => (reply, false),
                SendError::Permanent(reply) => (reply, true),
            };
            let failure = RecordFailure {
                claim,
                smtp_reply: reply,
                permanent,
                schedule: &ctx.retry,
            };
            match ctx.run(&failure).await? {
                FailureOutcome::RetryAt(due) => {
                    tracing::warn!(error = %e, next_attempt_at = %due, "email not sent; will retry");
                    // If this push fails, the sweeper queues the row once it is due.
                    if let Err(push) = queues.requeue(row.id, due).await {
                        tracing::warn!(error = %push, "cannot queue the retry; the sweeper will");
                    }
                    Ok(())
                }
                FailureOutcome::Failed => {
                    tracing::error!(error = %e, "email failed for good");
                    Err(AbortError::new(e).into())
                }
                FailureOutcome::Superseded => Ok(()),
            }
        }
    }
}

/// The message is out: recording it is worth a few quick tries, because each failure here
/// means the recipient gets it twice once the lease ends.
async fn record_sent(ctx: &JobContext, claim: &Claim) -> Result<(), DomainError> {
    let mut pause = Duration::from_millis(200);
    loop {
        match ctx.run(&MarkSent(claim)).await {
            Ok(()) => return Ok(()),
            Err(e) if pause <= Duration::from_secs(2) => {
                tracing::warn!(error = %e, "sent, but cannot record it yet; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, "sent, but cannot record it; it will be sent again when the lease ends");
                return Err(e);
            }
        }
    }
}
