//! Webhooks (SPEC §8): the endpoints an organization registers, the events they receive, the
//! delivery outbox the workers drain, and the rules that keep deliveries away from internal
//! networks.
//!
//! Deliveries are written in the transaction that makes the change they report (the same outbox
//! pattern as email): an event that committed always has its deliveries, and a rolled-back
//! change never sends one.

pub mod delivery;
pub mod endpoint;
pub mod events;
pub mod signing;
pub mod target;
