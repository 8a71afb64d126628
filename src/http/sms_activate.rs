//! `/stubs/handler_api.php`: the SMS-Activate protocol, so resellers' and bots' existing
//! clients work against us with one of our API keys. Answers are plain text (or JSON where
//! the protocol says so) with HTTP 200, as the protocol's clients parse them; ids and phone
//! numbers are bare integers. Parameters come from the query string or a form body.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::catalog::{CountryCode, ServiceCode};
use domain::maintenance::Scope;
use domain::order::{OrderError, OrderStatus};
use domain::{Money, UserId};
use projections::OrderView;

use super::AppState;
use super::error::FormattedError;
use super::principal::limit;
use crate::identity::{AuthError, Caller, Via};
use crate::orders::{NewOrder, OrderFailure};
use crate::service::ServiceError;
use crate::sms_activate as protocol;

/// A protocol answer: the text, and the HTTP status (200 except for our own faults and limits).
struct Answer(StatusCode, String);

impl Answer {
    fn ok(text: impl Into<String>) -> Answer {
        Answer(StatusCode::OK, text.into())
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.0, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], self.1).into_response();
        // The protocol's own text is what its clients read, errors included.
        response.extensions_mut().insert(FormattedError);
        response
    }
}

type Params = HashMap<String, String>;

fn params(query: Option<String>, body: &[u8]) -> Params {
    let mut params: Params = serde_urlencoded::from_bytes(body).unwrap_or_default();
    if let Some(query) = query {
        let from_query: Vec<(String, String)> = serde_urlencoded::from_str(&query).unwrap_or_default();
        params.extend(from_query);
    }
    params
}

#[utoipa::path(
    get,
    path = "/stubs/handler_api.php",
    tag = "sms-activate",
    summary = "SMS-Activate-compatible API (plain text answers; see docs/API.md)",
    params(
        ("api_key" = String, Query, description = "One of the caller's API keys"),
        ("action" = String, Query, description = "getBalance, getNumber, getNumberV2, getStatus, setStatus, getPrices, getNumbersStatus"),
        ("service" = Option<String>, Query, description = "Service code, e.g. tg"),
        ("country" = Option<String>, Query, description = "SMS-Activate country id, e.g. 16"),
        ("maxPrice" = Option<String>, Query, description = "Most to pay for getNumber"),
        ("id" = Option<i64>, Query, description = "Activation id"),
        ("status" = Option<i64>, Query, description = "setStatus: 1 ready, 3 another SMS, 6 finish, 8 cancel"),
    ),
    responses((status = 200, description = "ACCESS_BALANCE:12.34, ACCESS_NUMBER:<id>:<phone>, STATUS_OK:<code>, BAD_KEY, ...", body = String, content_type = "text/plain"))
)]
pub async fn handler_get(state: State<Arc<AppState>>, caller: Caller, RawQuery(query): RawQuery) -> Response {
    handle(state, caller, params(query, &[])).await.into_response()
}

#[utoipa::path(
    post,
    path = "/stubs/handler_api.php",
    tag = "sms-activate",
    summary = "The same, with parameters in the query or an application/x-www-form-urlencoded body",
    responses((status = 200, description = "as for GET", body = String, content_type = "text/plain"))
)]
pub async fn handler_post(
    state: State<Arc<AppState>>,
    caller: Caller,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    handle(state, caller, params(query, &body)).await.into_response()
}

async fn handle(State(state): State<Arc<AppState>>, caller: Caller, params: Params) -> Answer {
    let Some(key) = params.get("api_key").filter(|k| !k.is_empty()) else { return Answer::ok("BAD_KEY") };
    let principal = match state.identity.authenticate_api_key(key).await {
        Ok(principal) => principal,
        Err(AuthError::Store(error)) => return fault(error),
        Err(_) => return Answer::ok("BAD_KEY"),
    };
    let quota_key = match principal.via {
        Via::ApiKey(id) => format!("key:{id}"),
        Via::Session(_) => format!("user:{}", principal.user_id),
    };
    if limit(&state, &state.quotas.api, &quota_key).await.is_err() {
        return Answer(StatusCode::TOO_MANY_REQUESTS, "TOO_MANY_REQUESTS".into());
    }
    if state.maintenance.check(&Scope::Master).await.map(|open| open.is_err()).unwrap_or(true) {
        return Answer(StatusCode::SERVICE_UNAVAILABLE, "MAINTENANCE".into());
    }
    let user = principal.user_id;
    let metadata = caller.metadata(Some(user));
    let action = params.get("action").map(String::as_str).unwrap_or_default();
    let result = match action {
        "getBalance" => get_balance(&state, user).await,
        "getNumber" | "getNumberV2" => get_number(&state, user, &params, metadata, action == "getNumberV2").await,
        "getStatus" => get_status(&state, user, &params, metadata).await,
        "setStatus" => set_status(&state, user, &params, metadata).await,
        "getPrices" => get_prices(&state, &params).await,
        "getNumbersStatus" => get_numbers_status(&state, &params).await,
        _ => Ok(Answer::ok("BAD_ACTION")),
    };
    result.unwrap_or_else(|answer| answer)
}

