//! Routing an order to a provider: from the catalog (every provider's offers), the offers for
//! a service and country, sold at the price the pricing rules give, cheapest first; then rent
//! from the first that has a number, failing over on "no numbers", a price above the catalog's
//! or an unavailable provider.

use domain::Money;
use domain::catalog::{CountryCode, ServiceCode};
use domain::pricing::PricingState;

use super::{NumberRequest, Offer, Provider, ProviderError, Rental};

/// Every provider's offers as last read, and which providers could not be read.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub offers: Vec<(Provider, Offer)>,
    pub unavailable: Vec<(&'static str, ProviderError)>,
}

impl Catalog {
    /// Reads every provider's offers; a provider that fails is left out (and named).
    pub async fn read(providers: &[Provider]) -> Catalog {
        let mut catalog = Catalog::default();
        for provider in providers {
            match provider.offers().await {
                Ok(offers) => catalog.offers.extend(offers.into_iter().map(|offer| (provider.clone(), offer))),
                Err(error) => catalog.unavailable.push((provider.id(), error)),
            }
        }
        catalog
    }
}

/// One way to serve an order: a provider, what it charges, what we sell at.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub provider: Provider,
    pub cost: Money,
    pub price: Money,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("no provider offers this service in this country within the price")]
    NoOffer,
    #[error("no provider could supply a number: {0}")]
    Exhausted(ProviderError),
}

/// The sellable offers for `service` in `country` from enabled providers with free numbers and a
/// positive cost, priced, by provider priority (lower first) and then cheapest first (ties keep
/// the providers' configured order); at most `max_price` when given.
pub fn candidates(
    catalog: &Catalog,
    pricing: &PricingState,
    service: &ServiceCode,
    country: &CountryCode,
    max_price: Option<Money>,
) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = catalog
        .offers
        .iter()
        .filter(|(_, offer)| &offer.service == service && &offer.country == country && offer.available > 0)
        .filter(|(provider, _)| pricing.routing(provider.id()).enabled)
        .filter_map(|(provider, offer)| {
            let price = pricing.price(provider.id(), service, country, offer.cost).ok()?;
            Some(Candidate { provider: provider.clone(), cost: offer.cost, price })
        })
        // Nothing is sold for nothing: a zero or negative cost from a provider is a bad answer.
        .filter(|c| c.cost.is_positive() && c.price.is_positive())
        .filter(|c| max_price.is_none_or(|max| max.currency == c.price.currency && c.price.amount <= max.amount))
        .collect();
    found.sort_by_key(|c| (pricing.routing(c.provider.id()).priority, c.price.amount));
    found
}

