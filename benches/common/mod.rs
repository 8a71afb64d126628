//! What the HTTP load drivers share: a database of their own (PostgreSQL or SQLite, dropped
//! afterwards), serving a router on a free port, and measuring N clients for a fixed time.

#![allow(dead_code)]

pub mod store;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use sqlx::Connection;

pub fn env_number(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub struct Measured {
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// `clients` tasks, each sending its own request (built by `request(i)`) in a loop.
pub async fn measure(
    clients: usize,
    duration: Duration,
    request: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
) -> Measured {
    let client = reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap();
    let request = Arc::new(request);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let (client, request) = (client.clone(), request.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let sent = Instant::now();
                    let response = request(&client, i).send().await.expect("the server answers");
                    assert!(response.status().is_success(), "{}", response.status());
                    response.bytes().await.unwrap();
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1000.0;
    Measured { rate: latencies.len() as f64 / seconds, p50_ms: at(0.5), p99_ms: at(0.99) }
}

pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(smsledger::http::serve(listener, app, std::future::pending()));
    format!("http://{address}")
}

/// What to remove after the run.
pub enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite(std::path::PathBuf),
}

pub async fn database_url() -> (String, Cleanup) {
    if std::env::var("BENCH_ENGINE").as_deref() == Ok("sqlite") {
        let dir = std::env::temp_dir().join(format!("smsledger-bench-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        return (format!("sqlite://{}", dir.join("bench.db").display()), Cleanup::Sqlite(dir));
    }
    let admin_url =
        std::env::var("BENCH_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("smsledger_bench_{}", uuid::Uuid::now_v7().simple());
    let mut admin = sqlx::PgConnection::connect(&admin_url).await.expect("PostgreSQL for the bench");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\""))).execute(&mut admin).await.unwrap();
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b).to_owned();
    (format!("{base}/{name}"), Cleanup::Postgres { admin_url, name })
}

impl Cleanup {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Cleanup::Sqlite(dir) => std::fs::remove_dir_all(dir)?,
            Cleanup::Postgres { admin_url, name } => {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await?;
            }
        }
        Ok(())
    }
}
