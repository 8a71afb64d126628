//! Projection sinks and runners: where the pure folds of the `projections` crate meet SQL.

pub mod activity;
pub mod analytics;
pub mod deposits;
mod group;
mod keyed_rows;
pub mod notifications;
pub mod order_lists;
pub mod orders;
mod page;
mod runner;
pub mod sink;
pub mod sql_types;
pub mod users;
pub mod views;

pub use group::run_batch as run_group_batch;
pub use runner::{
    ProjectionError, ProjectionStatus, Target, checkpoint, checkpoint_name, rebuild, run_batch, run_live,
    spawn_all_live, status, table,
};
