//! A company's invitations, newest first (SPEC §6), at the cost of what the database does.
//!
//! A page and its `totalCount` are one statement: the count rides along as an uncorrelated
//! scalar subquery, which both databases evaluate once. Unfiltered, the count is the company's
//! counter in `invitation_counts`; filtered, it is counted from an index that leads with
//! `(organization_id, company_id)`, as every filter of the page is; the `email` filter goes
//! through the `invitation_emails` table instead of searching each allow-list's JSON. Only an
//! empty page costs a second statement, to tell a company without matching rows from one that
//! is not the caller's.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Alias, Expr, ExprTrait, Func, OnConflict, Query, SelectStatement, SimpleExpr,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Set, Statement,
};
use uuid::Uuid;

use super::{active_at, is_variant};
use crate::entities::{companies, invitation_counts, invitation_emails, invitations};
use crate::{DomainError, InvitationStatus, InvitationType, email, now};
use invitations::Column::Status;

/// Filters of the invitation listing (SPEC §6). `status` is the effective status.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<InvitationStatus>,
    pub invitation_type: Option<InvitationType>,
    /// Invitations whose allow-list contains this (normalized) address.
    pub email: Option<String>,
    pub created_after: Option<DateTime<Utc>>,
    pub created_before: Option<DateTime<Utc>>,
}

impl ListFilter {
    /// No filter at all: every invitation of the company.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.invitation_type.is_none()
            && self.email.is_none()
            && self.created_after.is_none()
            && self.created_before.is_none()
    }
}

/// Position in the listing: newest first, ties broken by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListCursor {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl ListCursor {
    /// The position of `row` in the listing.
    pub fn at(row: &invitations::Model) -> Self {
        Self {
            created_at: row.created_at,
            id: row.id,
        }
    }

    /// The opaque cursor of `row`, which both APIs hand out: the next page starts after it.
    pub fn of(row: &invitations::Model) -> String {
        Self::at(row).encode()
    }

    /// This position as the opaque cursor [`ListCursor::decode`] reads.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.created_at.to_rfc3339(), self.id))
    }

    /// Reads a cursor made by [`ListCursor::of`]; anything else is an input error on `field`.
    pub fn decode(field: &str, cursor: &str) -> Result<Self, DomainError> {
        let invalid = || DomainError::invalid(field, "not a valid cursor");
        let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        let text = String::from_utf8(raw).map_err(|_| invalid())?;
        let (at, id) = text.split_once('|').ok_or_else(invalid)?;
        Ok(Self {
            created_at: DateTime::parse_from_rfc3339(at)
                .map_err(|_| invalid())?
                .with_timezone(&Utc),
            id: id.parse().map_err(|_| invalid())?,
        })
    }
}

/// What a caller asks the listing for.
#[derive(Debug, Clone, Copy)]
pub struct ListRequest<'a> {
    pub organization_id: Uuid,
    pub company_id: Uuid,
    pub filter: &'a ListFilter,
    /// Page size.
    pub first: u64,
    pub after: Option<ListCursor>,
    /// Whether to count the rows matching the filter over all pages.
    pub with_total: bool,
}

/// One page of the listing.
#[derive(Debug, Clone)]
pub struct Page {
    pub rows: Vec<invitations::Model>,
    pub has_next: bool,
    /// Rows matching the filter over all pages, when it was asked for.
    pub total: Option<u64>,
}

/// Name of the column that carries the total beside the page's rows.
const TOTAL: &str = "total_count";

/// The condition for an effective status at `at` (stored ACTIVE rows may read EXPIRED).
pub fn status_condition(status: InvitationStatus, at: DateTime<Utc>) -> Condition {
    match status {
        InvitationStatus::Active => active_at(at),
        InvitationStatus::Expired => Condition::any()
            .add(is_variant(Status, InvitationStatus::Expired))
            .add(
                Condition::all()
                    .add(is_variant(Status, InvitationStatus::Active))
                    .add(invitations::Column::ExpiresAt.lte(at)),
            ),
        other => Condition::all().add(is_variant(Status, other)),
    }
}

