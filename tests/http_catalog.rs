//! The catalog routes with pricing rules applied, TextVerified's webhook from signature to
//! captured hold, and the order monitor as `serve` runs it: in the background, one instance
//! at a time on PostgreSQL.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use smsledger::orders::monitor::Leader;
use smsledger::providers::textverified::sign_webhook;

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with, text};

fn d(amount: &Value) -> rust_decimal::Decimal {
    text(amount).parse().unwrap()
}

async fn catalog_shows_sell_prices_from_the_rules(database: TestDatabase) {
    let app = spawn_with(database, Options::default()).await;
    let services = app.get("/catalog/services", As::Nobody).await.expect(StatusCode::OK);
    let services = services.data()["services"].as_array().unwrap().clone();
    let codes: Vec<String> = services.iter().map(|s| text(&s["code"])).collect();
    assert_eq!(codes, ["fb", "go", "ig", "tg", "tw", "wa"]);
    assert_eq!((services[0]["offers"].as_u64(), services[0]["available"].as_u64()), (Some(5), Some(5_000)));
    let countries = app.get("/catalog/countries", As::Nobody).await.expect(StatusCode::OK);
    let countries: Vec<String> =
        countries.data()["countries"].as_array().unwrap().iter().map(|c| text(&c["code"])).collect();
    assert_eq!(countries, ["DE", "FR", "GB", "IN", "US"]);

    // An admin marks Telegram up 50%, everything else 10% plus 0.02.
    let (admin, _, _) = app.admin("root@example.com").await;
    let rule = json!({"service": "tg", "markup_percent": "50"});
    app.put("/admin/pricing-rules", As::Bearer(&admin), rule).await.expect(StatusCode::OK);
    let rule = json!({"markup_percent": "10", "markup_fixed": "0.02"});
    app.put("/admin/pricing-rules", As::Bearer(&admin), rule).await.expect(StatusCode::OK);
    let tg = app.get("/catalog/prices?service=tg&country=gb", As::Nobody).await.expect(StatusCode::OK);
    let lines = tg.data()["prices"].as_array().unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!((text(&lines[0]["country"]), d(&lines[0]["price"])), ("GB".into(), "0.15".parse().unwrap()));
    assert_eq!(lines[0]["available"], 1000);
    assert_eq!(tg.data()["providers"][0]["healthy"], true);
    let wa = app.get("/catalog/prices?service=wa", As::Nobody).await.expect(StatusCode::OK);
    let lines = wa.data()["prices"].as_array().unwrap();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().all(|l| d(&l["price"]) == "0.13".parse().unwrap()), "{lines:?}");
    app.get("/catalog/prices?service=TG!", As::Nobody).await.expect(StatusCode::BAD_REQUEST);
    app.get("/catalog/prices?country=Britain", As::Nobody).await.expect(StatusCode::BAD_REQUEST);
    let none = app.get("/catalog/prices?service=tg&country=JP", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(none.data()["prices"], json!([]));

    // An order is charged the price the catalog shows.
    let (token, _, user_id) = app.signed_in("ann@example.com").await;
    app.fund(&user_id, "1.00").await;
    let placed = app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "GB"})).await;
    assert_eq!(d(&placed.expect(StatusCode::CREATED).data()["order"]["price"]), "0.15".parse().unwrap());
    app.close_all(&token).await;
    app.assert_ledger_sound().await;
}

const WEBHOOK_SECRET: &str = "whsec-test-0123456789";

