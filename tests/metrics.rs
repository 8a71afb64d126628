//! The store's metrics, read through the real Prometheus recorder.

mod common;

use std::time::Duration;

use serde_json::json;
use smsledger::store::{AppendRequest, ExpectedVersion, NewEvent, StreamAppend};

fn append(stream: &str, expected: ExpectedVersion) -> AppendRequest {
    let event = NewEvent {
        event_id: uuid::Uuid::now_v7(),
        event_type: "test.counted".into(),
        schema_version: 1,
        payload: json!({}),
        decoded: None,
    };
    AppendRequest {
        streams: vec![StreamAppend { stream_id: stream.into(), expected, events: vec![event] }],
        ..Default::default()
    }
}

#[tokio::test]
async fn appends_are_counted_by_outcome() {
    let handle = smsledger::metrics::install();
    let db = common::sqlite_database();
    let store = common::open_store(&db).await;
    store.append(append("a", ExpectedVersion::NoStream)).await.unwrap();
    store.append(append("b", ExpectedVersion::NoStream)).await.unwrap();
    assert!(store.append(append("a", ExpectedVersion::NoStream)).await.is_err());
    let keyed = AppendRequest { idempotency_key: Some("k".into()), ..append("c", ExpectedVersion::Any) };
    store.append(keyed.clone()).await.unwrap();
    store.append(keyed).await.unwrap();
    let text = handle.render();
    assert!(text.contains(r#"store_appends_total{result="appended"} 3"#), "{text}");
    assert!(text.contains(r#"store_appends_total{result="conflict"} 1"#), "{text}");
    assert!(text.contains(r#"store_appends_total{result="replayed"} 1"#), "{text}");
    assert!(text.contains("store_batch_commit_seconds_count"), "{text}");
}

/// Histogram samples are folded into their buckets by a thread of the recorder's own, not
/// only when `/metrics` is scraped: without it an instance nobody scraped kept every request's
/// sample (decision 0031). The thread is looked up by name among the process's threads.
#[test]
fn the_recorder_is_upkept_without_a_scrape() {
    let _handle = smsledger::metrics::install();
    let thread_names = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .expect("Linux lists a process's threads")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_owned())
            .collect()
    };
    // A new thread carries its parent's name until it has started and named itself.
    let started = std::time::Instant::now();
    let mut names = thread_names();
    while !names.iter().any(|name| name == "metrics-upkeep") && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
        names = thread_names();
    }
    assert!(names.iter().any(|name| name == "metrics-upkeep"), "{names:?}");
}
