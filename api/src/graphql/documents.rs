//! Documents a client sends again and again: parsed once, and reachable by hash.
//!
//! - The **document cache** keeps the parsed form of query texts that executed without a
//!   request error, so a repeated query skips the parser and all of validation but the one
//!   check that depends on the request: its variables against the arguments they feed
//!   ([`super::arguments`]).
//! - **Automatic Persisted Queries** (the `extensions.persistedQuery` protocol of Apollo
//!   clients): a client sends the SHA-256 of a query instead of its text; when the hash is
//!   unknown it gets `PERSISTED_QUERY_NOT_FOUND` and sends text and hash once, which is then
//!   remembered.
//!
//! Both are least-recently-used caches bounded by the bytes of query text they hold, so no
//! client can grow them without limit; both are per process (a replica that has not seen a
//! hash asks the client for the text once).

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::parser::types::ExecutableDocument;
use lru::LruCache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::arguments::Uses;
use super::error::code;

/// A least-recently-used map bounded by the bytes of query text its entries hold.
struct Bounded<V> {
    entries: LruCache<String, (V, usize)>,
    bytes: usize,
    budget: usize,
}

impl<V: Clone> Bounded<V> {
    fn new(budget: usize) -> Self {
        Self {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    fn get(&mut self, key: &str) -> Option<V> {
        self.entries.get(key).map(|(v, _)| v.clone())
    }

    /// `weight` is the query text the entry stands for; an entry larger than the whole budget
    /// is not kept.
    fn put(&mut self, key: String, value: V, weight: usize) {
        if weight > self.budget {
            return;
        }
        if let Some((_, (_, old))) = self.entries.push(key, (value, weight)) {
            self.bytes = self.bytes.saturating_sub(old);
        }
        self.bytes += weight;
        while self.bytes > self.budget {
            match self.entries.pop_lru() {
                Some((_, (_, old))) => self.bytes = self.bytes.saturating_sub(old),
                None => break,
            }
        }
    }
}

/// What a persisted-query request resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Persisted {
    /// The query text to run.
    Query(String),
    /// The request is wrong or the hash unknown: a request error with this message and code.
    Refused(&'static str, &'static str),
}

/// A document that ran without a request error.
pub struct Known {
    pub doc: ExecutableDocument,
    /// What its requests still need checked to skip full validation; `None`: they never skip it.
    pub uses: Option<Uses>,
    /// Whether its answers may be rendered as JSON in place ([`super::json::mergeless`]).
    pub mergeless: bool,
    /// Whether its queries may run without async-graphql's preparation ([`super::direct`]).
    pub direct: bool,
}

pub struct Documents {
    parsed: Mutex<Bounded<Arc<Known>>>,
    persisted: Mutex<Bounded<Arc<str>>>,
}

impl Documents {
    /// Caches holding at most `budget` bytes of query text each.
    pub fn new(budget: usize) -> Self {
        Self {
            parsed: Mutex::new(Bounded::new(budget)),
            persisted: Mutex::new(Bounded::new(budget)),
        }
    }

    /// The parsed form of `query`, when it ran before.
    pub fn parsed(&self, query: &str) -> Option<Arc<Known>> {
        self.parsed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(query)
    }

    /// Remembers a query that executed without a request error.
    pub fn remember(&self, query: String, known: Known) {
        let weight = query.len();
        self.parsed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .put(query, Arc::new(known), weight);
    }

