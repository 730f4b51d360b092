//! GraphQL object types: thin wrappers around entity models.

mod company;
pub mod invitation;

pub use company::{Company, Connection, Site};
pub use invitation::{Delivery, Invitation, InvitationEvent, Prefill};
