//! `/api/v1/payments/*` and `/api/v1/payment/methods`: deposits (Stripe, the sandbox in
//! development), Stripe's webhook, withdrawals and the payments history.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use domain::maintenance::Scope;
use domain::{DepositId, PositiveMoney};
use projections::DepositView;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::auth::ensure_open;
use super::bodies::{Envelope, ErrorBody, Message, UserRefusals};
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::orders::{field_error, idempotency_key};
use super::principal::{Auth, limit};
use crate::identity::{Caller, rfc3339};
use crate::payments::{PaymentError, WebhookError, WebhookOutcome};

/// History lines per page at most.
const PAGE_SIZE_MAX: i64 = 100;

#[derive(Deserialize, ToSchema)]
pub struct DepositRequest {
    /// Decimal string, e.g. `"10.00"`.
    #[schema(example = "10.00")]
    pub amount: String,
    /// Default: the first of `CURRENCIES`.
    pub currency: Option<String>,
    /// `stripe` (default) or `sandbox` (development only).
    pub method: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DepositBody {
    #[schema(format = Uuid)]
    pub id: String,
    /// stripe, upi, tron or sandbox.
    pub method: String,
    /// pending, succeeded, failed or rejected.
    pub status: String,
    pub amount: String,
    pub currency: String,
    /// What was credited, once it succeeded.
    pub received: Option<String>,
    /// Refunded since, in all.
    pub refunded: String,
    /// Disputed since, in all.
    pub disputed: String,
    /// The payment intent, UPI reference or TRON transaction hash.
    pub reference: Option<String>,
    /// Why it failed or was rejected.
    pub reason: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<&DepositView> for DepositBody {
    fn from(view: &DepositView) -> Self {
        DepositBody {
            id: view.deposit_id.to_string(),
            method: view.method.as_str().into(),
            status: projections::deposit_status_text(view.status).into(),
            amount: view.amount.amount.to_string(),
            currency: view.amount.currency.to_string(),
            received: view.received.map(|r| r.amount.to_string()),
            refunded: view.refunded.to_string(),
            disputed: view.disputed.to_string(),
            reference: view.reference.clone(),
            reason: view.reason.clone(),
            created_at: rfc3339(view.created_at),
            updated_at: rfc3339(view.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DepositData {
    pub deposit: DepositBody,
    /// Stripe: confirm the payment with this in Stripe.js; the balance is credited when
    /// Stripe tells us it succeeded.
    pub client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MethodsData {
    /// `stripe`, `upi`, `tron`, `sandbox`.
    pub methods: Vec<String>,
    pub min_amount: String,
    pub max_amount: String,
    pub currencies: Vec<String>,
    /// The UPI id to pay to, when UPI is enabled.
    pub upi_vpa: Option<String>,
    /// The TRON address to send USDT (TRC-20) to, when TRON is enabled.
    pub tron_address: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct WithdrawRequest {
    #[schema(example = "5.00")]
    pub amount: String,
    pub currency: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WithdrawalData {
    #[schema(format = Uuid)]
    pub withdrawal_id: String,
    pub status: String,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct PageQuery {
    /// From 1.
    pub page: Option<i64>,
    /// 1 to 100, default 20.
    pub per_page: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryLine {
    /// `wallet.deposited`, `wallet.deposit_reversed`, `wallet.withdrawal_requested`,
    /// `wallet.withdrawal_rejected`, `wallet.adjusted` or `wallet.hold_released` (an order
    /// refunded).
    pub kind: String,
    /// What it belongs to: `deposit:<id>`, `withdrawal:<id>`, `adjustment:<id>`, `order:<id>`.
    pub reference: Option<String>,
    pub currency: String,
    pub available_change: String,
    pub held_change: String,
    pub available_after: String,
    pub position: i64,
    #[schema(format = DateTime)]
    pub at: String,
}

impl From<projections::StatementLine> for HistoryLine {
    fn from(line: projections::StatementLine) -> Self {
        HistoryLine {
            kind: line.event_type,
            reference: line.reference,
            currency: line.currency.to_string(),
            available_change: line.available_change.to_string(),
            held_change: line.held_change.to_string(),
            available_after: line.available_after.to_string(),
            position: line.position,
            at: chrono::DateTime::from_timestamp_micros(line.recorded_at_micros).unwrap_or_default().to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    pub lines: Vec<HistoryLine>,
    pub page: i64,
    pub per_page: i64,
    pub total: i64,
}

impl From<PaymentError> for ApiError {
    fn from(error: PaymentError) -> Self {
        let message = error.to_string();
        match error {
            PaymentError::OutOfLimits { min, max } => ApiError::unprocessable(message)
                .with_details(json!({"min_amount": min.to_string(), "max_amount": max.to_string()})),
            PaymentError::MethodDisabled(_) | PaymentError::Currency(_) => ApiError::unprocessable(message),
            PaymentError::Stripe(crate::payments::stripe::StripeError::Unavailable(_)) => {
                ApiError::unavailable("the card processor is unavailable; retry shortly", 5)
            }
            PaymentError::Tron(_) => ApiError::unavailable("the TRON network API is unavailable; retry shortly", 5),
            PaymentError::Stripe(_) => ApiError::unprocessable(message),
            PaymentError::Ledger(error) => error.into(),
        }
    }
}

fn amount_of(state: &AppState, amount: &str, currency: Option<&str>) -> Result<PositiveMoney, ApiError> {
    let currency = currency.map(str::trim).unwrap_or(state.currencies[0].as_str()).to_ascii_uppercase();
    PositiveMoney::parse(amount.trim(), &currency).map_err(|e| field_error("amount", e))
}

#[utoipa::path(
    get,
    path = "/api/v1/payment/methods",
    tag = "payments",
    summary = "The deposit methods enabled, with the amount limits",
    responses((status = 200, body = Envelope<MethodsData>))
)]
pub async fn methods(State(state): State<Arc<AppState>>) -> ApiOk<MethodsData> {
    let (min, max) = state.payments.limits();
    let (upi_vpa, tron_address) = state.payments.pay_to();
    ApiOk(MethodsData {
        upi_vpa: upi_vpa.map(str::to_owned),
        tron_address: tron_address.map(str::to_owned),
        methods: state.payments.methods().into_iter().map(str::to_owned).collect(),
        min_amount: min.to_string(),
        max_amount: max.to_string(),
        currencies: state.currencies.iter().map(ToString::to_string).collect(),
    })
}

#[utoipa::path(
    post,
    path = "/api/v1/payments/deposit",
    tag = "payments",
    summary = "Start a deposit: Stripe returns a client secret; the sandbox (development) credits at once",
    request_body = DepositRequest,
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Sandbox: makes a retry credit once")),
    responses(
        (status = 201, body = Envelope<DepositData>),
        (status = 400, body = ErrorBody),
        (status = 422, description = "outside the limits, method not enabled", body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn deposit(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DepositRequest>,
) -> Result<ApiCreated<DepositData>, ApiError> {
    ensure_open(&state, Scope::Recharge).await?;
    limit(&state, &state.quotas.recharge, &format!("user:{}", principal.user_id)).await?;
    let amount = amount_of(&state, &body.amount, body.currency.as_deref())?;
    let metadata = caller.metadata(Some(principal.user_id));
    let (deposit_id, client_secret) = match body.method.as_deref().map(str::trim).unwrap_or("stripe") {
        "stripe" => {
            let started = state.payments.start_stripe_deposit(principal.user_id, amount, metadata).await?;
            (started.deposit_id, Some(started.client_secret))
        }
        "sandbox" => {
            let key = idempotency_key(&headers)?;
            (state.payments.sandbox_deposit(principal.user_id, amount, key, metadata).await?, None)
        }
        other => return Err(field_error("method", format!("{other:?} is not stripe or sandbox"))),
    };
    let deposit = state.payments.deposit_view(None, deposit_id).await?;
    let deposit =
        deposit.as_ref().map(DepositBody::from).ok_or_else(|| ApiError::internal("a deposit just made is missing"))?;
    Ok(ApiCreated(DepositData { deposit, client_secret }))
}

#[utoipa::path(
    get,
    path = "/api/v1/payments/deposits/{id}",
    tag = "payments",
    summary = "One of the caller's deposits",
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    params(("id" = String, Path, format = Uuid, description = "deposit id")),
    responses(
        (status = 200, body = Envelope<DepositData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn get_deposit(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiPath(deposit_id): ApiPath<DepositId>,
) -> Result<ApiOk<DepositData>, ApiError> {
    own_deposit(&state, principal.user_id, deposit_id).await
}

/// One of the user's deposits as its owner sees it; someone else's is a 404 like an unknown one.
pub(super) async fn own_deposit(
    state: &AppState,
    user: domain::UserId,
    deposit_id: DepositId,
) -> Result<ApiOk<DepositData>, ApiError> {
    let deposit = state.payments.deposit_view(Some(user), deposit_id).await?;
    let deposit = deposit.as_ref().map(DepositBody::from).ok_or_else(|| ApiError::not_found("no such deposit"))?;
    Ok(ApiOk(DepositData { deposit, client_secret: None }))
}

#[utoipa::path(
    post,
    path = "/api/v1/payments/webhook",
    tag = "payments",
    summary = "Stripe's webhook, signed with Stripe-Signature; checked before anything else",
    description = "payment_intent.succeeded credits once; payment_failed/canceled record a failure; \
                   charge.refunded and charge.dispute.created take the money back (into debt if spent). \
                   A refund or dispute of a deposit not yet credited is a 409, so Stripe sends it again.",
    params(("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<hex HMAC-SHA256>")),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, description = "missing, bad or stale signature; malformed event", body = ErrorBody),
        (status = 404, description = "Stripe is not configured", body = ErrorBody),
        (status = 409, description = "arrived before the success it refers to; Stripe retries", body = ErrorBody),
    )
)]
pub async fn stripe_webhook(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ApiOk<Message>, ApiError> {
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    let now_s = chrono::Utc::now().timestamp();
    match state.payments.stripe_webhook(signature, &body, now_s, caller.metadata(None)).await {
        Ok(WebhookOutcome::Recorded(what)) => Ok(ApiOk(Message::new(what))),
        Ok(WebhookOutcome::Ignored(why)) => Ok(ApiOk(Message::new(format!("ignored: {why}")))),
        Err(WebhookError::Disabled) => Err(ApiError::not_found("Stripe is not configured")),
        Err(error @ (WebhookError::Signature(_) | WebhookError::Malformed(_))) => {
            metrics::counter!("payments_webhook_refused_total").increment(1);
            state.system_log.record("webhook", "stripe", "warn", format!("refused: {error}"));
            Err(ApiError::bad_request(error.to_string()))
        }
        Err(WebhookError::NotYet(why)) => Err(ApiError::conflict(why)),
        Err(WebhookError::Ledger(error)) => Err(error.into()),
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/payments/withdraw",
    tag = "payments",
    summary = "Ask for a payout: the amount is held until an admin pays or rejects it",
    request_body = WithdrawRequest,
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry return the same withdrawal")),
    responses(
        (status = 201, body = Envelope<WithdrawalData>),
        (status = 400, body = ErrorBody),
        (status = 422, description = "insufficient funds", body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn withdraw(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<WithdrawRequest>,
) -> Result<ApiCreated<WithdrawalData>, ApiError> {
    ensure_open(&state, Scope::Recharge).await?;
    let amount = amount_of(&state, &body.amount, body.currency.as_deref())?;
    let key = idempotency_key(&headers)?;
    let metadata = caller.metadata(Some(principal.user_id));
    let id = state.payments.request_withdrawal(principal.user_id, amount, key, metadata).await?;
    Ok(ApiCreated(WithdrawalData { withdrawal_id: id.to_string(), status: "pending".into() }))
}

#[utoipa::path(
    get,
    path = "/api/v1/payments/history",
    tag = "payments",
    summary = "Deposits, reversals, withdrawals, admin credits and order refunds, newest first",
    params(PageQuery),
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses(
        (status = 200, body = Envelope<HistoryPage>),
        (status = 400, body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn history(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<ApiOk<HistoryPage>, ApiError> {
    let (page, per_page) = (query.page.unwrap_or(1), query.per_page.unwrap_or(20));
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&per_page) {
        return Err(ApiError::bad_request(format!("page starts at 1; per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    let offset = (page - 1).saturating_mul(per_page);
    let (lines, total) = crate::read::history(&state.store, principal.user_id, (per_page, offset)).await?;
    let lines = lines.into_iter().map(HistoryLine::from).collect();
    Ok(ApiOk(HistoryPage { lines, page, per_page, total }))
}
