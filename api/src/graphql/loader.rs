//! DataLoaders: nested fields of a list cost one query per field, not one per row.
//! A loader lives for one request; every query it runs is scoped to the viewer's organization.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::dataloader::Loader;
use entity::entities::{
    companies, connection_sites, connections, email_deliveries, invitation_events, sites,
};
use entity::invitation::EventWindow;
use entity::scope::Owned;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

pub struct Loaders {
    pub db: DatabaseConnection,
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

/// Key: an invitation id → connections created through it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionsCreatedBy(pub Uuid);

/// Key: an invitation id → its email deliveries.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeliveriesOf(pub Uuid);

/// Key: a connection id → ids of its sites.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SitesOfConnection(pub Uuid);

/// Key: a company id → its sites.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SitesOfCompany(pub Uuid);

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
        let rows = companies::Entity::find_in(self.organization_id)
            .filter(companies::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db)
            .await?;
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

    async fn load(
        &self,
        keys: &[ConnectionsCreatedBy],
    ) -> Result<HashMap<ConnectionsCreatedBy, Self::Value>, Self::Error> {
        let rows = connections::Entity::find_in(self.organization_id)
            .filter(connections::Column::CreatedByInvitationId.is_in(keys.iter().map(|k| k.0)))
            .order_by_asc(connections::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(group(rows, |r| {
            ConnectionsCreatedBy(r.created_by_invitation_id.unwrap_or_default())
        }))
    }
}

impl Loader<DeliveriesOf> for Loaders {
    type Value = Vec<email_deliveries::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[DeliveriesOf],
    ) -> Result<HashMap<DeliveriesOf, Self::Value>, Self::Error> {
        let rows = email_deliveries::Entity::find()
            .filter(email_deliveries::Column::OrganizationId.eq(self.organization_id))
            .filter(email_deliveries::Column::InvitationId.is_in(keys.iter().map(|k| k.0)))
            .order_by_asc(email_deliveries::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(group(rows, |r| DeliveriesOf(r.invitation_id)))
    }
}

impl Loader<SitesOfConnection> for Loaders {
    type Value = Vec<Uuid>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[SitesOfConnection],
    ) -> Result<HashMap<SitesOfConnection, Self::Value>, Self::Error> {
        // Connections were already scoped when they were loaded; the join rows carry no tenant.
        let rows = connection_sites::Entity::find()
            .filter(connection_sites::Column::ConnectionId.is_in(keys.iter().map(|k| k.0)))
            .all(&self.db)
            .await?;
        let grouped = group(rows, |r| SitesOfConnection(r.connection_id));
        Ok(grouped
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().map(|r| r.site_id).collect()))
            .collect())
    }
}

impl Loader<SitesOfCompany> for Loaders {
    type Value = Vec<sites::Model>;
    type Error = LoadError;

    async fn load(
        &self,
        keys: &[SitesOfCompany],
    ) -> Result<HashMap<SitesOfCompany, Self::Value>, Self::Error> {
        let rows = sites::Entity::find_in(self.organization_id)
            .filter(sites::Column::CompanyId.is_in(keys.iter().map(|k| k.0)))
            .order_by_asc(sites::Column::CreatedAt)
            .all(&self.db)
            .await?;
        Ok(group(rows, |r| SitesOfCompany(r.company_id)))
    }
}
