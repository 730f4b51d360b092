//! Objects whose fields are mostly plain reads of a row, resolved without a future per field.
//!
//! async-graphql resolves every field of an object as a boxed future, and an object resolved in
//! parallel (the default) as a `FuturesUnordered` of them; a profile of a page of twenty
//! invitations with five events each put that machinery at a large share of the server's CPU,
//! most of it for fields that only copy a column. [`Plain`] wraps such an object: when the
//! selection is a plain list of fields (no fragments, directives or repeated response keys),
//! the fields the type answers synchronously ([`PlainFields::plain_field`]) are read in one
//! pass, and only the others (loaders, arguments, nested objects) run as futures, all at once.
//! Any other selection goes to the type's own resolver, so the answer is always the one the
//! `#[Object]` resolvers give; the schema is the wrapped type's, unchanged.
//!
//! The schema registers no async-graphql extension (see `gateway.rs`); with one, async-graphql
//! would send every field through it, which this path does not do.

use std::borrow::Cow;

use async_graphql::connection::{Connection, Edge, EmptyFields};
use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::{ContainerType, enum_value};
use async_graphql::{
    Context, ContextSelectionSet, ID, Json, Name, ObjectType, OutputType, Positioned, ServerResult,
    Value,
};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{join_all, try_join_all};

use crate::graphql::enums::{EventType, InvitationStatus, InvitationType, PrefillField};

/// An object whose plain fields can be answered without a future.
pub trait PlainFields: ContainerType {
    /// The value of the field `ctx` selects when it is a plain read of the object; `None` sends
    /// the field to [`PlainFields::resolve_other`].
    fn plain_field(&self, ctx: &Context<'_>) -> Option<Value>;

    /// Resolves a field that is not plain; by default the type's own resolver.
    fn resolve_other(
        &self,
        ctx: &Context<'_>,
    ) -> impl Future<Output = ServerResult<Option<Value>>> + Send {
        self.resolve_field(ctx)
    }
}

/// `T` resolved through its [`PlainFields`]; the same GraphQL type as `T`.
pub struct Plain<T>(pub T);

impl<T: PlainFields> OutputType for Plain<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match plain_selection(ctx) {
            Some(fields) => Ok(resolve_plain(ctx, &self.0, &fields).await),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

/// The fields of the selection when it is a plain list: no fragments, no directives, every
/// response key once (async-graphql merges repeated keys, which this path does not).
fn plain_selection<'a>(ctx: &ContextSelectionSet<'a>) -> Option<Vec<&'a Positioned<Field>>> {
    let items = &ctx.item.node.items;
    let mut fields: Vec<&'a Positioned<Field>> = Vec::with_capacity(items.len());
    for item in items {
        let Selection::Field(field) = &item.node else {
            return None;
        };
        let key = &field.node.response_key().node;
        if !field.node.directives.is_empty()
            || fields.iter().any(|f| &f.node.response_key().node == key)
        {
            return None;
        }
        fields.push(field);
    }
    Some(fields)
}

