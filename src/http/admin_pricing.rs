//! `/api/v1/admin/pricing-rules`: list, add, set and remove pricing rules (decision 0015).

use std::sync::Arc;

use axum::extract::State;
use domain::catalog::{CountryCode, ServiceCode};
use domain::pricing::{Rule, Scope};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody};
use super::error::{ApiCreated, ApiError, ApiOk};
use super::json::ApiJson;
use super::principal::Admin;
use crate::identity::Caller;

/// Which orders a rule applies to; an absent field matches anything.
#[derive(Clone, Debug, Default, Deserialize, Serialize, ToSchema)]
pub struct RuleScope {
    #[schema(example = "smsman")]
    pub provider: Option<String>,
    #[schema(example = "tg")]
    pub service: Option<String>,
    #[schema(example = "GB")]
    pub country: Option<String>,
}

/// A rule; amounts are decimal strings in the provider's currency.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
pub struct PricingRule {
    #[serde(flatten)]
    pub scope: RuleScope,
    #[schema(example = "25")]
    pub markup_percent: String,
    #[schema(example = "0.05")]
    pub markup_fixed: Option<String>,
    pub min_price: Option<String>,
    pub max_price: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PricingRules {
    pub rules: Vec<PricingRule>,
}

fn scope(body: &RuleScope) -> Result<Scope, ApiError> {
    let service = body.service.as_deref().map(ServiceCode::parse).transpose();
    let country = body.country.as_deref().map(CountryCode::parse).transpose();
    Ok(Scope {
        provider: body.provider.clone(),
        service: service.map_err(|e| ApiError::bad_request(e.to_string()))?,
        country: country.map_err(|e| ApiError::bad_request(e.to_string()))?,
    })
}

fn amount(field: &str, text: Option<&str>) -> Result<Option<Decimal>, ApiError> {
    text.map(|t| {
        Decimal::from_str_exact(t.trim())
            .map_err(|_| ApiError::bad_request(format!("{field} must be a decimal string")))
    })
    .transpose()
}

fn listed(state: &domain::pricing::PricingState) -> PricingRules {
    let rules = state
        .rules
        .iter()
        .map(|(scope, rule)| PricingRule {
            scope: RuleScope {
                provider: scope.provider.clone(),
                service: scope.service.as_ref().map(ToString::to_string),
                country: scope.country.as_ref().map(ToString::to_string),
            },
            markup_percent: rule.markup_percent.to_string(),
            markup_fixed: Some(rule.markup_fixed.to_string()),
            min_price: rule.min_price.map(|d| d.to_string()),
            max_price: rule.max_price.map(|d| d.to_string()),
        })
        .collect();
    PricingRules { rules }
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/pricing-rules",
    tag = "admin",
    summary = "Every pricing rule",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<PricingRules>), AdminRefusals)
)]
pub async fn list(State(state): State<Arc<AppState>>, Admin(_): Admin) -> Result<ApiOk<PricingRules>, ApiError> {
    Ok(ApiOk(listed(&state.pricing.state().await?)))
}

