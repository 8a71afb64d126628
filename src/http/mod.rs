//! The HTTP surface: the conventions every route follows (`conventions`, `error`, `json`) and
//! the routes built so far: `GET /health`, `GET /api/v1/system/{status,config}`.

pub mod conventions;
pub mod error;
pub mod json;
mod system;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;
use crate::projection;
use crate::rate_limit::RateLimiter;
use crate::store::EventStore;

pub struct AppState {
    pub store: EventStore,
    pub limiter: RateLimiter,
    pub public_config: system::PublicConfig,
    pub metrics: PrometheusHandle,
}

impl AppState {
    pub fn new(store: EventStore, limiter: RateLimiter, settings: &Settings) -> AppState {
        let public_config = system::PublicConfig::from_settings(settings);
        AppState { store, limiter, public_config, metrics: crate::metrics::install() }
    }
}

pub fn router(state: AppState, limits: &conventions::HttpLimits) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/api/v1/system/status", get(system::status))
        .route("/api/v1/system/config", get(system::config))
        .route("/metrics", get(system::metrics))
        .route_layer(axum::middleware::from_fn(crate::metrics::record_request))
        .fallback(|| async {
            metrics::counter!("http_requests_total", "method" => "any", "route" => "unmatched", "status" => "404")
                .increment(1);
            error::ApiError::not_found("no such route")
        })
        .with_state(Arc::new(state));
    conventions::apply(routes, limits)
}

/// Store reachable and head position, each projector's lag, and the build version.
/// 200 when the store answers, 503 when it does not.
async fn health(State(state): State<Arc<AppState>>) -> Response {
    let version = env!("CARGO_PKG_VERSION");
    let engine = state.store.engine().name();
    let head = match state.store.head().await {
        Ok(head) => head.position,
        Err(error) => {
            tracing::warn!(%error, "health.store_unreachable");
            let body = json!({"status": "unavailable", "version": version, "store": {"engine": engine, "ok": false}});
            // This body is what a probe should see; keep it.
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            response.extensions_mut().insert(error::FormattedError);
            return response;
        }
    };
    let projections = match projection::status(state.store.engine(), head).await {
        Ok(statuses) => json!(statuses),
        Err(error) => json!({"error": error.to_string()}),
    };
    let body = json!({
        "status": "ok",
        "version": version,
        "store": {"engine": engine, "ok": true, "head": head},
        "projections": projections,
    });
    (StatusCode::OK, Json(body)).into_response()
}
