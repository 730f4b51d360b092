//! Webhooks (SPEC §8): the endpoints an organization registers, the events they receive, their
//! signatures, and the rules that keep deliveries away from internal networks. The deliveries
//! themselves are an outbox ([`crate::outbox::webhook`]).
//!
//! Deliveries are written in the unit of work that makes the change they report (the same outbox
//! pattern as email): an event that committed always has its deliveries, and a rolled-back
//! change never sends one.

pub mod endpoint;
pub mod events;
pub mod log;
pub mod signing;
pub mod target;