fn filter_condition(request: &ListRequest, at: DateTime<Utc>) -> Result<Condition, DomainError> {
    let ListRequest {
        organization_id,
        company_id,
        filter,
        ..
    } = *request;
    let mut cond = Condition::all()
        .add(invitations::Column::OrganizationId.eq(organization_id))
        .add(invitations::Column::CompanyId.eq(company_id));
    if let Some(status) = filter.status {
        cond = cond.add(status_condition(status, at));
    }
    if let Some(t) = filter.invitation_type {
        cond = cond.add(is_variant(invitations::Column::InvitationType, t));
    }
    if let Some(raw) = &filter.email {
        let email = email::normalize(raw).map_err(|m| DomainError::invalid("filter.email", m))?;
        cond = cond.add(
            invitations::Column::Id.in_subquery(
                Query::select()
                    .column(invitation_emails::Column::InvitationId)
                    .from(invitation_emails::Entity)
                    .and_where(invitation_emails::Column::OrganizationId.eq(organization_id))
                    .and_where(invitation_emails::Column::CompanyId.eq(company_id))
                    .and_where(invitation_emails::Column::Email.eq(email))
                    .to_owned(),
            ),
        );
    }
    if let Some(after) = filter.created_after {
        cond = cond.add(invitations::Column::CreatedAt.gte(after));
    }
    if let Some(before) = filter.created_before {
        cond = cond.add(invitations::Column::CreatedAt.lt(before));
    }
    Ok(cond)
}

fn sub_query(query: SelectStatement) -> SimpleExpr {
    Expr::SubQuery(None, Box::new(query.into()))
}

/// How many invitations match `filter`. Unfiltered, that is the company's counter (one row);
/// filtered, `(SELECT COUNT(*) FROM invitations WHERE <filter>)`, whose columns, qualified with
/// `invitations`, name the subquery's own table, and which one of the list indexes answers.
fn total_of(request: &ListRequest, at: DateTime<Utc>) -> Result<SimpleExpr, DomainError> {
    let (organization_id, company_id) = (request.organization_id, request.company_id);
    if request.filter.is_empty() {
        let counter = Query::select()
            .column(invitation_counts::Column::Total)
            .from(invitation_counts::Entity)
            .and_where(invitation_counts::Column::OrganizationId.eq(organization_id))
            .and_where(invitation_counts::Column::CompanyId.eq(company_id))
            .to_owned();
        return Ok(Func::coalesce([sub_query(counter), Expr::val(0i64)]).into());
    }
    Ok(sub_query(
        Query::select()
            .expr(Expr::cust("COUNT(*)"))
            .from(invitations::Entity)
            .cond_where(filter_condition(request, at)?)
            .to_owned(),
    ))
}

/// The statement of one page (`first + 1` rows, so the caller learns whether more follow), with
/// the total as column `total_count` when `with_total`, its limit written into the text (see
/// [`crate::finders::with_limit`]). Public so tests can `EXPLAIN` exactly what the list runs.
pub fn page_statement(
    backend: DatabaseBackend,
    request: &ListRequest,
    at: DateTime<Utc>,
) -> Result<Statement, DomainError> {
    let mut query = invitations::Entity::find().filter(filter_condition(request, at)?);
    if request.with_total {
        query = query.expr_as(total_of(request, at)?, TOTAL);
    }
    if let Some(c) = request.after {
        query = query.filter(
            Condition::any()
                .add(invitations::Column::CreatedAt.lt(c.created_at))
                .add(
                    Condition::all()
                        .add(invitations::Column::CreatedAt.eq(c.created_at))
                        .add(invitations::Column::Id.lt(c.id)),
                ),
        );
    }
    let query = query
        .order_by_desc(invitations::Column::CreatedAt)
        .order_by_desc(invitations::Column::Id)
        .into_query();
    Ok(crate::finders::with_limit(
        backend,
        &query,
        request.first + 1,
    ))
}

