//! How domain events become stored records: a stable type name, a schema version and a
//! JSON payload. Event payloads are frozen contracts; old versions are upcast on read.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::api_key::ApiKeyEvent;
use crate::deposit::{DepositEvent, DepositMethod, Reference};
use crate::identity::{Email, UserEvent};
use crate::ids::{ApiKeyId, DepositId, OrderId, SessionId, UserId};
use crate::ledger::Postings;
use crate::maintenance::MaintenanceEvent;
use crate::money::Currency;
use crate::order::OrderEvent;
use crate::pricing::PricingEvent;
use crate::session::SessionEvent;
use crate::wallet::WalletEvent;

/// The schema version every event type is written with today.
pub const SCHEMA_VERSION_CURRENT: i32 = 1;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DomainEvent {
    Wallet(WalletEvent),
    Order(OrderEvent),
    User(UserEvent),
    /// The first event of an `email-{address}` stream: the address belongs to this user.
    EmailClaimed(EmailClaim),
    Session(SessionEvent),
    ApiKey(ApiKeyEvent),
    Maintenance(MaintenanceEvent),
    Pricing(PricingEvent),
    Deposit(DepositEvent),
    /// The first event of a `deposit-ref-{method}-{reference}` stream: the reference belongs
    /// to this deposit, so it is credited once, ever.
    ReferenceClaimed(ReferenceClaim),
}

/// Appended with `NoStream` together with the deposit that uses the reference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "type")]
pub enum ReferenceClaim {
    #[serde(rename = "deposit_reference.claimed")]
    Claimed { deposit_id: DepositId, method: DepositMethod, reference: Reference },
}

/// Appended with `NoStream` to `email-{address}` in the same append as the registration, so
/// two registrations of one address cannot both commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "type")]
pub enum EmailClaim {
    #[serde(rename = "email.claimed")]
    Claimed { user_id: UserId, email: Email },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("event type {event_type:?} has no schema version {version}")]
    UnknownVersion { event_type: String, version: i32 },
    #[error("payload does not match {event_type:?}: {reason}")]
    BadPayload { event_type: String, reason: String },
}

impl DomainEvent {
    /// `(event_type, payload)`; the payload is the event's fields without the type tag.
    pub fn encode(&self) -> (String, Value) {
        match self {
            DomainEvent::Wallet(event) => split_tag(event),
            DomainEvent::Order(event) => split_tag(event),
            DomainEvent::User(event) => split_tag(event),
            DomainEvent::EmailClaimed(event) => split_tag(event),
            DomainEvent::Session(event) => split_tag(event),
            DomainEvent::ApiKey(event) => split_tag(event),
            DomainEvent::Maintenance(event) => split_tag(event),
            DomainEvent::Pricing(event) => split_tag(event),
            DomainEvent::Deposit(event) => split_tag(event),
            DomainEvent::ReferenceClaimed(event) => split_tag(event),
        }
    }

    pub fn decode(event_type: &str, schema_version: i32, payload: &Value) -> Result<Self, DecodeError> {
        DomainEvent::decode_owned(event_type, schema_version, payload.clone())
    }

    /// `decode` for a payload the caller no longer needs (no copy).
    pub fn decode_owned(event_type: &str, schema_version: i32, payload: Value) -> Result<Self, DecodeError> {
        let payload = upcast(event_type, schema_version, payload)?;
        match event_type.split_once('.').map(|(prefix, _)| prefix) {
            Some("wallet") => join_tag(event_type, payload).map(DomainEvent::Wallet),
            Some("order") => join_tag(event_type, payload).map(DomainEvent::Order),
            Some("user") => join_tag(event_type, payload).map(DomainEvent::User),
            Some("email") => join_tag(event_type, payload).map(DomainEvent::EmailClaimed),
            Some("session") => join_tag(event_type, payload).map(DomainEvent::Session),
            Some("api_key") => join_tag(event_type, payload).map(DomainEvent::ApiKey),
            Some("maintenance") => join_tag(event_type, payload).map(DomainEvent::Maintenance),
            Some("pricing") => join_tag(event_type, payload).map(DomainEvent::Pricing),
            Some("deposit") => join_tag(event_type, payload).map(DomainEvent::Deposit),
            Some("deposit_reference") => join_tag(event_type, payload).map(DomainEvent::ReferenceClaimed),
            _ => Err(DecodeError::UnknownType(event_type.to_owned())),
        }
    }

