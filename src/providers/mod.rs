//! Upstream number providers behind one interface. A provider rents a number for a service
//! in a country, reports the SMS that reached it, and takes the number back (cancel, finish,
//! another SMS). Implementations: the in-process sandbox (the default when no provider keys
//! are set), SMS-Man's control API and TextVerified's API v2.
//!
//! Dispatch is an enum, not a trait object: async methods stay plain `async fn`, and adding a
//! provider is one variant and one arm per method.

pub mod routing;
pub mod sandbox;
pub mod smsman;
pub mod textverified;

use domain::Money;
use domain::catalog::{CountryCode, PhoneNumber, ServiceCode};

pub use sandbox::{Sandbox, SandboxBehaviour, SandboxSettings};
pub use smsman::{SmsMan, SmsManSettings};
pub use textverified::{TextVerified, TextVerifiedSettings};

/// What a caller asks a provider for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NumberRequest {
    pub service: ServiceCode,
    pub country: CountryCode,
    /// The most we will pay the provider; a dearer number is refused, not bought.
    pub max_cost: Option<Money>,
}

impl NumberRequest {
    /// Refuses a `cost` above `max_cost`. A limit in another currency cannot be compared, so it
    /// refuses too: a number is never bought past a limit nobody could check.
    pub fn check_cost(&self, cost: Money) -> Result<(), ProviderError> {
        match self.max_cost {
            Some(max) if max.currency != cost.currency || cost.amount > max.amount => {
                Err(ProviderError::TooExpensive { cost })
            }
            _ => Ok(()),
        }
    }
}

/// A JSON string or number as text (providers send ids and amounts as either).
fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON string or number as an exact decimal (never through a float).
fn json_decimal(value: &serde_json::Value) -> Option<rust_decimal::Decimal> {
    json_text(value)?.parse().ok()
}

/// A rented number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rental {
    /// The provider's own id of the rental, used for every later call about it.
    pub provider_order_id: String,
    pub phone: PhoneNumber,
    /// What the provider charges us.
    pub cost: Money,
}

/// One SMS that reached a rented number; `sms_id` is unique per rental (it keys idempotency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedSms {
    pub sms_id: String,
    pub code: String,
    pub text: String,
}

/// What a provider says of a rental when asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SmsStatus {
    /// Nothing arrived yet.
    Waiting,
    /// Every SMS so far, oldest first.
    Received(Vec<ReceivedSms>),
    /// The provider ended the rental (cancelled, timed out on its side).
    Ended,
}

/// A service in a country at a cost, with how many numbers are free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Offer {
    pub service: ServiceCode,
    pub country: CountryCode,
    pub cost: Money,
    pub available: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("the provider has no numbers for this service and country")]
    NoNumbers,
    #[error("the provider's price {cost} is above the limit")]
    TooExpensive { cost: Money },
    #[error("the provider does not know this rental")]
    UnknownRental,
    /// The provider refused the call (its own reason): not worth retrying as is.
    #[error("the provider refused: {0}")]
    Refused(String),
    /// Timeout, 5xx, unreadable answer: worth retrying, or trying another provider.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

impl ProviderError {
    /// Whether routing should try the next provider for the same request.
    pub fn fails_over(&self) -> bool {
        matches!(self, ProviderError::NoNumbers | ProviderError::TooExpensive { .. } | ProviderError::Unavailable(_))
    }
}

/// The HTTP client of a provider: explicit timeouts for the whole request and the connection.
fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .build()
        .expect("the HTTP client builds (its TLS backend is compiled in)")
}

/// The configured providers in the order routing prefers them on equal cost: SMS-Man,
/// TextVerified, then the sandbox.
pub fn from_settings(settings: &crate::config::ProviderSettings, currency: domain::Currency) -> Vec<Provider> {
    use std::sync::Arc;
    let mut providers = Vec::new();
    if let Some((base_url, token)) = &settings.smsman {
        let smsman =
            SmsManSettings { base_url: base_url.clone(), token: token.clone(), timeout: settings.timeout, currency };
        providers.push(Provider::SmsMan(Arc::new(SmsMan::new(smsman))));
    }
    if let Some(textverified) = &settings.textverified {
        providers.push(Provider::TextVerified(Arc::new(TextVerified::new(textverified.clone()))));
    }
    if settings.sandbox {
        let cost = Money::new(settings.sandbox_cost, currency).expect("SANDBOX_COST was checked at start-up");
        let clock: sandbox::Clock = Arc::new(|| domain::Timestamp(chrono::Utc::now().timestamp_millis()));
        let mut sandbox = SandboxSettings::new(cost, settings.sandbox_code_delay, clock);
        sandbox.behaviour = settings.sandbox_behaviour;
        sandbox.deliver_percent = settings.sandbox_deliver_percent;
        providers.push(Provider::Sandbox(Arc::new(Sandbox::new(sandbox))));
    }
    providers
}

