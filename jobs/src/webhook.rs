//! Webhook delivery: the job that drives a batch of deliveries (claim, attempt each through the
//! [`Sender`], record the attempts in groups). The HTTP side is in [`sender`].

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use apalis::prelude::{BoxDynError, Data};
use entity::crypto::Keyring;
use entity::outbox::webhook::{self as outbox, AttemptRecord, Settled, WebhookPolicy};
use entity::webhook::endpoint::signing_secrets;
use entity::webhook::signing::signature_header;
use entity::work;
use entity::{DomainError, EndpointStatus};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::batch::attempt_and_settle;
use crate::dispatch::Dispatcher;
use crate::mailer::SendGate;
use crate::metrics::{Metrics, OutcomeLabel, QueueLabel};
use crate::queue::{DELIVER_WEBHOOK_QUEUE, DeliverWebhook};

mod sender;

pub use sender::{Sender, Signed};

/// Added to the attempts' time to make a claim's lease: [`RECORD_MARGIN`], plus slack for the
/// wait between the claim and the first requests.
const LEASE_MARGIN: Duration = Duration::from_secs(45);
/// Time to record an attempt, with margin: a request only starts while at least its timeout
/// and this much of the lease are left.
const RECORD_MARGIN: Duration = Duration::from_secs(30);
/// What the deliver-webhook handler needs.
#[derive(Clone, Debug)]
pub struct WebhookContext {
    pub db: DatabaseConnection,
    pub keys: Keyring,
    pub sender: Sender,
    pub policy: WebhookPolicy,
    /// Bounds the requests in flight in this process (`WEBHOOK_CONCURRENCY`), whichever job
    /// they belong to.
    pub gate: SendGate,
    /// Queues the `webhook_endpoint.disabled` deliveries an attempt may write.
    pub dispatcher: Dispatcher,
    pub metrics: Arc<Metrics>,
}

impl WebhookContext {
    async fn cancel(&self, claims: &[&outbox::Claim], reason: &str) -> Result<(), DomainError> {
        work::run(
            &self.db,
            &self.dispatcher,
            &outbox::Cancel { claims, reason },
        )
        .await
    }
}

/// Most attempts recorded in one unit of work: a job's attempts are recorded in groups as they
/// finish, without waiting for the slowest of them.
const SETTLE_BATCH: usize = 64;

/// What came of trying one delivery.
enum Tried {
    Attempted(AttemptRecord),
    /// No request was made: the endpoint's secret could not sign it.
    Unsigned(DomainError),
    /// No request was made: an earlier attempt of this job disabled the endpoint.
    Disabled,
    /// No request was made: the wait for the gate used up too much of the lease (other jobs'
    /// requests were slow). The delivery is due again when the lease ends.
    Late,
}

/// Makes one attempt at each of the job's deliveries, or finds there is nothing to do. The
/// deliveries are claimed in one statement with their endpoints, each endpoint's secrets are
/// opened once, the requests go out through the process's [`SendGate`], and the attempts are
/// recorded in groups (see `entity::outbox::webhook::record_attempts`). Errors are failures to
/// reach the database; the leases then run out and the sweeper brings the deliveries back.
pub async fn deliver_webhook(
    job: DeliverWebhook,
    ctx: Data<WebhookContext>,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("deliver_webhook", deliveries = job.delivery_ids.len());
    job.origin
        .run(
            &ctx.metrics,
            DELIVER_WEBHOOK_QUEUE,
            span,
            deliver_all(&job, &ctx),
        )
        .await
}

async fn deliver_all(job: &DeliverWebhook, ctx: &WebhookContext) -> Result<(), BoxDynError> {
    // Long enough for the job's requests, a gate's worth at a time, each taking at most the
    // timeout: a live holder does not lose its lease (and [`try_one`] makes sure of it).
    let rounds = job.delivery_ids.len().div_ceil(ctx.gate.concurrency());
    let lease =
        ctx.sender.timeout * u32::try_from(rounds.max(1)).unwrap_or(u32::MAX) + LEASE_MARGIN;
    let claims = outbox::claim_all(&ctx.db, &job.delivery_ids, lease).await?;
    if claims.is_empty() {
        tracing::debug!("nothing to do: already final, not due yet, or another worker holds it");
        return Ok(());
    }
    let at = entity::now();
    let mut secrets: HashMap<Uuid, Option<Vec<String>>> = HashMap::new();
    let (mut sendable, mut disabled, mut unopened) = (Vec::new(), Vec::new(), Vec::new());
    for claim in &claims {
        let endpoint = &claim.endpoint;
        if endpoint.status != EndpointStatus::Enabled {
            disabled.push(claim);
            continue;
        }
        let opened = secrets.entry(endpoint.id).or_insert_with(|| {
            signing_secrets(&ctx.keys, endpoint, at)
                .inspect_err(|e| {
                    tracing::error!(endpoint = %endpoint.id, error = %e, "cannot open the endpoint's signing secret");
                })
                .ok()
        });
        match opened {
            Some(_) => sendable.push(claim),
            None => unopened.push(claim),
        }
    }
    ctx.cancel(&disabled, "not sent: the endpoint is disabled")
        .await?;
    ctx.cancel(&unopened, "not sent: the signing secret cannot be opened")
        .await?;
    let secrets = &secrets;
    // Endpoints this job's attempts disabled: their remaining deliveries are not sent.
    let gone = &Mutex::new(HashSet::new());
    attempt_and_settle(
        &sendable,
        SETTLE_BATCH,
        |claim| async move {
            let secrets = secrets
                .get(&claim.endpoint.id)
                .and_then(Option::as_deref)
                .unwrap_or_default();
            (*claim, try_one(ctx, secrets, claim, gone).await)
        },
        |group| settle(ctx, group, gone),
    )
    .await?;
    Ok(())
}

