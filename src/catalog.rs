//! The catalog as the service sells from it: every provider's offers, read by the sync job
//! every `CATALOG_SYNC_MS` and kept in memory, with when each provider was last read and
//! whether it answered. Routing and the catalog routes read the copy; nothing waits on a
//! provider except the very first read after start-up.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use domain::Timestamp;

use crate::providers::Provider;
use crate::providers::routing::Catalog;

/// What the last sync found of one provider.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProviderHealth {
    pub provider: &'static str,
    pub healthy: bool,
    /// The provider's error when it did not answer.
    pub error: Option<String>,
    pub offers: usize,
}

#[derive(Clone, Debug)]
pub struct Synced {
    pub catalog: Arc<Catalog>,
    pub at: Timestamp,
    pub health: Vec<ProviderHealth>,
}

pub struct CatalogCache {
    providers: Vec<Provider>,
    current: RwLock<Option<Synced>>,
    /// One sync at a time: requests arriving during the first sync wait for it.
    syncing: tokio::sync::Mutex<()>,
}

impl CatalogCache {
    pub fn new(providers: Vec<Provider>) -> CatalogCache {
        CatalogCache { providers, current: RwLock::new(None), syncing: tokio::sync::Mutex::new(()) }
    }

    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The provider with this id, if configured.
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id() == id)
    }

    /// Reads every provider now and keeps what it found.
    pub async fn sync(&self) -> Synced {
        let _one_at_a_time = self.syncing.lock().await;
        self.read_and_keep().await
    }

    async fn read_and_keep(&self) -> Synced {
        let catalog = Catalog::read(&self.providers).await;
        let health = self
            .providers
            .iter()
            .map(|provider| {
                let error = catalog.unavailable.iter().find(|(id, _)| *id == provider.id()).map(|(_, e)| e.to_string());
                let offers = catalog.offers.iter().filter(|(p, _)| p.id() == provider.id()).count();
                ProviderHealth { provider: provider.id(), healthy: error.is_none(), error, offers }
            })
            .collect();
        for (provider, error) in &catalog.unavailable {
            tracing::warn!(provider, %error, "catalog.provider_unavailable");
        }
        let synced = Synced { catalog: Arc::new(catalog), at: crate::identity::now(), health };
        *self.current.write().expect("catalog lock") = Some(synced.clone());
        metrics::gauge!("catalog_offers").set(synced.catalog.offers.len() as f64);
        synced
    }

    /// The last sync, or a first one now.
    pub async fn current(&self) -> Synced {
        if let Some(synced) = self.current.read().expect("catalog lock").clone() {
            return synced;
        }
        let _one_at_a_time = self.syncing.lock().await;
        if let Some(synced) = self.current.read().expect("catalog lock").clone() {
            return synced;
        }
        self.read_and_keep().await
    }

    /// Syncs every `every` until the process ends.
    pub fn spawn_sync(self: &Arc<Self>, every: Duration, log: crate::store::system_log::SystemLog) {
        let cache = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let synced = cache.sync().await;
                tracing::info!(offers = synced.catalog.offers.len(), "catalog.synced");
                record_sync(&log, &synced);
            }
        });
    }
}

/// A sync in the system log: the run, and each provider that did not answer.
fn record_sync(log: &crate::store::system_log::SystemLog, synced: &Synced) {
    let answered = synced.health.iter().filter(|provider| provider.healthy).count();
    let message =
        format!("{} offers from {answered} of {} providers", synced.catalog.offers.len(), synced.health.len());
    log.record("job", "catalog-sync", "info", message);
    for provider in synced.health.iter().filter(|provider| !provider.healthy) {
        log.record("provider", provider.provider, "warn", provider.error.clone().unwrap_or_default());
    }
}

/// What one service costs in one country: the cheapest sell price and the numbers free at
/// any provider that sells within the price rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceLine {
    pub service: domain::catalog::ServiceCode,
    pub country: domain::catalog::CountryCode,
    pub price: domain::Money,
    pub available: u64,
}

/// The price list, optionally of one service and/or one country, sorted by service then country.
pub fn price_list(
    catalog: &Catalog,
    pricing: &domain::pricing::PricingState,
    service: Option<&domain::catalog::ServiceCode>,
    country: Option<&domain::catalog::CountryCode>,
) -> Vec<PriceLine> {
    let pairs: std::collections::BTreeSet<_> = catalog
        .offers
        .iter()
        .map(|(_, offer)| (&offer.service, &offer.country))
        .filter(|(s, c)| service.is_none_or(|want| want == *s) && country.is_none_or(|want| want == *c))
        .collect();
    pairs
        .into_iter()
        .filter_map(|(service, country)| {
            let found = crate::providers::routing::candidates(catalog, pricing, service, country, None);
            let cheapest = found.first()?;
            let available = catalog
                .offers
                .iter()
                .filter(|(provider, offer)| {
                    &offer.service == service
                        && &offer.country == country
                        && found.iter().any(|c| c.provider.id() == provider.id())
                })
                .map(|(_, offer)| u64::from(offer.available))
                .sum();
            Some(PriceLine { service: service.clone(), country: country.clone(), price: cheapest.price, available })
        })
        .collect()
}
