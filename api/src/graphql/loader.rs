//! DataLoaders: nested fields of a list cost one query per field, not one per row.
//! A loader lives for one request; it reads through the tenant-scoped finders of
//! `entity::finders`, with the viewer's organization.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::entities::{companies, connections, email_deliveries, invitation_events, sites};
use entity::finders;
use entity::invitation::EventWindow;
use uuid::Uuid;

pub struct Loaders {
    pub db: crate::db::Reads,
    pub organization_id: Uuid,
}

pub type LoadError = Arc<sea_orm::DbErr>;

/// The loader of one request, with a cache that lives as long as the request.
pub type RequestLoader =
    async_graphql::dataloader::DataLoader<Loaders, async_graphql::dataloader::HashMapCache>;

/// Key: a company id.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CompanyById(pub Uuid);

/// Key: an invitation and a window of its log → that page of events, oldest first, with one
/// event more than the window asks for when another page follows.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventsPage(pub Uuid, pub EventWindow);

/// Key: an invitation id and how many → the first connections created through it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionsCreatedBy(pub Uuid, pub u64);

/// Key: an invitation id and how many → its first email deliveries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveriesOf(pub Uuid, pub u64);

/// Key: an invitation id → when its last event happened.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct LastActivityOf(pub Uuid);

/// Key: a connection id → ids of its sites.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SitesOfConnection(pub Uuid);

/// Key: a company id and how many → its first sites.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SitesOfCompany(pub Uuid, pub u64);

fn group<K: Eq + std::hash::Hash, V>(rows: Vec<V>, key: impl Fn(&V) -> K) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = HashMap::new();
    for row in rows {
        map.entry(key(&row)).or_default().push(row);
    }
    map
}

impl Loader<CompanyById> for Loaders {
    type Value = companies::Model;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[CompanyById],
    ) -> Result<HashMap<CompanyById, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = finders::companies(&self.db, self.organization_id, &ids).await?;
        Ok(rows.into_iter().map(|r| (CompanyById(r.id), r)).collect())
    }
}

impl Loader<EventsPage> for Loaders {
    type Value = Vec<invitation_events::Model>;
    type Error = LoadError;

    /// One statement per distinct window (a page asks for one), however many invitations.
    async fn load(
        &self,
        keys: &[EventsPage],
    ) -> Result<HashMap<EventsPage, Self::Value>, Self::Error> {
        let mut out = HashMap::with_capacity(keys.len());
        for (window, ids) in group(keys.to_vec(), |k| k.1) {
            let ids: Vec<Uuid> = ids.into_iter().map(|k| k.0).collect();
            let pages =
                entity::invitation::event_pages(&self.db, self.organization_id, &ids, window)
                    .await?;
            out.extend(
                pages
                    .into_iter()
                    .map(|(id, page)| (EventsPage(id, window), page)),
            );
        }
        Ok(out)
    }
}

impl Loader<ConnectionsCreatedBy> for Loaders {
    type Value = Vec<connections::Model>;
    type Error = LoadError;

    /// One statement per distinct size, however many invitations.
    async fn load(
        &self,
        keys: &[ConnectionsCreatedBy],
    ) -> Result<HashMap<ConnectionsCreatedBy, Self::Value>, Self::Error> {
        let mut out = HashMap::with_capacity(keys.len());
        for (first, keys) in group(keys.to_vec(), |k| k.1) {
            let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
            let rows: Vec<connections::Model> = finders::CREATED_CONNECTIONS
                .first(&self.db, self.organization_id, &ids, first)
                .await?;
            out.extend(group(rows, |r| {
                ConnectionsCreatedBy(r.created_by_invitation_id.unwrap_or_default(), first)
            }));
        }
        Ok(out)
    }
}

impl Loader<DeliveriesOf> for Loaders {
    type Value = Vec<email_deliveries::Model>;
    type Error = LoadError;

    /// One statement per distinct size, however many invitations.
    async fn load(
        &self,
        keys: &[DeliveriesOf],
    ) -> Result<HashMap<DeliveriesOf, Self::Value>, Self::Error> {
        let mut out = HashMap::with_capacity(keys.len());
        for (first, keys) in group(keys.to_vec(), |k| k.1) {
            let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
            let rows: Vec<email_deliveries::Model> = finders::DELIVERIES
                .first(&self.db, self.organization_id, &ids, first)
                .await?;
            out.extend(group(rows, |r| DeliveriesOf(r.invitation_id, first)));
        }
        Ok(out)
    }
}

impl Loader<LastActivityOf> for Loaders {
    type Value = chrono::DateTime<chrono::Utc>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[LastActivityOf],
    ) -> Result<HashMap<LastActivityOf, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = finders::last_activity(&self.db, self.organization_id, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|(id, at)| (LastActivityOf(id), at))
            .collect())
    }
}

impl Loader<SitesOfConnection> for Loaders {
    type Value = Vec<Uuid>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[SitesOfConnection],
    ) -> Result<HashMap<SitesOfConnection, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = finders::sites_of_connections(&self.db, self.organization_id, &ids).await?;
        let grouped = group(rows, |(connection, _)| SitesOfConnection(*connection));
        Ok(grouped
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().map(|(_, site)| site).collect()))
            .collect())
    }
}

impl Loader<SitesOfCompany> for Loaders {
    type Value = Vec<sites::Model>;
    type Error = LoadError;

    /// One statement per distinct size, however many companies.
    async fn load(
        &self,
        keys: &[SitesOfCompany],
    ) -> Result<HashMap<SitesOfCompany, Self::Value>, Self::Error> {
        let mut out = HashMap::with_capacity(keys.len());
        for (first, keys) in group(keys.to_vec(), |k| k.1) {
            let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
            let rows: Vec<sites::Model> = finders::SITES
                .first(&self.db, self.organization_id, &ids, first)
                .await?;
            out.extend(group(rows, |r| SitesOfCompany(r.company_id, first)));
        }
        Ok(out)
    }
}
