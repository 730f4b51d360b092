use async_graphql::Object;

/// Read operations.
#[derive(Default)]
pub struct Query;

#[Object]
impl Query {
    /// Version of the running gateway.
    async fn api_version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }
}
