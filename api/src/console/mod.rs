//! The operator console at `/console`: one static page and plain ES modules (no build step, no
//! third-party origin) embedded in the binary. It is a client of the public GraphQL API and its
//! subscriptions like any integrator's frontend, with the API key the operator pastes in; the
//! server gives it nothing private, so these routes are only files.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_CSS: &str = include_str!("assets/console.css");
/// The modules, by the name the page imports them under.
const MODULES: [(&str, &str); 3] = [
    ("api.js", include_str!("assets/api.js")),
    ("views.js", include_str!("assets/views.js")),
    ("console.js", include_str!("assets/console.js")),
];

const JS: &str = "text/javascript; charset=utf-8";

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let router = Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route(
            "/console/assets/console.css",
            get(|| async { crate::public::asset(CONSOLE_CSS, "text/css; charset=utf-8") }),
        );
    MODULES.iter().fold(router, |router, &(name, source)| {
        router.route(
            &format!("/console/assets/{name}"),
            get(move || async move { crate::public::asset(source, JS) }),
        )
    })
}

/// The page: the same CSP as the hosted pages (only this origin, nothing inline), and nobody
/// may frame it (clickjacking an operator's revoke button).
async fn page() -> Response {
    crate::public::html_response(StatusCode::OK, INDEX_HTML, &[])
}
