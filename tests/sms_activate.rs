//! The SMS-Activate-compatible endpoint, as that protocol's clients use it: plain-text answers
//! parsed by prefix, bare integer ids and phone numbers, JSON where the protocol has JSON.
//! On both engines; each scenario ends with the ledger verified and no hold open.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with, text};

/// Calls the handler with GET and query parameters; returns (status, body text).
async fn call(app: &TestApp, params: &[(&str, &str)]) -> (StatusCode, String) {
    let root = app.base.trim_end_matches("/api/v1");
    let query = serde_urlencoded::to_string(params).unwrap();
    let response = reqwest::get(format!("{root}/stubs/handler_api.php?{query}")).await.unwrap();
    let status = response.status();
    (status, response.text().await.unwrap())
}

async fn ok(app: &TestApp, params: &[(&str, &str)]) -> String {
    let (status, body) = call(app, params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A funded user and one of their API keys.
async fn reseller(app: &TestApp, email: &str, funds: &str) -> (String, String) {
    let (token, _, user_id) = app.signed_in(email).await;
    if funds != "0" {
        app.fund(&user_id, funds).await;
    }
    let created = app.post("/user/api-keys", As::Bearer(&token), json!({"name": "bot"})).await;
    (token, text(&created.expect(StatusCode::CREATED).data()["key"]))
}

async fn the_protocol_from_balance_to_code(database: TestDatabase) {
    let env = vec![("CANCEL_TIMEOUT", "0".to_owned()), ("SANDBOX_COST", "0.25".to_owned())];
    let app = spawn_with(database, Options { env, ..Options::default() }).await;
    let (token, key) = reseller(&app, "bot@example.com", "1.5").await;
    let key = key.as_str();
    assert_eq!(ok(&app, &[("api_key", key), ("action", "getBalance")]).await, "ACCESS_BALANCE:1.50");

    // getNumber: ACCESS_NUMBER:<id>:<phone>, both bare integers; UK is country 16.
    let got = ok(&app, &[("api_key", key), ("action", "getNumber"), ("service", "tg"), ("country", "16")]).await;
    let parts: Vec<&str> = got.split(':').collect();
    assert_eq!((parts.len(), parts[0]), (3, "ACCESS_NUMBER"), "{got}");
    let id = parts[1];
    assert!(id.parse::<u64>().is_ok() && parts[2].parse::<u64>().is_ok(), "{got}");
    assert!(parts[2].starts_with("447700900"), "{got}");
    assert_eq!(ok(&app, &[("api_key", key), ("action", "getBalance")]).await, "ACCESS_BALANCE:1.25");
    // The same order over the REST API.
    let listed = app.get("/orders", As::Bearer(&token)).await.expect(StatusCode::OK);
    assert_eq!(text(&listed.data()["orders"][0]["phone"]), format!("+{}", parts[2]));
    assert_eq!(listed.data()["orders"][0]["serial"].to_string(), id);

    let status = ok(&app, &[("api_key", key), ("action", "getStatus"), ("id", id)]).await;
    let code = status.strip_prefix("STATUS_OK:").unwrap_or_else(|| panic!("{status}"));
    assert_eq!(code.len(), 6);
    // Another SMS on the same number: waiting for the retry, then the new code.
    assert_eq!(
        ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", id), ("status", "3")]).await,
        "ACCESS_RETRY_GET"
    );
    let retry = ok(&app, &[("api_key", key), ("action", "getStatus"), ("id", id)]).await;
    assert!(retry.starts_with("STATUS_OK:") && retry != status, "{retry} after {status}");
    assert_eq!(
        ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", id), ("status", "6")]).await,
        "ACCESS_ACTIVATION"
    );
    assert_eq!(
        ok(&app, &[("api_key", key), ("action", "getStatus"), ("id", id)]).await,
        retry,
        "finished keeps its code"
    );
    // A code cannot be cancelled away; a finished order takes no status.
    assert_eq!(ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", id), ("status", "8")]).await, "BAD_STATUS");
    assert_eq!(ok(&app, &[("api_key", key), ("action", "getBalance")]).await, "ACCESS_BALANCE:1.25");

    // getNumberV2: JSON with the same facts.
    let v2 = ok(&app, &[("api_key", key), ("action", "getNumberV2"), ("service", "wa"), ("country", "187")]).await;
    let v2: Value = serde_json::from_str(&v2).unwrap_or_else(|_| panic!("{v2}"));
    assert!(v2["activationId"].is_u64(), "{v2}");
    assert_eq!(v2["countryCode"], "187");
    assert_eq!(v2["activationCost"].to_string(), "0.25");
    assert_eq!(v2["canGetAnotherSms"], true);
    assert!(v2["phoneNumber"].as_str().unwrap().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(v2["activationTime"].as_str().unwrap().len(), "2026-01-01 00:00:00".len());
    // Cancelling it (the window is 0 here) releases the hold.
    let v2_id = v2["activationId"].to_string();
    let cancel = ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", &v2_id), ("status", "8")]).await;
    // The sandbox may already have delivered its code, in which case the cancel is refused.
    if cancel == "ACCESS_CANCEL" {
        assert_eq!(ok(&app, &[("api_key", key), ("action", "getStatus"), ("id", &v2_id)]).await, "STATUS_CANCEL");
    } else {
        assert_eq!(cancel, "BAD_STATUS");
        ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", &v2_id), ("status", "6")]).await;
    }
    app.close_all(&token).await;
    app.assert_ledger_sound().await;
}

async fn refusals_in_the_protocols_words(database: TestDatabase) {
    let env = vec![("SANDBOX_BEHAVIOUR", "never_deliver".to_owned()), ("CANCEL_TIMEOUT", "3000".to_owned())];
    let app = spawn_with(database, Options { env, ..Options::default() }).await;
    let (token, key) = reseller(&app, "bot@example.com", "0.10").await;
    let key = key.as_str();
    assert_eq!(ok(&app, &[("api_key", "sk_nope"), ("action", "getBalance")]).await, "BAD_KEY");
    assert_eq!(ok(&app, &[("action", "getBalance")]).await, "BAD_KEY");
    assert_eq!(ok(&app, &[("api_key", key), ("action", "launchRocket")]).await, "BAD_ACTION");
    assert_eq!(ok(&app, &[("api_key", key)]).await, "BAD_ACTION");
    let get = |service: &'static str, country: &'static str| {
        [("api_key", key), ("action", "getNumber"), ("service", service), ("country", country)]
    };
    assert_eq!(ok(&app, &get("nosuch", "16")).await, "BAD_SERVICE");
    assert_eq!(ok(&app, &get("BAD!", "16")).await, "BAD_SERVICE");
    assert_eq!(ok(&app, &get("tg", "9999")).await, "BAD_COUNTRY");
    assert_eq!(ok(&app, &get("tg", "182")).await, "NO_NUMBERS", "the sandbox has no numbers in Japan");
    let capped =
        [("api_key", key), ("action", "getNumber"), ("service", "tg"), ("country", "16"), ("maxPrice", "0.01")];
    assert_eq!(ok(&app, &capped).await, "WRONG_MAX_PRICE:0.10");
    // Funded for exactly one.
    let placed_at = std::time::Instant::now();
    let first = ok(&app, &get("tg", "16")).await;
    assert!(first.starts_with("ACCESS_NUMBER:"), "{first}");
    assert_eq!(ok(&app, &get("tg", "16")).await, "NO_BALANCE");
    let id = first.split(':').nth(1).unwrap();
    assert_eq!(ok(&app, &[("api_key", key), ("action", "getStatus"), ("id", id)]).await, "STATUS_WAIT_CODE");
    assert_eq!(
        ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", id), ("status", "1")]).await,
        "ACCESS_READY"
    );
    assert_eq!(
        ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", id), ("status", "8")]).await,
        "EARLY_CANCEL_DENIED"
    );
    assert_eq!(
        ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", id), ("status", "42")]).await,
        "BAD_STATUS"
    );
    for unknown in ["0", "-1", "abc", "99999999"] {
        assert_eq!(ok(&app, &[("api_key", key), ("action", "getStatus"), ("id", unknown)]).await, "NO_ACTIVATION");
    }
    // Another user's key cannot see or touch this activation.
    let (_, other) = reseller(&app, "other@example.com", "0").await;
    assert_eq!(ok(&app, &[("api_key", &other), ("action", "getStatus"), ("id", id)]).await, "NO_ACTIVATION");
    assert_eq!(
        ok(&app, &[("api_key", &other), ("action", "setStatus"), ("id", id), ("status", "6")]).await,
        "NO_ACTIVATION"
    );
    // The balance shows the hold taken.
    assert_eq!(ok(&app, &[("api_key", key), ("action", "getBalance")]).await, "ACCESS_BALANCE:0.00");
    // After the cancel window: cancelled, refunded in full.
    tokio::time::sleep(Duration::from_millis(3_100).saturating_sub(placed_at.elapsed())).await;
    assert_eq!(
        ok(&app, &[("api_key", key), ("action", "setStatus"), ("id", id), ("status", "8")]).await,
        "ACCESS_CANCEL"
    );
    assert_eq!(ok(&app, &[("api_key", key), ("action", "getStatus"), ("id", id)]).await, "STATUS_CANCEL");
    assert_eq!(ok(&app, &[("api_key", key), ("action", "getBalance")]).await, "ACCESS_BALANCE:0.10");
    app.close_all(&token).await;
    app.assert_ledger_sound().await;
}

async fn prices_and_counts(database: TestDatabase) {
    let app = spawn_with(database, Options::default()).await;
    let (_, key) = reseller(&app, "bot@example.com", "0").await;
    let key = key.as_str();
    let raw = ok(&app, &[("api_key", key), ("action", "getPrices")]).await;
    // Costs are exact decimal literals as written, never through a float.
    assert!(raw.contains(r#""16":{"fb":{"cost":0.10,"count":1000}"#), "{raw}");
    let all: Value = serde_json::from_str(&raw).unwrap_or_else(|_| panic!("{raw}"));
    // The sandbox sells 6 services in GB (16), US (187), DE (43), FR (78) and IN (22).
    let countries: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(countries, ["16", "187", "22", "43", "78"]);
    assert_eq!(all["16"]["tg"]["count"], 1000);
    let one = ok(&app, &[("api_key", key), ("action", "getPrices"), ("service", "wa"), ("country", "22")]).await;
    assert_eq!(one, r#"{"22":{"wa":{"cost":0.10,"count":1000}}}"#);
    let counts = ok(&app, &[("api_key", key), ("action", "getNumbersStatus"), ("country", "16")]).await;
    let counts: Value = serde_json::from_str(&counts).unwrap();
    assert_eq!(counts["tg_0"], 1000);
    assert_eq!(counts.as_object().unwrap().len(), 6);
    // POST with a form body works the same.
    let root = app.base.trim_end_matches("/api/v1");
    let posted = reqwest::Client::new()
        .post(format!("{root}/stubs/handler_api.php"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("api_key={key}&action=getBalance"))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.text().await.unwrap(), "ACCESS_BALANCE:0.00");
    app.assert_ledger_sound().await;
}

on_both_engines!(the_protocol_from_balance_to_code, refusals_in_the_protocols_words, prices_and_counts);
