//! Errors at the binary's edge: each one is printed as one line and maps to an exit code.

use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A configuration key has a bad value, or the service it names cannot be used.
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    /// An operation (migration, key creation, …) failed.
    #[error("error: {0}")]
    Failed(String),
}

impl StartupError {
    pub fn failed(message: impl std::fmt::Display) -> Self {
        Self::Failed(message.to_string())
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
