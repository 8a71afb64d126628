//! `/api/v1/recharge/*`: UPI and TRON recharges the user names by their transfer reference,
//! and `/api/v1/admin/deposits/*`: the admins' queue of deposits to confirm or reject.

use std::sync::Arc;

use axum::extract::State;
use domain::deposit::{DepositMethod, DepositStatus, Reference};
use domain::maintenance::Scope;
use domain::{DepositId, PositiveMoney};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::ensure_open;
use super::bodies::{AdminRefusals, Envelope, ErrorBody, Message, UserRefusals};
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::{ApiJson, ApiPath, ApiQuery};
use super::orders::field_error;
use super::payments::{DepositBody, DepositData, PageQuery};
use super::principal::{Admin, Auth, limit};
use crate::identity::Caller;
use crate::payments::ChainCheck;
use crate::projection::deposits as deposits_view;
use crate::search::Total;

/// Deposits per page at most.
const PAGE_SIZE_MAX: i64 = 100;

#[derive(Deserialize, ToSchema)]
pub struct RechargeRequest {
    /// `upi` or `tron`.
    pub method: String,
    #[schema(example = "25.00")]
    pub amount: String,
    pub currency: Option<String>,
    /// The UPI transaction reference (UTR) or the TRON transaction hash.
    pub reference: String,
}