/// Signs and sends one delivery once the gate lets it through, if enough of its lease is left
/// for the request and its record; the signature's timestamp is the moment it goes out.
async fn try_one(
    ctx: &WebhookContext,
    secrets: &[String],
    claim: &outbox::Claim,
    gone: &Mutex<HashSet<Uuid>>,
) -> Tried {
    let _turn = ctx.gate.enter().await;
    if gone
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&claim.endpoint.id)
    {
        return Tried::Disabled;
    }
    let delivery = &claim.delivery;
    // The claim's `next_attempt_at` is where its lease ends.
    let left = (delivery.next_attempt_at - entity::now())
        .to_std()
        .unwrap_or_default();
    if left < ctx.sender.timeout + RECORD_MARGIN {
        return Tried::Late;
    }
    let timestamp = entity::now().timestamp();
    let signature = match signature_header(secrets, &delivery.message_id, timestamp, &delivery.body)
    {
        Ok(signature) => signature,
        Err(e) => return Tried::Unsigned(e),
    };
    let signed = Signed {
        message_id: &delivery.message_id,
        timestamp,
        signature: &signature,
    };
    let span = tracing::info_span!("attempt", delivery_id = %delivery.id);
    let send = ctx
        .sender
        .send(&claim.endpoint.url, &signed, delivery.body.clone());
    Tried::Attempted(tracing::Instrument::instrument(send, span).await)
}

/// Records a group of attempts in one unit of work (and gives up the deliveries that could not
/// be signed), then counts and logs what was decided.
async fn settle(
    ctx: &WebhookContext,
    group: Vec<(&outbox::Claim, Tried)>,
    gone: &Mutex<HashSet<Uuid>>,
) -> Result<(), DomainError> {
    let mut attempts = Vec::with_capacity(group.len());
    let (mut unsigned, mut disabled) = (Vec::new(), Vec::new());
    for (claim, tried) in group {
        match tried {
            Tried::Attempted(record) => attempts.push((claim, record)),
            Tried::Unsigned(e) => {
                tracing::error!(delivery_id = %claim.delivery.id, error = %e, "cannot sign the delivery");
                unsigned.push(claim);
            }
            Tried::Disabled => disabled.push(claim),
            Tried::Late => {
                tracing::warn!(delivery_id = %claim.delivery.id, "not sent: waited too long for a free slot; due again when its lease ends");
            }
        }
    }
    let cancelled = ctx
        .cancel(&unsigned, "not sent: the signing secret cannot be used")
        .await
        .and(
            ctx.cancel(&disabled, "not sent: the endpoint was disabled")
                .await,
        );
    let recorded =
        outbox::record_attempts(&ctx.db, &ctx.dispatcher, &attempts, &ctx.policy).await?;
    gone.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(&recorded.disabled);
    let metrics = &ctx.metrics;
    for endpoint in &recorded.disabled {
        metrics.webhook_endpoints_disabled.inc();
        tracing::warn!(%endpoint, "webhook endpoint disabled: it kept failing");
    }
    for ((claim, record), settled) in attempts.iter().zip(&recorded.settled) {
        let delivery = &claim.delivery;
        metrics
            .webhook_attempts
            .get_or_create(&OutcomeLabel {
                outcome: record.outcome.label(),
            })
            .inc();
        metrics
            .webhook_attempt_duration
            .observe(record.duration.as_secs_f64());
        match settled {
            Settled::Succeeded => {
                let waited = (record.attempted_at - delivery.created_at).to_std();
                metrics
                    .webhook_delivery_latency
                    .observe(waited.unwrap_or_default().as_secs_f64());
                tracing::debug!(delivery_id = %delivery.id, event_type = %delivery.event_type, "webhook delivered");
            }
            Settled::RetryAt(due) => {
                metrics
                    .job_retries
                    .get_or_create(&QueueLabel {
                        queue: DELIVER_WEBHOOK_QUEUE,
                    })
                    .inc();
                tracing::warn!(
                    delivery_id = %delivery.id, outcome = ?record.outcome, status = ?record.http_status,
                    next_attempt_at = %due, "webhook not delivered; will retry"
                )
            }
            Settled::Failed => tracing::error!(
                delivery_id = %delivery.id, outcome = ?record.outcome, status = ?record.http_status,
                "webhook failed for good"
            ),
            Settled::Superseded => {}
        }
    }
    let delivered = recorded
        .settled
        .iter()
        .filter(|s| **s == Settled::Succeeded)
        .count();
    if delivered > 0 {
        tracing::info!(count = delivered, "webhooks delivered");
    }
    cancelled
}
