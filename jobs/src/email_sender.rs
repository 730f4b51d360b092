//! The send-email job: outbox rows, leased together, sent through the mailer over a pool of
//! connections, and recorded in batches.
//!
//! Email and webhook deliveries follow the same discipline; it is described here for email, and
//! in `entity::outbox::webhook` for webhooks.
//!
//! # Delivery guarantees
//!
//! The `email_deliveries` row decides; a queued [`SendEmail`] only points at it. A run first
//! takes the rows' send leases ([`delivery::claim_all`]: one conditional update that moves
//! `next_attempt_at` one [lease](crate::settings::EmailSettings::send_lease) into the future,
//! for each row that is PENDING and due). Exactly one of any number of concurrent runs gets a
//! row; the others find nothing to do with it. So a job queued twice, re-run after a worker died,
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

//! # Throughput
//!
//! A job carries the deliveries one unit of work wrote (a bulk create: up to
//! [`JOB_BATCH`](crate::queue::JOB_BATCH)), so a burst costs a few jobs, not one per
//! message. The rows are claimed in one statement and their invitations and companies read in
//! two; the messages then go out through the process's [`SendGate`](crate::mailer::SendGate)
//! (`EMAIL_CONCURRENCY` at once over as many pooled connections, optionally paced), and the
//! ones that are out are recorded as SENT together, a few statements per group.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use entity::entities::{companies, invitations};
use entity::outbox::email::{
    self as delivery, Cancel, Claim, FailureOutcome, MarkSent, RecordFailure,
};
use entity::{DeliveryKind, DomainError, InvitationStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::batch::attempt_and_settle;
use crate::context::JobContext;
use crate::email::ComposeError;
use crate::mailer::{Outgoing, SendError};
use crate::metrics::{EmailFailure, EmailKind, QueueLabel};
use crate::queue::{JOB_BATCH, Queues, SEND_EMAIL_QUEUE, SendEmail};

/// Longest one send may take before it counts as a transient failure.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// Most outcomes recorded in one unit of work: a whole job's when its sends are fast. They are
/// recorded in groups as they finish (see `batch`), without waiting for the slowest of them.
const SETTLE_BATCH: usize = JOB_BATCH;

/// What one attempt came to, before it is recorded: sent, or why not.
type Outcome = Result<(), Unsent>;

/// Why a message did not go out.
enum Unsent {
    /// Not sent, and it never will be: the invitation (or its company) can no longer be used.
    Moot(String),
    Unsendable(ComposeError),
    Failed(SendError),
}

/// What the messages of one job are built from, read once for all of them.
struct Sources {
    invitations: HashMap<Uuid, invitations::Model>,
    /// Company display names by company id.
    companies: HashMap<Uuid, String>,
}

/// Sends the job's deliveries, or finds that there is nothing to do (see the module
/// documentation). An error means the database could not be reached: the leases run out and
/// the sweeper brings the deliveries back.
pub async fn send_email(
    job: SendEmail,
    ctx: Data<JobContext>,
    queues: Data<Queues>,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("send_email", deliveries = job.delivery_ids.len());
    job.origin
        .run(
            &ctx.metrics,
            SEND_EMAIL_QUEUE,
            span,
            send_all(&job, &ctx, &queues),
        )
        .await
}

async fn send_all(job: &SendEmail, ctx: &JobContext, queues: &Queues) -> Result<(), BoxDynError> {
    let claims = delivery::claim_all(&ctx.db, &job.delivery_ids, ctx.lease).await?;
    if claims.is_empty() {
        tracing::debug!("nothing to do: already final, not due yet, or another worker holds it");
        return Ok(());
    }
    let sources = sources(ctx, &claims).await?;
    attempt_and_settle(
        &claims,
        SETTLE_BATCH,
        |claim| attempt_send(ctx, &sources, claim),
        |group| settle(ctx, queues, group),
    )
    .await?;
    Ok(())
}

async fn sources(ctx: &JobContext, claims: &[Claim]) -> Result<Sources, DomainError> {
    let ids: BTreeSet<Uuid> = claims.iter().map(|c| c.delivery.invitation_id).collect();
    let invitations: HashMap<Uuid, invitations::Model> = invitations::Entity::find()
        .filter(invitations::Column::Id.is_in(ids))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    let company_ids: BTreeSet<Uuid> = invitations.values().map(|i| i.company_id).collect();
    let companies = companies::Entity::find()
        .filter(companies::Column::Id.is_in(company_ids))
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|c| {
            let name = c
                .display_name
                .filter(|n| !n.trim().is_empty())
                .unwrap_or(c.name);
            (c.id, name)
        })
        .collect();
    Ok(Sources {
        invitations,
        companies,
    })
}

/// Tries one delivery; returns it with what came of it.
async fn attempt_send<'a>(
    ctx: &JobContext,
    sources: &Sources,
    claim: &'a Claim,
) -> (&'a Claim, Outcome) {
    let span = tracing::info_span!("attempt", delivery_id = %claim.delivery.id);
    let outcome = tracing::Instrument::instrument(try_send(ctx, sources, claim), span).await;
    (claim, outcome)
}

