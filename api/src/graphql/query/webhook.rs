use std::collections::HashMap;

use async_graphql::connection::{Connection as Page, Edge, EmptyFields};
use async_graphql::{Context, ID, Object, Result};
use entity::entities::webhook_endpoints;
use entity::webhook::log::{DeliveryFilter, attempts_of};

use crate::graphql::context::{store, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::parse_id;
use crate::graphql::inputs::WebhookDeliveryFilter;
use crate::graphql::object::{WebhookDelivery, WebhookEndpoint};
use crate::graphql::paging::page_size;

#[derive(Default)]
pub struct WebhookQuery;

pub type WebhookEndpointPage = Page<String, WebhookEndpoint, EmptyFields, EmptyFields>;
pub type WebhookDeliveryPage = Page<String, WebhookDelivery, EmptyFields, EmptyFields>;

/// `after` cursors are the id of the last item seen.
fn parse_after(after: Option<&str>) -> Result<Option<uuid::Uuid>> {
    after
        .map(|a| parse_id("after", &ID(a.to_owned())))
        .transpose()
}

#[Object]
impl WebhookQuery {
    /// Every event type an endpoint can subscribe to.
    async fn webhook_event_types(&self, ctx: &Context<'_>) -> Result<Vec<String>> {
        viewer(ctx)?;
        Ok(entity::webhook::events::event_types())
    }

    /// One webhook endpoint of the organization.
    async fn webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookEndpoint> {
        let org = viewer(ctx)?.organization_id;
        let id = parse_id("id", &id)?;
        let row = store(ctx)?
            .reads
            .find_owned::<webhook_endpoints::Entity>(org, id)
            .await
            .gql()?;
        Ok(WebhookEndpoint(row))
    }

    /// The organization's webhook endpoints in creation order.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity + 1")]
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<WebhookEndpointPage> {
        let org = viewer(ctx)?.organization_id;
        let first = page_size(first, 20)?;
        let after = parse_after(after.as_deref())?;
        let mut rows =
            entity::webhook::endpoint::list(&store(ctx)?.reads, org, after, first as u64 + 1)
                .await
                .gql()?;
        let has_next = rows.len() > first;
        rows.truncate(first);
        let mut page = Page::new(after.is_some(), has_next);
        page.edges.extend(
            rows.into_iter()
                .map(|row| Edge::new(row.id.to_string(), WebhookEndpoint(row))),
        );
        Ok(page)
    }

    /// The deliveries of one endpoint, newest first, each with all its attempts.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity + 1")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        endpoint_id: ID,
        filter: Option<WebhookDeliveryFilter>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<WebhookDeliveryPage> {
        let org = viewer(ctx)?.organization_id;
        let endpoint_id = parse_id("endpointId", &endpoint_id)?;
        let first = page_size(first, 20)?;
        let after = parse_after(after.as_deref())?;
        let filter = DeliveryFilter::from(filter.unwrap_or_default());
        let db = &store(ctx)?.reads;
        let mut rows =
            entity::webhook::log::list(db, org, endpoint_id, &filter, after, first as u64 + 1)
                .await
                .gql()?;
        let has_next = rows.len() > first;
        rows.truncate(first);
        // One query for the attempts of the whole page.
        let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
        let mut attempts: HashMap<_, Vec<_>> = HashMap::new();
        for attempt in attempts_of(db, &ids).await.gql()? {
            attempts
                .entry(attempt.delivery_id)
                .or_default()
                .push(attempt);
        }
        let mut page = Page::new(after.is_some(), has_next);
        page.edges.extend(rows.into_iter().map(|row| {
            let mine = attempts.remove(&row.id).unwrap_or_default();
            Edge::new(
                row.id.to_string(),
                WebhookDelivery {
                    row,
                    attempts: mine,
                },
            )
        }));
        Ok(page)
    }
}
