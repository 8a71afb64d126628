//! Audit and finance for admins: the auditor's replay (`/admin/ledger/verify`), balances and
//! the trial balance at a past position or instant, and streamed exports of the postings.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use domain::Account;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody};
use super::error::{ApiError, ApiOk};
use super::json::ApiQuery;
use super::orders::field_error;
use super::principal::Admin;
use crate::export::{Bound, Format};

#[derive(Serialize, ToSchema)]
pub struct ProblemBody {
    pub position: Option<i64>,
    pub what: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyReport {
    /// True when the hash chain, every aggregate, every wallet snapshot and every projection agree
    /// with the log.
    pub ok: bool,
    pub events: i64,
    pub streams: usize,
    pub ledger_events: u64,
    pub open_holds: usize,
    /// Wallet snapshots compared with the fold of their events.
    pub snapshots: usize,
    /// Sum of every posting per currency: zero in a sound ledger.
    pub trial_totals: BTreeMap<String, String>,
    /// Position each projection was compared up to.
    pub projections: BTreeMap<String, i64>,
    pub problems: Vec<ProblemBody>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct AtQuery {
    /// A log position, an RFC 3339 instant or a date (the log as it was then); now when omitted.
    pub at: Option<String>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct BalanceQuery {
    /// e.g. `user:<uuid>:available`, `revenue:margin`, `clearing:stripe`.
    pub account: String,
    /// A log position, an RFC 3339 instant or a date; now when omitted.
    pub at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AccountBalance {
    pub account: String,
    pub currency: String,
    pub balance: String,
}

#[derive(Serialize, ToSchema)]
pub struct BalancesAt {
    /// The last log position included.
    pub position: i64,
    pub balances: Vec<AccountBalance>,
    /// Per currency: zero in a sound ledger (trial balance only).
    pub totals: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct ExportQuery {
    /// A log position, an RFC 3339 instant or a date (inclusive); the start when omitted.
    pub from: Option<String>,
    /// A position (inclusive), an instant or a date (exclusive); the head when omitted.
    pub to: Option<String>,
    /// csv (default) or jsonl.
    pub format: Option<String>,
}

fn bound(field: &str, text: Option<&str>) -> Result<Option<Bound>, ApiError> {
    text.map(Bound::parse).transpose().map_err(|e| field_error(field, e))
}

/// The last position `at` names (the head when `None`).
async fn position_at(state: &AppState, at: Option<&str>) -> Result<i64, ApiError> {
    let at = bound("at", at)?;
    let (_, up_to) = crate::export::positions(&state.store, None, at).await.map_err(ApiError::internal)?;
    Ok(up_to)
}

fn balances_at(position: i64, balances: BTreeMap<(String, domain::Currency), rust_decimal::Decimal>) -> BalancesAt {
    let mut totals: BTreeMap<String, rust_decimal::Decimal> = BTreeMap::new();
    for ((_, currency), amount) in &balances {
        *totals.entry(currency.to_string()).or_default() += *amount;
    }
    BalancesAt {
        position,
        balances: balances
            .into_iter()
            .map(|((account, currency), balance)| AccountBalance {
                account,
                currency: currency.to_string(),
                balance: balance.to_string(),
            })
            .collect(),
        totals: totals.into_iter().map(|(currency, total)| (currency, total.to_string())).collect(),
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/ledger/verify",
    tag = "admin",
    summary = "The auditor's replay: hash chain, every aggregate re-folded, every projection compared",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<VerifyReport>), AdminRefusals)
)]
pub async fn verify(State(state): State<Arc<AppState>>, Admin(_): Admin) -> Result<ApiOk<VerifyReport>, ApiError> {
    let report = crate::verify::verify(&state.store).await.map_err(ApiError::internal)?;
    let mut projections: BTreeMap<String, i64> =
        report.projections.iter().map(|(name, position)| (name.to_string(), *position)).collect();
    projections.insert("orders".into(), report.orders_view);
    projections.insert("deposits".into(), report.deposits_view);
    projections.insert("analytics".into(), report.analytics_view);
    projections.insert("users_directory".into(), report.users_view);
    Ok(ApiOk(VerifyReport {
        ok: report.is_ok(),
        events: report.events,
        streams: report.streams,
        ledger_events: report.ledger_events,
        open_holds: report.open_holds,
        snapshots: report.snapshots,
        trial_totals: report.trial_totals.iter().map(|(c, t)| (c.to_string(), t.to_string())).collect(),
        projections,
        problems: report.problems.into_iter().map(|p| ProblemBody { position: p.position, what: p.what }).collect(),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/ledger/trial-balance",
    tag = "admin",
    summary = "Every account's balance, now or as it was at a position, instant or date, folded from the log",
    params(AtQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<BalancesAt>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn trial_balance(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<AtQuery>,
) -> Result<ApiOk<BalancesAt>, ApiError> {
    let position = position_at(&state, query.at.as_deref()).await?;
    let balances = crate::point_in_time::trial_balance(&state.store, position).await.map_err(ApiError::internal)?;
    Ok(ApiOk(balances_at(position, balances)))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/ledger/balance",
    tag = "admin",
    summary = "One account's balance, now or as it was at a position, instant or date",
    params(BalanceQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<BalancesAt>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn balance(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<BalanceQuery>,
) -> Result<ApiOk<BalancesAt>, ApiError> {
    let account: Account = query.account.trim().parse().map_err(|e| field_error("account", e))?;
    let position = position_at(&state, query.at.as_deref()).await?;
    let balances =
        crate::point_in_time::account_balance(&state.store, &account, position).await.map_err(ApiError::internal)?;
    let balances = balances.into_iter().map(|(currency, amount)| ((account.to_string(), currency), amount)).collect();
    let mut body = balances_at(position, balances);
    body.totals.clear();
    Ok(ApiOk(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/exports/{kind}",
    tag = "admin",
    summary = "Stream postings, orders or deposits between two bounds as CSV or JSON lines, with totals at the end",
    description = "postings: one row per posting leg (position, recorded_at, event_id, event_type, stream_id, account, \
                   currency, amount), then one `total` row per account and currency, which from the start reconcile to the \
                   trial balance. orders / deposits: one row per order placed / deposit started in the range (dates or \
                   instants), then totals per status (and method). Streamed a page at a time: memory stays flat.",
    params(("kind" = String, Path, description = "postings, orders or deposits"), ExportQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, content_type = "text/csv", body = String),
        (status = 400, body = ErrorBody),
        (status = 404, description = "no such export", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn export(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    super::json::ApiPath(kind_text): super::json::ApiPath<String>,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let kind = crate::export::Kind::parse(&kind_text)
        .ok_or_else(|| ApiError::not_found(format!("no export {kind_text:?}: use postings, orders or deposits")))?;
    let format_text = query.format.as_deref().unwrap_or("csv");
    let format = Format::parse(format_text).ok_or_else(|| field_error("format", "use csv or jsonl"))?;
    let from = bound("from", query.from.as_deref())?;
    let to = bound("to", query.to.as_deref())?;
    if let Some(view) = crate::export::view_of(kind) {
        crate::read::wait_for_view(&state.store, view.name()).await?;
    }
    let (chunks, task) = match crate::export::spawn(state.store.clone(), kind, from, to, format).await {
        Ok(started) => started,
        Err(crate::export::ExportError::Bound(error)) => return Err(field_error("from", error)),
        Err(crate::export::ExportError::Store(error)) => return Err(ApiError::internal(error)),
    };
    tokio::spawn(async move {
        if let Ok(Err(error)) = task.await {
            tracing::error!(%error, "export.failed");
        }
    });
    let stream = futures_util::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (Ok::<_, Infallible>(chunk), chunks))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
    let file = format!("attachment; filename=\"{kind_text}.{}\"", format.extension());
    if let Ok(value) = HeaderValue::from_str(&file) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
