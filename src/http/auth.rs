//! `/api/v1/auth/*`: registration, sign-in, tokens, sessions, email and password flows, TOTP.

use std::sync::Arc;

use axum::extract::State;
use domain::SessionId;
use domain::identity::{Email, Role, SessionEnd};
use domain::maintenance::Scope;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::{ApiJson, ApiPath};
use super::principal::{Auth, limit};
use crate::identity::{Caller, LoginInput};

#[derive(Deserialize)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize)]
pub struct Login {
    pub email: String,
    pub password: String,
    pub totp_code: Option<String>,
}

#[derive(Deserialize)]
pub struct RefreshToken {
    pub refresh_token: String,
}

#[derive(Deserialize)]
pub struct Token {
    pub token: String,
}

#[derive(Deserialize)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Deserialize)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Deserialize)]
pub struct ResetConfirm {
    pub token: String,
    pub new_password: String,
}

#[derive(Deserialize)]
pub struct Code {
    pub code: String,
}

fn ip_key(caller: &Caller) -> String {
    caller.ip.clone().unwrap_or_else(|| "unknown".into())
}

/// 503 when `scope` (or master) is paused for maintenance.
pub async fn ensure_open(state: &AppState, scope: Scope) -> Result<(), ApiError> {
    state.maintenance.check(&scope).await??;
    Ok(())
}

pub async fn register(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<ApiCreated<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    limit(&state, &state.quotas.register, &format!("ip:{}", ip_key(&caller))).await?;
    let user = state.identity.register(&body.email, &body.password, Role::User, &caller).await?;
    Ok(ApiCreated(json!({ "user": user })))
}

/// Rate-limited per address and per account before the password is looked at. During
/// maintenance of sign-in only admins get through, so they can switch it off.
pub async fn login(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Login>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    limit(&state, &state.quotas.login, &format!("ip:{}", ip_key(&caller))).await?;
    let account = Email::parse(&body.email).map(|e| e.to_string()).unwrap_or_else(|_| body.email.clone());
    limit(&state, &state.quotas.login, &format!("account:{account}")).await?;
    let paused = state.maintenance.check(&Scope::Auth).await?.err();
    let input = LoginInput { email: body.email, password: body.password, totp_code: body.totp_code };
    match state.identity.login(input, &caller, paused.is_some()).await {
        Ok((tokens, user)) => {
            let mut data = serde_json::to_value(tokens).map_err(ApiError::internal)?;
            data["user"] = json!(user);
            Ok(ApiOk(data))
        }
        Err(crate::identity::AuthError::Paused) => Err(paused
            .map(ApiError::from)
            .unwrap_or_else(|| ApiError::internal("login refused for maintenance that is not on"))),
        Err(error) => Err(error.into()),
    }
}

pub async fn refresh(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<RefreshToken>,
) -> Result<ApiOk<crate::identity::Tokens>, ApiError> {
    Ok(ApiOk(state.identity.refresh(&body.refresh_token, &caller).await?))
}

pub async fn logout(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let session_id = principal.session()?;
    state.identity.close_session(&principal, session_id, SessionEnd::Logout, &caller).await?;
    Ok(ApiOk(json!({ "logged_out": true })))
}

pub async fn me(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let user = state.identity.user_view(principal.user_id).await?;
    Ok(ApiOk(json!({ "user": user })))
}

pub async fn verify_email(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Token>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    let user = state.identity.verify_email(&body.token, &caller).await?;
    Ok(ApiOk(json!({ "user": user })))
}

pub async fn send_verification_email(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    limit(&state, &state.quotas.code_check, &format!("verify-mail:{}", principal.user_id)).await?;
    state.identity.send_verification(&principal).await?;
    Ok(ApiOk(json!({ "sent": true })))
}

pub async fn change_password(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    limit(&state, &state.quotas.code_check, &format!("password:{}", principal.user_id)).await?;
    state.identity.change_password(&principal, &body.current_password, &body.new_password, &caller).await?;
    Ok(ApiOk(json!({ "changed": true })))
}

/// Always the same answer, whether or not the address has an account.
pub async fn password_reset_request(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    limit(&state, &state.quotas.code_check, &format!("reset-ip:{}", ip_key(&caller))).await?;
    let account = Email::parse(&body.email).map(|e| e.to_string()).unwrap_or_else(|_| body.email.clone());
    limit(&state, &state.quotas.code_check, &format!("reset:{account}")).await?;
    state.identity.request_password_reset(&body.email).await?;
    Ok(ApiOk(json!({ "message": "if an account has this address, a reset link was sent to it" })))
}

pub async fn password_reset_confirm(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<ResetConfirm>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    limit(&state, &state.quotas.code_check, &format!("reset-confirm:{}", ip_key(&caller))).await?;
    state.identity.confirm_password_reset(&body.token, &body.new_password, &caller).await?;
    Ok(ApiOk(json!({ "reset": true })))
}

pub async fn sessions(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    Ok(ApiOk(json!({ "sessions": state.identity.sessions(&principal).await? })))
}

/// Ends every session but the caller's.
pub async fn revoke_other_sessions(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    let revoked = state.identity.revoke_other_sessions(&principal, &caller).await?;
    Ok(ApiOk(json!({ "revoked": revoked })))
}

pub async fn revoke_session(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiPath(session_id): ApiPath<SessionId>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    principal.session()?;
    state.identity.close_session(&principal, session_id, SessionEnd::RevokedByUser, &caller).await?;
    Ok(ApiOk(json!({ "revoked": 1 })))
}

pub async fn totp_setup(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
) -> Result<ApiOk<crate::identity::TotpSetup>, ApiError> {
    Ok(ApiOk(state.identity.set_up_totp(&principal, &caller).await?))
}

pub async fn totp_enable(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<Code>,
) -> Result<ApiOk<serde_json::Value>, ApiError> {
    limit(&state, &state.quotas.code_check, &format!("totp:{}", principal.user_id)).await?;
    state.identity.enable_totp(&principal, &body.code, &caller).await?;
    Ok(ApiOk(json!({ "enabled": true, "next": "sign in again with a code to open a session with the second factor" })))
}
