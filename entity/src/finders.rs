//! Tenant-scoped batch finders: what the API's DataLoaders and live replay read. Every query
//! takes the organization and returns nothing of another one, whatever ids it is given.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SubQueryStatement};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::entities::{
    companies, connection_sites, connections, email_deliveries, invitation_events, sites,
};
use crate::scope::Owned;

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
    query
        .order_by_asc(connections::Column::CreatedAt)
        .order_by_asc(connections::Column::Id)
        .limit(limit)
        .all(db)
        .await
}

/// Connections created through these invitations, oldest first.
pub async fn connections_created_by(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    invitation_ids: &[Uuid],
) -> Result<Vec<connections::Model>, DbErr> {
    connections::Entity::find_in(organization_id)
        .filter(connections::Column::CreatedByInvitationId.is_in(invitation_ids.iter().copied()))
        .order_by_asc(connections::Column::CreatedAt)
        .all(db)
        .await
}

/// The email deliveries of these invitations, oldest first.
pub async fn deliveries_of(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    invitation_ids: &[Uuid],
) -> Result<Vec<email_deliveries::Model>, DbErr> {
    email_deliveries::Entity::find()
        .filter(email_deliveries::Column::OrganizationId.eq(organization_id))
        .filter(email_deliveries::Column::InvitationId.is_in(invitation_ids.iter().copied()))
        .order_by_asc(email_deliveries::Column::CreatedAt)
        .all(db)
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

/// The sites of these companies, oldest first.
pub async fn sites_of_companies(
    db: &impl ConnectionTrait,
    organization_id: Uuid,
    company_ids: &[Uuid],
) -> Result<Vec<sites::Model>, DbErr> {
    sites::Entity::find_in(organization_id)
        .filter(sites::Column::CompanyId.is_in(company_ids.iter().copied()))
        .order_by_asc(sites::Column::CreatedAt)
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
    query
        .order_by_asc(invitation_events::Column::Position)
        .limit(limit)
        .all(db)
        .await
}
