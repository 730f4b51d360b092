#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Support library for the end-to-end tests: a real SMTP server on loopback, throw-away
//! PostgreSQL / SQLite databases, Redis helpers, polling, a small GraphQL-over-HTTP client and
//! an HTTP server that receives webhooks.
//!
//! Every helper fails loudly (panics with a clear message) when a service it needs is missing,
//! so a test can never pass silently without PostgreSQL or Redis.

pub mod browser;
pub mod callgrind;
pub mod graphql;
pub mod otlp;
pub mod pg;
pub mod poll;
pub mod published;
pub mod redis_env;
pub mod release;
pub mod rest;
pub mod scrape;
pub mod smtp;
pub mod smtp_sink;
pub mod sql;
pub mod webhook_receiver;
pub mod ws;