/// Resolves `fields` of `root`: the plain ones in one pass, the others concurrently. As in
/// async-graphql, a field whose resolver fails is reported and left out of the object, and the
/// keys come in the order of the query.
async fn resolve_plain<'a, T: PlainFields>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
    fields: &[&'a Positioned<Field>],
) -> Value {
    let mut results: IndexMap<Name, Value> = IndexMap::with_capacity(fields.len());
    let mut others: Vec<(Name, &'a Positioned<Field>)> = Vec::new();
    for &field in fields {
        let key = field.node.response_key().node.clone();
        let value = if field.node.name.node == "__typename" {
            Some(Value::String(root.introspection_type_name().into_owned()))
        } else {
            root.plain_field(&ctx.with_field(field))
        };
        match value {
            Some(value) => {
                results.insert(key, value);
            }
            None => {
                // A placeholder keeps the key in query order; the resolver's value replaces it.
                results.insert(key.clone(), Value::Null);
                others.push((key, field));
            }
        }
    }
    let resolve = |(key, field): (Name, &'a Positioned<Field>)| async move {
        let ctx_field = ctx.with_field(field);
        (key, root.resolve_other(&ctx_field).await)
    };
    // Most objects here have one such field (an edge's node, an invitation's events): awaited
    // in place, its future (which holds the whole nested resolution) is not moved to the heap.
    let outcomes = if others.len() == 1 {
        vec![resolve(others.swap_remove(0)).await]
    } else {
        join_all(others.into_iter().map(resolve)).await
    };
    for (key, outcome) in outcomes {
        match outcome {
            Ok(value) => {
                results.insert(key, value.unwrap_or_default());
            }
            Err(error) => {
                results.shift_remove(&key);
                ctx.add_error(error);
            }
        }
    }
    if results.is_empty() {
        Value::Null
    } else {
        Value::Object(results)
    }
}

/// A page resolves its edges itself, each edge as a plain object (its cursor read in place),
/// instead of a list of parallel objects of two fields each.
impl<N, F> PlainFields for Connection<String, N, F, EmptyFields>
where
    N: OutputType,
    F: ObjectType,
{
    fn plain_field(&self, _ctx: &Context<'_>) -> Option<Value> {
        None
    }

    async fn resolve_other(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        if ctx.item.node.name.node != "edges" {
            return self.resolve_field(ctx).await;
        }
        let ctx_edges = ctx.with_selection_set(&ctx.item.node.selection_set);
        let Some(fields) = plain_selection(&ctx_edges) else {
            return self.resolve_field(ctx).await;
        };
        // As async-graphql's lists: each item under its index, an item's failure the list's.
        let edges = self.edges.iter().enumerate().map(|(index, edge)| {
            let ctx_edge = ctx_edges.with_index(index);
            let fields = &fields;
            async move {
                let value = resolve_plain(&ctx_edge, edge, fields).await;
                ServerResult::Ok(value)
            }
        });
        Ok(Some(Value::List(try_join_all(edges).await?)))
    }
}

impl<N: OutputType> PlainFields for Edge<String, N, EmptyFields> {
    fn plain_field(&self, ctx: &Context<'_>) -> Option<Value> {
        (ctx.item.node.name.node == "cursor").then(|| Value::String(self.cursor.clone()))
    }
}

/// A resolver's return value as the GraphQL value async-graphql would render for it.
pub trait PlainValue {
    fn plain_value(self) -> Value;
}

/// Implements [`PlainValue`] for scalars and enums of the schema.
macro_rules! plain_values {
    (scalars: $($scalar:ty),* ; enums: $($enum:ty),* $(,)?) => {
        $(impl PlainValue for $scalar {
            fn plain_value(self) -> Value {
                async_graphql::ScalarType::to_value(&self)
            }
        })*
        $(impl PlainValue for $enum {
            fn plain_value(self) -> Value {
                enum_value(self)
            }
        })*
    };
}

plain_values!(
    scalars: ID, String, i32, i64, DateTime<Utc>;
    enums: EventType, InvitationStatus, InvitationType, PrefillField,
);

impl PlainValue for &str {
    fn plain_value(self) -> Value {
        Value::String(self.to_owned())
    }
}

impl PlainValue for &[String] {
    fn plain_value(self) -> Value {
        Value::List(self.iter().map(|s| Value::String(s.clone())).collect())
    }
}

impl<T: PlainValue> PlainValue for Option<T> {
    fn plain_value(self) -> Value {
        self.map_or(Value::Null, PlainValue::plain_value)
    }
}

impl<T: PlainValue> PlainValue for Vec<T> {
    fn plain_value(self) -> Value {
        Value::List(self.into_iter().map(PlainValue::plain_value).collect())
    }
}

impl PlainValue for Json<serde_json::Value> {
    fn plain_value(self) -> Value {
        // As `Json`'s own resolver: a value that does not convert renders as null.
        async_graphql::to_value(&self.0).unwrap_or_default()
    }
}

/// The value of an `#[Object]` resolver that needs nothing but the object: it is ready at its
/// first poll. One that were not ready, or failed, goes to the type's resolver instead, which
/// reports the failure as async-graphql does.
pub fn ready<V: PlainValue>(
    resolver: impl Future<Output = async_graphql::Result<V>>,
) -> Option<Value> {
    resolver.now_or_never()?.ok().map(PlainValue::plain_value)
}

/// Implements [`PlainFields`] for an `#[Object]` type by naming which of its resolvers are plain
/// reads: `"graphqlName" => method`. The values come from the resolvers themselves (as
/// `#[Object]` rewrites them: taking the field's context, returning a `Result`), so they cannot
/// differ from what the type's own resolution gives.
macro_rules! plain_fields {
    ($ty:ty { $($name:literal => $method:ident),* $(,)? }) => {
        impl $crate::graphql::plain::PlainFields for $ty {
            fn plain_field(&self, ctx: &async_graphql::Context<'_>) -> Option<async_graphql::Value> {
                match ctx.item.node.name.node.as_str() {
                    $($name => $crate::graphql::plain::ready(self.$method(ctx)),)*
                    _ => None,
                }
            }
        }
    };
}
pub(crate) use plain_fields;
