//! `GET /api/v1/system/status`, `/config`, `/maintenance`, and `GET /metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{Value, json};

use super::AppState;
use super::bodies::{MaintenanceData, MaintenanceWindow};
use super::error::{ApiError, ApiOk};
use crate::config::Settings;
use crate::projection;
use crate::rate_limit::Quotas;

/// What any client may know of how the service is set up.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct PublicConfig {
    #[schema(value_type = String)]
    version: &'static str,
    currencies: Vec<String>,
    money_scale_max: u32,
    order: OrderWindows,
    request_body_bytes_max: usize,
    request_timeout_ms: u64,
    rate_limits: Vec<RateLimitConfig>,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
struct OrderWindows {
    cancel_after_ms: u64,
    lifetime_ms: u64,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
struct RateLimitConfig {
    #[schema(value_type = String)]
    name: &'static str,
    limit: u32,
    period_s: u64,
}

impl PublicConfig {
    pub fn from_settings(settings: &Settings) -> PublicConfig {
        let q = Quotas::with_api_per_minute(settings.auth.api_rate_per_minute);
        let quotas = [q.login, q.register, q.code_check, q.recharge, q.api];
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

#[utoipa::path(
    get,
    path = "/api/v1/system/config",
    tag = "system",
    summary = "Public configuration: currencies, limits, order windows, rate limits",
    responses((status = 200, body = super::bodies::Envelope<PublicConfig>))
)]
pub async fn config(State(state): State<Arc<AppState>>) -> ApiOk<PublicConfig> {
    ApiOk(state.public_config.clone())
}

/// The store (engine, head), Redis (when configured), each provider's health, and each projector's lag. Always 200
/// while the service runs; `ok` says whether every part answered.
#[utoipa::path(
    get,
    path = "/api/v1/system/status",
    tag = "system",
    summary = "Store, Redis, providers and projector lag",
    responses(
        (status = 200, description = "ok says whether every part answered", body = super::bodies::Envelope<Object>),
        (status = 500, description = "the store did not answer", body = super::bodies::ErrorBody),
    )
)]
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
    // Checked at once, each bounded by the provider timeout.
    let checks: Vec<_> = state
        .orders
        .catalog
        .providers()
        .iter()
        .cloned()
        .map(|provider| tokio::spawn(async move { (provider.id(), provider.health().await) }))
        .collect();
    let mut providers = Vec::new();
    for check in checks {
        providers.push(match check.await {
            Ok((id, Ok(()))) => json!({"id": id, "ok": true}),
            Ok((id, Err(error))) => json!({"id": id, "ok": false, "error": error.to_string()}),
            Err(error) => json!({"id": "unknown", "ok": false, "error": error.to_string()}),
        });
    }
    let providers_ok = providers.iter().all(|p| p["ok"] == true);
    let ok = redis_ok.unwrap_or(true) && providers_ok;
    Ok(ApiOk(json!({
        "ok": ok,
        "store": {"engine": state.store.engine().name(), "ok": true, "head": head},
        "redis": redis,
        "providers": providers,
        "projections": projections,
    })))
}

/// Prometheus text format. Projector positions and lag are read now, so they are exact
/// whenever the scraper looks.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "system",
    summary = "Prometheus metrics (text format)",
    responses((status = 200, content_type = "text/plain", body = String))
)]
pub async fn metrics(State(state): State<Arc<AppState>>) -> Result<impl IntoResponse, ApiError> {
    let head = state.store.head().await.map_err(ApiError::internal)?.position;
    metrics::gauge!("store_head_position").set(head as f64);
    for projection in projection::status(state.store.engine(), head).await.map_err(ApiError::internal)? {
        metrics::gauge!("projection_position", "projection" => projection.name).set(projection.position as f64);
        metrics::gauge!("projection_lag_events", "projection" => projection.name).set(projection.lag as f64);
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()))
}

#[utoipa::path(
    get,
    path = "/api/v1/system/maintenance",
    tag = "system",
    summary = "Every maintenance setting and whether it is in force",
    responses(
        (status = 200, body = super::bodies::Envelope<MaintenanceData>),
        (status = 500, description = "the store did not answer", body = super::bodies::ErrorBody),
    )
)]
/// Every maintenance setting, with whether it is in force now.
pub async fn maintenance(State(state): State<Arc<AppState>>) -> Result<ApiOk<MaintenanceData>, ApiError> {
    let now = crate::identity::now();
    let current = state.maintenance.state().await?;
    let windows: Vec<MaintenanceWindow> = current
        .windows
        .iter()
        .map(|(scope, window)| MaintenanceWindow {
            scope: scope.to_string(),
            message: window.message.clone(),
            starts_at: crate::identity::rfc3339(window.starts_at),
            ends_at: window.ends_at.map(crate::identity::rfc3339),
            active: window.active_at(now),
        })
        .collect();
    let active = windows.iter().any(|w| w.active);
    Ok(ApiOk(MaintenanceData { active, windows }))
}
