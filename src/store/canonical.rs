//! Canonical bytes of an event and the sha256 hash chain over them.
//!
//! `hash(n) = sha256(hash(n-1) || canonical(n))`, starting from 32 zero bytes. The canonical
//! form is independent of how an engine stores JSON: object keys are sorted recursively and
//! every field is length-prefixed, so no two different events share bytes.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::RecordedEvent;

pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// JSON with object keys sorted at every depth and no insignificant whitespace.
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key).expect("writing to a Vec cannot fail");
                out.push(b':');
                canonical_json(&map[key], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect("writing to a Vec cannot fail"),
    }
}

fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).expect("an event field is under 4 GiB");
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(bytes);
}

/// `value` as canonical JSON text (what the hash covers; the engines store the same text).
pub fn canonical_text(value: &Value) -> String {
    let mut out = Vec::with_capacity(128);
    canonical_json(value, &mut out);
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

pub fn canonical_bytes(event: &RecordedEvent) -> Vec<u8> {
    canonical_bytes_with(event, &canonical_text(&event.payload), &canonical_text(&event.metadata))
}

/// As [`canonical_bytes`], with the payload and metadata already in canonical JSON text.
fn canonical_bytes_with(event: &RecordedEvent, payload: &str, metadata: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + payload.len() + metadata.len());
    field(&mut out, &event.position.to_be_bytes());
    field(&mut out, event.stream_id.as_bytes());
    field(&mut out, &event.version.to_be_bytes());
    field(&mut out, event.event_id.as_bytes());
    field(&mut out, event.event_type.as_bytes());
    field(&mut out, &event.schema_version.to_be_bytes());
    field(&mut out, payload.as_bytes());
    field(&mut out, metadata.as_bytes());
    field(&mut out, &event.recorded_at.timestamp_micros().to_be_bytes());
    out
}

pub fn chain_hash(previous: &[u8; 32], event: &RecordedEvent) -> [u8; 32] {
    hash_of(previous, &canonical_bytes(event))
}

/// As [`chain_hash`], with the payload and metadata already in canonical JSON text (the
/// writer makes that text once, hashes it and stores it).
pub fn chain_hash_with(previous: &[u8; 32], event: &RecordedEvent, payload: &str, metadata: &str) -> [u8; 32] {
    hash_of(previous, &canonical_bytes_with(event, payload, metadata))
}

fn hash_of(previous: &[u8; 32], canonical: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical);
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn key_order_does_not_matter() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,"x"],"x":null}}"#).unwrap();
        let b = json!({"a": {"x": null, "y": [1, "x"]}, "b": 1});
        let (mut ca, mut cb) = (Vec::new(), Vec::new());
        canonical_json(&a, &mut ca);
        canonical_json(&b, &mut cb);
        assert_eq!(ca, cb);
        assert_eq!(String::from_utf8(ca).unwrap(), r#"{"a":{"x":null,"y":[1,"x"]},"b":1}"#);
    }

    /// The writer hashes text it made once; `verify` hashes the values read back. Same hash.
    #[test]
    fn hashing_the_text_made_once_is_hashing_the_event() {
        let event = RecordedEvent {
            position: 7,
            stream_id: "wallet-1".into(),
            version: 2,
            event_id: uuid::Uuid::now_v7(),
            event_type: "wallet.deposited".into(),
            schema_version: 1,
            payload: json!({"z": "1.50", "a": [1, {"y": null, "b": true}]}),
            metadata: json!({"request_id": "r", "actor": "u"}),
            recorded_at: chrono::Utc::now(),
            hash: Vec::new(),
        };
        let (payload, metadata) = (canonical_text(&event.payload), canonical_text(&event.metadata));
        assert_eq!(payload, r#"{"a":[1,{"b":true,"y":null}],"z":"1.50"}"#);
        let previous = [9; 32];
        assert_eq!(chain_hash_with(&previous, &event, &payload, &metadata), chain_hash(&previous, &event));
        assert_ne!(chain_hash_with(&previous, &event, "{}", &metadata), chain_hash(&previous, &event));
    }
}
