//! The data every execution on a WebSocket connection carries (its own executions and the live
//! groups it joins alike).

use async_graphql::Data;

use super::loader::{Loaders, RequestLoader};
use super::public::ClientAddr;
use crate::auth::Viewer;
use crate::state::AppState;

/// What every execution on a connection sees: the caller, its address, and a loader (per
/// execution, as per request over HTTP; subscriptions resolve few fields).
pub fn connection_data(state: &AppState, viewer: &Viewer, client: ClientAddr) -> Data {
    let mut data = Data::default();
    data.insert(RequestLoader::with_cache(
        Loaders {
            db: state.store.reads.clone(),
            organization_id: viewer.organization_id,
        },
        tokio::spawn,
        async_graphql::dataloader::HashMapCache::default(),
    ));
    data.insert(Some(viewer.clone()));
    data.insert(client);
    data
}