    /// Applies `extensions.persistedQuery`, if the request has one, to the request's query text.
    /// `None` when the request does not use persisted queries.
    pub fn resolve(
        &self,
        query: Option<&str>,
        extensions: Option<&Map<String, Value>>,
    ) -> Option<Persisted> {
        let persisted = extensions?.get("persistedQuery")?;
        if persisted.get("version").and_then(Value::as_i64) != Some(1) {
            return Some(Persisted::Refused(
                "persistedQuery: only version 1 is supported",
                code::BAD_USER_INPUT,
            ));
        }
        let Some(hash) = persisted
            .get("sha256Hash")
            .and_then(Value::as_str)
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_ascii_lowercase)
        else {
            return Some(Persisted::Refused(
                "persistedQuery.sha256Hash must be 64 hexadecimal digits",
                code::BAD_USER_INPUT,
            ));
        };
        let mut store = self
            .persisted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(match query.filter(|q| !q.trim().is_empty()) {
            None => match store.get(&hash) {
                Some(text) => Persisted::Query(text.to_string()),
                None => {
                    Persisted::Refused("PersistedQueryNotFound", code::PERSISTED_QUERY_NOT_FOUND)
                }
            },
            Some(text) if hex::encode(Sha256::digest(text.as_bytes())) == hash => {
                store.put(hash, Arc::from(text), text.len());
                Persisted::Query(text.to_owned())
            }
            Some(_) => Persisted::Refused(
                "persistedQuery.sha256Hash does not match the query",
                code::BAD_USER_INPUT,
            ),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sha(text: &str) -> String {
        hex::encode(Sha256::digest(text.as_bytes()))
    }

    fn ext(hash: &str) -> Map<String, Value> {
        object(json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } }))
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn persisted_queries_follow_the_apollo_protocol() {
        let docs = Documents::new(1024);
        let q = "{ viewer { organizationId } }";
        assert_eq!(docs.resolve(Some(q), None), None);
        assert_eq!(docs.resolve(Some(q), Some(&Map::new())), None);
        // Unknown hash: the client is told to send the text.
        assert_eq!(
            docs.resolve(None, Some(&ext(&sha(q)))),
            Some(Persisted::Refused(
                "PersistedQueryNotFound",
                code::PERSISTED_QUERY_NOT_FOUND
            ))
        );
        // Text and hash: checked, remembered, run.
        assert_eq!(
            docs.resolve(Some(q), Some(&ext(&sha(q)))),
            Some(Persisted::Query(q.to_owned()))
        );
        // Then the hash alone (in either case) is enough.
        assert_eq!(
            docs.resolve(None, Some(&ext(&sha(q).to_uppercase()))),
            Some(Persisted::Query(q.to_owned()))
        );
        // A hash that is not the text's is refused, and not stored.
        let other = sha("{ other }");
        assert!(matches!(
            docs.resolve(Some(q), Some(&ext(&other))),
            Some(Persisted::Refused(_, code::BAD_USER_INPUT))
        ));
        assert!(matches!(
            docs.resolve(None, Some(&ext(&other))),
            Some(Persisted::Refused(_, code::PERSISTED_QUERY_NOT_FOUND))
        ));
        for bad in [
            json!({ "persistedQuery": { "version": 2, "sha256Hash": sha(q) } }),
            json!({ "persistedQuery": { "version": 1, "sha256Hash": "abc" } }),
            json!({ "persistedQuery": "x" }),
        ]
        .map(object)
        {
            assert!(matches!(
                docs.resolve(None, Some(&bad)),
                Some(Persisted::Refused(_, code::BAD_USER_INPUT))
            ));
        }
    }

    #[test]
    fn caches_stay_within_their_budget() {
        let docs = Documents::new(100);
        let doc = |q: &str| Known {
            doc: async_graphql::parser::parse_query(q).unwrap(),
            uses: None,
            mergeless: false,
            direct: false,
        };
        let a = format!("{{ a{} }}", " ".repeat(40));
        let b = format!("{{ b{} }}", " ".repeat(40));
        let c = format!("{{ c{} }}", " ".repeat(40));
        docs.remember(a.clone(), doc(&a));
        docs.remember(b.clone(), doc(&b));
        assert!(docs.parsed(&a).is_some(), "a is now the most recently used");
        docs.remember(c.clone(), doc(&c));
        assert!(docs.parsed(&b).is_none(), "the least recently used went");
        assert!(docs.parsed(&a).is_some() && docs.parsed(&c).is_some());
        let huge = format!("{{ h{} }}", " ".repeat(200));
        docs.remember(huge.clone(), doc(&huge));
        assert!(docs.parsed(&huge).is_none(), "larger than the budget");
        assert!(docs.parsed(&a).is_some(), "and nothing was evicted for it");
    }
}
