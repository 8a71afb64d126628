//! PostgreSQL adapter of the event store.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::plan::{BatchPlan, Known, PlannedRow, WriterCache, plan_batch};
use super::{AppendOutcome, AppendRequest, Committed, Head, RecordedEvent, StoreError, head_hash};

/// A pooled connection idle longer than this is pinged before it is handed out.
const PING_IF_IDLE_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The pool. sqlx pings every connection on acquire by default: a round trip more for every
/// query, most of a short request's cost on loopback. A busy connection is used as it is
/// (if the server went away, that one query fails and the connection is dropped); one idle
/// for a second or more is pinged first.
pub async fn connect(url: &str, pool_size: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(pool_size)
        .test_before_acquire(false)
        .before_acquire(|connection, meta| {
            Box::pin(async move {
                use sqlx::Connection as _;
                Ok(meta.idle_for < PING_IF_IDLE_FOR || connection.ping().await.is_ok())
            })
        })
        .connect(url)
        .await
}

/// How many times a batch is planned again after another process moved the head first.
const HEAD_RACE_RETRIES_MAX: usize = 1_000;

/// Each batch is one autocommit write, conditional on the head still being where this
/// writer last saw it; the read before it (head, stream versions, known keys, in one
/// snapshot) is skipped when the writer's own cache can answer. If another process appended
/// in between, or a key or version turns out to be taken, nothing is written: the cache is
/// dropped and the batch is planned again from a fresh read. The head-row update holds its
/// row lock until commit, so positions follow commit order.
pub async fn commit_batch(
    pool: &PgPool,
    batch: &[&AppendRequest],
    cache: &mut WriterCache,
    tag: &str,
) -> Result<Committed, sqlx::Error> {
    let streams: Vec<String> = batch
        .iter()
        .flat_map(|r| r.streams.iter().map(|s| s.stream_id.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let keys: Vec<String> = batch.iter().filter_map(|r| r.idempotency_key.clone()).collect();
    let mut use_cache = keys.is_empty();
    for _ in 0..HEAD_RACE_RETRIES_MAX {
        let cached = if use_cache { cache.known_for(batch) } else { None };
        let from_cache = cached.is_some();
        let known = match cached {
            Some(known) => known,
            None => {
                let known = read_known(pool, &streams, &keys).await?;
                cache.remember_read(&known);
                known
            }
        };
        let expected_head = known.head.position;
        let plan = plan_batch(known, batch, super::writer_clock());
        if from_cache && plan.has_conflict() {
            // A refusal must come from the database's state, not from memory.
            use_cache = false;
            continue;
        }
        if plan.rows.is_empty() {
            return Ok(plan.into());
        }
        match write_plan(pool, &plan, expected_head, tag).await {
            Ok(true) => {
                cache.remember_write(&plan);
                return Ok(plan.into());
            }
            Ok(false) => tracing::debug!(head = expected_head, "store.head_moved_replanning"),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() && from_cache => {
                tracing::debug!(%error, "store.cache_stale_replanning");
            }
            Err(error) => return Err(error),
        }
        cache.forget();
        use_cache = false;
    }
    Err(sqlx::Error::Protocol(format!("another writer moved the head {HEAD_RACE_RETRIES_MAX} times in a row")))
}

/// `(kind, name, version or position, hash or outcome)`: one row of the combined read.
type KnownRow = (String, Option<String>, Option<i64>, Option<Vec<u8>>);

async fn read_known(pool: &PgPool, streams: &[String], keys: &[String]) -> Result<Known, sqlx::Error> {
    let rows: Vec<KnownRow> = sqlx::query_as(
        "SELECT 'head', NULL::text, position, hash FROM event_head WHERE id = 1 \
         UNION ALL \
         SELECT 'stream', s.stream_id, (SELECT e.version FROM events e WHERE e.stream_id = s.stream_id \
           ORDER BY e.version DESC LIMIT 1), NULL::bytea FROM UNNEST($1::text[]) AS s(stream_id) \
         UNION ALL \
         SELECT 'key', k.key, NULL::bigint, convert_to(k.outcome::text, 'UTF8') FROM idempotency_keys k WHERE k.key = ANY($2::text[])",
    )
    .bind(streams)
    .bind(keys)
    .fetch_all(pool)
    .await?;
    let mut head = None;
    let mut versions = HashMap::new();
    let mut outcomes = HashMap::new();
    for (kind, name, version, data) in rows {
        match (kind.as_str(), name, version, data) {
            ("head", _, Some(position), Some(hash)) => {
                let hash = head_hash(hash).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
                head = Some(Head { position, hash });
            }
            ("stream", Some(stream), Some(version), _) => {
                versions.insert(stream, u64::try_from(version).map_err(|e| sqlx::Error::Decode(Box::new(e)))?);
            }
            ("stream", Some(_), None, _) => {}
            ("key", Some(key), _, Some(outcome)) => {
                let outcome: AppendOutcome =
                    serde_json::from_slice(&outcome).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                outcomes.insert(key, outcome);
            }
            (kind, ..) => return Err(sqlx::Error::Protocol(format!("unexpected {kind} row reading the head"))),
        }
    }
    let head = head.ok_or_else(|| sqlx::Error::Protocol("event_head has no row".into()))?;
    Ok(Known { head, versions, outcomes })
}

/// Events, the new head and new idempotency keys in one statement, written only if the head
/// is still at `expected_head`, and the commit announced to every process's tail
/// (`NOTIFY smsledger_events` with the writer's `tag`, delivered at commit). Returns whether
/// it was written.
async fn write_plan(pool: &PgPool, plan: &BatchPlan, expected_head: i64, tag: &str) -> Result<bool, sqlx::Error> {
    let mut columns = Columns::default();
    for row in &plan.rows {
        columns.push(row);
    }
    let (keys, outcomes): (Vec<String>, Vec<String>) =
        plan.new_keys.iter().map(|(k, o)| (k.clone(), serde_json::to_string(o).expect("outcome serializes"))).unzip();
    let (head_moved, inserted, _notified): (i64, i64, i64) = sqlx::query_as(
        "WITH head AS (UPDATE event_head SET position = $11, hash = $12 WHERE id = 1 AND position = $15 RETURNING 1), \
         inserted AS (\
            INSERT INTO events (position, stream_id, version, event_id, event_type, schema_version, payload, metadata, recorded_at, hash) \
            SELECT p, s, v, e, t, sv, pl::jsonb, md::jsonb, ra, h FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], \
            $5::text[], $6::int[], $7::text[], $8::text[], $9::timestamptz[], $10::bytea[]) AS u(p, s, v, e, t, sv, pl, md, ra, h) \
            WHERE EXISTS (SELECT 1 FROM head) RETURNING 1), \
         keys AS (INSERT INTO idempotency_keys (key, outcome) SELECT k, o::jsonb FROM UNNEST($13::text[], $14::text[]) AS t(k, o) \
            WHERE EXISTS (SELECT 1 FROM head) RETURNING 1), \
         notified AS (SELECT pg_notify($16, $17) FROM head) \
         SELECT (SELECT count(*) FROM head), (SELECT count(*) FROM inserted), (SELECT count(*) FROM notified)",
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
    .bind(expected_head)
    .bind(super::live::CHANNEL)
    .bind(tag)
    .fetch_one(pool)
    .await?;
    debug_assert!(head_moved == 0 || inserted as usize == plan.rows.len());
    Ok(head_moved == 1)
}

/// A batch's rows as one array per column, borrowing the plan's text.
#[derive(Default)]
struct Columns<'a> {
    positions: Vec<i64>,
    stream_ids: Vec<&'a str>,
    versions: Vec<i64>,
    event_ids: Vec<Uuid>,
    event_types: Vec<&'a str>,
    schema_versions: Vec<i32>,
    payloads: Vec<&'a str>,
    metadata: Vec<&'a str>,
    recorded_at: Vec<DateTime<Utc>>,
    hashes: Vec<Vec<u8>>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, planned: &'a PlannedRow) {
        let row = &planned.event;
        self.positions.push(row.position);
        self.stream_ids.push(&row.stream_id);
        self.versions.push(row.version);
        self.event_ids.push(row.event_id);
        self.event_types.push(&row.event_type);
        self.schema_versions.push(row.schema_version);
        self.payloads.push(&planned.payload_json);
        self.metadata.push(&planned.metadata_json);
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

pub async fn read_stream(pool: &PgPool, stream_id: &str, after_version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(concat!(select_events!(), " WHERE stream_id = $1 AND version > $2 ORDER BY version"))
        .bind(stream_id)
        .bind(i64::try_from(after_version).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(decode_row).collect::<Result<_, _>>()?)
}

pub async fn last_in_stream(pool: &PgPool, stream_id: &str) -> Result<Option<RecordedEvent>, StoreError> {
    let row = sqlx::query(concat!(select_events!(), " WHERE stream_id = $1 ORDER BY version DESC LIMIT 1"))
        .bind(stream_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(decode_row).transpose()?)
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
