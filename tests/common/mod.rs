//! Test harness: a fresh database per test, on PostgreSQL (`TEST_DATABASE_URL`, default the
//! local server) and on SQLite (a temporary file).
//!
//! With no reachable PostgreSQL a test prints a loud SKIPPED line and passes, except when
//! `CI` is set: then it fails, so no PostgreSQL test is ever skipped in CI.

#![allow(dead_code)]

pub mod app;
pub mod fake_smsman;
pub mod fake_stripe;
pub mod fake_telegram;
pub mod fake_textverified;
pub mod fake_trongrid;
pub mod proxy;
pub mod serve;
pub mod smtp_sink;

use std::path::PathBuf;

use smsledger::config::StoreSettings;
use smsledger::store::EventStore;
use sqlx::Connection;

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database that is dropped (PostgreSQL) or deleted (SQLite) when this goes out of scope.
pub struct TestDatabase {
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Postgres { admin_url: String, name: String },
    Sqlite { dir: PathBuf },
    None,
}

impl TestDatabase {
    /// A database owned by someone else (a parent test process): never cleaned up here.
    pub fn borrowed(url: String) -> TestDatabase {
        TestDatabase { url, cleanup: Cleanup::None }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::None => {}
            Cleanup::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Postgres { admin_url, name } => {
                let (admin_url, name) = (admin_url.clone(), name.clone());
                // Drop runs inside the test's runtime; use a thread with its own.
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    runtime.block_on(async {
                        if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
                        }
                    });
                })
                .join();
            }
        }
    }
}

pub fn sqlite_database() -> TestDatabase {
    let dir = std::env::temp_dir().join(format!("smsledger-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("test.db").display());
    TestDatabase { url, cleanup: Cleanup::Sqlite { dir } }
}

/// A fresh PostgreSQL database, or `None` (loudly) when no server is reachable outside CI.
pub async fn postgres_database(test: &str) -> Option<TestDatabase> {
    let admin_url = std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.into());
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(admin) => admin,
        Err(error) => {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but PostgreSQL at {admin_url} is unreachable: {error}");
            }
            eprintln!(
                "\n*** SKIPPED {test}: PostgreSQL at {admin_url} is unreachable ({error}); set TEST_DATABASE_URL ***\n"
            );
            return None;
        }
    };
    let name = format!("smsledger_test_{}", uuid::Uuid::new_v4().simple());
    let create = format!("CREATE DATABASE \"{name}\"");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create)).execute(&mut admin).await.expect("create test database");
    let url = replace_database(&admin_url, &name);
    Some(TestDatabase { url, cleanup: Cleanup::Postgres { admin_url, name } })
}

fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = base.rsplit_once('/').map_or(base, |(prefix, _)| prefix);
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

pub async fn open_store(database: &TestDatabase) -> EventStore {
    EventStore::open(&StoreSettings::new(database.url.clone())).await.expect("open the store")
}

/// Generates one `#[tokio::test]` per engine for each listed `async fn(TestDatabase)`.
#[macro_export]
macro_rules! on_both_engines {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    super::$test(super::common::sqlite_database()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $test() {
                    if let Some(database) = super::common::postgres_database(stringify!($test)).await {
                        super::$test(database).await;
                    }
                }
            )*
        }
    };
}

pub const DEFAULT_TEST_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The test Redis (`TEST_REDIS_URL`), or `None` (loudly) when unreachable outside CI.
pub async fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_TEST_REDIS_URL.into());
    let reachable = async {
        let client = redis::Client::open(url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut connection).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(5), reachable).await {
        Ok(Ok(_)) => Some(url),
        outcome => {
            if std::env::var_os("CI").is_some() {
                panic!("CI is set but Redis at {url} is unreachable: {outcome:?}");
            }
            eprintln!("\n*** SKIPPED {test}: Redis at {url} is unreachable; set TEST_REDIS_URL ***\n");
            None
        }
    }
}

/// A sandbox provider selling at `cost` that delivers codes at once, on the real clock.
pub fn sandbox_provider(cost: &str) -> smsledger::providers::Provider {
    use smsledger::providers::{Provider, Sandbox, SandboxSettings};
    let clock: smsledger::providers::sandbox::Clock =
        std::sync::Arc::new(|| domain::Timestamp(chrono::Utc::now().timestamp_millis()));
    let settings = SandboxSettings::new(domain::Money::parse(cost, "USD").unwrap(), std::time::Duration::ZERO, clock);
    Provider::Sandbox(std::sync::Arc::new(Sandbox::new(settings)))
}
