//! One conformance suite for the event store, run against PostgreSQL and SQLite.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{TestDatabase, open_store};
use serde_json::json;
use smsledger::store::canonical::{GENESIS_HASH, chain_hash};
use smsledger::store::{AppendRequest, Engine, EventStore, ExpectedVersion, NewEvent, StoreError, StreamAppend};
use uuid::Uuid;

fn event(n: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "test.happened".into(),
        schema_version: 1,
        payload: json!({"n": n, "text": "é\"x"}),
        decoded: None,
    }
}

fn append_to(stream: &str, expected: ExpectedVersion, count: usize) -> AppendRequest {
    AppendRequest {
        streams: vec![StreamAppend { stream_id: stream.into(), expected, events: (0..count).map(event).collect() }],
        ..Default::default()
    }
}

async fn appends_and_reads_a_stream(db: TestDatabase) {
    let store = open_store(&db).await;
    let first = store.append(append_to("s-1", ExpectedVersion::NoStream, 2)).await.unwrap();
    assert_eq!((first.first_position, first.last_position), (1, 2));
    let second = store.append(append_to("s-1", ExpectedVersion::Exact(2), 1)).await.unwrap();
    assert_eq!(second.streams[0].version, 3);
    let events = store.read_stream("s-1").await.unwrap();
    assert_eq!(events.iter().map(|e| e.version).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(events[2].payload, json!({"n": 0, "text": "é\"x"}));
    assert!(store.read_stream("missing").await.unwrap().is_empty());
    assert_eq!(store.head().await.unwrap().position, 3);
}

async fn wrong_expected_version_is_a_typed_conflict(db: TestDatabase) {
    let store = open_store(&db).await;
    store.append(append_to("s", ExpectedVersion::NoStream, 1)).await.unwrap();
    let conflict = store.append(append_to("s", ExpectedVersion::NoStream, 1)).await.unwrap_err();
    assert!(
        matches!(conflict, StoreError::Conflict { actual: 1, expected: ExpectedVersion::NoStream, .. }),
        "{conflict:?}"
    );
    let conflict = store.append(append_to("s", ExpectedVersion::Exact(5), 1)).await.unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict { actual: 1, expected: ExpectedVersion::Exact(5), .. }));
    let conflict = store.append(append_to("new", ExpectedVersion::Exact(1), 1)).await.unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict { actual: 0, .. }));
    store.append(append_to("s", ExpectedVersion::Any, 1)).await.unwrap();
    assert_eq!(store.head().await.unwrap().position, 2);
}

async fn multi_stream_append_is_all_or_nothing(db: TestDatabase) {
    let store = open_store(&db).await;
    store.append(append_to("wallet", ExpectedVersion::NoStream, 1)).await.unwrap();
    let both = |wallet_expected| AppendRequest {
        streams: vec![
            StreamAppend { stream_id: "order".into(), expected: ExpectedVersion::NoStream, events: vec![event(1)] },
            StreamAppend { stream_id: "wallet".into(), expected: wallet_expected, events: vec![event(2)] },
        ],
        ..Default::default()
    };
    assert!(matches!(store.append(both(ExpectedVersion::NoStream)).await, Err(StoreError::Conflict { .. })));
    assert!(store.read_stream("order").await.unwrap().is_empty(), "the order must not be written without its hold");
    let outcome = store.append(both(ExpectedVersion::Exact(1))).await.unwrap();
    assert_eq!((outcome.first_position, outcome.last_position), (2, 3));
    assert_eq!(store.read_stream("order").await.unwrap().len(), 1);
    assert_eq!(store.read_stream("wallet").await.unwrap().len(), 2);
}

async fn invalid_appends_are_refused(db: TestDatabase) {
    let store = open_store(&db).await;
    let empty = AppendRequest::default();
    assert!(matches!(store.append(empty).await, Err(StoreError::Invalid(_))));
    let twice = AppendRequest {
        streams: vec![
            StreamAppend { stream_id: "a".into(), expected: ExpectedVersion::Any, events: vec![event(1)] },
            StreamAppend { stream_id: "a".into(), expected: ExpectedVersion::Any, events: vec![event(2)] },
        ],
        ..Default::default()
    };
    assert!(matches!(store.append(twice).await, Err(StoreError::Invalid(_))));
    let long_id = append_to(&"x".repeat(201), ExpectedVersion::Any, 1);
    assert!(matches!(store.append(long_id).await, Err(StoreError::Invalid(_))));
    assert_eq!(store.head().await.unwrap().position, 0);
}

