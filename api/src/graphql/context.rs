//! Access to the schema's data (the parts of the application state resolvers may use) and to
//! what the transport put into each request.

use std::sync::Arc;

use async_graphql::{Context, Result};

use super::error::{internal, unauthenticated};
use super::loader::{Loaders, RequestLoader};
use crate::auth::Viewer;
use crate::config::Settings;
use crate::state::{Guards, Store};

/// The database, its read path and the unit of work.
pub fn store<'a>(ctx: &'a Context<'_>) -> Result<&'a Store> {
    part::<Store>(ctx)
}

/// The rate limiter (and the key cache), for the rate-limit guard.
pub fn guards<'a>(ctx: &'a Context<'_>) -> Result<&'a Guards> {
    part::<Guards>(ctx)
}

pub fn settings<'a>(ctx: &'a Context<'_>) -> Result<&'a Settings> {
    part::<Settings>(ctx)
}

fn part<'a, T: Send + Sync + 'static>(ctx: &'a Context<'_>) -> Result<&'a T> {
    ctx.data::<Arc<T>>()
        .map(AsRef::as_ref)
        .map_err(|e| internal(&e.message))
}

/// The authenticated caller, or `UNAUTHENTICATED`.
pub fn viewer<'a>(ctx: &'a Context<'_>) -> Result<&'a Viewer> {
    ctx.data_opt::<Option<Viewer>>()
        .and_then(Option::as_ref)
        .ok_or_else(unauthenticated)
}

/// Who a management operation is recorded as: the API key, by name.
pub fn actor(ctx: &Context<'_>) -> Result<entity::activity::Actor> {
    Ok(viewer(ctx)?.actor())
}

/// The request's loaders; present only for authenticated requests.
pub fn loader<'a>(ctx: &'a Context<'_>) -> Result<&'a RequestLoader> {
    viewer(ctx)?;
    ctx.data::<RequestLoader>()
        .map_err(|e| internal(&e.message))
}

/// Loads one key through the request's loader, mapping a database error to an opaque one.
pub async fn load<K>(
    ctx: &Context<'_>,
    key: K,
) -> Result<Option<<Loaders as async_graphql::dataloader::Loader<K>>::Value>>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    Loaders: async_graphql::dataloader::Loader<K, Error = super::loader::LoadError>,
{
    loader(ctx)?.load_one(key).await.map_err(|e| internal(&e))
}

/// Loads `keys` in one batch and feeds the results to the request's loader, so that the fields
/// of every item of a page hit the cache instead of racing the batching window. Missing keys
/// are cached as empty.
pub async fn prime<K>(ctx: &Context<'_>, keys: Vec<K>) -> Result<()>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    Loaders: async_graphql::dataloader::Loader<K, Error = super::loader::LoadError>,
    <Loaders as async_graphql::dataloader::Loader<K>>::Value: Default,
{
    use async_graphql::dataloader::Loader;
    let loader = loader(ctx)?;
    let mut found = loader
        .loader()
        .load(&keys)
        .await
        .map_err(|e| internal(&e))?;
    let all = keys.into_iter().map(|k| {
        let v = found.remove(&k).unwrap_or_default();
        (k, v)
    });
    loader.feed_many(all).await;
    Ok(())
}
