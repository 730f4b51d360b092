//! What every request handler and resolver shares.

use std::sync::Arc;

use entity::crypto::Keyring;
use sea_orm::DatabaseConnection;

use crate::config::Settings;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: DatabaseConnection,
    pub keys: Keyring,
    pub settings: Settings,
    pub redis: Option<redis::aio::ConnectionManager>,
    pub key_cache: crate::auth::KeyCache,
    pub queues: jobs::queue::Queues,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub limiter: crate::ratelimit::RateLimiter,
    pub mailer: jobs::mailer::Mailer,
    pub events: crate::events::EventBus,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Inner {
    /// What follows a committed write: publish its events and push a job for each new outbox row. A failed push is
    /// only logged: the rows are in the database and the sweeper enqueues them again.
    pub async fn after_commit(
        &self,
        events: &[entity::entities::invitation_events::Model],
        deliveries: &[entity::entities::email_deliveries::Model],
    ) {
        self.events.publish(events);
        for delivery in deliveries {
            if let Err(e) = self.queues.enqueue_email(delivery.id).await {
                tracing::warn!(delivery = %delivery.id, error = %e, "enqueue failed; the sweeper will retry");
            }
        }
    }

    /// `{PUBLIC_BASE_URL}/p/connect/{publicCompanyId}[/workflow]/{secret}`.
    pub fn magic_link_url(&self, public_company_id: &str, secret: &str, edit: bool) -> String {
        let base = self.settings.public_base_url.as_str().trim_end_matches('/');
        let workflow = if edit { "/workflow" } else { "" };
        format!("{base}/p/connect/{public_company_id}{workflow}/{secret}")
    }

    /// `{PUBLIC_BASE_URL}/p/i/{token}`.
    pub fn invitation_url(&self, token: &str) -> String {
        let base = self.settings.public_base_url.as_str().trim_end_matches('/');
        format!("{base}/p/i/{token}")
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
