//! Queries whose document passed validation before, run without async-graphql's preparation.
//!
//! `Schema::execute` prepares every request before it resolves a field: even in its fast mode
//! it walks the document with the cache-control, complexity and depth visitors (each field
//! looked up in the registry by name), and it resolves the root through a wrapper that scans
//! the whole registry for federation entities before every root field. For the point lookup
//! that was a seventh of its instructions (callgrind: 145,700 a request with it, 125,000
//! without), all of it answering questions a cached document answered when it was first
//! validated:
//!
//! - the rules, the depth bound and the complexity bound judge the document alone, except for
//!   the values of variables, which [`super::arguments`] checks per request, and the
//!   complexity of a field computed from its arguments (page sizes), when a variable feeds
//!   one of the arguments it is computed from ([`SIZING`]): such documents keep the prepared
//!   path ([`Direct::runs`]);
//! - `@skip` and `@include` are removed per request in preparation, so documents with
//!   directives keep it too;
//! - introspection (`__schema`, `__type`) is answered by the root wrapper; such documents are
//!   validated fully every time ([`super::arguments::InputTypes::uses`]) and never come here.
//!
//! What is left is what `Schema::execute` does after preparing: resolve the operation's
//! selection on the query root with the request's variables and data, then collect the
//! errors and headers the resolvers left. async-graphql exposes that only through its
//! `#[doc(hidden)]` execution types (`QueryEnv`, `resolve_container`), so the crate is pinned
//! to one version, and tests compare this path's answers with `Schema::execute`'s.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::Extensions;
use async_graphql::futures_util::FutureExt;
use async_graphql::parser::types::{
    Directive, DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
    Selection, SelectionSet,
};
use async_graphql::registry::{MetaType, Registry};
use async_graphql::resolver_utils::resolve_container;
use async_graphql::{
    ContextDirective, CustomDirective, CustomDirectiveFactory, Data, Positioned, QueryEnv,
    QueryEnvInner, Request, Response, SchemaBuilder, SchemaEnv, ServerResult,
};

use super::arguments::holds_variable;
use super::query::Query;
use super::{AppSchema, Mutation, Subscription};

/// The arguments the schema's complexity expressions read (`#[graphql(complexity = …)]`):
/// page sizes and the inputs of bulk mutations. A variable in one of them makes the complexity,
/// and so the complexity bound, depend on the request. A test reads every complexity
/// expression of the schema's source and fails if one reads another argument.
pub const SIZING: [&str; 2] = ["first", "inputs"];

/// What a query needs to run on the schema without `Schema::execute`.
pub struct Direct {
    /// The schema's registry, data and directives, as resolvers see them.
    env: SchemaEnv,
    /// The schema's (empty) extension chain: async-graphql has no public constructor for it.
    extensions: Extensions,
    session: Arc<Data>,
    query: Query,
    /// Fields whose complexity is computed from their arguments.
    sized: HashSet<String>,
}

/// The schema's parts, taken from the context async-graphql hands a custom directive: the
/// only place outside the crate that holds them.
type Parts = Arc<Mutex<Option<(SchemaEnv, Extensions)>>>;

/// A directive the schema's clients cannot name (it is not in the registry, so full
/// validation refuses it, and only documents that passed full validation reach the schema it
/// is registered on); used once, at start-up, to take the schema's parts.
struct Probe(Parts);

const PROBE: &str = "gatewayProbe";

impl CustomDirectiveFactory for Probe {
    fn name(&self) -> std::borrow::Cow<'static, str> {
        PROBE.into()
    }

    /// Nothing: the registry stays the schema's own.
    fn register(&self, _: &mut Registry) {}

    fn create(
        &self,
        ctx: &ContextDirective<'_>,
        _: &Directive,
    ) -> ServerResult<Box<dyn CustomDirective>> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((ctx.schema_env.clone(), ctx.query_env.extensions.clone()));
        Ok(Box::new(PassThrough))
    }
}

struct PassThrough;

impl CustomDirective for PassThrough {}

impl Direct {
    /// The schema `builder` builds, and what runs its queries directly. The schema must have
    /// no extensions (the gateway's schemas have none).
    pub fn build(builder: SchemaBuilder<Query, Mutation, Subscription>) -> (AppSchema, Self) {
        let parts = Parts::default();
        let schema = builder.directive(Probe(parts.clone())).finish();
        // `apiVersion` reads no data and waits for nothing, so the request finishes at its
        // first poll.
        let answered = schema
            .execute(format!("{{ apiVersion @{PROBE} }}"))
            .now_or_never();
        let taken = parts.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some((env, extensions)) = answered.filter(|r| r.errors.is_empty()).and(taken) else {
            panic!("the probe query did not answer at once");
        };
        let sized = env
            .registry
            .types
            .values()
            .filter_map(|ty| match ty {
                MetaType::Object { fields, .. } | MetaType::Interface { fields, .. } => {
                    Some(fields)
                }
                _ => None,
            })
            .flat_map(|fields| fields.values())
            .filter(|field| field.compute_complexity.is_some())
            .map(|field| field.name.clone())
            .collect();
        let direct = Self {
            env,
            extensions,
            session: Arc::default(),
            query: Query::default(),
            sized,
        };
        (schema, direct)
    }

