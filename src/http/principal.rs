//! Who a request comes from: `Auth` (an access token or an API key, then the general API
//! quota), `Admin` (an admin whose session was opened with a second factor), `Caller` (the
//! client's address, user agent and request id). And how identity refusals become responses.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, USER_AGENT};
use axum::http::request::Parts;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::identity::{AuthError, Caller, Principal, Via};
use crate::maintenance::Paused;
use crate::rate_limit::{Decision, Quota};

/// A signed-in user or an API key's owner, within the general API quota.
pub struct Auth(pub Principal);

/// An admin with a second factor.
pub struct Admin(pub Principal);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let principal = if let Some(value) = parts.headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(|| ApiError::unauthorized("Authorization must be \"Bearer <access token>\""))?;
            state.identity.authenticate_bearer(token.trim()).await?
        } else if let Some(key) = api_key(parts) {
            state.identity.authenticate_api_key(&key).await?
        } else {
            return Err(ApiError::unauthorized(
                "sign in first: send Authorization: Bearer <access token>, or an API key as X-API-Key",
            ));
        };
        let key = match principal.via {
            Via::Session(_) => format!("user:{}", principal.user_id),
            Via::ApiKey(key_id) => format!("key:{key_id}"),
        };
        limit(state, &state.quotas.api, &key).await?;
        Ok(Auth(principal))
    }
}

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let Auth(principal) = Auth::from_request_parts(parts, state).await?;
        principal.require_admin()?;
        Ok(Admin(principal))
    }
}

/// `X-API-Key`, or the `api_key` query parameter for protocols that cannot send headers.
fn api_key(parts: &Parts) -> Option<String> {
    if let Some(value) = parts.headers.get("x-api-key") {
        return value.to_str().ok().map(str::to_owned);
    }
    let query = parts.uri.query()?;
    url_query_value(query, "api_key")
}

fn url_query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| value.to_owned())
    })
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, ApiError> {
        let forwarded = state
            .trust_forwarded_for
            .then(|| {
                parts.headers.get("x-forwarded-for")?.to_str().ok()?.split(',').next().map(|ip| ip.trim().to_owned())
            })
            .flatten()
            .filter(|ip| !ip.is_empty());
        let peer =
            parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip().to_string());
        let header = |name| parts.headers.get(name).and_then(|v: &axum::http::HeaderValue| v.to_str().ok());
        // A forwarded address is kept only if it is one: it becomes a rate-limit key and is stored.
        let forwarded = forwarded.filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
        Ok(Caller {
            ip: forwarded.or(peer),
            user_agent: header(USER_AGENT).map(str::to_owned),
            request_id: header(axum::http::HeaderName::from_static("x-request-id")).map(str::to_owned),
        })
    }
}

/// Takes one request of `quota` for `key`; a 429 with `Retry-After` when it is used up.
pub async fn limit(state: &AppState, quota: &Quota, key: &str) -> Result<(), ApiError> {
    match state.limiter.check(quota, key).await {
        Decision::Allowed => Ok(()),
        limited => {
            metrics::counter!("rate_limited_total", "quota" => quota.name).increment(1);
            Err(ApiError::rate_limited(limited.retry_after_s().unwrap_or(1))
                .with_details(json!({"quota": quota.name, "limit": quota.limit, "period_s": quota.period.as_secs()})))
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        let message = error.to_string();
        match error {
            AuthError::Invalid { message, details } => ApiError::bad_request(message).with_details(details),
            AuthError::BadCredentials | AuthError::Unauthenticated(_) => ApiError::unauthorized(message),
            AuthError::TotpRequired => ApiError::unauthorized(message).with_details(json!({"totp_required": true})),
            AuthError::Forbidden(_) => ApiError::forbidden(message),
            AuthError::NotFound(_) => ApiError::not_found(message),
            AuthError::Conflict(_) => ApiError::conflict(message),
            AuthError::Rule(_) => ApiError::unprocessable(message),
            AuthError::Paused => ApiError::unavailable("signing in is paused for maintenance", 60),
            AuthError::Store(crate::store::StoreError::Conflict { .. }) => {
                ApiError::conflict("the account changed concurrently; retry")
            }
            AuthError::Store(_) | AuthError::Corrupt { .. } => ApiError::internal(message),
        }
    }
}

impl From<Paused> for ApiError {
    fn from(paused: Paused) -> Self {
        ApiError::unavailable(
            format!("{} is paused for maintenance: {}", paused.scope, paused.message),
            paused.retry_after_s,
        )
        .with_details(json!({
            "maintenance": paused.scope.to_string(),
            "until": paused.until.map(crate::identity::rfc3339),
        }))
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        ApiError::internal(error)
    }
}
