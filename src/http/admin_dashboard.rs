//! `GET /api/v1/admin/dashboard`: the analytics view summed over a range of days, and day by day.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::State;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody};
use super::error::{ApiError, ApiOk};
use super::json::ApiQuery;
use super::orders::field_error;
use super::principal::Admin;
use crate::projection::analytics as analytics_view;

/// Longest range one dashboard request covers.
const RANGE_DAYS_MAX: i64 = 366;
/// Default range: the last 30 days.
const RANGE_DAYS_DEFAULT: i64 = 30;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct DashboardQuery {
    /// First day, `YYYY-MM-DD` (UTC); default 29 days before `to`.
    pub from: Option<String>,
    /// Last day, `YYYY-MM-DD` (UTC); default today.
    pub to: Option<String>,
}

/// Amounts per currency, as decimal strings.
pub type PerCurrency = BTreeMap<String, String>;

#[derive(Serialize, ToSchema, Default)]
pub struct Figures {
    /// Money credited by deposits.
    pub deposits: PerCurrency,
    pub deposits_count: u64,
    /// Money taken back by refunds and disputes of deposits.
    pub reversals: PerCurrency,
    /// What users paid for delivered numbers.
    pub revenue: PerCurrency,
    pub provider_cost: PerCurrency,
    pub margin: PerCurrency,
    /// Holds released to users (cancelled, expired, provider failed).
    pub refunds: PerCurrency,
    pub orders: u64,
    /// Orders that ended, by how.
    pub orders_by_status: BTreeMap<String, u64>,
    /// Finished orders among those that ended, 0 to 1 (none ended: null).
    pub success_rate: Option<String>,
    /// Users who placed an order or made a deposit.
    pub active_users: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Day {
    pub day: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Serialize, ToSchema)]
pub struct Dashboard {
    pub from: String,
    pub to: String,
    pub totals: Figures,
    pub orders_by_service: BTreeMap<String, u64>,
    pub orders_by_country: BTreeMap<String, u64>,
    pub orders_by_provider: BTreeMap<String, u64>,
    pub revenue_by_provider: BTreeMap<String, PerCurrency>,
    pub days: Vec<Day>,
}

/// Sums of one set of rows.
#[derive(Default)]
struct Sums {
    money: BTreeMap<(String, String), Decimal>,
    counts: BTreeMap<(String, String), u64>,
    users: BTreeSet<String>,
}

impl Sums {
    fn add(&mut self, metric: &str, key: &str, currency: &str, value: Decimal) {
        if metric == "active_user" {
            self.users.insert(key.to_owned());
        } else if currency.is_empty() {
            let count = rust_decimal::prelude::ToPrimitive::to_u64(&value).unwrap_or(0);
            *self.counts.entry((metric.to_owned(), key.to_owned())).or_default() += count;
        } else {
            *self.money.entry((metric.to_owned(), currency.to_owned())).or_default() += value;
        }
    }

    fn money(&self, metric: &str) -> PerCurrency {
        self.money
            .iter()
            .filter(|((m, _), _)| m == metric)
            .map(|((_, currency), value)| (currency.clone(), value.to_string()))
            .collect()
    }

    fn counts(&self, metric: &str) -> BTreeMap<String, u64> {
        self.counts.iter().filter(|((m, _), _)| m == metric).map(|((_, key), n)| (key.clone(), *n)).collect()
    }

    fn figures(&self) -> Figures {
        let orders_by_status = self.counts("orders_by_status");
        let ended: u64 = orders_by_status.values().sum();
        let finished = orders_by_status.get("finished").copied().unwrap_or(0);
        let success_rate =
            (ended > 0).then(|| (Decimal::from(finished) / Decimal::from(ended)).round_dp(4).normalize().to_string());
        Figures {
            deposits: self.money("deposits"),
            deposits_count: self.counts("deposits_count").values().sum(),
            reversals: self.money("reversals"),
            revenue: self.money("revenue"),
            provider_cost: self.money("provider_cost"),
            margin: self.money("margin"),
            refunds: self.money("refunds"),
            orders: self.counts("orders").values().sum(),
            orders_by_status,
            success_rate,
            active_users: self.users.len() as u64,
        }
    }
}

fn day(field: &str, text: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| field_error(field, "use YYYY-MM-DD"))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/dashboard",
    tag = "admin",
    summary = "Deposits, revenue, provider cost, margin, refunds, orders by status/service/country/provider, success rate, active users; per day",
    params(DashboardQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<Dashboard>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn dashboard(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiQuery(query): ApiQuery<DashboardQuery>,
) -> Result<ApiOk<Dashboard>, ApiError> {
    let to = match &query.to {
        Some(text) => day("to", text)?,
        None => chrono::Utc::now().date_naive(),
    };
    let from = match &query.from {
        Some(text) => day("from", text)?,
        None => to - chrono::Duration::days(RANGE_DAYS_DEFAULT - 1),
    };
    if from > to || (to - from).num_days() >= RANGE_DAYS_MAX {
        return Err(field_error(
            "from",
            format!("from must not be after to, and the range at most {RANGE_DAYS_MAX} days"),
        ));
    }
    let (from, to) = (from.format("%Y-%m-%d").to_string(), to.format("%Y-%m-%d").to_string());
    crate::read::wait_for_view(&state.store, analytics_view::NAME).await?;
    let rows = analytics_view::rows_between(state.store.engine(), &from, &to).await.map_err(ApiError::internal)?;
    let mut totals = Sums::default();
    let mut days: BTreeMap<String, Sums> = BTreeMap::new();
    let mut revenue_by_provider: BTreeMap<String, PerCurrency> = BTreeMap::new();
    let mut by_provider: BTreeMap<String, Decimal> = BTreeMap::new();
    for (day, metric, key, currency, value) in &rows {
        totals.add(metric, key, currency, *value);
        days.entry(day.clone()).or_default().add(metric, key, currency, *value);
        if metric == "revenue" {
            *by_provider.entry(format!("{key}\u{0}{currency}")).or_default() += *value;
        }
    }
    for (name, value) in by_provider {
        let (provider, currency) = name.split_once('\u{0}').unwrap_or((name.as_str(), ""));
        revenue_by_provider.entry(provider.to_owned()).or_default().insert(currency.to_owned(), value.to_string());
    }
    Ok(ApiOk(Dashboard {
        orders_by_service: totals.counts("orders"),
        orders_by_country: totals.counts("orders_by_country"),
        orders_by_provider: totals.counts("orders_by_provider"),
        revenue_by_provider,
        totals: totals.figures(),
        days: days.into_iter().map(|(day, sums)| Day { day, figures: sums.figures() }).collect(),
        from,
        to,
    }))
}
