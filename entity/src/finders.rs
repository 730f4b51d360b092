//! Tenant-scoped batch finders: what the API's DataLoaders and live replay read. Every query
//! takes the organization and returns nothing of another one, whatever ids it is given.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement, SubQueryStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement, Value,
};
use uuid::Uuid;

use crate::entities::{companies, connection_sites, connections, invitation_events, sites};
use crate::scope::Owned;

/// `query` (which has no limit of its own) built for `backend`, with `LIMIT limit` written into
/// its text instead of bound. PostgreSQL plans a prepared statement afresh on each of its first
/// five executions, then keeps its generic plan only if that costs no more than those did; a
/// bound limit leaves the generic plan guessing a tenth of the matching rows, so it always
/// costs more and the page was planned again at every execution (planning took longer than
/// running it). With the limit in the text, the generic plan is the custom one. Each limit is a
/// statement text of its own in a connection's statement cache: the API's pages take 1 to 101
/// rows, the live replay a fixed number.
pub fn with_limit(backend: DatabaseBackend, query: &SelectStatement, limit: u64) -> Statement {
    use std::fmt::Write;
    let mut statement = backend.build(query);
    // Writing into a `String` cannot fail.
    let _ = write!(statement.sql, " LIMIT {limit}");
    statement
}

/// The rows of `query` (which has no limit of its own), at most `limit`, the limit written into
/// the statement's text (see [`with_limit`]): how the API's paged lists read.
pub async fn all_with_limit<E: EntityTrait>(
    db: &impl ConnectionTrait,
    query: Select<E>,
    limit: u64,
) -> Result<Vec<E::Model>, DbErr> {
    let statement = with_limit(db.get_database_backend(), &query.into_query(), limit);
    db.query_all_raw(statement)
        .await?
        .iter()
        .map(|row| E::Model::from_query_result(row, ""))
        .collect()
}

