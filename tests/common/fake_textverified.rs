//! A fake of TextVerified's API v2, speaking its wire format: the bearer token (renewed after
//! a 401), pricing, verifications and their links, the SMS list, cancel and reuse, failures.
//! The real client is pointed at it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use smsledger::providers::{Provider, TextVerified, TextVerifiedSettings};

#[derive(Default)]
pub struct Fake {
    pub base: String,
    pub auths: usize,
    /// The token the fake currently accepts.
    pub token: String,
    pub sms: Vec<Value>,
    pub state: String,
    pub actions: Vec<String>,
    pub created_with: Vec<Value>,
    /// `create` answers: "ok", "500", "none".
    pub create: String,
    /// What the verification says it cost (default 0.75, the quoted price).
    pub total_cost: Option<f64>,
    /// What `account/me` says we hold (JSON number, as TextVerified sends it).
    pub balance: f64,
}

pub type Shared = Arc<Mutex<Fake>>;

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

async fn account(State(fake): State<Shared>, headers: HeaderMap) -> Response {
    let fake = fake.lock().unwrap();
    if !authorized(&fake, &headers) {
        return unauthorized();
    }
    axum::Json(json!({"username": "ann@example.com", "currentBalance": fake.balance})).into_response()
}

pub async fn fake_textverified() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new()
        .route("/api/pub/v2/auth", post(auth))
        .route("/api/pub/v2/pricing/verifications", post(pricing))
        .route("/api/pub/v2/verifications", post(create))
        .route("/api/pub/v2/verifications/{id}", get(verification))
        .route("/api/pub/v2/verifications/{id}/{action}", post(action))
        .route("/api/pub/v2/sms", get(sms))
        .route("/api/pub/v2/account/me", get(account))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    fake.lock().unwrap().base = base.clone();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, fake)
}

pub fn client(base: &str, api_key: &str) -> Provider {
    let settings = TextVerifiedSettings {
        base_url: base.to_owned(),
        username: "ann@example.com".into(),
        api_key: api_key.into(),
        timeout: Duration::from_millis(500),
    };
    Provider::TextVerified(Arc::new(TextVerified::new(settings)))
}
