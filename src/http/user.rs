//! `/api/v1/user/*`: the caller's profile, balance and API keys. Every route answers about
//! the caller only: there is no user id in these paths to point at someone else.

use std::sync::Arc;

use axum::extract::State;
use domain::maintenance::Scope;
use domain::{ApiKeyId, Currency};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::ensure_open;
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::principal::Auth;
use crate::identity::Caller;
use crate::read::{self, ReadError};

#[derive(Deserialize)]
pub struct ProfileUpdate {
    pub display_name: Option<String>,
    pub language: Option<String>,
}

#[derive(Deserialize)]
pub struct BalanceQuery {
    pub currency: Option<String>,
}

#[derive(Deserialize)]
pub struct NewKey {
    pub name: String,
}

pub async fn profile(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    Ok(ApiOk(json!({ "user": state.identity.user_view(principal.user_id).await? })))
}

pub async fn update_profile(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    if body.display_name.is_none() && body.language.is_none() {
        return Err(ApiError::bad_request("nothing to change: send display_name and/or language"));
    }
    let user = state.identity.update_profile(&principal, body.display_name, body.language, &caller).await?;
    Ok(ApiOk(json!({ "user": user })))
}

/// Balances from the balances view, including every write made before this request.
pub async fn balance(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<BalanceQuery>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    let currencies: Vec<Currency> = match query.currency {
        Some(code) => {
            let currency = Currency::parse(&code).map_err(|e| ApiError::bad_request(e.to_string()))?;
            if !state.currencies.contains(&currency) {
                return Err(ApiError::bad_request(format!("{currency} is not a currency of this service")));
            }
            vec![currency]
        }
        None => state.currencies.clone(),
    };
    let mut balances = Vec::with_capacity(currencies.len());
    for currency in currencies {
        let balance = read::balance(&state.store, principal.user_id, currency).await.map_err(|error| match error {
            ReadError::Stale { .. } => ApiError::unavailable("balances are catching up; retry shortly", 1),
            other => ApiError::internal(other),
        })?;
        balances.push(json!({
            "currency": currency,
            "available": balance.available.to_string(),
            "held": balance.held.to_string(),
        }));
    }
    Ok(ApiOk(json!({ "balances": balances })))
}

pub async fn create_api_key(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<ApiCreated<crate::identity::NewApiKey>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    Ok(ApiCreated(state.identity.create_api_key(&principal, &body.name, &caller).await?))
}

pub async fn api_keys(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    Ok(ApiOk(json!({ "api_keys": state.identity.api_keys(&principal).await? })))
}

pub async fn revoke_api_key(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiPath(key_id): ApiPath<ApiKeyId>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    state.identity.revoke_api_key(&principal, key_id, &caller).await?;
    Ok(ApiOk(json!({ "revoked": true })))
}
