//! Client-visible errors. Each has a stable `extensions.code`; internal failures are logged with
//! their detail and reach the client only as an opaque `INTERNAL_SERVER_ERROR`.

use async_graphql::{Error, ErrorExtensions};
use entity::DomainError;

pub mod code {
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const CONFLICT: &str = "CONFLICT";
    pub const INVITATION_NOT_ACTIVE: &str = "INVITATION_NOT_ACTIVE";
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    pub const EMAIL_NOT_VERIFIED: &str = "EMAIL_NOT_VERIFIED";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
}

pub fn with_code(message: impl Into<String>, code: &'static str) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

pub fn bad_input(field: &str, message: impl Into<String>) -> Error {
    let field = field.to_owned();
    Error::new(message).extend_with(|_, e| {
        e.set("code", code::BAD_USER_INPUT);
        e.set("field", field.as_str());
    })
}

pub fn unauthenticated() -> Error {
    with_code("a valid API key is required", code::UNAUTHENTICATED)
}

pub fn not_found() -> Error {
    with_code("not found", code::NOT_FOUND)
}

pub fn rate_limited(retry_after: u64) -> Error {
    Error::new(format!("too many requests; retry in {retry_after} s")).extend_with(|_, e| {
        e.set("code", code::RATE_LIMITED);
        e.set("retryAfter", retry_after);
    })
}

/// Logs the detail and returns the opaque error.
pub fn internal(detail: &dyn std::fmt::Display) -> Error {
    tracing::error!(error = %detail, "internal error");
    with_code("internal server error", code::INTERNAL_SERVER_ERROR)
}

/// Lets resolvers use `?` on domain calls without ever leaking a database error's text.
pub trait GqlResult<T> {
    fn gql(self) -> Result<T, Error>;
}

impl<T> GqlResult<T> for Result<T, DomainError> {
    fn gql(self) -> Result<T, Error> {
        self.map_err(into_gql)
    }
}

impl<T> GqlResult<T> for Result<T, sea_orm::DbErr> {
    fn gql(self) -> Result<T, Error> {
        self.map_err(|e| internal(&e))
    }
}

pub fn into_gql(e: DomainError) -> Error {
    match e {
        DomainError::NotFound => not_found(),
        DomainError::Conflict(message) => with_code(message, code::CONFLICT),
        DomainError::InvalidInput { field, message } => bad_input(&field, message),
        DomainError::NotActive(status) => {
            let reason = status.as_str();
            Error::new(format!("invitation is {reason}")).extend_with(|_, e| {
                e.set("code", code::INVITATION_NOT_ACTIVE);
                e.set("reason", reason);
            })
        }
        DomainError::EmailNotVerified(reason) => Error::new("the email address is not verified")
            .extend_with(|_, e| {
                e.set("code", code::EMAIL_NOT_VERIFIED);
                e.set("reason", reason);
            }),
        DomainError::RateLimited { retry_after } => rate_limited(retry_after),
        DomainError::Db(e) => internal(&e),
        DomainError::Crypto => internal(&"sealed value could not be opened"),
    }
}

/// Gives request-level errors (parse, validation, limits) a code too: they come from
/// async-graphql without one.
pub fn classify_request_error(error: &mut async_graphql::ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if has_code {
        return;
    }
    let message = error.message.to_ascii_lowercase();
    // The depth limit (depth.rs) sets its code itself.
    let code = if message.contains("too complex") {
        code::QUERY_TOO_COMPLEX
    } else {
        code::BAD_USER_INPUT
    };
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
}
