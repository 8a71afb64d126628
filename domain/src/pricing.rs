//! Pricing rules: what a number sells for, from what the provider charges. A rule applies to
//! a scope (any of service, country, provider, or all); the most specific matching rule wins,
//! alone. Rules are admin-managed and kept as events in one stream (`pricing`).

use std::collections::BTreeMap;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::catalog::{CountryCode, ServiceCode};
use crate::ids::{Timestamp, UserId};
use crate::money::Money;

/// Sell prices are rounded up to this many decimals (cents), never below cost plus markup.
pub const PRICE_SCALE: u32 = 2;

/// Which orders a rule applies to; `None` matches anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Scope {
    pub provider: Option<String>,
    pub service: Option<ServiceCode>,
    pub country: Option<CountryCode>,
}

impl Scope {
    fn matches(&self, provider: &str, service: &ServiceCode, country: &CountryCode) -> bool {
        self.provider.as_deref().is_none_or(|p| p == provider)
            && self.service.as_ref().is_none_or(|s| s == service)
            && self.country.as_ref().is_none_or(|c| c == country)
    }

    /// Provider outweighs service, which outweighs country: every scope shape has its own rank.
    fn specificity(&self) -> u8 {
        u8::from(self.provider.is_some()) * 4 + u8::from(self.service.is_some()) * 2 + u8::from(self.country.is_some())
    }
}

/// `cost × (1 + markup_percent / 100) + markup_fixed`, then held between `min_price` and
/// `max_price`. Amounts are in the cost's currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(with = "rust_decimal::serde::str")]
    pub markup_percent: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub markup_fixed: Decimal,
    /// Decimals are written as strings (rust_decimal's default serde form), `null` when absent.
    pub min_price: Option<Decimal>,
    pub max_price: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PricingError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The rule's maximum is below what the provider charges: not sold through this provider.
    #[error("the maximum price {max} is below the provider's cost {cost}")]
    BelowCost { max: Decimal, cost: Decimal },
    #[error("the price is too large")]
    Overflow,
}

impl Rule {
    pub fn validate(&self) -> Result<(), PricingError> {
        let invalid = |field, reason: &str| Err(PricingError::Invalid { field, reason: reason.into() });
        if self.markup_percent < Decimal::ZERO || self.markup_percent > Decimal::from(10_000) {
            return invalid("markup_percent", "between 0 and 10000");
        }
        if self.markup_fixed < Decimal::ZERO {
            return invalid("markup_fixed", "not negative");
        }
        if self.min_price.is_some_and(|m| m < Decimal::ZERO) || self.max_price.is_some_and(|m| m <= Decimal::ZERO) {
            return invalid("min_price", "min_price not negative, max_price positive");
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price)
            && min > max
        {
            return invalid("max_price", "not below min_price");
        }
        Ok(())
    }

    /// The sell price for `cost`.
    pub fn price(&self, cost: Money) -> Result<Money, PricingError> {
        let factor = Decimal::ONE + self.markup_percent / Decimal::ONE_HUNDRED;
        let marked = cost.amount.checked_mul(factor).and_then(|a| a.checked_add(self.markup_fixed));
        let mut price =
            marked.ok_or(PricingError::Overflow)?.round_dp_with_strategy(PRICE_SCALE, RoundingStrategy::AwayFromZero);
        if let Some(min) = self.min_price {
            price = price.max(min);
        }
        if let Some(max) = self.max_price {
            if max < cost.amount {
                return Err(PricingError::BelowCost { max, cost: cost.amount });
            }
            price = price.min(max);
        }
        Money::new(price, cost.currency).map_err(|_| PricingError::Overflow)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum PricingEvent {
    #[serde(rename = "pricing.rule_set")]
    RuleSet { scope: Scope, rule: Rule, by: UserId, at: Timestamp },
    #[serde(rename = "pricing.rule_removed")]
    RuleRemoved { scope: Scope, by: UserId, at: Timestamp },
    /// Whether routing may use a provider, and how it ranks among them.
    #[serde(rename = "pricing.provider_routing_set")]
    ProviderRoutingSet { provider: String, routing: ProviderRouting, by: UserId, at: Timestamp },
}

/// Priority a provider has until an admin sets one.
pub const PROVIDER_PRIORITY_DEFAULT: u32 = 100;

/// How routing treats one provider: disabled ones are never offered; among enabled ones a
/// lower priority is tried first, and within a priority the cheapest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRouting {
    pub enabled: bool,
    pub priority: u32,
}

impl Default for ProviderRouting {
    fn default() -> Self {
        ProviderRouting { enabled: true, priority: PROVIDER_PRIORITY_DEFAULT }
    }
}

/// The settings of pricing and routing: the rules, and each provider's routing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PricingState {
    pub rules: BTreeMap<Scope, Rule>,
    /// Providers an admin set; the others have the default.
    pub providers: BTreeMap<String, ProviderRouting>,
}

