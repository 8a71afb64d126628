//! PostgreSQL adapter of the event store.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::plan::{BatchPlan, Known, plan_batch};
use super::{AppendOutcome, AppendRequest, Head, RecordedEvent, StoreError, head_hash};

pub async fn connect(url: &str, pool_size: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new().max_connections(pool_size).connect(url).await
}

pub async fn commit_batch(
    pool: &PgPool,
    batch: &[&AppendRequest],
) -> Result<Vec<Result<AppendOutcome, StoreError>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The head row lock serializes writers (of every process), so positions follow commit order.
    let (position, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM event_head WHERE id = 1 FOR UPDATE").fetch_one(&mut *tx).await?;
    let hash = head_hash(hash).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;

    let streams: Vec<String> = batch
        .iter()
        .flat_map(|r| r.streams.iter().map(|s| s.stream_id.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let versions: Vec<(String, Option<i64>)> = sqlx::query_as(
        "SELECT s.stream_id, (SELECT e.version FROM events e WHERE e.stream_id = s.stream_id \
         ORDER BY e.version DESC LIMIT 1) FROM UNNEST($1::text[]) AS s(stream_id)",
    )
    .bind(&streams)
    .fetch_all(&mut *tx)
    .await?;
    let keys: Vec<String> = batch.iter().filter_map(|r| r.idempotency_key.clone()).collect();
    let outcomes: Vec<(String, Json<AppendOutcome>)> = if keys.is_empty() {
        Vec::new()
    } else {
        sqlx::query_as("SELECT key, outcome FROM idempotency_keys WHERE key = ANY($1)")
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await?
    };
    let known = Known {
        head: Head { position, hash },
        versions: versions.into_iter().filter_map(|(s, v)| Some((s, u64::try_from(v?).ok()?))).collect(),
        outcomes: outcomes.into_iter().map(|(k, Json(o))| (k, o)).collect::<HashMap<_, _>>(),
    };
    let plan = plan_batch(known, batch, super::writer_clock());

    if !plan.rows.is_empty() {
        write_plan(&mut tx, &plan).await?;
    }
    tx.commit().await?;
    Ok(plan.results)
}

/// Events, the new head and new idempotency keys in one statement (one round trip).
async fn write_plan(tx: &mut sqlx::PgConnection, plan: &BatchPlan) -> Result<(), sqlx::Error> {
    let mut columns = Columns::default();
    for row in &plan.rows {
        columns.push(row);
    }
    let (keys, outcomes): (Vec<String>, Vec<String>) =
        plan.new_keys.iter().map(|(k, o)| (k.clone(), serde_json::to_string(o).expect("outcome serializes"))).unzip();
    sqlx::query(
        "WITH inserted AS (\
            INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at, hash) \
            SELECT p, s, v, e, t, sv, pl::jsonb, md::jsonb, ra, h FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], \
            $5::text[], $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::bytea[]) AS u(p, s, v, e, t, sv, pl, md, ra, h) \
            RETURNING 1), \
         head AS (UPDATE event_head SET position = $11, hash = $12 WHERE id = 1 RETURNING 1), \
         keys AS (INSERT INTO idempotency_keys (key, outcome) SELECT k, o::jsonb FROM UNNEST($13::text[], $14::text[]) AS t(k, o) RETURNING 1) \
         SELECT (SELECT count(*) FROM inserted), (SELECT count(*) FROM head), (SELECT count(*) FROM keys)",
    )
    .bind(columns.positions)
    .bind(columns.stream_ids)
    .bind(columns.versions)
    .bind(columns.event_ids)
    .bind(columns.event_types)
    .bind(columns.schema_versions)
    .bind(columns.payloads)
    .bind(columns.metadata)
    .bind(columns.recorded_at)
    .bind(columns.hashes)
    .bind(plan.head.position)
    .bind(plan.head.hash.to_vec())
    .bind(keys)
    .bind(outcomes)
    .execute(tx)
    .await?;
    Ok(())
}

#[derive(Default)]
struct Columns {
    positions: Vec<i64>,
    stream_ids: Vec<String>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    payloads: Vec<String>,
    metadata: Vec<String>,
    recorded_at: Vec<DateTime<Utc>>,
    hashes: Vec<Vec<u8>>,
}

impl Columns {
    fn push(&mut self, row: &RecordedEvent) {
        self.positions.push(row.position);
        self.stream_ids.push(row.stream_id.clone());
        self.versions.push(row.version);
        self.event_ids.push(row.event_id);
        self.event_types.push(row.event_type.clone());
        self.schema_versions.push(row.schema_version);
        self.payloads.push(row.payload.to_string());
        self.metadata.push(row.metadata.to_string());
        self.recorded_at.push(row.recorded_at);
        self.hashes.push(row.hash.clone());
    }
}

macro_rules! select_events {
    () => {
        "SELECT position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at, hash FROM events"
    };
}

fn decode_row(row: PgRow) -> Result<RecordedEvent, sqlx::Error> {
    Ok(RecordedEvent {
        position: row.try_get("position")?,
        stream_id: row.try_get("stream_id")?,
        version: row.try_get("version")?,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get("schema_version")?,
        payload: row.try_get::<Value, _>("payload")?,
        metadata: row.try_get::<Value, _>("metadata")?,
        recorded_at: row.try_get("recorded_at")?,
        hash: row.try_get("hash")?,
    })
}

pub async fn read_stream(pool: &PgPool, stream_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(concat!(select_events!(), " WHERE stream_id = $1 ORDER BY version"))
        .bind(stream_id)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(decode_row).collect::<Result<_, _>>()?)
}

pub async fn read_all(pool: &PgPool, after: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(concat!(select_events!(), " WHERE position > $1 ORDER BY position LIMIT $2"))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(decode_row).collect::<Result<_, _>>()?)
}

pub async fn head(pool: &PgPool) -> Result<Head, StoreError> {
    let (position, hash): (i64, Vec<u8>) =
        sqlx::query_as("SELECT position, hash FROM event_head WHERE id = 1").fetch_one(pool).await?;
    Ok(Head { position, hash: head_hash(hash)? })
}

pub async fn position_at(pool: &PgPool, at: DateTime<Utc>) -> Result<i64, StoreError> {
    let (position,): (Option<i64>,) =
        sqlx::query_as("SELECT max(position) FROM events WHERE recorded_at <= $1").bind(at).fetch_one(pool).await?;
    Ok(position.unwrap_or(0))
}
