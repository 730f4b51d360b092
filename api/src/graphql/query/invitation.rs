use async_graphql::connection::{Connection as Page, CursorType, Edge, EmptyFields};
use async_graphql::{Context, ID, Object, Result, SimpleObject, Value};
use entity::entities::invitations;
use entity::invitation::{EventWindow, ListCursor, ListFilter, ListRequest};
use uuid::Uuid;

use crate::graphql::context::{load, prime, store, viewer};
use crate::graphql::error::GqlResult;
use crate::graphql::ids::parse_id;
use crate::graphql::inputs::InvitationFilter;
use crate::graphql::loader::{CompanyById, ConnectionsCreatedBy, DeliveriesOf};
use crate::graphql::object::Invitation;
use crate::graphql::object::invitation::event_window;
use crate::graphql::paging::{NESTED_LIST_DEFAULT, page_size};
use crate::graphql::plain::Plain;

#[derive(Default)]
pub struct InvitationQuery;

/// Extra fields of the invitation list.
#[derive(SimpleObject)]
pub struct InvitationPageInfo {
    /// Number of invitations matching the filter, over all pages.
    pub total_count: u64,
}

/// An invitation's place in the list, encoded as its opaque cursor only when a query selects
/// it (most pages ask for `pageInfo` or nothing, not for every edge's cursor).
pub struct ListPosition(ListCursor);

impl CursorType for ListPosition {
    type Error = entity::DomainError;

    fn decode_cursor(s: &str) -> Result<Self, Self::Error> {
        ListCursor::decode("after", s).map(Self)
    }

    fn encode_cursor(&self) -> String {
        self.0.encode()
    }
}

/// The page and its invitations resolve their plain fields in one pass (see `plain.rs`).
pub type InvitationPage =
    Plain<Page<ListPosition, Plain<Invitation>, InvitationPageInfo, EmptyFields>>;

/// The windows of the log that the page's `events` selections (aliases included) ask for, each
/// with the number of selections that ask for it; one whose arguments do not parse is left to
/// the resolver, which reports it.
fn event_windows(node: &async_graphql::Lookahead<'_>) -> Vec<(EventWindow, usize)> {
    let mut windows: Vec<(EventWindow, usize)> = Vec::new();
    for field in node.field("events").selection_fields() {
        let Ok(arguments) = field.arguments() else {
            continue;
        };
        let arg = |name: &str| {
            arguments
                .iter()
                .find(|(n, _)| n.as_str() == name)
                .map(|(_, v)| v)
        };
        let first = match arg("first") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            Some(_) => continue,
        };
        let after = match arg("after") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => continue,
        };
        let Ok(window) = event_window(first, after) else {
            continue;
        };
        match windows.iter_mut().find(|(w, _)| *w == window) {
            Some((_, selections)) => *selections += 1,
            None => windows.push((window, 1)),
        }
    }
    windows
}

/// The sizes (`first`) that the page's selections of a nested list (aliases included) ask for;
/// one that does not parse is left to the resolver, which reports it.
fn list_sizes(node: &async_graphql::Lookahead<'_>, name: &str) -> Vec<u64> {
    let mut sizes = Vec::new();
    for field in node.field(name).selection_fields() {
        let Ok(arguments) = field.arguments() else {
            continue;
        };
        let first = match arguments.iter().find(|(n, _)| n.as_str() == "first") {
            None | Some((_, Value::Null)) => None,
            Some((_, Value::Number(n))) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
            Some(_) => continue,
        };
        if let Ok(first) = page_size(first, NESTED_LIST_DEFAULT)
            && !sizes.contains(&(first as u64))
        {
            sizes.push(first as u64);
        }
    }
    sizes
}

/// Loads the nested fields a page asks for, one query per field for the whole page: the event
/// pages straight into the invitations, the rest into the request's DataLoader.
async fn prime_page(ctx: &Context<'_>, rows: Vec<invitations::Model>) -> Result<Vec<Invitation>> {
    let node = ctx.look_ahead().field("edges").field("node");
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut invitations: Vec<Invitation> = rows.into_iter().map(Invitation::from).collect();
    let org = viewer(ctx)?.organization_id;
    for (window, selections) in event_windows(&node) {
        let mut pages = entity::invitation::event_pages(&store(ctx)?.reads, org, &ids, window)
            .await
            .gql()?;
        for invitation in &mut invitations {
            let rows = pages.remove(&invitation.0.id).unwrap_or_default();
            invitation.1.add(window, rows, selections);
        }
    }
    let ids = || ids.iter().copied();
    for first in list_sizes(&node, "createdConnections") {
        prime(
            ctx,
            ids().map(|id| ConnectionsCreatedBy(id, first)).collect(),
        )
        .await?;
    }
    for first in list_sizes(&node, "deliveries") {
        prime(ctx, ids().map(|id| DeliveriesOf(id, first)).collect()).await?;
    }
    if node.field("company").exists() {
        // Every row of the page belongs to the one company of the query.
        if let Some(first) = invitations.first() {
            load(ctx, CompanyById(first.0.company_id)).await?;
        }
    }
    Ok(invitations)
}

#[Object]
impl InvitationQuery {
    /// One invitation of the organization.
    async fn invitation(&self, ctx: &Context<'_>, id: ID) -> Result<Plain<Invitation>> {
        let org = viewer(ctx)?.organization_id;
        let invitation_id = parse_id("id", &id)?;
        let row = store(ctx)?
            .reads
            .find_owned::<invitations::Entity>(org, invitation_id)
            .await
            .gql()?;
        Ok(Plain(Invitation::from(row)))
    }

    /// The invitations of one company, newest first (ties by id), as a Relay connection.
    #[graphql(complexity = "first.unwrap_or(20).max(0) as usize * child_complexity + 1")]
    async fn invitations(
        &self,
        ctx: &Context<'_>,
        company_id: ID,
        filter: Option<InvitationFilter>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        after: Option<String>,
    ) -> Result<InvitationPage> {
        let org = viewer(ctx)?.organization_id;
        let company_id = parse_id("companyId", &company_id)?;
        let first = page_size(first, 20)?;
        let cursor = after
            .as_deref()
            .map(|a| ListCursor::decode("after", a))
            .transpose()
            .gql()?;
        let domain_filter = ListFilter::from(filter.unwrap_or_default());
        // The count is the costliest part of a page: only when it is selected.
        let with_total = ctx.look_ahead().field("totalCount").exists();
        let request = ListRequest {
            organization_id: org,
            company_id,
            filter: &domain_filter,
            first: first as u64,
            after: cursor,
            with_total,
        };
        let page = entity::invitation::list(&store(ctx)?.reads, &request)
            .await
            .gql()?;
        let invitations = prime_page(ctx, page.rows).await?;
        let mut connection = Page::with_additional_fields(
            cursor.is_some(),
            page.has_next,
            InvitationPageInfo {
                total_count: page.total.unwrap_or_default(),
            },
        );
        connection
            .edges
            .extend(invitations.into_iter().map(|invitation| {
                Edge::new(
                    ListPosition(ListCursor::at(&invitation.0)),
                    Plain(invitation),
                )
            }));
        Ok(Plain(connection))
    }
}
