//! Views kept apart from the ledger views: one JSON document per aggregate (orders, deposits),
//! each with the columns it is searched by, the users directory, and the analytics rows per day. Each has its own projector and checkpoint (named as its table), with the
//! discipline of the ledger views: a batch and its checkpoint commit together; a rebuild resets
//! rows and checkpoint in one transaction and refolds the log.

use super::runner::{ProjectionError, lock_postgres_checkpoint};
use super::sink;
use crate::store::{self, Engine, RecordedEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Orders,
    Deposits,
    Analytics,
    Users,
}

impl View {
    pub const ALL: [View; 4] = [View::Orders, View::Deposits, View::Analytics, View::Users];

    /// Its table and checkpoint name.
    pub const fn name(self) -> &'static str {
        match self {
            View::Orders => "orders",
            View::Deposits => "deposits",
            View::Analytics => "analytics",
            View::Users => "users_directory",
        }
    }

    pub fn parse(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|view| view.name() == name)
    }
}

async fn apply_postgres(
    view: View,
    connection: &mut sqlx::PgConnection,
    events: &mut [RecordedEvent],
) -> Result<(), ProjectionError> {
    match view {
        View::Orders => super::orders::postgres::apply_page(connection, events).await,
        View::Deposits => super::deposits::postgres::apply_page(connection, events).await,
        View::Analytics => super::analytics::postgres::apply_page(connection, events).await,
        View::Users => super::users::postgres::apply_page(connection, events).await,
    }
}

async fn apply_sqlite(
    view: View,
    connection: &mut sqlx::SqliteConnection,
    events: &mut [RecordedEvent],
) -> Result<(), ProjectionError> {
    match view {
        View::Orders => super::orders::sqlite::apply_page(connection, events).await,
        View::Deposits => super::deposits::sqlite::apply_page(connection, events).await,
        View::Analytics => super::analytics::sqlite::apply_page(connection, events).await,
        View::Users => super::users::sqlite::apply_page(connection, events).await,
    }
}

/// Runs one batch of a view's projector; returns how many events it read (0: caught up).
pub async fn run_batch(engine: &Engine, view: View, batch_max: u32) -> Result<usize, ProjectionError> {
    let name = view.name();
    let seen = super::checkpoint(engine, name).await?;
    if store::read_all(engine, seen, 1).await?.is_empty() {
        return Ok(0);
    }
    match engine {
        Engine::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let position = lock_postgres_checkpoint(&mut tx, name).await?;
            let mut events = store::read_all(engine, position, batch_max).await?;
            let Some(last) = events.last().map(|e| e.position) else { return Ok(0) };
            apply_postgres(view, &mut tx, &mut events).await?;
            sink::postgres::set_checkpoint(&mut tx, name, last).await?;
            tx.commit().await?;
            Ok(events.len())
        }
        Engine::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let position = sink::sqlite::checkpoint(&mut tx, name).await?;
            let mut events = store::read_all(engine, position, batch_max).await?;
            let Some(last) = events.last().map(|e| e.position) else { return Ok(0) };
            apply_sqlite(view, &mut tx, &mut events).await?;
            sink::sqlite::set_checkpoint(&mut tx, name, last).await?;
            tx.commit().await?;
            Ok(events.len())
        }
    }
}

/// Rebuilds a view from the log: rows and checkpoint are reset in one transaction, then
/// batches run until the view has caught up.
pub async fn rebuild(engine: &Engine, view: View, batch_max: u32) -> Result<i64, ProjectionError> {
    let name = view.name();
    let delete = sink::sql(format!("DELETE FROM {name}"));
    match engine {
        Engine::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            lock_postgres_checkpoint(&mut tx, name).await?;
            sqlx::query(delete).execute(&mut *tx).await?;
            sink::postgres::set_checkpoint(&mut tx, name, 0).await?;
            tx.commit().await?;
        }
        Engine::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query(delete).execute(&mut *tx).await?;
            sink::sqlite::set_checkpoint(&mut tx, name, 0).await?;
            tx.commit().await?;
        }
    }
    while run_batch(engine, view, batch_max).await? > 0 {}
    Ok(super::checkpoint(engine, name).await?)
}
