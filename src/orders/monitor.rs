//! The order monitor: every `ORDER_POLL_MS` it scans the open orders it must act on (from
//! the orders view) and moves each on: an overdue order expires and is refunded (the provider
//! is told, so it refunds us), a waiting one is polled for SMS. An order that got its SMS and
//! waits for no other is not read until it is overdue.
//! Deadlines come from the events, so a restart picks up where the last run stopped.
//!
//! On PostgreSQL one instance runs it: the one holding a session-level advisory lock on a
//! connection of its own; if that connection dies, the lock is gone and another instance
//! takes over. The embedded SQLite store has one instance by construction.

use std::sync::Arc;
use std::time::Duration;

use projections::OrderView;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{OrderFailure, Orders, waits_for_sms};
use crate::identity::now;
use crate::projection::orders as orders_view;
use crate::store::{Engine, EventStore, Metadata};

/// The advisory lock key of the order monitor ("smsmonit" in ASCII).
pub const ADVISORY_LOCK_KEY: i64 = 0x736d_736d_6f6e_6974;

/// Open orders read and worked on at a time: a scan's memory stays that of one page, however
/// many orders are open (a backlog of 10,000 read at once was the server's peak memory).
const SCAN_PAGE: i64 = 500;

/// What one scan did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Open orders the scan read: waiting for an SMS or overdue.
    pub watched: usize,
    pub expired: usize,
    pub polled: usize,
    pub failed: usize,
}

enum Step {
    Expire,
    Poll,
}

fn step(view: &OrderView, at: domain::Timestamp) -> Option<Step> {
    if at >= view.expires_at {
        Some(Step::Expire)
    } else if waits_for_sms(view) {
        Some(Step::Poll)
    } else {
        None
    }
}

fn metadata() -> Metadata {
    Metadata { actor: Some("system:order-monitor".into()), ..Metadata::default() }
}

/// Scans the open orders once, working on at most `concurrency` at a time.
pub async fn scan(orders: &Arc<Orders>, store: &EventStore, concurrency: usize) -> Result<Scan, OrderFailure> {
    scan_paged(orders, store, concurrency, SCAN_PAGE).await
}

/// `scan`, reading the open orders `page` at a time (soonest deadline first).
pub async fn scan_paged(
    orders: &Arc<Orders>,
    store: &EventStore,
    concurrency: usize,
    page: i64,
) -> Result<Scan, OrderFailure> {
    // Orders placed or changed just before the scan are in the view it reads.
    crate::read::wait_for_checkpoint(store, orders_view::NAME, orders_view::NAME).await.map_err(|error| {
        OrderFailure::Store(crate::store::StoreError::TaskFailed(format!("the orders view is behind: {error}")))
    })?;
    let mut report = Scan::default();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut after = None;
    let at = now();
    // Every watched order, soonest deadline first: a backlog makes a scan longer, it never
    // leaves the orders with later deadlines unpolled.
    loop {
        let open = orders_view::watched_orders(store.engine(), at, after, page.max(1)).await.map_err(db)?;
        let Some(last) = open.last() else { break };
        after = Some((last.expires_at, last.order_id));
        report.watched += open.len();
        let mut tasks = JoinSet::new();
        for view in open {
            let Some(step) = step(&view, at) else { continue };
            match step {
                Step::Expire => report.expired += 1,
                Step::Poll => report.polled += 1,
            }
            let (orders, permits) = (Arc::clone(orders), Arc::clone(&permits));
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("the semaphore is never closed");
                let metadata = metadata();
                let result = match step {
                    Step::Expire => orders.expire(&view, &metadata).await,
                    Step::Poll => orders.refresh(view.clone(), &metadata).await.map(|_| ()),
                };
                if let Err(error) = &result {
                    tracing::warn!(order_id = %view.order_id, %error, "monitor.order_failed");
                }
                result.is_ok()
            });
        }
        while let Some(done) = tasks.join_next().await {
            if !done.unwrap_or(false) {
                report.failed += 1;
            }
        }
    }
    metrics::gauge!("orders_watched").set(report.watched as f64);
    metrics::counter!("monitor_orders_expired_total").increment(report.expired as u64);
    metrics::counter!("monitor_orders_failed_total").increment(report.failed as u64);
    Ok(report)
}

fn db(error: sqlx::Error) -> OrderFailure {
    OrderFailure::Store(crate::store::StoreError::Database(error))
}

/// Holds the monitor's advisory lock for as long as it lives (PostgreSQL only).
pub struct Leader {
    connection: Option<sqlx::PgConnection>,
}

impl Leader {
    /// Becomes the monitor's leader if no other instance is; SQLite always is.
    pub async fn try_acquire(engine: &Engine) -> Result<Option<Leader>, sqlx::Error> {
        Leader::try_acquire_key(engine, ADVISORY_LOCK_KEY).await
    }

    /// Becomes the holder of the advisory lock `key` if no other instance is; SQLite always is.
    pub async fn try_acquire_key(engine: &Engine, key: i64) -> Result<Option<Leader>, sqlx::Error> {
        let Engine::Postgres(pool) = engine else { return Ok(Some(Leader { connection: None })) };
        let mut connection = pool.acquire().await?.detach();
        let (acquired,): (bool,) =
            sqlx::query_as("SELECT pg_try_advisory_lock($1)").bind(key).fetch_one(&mut connection).await?;
        Ok(acquired.then_some(Leader { connection: Some(connection) }))
    }

    /// Whether the lock is still held (its connection answers).
    pub async fn still_leads(&mut self) -> bool {
        match &mut self.connection {
            None => true,
            Some(connection) => sqlx::query("SELECT 1").execute(connection).await.is_ok(),
        }
    }
}

/// Runs the monitor until the process ends: while this instance leads, a scan every `every`.
pub fn spawn(
    orders: Arc<Orders>,
    store: EventStore,
    every: Duration,
    concurrency: usize,
    log: crate::store::system_log::SystemLog,
) {
    tokio::spawn(async move {
        loop {
            let mut leader = match Leader::try_acquire(store.engine()).await {
                Ok(Some(leader)) => leader,
                Ok(None) => {
                    tokio::time::sleep(every).await;
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%error, "monitor.lock_failed");
                    tokio::time::sleep(every).await;
                    continue;
                }
            };
            tracing::info!("monitor.leading");
            while leader.still_leads().await {
                match scan(&orders, &store, concurrency).await {
                    Ok(report) if report.expired + report.failed > 0 => {
                        tracing::info!(?report, "monitor.scan");
                        let message = format!(
                            "{} watched, {} polled, {} expired and refunded, {} failed",
                            report.watched, report.polled, report.expired, report.failed
                        );
                        log.record("job", "order-monitor", "info", message);
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "monitor.scan_failed");
                        log.record("job", "order-monitor", "error", format!("scan failed: {error}"));
                    }
                }
                tokio::time::sleep(every).await;
            }
            tracing::warn!("monitor.lost_lock");
        }
    });
}