    /// The ledger postings this event makes, if it is a ledger event.
    pub fn postings(&self) -> Option<&Postings> {
        match self {
            DomainEvent::Wallet(event) => Some(event.postings()),
            _ => None,
        }
    }
}

impl From<WalletEvent> for DomainEvent {
    fn from(event: WalletEvent) -> Self {
        DomainEvent::Wallet(event)
    }
}

impl From<OrderEvent> for DomainEvent {
    fn from(event: OrderEvent) -> Self {
        DomainEvent::Order(event)
    }
}

macro_rules! from_event {
    ($($event:ty => $variant:ident),*) => {$(
        impl From<$event> for DomainEvent {
            fn from(event: $event) -> Self {
                DomainEvent::$variant(event)
            }
        }
    )*};
}

from_event!(UserEvent => User, EmailClaim => EmailClaimed, SessionEvent => Session, ApiKeyEvent => ApiKey,
    MaintenanceEvent => Maintenance, PricingEvent => Pricing, DepositEvent => Deposit,
    ReferenceClaim => ReferenceClaimed);

/// Turns a payload written with an older schema version into the current shape.
/// No event type has changed yet, so version 1 is the only one accepted.
fn upcast(event_type: &str, version: i32, payload: Value) -> Result<Value, DecodeError> {
    match version {
        SCHEMA_VERSION_CURRENT => Ok(payload),
        _ => Err(DecodeError::UnknownVersion { event_type: event_type.to_owned(), version }),
    }
}

fn split_tag<E: Serialize>(event: &E) -> (String, Value) {
    let value = serde_json::to_value(event).expect("domain events always serialize");
    let Value::Object(mut fields) = value else { unreachable!("events are tagged structs") };
    let Some(Value::String(event_type)) = fields.remove("type") else { unreachable!("events carry a type tag") };
    (event_type, Value::Object(fields))
}

fn join_tag<E: DeserializeOwned>(event_type: &str, payload: Value) -> Result<E, DecodeError> {
    let bad = |reason: String| DecodeError::BadPayload { event_type: event_type.to_owned(), reason };
    let Value::Object(fields) = payload else { return Err(bad("payload is not an object".into())) };
    let mut tagged = Map::with_capacity(fields.len() + 1);
    tagged.insert("type".into(), Value::String(event_type.to_owned()));
    tagged.extend(fields);
    serde_json::from_value(Value::Object(tagged)).map_err(|error| {
        if error.to_string().starts_with("unknown variant") {
            DecodeError::UnknownType(event_type.to_owned())
        } else {
            bad(error.to_string())
        }
    })
}

/// Stream names. One wallet stream per user and currency; one stream per order.
pub fn wallet_stream(user: UserId, currency: Currency) -> String {
    format!("wallet-{user}-{currency}")
}

pub fn order_stream(order: OrderId) -> String {
    format!("order-{order}")
}

pub fn user_stream(user: UserId) -> String {
    format!("user-{user}")
}

pub fn email_stream(email: &Email) -> String {
    format!("email-{email}")
}

pub fn session_stream(session: SessionId) -> String {
    format!("session-{session}")
}

pub fn api_key_stream(key: ApiKeyId) -> String {
    format!("api-key-{key}")
}

/// When a key was last used; kept apart so the key's own stream stays short.
pub fn api_key_used_stream(key: ApiKeyId) -> String {
    format!("api-key-used-{key}")
}

pub fn deposit_stream(deposit: DepositId) -> String {
    format!("deposit-{deposit}")
}

/// Claims an external reference (a payment intent, a UPI reference, a TRON hash) for ever.
pub fn deposit_reference_stream(method: DepositMethod, reference: &Reference) -> String {
    format!("deposit-ref-{}-{}", method.as_str(), reference.as_str())
}

pub const MAINTENANCE_STREAM: &str = "maintenance";

