//! Analytics per day: a pure fold of the log into rows `(day, metric, key, currency) -> value`,
//! added up. Money metrics carry their currency; counts have none (`""`). The admin dashboard
//! reads and sums them over a date range.
//!
//! | metric | key | value |
//! |---|---|---|
//! | `deposits` | method (clearing) | money credited |
//! | `deposits_count` | method | deposits credited |
//! | `reversals` | method | money taken back (refunds, disputes) |
//! | `revenue` | provider | what users paid for delivered numbers (cost + margin) |
//! | `provider_cost` | provider | what providers charge us |
//! | `margin` | provider | revenue - cost |
//! | `refunds` | reason | holds released to users (cancelled, expired, provider failed) |
//! | `orders` | service | orders placed |
//! | `orders_by_country` | country | orders placed |
//! | `orders_by_provider` | provider | numbers assigned |
//! | `orders_by_status` | finished, cancelled, expired, provider_failed | orders ended |
//! | `active_user` | user id | actions (orders placed, deposits) that day |

use std::collections::BTreeMap;

use domain::order::OrderEvent;
use domain::wallet::{ReleaseReason, WalletEvent};
use domain::{Currency, DomainEvent};
use rust_decimal::Decimal;

/// `(day "YYYY-MM-DD", metric, key, currency or "")`.
pub type AnalyticsKey = (String, &'static str, String, String);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnalyticsFold {
    pub rows: BTreeMap<AnalyticsKey, Decimal>,
}

/// The UTC day of a time in microseconds since the epoch.
pub fn day_of(recorded_at_micros: i64) -> String {
    let (year, month, day) = civil_from_days(recorded_at_micros.div_euclid(86_400_000_000));
    format!("{year:04}-{month:02}-{day:02}")
}

/// Year, month and day of a count of days since 1970-01-01 in the proleptic Gregorian
/// calendar (Howard Hinnant's civil-from-days).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

impl AnalyticsFold {
    fn add(
        &mut self,
        day: &str,
        metric: &'static str,
        key: impl Into<String>,
        currency: Option<Currency>,
        value: Decimal,
    ) {
        let currency = currency.map(|c| c.to_string()).unwrap_or_default();
        *self.rows.entry((day.to_owned(), metric, key.into(), currency)).or_insert(Decimal::ZERO) += value;
    }

    fn count(&mut self, day: &str, metric: &'static str, key: impl Into<String>) {
        self.add(day, metric, key, None, Decimal::ONE);
    }

    pub fn apply(&mut self, recorded_at_micros: i64, event: &DomainEvent) {
        let day = day_of(recorded_at_micros);
        match event {
            DomainEvent::Wallet(event) => self.apply_wallet(&day, event),
            DomainEvent::Order(event) => self.apply_order(&day, event),
            _ => {}
        }
    }

    fn apply_wallet(&mut self, day: &str, event: &WalletEvent) {
        match event {
            WalletEvent::Deposited { amount, source, postings, .. } => {
                self.add(day, "deposits", source.as_str(), Some(amount.currency()), amount.amount());
                self.count(day, "deposits_count", source.as_str());
                if let Some(user) = postings.legs().iter().find_map(|leg| leg.account.user()) {
                    self.count(day, "active_user", user.to_string());
                }
            }
            WalletEvent::DepositReversed { amount, source, .. } => {
                self.add(day, "reversals", source.as_str(), Some(amount.currency()), amount.amount());
            }
            WalletEvent::HoldCaptured { provider_id, cost, margin, .. } => {
                let currency = Some(cost.currency);
                self.add(day, "revenue", provider_id.as_str(), currency, cost.amount + margin.amount);
                self.add(day, "provider_cost", provider_id.as_str(), currency, cost.amount);
                self.add(day, "margin", provider_id.as_str(), currency, margin.amount);
            }
            WalletEvent::HoldReleased { reason, postings, .. } => {
                let reason = match reason {
                    ReleaseReason::Cancelled => "cancelled",
                    ReleaseReason::Expired => "expired",
                    ReleaseReason::ProviderFailed => "provider_failed",
                };
                for leg in postings.legs().iter().filter(|leg| leg.amount.is_positive()) {
                    self.add(day, "refunds", reason, Some(leg.amount.currency), leg.amount.amount);
                }
            }
            WalletEvent::HoldPlaced { .. }
            | WalletEvent::Adjusted { .. }
            | WalletEvent::WithdrawalRequested { .. }
            | WalletEvent::WithdrawalPaid { .. }
            | WalletEvent::WithdrawalRejected { .. } => {}
        }
    }

    fn apply_order(&mut self, day: &str, event: &OrderEvent) {
        match event {
            OrderEvent::Placed { user_id, service, country, number, .. } => {
                self.count(day, "orders", service.as_str());
                self.count(day, "orders_by_country", country.as_str());
                self.count(day, "active_user", user_id.to_string());
                if let Some(number) = number {
                    self.count(day, "orders_by_provider", number.provider_id.as_str());
                }
            }
            OrderEvent::NumberAssigned { provider_id, .. } => {
                self.count(day, "orders_by_provider", provider_id.as_str())
            }
            OrderEvent::Finished { .. } => self.count(day, "orders_by_status", "finished"),
            OrderEvent::Cancelled { .. } => self.count(day, "orders_by_status", "cancelled"),
            OrderEvent::Expired { .. } => self.count(day, "orders_by_status", "expired"),
            OrderEvent::ProviderFailed { .. } => self.count(day, "orders_by_status", "provider_failed"),
            OrderEvent::SmsReceived { .. } | OrderEvent::AnotherSmsRequested { .. } | OrderEvent::Extended { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(86_400_000_000 - 1), "1970-01-01");
        assert_eq!(day_of(1_795_996_800_000_000), "2026-11-30");
        assert_eq!(day_of(951_782_400_000_000), "2000-02-29");
        assert_eq!(day_of(-1), "1969-12-31");
    }
}
