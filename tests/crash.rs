//! A writer process killed with SIGKILL mid-load loses no acknowledged append.
//!
//! This test binary re-runs itself as the child (`CRASH_CHILD_DATABASE_URL` set): 8 tasks
//! append as fast as they can and print every acknowledgement. The parent kills it after a
//! few hundred acknowledgements, reopens the store and checks that every acknowledged event
//! is there, that the log is gapless and its hash chain intact.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::json;
use smsledger::store::canonical::{GENESIS_HASH, chain_hash};
use smsledger::store::{AppendRequest, ExpectedVersion, NewEvent, StreamAppend};

const CHILD_ENV: &str = "CRASH_CHILD_DATABASE_URL";
const ACKS_BEFORE_KILL: usize = 400;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().unwrap();
    if let Ok(url) = std::env::var(CHILD_ENV) {
        runtime.block_on(child(url));
        return;
    }
    let mut passed = 0;
    runtime.block_on(async {
        let sqlite = common::sqlite_database();
        killed_writer_loses_nothing(&sqlite).await;
        passed += 1;
        if let Some(postgres) = common::postgres_database("crash::killed_writer_loses_nothing").await {
            killed_writer_loses_nothing(&postgres).await;
            passed += 1;
        }
    });
    println!("crash: {passed} passed, 0 failed");
}

async fn child(url: String) {
    let store = common::open_store(&common::TestDatabase::borrowed(url)).await;
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for version in 0u64.. {
                let request = AppendRequest {
                    streams: vec![StreamAppend {
                        stream_id: format!("crash-{writer}"),
                        expected: ExpectedVersion::from_version(version),
                        events: vec![NewEvent {
                            event_id: uuid::Uuid::now_v7(),
                            event_type: "test.crash".into(),
                            schema_version: 1,
                            payload: json!({"v": version}),
                            decoded: None,
                        }],
                    }],
                    ..Default::default()
                };
                let outcome = store.append(request).await.expect("append");
                println!("ack crash-{writer} {} {}", version + 1, outcome.last_position);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

async fn killed_writer_loses_nothing(database: &common::TestDatabase) {
    // Migrate first so the child starts appending at once.
    drop(common::open_store(database).await);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD_ENV, &database.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let mut acks = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let ["ack", stream, version, position] = parts.as_slice() {
            acks.push((stream.to_string(), version.parse::<i64>().unwrap(), position.parse::<i64>().unwrap()));
        }
        if acks.len() >= ACKS_BEFORE_KILL {
            child.kill().expect("SIGKILL the writer");
            break;
        }
    }
    child.wait().unwrap();
    assert_eq!(acks.len(), ACKS_BEFORE_KILL, "the child died before it was killed");

    let store = common::open_store(database).await;
    let events = store.read_all(0, 100_000).await.unwrap();
    for (stream, version, position) in &acks {
        let found = events
            .iter()
            .find(|e| e.position == *position)
            .unwrap_or_else(|| panic!("acknowledged position {position} is lost"));
        assert_eq!((&found.stream_id, found.version), (stream, *version));
    }
    let mut previous = GENESIS_HASH;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.position, i as i64 + 1, "gapless");
        previous = chain_hash(&previous, event);
        assert_eq!(event.hash, previous.to_vec());
    }
    assert_eq!(store.head().await.unwrap().position, events.len() as i64);
    println!("crash: {} acknowledged, {} durable on {}", acks.len(), events.len(), store.engine().name());
}