/// The rule a body describes, checked.
fn rule_of(body: &PricingRule) -> Result<Rule, ApiError> {
    let rule = Rule {
        markup_percent: amount("markup_percent", Some(&body.markup_percent))?.unwrap_or_default(),
        markup_fixed: amount("markup_fixed", body.markup_fixed.as_deref())?.unwrap_or_default(),
        min_price: amount("min_price", body.min_price.as_deref())?,
        max_price: amount("max_price", body.max_price.as_deref())?,
    };
    rule.validate().map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(rule)
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/pricing-rules",
    tag = "admin",
    summary = "Add a rule for a scope that has none (PUT changes one)",
    security(("bearer" = [])),
    request_body = PricingRule,
    responses(
        (status = 201, body = Envelope<PricingRules>),
        (status = 400, body = ErrorBody),
        (status = 409, description = "the scope has a rule already", body = ErrorBody),
        AdminRefusals
    )
)]
pub async fn create(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiJson(body): ApiJson<PricingRule>,
) -> Result<ApiCreated<PricingRules>, ApiError> {
    let (scope, rule) = (scope(&body.scope)?, rule_of(&body)?);
    match state.pricing.create(scope, rule, admin.user_id, caller.metadata(Some(admin.user_id))).await? {
        Some(rules) => Ok(ApiCreated(listed(&rules))),
        None => Err(ApiError::conflict("this scope has a rule already; PUT changes it")),
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/pricing-rules",
    tag = "admin",
    summary = "Set the rule of a scope (the most specific matching rule prices an order)",
    security(("bearer" = [])),
    request_body = PricingRule,
    responses((status = 200, body = Envelope<PricingRules>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn set(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiJson(body): ApiJson<PricingRule>,
) -> Result<ApiOk<PricingRules>, ApiError> {
    let (scope, rule) = (scope(&body.scope)?, rule_of(&body)?);
    let rules = state.pricing.set(scope, rule, admin.user_id, caller.metadata(Some(admin.user_id))).await?;
    Ok(ApiOk(listed(&rules)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/pricing-rules",
    tag = "admin",
    summary = "Remove the rule of a scope",
    security(("bearer" = [])),
    request_body = RuleScope,
    responses(
        (status = 200, body = Envelope<PricingRules>),
        (status = 400, body = ErrorBody),
        (status = 404, description = "no rule for this scope", body = ErrorBody),
        AdminRefusals
    )
)]
pub async fn remove(
    State(state): State<Arc<AppState>>,
    Admin(admin): Admin,
    caller: Caller,
    ApiJson(body): ApiJson<RuleScope>,
) -> Result<ApiOk<PricingRules>, ApiError> {
    match state.pricing.remove(scope(&body)?, admin.user_id, caller.metadata(Some(admin.user_id))).await? {
        Some(rules) => Ok(ApiOk(listed(&rules))),
        None => Err(ApiError::not_found("no rule for this scope")),
    }
}

#[derive(Deserialize, ToSchema, utoipa::IntoParams)]
pub struct PreviewQuery {
    #[param(example = "tg")]
    pub service: String,
    #[param(example = "GB")]
    pub country: String,
}

/// One provider's offer as the rules price it.
#[derive(Serialize, ToSchema)]
pub struct PricedOffer {
    pub provider: String,
    /// What the provider charges us.
    pub cost: String,
    /// What users pay; absent when the rule refuses (it would sell below cost).
    pub price: Option<String>,
    pub currency: String,
    /// Why there is no price.
    pub refused: Option<String>,
    /// Numbers free at the last catalog sync.
    pub available: u32,
    /// The scope of the rule applied; absent: no rule (sold at cost).
    pub rule: Option<RuleScope>,
    /// Disabled providers are never used.
    pub enabled: bool,
    /// Lower is tried first.
    pub priority: u32,
}

#[derive(Serialize, ToSchema)]
pub struct PricePreview {
    pub service: String,
    pub country: String,
    /// Every provider's offer, in the order routing tries them (usable first, then by priority,
    /// then cheapest first).
    pub offers: Vec<PricedOffer>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/pricing-rules/preview",
    tag = "admin",
    summary = "What a service in a country sells at from each provider under the current rules",
    params(PreviewQuery),
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<PricePreview>), (status = 400, body = ErrorBody), AdminRefusals)
)]
pub async fn preview(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    super::json::ApiQuery(query): super::json::ApiQuery<PreviewQuery>,
) -> Result<ApiOk<PricePreview>, ApiError> {
    let service = ServiceCode::parse(query.service.trim()).map_err(|e| super::orders::field_error("service", e))?;
    let country = CountryCode::parse(&query.country.trim().to_ascii_uppercase())
        .map_err(|e| super::orders::field_error("country", e))?;
    let pricing = state.pricing.state().await?;
    let synced = state.orders.catalog.current().await;
    let mut offers: Vec<PricedOffer> = synced
        .catalog
        .offers
        .iter()
        .filter(|(_, offer)| offer.service == service && offer.country == country)
        .map(|(provider, offer)| {
            let applied = pricing.rule_for(provider.id(), &service, &country).map(|(scope, _)| RuleScope {
                provider: scope.provider.clone(),
                service: scope.service.as_ref().map(ToString::to_string),
                country: scope.country.as_ref().map(ToString::to_string),
            });
            let priced = pricing.price(provider.id(), &service, &country, offer.cost);
            PricedOffer {
                provider: provider.id().to_owned(),
                cost: offer.cost.amount.to_string(),
                price: priced.as_ref().ok().map(|price| price.amount.to_string()),
                currency: offer.cost.currency.to_string(),
                refused: priced.err().map(|error| error.to_string()),
                available: offer.available,
                rule: applied,
                enabled: pricing.routing(provider.id()).enabled,
                priority: pricing.routing(provider.id()).priority,
            }
        })
        .collect();
    let sort_key = |offer: &PricedOffer| {
        let price = offer.price.as_deref().and_then(|p| p.parse::<Decimal>().ok());
        (price.is_none() || offer.available == 0 || !offer.enabled, offer.priority, price.unwrap_or_default())
    };
    offers.sort_by_key(sort_key);
    Ok(ApiOk(PricePreview { service: service.to_string(), country: country.to_string(), offers }))
}