impl PricingState {
    pub fn apply(mut self, event: &PricingEvent) -> Self {
        match event {
            PricingEvent::RuleSet { scope, rule, .. } => {
                self.rules.insert(scope.clone(), rule.clone());
            }
            PricingEvent::RuleRemoved { scope, .. } => {
                self.rules.remove(scope);
            }
            PricingEvent::ProviderRoutingSet { provider, routing, .. } => {
                self.providers.insert(provider.clone(), *routing);
            }
        }
        self
    }

    /// How routing treats `provider`.
    pub fn routing(&self, provider: &str) -> ProviderRouting {
        self.providers.get(provider).copied().unwrap_or_default()
    }

    /// The most specific rule for an offer, if any applies.
    pub fn rule_for(&self, provider: &str, service: &ServiceCode, country: &CountryCode) -> Option<(&Scope, &Rule)> {
        self.rules
            .iter()
            .filter(|(scope, _)| scope.matches(provider, service, country))
            .max_by_key(|(scope, _)| scope.specificity())
    }

    /// The sell price of an offer; with no rule at all, the cost (no margin).
    pub fn price(
        &self,
        provider: &str,
        service: &ServiceCode,
        country: &CountryCode,
        cost: Money,
    ) -> Result<Money, PricingError> {
        match self.rule_for(provider, service, country) {
            Some((_, rule)) => rule.price(cost),
            None => Ok(cost),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn rule(percent: &str, fixed: &str, min: Option<&str>, max: Option<&str>) -> Rule {
        Rule {
            markup_percent: dec(percent),
            markup_fixed: dec(fixed),
            min_price: min.map(dec),
            max_price: max.map(dec),
        }
    }

    fn usd(amount: &str) -> Money {
        Money::parse(amount, "USD").unwrap()
    }

    fn scope(provider: Option<&str>, service: Option<&str>, country: Option<&str>) -> Scope {
        Scope {
            provider: provider.map(Into::into),
            service: service.map(|s| ServiceCode::parse(s).unwrap()),
            country: country.map(|c| CountryCode::parse(c).unwrap()),
        }
    }

    #[test]
    fn markup_rounds_up_to_the_cent_and_is_clamped() {
        assert_eq!(rule("25", "0", None, None).price(usd("0.10")).unwrap(), usd("0.13"), "0.125 rounds up");
        assert_eq!(rule("0", "0.05", None, None).price(usd("0.10")).unwrap(), usd("0.15"));
        assert_eq!(rule("10", "0", Some("0.50"), None).price(usd("0.10")).unwrap(), usd("0.50"));
        assert_eq!(rule("100", "0", None, Some("0.15")).price(usd("0.10")).unwrap(), usd("0.15"));
        assert_eq!(
            rule("100", "0", None, Some("0.08")).price(usd("0.10")),
            Err(PricingError::BelowCost { max: dec("0.08"), cost: dec("0.10") })
        );
    }

    #[test]
    fn the_most_specific_matching_rule_wins_alone() {
        let (tg, wa) = (ServiceCode::parse("tg").unwrap(), ServiceCode::parse("wa").unwrap());
        let (gb, us) = (CountryCode::parse("GB").unwrap(), CountryCode::parse("US").unwrap());
        let by = UserId::new();
        let set = |scope, rule| PricingEvent::RuleSet { scope, rule, by, at: Timestamp(1) };
        let state = PricingState::default()
            .apply(&set(scope(None, None, None), rule("50", "0", None, None)))
            .apply(&set(scope(None, None, Some("GB")), rule("40", "0", None, None)))
            .apply(&set(scope(None, Some("tg"), None), rule("30", "0", None, None)))
            .apply(&set(scope(Some("smsman"), None, None), rule("20", "0", None, None)))
            .apply(&set(scope(None, Some("tg"), Some("GB")), rule("10", "0", None, None)));
        let price = |provider, service, country| state.price(provider, service, country, usd("1.00")).unwrap();
        assert_eq!(price("sandbox", &wa, &us), usd("1.50"), "the global rule");
        assert_eq!(price("sandbox", &wa, &gb), usd("1.40"), "country");
        assert_eq!(price("sandbox", &tg, &us), usd("1.30"), "service beats nothing");
        assert_eq!(price("sandbox", &tg, &gb), usd("1.10"), "service + country beats service");
        assert_eq!(price("smsman", &tg, &gb), usd("1.20"), "provider beats service + country");
        let state =
            state.apply(&PricingEvent::RuleRemoved { scope: scope(Some("smsman"), None, None), by, at: Timestamp(2) });
        assert_eq!(state.price("smsman", &tg, &gb, usd("1.00")).unwrap(), usd("1.10"));
        assert_eq!(PricingState::default().price("x", &tg, &gb, usd("1.00")).unwrap(), usd("1.00"), "no rule: cost");
    }

    #[test]
    fn rules_are_checked() {
        assert!(rule("-1", "0", None, None).validate().is_err());
        assert!(rule("0", "-0.01", None, None).validate().is_err());
        assert!(rule("0", "0", Some("2"), Some("1")).validate().is_err());
        assert!(rule("0", "0", None, Some("0")).validate().is_err());
        assert!(rule("25", "0.05", Some("0.10"), Some("5")).validate().is_ok());
    }
}
