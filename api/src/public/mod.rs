//! The hosted recipient page: `/p/i/{token}` and the legacy `/p/connect/...` links. Plain HTML
//! plus one small script (no build step, no third-party origin) that calls the public GraphQL
//! operations. `VIEWED` is recorded by the script, never by the GET, so link scanners that
//! prefetch URLs do not count as views.
//!
//! Embedding: a page may be framed by exactly the origins its organization allows
//! (`allowedEmbedOrigins`, sent as `frame-ancestors`), and, when framed, the script posts its
//! events to the parent (`invitation.loaded`, `.submitted`, `.exit`, `.error`) with one of those
//! origins as the target, so no other page can read them. `/p/embed.js` is the integrator's
//! side.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use entity::magic_link::Target;
use entity::{DomainError, InvitationStatus};

use crate::state::{AppState, Store};

const PAGE_JS: &str = include_str!("assets/page.js");
const PAGE_CSS: &str = include_str!("assets/page.css");
const EMBED_JS: &str = include_str!("assets/embed.js");
const FAVICON: &[u8] = include_bytes!("assets/favicon.ico");

/// Only our own origin may load scripts, styles and data; only the organization's allowed
/// origins may frame the page (none for a page that belongs to no organization).
fn csp(frame_ancestors: &[String]) -> String {
    let ancestors = if frame_ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        frame_ancestors.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors {ancestors}"
    )
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/p/i/{token}", get(invitation_page))
        .route("/p/connect/{public_id}/{secret}", get(company_link_page))
        .route(
            "/p/connect/{public_id}/workflow/{secret}",
            get(edit_link_page),
        )
        .route(
            "/p/assets/page.js",
            get(|| async { asset(PAGE_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/p/assets/page.css",
            get(|| async { asset(PAGE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/p/embed.js",
            get(|| async { asset(EMBED_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/favicon.ico",
            get(|| async { asset(FAVICON, "image/x-icon") }),
        )
}

pub(crate) fn asset(body: impl IntoResponse, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The page shell (`api/templates/page.html`). `data` are `data-*` attributes for the script;
/// `body` is shown before the script runs (and stays for the reason-coded pages, which need no
/// script). Every value is escaped: tokens and secrets come straight from the URL.
#[derive(Template)]
#[template(path = "page.html")]
struct Page<'a> {
    title: &'a str,
    data: &'a [(&'a str, &'a str)],
    body: Body,
}

/// Which fixed markup `page.html` puts in `<main>`.
enum Body {
    Loading,
    NotFound,
    Failed,
    Expired,
    Revoked,
    Used,
}

/// Renders a page; `frame_ancestors` are the origins that may frame it, which its script also
/// gets (`data-embed-origins`) as the only targets of its messages to a parent.
fn page(
    status: StatusCode,
    title: &str,
    data: &[(&str, &str)],
    body: Body,
    frame_ancestors: &[String],
) -> Response {
    let origins = frame_ancestors.join(" ");
    let mut data = data.to_vec();
    data.push(("embed-origins", &origins));
    let html = match (Page {
        title,
        data: &data,
        body,
    })
    .render()
    {
        Ok(html) => html,
        Err(e) => {
            tracing::error!(error = %e, "recipient page rendering failed");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    html_response(status, html, frame_ancestors)
}

/// An HTML page with the headers every page of ours carries: the strict CSP (framed only by
/// `frame_ancestors`), no referrer, no caching, no sniffing. The console's page uses it too.
pub(crate) fn html_response(
    status: StatusCode,
    html: impl IntoResponse,
    frame_ancestors: &[String],
) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    match HeaderValue::from_str(&csp(frame_ancestors)) {
        Ok(value) => headers.insert(header::CONTENT_SECURITY_POLICY, value),
        // Origins are validated when saved; should one still not fit a header, frame nothing.
        Err(_) => headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ),
    };
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// An unknown link belongs to no organization, so nothing may frame its page.
fn not_found() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Link not found",
        &[("kind", "not-found")],
        Body::NotFound,
        &[],
    )
}

fn failed() -> Response {
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        &[("kind", "error")],
        Body::Failed,
        &[],
    )
}

/// The origins that may frame the pages of `organization_id`.
async fn embed_origins(
    store: &Store,
    organization_id: uuid::Uuid,
) -> Result<Vec<String>, DomainError> {
    Ok(entity::organization::find(&store.db, organization_id)
        .await?
        .allowed_embed_origins
        .0)
}

fn not_active(status: InvitationStatus, token: &str, origins: &[String]) -> Response {
    let (title, body, kind) = match status {
        InvitationStatus::Expired => ("This invitation has expired", Body::Expired, "expired"),
        InvitationStatus::Revoked => ("This invitation was withdrawn", Body::Revoked, "revoked"),
        _ => ("This invitation has been used", Body::Used, "fulfilled"),
    };
    page(
        StatusCode::GONE,
        title,
        &[("kind", kind), ("token", token)],
        body,
        origins,
    )
}

async fn invitation_page(State(store): State<Arc<Store>>, Path(token): Path<String>) -> Response {
    let found = async {
        let row = entity::recipient::find_by_token(&store.db, &token).await?;
        let origins = embed_origins(&store, row.organization_id).await?;
        Ok::<_, DomainError>((row, origins))
    };
    match found.await {
        Ok((row, origins)) => match row.effective_status(entity::now()) {
            InvitationStatus::Active => page(
                StatusCode::OK,
                "Connect your utility account",
                &[("kind", "invitation"), ("token", &token)],
                Body::Loading,
                &origins,
            ),
            other => not_active(other, &token, &origins),
        },
        Err(DomainError::NotFound) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "invitation page lookup failed");
            failed()
        }
    }
}

async fn link_page(store: &Store, public_id: &str, secret: &str, edit: bool) -> Response {
    let found = async {
        let target = entity::magic_link::resolve(&store.db, public_id, secret, edit).await?;
        let company = match target {
            Target::Company(c) | Target::Connection(c, _) => c,
        };
        embed_origins(store, company.organization_id).await
    };
    match found.await {
        Ok(origins) => page(
            StatusCode::OK,
            "Connect your utility account",
            &[
                ("kind", if edit { "edit-link" } else { "company-link" }),
                ("public-id", public_id),
                ("secret", secret),
            ],
            Body::Loading,
            &origins,
        ),
        Err(DomainError::NotFound) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "magic link lookup failed");
            failed()
        }
    }
}

async fn company_link_page(
    State(store): State<Arc<Store>>,
    Path((public_id, secret)): Path<(String, String)>,
) -> Response {
    link_page(&store, &public_id, &secret, false).await
}

async fn edit_link_page(
    State(store): State<Arc<Store>>,
    Path((public_id, secret)): Path<(String, String)>,
) -> Response {
    link_page(&store, &public_id, &secret, true).await
}

/// The request path as it may appear in logs: tokens and secrets of `/p/...` links are cut.
pub fn loggable_path(path: &str) -> String {
    if path.starts_with("/p/i/") {
        "/p/i/…".to_owned()
    } else if path.starts_with("/p/connect/") && !path.starts_with("/p/assets/") {
        "/p/connect/…".to_owned()
    } else {
        path.to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn link_secrets_never_reach_logs() {
        assert_eq!(loggable_path("/p/i/abc123"), "/p/i/…");
        assert_eq!(
            loggable_path("/p/connect/pid/workflow/s3cret"),
            "/p/connect/…"
        );
        assert_eq!(loggable_path("/graphql"), "/graphql");
    }

    #[test]
    fn values_from_the_url_are_escaped_in_attributes() {
        let token = r#""><script>alert('x')</script>&"#;
        let html = Page {
            title: "Connect your utility account",
            data: &[("kind", "invitation"), ("token", token)],
            body: Body::Loading,
        }
        .render()
        .unwrap();
        assert!(
            html.contains(
                r#"<main id="app" data-kind="invitation" data-token="&#34;&#62;&#60;script&#62;alert(&#39;x&#39;)&#60;/script&#62;&#38;" aria-live="polite"><p>Loading…</p>"#
            ),
            "{html}"
        );
        assert!(!html.contains("<script>alert"));
    }

    #[test]
    fn frame_ancestors_are_exactly_the_allowed_origins() {
        assert!(csp(&[]).ends_with("frame-ancestors 'none'"));
        let origins = [
            "https://app.example.com".to_owned(),
            "http://localhost:3000".to_owned(),
        ];
        assert!(
            csp(&origins)
                .ends_with("frame-ancestors https://app.example.com http://localhost:3000")
        );
    }
}
