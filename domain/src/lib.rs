//! smsledger's business rules, with no IO: money, the double-entry ledger, and the wallet
//! and order aggregates. Commands are decided as `decide(&state, command) -> events`, state
//! is `apply(state, &event)`; the same events always give the same state.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod catalog;
pub mod events;
pub mod ids;
pub mod ledger;
pub mod money;
pub mod order;
pub mod wallet;

pub use aggregate::Aggregate;
pub use events::DomainEvent;
pub use ids::*;
pub use ledger::{Account, Clearing, Posting, Postings};
pub use money::{Currency, Money, PositiveMoney};
