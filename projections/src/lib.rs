//! Read models of smsledger as pure folds over ledger postings: user balances, the
//! user-facing statement, and the trial balance of every account; and views of orders and
//! deposits folded from their events.
//!
//! The same folds serve the live projectors (which load the rows a batch touches, fold,
//! and write them back with their checkpoint) and `smsledger verify` (which folds the
//! whole log in memory and compares). No IO here.

#![forbid(unsafe_code)]

mod analytics;
mod deposits;
mod folds;
mod orders;
mod users;

pub use analytics::{AnalyticsFold, AnalyticsKey, civil_from_days, day_of};
pub use deposits::{DepositView, status_text as deposit_status_text};
pub use folds::*;
pub use orders::{OrderView, SmsView, status_after};
pub use users::UserRow;

/// The projections the service keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProjectionName {
    Balances,
    Statement,
    TrialBalance,
}

impl ProjectionName {
    pub const ALL: [ProjectionName; 3] =
        [ProjectionName::Balances, ProjectionName::Statement, ProjectionName::TrialBalance];

    pub fn as_str(self) -> &'static str {
        match self {
            ProjectionName::Balances => "balances",
            ProjectionName::Statement => "statement",
            ProjectionName::TrialBalance => "trial_balance",
        }
    }

    /// The table this projection owns.
    pub fn table(self) -> &'static str {
        match self {
            ProjectionName::Balances => "balances",
            ProjectionName::Statement => "statement_lines",
            ProjectionName::TrialBalance => "trial_balance",
        }
    }

    pub fn parse(name: &str) -> Option<ProjectionName> {
        ProjectionName::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl std::fmt::Display for ProjectionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
