//! UPI and TRON recharges over HTTP, on PostgreSQL and the embedded SQLite store: TRON checked
//! against a local fake of TronGrid's TRC-20 history (unconfirmed, elsewhere sent, another
//! token, another amount, further pages, the API down), UPI confirmed or rejected by admins,
//! a reference credited once, ever. After each, `verify` passes (the deposits view included)
//! and the trial balance sums to zero.

mod common;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with, text};
use common::fake_trongrid::{self, ADDRESS, USDT, transfer};

fn d(amount: &str) -> Decimal {
    amount.parse().unwrap()
}

async fn with_recharges(database: TestDatabase) -> (TestApp, fake_trongrid::Shared) {
    let (url, fake) = fake_trongrid::fake_trongrid().await;
    let env = vec![
        ("TRON_ADDRESS", ADDRESS.to_owned()),
        ("TRONGRID_BASE_URL", url),
        ("UPI_VPA", "smsledger@upi".to_owned()),
        ("APP_ENV", "production".to_owned()),
    ];
    (spawn_with(database, Options { env, ..Options::default() }).await, fake)
}

async fn recharge(app: &TestApp, token: &str, method: &str, amount: &str, reference: &str) -> common::app::Reply {
    let body = json!({"method": method, "amount": amount, "reference": reference});
    app.post("/recharge/initiate", As::Bearer(token), body).await
}

async fn verify(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/recharge/verify/{id}"), As::Bearer(token)).await.expect(StatusCode::OK).data().clone()
}

async fn tron_is_credited_once_confirmed(database: TestDatabase) {
    let (app, fake) = with_recharges(database).await;
    let (token, _, _) = app.signed_in("ann@example.com").await;
    fake.lock().unwrap().transfers.push((transfer("aa11", ADDRESS, USDT, 25_000_000), false));
    let created = recharge(&app, &token, "tron", "25", "aa11").await.expect(StatusCode::CREATED);
    let id = text(&created.data()["deposit"]["id"]);
    assert_eq!(created.data()["deposit"]["status"], "pending", "not confirmed yet");
    assert_eq!(verify(&app, &token, &id).await["check"], "not_found");
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("0"));

    fake.lock().unwrap().transfers[0].1 = true;
    let checked = verify(&app, &token, &id).await;
    assert_eq!(
        (checked["check"].as_str(), checked["deposit"]["status"].as_str()),
        (Some("credited"), Some("succeeded"))
    );
    assert_eq!(verify(&app, &token, &id).await["check"], "credited");
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("25"), "credited once");
    // The same hash again, by anyone: refused.
    let (bob, _, _) = app.signed_in("bob@example.com").await;
    recharge(&app, &bob, "tron", "25", "aa11").await.expect(StatusCode::CONFLICT);
    app.get(&format!("/recharge/status/{id}"), As::Bearer(&bob)).await.expect(StatusCode::NOT_FOUND);

    // Sent elsewhere, another token, another amount: never credited.
    {
        let mut fake = fake.lock().unwrap();
        fake.transfers.push((transfer("bb22", "TOtherAddressxxxxxxxxxxxxxxxxxxxxx", USDT, 5_000_000), true));
        fake.transfers.push((transfer("cc33", ADDRESS, "TSomeOtherTokenxxxxxxxxxxxxxxxxxxx", 5_000_000), true));
        fake.transfers.push((transfer("dd44", ADDRESS, USDT, 10_000_000), true));
    }
    for hash in ["bb22", "cc33"] {
        let id =
            text(&recharge(&app, &bob, "tron", "5", hash).await.expect(StatusCode::CREATED).data()["deposit"]["id"]);
        assert_eq!(verify(&app, &bob, &id).await["check"], "not_found", "{hash}");
    }
    let created = recharge(&app, &bob, "tron", "20", "dd44").await.expect(StatusCode::CREATED);
    assert_eq!(created.data()["deposit"]["status"], "failed", "checked at once");
    assert!(text(&created.data()["deposit"]["reason"]).contains("sent 10"), "{}", created.body);
    assert_eq!(app.balance(As::Bearer(&bob)).await.0, d("0"));

    // A transfer further down the history is found on a later page.
    {
        let mut fake = fake.lock().unwrap();
        fake.page_size = 2;
        for n in 0..5 {
            fake.transfers.insert(0, (transfer(&format!("new{n}"), ADDRESS, USDT, 1_000_000), true));
        }
        fake.transfers.push((transfer("ee55", ADDRESS, USDT, 7_500_000), true));
    }
    let paged = recharge(&app, &bob, "tron", "7.5", "ee55").await.expect(StatusCode::CREATED);
    assert_eq!(paged.data()["deposit"]["status"], "succeeded");
    assert_eq!(app.balance(As::Bearer(&bob)).await.0, d("7.5"));

    // The API down: the recharge is recorded and waits; verify says so with a 503.
    fake.lock().unwrap().down = true;
    fake.lock().unwrap().transfers.push((transfer("ff66", ADDRESS, USDT, 1_000_000), true));
    let waiting = recharge(&app, &bob, "tron", "1", "ff66").await.expect(StatusCode::CREATED);
    let id = text(&waiting.data()["deposit"]["id"]);
    app.get(&format!("/recharge/verify/{id}"), As::Bearer(&bob)).await.expect(StatusCode::SERVICE_UNAVAILABLE);
    fake.lock().unwrap().down = false;
    assert_eq!(verify(&app, &bob, &id).await["check"], "credited");

    let history = app.get("/recharge/history", As::Bearer(&bob)).await.expect(StatusCode::OK);
    assert_eq!(history.data()["total"], 5);
    assert_eq!(history.data()["deposits"][0]["reference"], "ff66", "newest first");
    assert_ledger_balanced(&app).await;
}

