use async_graphql::{Context, ID, InputObject, Object, Result};
use entity::company::ConnectionDetails;

use crate::graphql::context::{state, viewer};
use crate::graphql::enums::UtilityType;
use crate::graphql::error::GqlResult;
use crate::graphql::ids::{parse_date, parse_id, parse_ids};
use crate::graphql::object::{Company, Connection, Site};

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

/// A connection registered directly by the organization.
#[derive(InputObject)]
pub struct CreateConnectionInput {
    /// The utility provider, by id, website or name (at least one).
    pub datasource_id: Option<String>,
    pub provider_url: Option<String>,
    pub provider_name: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: Option<String>,
    pub utility_types: Option<Vec<UtilityType>>,
    /// Sites of the same company.
    pub site_ids: Option<Vec<ID>>,
    pub owner_email: Option<String>,
    /// `YYYY-MM-DD`.
    pub data_collection_start_date: Option<String>,
    pub utility_username: String,
    /// Stored encrypted; never returned.
    #[graphql(secret)]
    pub utility_password: String,
    pub mfa_forwarding: Option<bool>,
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
        input: CreateConnectionInput,
    ) -> Result<Connection> {
        let org = viewer(ctx)?.organization_id;
        let company_id = parse_id("companyId", &company_id)?;
        let state = state(ctx)?;
        let details = ConnectionDetails {
            datasource_id: input.datasource_id,
            provider_name: input.provider_name,
            provider_url: input.provider_url,
            country: input.country,
            utility_types: input
                .utility_types
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            site_ids: parse_ids("siteIds", &input.site_ids.unwrap_or_default())?,
            owner_email: input.owner_email,
            data_collection_start_date: parse_date(
                "dataCollectionStartDate",
                input.data_collection_start_date.as_deref(),
            )?,
            utility_username: input.utility_username,
            utility_password: input.utility_password,
            mfa_forwarding: input.mfa_forwarding.unwrap_or(false),
        };
        let txn = entity::begin_write(&state.db).await.gql()?;
        let row =
            entity::company::create_connection(&txn, &state.keys, org, company_id, details, None)
                .await
                .gql()?;
        txn.commit().await.gql()?;
        Ok(Connection(row))
    }
}
