//! The webhook endpoint inputs and the delivery log filter, and their conversion to the domain's.

use async_graphql::{InputObject, MaybeUndefined};
use entity::webhook::endpoint::EndpointInput;
use entity::webhook::log::DeliveryFilter;

use crate::graphql::enums::WebhookDeliveryStatus;

/// A new webhook endpoint.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// `https://…`; must not point to a private, link-local or loopback address.
    pub url: String,
    /// At least one of `webhookEventTypes`.
    pub event_types: Vec<String>,
    /// Up to 200 characters.
    pub description: Option<String>,
}

/// Changes to an endpoint; omitted fields keep their value, a null description clears it.
#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub description: MaybeUndefined<String>,
}

impl From<CreateWebhookEndpointInput> for EndpointInput {
    fn from(input: CreateWebhookEndpointInput) -> Self {
        Self {
            url: Some(input.url),
            event_types: Some(input.event_types),
            description: Some(input.description),
        }
    }
}

impl From<UpdateWebhookEndpointInput> for EndpointInput {
    fn from(input: UpdateWebhookEndpointInput) -> Self {
        Self {
            url: input.url,
            event_types: input.event_types,
            description: match input.description {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(v) => Some(Some(v)),
            },
        }
    }
}

/// Filters of `webhookDeliveries`; all given filters must match.
#[derive(InputObject, Default)]
pub struct WebhookDeliveryFilter {
    pub status: Option<WebhookDeliveryStatus>,
    /// e.g. `invitation.submitted`.
    pub event_type: Option<String>,
}

impl From<WebhookDeliveryFilter> for DeliveryFilter {
    fn from(filter: WebhookDeliveryFilter) -> Self {
        Self {
            status: filter.status.map(Into::into),
            event_type: filter.event_type,
        }
    }
}
