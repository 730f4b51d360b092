//! Table models. Plain shapes; behaviour lives in the domain modules beside this folder.

pub mod api_keys;
pub mod companies;
pub mod connection_sites;
pub mod connections;
pub mod email_deliveries;
pub mod email_verifications;
pub mod enums;
pub mod idempotency_keys;
pub mod invitation_counts;
pub mod invitation_emails;
pub mod invitation_events;
pub mod invitations;
pub mod magic_link_events;
pub mod maintenance;
pub mod organizations;
pub mod sites;
pub mod webhook_attempts;
pub mod webhook_deliveries;
pub mod webhook_endpoints;
