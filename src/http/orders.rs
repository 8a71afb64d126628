//! `/api/v1/orders`: buy a number, read its code, cancel, finish, ask for another SMS. A user
//! sees only their own orders; someone else's order id answers 404 like an unknown one.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use domain::catalog::{CountryCode, ServiceCode};
use domain::maintenance::Scope;
use domain::order::{OrderError, OrderStatus};
use domain::{Money, OrderId};
use projections::OrderView;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::auth::ensure_open;
use super::bodies::{Envelope, ErrorBody, UserRefusals};
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::principal::Auth;
use crate::identity::Caller;
use crate::orders::{NewOrder, OrderFailure};
use crate::projection::orders as orders_view;
use crate::rfc3339::{Rfc3339, rfc3339};
use crate::service::ServiceError;

/// Longest `Idempotency-Key` accepted.
const IDEMPOTENCY_KEY_LENGTH_MAX: usize = 255;
/// Orders per page at most.
const PAGE_SIZE_MAX: i64 = 100;

#[derive(Deserialize, ToSchema)]
pub struct PlaceOrder {
    /// Service code, e.g. `tg`.
    #[schema(example = "tg")]
    pub service: String,
    /// ISO 3166 alpha-2 country, e.g. `GB`.
    #[schema(example = "GB")]
    pub country: String,
    /// The most the caller will pay, as a decimal string in the service's currency.
    #[schema(example = "0.50")]
    pub max_price: Option<String>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct ListQuery {
    /// placed, number_assigned, sms_received, finished, cancelled, expired or provider_failed.
    pub status: Option<String>,
    /// From 1.
    pub page: Option<i64>,
    /// 1 to 100, default 20.
    pub per_page: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SmsBody<'a> {
    pub code: &'a str,
    pub text: &'a str,
    #[schema(value_type = String, format = DateTime)]
    pub received_at: Rfc3339,
}

/// An order as its owner sees it. Amounts are decimal strings. Borrowed from the order's
/// view: a page of 20 serializes without copying each order's text first.
#[derive(Serialize, ToSchema)]
pub struct OrderBody<'a> {
    #[schema(value_type = String, format = Uuid)]
    pub id: OrderId,
    /// A short numeric id of the order, unique like `id` (the SMS-Activate activation id).
    pub serial: i64,
    #[schema(example = "number_assigned")]
    pub status: &'static str,
    pub service: &'a str,
    pub country: &'a str,
    #[schema(value_type = String, example = "0.50")]
    pub price: Decimal,
    pub currency: &'a str,
    /// The rented number, once assigned.
    pub phone: Option<&'a str>,
    /// The newest code, once an SMS arrived.
    pub code: Option<&'a str>,
    pub sms: Vec<SmsBody<'a>>,
    pub awaiting_another_sms: bool,
    #[schema(value_type = String, format = DateTime)]
    pub placed_at: Rfc3339,
    /// From when a cancel is accepted (until an SMS arrives).
    #[schema(value_type = String, format = DateTime)]
    pub cancellable_at: Rfc3339,
    /// When the order expires and is refunded if no SMS came.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Rfc3339,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closed_at: Option<Rfc3339>,
}

impl<'a> From<&'a OrderView> for OrderBody<'a> {
    fn from(view: &'a OrderView) -> Self {
        OrderBody {
            id: view.order_id,
            serial: view.serial,
            status: orders_view::status_text(view.status),
            service: view.service.as_str(),
            country: view.country.as_str(),
            price: view.price.amount,
            currency: view.price.currency.as_str(),
            phone: view.phone.as_ref().map(|phone| phone.as_str()),
            code: view.code(),
            sms: view
                .sms
                .iter()
                .map(|sms| SmsBody { code: &sms.code, text: &sms.text, received_at: Rfc3339(sms.at) })
                .collect(),
            awaiting_another_sms: view.awaiting_another_sms,
            placed_at: Rfc3339(view.placed_at),
            cancellable_at: Rfc3339(view.cancellable_at),
            expires_at: Rfc3339(view.expires_at),
            closed_at: view.closed_at.map(Rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrderData<'a> {
    pub order: OrderBody<'a>,
}

impl OrderData<'_> {
    fn of(view: &OrderView) -> OrderData<'_> {
        OrderData { order: view.into() }
    }
}

#[derive(Serialize, ToSchema)]
pub struct OrdersPage<'a> {
    pub orders: Vec<OrderBody<'a>>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

impl From<OrderFailure> for ApiError {
    fn from(failure: OrderFailure) -> Self {
        let message = failure.to_string();
        match failure {
            OrderFailure::NotFound => ApiError::not_found(message),
            OrderFailure::UnknownService(service) => {
                ApiError::unprocessable(message).with_details(json!({"service": service.as_str()}))
            }
            OrderFailure::NoNumbers { cheapest } => ApiError::unprocessable(message)
                .with_details(json!({"cheapest_price": cheapest.map(|c| c.amount.to_string())})),
            OrderFailure::NoBalance { available, needed } => ApiError::unprocessable(message)
                .with_details(json!({"available": available.to_string(), "needed": needed.to_string()})),
            OrderFailure::KeyReused | OrderFailure::CannotExtend => ApiError::unprocessable(message),
            OrderFailure::ProviderUnavailable(_) => ApiError::unavailable(message, 5),
            OrderFailure::Refused(ServiceError::Order(OrderError::CancelTooEarly { allowed_at })) => {
                ApiError::unprocessable(format!(
                    "too early to cancel: the provider needs the time; cancel from {}",
                    rfc3339(allowed_at)
                ))
                .with_details(json!({"cancellable_at": rfc3339(allowed_at)}))
            }
            OrderFailure::Refused(error) => error.into(),
            OrderFailure::Store(error) => ApiError::internal(error),
        }
    }
}

