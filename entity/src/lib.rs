//! The data model and the domain rules of the invitations gateway.
//!
//! No HTTP, GraphQL or Redis here: callers hand in a database connection (or transaction) and get
//! domain values and [`DomainError`]s back.

pub mod activity;
pub mod company;
pub mod crypto;
pub mod delivery;
pub mod email;
pub mod entities;
pub mod error;
pub mod idempotency;
pub mod invitation;
pub mod magic_link;
pub mod organization;
pub mod recipient;
pub mod scope;
pub mod webhook;

pub use entities::enums::{
    AttemptOutcome, ConnectionStatus, DeliveryKind, DeliveryStatus, DisabledReason, EndpointStatus,
    EventType, InvitationStatus, InvitationType, Prefill, StringList, UtilityType, UtilityTypes,
    WebhookDeliveryStatus,
};
pub use error::DomainError;

use chrono::{DateTime, SubsecRound, Utc};

/// The current time at the precision both databases store (microseconds), so a value written and
/// read back compares equal on PostgreSQL and SQLite.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Begins a transaction that will write. On SQLite it starts `IMMEDIATE`, so a transaction that
/// reads before it writes takes the write lock up front instead of failing with `SQLITE_BUSY`
/// when it tries to upgrade; PostgreSQL ignores the option.
pub async fn begin_write<C: sea_orm::TransactionTrait>(
    db: &C,
) -> Result<C::Transaction, sea_orm::DbErr> {
    db.begin_with_options(sea_orm::TransactionOptions {
        sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}
