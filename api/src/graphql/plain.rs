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
//!
//! When the transport takes rendered JSON (see `json.rs`), the same pass writes the object's
//! JSON text instead of building a `Value`: the plain fields straight from the row, the others'
//! values where their keys belong.

use std::borrow::Cow;

use async_graphql::connection::{Connection, CursorType, Edge, EmptyFields};
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
use crate::graphql::json;

/// An object whose plain fields can be answered without a future.
pub trait PlainFields: ContainerType {
    /// The value of the field `ctx` selects when it is a plain read of the object; `None` sends
    /// the field to [`PlainFields::resolve_other`].
    fn plain_field(&self, ctx: &Context<'_>) -> Option<Value>;

    /// Whether the field `name` can be plain; `false` sends it to
    /// [`PlainFields::resolve_other`] without a try, so an object of such fields alone starts
    /// its JSON with no buffer to grow.
    fn may_be_plain(_name: &str) -> bool {
        true
    }

    /// Writes the JSON of the field `ctx` selects when it is a plain read, as
    /// [`PlainFields::plain_field`] would answer it; `false` (nothing written) sends the field
    /// to [`PlainFields::resolve_other`].
    fn write_field(&self, ctx: &Context<'_>, out: &mut Vec<u8>) -> bool {
        self.plain_field(ctx)
            .map(|value| json::write_value(out, &value))
            .is_some()
    }

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
            Some(fields) if json::rendering(ctx) => {
                let object = render_plain(ctx, &self.0, &fields).await;
                Ok(object.map_or(Value::Null, json::rendered))
            }
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
    let outcomes = resolve_others(ctx, root, others.iter().map(|&(_, field)| field)).await;
    for ((key, _), outcome) in others.into_iter().zip(outcomes) {
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

/// The fields of `root` that are not plain, concurrently, their outcomes in the same order.
async fn resolve_others<'a, T: PlainFields>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
    mut others: impl ExactSizeIterator<Item = &'a Positioned<Field>>,
) -> Vec<ServerResult<Option<Value>>> {
    let resolve = |field: &'a Positioned<Field>| async move {
        let ctx_field = ctx.with_field(field);
        root.resolve_other(&ctx_field).await
    };
    // Most objects here have one such field (an edge's node, an invitation's events): awaited
    // in place, its future (which holds the whole nested resolution) is not moved to the heap.
    if others.len() == 1
        && let Some(field) = others.next()
    {
        vec![resolve(field).await]
    } else {
        join_all(others.map(resolve)).await
    }
}

/// [`resolve_plain`] writing JSON text: the object's members as `,"key":value` in query order
/// (the plain ones as they are read, the others where they belong once resolved), then the
/// first comma becomes the opening brace. `None` when no member is left (every field failed),
/// which async-graphql answers as null.
async fn render_plain<'a, T: PlainFields>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
    fields: &[&'a Positioned<Field>],
) -> Option<Vec<u8>> {
    let may_be_plain = |field: &Positioned<Field>| match field.node.name.node.as_str() {
        "__typename" => true,
        name => T::may_be_plain(name),
    };
    // About what a member takes (a key and an id or a timestamp), so most objects' plain
    // members fit without the buffer growing.
    let plain = fields.iter().filter(|field| may_be_plain(field)).count();
    let mut out = Vec::with_capacity(if plain == 0 { 0 } else { 48 * plain + 2 });
    // The fields that are not plain, each with where its member goes in `out`.
    let mut others: Vec<(usize, &'a Positioned<Field>)> = Vec::new();
    for &field in fields {
        let mark = out.len();
        if !may_be_plain(field) {
            others.push((mark, field));
            continue;
        }
        out.push(b',');
        json::write_key(&mut out, &field.node.response_key().node);
        if field.node.name.node == "__typename" {
            json::write_name(&mut out, &root.introspection_type_name());
        } else if !root.write_field(&ctx.with_field(field), &mut out) {
            out.truncate(mark);
            others.push((mark, field));
        }
    }
    if !others.is_empty() {
        let outcomes = resolve_others(ctx, root, others.iter().map(|&(_, field)| field)).await;
        let members: usize = outcomes
            .iter()
            .map(|outcome| match outcome {
                Ok(Some(value)) => json::size_hint(value) + 32,
                _ => 32,
            })
            .sum();
        // Usually the other fields come last (an edge's node, an invitation's events): their
        // members go on the end; otherwise the plain members after them move up.
        let appending = others.iter().all(|&(mark, _)| mark == out.len());
        let mut body = if appending {
            out.reserve(members + 1);
            std::mem::take(&mut out)
        } else {
            Vec::with_capacity(out.len() + members + 1)
        };
        let mut copied = 0;
        for ((mark, field), outcome) in others.into_iter().zip(outcomes) {
            if !appending {
                body.extend_from_slice(&out[copied..mark]);
                copied = mark;
            }
            match outcome {
                Ok(value) => {
                    body.push(b',');
                    json::write_key(&mut body, &field.node.response_key().node);
                    json::write_value(&mut body, &value.unwrap_or_default());
                }
                Err(error) => ctx.add_error(error),
            }
        }
        if !appending {
            body.extend_from_slice(&out[copied..]);
        }
        out = body;
    }
    let first = out.first_mut()?;
    *first = b'{';
    out.push(b'}');
    Some(out)
}

/// A page resolves its edges itself, each edge as a plain object (its cursor read in place),
/// instead of a list of parallel objects of two fields each.
impl<C, N, F> PlainFields for Connection<C, N, F, EmptyFields>
where
    C: CursorType + Send + Sync,
    N: OutputType,
    F: ObjectType,
{
    fn plain_field(&self, _ctx: &Context<'_>) -> Option<Value> {
        None
    }

    fn may_be_plain(_name: &str) -> bool {
        false
    }

    async fn resolve_other(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        if ctx.item.node.name.node != "edges" {
            return self.resolve_field(ctx).await;
        }
        let ctx_edges = ctx.with_selection_set(&ctx.item.node.selection_set);
        let Some(fields) = plain_selection(&ctx_edges) else {
            return self.resolve_field(ctx).await;
        };
        if json::rendering(ctx) {
            let edges = self.edges.iter().enumerate().map(|(index, edge)| {
                let ctx_edge = ctx_edges.with_index(index);
                let fields = &fields;
                async move { render_plain(&ctx_edge, edge, fields).await }
            });
            let edges = join_all(edges).await;
            let bytes: usize = edges
                .iter()
                .map(|e| e.as_ref().map_or(4, Vec::len) + 1)
                .sum();
            let mut list = Vec::with_capacity(bytes + 2);
            json::write_list(&mut list, edges, |list, edge| match edge {
                Some(object) => list.extend_from_slice(&object),
                None => list.extend_from_slice(b"null"),
            });
            return Ok(Some(json::rendered(list)));
        }
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

/// An edge's cursor is encoded when it is selected, not when the page is built.
impl<C: CursorType + Send + Sync, N: OutputType> PlainFields for Edge<C, N, EmptyFields> {
    fn plain_field(&self, ctx: &Context<'_>) -> Option<Value> {
        (ctx.item.node.name.node == "cursor").then(|| Value::String(self.cursor.encode_cursor()))
    }

    fn may_be_plain(name: &str) -> bool {
        name == "cursor"
    }
}

/// A resolver's return value as the GraphQL value async-graphql would render for it.
pub trait PlainValue: Sized {
    fn plain_value(self) -> Value;

    /// Writes the JSON of [`PlainValue::plain_value`] without building it, where the type
    /// knows how.
    fn write_json(self, out: &mut Vec<u8>) {
        json::write_value(out, &self.plain_value());
    }
}

impl PlainValue for ID {
    fn plain_value(self) -> Value {
        Value::String(self.0)
    }

    fn write_json(self, out: &mut Vec<u8>) {
        json::write_str(out, &self);
    }
}

impl PlainValue for String {
    fn plain_value(self) -> Value {
        Value::String(self)
    }

    fn write_json(self, out: &mut Vec<u8>) {
        json::write_str(out, &self);
    }
}

impl PlainValue for &str {
    fn plain_value(self) -> Value {
        Value::String(self.to_owned())
    }

    fn write_json(self, out: &mut Vec<u8>) {
        json::write_str(out, self);
    }
}

/// Implements [`PlainValue`] for integers, written with their decimal digits.
macro_rules! plain_integers {
    ($($int:ty),*) => {
        $(impl PlainValue for $int {
            fn plain_value(self) -> Value {
                async_graphql::ScalarType::to_value(&self)
            }

            fn write_json(self, out: &mut Vec<u8>) {
                out.extend_from_slice(itoa::Buffer::new().format(self).as_bytes());
            }
        })*
    };
}

plain_integers!(i32, i64);

impl PlainValue for DateTime<Utc> {
    fn plain_value(self) -> Value {
        async_graphql::ScalarType::to_value(&self)
    }

    fn write_json(self, out: &mut Vec<u8>) {
        // RFC 3339 as the scalar renders it: digits, `-`, `:`, `T`, `.` and `+`, nothing to
        // escape.
        json::write_name(out, &self.to_rfc3339());
    }
}

/// Implements [`PlainValue`] for enums of the schema: the value's GraphQL name.
macro_rules! plain_enums {
    ($($enum:ty),* $(,)?) => {
        $(impl PlainValue for $enum {
            fn plain_value(self) -> Value {
                enum_value(self)
            }

            fn write_json(self, out: &mut Vec<u8>) {
                match <$enum as async_graphql::resolver_utils::EnumType>::items()
                    .iter()
                    .find(|item| item.value == self)
                {
                    Some(item) => json::write_name(out, item.name),
                    None => json::write_value(out, &enum_value(self)),
                }
            }
        })*
    };
}

plain_enums!(EventType, InvitationStatus, InvitationType, PrefillField);

impl PlainValue for &[String] {
    fn plain_value(self) -> Value {
        Value::List(self.iter().map(|s| Value::String(s.clone())).collect())
    }

    fn write_json(self, out: &mut Vec<u8>) {
        json::write_list(out, self.iter(), |out, s| json::write_str(out, s));
    }
}

impl<T: PlainValue> PlainValue for Option<T> {
    fn plain_value(self) -> Value {
        self.map_or(Value::Null, PlainValue::plain_value)
    }

    fn write_json(self, out: &mut Vec<u8>) {
        match self {
            Some(value) => value.write_json(out),
            None => out.extend_from_slice(b"null"),
        }
    }
}

impl<T: PlainValue> PlainValue for Vec<T> {
    fn plain_value(self) -> Value {
        Value::List(self.into_iter().map(PlainValue::plain_value).collect())
    }

    fn write_json(self, out: &mut Vec<u8>) {
        json::write_list(out, self, |out, item| item.write_json(out));
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
pub fn ready<V: PlainValue>(resolver: impl Future<Output = async_graphql::Result<V>>) -> Option<V> {
    resolver.now_or_never()?.ok()
}

/// Implements [`PlainFields`] for an `#[Object]` type by naming which of its resolvers are plain
/// reads: `"graphqlName" => method`. The values come from the resolvers themselves (as
/// `#[Object]` rewrites them: taking the field's context, returning a `Result`), so they cannot
/// differ from what the type's own resolution gives.
macro_rules! plain_fields {
    ($ty:ty { $($name:literal => $method:ident),* $(,)? }) => {
        impl $crate::graphql::plain::PlainFields for $ty {
            fn plain_field(&self, ctx: &async_graphql::Context<'_>) -> Option<async_graphql::Value> {
                use $crate::graphql::plain::{PlainValue, ready};
                match ctx.item.node.name.node.as_str() {
                    $($name => ready(self.$method(ctx)).map(PlainValue::plain_value),)*
                    _ => None,
                }
            }

            fn may_be_plain(name: &str) -> bool {
                matches!(name, $($name)|*)
            }

            fn write_field(&self, ctx: &async_graphql::Context<'_>, out: &mut Vec<u8>) -> bool {
                use $crate::graphql::plain::{PlainValue, ready};
                match ctx.item.node.name.node.as_str() {
                    $($name => ready(self.$method(ctx)).map(|v| v.write_json(out)).is_some(),)*
                    _ => false,
                }
            }
        }
    };
}
pub(crate) use plain_fields;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use async_graphql::connection::{Connection, Edge, EmptyFields};
    use async_graphql::{EmptyMutation, EmptySubscription, ID, Object, Request, Result, Schema};
    use chrono::{DateTime, TimeZone, Utc};

    use super::Plain;
    use crate::graphql::enums::InvitationStatus;
    use async_graphql::parser::parse_query;

    use crate::graphql::json::{RenderJson, mergeless, response_body};

    struct Row(i64);

    #[Object]
    impl Row {
        async fn id(&self) -> ID {
            ID(self.0.to_string())
        }
        async fn name(&self) -> String {
            format!("row \"{}\"\n\u{1}é", self.0)
        }
        async fn at(&self) -> DateTime<Utc> {
            Utc.timestamp_opt(1_700_000_000 + self.0, 123_456_000)
                .unwrap()
        }
        async fn status(&self) -> InvitationStatus {
            InvitationStatus::Revoked
        }
        async fn tags(&self) -> Vec<String> {
            vec!["a".into(), "b\\c".into()]
        }
        async fn missing(&self) -> Option<i32> {
            None
        }
        async fn failing(&self) -> Result<i32> {
            Err("this field fails".into())
        }
        async fn next(&self) -> Plain<Leaf> {
            Plain(Leaf(self.0 + 1))
        }
    }

    struct Leaf(i64);

    #[Object]
    impl Leaf {
        async fn id(&self) -> ID {
            ID(self.0.to_string())
        }
        async fn at(&self) -> DateTime<Utc> {
            Utc.timestamp_opt(1_700_000_000 + self.0, 0).unwrap()
        }
    }

    plain_fields!(Leaf { "id" => id, "at" => at });

    plain_fields!(Row {
        "id" => id,
        "name" => name,
        "at" => at,
        "status" => status,
        "tags" => tags,
        "missing" => missing,
    });

    struct Query;

    #[Object]
    impl Query {
        async fn rows(&self) -> Vec<Plain<Row>> {
            (0..3).map(|i| Plain(Row(i))).collect()
        }
        async fn page(&self) -> Plain<Connection<i64, Plain<Row>, EmptyFields, EmptyFields>> {
            let mut page = Connection::new(false, true);
            page.edges
                .extend((10..13).map(|i| Edge::new(i * 100, Plain(Row(i)))));
            Plain(page)
        }
    }

    /// Whether a value holds JSON an object rendered itself.
    fn has_rendered(value: &async_graphql::Value) -> bool {
        match value {
            async_graphql::Value::Binary(_) => true,
            async_graphql::Value::List(items) => items.iter().any(has_rendered),
            async_graphql::Value::Object(members) => members.values().any(has_rendered),
            _ => false,
        }
    }

    #[tokio::test]
    async fn rendered_objects_answer_byte_for_byte_what_values_answer() {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let plain_selections = [
            "{ rows { id name at status tags missing __typename next { id at } } }",
            "{ rows { id failing name } }",
            "{ rows { n: next { id } id failing name next { at } } }",
            "{ page { edges { cursor node { id status next { at } } } pageInfo { hasNextPage endCursor } } }",
            "{ a: rows { x: id y: name } page { edges { node { tags } } } }",
            // async-graphql drops `@skip` and `@include` before it executes.
            "{ rows { id @include(if: true) name @skip(if: true) at } }",
        ];
        // A fragment: the type's own resolver, rendered below it; a repeated key: nothing
        // rendered (async-graphql merges the objects of a repeated key); an object whose every
        // field fails: null.
        let other_selections = [
            "{ rows { failing } }",
            "{ rows { ... on Row { id } name } }",
            "{ page { edges { node { id } node { name } } } }",
        ];
        for (query, rendered) in plain_selections
            .iter()
            .map(|q| (q, true))
            .chain(other_selections.iter().map(|q| (q, false)))
        {
            let values = schema.execute(Request::new(*query)).await;
            // As `/graphql` over HTTP decides (`http.rs`).
            let mut request = Request::new(*query);
            if mergeless(&parse_query(query).unwrap()) {
                request = request.data(RenderJson);
            }
            let written = schema.execute(request).await;
            assert!(!has_rendered(&values.data), "{query}");
            assert_eq!(has_rendered(&written.data), rendered, "{query}");
            let expected = String::from_utf8(serde_json::to_vec(&values).unwrap()).unwrap();
            let body = String::from_utf8(response_body(&written).unwrap()).unwrap();
            assert_eq!(body, expected, "{query}");
        }
    }
}
