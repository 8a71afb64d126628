//! Prometheus metrics: one recorder per process, rendered at `GET /metrics`.
//!
//! - `http_requests_total` and `http_request_duration_seconds` by method, route template and status;
//! - `store_appends_total` by result, `store_batch_events` and `store_batch_commit_seconds`;
//! - `projection_position` and `projection_lag_events` per projection, read at scrape time.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets (seconds) for requests and commits: 0.5 ms to 10 s.
const LATENCY_BUCKETS_S: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Batch-size buckets (events per group commit).
const BATCH_BUCKETS: [f64; 9] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 256.0, 1024.0];

/// How often recorded histogram samples are folded into their buckets. Until then each sample
/// is kept on its own (8 bytes); without upkeep they were kept until the next scrape, so an
/// instance nobody scraped grew by every request it served (decision 0031).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(1);

/// Installs the process-wide recorder the first time, with a thread that keeps its memory
/// bounded; later calls return the same handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS_S)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full("store_batch_events".into()), &BATCH_BUCKETS))
                .expect("bucket lists are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder was installed first; metrics then go there.
            let _ = metrics::set_global_recorder(recorder);
            let upkept = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_INTERVAL);
                        upkept.run_upkeep();
                    }
                })
                .expect("a thread can be started at startup");
            handle
        })
        .clone()
}

/// Counts and times every routed request by its route template (not its raw path, so ids
/// in paths do not multiply the series).
pub async fn record_request(request: Request, next: Next) -> Response {
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = [("method", method), ("route", route), ("status", response.status().as_u16().to_string())];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    response
}