/// Our fault: logged, and the protocol's generic server error.
fn fault(error: impl std::fmt::Display) -> Answer {
    tracing::error!(%error, "sms_activate.fault");
    Answer(StatusCode::INTERNAL_SERVER_ERROR, "ERROR_SQL".into())
}

async fn get_balance(state: &AppState, user: UserId) -> Result<Answer, Answer> {
    let balance = crate::read::balance(&state.store, user, state.currencies[0]).await.map_err(fault)?;
    Ok(Answer::ok(format!("ACCESS_BALANCE:{}", protocol::balance(balance.available))))
}

fn service_param(params: &Params) -> Result<ServiceCode, Answer> {
    params.get("service").and_then(|s| ServiceCode::parse(s.trim()).ok()).ok_or(Answer::ok("BAD_SERVICE"))
}

fn country_param(params: &Params) -> Result<Option<CountryCode>, Answer> {
    match params.get("country").filter(|c| !c.trim().is_empty()) {
        None => Ok(None),
        Some(id) => protocol::country(id).map(Some).ok_or(Answer::ok("BAD_COUNTRY")),
    }
}

async fn get_number(
    state: &AppState,
    user: UserId,
    params: &Params,
    metadata: crate::store::Metadata,
    v2: bool,
) -> Result<Answer, Answer> {
    let service = service_param(params)?;
    // The protocol's default country is 0.
    let country = country_param(params)?.unwrap_or_else(|| protocol::country("0").expect("country 0 is known"));
    let currency = state.currencies[0];
    let max_price = match params.get("maxPrice").filter(|p| !p.trim().is_empty()) {
        None => None,
        Some(text) => Some(Money::parse(text.trim(), currency.as_str()).map_err(|_| Answer::ok("WRONG_MAX_PRICE"))?),
    };
    let paused = |scope| async move { state.maintenance.check(&scope).await.map(|open| open.is_err()).unwrap_or(true) };
    if paused(Scope::Server).await || paused(Scope::Service(service.clone())).await {
        return Err(Answer(StatusCode::SERVICE_UNAVAILABLE, "MAINTENANCE".into()));
    }
    let pricing = state.pricing.state().await.map_err(fault)?;
    let request = NewOrder { user, service, country, max_price, key: None };
    let view = match state.orders.place(request, &pricing, metadata).await {
        Ok(view) => view,
        Err(OrderFailure::NoBalance { .. }) => return Ok(Answer::ok("NO_BALANCE")),
        Err(OrderFailure::UnknownService(_)) => return Ok(Answer::ok("BAD_SERVICE")),
        Err(OrderFailure::NoNumbers { cheapest: Some(cheapest), .. }) if max_price.is_some() => {
            return Ok(Answer::ok(format!("WRONG_MAX_PRICE:{}", protocol::amount(cheapest))));
        }
        Err(OrderFailure::NoNumbers { .. } | OrderFailure::ProviderUnavailable(_)) => {
            return Ok(Answer::ok("NO_NUMBERS"));
        }
        Err(other) => return Err(fault(other)),
    };
    let phone = view.phone.as_ref().map(protocol::phone).unwrap_or_default();
    if !v2 {
        return Ok(Answer::ok(format!("ACCESS_NUMBER:{}:{phone}", view.serial)));
    }
    // Written by hand: the cost is an exact decimal, and the protocol has it as a JSON number.
    let country_id = protocol::country_id(&view.country).map(|id| id.to_string()).unwrap_or_default();
    Ok(Answer::ok(format!(
        r#"{{"activationId":{},"phoneNumber":"{phone}","activationCost":{},"countryCode":"{country_id}","canGetAnotherSms":true,"activationTime":"{}","activationOperator":"any"}}"#,
        view.serial,
        protocol::amount(view.price),
        protocol::time(view.placed_at),
    )))
}

