//! What goes into the event store and what comes out.

use chrono::{DateTime, Utc};
use domain::DomainEvent;
use domain::events::SCHEMA_VERSION_CURRENT;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// Longest stream id accepted.
pub const STREAM_ID_LENGTH_MAX: usize = 200;
/// Longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;
/// Most events one append may carry.
pub const APPEND_EVENTS_MAX: usize = 1_000;

/// The optimistic-concurrency check an append makes on one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be exactly at this version (its last event's version).
    Exact(u64),
}

impl ExpectedVersion {
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(version) => actual == version,
        }
    }

    /// What to expect of a stream whose state was folded from `version` events.
    pub fn from_version(version: u64) -> Self {
        if version == 0 { ExpectedVersion::NoStream } else { ExpectedVersion::Exact(version) }
    }
}

/// Who and what caused an append. Stored with every event of the append.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The client address of the request that caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    /// The domain event `payload` encodes, when this process made it: its own tail passes it
    /// on as it is instead of decoding the payload back (the round trip is tested in
    /// `domain::events`). `None`: the tail decodes the payload.
    pub decoded: Option<DomainEvent>,
}

impl NewEvent {
    pub fn from_domain(event: &DomainEvent) -> Self {
        let (event_type, payload) = event.encode();
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type,
            schema_version: SCHEMA_VERSION_CURRENT,
            payload,
            decoded: Some(event.clone()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct StreamAppend {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One command's append: one or more streams, all or nothing.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct AppendRequest {
    pub streams: Vec<StreamAppend>,
    pub idempotency_key: Option<String>,
    pub metadata: Metadata,
}

impl AppendRequest {
    pub fn event_count(&self) -> usize {
        self.streams.iter().map(|s| s.events.len()).sum()
    }

    pub fn validate(&self) -> Result<(), super::StoreError> {
        let invalid = |why: &str| Err(super::StoreError::Invalid(why.to_owned()));
        let count = self.event_count();
        if count == 0 {
            return invalid("an append needs at least one event");
        }
        if count > APPEND_EVENTS_MAX {
            return invalid("too many events in one append");
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.len() > IDEMPOTENCY_KEY_LENGTH_MAX)
        {
            return invalid("idempotency key must be 1 to 255 bytes");
        }
        for (i, stream) in self.streams.iter().enumerate() {
            if stream.stream_id.is_empty() || stream.stream_id.len() > STREAM_ID_LENGTH_MAX {
                return invalid("stream id must be 1 to 200 bytes");
            }
            if self.streams[..i].iter().any(|s| s.stream_id == stream.stream_id) {
                return invalid("a stream may appear once per append");
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamVersion {
    pub stream_id: String,
    pub version: u64,
}

/// The result of an append. A repeat with the same idempotency key gets the first
/// result back with `replayed: true`, and nothing is appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub first_position: i64,
    pub last_position: i64,
    pub streams: Vec<StreamVersion>,
    #[serde(default)]
    pub replayed: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: Value,
    pub metadata: Value,
    pub recorded_at: DateTime<Utc>,
    pub hash: Vec<u8>,
}

impl RecordedEvent {
    pub fn decode(&self) -> Result<DomainEvent, domain::events::DecodeError> {
        DomainEvent::decode(&self.event_type, self.schema_version, &self.payload)
    }
}

/// A committed event and the domain event it was made from (if its request carried it), as
/// this process's writer hands it to its tail.
pub type Handed = (RecordedEvent, Option<DomainEvent>);

/// An event as this process passed it along the log, decoded once for all its readers here
/// (the streams in memory, the orders lists, every projection): `recorded` without its
/// payload (taken out to decode it), `decoded` the domain event or why it did not decode.
#[derive(Debug)]
pub struct Passed {
    pub recorded: RecordedEvent,
    pub decoded: Result<DomainEvent, String>,
}

impl Passed {
    pub fn decode(mut recorded: RecordedEvent) -> Passed {
        let payload = std::mem::take(&mut recorded.payload);
        let decoded = DomainEvent::decode_owned(&recorded.event_type, recorded.schema_version, payload)
            .map_err(|e| e.to_string());
        Passed { recorded, decoded }
    }

    /// An event this process's writer committed, with the domain event it was made from
    /// (`None`: decoded from its payload, as one read from the log).
    pub fn handed((mut recorded, decoded): Handed) -> Passed {
        match decoded {
            Some(event) => {
                recorded.payload = Value::Null;
                Passed { recorded, decoded: Ok(event) }
            }
            None => Passed::decode(recorded),
        }
    }

    /// A page of events as read from the log (or handed over by the writer), each decoded.
    pub fn decode_all(events: Vec<RecordedEvent>) -> Vec<std::sync::Arc<Passed>> {
        events.into_iter().map(|event| std::sync::Arc::new(Passed::decode(event))).collect()
    }
}

/// A stream folded into state, and the version (event count) it was folded to.
#[derive(Clone, Debug)]
pub struct Loaded<S> {
    pub state: S,
    pub version: u64,
}

/// The newest position and the hash at its end of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    pub position: i64,
    pub hash: [u8; 32],
}
