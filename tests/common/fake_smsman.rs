//! A fake of SMS-Man's control API, speaking its wire format: answers, error objects (some
//! with HTTP 200), slow answers, 5xx and garbage. The real client is pointed at it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use domain::Currency;
use serde_json::json;
use smsledger::providers::{Provider, SmsMan, SmsManSettings};

pub const TOKEN: &str = "good-token";

#[derive(Default)]
pub struct Fake {
    /// How `get-number` answers: "ok", "no_numbers", "slow", "500", "garbage".
    pub get_number: String,
    pub sms_code: Option<String>,
    pub statuses: Vec<(String, String)>,
    pub calls: Vec<String>,
    /// How long `get-sms` takes to answer.
    pub sms_delay: Duration,
}

pub type Shared = Arc<Mutex<Fake>>;

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
        "get-sms" => {
            let delay = fake.lock().unwrap().sms_delay;
            tokio::time::sleep(delay).await;
            get_sms(&fake, &query)
        }
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

fn get_sms(fake: &Shared, query: &HashMap<String, String>) -> serde_json::Value {
    match query.get("request_id").map(String::as_str) {
        Some("555") => match fake.lock().unwrap().sms_code.clone() {
            None => json!({"request_id": 555, "error_code": "wait_sms", "error_msg": "Still waiting..."}),
            Some(code) => json!({"request_id": 555, "number": "447700900123", "sms_code": code}),
        },
        _ => json!({"success": false, "error_code": "wrong_request_id", "error_msg": "Wrong request id"}),
    }
}

pub async fn fake_smsman() -> (String, Shared) {
    let fake: Shared = Arc::default();
    let app = Router::new().route("/control/{method}", get(control)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fake)
}

pub fn client(base_url: &str, token: &str) -> Provider {
    let settings = SmsManSettings {
        base_url: base_url.to_owned(),
        token: token.to_owned(),
        timeout: Duration::from_millis(500),
        currency: Currency::parse("USD").unwrap(),
    };
    Provider::SmsMan(Arc::new(SmsMan::new(settings)))
}
