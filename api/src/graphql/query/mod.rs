//! Read operations, split by domain and merged into `Query`.

mod company;
mod invitation;
mod public;
mod webhook;

use async_graphql::{Context, ID, MergedObject, Object, Result, SimpleObject};

use super::context::viewer;
use super::ids::id;

/// Read operations.
#[derive(MergedObject, Default)]
pub struct Query(
    ViewerQuery,
    company::CompanyQuery,
    invitation::InvitationQuery,
    public::PublicQuery,
    webhook::WebhookQuery,
);

#[derive(Default)]
pub struct ViewerQuery;

/// The organization the API key belongs to.
#[derive(SimpleObject)]
pub struct ViewerInfo {
    /// Organization id.
    pub organization_id: ID,
    /// Name of the API key used for this request.
    pub api_key_name: String,
}

#[Object]
impl ViewerQuery {
    /// Version of the running gateway.
    async fn api_version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    /// Who the API key of this request belongs to.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<ViewerInfo> {
        let v = viewer(ctx)?;
        Ok(ViewerInfo {
            organization_id: id(v.organization_id),
            api_key_name: v.api_key_name.clone(),
        })
    }
}