pub const PRICING_STREAM: &str = "pricing";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DepositId, Timestamp};
    use crate::ledger::{Account, Clearing};
    use crate::money::{Money, PositiveMoney};

    fn deposited() -> DomainEvent {
        let amount = PositiveMoney::parse("2.50", "USD").unwrap();
        DomainEvent::Wallet(WalletEvent::Deposited {
            deposit_id: DepositId::new(),
            amount,
            source: Clearing::Sandbox,
            postings: Postings::new().transfer(
                Account::Clearing(Clearing::Sandbox),
                Account::UserAvailable(UserId::new()),
                Money::from(amount),
            ),
        })
    }

    #[test]
    fn round_trips_through_type_and_payload() {
        for event in [deposited(), DomainEvent::Order(OrderEvent::Cancelled { at: Timestamp(5) })] {
            let (event_type, payload) = event.encode();
            assert!(payload.get("type").is_none());
            assert_eq!(DomainEvent::decode(&event_type, SCHEMA_VERSION_CURRENT, &payload).unwrap(), event);
        }
        assert_eq!(deposited().encode().0, "wallet.deposited");
    }

    #[test]
    fn every_kind_of_event_round_trips_under_its_prefix() {
        use crate::api_key::ApiKeyEvent;
        use crate::identity::{Email, Role};
        use crate::ids::{ApiKeyId, SessionId};
        use crate::maintenance::{MaintenanceEvent, Scope};
        use crate::pricing::{PricingEvent, Rule, Scope as PriceScope};
        use crate::session::SessionEvent;
        let (user_id, at) = (UserId::new(), Timestamp(7));
        let email = Email::parse("ann@example.com").unwrap();
        let events: Vec<(DomainEvent, &str)> = vec![
            (
                UserEvent::Registered {
                    user_id,
                    email: email.clone(),
                    password_hash: "h".into(),
                    role: Role::User,
                    at,
                }
                .into(),
                "user.registered",
            ),
            (EmailClaim::Claimed { user_id, email }.into(), "email.claimed"),
            (
                SessionEvent::Issued {
                    session_id: SessionId::new(),
                    user_id,
                    token_hash: "t".into(),
                    expires_at: at,
                    mfa: false,
                    at,
                }
                .into(),
                "session.issued",
            ),
            (
                ApiKeyEvent::Issued { key_id: ApiKeyId::new(), user_id, secret_hash: "s".into(), at }.into(),
                "api_key.issued",
            ),
            (MaintenanceEvent::Set { scope: Scope::Auth, window: None, by: user_id, at }.into(), "maintenance.set"),
            (
                PricingEvent::RuleSet {
                    scope: PriceScope::default(),
                    rule: Rule {
                        markup_percent: "25".parse().unwrap(),
                        markup_fixed: "0".parse().unwrap(),
                        min_price: None,
                        max_price: Some("9.99".parse().unwrap()),
                    },
                    by: user_id,
                    at,
                }
                .into(),
                "pricing.rule_set",
            ),
            (
                DepositEvent::Initiated {
                    deposit_id: DepositId::new(),
                    user_id,
                    method: DepositMethod::Tron,
                    amount: PositiveMoney::parse("5", "USD").unwrap(),
                    reference: Some(Reference::parse("abc").unwrap()),
                    at,
                }
                .into(),
                "deposit.initiated",
            ),
            (
                ReferenceClaim::Claimed {
                    deposit_id: DepositId::new(),
                    method: DepositMethod::Upi,
                    reference: Reference::parse("UTR1").unwrap(),
                }
                .into(),
                "deposit_reference.claimed",
            ),
        ];
        for (event, expected_type) in events {
            let (event_type, payload) = event.encode();
            assert_eq!(event_type, expected_type);
            assert_eq!(DomainEvent::decode(&event_type, SCHEMA_VERSION_CURRENT, &payload).unwrap(), event);
            assert!(event.postings().is_none(), "{event_type} moves no money");
            if event_type == "pricing.rule_set" {
                assert_eq!(payload["rule"]["max_price"], "9.99", "amounts are strings, never floats");
                assert_eq!(payload["rule"]["min_price"], serde_json::Value::Null);
            }
        }
    }

    #[test]
    fn decoding_failures_are_typed() {
        let (event_type, payload) = deposited().encode();
        assert_eq!(
            DomainEvent::decode(&event_type, 2, &payload),
            Err(DecodeError::UnknownVersion { event_type: event_type.clone(), version: 2 })
        );
        assert_eq!(
            DomainEvent::decode("wallet.nope", 1, &payload),
            Err(DecodeError::UnknownType("wallet.nope".into()))
        );
        assert_eq!(DomainEvent::decode("other", 1, &payload), Err(DecodeError::UnknownType("other".into())));
        assert!(matches!(
            DomainEvent::decode(&event_type, 1, &serde_json::json!({"deposit_id": 3})),
            Err(DecodeError::BadPayload { .. })
        ));
        assert!(matches!(
            DomainEvent::decode(&event_type, 1, &serde_json::json!([1])),
            Err(DecodeError::BadPayload { .. })
        ));
    }
}