pub async fn companies(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<companies::Model>, DbErr> {
    companies::Entity::find_in(organization_id)
        .filter(companies::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await
}

/// Rows created after the row `after` of the same organization, in (`created_at`, `id`)
/// order. An `after` that is not one of the organization's rows matches nothing.
pub fn created_after<E: EntityTrait>(
    organization_id: Uuid,
    after: Uuid,
    organization: E::Column,
    created: E::Column,
    id: E::Column,
) -> Condition {
    let of_after = Query::select()
        .column(created)
        .from(E::default())
        .and_where(id.eq(after))
        .and_where(organization.eq(organization_id))
        .to_owned();
    let sub = || {
        Expr::SubQuery(
            None,
            Box::new(SubQueryStatement::SelectStatement(of_after.clone())),
        )
    };
    Condition::any()
        .add(Expr::col((E::default(), created)).gt(sub()))
        .add(
            Condition::all()
                .add(Expr::col((E::default(), created)).eq(sub()))
                .add(id.gt(after)),
        )
}

/// A page of the connections of one company, oldest first: at most `limit`, after the
/// connection `after`.
pub async fn connections_of_company(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    company_id: Uuid,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<connections::Model>, DbErr> {
    let mut query = connections::Entity::find_in(organization_id)
        .filter(connections::Column::CompanyId.eq(company_id));
    if let Some(after) = after {
        query = query.filter(created_after::<connections::Entity>(
            organization_id,
            after,
            connections::Column::OrganizationId,
            connections::Column::CreatedAt,
            connections::Column::Id,
        ));
    }
    all_with_limit(
        db,
        query
            .order_by_asc(connections::Column::CreatedAt)
            .order_by_asc(connections::Column::Id),
        limit,
    )
    .await
}

/// When each of these invitations last had an event (the newest `occurred_at` of its log), for
/// the console's "last activity" column. One grouped statement for a page of invitations; it
/// reads each log through the per-invitation index, and logs are short.
pub async fn last_activity(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    invitation_ids: &[Uuid],
) -> Result<Vec<(Uuid, DateTime<Utc>)>, DbErr> {
    invitation_events::Entity::find()
        .select_only()
        .column(invitation_events::Column::InvitationId)
        .column_as(invitation_events::Column::OccurredAt.max(), "last")
        .filter(invitation_events::Column::OrganizationId.eq(organization_id))
        .filter(invitation_events::Column::InvitationId.is_in(invitation_ids.iter().copied()))
        .group_by(invitation_events::Column::InvitationId)
        .into_tuple()
        .all(db)
        .await
}

/// Oldest first, ties by id.
const BY_CREATION: &[&str] = &["created_at", "id"];

/// Connections created through an invitation.
pub const CREATED_CONNECTIONS: Children = Children {
    table: "connections",
    parent: "created_by_invitation_id",
    order: BY_CREATION,
};

/// An invitation's email deliveries.
pub const DELIVERIES: Children = Children {
    table: "email_deliveries",
    parent: "invitation_id",
    order: BY_CREATION,
};

/// A company's sites.
pub const SITES: Children = Children {
    table: "sites",
    parent: "company_id",
    order: BY_CREATION,
};

/// Rows of a table that belong to parent rows (an invitation's deliveries or log, a company's
/// sites) and carry the organization.
#[derive(Debug, Clone, Copy)]
pub struct Children {
    pub table: &'static str,
    /// The column naming the parent.
    pub parent: &'static str,
    /// The order within a parent, oldest first; its last column is unique.
    pub order: &'static [&'static str],
}

impl Children {
    /// The statement behind [`Children::first`]: for each parent at most `limit` rows in
    /// `order` (only those whose integer `id` is above `after`, when given), each parent's
    /// rows stopped at the limit, so a parent with many rows is not read whole (PostgreSQL:
    /// `LATERAL … LIMIT`; SQLite, which has no `LATERAL`: a correlated `IN (… LIMIT)`).
    /// Public so tests can `EXPLAIN` it.
    pub fn first_statement(
        self,
        backend: DatabaseBackend,
        organization_id: Uuid,
        parents: &[Uuid],
        limit: u64,
        after: Option<i64>,
    ) -> Statement {
        let Self {
            table,
            parent,
            order,
        } = self;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut values: Vec<Value> = Vec::with_capacity(parents.len() + 3);
        values.extend(parents.iter().map(|id| Value::from(*id)));
        values.push(organization_id.into());
        values.extend(after.map(Value::from));
        values.push(limit.into());
        let n = parents.len();
        let prefixed = |alias: &str| {
            order
                .iter()
                .map(|c| format!("{alias}{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (inner, outer) = (prefixed("x."), prefixed("r."));
        let sql = match backend {
            DatabaseBackend::Postgres => {
                let keys: Vec<String> = (1..=n).map(|i| format!("(${i}::uuid)")).collect();
                let after = if after.is_some() {
                    format!("AND x.id > ${} ", n + 2)
                } else {
                    String::new()
                };
                let limit = n + 2 + usize::from(!after.is_empty());
                format!(
                    "SELECT r.* FROM (VALUES {}) AS k(id) CROSS JOIN LATERAL (\
                     SELECT * FROM {table} AS x \
                     WHERE x.{parent} = k.id AND x.organization_id = ${} {after}\
                     ORDER BY {inner} LIMIT ${limit}) AS r ORDER BY {outer}",
                    keys.join(", "),
                    n + 1,
                )
            }
            _ => {
                let keys = vec!["(?)"; n].join(", ");
                let after = if after.is_some() { "AND x.id > ? " } else { "" };
                format!(
                    "WITH k(id) AS (VALUES {keys}) \
                     SELECT r.* FROM k JOIN {table} AS r ON r.id IN (\
                     SELECT x.id FROM {table} AS x \
                     WHERE x.{parent} = k.id AND x.organization_id = ? {after}\
                     ORDER BY {inner} LIMIT ?) ORDER BY {outer}"
                )
            }
        };
        Statement::from_sql_and_values(backend, sql, values)
    }

    /// At most `limit` rows of each parent of the organization (ids of other organizations
    /// give none), oldest first within each parent.
    pub async fn first<M: FromQueryResult>(
        self,
        db: &impl ConnectionTrait,
        organization_id: Uuid,
        parents: &[Uuid],
        limit: u64,
    ) -> Result<Vec<M>, DbErr> {
        if parents.is_empty() {
            return Ok(Vec::new());
        }
        let backend = db.get_database_backend();
        let statement = self.first_statement(backend, organization_id, parents, limit, None);
        db.query_all_raw(statement)
            .await?
            .iter()
            .map(|row| M::from_query_result(row, ""))
            .collect()
    }
}

/// The first `limit` sites of one company, oldest first (the recipient's site picker).
pub async fn sites_of_company(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    company_id: Uuid,
    limit: u64,
) -> Result<Vec<sites::Model>, DbErr> {
    all_with_limit(
        db,
        sites::Entity::find_in(organization_id)
            .filter(sites::Column::CompanyId.eq(company_id))
            .order_by_asc(sites::Column::CreatedAt),
        limit,
    )
    .await
}

/// `(connection, site)` pairs of these connections. The join rows carry no tenant, so the
/// connections are checked against the organization in the same statement.
pub async fn sites_of_connections(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    connection_ids: &[Uuid],
) -> Result<Vec<(Uuid, Uuid)>, DbErr> {
    let owned = Query::select()
        .column(connections::Column::Id)
        .from(connections::Entity)
        .and_where(connections::Column::OrganizationId.eq(organization_id))
        .and_where(connections::Column::Id.is_in(connection_ids.iter().copied()))
        .to_owned();
    connection_sites::Entity::find()
        .select_only()
        .column(connection_sites::Column::ConnectionId)
        .column(connection_sites::Column::SiteId)
        .filter(connection_sites::Column::ConnectionId.in_subquery(owned))
        .into_tuple()
        .all(db)
        .await
}

/// Where a replay of a company's activity starts: after an event's position (its cursor) or an
/// instant.
#[derive(Debug, Clone, Copy)]
pub enum Since {
    Cursor(i64),
    Time(DateTime<Utc>),
}

/// Up to `limit` sequenced events of a company after `since`, in position order.
pub async fn company_events_since(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    company_id: Uuid,
    since: Since,
    limit: u64,
) -> Result<Vec<invitation_events::Model>, DbErr> {
    let query = invitation_events::Entity::find()
        .filter(invitation_events::Column::OrganizationId.eq(organization_id))
        .filter(invitation_events::Column::CompanyId.eq(company_id));
    let query = match since {
        Since::Cursor(position) => query.filter(invitation_events::Column::Position.gt(position)),
        Since::Time(t) => query
            .filter(invitation_events::Column::OccurredAt.gt(t))
            .filter(invitation_events::Column::Position.is_not_null()),
    };
    all_with_limit(
        db,
        query.order_by_asc(invitation_events::Column::Position),
        limit,
    )
    .await
}
