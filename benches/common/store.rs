//! What the store drivers share: timed runs of concurrent operations, and single-event
//! appends by concurrent writers (real wallet deposits, hash chain and version checks).

use std::time::{Duration, Instant};

use domain::events::wallet_stream;
use domain::wallet::{WalletCommand, WalletState};
use domain::{Aggregate, Clearing, Currency, DepositId, DomainEvent, PositiveMoney, UserId};
use smsledger::store::{AppendRequest, Engine, EventStore, ExpectedVersion, NewEvent, StreamAppend};

/// Awaits every task in order.
pub async fn join_all<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("task"));
    }
    out
}

pub struct Run {
    pub operations: usize,
    pub seconds: f64,
    pub latencies_us: Vec<u64>,
}

impl Run {
    pub fn rate(&self) -> f64 {
        self.operations as f64 / self.seconds
    }

    pub fn percentile(&mut self, p: f64) -> f64 {
        self.latencies_us.sort_unstable();
        let index = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us.get(index).copied().unwrap_or(0) as f64 / 1000.0
    }
}

pub fn pool(engine: &Engine) -> &sqlx::PgPool {
    match engine {
        Engine::Postgres(pool) => pool,
        Engine::Sqlite(_) => unreachable!("the bench opens PostgreSQL"),
    }
}

pub async fn engine_close(engine: Engine) {
    if let Engine::Postgres(pool) = engine {
        pool.close().await;
    }
}

/// Each writer deposits into its own wallet: single-event appends with an exact expected version.
pub async fn appends(store: &EventStore, writers: usize, duration: Duration) -> Run {
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let user = UserId::new();
            let mut latencies = Vec::new();
            let mut version = 0;
            while Instant::now() < deadline {
                let request = deposits(user, version, 1, "1.00");
                let sent = Instant::now();
                store.append(request).await.expect("append");
                latencies.push(sent.elapsed().as_micros() as u64);
                version += 1;
            }
            latencies
        }));
    }
    let latencies: Vec<u64> = join_all(handles).await.into_iter().flatten().collect();
    Run { operations: latencies.len(), seconds: started.elapsed().as_secs_f64(), latencies_us: latencies }
}

/// `count` deposits of `amount` to `user`'s USD wallet, appended after its `version`.
fn deposits(user: UserId, version: u64, count: u64, amount: &str) -> AppendRequest {
    let wallet = WalletState::new(user, Currency::USD);
    let amount = PositiveMoney::parse(amount, "USD").unwrap();
    let events = (0..count)
        .map(|_| {
            let command = WalletCommand::Deposit { deposit_id: DepositId::new(), amount, source: Clearing::Stripe };
            NewEvent::from_domain(&DomainEvent::Wallet(wallet.decide(command).unwrap().remove(0)))
        })
        .collect();
    AppendRequest {
        streams: vec![StreamAppend {
            stream_id: wallet_stream(user, Currency::USD),
            expected: ExpectedVersion::from_version(version),
            events,
        }],
        ..Default::default()
    }
}

/// Gives `user`'s USD wallet `events` deposits, 500 an append.
pub async fn fill_wallet(store: &EventStore, user: UserId, events: u64) {
    let mut version = 0;
    while version < events {
        let count = (events - version).min(500);
        store.append(deposits(user, version, count, "0.01")).await.expect("append");
        version += count;
    }
}
