//! Pricing rules as the service applies them: the `pricing` stream folded and cached (see
//! `cached_fold`), set and removed by admins.

use domain::events::PRICING_STREAM;
use domain::pricing::{PricingEvent, PricingState, Rule, Scope};
use domain::{DomainEvent, UserId};

use crate::cached_fold::CachedFold;
use crate::store::{EventStore, Metadata, StoreError};

pub struct Pricing {
    rules: CachedFold<PricingState>,
}

impl Pricing {
    pub fn new(store: EventStore) -> Pricing {
        let fold = |state: PricingState, event| match event {
            DomainEvent::Pricing(event) => Some(state.apply(&event)),
            _ => None,
        };
        Pricing { rules: CachedFold::new(store, PRICING_STREAM, fold) }
    }

    pub async fn state(&self) -> Result<PricingState, StoreError> {
        self.rules.state().await
    }

    /// Sets the rule of `scope` (replacing any); the caller has validated it.
    pub async fn set(
        &self,
        scope: Scope,
        rule: Rule,
        by: UserId,
        metadata: Metadata,
    ) -> Result<PricingState, StoreError> {
        let event = PricingEvent::RuleSet { scope, rule, by, at: crate::identity::now() };
        self.rules.append(event.into(), metadata).await
    }

    /// Adds the rule of a scope that has none; `Ok(None)` when it has one.
    pub async fn create(
        &self,
        scope: Scope,
        rule: Rule,
        by: UserId,
        metadata: Metadata,
    ) -> Result<Option<PricingState>, StoreError> {
        if self.state().await?.rules.contains_key(&scope) {
            return Ok(None);
        }
        Ok(Some(self.set(scope, rule, by, metadata).await?))
    }

    /// Enables or disables a provider for routing and sets its priority.
    pub async fn set_provider(
        &self,
        provider: &str,
        routing: domain::pricing::ProviderRouting,
        by: UserId,
        metadata: Metadata,
    ) -> Result<PricingState, StoreError> {
        let event =
            PricingEvent::ProviderRoutingSet { provider: provider.to_owned(), routing, by, at: crate::identity::now() };
        self.rules.append(event.into(), metadata).await
    }

    /// Removes the rule of `scope`; `Ok(None)` when there was none.
    pub async fn remove(
        &self,
        scope: Scope,
        by: UserId,
        metadata: Metadata,
    ) -> Result<Option<PricingState>, StoreError> {
        if !self.state().await?.rules.contains_key(&scope) {
            return Ok(None);
        }
        let event = PricingEvent::RuleRemoved { scope, by, at: crate::identity::now() };
        Ok(Some(self.rules.append(event.into(), metadata).await?))
    }
}
