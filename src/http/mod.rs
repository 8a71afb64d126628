//! The HTTP surface: the conventions every route follows (`conventions`, `error`, `json`),
//! who a request comes from (`principal`), and the routes: `/health`, `/metrics`,
//! `/api/v1/system/*`, `/api/v1/auth/*`, `/api/v1/user/*`,
//! `/api/v1/catalog/*`, `/api/v1/orders/*`, `/api/v1/payments/*`, `/api/v1/webhooks/*`,
//! `/api/v1/admin/*`, and the
//! SMS-Activate-compatible `/stubs/handler_api.php`.

mod admin;
mod admin_dashboard;
mod admin_ledger;
mod admin_logs;
mod admin_orders;
mod admin_payments;
mod admin_pricing;
mod admin_projections;
mod admin_providers;
mod admin_users;
mod auth;
pub mod bodies;
mod catalog;
pub mod conventions;
pub mod error;
pub mod json;
mod notifications;
pub mod openapi;
mod orders;
mod payments;
pub mod principal;
mod recharge;
mod sms_activate;
mod system;
mod user;
mod webhooks;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::json;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use metrics_exporter_prometheus::PrometheusHandle;

use crate::config::Settings;
use crate::identity::{Identity, Mailer};
use crate::maintenance::Maintenance;
use crate::projection;
use crate::rate_limit::{Quotas, RateLimiter};
use crate::store::EventStore;

/// How often the outbox sender looks for messages due.
const NOTIFY_SEND_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

pub struct AppState {
    pub store: EventStore,
    pub limiter: RateLimiter,
    pub quotas: Quotas,
    pub identity: Identity,
    pub maintenance: Maintenance,
    pub pricing: crate::pricing::Pricing,
    pub currencies: Vec<domain::Currency>,
    /// Orders, with the catalog of the configured providers (`providers::from_settings`).
    pub orders: Arc<crate::orders::Orders>,
    /// Deposits, Stripe's webhook, withdrawals and admin credits, on the same ledger as orders.
    pub payments: crate::payments::Payments,
    /// TextVerified's webhook secret (`TEXTVERIFIED_WEBHOOK_SECRET`).
    pub textverified_webhook_secret: Option<String>,
    pub trust_forwarded_for: bool,
    /// Job runs, provider errors and refused webhooks, for `/admin/logs/system`.
    pub system_log: crate::store::system_log::SystemLog,
    /// Where admin alerts go and how failed sends are retried.
    pub notifications: crate::notifications::NotificationSettings,
    /// Online rebuilds started by admins, with their progress.
    pub rebuilds: admin_projections::Rebuilds,
    /// Events a projector folds per transaction (`PROJECTION_BATCH_MAX`).
    pub projection_batch_max: u32,
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
        let ledger = crate::service::Ledger::new(store.clone(), settings.order_policy);
        AppState {
            system_log: crate::store::system_log::SystemLog::start(store.engine().clone()),
            payments: crate::payments::Payments::new(
                ledger.clone(),
                settings.payments.clone(),
                settings.currencies.clone(),
            ),
            maintenance: Maintenance::new(store.clone()),
            pricing: crate::pricing::Pricing::new(store.clone()),
            limiter,
            quotas: Quotas::with_api_per_minute(settings.auth.api_rate_per_minute),
            identity,
            currencies: settings.currencies.clone(),
            orders: Arc::new(crate::orders::Orders::new(
                store.clone(),
                ledger,
                Arc::new(crate::catalog::CatalogCache::new(crate::providers::from_settings(
                    &settings.providers,
                    settings.currencies[0],
                ))),
            )),
            textverified_webhook_secret: settings.providers.textverified_webhook_secret.clone(),
            store,
            trust_forwarded_for: settings.auth.trust_forwarded_for,
            rebuilds: Default::default(),
            notifications: settings.notifications.clone(),
            projection_batch_max: settings.projection_batch_max,
            public_config,
            metrics: crate::metrics::install(),
        }
    }
}

