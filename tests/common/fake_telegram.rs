//! A fake of the Telegram Bot API's `sendMessage` (`POST /bot{token}/sendMessage`, JSON
//! `{chat_id, text}` -> `{"ok": true, "result": {...}}`, errors `{"ok": false, "error_code",
//! "description"}`), failing its first calls when told to. The real client is pointed at it.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode as AxumStatus;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::app::text;

pub const TOKEN: &str = "123456:test-bot-token";
pub const CHAT: &str = "-1001234567890";

#[derive(Default)]
pub struct FakeTelegram {
    /// Calls still to fail with a 500.
    pub failures: usize,
    /// (chat_id, text) of the messages accepted.
    pub delivered: Vec<(String, String)>,
}

pub type Shared = Arc<Mutex<FakeTelegram>>;

async fn send_message(
    State(fake): State<Shared>,
    Path(bot): Path<String>,
    body: axum::Json<Value>,
) -> axum::response::Response {
    let mut fake = fake.lock().unwrap();
    if bot != format!("bot{TOKEN}") {
        let refused = json!({"ok": false, "error_code": 401, "description": "Unauthorized"});
        return (AxumStatus::UNAUTHORIZED, axum::Json(refused)).into_response();
    }
    if fake.failures > 0 {
        fake.failures -= 1;
        let busy = json!({"ok": false, "error_code": 500, "description": "Internal Server Error"});
        return (AxumStatus::INTERNAL_SERVER_ERROR, axum::Json(busy)).into_response();
    }
    fake.delivered.push((text(&body["chat_id"]), text(&body["text"])));
    axum::Json(json!({"ok": true, "result": {"message_id": fake.delivered.len(), "text": body["text"]}}))
        .into_response()
}

/// Starts the fake; its first `failures` calls answer 500.
pub async fn fake_telegram(failures: usize) -> (String, Shared) {
    let fake: Shared = Arc::new(Mutex::new(FakeTelegram { failures, ..FakeTelegram::default() }));
    let app =
        axum::Router::new().route("/{bot}/sendMessage", axum::routing::post(send_message)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fake)
}
