//! The REST API: the invitation endpoints of the system this product replaces, at their old
//! paths, both bare and under [`VERSION_PREFIX`], and the OpenAPI 3.1 document generated from
//! the handlers (served at `/openapi.json`, committed as `api/openapi.json`).
//!
//! Handlers only parse and wrap: every write is an operation of [`crate::operations`], the same
//! one the GraphQL mutation runs, and every read goes through the tenant-scoped finders.

mod error;
mod extract;
mod invitation;
mod magic_link;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{OpenApi, Server};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// The old system's version prefix; every path is served with and without it.
pub const VERSION_PREFIX: &str = "/v2.2";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Invitations gateway REST API",
        description = "Invitations and the deprecated legacy magic links, at the paths of the system this product replaces. Every path is also served under `/v2.2`. Authenticate with an API key in `X-API-Key`. Errors are JSON `{detail, code, field?}` with the GraphQL API's stable codes.",
    ),
    components(schemas(error::ErrorBody)),
    modifiers(&Security),
    tags(
        (name = invitation::TAG, description = "Contributor and reconnect invitations"),
        (name = magic_link::TAG, description = "Deprecated: use invitations"),
    ),
)]
struct Doc;

/// The API-key scheme, required by every operation.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "apiKey",
            Vec::<String>::new(),
        )]);
        openapi.servers = Some(vec![Server::new("/"), Server::new(VERSION_PREFIX)]);
    }
}

#[allow(deprecated)] // the legacy handlers are deprecated on purpose: that marks them in the document
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(Doc::openapi())
        .routes(routes!(invitation::create_contributor, invitation::list))
        .routes(routes!(invitation::create_reconnect))
        .routes(routes!(invitation::detail))
        .routes(routes!(invitation::revoke))
        .routes(routes!(invitation::resend))
        .routes(routes!(magic_link::company_magic_link))
        .routes(routes!(magic_link::company_magic_link_with_sites))
        .routes(routes!(magic_link::connection_edit_link))
}

/// The routes and their document. An operation served for GET and POST is one handler; its
/// two operations get distinct ids (`…Get`, `…Post`), as OpenAPI requires.
fn split() -> (Router<AppState>, OpenApi) {
    let (router, mut doc) = api().split_for_parts();
    for item in doc.paths.paths.values_mut() {
        if let (Some(get), Some(post)) = (item.get.as_mut(), item.post.as_mut())
            && get.operation_id.is_some()
            && get.operation_id == post.operation_id
        {
            let id = get.operation_id.take().unwrap_or_default();
            get.operation_id = Some(format!("{id}Get"));
            post.operation_id = Some(format!("{id}Post"));
        }
    }
    (router, doc)
}

/// The OpenAPI document as committed in `api/openapi.json`.
pub fn openapi_json() -> Result<String, serde_json::Error> {
    Ok(split().1.to_pretty_json()? + "\n")
}

/// The REST routes (bare and versioned) and `/openapi.json`.
pub fn routes(state: AppState) -> Router {
    let max_body = state.settings.graphql.max_body_bytes;
    let (api, doc) = split();
    let api = api.layer(DefaultBodyLimit::max(max_body));
    Router::new()
        .merge(api.clone())
        .nest(VERSION_PREFIX, api)
        .route("/openapi.json", get(move || async move { Json(doc) }))
        .with_state(state)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    /// `api/openapi.json` is the contract REST clients build against: regenerate it with
    /// `cargo run -p api -- openapi > api/openapi.json` when the API changes on purpose.
    #[test]
    fn committed_document_matches_the_code() {
        let committed = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json"));
        assert!(
            committed == super::openapi_json().unwrap(),
            "api/openapi.json is out of date: run `cargo run -p api -- openapi > api/openapi.json`"
        );
    }
}
