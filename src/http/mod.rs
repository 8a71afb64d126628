//! The HTTP surface: the conventions every route follows (`conventions`, `error`, `json`),
//! who a request comes from (`principal`), and the routes: `/health`, `/metrics`,
//! `/api/v1/system/*`, `/api/v1/auth/*`, `/api/v1/user/*`, `/api/v1/admin/*`.

mod admin;
mod auth;
pub mod conventions;
pub mod error;
pub mod json;
pub mod principal;
mod system;
mod user;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde_json::json;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;
use crate::identity::{Identity, Mailer};
use crate::maintenance::Maintenance;
use crate::projection;
use crate::rate_limit::{Quotas, RateLimiter};
use crate::store::EventStore;

pub struct AppState {
    pub store: EventStore,
    pub limiter: RateLimiter,
    pub quotas: Quotas,
    pub identity: Identity,
    pub maintenance: Maintenance,
    pub currencies: Vec<domain::Currency>,
    pub trust_forwarded_for: bool,
    pub public_config: system::PublicConfig,
    pub metrics: PrometheusHandle,
}

/// The secrets `AppState` needs: `(JWT_SECRET, SECRETS_KEY)`, see [`crate::config::resolve_secrets`].
pub struct Secrets {
    pub jwt_secret: String,
    pub secrets_key: String,
}

impl AppState {
    pub fn new(
        store: EventStore,
        limiter: RateLimiter,
        settings: &Settings,
        secrets: &Secrets,
        mailer: Mailer,
    ) -> AppState {
        let public_config = system::PublicConfig::from_settings(settings);
        let identity =
            Identity::new(store.clone(), &secrets.jwt_secret, &secrets.secrets_key, mailer, &settings.auth.link_base);
        AppState {
            maintenance: Maintenance::new(store.clone()),
            store,
            limiter,
            quotas: Quotas::with_api_per_minute(settings.auth.api_rate_per_minute),
            identity,
            currencies: settings.currencies.clone(),
            trust_forwarded_for: settings.auth.trust_forwarded_for,
            public_config,
            metrics: crate::metrics::install(),
        }
    }
}

/// Serves `app` on `listener`, with each request's peer address available to `Caller`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown).await
}

pub fn router(state: AppState, limits: &conventions::HttpLimits) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/api/v1/system/status", get(system::status))
        .route("/api/v1/system/config", get(system::config))
        .route("/metrics", get(system::metrics))
        .route("/api/v1/system/maintenance", get(system::maintenance))
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/verify-email", post(auth::verify_email))
        .route("/api/v1/auth/send-verification-email", post(auth::send_verification_email))
        .route("/api/v1/auth/change-password", post(auth::change_password))
        .route("/api/v1/auth/password-reset/request", post(auth::password_reset_request))
        .route("/api/v1/auth/password-reset/confirm", post(auth::password_reset_confirm))
        .route("/api/v1/auth/sessions", get(auth::sessions).delete(auth::revoke_other_sessions))
        .route("/api/v1/auth/sessions/{id}", delete(auth::revoke_session))
        .route("/api/v1/auth/2fa/setup", post(auth::totp_setup))
        .route("/api/v1/auth/2fa/enable", post(auth::totp_enable))
        .route("/api/v1/user/profile", get(user::profile).put(user::update_profile))
        .route("/api/v1/user/balance", get(user::balance))
        .route("/api/v1/user/api-keys", get(user::api_keys).post(user::create_api_key))
        .route("/api/v1/user/api-keys/{id}", delete(user::revoke_api_key))
        .route("/api/v1/admin/maintenance", put(admin::set_maintenance))
        .route("/api/v1/admin/users/{id}", get(admin::user))
        .route("/api/v1/admin/users/{id}/block", post(admin::block))
        .route("/api/v1/admin/users/{id}/unblock", post(admin::unblock))
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
