//! Pages of logs: the `first` / `after` arguments and the Relay page they produce.

use async_graphql::connection::{Connection as Page, Edge, EmptyFields};
use async_graphql::{OutputType, Result};
use entity::invitation::EventWindow;

use crate::graphql::error::bad_input;
use crate::graphql::paging::page_size;

/// A page of a log read as `window.first + 1` rows (the extra one says another page follows),
/// each row's cursor its id.
pub fn event_page<R, T: OutputType>(
    window: EventWindow,
    mut rows: Vec<R>,
    cursor: impl Fn(&R) -> i64,
    wrap: impl Fn(R) -> T,
) -> Page<String, T, EmptyFields, EmptyFields> {
    let has_next = rows.len() as u64 > window.first;
    rows.truncate(window.first as usize);
    let mut page = Page::new(window.after.is_some(), has_next);
    page.edges.extend(
        rows.into_iter()
            .map(|r| Edge::new(cursor(&r).to_string(), wrap(r))),
    );
    page
}

/// The window of the log that `events(first, after)` asks for.
pub fn event_window(first: Option<i32>, after: Option<&str>) -> Result<EventWindow> {
    let first = page_size(first, 20)?;
    let after = after
        .map(|a| {
            a.parse::<i64>()
                .map_err(|_| bad_input("after", "not a valid cursor"))
        })
        .transpose()?;
    Ok(EventWindow {
        first: first as u64,
        after,
    })
}
