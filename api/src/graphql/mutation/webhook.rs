use async_graphql::{Context, ID, Object, Result, SimpleObject};
use entity::webhook::endpoint::{self, EndpointInput};

use crate::graphql::context::{settings, store, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::parse_id;
use crate::graphql::inputs::{CreateWebhookEndpointInput, UpdateWebhookEndpointInput};
use crate::graphql::object::{WebhookDelivery, WebhookEndpoint, WebhookEndpointWithSecret};

#[derive(Default)]
pub struct WebhookMutation;

/// The id of what was deleted.
#[derive(SimpleObject)]
pub struct DeletedWebhookEndpoint {
    pub id: ID,
}

#[Object]
impl WebhookMutation {
    /// Registers an endpoint; the answer carries its signing secret, shown only this once.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<WebhookEndpointWithSecret> {
        let org = viewer(ctx)?.organization_id;
        let store = store(ctx)?;
        let input = EndpointInput::from(input);
        let (row, secret) = endpoint::create(
            &store.db,
            &store.keys,
            settings(ctx)?.webhooks.targets(),
            org,
            input,
        )
        .await
        .gql()?;
        Ok(WebhookEndpointWithSecret {
            endpoint: WebhookEndpoint(row),
            secret,
        })
    }

    /// Changes an endpoint's URL, event types or description.
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: UpdateWebhookEndpointInput,
    ) -> Result<WebhookEndpoint> {
        let org = viewer(ctx)?.organization_id;
        let id = parse_id("id", &id)?;
        let input = EndpointInput::from(input);
        let targets = settings(ctx)?.webhooks.targets();
        let row = endpoint::update(&store(ctx)?.db, targets, org, id, input)
            .await
            .gql()?;
        Ok(WebhookEndpoint(row))
    }

    /// Stops deliveries to an endpoint. Pending deliveries fail when their turn comes.
    async fn disable_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookEndpoint> {
        set_enabled(ctx, &id, false).await
    }

    /// Resumes deliveries (and forgets past failures). Events that happened while the endpoint
    /// was disabled were not recorded for it; replay failed deliveries to send them.
    async fn enable_webhook_endpoint(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookEndpoint> {
        set_enabled(ctx, &id, true).await
    }

    /// A new signing secret, shown only in this answer. For 24 hours every delivery is signed
    /// with both the new and the old secret, so receivers can switch without failing any.
    async fn rotate_webhook_endpoint_secret(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<WebhookEndpointWithSecret> {
        let org = viewer(ctx)?.organization_id;
        let id = parse_id("id", &id)?;
        let store = store(ctx)?;
        let (row, secret) = endpoint::rotate_secret(&store.db, &store.keys, org, id)
            .await
            .gql()?;
        Ok(WebhookEndpointWithSecret {
            endpoint: WebhookEndpoint(row),
            secret,
        })
    }

    /// Deletes an endpoint and its delivery log.
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<DeletedWebhookEndpoint> {
        let org = viewer(ctx)?.organization_id;
        let endpoint_id = parse_id("id", &id)?;
        endpoint::delete(&store(ctx)?.db, org, endpoint_id)
            .await
            .gql()?;
        Ok(DeletedWebhookEndpoint { id })
    }

    /// Sends a delivery's message again, as a new delivery with the same `webhook-id` and body.
    /// The endpoint must be enabled.
    async fn replay_webhook_delivery(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookDelivery> {
        let org = viewer(ctx)?.organization_id;
        let id = parse_id("id", &id)?;
        let command = entity::outbox::webhook::Replay {
            organization_id: org,
            id,
        };
        let row = store(ctx)?.run(&command).await.gql()?;
        Ok(WebhookDelivery {
            row,
            attempts: Vec::new(),
        })
    }
}

async fn set_enabled(ctx: &Context<'_>, id: &ID, enabled: bool) -> Result<WebhookEndpoint> {
    let org = viewer(ctx)?.organization_id;
    let id = parse_id("id", id)?;
    let row = endpoint::set_enabled(&store(ctx)?.db, org, id, enabled)
        .await
        .gql()?;
    Ok(WebhookEndpoint(row))
}
