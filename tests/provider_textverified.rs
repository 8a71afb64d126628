//! The real TextVerified client against a local fake that speaks API v2: the bearer token
//! (obtained once, renewed after a 401), pricing, creating a verification and following its
//! link, the SMS list, cancel and reuse, and its failures.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use domain::Money;
use domain::catalog::{CountryCode, ServiceCode};
use serde_json::{Value, json};
use smsledger::providers::{NumberRequest, Provider, ProviderError, SmsStatus, TextVerified, TextVerifiedSettings};

#[derive(Default)]
struct Fake {
    base: String,
    auths: usize,
    /// The token the fake currently accepts.
    token: String,
    sms: Vec<Value>,
    state: String,
    actions: Vec<String>,
    created_with: Vec<Value>,
    /// `create` answers: "ok", "500", "none".
    create: String,
    /// What the verification says it cost (default 0.75, the quoted price).
    total_cost: Option<f64>,
}

type Shared = Arc<Mutex<Fake>>;

fn authorized(fake: &Fake, headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {}", fake.token))
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"errorCode": "Unauthorized", "errorDescription": "bad token"})))
        .into_response()
}

async fn auth(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    let good = headers.get("x-api-key").is_some_and(|v| v == "key-1")
        && headers.get("x-api-username").is_some_and(|v| v == "ann@example.com");
    if !good {
        return unauthorized();
    }
    let mut fake = fake.lock().unwrap();
    fake.auths += 1;
    fake.token = format!("token-{}", fake.auths);
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    axum::Json(json!({"token": fake.token, "expiresIn": 3600, "expiresAt": expires})).into_response()
}

async fn pricing(State(fake): State<Shared>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    if !authorized(&fake.lock().unwrap(), &headers) {
        return unauthorized();
    }
    let price = match body["serviceName"].as_str() {
        Some("telegram") => json!(0.75),
        Some("whatsapp") => json!(1.5),
        _ => return (StatusCode::BAD_REQUEST, axum::Json(json!({"errorCode": "InvalidService"}))).into_response(),
    };
    axum::Json(json!({"serviceName": body["serviceName"], "price": price})).into_response()
}

async fn create(State(fake): State<Shared>, headers: HeaderMap, axum::Json(body): axum::Json<Value>) -> Response {
    let mut fake = fake.lock().unwrap();
    if !authorized(&fake, &headers) {
        return unauthorized();
    }
    fake.created_with.push(body);
    match fake.create.as_str() {
        "500" => (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        "none" => (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"errorCode": "NoStock", "errorDescription": "No numbers available for this service"})),
        )
            .into_response(),
        _ => {
            fake.state = "verificationPending".into();
            let href = format!("{}/api/pub/v2/verifications/ver-1", fake.base);
            (StatusCode::CREATED, axum::Json(json!({"method": "GET", "href": href}))).into_response()
        }
    }
}

async fn verification(State(fake): State<Shared>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let fake = fake.lock().unwrap();
    if !authorized(&fake, &headers) {
        return unauthorized();
    }
    if id != "ver-1" {
        return (StatusCode::NOT_FOUND, axum::Json(json!({"errorCode": "NotFound"}))).into_response();
    }
    axum::Json(json!({
        "id": "ver-1", "number": "2025550147", "serviceName": "telegram", "state": fake.state, "totalCost": fake.total_cost.unwrap_or(0.75),
        "createdAt": "2026-11-21T10:00:00Z", "endsAt": "2026-11-21T10:15:00Z"
    }))
    .into_response()
}

async fn action(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let mut fake = fake.lock().unwrap();
    if !authorized(&fake, &headers) {
        return unauthorized();
    }
    fake.actions.push(format!("{id}/{action}"));
    if action == "cancel" {
        fake.state = "verificationCanceled".into();
    }
    StatusCode::OK.into_response()
}

async fn sms(
    State(fake): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let fake = fake.lock().unwrap();
    if !authorized(&fake, &headers) {
        return unauthorized();
    }
    let data: Vec<Value> =
        if query.get("reservationId").map(String::as_str) == Some("ver-1") { fake.sms.clone() } else { vec![] };
    axum::Json(json!({"data": data, "hasNext": false})).into_response()
}

async fn fake_textverified() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route("/api/pub/v2/auth", post(auth))
        .route("/api/pub/v2/pricing/verifications", post(pricing))
        .route("/api/pub/v2/verifications", post(create))
        .route("/api/pub/v2/verifications/{id}", get(verification))
        .route("/api/pub/v2/verifications/{id}/{action}", post(action))
        .route("/api/pub/v2/sms", get(sms))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    fake.lock().unwrap().base = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

fn client(base: &str, api_key: &str) -> Provider {
    let settings = TextVerifiedSettings {
        base_url: base.to_owned(),
        username: "ann@example.com".into(),
        api_key: api_key.into(),
        timeout: Duration::from_millis(500),
    };
    Provider::TextVerified(Arc::new(TextVerified::new(settings)))
}

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
