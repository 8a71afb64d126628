//! The low-balance alert: after each catalog sync, what we hold at each provider is compared
//! with its threshold (`PROVIDER_LOW_BALANCE`, or `SMSMAN_LOW_BALANCE` / `TEXTVERIFIED_LOW_BALANCE`,
//! each in the provider's own currency); a balance below it queues one admin alert per
//! provider per UTC day, whichever instance sees it first.

use rust_decimal::Decimal;

use crate::projection::notifications::{self as rows, Queued};
use crate::providers::Provider;
use crate::store::Engine;

#[derive(Clone, Debug, Default)]
pub struct Thresholds {
    /// For providers without their own.
    pub default: Decimal,
    /// (provider id, threshold).
    pub per_provider: Vec<(&'static str, Decimal)>,
}

impl Thresholds {
    pub fn of(&self, provider: &str) -> Decimal {
        self.per_provider.iter().find(|(id, _)| *id == provider).map_or(self.default, |(_, threshold)| *threshold)
    }
}

/// Asks every provider its balance and queues an alert to `chat` for each one below its
/// threshold; how many alerts were queued (an alert already queued today is not again).
pub async fn check(
    engine: &Engine,
    providers: &[Provider],
    thresholds: &Thresholds,
    chat: &str,
    today: chrono::NaiveDate,
) -> Result<usize, sqlx::Error> {
    let balances = futures_util::future::join_all(providers.iter().map(Provider::balance)).await;
    let mut queued = 0;
    for (provider, balance) in providers.iter().zip(balances) {
        let Ok(Some(balance)) = balance else { continue };
        let threshold = thresholds.of(provider.id());
        if balance.amount >= threshold {
            continue;
        }
        let alert = Queued {
            channel: "telegram",
            recipient: chat.to_owned(),
            subject: String::new(),
            body: format!(
                "Low balance at {}: {balance} left (alert below {threshold} {}). Top it up before orders fail.",
                provider.id(),
                balance.currency
            ),
            dedupe: Some(format!("low-balance:{}:{today}", provider.id())),
        };
        if rows::enqueue(engine, &alert).await? {
            queued += 1;
        }
    }
    Ok(queued)
}

/// Checks every `every` (the catalog sync's interval) while the process runs; only when admin
/// alerts have somewhere to go.
pub fn spawn(
    engine: Engine,
    catalog: std::sync::Arc<crate::catalog::CatalogCache>,
    settings: &super::NotificationSettings,
    every: std::time::Duration,
) {
    let Some(chat) = settings.telegram.as_ref().map(|t| t.chat_id.clone()) else { return };
    let thresholds = settings.low_balance.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let today = chrono::Utc::now().date_naive();
            if let Err(error) = check(&engine, catalog.providers(), &thresholds, &chat, today).await {
                tracing::warn!(%error, "notifications.low_balance_check_failed");
            }
        }
    });
}
