use async_graphql::{Context, ID, Object, Result};
use entity::entities::{companies, connections};
use entity::scope::find_owned;

use crate::graphql::context::{state, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::parse_id;
use crate::graphql::object::{Company, Connection};

#[derive(Default)]
pub struct CompanyQuery;

#[Object]
impl CompanyQuery {
    /// One company of the organization.
    async fn company(&self, ctx: &Context<'_>, id: ID) -> Result<Company> {
        let org = viewer(ctx)?.organization_id;
        let company_id = parse_id("id", &id)?;
        let row = find_owned::<companies::Entity>(&state(ctx)?.db, org, company_id)
            .await
            .gql()?;
        Ok(Company(row))
    }

    /// All companies of the organization, oldest first.
    async fn companies(&self, ctx: &Context<'_>) -> Result<Vec<Company>> {
        let org = viewer(ctx)?.organization_id;
        let rows = entity::company::list_companies(&state(ctx)?.db, org)
            .await
            .gql()?;
        Ok(rows.into_iter().map(Company).collect())
    }

    /// One connection of the organization.
    async fn connection(&self, ctx: &Context<'_>, id: ID) -> Result<Connection> {
        let org = viewer(ctx)?.organization_id;
        let connection_id = parse_id("id", &id)?;
        let row = find_owned::<connections::Entity>(&state(ctx)?.db, org, connection_id)
            .await
            .gql()?;
        Ok(Connection(row))
    }

    /// The connections of one company, oldest first.
    async fn connections(&self, ctx: &Context<'_>, company_id: ID) -> Result<Vec<Connection>> {
        let org = viewer(ctx)?.organization_id;
        let company_id = parse_id("companyId", &company_id)?;
        let db = &state(ctx)?.db;
        find_owned::<companies::Entity>(db, org, company_id)
            .await
            .gql()?;
        let rows = entity::finders::connections_of_company(db, org, company_id)
            .await
            .gql()?;
        Ok(rows.into_iter().map(Connection).collect())
    }
}
