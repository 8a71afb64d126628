//! The Telegram Bot API, for admin alerts: `POST {base}/bot{token}/sendMessage` with
//! `{"chat_id", "text"}` -> `{"ok": true, "result": {...}}`; errors are
//! `{"ok": false, "error_code": 400, "description": "..."}` (429 with `parameters.retry_after`).

use std::time::Duration;

use serde_json::{Value, json};

pub const API_BASE_DEFAULT: &str = "https://api.telegram.org";

#[derive(Clone, Debug)]
pub struct TelegramSettings {
    pub base_url: String,
    pub token: String,
    pub chat_id: String,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    #[error("Telegram refused: {0}")]
    Refused(String),
    #[error("Telegram is unavailable: {0}")]
    Unavailable(String),
}

pub struct Telegram {
    http: reqwest::Client,
    settings: TelegramSettings,
}

impl Telegram {
    pub fn new(settings: TelegramSettings) -> Telegram {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .expect("a client with timeouts only always builds");
        Telegram { http, settings }
    }

    pub async fn send(&self, chat_id: &str, text: &str) -> Result<(), TelegramError> {
        let url = format!("{}/bot{}/sendMessage", self.settings.base_url.trim_end_matches('/'), self.settings.token);
        let response =
            self.http.post(url).json(&json!({"chat_id": chat_id, "text": text})).send().await.map_err(|e| {
                TelegramError::Unavailable(if e.is_timeout() { "timed out".into() } else { "unreachable".into() })
            })?;
        let status = response.status();
        let body: Value =
            response.json().await.map_err(|_| TelegramError::Unavailable(format!("HTTP {status}, not JSON")))?;
        if body["ok"] == true {
            return Ok(());
        }
        let description = body["description"].as_str().unwrap_or("no description").to_owned();
        if status.is_server_error() || status.as_u16() == 429 {
            Err(TelegramError::Unavailable(format!("{status}: {description}")))
        } else {
            Err(TelegramError::Refused(description))
        }
    }
}
