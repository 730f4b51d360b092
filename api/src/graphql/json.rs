//! Responses written as JSON straight from what the resolvers produced.
//!
//! async-graphql answers with a tree of `Value`s: every object an `IndexMap` whose keys are
//! hashed (SipHash) on insert, every scalar its own `String`, all serialized by serde and then
//! dropped. On a page of twenty invitations with five events each, building, serializing and
//! dropping that tree was about a quarter of the server's instructions. A request run with
//! [`RenderJson`] in its data lets [`super::plain`] objects write their JSON themselves: such an
//! object answers with a `Value::Binary` holding its JSON text, which [`write_value`] copies as
//! it is. No type of the schema outputs binary data, so the variant means nothing else here.
//!
//! Only `/graphql` over HTTP sets it, for documents it has run before, and only when no
//! selection set of the document names a response key twice ([`mergeless`]): async-graphql
//! merges the objects of a repeated key, which it cannot do with rendered ones. Everything else
//! (WebSocket executions, live groups, first runs) gets `Value`s as before; the tests compare
//! the two answers byte for byte.

use std::collections::HashSet;

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ContextBase, Name, Response, Value};

/// Request data: the transport writes `Value::Binary` as JSON text (see the module docs).
pub struct RenderJson;

/// Whether objects of this execution write their own JSON.
pub fn rendering<T>(ctx: &ContextBase<'_, T>) -> bool {
    ctx.data_opt::<RenderJson>().is_some()
}

/// JSON text written by a resolver, as the value it stands for.
pub fn rendered(json: Vec<u8>) -> Value {
    Value::Binary(json.into())
}

/// Writes `value` as serde_json writes it, `Value::Binary` as the JSON text it holds.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(out, s),
        Value::Enum(name) => write_name(out, name),
        Value::Binary(json) => out.extend_from_slice(json),
        Value::List(items) => write_list(out, items, write_value),
        Value::Object(members) => {
            out.push(b'{');
            for (i, (key, member)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, key);
                out.push(b':');
                write_value(out, member);
            }
            out.push(b'}');
        }
    }
}

/// `[item,item,…]`, each item written by `write`.
pub fn write_list<I: IntoIterator>(
    out: &mut Vec<u8>,
    items: I,
    write: impl Fn(&mut Vec<u8>, I::Item),
) {
    out.push(b'[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// About how many bytes [`write_value`] writes for `value` (exactly, for rendered JSON), so a
/// buffer can be sized once instead of growing as it is written.
pub fn size_hint(value: &Value) -> usize {
    match value {
        Value::Binary(json) => json.len(),
        Value::String(s) => s.len() + 2,
        Value::List(items) => items.iter().map(|v| size_hint(v) + 1).sum::<usize>() + 2,
        Value::Object(members) => {
            let members: usize = members
                .iter()
                .map(|(k, v)| k.len() + 4 + size_hint(v))
                .sum();
            members + 2
        }
        _ => 8,
    }
}

/// `"name"` for a GraphQL name (a response key, an enum value): `[_A-Za-z][_0-9A-Za-z]*`, which
/// the parser and the schema guarantee, so nothing in it needs escaping.
pub fn write_name(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.push(b'"');
}

/// `"name":`, an object's member key (see [`write_name`]).
pub fn write_key(out: &mut Vec<u8>, name: &Name) {
    write_name(out, name);
    out.push(b':');
}

/// A JSON string, escaped by serde_json itself (so a rendered answer escapes exactly as a
/// serialized one).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a `str` into memory has no way to fail: the writer never errs, and a string
    // is always representable.
    let _ = serde_json::to_writer(out, s);
}

/// The body of `response` as async-graphql's `Response` serializes (`data`, then `extensions`
/// and `errors` when there are any), its data written by [`write_value`].
pub fn response_body(response: &Response) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint(&response.data) + 64);
    out.extend_from_slice(b"{\"data\":");
    write_value(&mut out, &response.data);
    if !response.extensions.is_empty() {
        out.extend_from_slice(b",\"extensions\":");
        serde_json::to_writer(&mut out, &response.extensions)?;
    }
    if !response.errors.is_empty() {
        out.extend_from_slice(b",\"errors\":");
        serde_json::to_writer(&mut out, &response.errors)?;
    }
    out.push(b'}');
    Ok(out)
}

/// Whether no selection set of `doc` names a response key twice, counting the fields of the
/// fragments it spreads (whatever their type conditions). Only for documents that passed
/// validation and the depth bound, which rule out fragment cycles and bound the expansion.
pub fn mergeless(doc: &ExecutableDocument) -> bool {
    doc.operations
        .iter()
        .all(|(_, operation)| mergeless_set(doc, &operation.node.selection_set.node))
}

fn mergeless_set(doc: &ExecutableDocument, set: &SelectionSet) -> bool {
    let mut keys = HashSet::new();
    let mut fields = Vec::new();
    collect_fields(doc, set, &mut fields);
    fields.iter().all(|field| {
        keys.insert(&field.response_key().node) && mergeless_set(doc, &field.selection_set.node)
    })
}

/// The fields of `set` with its fragments' fields in their place.
fn collect_fields<'a>(
    doc: &'a ExecutableDocument,
    set: &'a SelectionSet,
    fields: &mut Vec<&'a async_graphql::parser::types::Field>,
) {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => fields.push(&field.node),
            Selection::InlineFragment(fragment) => {
                collect_fields(doc, &fragment.node.selection_set.node, fields);
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    collect_fields(doc, &fragment.node.selection_set.node, fields);
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let value = Value::from_json(serde_json::json!({
            "a": [1, -2, 3.5, 1e300, true, false, null, "x\ny"],
            "b": { "c": {}, "d": [] },
        }))
        .unwrap();
        let response = Response::new(value).extension("tracing", Value::from(1));
        let mut expected = serde_json::to_vec(&response).unwrap();
        assert_eq!(response_body(&response).unwrap(), expected);
        let mut enumerated = Vec::new();
        write_value(&mut enumerated, &Value::Enum(Name::new("ACTIVE")));
        assert_eq!(enumerated, b"\"ACTIVE\"");
        // Rendered JSON is copied as it is, wherever it sits.
        let inner = rendered(br#"{"id":"1"}"#.to_vec());
        let outer = Value::List(vec![inner, Value::Null]);
        expected.clear();
        write_value(&mut expected, &outer);
        assert_eq!(expected, br#"[{"id":"1"},null]"#);
    }

    #[test]
    fn documents_that_repeat_a_response_key_are_not_mergeless() {
        let mergeless_doc = |q: &str| mergeless(&parse_query(q).unwrap());
        assert!(mergeless_doc(
            "query { a { b c } d: a { b } ...F } fragment F on Query { e { b } }"
        ));
        assert!(!mergeless_doc("{ a { b } a { c } }"));
        assert!(!mergeless_doc("{ a { b b } }"));
        assert!(!mergeless_doc("{ a { b ... on T { b } } }"));
        assert!(!mergeless_doc("{ a ...F } fragment F on Query { a }"));
        assert!(!mergeless_doc(
            "{ x { ...F } } fragment F on T { y { z ... on U { z } } }"
        ));
    }
}
