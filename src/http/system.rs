//! `GET /api/v1/system/status` and `GET /api/v1/system/config`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::{ApiError, ApiOk};
use crate::config::Settings;
use crate::projection;
use crate::rate_limit::Quota;

/// What any client may know of how the service is set up.
#[derive(Clone, Debug, Serialize)]
pub struct PublicConfig {
    version: &'static str,
    currencies: Vec<String>,
    money_scale_max: u32,
    order: OrderWindows,
    request_body_bytes_max: usize,
    request_timeout_ms: u64,
    rate_limits: Vec<RateLimitConfig>,
}

#[derive(Clone, Debug, Serialize)]
struct OrderWindows {
    cancel_after_ms: u64,
    lifetime_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
struct RateLimitConfig {
    name: &'static str,
    limit: u32,
    period_s: u64,
}

impl PublicConfig {
    pub fn from_settings(settings: &Settings) -> PublicConfig {
        let quotas = [Quota::LOGIN, Quota::REGISTER, Quota::CODE_CHECK, Quota::RECHARGE, Quota::API];
        PublicConfig {
            version: env!("CARGO_PKG_VERSION"),
            currencies: settings.currencies.iter().map(ToString::to_string).collect(),
            money_scale_max: domain::money::MONEY_SCALE_MAX,
            order: OrderWindows {
                cancel_after_ms: settings.order_policy.cancel_window_ms,
                lifetime_ms: settings.order_policy.lifetime_ms,
            },
            request_body_bytes_max: settings.http.body_bytes_max,
            request_timeout_ms: settings.http.request_timeout.as_millis() as u64,
            rate_limits: quotas
                .iter()
                .map(|q| RateLimitConfig { name: q.name, limit: q.limit, period_s: q.period.as_secs() })
                .collect(),
        }
    }
}

pub async fn config(State(state): State<Arc<AppState>>) -> ApiOk<PublicConfig> {
    ApiOk(state.public_config.clone())
}

/// The store (engine, head), Redis (when configured), and each projector's lag. Always 200
/// while the service runs; `ok` says whether every part answered.
pub async fn status(State(state): State<Arc<AppState>>) -> Result<ApiOk<Value>, ApiError> {
    let head = state.store.head().await.map_err(ApiError::internal)?.position;
    let projections = projection::status(state.store.engine(), head).await.map_err(ApiError::internal)?;
    let redis_ok = state.limiter.redis_ok().await;
    let redis = match redis_ok {
        None => json!({"configured": false, "rate_limits": state.limiter.backend()}),
        Some(ok) => {
            json!({"configured": true, "ok": ok, "rate_limits": if ok { "redis" } else { "in-process (Redis unreachable)" }})
        }
    };
    let ok = redis_ok.unwrap_or(true);
    Ok(ApiOk(json!({
        "ok": ok,
        "store": {"engine": state.store.engine().name(), "ok": true, "head": head},
        "redis": redis,
        "projections": projections,
    })))
}

/// Prometheus text format. Projector positions and lag are read now, so they are exact
/// whenever the scraper looks.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let head = state.store.head().await.map_err(ApiError::internal)?.position;
    metrics::gauge!("store_head_position").set(head as f64);
    for projection in projection::status(state.store.engine(), head).await.map_err(ApiError::internal)? {
        metrics::gauge!("projection_position", "projection" => projection.name).set(projection.position as f64);
        metrics::gauge!("projection_lag_events", "projection" => projection.name).set(projection.lag as f64);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()))
}
