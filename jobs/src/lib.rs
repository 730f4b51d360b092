//! Background work: the mailer, the job queues, the workers and what feeds them (the
//! after-commit dispatcher, the webhook dispatcher loop, the sweeper), periodic expiry.

mod batch;
pub mod conf;
pub mod context;
pub mod dispatch;
pub mod email;
pub mod email_sender;
pub mod expiry;
pub mod mailer;
pub mod metrics;
pub mod origin;
pub mod queue;
pub mod runtime;
pub mod settings;
mod smtp_pool;
pub mod sweeper;
pub mod webhook;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