async fn concurrent_writers_on_one_stream_win_each_version_once(db: TestDatabase) {
    let store = open_store(&db).await;
    let wins = Arc::new(AtomicUsize::new(0));
    let conflicts = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let (store, wins, conflicts) = (store.clone(), wins.clone(), conflicts.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..15 {
                let version = store.read_stream("hot").await.unwrap().len() as u64;
                match store.append(append_to("hot", ExpectedVersion::from_version(version), 1)).await {
                    Ok(_) => wins.fetch_add(1, Ordering::Relaxed),
                    Err(StoreError::Conflict { .. }) => conflicts.fetch_add(1, Ordering::Relaxed),
                    Err(other) => panic!("unexpected {other:?}"),
                };
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let events = store.read_stream("hot").await.unwrap();
    let wins = wins.load(Ordering::Relaxed);
    assert_eq!(events.len(), wins, "every win is one version, every version one win");
    assert_eq!(events.iter().map(|e| e.version).collect::<Vec<_>>(), (1..=wins as i64).collect::<Vec<_>>());
    assert_eq!(wins + conflicts.load(Ordering::Relaxed), 12 * 15);
    assert!(conflicts.load(Ordering::Relaxed) > 0, "12 racing writers must collide at least once");
}

async fn a_tailing_reader_sees_every_position_once_in_order(db: TestDatabase) {
    let store = open_store(&db).await;
    // A second store on the same database has its own writer, as a second process would:
    // the two contend for the head lock.
    let second_process = open_store(&db).await;
    const WRITERS: usize = 10;
    const APPENDS: usize = 60;
    let total = (WRITERS * APPENDS * 2) as i64;
    let reader = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            while after < total {
                let page = store.read_all(after, 37).await.unwrap();
                for event in &page {
                    seen.push(event.position);
                    after = event.position;
                }
                if page.is_empty() {
                    tokio::task::yield_now().await;
                }
            }
            seen
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = if w % 2 == 0 { store.clone() } else { second_process.clone() };
        writers.push(tokio::spawn(async move {
            for i in 0..APPENDS {
                let stream = format!("writer-{w}");
                store.append(append_to(&stream, ExpectedVersion::from_version((i * 2) as u64), 2)).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let seen = tokio::time::timeout(std::time::Duration::from_secs(60), reader).await.unwrap().unwrap();
    assert_eq!(seen, (1..=total).collect::<Vec<_>>(), "every position exactly once, in order");
}

async fn idempotency_key_returns_the_first_outcome(db: TestDatabase) {
    let store = open_store(&db).await;
    let with_key = |n| AppendRequest {
        idempotency_key: Some("stripe:evt_1".into()),
        ..append_to("deposits", ExpectedVersion::Any, n)
    };
    let first = store.append(with_key(1)).await.unwrap();
    assert!(!first.replayed);
    let again = store.append(with_key(3)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.first_position, again.last_position, &again.streams),
        (first.first_position, first.last_position, &first.streams)
    );
    assert_eq!(store.head().await.unwrap().position, 1, "a repeat appends nothing");
    // Concurrent repeats of one key: one append, all get the same outcome.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let request =
                AppendRequest { idempotency_key: Some("sms:42".into()), ..append_to("sms", ExpectedVersion::Any, 1) };
            store.append(request).await.unwrap()
        }));
    }
    let mut positions = HashSet::new();
    for task in tasks {
        positions.insert(task.await.unwrap().first_position);
    }
    assert_eq!(positions.len(), 1);
    assert_eq!(store.read_stream("sms").await.unwrap().len(), 1);
    let stored = store.read_stream("sms").await.unwrap();
    assert_eq!(stored[0].metadata["idempotency_key"], "sms:42");
}

async fn the_log_rejects_updates_deletes_and_truncates(db: TestDatabase) {
    let store = open_store(&db).await;
    store.append(append_to("s", ExpectedVersion::Any, 2)).await.unwrap();
    store
        .append(AppendRequest { idempotency_key: Some("k".into()), ..append_to("t", ExpectedVersion::Any, 1) })
        .await
        .unwrap();
    let statements: &[&'static str] = match store.engine() {
        Engine::Postgres(_) => &[
            "UPDATE events SET payload = '{}' WHERE position = 1",
            "DELETE FROM events WHERE position = 2",
            "DELETE FROM events",
            "TRUNCATE events",
            "UPDATE idempotency_keys SET outcome = '{}'",
            "DELETE FROM idempotency_keys",
            "TRUNCATE idempotency_keys",
        ],
        Engine::Sqlite(_) => &[
            "UPDATE events SET payload = '{}' WHERE position = 1",
            "DELETE FROM events WHERE position = 2",
            "DELETE FROM events",
            "UPDATE idempotency_keys SET outcome = '{}'",
            "DELETE FROM idempotency_keys",
        ],
    };
    for statement in statements {
        let result = match store.engine() {
            Engine::Postgres(pool) => sqlx::query(*statement).execute(pool).await.map(|_| ()),
            Engine::Sqlite(pool) => sqlx::query(*statement).execute(pool).await.map(|_| ()),
        };
        let error = result.expect_err(statement).to_string();
        assert!(error.contains("append-only"), "{statement}: {error}");
    }
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 3);
}