    /// Whether the queries of `doc`, once validated, may run here on any request whose
    /// variables fit: no directive anywhere, and no variable in a [`SIZING`] argument of a
    /// field whose complexity is computed (by field name, whatever the type: a superset).
    pub fn runs(&self, doc: &ExecutableDocument) -> bool {
        doc.operations
            .iter()
            .all(|(_, op)| op.node.directives.is_empty() && self.plain(&op.node.selection_set.node))
            && doc.fragments.values().all(|fragment| {
                fragment.node.directives.is_empty() && self.plain(&fragment.node.selection_set.node)
            })
    }

    fn plain(&self, set: &SelectionSet) -> bool {
        set.items.iter().all(|selection| match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                field.directives.is_empty()
                    && !(self.sized.contains(field.name.node.as_str())
                        && field.arguments.iter().any(|(name, value)| {
                            SIZING.contains(&name.node.as_str()) && holds_variable(&value.node)
                        }))
                    && self.plain(&field.selection_set.node)
            }
            Selection::FragmentSpread(spread) => spread.node.directives.is_empty(),
            Selection::InlineFragment(inline) => {
                inline.node.directives.is_empty() && self.plain(&inline.node.selection_set.node)
            }
        })
    }

    /// Runs the query of `doc` that `request` selects, as `Schema::execute` would after
    /// preparing it; `None` (the request given back) when `doc` has no such query.
    pub async fn execute(
        &self,
        request: Request,
        doc: &ExecutableDocument,
    ) -> Result<Response, Request> {
        let Some((operation_name, operation)) =
            selected_query(doc, request.operation_name.as_deref())
        else {
            return Err(request);
        };
        let env = QueryEnv::new(QueryEnvInner {
            extensions: self.extensions.clone(),
            variables: request.variables,
            operation_name: operation_name.map(str::to_owned),
            operation: header(operation),
            fragments: doc.fragments.clone(),
            uploads: request.uploads,
            session_data: self.session.clone(),
            query_data: Arc::new(request.data),
            http_headers: Mutex::default(),
            introspection_mode: request.introspection_mode,
            errors: Mutex::default(),
        });
        let ctx = env.create_context(&self.env, None, &operation.node.selection_set, None);
        let mut response = match resolve_container(&ctx, &self.query).await {
            Ok(value) => Response::new(value),
            Err(error) => Response::from_errors(vec![error]),
        };
        response.http_headers = std::mem::take(
            &mut *env
                .http_headers
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        response.errors.extend(std::mem::take(
            &mut *env.errors.lock().unwrap_or_else(PoisonError::into_inner),
        ));
        Ok(response)
    }
}

/// The query `name` selects in `doc`, with the name async-graphql gives the operation. An
/// unnamed operation asked for by name is left to `Schema::execute`, which refuses it.
fn selected_query<'d>(
    doc: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<(Option<&'d str>, &'d Positioned<OperationDefinition>)> {
    if name.is_some() && matches!(doc.operations, DocumentOperations::Single(_)) {
        return None;
    }
    let (name, operation) = super::selected_operation(doc, name)?;
    (operation.node.ty == OperationType::Query).then_some((name, operation))
}

/// `operation` without its selection set, for the request's query environment. Resolvers read
/// the operation there only for its variable definitions (defaults); the selection set is
/// resolved from the cached document itself, so it is not copied for every request (copying
/// and dropping it was 4 % of a point lookup's instructions).
fn header(operation: &Positioned<OperationDefinition>) -> Positioned<OperationDefinition> {
    let node = &operation.node;
    Positioned::new(
        OperationDefinition {
            ty: node.ty,
            variable_definitions: node.variable_definitions.clone(),
            directives: node.directives.clone(),
            selection_set: Positioned::new(SelectionSet::default(), node.selection_set.pos),
        },
        operation.pos,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::path::Path;

    /// The identifiers a complexity expression reads as values: not functions, methods,
    /// constants, types or keywords.
    fn read_by(expr: &str) -> Vec<String> {
        let mut read = Vec::new();
        let bytes = expr.as_bytes();
        let mut at = 0;
        while at < bytes.len() {
            let start = at;
            while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'_') {
                at += 1;
            }
            if at == start {
                at += 1;
                continue;
            }
            let word = &expr[start..at];
            let method = start > 0 && bytes[start - 1] == b'.';
            let called = expr[at..].trim_start().starts_with('(');
            let value = word.starts_with(|c: char| c.is_ascii_lowercase())
                && !matches!(word, "as" | "usize" | "child_complexity");
            if value && !method && !called {
                read.push(word.to_owned());
            }
        }
        read
    }

    fn complexity_expressions(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                complexity_expressions(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("complexity = \"").skip(1) {
                    found.push(part.split('"').next().unwrap().to_owned());
                }
            }
        }
    }

    #[test]
    fn complexity_expressions_read_only_the_sizing_arguments() {
        let mut found = Vec::new();
        complexity_expressions(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/graphql"),
            &mut found,
        );
        assert!(
            found.len() >= 5,
            "the schema's complexity expressions: {found:?}"
        );
        for expr in &found {
            for argument in read_by(expr) {
                assert!(
                    super::SIZING.contains(&argument.as_str()),
                    "`{expr}` reads `{argument}`: add it to SIZING"
                );
            }
        }
        assert_eq!(
            read_by("first.unwrap_or(20).max(0) as usize * child_complexity + 1"),
            ["first"]
        );
        assert_eq!(
            read_by("list_complexity(limit, TOP, child_complexity)"),
            ["limit"]
        );
    }
}
