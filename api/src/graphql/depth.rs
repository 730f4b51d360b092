//! `GRAPHQL_MAX_DEPTH` without counting introspection.
//!
//! async-graphql's `limit_depth` counts every field, so the introspection query that graphql-js'
//! `getIntrospectionQuery()` builds (what GraphiQL, Apollo tooling, graphql-codegen, Postman and
//! Schemathesis send: about fifteen levels of `ofType`) is refused at the default depth of 12.
//! This check counts fields the same way but skips what sits under a root `__schema` or `__type`
//! field while introspection is on. Those selections are bounded instead the way graphql-js
//! bounds them (`MaxIntrospectionDepthRule`): at most two nested `fields`, `inputFields`,
//! `interfaces` or `possibleTypes`, the only introspection fields that fan out without end. The
//! `ofType` chain is linear, and async-graphql's recursion limit (32 levels) still bounds it.
//! Complexity is untouched: introspection fields keep costing points under
//! `GRAPHQL_MAX_COMPLEXITY`.
//!
//! The same pass bounds the document's size with its fragments expanded
//! ([`MAX_EXPANDED_FIELDS`]) and refuses fragment cycles, before async-graphql's own recursion
//! check would walk them.

use std::collections::{HashMap, HashSet};

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Pos, ServerError, ServerResult};

use super::error::code;

/// Introspection fields that return lists of types or fields, which can nest without end.
const FANNING_OUT: [&str; 4] = ["fields", "inputFields", "interfaces", "possibleTypes"];
/// graphql-js refuses a third level of those (`MAX_LISTS_DEPTH`); the standard query uses one.
const MAX_INTROSPECTION_LISTS: usize = 3;
/// Most selections (fields, spreads, inline fragments) a document may hold once its fragments
/// are expanded. Fragments that each
/// spread the next twice double the work of validation and execution per level while the
/// document stays tiny, and `__typename` costs no complexity, so neither the depth nor the
/// complexity limit stops them. Any query within `GRAPHQL_MAX_COMPLEXITY` (at least a point per
/// other field) selects far fewer, and the standard introspection query passes (the tooling
/// tests send it).
pub const MAX_EXPANDED_FIELDS: usize = 20_000;

/// The depth limit, enforced by the [`super::gateway::Gateway`] before async-graphql's own
/// checks, on HTTP and WebSocket alike.
#[derive(Clone, Copy)]
pub struct DepthLimit {
    max_depth: usize,
    /// Only when introspection is on: off, `__schema` answers null and counts like any field.
    exempt_introspection: bool,
}

impl DepthLimit {
    pub fn new(max_depth: usize, introspection: bool) -> Self {
        Self {
            max_depth,
            exempt_introspection: introspection,
        }
    }

    pub fn check(&self, doc: &ExecutableDocument) -> ServerResult<()> {
        let mut walk = Walk {
            doc,
            exempt_introspection: self.exempt_introspection,
            measured: HashMap::new(),
            counted: HashMap::new(),
            cyclic: false,
            entered: HashSet::new(),
            introspection: Vec::new(),
        };
        for (_, operation) in doc.operations.iter() {
            let selections = &operation.node.selection_set.node;
            let expanded = walk.expanded(selections);
            if walk.cyclic {
                return Err(refused(
                    "A fragment spreads itself.",
                    code::BAD_USER_INPUT,
                    None,
                ));
            }
            if expanded > MAX_EXPANDED_FIELDS {
                return Err(too_complex(
                    "Query selects too much once its fragments are expanded.",
                    None,
                ));
            }
            if walk.measure(selections, Measure::Root) > self.max_depth {
                return Err(too_complex("Query is nested too deep.", None));
            }
        }
        for (pos, selection_set) in std::mem::take(&mut walk.introspection) {
            if walk.measure(selection_set, Measure::Lists) >= MAX_INTROSPECTION_LISTS {
                return Err(too_complex("Introspection is nested too deep.", Some(pos)));
            }
        }
        Ok(())
    }
}

