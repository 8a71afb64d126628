//! Orders end to end over HTTP, on PostgreSQL and the embedded SQLite store: place, receive,
//! finish; cancel too early and allowed; expiry with refund (also after a restart); provider
//! failure with refund; failover; another SMS; idempotent retry; a wallet funded for exactly
//! N orders. After every scenario `verify` passes and no hold is left open.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use smsledger::orders::monitor;
use smsledger::providers::Provider;

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with, text};

fn with_env(env: &[(&'static str, &str)]) -> Options {
    Options { env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(), ..Options::default() }
}

async fn customer(app: &TestApp, email: &str, funds: &str) -> String {
    let (token, _, user_id) = app.signed_in(email).await;
    app.fund(&user_id, funds).await;
    token
}

fn d(amount: &str) -> rust_decimal::Decimal {
    amount.parse().unwrap()
}

fn tg_gb() -> Value {
    json!({"service": "tg", "country": "GB"})
}

async fn place(app: &TestApp, token: &str) -> Value {
    app.post("/orders", As::Bearer(token), tg_gb()).await.expect(StatusCode::CREATED).data()["order"].clone()
}

async fn order(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/orders/{id}"), As::Bearer(token)).await.expect(StatusCode::OK).data()["order"].clone()
}

async fn scan(app: &TestApp) -> monitor::Scan {
    monitor::scan(&app.orders, &app.store, 4).await.unwrap()
}

async fn place_receive_finish(database: TestDatabase) {
    let app = spawn_with(database, with_env(&[("SANDBOX_COST", "0.25")])).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let placed = place(&app, &token).await;
    assert_eq!(placed["status"], "number_assigned", "{placed}");
    assert_eq!((d(&text(&placed["price"])), placed["currency"].as_str()), (d("0.25"), Some("USD")));
    assert!(text(&placed["phone"]).starts_with("+447700900"), "{placed}");
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.75"), d("0.25")));

    // The code arrives (the sandbox delivers at once here); reading the order fetches it.
    let id = text(&placed["id"]);
    let received = order(&app, &token, &id).await;
    assert_eq!(received["status"], "sms_received");
    let code = text(&received["code"]);
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{received}");
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.75"), d("0")), "captured");

    let finished =
        app.post(&format!("/orders/{id}/finish"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    assert_eq!(finished.data()["order"]["status"], "finished");
    assert_eq!(finished.data()["order"]["code"], code.as_str());
    // Finishing twice (a retry) answers the order as it is and records nothing more.
    let events = app.store.read_stream(&format!("order-{id}")).await.unwrap().len();
    let again = app.post(&format!("/orders/{id}/finish"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    assert_eq!(again.data()["order"]["status"], "finished");
    assert_eq!(app.store.read_stream(&format!("order-{id}")).await.unwrap().len(), events);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.75"), d("0")));

    // Listed, newest first, filtered by status; another user sees nothing of it.
    let listed = app.get("/orders?status=finished", As::Bearer(&token)).await.expect(StatusCode::OK);
    assert_eq!(listed.data()["total"], 1);
    assert_eq!(listed.data()["orders"][0]["id"], id.as_str());
    assert_eq!(app.get("/orders?status=cancelled", As::Bearer(&token)).await.expect(StatusCode::OK).data()["total"], 0);
    app.get("/orders?status=lost", As::Bearer(&token)).await.expect(StatusCode::BAD_REQUEST);
    app.get("/orders?per_page=1000", As::Bearer(&token)).await.expect(StatusCode::BAD_REQUEST);
    let other = customer(&app, "bob@example.com", "1.00").await;
    app.get(&format!("/orders/{id}"), As::Bearer(&other)).await.expect(StatusCode::NOT_FOUND);
    app.post(&format!("/orders/{id}/cancel"), As::Bearer(&other), json!({})).await.expect(StatusCode::NOT_FOUND);
    assert_eq!(app.get("/orders", As::Bearer(&other)).await.expect(StatusCode::OK).data()["total"], 0);
    app.assert_ledger_sound().await;
}

async fn cancel_too_early_then_allowed(database: TestDatabase) {
    let env = [("SANDBOX_BEHAVIOUR", "never_deliver"), ("CANCEL_TIMEOUT", "400"), ("ORDER_TIMEOUT", "60000")];
    let app = spawn_with(database, with_env(&env)).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let id = text(&place(&app, &token).await["id"]);
    let early = app.post(&format!("/orders/{id}/cancel"), As::Bearer(&token), json!({})).await;
    let early = early.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&early.body["error"]).contains("too early"), "{}", early.body);
    assert!(early.body["details"]["cancellable_at"].is_string());
    let no_code = app.post(&format!("/orders/{id}/finish"), As::Bearer(&token), json!({})).await;
    assert!(text(&no_code.expect(StatusCode::UNPROCESSABLE_ENTITY).body["error"]).contains("no SMS"));
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.90"), d("0.10")), "still held");

    tokio::time::sleep(Duration::from_millis(450)).await;
    let cancelled =
        app.post(&format!("/orders/{id}/cancel"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    assert_eq!(cancelled.data()["order"]["status"], "cancelled");
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("1.00"), d("0")), "released in full");
    app.post(&format!("/orders/{id}/cancel"), As::Bearer(&token), json!({}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.assert_ledger_sound().await;
}

async fn a_code_cannot_be_cancelled_away(database: TestDatabase) {
    let app = spawn_with(database, with_env(&[("CANCEL_TIMEOUT", "0")])).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let id = text(&place(&app, &token).await["id"]);
    // The SMS is there when the cancel comes: the cancel learns of it and is refused.
    let refused = app.post(&format!("/orders/{id}/cancel"), As::Bearer(&token), json!({})).await;
    refused.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(order(&app, &token, &id).await["status"], "sms_received");
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.90"), d("0")));
    app.post(&format!("/orders/{id}/finish"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    app.assert_ledger_sound().await;
}

/// The monitor reads the open orders a page at a time: every one is polled, then every one
/// overdue is expired, across page boundaries, each once.
async fn the_monitor_works_through_open_orders_page_by_page(database: TestDatabase) {
    let env = [("SANDBOX_BEHAVIOUR", "never_deliver"), ("CANCEL_TIMEOUT", "100"), ("ORDER_TIMEOUT", "1000")];
    let app = spawn_with(database, with_env(&env)).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(text(&place(&app, &token).await["id"]));
    }
    let early = monitor::scan_paged(&app.orders, &app.store, 2, 2).await.unwrap();
    assert_eq!((early.watched, early.expired, early.polled, early.failed), (5, 0, 5, 0));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let late = monitor::scan_paged(&app.orders, &app.store, 2, 2).await.unwrap();
    assert_eq!((late.watched, late.expired, late.failed), (5, 5, 0), "{late:?}");
    for id in &ids {
        assert_eq!(order(&app, &token, id).await["status"], "expired");
    }
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("1.00"), d("0")));
    assert_eq!(scan(&app).await.watched, 0);
    app.assert_ledger_sound().await;
}

/// The monitor reads only the orders it must act on: an order with its SMS is left alone until
/// it asks for another or is overdue (then it closes as finished).
async fn the_monitor_watches_only_orders_it_must_act_on(database: TestDatabase) {
    // Lifetimes long enough that a slow machine does not see them end before the sleep below.
    let app = spawn_with(database, with_env(&[("CANCEL_TIMEOUT", "100"), ("ORDER_TIMEOUT", "3000")])).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let received = text(&place(&app, &token).await["id"]);
    assert_eq!(order(&app, &token, &received).await["status"], "sms_received");
    let waiting = text(&place(&app, &token).await["id"]); // its code is due, but nobody asked yet
    let report = scan(&app).await;
    assert_eq!((report.watched, report.polled, report.expired, report.failed), (1, 1, 0, 0), "{report:?}");
    assert_eq!(order(&app, &token, &waiting).await["status"], "sms_received", "the scan fetched its code");
    assert_eq!(scan(&app).await.watched, 0, "both have their code");

    let path = format!("/orders/{received}/another-sms");
    app.post(&path, As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    let report = scan(&app).await;
    assert_eq!((report.watched, report.polled), (1, 1), "waiting for another SMS: {report:?}");
    assert_eq!(order(&app, &token, &received).await["sms"].as_array().map(Vec::len), Some(2));
    assert_eq!(scan(&app).await.watched, 0);

    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let report = scan(&app).await;
    assert_eq!((report.watched, report.expired, report.failed), (2, 2, 0), "overdue: {report:?}");
    for id in [&received, &waiting] {
        assert_eq!(order(&app, &token, id).await["status"], "finished");
    }
    assert_eq!(scan(&app).await.watched, 0);
    app.assert_ledger_sound().await;
}

async fn expiry_refunds_even_after_a_restart(database: TestDatabase) {
    let env = [("SANDBOX_BEHAVIOUR", "never_deliver"), ("CANCEL_TIMEOUT", "100"), ("ORDER_TIMEOUT", "1000")];
    let app = spawn_with(database, with_env(&env)).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let first = text(&place(&app, &token).await["id"]);
    let second = text(&place(&app, &token).await["id"]);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.80"), d("0.20")));
    // Before the deadline the monitor only polls.
    let early = scan(&app).await;
    assert_eq!((early.watched, early.expired, early.polled), (2, 0, 2));
    tokio::time::sleep(Duration::from_millis(1_100)).await;

    // A monitor built afresh over the same store (as after a restart) finds both overdue.
    let restarted = std::sync::Arc::new(smsledger::orders::Orders::new(
        app.store.clone(),
        app.orders.ledger().clone(),
        app.orders.catalog.clone(),
    ));
    let report = monitor::scan(&restarted, &app.store, 2).await.unwrap();
    assert_eq!((report.expired, report.failed), (2, 0), "{report:?}");
    for id in [&first, &second] {
        let expired = order(&app, &token, id).await;
        assert_eq!(expired["status"], "expired");
        assert!(expired["closed_at"].is_string());
    }
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("1.00"), d("0")));
    // The provider was told, so it refunds us too: the rental is over on its side.
    let sandbox = app.orders.catalog.provider("sandbox").unwrap();
    let rental = app.orders.view(first.parse().map(domain::OrderId).unwrap()).await.unwrap().unwrap();
    let status = sandbox.sms(rental.provider_order_id.as_deref().unwrap()).await.unwrap();
    assert_eq!(status, smsledger::providers::SmsStatus::Ended);
    let again = scan(&app).await;
    assert_eq!(again.watched, 0, "nothing left open");
    app.assert_ledger_sound().await;
}

async fn provider_ending_a_rental_refunds(database: TestDatabase) {
    let app = spawn_with(database, with_env(&[("SANDBOX_BEHAVIOUR", "never_deliver")])).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let placed = place(&app, &token).await;
    let id = text(&placed["id"]);
    // The provider gives up on the rental on its side.
    let view = app.orders.view(id.parse().map(domain::OrderId).unwrap()).await.unwrap().unwrap();
    let sandbox = app.orders.catalog.provider("sandbox").unwrap();
    sandbox.cancel(view.provider_order_id.as_deref().unwrap()).await.unwrap();
    let report = scan(&app).await;
    assert_eq!((report.polled, report.failed), (1, 0));
    assert_eq!(order(&app, &token, &id).await["status"], "provider_failed");
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("1.00"), d("0")));
    app.assert_ledger_sound().await;
}

async fn another_sms_on_the_same_number(database: TestDatabase) {
    let app = spawn_with(database, Options::default()).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let placed = place(&app, &token).await;
    let id = text(&placed["id"]);
    // Not before the first SMS.
    let first = order(&app, &token, &id).await;
    assert_eq!(first["sms"].as_array().unwrap().len(), 1);
    let again = app.post(&format!("/orders/{id}/another-sms"), As::Bearer(&token), json!({})).await;
    let again = again.expect(StatusCode::OK);
    assert_eq!(again.data()["order"]["awaiting_another_sms"], true);
    let second = order(&app, &token, &id).await;
    assert_eq!(second["sms"].as_array().unwrap().len(), 2, "{second}");
    assert_eq!(second["phone"], placed["phone"], "the same number");
    assert_ne!(second["sms"][0]["code"], second["sms"][1]["code"]);
    assert_eq!(second["code"], second["sms"][1]["code"], "the newest code");
    // Free: charged once.
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.90"), d("0")));
    app.post(&format!("/orders/{id}/finish"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    app.assert_ledger_sound().await;
}

async fn a_retry_with_the_same_key_returns_the_same_order(database: TestDatabase) {
    let app = spawn_with(database, Options::default()).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let client = reqwest::Client::new();
    let post = |key: &'static str, body: Value| {
        client
            .post(format!("{}/orders", app.base))
            .bearer_auth(&token)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let first = post("k-1", tg_gb()).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let retry: Value = post("k-1", tg_gb()).await.unwrap().json().await.unwrap();
    assert_eq!(first["data"]["order"]["id"], retry["data"]["order"]["id"]);
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("0.90"), "charged once");
    // Concurrent retries of a new key: one order.
    let racing = futures_like_join(vec![post("k-2", tg_gb()), post("k-2", tg_gb()), post("k-2", tg_gb())]).await;
    let mut ids = Vec::new();
    for response in racing {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        ids.push(response.json::<Value>().await.unwrap()["data"]["order"]["id"].clone());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("0.80"));
    // The same key for another request is refused; nothing moves.
    let other = post("k-1", json!({"service": "wa", "country": "GB"})).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("0.80"));
    // Another user's identical key is their own.
    let bob = customer(&app, "bob@example.com", "1.00").await;
    let theirs = client
        .post(format!("{}/orders", app.base))
        .bearer_auth(&bob)
        .header("idempotency-key", "k-1")
        .json(&tg_gb())
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), StatusCode::CREATED);
    let theirs: Value = theirs.json().await.unwrap();
    assert_ne!(theirs["data"]["order"]["id"], first["data"]["order"]["id"]);
    app.close_all(&token).await;
    app.close_all(&bob).await;
    app.assert_ledger_sound().await;
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_like_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

async fn exactly_n_orders_on_funds_for_n(database: TestDatabase) {
    let env = [("SANDBOX_BEHAVIOUR", "never_deliver"), ("CANCEL_TIMEOUT", "0")];
    let app = spawn_with(database, with_env(&env)).await;
    let (token, _, user_id) = app.signed_in("ann@example.com").await;
    const N: usize = 5;
    app.fund(&user_id, "0.50").await;
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..N + 4)
        .map(|_| client.post(format!("{}/orders", app.base)).bearer_auth(&token).json(&tg_gb()).send())
        .collect();
    let mut created = 0;
    for response in futures_like_join(requests).await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {
                let body: Value = response.json().await.unwrap();
                assert!(text(&body["error"]).contains("insufficient balance"), "{body}");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(created, N);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0"), d("0.50")));
    let listed = app.get("/orders?status=number_assigned", As::Bearer(&token)).await.expect(StatusCode::OK);
    assert_eq!(listed.data()["total"], N as u64);
    app.close_all(&token).await;
    app.assert_ledger_sound().await;
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.50"), d("0")));
}

async fn insufficient_balance_appends_nothing(database: TestDatabase) {
    let app = spawn_with(database, Options::default()).await;
    let token = customer(&app, "ann@example.com", "0.05").await;
    let head = app.store.head().await.unwrap().position;
    let refused = app.post("/orders", As::Bearer(&token), tg_gb()).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(d(&text(&refused.body["details"]["needed"])), d("0.10"));
    assert_eq!(app.store.head().await.unwrap().position, head, "nothing appended");
    // Bad input is a 400 naming the field; unknown services and no numbers are 422s.
    let bad = app.post("/orders", As::Bearer(&token), json!({"service": "TG!", "country": "GB"})).await;
    assert_eq!(bad.expect(StatusCode::BAD_REQUEST).body["details"]["field"], "service");
    let bad = app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "Britain"})).await;
    assert_eq!(bad.expect(StatusCode::BAD_REQUEST).body["details"]["field"], "country");
    let bad =
        app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "GB", "max_price": "lots"})).await;
    assert_eq!(bad.expect(StatusCode::BAD_REQUEST).body["details"]["field"], "max_price");
    let unknown = app.post("/orders", As::Bearer(&token), json!({"service": "nosuch", "country": "GB"})).await;
    assert!(text(&unknown.expect(StatusCode::UNPROCESSABLE_ENTITY).body["error"]).contains("no provider offers"));
    let nowhere = app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "JP"})).await;
    nowhere.expect(StatusCode::UNPROCESSABLE_ENTITY);
    let capped =
        app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "GB", "max_price": "0.01"})).await;
    let capped = capped.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(d(&text(&capped.body["details"]["cheapest_price"])), d("0.10"));
    assert_eq!(app.store.head().await.unwrap().position, head, "still nothing appended");
    app.get("/orders/not-a-uuid", As::Bearer(&token)).await.expect(StatusCode::BAD_REQUEST);
    app.assert_ledger_sound().await;
    app.get(&format!("/orders/{}", uuid::Uuid::now_v7()), As::Bearer(&token)).await.expect(StatusCode::NOT_FOUND);
    app.post("/orders", As::Nobody, tg_gb()).await.expect(StatusCode::UNAUTHORIZED);
}

