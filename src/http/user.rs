//! `/api/v1/user/*`: the caller's profile, balance and API keys. Every route answers about
//! the caller only: there is no user id in these paths to point at someone else.

use std::sync::Arc;

use axum::extract::State;
use domain::maintenance::Scope;
use domain::{ApiKeyId, Currency};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::ensure_open;
use super::bodies::{ApiKeysData, BalanceLine, BalancesData, Envelope, ErrorBody, Message, UserData, UserRefusals};
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::principal::Auth;
use crate::identity::Caller;
use crate::read;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct ProfileUpdate {
    pub display_name: Option<String>,
    pub language: Option<String>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct BalanceQuery {
    pub currency: Option<String>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct NewKey {
    pub name: String,
}

#[utoipa::path(
    get,
    path = "/api/v1/user/profile",
    tag = "user",
    summary = "The caller's profile",
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses(
        (status = 200, body = Envelope<UserData>),
        UserRefusals,
    )
)]
pub async fn profile(State(state): State<Arc<AppState>>, Auth(principal): Auth) -> Result<ApiOk<UserData>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    Ok(ApiOk(UserData { user: principal.view()? }))
}

#[utoipa::path(
    put,
    path = "/api/v1/user/profile",
    tag = "user",
    summary = "Change display name and/or language",
    request_body = ProfileUpdate,
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses(
        (status = 200, body = Envelope<UserData>),
        (status = 400, body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn update_profile(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<ApiOk<UserData>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    if body.display_name.is_none() && body.language.is_none() {
        return Err(ApiError::bad_request("nothing to change: send display_name and/or language"));
    }
    let user = state.identity.update_profile(&principal, body.display_name, body.language, &caller).await?;
    Ok(ApiOk(UserData { user }))
}

/// Balances from the balances view, including every write made before this request.
#[utoipa::path(
    get,
    path = "/api/v1/user/balance",
    tag = "user",
    summary = "Balances, including every write made before the request",
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    params(BalanceQuery),
    responses(
        (status = 200, body = Envelope<BalancesData>),
        (status = 400, body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn balance(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<BalanceQuery>,
) -> Result<ApiOk<BalancesData>, ApiError> {
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
        let balance = read::balance(&state.store, principal.user_id, currency).await?;
        balances.push(BalanceLine {
            currency: currency.to_string(),
            available: balance.available.to_string(),
            held: balance.held.to_string(),
        });
    }
    Ok(ApiOk(BalancesData { balances }))
}

#[utoipa::path(
    post,
    path = "/api/v1/user/api-keys",
    tag = "user",
    summary = "Create an API key; the key is shown only in this answer",
    request_body = NewKey,
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses(
        (status = 201, body = Envelope<crate::identity::NewApiKey>),
        (status = 400, body = ErrorBody),
        (status = 403, description = "called with an API key, or blocked", body = ErrorBody),
        (status = 422, description = "too many keys", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn create_api_key(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<ApiCreated<crate::identity::NewApiKey>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    Ok(ApiCreated(state.identity.create_api_key(&principal, &body.name, &caller).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/user/api-keys",
    tag = "user",
    summary = "The caller's API keys (never the keys themselves)",
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses(
        (status = 200, body = Envelope<ApiKeysData>),
        UserRefusals,
    )
)]
pub async fn api_keys(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<ApiOk<ApiKeysData>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    Ok(ApiOk(ApiKeysData { api_keys: state.identity.api_keys(&principal).await? }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/user/api-keys/{id}",
    tag = "user",
    summary = "Revoke one of the caller's API keys",
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    params(("id" = String, Path, format = Uuid, description = "API key id")),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn revoke_api_key(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiPath(key_id): ApiPath<ApiKeyId>,
) -> Result<ApiOk<Message>, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    state.identity.revoke_api_key(&principal, key_id, &caller).await?;
    Ok(ApiOk(Message::new("API key revoked")))
}
