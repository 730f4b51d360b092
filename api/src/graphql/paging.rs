//! Page sizes and what lists cost: every list field takes `first` (1 to [`MAX_PAGE`]) and
//! counts `first ×` its items towards `GRAPHQL_MAX_COMPLEXITY`.

use async_graphql::Result;
use entity::DomainError;

use super::error::GqlResult;

/// The largest page any list returns.
pub const MAX_PAGE: usize = 100;

/// Default size of a list nested in an object (a company's sites, an invitation's
/// deliveries and created connections).
pub const NESTED_LIST_DEFAULT: i32 = 10;

/// Complexity of a list field: its items' complexity times how many it may return, so wide
/// queries and aliases are bounded by `GRAPHQL_MAX_COMPLEXITY`. Out-of-range sizes are
/// refused by the resolver; here they count as the largest page.
pub fn list_complexity(first: Option<i32>, default: i32, child_complexity: usize) -> usize {
    let first = first.unwrap_or(default).clamp(1, MAX_PAGE as i32) as usize;
    first.saturating_mul(child_complexity).saturating_add(1)
}

/// [`list_complexity`] for a nested list.
pub fn nested_complexity(first: Option<i32>, child_complexity: usize) -> usize {
    list_complexity(first, NESTED_LIST_DEFAULT, child_complexity)
}

/// Checks a `first` argument: 1 to 100.
pub fn page_size(first: Option<i32>, default: i32) -> Result<usize> {
    Ok(checked_size("first", first.map(i64::from), default.into()).gql()? as usize)
}

/// Checks a page size (`field`, given or `default`) of either API: 1 to 100.
pub fn checked_size(field: &str, size: Option<i64>, default: i64) -> Result<u64, DomainError> {
    let size = size.unwrap_or(default);
    if !(1..=MAX_PAGE as i64).contains(&size) {
        return Err(DomainError::invalid(
            field,
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    Ok(size as u64)
}
