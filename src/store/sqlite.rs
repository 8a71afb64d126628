//! SQLite adapter of the event store: the embedded default.
//!
//! WAL journal with `synchronous = FULL`, so a commit is on disk when it returns. Writers
//! take the database lock up front (`BEGIN IMMEDIATE`), which plays the role PostgreSQL's
//! head-row lock does.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use super::plan::{Known, plan_batch};
use super::{AppendOutcome, AppendRequest, Committed, Head, RecordedEvent, StoreError, head_hash};

/// How long a writer waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn connect(url: &str, pool_size: u32) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true);
    if let Some(parent) = options.get_filename().parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| sqlx::Error::Configuration(Box::new(e)))?;
    }
    SqlitePoolOptions::new().max_connections(pool_size).connect_with(options).await
}

pub async fn commit_batch(pool: &SqlitePool, batch: &[&AppendRequest]) -> Result<Committed, sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let (position, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM event_head WHERE id = 1").fetch_one(&mut *tx).await?;
    let hash = head_hash(hash).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;

    let streams: BTreeSet<&str> = batch.iter().flat_map(|r| r.streams.iter().map(|s| s.stream_id.as_str())).collect();
    let mut versions = HashMap::new();
    for stream in streams {
        let (version,): (Option<i64>,) = sqlx::query_as("SELECT max(version) FROM events WHERE stream_id = $1")
            .bind(stream)
            .fetch_one(&mut *tx)
            .await?;
        if let Some(version) = version.and_then(|v| u64::try_from(v).ok()) {
            versions.insert(stream.to_owned(), version);
        }
    }
    let mut outcomes = HashMap::new();
    for key in batch.iter().filter_map(|r| r.idempotency_key.as_deref()) {
        let found: Option<(String,)> = sqlx::query_as("SELECT outcome FROM idempotency_keys WHERE key = $1")
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some((outcome,)) = found {
            let outcome: AppendOutcome =
                serde_json::from_str(&outcome).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            outcomes.insert(key.to_owned(), outcome);
        }
    }
    let plan = plan_batch(Known { head: Head { position, hash }, versions, outcomes }, batch, super::writer_clock());

    for planned in &plan.rows {
        let row = &planned.event;
        sqlx::query(
            "INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(row.position)
        .bind(&row.stream_id)
        .bind(row.version)
        .bind(row.event_id)
        .bind(&row.event_type)
        .bind(row.schema_version)
        .bind(planned.payload_json.as_str())
        .bind(&*planned.metadata_json)
        .bind(row.recorded_at.timestamp_micros())
        .bind(&row.hash)
        .execute(&mut *tx)
        .await?;
    }
    for (key, outcome) in &plan.new_keys {
        sqlx::query("INSERT INTO idempotency_keys (key, outcome, recorded_at) VALUES ($1, $2, $3)")
            .bind(key)
            .bind(serde_json::to_string(outcome).expect("outcome serializes"))
            .bind(Utc::now().timestamp_micros())
            .execute(&mut *tx)
            .await?;
    }
    if !plan.rows.is_empty() {
        sqlx::query("UPDATE event_head SET position = $1, hash = $2 WHERE id = 1")
            .bind(plan.head.position)
            .bind(plan.head.hash.to_vec())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(plan.into())
}

macro_rules! select_events {
    () => {
        "SELECT position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at, hash FROM events"
    };
}

/// SQLite keeps JSON as text, so a damaged row is possible: it is reported with its position.
fn decode_row(row: SqliteRow) -> Result<RecordedEvent, StoreError> {
    let position: i64 = row.try_get("position")?;
    let corrupt = |reason: String| StoreError::Corrupt { position, reason };
    let json = |column: &str| -> Result<serde_json::Value, StoreError> {
        let text: String = row.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| corrupt(format!("{column} is not JSON: {e}")))
    };
    let micros: i64 = row.try_get("recorded_at")?;
    Ok(RecordedEvent {
        position,
        stream_id: row.try_get("stream_id")?,
        version: row.try_get("version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: json("payload")?,
        metadata: json("metadata")?,
        recorded_at: DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| corrupt("recorded_at out of range".into()))?,
        hash: row.try_get("hash")?,
    })
}

pub async fn read_stream(
    pool: &SqlitePool,
    stream_id: &str,
    after_version: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(concat!(select_events!(), " WHERE stream_id = $1 AND version > $2 ORDER BY version"))
        .bind(stream_id)
        .bind(i64::try_from(after_version).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(decode_row).collect()
}

pub async fn last_in_stream(pool: &SqlitePool, stream_id: &str) -> Result<Option<RecordedEvent>, StoreError> {
    let row = sqlx::query(concat!(select_events!(), " WHERE stream_id = $1 ORDER BY version DESC LIMIT 1"))
        .bind(stream_id)
        .fetch_optional(pool)
        .await?;
    row.map(decode_row).transpose()
}

pub async fn read_all(pool: &SqlitePool, after: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(concat!(select_events!(), " WHERE position > $1 ORDER BY position LIMIT $2"))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    rows.into_iter().map(decode_row).collect()
}

pub async fn head(pool: &SqlitePool) -> Result<Head, StoreError> {
    let (position, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM event_head WHERE id = 1").fetch_one(pool).await?;
    Ok(Head { position, hash: head_hash(hash)? })
}

pub async fn position_at(pool: &SqlitePool, at: DateTime<Utc>) -> Result<i64, StoreError> {
    let (position,): (Option<i64>,) = sqlx::query_as("SELECT max(position) FROM events WHERE recorded_at <= $1")
        .bind(at.timestamp_micros())
        .fetch_one(pool)
        .await?;
    Ok(position.unwrap_or(0))
}
