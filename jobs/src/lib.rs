//! Background work: the mailer, the job queues and their workers, periodic jobs.

pub mod email;
pub mod expiry;
pub mod mailer;
pub mod queue;
pub mod shutdown;
pub mod webhook;
pub mod worker;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