pub(super) fn parse_status(text: &str) -> Result<OrderStatus, ApiError> {
    orders_view::status_from_text(text).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown status {text:?}: use placed, number_assigned, sms_received, finished, cancelled, expired or provider_failed"
        ))
    })
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?.trim();
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_LENGTH_MAX {
        return Err(ApiError::bad_request(format!(
            "Idempotency-Key must be 1 to {IDEMPOTENCY_KEY_LENGTH_MAX} characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

pub(super) fn field_error(field: &str, error: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("{field}: {error}")).with_details(json!({"field": field}))
}

#[utoipa::path(
    post,
    path = "/api/v1/orders",
    tag = "orders",
    summary = "Buy a number: the price is held, a number rented from the cheapest provider",
    description = "Send `Idempotency-Key` to make a retry safe: it returns the same order. \
                   Insufficient balance, no numbers or an unknown service are 422 and leave the balance as it was.",
    request_body = PlaceOrder,
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the same order")),
    responses(
        (status = 201, body = Envelope<OrderData>),
        (status = 400, body = ErrorBody),
        (status = 422, description = "insufficient balance, no numbers, unknown service", body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn place(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PlaceOrder>,
) -> Result<Response, ApiError> {
    ensure_open(&state, Scope::Server).await?;
    let service = ServiceCode::parse(body.service.trim()).map_err(|e| field_error("service", e))?;
    let country =
        CountryCode::parse(&body.country.trim().to_ascii_uppercase()).map_err(|e| field_error("country", e))?;
    ensure_open(&state, Scope::Service(service.clone())).await?;
    let currency = state.currencies[0];
    let max_price = match body.max_price {
        None => None,
        Some(text) => Some(Money::parse(text.trim(), currency.as_str()).map_err(|e| field_error("max_price", e))?),
    };
    let request = NewOrder { user: principal.user_id, service, country, max_price, key: idempotency_key(&headers)? };
    let pricing = state.pricing.state().await?;
    let view = state.orders.place(request, &pricing, caller.metadata(Some(principal.user_id))).await?;
    Ok(ApiCreated(OrderData::of(&view)).into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/orders",
    tag = "orders",
    summary = "The caller's orders, newest first, including every order placed before the request",
    params(ListQuery),
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses(
        (status = 200, body = Envelope<OrdersPage>),
        (status = 400, body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn list(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    let status = query.status.as_deref().map(parse_status).transpose()?;
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(20);
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&per_page) {
        return Err(ApiError::bad_request(format!("page starts at 1; per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    let offset = (page - 1).saturating_mul(per_page);
    let found = state.orders.page(principal.user_id, status, offset, per_page).await?;
    Ok(ApiOk(OrdersPage {
        orders: found.orders.iter().map(OrderBody::from).collect(),
        page,
        per_page,
        total: found.total,
    })
    .into_response())
}

#[utoipa::path(
    get,
    path = "/api/v1/orders/{id}",
    tag = "orders",
    summary = "One of the caller's orders, with its code once the SMS arrived",
    params(("id" = String, Path, format = Uuid, description = "Order id")),
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses(
        (status = 200, body = Envelope<OrderData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiPath(order_id): ApiPath<OrderId>,
) -> Result<Response, ApiError> {
    ensure_open(&state, Scope::Master).await?;
    let view = state.orders.owned(principal.user_id, order_id).await?;
    // A waiting order asks its provider now: the code shows without waiting for the monitor.
    let view = state.orders.refresh_briefly(view, &caller.metadata(Some(principal.user_id))).await?;
    Ok(ApiOk(OrderData::of(&view)).into_response())
}

macro_rules! order_action {
    ($name:ident, $path:literal, $summary:literal, $method:ident) => {
        #[utoipa::path(
                    post,
                    path = $path,
                    tag = "orders",
                    summary = $summary,
                    params(("id" = String, Path, format = Uuid, description = "Order id")),
                    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
                    responses(
                        (status = 200, body = Envelope<OrderData>),
                        (status = 400, body = ErrorBody),
                        (status = 404, body = ErrorBody),
                        (status = 422, description = "not allowed in the order's state or yet", body = ErrorBody),
                        UserRefusals,
                    )
                )]
        pub async fn $name(
            State(state): State<Arc<AppState>>,
            Auth(principal): Auth,
            caller: Caller,
            ApiPath(order_id): ApiPath<OrderId>,
        ) -> Result<Response, ApiError> {
            ensure_open(&state, Scope::Server).await?;
            let metadata = caller.metadata(Some(principal.user_id));
            let view = state.orders.$method(principal.user_id, order_id, metadata).await?;
            Ok(ApiOk(OrderData::of(&view)).into_response())
        }
    };
}

order_action!(
    cancel,
    "/api/v1/orders/{id}/cancel",
    "Cancel before an SMS arrives (not in the first CANCEL_TIMEOUT); the hold is released",
    cancel
);
order_action!(finish, "/api/v1/orders/{id}/finish", "Close an order that got its code", finish);
order_action!(
    another_sms,
    "/api/v1/orders/{id}/another-sms",
    "Ask for another SMS on the same number, free of charge",
    another_sms
);
order_action!(
    extend,
    "/api/v1/orders/{id}/extend",
    "Keep the number one more order lifetime, free, if its provider can (at most twice, while waiting)",
    extend
);
