//! GraphQL object types: thin wrappers around entity models.

mod company;
pub mod invitation;
mod organization;
pub mod page;
pub mod webhook;

pub use company::{Company, Connection, Site};
pub use invitation::{Delivery, Invitation, InvitationEvent, Prefill};
pub use organization::Organization;
pub use webhook::{WebhookDelivery, WebhookEndpoint, WebhookEndpointWithSecret};
