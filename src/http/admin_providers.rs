//! `/api/v1/admin/providers`: each configured provider with its health and offers at the last
//! catalog sync, our balance there, and its routing (enabled, priority), which admins set.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use domain::pricing::ProviderRouting;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody};
use super::error::{ApiError, ApiOk};
use super::json::{ApiJson, ApiPath};
use super::orders::field_error;
use super::principal::Admin;
use crate::identity::{Caller, rfc3339};

/// Longest wait for a provider's balance; a slower provider shows none.
const BALANCE_WAIT: Duration = Duration::from_secs(3);
/// Highest priority number accepted.
const PRIORITY_MAX: u32 = 1_000_000;

#[derive(Serialize, ToSchema)]
pub struct ProviderBody {
    pub id: String,
    pub enabled: bool,
    /// Lower is tried first; the cheapest first within a priority.
    pub priority: u32,
    /// Whether it answered at the last catalog sync.
    pub healthy: bool,
    pub error: Option<String>,
    /// Offers at the last catalog sync.
    pub offers: usize,
    #[schema(format = DateTime)]
    pub last_sync: String,
    /// What we hold there, where the provider tells.
    pub balance: Option<String>,
    pub balance_currency: Option<String>,
    pub balance_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProvidersData {
    pub providers: Vec<ProviderBody>,
}

#[derive(Deserialize, ToSchema)]
pub struct ProviderUpdate {
    pub enabled: Option<bool>,
    pub priority: Option<u32>,
}

async fn bodies(state: &AppState) -> Result<Vec<ProviderBody>, ApiError> {
    let pricing = state.pricing.state().await?;
    let synced = state.orders.catalog.current().await;
    // Every provider is asked at once: one slow provider costs one wait, not one each.
    let asking: Vec<_> = state
        .orders
        .catalog
        .providers()
        .iter()
        .map(|provider| {
            let provider = provider.clone();
            tokio::spawn(async move { tokio::time::timeout(BALANCE_WAIT, provider.balance()).await })
        })
        .collect();
    let mut bodies = Vec::new();
    for (provider, asked) in state.orders.catalog.providers().iter().zip(asking) {
        let routing = pricing.routing(provider.id());
        let health = synced.health.iter().find(|h| h.provider == provider.id());
        let (balance, balance_error) = match asked.await {
            Ok(Ok(Ok(balance))) => (balance, None),
            Ok(Ok(Err(error))) => (None, Some(error.to_string())),
            Ok(Err(_)) => (None, Some("timed out".to_owned())),
            Err(_) => (None, Some("the balance request stopped".to_owned())),
        };
        bodies.push(ProviderBody {
            id: provider.id().to_owned(),
            enabled: routing.enabled,
            priority: routing.priority,
            healthy: health.is_some_and(|h| h.healthy),
            error: health.and_then(|h| h.error.clone()),
            offers: health.map_or(0, |h| h.offers),
            last_sync: rfc3339(synced.at),
            balance: balance.map(|b| b.amount.to_string()),
            balance_currency: balance.map(|b| b.currency.to_string()),
            balance_error,
        });
    }
    Ok(bodies)
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/providers",
    tag = "admin",
    summary = "Each provider: routing (enabled, priority), health and offers at the last sync, our balance there",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<ProvidersData>), AdminRefusals)
)]
pub async fn list(State(state): State<Arc<AppState>>, Admin(_): Admin) -> Result<ApiOk<ProvidersData>, ApiError> {
    Ok(ApiOk(ProvidersData { providers: bodies(&state).await? }))
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/providers/{id}",
    tag = "admin",
    summary = "Enable or disable a provider for new orders, or set its priority (lower is tried first)",
    request_body = ProviderUpdate,
    security(("bearer" = [])),
    params(("id" = String, Path, description = "provider id, e.g. smsman")),
    responses(
        (status = 200, body = Envelope<ProvidersData>),
        (status = 400, body = ErrorBody),
        (status = 404, description = "no such provider configured", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn update(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<ProviderUpdate>,
) -> Result<ApiOk<ProvidersData>, ApiError> {
    if state.orders.catalog.provider(&id).is_none() {
        return Err(ApiError::not_found(format!("no provider {id:?} is configured")));
    }
    if body.priority.is_some_and(|p| p > PRIORITY_MAX) {
        return Err(field_error("priority", format!("at most {PRIORITY_MAX}")));
    }
    let current = state.pricing.state().await?.routing(&id);
    let routing = ProviderRouting {
        enabled: body.enabled.unwrap_or(current.enabled),
        priority: body.priority.unwrap_or(current.priority),
    };
    state.pricing.set_provider(&id, routing, admin.user_id, caller.metadata(Some(admin.user_id))).await?;
    Ok(ApiOk(ProvidersData { providers: bodies(&state).await? }))
}
