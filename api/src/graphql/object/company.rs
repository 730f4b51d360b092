use async_graphql::connection::{Connection as Page, EmptyFields};
use async_graphql::{Context, ID, Json, Object, Result};
use chrono::{DateTime, NaiveDate, Utc};
use entity::entities::{companies, connections, magic_link_events, sites};

use super::page::{event_page, event_window};
use crate::graphql::context::{load, store, viewer};
use crate::graphql::enums::{ConnectionStatus, MagicLinkEventType, MagicLinkType, UtilityType};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::id;
use crate::graphql::loader::{CompanyById, SitesOfCompany, SitesOfConnection};
use crate::graphql::paging::{NESTED_LIST_DEFAULT, nested_complexity, page_size};

/// A customer of the organization; owns sites and connections.
pub struct Company(pub companies::Model);

#[Object]
impl Company {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Name shown to recipients (falls back to `name`).
    async fn display_name(&self) -> &str {
        self.0.display_name.as_deref().unwrap_or(&self.0.name)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Public identifier used by legacy magic links (never the internal id).
    #[graphql(deprecation = "Legacy magic links only; use createContributorInvitation")]
    async fn public_company_id(&self) -> &str {
        &self.0.public_id
    }
    /// The company's sites, oldest first (the first `first` of them).
    #[graphql(complexity = "nested_complexity(first, child_complexity)")]
    async fn sites(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many, 1 to 100 (default 10).")] first: Option<i32>,
    ) -> Result<Vec<Site>> {
        let first = page_size(first, NESTED_LIST_DEFAULT)?;
        let rows = load(ctx, SitesOfCompany(self.0.id, first as u64))
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Site).collect())
    }
    /// The activity of the company's legacy magic links (issued, rotated, revoked, and every
    /// submit through the company link or an edit link), oldest first.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity + 1")]
    async fn magic_link_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last event already seen.")] after: Option<String>,
    ) -> Result<Page<i64, MagicLinkEvent, EmptyFields, EmptyFields>> {
        let window = event_window(first, after.as_deref())?;
        let org = viewer(ctx)?.organization_id;
        let rows = entity::magic_link::events(&store(ctx)?.reads, org, self.0.id, window)
            .await
            .gql()?;
        Ok(event_page(window, rows, |e| e.id, MagicLinkEvent))
    }
}

/// One event of a company's legacy magic links.
pub struct MagicLinkEvent(pub magic_link_events::Model);

#[Object]
impl MagicLinkEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn link_type(&self) -> MagicLinkType {
        self.0.link_type.into()
    }
    async fn event_type(&self) -> MagicLinkEventType {
        self.0.event_type.into()
    }
    /// The edit link's connection, or the connection a company link created.
    async fn connection_id(&self) -> Option<ID> {
        self.0.connection_id.map(id)
    }
    /// API key name, or `recipient`.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// For an edit-link submit: `changedFields` and `previousValues` (never a password).
    async fn detail(&self) -> Json<serde_json::Value> {
        Json(self.0.detail.clone())
    }
    async fn occurred_at(&self) -> DateTime<Utc> {
        self.0.occurred_at
    }
}

/// A building or location of a company.
pub struct Site(pub sites::Model);

#[Object]
impl Site {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn company_id(&self) -> ID {
        id(self.0.company_id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn address(&self) -> Option<&str> {
        self.0.address.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One utility account link. Credentials are write-only: no API returns the password.
pub struct Connection(pub connections::Model);

#[Object]
impl Connection {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn company_id(&self) -> ID {
        id(self.0.company_id)
    }
    async fn company(&self, ctx: &Context<'_>) -> Result<Option<Company>> {
        Ok(load(ctx, CompanyById(self.0.company_id))
            .await?
            .map(Company))
    }
    async fn status(&self) -> ConnectionStatus {
        self.0.status.into()
    }
    async fn datasource_id(&self) -> Option<&str> {
        self.0.datasource_id.as_deref()
    }
    async fn provider_name(&self) -> Option<&str> {
        self.0.provider_name.as_deref()
    }
    async fn provider_url(&self) -> Option<&str> {
        self.0.provider_url.as_deref()
    }
    async fn country(&self) -> Option<&str> {
        self.0.country.as_deref()
    }
    async fn utility_types(&self) -> Vec<UtilityType> {
        self.0.utility_types.0.iter().map(|t| (*t).into()).collect()
    }
    async fn site_ids(&self, ctx: &Context<'_>) -> Result<Vec<ID>> {
        let ids = load(ctx, SitesOfConnection(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(ids.into_iter().map(id).collect())
    }
    async fn owner_email(&self) -> Option<&str> {
        self.0.owner_email.as_deref()
    }
    async fn data_collection_start_date(&self) -> Option<NaiveDate> {
        self.0.data_collection_start_date
    }
    async fn utility_username(&self) -> Option<&str> {
        self.0.utility_username.as_deref()
    }
    /// Whether MFA prompts are forwarded to the account holder.
    async fn mfa_forwarding(&self) -> bool {
        self.0.mfa_forwarding
    }
    /// The invitation that created this connection, if any.
    async fn created_by_invitation_id(&self) -> Option<ID> {
        self.0.created_by_invitation_id.map(id)
    }
    /// The invitation that created or last updated this connection, if any.
    async fn last_invitation_id(&self) -> Option<ID> {
        self.0.last_invitation_id.map(id)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}