async fn upi_waits_for_an_admin(database: TestDatabase) {
    let (app, _fake) = with_recharges(database).await;
    let (token, _, _) = app.signed_in("ann@example.com").await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let methods = app.get("/payment/methods", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(methods.data()["methods"], json!(["upi", "tron"]), "no sandbox in production");
    assert_eq!(
        (methods.data()["upi_vpa"].as_str(), methods.data()["tron_address"].as_str()),
        (Some("smsledger@upi"), Some(ADDRESS))
    );

    let first = recharge(&app, &token, "upi", "10", "UTR0001").await.expect(StatusCode::CREATED);
    let first = text(&first.data()["deposit"]["id"]);
    assert_eq!(verify(&app, &token, &first).await["check"], "waiting_for_admin");
    recharge(&app, &token, "upi", "10", "UTR0001").await.expect(StatusCode::CONFLICT);
    let second =
        text(&recharge(&app, &token, "upi", "30", "UTR0002").await.expect(StatusCode::CREATED).data()["deposit"]["id"]);
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("0"));

    app.get("/admin/deposits?status=pending&method=upi", As::Bearer(&token)).await.expect(StatusCode::FORBIDDEN);
    let queue = app.get("/admin/deposits?status=pending&method=upi", As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(queue.data()["total"], 2);
    app.get("/admin/deposits?status=lost", As::Bearer(&admin)).await.expect(StatusCode::BAD_REQUEST);

    let path = |id: &str, what: &str| format!("/admin/deposits/{id}/{what}");
    app.post(&path(&first, "approve"), As::Bearer(&token), json!({})).await.expect(StatusCode::FORBIDDEN);
    app.post(&path(&first, "approve"), As::Bearer(&admin), json!({})).await.expect(StatusCode::OK);
    app.post(&path(&first, "approve"), As::Bearer(&admin), json!({})).await.expect(StatusCode::OK);
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("10"), "credited once");
    app.post(&path(&first, "reject"), As::Bearer(&admin), json!({"reason": "late"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&path(&second, "reject"), As::Bearer(&admin), json!({"reason": " "}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&path(&second, "reject"), As::Bearer(&admin), json!({"reason": "no such transfer on our statement"}))
        .await
        .expect(StatusCode::OK);
    app.post(&path(&second, "approve"), As::Bearer(&admin), json!({})).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    let rejected = app.get(&format!("/recharge/status/{second}"), As::Bearer(&token)).await.expect(StatusCode::OK);
    assert_eq!(rejected.data()["deposit"]["status"], "rejected");
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("10"));
    let queue = app.get("/admin/deposits?status=pending", As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(queue.data()["total"], 0);

    // Recharge maintenance pauses recharges (503 with Retry-After), not orders or reads.
    app.put("/admin/maintenance", As::Bearer(&admin), json!({"scope": "recharge", "enabled": true}))
        .await
        .expect(StatusCode::OK);
    let paused = recharge(&app, &token, "upi", "10", "UTR0009").await.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert!(paused.headers.contains_key("retry-after"));
    app.get("/recharge/history", As::Bearer(&token)).await.expect(StatusCode::OK);
    app.put("/admin/maintenance", As::Bearer(&admin), json!({"scope": "recharge", "enabled": false}))
        .await
        .expect(StatusCode::OK);

    // Bad input is a 400 naming the field; limits and disabled methods are 422s.
    let bad = app
        .post("/recharge/initiate", As::Bearer(&token), json!({"method": "cash", "amount": "1", "reference": "x"}))
        .await;
    assert_eq!(bad.expect(StatusCode::BAD_REQUEST).body["details"]["field"], "method");
    let bad = recharge(&app, &token, "upi", "10", "has space").await;
    assert_eq!(bad.expect(StatusCode::BAD_REQUEST).body["details"]["field"], "reference");
    recharge(&app, &token, "upi", "0.5", "UTR0003").await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    let plain = spawn_with(common::sqlite_database(), Options::default()).await;
    let (other, _, _) = plain.signed_in("cy@example.com").await;
    recharge(&plain, &other, "upi", "10", "UTR9").await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_ledger_balanced(&app).await;

    // Someone edits the deposits view: verify names the deposit.
    let tamper = "UPDATE deposits SET view = replace(view, '\"rejected\"', '\"succeeded\"')";
    match app.store.engine() {
        smsledger::store::Engine::Postgres(pool) => sqlx::query(tamper).execute(pool).await.map(|_| ()),
        smsledger::store::Engine::Sqlite(pool) => sqlx::query(tamper).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].what.contains(&format!("deposits projection differs from the log at deposit {second}")));
}

async fn assert_ledger_balanced(app: &TestApp) {
    app.assert_ledger_sound().await;
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert!(report.deposits_view > 0, "the deposits view was compared");
    assert!(report.trial_totals.values().all(|total| total.is_zero()), "{:?}", report.trial_totals);
}

on_both_engines!(tron_is_credited_once_confirmed, upi_waits_for_an_admin);
