//! A fake of TronGrid's v1 TRC-20 history endpoint
//! (`GET /v1/accounts/{address}/transactions/trc20`), speaking its JSON: `data` entries with
//! `transaction_id`, `token_info`, `from`, `to`, `type`, `value`, and `meta.fingerprint` for the
//! next page. It lists only confirmed transfers to the asked address when told to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

pub const ADDRESS: &str = "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh";
pub const USDT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";

#[derive(Default)]
pub struct Fake {
    /// Transfers, newest first: (entry, confirmed).
    pub transfers: Vec<(Value, bool)>,
    /// Answer 503 instead.
    pub down: bool,
    pub page_size: usize,
}

pub type Shared = Arc<Mutex<Fake>>;

/// A USDT transfer entry as TronGrid lists it; `units` in millionths.
pub fn transfer(hash: &str, to: &str, contract: &str, units: i64) -> Value {
    json!({
        "transaction_id": hash,
        "token_info": {"symbol": "USDT", "address": contract, "decimals": 6, "name": "Tether USD"},
        "block_timestamp": 1_700_000_000_000_i64,
        "from": "TXyzSenderAddressxxxxxxxxxxxxxxxxx",
        "to": to,
        "type": "Transfer",
        "value": units.to_string(),
    })
}

async fn trc20(
    State(fake): State<Shared>,
    Path(address): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let fake = fake.lock().unwrap();
    if fake.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response();
    }
    let confirmed_only = query.get("only_confirmed").map(String::as_str) == Some("true");
    let to_only = query.get("only_to").map(String::as_str) == Some("true");
    let contract = query.get("contract_address");
    let matching: Vec<&Value> = fake
        .transfers
        .iter()
        .filter(|(entry, confirmed)| {
            (!confirmed_only || *confirmed)
                && (!to_only || entry["to"] == address.as_str())
                && contract.is_none_or(|c| entry["token_info"]["address"] == c.as_str())
        })
        .map(|(entry, _)| entry)
        .collect();
    let start: usize = query.get("fingerprint").and_then(|f| f.parse().ok()).unwrap_or(0);
    let size = fake.page_size.max(1);
    let page: Vec<&Value> = matching.iter().skip(start).take(size).copied().collect();
    let mut meta = json!({"at": 1_700_000_000_000_i64, "page_size": page.len()});
    if start + size < matching.len() {
        meta["fingerprint"] = json!((start + size).to_string());
    }
    axum::Json(json!({"data": page, "success": true, "meta": meta})).into_response()
}

pub async fn fake_trongrid() -> (String, Shared) {
    let fake: Shared = Arc::new(Mutex::new(Fake { page_size: 200, ..Fake::default() }));
    let app = Router::new().route("/v1/accounts/{address}/transactions/trc20", get(trc20)).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), fake)
}
