//! Exact money: a `Decimal` amount with a currency code. Never a float.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Most decimal places an amount may carry (provider prices go below a cent).
pub const MONEY_SCALE_MAX: u32 = 8;

/// An ISO-4217-style code: exactly three ASCII uppercase letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency must be three uppercase letters, got {0:?}")]
    BadCurrency(String),
    #[error("amount {0:?} is not a decimal number")]
    BadAmount(String),
    #[error("amount has more than {MONEY_SCALE_MAX} decimal places")]
    TooPrecise,
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("currencies differ: {0} and {1}")]
    CurrencyMismatch(Currency, Currency),
    #[error("amount out of range")]
    Overflow,
}

impl Currency {
    pub const USD: Currency = Currency(*b"USD");

    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        let bytes = code.as_bytes();
        if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_uppercase) {
            Ok(Currency([bytes[0], bytes[1], bytes[2]]))
        } else {
            Err(MoneyError::BadCurrency(code.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII uppercase letters can be stored, so this cannot fail.
        std::str::from_utf8(&self.0).expect("currency is ASCII")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::parse(s)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Currency::parse(&s)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.as_str().to_owned()
    }
}

/// An amount in a currency. Signed: ledger postings use negative amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, MoneyError> {
        if amount.scale() > MONEY_SCALE_MAX && amount.normalize().scale() > MONEY_SCALE_MAX {
            return Err(MoneyError::TooPrecise);
        }
        Ok(Money { amount: amount.normalize(), currency })
    }

    /// Parses a user-supplied amount such as `"12.50"`.
    pub fn parse(amount: &str, currency: &str) -> Result<Self, MoneyError> {
        let currency = Currency::parse(currency)?;
        let amount = Decimal::from_str_exact(amount.trim()).map_err(|_| MoneyError::BadAmount(amount.to_owned()))?;
        Money::new(amount, currency)
    }

    pub fn zero(currency: Currency) -> Self {
        Money { amount: Decimal::ZERO, currency }
    }

    pub fn is_positive(&self) -> bool {
        self.amount > Decimal::ZERO
    }

    pub fn is_negative(&self) -> bool {
        self.amount < Decimal::ZERO
    }

    pub fn negated(&self) -> Self {
        Money { amount: -self.amount, currency: self.currency }
    }

    pub fn checked_add(&self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let amount = self.amount.checked_add(other.amount).ok_or(MoneyError::Overflow)?;
        Ok(Money { amount: amount.normalize(), currency: self.currency })
    }

    pub fn checked_sub(&self, other: Money) -> Result<Money, MoneyError> {
        self.checked_add(other.negated())
    }

    fn same_currency(&self, other: Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch(self.currency, other.currency))
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// Money that is strictly greater than zero: what a deposit, hold or price must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Money", into = "Money")]
pub struct PositiveMoney(Money);

impl PositiveMoney {
    pub fn new(money: Money) -> Result<Self, MoneyError> {
        if money.is_positive() { Ok(PositiveMoney(money)) } else { Err(MoneyError::NotPositive) }
    }

    pub fn parse(amount: &str, currency: &str) -> Result<Self, MoneyError> {
        PositiveMoney::new(Money::parse(amount, currency)?)
    }

    pub fn money(&self) -> Money {
        self.0
    }

    pub fn amount(&self) -> Decimal {
        self.0.amount
    }

    pub fn currency(&self) -> Currency {
        self.0.currency
    }
}

impl TryFrom<Money> for PositiveMoney {
    type Error = MoneyError;
    fn try_from(m: Money) -> Result<Self, Self::Error> {
        PositiveMoney::new(m)
    }
}

impl From<PositiveMoney> for Money {
    fn from(p: PositiveMoney) -> Self {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn parses_exact_amounts() {
        let m = Money::parse("12.50", "USD").unwrap();
        assert_eq!(m.amount, Decimal::new(125, 1));
        assert_eq!(m.currency, Currency::USD);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(Money::parse("1.5", "usd"), Err(MoneyError::BadCurrency("usd".into())));
        assert_eq!(Money::parse("1.5", "USDT"), Err(MoneyError::BadCurrency("USDT".into())));
        assert!(matches!(Money::parse("abc", "USD"), Err(MoneyError::BadAmount(_))));
        assert!(matches!(Money::parse("1e3", "USD"), Err(MoneyError::BadAmount(_))));
        assert_eq!(Money::parse("0.000000001", "USD"), Err(MoneyError::TooPrecise));
        assert_eq!(PositiveMoney::parse("0", "USD"), Err(MoneyError::NotPositive));
        assert_eq!(PositiveMoney::parse("-1", "USD"), Err(MoneyError::NotPositive));
    }

    #[test]
    fn refuses_to_add_across_currencies() {
        let usd = Money::parse("1", "USD").unwrap();
        let eur = Money::parse("1", "EUR").unwrap();
        assert!(matches!(usd.checked_add(eur), Err(MoneyError::CurrencyMismatch(_, _))));
    }

    #[test]
    fn serializes_amount_as_string() {
        let m = Money::parse("0.10", "USD").unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"amount":"0.1","currency":"USD"}"#);
        assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
        assert!(serde_json::from_str::<PositiveMoney>(r#"{"amount":"-1","currency":"USD"}"#).is_err());
    }

    proptest! {
        #[test]
        fn parse_round_trips(units in -1_000_000_000i64..1_000_000_000, scale in 0u32..=8, cur in "[A-Z]{3}") {
            let m = Money::new(Decimal::new(units, scale), Currency::parse(&cur).unwrap()).unwrap();
            let back = Money::parse(&m.amount.to_string(), m.currency.as_str()).unwrap();
            prop_assert_eq!(back, m);
        }

        #[test]
        fn add_then_sub_is_identity(a in -1_000_000_000i64..1_000_000_000, b in -1_000_000_000i64..1_000_000_000) {
            let x = Money::new(Decimal::new(a, 2), Currency::USD).unwrap();
            let y = Money::new(Decimal::new(b, 3), Currency::USD).unwrap();
            prop_assert_eq!(x.checked_add(y).unwrap().checked_sub(y).unwrap(), x);
        }
    }
}
