//! Tenant scoping by construction: every finder takes the organization, and an object of another
//! organization is indistinguishable from one that does not exist.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select};
use uuid::Uuid;

use crate::DomainError;
use crate::entities::{
    companies, connections, invitations, sites, webhook_deliveries, webhook_endpoints,
};

/// An entity that belongs to one organization.
pub trait Owned: EntityTrait {
    fn id_column() -> Self::Column;
    fn organization_column() -> Self::Column;

    /// `SELECT … WHERE organization_id = $org`: the only way resolvers start a query.
    fn find_in(org: Uuid) -> Select<Self> {
        Self::find().filter(Self::organization_column().eq(org))
    }
}

macro_rules! owned {
    ($($module:ident),*) => {$(
        impl Owned for $module::Entity {
            fn id_column() -> Self::Column {
                $module::Column::Id
            }
            fn organization_column() -> Self::Column {
                $module::Column::OrganizationId
            }
        }
    )*};
}

owned!(
    companies,
    sites,
    connections,
    invitations,
    webhook_endpoints,
    webhook_deliveries
);

/// One object of the organization, or [`DomainError::NotFound`].
pub async fn find_owned<E: Owned>(
    db: &impl ConnectionTrait,
    org: Uuid,
    id: Uuid,
) -> Result<E::Model, DomainError> {
    E::find_in(org)
        .filter(E::id_column().eq(id))
        .one(db)
        .await?
        .ok_or(DomainError::NotFound)
}
