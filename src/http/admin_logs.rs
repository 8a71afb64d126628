//! `/api/v1/admin/logs/*`: who did what (the activity log, from the events' metadata) and what
//! the service's jobs and integrations did (the system log).

use std::sync::Arc;

use axum::extract::State;
use domain::UserId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody};
use super::error::{ApiError, ApiOk};
use super::json::ApiQuery;
use super::orders::field_error;
use super::principal::Admin;
use crate::projection::activity::{self as activity_view, Activity, ActivityFilter};
use crate::search::Total;
use crate::store::system_log::{self, LogEntry, LogFilter};

/// Entries per page at most.
const PAGE_SIZE_MAX: i64 = 200;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct ActivityQuery {
    /// Exactly this actor, e.g. `user:<uuid>`, `system:order-monitor`, `provider:textverified`.
    pub actor: Option<String>,
    /// The actions of one user (the same as `actor=user:<id>`).
    #[param(format = Uuid)]
    pub user_id: Option<String>,
    /// Event types starting with this, e.g. `order.` or `wallet.adjusted`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// From this day (`YYYY-MM-DD`, UTC), inclusive.
    pub from: Option<String>,
    /// To this day, exclusive.
    pub to: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ActivityPage {
    pub entries: Vec<Activity>,
    pub page: i64,
    pub per_page: i64,
    #[serde(flatten)]
    pub total: Total,
}

fn day_micros(field: &str, text: &str) -> Result<i64, ApiError> {
    let day =
        chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| field_error(field, "use YYYY-MM-DD"))?;
    let start = day.and_hms_opt(0, 0, 0).ok_or_else(|| field_error(field, "use YYYY-MM-DD"))?;
    Ok(start.and_utc().timestamp_micros())
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/logs/activity",
    tag = "admin",
    summary = "Who did what: events with their actor, address and request id, newest first",
    params(ActivityQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<ActivityPage>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn activity(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<ActivityQuery>,
) -> Result<ApiOk<ActivityPage>, ApiError> {
    let (page, per_page) = (query.page.unwrap_or(1), query.per_page.unwrap_or(50));
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&per_page) {
        return Err(ApiError::bad_request(format!("page starts at 1; per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    let actor = match (&query.actor, &query.user_id) {
        (Some(_), Some(_)) => return Err(field_error("user_id", "give actor or user_id, not both")),
        (Some(actor), None) => Some(actor.trim().to_owned()),
        (None, Some(id)) => Some(format!("user:{}", id.parse::<UserId>().map_err(|e| field_error("user_id", e))?)),
        (None, None) => None,
    };
    let filter = ActivityFilter {
        actor,
        event_type_prefix: query.event_type.as_deref().map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()),
        from_micros: query.from.as_deref().map(|d| day_micros("from", d)).transpose()?,
        before_micros: query.to.as_deref().map(|d| day_micros("to", d)).transpose()?,
    };
    crate::read::wait_for_view(&state.store, activity_view::NAME).await?;
    let offset = (page - 1).saturating_mul(per_page);
    let (entries, total) = activity_view::search_activity(state.store.engine(), &filter, offset, per_page)
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiOk(ActivityPage { entries, page, per_page, total }))
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct SystemQuery {
    /// `job`, `provider` or `webhook`.
    pub kind: Option<String>,
    /// e.g. `catalog-sync`, `order-monitor`, `cleanup`, `smsman`, `stripe`.
    pub source: Option<String>,
    /// `info`, `warn` or `error`.
    pub level: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SystemPage {
    pub entries: Vec<LogEntry>,
    pub page: i64,
    pub per_page: i64,
    #[serde(flatten)]
    pub total: Total,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/logs/system",
    tag = "admin",
    summary = "What the service's jobs and integrations did: job runs, provider errors, refused webhooks; newest first",
    params(SystemQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<SystemPage>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn system(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<SystemQuery>,
) -> Result<ApiOk<SystemPage>, ApiError> {
    let (page, per_page) = (query.page.unwrap_or(1), query.per_page.unwrap_or(50));
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&per_page) {
        return Err(ApiError::bad_request(format!("page starts at 1; per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    let kind = query.kind.filter(|k| !k.is_empty());
    if kind.as_deref().is_some_and(|k| !["job", "provider", "webhook"].contains(&k)) {
        return Err(field_error("kind", "use job, provider or webhook"));
    }
    let level = query.level.filter(|l| !l.is_empty());
    if level.as_deref().is_some_and(|l| !["info", "warn", "error"].contains(&l)) {
        return Err(field_error("level", "use info, warn or error"));
    }
    let filter = LogFilter { kind, source: query.source.filter(|s| !s.is_empty()), level };
    let offset = (page - 1).saturating_mul(per_page);
    let (entries, total) =
        system_log::search(state.store.engine(), &filter, offset, per_page).await.map_err(ApiError::internal)?;
    Ok(ApiOk(SystemPage { entries, page, per_page, total }))
}
