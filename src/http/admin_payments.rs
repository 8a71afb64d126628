//! Admin money routes: a user's wallet (balance, debt, pending withdrawals), credits and
//! debits with a reason, and paying or rejecting withdrawals. Admins with a second factor only.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use domain::{Money, UserId, WithdrawalId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody, Message};
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::{ApiJson, ApiPath};
use super::orders::{field_error, idempotency_key};
use super::principal::Admin;
use crate::identity::Caller;
use crate::payments::WithdrawalDecision;

#[derive(Deserialize, ToSchema)]
pub struct AdjustRequest {
    /// Positive credits, negative debits; a decimal string.
    #[schema(example = "-2.50")]
    pub amount: String,
    pub currency: Option<String>,
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct AdjustmentData {
    #[schema(format = Uuid)]
    pub adjustment_id: String,
}

#[derive(Deserialize, ToSchema)]
pub struct WithdrawalDecisionRequest {
    pub currency: Option<String>,
    /// Required to reject.
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PendingWithdrawal {
    #[schema(format = Uuid)]
    pub withdrawal_id: String,
    pub amount: String,
}

#[derive(Serialize, ToSchema)]
pub struct WalletBody {
    pub currency: String,
    pub available: String,
    pub held: String,
    /// Owed after a chargeback larger than the balance; deposits repay it first.
    pub debt: String,
    pub pending_withdrawals: Vec<PendingWithdrawal>,
}

#[derive(Serialize, ToSchema)]
pub struct WalletsData {
    pub wallets: Vec<WalletBody>,
}

/// A user's wallet in every currency kept.
pub(super) async fn wallet_bodies(state: &AppState, user_id: UserId) -> Result<Vec<WalletBody>, ApiError> {
    let mut wallets = Vec::new();
    for currency in &state.currencies {
        let wallet = state.payments.ledger().wallet(user_id, *currency).await?.state;
        wallets.push(WalletBody {
            currency: currency.to_string(),
            available: wallet.available.to_string(),
            held: wallet.held.to_string(),
            debt: wallet.debt.to_string(),
            pending_withdrawals: wallet
                .pending_withdrawals
                .iter()
                .map(|(id, amount)| PendingWithdrawal { withdrawal_id: id.to_string(), amount: amount.to_string() })
                .collect(),
        });
    }
    Ok(wallets)
}

fn currency_of(state: &AppState, currency: Option<&str>) -> Result<domain::Currency, ApiError> {
    let code = currency.map(str::trim).unwrap_or(state.currencies[0].as_str()).to_ascii_uppercase();
    domain::Currency::parse(&code).map_err(|e| field_error("currency", e))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}/wallets",
    tag = "admin",
    summary = "A user's wallets: balance, debt and pending withdrawals per currency",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "user id")),
    responses((status = 200, body = Envelope<WalletsData>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn wallets(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiPath(user_id): ApiPath<UserId>,
) -> Result<ApiOk<WalletsData>, ApiError> {
    let wallets = wallet_bodies(&state, user_id).await?;
    Ok(ApiOk(WalletsData { wallets }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/adjust",
    tag = "admin",
    summary = "Credit (positive) or debit (negative) a user's balance, with a reason",
    request_body = AdjustRequest,
    security(("bearer" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "user id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes a retry apply once"),
    ),
    responses(
        (status = 201, body = Envelope<AdjustmentData>),
        (status = 400, body = ErrorBody),
        (status = 422, description = "zero, no reason, or a debit beyond the available balance", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn adjust(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(user_id): ApiPath<UserId>,
    ApiJson(body): ApiJson<AdjustRequest>,
) -> Result<ApiCreated<AdjustmentData>, ApiError> {
    let currency = currency_of(&state, body.currency.as_deref())?;
    let amount = Money::parse(body.amount.trim(), currency.as_str()).map_err(|e| field_error("amount", e))?;
    state.identity.user_view(user_id).await?;
    let key = idempotency_key(&headers)?;
    let metadata = caller.metadata(Some(admin.user_id));
    let id = state.payments.adjust(admin.user_id, user_id, amount, body.reason, key, metadata).await?;
    Ok(ApiCreated(AdjustmentData { adjustment_id: id.to_string() }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/withdrawals/{withdrawal_id}/pay",
    tag = "admin",
    summary = "Mark a pending withdrawal paid out",
    request_body = WithdrawalDecisionRequest,
    security(("bearer" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "user id"),
        ("withdrawal_id" = String, Path, format = Uuid, description = "withdrawal id"),
    ),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, body = ErrorBody),
        (status = 422, description = "not pending", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn pay_withdrawal(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath((user_id, withdrawal_id)): ApiPath<(UserId, WithdrawalId)>,
    ApiJson(body): ApiJson<WithdrawalDecisionRequest>,
) -> Result<ApiOk<Message>, ApiError> {
    decide(&state, &admin, &caller, (user_id, withdrawal_id), body.currency.as_deref(), WithdrawalDecision::Pay).await
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/users/{id}/withdrawals/{withdrawal_id}/reject",
    tag = "admin",
    summary = "Reject a pending withdrawal with a reason: the amount goes back to available",
    request_body = WithdrawalDecisionRequest,
    security(("bearer" = [])),
    params(
        ("id" = String, Path, format = Uuid, description = "user id"),
        ("withdrawal_id" = String, Path, format = Uuid, description = "withdrawal id"),
    ),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, body = ErrorBody),
        (status = 422, description = "not pending, or no reason", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn reject_withdrawal(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath((user_id, withdrawal_id)): ApiPath<(UserId, WithdrawalId)>,
    ApiJson(body): ApiJson<WithdrawalDecisionRequest>,
) -> Result<ApiOk<Message>, ApiError> {
    let reason = body.reason.ok_or_else(|| field_error("reason", "a reason is required to reject"))?;
    let decision = WithdrawalDecision::Reject(reason);
    decide(&state, &admin, &caller, (user_id, withdrawal_id), body.currency.as_deref(), decision).await
}

async fn decide(
    state: &AppState,
    admin: &crate::identity::Principal,
    caller: &Caller,
    (user_id, withdrawal_id): (UserId, WithdrawalId),
    currency: Option<&str>,
    decision: WithdrawalDecision,
) -> Result<ApiOk<Message>, ApiError> {
    let currency = currency_of(state, currency)?;
    let done = match decision {
        WithdrawalDecision::Pay => "paid",
        WithdrawalDecision::Reject(_) => "rejected",
    };
    let metadata = caller.metadata(Some(admin.user_id));
    state.payments.decide_withdrawal(user_id, currency, withdrawal_id, decision, metadata).await?;
    Ok(ApiOk(Message::new(done)))
}
