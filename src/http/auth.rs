//! `/api/v1/auth/*`: registration, sign-in, tokens, sessions, email and password flows, TOTP.

use std::sync::Arc;

use axum::extract::State;
use domain::SessionId;
use domain::identity::{Email, Role, SessionEnd};
use domain::maintenance::Scope;
use serde::Deserialize;
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{Envelope, ErrorBody, LoginData, Message, RevokedCount, SessionsData, UserData};
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::{ApiJson, ApiPath};
use super::principal::{Auth, limit};
use crate::identity::{AuthError, Caller, LoginInput, Tokens, TotpSetup};

#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    pub email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Login {
    pub email: String,
    pub password: String,
    pub totp_code: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshToken {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Token {
    pub token: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ChangePassword {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetRequest {
    pub email: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ResetConfirm {
    pub token: String,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct Code {
    pub code: String,
}

/// An address as a rate-limit key: normalized when it parses, so case does not split a quota.
fn account_key(email: &str) -> String {
    Email::parse(email).map_or_else(|_| email.to_owned(), |e| e.to_string())
}

fn ip_key(caller: &Caller) -> String {
    caller.ip.clone().unwrap_or_else(|| "unknown".into())
}

/// 503 when `scope` (or master) is paused for maintenance.
pub async fn ensure_open(state: &AppState, scope: Scope) -> Result<(), ApiError> {
    state.maintenance.check(&scope).await??;
    Ok(())
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    summary = "Open an account (mails a verification link)",
    request_body = Credentials,
    responses(
        (status = 201, body = Envelope<UserData>),
        (status = 400, description = "invalid email, disposable domain or weak password", body = ErrorBody),
        (status = 409, description = "email already registered", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn register(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<ApiCreated<UserData>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    limit(&state, &state.quotas.register, &format!("ip:{}", ip_key(&caller))).await?;
    let user = state.identity.register(&body.email, &body.password, Role::User, &caller).await?;
    Ok(ApiCreated(UserData { user }))
}

/// Rate-limited per address and per account before the password is looked at. During
/// maintenance of sign-in only admins get through, so they can switch it off.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    summary = "Sign in; accounts with TOTP also send totp_code",
    request_body = Login,
    responses(
        (status = 200, body = Envelope<LoginData>),
        (status = 400, body = ErrorBody),
        (status = 401, description = "wrong credentials or code; details.totp_required when a code is needed", body = ErrorBody),
        (status = 403, description = "account blocked", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Login>,
) -> Result<ApiOk<LoginData>, ApiError> {
    limit(&state, &state.quotas.login, &format!("ip:{}", ip_key(&caller))).await?;
    let account = account_key(&body.email);
    limit(&state, &state.quotas.login, &format!("account:{account}")).await?;
    let paused = state.maintenance.check(&Scope::Auth).await?.err();
    let input = LoginInput { email: body.email, password: body.password, totp_code: body.totp_code };
    let result = state.identity.login(input, &caller, paused.is_some()).await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(AuthError::BadCredentials) => "bad_credentials",
        Err(AuthError::TotpRequired) => "totp_required",
        Err(AuthError::Unauthenticated(_)) => "bad_totp",
        Err(AuthError::Forbidden(_)) => "blocked",
        Err(AuthError::Paused) => "paused",
        Err(_) => "error",
    };
    metrics::counter!("auth_logins_total", "result" => outcome).increment(1);
    match result {
        Ok((tokens, user)) => Ok(ApiOk(LoginData { tokens, user })),
        Err(AuthError::Paused) => Err(paused
            .map(ApiError::from)
            .unwrap_or_else(|| ApiError::internal("login refused for maintenance that is not on"))),
        Err(error) => Err(error.into()),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    summary = "Exchange a refresh token for a new pair; a reused token revokes its session",
    request_body = RefreshToken,
    responses(
        (status = 200, body = Envelope<Tokens>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<RefreshToken>,
) -> Result<ApiOk<Tokens>, ApiError> {
    Ok(ApiOk(state.identity.refresh(&body.refresh_token, &caller).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    summary = "End the current session",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 401, body = ErrorBody),
        (status = 403, description = "called with an API key", body = ErrorBody),
    )
)]
pub async fn logout(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
) -> Result<ApiOk<Message>, ApiError> {
    let session_id = principal.session()?;
    state.identity.close_session(&principal, session_id, SessionEnd::Logout, &caller).await?;
    Ok(ApiOk(Message::new("signed out")))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    summary = "The signed-in user",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Envelope<UserData>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn me(Auth(principal): Auth) -> Result<ApiOk<UserData>, ApiError> {
    Ok(ApiOk(UserData { user: principal.view()? }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email",
    tag = "auth",
    summary = "Confirm the email address with the mailed token",
    request_body = Token,
    responses(
        (status = 200, body = Envelope<UserData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn verify_email(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<Token>,
) -> Result<ApiOk<UserData>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    let user = state.identity.verify_email(&body.token, &caller).await?;
    Ok(ApiOk(UserData { user }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/send-verification-email",
    tag = "auth",
    summary = "Mail a new verification link",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 401, body = ErrorBody),
        (status = 422, description = "already verified", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn send_verification_email(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<ApiOk<Message>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    limit(&state, &state.quotas.code_check, &format!("verify-mail:{}", principal.user_id)).await?;
    state.identity.send_verification(&principal).await?;
    Ok(ApiOk(Message::new("verification link sent")))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/change-password",
    tag = "auth",
    summary = "Change the password; other sessions end",
    request_body = ChangePassword,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "current password wrong, or called with an API key", body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn change_password(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<ApiOk<Message>, ApiError> {
    limit(&state, &state.quotas.code_check, &format!("password:{}", principal.user_id)).await?;
    state.identity.change_password(&principal, &body.current_password, &body.new_password, &caller).await?;
    Ok(ApiOk(Message::new("password changed; other sessions ended")))
}

/// Always the same answer, whether or not the address has an account.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/request",
    tag = "auth",
    summary = "Mail a password reset link; the answer is the same whether or not the account exists",
    request_body = ResetRequest,
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn password_reset_request(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<ResetRequest>,
) -> Result<ApiOk<Message>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    limit(&state, &state.quotas.code_check, &format!("reset-ip:{}", ip_key(&caller))).await?;
    let account = account_key(&body.email);
    limit(&state, &state.quotas.code_check, &format!("reset:{account}")).await?;
    state.identity.request_password_reset(&body.email).await?;
    Ok(ApiOk(Message::new("if an account has this address, a reset link was sent to it")))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/confirm",
    tag = "auth",
    summary = "Set a new password with the mailed token; every session ends",
    request_body = ResetConfirm,
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, description = "bad, expired or used token, or a weak password", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
pub async fn password_reset_confirm(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    ApiJson(body): ApiJson<ResetConfirm>,
) -> Result<ApiOk<Message>, ApiError> {
    ensure_open(&state, Scope::Auth).await?;
    limit(&state, &state.quotas.code_check, &format!("reset-confirm:{}", ip_key(&caller))).await?;
    state.identity.confirm_password_reset(&body.token, &body.new_password, &caller).await?;
    Ok(ApiOk(Message::new("password reset; sign in with the new password")))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    summary = "The caller's open sessions",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Envelope<SessionsData>),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn sessions(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
) -> Result<ApiOk<SessionsData>, ApiError> {
    Ok(ApiOk(SessionsData { sessions: state.identity.sessions(&principal).await? }))
}

/// Ends every session but the caller's.
#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    summary = "End every session but the current one",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Envelope<RevokedCount>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
pub async fn revoke_other_sessions(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
) -> Result<ApiOk<RevokedCount>, ApiError> {
    let revoked = state.identity.revoke_other_sessions(&principal, &caller).await?;
    Ok(ApiOk(RevokedCount { revoked }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "auth",
    summary = "End one of the caller's sessions",
    security(("bearer" = []), ("api_key" = [])),
    params(("id" = String, Path, format = Uuid, description = "session id")),
    responses(
        (status = 200, body = Envelope<RevokedCount>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    )
)]
pub async fn revoke_session(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiPath(session_id): ApiPath<SessionId>,
) -> Result<ApiOk<RevokedCount>, ApiError> {
    principal.session()?;
    state.identity.close_session(&principal, session_id, SessionEnd::RevokedByUser, &caller).await?;
    Ok(ApiOk(RevokedCount { revoked: 1 }))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/2fa/setup",
    tag = "auth",
    summary = "Issue a TOTP secret; it takes effect once enabled",
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Envelope<TotpSetup>),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, description = "already enabled", body = ErrorBody),
    )
)]
pub async fn totp_setup(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
) -> Result<ApiOk<TotpSetup>, ApiError> {
    Ok(ApiOk(state.identity.set_up_totp(&principal, &caller).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/2fa/enable",
    tag = "auth",
    summary = "Enable TOTP with a code from the new secret",
    request_body = Code,
    security(("bearer" = []), ("api_key" = [])),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, description = "wrong code", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
pub async fn totp_enable(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<Code>,
) -> Result<ApiOk<Message>, ApiError> {
    limit(&state, &state.quotas.code_check, &format!("totp:{}", principal.user_id)).await?;
    state.identity.enable_totp(&principal, &body.code, &caller).await?;
    Ok(ApiOk(Message::new("two-factor authentication enabled; sign in again with a code to use it")))
}
