//! Store load driver: N concurrent writers append single-event requests (real wallet
//! deposits, hash chain and version checks included) for a fixed time, and in the same run
//! the ceiling they are compared with: raw one-row INSERT + COMMIT at the same concurrency
//! on the same server. Then replay: rebuilding every projection and `verify`, against a
//! raw sequential scan of the events table.
//!
//! Run: `cargo bench --bench store_load` (PostgreSQL at BENCH_DATABASE_URL, default the
//! local server; BENCH_WRITERS default 32, BENCH_SECONDS default 10).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use projections::ProjectionName;
use smsledger::config::StoreSettings;
use smsledger::store::{Engine, EventStore};

use common::store::{Run, appends, engine_close, join_all, pool};
use common::{database_url, env_number};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this driver has no tests.
    }
    let writers = env_number("BENCH_WRITERS", 32);
    let duration = Duration::from_secs(env_number("BENCH_SECONDS", 10) as u64);
    let (url, cleanup) = database_url().await;
    let mut settings = StoreSettings { pool_size: (writers as u32).max(4) + 4, ..StoreSettings::new(url.clone()) };
    settings.batch_wait_us = env_number("STORE_BATCH_WAIT_US", settings.batch_wait_us as usize) as u64;
    let store = EventStore::open(&settings).await?;
    let engine = store.engine().clone();

    println!(
        "writers: {writers}, duration per run: {} s, server: PostgreSQL, batch wait: {} us",
        duration.as_secs(),
        settings.batch_wait_us
    );
    sqlx::query("CREATE TABLE raw_commit (id BIGSERIAL PRIMARY KEY, payload JSONB NOT NULL)")
        .execute(pool(&engine))
        .await?;
    let mut raw_single = raw_commits(&engine, 1, duration).await?;
    let mut raw = raw_commits(&engine, writers, duration).await?;
    let mut appends = appends(&store, writers, duration).await;
    let events = store.head().await?.position;
    let scan = raw_scan_seconds(&engine).await?;
    let mut rebuilds = Vec::new();
    for projection in ProjectionName::ALL {
        let started = Instant::now();
        smsledger::projection::rebuild(&engine, projection, 1_000, &|_| {}).await?;
        rebuilds.push((projection, started.elapsed().as_secs_f64()));
    }
    let verify = {
        let started = Instant::now();
        let report = smsledger::verify::verify(&store).await?;
        assert!(report.is_ok(), "{:?}", report.problems);
        started.elapsed().as_secs_f64()
    };

    println!();
    println!("| measurement | rate | p50 ms | p99 ms | vs ceiling |");
    println!("|---|---|---|---|---|");
    let raw_rate = raw.rate();
    println!(
        "| raw INSERT + COMMIT, one row each (1 connection) | {:.0} commits/s | {:.2} | {:.2} | {:.2} |",
        raw_single.rate(),
        raw_single.percentile(0.5),
        raw_single.percentile(0.99),
        raw_single.rate() / raw_rate
    );
    println!(
        "| raw INSERT + COMMIT, one row each ({writers} connections) | {:.0} commits/s | {:.2} | {:.2} | 1.00 |",
        raw_rate,
        raw.percentile(0.5),
        raw.percentile(0.99)
    );
    println!(
        "| store append, 1 event each ({writers} writers, group commit) | {:.0} events/s | {:.2} | {:.2} | {:.2}x |",
        appends.rate(),
        appends.percentile(0.5),
        appends.percentile(0.99),
        appends.rate() / raw_rate
    );
    let scan_rate = events as f64 / scan;
    println!("| raw sequential scan of {events} events | {scan_rate:.0} events/s | | | 1.00 |");
    for (projection, seconds) in rebuilds {
        let rate = events as f64 / seconds;
        println!("| rebuild {projection} (one replay of the log) | {rate:.0} events/s | | | {:.2} |", rate / scan_rate);
    }
    println!(
        "| verify (chain + aggregates + projections) | {:.0} events/s | | | {:.2} |",
        events as f64 / verify,
        events as f64 / verify / scan_rate
    );

    drop(store);
    engine_close(engine).await;
    cleanup.run().await?;
    Ok(())
}

/// The disk's ceiling for one commit per request: autocommitted single-row inserts.
async fn raw_commits(engine: &Engine, writers: usize, duration: Duration) -> anyhow::Result<Run> {
    let pool = pool(engine);
    let payload =
        Arc::new(serde_json::json!({"amount": {"amount": "1", "currency": "USD"}, "source": "stripe"}).to_string());
    let started = Instant::now();
    let deadline = started + duration;
    let mut handles = Vec::new();
    for _ in 0..writers {
        let (pool, payload) = (pool.clone(), payload.clone());
        handles.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                sqlx::query("INSERT INTO raw_commit (payload) VALUES ($1::jsonb)")
                    .bind(payload.as_str())
                    .execute(&pool)
                    .await
                    .expect("insert");
                latencies.push(sent.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    let latencies: Vec<u64> = join_all(handles).await.into_iter().flatten().collect();
    Ok(Run { operations: latencies.len(), seconds: started.elapsed().as_secs_f64(), latencies_us: latencies })
}

/// Every column of every event fetched in position order, decoded by nothing.
async fn raw_scan_seconds(engine: &Engine) -> anyhow::Result<f64> {
    let pool = pool(engine);
    let started = Instant::now();
    let rows = sqlx::query("SELECT position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at, hash FROM events ORDER BY position")
        .fetch_all(pool)
        .await?;
    std::hint::black_box(rows.len());
    Ok(started.elapsed().as_secs_f64())
}
