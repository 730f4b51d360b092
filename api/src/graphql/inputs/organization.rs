//! The organization's settings input.

use async_graphql::InputObject;

/// Settings of the caller's organization; omitted fields stay as they are.
#[derive(InputObject)]
pub struct UpdateOrganizationInput {
    /// Origins allowed to show the organization's hosted pages in an iframe, each exactly
    /// `https://host[:port]` (plain `http` only for `localhost`, `127.0.0.1` and `[::1]`), at
    /// most 20. The pages send `Content-Security-Policy: frame-ancestors` with exactly these
    /// origins, and a framed page posts its events to its parent only when it is one of them.
    /// Empty: no one may frame the pages.
    pub allowed_embed_origins: Option<Vec<String>>,
}
