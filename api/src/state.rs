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
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
