use async_graphql::{Context, InputObject, Object, Result};

use crate::graphql::context::{state, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::object::Organization;

#[derive(Default)]
pub struct OrganizationMutation;

/// Settings of the caller's organization; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateOrganizationInput {
    /// Origins allowed to show the organization's hosted pages in an iframe, each exactly
    /// `https://host[:port]` (plain `http` only for `localhost`, `127.0.0.1` and `[::1]`), at
    /// most 20. The pages send `Content-Security-Policy: frame-ancestors` with exactly these
    /// origins, and a framed page posts its events to its parent only when it is one of them.
    /// Empty: no one may frame the pages.
    pub allowed_embed_origins: Option<Vec<String>>,
}

#[Object]
impl OrganizationMutation {
    /// Changes the settings of the caller's organization.
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        input: UpdateOrganizationInput,
    ) -> Result<Organization> {
        let org = viewer(ctx)?.organization_id;
        let db = &state(ctx)?.db;
        let row = match input.allowed_embed_origins {
            Some(origins) => entity::organization::set_embed_origins(db, org, &origins).await,
            None => entity::organization::find(db, org).await,
        }
        .gql()?;
        Ok(Organization(row))
    }
}
