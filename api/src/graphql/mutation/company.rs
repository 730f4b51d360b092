use async_graphql::{Context, ID, Object, Result};
use entity::company::{ConnectionDetails, CreateConnection};

use crate::graphql::context::{store, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::parse_id;
use crate::graphql::inputs::{ConnectionInput, CreateCompanyInput, CreateSiteInput};
use crate::graphql::object::{Company, Connection, Site};

#[derive(Default)]
pub struct CompanyMutation;

#[Object]
impl CompanyMutation {
    /// Creates a company of the organization.
    async fn create_company(
        &self,
        ctx: &Context<'_>,
        input: CreateCompanyInput,
    ) -> Result<Company> {
        let org = viewer(ctx)?.organization_id;
        let row = entity::company::create_company(
            &store(ctx)?.db,
            org,
            &input.name,
            input.display_name.as_deref(),
        )
        .await
        .gql()?;
        Ok(Company(row))
    }

    /// Creates a site of a company.
    async fn create_site(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        input: CreateSiteInput,
    ) -> Result<Site> {
        let org = viewer(ctx)?.organization_id;
        let company_id = parse_id("companyId", &company_id)?;
        let row = entity::company::create_site(
            &store(ctx)?.db,
            org,
            company_id,
            &input.name,
            input.address.as_deref(),
        )
        .await
        .gql()?;
        Ok(Site(row))
    }

    /// Registers a connection with the utility credentials the organization already has.
    async fn create_connection(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        input: ConnectionInput,
    ) -> Result<Connection> {
        let org = viewer(ctx)?.organization_id;
        let company_id = parse_id("companyId", &company_id)?;
        let store = store(ctx)?;
        let details: ConnectionDetails = input.into_submission()?.into();
        let command = CreateConnection {
            keys: &store.keys,
            organization_id: org,
            company_id,
            details,
        };
        Ok(Connection(store.run(&command).await.gql()?))
    }
}
