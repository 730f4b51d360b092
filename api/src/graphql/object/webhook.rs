use async_graphql::{ID, Json, Object, SimpleObject};
use chrono::{DateTime, Utc};
use entity::entities::{webhook_attempts, webhook_deliveries, webhook_endpoints};

use crate::graphql::enums::{
    WebhookAttemptOutcome, WebhookDeliveryStatus, WebhookDisabledReason, WebhookEndpointStatus,
};
use crate::graphql::ids::id;

/// A URL that receives signed event deliveries.
pub struct WebhookEndpoint(pub webhook_endpoints::Model);

#[Object]
impl WebhookEndpoint {
    async fn id(&self) -> ID {
        id(self.0.id)
    }
    async fn url(&self) -> &str {
        &self.0.url
    }
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }
    /// The event types delivered to this endpoint.
    async fn event_types(&self) -> &[String] {
        &self.0.event_types.0
    }
    async fn status(&self) -> WebhookEndpointStatus {
        self.0.status.into()
    }
    async fn disabled_reason(&self) -> Option<WebhookDisabledReason> {
        self.0.disabled_reason.map(Into::into)
    }
    async fn disabled_at(&self) -> Option<DateTime<Utc>> {
        self.0.disabled_at
    }
    /// Start of the current run of failed attempts; null after a success.
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since
    }
    /// Until when the secret replaced by the last rotation still signs deliveries (each
    /// delivery then carries both signatures).
    async fn previous_secret_expires_at(&self) -> Option<DateTime<Utc>> {
        self.0
            .previous_secret_expires_at
            .filter(|until| *until > entity::now())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// An endpoint with its signing secret, which is shown only here.
#[derive(SimpleObject)]
pub struct WebhookEndpointWithSecret {
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: verify deliveries with it (Standard Webhooks). Store it now; it is never
    /// shown again.
    pub secret: String,
}

/// One event sent (or to be sent) to one endpoint.
pub struct WebhookDelivery {
    pub row: webhook_deliveries::Model,
    pub attempts: Vec<webhook_attempts::Model>,
}

#[Object]
impl WebhookDelivery {
    async fn id(&self) -> ID {
        id(self.row.id)
    }
    async fn endpoint_id(&self) -> ID {
        id(self.row.endpoint_id)
    }
    /// The `webhook-id` header: the same on every attempt and on replays, for deduplication.
    async fn message_id(&self) -> &str {
        &self.row.message_id
    }
    async fn event_type(&self) -> &str {
        &self.row.event_type
    }
    /// The body exactly as sent.
    async fn payload(&self) -> Json<serde_json::Value> {
        Json(serde_json::from_str(&self.row.body).unwrap_or(serde_json::Value::Null))
    }
    async fn status(&self) -> WebhookDeliveryStatus {
        self.row.status.into()
    }
    async fn attempt_count(&self) -> i32 {
        self.row.attempts
    }
    /// Every attempt, oldest first.
    async fn attempts(&self) -> Vec<WebhookAttempt<'_>> {
        self.attempts.iter().map(WebhookAttempt).collect()
    }
    /// When a PENDING delivery is tried next.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        (self.row.status == entity::WebhookDeliveryStatus::Pending)
            .then_some(self.row.next_attempt_at)
    }
    async fn last_error(&self) -> Option<&str> {
        self.row.last_error.as_deref()
    }
    /// The delivery this one replays.
    async fn replay_of(&self) -> Option<ID> {
        self.row.replay_of.map(id)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// When it SUCCEEDED or FAILED.
    async fn finished_at(&self) -> Option<DateTime<Utc>> {
        self.row.finished_at
    }
}

/// One HTTP attempt of a delivery.
pub struct WebhookAttempt<'a>(&'a webhook_attempts::Model);

#[Object]
impl WebhookAttempt<'_> {
    async fn attempted_at(&self) -> DateTime<Utc> {
        self.0.attempted_at
    }
    async fn duration_ms(&self) -> i32 {
        self.0.duration_ms
    }
    async fn outcome(&self) -> WebhookAttemptOutcome {
        self.0.outcome.into()
    }
    /// The status the endpoint answered, if it answered.
    async fn http_status(&self) -> Option<i32> {
        self.0.http_status
    }
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The first kilobyte of the response body.
    async fn response_excerpt(&self) -> Option<&str> {
        self.0.response_excerpt.as_deref()
    }
}