fn too_complex(message: &str, pos: Option<Pos>) -> ServerError {
    refused(message, code::QUERY_TOO_COMPLEX, pos)
}

fn refused(message: &str, code: &str, pos: Option<Pos>) -> ServerError {
    let mut error = ServerError::new(message, pos);
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    error
}

/// What a walk over selections measures.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Measure {
    /// Field depth of an operation's root selections, where introspection may be skipped.
    Root,
    /// Field depth anywhere else.
    Nested,
    /// Nesting of fanning-out introspection fields.
    Lists,
}

/// One pass over a document. Fragments are measured once each (a fragment spread many times
/// costs nothing more), and a fragment that spreads itself counts as empty: validation refuses
/// the cycle right after this check.
struct Walk<'a> {
    doc: &'a ExecutableDocument,
    exempt_introspection: bool,
    measured: HashMap<(&'a str, Measure), usize>,
    /// Fields each fragment expands to, counted once each (saturating: the true number can be
    /// astronomically large, which is the point of counting).
    counted: HashMap<&'a str, usize>,
    /// Set when a fragment spreads itself, directly or through others.
    cyclic: bool,
    /// Fragments being measured, to stop at cycles.
    entered: HashSet<&'a str>,
    /// The root introspection fields met, for the second check.
    introspection: Vec<(Pos, &'a SelectionSet)>,
}

impl<'a> Walk<'a> {
    fn measure(&mut self, set: &'a SelectionSet, measure: Measure) -> usize {
        let mut deepest = 0;
        for selection in &set.items {
            let found = match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let name = field.name.node.as_str();
                    let children = &field.selection_set.node;
                    match measure {
                        Measure::Lists => {
                            usize::from(FANNING_OUT.contains(&name))
                                + self.measure(children, Measure::Lists)
                        }
                        Measure::Root
                            if self.exempt_introspection
                                && (name == "__schema" || name == "__type") =>
                        {
                            self.introspection.push((selection.pos, children));
                            0
                        }
                        Measure::Root | Measure::Nested => {
                            1 + self.measure(children, Measure::Nested)
                        }
                    }
                }
                Selection::InlineFragment(fragment) => {
                    self.measure(&fragment.node.selection_set.node, measure)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(found) = self.measured.get(&(name, measure)) {
                        *found
                    } else if let Some(set) = self.enter(name) {
                        let found = self.measure(set, measure);
                        self.entered.remove(name);
                        self.measured.insert((name, measure), found);
                        found
                    } else {
                        0
                    }
                }
            };
            deepest = deepest.max(found);
        }
        deepest
    }

    /// The number of selections (fields, spreads, inline fragments) `set` holds with every
    /// fragment spread expanded (saturating). A fragment that spreads itself sets `cyclic`:
    /// validation would refuse the cycle, but async-graphql's recursion check would walk it
    /// first, expanding every spread up to 32 levels.
    fn expanded(&mut self, set: &'a SelectionSet) -> usize {
        let mut total: usize = 0;
        for selection in &set.items {
            let inner = match &selection.node {
                Selection::Field(field) => self.expanded(&field.node.selection_set.node),
                Selection::InlineFragment(fragment) => {
                    self.expanded(&fragment.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => {
                    let name = spread.node.fragment_name.node.as_str();
                    if let Some(found) = self.counted.get(name) {
                        *found
                    } else if self.entered.contains(name) {
                        self.cyclic = true;
                        0
                    } else if let Some(set) = self.enter(name) {
                        let found = self.expanded(set);
                        self.entered.remove(name);
                        self.counted.insert(name, found);
                        found
                    } else {
                        0
                    }
                }
            };
            total = total.saturating_add(1).saturating_add(inner);
        }
        total
    }

    /// The selections of fragment `name`, unless it is unknown or already being measured.
    fn enter(&mut self, name: &'a str) -> Option<&'a SelectionSet> {
        let set = &self.doc.fragments.get(name)?.node.selection_set.node;
        self.entered.insert(name).then_some(set)
    }
}
