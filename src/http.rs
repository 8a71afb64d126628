//! The HTTP surface of this stage: `GET /health`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::projection;
use crate::store::EventStore;

#[derive(Clone)]
pub struct AppState {
    pub store: EventStore,
}

pub fn router(state: AppState) -> Router {
    Router::new().route("/health", get(health)).with_state(Arc::new(state))
}

/// Store reachable and head position, each projector's lag, and the build version.
/// 200 when the store answers, 503 when it does not.
async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let version = env!("CARGO_PKG_VERSION");
    let engine = state.store.engine().name();
    let head = match state.store.head().await {
        Ok(head) => head.position,
        Err(error) => {
            tracing::warn!(%error, "health.store_unreachable");
            let body = json!({"status": "unavailable", "version": version, "store": {"engine": engine, "ok": false}});
            return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
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
    (StatusCode::OK, Json(body))
}
