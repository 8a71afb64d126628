//! Reads with read-your-writes: a read includes every write of the reader that this process
//! acknowledged, and other processes' writes once its tail passed them (decision 0022). A
//! user's balance is their wallet as this process keeps it in memory; a user's own views
//! (orders, payments, notifications) are read once their projector's checkpoint has reached
//! that user's last write known here (every event by them or in their wallets: an order
//! placed, captured or refunded, a deposit). Admin views wait for the whole log as it was
//! when the read began. The checkpoint is polled in the database, which holds whichever
//! instance runs the projector. (Decisions 0021, 0022.)

use std::time::Duration;

use domain::{Currency, UserId};
use projections::ProjectionName;
use tokio::time::Instant;

use crate::projection::{self, ProjectionError, Target, sink};
use crate::store::{Engine, EventStore, Folded};

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

/// The position a read of `user`'s own views must reach to include all their writes: the
/// newest event by them or in their wallets (an order placed, captured or refunded, a deposit)
/// that this process knows of, once its tail has passed every append this process acknowledged.
pub async fn user_position(store: &EventStore, user: UserId) -> Result<i64, ReadError> {
    let actor = format!("user:{user}");
    wait_tailed(store, store.own_head().max(store.last_write_by(&actor))).await?;
    Ok(store.last_write_by(&actor))
}

/// Waits until this process's tail has passed `position`.
async fn wait_tailed(store: &EventStore, position: i64) -> Result<(), ReadError> {
    let live = store.live();
    if live.wait_tailed(position, FRESHNESS_WAIT_MAX).await {
        return Ok(());
    }
    let lag = position - live.tailed();
    Err(ReadError::Stale { projection: "live", lag, waited_ms: FRESHNESS_WAIT_MAX.as_millis() })
}

/// Waits until a view named as its checkpoint has applied every write of `user`.
pub async fn wait_for_user(store: &EventStore, view: &'static str, user: UserId) -> Result<(), ReadError> {
    let target = user_position(store, user).await?;
    wait_for_position(store, view, view, target).await
}

/// A read that answers its view's checkpoint with its rows: done when the checkpoint is at
/// `target`, else it waits for the projector and reads again. Returns the checkpoint too.
pub async fn view_at<T, Read, Found>(
    store: &EventStore,
    view: &'static str,
    target: i64,
    read: Read,
) -> Result<(i64, T), ReadError>
where
    Read: Fn() -> Found,
    Found: Future<Output = Result<(i64, T), sqlx::Error>>,
{
    let (checkpoint, found) = read().await?;
    if checkpoint >= target {
        return Ok((checkpoint, found));
    }
    wait_for_position(store, view, view, target).await?;
    Ok(read().await?)
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

/// A user's balance in one currency, including every change of it this process knows of
/// (every one it acknowledged, and other processes' once notified): the wallet as this process
/// keeps it in memory. A user who never had money in that currency has a zero balance.
pub async fn balance(store: &EventStore, user: UserId, currency: Currency) -> Result<WalletBalance, ReadError> {
    let stream = domain::events::wallet_stream(user, currency);
    match &*store.folded(&stream, false).await? {
        Folded::Wallet(wallet) => Ok(WalletBalance { available: wallet.state.available, held: wallet.state.held }),
        _ => Err(crate::store::StoreError::Invalid(format!("{stream} is not a wallet")).into()),
    }
}

/// What a user may spend and what open orders hold, in one currency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalletBalance {
    pub available: rust_decimal::Decimal,
    pub held: rust_decimal::Decimal,
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
    (limit, offset): (i64, i64),
) -> Result<(Vec<projections::StatementLine>, i64), ReadError> {
    let target = user_position(store, user).await?;
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
