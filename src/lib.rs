//! The smsledger service: configuration, the event store, projection sinks, the HTTP
//! server and the CLI commands. Business rules live in the `domain` crate.

#![deny(unsafe_code)]

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
pub mod rfc3339;
pub mod search;
pub mod service;
pub mod sms_activate;
pub mod store;
pub mod verify;

/// mimalloc: the replay and append paths allocate many small JSON values; glibc's malloc was
/// the largest single cost in their profile (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives the memory this thread freed back to the system now rather than later. mimalloc keeps
/// freed memory for reuse by the thread that freed it; a blocking-pool thread that hashed a
/// password (19 MiB) and then idles kept it for good (decision 0031). The one `unsafe` in the
/// crate: `mi_collect` takes no pointers and has no preconditions.
pub(crate) fn return_freed_memory() {
    #[allow(unsafe_code)]
    // SAFETY: `mi_collect` only walks mimalloc's own bookkeeping of this thread's heap.
    unsafe {
        libmimalloc_sys::mi_collect(true)
    }
}
pub mod metrics;
pub mod notifications;
pub mod orders;
pub mod payments;
pub mod rate_limit;
pub mod read;