impl AppState {
    /// Starts the background jobs: the catalog sync, the order monitor and the cleanup.
    pub fn start_jobs(&self, jobs: &crate::config::JobSettings) {
        self.orders.catalog.spawn_sync(jobs.catalog_sync, self.system_log.clone());
        crate::cleanup::spawn(self.store.engine().clone(), self.system_log.clone(), jobs.system_log_retention);
        crate::notifications::spawn_sender(
            &self.store,
            &self.notifications,
            NOTIFY_SEND_EVERY,
            self.system_log.clone(),
        );
        crate::notifications::low_balance::spawn(
            self.store.engine().clone(),
            Arc::clone(&self.orders.catalog),
            &self.notifications,
            jobs.catalog_sync,
        );
        crate::orders::monitor::spawn(
            Arc::clone(&self.orders),
            self.store.clone(),
            jobs.order_poll,
            jobs.order_poll_concurrency,
            self.system_log.clone(),
        );
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
    let (routes, document) = api_routes().split_for_parts();
    let routes = routes
        .route_layer(axum::middleware::from_fn(crate::metrics::record_request))
        .merge(openapi::docs(document))
        .fallback(|| async {
            metrics::counter!("http_requests_total", "method" => "any", "route" => "unmatched", "status" => "404")
                .increment(1);
            error::ApiError::not_found("no such route")
        })
        .with_state(Arc::new(state));
    conventions::apply(routes, limits)
}

/// Every route with its OpenAPI description: a route cannot be added without one.
pub fn api_routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(system::status))
        .routes(routes!(system::config))
        .routes(routes!(system::maintenance))
        .routes(routes!(system::metrics))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::verify_email))
        .routes(routes!(auth::send_verification_email))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::password_reset_request))
        .routes(routes!(auth::password_reset_confirm))
        .routes(routes!(auth::sessions, auth::revoke_other_sessions))
        .routes(routes!(auth::revoke_session))
        .routes(routes!(auth::totp_setup))
        .routes(routes!(auth::totp_enable))
        .routes(routes!(user::profile, user::update_profile))
        .routes(routes!(user::balance))
        .routes(routes!(user::api_keys, user::create_api_key))
        .routes(routes!(user::revoke_api_key))
        .routes(routes!(admin::set_maintenance))
        .routes(routes!(admin_users::user))
        .routes(routes!(admin_users::list))
        .routes(routes!(admin_users::role))
        .routes(routes!(admin::block))
        .routes(routes!(admin::unblock))
        .routes(routes!(admin_pricing::list, admin_pricing::create, admin_pricing::set, admin_pricing::remove))
        .routes(routes!(admin_pricing::preview))
        .routes(routes!(admin_providers::list))
        .routes(routes!(admin_providers::update))
        .routes(routes!(catalog::services))
        .routes(routes!(catalog::countries))
        .routes(routes!(catalog::price_table))
        .routes(routes!(orders::place, orders::list))
        .routes(routes!(orders::get))
        .routes(routes!(orders::cancel))
        .routes(routes!(orders::finish))
        .routes(routes!(orders::another_sms))
        .routes(routes!(orders::extend))
        .routes(routes!(webhooks::textverified))
        .routes(routes!(sms_activate::handler_get, sms_activate::handler_post))
        .routes(routes!(notifications::list))
        .routes(routes!(notifications::read_one))
        .routes(routes!(notifications::read_all))
        .routes(routes!(payments::methods))
        .routes(routes!(payments::deposit))
        .routes(routes!(payments::get_deposit))
        .routes(routes!(payments::stripe_webhook))
        .routes(routes!(payments::withdraw))
        .routes(routes!(payments::history))
        .routes(routes!(recharge::initiate))
        .routes(routes!(recharge::history))
        .routes(routes!(recharge::status))
        .routes(routes!(recharge::verify))
        .routes(routes!(recharge::admin_list))
        .routes(routes!(recharge::approve))
        .routes(routes!(recharge::reject))
        .routes(routes!(admin_dashboard::dashboard))
        .routes(routes!(admin_logs::activity))
        .routes(routes!(admin_logs::system))
        .routes(routes!(admin_projections::list))
        .routes(routes!(admin_projections::rebuild))
        .routes(routes!(admin_orders::list))
        .routes(routes!(admin_orders::cancel))
        .routes(routes!(admin_ledger::verify))
        .routes(routes!(admin_ledger::trial_balance))
        .routes(routes!(admin_ledger::balance))
        .routes(routes!(admin_ledger::export))
        .routes(routes!(admin_payments::wallets))
        .routes(routes!(admin_payments::adjust))
        .routes(routes!(admin_payments::pay_withdrawal))
        .routes(routes!(admin_payments::reject_withdrawal))
}

/// The OpenAPI document as served at `GET /api/v1/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_routes().into_openapi()
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "system",
    summary = "Liveness: the store answers (503 when it does not)",
    responses((status = 200, body = Object), (status = 503, body = Object))
)]
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
