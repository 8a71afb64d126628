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

pub fn canonical_bytes(event: &RecordedEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    field(&mut out, &event.position.to_be_bytes());
    field(&mut out, event.stream_id.as_bytes());
    field(&mut out, &event.version.to_be_bytes());
    field(&mut out, event.event_id.as_bytes());
    field(&mut out, event.event_type.as_bytes());
    field(&mut out, &event.schema_version.to_be_bytes());
    let mut json = Vec::with_capacity(128);
    canonical_json(&event.payload, &mut json);
    field(&mut out, &json);
    json.clear();
    canonical_json(&event.metadata, &mut json);
    field(&mut out, &json);
    field(&mut out, &event.recorded_at.timestamp_micros().to_be_bytes());
    out
}

pub fn chain_hash(previous: &[u8; 32], event: &RecordedEvent) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    hasher.update(canonical_bytes(event));
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
}
