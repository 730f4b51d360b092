//! Parsing GraphQL `ID`s (UUIDs) with errors that name the argument.

use async_graphql::{ID, Result};
use uuid::Uuid;

use super::error::bad_input;

pub fn parse_id(field: &str, id: &ID) -> Result<Uuid> {
    Uuid::parse_str(id.as_str()).map_err(|_| bad_input(field, "not a valid id"))
}

pub fn parse_ids(field: &str, ids: &[ID]) -> Result<Vec<Uuid>> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| parse_id(&format!("{field}[{i}]"), id))
        .collect()
}

pub fn id(uuid: Uuid) -> ID {
    ID(uuid.to_string())
}

/// Parses a `YYYY-MM-DD` date argument.
pub fn parse_date(field: &str, value: Option<&str>) -> Result<Option<chrono::NaiveDate>> {
    value
        .map(|v| {
            chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d")
                .map_err(|_| bad_input(field, "must be a date as YYYY-MM-DD"))
        })
        .transpose()
}
