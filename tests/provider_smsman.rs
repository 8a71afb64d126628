//! The real SMS-Man client against a local fake that speaks SMS-Man's control API: its
//! answers, its error objects (some with HTTP 200), slow answers, 5xx and garbage.

mod common;

use domain::Money;
use domain::catalog::{CountryCode, ServiceCode};
use smsledger::providers::{NumberRequest, Provider, ProviderError, SmsStatus};

use common::fake_smsman::{TOKEN, client, fake_smsman};

fn request(service: &str, max_cost: Option<&str>) -> NumberRequest {
    NumberRequest {
        service: ServiceCode::parse(service).unwrap(),
        country: CountryCode::parse("GB").unwrap(),
        max_cost: max_cost.map(|m| Money::parse(m, "USD").unwrap()),
    }
}

#[tokio::test]
async fn a_rental_from_offer_to_code_to_close() {
    let (base, fake) = fake_smsman().await;
    let provider = client(&base, TOKEN);
    let Provider::SmsMan(smsman) = &provider else { unreachable!() };
    assert_eq!(smsman.balance().await.unwrap(), Money::parse("12.34", "USD").unwrap());

    let mut offers = provider.offers().await.unwrap();
    offers.sort_by(|a, b| a.service.as_str().cmp(b.service.as_str()));
    assert_eq!(offers.len(), 2, "{offers:?}");
    assert_eq!((offers[0].service.as_str(), offers[0].country.as_str()), ("tg", "GB"));
    assert_eq!((offers[0].cost, offers[0].available), (Money::parse("0.25", "USD").unwrap(), 7));
    assert_eq!((offers[1].service.as_str(), offers[1].available), ("wa", 0));

    let rental = provider.rent(&request("tg", Some("0.30"))).await.unwrap();
    assert_eq!(rental.provider_order_id, "555");
    assert_eq!(rental.phone.as_str(), "+447700900123");
    assert_eq!(rental.cost, Money::parse("0.25", "USD").unwrap());

    assert_eq!(provider.sms("555").await.unwrap(), SmsStatus::Waiting);
    fake.lock().unwrap().sms_code = Some("482913".into());
    let SmsStatus::Received(sms) = provider.sms("555").await.unwrap() else { panic!("an SMS") };
    assert_eq!((sms[0].code.as_str(), sms[0].sms_id.as_str()), ("482913", "555-0"));

    provider.finish("555").await.unwrap();
    provider.cancel("556").await.unwrap();
    assert_eq!(
        fake.lock().unwrap().statuses,
        vec![("555".to_owned(), "close".to_owned()), ("556".to_owned(), "reject".to_owned())]
    );
    assert!(matches!(provider.another_sms("555").await, Err(ProviderError::Refused(_))));
}

#[tokio::test]
async fn refusals_and_failures_are_told_apart() {
    let (base, fake) = fake_smsman().await;
    let provider = client(&base, TOKEN);

    let dear = provider.rent(&request("tg", Some("0.20"))).await.unwrap_err();
    assert_eq!(dear, ProviderError::TooExpensive { cost: Money::parse("0.25", "USD").unwrap() });
    assert!(!fake.lock().unwrap().calls.contains(&"get-number".to_owned()), "nothing bought above the limit");
    assert_eq!(provider.rent(&request("vk", None)).await.unwrap_err(), ProviderError::NoNumbers, "unmapped service");

    for (mode, expected_fails_over) in [("no_numbers", true), ("slow", true), ("500", true), ("garbage", true)] {
        fake.lock().unwrap().get_number = mode.into();
        let error = provider.rent(&request("tg", None)).await.unwrap_err();
        assert_eq!(error.fails_over(), expected_fails_over, "{mode}: {error}");
        match mode {
            "no_numbers" => assert_eq!(error, ProviderError::NoNumbers),
            "slow" => assert!(error.to_string().contains("timed out"), "{error}"),
            _ => assert!(matches!(error, ProviderError::Unavailable(_)), "{mode}: {error}"),
        }
    }
    assert_eq!(provider.sms("999").await.unwrap_err(), ProviderError::UnknownRental);

    provider.health().await.unwrap();
    let wrong = client(&base, "bad-token");
    assert!(wrong.health().await.is_err());
    let error = wrong.rent(&request("tg", None)).await.unwrap_err();
    assert!(matches!(&error, ProviderError::Refused(reason) if reason.contains("wrong_token")), "{error}");
    assert!(!error.fails_over());

    let nowhere = client("http://127.0.0.1:1", TOKEN);
    assert!(matches!(nowhere.sms("555").await.unwrap_err(), ProviderError::Unavailable(_)));
}
