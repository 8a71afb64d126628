//! `/api/v1/admin/*`: what admins do in this scope: maintenance modes and blocking
//! accounts. Every route needs an admin session opened with a second factor.

use std::sync::Arc;

use axum::extract::State;
use domain::UserId;
use domain::maintenance::{Scope, Window};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiOk};
use super::json::{ApiJson, ApiPath};
use super::principal::Admin;
use crate::identity::{Caller, now};

#[derive(Deserialize)]
pub struct MaintenanceSetting {
    /// `master`, `server`, `auth`, `recharge`, `support` or `service:<code>`.
    pub scope: String,
    pub enabled: bool,
    pub message: Option<String>,
    /// RFC 3339; default now.
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339; default: until switched off.
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize)]
pub struct BlockRequest {
    pub reason: String,
}

pub async fn set_maintenance(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiJson(body): ApiJson<MaintenanceSetting>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let scope = Scope::parse(&body.scope).map_err(|reason| ApiError::bad_request(reason))?;
    let window = if body.enabled {
        let window = Window {
            starts_at: body.starts_at.map_or_else(now, |t| domain::Timestamp(t.timestamp_millis())),
            ends_at: body.ends_at.map(|t| domain::Timestamp(t.timestamp_millis())),
            message: body.message.unwrap_or_else(|| "scheduled maintenance".into()).trim().to_owned(),
        };
        window.validate().map_err(ApiError::bad_request)?;
        Some(window)
    } else {
        None
    };
    let metadata = crate::store::Metadata {
        actor: Some(format!("user:{}", admin.user_id)),
        request_id: caller.request_id,
        ..Default::default()
    };
    state.maintenance.set(scope.clone(), window, admin.user_id, metadata).await?;
    Ok(ApiOk(json!({ "scope": scope.to_string(), "enabled": body.enabled })))
}

pub async fn user(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiPath(user_id): ApiPath<UserId>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    Ok(ApiOk(json!({ "user": state.identity.user_view(user_id).await? })))
}

/// Blocks sign-in and API keys and ends every session; open orders finish normally.
pub async fn block(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(user_id): ApiPath<UserId>,
    ApiJson(body): ApiJson<BlockRequest>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    if user_id == admin.user_id {
        return Err(ApiError::unprocessable("admins cannot block themselves"));
    }
    Ok(ApiOk(json!({ "user": state.identity.block(&admin, user_id, &body.reason, &caller).await? })))
}

pub async fn unblock(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(user_id): ApiPath<UserId>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    Ok(ApiOk(json!({ "user": state.identity.unblock(&admin, user_id, &caller).await? })))
}
