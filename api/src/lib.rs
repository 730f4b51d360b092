//! The invitations gateway: configuration, the HTTP server (GraphQL, REST, hosted pages, console,
//! health and metrics) and the composition root that wires the database, the queues and the
//! workers together.

pub mod auth;
pub mod cli;
pub mod client;
pub mod config;
pub mod console;
pub mod db;
pub mod error;
pub mod events;
pub mod graphql;
pub mod health;
pub mod metrics;
pub mod operations;
pub mod public;
pub mod ratelimit;
pub mod rest;
pub mod server;
pub mod startup;
pub mod state;
pub mod telemetry;
