//! The data model and the domain rules of the invitations gateway.
//!
//! No HTTP, GraphQL or Redis here: callers hand in a database connection (or transaction) and get
//! domain values and [`DomainError`]s back.

pub mod activity;
pub mod company;
pub mod crypto;
pub mod email;
pub mod entities;
pub mod error;
pub mod finders;
pub mod idempotency;
pub mod invitation;
pub mod magic_link;
pub mod organization;
pub mod outbox;
pub mod pool;
pub mod positions;
pub mod recipient;
pub mod reseal;
pub mod rows;
pub mod scope;
pub mod webhook;
pub mod work;

pub use entities::enums::{
    AttemptOutcome, ConnectionStatus, DeliveryKind, DeliveryStatus, DisabledReason, EndpointStatus,
    EventType, InvitationStatus, InvitationType, MagicLinkEventType, MagicLinkType, Prefill,
    StringList, UtilityType, UtilityTypes, WebhookDeliveryStatus,
};
pub use error::DomainError;

use chrono::{DateTime, SubsecRound, Utc};

/// The current time at the precision both databases store (microseconds), so a value written and
/// read back compares equal on PostgreSQL and SQLite.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
