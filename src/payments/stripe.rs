//! Stripe over its HTTP API, the two things we need of it:
//!
//! - `POST {base}/v1/payment_intents` (form-encoded, `Authorization: Bearer sk_...`,
//!   `Idempotency-Key`): `amount` in the currency's smallest unit, lowercase `currency`,
//!   `automatic_payment_methods[enabled]=true`, `metadata[deposit_id]`, `metadata[user_id]`
//!   -> `{"id": "pi_...", "client_secret": "..._secret_...", "status": ...}`; errors are
//!   `{"error": {"type", "code", "message"}}` with a 4xx or 5xx.
//! - Webhooks: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=...][,v0=...]`, where v1 is
//!   HMAC-SHA256 of `"{t}.{raw body}"` under the endpoint secret (`whsec_...`). We accept an
//!   event only if one v1 matches and `t` is within the tolerance of our clock.
//!
//! Amounts cross this boundary as integers of minor units and become `Decimal` at once.

use std::time::Duration;

use aws_lc_rs::hmac;
use domain::{Currency, DepositId, PositiveMoney, UserId};
use rust_decimal::Decimal;
use serde_json::Value;

pub const BASE_URL_DEFAULT: &str = "https://api.stripe.com";
/// Stripe's own default for webhook timestamps.
pub const SIGNATURE_TOLERANCE_S: i64 = 300;

/// Currencies Stripe counts in whole units (no minor unit).
const ZERO_DECIMAL: [&str; 16] =
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"];
/// Three-decimal currencies need amounts rounded to tens of minor units; we do not take them.
const THREE_DECIMAL: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];

#[derive(Clone, Debug)]
pub struct StripeSettings {
    /// `STRIPE_API_BASE` (tests point it at a local fake).
    pub base_url: String,
    pub secret_key: String,
    pub webhook_secret: String,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    #[error("Stripe refused: {0}")]
    Refused(String),
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    #[error("{0} cannot be paid through Stripe")]
    UnsupportedCurrency(Currency),
    #[error("{0} has more decimal places than {1} allows")]
    TooPrecise(Decimal, Currency),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentIntent {
    pub id: String,
    pub client_secret: String,
    pub status: String,
}

pub struct Stripe {
    http: reqwest::Client,
    settings: StripeSettings,
}

impl Stripe {
    pub fn new(settings: StripeSettings) -> Stripe {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .expect("a client with timeouts only always builds");
        Stripe { http, settings }
    }

    pub fn webhook_secret(&self) -> &str {
        &self.settings.webhook_secret
    }

    /// Creates the payment intent for a deposit. The deposit id is the idempotency key, so
    /// a retry after a lost answer returns the same intent.
    pub async fn create_payment_intent(
        &self,
        deposit_id: DepositId,
        user_id: UserId,
        amount: PositiveMoney,
    ) -> Result<PaymentIntent, StripeError> {
        let minor = to_minor(amount.amount(), amount.currency())?;
        let form = [
            ("amount", minor.to_string()),
            ("currency", amount.currency().as_str().to_ascii_lowercase()),
            ("automatic_payment_methods[enabled]", "true".into()),
            ("metadata[deposit_id]", deposit_id.to_string()),
            ("metadata[user_id]", user_id.to_string()),
        ];
        let url = format!("{}/v1/payment_intents", self.settings.base_url.trim_end_matches('/'));
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.settings.secret_key)
            .header("Idempotency-Key", format!("deposit-{deposit_id}"))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).expect("string pairs always encode"))
            .send()
            .await
            .map_err(|e| StripeError::Unavailable(if e.is_timeout() { "timed out".into() } else { e.to_string() }))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|_| StripeError::Unavailable("not JSON".into()))?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no message").to_owned();
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                StripeError::Unavailable(format!("{status}: {message}"))
            } else {
                StripeError::Refused(message)
            });
        }
        let field = |name: &str| body[name].as_str().map(str::to_owned);
        match (field("id"), field("client_secret"), field("status")) {
            (Some(id), Some(client_secret), Some(status)) if id.starts_with("pi_") => {
                Ok(PaymentIntent { id, client_secret, status })
            }
            _ => Err(StripeError::Unavailable("an answer without id, client_secret and status".into())),
        }
    }
}