async fn failover_to_the_next_provider(database: TestDatabase) {
    // SMS-Man (the fake) is cheaper but fails to rent; the sandbox serves, at its own price.
    let (url, fake) = common::fake_smsman::fake_smsman().await;
    fake.lock().unwrap().get_number = "500".into();
    let smsman = common::fake_smsman::client(&url, common::fake_smsman::TOKEN);
    let sandbox = common::sandbox_provider("0.30");
    let options = Options { providers: Some(vec![smsman, sandbox]), ..Options::default() };
    let app = spawn_with(database, options).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let prices = app.get("/catalog/prices?service=tg&country=GB", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(d(&text(&prices.data()["prices"][0]["price"])), d("0.25"), "{}", prices.body);
    let placed = place(&app, &token).await;
    assert_eq!(d(&text(&placed["price"])), d("0.30"), "served by the sandbox at its price");
    assert!(fake.lock().unwrap().calls.iter().any(|c| c == "get-number"), "SMS-Man was asked first");
    // With a price cap below the sandbox's price, only SMS-Man could serve, and it is down:
    // 503 (try again), and nothing is appended.
    let capped =
        app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "GB", "max_price": "0.25"})).await;
    capped.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.70"), d("0.30")));
    // No provider has numbers at all: 422, and the balance is untouched.
    fake.lock().unwrap().get_number = "no_numbers".into();
    let only_smsman = common::fake_smsman::client(&url, common::fake_smsman::TOKEN);
    let app2 =
        spawn_with(common::sqlite_database(), Options { providers: Some(vec![only_smsman]), ..Options::default() })
            .await;
    let token2 = customer(&app2, "bob@example.com", "1.00").await;
    let none = app2.post("/orders", As::Bearer(&token2), tg_gb()).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(text(&none.body["error"]).contains("no numbers"), "{}", none.body);
    assert_eq!(app2.balance(As::Bearer(&token2)).await, (d("1.00"), d("0")));
    app.close_all(&token).await;
    app.assert_ledger_sound().await;
    app2.assert_ledger_sound().await;
}