/// Rents from the first candidate that has a number. Each is asked with its catalog cost as
/// the most it may charge, so the margin priced in is never eaten by a provider's change.
pub async fn rent_first(
    candidates: &[Candidate],
    service: &ServiceCode,
    country: &CountryCode,
) -> Result<(Candidate, Rental), RoutingError> {
    let mut last = None;
    for candidate in candidates {
        let request =
            NumberRequest { service: service.clone(), country: country.clone(), max_cost: Some(candidate.cost) };
        match candidate.provider.rent(&request).await {
            Ok(rental) => return Ok((candidate.clone(), rental)),
            Err(error) if error.fails_over() => {
                tracing::info!(provider = candidate.provider.id(), %error, "routing.fail_over");
                last = Some(error);
            }
            Err(error) => return Err(RoutingError::Exhausted(error)),
        }
    }
    Err(last.map_or(RoutingError::NoOffer, RoutingError::Exhausted))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use domain::Timestamp;
    use domain::pricing::{PricingEvent, Rule, Scope};

    use super::*;
    use crate::providers::{Sandbox, SandboxBehaviour, SandboxSettings};

    fn sandbox(cost: &str, behaviour: SandboxBehaviour) -> Provider {
        let clock: crate::providers::sandbox::Clock = Arc::new(|| Timestamp(0));
        let mut settings = SandboxSettings::new(Money::parse(cost, "USD").unwrap(), Duration::ZERO, clock);
        settings.behaviour = behaviour;
        Provider::Sandbox(Arc::new(Sandbox::new(settings)))
    }

    fn tg_gb() -> (ServiceCode, CountryCode) {
        (ServiceCode::parse("tg").unwrap(), CountryCode::parse("GB").unwrap())
    }

    fn pricing() -> PricingState {
        let rule = Rule {
            markup_percent: "50".parse().unwrap(),
            markup_fixed: "0".parse().unwrap(),
            min_price: None,
            max_price: None,
        };
        PricingState::default().apply(&PricingEvent::RuleSet {
            scope: Scope::default(),
            rule,
            by: domain::UserId::new(),
            at: Timestamp(0),
        })
    }

    #[tokio::test]
    async fn the_cheapest_with_numbers_serves_and_failures_fall_through() {
        let (tg, gb) = tg_gb();
        let providers = [
            sandbox("0.30", SandboxBehaviour::Deliver),
            sandbox("0.10", SandboxBehaviour::Fail),
            sandbox("0.20", SandboxBehaviour::NoNumbers),
            sandbox("0.25", SandboxBehaviour::Deliver),
        ];
        let catalog = Catalog::read(&providers).await;
        assert_eq!(catalog.unavailable.len(), 1, "the failing one cannot even list offers");
        let found = candidates(&catalog, &pricing(), &tg, &gb, None);
        let prices: Vec<String> = found.iter().map(|c| c.price.amount.to_string()).collect();
        assert_eq!(prices, ["0.38", "0.45"], "no free numbers and unreadable providers are left out");
        let (chosen, rental) = rent_first(&found, &tg, &gb).await.unwrap();
        assert_eq!((chosen.cost.amount.to_string(), rental.cost.amount.to_string()), ("0.25".into(), "0.25".into()));

        let capped = candidates(&catalog, &pricing(), &tg, &gb, Some(Money::parse("0.40", "USD").unwrap()));
        assert_eq!(capped.len(), 1);
        assert!(candidates(&catalog, &pricing(), &tg, &gb, Some(Money::parse("0.10", "USD").unwrap())).is_empty());
        let free = Catalog::read(&[sandbox("0.00", SandboxBehaviour::Deliver)]).await;
        assert!(candidates(&free, &pricing(), &tg, &gb, None).is_empty(), "a zero cost is not an offer");
    }

    #[tokio::test]
    async fn a_provider_failing_at_rent_time_is_skipped_and_the_last_error_told() {
        let (tg, gb) = tg_gb();
        let cost = Money::parse("0.10", "USD").unwrap();
        let failing = Candidate { provider: sandbox("0.10", SandboxBehaviour::Fail), cost, price: cost };
        let empty = Candidate { provider: sandbox("0.10", SandboxBehaviour::NoNumbers), cost, price: cost };
        let working = Candidate { provider: sandbox("0.10", SandboxBehaviour::Deliver), cost, price: cost };
        assert!(rent_first(&[failing.clone(), empty.clone(), working], &tg, &gb).await.is_ok());
        assert_eq!(
            rent_first(&[failing, empty], &tg, &gb).await.unwrap_err(),
            RoutingError::Exhausted(ProviderError::NoNumbers)
        );
        assert_eq!(rent_first(&[], &tg, &gb).await.unwrap_err(), RoutingError::NoOffer);
        // Dearer than the catalog said: not bought, the next one is asked.
        let stale = Candidate {
            provider: sandbox("0.20", SandboxBehaviour::Deliver),
            cost: Money::parse("0.15", "USD").unwrap(),
            price: cost,
        };
        assert!(matches!(
            rent_first(&[stale], &tg, &gb).await.unwrap_err(),
            RoutingError::Exhausted(ProviderError::TooExpensive { .. })
        ));
    }
}
