//! The smsledger service: configuration, the event store, projection sinks, the HTTP
//! server and the CLI commands. Business rules live in the `domain` crate.

#![forbid(unsafe_code)]

pub mod cached_fold;
pub mod catalog;
pub mod cleanup;
pub mod commands;
pub mod config;
pub mod export;
pub mod http;
pub mod identity;
pub mod maintenance;
pub mod point_in_time;
pub mod pricing;
pub mod projection;
pub mod providers;
pub mod service;
pub mod sms_activate;
pub mod store;
pub mod verify;

/// mimalloc: the replay and append paths allocate many small JSON values; glibc's malloc was
/// the largest single cost in their profile (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub mod metrics;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod rate_limit;
pub mod read;