async fn extending_keeps_the_number_longer(database: TestDatabase) {
    let env = [("SANDBOX_BEHAVIOUR", "never_deliver"), ("CANCEL_TIMEOUT", "100"), ("ORDER_TIMEOUT", "1000")];
    let app = spawn_with(database, with_env(&env)).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let placed = place(&app, &token).await;
    let id = text(&placed["id"]);
    let extended =
        app.post(&format!("/orders/{id}/extend"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    let deadline = |order: &Value| chrono::DateTime::parse_from_rfc3339(order["expires_at"].as_str().unwrap()).unwrap();
    let pushed = deadline(&extended.data()["order"]) - deadline(&placed);
    assert_eq!(pushed.num_milliseconds(), 1_000, "one more order lifetime");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(scan(&app).await.expired, 0, "not overdue at the old deadline");
    app.post(&format!("/orders/{id}/extend"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    let third = app.post(&format!("/orders/{id}/extend"), As::Bearer(&token), json!({})).await;
    assert!(text(&third.expect(StatusCode::UNPROCESSABLE_ENTITY).body["error"]).contains("at most 2"));
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0.90"), d("0.10")), "extending is free");
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(scan(&app).await.expired, 1);
    assert_eq!(order(&app, &token, &id).await["status"], "expired");
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("1.00"), d("0")));
    app.post(&format!("/orders/{id}/extend"), As::Bearer(&token), json!({}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.assert_ledger_sound().await;

    // SMS-Man cannot keep a number longer: refused, and nothing changes.
    let (url, _fake) = common::fake_smsman::fake_smsman().await;
    let smsman = common::fake_smsman::client(&url, common::fake_smsman::TOKEN);
    let options = Options { providers: Some(vec![smsman]), ..with_env(&[("CANCEL_TIMEOUT", "0")]) };
    let app = spawn_with(common::sqlite_database(), options).await;
    let token = customer(&app, "bob@example.com", "1.00").await;
    let id = text(&place(&app, &token).await["id"]);
    let refused = app.post(&format!("/orders/{id}/extend"), As::Bearer(&token), json!({})).await;
    assert!(text(&refused.expect(StatusCode::UNPROCESSABLE_ENTITY).body["error"]).contains("cannot keep the number"));
    app.close_all(&token).await;
    app.assert_ledger_sound().await;
}

async fn verify_compares_the_orders_view(database: TestDatabase) {
    let app = spawn_with(database, Options::default()).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let id = text(&place(&app, &token).await["id"]);
    // Finishing asks the provider first: the code it holds counts.
    let finished =
        app.post(&format!("/orders/{id}/finish"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    assert_eq!(finished.data()["order"]["sms"].as_array().unwrap().len(), 1);
    app.get("/orders", As::Bearer(&token)).await.expect(StatusCode::OK);
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.orders_view > 0, "the orders view was compared");
    // Someone edits the view: verify names it.
    let tamper = "UPDATE orders SET view = replace(view, '\"finished\"', '\"cancelled\"')";
    match app.store.engine() {
        smsledger::store::Engine::Postgres(pool) => sqlx::query(tamper).execute(pool).await.map(|_| ()),
        smsledger::store::Engine::Sqlite(pool) => sqlx::query(tamper).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].what.contains(&format!("orders projection differs from the log at order {id}")));
}

/// The SMS-Man client pointed at the fake, waiting at most `timeout` for an answer.
fn smsman_waiting(url: String, timeout: Duration) -> Provider {
    let settings = smsledger::providers::SmsManSettings {
        base_url: url,
        token: common::fake_smsman::TOKEN.into(),
        timeout,
        currency: domain::Currency::USD,
    };
    Provider::SmsMan(std::sync::Arc::new(smsledger::providers::SmsMan::new(settings)))
}

async fn a_slow_provider_does_not_hold_up_reading_an_order(database: TestDatabase) {
    // SMS-Man (the fake) end to end, with a provider timeout longer than a reader should wait.
    let (url, fake) = common::fake_smsman::fake_smsman().await;
    fake.lock().unwrap().sms_delay = Duration::from_secs(6);
    let smsman = smsman_waiting(url, Duration::from_secs(10));
    let app = spawn_with(database, Options { providers: Some(vec![smsman]), ..Options::default() }).await;
    let token = customer(&app, "ann@example.com", "1.00").await;
    let placed = place(&app, &token).await;
    assert_eq!(placed["phone"], "+447700900123");
    let id = text(&placed["id"]);
    let started = std::time::Instant::now();
    let waiting = order(&app, &token, &id).await;
    assert!(started.elapsed() < Duration::from_millis(4_500), "{:?}", started.elapsed());
    assert_eq!(waiting["status"], "number_assigned");
    // The provider answers quickly again, with the code.
    {
        let mut fake = fake.lock().unwrap();
        fake.sms_delay = Duration::ZERO;
        fake.sms_code = Some("4321".into());
    }
    let received = order(&app, &token, &id).await;
    assert_eq!((received["status"].as_str(), received["code"].as_str()), (Some("sms_received"), Some("4321")));
    app.post(&format!("/orders/{id}/finish"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    assert!(!fake.lock().unwrap().statuses.is_empty(), "SMS-Man was told the number is done");
    app.assert_ledger_sound().await;
}

async fn a_hanging_provider_never_stalls_the_service(database: TestDatabase) {
    // SMS-Man answers `get-number` after 3 s; we wait 300 ms for it.
    let (url, fake) = common::fake_smsman::fake_smsman().await;
    fake.lock().unwrap().get_number = "slow".into();
    let smsman = smsman_waiting(url, Duration::from_millis(300));
    let app = spawn_with(database, Options { providers: Some(vec![smsman]), ..Options::default() }).await;
    let token = customer(&app, "ann@example.com", "100.00").await;
    app.get("/catalog/prices", As::Bearer(&token)).await.expect(StatusCode::OK); // the first sync, done
    let started = std::time::Instant::now();
    let placing: Vec<_> = (0..32).map(|_| app.post("/orders", As::Bearer(&token), tg_gb())).collect();
    let reading = async {
        let read = std::time::Instant::now();
        app.get("/user/balance", As::Bearer(&token)).await.expect(StatusCode::OK);
        read.elapsed()
    };
    let (placed, read) = tokio::join!(futures_util::future::join_all(placing), reading);
    assert!(read < Duration::from_millis(1_000), "a read waited {read:?} behind the hanging provider");
    assert!(started.elapsed() < Duration::from_millis(2_500), "32 placements took {:?}", started.elapsed());
    for reply in placed {
        reply.expect(StatusCode::SERVICE_UNAVAILABLE);
    }
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("100.00"), d("0")), "nothing held");
    app.assert_ledger_sound().await;
}

/// A user with more orders than a list kept in memory holds is paged from the orders view:
/// the same pages, totals and filters, and their own new order at once.
async fn a_long_orders_list_is_paged_from_the_view(database: TestDatabase) {
    use smsledger::projection::order_lists::LIST_MAX;
    let env = [("SANDBOX_BEHAVIOUR", "never_deliver"), ("CANCEL_TIMEOUT", "0")];
    let app = spawn_with(database, with_env(&env)).await;
    let token = customer(&app, "ann@example.com", "200.00").await;
    let list = |query: &str| {
        let (app, token, query) = (&app, &token, query.to_owned());
        async move { app.get(&format!("/orders?{query}"), As::Bearer(token)).await.expect(StatusCode::OK).data().clone() }
    };
    let mut ids = Vec::new();
    for _ in 0..LIST_MAX {
        ids.push(text(&place(&app, &token).await["id"]));
    }
    assert_eq!(list("per_page=5").await["total"], LIST_MAX, "kept in memory so far");
    let cancelled = ids[3].clone();
    app.post(&format!("/orders/{cancelled}/cancel"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    ids.push(text(&place(&app, &token).await["id"])); // one more than a list may keep

    let newest = list("per_page=3").await;
    assert_eq!(newest["total"], LIST_MAX + 1);
    let shown: Vec<&str> = newest["orders"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    let expected: Vec<&str> = ids.iter().rev().take(3).map(String::as_str).collect();
    assert_eq!(shown, expected, "newest first");
    let last = list(&format!("per_page=100&page={}", LIST_MAX / 100 + 1)).await;
    assert_eq!(last["orders"].as_array().map(Vec::len), Some(1));
    assert_eq!(last["orders"][0]["id"], ids[0].as_str(), "the oldest on the last page");
    let only = list("status=cancelled").await;
    assert_eq!((only["total"].as_i64(), only["orders"][0]["id"].as_str()), (Some(1), Some(cancelled.as_str())));
    // Totals follow what happens to the orders once the list is long.
    let path = format!("/orders/{}/cancel", ids[5]);
    app.post(&path, As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    let both = list("status=cancelled").await;
    let shown: Vec<&str> = both["orders"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    assert_eq!((both["total"].as_i64(), shown), (Some(2), vec![ids[5].as_str(), cancelled.as_str()]));
    assert_eq!(list("status=number_assigned&per_page=1").await["total"], LIST_MAX - 1);
    // Read-your-writes: an order just placed is listed by the next read.
    let placed = text(&place(&app, &token).await["id"]);
    let newest = list("per_page=1").await;
    assert_eq!(
        (newest["total"].as_u64(), newest["orders"][0]["id"].as_str()),
        (Some(LIST_MAX as u64 + 2), Some(placed.as_str()))
    );
    // The newest orders are kept whole beside the statuses: the first page follows them.
    app.post(&format!("/orders/{placed}/cancel"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    let newest = list("per_page=2").await;
    assert_eq!(
        (newest["orders"][0]["id"].as_str(), newest["orders"][0]["status"].as_str()),
        (Some(placed.as_str()), Some("cancelled"))
    );
    assert_eq!(newest["orders"][1]["id"], ids[LIST_MAX].as_str());
}

on_both_engines!(
    a_hanging_provider_never_stalls_the_service,
    a_long_orders_list_is_paged_from_the_view,
    place_receive_finish,
    cancel_too_early_then_allowed,
    a_code_cannot_be_cancelled_away,
    expiry_refunds_even_after_a_restart,
    the_monitor_works_through_open_orders_page_by_page,
    the_monitor_watches_only_orders_it_must_act_on,
    provider_ending_a_rental_refunds,
    another_sms_on_the_same_number,
    a_retry_with_the_same_key_returns_the_same_order,
    exactly_n_orders_on_funds_for_n,
    insufficient_balance_appends_nothing,
    failover_to_the_next_provider,
    extending_keeps_the_number_longer,
    verify_compares_the_orders_view,
    a_slow_provider_does_not_hold_up_reading_an_order,
);
