//! The smsledger service: configuration, the event store, projection sinks, the HTTP
//! server and the CLI commands. Business rules live in the `domain` crate.

#![forbid(unsafe_code)]

pub mod config;
pub mod store;
pub mod projection;
pub mod service;
pub mod verify;
pub mod http;
pub mod point_in_time;
pub mod commands;
