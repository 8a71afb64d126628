//! `/api/v1/catalog/*`: what can be bought, where, at what price. Public: no sign-in needed.
//! Answers come from the catalog the sync job keeps in memory and the pricing rules.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use domain::catalog::{CountryCode, ServiceCode};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{Envelope, ErrorBody};
use super::error::{ApiError, ApiOk};
use super::json::ApiQuery;
use crate::catalog::{PriceLine, ProviderHealth, price_list};
use crate::identity::rfc3339;

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct PriceQuery {
    /// Only this service, e.g. `tg`.
    pub service: Option<String>,
    /// Only this country, e.g. `GB`.
    pub country: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PriceBody {
    pub service: String,
    pub country: String,
    /// The cheapest sell price, a decimal string.
    #[schema(example = "0.15")]
    pub price: String,
    pub currency: String,
    /// Numbers free at the providers that sell it.
    pub available: u64,
}

#[derive(Serialize, ToSchema)]
pub struct PricesData {
    pub prices: Vec<PriceBody>,
    /// When the providers were last read.
    #[schema(format = DateTime)]
    pub synced_at: String,
    pub providers: Vec<ProviderHealth>,
}

/// One service or country: in how many places it is sold and how many numbers are free.
#[derive(Serialize, ToSchema)]
pub struct CatalogEntry {
    pub code: String,
    /// Countries (for a service) or services (for a country) it is sold with.
    pub offers: usize,
    pub available: u64,
    /// The cheapest sell price anywhere, a decimal string.
    pub from_price: String,
    pub currency: String,
}

#[derive(Serialize, ToSchema)]
pub struct ServicesData {
    pub services: Vec<CatalogEntry>,
    #[schema(format = DateTime)]
    pub synced_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct CountriesData {
    pub countries: Vec<CatalogEntry>,
    #[schema(format = DateTime)]
    pub synced_at: String,
}

async fn prices(
    state: &AppState,
    service: Option<&ServiceCode>,
    country: Option<&CountryCode>,
) -> Result<(Vec<PriceLine>, crate::catalog::Synced), ApiError> {
    let synced = state.orders.catalog.current().await;
    let pricing = state.pricing.state().await?;
    Ok((price_list(&synced.catalog, &pricing, service, country), synced))
}

fn summarize(lines: &[PriceLine], key: impl Fn(&PriceLine) -> String) -> Vec<CatalogEntry> {
    let mut entries: BTreeMap<String, (usize, u64, domain::Money)> = BTreeMap::new();
    for line in lines {
        let entry = entries.entry(key(line)).or_insert((0, 0, line.price));
        entry.0 += 1;
        entry.1 += line.available;
        if line.price.amount < entry.2.amount {
            entry.2 = line.price;
        }
    }
    entries
        .into_iter()
        .map(|(code, (offers, available, from))| CatalogEntry {
            code,
            offers,
            available,
            from_price: from.amount.to_string(),
            currency: from.currency.to_string(),
        })
        .collect()
}

#[utoipa::path(
    get,
    path = "/api/v1/catalog/services",
    tag = "catalog",
    summary = "Services that can be bought, with the lowest price and numbers free",
    responses((status = 200, body = Envelope<ServicesData>), (status = 500, body = ErrorBody))
)]
pub async fn services(State(state): State<Arc<AppState>>) -> Result<ApiOk<ServicesData>, ApiError> {
    let (lines, synced) = prices(&state, None, None).await?;
    Ok(ApiOk(ServicesData { services: summarize(&lines, |l| l.service.to_string()), synced_at: rfc3339(synced.at) }))
}

#[utoipa::path(
    get,
    path = "/api/v1/catalog/countries",
    tag = "catalog",
    summary = "Countries numbers can be bought in, with the lowest price and numbers free",
    responses((status = 200, body = Envelope<CountriesData>), (status = 500, body = ErrorBody))
)]
pub async fn countries(State(state): State<Arc<AppState>>) -> Result<ApiOk<CountriesData>, ApiError> {
    let (lines, synced) = prices(&state, None, None).await?;
    Ok(ApiOk(CountriesData { countries: summarize(&lines, |l| l.country.to_string()), synced_at: rfc3339(synced.at) }))
}

#[utoipa::path(
    get,
    path = "/api/v1/catalog/prices",
    tag = "catalog",
    summary = "Sell prices and numbers free per service and country",
    params(PriceQuery),
    responses(
        (status = 200, body = Envelope<PricesData>),
        (status = 400, body = ErrorBody),
        (status = 500, body = ErrorBody),
    )
)]
pub async fn price_table(
    State(state): State<Arc<AppState>>,
    ApiQuery(query): ApiQuery<PriceQuery>,
) -> Result<ApiOk<PricesData>, ApiError> {
    let service = query
        .service
        .map(|s| ServiceCode::parse(s.trim()))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()).with_details(json!({"field": "service"})))?;
    let country = query
        .country
        .map(|c| CountryCode::parse(&c.trim().to_ascii_uppercase()))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()).with_details(json!({"field": "country"})))?;
    let (lines, synced) = prices(&state, service.as_ref(), country.as_ref()).await?;
    let prices = lines
        .iter()
        .map(|line| PriceBody {
            service: line.service.to_string(),
            country: line.country.to_string(),
            price: line.price.amount.to_string(),
            currency: line.price.currency.to_string(),
            available: line.available,
        })
        .collect();
    Ok(ApiOk(PricesData { prices, synced_at: rfc3339(synced.at), providers: synced.health }))
}
