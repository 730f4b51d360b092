//! Read operations, split by domain and merged into `Query`.

mod company;
mod invitation;
mod public;
mod webhook;

use async_graphql::{ComplexObject, Context, ID, MergedObject, Object, Result, SimpleObject};

use super::context::{store, viewer};
use super::error::GqlResult;
use super::ids::id;
use super::object::Organization;

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
#[graphql(complex)]
pub struct ViewerInfo {
    /// Organization id.
    pub organization_id: ID,
    /// Name of the API key used for this request.
    pub api_key_name: String,
}

#[ComplexObject]
impl ViewerInfo {
    /// The organization itself, with its settings.
    async fn organization(&self, ctx: &Context<'_>) -> Result<Organization> {
        let org = viewer(ctx)?.organization_id;
        let row = entity::organization::find(&store(ctx)?.reads, org)
            .await
            .gql()?;
        Ok(Organization(row))
    }
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
