//! The real SMS-Man client against a local fake that speaks SMS-Man's control API: its
//! answers, its error objects (some with HTTP 200), slow answers, 5xx and garbage.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::catalog::{CountryCode, ServiceCode};
use domain::{Currency, Money};
use serde_json::json;
use smsledger::providers::{NumberRequest, Provider, ProviderError, SmsMan, SmsManSettings, SmsStatus};

const TOKEN: &str = "good-token";

#[derive(Default)]
struct Fake {
    /// How `get-number` answers: "ok", "no_numbers", "slow", "500", "garbage".
    get_number: String,
    sms_code: Option<String>,
    statuses: Vec<(String, String)>,
    calls: Vec<String>,
}

type Shared = Arc<Mutex<Fake>>;

async fn control(
    State(fake): State<Shared>,
    Path(method): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    fake.lock().unwrap().calls.push(method.clone());
    if query.get("token").map(String::as_str) != Some(TOKEN) {
        return axum::Json(json!({"success": false, "error_code": "wrong_token", "error_msg": "Wrong token!"}))
            .into_response();
    }
    let answer = match method.as_str() {
        "get-balance" => json!({"balance": "12.34"}),
        "applications" => json!({
            "1": {"id": 1, "title": "Telegram", "code": "tg"},
            "2": {"id": "2", "title": "WhatsApp", "code": "wa"},
            "3": {"id": "3", "title": "Broken", "code": "Not A Code!"},
        }),
        "countries" => json!([
            {"id": "10", "title": "United Kingdom", "code": "gb"},
            {"id": 11, "title": "Nowhere", "code": "zzz"},
        ]),
        "get-prices" => match query.get("country_id").map(String::as_str) {
            Some("10") => json!({"10": {"1": {"cost": "0.25", "count": 7}, "2": {"cost": 0.5, "count": "0"}}}),
            _ => json!({}),
        },
        "get-number" => {
            let mode = fake.lock().unwrap().get_number.clone();
            match mode.as_str() {
                "no_numbers" => json!({"success": false, "error_code": "no_numbers", "error_msg": "No numbers"}),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    json!({"request_id": 1, "number": "447700900001"})
                }
                "500" => return (StatusCode::BAD_GATEWAY, "upstream exploded").into_response(),
                "garbage" => return (StatusCode::OK, "<html>maintenance</html>").into_response(),
                _ => json!({"request_id": 555, "country_id": 10, "application_id": 1, "number": "447700900123"}),
            }
        }
        "get-sms" => match query.get("request_id").map(String::as_str) {
            Some("555") => match fake.lock().unwrap().sms_code.clone() {
                None => json!({"request_id": 555, "error_code": "wait_sms", "error_msg": "Still waiting..."}),
                Some(code) => json!({"request_id": 555, "number": "447700900123", "sms_code": code}),
            },
            _ => json!({"success": false, "error_code": "wrong_request_id", "error_msg": "Wrong request id"}),
        },
        "set-status" => {
            let request_id = query.get("request_id").cloned().unwrap_or_default();
            let status = query.get("status").cloned().unwrap_or_default();
            fake.lock().unwrap().statuses.push((request_id.clone(), status));
            json!({"request_id": request_id, "success": true})
        }
        _ => return (StatusCode::NOT_FOUND, "no such method").into_response(),
    };
    axum::Json(answer).into_response()
}

async fn fake_smsman() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new().route("/control/{method}", get(control)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fake)
}

fn client(base_url: &str, token: &str) -> Provider {
    let settings = SmsManSettings {
        base_url: base_url.to_owned(),
        token: token.to_owned(),
        timeout: Duration::from_millis(500),
        currency: Currency::parse("USD").unwrap(),
    };
    Provider::SmsMan(Arc::new(SmsMan::new(settings)))
}

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
