//! `/api/v1/notifications`: a user's in-app notifications (deposits credited, money taken back,
//! refunds, withdrawals, support's credits and debits) and their read marks.

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{Envelope, ErrorBody, UserRefusals};
use super::error::{ApiError, ApiOk};
use super::json::{ApiPath, ApiQuery};
use super::principal::Auth;
use crate::projection::notifications::{self as rows, InApp};

/// Notifications per page at most.
const PAGE_SIZE_MAX: i64 = 100;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct NotificationsQuery {
    /// Only the unread ones.
    pub unread: Option<bool>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct NotificationsPage {
    pub notifications: Vec<InApp>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

#[derive(Serialize, ToSchema)]
pub struct Marked {
    /// How many became read.
    pub updated: u64,
}

#[utoipa::path(
    get,
    path = "/api/v1/notifications",
    tag = "user",
    summary = "The caller's notifications, newest first, including those of every write before the request",
    params(NotificationsQuery),
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses((status = 200, body = Envelope<NotificationsPage>), (status = 400, body = ErrorBody), UserRefusals)
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<NotificationsQuery>,
) -> Result<ApiOk<NotificationsPage>, ApiError> {
    let (page, per_page) = (query.page.unwrap_or(1), query.per_page.unwrap_or(20));
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&per_page) {
        return Err(ApiError::bad_request(format!("page starts at 1; per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    crate::read::wait_for_user(&state.store, rows::NAME, principal.user_id).await?;
    let offset = (page - 1).saturating_mul(per_page);
    let unread = query.unread.unwrap_or(false);
    let (notifications, total) = rows::list(state.store.engine(), principal.user_id.0, unread, offset, per_page)
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiOk(NotificationsPage { notifications, page, per_page, total }))
}

#[utoipa::path(
    post,
    path = "/api/v1/notifications/{id}/read",
    tag = "user",
    summary = "Mark one of the caller's notifications read",
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    params(("id" = i64, Path, description = "notification id")),
    responses((status = 200, body = Envelope<Marked>), (status = 400, body = ErrorBody), UserRefusals)
)]
pub async fn read_one(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiPath(id): ApiPath<i64>,
) -> Result<ApiOk<Marked>, ApiError> {
    let now = chrono::Utc::now().timestamp_millis();
    let updated =
        rows::read(state.store.engine(), principal.user_id.0, Some(id), now).await.map_err(ApiError::internal)?;
    Ok(ApiOk(Marked { updated }))
}

#[utoipa::path(
    post,
    path = "/api/v1/notifications/read-all",
    tag = "user",
    summary = "Mark all the caller's notifications read",
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses((status = 200, body = Envelope<Marked>), UserRefusals)
)]
pub async fn read_all(State(state): State<Arc<AppState>>, Auth(principal): Auth) -> Result<ApiOk<Marked>, ApiError> {
    crate::read::wait_for_user(&state.store, rows::NAME, principal.user_id).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let updated = rows::read(state.store.engine(), principal.user_id.0, None, now).await.map_err(ApiError::internal)?;
    Ok(ApiOk(Marked { updated }))
}
