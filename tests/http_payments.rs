//! Money in and out over HTTP, on PostgreSQL and the embedded SQLite store: Stripe deposits
//! against a local fake of Stripe's API, webhooks signed as Stripe signs them (forged, stale,
//! duplicated and reordered ones too), refunds and disputes (into debt when the money is
//! spent), the sandbox method, withdrawals and admin credits. After each scenario `verify`
//! passes and the trial balance sums to zero per currency.

mod common;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with, text};
use common::fake_stripe::{self, Shared};

fn d(amount: &str) -> Decimal {
    amount.parse().unwrap()
}

async fn with_stripe(database: TestDatabase, extra: &[(&'static str, &str)]) -> (TestApp, Shared) {
    let (url, fake) = fake_stripe::fake_stripe().await;
    let mut env = vec![
        ("STRIPE_SECRET_KEY", fake_stripe::SECRET_KEY.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", fake_stripe::WEBHOOK_SECRET.to_owned()),
        ("STRIPE_API_BASE", url),
        ("APP_ENV", "development".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    (spawn_with(database, Options { env, ..Options::default() }).await, fake)
}

/// Sends a webhook body with a signature header (or none).
async fn webhook(app: &TestApp, body: &str, signature: Option<String>) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/payments/webhook", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn signed(app: &TestApp, body: &str) -> (StatusCode, Value) {
    webhook(app, body, Some(fake_stripe::signature(body, None))).await
}

/// Starts a Stripe deposit; returns (deposit id, payment intent id).
async fn start_deposit(app: &TestApp, token: &str, amount: &str) -> (String, String) {
    let reply = app
        .post("/payments/deposit", As::Bearer(token), json!({"amount": amount, "currency": "USD"}))
        .await
        .expect(StatusCode::CREATED);
    let deposit = &reply.data()["deposit"];
    assert_eq!(deposit["status"], "pending");
    let intent = text(&deposit["reference"]);
    assert_eq!(text(&reply.data()["client_secret"]), format!("{intent}_secret_fake"));
    (text(&deposit["id"]), intent)
}

async fn deposit_status(app: &TestApp, token: &str, id: &str) -> Value {
    app.get(&format!("/payments/deposits/{id}"), As::Bearer(token)).await.expect(StatusCode::OK).data()["deposit"]
        .clone()
}

async fn a_stripe_deposit_is_credited_exactly_once(database: TestDatabase) {
    let (app, fake) = with_stripe(database, &[]).await;
    let (token, _, _) = app.signed_in("ann@example.com").await;
    let (id, intent) = start_deposit(&app, &token, "10.00").await;
    {
        let fake = fake.lock().unwrap();
        let form = &fake.intents[&intent];
        assert_eq!((form["amount"].as_str(), form["currency"].as_str()), ("1000", "usd"));
        assert_eq!(form["metadata[deposit_id]"], id);
    }
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("0"), d("0")), "nothing before Stripe says so");

    let body = fake_stripe::event("evt_1", "payment_intent.succeeded", fake_stripe::succeeded(&intent, 1000));
    // Forged, unsigned, stale and tampered deliveries change nothing.
    let head = app.store.head().await.unwrap().position;
    let forged =
        smsledger::payments::stripe::sign("whsec_someone_else", body.as_bytes(), common::app::unix_now() as i64);
    assert_eq!(webhook(&app, &body, Some(forged)).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(webhook(&app, &body, None).await.0, StatusCode::BAD_REQUEST);
    let stale = fake_stripe::signature(&body, Some(common::app::unix_now() as i64 - 301));
    let (status, stale) = webhook(&app, &body, Some(stale)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text(&stale["error"]).contains("tolerance"), "{stale}");
    let tampered = body.replace("1000", "100000");
    assert_eq!(webhook(&app, &tampered, Some(fake_stripe::signature(&body, None))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(app.store.head().await.unwrap().position, head, "nothing appended");

    let (status, reply) = signed(&app, &body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("10.00"), d("0")));
    // The same event again, and another success event for the same intent: no second credit.
    assert_eq!(signed(&app, &body).await.0, StatusCode::OK);
    let again = fake_stripe::event("evt_2", "payment_intent.succeeded", fake_stripe::succeeded(&intent, 1000));
    let (status, reply) = signed(&app, &again).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text(&reply["data"]["message"]).starts_with("ignored"), "{reply}");
    // A failure arriving after the success (reordered) changes nothing.
    let late = fake_stripe::event("evt_3", "payment_intent.payment_failed", fake_stripe::failed(&intent));
    assert_eq!(signed(&app, &late).await.0, StatusCode::OK);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("10.00"), d("0")));
    let deposit = deposit_status(&app, &token, &id).await;
    assert_eq!((deposit["status"].as_str(), deposit["received"].as_str()), (Some("succeeded"), Some("10.00")));
    // Someone else's intent, an event type we do not use: acknowledged, ignored.
    let stranger = fake_stripe::event("evt_4", "payment_intent.succeeded", fake_stripe::succeeded("pi_other", 500));
    assert_eq!(signed(&app, &stranger).await.0, StatusCode::OK);
    let unused = fake_stripe::event("evt_5", "customer.created", json!({"id": "cus_1"}));
    assert_eq!(signed(&app, &unused).await.0, StatusCode::OK);
    // Another user cannot read the deposit.
    let (bob, _, _) = app.signed_in("bob@example.com").await;
    app.get(&format!("/payments/deposits/{id}"), As::Bearer(&bob)).await.expect(StatusCode::NOT_FOUND);
    let history = app.get("/payments/history", As::Bearer(&token)).await.expect(StatusCode::OK);
    assert_eq!(history.data()["total"], 1);
    assert_eq!(history.data()["lines"][0]["kind"], "wallet.deposited");
    assert_eq!(history.data()["lines"][0]["reference"], format!("deposit:{id}").as_str());
    assert_ledger_balanced(&app).await;
}

async fn a_declined_card_may_succeed_on_retry(database: TestDatabase) {
    let (app, _fake) = with_stripe(database, &[]).await;
    let (token, _, _) = app.signed_in("ann@example.com").await;
    let (id, intent) = start_deposit(&app, &token, "5").await;
    let declined = fake_stripe::event("evt_f", "payment_intent.payment_failed", fake_stripe::failed(&intent));
    assert_eq!(signed(&app, &declined).await.0, StatusCode::OK);
    let deposit = deposit_status(&app, &token, &id).await;
    assert_eq!(
        (deposit["status"].as_str(), deposit["reason"].as_str()),
        (Some("failed"), Some("Your card was declined."))
    );
    let paid = fake_stripe::event("evt_s", "payment_intent.succeeded", fake_stripe::succeeded(&intent, 500));
    assert_eq!(signed(&app, &paid).await.0, StatusCode::OK);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("5.00"), d("0")));
    assert_ledger_balanced(&app).await;
}

