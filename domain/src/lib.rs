//! smsledger's business rules, with no IO: money, the double-entry ledger, the wallet and
//! order aggregates, users with their sessions and API keys, and maintenance windows. Commands are decided as `decide(&state, command) -> events`, state
//! is `apply(state, &event)`; the same events always give the same state.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod api_key;
pub mod catalog;
pub mod credentials;
pub mod deposit;
pub mod events;
pub mod identity;
pub mod ids;
pub mod ledger;
pub mod maintenance;
pub mod money;
pub mod order;
pub mod pricing;
pub mod session;
pub mod wallet;

#[cfg(test)]
mod identity_tests;

pub use aggregate::Aggregate;
pub use events::DomainEvent;
pub use ids::*;
pub use ledger::{Account, Clearing, Posting, Postings};
pub use money::{Currency, Money, PositiveMoney};
