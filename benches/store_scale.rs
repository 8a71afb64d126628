//! Does the store slow down as the log grows? The same measurements on a log of 10 thousand
//! events and on one of 10 million (`BENCH_EVENTS_LARGE`): single-event appends by 64
//! concurrent writers (group commit, hash chain, version checks), reading one aggregate's
//! stream by id, finding a stream's last position (what the writer checks an expected version against), and reading
//! a page of the log after a position (what a projector does).
//!
//! The large log is filled by `INSERT ... SELECT generate_series` in the store's own table
//! (filler events spread over streams of ten, each stream's events far apart as a long-lived
//! wallet's are, realistic payload size, event ids ordered by time as UUID v7 ids are), then the
//! head row is moved to its end; appends continue the chain from there. Filler events are not real
//! events, so `verify` is not run on them.
//!
//! Then, on a log of its own, loading a wallet this process does not hold: a new one against a
//! long-lived one from its snapshot, and the long-lived one read whole.
//!
//! Run: `cargo bench --bench store_scale` (PostgreSQL at BENCH_DATABASE_URL, default the local
//! server; BENCH_EVENTS_LARGE default 10000000, BENCH_SECONDS per measurement default 5).

mod common;

use std::time::{Duration, Instant};

use domain::events::wallet_stream;
use domain::wallet::WalletState;
use domain::{Aggregate, Currency, DomainEvent, UserId};
use smsledger::config::StoreSettings;
use smsledger::store::{self, EventStore, Folded, snapshot};

use common::store::{Run, appends, engine_close, fill_wallet, join_all, pool};
use common::{database_url, env_number};

const WRITERS: usize = 64;
const READERS: usize = 16;
/// Filler events per stream.
const STREAM_LENGTH: i64 = 10;
/// Rows per filling statement.
const FILL_CHUNK: i64 = 1_000_000;

struct Measured {
    events: i64,
    appends: Run,
    stream_reads: Run,
    last_positions: Run,
    pages: Run,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this driver has no tests.
    }
    let large = env_number("BENCH_EVENTS_LARGE", 10_000_000) as i64;
    let duration = Duration::from_secs(env_number("BENCH_SECONDS", 5) as u64);
    let mut results = Vec::new();
    for events in [10_000, large] {
        results.push(measure(events, duration).await?);
    }
    println!();
    println!(
        "| events in the log | appends/s (64 writers) | append p99 ms | stream reads/s | last-position reads/s | 1000-event pages/s |"
    );
    println!("|---|---|---|---|---|---|");
    for m in &mut results {
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} |",
            m.events,
            m.appends.rate(),
            m.appends.percentile(0.99),
            m.stream_reads.rate(),
            m.last_positions.rate(),
            m.pages.rate()
        );
    }
    let (small, big) = (&results[0], &results[1]);
    println!();
    println!(
        "large / small: appends {:.2}, stream reads {:.2}, last-position reads {:.2}, pages {:.2}",
        big.appends.rate() / small.appends.rate(),
        big.stream_reads.rate() / small.stream_reads.rate(),
        big.last_positions.rate() / small.last_positions.rate(),
        big.pages.rate() / small.pages.rate()
    );
    let mut wallets = wallet_loads(duration).await?;
    println!();
    println!("| wallet loaded from the database (not in memory) | loads/s | p99 ms |");
    println!("|---|---|---|");
    for (what, run) in [
        (format!("new: {SHORT_WALLET} events"), &mut wallets.short),
        (format!("long-lived: {LONG_WALLET} events, from its snapshot"), &mut wallets.snapshotted),
        (format!("long-lived: {LONG_WALLET} events, read whole"), &mut wallets.whole),
    ] {
        println!("| {what} | {:.0} | {:.2} |", run.rate(), run.percentile(0.99));
    }
    println!();
    println!(
        "long-lived / new: from its snapshot {:.2}, read whole {:.3}",
        wallets.snapshotted.rate() / wallets.short.rate(),
        wallets.whole.rate() / wallets.short.rate()
    );
    Ok(())
}

/// Events of a new wallet, and of a long-lived one (a reseller's after some weeks).
const SHORT_WALLET: u64 = 10;
const LONG_WALLET: u64 = 20_000;
/// Wallets of each kind.
const WALLETS: usize = 4;

struct WalletLoads {
    short: Run,
    snapshotted: Run,
    whole: Run,
}

