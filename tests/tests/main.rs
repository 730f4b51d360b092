//! End-to-end tests: the real application on port 0, against real PostgreSQL + Redis and a
//! fresh SQLite file, with a real SMTP server on loopback. Each scenario that touches a database
//! runs on both backends (`both!`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod app;
mod browser;
mod console;
mod email;
mod foundation;
mod live;
mod management;
mod observability;
mod read_path;
mod recipient;
mod rest;
mod socket;
mod tooling;
mod webhook;
