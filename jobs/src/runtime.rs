//! The job runtime of one process: the send-email and deliver-webhook workers under a
//! supervisor, beside the webhook dispatcher loop and the sweeper.

use std::time::Duration;

use apalis::prelude::{BackendExt, Monitor, WorkerBuilder, WorkerBuilderExt, WorkerContext};

use crate::context::{JobContext, WorkerOptions};
use crate::dispatch::dispatch_until;
use crate::email_sender::send_email;
use crate::queue::{Backend, Queues};
use crate::sweeper::sweep_until;
use crate::webhook::deliver_webhook;
use tokio_util::sync::CancellationToken;

/// Immediate restarts of a failed worker before its generation ends and the supervisor waits.
const RESTARTS: usize = 3;
/// Longest wait between worker generations while the queue backend stays down.
const MAX_SUPERVISOR_PAUSE: Duration = Duration::from_secs(60);
/// Hard stop for jobs still running this long after shutdown started.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs the send-email and deliver-webhook workers, the webhook dispatcher and the sweeper
/// until `shutdown`; jobs already running finish (up to a hard stop after
/// [`SHUTDOWN_TIMEOUT`]).
pub async fn run(
    queues: Queues,
    ctx: JobContext,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    tokio::join!(
        sweep_until(
            queues.clone(),
            ctx.clone(),
            options.clone(),
            shutdown.clone()
        ),
        dispatch_until(
            queues.clone(),
            ctx.db.clone(),
            options.dispatch_interval,
            shutdown.clone()
        ),
        supervise(queues, ctx, options, shutdown),
    );
}

/// apalis restarts a failed worker at once, with no pause: fine for a blip, a hot loop while
/// Redis is down. So each generation of workers gets a few immediate restarts, and between
/// generations this waits, doubling up to [`MAX_SUPERVISOR_PAUSE`].
async fn supervise(
    queues: Queues,
    ctx: JobContext,
    options: WorkerOptions,
    shutdown: CancellationToken,
) {
    let mut pause = Duration::from_secs(1);
    for generation in 0u64.. {
        let started = tokio::time::Instant::now();
        run_generation(&queues, &ctx, &options, generation, shutdown.clone()).await;
        if shutdown.is_cancelled() {
            return;
        }
        if started.elapsed() > MAX_SUPERVISOR_PAUSE {
            pause = Duration::from_secs(1);
        }
        tracing::error!(
            pause_s = pause.as_secs(),
            "job workers stopped; starting them again"
        );
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(MAX_SUPERVISOR_PAUSE);
    }
}

/// Registers one worker over either backend; a macro because the two storage types share no
/// trait that names everything `Monitor::register` requires.
macro_rules! register {
    ($monitor:expr, $backend:expr, $kind:literal, $options:expr, $generation:expr, $concurrency:expr, $handler:expr, $($name:ident = $data:expr),+) => {{
        let options = $options.clone();
        $(let $name = $data.clone();)+
        let generation = $generation;
        let concurrency = $concurrency;
        match $backend.clone() {
            Backend::Sqlite(storage) => $monitor.register(move |restarts: usize| {
                WorkerBuilder::new(format!("{}-{}-g{generation}-r{restarts}", $kind, options.instance))
                    .backend(storage.clone().poll_with_interval(options.poll_interval))
                    .enable_tracing()
                    .concurrency(concurrency)
                    .catch_panic()
                    $(.data($name.clone()))+
                    .build($handler)
            }),
            Backend::Redis(storage) => $monitor.register(move |restarts: usize| {
                WorkerBuilder::new(format!("{}-{}-g{generation}-r{restarts}", $kind, options.instance))
                    .backend(storage.clone().poll_with_interval(options.poll_interval))
                    .enable_tracing()
                    .concurrency(concurrency)
                    .catch_panic()
                    $(.data($name.clone()))+
                    .build($handler)
            }),
        }
    }};
}

async fn run_generation(
    queues: &Queues,
    ctx: &JobContext,
    options: &WorkerOptions,
    generation: u64,
    shutdown: CancellationToken,
) {
    let monitor = Monitor::new()
        .should_restart(|worker: &WorkerContext, error| {
            tracing::error!(worker = worker.name(), %error, "worker failed");
            worker.restarts() < RESTARTS
        })
        // Also makes `run_with_signal` return when every worker has given up, instead of
        // waiting for the signal.
        .shutdown_timeout(SHUTDOWN_TIMEOUT);
    let monitor = register!(
        monitor,
        queues.email,
        "send-email",
        options,
        generation,
        options.concurrency,
        send_email,
        ctx = ctx,
        queues = queues
    );
    let monitor = register!(
        monitor,
        queues.webhooks,
        "deliver-webhook",
        options,
        generation,
        options.webhook_concurrency,
        deliver_webhook,
        webhooks = ctx.webhooks
    );
    let stop = shutdown;
    let signal = async move {
        stop.cancelled().await;
        Ok(())
    };
    if let Err(e) = monitor.run_with_signal(signal).await {
        tracing::error!(error = %e, "job monitor failed");
    }
}