/// Loading a wallet this process does not hold (after a restart, or evicted), by its age:
/// new wallets against long-lived ones loaded from their snapshots (decision 0036), and the
/// long-lived ones folded from their first event (how every load went before snapshots).
async fn wallet_loads(duration: Duration) -> anyhow::Result<WalletLoads> {
    let (url, cleanup) = database_url().await;
    let settings = StoreSettings { pool_size: (READERS as u32) + 8, ..StoreSettings::new(url) };
    let store = EventStore::open(&settings).await?;
    // The tail, which follows the wallets as they fill (a server starts it at once).
    assert!(store.live().wait_tailed(0, Duration::from_secs(10)).await, "the tail started");
    let started = Instant::now();
    let (short, long): (Vec<UserId>, Vec<UserId>) =
        ((0..WALLETS).map(|_| UserId::new()).collect(), (0..WALLETS).map(|_| UserId::new()).collect());
    for user in &short {
        fill_wallet(&store, *user, SHORT_WALLET).await;
    }
    for user in &long {
        fill_wallet(&store, *user, LONG_WALLET).await;
    }
    // The tail follows the wallets as they fill and snapshots them every thousand events.
    for user in &long {
        let stream = wallet_stream(*user, Currency::USD);
        while snapshot::load(store.engine(), &stream).await?.map(|(version, _)| version) != Some(LONG_WALLET) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    println!("{} wallets filled in {:.1} s", 2 * WALLETS, started.elapsed().as_secs_f64());
    let load = |users: Vec<UserId>| {
        let store = store.clone();
        move |i: usize| {
            let (store, stream) = (store.clone(), wallet_stream(users[i % users.len()], Currency::USD));
            async move {
                store.live().forget(&stream);
                let folded = store.folded(&stream, true).await.expect("load");
                assert!(matches!(*folded, Folded::Wallet(_)));
            }
        }
    };
    let short_loads = timed(READERS, duration, load(short)).await;
    let snapshotted = timed(READERS, duration, load(long.clone())).await;
    let whole = timed(READERS, duration, {
        let store = store.clone();
        move |i| {
            let (store, user) = (store.clone(), long[i % long.len()]);
            async move {
                let apply = |state: WalletState, event| match event {
                    DomainEvent::Wallet(event) => Some(state.apply(&event)),
                    _ => None,
                };
                let stream = wallet_stream(user, Currency::USD);
                let folded =
                    store.fold_stream(&stream, WalletState::new(user, Currency::USD), apply).await.expect("fold");
                assert_eq!(folded.version, LONG_WALLET);
            }
        }
    })
    .await;
    // Not closed: once the tail had started, closing the pool did not return (its LISTEN
    // connection the likely holder; the service never closes its pool). The database is
    // dropped with its connections.
    drop(store);
    cleanup.run().await?;
    Ok(WalletLoads { short: short_loads, snapshotted, whole })
}

async fn measure(events: i64, duration: Duration) -> anyhow::Result<Measured> {
    let (url, cleanup) = database_url().await;
    let settings = StoreSettings { pool_size: (WRITERS as u32) + 8, ..StoreSettings::new(url.clone()) };

    // Tables first, then the filler, then the store that appends after it.
    let migrated = EventStore::open(&settings).await?;
    let engine = migrated.engine().clone();
    drop(migrated);
    let started = Instant::now();
    let streams = (events / STREAM_LENGTH).max(1);
    let mut filled = 0;
    while filled < events {
        let upto = (filled + FILL_CHUNK).min(events);
        sqlx::query(
            "INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at, hash) \
             SELECT n, 'filler-' || ((n - 1) % $3), (n - 1) / $3 + 1, \
             ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid, 'bench.filler', 1, \
             jsonb_build_object('amount', jsonb_build_object('amount', '1.25', 'currency', 'USD'), 'n', n, 'note', repeat('x', 160)), \
             '{}'::jsonb, now(), decode(repeat('00', 32), 'hex') \
             FROM generate_series($1::bigint, $2::bigint) AS n",
        )
        .bind(filled + 1)
        .bind(upto)
        .bind(streams)
        .execute(pool(&engine))
        .await?;
        filled = upto;
    }
    sqlx::query("UPDATE event_head SET position = $1").bind(events).execute(pool(&engine)).await?;
    sqlx::raw_sql("VACUUM ANALYZE events").execute(pool(&engine)).await?;
    // The fill and the vacuum leave the table's pages dirty in shared buffers; written out now,
    // not by the readers' evictions during the measurements (both sizes alike).
    sqlx::raw_sql("CHECKPOINT").execute(pool(&engine)).await?;
    println!("{events} events filled in {:.1} s", started.elapsed().as_secs_f64());
    engine_close(engine).await;

    let store = EventStore::open(&settings).await?;
    let appends = appends(&store, WRITERS, duration).await;
    let stream_reads = timed(READERS, duration, {
        let store = store.clone();
        move |i| {
            let store = store.clone();
            async move {
                let stream = format!("filler-{}", (i * 7_919) as i64 % streams);
                let read = store.read_stream(&stream).await.expect("read");
                assert_eq!(read.len() as i64, STREAM_LENGTH.min(events));
            }
        }
    })
    .await;
    let last_positions = timed(READERS, duration, {
        let store = store.clone();
        move |i| {
            let store = store.clone();
            async move {
                let stream = format!("filler-{}", (i * 104_729) as i64 % streams);
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT position FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1",
                )
                .bind(stream)
                .fetch_optional(pool(store.engine()))
                .await
                .expect("read");
                assert!(found.is_some());
            }
        }
    })
    .await;
    let pages = timed(READERS, duration, {
        let store = store.clone();
        move |i| {
            let store = store.clone();
            async move {
                let after = (events - 1_000 - (i as i64 % 1_000)).max(0);
                let page = store::read_all(store.engine(), after, 1_000).await.expect("read");
                assert!(!page.is_empty());
            }
        }
    })
    .await;
    let engine = store.engine().clone();
    drop(store);
    engine_close(engine).await;
    cleanup.run().await?;
    Ok(Measured { events, appends, stream_reads, last_positions, pages })
}

/// `tasks` concurrent loops of `operation(i)` for `duration`, `i` counting every call.
async fn timed<F, Fut>(tasks: usize, duration: Duration, operation: F) -> Run
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let handles = (0..tasks)
        .map(|task| {
            let operation = operation.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = task;
                while Instant::now() < deadline {
                    let sent = Instant::now();
                    operation(i).await;
                    latencies.push(sent.elapsed().as_micros() as u64);
                    i += tasks;
                }
                latencies
            })
        })
        .collect();
    let latencies: Vec<u64> = join_all(handles).await.into_iter().flatten().collect();
    Run { operations: latencies.len(), seconds: started.elapsed().as_secs_f64(), latencies_us: latencies }
}
