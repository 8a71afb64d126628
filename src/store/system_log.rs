//! The system log: operational records of the service's jobs and integrations (job runs,
//! provider errors, refused webhooks), kept in their own table for a retention period. Not
//! ledger events: nothing is decided from them and the cleanup job deletes old ones.
//!
//! Recording never waits: entries go through a bounded channel to one writer task; when it is
//! full the entry is dropped and counted (`system_log_dropped_total`).

use sqlx::Row;
use tokio::sync::mpsc;

use super::Engine;
use crate::search::{Total, Where};

/// Entries waiting for the writer at most.
pub const QUEUE_MAX: usize = 1_024;
/// Longest message kept, in characters.
pub const MESSAGE_LENGTH_MAX: usize = 1_000;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// `job`, `provider` or `webhook`.
    pub kind: String,
    /// Which job, provider or webhook.
    pub source: String,
    /// `info`, `warn` or `error`.
    pub level: String,
    pub message: String,
}

struct Record {
    at_micros: i64,
    kind: &'static str,
    source: String,
    level: &'static str,
    message: String,
}

/// Where the service records what its jobs and integrations did.
#[derive(Clone)]
pub struct SystemLog {
    sender: Option<mpsc::Sender<Record>>,
}

impl SystemLog {
    /// Starts the writer on the current runtime.
    pub fn start(engine: Engine) -> SystemLog {
        let (sender, mut receiver) = mpsc::channel::<Record>(QUEUE_MAX);
        tokio::spawn(async move {
            while let Some(record) = receiver.recv().await {
                if let Err(error) = insert(&engine, &record).await {
                    tracing::warn!(%error, "system_log.write_failed");
                }
            }
        });
        SystemLog { sender: Some(sender) }
    }

    /// A log that records nothing (tools that run no jobs).
    pub fn disabled() -> SystemLog {
        SystemLog { sender: None }
    }

    pub fn record(&self, kind: &'static str, source: &str, level: &'static str, message: impl Into<String>) {
        let Some(sender) = &self.sender else { return };
        let message: String = message.into().chars().take(MESSAGE_LENGTH_MAX).collect();
        let record = Record {
            at_micros: chrono::Utc::now().timestamp_micros(),
            kind,
            source: source.to_owned(),
            level,
            message,
        };
        if sender.try_send(record).is_err() {
            metrics::counter!("system_log_dropped_total").increment(1);
        }
    }
}

async fn insert(engine: &Engine, record: &Record) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO system_log (at, kind, source, level, message) VALUES ($1, $2, $3, $4, $5)";
    macro_rules! run {
        ($pool:expr) => {
            sqlx::query(sql)
                .bind(record.at_micros)
                .bind(record.kind)
                .bind(&record.source)
                .bind(record.level)
                .bind(&record.message)
                .execute($pool)
                .await
                .map(|_| ())
        };
    }
    match engine {
        Engine::Postgres(pool) => run!(pool),
        Engine::Sqlite(pool) => run!(pool),
    }
}

/// What admins narrow the system log by; `None` matches all.
#[derive(Clone, Debug, Default)]
pub struct LogFilter {
    pub kind: Option<String>,
    pub source: Option<String>,
    pub level: Option<String>,
}

/// Newest first, narrowed by the filter; and how many match.
pub async fn search(
    engine: &Engine,
    filter: &LogFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<LogEntry>, Total), sqlx::Error> {
    let conditions = Where::new()
        .and("kind = $", filter.kind.as_deref())
        .and("source = $", filter.source.as_deref())
        .and("level = $", filter.level.as_deref());
    let count = conditions.count_text("system_log");
    let select = conditions.page_text("id, at, kind, source, level, message", "system_log", "id DESC");
    macro_rules! run {
        ($pool:expr) => {{
            let counted: (i64,) =
                crate::bind_where!(sqlx::query_as(sqlx::AssertSqlSafe(count)), conditions).fetch_one($pool).await?;
            let rows = crate::bind_where!(sqlx::query(sqlx::AssertSqlSafe(select)), conditions)
                .bind(limit)
                .bind(offset)
                .fetch_all($pool)
                .await?;
            let entries = rows
                .iter()
                .map(|row| {
                    let micros: i64 = row.try_get(1)?;
                    Ok(LogEntry {
                        id: row.try_get(0)?,
                        at: chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default().to_rfc3339(),
                        kind: row.try_get(2)?,
                        source: row.try_get(3)?,
                        level: row.try_get(4)?,
                        message: row.try_get(5)?,
                    })
                })
                .collect::<Result<_, sqlx::Error>>()?;
            Ok((entries, Total::of_count(counted.0)))
        }};
    }
    match engine {
        Engine::Postgres(pool) => run!(pool),
        Engine::Sqlite(pool) => run!(pool),
    }
}

/// Deletes entries recorded before `before_micros`; returns how many.
pub async fn delete_before(engine: &Engine, before_micros: i64) -> Result<u64, sqlx::Error> {
    let sql = "DELETE FROM system_log WHERE at < $1";
    Ok(match engine {
        Engine::Postgres(pool) => sqlx::query(sql).bind(before_micros).execute(pool).await?.rows_affected(),
        Engine::Sqlite(pool) => sqlx::query(sql).bind(before_micros).execute(pool).await?.rows_affected(),
    })
}