async fn refunds_and_disputes_take_money_back_once(database: TestDatabase) {
    let (app, _fake) = with_stripe(database, &[]).await;
    let (token, _, user_id) = app.signed_in("ann@example.com").await;
    let (_, intent) = start_deposit(&app, &token, "10").await;
    // A refund that overtakes the success it refers to: 409, so Stripe sends it again.
    let refund = fake_stripe::event("evt_r1", "charge.refunded", fake_stripe::refunded("ch_1", &intent, 300));
    assert_eq!(signed(&app, &refund).await.0, StatusCode::CONFLICT);
    let paid = fake_stripe::event("evt_s", "payment_intent.succeeded", fake_stripe::succeeded(&intent, 1000));
    assert_eq!(signed(&app, &paid).await.0, StatusCode::OK);
    assert_eq!(signed(&app, &refund).await.0, StatusCode::OK, "redelivered");
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("7.00"));
    // Cumulative amounts: a second refund takes only what is new; a late older event nothing.
    let more = fake_stripe::event("evt_r2", "charge.refunded", fake_stripe::refunded("ch_1", &intent, 500));
    assert_eq!(signed(&app, &more).await.0, StatusCode::OK);
    let older = fake_stripe::event("evt_r0", "charge.refunded", fake_stripe::refunded("ch_1", &intent, 100));
    assert_eq!(signed(&app, &older).await.0, StatusCode::OK);
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("5.00"));

    // An order holds 0.10 of the 5 left; then the remaining 5 are disputed: the 4.90
    // available are taken, and 0.10 becomes debt.
    app.post("/orders", As::Bearer(&token), json!({"service": "tg", "country": "GB"}))
        .await
        .expect(StatusCode::CREATED);
    app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "0", "method": "sandbox"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    let dispute = fake_stripe::event("evt_d", "charge.dispute.created", fake_stripe::dispute("dp_1", &intent, 500));
    assert_eq!(signed(&app, &dispute).await.0, StatusCode::OK);
    assert_eq!(signed(&app, &dispute).await.0, StatusCode::OK, "a repeat takes nothing");
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("0"));
    let (admin, _, _) = app.admin("root@example.com").await;
    let wallets = app.get(&format!("/admin/users/{user_id}/wallets"), As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(d(&text(&wallets.data()["wallets"][0]["debt"])), d("0.10"), "{}", wallets.body);
    // A new deposit repays the debt first.
    app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "1", "method": "sandbox"}))
        .await
        .expect(StatusCode::CREATED);
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("0.90"));
    let wallets = app.get(&format!("/admin/users/{user_id}/wallets"), As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(d(&text(&wallets.data()["wallets"][0]["debt"])), d("0"));
    let history = app.get("/payments/history?per_page=100", As::Bearer(&token)).await.expect(StatusCode::OK);
    let kinds: Vec<&str> =
        history.data()["lines"].as_array().unwrap().iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "wallet.deposit_reversed").count(), 3, "{kinds:?}");
    app.close_all(&token).await;
    assert_ledger_balanced(&app).await;
}

