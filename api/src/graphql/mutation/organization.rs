use async_graphql::{Context, Object, Result};

use crate::graphql::context::{store, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::inputs::UpdateOrganizationInput;
use crate::graphql::object::Organization;

#[derive(Default)]
pub struct OrganizationMutation;

#[Object]
impl OrganizationMutation {
    /// Changes the settings of the caller's organization.
    async fn update_organization(
        &self,
        ctx: &Context<'_>,
        input: UpdateOrganizationInput,
    ) -> Result<Organization> {
        let org = viewer(ctx)?.organization_id;
        let db = &store(ctx)?.db;
        let row = match input.allowed_embed_origins {
            Some(origins) => entity::organization::set_embed_origins(db, org, &origins).await,
            None => entity::organization::find(db, org).await,
        }
        .gql()?;
        Ok(Organization(row))
    }
}
