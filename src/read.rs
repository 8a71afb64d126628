//! Reads with read-your-writes: a view is read only once its projector has caught up with
//! what the read must include, so a client that just wrote sees its write. A user's own views
//! (balance, orders, payments, notifications) wait for that user's writes only: the last event
//! of their wallets (every change of their money, every order placed, captured or refunded)
//! and the last append this instance made for them. Admin views wait for the whole log as it
//! was when the read began. The checkpoint is polled in the database, which holds whichever
//! instance runs the projector. (Decision 0021.)

use std::time::Duration;

use domain::{Currency, UserId};
use projections::{Balance, ProjectionName};
use tokio::time::Instant;

use crate::projection::{self, ProjectionError, Target, sink};
use crate::store::{Engine, EventStore};

/// Longest a read waits for its projector before giving up (the projector is stuck or down).
pub const FRESHNESS_WAIT_MAX: Duration = Duration::from_secs(2);
/// Longest pause between two looks at the checkpoint.
const POLL_INTERVAL_MAX: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("the {projection} view is {lag} events behind after {waited_ms} ms")]
    Stale { projection: &'static str, lag: i64, waited_ms: u128 },
}

impl From<sqlx::Error> for ReadError {
    fn from(error: sqlx::Error) -> Self {
        ReadError::Projection(ProjectionError::Database(error))
    }
}

impl From<crate::store::StoreError> for ReadError {
    fn from(error: crate::store::StoreError) -> Self {
        ReadError::Projection(ProjectionError::Store(error))
    }
}

/// Waits until a view whose checkpoint is named as the view (orders, deposits, analytics, users
/// directory, activity log) has reached the log head as of this call.
pub async fn wait_for_view(store: &EventStore, view: &'static str) -> Result<(), ReadError> {
    wait_for_checkpoint(store, view, view).await
}

/// Waits until the view `projection`, kept at checkpoint `name`, has reached the log head
/// as of this call.
pub async fn wait_for_checkpoint(store: &EventStore, projection: &'static str, name: &str) -> Result<(), ReadError> {
    let head = store.head().await?.position;
    wait_for_position(store, projection, name, head).await
}

/// The position a read of `user`'s own views must reach to include all their writes.
pub async fn user_position(store: &EventStore, user: UserId, currencies: &[Currency]) -> Result<i64, ReadError> {
    let wallets: Vec<String> = currencies.iter().map(|c| domain::events::wallet_stream(user, *c)).collect();
    let logged = match store.engine() {
        Engine::Postgres(pool) => sink::postgres::last_position_of(&mut *pool.acquire().await?, &wallets).await?,
        Engine::Sqlite(pool) => sink::sqlite::last_position_of(&mut *pool.acquire().await?, &wallets).await?,
    };
    Ok(logged.max(store.last_write_by(&format!("user:{user}")).unwrap_or(0)))
}

/// Waits until a view named as its checkpoint has applied every write of `user`.
pub async fn wait_for_user(
    store: &EventStore,
    view: &'static str,
    user: UserId,
    currencies: &[Currency],
) -> Result<(), ReadError> {
    let target = user_position(store, user, currencies).await?;
    wait_for_position(store, view, view, target).await
}

/// Waits until the view `projection`, kept at checkpoint `name`, has reached `target`.
async fn wait_for_position(
    store: &EventStore,
    projection: &'static str,
    name: &str,
    head: i64,
) -> Result<(), ReadError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let position = projection::checkpoint(store.engine(), name).await?;
        if position >= head {
            return Ok(());
        }
        if started.elapsed() >= FRESHNESS_WAIT_MAX {
            return Err(ReadError::Stale {
                projection,
                lag: head - position,
                waited_ms: started.elapsed().as_millis(),
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(POLL_INTERVAL_MAX);
    }
}

/// A user's balance in one currency, including every change of it committed before the call.
/// A user who never had money in that currency has a zero balance.
pub async fn balance(store: &EventStore, user: UserId, currency: Currency) -> Result<Balance, ReadError> {
    // Usually the projector is already there: the wallet's last position, the checkpoint and
    // the row in one statement.
    let name = projection::checkpoint_name(ProjectionName::Balances, Target::Live);
    let (wallet, checkpoint, found) = match store.engine() {
        Engine::Postgres(pool) => {
            sink::postgres::balance_with_positions(&mut *pool.acquire().await?, &name, user, currency).await?
        }
        Engine::Sqlite(pool) => {
            sink::sqlite::balance_with_positions(&mut *pool.acquire().await?, &name, user, currency).await?
        }
    };
    let target = wallet.max(store.last_write_by(&format!("user:{user}")).unwrap_or(0));
    if checkpoint >= target {
        return Ok(found.unwrap_or_default());
    }
    wait_for_position(store, ProjectionName::Balances.as_str(), &name, target).await?;
    let found = match store.engine() {
        Engine::Postgres(pool) => sink::postgres::balance(&mut *pool.acquire().await?, user, currency).await?,
        Engine::Sqlite(pool) => sink::sqlite::balance(&mut *pool.acquire().await?, user, currency).await?,
    };
    Ok(found.unwrap_or_default())
}

/// The statement lines that are payments history: money in, money out, admin credits and
/// refunds of orders (holds released). Holds and captures of orders are in the orders.
/// (A payout, `wallet.withdrawal_paid`, changes nothing of the user's balance: the money left
/// available when the withdrawal was requested.)
pub const HISTORY_EVENT_TYPES: [&str; 6] = [
    "wallet.deposited",
    "wallet.deposit_reversed",
    "wallet.withdrawal_requested",
    "wallet.withdrawal_rejected",
    "wallet.adjusted",
    "wallet.hold_released",
];

/// One page of a user's payments history, newest first, including every write committed
/// before the call; and how many lines there are in all.
pub async fn history(
    store: &EventStore,
    user: UserId,
    currencies: &[Currency],
    (limit, offset): (i64, i64),
) -> Result<(Vec<projections::StatementLine>, i64), ReadError> {
    let target = user_position(store, user, currencies).await?;
    let name = projection::checkpoint_name(ProjectionName::Statement, Target::Live);
    wait_for_position(store, ProjectionName::Statement.as_str(), &name, target).await?;
    let types = &HISTORY_EVENT_TYPES;
    Ok(match store.engine() {
        Engine::Postgres(pool) => {
            sink::postgres::statement_page(&mut *pool.acquire().await?, user, types, limit, offset).await?
        }
        Engine::Sqlite(pool) => {
            sink::sqlite::statement_page(&mut *pool.acquire().await?, user, types, limit, offset).await?
        }
    })
}
