//! Double-entry ledger: named accounts and balanced postings.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::UserId;
use crate::money::{Currency, Money};

/// Where money comes from or goes to outside the service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clearing {
    Stripe,
    Manual,
    Sandbox,
    /// UPI transfers, confirmed by an admin.
    Upi,
    /// TRON (USDT) transfers, confirmed by reading the chain.
    Tron,
}

impl Clearing {
    pub fn as_str(&self) -> &'static str {
        match self {
            Clearing::Stripe => "stripe",
            Clearing::Manual => "manual",
            Clearing::Sandbox => "sandbox",
            Clearing::Upi => "upi",
            Clearing::Tron => "tron",
        }
    }
}

/// A ledger account. Its text form (`user:{id}:available`) is what the log and the
/// projections store.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    UserAvailable(UserId),
    UserHeld(UserId),
    /// What a user owes: a chargeback larger than their available balance. Its balance is
    /// zero or negative; the user's next deposits repay it first.
    UserDebt(UserId),
    ProviderPayable(String),
    RevenueMargin,
    Clearing(Clearing),
    PayoutPending,
    EquityAdjustments,
}

impl Account {
    /// The user this account belongs to, for user accounts.
    pub fn user(&self) -> Option<UserId> {
        match self {
            Account::UserAvailable(u) | Account::UserHeld(u) | Account::UserDebt(u) => Some(*u),
            _ => None,
        }
    }
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::UserAvailable(u) => write!(f, "user:{u}:available"),
            Account::UserHeld(u) => write!(f, "user:{u}:held"),
            Account::UserDebt(u) => write!(f, "user:{u}:debt"),
            Account::ProviderPayable(p) => write!(f, "provider:{p}:payable"),
            Account::RevenueMargin => f.write_str("revenue:margin"),
            Account::Clearing(c) => write!(f, "clearing:{}", c.as_str()),
            Account::PayoutPending => f.write_str("payout:pending"),
            Account::EquityAdjustments => f.write_str("equity:adjustments"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ledger account {0:?}")]
pub struct BadAccount(pub String);

impl FromStr for Account {
    type Err = BadAccount;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadAccount(s.to_owned());
        let parts: Vec<&str> = s.split(':').collect();
        match parts.as_slice() {
            ["user", id, "available"] => Ok(Account::UserAvailable(id.parse().map_err(|_| bad())?)),
            ["user", id, "held"] => Ok(Account::UserHeld(id.parse().map_err(|_| bad())?)),
            ["user", id, "debt"] => Ok(Account::UserDebt(id.parse().map_err(|_| bad())?)),
            ["provider", id, "payable"] if is_provider_id(id) => Ok(Account::ProviderPayable((*id).to_owned())),
            ["revenue", "margin"] => Ok(Account::RevenueMargin),
            ["clearing", "stripe"] => Ok(Account::Clearing(Clearing::Stripe)),
            ["clearing", "manual"] => Ok(Account::Clearing(Clearing::Manual)),
            ["clearing", "sandbox"] => Ok(Account::Clearing(Clearing::Sandbox)),
            ["clearing", "upi"] => Ok(Account::Clearing(Clearing::Upi)),
            ["clearing", "tron"] => Ok(Account::Clearing(Clearing::Tron)),
            ["payout", "pending"] => Ok(Account::PayoutPending),
            ["equity", "adjustments"] => Ok(Account::EquityAdjustments),
            _ => Err(bad()),
        }
    }
}

/// Provider ids are short slugs such as `smsman` or `sandbox`.
pub fn is_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

impl Serialize for Account {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Account {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// One leg: a signed amount on an account. Positive raises the account's balance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Posting {
    pub account: Account,
    pub amount: Money,
}

/// The legs of one ledger event. Built only through [`Postings::transfer`], so the legs
/// always sum to zero per currency; [`Postings::check_balanced`] re-checks decoded ones.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Postings(Vec<Posting>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("postings do not sum to zero in {currency}: off by {imbalance}")]
pub struct Unbalanced {
    pub currency: Currency,
    pub imbalance: Decimal,
}

impl Postings {
    pub fn new() -> Self {
        Postings(Vec::new())
    }

    /// Moves `amount` (positive) from one account to another.
    pub fn transfer(mut self, from: Account, to: Account, amount: Money) -> Self {
        assert!(!amount.is_negative(), "a transfer amount is never negative");
        if amount.amount.is_zero() {
            return self;
        }
        self.0.push(Posting { account: from, amount: amount.negated() });
        self.0.push(Posting { account: to, amount });
        self
    }

    pub fn legs(&self) -> &[Posting] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sum per currency; every entry must be zero for a valid event.
    pub fn sums(&self) -> BTreeMap<Currency, Decimal> {
        let mut sums = BTreeMap::new();
        for leg in &self.0 {
            *sums.entry(leg.amount.currency).or_insert(Decimal::ZERO) += leg.amount.amount;
        }
        sums
    }

    pub fn check_balanced(&self) -> Result<(), Unbalanced> {
        match self.sums().into_iter().find(|(_, sum)| !sum.is_zero()) {
            Some((currency, imbalance)) => Err(Unbalanced { currency, imbalance }),
            None => Ok(()),
        }
    }

    /// The net change these postings make to one account.
    pub fn net(&self, account: &Account, currency: Currency) -> Decimal {
        self.0
            .iter()
            .filter(|leg| &leg.account == account && leg.amount.currency == currency)
            .map(|leg| leg.amount.amount)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_round_trip() {
        let user = UserId::new();
        let accounts = [
            Account::UserAvailable(user),
            Account::UserHeld(user),
            Account::UserDebt(user),
            Account::ProviderPayable("smsman".into()),
            Account::RevenueMargin,
            Account::Clearing(Clearing::Stripe),
            Account::Clearing(Clearing::Manual),
            Account::Clearing(Clearing::Sandbox),
            Account::Clearing(Clearing::Upi),
            Account::Clearing(Clearing::Tron),
            Account::PayoutPending,
            Account::EquityAdjustments,
        ];
        for account in accounts {
            assert_eq!(account.to_string().parse::<Account>().unwrap(), account);
        }
        assert_eq!(Account::UserHeld(user).to_string(), format!("user:{user}:held"));
    }

    #[test]
    fn rejects_unknown_accounts() {
        for bad in ["", "user:x:available", "revenue", "provider::payable", "provider:A B:payable", "clearing:paypal"] {
            assert!(bad.parse::<Account>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn transfers_balance_and_net_out() {
        let user = UserId::new();
        let ten = Money::parse("10", "USD").unwrap();
        let p = Postings::new().transfer(Account::Clearing(Clearing::Stripe), Account::UserAvailable(user), ten);
        assert!(p.check_balanced().is_ok());
        assert_eq!(p.net(&Account::UserAvailable(user), Currency::USD), Decimal::TEN);
        assert_eq!(p.net(&Account::Clearing(Clearing::Stripe), Currency::USD), -Decimal::TEN);
    }

    #[test]
    fn detects_unbalanced_decoded_postings() {
        let json = r#"[{"account":"revenue:margin","amount":{"amount":"1","currency":"USD"}}]"#;
        let p: Postings = serde_json::from_str(json).unwrap();
        assert_eq!(p.check_balanced(), Err(Unbalanced { currency: Currency::USD, imbalance: Decimal::ONE }));
    }
}