async fn post_webhook(app: &TestApp, body: &str, signature: Option<String>) -> StatusCode {
    let mut request = reqwest::Client::new()
        .post(format!("{}/webhooks/textverified", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("x-webhook-signature", signature);
    }
    request.send().await.unwrap().status()
}

fn sms_event(reservation: &str, sms_id: &str, code: &str) -> String {
    json!({
        "attempt": 1, "event": "v2.sms.received", "id": format!("evt-{sms_id}"), "idempotencyKey": sms_id,
        "data": {"id": sms_id, "reservationId": reservation, "smsContent": format!("Your code is {code}"), "parsedCode": code}
    })
    .to_string()
}

async fn textverified_webhooks_deliver_codes(database: TestDatabase) {
    let (base, fake) = common::fake_textverified::fake_textverified().await;
    let provider = common::fake_textverified::client(&base, "key-1");
    let env = vec![("TEXTVERIFIED_WEBHOOK_SECRET", WEBHOOK_SECRET.to_owned())];
    let app = spawn_with(database, Options { providers: Some(vec![provider]), env, ..Options::default() }).await;
    let (token, _, user_id) = app.signed_in("ann@example.com").await;
    app.fund(&user_id, "2.00").await;
    let placed = app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "US"})).await;
    let placed = placed.expect(StatusCode::CREATED).data()["order"].clone();
    let id = text(&placed["id"]);
    assert_eq!(d(&placed["price"]), "0.75".parse().unwrap());

    let body = sms_event("ver-1", "sms-1", "551122");
    let secret = WEBHOOK_SECRET.as_bytes();
    assert_eq!(post_webhook(&app, &body, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        post_webhook(&app, &body, Some(sign_webhook(b"wrong", body.as_bytes()))).await,
        StatusCode::UNAUTHORIZED
    );
    let tampered = body.replace("551122", "000000");
    assert_eq!(
        post_webhook(&app, &tampered, Some(sign_webhook(secret, body.as_bytes()))).await,
        StatusCode::UNAUTHORIZED
    );
    let unknown = sms_event("ver-404", "sms-9", "111111");
    assert_eq!(
        post_webhook(&app, &unknown, Some(sign_webhook(secret, unknown.as_bytes()))).await,
        StatusCode::NOT_FOUND
    );
    let order = app.get(&format!("/orders/{id}"), As::Bearer(&token)).await.expect(StatusCode::OK);
    assert_eq!(order.data()["order"]["status"], "number_assigned", "nothing recorded from refused webhooks");

    // Signed: recorded and captured; delivered twice, recorded once.
    for _ in 0..2 {
        assert_eq!(post_webhook(&app, &body, Some(sign_webhook(secret, body.as_bytes()))).await, StatusCode::OK);
    }
    let order = app.get(&format!("/orders/{id}"), As::Bearer(&token)).await.expect(StatusCode::OK);
    let order = &order.data()["order"];
    assert_eq!((order["status"].as_str(), order["code"].as_str()), (Some("sms_received"), Some("551122")));
    assert_eq!(order["sms"].as_array().unwrap().len(), 1);
    let (available, held) = app.balance(As::Bearer(&token)).await;
    assert_eq!((available, held), ("1.25".parse().unwrap(), "0".parse().unwrap()));
    app.post(&format!("/orders/{id}/finish"), As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
    assert!(fake.lock().unwrap().auths >= 1);
    app.assert_ledger_sound().await;

    // Without a secret configured the route is not there.
    let plain = spawn_with(common::sqlite_database(), Options::default()).await;
    assert_eq!(post_webhook(&plain, &body, Some(sign_webhook(secret, body.as_bytes()))).await, StatusCode::NOT_FOUND);
}

async fn the_background_monitor_expires_and_refunds(database: TestDatabase) {
    let env = [
        ("SANDBOX_BEHAVIOUR", "never_deliver"),
        ("CANCEL_TIMEOUT", "100"),
        ("ORDER_TIMEOUT", "1000"),
        ("ORDER_POLL_MS", "50"),
    ];
    let options =
        Options { env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(), jobs: true, ..Options::default() };
    let app = spawn_with(database, options).await;
    let (token, _, user_id) = app.signed_in("ann@example.com").await;
    app.fund(&user_id, "1.00").await;
    let placed = app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "GB"})).await;
    let id = text(&placed.expect(StatusCode::CREATED).data()["order"]["id"]);
    let started = std::time::Instant::now();
    loop {
        let order = app.get(&format!("/orders/{id}"), As::Bearer(&token)).await.expect(StatusCode::OK);
        if order.data()["order"]["status"] == "expired" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the monitor never expired the order");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.balance(As::Bearer(&token)).await, ("1.00".parse().unwrap(), "0".parse().unwrap()));
    app.assert_ledger_sound().await;
}

on_both_engines!(
    catalog_shows_sell_prices_from_the_rules,
    textverified_webhooks_deliver_codes,
    the_background_monitor_expires_and_refunds,
);

/// One instance at a time holds the monitor's lock; when its connection goes, another takes over.
#[tokio::test]
async fn one_monitor_per_postgres_database() {
    let Some(database) = common::postgres_database("one_monitor_per_postgres_database").await else { return };
    let first_store = common::open_store(&database).await;
    let second_store = common::open_store(&database).await;
    let mut first = Leader::try_acquire(first_store.engine()).await.unwrap().expect("the first instance leads");
    assert!(first.still_leads().await);
    assert!(Leader::try_acquire(second_store.engine()).await.unwrap().is_none(), "the second waits");
    drop(first);
    let mut second = None;
    for _ in 0..50 {
        second = Leader::try_acquire(second_store.engine()).await.unwrap();
        if second.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(second.expect("the second takes over").still_leads().await);
    // SQLite has one instance by construction: it always leads.
    let sqlite = common::open_store(&common::sqlite_database()).await;
    assert!(Leader::try_acquire(sqlite.engine()).await.unwrap().is_some());
}
