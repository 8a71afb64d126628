//! The real TextVerified client against a local fake that speaks API v2: the bearer token
//! (obtained once, renewed after a 401), pricing, creating a verification and following its
//! link, the SMS list, cancel and reuse, and its failures.

mod common;

use domain::Money;
use domain::catalog::{CountryCode, ServiceCode};
use serde_json::json;
use smsledger::providers::{NumberRequest, ProviderError, SmsStatus};

use common::fake_textverified::{client, fake_textverified};

fn request(service: &str, country: &str, max: Option<&str>) -> NumberRequest {
    NumberRequest {
        service: ServiceCode::parse(service).unwrap(),
        country: CountryCode::parse(country).unwrap(),
        max_cost: max.map(|m| Money::parse(m, "USD").unwrap()),
    }
}

#[tokio::test]
async fn a_verification_from_price_to_code() {
    let (base, fake) = fake_textverified().await;
    let provider = client(&base, "key-1");
    let offers = provider.offers().await.unwrap();
    assert_eq!(offers.len(), 2, "only the services the fake prices: {offers:?}");
    let telegram = offers.iter().find(|o| o.service.as_str() == "tg").expect("telegram offered");
    assert_eq!(telegram.cost, Money::parse("0.75", "USD").unwrap());
    assert!(offers.iter().all(|o| o.country.as_str() == "US"));

    let rental = provider.rent(&request("tg", "US", Some("1.00"))).await.unwrap();
    assert_eq!(rental.provider_order_id, "ver-1");
    assert_eq!(rental.phone.as_str(), "+12025550147");
    assert_eq!(rental.cost, Money::parse("0.75", "USD").unwrap());
    assert_eq!(fake.lock().unwrap().created_with[0]["serviceName"], "telegram");
    assert_eq!(fake.lock().unwrap().auths, 1, "one token for every call so far");
    fake.lock().unwrap().balance = 12.3;
    assert_eq!(provider.balance().await.unwrap(), Some(Money::parse("12.30", "USD").unwrap()));

    assert_eq!(provider.sms("ver-1").await.unwrap(), SmsStatus::Waiting);
    fake.lock().unwrap().sms.push(json!({
        "id": "sms-1", "from": "12345", "to": "+12025550147", "createdAt": "2026-11-21T10:01:00Z",
        "smsContent": "Telegram code 77123", "parsedCode": "77123", "encrypted": false
    }));
    let SmsStatus::Received(received) = provider.sms("ver-1").await.unwrap() else { panic!("an SMS") };
    assert_eq!((received[0].code.as_str(), received[0].text.as_str()), ("77123", "Telegram code 77123"));

    provider.another_sms("ver-1").await.unwrap();
    provider.cancel("ver-1").await.unwrap();
    assert_eq!(fake.lock().unwrap().actions, vec!["ver-1/reuse", "ver-1/cancel"]);
    fake.lock().unwrap().sms.clear();
    assert_eq!(provider.sms("ver-1").await.unwrap(), SmsStatus::Ended);

    // A token the fake stops accepting is dropped on the 401 and a new one taken next time.
    fake.lock().unwrap().token = "rotated".into();
    assert!(provider.sms("ver-1").await.is_err());
    assert_eq!(provider.sms("ver-1").await.unwrap(), SmsStatus::Ended);
    assert_eq!(fake.lock().unwrap().auths, 2);
}

#[tokio::test]
async fn refusals_and_failures_are_told_apart() {
    let (base, fake) = fake_textverified().await;
    let provider = client(&base, "key-1");
    assert_eq!(provider.rent(&request("tg", "GB", None)).await.unwrap_err(), ProviderError::NoNumbers, "US only");
    assert_eq!(provider.rent(&request("zz", "US", None)).await.unwrap_err(), ProviderError::NoNumbers);
    let dear = provider.rent(&request("wa", "US", Some("1.00"))).await.unwrap_err();
    assert_eq!(dear, ProviderError::TooExpensive { cost: Money::parse("1.5", "USD").unwrap() });
    assert!(fake.lock().unwrap().created_with.is_empty(), "nothing bought above the limit");

    // Quoted 0.75, charged 0.95 (the price rose meanwhile): given back, not kept.
    fake.lock().unwrap().total_cost = Some(0.95);
    let risen = provider.rent(&request("tg", "US", Some("0.80"))).await.unwrap_err();
    assert_eq!(risen, ProviderError::TooExpensive { cost: Money::parse("0.95", "USD").unwrap() });
    assert_eq!(fake.lock().unwrap().actions, vec!["ver-1/cancel"]);
    fake.lock().unwrap().total_cost = None;

    fake.lock().unwrap().create = "none".into();
    assert_eq!(provider.rent(&request("tg", "US", None)).await.unwrap_err(), ProviderError::NoNumbers);
    fake.lock().unwrap().create = "500".into();
    assert!(matches!(provider.rent(&request("tg", "US", None)).await.unwrap_err(), ProviderError::Unavailable(_)));
    assert_eq!(provider.sms("ver-404").await.unwrap_err(), ProviderError::UnknownRental);

    let bad_key = client(&base, "wrong");
    let error = bad_key.rent(&request("tg", "US", None)).await.unwrap_err();
    assert!(matches!(error, ProviderError::Refused(_)) && !error.fails_over(), "{error}");
    let nowhere = client("http://127.0.0.1:1", "key-1");
    assert!(matches!(nowhere.rent(&request("tg", "US", None)).await.unwrap_err(), ProviderError::Unavailable(_)));
}