async fn the_hash_chain_links_every_event(db: TestDatabase) {
    let store = open_store(&db).await;
    for i in 0..5 {
        store.append(append_to(&format!("s{i}"), ExpectedVersion::NoStream, i + 1)).await.unwrap();
    }
    let events = store.read_all(0, 1_000).await.unwrap();
    let mut previous = GENESIS_HASH;
    for event in &events {
        let hash = chain_hash(&previous, event);
        assert_eq!(event.hash, hash.to_vec(), "position {}", event.position);
        previous = hash;
    }
    let head = store.head().await.unwrap();
    assert_eq!((head.position, head.hash), (15, previous));
}

async fn read_all_pages_from_a_position(db: TestDatabase) {
    let store = open_store(&db).await;
    store.append(append_to("a", ExpectedVersion::Any, 10)).await.unwrap();
    let page = store.read_all(3, 4).await.unwrap();
    assert_eq!(page.iter().map(|e| e.position).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
    assert!(store.read_all(10, 4).await.unwrap().is_empty());
}

async fn an_acknowledged_append_survives_a_reopen(db: TestDatabase) {
    let outcome = {
        let store = open_store(&db).await;
        store.append(append_to("durable", ExpectedVersion::NoStream, 3)).await.unwrap()
    };
    let reopened = open_store(&db).await;
    let events = reopened.read_stream("durable").await.unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events.last().unwrap().position, outcome.last_position);
}

async fn store_is_a_usable_handle(db: TestDatabase) {
    let store: EventStore = open_store(&db).await;
    let clone = store.clone();
    clone.append(append_to("x", ExpectedVersion::Any, 1)).await.unwrap();
    assert_eq!(store.head().await.unwrap().position, 1);
    assert_eq!(store.position_at(chrono::Utc::now()).await.unwrap(), 1);
    assert_eq!(store.position_at(chrono::Utc::now() - chrono::Duration::hours(1)).await.unwrap(), 0);
}

/// Two processes (two store handles with their own writers) take turns on the same streams:
/// neither may decide on what it remembers of its own last commit once the other has written.
async fn another_process_never_leaves_a_writer_on_stale_state(db: TestDatabase) {
    let first = open_store(&db).await;
    let second = open_store(&db).await;
    first.append(append_to("shared", ExpectedVersion::NoStream, 1)).await.unwrap();
    second.append(append_to("shared", ExpectedVersion::Exact(1), 1)).await.unwrap();
    // `first` last wrote version 1; the truth is 2.
    let outcome = first.append(append_to("shared", ExpectedVersion::Exact(2), 1)).await.unwrap();
    assert_eq!(outcome.streams[0].version, 3);
    let conflict = first.append(append_to("shared", ExpectedVersion::Exact(2), 1)).await.unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict { actual: 3, .. }), "{conflict:?}");

    // A stream `second` created, unknown to `first`, claimed as new by `first`.
    second.append(append_to("made-elsewhere", ExpectedVersion::NoStream, 2)).await.unwrap();
    first.append(append_to("fresh", ExpectedVersion::NoStream, 1)).await.unwrap();
    let conflict = first.append(append_to("made-elsewhere", ExpectedVersion::NoStream, 1)).await.unwrap_err();
    assert!(matches!(conflict, StoreError::Conflict { actual: 2, .. }), "{conflict:?}");
    // And a third process that starts cold sees it all.
    let third = open_store(&db).await;
    third.append(append_to("made-elsewhere", ExpectedVersion::Exact(2), 1)).await.unwrap();
    let events = first.read_all(0, 100).await.unwrap();
    assert_eq!(events.iter().map(|e| e.position).collect::<Vec<_>>(), (1..=7).collect::<Vec<_>>());
}

on_both_engines!(
    another_process_never_leaves_a_writer_on_stale_state,
    appends_and_reads_a_stream,
    wrong_expected_version_is_a_typed_conflict,
    multi_stream_append_is_all_or_nothing,
    invalid_appends_are_refused,
    concurrent_writers_on_one_stream_win_each_version_once,
    a_tailing_reader_sees_every_position_once_in_order,
    idempotency_key_returns_the_first_outcome,
    the_log_rejects_updates_deletes_and_truncates,
    the_hash_chain_links_every_event,
    read_all_pages_from_a_position,
    an_acknowledged_append_survives_a_reopen,
    store_is_a_usable_handle,
);
