//! `/api/v1/admin/users`: finding users (the users directory), one user's whole picture
//! (profile, wallets, recent orders and statement), and role changes.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use domain::UserId;
use domain::identity::Role;
use projections::UserRow;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::admin_orders::AdminOrder;
use super::admin_payments::{WalletBody, wallet_bodies};
use super::bodies::{AdminRefusals, Envelope, ErrorBody, UserData};
use super::error::{ApiError, ApiOk};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::orders::field_error;
use super::payments::HistoryLine;
use super::principal::Admin;
use crate::identity::{Caller, UserView, rfc3339};
use crate::projection::orders::{self as orders_view, AdminFilter};
use crate::projection::users::{self as users_view, UserFilter};
use crate::search::Total;

/// Users per page at most.
const PAGE_SIZE_MAX: i64 = 100;
/// Recent orders and statement lines shown with one user.
const RECENT_MAX: i64 = 20;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct UsersQuery {
    /// Part of the email address.
    pub q: Option<String>,
    /// `user` or `admin`.
    pub role: Option<String>,
    pub blocked: Option<bool>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct UserListEntry {
    #[schema(format = Uuid)]
    pub id: String,
    pub email: String,
    pub email_verified: bool,
    pub role: String,
    pub blocked: bool,
    #[schema(format = DateTime)]
    pub registered_at: String,
    #[schema(format = DateTime)]
    pub last_login_at: Option<String>,
}

impl From<&UserRow> for UserListEntry {
    fn from(row: &UserRow) -> Self {
        UserListEntry {
            id: row.user_id.to_string(),
            email: row.email.clone(),
            email_verified: row.email_verified,
            role: role_text(row.role).into(),
            blocked: row.blocked,
            registered_at: rfc3339(row.registered_at),
            last_login_at: row.last_login_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UsersPage {
    pub users: Vec<UserListEntry>,
    pub page: i64,
    pub per_page: i64,
    #[serde(flatten)]
    pub total: Total,
}

#[derive(Serialize, ToSchema)]
pub struct AdminUserData<'a> {
    pub user: UserView,
    pub wallets: Vec<WalletBody>,
    /// The newest orders.
    pub orders: Vec<AdminOrder<'a>>,
    /// The user's orders, counted up to 10,000.
    pub orders_total: i64,
    /// False when the user has more than 10,000 orders.
    pub orders_total_exact: bool,
    /// The newest payment lines of the statement.
    pub ledger: Vec<HistoryLine>,
}

#[derive(Deserialize, ToSchema)]
pub struct RoleRequest {
    /// `user` or `admin`.
    pub role: String,
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Admin => "admin",
    }
}

fn parse_role(text: &str) -> Result<Role, ApiError> {
    match text.trim() {
        "user" => Ok(Role::User),
        "admin" => Ok(Role::Admin),
        _ => Err(field_error("role", "use user or admin")),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    tag = "admin",
    summary = "Find users by part of their email, role and blocked, newest first",
    params(UsersQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<UsersPage>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<UsersQuery>,
) -> Result<ApiOk<UsersPage>, ApiError> {
    let (page, per_page) = (query.page.unwrap_or(1), query.per_page.unwrap_or(20));
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&per_page) {
        return Err(ApiError::bad_request(format!("page starts at 1; per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    let filter = UserFilter {
        email_contains: query.q.as_deref().map(|q| q.trim().to_lowercase()).filter(|q| !q.is_empty()),
        role: query.role.as_deref().map(parse_role).transpose()?,
        blocked: query.blocked,
    };
    crate::read::wait_for_view(&state.store, users_view::NAME).await?;
    let offset = (page - 1).saturating_mul(per_page);
    let found =
        users_view::search_users(state.store.engine(), &filter, offset, per_page).await.map_err(ApiError::internal)?;
    let users = found.users.iter().map(UserListEntry::from).collect();
    Ok(ApiOk(UsersPage { users, page, per_page, total: found.total }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    summary = "One user: profile, wallets, newest orders and payment lines",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "user id")),
    responses(
        (status = 200, body = Envelope<AdminUserData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn user(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiPath(user_id): ApiPath<UserId>,
) -> Result<Response, ApiError> {
    let user = state.identity.user_view(user_id).await?;
    let wallets = wallet_bodies(&state, user_id).await?;
    crate::read::wait_for_view(&state.store, orders_view::NAME).await?;
    let filter = AdminFilter { user: Some(user_id), ..AdminFilter::default() };
    let (orders, orders_total) =
        orders_view::search_orders(state.store.engine(), &filter, 0, RECENT_MAX).await.map_err(ApiError::internal)?;
    let (lines, _) = crate::read::history(&state.store, user_id, (RECENT_MAX, 0)).await?;
    Ok(ApiOk(AdminUserData {
        user,
        wallets,
        orders: orders.iter().map(AdminOrder::from).collect(),
        orders_total: orders_total.total,
        orders_total_exact: orders_total.exact,
        ledger: lines.into_iter().map(HistoryLine::from).collect(),
    })
    .into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/role",
    tag = "admin",
    summary = "Give a user a role (user or admin); it takes effect at their next request",
    request_body = RoleRequest,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "user id")),
    responses(
        (status = 200, body = Envelope<UserData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "admins cannot change their own role", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn role(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(user_id): ApiPath<UserId>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> Result<ApiOk<UserData>, ApiError> {
    let role = parse_role(&body.role)?;
    if user_id == admin.user_id {
        return Err(ApiError::unprocessable("admins cannot change their own role"));
    }
    Ok(ApiOk(UserData { user: state.identity.set_role(&admin, user_id, role, &caller).await? }))
}
