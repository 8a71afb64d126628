//! `/api/v1/admin/*`: maintenance modes and blocking accounts. Every route needs an admin session opened with a second factor.

use std::sync::Arc;

use axum::extract::State;
use domain::UserId;
use domain::maintenance::{Scope, Window};
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody, Message, UserData};
use super::error::{ApiError, ApiOk};
use super::json::{ApiJson, ApiPath};
use super::principal::Admin;
use crate::identity::{Caller, now};

#[derive(Deserialize, ToSchema)]
pub struct MaintenanceSetting {
    /// `master`, `server`, `auth`, `recharge`, `support` or `service:<code>`.
    pub scope: String,
    pub enabled: bool,
    pub message: Option<String>,
    /// RFC 3339; default now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub starts_at: Option<chrono::DateTime<chrono::Utc>>,
    /// RFC 3339; default: until switched off.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize, ToSchema)]
pub struct BlockRequest {
    pub reason: String,
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/maintenance",
    tag = "admin",
    summary = "Switch a maintenance mode on (now or for a window) or off",
    request_body = MaintenanceSetting,
    security(("bearer" = [])),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn set_maintenance(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiJson(body): ApiJson<MaintenanceSetting>,
) -> Result<ApiOk<Message>, ApiError> {
    let scope = Scope::parse(&body.scope).map_err(ApiError::bad_request)?;
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
    let metadata = caller.metadata(Some(admin.user_id));
    state.maintenance.set(scope.clone(), window, admin.user_id, metadata).await?;
    let state_word = if body.enabled { "on" } else { "off" };
    Ok(ApiOk(Message::new(format!("maintenance {scope} {state_word}"))))
}

/// Blocks sign-in and API keys and ends every session; open orders finish normally.
#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/block",
    tag = "admin",
    summary = "Block a user: no sign-in, no API keys, sessions end; open orders finish normally",
    request_body = BlockRequest,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "user id")),
    responses(
        (status = 200, body = Envelope<UserData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "admins cannot block themselves", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn block(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(user_id): ApiPath<UserId>,
    ApiJson(body): ApiJson<BlockRequest>,
) -> Result<ApiOk<UserData>, ApiError> {
    if user_id == admin.user_id {
        return Err(ApiError::unprocessable("admins cannot block themselves"));
    }
    Ok(ApiOk(UserData { user: state.identity.block(&admin, user_id, &body.reason, &caller).await? }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/unblock",
    tag = "admin",
    summary = "Unblock a user",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "user id")),
    responses(
        (status = 200, body = Envelope<UserData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn unblock(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(user_id): ApiPath<UserId>,
) -> Result<ApiOk<UserData>, ApiError> {
    Ok(ApiOk(UserData { user: state.identity.unblock(&admin, user_id, &caller).await? }))
}