async fn limits_outages_and_disabled_methods_are_clear(database: TestDatabase) {
    let (app, fake) = with_stripe(database, &[("MIN_RECHARGE_AMOUNT", "5"), ("MAX_RECHARGE_AMOUNT", "500")]).await;
    let (token, _, _) = app.signed_in("ann@example.com").await;
    let head = app.store.head().await.unwrap().position;
    let low = app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "4.99"})).await;
    let low = low.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        (low.body["details"]["min_amount"].as_str(), low.body["details"]["max_amount"].as_str()),
        (Some("5"), Some("500"))
    );
    app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "500.01"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let bad = app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "ten"})).await;
    assert_eq!(bad.expect(StatusCode::BAD_REQUEST).body["details"]["field"], "amount");
    app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "10.001"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "10", "currency": "EUR"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "10", "method": "paypal"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    fake.lock().unwrap().mode = "500".into();
    app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "10"}))
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    fake.lock().unwrap().mode = "declined".into();
    app.post("/payments/deposit", As::Bearer(&token), json!({"amount": "10"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.store.head().await.unwrap().position, head, "nothing appended");
    app.post("/payments/deposit", As::Nobody, json!({"amount": "10"})).await.expect(StatusCode::UNAUTHORIZED);
    let methods = app.get("/payment/methods", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(methods.data()["methods"], json!(["stripe", "sandbox"]));
    // Malformed but signed events are 400s.
    for body in ["not json", r#"{"type":"payment_intent.succeeded"}"#] {
        assert_eq!(signed(&app, body).await.0, StatusCode::BAD_REQUEST, "{body}");
    }
    // A success for one of our intents without an amount is refused, not credited.
    fake.lock().unwrap().mode = "ok".into();
    let (id, intent) = start_deposit(&app, &token, "10").await;
    let no_amount = fake_stripe::event("evt_x", "payment_intent.succeeded", json!({"id": intent}));
    assert_eq!(signed(&app, &no_amount).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(deposit_status(&app, &token, &id).await["status"], "pending");

    // Production: no sandbox payments; no Stripe configured: refused, webhook 404.
    let prod = spawn_with(
        common::sqlite_database(),
        Options { env: vec![("APP_ENV", "production".into())], ..Options::default() },
    )
    .await;
    let (token, _, _) = prod.signed_in("bob@example.com").await;
    let sandbox =
        prod.post("/payments/deposit", As::Bearer(&token), json!({"amount": "10", "method": "sandbox"})).await;
    assert!(text(&sandbox.expect(StatusCode::UNPROCESSABLE_ENTITY).body["error"]).contains("not enabled"));
    prod.post("/payments/deposit", As::Bearer(&token), json!({"amount": "10"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(prod.get("/payment/methods", As::Nobody).await.expect(StatusCode::OK).data()["methods"], json!([]));
    let body = fake_stripe::event("evt_1", "payment_intent.succeeded", fake_stripe::succeeded("pi_1", 100));
    assert_eq!(signed(&prod, &body).await.0, StatusCode::NOT_FOUND);
    app.assert_ledger_sound().await;
}

async fn withdrawals_wait_for_an_admin_and_credits_need_a_reason(database: TestDatabase) {
    let (app, _fake) = with_stripe(database, &[]).await;
    let (token, _, user_id) = app.signed_in("ann@example.com").await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let credit = |amount: &str, reason: &str| json!({"amount": amount, "reason": reason});
    let adjust = format!("/admin/users/{user_id}/adjust");
    app.post(&adjust, As::Bearer(&token), credit("5", "gift")).await.expect(StatusCode::FORBIDDEN);
    app.post(&adjust, As::Bearer(&admin), credit("10", "")).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&adjust, As::Bearer(&admin), credit("0", "nothing")).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&adjust, As::Bearer(&admin), credit("lots", "x")).await.expect(StatusCode::BAD_REQUEST);
    app.post(&adjust, As::Bearer(&admin), credit("10", "goodwill for ticket 42")).await.expect(StatusCode::CREATED);
    app.post(&adjust, As::Bearer(&admin), credit("-10.01", "too much")).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&adjust, As::Bearer(&admin), credit("-1", "fee")).await.expect(StatusCode::CREATED);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("9"), d("0")));

    let withdraw = |amount: &str| app.post("/payments/withdraw", As::Bearer(&token), json!({"amount": amount}));
    withdraw("9.01").await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    let first = text(&withdraw("4").await.expect(StatusCode::CREATED).data()["withdrawal_id"]);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("5"), d("0")), "held for the payout");
    let wallets = app.get(&format!("/admin/users/{user_id}/wallets"), As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(wallets.data()["wallets"][0]["pending_withdrawals"][0]["withdrawal_id"], first.as_str());
    let decide = |id: &str, what: &str| format!("/admin/users/{user_id}/withdrawals/{id}/{what}");
    app.post(&decide(&first, "reject"), As::Bearer(&admin), json!({})).await.expect(StatusCode::BAD_REQUEST);
    app.post(&decide(&first, "reject"), As::Bearer(&admin), json!({"reason": "account details do not match"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("9"), "rejected: back to available");
    app.post(&decide(&first, "pay"), As::Bearer(&admin), json!({})).await.expect(StatusCode::UNPROCESSABLE_ENTITY);

    let second = text(&withdraw("3").await.expect(StatusCode::CREATED).data()["withdrawal_id"]);
    app.post(&decide(&second, "pay"), As::Bearer(&admin), json!({})).await.expect(StatusCode::OK);
    app.post(&decide(&second, "pay"), As::Bearer(&admin), json!({})).await.expect(StatusCode::OK);
    app.post(&decide(&second, "reject"), As::Bearer(&admin), json!({"reason": "late"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.balance(As::Bearer(&token)).await, (d("6"), d("0")), "paid once");
    // A retried request with the same key is one withdrawal.
    let keyed = || {
        reqwest::Client::new()
            .post(format!("{}/payments/withdraw", app.base))
            .bearer_auth(&token)
            .header("idempotency-key", "w-1")
            .json(&json!({"amount": "1"}))
            .send()
    };
    let a: Value = keyed().await.unwrap().json().await.unwrap();
    let b: Value = keyed().await.unwrap().json().await.unwrap();
    assert_eq!(a["data"]["withdrawal_id"], b["data"]["withdrawal_id"]);
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("5"));
    // A retried sandbox deposit with the same key is one deposit, credited once.
    let sandbox = || {
        reqwest::Client::new()
            .post(format!("{}/payments/deposit", app.base))
            .bearer_auth(&token)
            .header("idempotency-key", "top-up-1")
            .json(&json!({"amount": "2", "method": "sandbox"}))
            .send()
    };
    let a: Value = sandbox().await.unwrap().json().await.unwrap();
    let b: Value = sandbox().await.unwrap().json().await.unwrap();
    assert_eq!(a["data"]["deposit"]["id"], b["data"]["deposit"]["id"], "{a} {b}");
    assert_eq!(b["data"]["deposit"]["status"], "succeeded");
    assert_eq!(app.balance(As::Bearer(&token)).await.0, d("7"));
    let history = app.get("/payments/history", As::Bearer(&token)).await.expect(StatusCode::OK);
    let kinds: Vec<&str> =
        history.data()["lines"].as_array().unwrap().iter().map(|l| l["kind"].as_str().unwrap()).collect();
    // A payout moves nothing of the user's balance (it left available when requested), so
    // it is not a line of theirs; the rejection gave the money back, so it is.
    assert_eq!(
        kinds,
        [
            "wallet.deposited",
            "wallet.withdrawal_requested",
            "wallet.withdrawal_requested",
            "wallet.withdrawal_rejected",
            "wallet.withdrawal_requested",
            "wallet.adjusted",
            "wallet.adjusted"
        ]
    );
    app.get("/payments/history?per_page=0", As::Bearer(&token)).await.expect(StatusCode::BAD_REQUEST);
    assert_ledger_balanced(&app).await;
}

/// `verify` passes, no hold is open, and the trial balance sums to zero per currency.
async fn assert_ledger_balanced(app: &TestApp) {
    app.assert_ledger_sound().await;
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert!(!report.trial_totals.is_empty());
    assert!(report.trial_totals.values().all(|total| total.is_zero()), "{:?}", report.trial_totals);
}

on_both_engines!(
    a_stripe_deposit_is_credited_exactly_once,
    a_declined_card_may_succeed_on_retry,
    refunds_and_disputes_take_money_back_once,
    limits_outages_and_disabled_methods_are_clear,
    withdrawals_wait_for_an_admin_and_credits_need_a_reason,
);
