//! Group commit: one task drains queued appends into one transaction per batch.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{AppendOutcome, AppendRequest, Engine, Handed, StoreError};

/// Committed events kept for the tail; past it the oldest go (the tail reads them back).
const HANDOFF_MAX: usize = 4_096;

/// The events this process's writer committed, handed to its tail so that the tail need not
/// read its own process's events back from the database (decision 0024). Only committed
/// events are put here, exactly as they were written; a tail that is behind, or whose next
/// event another process wrote, reads the log.
pub struct Handoff {
    kept: Mutex<VecDeque<Handed>>,
    /// What this writer's commit announcements carry (PostgreSQL `NOTIFY` payload): the tail
    /// is woken for them by the handoff itself and skips them.
    tag: String,
}

impl Default for Handoff {
    fn default() -> Self {
        Handoff { kept: Mutex::default(), tag: uuid::Uuid::new_v4().simple().to_string() }
    }
}

impl Handoff {
    pub fn tag(&self) -> &str {
        &self.tag
    }

    fn put(&self, rows: impl IntoIterator<Item = Handed>) {
        let mut kept = self.kept.lock().expect("handoff lock");
        for row in rows {
            if kept.len() == HANDOFF_MAX {
                kept.pop_front();
            }
            kept.push_back(row);
        }
    }

    /// Up to `limit` committed events right after `position`, without a gap; empty if the
    /// next event is not here. Events at or before `position` are dropped.
    pub fn take_after(&self, position: i64, limit: usize) -> Vec<Handed> {
        let mut kept = self.kept.lock().expect("handoff lock");
        while kept.front().is_some_and(|(row, _)| row.position <= position) {
            kept.pop_front();
        }
        let mut taken: Vec<Handed> = Vec::new();
        while taken.len() < limit
            && let Some((row, _)) = kept.front()
            && row.position == taken.last().map_or(position, |(last, _)| last.position) + 1
        {
            taken.extend(kept.pop_front());
        }
        taken
    }
}

pub struct Pending {
    pub request: AppendRequest,
    pub reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

pub struct Limits {
    /// A batch closes when it holds this many events.
    pub batch_events_max: usize,
    /// After the first request, how long to wait for more (zero: take only what is queued).
    pub batch_wait: Duration,
}

/// One writer per process: a second one sharing the queue was measured slower (smaller
/// batches; see docs/performance.md).
pub async fn run(
    engine: Engine,
    mut queue: mpsc::Receiver<Pending>,
    limits: Limits,
    head: watch::Sender<i64>,
    handoff: Arc<Handoff>,
) {
    let mut cache = super::WriterCache::default();
    while let Some(first) = queue.recv().await {
        let batch = collect(first, &mut queue, &limits).await;
        let requests: Vec<&AppendRequest> = batch.iter().map(|p| &p.request).collect();
        let started = Instant::now();
        match engine.commit_batch(&requests, &mut cache, handoff.tag()).await {
            Ok(super::Committed { results, rows }) => {
                let elapsed = started.elapsed();
                tracing::debug!(
                    batch.requests = batch.len(),
                    duration_us = elapsed.as_micros() as u64,
                    "store.batch_committed"
                );
                record(&requests, &results, elapsed);
                // Before the head moves: the tail, woken by it, finds the events here.
                handoff.put(rows);
                let newest = results.iter().filter_map(|r| r.as_ref().ok()).map(|o| o.last_position).max();
                if let Some(newest) = newest {
                    head.send_if_modified(|current| {
                        let newer = newest > *current;
                        *current = (*current).max(newest);
                        newer
                    });
                }
                for (pending, result) in batch.into_iter().zip(results) {
                    let _ = pending.reply.send(result);
                }
            }
            Err(error) => {
                tracing::error!(%error, batch.requests = batch.len(), "store.batch_failed");
                for pending in batch {
                    let _ = pending.reply.send(Err(StoreError::shared(&error)));
                }
            }
        }
    }
}

fn record(requests: &[&AppendRequest], results: &[Result<AppendOutcome, StoreError>], elapsed: Duration) {
    let mut events = 0;
    for (request, result) in requests.iter().zip(results) {
        let label = match result {
            Ok(outcome) if outcome.replayed => "replayed",
            Ok(_) => {
                events += request.event_count();
                "appended"
            }
            Err(StoreError::Conflict { .. }) => "conflict",
            Err(StoreError::Invalid(_)) => "invalid",
            Err(_) => "error",
        };
        metrics::counter!("store_appends_total", "result" => label).increment(1);
    }
    metrics::histogram!("store_batch_events").record(events as f64);
    metrics::histogram!("store_batch_commit_seconds").record(elapsed.as_secs_f64());
}

async fn collect(first: Pending, queue: &mut mpsc::Receiver<Pending>, limits: &Limits) -> Vec<Pending> {
    let mut events = first.request.event_count();
    let mut batch = vec![first];
    let deadline = Instant::now() + limits.batch_wait;
    while events < limits.batch_events_max {
        let next = match queue.try_recv() {
            Ok(pending) => pending,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if limits.batch_wait.is_zero() => break,
            Err(mpsc::error::TryRecvError::Empty) => match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(pending)) => pending,
                Ok(None) | Err(_) => break,
            },
        };
        events += next.request.event_count();
        batch.push(next);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(position: i64) -> Handed {
        let row = super::super::RecordedEvent {
            position,
            stream_id: format!("s-{position}"),
            version: 1,
            event_id: uuid::Uuid::now_v7(),
            event_type: "t".into(),
            schema_version: 1,
            payload: serde_json::Value::Null,
            metadata: serde_json::Value::Null,
            recorded_at: chrono::Utc::now(),
            hash: vec![0; 32],
        };
        (row, None)
    }

    fn positions(rows: &[Handed]) -> Vec<i64> {
        rows.iter().map(|(row, _)| row.position).collect()
    }

    /// The tail gets this process's events only from right after its position and only
    /// without a gap: where another process wrote in between, it reads the log.
    #[test]
    fn the_tail_takes_only_what_follows_it_without_a_gap() {
        let handoff = Handoff::default();
        handoff.put(vec![row(3), row(4), row(5)]);
        handoff.put(vec![row(8), row(9)]); // 6 and 7 are another process's
        assert!(handoff.take_after(1, 10).is_empty(), "2 is not here: the log");
        assert_eq!(positions(&handoff.take_after(2, 2)), [3, 4]);
        assert_eq!(positions(&handoff.take_after(4, 10)), [5], "up to the gap");
        assert!(handoff.take_after(5, 10).is_empty());
        assert_eq!(positions(&handoff.take_after(7, 10)), [8, 9], "after the log gave 6 and 7");
        handoff.put(vec![row(10)]);
        assert!(handoff.take_after(10, 10).is_empty(), "what the tail passed already is dropped");
    }

    /// A tail that is not running, or far behind, leaves at most `HANDOFF_MAX` events here.
    #[test]
    fn the_handoff_is_bounded() {
        let handoff = Handoff::default();
        handoff.put((1..=HANDOFF_MAX as i64 + 10).map(row));
        assert!(handoff.take_after(0, 10).is_empty(), "the oldest went: the log has them");
        assert_eq!(positions(&handoff.take_after(10, 2)), [11, 12]);
        assert_eq!(handoff.kept.lock().unwrap().len(), HANDOFF_MAX - 2);
    }
}