#[derive(Serialize, ToSchema)]
pub struct DepositsPage {
    pub deposits: Vec<DepositBody>,
    pub page: i64,
    pub per_page: i64,
    #[serde(flatten)]
    pub total: Total,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyData {
    pub deposit: DepositBody,
    /// TRON: `credited`, `not_found` (not confirmed yet: ask again later) or `mismatch`;
    /// UPI: `waiting_for_admin` while pending.
    pub check: String,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct AdminDepositQuery {
    /// pending, succeeded, failed or rejected.
    pub status: Option<String>,
    /// stripe, upi, tron or sandbox.
    pub method: Option<String>,
    pub page: Option<i64>,
    pub per_page: Option<i64>,
}

#[derive(Deserialize, ToSchema)]
pub struct RejectRequest {
    pub reason: String,
}

fn paging(page: Option<i64>, per_page: Option<i64>) -> Result<(i64, i64), ApiError> {
    let (page, per_page) = (page.unwrap_or(1), per_page.unwrap_or(20));
    if page < 1 || !(1..=PAGE_SIZE_MAX).contains(&per_page) {
        return Err(ApiError::bad_request(format!("page starts at 1; per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    Ok((page, per_page))
}

async fn page_of(
    state: &AppState,
    user: Option<domain::UserId>,
    status: Option<DepositStatus>,
    method: Option<DepositMethod>,
    (page, per_page): (i64, i64),
) -> Result<DepositsPage, ApiError> {
    match user {
        Some(user) => crate::read::wait_for_user(&state.store, deposits_view::NAME, user).await?,
        None => crate::read::wait_for_view(&state.store, deposits_view::NAME).await?,
    }
    let offset = (page - 1).saturating_mul(per_page);
    let found = deposits_view::list(state.store.engine(), user, status, method, offset, per_page)
        .await
        .map_err(ApiError::internal)?;
    let deposits = found.deposits.iter().map(DepositBody::from).collect();
    Ok(DepositsPage { deposits, page, per_page, total: found.total })
}

#[utoipa::path(
    post,
    path = "/api/v1/recharge/initiate",
    tag = "payments",
    summary = "Declare a UPI or TRON transfer: TRON is credited once the chain confirms it, UPI once an admin does",
    request_body = RechargeRequest,
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses(
        (status = 201, body = Envelope<DepositData>),
        (status = 400, body = ErrorBody),
        (status = 409, description = "this reference was already used", body = ErrorBody),
        (status = 422, description = "outside the limits, method not enabled", body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn initiate(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiJson(body): ApiJson<RechargeRequest>,
) -> Result<ApiCreated<DepositData>, ApiError> {
    ensure_open(&state, Scope::Recharge).await?;
    limit(&state, &state.quotas.recharge, &format!("user:{}", principal.user_id)).await?;
    let method = match DepositMethod::parse(body.method.trim()) {
        Some(method @ (DepositMethod::Upi | DepositMethod::Tron)) => method,
        _ => return Err(field_error("method", format!("{:?} is not upi or tron", body.method))),
    };
    let currency = body.currency.as_deref().map(str::trim).unwrap_or(state.currencies[0].as_str()).to_ascii_uppercase();
    let amount = PositiveMoney::parse(body.amount.trim(), &currency).map_err(|e| field_error("amount", e))?;
    let reference = Reference::parse(body.reference.trim()).map_err(|e| field_error("reference", e))?;
    let metadata = caller.metadata(Some(principal.user_id));
    let id = state.payments.start_recharge(principal.user_id, method, amount, reference, metadata).await?;
    let deposit = state.payments.deposit_view(None, id).await?;
    let deposit =
        deposit.as_ref().map(DepositBody::from).ok_or_else(|| ApiError::internal("a recharge just made is missing"))?;
    Ok(ApiCreated(DepositData { deposit, client_secret: None }))
}

#[utoipa::path(
    get,
    path = "/api/v1/recharge/history",
    tag = "payments",
    summary = "The caller's deposits of every method, newest first",
    params(PageQuery),
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    responses((status = 200, body = Envelope<DepositsPage>), (status = 400, body = ErrorBody), UserRefusals)
)]
pub async fn history(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<ApiOk<DepositsPage>, ApiError> {
    let paging = paging(query.page, query.per_page)?;
    Ok(ApiOk(page_of(&state, Some(principal.user_id), None, None, paging).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/recharge/status/{id}",
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
pub async fn status(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    ApiPath(deposit_id): ApiPath<DepositId>,
) -> Result<ApiOk<DepositData>, ApiError> {
    super::payments::own_deposit(&state, principal.user_id, deposit_id).await
}

#[utoipa::path(
    get,
    path = "/api/v1/recharge/verify/{id}",
    tag = "payments",
    summary = "Check a TRON recharge against the chain now (credits it once confirmed); UPI waits for an admin",
    security(("bearer" = []), ("api_key" = []), ("api_key_query" = [])),
    params(("id" = String, Path, format = Uuid, description = "deposit id")),
    responses(
        (status = 200, body = Envelope<VerifyData>),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        UserRefusals,
    )
)]
pub async fn verify(
    State(state): State<Arc<AppState>>,
    Auth(principal): Auth,
    caller: Caller,
    ApiPath(deposit_id): ApiPath<DepositId>,
) -> Result<ApiOk<VerifyData>, ApiError> {
    let view = state.payments.deposit_view(Some(principal.user_id), deposit_id).await?;
    let view = view.ok_or_else(|| ApiError::not_found("no such deposit"))?;
    let check = match (view.method, view.status) {
        (DepositMethod::Tron, _) => {
            match state.payments.check_chain(deposit_id, caller.metadata(Some(principal.user_id))).await? {
                ChainCheck::Credited => "credited",
                ChainCheck::NotFound => "not_found",
                ChainCheck::Mismatch(_) => "mismatch",
            }
        }
        (_, DepositStatus::Pending) => "waiting_for_admin",
        (_, status) => projections::deposit_status_text(status),
    };
    let view = state.payments.deposit_view(None, deposit_id).await?.unwrap_or(view);
    Ok(ApiOk(VerifyData { deposit: DepositBody::from(&view), check: check.into() }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/deposits",
    tag = "admin",
    summary = "Deposits of every user, newest first, by status and method (the UPI queue: status=pending&method=upi)",
    params(AdminDepositQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<DepositsPage>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn admin_list(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<AdminDepositQuery>,
) -> Result<ApiOk<DepositsPage>, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(
            [DepositStatus::Pending, DepositStatus::Succeeded, DepositStatus::Failed, DepositStatus::Rejected]
                .into_iter()
                .find(|status| projections::deposit_status_text(*status) == text)
                .ok_or_else(|| field_error("status", "use pending, succeeded, failed or rejected"))?,
        ),
    };
    let method = match query.method.as_deref() {
        None => None,
        Some(text) => {
            Some(DepositMethod::parse(text).ok_or_else(|| field_error("method", "use stripe, upi, tron or sandbox"))?)
        }
    };
    let paging = paging(query.page, query.per_page)?;
    Ok(ApiOk(page_of(&state, None, status, method, paging).await?))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/deposits/{id}/approve",
    tag = "admin",
    summary = "Confirm a UPI transfer arrived: the declared amount is credited",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "deposit id")),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, body = ErrorBody),
        (status = 422, description = "not a pending UPI deposit", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn approve(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(deposit_id): ApiPath<DepositId>,
) -> Result<ApiOk<Message>, ApiError> {
    state.payments.approve_deposit(deposit_id, caller.metadata(Some(admin.user_id))).await?;
    Ok(ApiOk(Message::new("credited")))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/deposits/{id}/reject",
    tag = "admin",
    summary = "Reject a pending UPI or TRON recharge with a reason: nothing is credited",
    request_body = RejectRequest,
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid, description = "deposit id")),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 400, body = ErrorBody),
        (status = 422, description = "not pending, or no reason", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn reject(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiPath(deposit_id): ApiPath<DepositId>,
    ApiJson(body): ApiJson<RejectRequest>,
) -> Result<ApiOk<Message>, ApiError> {
    let metadata = caller.metadata(Some(admin.user_id));
    state.payments.reject_deposit(deposit_id, admin.user_id, body.reason, metadata).await?;
    Ok(ApiOk(Message::new("rejected")))
}
