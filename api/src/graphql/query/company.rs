use async_graphql::{Context, ID, Object, Result};
use entity::entities::{companies, connections};
use entity::scope::find_owned;

use crate::graphql::context::{store, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::parse_id;
use crate::graphql::object::{Company, Connection};
use crate::graphql::paging::{list_complexity, page_size};

/// Default page of a top-level list.
const TOP_LIST_DEFAULT: i32 = 100;

#[derive(Default)]
pub struct CompanyQuery;

#[Object]
impl CompanyQuery {
    /// One company of the organization.
    async fn company(&self, ctx: &Context<'_>, id: ID) -> Result<Company> {
        let org = viewer(ctx)?.organization_id;
        let company_id = parse_id("id", &id)?;
        let row = store(ctx)?
            .reads
            .find_owned::<companies::Entity>(org, company_id)
            .await
            .gql()?;
        Ok(Company(row))
    }

    /// The companies of the organization, oldest first, a page at a time: `first` of them
    /// after the company `after` (the last `id` of the previous page).
    #[graphql(complexity = "list_complexity(first, TOP_LIST_DEFAULT, child_complexity)")]
    async fn companies(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The last company id of the previous page.")] after: Option<ID>,
    ) -> Result<Vec<Company>> {
        let org = viewer(ctx)?.organization_id;
        let first = page_size(first, TOP_LIST_DEFAULT)?;
        let after = after.map(|a| parse_id("after", &a)).transpose()?;
        let rows = entity::company::list_companies(&store(ctx)?.reads, org, after, first as u64)
            .await
            .gql()?;
        Ok(rows.into_iter().map(Company).collect())
    }

    /// One connection of the organization.
    async fn connection(&self, ctx: &Context<'_>, id: ID) -> Result<Connection> {
        let org = viewer(ctx)?.organization_id;
        let connection_id = parse_id("id", &id)?;
        let row = store(ctx)?
            .reads
            .find_owned::<connections::Entity>(org, connection_id)
            .await
            .gql()?;
        Ok(Connection(row))
    }

    /// The connections of one company, oldest first, a page at a time: `first` of them after
    /// the connection `after` (the last `id` of the previous page).
    #[graphql(complexity = "list_complexity(first, TOP_LIST_DEFAULT, child_complexity)")]
    async fn connections(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        #[graphql(desc = "Page size, 1 to 100 (default 100).")] first: Option<i32>,
        #[graphql(desc = "The last connection id of the previous page.")] after: Option<ID>,
    ) -> Result<Vec<Connection>> {
        let org = viewer(ctx)?.organization_id;
        let company_id = parse_id("companyId", &company_id)?;
        let first = page_size(first, TOP_LIST_DEFAULT)?;
        let after = after.map(|a| parse_id("after", &a)).transpose()?;
        let db = &store(ctx)?.reads;
        find_owned::<companies::Entity>(db, org, company_id)
            .await
            .gql()?;
        let rows =
            entity::finders::connections_of_company(db, org, company_id, after, first as u64)
                .await
                .gql()?;
        Ok(rows.into_iter().map(Connection).collect())
    }
}
