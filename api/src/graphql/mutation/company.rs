use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::company::{ConnectionDetails, CreateConnection};

use crate::graphql::context::{state, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::parse_id;
use crate::graphql::object::{Company, Connection, Site};
use crate::graphql::public::ConnectionInput;

#[derive(Default)]
pub struct CompanyMutation;

/// A new company.
#[derive(InputObject)]
pub struct CreateCompanyInput {
    /// 1 to 200 characters.
    pub name: String,
    /// Name shown to recipients; defaults to `name`.
    pub display_name: Option<String>,
}

/// A new site of a company.
#[derive(InputObject)]
pub struct CreateSiteInput {
    pub name: String,
    pub address: Option<String>,
}

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
            &state(ctx)?.db,
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
            &state(ctx)?.db,
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
        let state = state(ctx)?;
        let details: ConnectionDetails = input.into_submission()?.into();
        let command = CreateConnection {
            keys: &state.keys,
            organization_id: org,
            company_id,
            details,
        };
        Ok(Connection(state.run(&command).await.gql()?))
    }
}
