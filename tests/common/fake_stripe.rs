//! A fake of Stripe's API for what we use (`POST /v1/payment_intents`, form-encoded, bearer
//! secret key, `Idempotency-Key`), with Stripe's error shape, and webhook events signed
//! exactly as Stripe signs them. The real client is pointed at it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const SECRET_KEY: &str = "sk_test_fake_secret";
pub const WEBHOOK_SECRET: &str = "whsec_fake_endpoint_secret";

#[derive(Default)]
pub struct Fake {
    /// How creating an intent answers: "ok" (default), "500", "declined".
    pub mode: String,
    /// Created intents by id: their form fields.
    pub intents: HashMap<String, HashMap<String, String>>,
    /// Intent ids by idempotency key, as Stripe replays a key's first answer.
    pub by_key: HashMap<String, String>,
    pub calls: usize,
}

pub type Shared = Arc<Mutex<Fake>>;

async fn create_intent(State(fake): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut fake = fake.lock().unwrap();
    fake.calls += 1;
    let authorized =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {SECRET_KEY}"));
    if !authorized {
        let error = json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided"}});
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    match fake.mode.as_str() {
        "500" => {
            let error = json!({"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}});
            return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(error)).into_response();
        }
        "declined" => {
            let error = json!({"error": {"type": "invalid_request_error", "code": "amount_too_small",
                "message": "Amount must be at least $0.50 usd"}});
            return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
        }
        _ => {}
    }
    let form: HashMap<String, String> = serde_urlencoded::from_str(&body).unwrap_or_default();
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let id = match fake.by_key.get(&key) {
        Some(id) => id.clone(),
        None => {
            let id = format!("pi_fake{}", fake.intents.len() + 1);
            fake.by_key.insert(key, id.clone());
            fake.intents.insert(id.clone(), form.clone());
            id
        }
    };
    let form = &fake.intents[&id];
    let intent = json!({
        "id": id,
        "object": "payment_intent",
        "amount": form.get("amount").and_then(|a| a.parse::<i64>().ok()),
        "currency": form.get("currency"),
        "client_secret": format!("{id}_secret_fake"),
        "status": "requires_payment_method",
        "metadata": {"deposit_id": form.get("metadata[deposit_id]"), "user_id": form.get("metadata[user_id]")},
    });
    axum::Json(intent).into_response()
}

pub async fn fake_stripe() -> (String, Shared) {
    let fake: Shared = Arc::new(Mutex::new(Fake { mode: "ok".into(), ..Fake::default() }));
    let app = Router::new().route("/v1/payment_intents", post(create_intent)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fake)
}

/// A webhook event as Stripe sends it (`object: "event"`, `data.object`).
pub fn event(id: &str, kind: &str, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": super::app::unix_now(),
        "livemode": false,
        "type": kind,
        "data": {"object": object},
    })
    .to_string()
}

pub fn succeeded(intent: &str, amount_minor: i64) -> Value {
    json!({"id": intent, "object": "payment_intent", "amount": amount_minor, "amount_received": amount_minor,
        "currency": "usd", "status": "succeeded"})
}

pub fn failed(intent: &str) -> Value {
    json!({"id": intent, "object": "payment_intent", "status": "requires_payment_method",
        "last_payment_error": {"code": "card_declined", "message": "Your card was declined."}})
}

pub fn refunded(charge: &str, intent: &str, amount_refunded_minor: i64) -> Value {
    json!({"id": charge, "object": "charge", "payment_intent": intent, "amount": 1000,
        "amount_refunded": amount_refunded_minor, "currency": "usd", "refunded": false})
}

pub fn dispute(id: &str, intent: &str, amount_minor: i64) -> Value {
    json!({"id": id, "object": "dispute", "charge": "ch_fake", "payment_intent": intent,
        "amount": amount_minor, "currency": "usd", "reason": "fraudulent", "status": "needs_response"})
}

/// The `Stripe-Signature` header for `body`, signed now (or at `at`).
pub fn signature(body: &str, at: Option<i64>) -> String {
    let at = at.unwrap_or_else(|| super::app::unix_now() as i64);
    smsledger::payments::stripe::sign(WEBHOOK_SECRET, body.as_bytes(), at)
}
