//! Schema migrations. This crate never imports `entity`: a migration describes the schema as it was
//! when it was written, not as the code models it today.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_organizations;
mod m20261125_000002_api_keys;
mod m20261125_000003_companies;
mod m20261125_000004_sites;
mod m20261125_000005_connections;
mod m20261125_000006_connection_sites;
mod m20261125_000007_invitations;
mod m20261125_000008_invitation_events;
mod m20261125_000009_email_deliveries;
mod m20261125_000010_email_verifications;
mod m20261125_000011_idempotency_keys;
mod m20261125_000012_webhook_endpoints;
mod m20261125_000013_webhook_deliveries;
mod m20261125_000014_webhook_attempts;
mod m20261130_000015_invitation_list_indexes;
mod m20261130_000016_invitation_emails;
mod m20261130_000017_invitation_counts;
mod m20261130_000018_event_positions;
mod m20261130_000019_email_delivery_org_index;
mod m20261130_000020_maintenance;
mod m20261201_000021_embed_origins;
mod m20261201_000022_magic_link_events;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_organizations::Migration),
            Box::new(m20261125_000002_api_keys::Migration),
            Box::new(m20261125_000003_companies::Migration),
            Box::new(m20261125_000004_sites::Migration),
            Box::new(m20261125_000005_connections::Migration),
            Box::new(m20261125_000006_connection_sites::Migration),
            Box::new(m20261125_000007_invitations::Migration),
            Box::new(m20261125_000008_invitation_events::Migration),
            Box::new(m20261125_000009_email_deliveries::Migration),
            Box::new(m20261125_000010_email_verifications::Migration),
            Box::new(m20261125_000011_idempotency_keys::Migration),
            Box::new(m20261125_000012_webhook_endpoints::Migration),
            Box::new(m20261125_000013_webhook_deliveries::Migration),
            Box::new(m20261125_000014_webhook_attempts::Migration),
            Box::new(m20261130_000015_invitation_list_indexes::Migration),
            Box::new(m20261130_000016_invitation_emails::Migration),
            Box::new(m20261130_000017_invitation_counts::Migration),
            Box::new(m20261130_000018_event_positions::Migration),
            Box::new(m20261130_000019_email_delivery_org_index::Migration),
            Box::new(m20261130_000020_maintenance::Migration),
            Box::new(m20261201_000021_embed_origins::Migration),
            Box::new(m20261201_000022_magic_link_events::Migration),
        ]
    }
}

/// Timestamps are stored with a time zone on PostgreSQL; on SQLite sea-orm writes RFC 3339 text.
pub(crate) fn ts<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

pub(crate) fn ts_null<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).timestamp_with_time_zone().null().take()
}

/// Enumerations are stored as short strings so that adding a variant needs no `ALTER TYPE`.
pub(crate) fn enum_str<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col).string_len(32).not_null().take()
}

/// A foreign key that removes the child rows with their parent (tests and tenant deletion).
pub(crate) fn fk_cascade(
    from_table: impl IntoIden,
    from_col: impl IntoIden,
    to_table: impl IntoIden,
    to_col: impl IntoIden,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_col)
        .to(to_table, to_col)
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}
