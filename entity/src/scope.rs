//! Tenant scoping by construction: every finder takes the organization, and an object of another
//! organization is indistinguishable from one that does not exist.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, PoisonError, RwLock};

use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, IdenStatic, QueryFilter,
    QueryTrait, Select, Statement,
};
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
///
/// The most frequent read there is: its SQL text is built once per entity and database and
/// then reused, instead of assembling the column list and rendering the query on every call.
pub async fn find_owned<E: Owned>(
    db: &impl ConnectionTrait,
    org: Uuid,
    id: Uuid,
) -> Result<E::Model, DomainError> {
    let backend = db.get_database_backend();
    let statement = Statement::from_sql_and_values(
        backend,
        find_owned_sql::<E>(backend).as_ref(),
        [org.into(), id.into()],
    );
    E::find()
        .from_raw_sql(statement)
        .one(db)
        .await?
        .ok_or(DomainError::NotFound)
}

/// PostgreSQL only: `SELECT <columns> FROM <table> JOIN (VALUES ($1::uuid, $2::uuid), ($3, $4),
/// …) AS wanted (organization_id, id) ON id = wanted.id AND organization_id =
/// wanted.organization_id`, the objects of `pairs` (organization, id) pairs in one statement,
/// each pair scoped as [`find_owned`] scopes one: a row is returned only for the organization
/// that asked for it (one primary-key probe per pair).
///
/// Each pair is two parameters of its own, not two arrays: with arrays the statement's generic
/// plan cannot know their length, PostgreSQL estimates it far above a real batch's, and so plans
/// every execution afresh (a custom plan, costing more than running it). Joined as a `VALUES`
/// list, the generic plan is the custom one (the same estimates, parameters or not), so after
/// PostgreSQL's five trial custom plans on a connection the statement runs without planning. (An
/// `IN` list of pairs was tried too: from 64 pairs on, the custom plan folds the pairs of one
/// organization into one filter and PostgreSQL keeps planning afresh.) A batch is answered by the
/// statement of the next size up (see `api::db::lookups`).
pub fn find_owned_many_sql<E: Owned>(pairs: usize) -> Arc<str> {
    assert!(pairs > 0, "a lookup statement for no pairs");
    let table = E::default().table_name().to_owned();
    let organization = E::organization_column();
    let id = E::id_column();
    let values = (1..=pairs)
        .map(|i| format!("(${}::uuid, ${}::uuid)", 2 * i - 1, 2 * i))
        .collect::<Vec<_>>()
        .join(", ");
    let select = E::find().build(DatabaseBackend::Postgres).sql;
    format!(
        r#"{select} JOIN (VALUES {values}) AS "wanted" ("organization_id", "id") ON "{table}"."{id}" = "wanted"."id" AND "{table}"."{organization}" = "wanted"."organization_id""#,
        organization = organization.as_str(),
        id = id.as_str(),
    )
    .into()
}

/// Rendered SQL by entity type and whether it is for PostgreSQL.
type SqlByEntity = HashMap<(TypeId, bool), Arc<str>>;

/// `SELECT <columns> FROM <table> WHERE organization_id = $1 AND id = $2` for `E` (`?` for the
/// parameters on SQLite).
pub fn find_owned_sql<E: Owned>(backend: DatabaseBackend) -> Arc<str> {
    static SQL: LazyLock<RwLock<SqlByEntity>> = LazyLock::new(Default::default);
    let key = (TypeId::of::<E>(), backend == DatabaseBackend::Postgres);
    if let Some(sql) = SQL.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return sql.clone();
    }
    let sql: Arc<str> = E::find_in(Uuid::nil())
        .filter(E::id_column().eq(Uuid::nil()))
        .build(backend)
        .sql
        .into();
    SQL.write()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, sql.clone());
    sql
}
