//! Sign-in outcomes, orders by outcome and requests by route template reach `GET /metrics` (its own test binary:
//! the recorder is process-wide, and exact counts need no other test in the process).

mod common;

use common::app::{As, spawn};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn logins_orders_and_routes_are_counted() {
    let app = spawn(common::sqlite_database()).await;
    let (_, refresh, _) = app.signed_in("ann@example.com").await;
    app.login("ann@example.com", "wrong password!").await.expect(StatusCode::UNAUTHORIZED);
    app.login("ann@example.com", "wrong password!").await.expect(StatusCode::UNAUTHORIZED);
    app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh})).await.expect(StatusCode::OK);
    app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh})).await.expect(StatusCode::UNAUTHORIZED);
    let root = app.base.trim_end_matches("/api/v1").to_owned();
    let text = reqwest::get(format!("{root}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"auth_logins_total{result="ok"} 1"#), "{text}");
    assert!(text.contains(r#"auth_logins_total{result="bad_credentials"} 2"#), "{text}");
    assert!(text.contains("auth_refresh_token_reuse_total 1"), "{text}");
    assert!(text.contains(r#"http_requests_total{method="POST",route="/api/v1/auth/login",status="401"} 2"#), "{text}");

    // Orders by outcome, and the count of open orders the monitor watches.
    let (token, _, user_id) = app.signed_in("bob@example.com").await;
    let order = json!({"service": "tg", "country": "GB"});
    app.post("/orders", As::Bearer(&token), order.clone()).await.expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.fund(&user_id, "1.00").await;
    app.post("/orders", As::Bearer(&token), order).await.expect(StatusCode::CREATED);
    smsledger::orders::monitor::scan(&app.orders, &app.store, 1).await.unwrap();
    let text = reqwest::get(format!("{root}/metrics")).await.unwrap().text().await.unwrap();
    assert!(text.contains(r#"orders_placed_total{result="placed",outcome="sandbox"} 1"#), "{text}");
    assert!(text.contains(r#"orders_placed_total{result="refused",outcome="no_balance"} 1"#), "{text}");
    assert!(text.contains("orders_watched 1"), "{text}");
    assert!(text.contains(r#"http_requests_total{method="POST",route="/api/v1/orders",status="201"} 1"#), "{text}");
}
