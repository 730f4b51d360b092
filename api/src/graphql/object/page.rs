//! Pages of logs: the `first` / `after` arguments and the Relay page they produce.

use async_graphql::connection::{Connection as Page, Edge, EmptyFields};
use async_graphql::{OutputType, Result};
use entity::DomainError;
use entity::invitation::EventWindow;

use crate::graphql::error::GqlResult;
use crate::graphql::paging::checked_size;

/// A page of a log read as `window.first + 1` rows (the extra one says another page follows),
/// each row's cursor its id (written out only when a query selects it).
pub fn event_page<R, T: OutputType>(
    window: EventWindow,
    mut rows: Vec<R>,
    cursor: impl Fn(&R) -> i64,
    wrap: impl Fn(R) -> T,
) -> Page<i64, T, EmptyFields, EmptyFields> {
    let has_next = rows.len() as u64 > window.first;
    rows.truncate(window.first as usize);
    let mut page = Page::new(window.after.is_some(), has_next);
    page.edges
        .extend(rows.into_iter().map(|r| Edge::new(cursor(&r), wrap(r))));
    page
}

/// The window of the log that `events(first, after)` asks for.
pub fn event_window(first: Option<i32>, after: Option<&str>) -> Result<EventWindow> {
    log_window(("first", first.map(i64::from)), ("after", after), 20).gql()
}

/// The window of a log that a page size and a cursor (each with its parameter's name) ask for,
/// in either API.
pub fn log_window(
    (first_field, first): (&str, Option<i64>),
    (after_field, after): (&str, Option<&str>),
    default: i64,
) -> Result<EventWindow, DomainError> {
    let first = checked_size(first_field, first, default)?;
    let after = after
        .map(|a| {
            a.parse::<i64>()
                .map_err(|_| DomainError::invalid(after_field, "not a valid cursor"))
        })
        .transpose()?;
    Ok(EventWindow { first, after })
}