/// The caller's order named by the `id` parameter.
async fn activation(state: &AppState, user: UserId, params: &Params) -> Result<OrderView, Answer> {
    let serial: i64 = params.get("id").and_then(|id| id.trim().parse().ok()).ok_or(Answer::ok("NO_ACTIVATION"))?;
    match state.orders.by_serial(serial).await.map_err(fault)? {
        Some(view) if view.user_id == user => Ok(view),
        _ => Err(Answer::ok("NO_ACTIVATION")),
    }
}

async fn get_status(
    state: &AppState,
    user: UserId,
    params: &Params,
    metadata: crate::store::Metadata,
) -> Result<Answer, Answer> {
    let view = activation(state, user, params).await?;
    let view = state.orders.refresh_briefly(view, &metadata).await.map_err(fault)?;
    let code = view.code().unwrap_or_default();
    Ok(Answer::ok(match view.status {
        OrderStatus::Placed | OrderStatus::NumberAssigned => "STATUS_WAIT_CODE".to_owned(),
        OrderStatus::SmsReceived if view.awaiting_another_sms => format!("STATUS_WAIT_RETRY:{code}"),
        OrderStatus::SmsReceived | OrderStatus::Finished => format!("STATUS_OK:{code}"),
        OrderStatus::Cancelled | OrderStatus::Expired | OrderStatus::ProviderFailed => "STATUS_CANCEL".to_owned(),
    }))
}

async fn set_status(
    state: &AppState,
    user: UserId,
    params: &Params,
    metadata: crate::store::Metadata,
) -> Result<Answer, Answer> {
    let view = activation(state, user, params).await?;
    let orders = &state.orders;
    let (done, answer) = match params.get("status").map(|s| s.trim()) {
        Some("1") if !view.status.is_closed() => return Ok(Answer::ok("ACCESS_READY")),
        Some("3") => (orders.another_sms(user, view.order_id, metadata).await, "ACCESS_RETRY_GET"),
        Some("6") => (orders.finish(user, view.order_id, metadata).await, "ACCESS_ACTIVATION"),
        Some("8") => (orders.cancel(user, view.order_id, metadata).await, "ACCESS_CANCEL"),
        _ => return Ok(Answer::ok("BAD_STATUS")),
    };
    match done {
        Ok(_) => Ok(Answer::ok(answer)),
        Err(OrderFailure::Refused(ServiceError::Order(OrderError::CancelTooEarly { .. }))) => {
            Ok(Answer::ok("EARLY_CANCEL_DENIED"))
        }
        Err(OrderFailure::Refused(_) | OrderFailure::NotFound) => Ok(Answer::ok("BAD_STATUS")),
        Err(OrderFailure::ProviderUnavailable(_)) => Ok(Answer(StatusCode::SERVICE_UNAVAILABLE, "ERROR_SQL".into())),
        Err(other) => Err(fault(other)),
    }
}

async fn price_lines(state: &AppState, params: &Params) -> Result<Vec<crate::catalog::PriceLine>, Answer> {
    let service = match params.get("service").filter(|s| !s.trim().is_empty()) {
        None => None,
        Some(_) => Some(service_param(params)?),
    };
    let country = country_param(params)?;
    let synced = state.orders.catalog.current().await;
    let pricing = state.pricing.state().await.map_err(fault)?;
    Ok(crate::catalog::price_list(&synced.catalog, &pricing, service.as_ref(), country.as_ref()))
}

async fn get_prices(state: &AppState, params: &Params) -> Result<Answer, Answer> {
    let mut table: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for line in price_lines(state, params).await? {
        let Some(country) = protocol::country_id(&line.country) else { continue };
        // Service codes are [a-z0-9_] and amounts decimal literals: nothing to escape.
        table.entry(country).or_default().push(format!(
            r#""{}":{{"cost":{},"count":{}}}"#,
            line.service,
            protocol::amount(line.price),
            line.available
        ));
    }
    let countries: Vec<String> =
        table.into_iter().map(|(country, services)| format!(r#""{country}":{{{}}}"#, services.join(","))).collect();
    Ok(Answer::ok(format!("{{{}}}", countries.join(","))))
}

async fn get_numbers_status(state: &AppState, params: &Params) -> Result<Answer, Answer> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in price_lines(state, params).await? {
        *counts.entry(format!("{}_0", line.service)).or_default() += line.available;
    }
    Ok(Answer::ok(serde_json::to_string(&counts).expect("a map of counts serializes")))
}