/// The statement that proves the company is the caller's (one row, or none), with the total
/// when `with_total`: what an empty page still has to answer.
pub fn company_query(
    request: &ListRequest,
    at: DateTime<Utc>,
) -> Result<SelectStatement, DomainError> {
    let total = if request.with_total {
        total_of(request, at)?
    } else {
        Expr::val(0i64)
    };
    Ok(Query::select()
        .expr_as(total, Alias::new(TOTAL))
        .from(companies::Entity)
        .and_where(companies::Column::OrganizationId.eq(request.organization_id))
        .and_where(companies::Column::Id.eq(request.company_id))
        .to_owned())
}

fn total_in(row: &sea_orm::QueryResult) -> Result<u64, DbErr> {
    Ok(u64::try_from(row.try_get::<i64>("", TOTAL)?).unwrap_or_default())
}

/// One page of a company's invitations (newest first), whether more follow, and the total when
/// `with_total`. Another organization's company is [`DomainError::NotFound`].
pub async fn list(
    db: &impl ConnectionTrait,
    request: &ListRequest<'_>,
) -> Result<Page, DomainError> {
    let at = now();
    let page = page_statement(db.get_database_backend(), request, at)?;
    let found = db.query_all_raw(page).await?;
    let mut total = match found.first() {
        Some(row) if request.with_total => Some(total_in(row)?),
        _ => None,
    };
    let mut rows = crate::rows::decode::<invitations::Model>(&found)?;
    // Rows carry the caller's organization and this company, so the company is the caller's;
    // without rows, that has to be asked.
    if rows.is_empty() {
        let company = db
            .query_one(&company_query(request, at)?)
            .await?
            .ok_or(DomainError::NotFound)?;
        total = request.with_total.then(|| total_in(&company)).transpose()?;
    }
    let has_next = rows.len() as u64 > request.first;
    rows.truncate(request.first as usize);
    Ok(Page {
        rows,
        has_next,
        total,
    })
}

/// What the list keeps beside a new invitation, in its transaction: its allow-list in
/// `invitation_emails`, and one more in its company's counter.
pub(super) async fn index_new(
    txn: &impl ConnectionTrait,
    row: &invitations::Model,
) -> Result<(), DbErr> {
    invitation_counts::Entity::insert(invitation_counts::ActiveModel {
        company_id: Set(row.company_id),
        organization_id: Set(row.organization_id),
        total: Set(1),
    })
    .on_conflict(
        OnConflict::column(invitation_counts::Column::CompanyId)
            .value(
                invitation_counts::Column::Total,
                Expr::col((invitation_counts::Entity, invitation_counts::Column::Total)).add(1),
            )
            .to_owned(),
    )
    .exec_without_returning(txn)
    .await?;
    if row.allowed_emails.0.is_empty() {
        return Ok(());
    }
    invitation_emails::Entity::insert_many(row.allowed_emails.0.iter().map(|email| {
        invitation_emails::ActiveModel {
            invitation_id: Set(row.id),
            email: Set(email.clone()),
            organization_id: Set(row.organization_id),
            company_id: Set(row.company_id),
            created_at: Set(row.created_at),
        }
    }))
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let at = now();
        let id = Uuid::now_v7();
        let encoded = URL_SAFE_NO_PAD.encode(format!("{}|{}", at.to_rfc3339(), id));
        let c = ListCursor::decode("after", &encoded).unwrap();
        assert_eq!((c.created_at, c.id), (at, id));
        assert!(matches!(
            ListCursor::decode("cursor", "nope"),
            Err(DomainError::InvalidInput { field, .. }) if field == "cursor"
        ));
    }
}
