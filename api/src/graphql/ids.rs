//! Parsing GraphQL `ID`s (UUIDs) with errors that name the argument.

use async_graphql::{ID, Result};
use entity::DomainError;
use uuid::Uuid;

use super::error::GqlResult;

/// As a domain error, for inputs whose errors are renamed inside a larger input (bulk items).
pub fn uuid(field: &str, id: &ID) -> Result<Uuid, DomainError> {
    Uuid::parse_str(id.as_str()).map_err(|_| DomainError::invalid(field, "not a valid id"))
}

pub fn uuids(field: &str, ids: &[ID]) -> Result<Vec<Uuid>, DomainError> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| uuid(&format!("{field}[{i}]"), id))
        .collect()
}

pub fn parse_id(field: &str, id: &ID) -> Result<Uuid> {
    uuid(field, id).gql()
}

pub fn parse_ids(field: &str, ids: &[ID]) -> Result<Vec<Uuid>> {
    uuids(field, ids).gql()
}

pub fn id(uuid: Uuid) -> ID {
    ID(uuid.to_string())
}

/// A `YYYY-MM-DD` date, as a domain error (see [`uuid`]).
pub fn date(field: &str, value: Option<&str>) -> Result<Option<chrono::NaiveDate>, DomainError> {
    value
        .map(|v| {
            chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                .map_err(|_| DomainError::invalid(field, "must be a date as YYYY-MM-DD"))
        })
        .transpose()
}

/// Parses a `YYYY-MM-DD` date argument.
pub fn parse_date(field: &str, value: Option<&str>) -> Result<Option<chrono::NaiveDate>> {
    date(field, value).gql()
}