/// Decimal places Stripe counts `currency` in.
fn exponent(currency: Currency) -> Result<u32, StripeError> {
    if ZERO_DECIMAL.contains(&currency.as_str()) {
        Ok(0)
    } else if THREE_DECIMAL.contains(&currency.as_str()) {
        Err(StripeError::UnsupportedCurrency(currency))
    } else {
        Ok(2)
    }
}

/// An amount in minor units; an amount finer than the currency's unit is refused.
pub fn to_minor(amount: Decimal, currency: Currency) -> Result<i64, StripeError> {
    let scaled = amount * Decimal::from(10_i64.pow(exponent(currency)?));
    if scaled.fract() != Decimal::ZERO {
        return Err(StripeError::TooPrecise(amount, currency));
    }
    i64::try_from(scaled).map_err(|_| StripeError::TooPrecise(amount, currency))
}

/// Minor units (as Stripe sends them) back to an amount.
pub fn from_minor(minor: i64, currency: Currency) -> Result<Decimal, StripeError> {
    Ok(Decimal::new(minor, exponent(currency)?))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature timestamp and v1 signature")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no v1 signature matches")]
    Mismatch,
}

/// Checks a `Stripe-Signature` header over the raw body, at `now_s` (unix seconds).
pub fn verify_signature(secret: &str, header: &str, body: &[u8], now_s: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => timestamp = value.parse::<i64>().ok(),
            Some(("v1", value)) => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let (Some(timestamp), false) = (timestamp, signatures.is_empty()) else { return Err(SignatureError::Malformed) };
    if (now_s - timestamp).abs() > SIGNATURE_TOLERANCE_S {
        return Err(SignatureError::Stale);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signed = signed_payload(timestamp, body);
    let matches = signatures.iter().any(|signature| hmac::verify(&key, &signed, signature).is_ok());
    if matches { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// The header Stripe would send for `body` at `timestamp` (tests and the fake use it).
pub fn sign(secret: &str, body: &[u8], timestamp: i64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let signature = hmac::sign(&key, &signed_payload(timestamp, body));
    format!("t={timestamp},v1={}", hex::encode(signature.as_ref()))
}

fn signed_payload(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    signed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_follow_the_currency() {
        let usd = Currency::USD;
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(to_minor("12.34".parse().unwrap(), usd).unwrap(), 1234);
        assert_eq!(to_minor("5".parse().unwrap(), jpy).unwrap(), 5);
        assert!(matches!(to_minor("0.005".parse().unwrap(), usd), Err(StripeError::TooPrecise(..))));
        assert!(matches!(to_minor("1.5".parse().unwrap(), jpy), Err(StripeError::TooPrecise(..))));
        let kwd = Currency::parse("KWD").unwrap();
        assert!(matches!(to_minor("1".parse().unwrap(), kwd), Err(StripeError::UnsupportedCurrency(_))));
        assert_eq!(from_minor(1234, usd).unwrap(), "12.34".parse::<Decimal>().unwrap());
        assert_eq!(from_minor(7, jpy).unwrap(), Decimal::from(7));
    }

    #[test]
    fn signatures_are_checked_for_key_body_and_time() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign("whsec_test", body, 1_000);
        assert_eq!(verify_signature("whsec_test", &header, body, 1_100), Ok(()));
        assert_eq!(verify_signature("whsec_other", &header, body, 1_100), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature("whsec_test", &header, b"{}", 1_100), Err(SignatureError::Mismatch));
        assert_eq!(verify_signature("whsec_test", &header, body, 1_301), Err(SignatureError::Stale));
        assert_eq!(verify_signature("whsec_test", &header, body, 699), Err(SignatureError::Stale));
        assert_eq!(verify_signature("whsec_test", "v1=00", body, 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify_signature("whsec_test", "t=1000", body, 1_000), Err(SignatureError::Malformed));
        assert_eq!(verify_signature("whsec_test", "", body, 1_000), Err(SignatureError::Malformed));
        // Several v1 signatures (a rolled secret): one matching is enough; v0 is ignored.
        let good = header.split_once("v1=").unwrap().1;
        let rolled = format!("t=1000,v1={},v1={good},v0=abc", "ab".repeat(32));
        assert_eq!(verify_signature("whsec_test", &rolled, body, 1_000), Ok(()));
    }
}
