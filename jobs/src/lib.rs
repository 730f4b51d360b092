//! Background work: the mailer, the job queues and their workers, periodic jobs.

pub mod expiry;
pub mod mailer;
pub mod shutdown;
