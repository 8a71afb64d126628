//! `/api/v1/admin/orders`: every user's orders, searched, and an admin's cancel with refund.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use domain::catalog::{CountryCode, ServiceCode};
use domain::{OrderId, UserId};
use projections::OrderView;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody};
use super::error::{ApiError, ApiOk};
use super::json::{ApiPath, ApiQuery};
use super::orders::{OrderBody, field_error, parse_status};
use super::principal::Admin;
use crate::identity::Caller;
use crate::projection::orders::{self as orders_view, AdminFilter};
use crate::search::Total;

/// Orders per page at most.
const PAGE_SIZE_MAX: i64 = 100;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct AdminOrdersQuery {
    #[param(format = Uuid)]
    pub user_id: Option<String>,
    /// placed, number_assigned, sms_received, finished, cancelled, expired or provider_failed.
    pub status: Option<String>,
    /// e.g. `sandbox`, `smsman`, `textverified`.
    pub provider: Option<String>,
    /// e.g. `tg`.
    pub service: Option<String>,
    /// ISO alpha-2, e.g. `GB`.
    pub country: Option<String>,
    /// Placed on or after this day (`YYYY-MM-DD`, UTC).
    pub from: Option<String>,
    /// Placed before this day (`YYYY-MM-DD`, UTC).
    pub to: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

/// An order as admins see it: what its user sees, plus who and what it cost us.
#[derive(Serialize, ToSchema)]
pub struct AdminOrder<'a> {
    #[serde(flatten)]
    pub order: OrderBody<'a>,
    #[schema(format = Uuid)]
    pub user_id: String,
    pub provider: Option<String>,
    /// What the provider charges us.
    pub cost: Option<String>,
}

impl<'a> From<&'a OrderView> for AdminOrder<'a> {
    fn from(view: &'a OrderView) -> Self {
        AdminOrder {
            order: view.into(),
            user_id: view.user_id.to_string(),
            provider: view.provider_id.clone(),
            cost: view.cost.map(|cost| cost.amount.to_string()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminOrdersPage<'a> {
    pub orders: Vec<AdminOrder<'a>>,
    pub page: i64,
    pub per_page: i64,
    #[serde(flatten)]
    pub total: Total,
}

#[derive(Serialize, ToSchema)]
pub struct AdminOrderData<'a> {
    pub order: AdminOrder<'a>,
}

fn day_start(field: &str, text: &str) -> Result<domain::Timestamp, ApiError> {
    let day =
        chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| field_error(field, "use YYYY-MM-DD"))?;
    let start = day.and_hms_opt(0, 0, 0).ok_or_else(|| field_error(field, "use YYYY-MM-DD"))?;
    Ok(domain::Timestamp(start.and_utc().timestamp_millis()))
}

fn filter(query: &AdminOrdersQuery) -> Result<AdminFilter, ApiError> {
    let user =
        query.user_id.as_deref().map(|id| id.parse::<UserId>().map_err(|e| field_error("user_id", e))).transpose()?;
    let service = query
        .service
        .as_deref()
        .map(|s| ServiceCode::parse(s.trim()).map_err(|e| field_error("service", e)))
        .transpose()?;
    let country = query
        .country
        .as_deref()
        .map(|c| CountryCode::parse(&c.trim().to_ascii_uppercase()).map_err(|e| field_error("country", e)))
        .transpose()?;
    Ok(AdminFilter {
        user,
        status: query.status.as_deref().map(parse_status).transpose()?,
        provider: query.provider.as_deref().map(|p| p.trim().to_owned()),
        service: service.map(|s| s.as_str().to_owned()),
        country: country.map(|c| c.as_str().to_owned()),
        placed_from: query.from.as_deref().map(|d| day_start("from", d)).transpose()?,
        placed_before: query.to.as_deref().map(|d| day_start("to", d)).transpose()?,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/orders",
    tag = "admin",
    summary = "Every user's orders, newest first, by user, status, provider, service, country and day",
    params(AdminOrdersQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<AdminOrdersPage>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<AdminOrdersQuery>,
) -> Result<Response, ApiError> {
    let filter = filter(&query)?;
    let (page, per_page) = (query.page.unwrap_or(1), query.per_page.unwrap_or(20));
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&per_page) {
        return Err(ApiError::bad_request(format!("page starts at 1; per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    crate::read::wait_for_view(&state.store, orders_view::NAME).await?;
    let offset = (page - 1).saturating_mul(per_page);
    let (found, total) = orders_view::search_orders(state.store.engine(), &filter, offset, per_page)
        .await
        .map_err(ApiError::internal)?;
    let orders = found.iter().map(AdminOrder::from).collect();
    Ok(ApiOk(AdminOrdersPage { orders, page, per_page, total }).into_response())
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/orders/{id}/cancel",
    tag = "admin",
    summary = "Cancel any order before its SMS, inside the cancel window too: the user is refunded",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "order id")),
    responses(
        (status = 200, body = Envelope<AdminOrderData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, description = "closed, or an SMS arrived (the money is captured: credit the user instead)", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(order_id): ApiPath<OrderId>,
) -> Result<Response, ApiError> {
    let view = state.orders.force_cancel(order_id, caller.metadata(Some(admin.user_id))).await?;
    Ok(ApiOk(AdminOrderData { order: AdminOrder::from(&view) }).into_response())
}
