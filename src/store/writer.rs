//! Group commit: one task drains queued appends into one transaction per batch.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::{AppendOutcome, AppendRequest, Engine, StoreError};

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
pub async fn run(engine: Engine, mut queue: mpsc::Receiver<Pending>, limits: Limits, head: watch::Sender<i64>) {
    let mut cache = super::WriterCache::default();
    while let Some(first) = queue.recv().await {
        let batch = collect(first, &mut queue, &limits).await;
        let requests: Vec<&AppendRequest> = batch.iter().map(|p| &p.request).collect();
        let started = Instant::now();
        match engine.commit_batch(&requests, &mut cache).await {
            Ok(results) => {
                let elapsed = started.elapsed();
                tracing::debug!(
                    batch.requests = batch.len(),
                    duration_us = elapsed.as_micros() as u64,
                    "store.batch_committed"
                );
                record(&requests, &results, elapsed);
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
