use crate::InvitationStatus;

/// Errors of the domain layer. The API maps each variant to a stable GraphQL error code.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The object does not exist, or belongs to another organization (never say which).
    #[error("not found")]
    NotFound,
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A field of the input is invalid.
    #[error("{field}: {message}")]
    InvalidInput { field: String, message: String },
    /// The invitation cannot be used because it is no longer ACTIVE.
    #[error("invitation is {}", .0.as_str())]
    NotActive(InvitationStatus),
    /// The email gate was not passed; the reason is a stable word (`INVALID_CODE`,
    /// `CODE_EXPIRED`, `TOO_MANY_ATTEMPTS`, `GRANT_REQUIRED`, `GRANT_INVALID`).
    #[error("email not verified: {0}")]
    EmailNotVerified(&'static str),
    /// A database failure; its text is logged, never shown to clients.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// A limit on how much may be done in a period was reached; try again after this many
    /// seconds.
    #[error("rate limited; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// Sealed data could not be opened (wrong key or tampered row).
    #[error("sealed value could not be opened")]
    Crypto,
}

impl DomainError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with its field named inside a larger input (`inputs[3].` + `maxUses`).
    pub fn within(self, prefix: &str) -> Self {
        match self {
            Self::InvalidInput { field, message } => Self::InvalidInput {
                field: format!("{prefix}{field}"),
                message,
            },
            other => other,
        }
    }
}
