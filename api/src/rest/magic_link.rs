//! Legacy magic links over REST (deprecated, as in GraphQL): the company link and a
//! connection's edit link, at the paths integrators of the replaced system call. Asking returns
//! the current link, issuing it on first use, exactly like GraphQL's `createCompanyMagicLink`
//! and `createConnectionEditLink`, so a GET too may issue a link (the old system's behaviour).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use entity::entities::connections;
use entity::magic_link::{LinkChange, LinkOf};
use entity::scope::find_owned;
use entity::{ConnectionStatus, UtilityType};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::error::{ApiError, BodyErrors, CommonErrors};
use super::extract::{Caller, JsonBody, PathId};
use crate::config::Settings;
use crate::graphql::enums;
use crate::graphql::mutation::magic_link::{CompanyMagicLink, ConnectionEditLink};
use crate::operations;
use crate::state::Store;

pub const TAG: &str = "legacy magic links";

/// Body of the company link request with sites.
#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SitesBody {
    /// Sites of the company; each must belong to it. The link itself carries no sites (the
    /// recipient picks among the company's sites on the page).
    pub sites: Option<Vec<Uuid>>,
}

/// A connection with its legacy edit link.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionWithLink {
    pub id: Uuid,
    pub company_id: Uuid,
    #[schema(value_type = enums::ConnectionStatus)]
    pub status: ConnectionStatus,
    pub datasource_id: Option<String>,
    /// The provider's name, when known.
    pub datasource_name: Option<String>,
    pub provider_url: Option<String>,
    pub country: Option<String>,
    #[schema(value_type = Vec<enums::UtilityType>)]
    pub utility_types: Vec<UtilityType>,
    pub owner_email: Option<String>,
    pub utility_username: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(flatten)]
    pub link: ConnectionEditLink,
}

async fn company_link(
    store: &Store,
    settings: &Settings,
    caller: &Caller,
    company_id: Uuid,
) -> Result<Json<CompanyMagicLink>, ApiError> {
    let of = LinkOf::Company(company_id);
    let link = operations::issue_link(store, &caller.0, of, LinkChange::Get).await?;
    Ok(Json(CompanyMagicLink::new(settings, link)))
}

/// The company's legacy magic link (deprecated: create a contributor invitation instead;
/// GraphQL `createCompanyMagicLink`).
#[utoipa::path(
    method(get, post),
    path = "/connection/company/{companyId}/link",
    operation_id = "companyMagicLink",
    tag = TAG,
    params(("companyId" = Uuid, Path, description = "The company")),
    responses(
        (status = 200, description = "The link (the same one on every call)", body = CompanyMagicLink),
        CommonErrors,
    ),
)]
#[deprecated = "create a contributor invitation"]
pub async fn company_magic_link(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
    caller: Caller,
    PathId(company_id): PathId,
) -> Result<Json<CompanyMagicLink>, ApiError> {
    company_link(&store, &settings, &caller, company_id).await
}

/// The company's legacy magic link, after checking the sites belong to the company
/// (deprecated: create a contributor invitation with `prefill.initialSites` instead).
#[utoipa::path(
    post,
    path = "/company/{companyId}/connection/link",
    operation_id = "companyMagicLinkWithSites",
    tag = TAG,
    params(("companyId" = Uuid, Path, description = "The company")),
    request_body(content = Option<SitesBody>, content_type = "application/json"),
    responses(
        (status = 200, description = "The link (the same one on every call)", body = CompanyMagicLink),
        CommonErrors,
        BodyErrors,
    ),
)]
#[deprecated = "create a contributor invitation"]
pub async fn company_magic_link_with_sites(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
    caller: Caller,
    PathId(company_id): PathId,
    JsonBody(body): JsonBody<SitesBody>,
) -> Result<Json<CompanyMagicLink>, ApiError> {
    let organization_id = caller.0.organization_id;
    // The company first, so another organization's company is 404 whatever the sites.
    find_owned::<entity::entities::companies::Entity>(&store.db, organization_id, company_id)
        .await?;
    let sites = body.sites.unwrap_or_default();
    entity::company::check_sites(&store.db, organization_id, company_id, &sites, "sites").await?;
    company_link(&store, &settings, &caller, company_id).await
}

/// A connection with its legacy edit link (deprecated: create a reconnect invitation instead;
/// GraphQL `createConnectionEditLink`).
#[utoipa::path(
    method(get, post),
    path = "/connection/{connectionId}",
    operation_id = "connectionEditLink",
    tag = TAG,
    params(("connectionId" = Uuid, Path, description = "The connection")),
    responses(
        (status = 200, description = "The connection and its link (the same one on every call)", body = ConnectionWithLink),
        CommonErrors,
    ),
)]
#[deprecated = "create a reconnect invitation"]
pub async fn connection_edit_link(
    State(store): State<Arc<Store>>,
    State(settings): State<Arc<Settings>>,
    Caller(viewer): Caller,
    PathId(connection_id): PathId,
) -> Result<Json<ConnectionWithLink>, ApiError> {
    let of = LinkOf::Connection(connection_id);
    let link = operations::issue_link(&store, &viewer, of, LinkChange::Get).await?;
    let c =
        find_owned::<connections::Entity>(&store.db, viewer.organization_id, connection_id).await?;
    Ok(Json(ConnectionWithLink {
        id: c.id,
        company_id: c.company_id,
        status: c.status,
        datasource_id: c.datasource_id,
        datasource_name: c.provider_name,
        provider_url: c.provider_url,
        country: c.country,
        utility_types: c.utility_types.0,
        owner_email: c.owner_email,
        utility_username: c.utility_username,
        created_at: c.created_at,
        updated_at: c.updated_at,
        link: ConnectionEditLink::new(&settings, link),
    }))
}
