//! Errors at the binary's edge: each one is printed as one line and maps to an exit code.

use crate::config::ConfigError;

pub type BoxError = jobs::conf::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration key has a bad value, or the service it names cannot be used.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// An operation (migration, key creation, …) failed.
    #[error("error: {0}")]
    Failed(#[source] BoxError),
}

impl StartupError {
    pub fn failed(cause: impl Into<BoxError>) -> Self {
        Self::Failed(cause.into())
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Failed(_) => 1,
        }
    }
}

impl From<entity::DomainError> for StartupError {
    fn from(e: entity::DomainError) -> Self {
        Self::failed(e)
    }
}

impl From<sea_orm::DbErr> for StartupError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::failed(e)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_one_line_and_keeps_its_cause() {
        let config = StartupError::from(ConfigError::caused(
            "REDIS_URL",
            "cannot reach Redis",
            std::io::Error::other("Connection refused"),
        ));
        assert_eq!(
            config.to_string(),
            "configuration error: REDIS_URL: cannot reach Redis (Connection refused)"
        );
        assert_eq!(config.exit_code(), 2);
        let cause = std::error::Error::source(&config).unwrap();
        assert_eq!(
            std::error::Error::source(cause).unwrap().to_string(),
            "Connection refused"
        );

        let failed = StartupError::from(sea_orm::DbErr::Custom("boom".into()));
        assert_eq!(failed.to_string(), "error: Custom Error: boom");
        assert_eq!(failed.exit_code(), 1);
        assert!(std::error::Error::source(&failed).is_some());
    }
}