#[derive(Clone)]
pub enum Provider {
    Sandbox(std::sync::Arc<Sandbox>),
    SmsMan(std::sync::Arc<SmsMan>),
    TextVerified(std::sync::Arc<TextVerified>),
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Provider({})", self.id())
    }
}

impl Provider {
    /// Stable id, recorded in order events (`provider_id`) and ledger accounts.
    pub fn id(&self) -> &'static str {
        match self {
            Provider::Sandbox(_) => sandbox::PROVIDER_ID,
            Provider::SmsMan(_) => smsman::PROVIDER_ID,
            Provider::TextVerified(_) => textverified::PROVIDER_ID,
        }
    }

    /// Whether the provider answers with our credentials now.
    pub async fn health(&self) -> Result<(), ProviderError> {
        match self {
            Provider::Sandbox(sandbox) => sandbox.health(),
            Provider::SmsMan(smsman) => smsman.health().await,
            Provider::TextVerified(textverified) => textverified.health().await,
        }
    }

    /// What we hold at the provider; `None` for the sandbox, which has no money.
    pub async fn balance(&self) -> Result<Option<Money>, ProviderError> {
        match self {
            Provider::Sandbox(_) => Ok(None),
            Provider::SmsMan(smsman) => smsman.balance().await.map(Some),
            Provider::TextVerified(textverified) => textverified.balance().await.map(Some),
        }
    }

    pub async fn offers(&self) -> Result<Vec<Offer>, ProviderError> {
        match self {
            Provider::Sandbox(sandbox) => sandbox.offers(),
            Provider::SmsMan(smsman) => smsman.offers().await,
            Provider::TextVerified(textverified) => textverified.offers().await,
        }
    }

    pub async fn rent(&self, request: &NumberRequest) -> Result<Rental, ProviderError> {
        match self {
            Provider::Sandbox(sandbox) => sandbox.rent(request),
            Provider::SmsMan(smsman) => smsman.rent(request).await,
            Provider::TextVerified(textverified) => textverified.rent(request).await,
        }
    }

    pub async fn sms(&self, provider_order_id: &str) -> Result<SmsStatus, ProviderError> {
        match self {
            Provider::Sandbox(sandbox) => sandbox.sms(provider_order_id),
            Provider::SmsMan(smsman) => smsman.sms(provider_order_id).await,
            Provider::TextVerified(textverified) => textverified.sms(provider_order_id).await,
        }
    }

    /// Gives the number back before any SMS, so the provider refunds us.
    pub async fn cancel(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        match self {
            Provider::Sandbox(sandbox) => sandbox.cancel(provider_order_id),
            Provider::SmsMan(smsman) => smsman.cancel(provider_order_id).await,
            Provider::TextVerified(textverified) => textverified.cancel(provider_order_id).await,
        }
    }

    /// Tells the provider we are done with a number that got its SMS.
    pub async fn finish(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        match self {
            Provider::Sandbox(sandbox) => sandbox.finish(provider_order_id),
            Provider::SmsMan(smsman) => smsman.finish(provider_order_id).await,
            Provider::TextVerified(textverified) => textverified.finish(provider_order_id).await,
        }
    }

    /// Whether the provider can keep a rented number longer than it first said.
    pub fn can_extend(&self) -> bool {
        matches!(self, Provider::Sandbox(_))
    }

    /// Keeps a rented number `by` longer. SMS-Man's control API and TextVerified's
    /// verifications have no such call: they refuse without asking.
    pub async fn extend(&self, provider_order_id: &str, by: std::time::Duration) -> Result<(), ProviderError> {
        match self {
            Provider::Sandbox(sandbox) => sandbox.extend(provider_order_id, by),
            Provider::SmsMan(_) | Provider::TextVerified(_) => {
                Err(ProviderError::Refused(format!("{} cannot extend a rental", self.id())))
            }
        }
    }

    /// Asks for another SMS on the same number.
    pub async fn another_sms(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        match self {
            Provider::Sandbox(sandbox) => sandbox.another_sms(provider_order_id),
            Provider::SmsMan(smsman) => smsman.another_sms(provider_order_id).await,
            Provider::TextVerified(textverified) => textverified.another_sms(provider_order_id).await,
        }
    }
}
