//! Admins' providers over HTTP, on PostgreSQL and the embedded SQLite store: health, offers and
//! balance at each provider, and routing they control: a disabled provider is never used, a
//! lower priority is tried first whatever the price.

mod common;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with, text};

fn d(amount: &str) -> Decimal {
    amount.parse().unwrap()
}

async fn place(app: &TestApp, token: &str) -> Value {
    let placed = app.post("/orders", As::Bearer(token), json!({"service": "tg", "country": "GB"})).await;
    placed.expect(StatusCode::CREATED).data()["order"].clone()
}

async fn provider(app: &TestApp, admin: &str, id: &str) -> Value {
    let listed = app.get("/admin/providers", As::Bearer(admin)).await.expect(StatusCode::OK);
    listed.data()["providers"].as_array().unwrap().iter().find(|p| p["id"] == id).cloned().unwrap()
}

async fn admins_route_between_providers(database: TestDatabase) {
    let (url, _fake) = common::fake_smsman::fake_smsman().await;
    let smsman = common::fake_smsman::client(&url, common::fake_smsman::TOKEN);
    let env = vec![("CANCEL_TIMEOUT", "0".to_owned())];
    let options =
        Options { env, providers: Some(vec![smsman, common::sandbox_provider("0.30")]), ..Options::default() };
    let app = spawn_with(database, options).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (ann, _, ann_id) = app.signed_in("ann@example.com").await;
    app.fund(&ann_id, "5.00").await;

    let smsman = provider(&app, &admin, "smsman").await;
    assert_eq!((smsman["enabled"].as_bool(), smsman["priority"].as_u64()), (Some(true), Some(100)));
    assert_eq!((smsman["healthy"].as_bool(), smsman["balance"].as_str()), (Some(true), Some("12.34")), "{smsman}");
    assert!(smsman["offers"].as_u64().unwrap() > 0);
    let sandbox = provider(&app, &admin, "sandbox").await;
    assert_eq!((sandbox["balance"].clone(), sandbox["balance_error"].clone()), (Value::Null, Value::Null));

    // By default the cheapest serves: SMS-Man at 0.25.
    assert_eq!(d(&text(&place(&app, &ann).await["price"])), d("0.25"));
    // Disabled, SMS-Man is neither sold nor used.
    app.put("/admin/providers/smsman", As::Bearer(&admin), json!({"enabled": false})).await.expect(StatusCode::OK);
    assert_eq!(provider(&app, &admin, "smsman").await["enabled"], false);
    let prices = app.get("/catalog/prices?service=tg&country=GB", As::Nobody).await.expect(StatusCode::OK);
    let sold: Vec<&Value> = prices.data()["prices"].as_array().unwrap().iter().collect();
    assert!(sold.iter().all(|p| d(&text(&p["price"])) == d("0.30")), "{}", prices.body);
    assert_eq!(d(&text(&place(&app, &ann).await["price"])), d("0.30"));
    // Enabled again behind the sandbox: priority wins over price.
    let body = json!({"enabled": true, "priority": 200});
    app.put("/admin/providers/smsman", As::Bearer(&admin), body).await.expect(StatusCode::OK);
    assert_eq!(d(&text(&place(&app, &ann).await["price"])), d("0.30"));
    let preview = app.get("/admin/pricing-rules/preview?service=tg&country=GB", As::Bearer(&admin)).await;
    let preview = preview.expect(StatusCode::OK);
    assert_eq!(preview.data()["offers"][0]["provider"], "sandbox", "{}", preview.body);
    assert_eq!(preview.data()["offers"][1]["priority"], 200);

    app.put("/admin/providers/nobody", As::Bearer(&admin), json!({"enabled": false}))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.put("/admin/providers/smsman", As::Bearer(&admin), json!({"priority": 2_000_000}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.put("/admin/providers/smsman", As::Bearer(&admin), json!({"priority": -1}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.put("/admin/providers/smsman", As::Bearer(&ann), json!({"enabled": false})).await.expect(StatusCode::FORBIDDEN);
    app.get("/admin/providers", As::Bearer(&ann)).await.expect(StatusCode::FORBIDDEN);
    app.close_all(&ann).await;
    app.assert_ledger_sound().await;
}

on_both_engines!(admins_route_between_providers);
