//! Response bodies of the identity, user and admin routes, typed so the OpenAPI document is
//! generated from what the handlers really return.

use serde::Serialize;
use utoipa::ToSchema;

use crate::identity::{ApiKeyView, SessionView, Tokens, UserView};

/// `{"success": true, "data": ...}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T: ToSchema> {
    pub success: bool,
    pub data: T,
}

/// `{"success": false, "error": "...", "details": {...}}`; 429 and 503 also send `Retry-After`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// Always false.
    pub success: bool,
    pub error: String,
    /// Which fields were refused and why, the quota hit, the maintenance scope, or the
    /// request id to quote for a 500.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct UserData {
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
pub struct LoginData {
    #[serde(flatten)]
    pub tokens: Tokens,
    pub user: UserView,
}

#[derive(Serialize, ToSchema)]
pub struct SessionsData {
    pub sessions: Vec<SessionView>,
}

#[derive(Serialize, ToSchema)]
pub struct RevokedCount {
    pub revoked: usize,
}

#[derive(Serialize, ToSchema)]
pub struct ApiKeysData {
    pub api_keys: Vec<ApiKeyView>,
}

#[derive(Serialize, ToSchema)]
pub struct BalancesData {
    pub balances: Vec<BalanceLine>,
}

/// Amounts are decimal strings, exact to the cent (or finer), never floats.
#[derive(Serialize, ToSchema)]
pub struct BalanceLine {
    #[schema(example = "USD")]
    pub currency: String,
    #[schema(example = "12.50")]
    pub available: String,
    /// Held for orders still waiting for their SMS.
    #[schema(example = "0.75")]
    pub held: String,
}

/// A plain acknowledgement.
#[derive(Serialize, ToSchema)]
pub struct Message {
    pub message: String,
}

impl Message {
    pub fn new(text: impl Into<String>) -> Message {
        Message { message: text.into() }
    }
}

#[derive(Serialize, ToSchema)]
pub struct MaintenanceData {
    /// Some window is in force now.
    pub active: bool,
    pub windows: Vec<MaintenanceWindow>,
}

#[derive(Serialize, ToSchema)]
pub struct MaintenanceWindow {
    #[schema(example = "service:tg")]
    pub scope: String,
    pub message: String,
    #[schema(format = DateTime)]
    pub starts_at: String,
    #[schema(format = DateTime)]
    pub ends_at: Option<String>,
    pub active: bool,
}

/// The refusals every admin route can give.
#[derive(utoipa::IntoResponses)]
pub enum AdminRefusals {
    /// Not signed in.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// Not an admin, or the session was opened without a second factor.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Over the API quota.
    #[response(status = 429)]
    RateLimited(ErrorBody),
}

/// The refusals every signed-in user route can give.
#[derive(utoipa::IntoResponses)]
pub enum UserRefusals {
    /// Not signed in, or the session has ended.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// The account is blocked.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// Over the API quota.
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// Paused for maintenance.
    #[response(status = 503)]
    Paused(ErrorBody),
}
