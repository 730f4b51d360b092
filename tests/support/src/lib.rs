//! Test-only helpers that both the `jobs` unit tests and the end-to-end tests use.
//!
//! It depends on no crate of this workspace, so `jobs` can take it as a dev-dependency while the
//! `tests` crate (which depends on `jobs`) takes it as a plain one: no cycle.

pub mod mail;
