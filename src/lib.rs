//! The smsledger service: configuration, the event store, projection sinks, the HTTP
//! server and the CLI commands. Business rules live in the `domain` crate.

#![forbid(unsafe_code)]

pub mod config;
pub mod store;