async fn try_send(ctx: &JobContext, sources: &Sources, claim: &Claim) -> Outcome {
    let row = &claim.delivery;
    let Some(invitation) = sources.invitations.get(&row.invitation_id) else {
        return Err(Unsent::Moot(
            "not sent: the invitation no longer exists".to_owned(),
        ));
    };
    let at = entity::now();
    let status = invitation.effective_status(at);
    if row.kind != DeliveryKind::VerificationCode && status != InvitationStatus::Active {
        return Err(Unsent::Moot(format!(
            "not sent: the invitation is {}",
            status.as_str()
        )));
    }
    let Some(company_name) = sources.companies.get(&invitation.company_id) else {
        return Err(Unsent::Moot(
            "not sent: the company no longer exists".to_owned(),
        ));
    };
    let message = match ctx.composer.compose(row, invitation, company_name, at) {
        Ok(message) => Outgoing::from(message),
        Err(e) => return Err(Unsent::Unsendable(e)),
    };
    // Held until the server has answered: the gate bounds messages in flight.
    let _turn = ctx.gate.enter().await;
    match tokio::time::timeout(SEND_TIMEOUT, ctx.mailer.send(&message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(Unsent::Failed(e)),
        Err(_) => Err(Unsent::Failed(SendError::Transient(
            format!(
                "no answer from the mail server within {} s",
                SEND_TIMEOUT.as_secs()
            ),
            "timeout",
        ))),
    }
}

/// Records a group of outcomes: the sent ones in one unit of work, the others one by one (they
/// are rare). Returns the first database error after trying them all.
async fn settle(
    ctx: &JobContext,
    queues: &Queues,
    outcomes: Vec<(&Claim, Outcome)>,
) -> Result<(), DomainError> {
    let mut sent = Vec::new();
    let mut result = Ok(());
    for (claim, outcome) in outcomes {
        match outcome {
            Ok(()) => sent.push(claim.clone()),
            Err(unsent) => {
                if let Err(e) = settle_one(ctx, queues, claim, unsent).await {
                    tracing::error!(delivery_id = %claim.delivery.id, error = %e, "cannot record the outcome of a send");
                    result = result.and(Err(e));
                }
            }
        }
    }
    if !sent.is_empty() {
        for claim in &sent {
            ctx.metrics
                .emails_sent
                .get_or_create(&EmailKind {
                    kind: claim.delivery.kind.label(),
                })
                .inc();
        }
        let recorded = record_sent(ctx, &sent).await;
        if recorded.is_ok() {
            tracing::info!(count = sent.len(), "emails sent");
        }
        result = result.and(recorded);
    }
    result
}

/// Records an outcome other than SENT: the delivery dropped (FAILED with the reason), or the
/// failed attempt counted and its retry queued.
async fn settle_one(
    ctx: &JobContext,
    queues: &Queues,
    claim: &Claim,
    outcome: Unsent,
) -> Result<(), DomainError> {
    let row = &claim.delivery;
    let reason = match &outcome {
        Unsent::Moot(_) => "moot",
        Unsent::Unsendable(_) => "unsendable",
        Unsent::Failed(e) => e.class(),
    };
    ctx.metrics
        .emails_failed
        .get_or_create(&EmailFailure {
            kind: row.kind.label(),
            reason,
        })
        .inc();
    match outcome {
        Unsent::Moot(reason) => {
            ctx.run(&Cancel {
                claim,
                reason: &reason,
            })
            .await?;
            tracing::info!(delivery_id = %row.id, %reason, "email dropped");
        }
        Unsent::Unsendable(e) => {
            let reason = e.to_string();
            ctx.run(&Cancel {
                claim,
                reason: &reason,
            })
            .await?;
            tracing::error!(delivery_id = %row.id, error = %e, "email cannot be built");
        }
        Unsent::Failed(e) => {
            let (reply, permanent) = match &e {
                SendError::Transient(reply, _) => (reply, false),
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
                    ctx.metrics
                        .job_retries
                        .get_or_create(&QueueLabel {
                            queue: SEND_EMAIL_QUEUE,
                        })
                        .inc();
                    tracing::warn!(delivery_id = %row.id, error = %e, next_attempt_at = %due, "email not sent; will retry");
                    // If this push fails, the sweeper queues the row once it is due.
                    if let Err(push) = queues.requeue(&[(row.id, due)]).await {
                        tracing::warn!(error = %push, "cannot queue the retry; the sweeper will");
                    }
                }
                FailureOutcome::Failed => {
                    tracing::error!(delivery_id = %row.id, error = %e, "email failed for good");
                }
                FailureOutcome::Superseded => {}
            }
        }
    }
    Ok(())
}

/// The messages are out: recording it is worth a few quick tries, because each failure here
/// means the recipients get them twice once the lease ends.
async fn record_sent(ctx: &JobContext, claims: &[Claim]) -> Result<(), DomainError> {
    let mut pause = Duration::from_millis(200);
    loop {
        match ctx.run(&MarkSent(claims)).await {
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
