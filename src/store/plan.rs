//! Planning one group-commit batch, with no IO: an engine learns the head, stream versions
//! and used keys the batch names (SQLite under its write lock; PostgreSQL from one snapshot
//! or from the writer's cache, then writes only if the head has not moved), calls
//! [`plan_batch`], and writes its rows.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use domain::DomainEvent;

use super::canonical::{canonical_text, chain_hash_with};
use super::{AppendOutcome, AppendRequest, Head, RecordedEvent, StoreError, StreamVersion};

/// What the database already holds for the batch's streams and keys.
pub struct Known {
    pub head: Head,
    /// Current version of each stream the batch names (absent: the stream is new).
    pub versions: HashMap<String, u64>,
    /// First outcomes of idempotency keys already used.
    pub outcomes: HashMap<String, AppendOutcome>,
}

/// A row a batch writes.
pub struct PlannedRow {
    /// The event as recorded. Its payload is `Null` when `decoded` is there: the engines
    /// store `payload_json`, and this process's tail needs only the domain event.
    pub event: RecordedEvent,
    /// The domain event it was made from, if the request carried it.
    pub decoded: Option<DomainEvent>,
    /// Payload and metadata as canonical JSON text: made once, hashed, and handed to the
    /// engine as is.
    pub payload_json: String,
    /// Shared by the events of one request.
    pub metadata_json: Arc<str>,
}

pub struct BatchPlan {
    pub rows: Vec<PlannedRow>,
    /// New idempotency keys and their outcomes, to store with the rows.
    pub new_keys: Vec<(String, AppendOutcome)>,
    pub head: Head,
    /// One result per request, in order.
    pub results: Vec<Result<AppendOutcome, StoreError>>,
}

/// Decides each request in order against what is known plus what earlier requests in the
/// same batch wrote. A rejected request writes nothing and does not affect the others.
pub fn plan_batch(mut known: Known, batch: &[&AppendRequest], recorded_at: DateTime<Utc>) -> BatchPlan {
    let mut plan = BatchPlan { rows: Vec::new(), new_keys: Vec::new(), head: known.head.clone(), results: Vec::new() };
    for request in batch {
        let result = plan_one(&mut known, &mut plan, request, recorded_at);
        plan.results.push(result);
    }
    plan
}

fn plan_one(
    known: &mut Known,
    plan: &mut BatchPlan,
    request: &AppendRequest,
    recorded_at: DateTime<Utc>,
) -> Result<AppendOutcome, StoreError> {
    request.validate()?;
    if let Some(key) = &request.idempotency_key
        && let Some(first) = known.outcomes.get(key)
    {
        return Ok(AppendOutcome { replayed: true, ..first.clone() });
    }
    for stream in &request.streams {
        let actual = known.versions.get(&stream.stream_id).copied().unwrap_or(0);
        if !stream.expected.matches(actual) {
            return Err(StoreError::Conflict {
                stream_id: stream.stream_id.clone(),
                expected: stream.expected,
                actual,
            });
        }
    }
    let metadata = metadata_with_key(request);
    let metadata_json: Arc<str> = canonical_text(&metadata).into();
    let first_position = plan.head.position + 1;
    let mut versions = Vec::with_capacity(request.streams.len());
    for stream in &request.streams {
        let mut version = known.versions.get(&stream.stream_id).copied().unwrap_or(0);
        for event in &stream.events {
            version += 1;
            let mut row = RecordedEvent {
                position: plan.head.position + 1,
                stream_id: stream.stream_id.clone(),
                version: i64::try_from(version).expect("stream versions fit in i64"),
                event_id: event.event_id,
                event_type: event.event_type.clone(),
                schema_version: event.schema_version,
                payload: if event.decoded.is_some() { serde_json::Value::Null } else { event.payload.clone() },
                metadata: metadata.clone(),
                recorded_at,
                hash: Vec::new(),
            };
            let payload_json = canonical_text(&event.payload);
            let hash = chain_hash_with(&plan.head.hash, &row, &payload_json, &metadata_json);
            row.hash = hash.to_vec();
            plan.head = Head { position: row.position, hash };
            plan.rows.push(PlannedRow {
                event: row,
                decoded: event.decoded.clone(),
                payload_json,
                metadata_json: Arc::clone(&metadata_json),
            });
        }
        known.versions.insert(stream.stream_id.clone(), version);
        versions.push(StreamVersion { stream_id: stream.stream_id.clone(), version });
    }
    let outcome =
        AppendOutcome { first_position, last_position: plan.head.position, streams: versions, replayed: false };
    if let Some(key) = &request.idempotency_key {
        known.outcomes.insert(key.clone(), outcome.clone());
        plan.new_keys.push((key.clone(), outcome.clone()));
    }
    Ok(outcome)
}

fn metadata_with_key(request: &AppendRequest) -> serde_json::Value {
    let mut metadata = request.metadata.clone();
    if metadata.idempotency_key.is_none() {
        metadata.idempotency_key = request.idempotency_key.clone();
    }
    serde_json::to_value(metadata).expect("metadata always serializes")
}

/// Most stream versions a writer remembers; past this it forgets them all and reads again.
pub const CACHED_STREAMS_MAX: usize = 100_000;

/// What one writer knows from its own last commit: the head it wrote and the versions of
/// the streams it wrote. Valid exactly as long as the head has not moved, which every
/// write checks (the head update is conditional), so a stale cache can never write.
#[derive(Default)]
pub struct WriterCache {
    head: Option<Head>,
    versions: HashMap<String, u64>,
}

impl WriterCache {
    /// `Known` for this batch without reading, if the cache can answer it: every stream is
    /// cached or expected not to exist yet (a stream that does exist fails the write's unique
    /// check, and the batch is re-read). Batches with idempotency keys are never planned from
    /// the cache: keys are always looked up.
    pub fn known_for(&self, batch: &[&AppendRequest]) -> Option<Known> {
        let head = self.head.clone()?;
        let mut versions = HashMap::new();
        for stream in batch.iter().flat_map(|r| &r.streams) {
            match self.versions.get(&stream.stream_id) {
                Some(version) => {
                    versions.insert(stream.stream_id.clone(), *version);
                }
                None if stream.expected == super::ExpectedVersion::NoStream => {}
                None => return None,
            }
        }
        Some(Known { head, versions, outcomes: HashMap::new() })
    }

    /// After a read: the database's head and versions.
    pub fn remember_read(&mut self, known: &Known) {
        self.head = Some(known.head.clone());
        self.remember_versions(known.versions.iter().map(|(s, v)| (s.clone(), *v)));
    }

    /// After a successful write: the new head and the versions just written.
    pub fn remember_write(&mut self, plan: &BatchPlan) {
        self.head = Some(plan.head.clone());
        self.remember_versions(plan.rows.iter().map(|row| (row.event.stream_id.clone(), row.event.version as u64)));
    }

    pub fn forget(&mut self) {
        self.head = None;
        self.versions.clear();
    }

    fn remember_versions(&mut self, versions: impl Iterator<Item = (String, u64)>) {
        for (stream, version) in versions {
            if self.versions.len() >= CACHED_STREAMS_MAX {
                self.versions.clear();
            }
            self.versions.insert(stream, version);
        }
    }
}

impl BatchPlan {
    /// Whether any request was refused for a version conflict.
    pub fn has_conflict(&self) -> bool {
        self.results.iter().any(|r| matches!(r, Err(StoreError::Conflict { .. })))
    }
}
