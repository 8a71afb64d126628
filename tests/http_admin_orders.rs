//! Admins' orders over HTTP, on PostgreSQL and the embedded SQLite store: every user's orders
//! searched by user, status, provider, service, country and day, and an admin's cancel that
//! refunds inside the cancel window but never after the SMS.

mod common;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::json;

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with, text};

fn d(amount: &str) -> Decimal {
    amount.parse().unwrap()
}

async fn total(app: &TestApp, admin: &str, query: &str) -> i64 {
    let reply = app.get(&format!("/admin/orders{query}"), As::Bearer(admin)).await.expect(StatusCode::OK);
    reply.data()["total"].as_i64().unwrap()
}

fn with_env(env: &[(&'static str, &str)]) -> Options {
    Options { env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(), ..Options::default() }
}

async fn admins_search_and_cancel_orders(database: TestDatabase) {
    let app = spawn_with(database, with_env(&[("SANDBOX_BEHAVIOUR", "never_deliver")])).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (ann, _, ann_id) = app.signed_in("ann@example.com").await;
    let (bob, _, bob_id) = app.signed_in("bob@example.com").await;
    app.fund(&ann_id, "1.00").await;
    app.fund(&bob_id, "1.00").await;
    let tg_gb = || json!({"service": "tg", "country": "GB"});
    let first = app.post("/orders", As::Bearer(&ann), tg_gb()).await.expect(StatusCode::CREATED);
    let first = text(&first.data()["order"]["id"]);
    app.post("/orders", As::Bearer(&ann), tg_gb()).await.expect(StatusCode::CREATED);
    app.post("/orders", As::Bearer(&bob), tg_gb()).await.expect(StatusCode::CREATED);

    assert_eq!(total(&app, &admin, "").await, 3);
    let by_ann = app.get(&format!("/admin/orders?user_id={ann_id}"), As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(by_ann.data()["total"], 2);
    let listed = &by_ann.data()["orders"][1];
    assert_eq!((listed["id"].as_str(), listed["user_id"].as_str()), (Some(first.as_str()), Some(ann_id.as_str())));
    assert_eq!((listed["provider"].as_str(), listed["status"].as_str()), (Some("sandbox"), Some("number_assigned")));
    assert_eq!(d(&text(&listed["cost"])), d("0.10"));
    assert_eq!(total(&app, &admin, "?status=number_assigned&provider=sandbox&service=tg&country=gb").await, 3);
    assert_eq!(total(&app, &admin, "?provider=smsman").await, 0);
    assert_eq!(total(&app, &admin, "?service=wa").await, 0);
    assert_eq!(total(&app, &admin, "?country=JP").await, 0);
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today + chrono::Duration::days(1);
    let yesterday = today - chrono::Duration::days(1);
    let range = |from: chrono::NaiveDate, to: chrono::NaiveDate| format!("/admin/orders?from={from}&to={to}");
    let within = app.get(&range(yesterday, tomorrow + chrono::Duration::days(1)), As::Bearer(&admin)).await;
    assert_eq!(within.expect(StatusCode::OK).data()["total"], 3);
    let after = app
        .get(&range(tomorrow + chrono::Duration::days(1), tomorrow + chrono::Duration::days(2)), As::Bearer(&admin))
        .await;
    assert_eq!(after.expect(StatusCode::OK).data()["total"], 0);
    for bad in ["?user_id=ann", "?status=lost", "?from=2026-02-30", "?service=TG!", "?per_page=101"] {
        app.get(&format!("/admin/orders{bad}"), As::Bearer(&admin)).await.expect(StatusCode::BAD_REQUEST);
    }
    app.get("/admin/orders", As::Bearer(&ann)).await.expect(StatusCode::FORBIDDEN);

    // The user may not cancel yet; an admin may, and the user is refunded.
    app.post(&format!("/orders/{first}/cancel"), As::Bearer(&ann), json!({}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&format!("/admin/orders/{first}/cancel"), As::Bearer(&ann), json!({})).await.expect(StatusCode::FORBIDDEN);
    let cancelled = app.post(&format!("/admin/orders/{first}/cancel"), As::Bearer(&admin), json!({})).await;
    assert_eq!(cancelled.expect(StatusCode::OK).data()["order"]["status"], "cancelled");
    assert_eq!(app.balance(As::Bearer(&ann)).await, (d("0.90"), d("0.10")), "one order still held");
    app.post(&format!("/admin/orders/{first}/cancel"), As::Bearer(&admin), json!({}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = format!("/admin/orders/{}/cancel", uuid::Uuid::now_v7());
    app.post(&unknown, As::Bearer(&admin), json!({})).await.expect(StatusCode::NOT_FOUND);
    assert_eq!(total(&app, &admin, "?status=cancelled").await, 1);
    for token in [&ann, &bob] {
        for order in
            app.get("/orders?status=number_assigned", As::Bearer(token)).await.expect(StatusCode::OK).data()["orders"]
                .as_array()
                .unwrap()
        {
            let id = text(&order["id"]);
            app.post(&format!("/admin/orders/{id}/cancel"), As::Bearer(&admin), json!({})).await.expect(StatusCode::OK);
        }
    }
    app.assert_ledger_sound().await;
}

async fn an_order_with_its_code_is_not_cancelled(database: TestDatabase) {
    let app = spawn_with(database, Options::default()).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (ann, _, ann_id) = app.signed_in("ann@example.com").await;
    app.fund(&ann_id, "1.00").await;
    let placed = app.post("/orders", As::Bearer(&ann), json!({"service": "tg", "country": "GB"})).await;
    let id = text(&placed.expect(StatusCode::CREATED).data()["order"]["id"]);
    let refused = app.post(&format!("/admin/orders/{id}/cancel"), As::Bearer(&admin), json!({})).await;
    refused.expect(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.balance(As::Bearer(&ann)).await, (d("0.90"), d("0")), "captured, not refunded");
    app.close_all(&ann).await;
    app.assert_ledger_sound().await;
}

on_both_engines!(admins_search_and_cancel_orders, an_order_with_its_code_is_not_cancelled);
