//! Admins finding users over HTTP, on PostgreSQL and the embedded SQLite store: the users
//! directory searched by email, role and blocked; one user's whole picture; role changes.

mod common;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::json;

use common::TestDatabase;
use common::app::{As, TestApp, spawn, text};

async fn total(app: &TestApp, admin: &str, query: &str) -> i64 {
    let reply = app.get(&format!("/admin/users{query}"), As::Bearer(admin)).await.expect(StatusCode::OK);
    reply.data()["total"].as_i64().unwrap()
}

async fn admins_find_and_manage_users(database: TestDatabase) {
    let app = spawn(database).await;
    let (admin, _, admin_id) = app.admin("root@example.com").await;
    let (ann, _, ann_id) = app.signed_in("ann@example.com").await;
    let (_, _, bob_id) = app.signed_in("bob@example.com").await;
    let (_, _, carol_id) = app.signed_in("carol@example.org").await;
    app.post(&format!("/admin/users/{carol_id}/block"), As::Bearer(&admin), json!({"reason": "chargebacks"}))
        .await
        .expect(StatusCode::OK);

    assert_eq!(total(&app, &admin, "").await, 4);
    assert_eq!(total(&app, &admin, "?q=ANN").await, 1, "case does not matter");
    assert_eq!(total(&app, &admin, "?q=example.com").await, 3);
    assert_eq!(total(&app, &admin, "?q=%25").await, 0, "a % is a character, not a wildcard");
    assert_eq!(total(&app, &admin, "?q=_").await, 0, "so is _");
    assert_eq!(total(&app, &admin, "?role=admin").await, 1);
    assert_eq!(total(&app, &admin, "?blocked=true").await, 1);
    assert_eq!(total(&app, &admin, "?blocked=false&role=user").await, 2);
    let listed = app.get("/admin/users?q=ann", As::Bearer(&admin)).await.expect(StatusCode::OK);
    let entry = &listed.data()["users"][0];
    assert_eq!((entry["id"].as_str(), entry["role"].as_str()), (Some(ann_id.as_str()), Some("user")));
    assert!(entry["last_login_at"].is_string(), "{entry}");
    for bad in ["?role=root", "?per_page=0", "?page=0", "?blocked=maybe"] {
        app.get(&format!("/admin/users{bad}"), As::Bearer(&admin)).await.expect(StatusCode::BAD_REQUEST);
    }
    app.get("/admin/users", As::Bearer(&ann)).await.expect(StatusCode::FORBIDDEN);

    // One user's whole picture.
    app.fund(&ann_id, "1.00").await;
    app.post("/orders", As::Bearer(&ann), json!({"service": "tg", "country": "GB"})).await.expect(StatusCode::CREATED);
    let picture = app.get(&format!("/admin/users/{ann_id}"), As::Bearer(&admin)).await.expect(StatusCode::OK);
    let data = picture.data();
    assert_eq!(data["user"]["email"], "ann@example.com");
    assert_eq!(text(&data["wallets"][0]["available"]).parse::<Decimal>().unwrap(), "0.90".parse::<Decimal>().unwrap());
    assert_eq!((data["orders_total"].as_i64(), data["orders"][0]["service"].as_str()), (Some(1), Some("tg")));
    assert_eq!(data["ledger"][0]["kind"], "wallet.deposited");

    // Roles: promote bob; nobody changes their own.
    let promoted = app.post(&format!("/admin/users/{bob_id}/role"), As::Bearer(&admin), json!({"role": "admin"})).await;
    assert_eq!(promoted.expect(StatusCode::OK).data()["user"]["role"], "admin");
    assert_eq!(total(&app, &admin, "?role=admin").await, 2);
    app.post(&format!("/admin/users/{admin_id}/role"), As::Bearer(&admin), json!({"role": "user"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&format!("/admin/users/{bob_id}/role"), As::Bearer(&admin), json!({"role": "owner"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.post(&format!("/admin/users/{bob_id}/role"), As::Bearer(&ann), json!({"role": "user"}))
        .await
        .expect(StatusCode::FORBIDDEN);
    app.close_all(&ann).await;
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.users_view > 0, "the users directory was compared");
}

on_both_engines!(admins_find_and_manage_users);
