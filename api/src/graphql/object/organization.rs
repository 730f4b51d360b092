use async_graphql::{ID, Object};
use chrono::{DateTime, Utc};
use entity::entities::organizations;

use crate::graphql::ids::id;

/// The tenant: owns companies, API keys and webhook endpoints.
pub struct Organization(pub organizations::Model);

#[Object]
impl Organization {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Origins allowed to frame the organization's hosted pages (see `updateOrganization`).
    async fn allowed_embed_origins(&self) -> &[String] {
        &self.0.allowed_embed_origins.0
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
