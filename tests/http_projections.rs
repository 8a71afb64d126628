//! Online rebuilds over HTTP, on PostgreSQL and the embedded SQLite store: an admin rebuilds a
//! read model while it is being read; every read sees the whole view (the old one or the new
//! one), the progress is reported, and the rebuilt view equals the log.

mod common;
#[path = "common/workload.rs"]
mod workload;

use std::time::Duration;

use reqwest::StatusCode;

use common::TestDatabase;
use common::app::{As, TestApp, spawn};

async fn wait_done(app: &TestApp, admin: &str, name: &str) -> serde_json::Value {
    for _ in 0..400 {
        let listed = app.get("/admin/projections", As::Bearer(admin)).await.expect(StatusCode::OK);
        let entry =
            listed.data()["projections"].as_array().unwrap().iter().find(|p| p["name"] == name).cloned().unwrap();
        if entry["rebuild"]["state"] != "running" {
            return entry;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} did not finish rebuilding");
}

async fn views_are_rebuilt_online_without_a_half_built_read(database: TestDatabase) {
    let app = spawn(database).await;
    workload::run(app.orders.ledger(), 4, 25, 41).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (user, _, _) = app.signed_in("ann@example.com").await;
    let orders = app.get("/admin/orders", As::Bearer(&admin)).await.expect(StatusCode::OK).data()["total"].clone();
    assert!(orders.as_i64().unwrap() >= 50, "{orders}");

    app.post("/admin/projections/orders/rebuild", As::Bearer(&user), serde_json::json!({}))
        .await
        .expect(StatusCode::FORBIDDEN);
    let started = app.post("/admin/projections/orders/rebuild", As::Bearer(&admin), serde_json::json!({})).await;
    let started = started.expect(StatusCode::ACCEPTED);
    assert_eq!(started.data()["rebuild"]["state"], "running");
    // Reads during the rebuild see every order.
    let mut reads = 0;
    loop {
        let listed = app.get("/admin/orders?per_page=1", As::Bearer(&admin)).await.expect(StatusCode::OK);
        assert_eq!(listed.data()["total"], orders, "a read during the rebuild saw a partial view");
        reads += 1;
        let status = app.get("/admin/projections", As::Bearer(&admin)).await.expect(StatusCode::OK);
        let entry =
            status.data()["projections"].as_array().unwrap().iter().find(|p| p["name"] == "orders").cloned().unwrap();
        if entry["rebuild"]["state"] != "running" {
            assert_eq!(entry["rebuild"]["state"], "done", "{entry}");
            assert!(entry["rebuild"]["position"].as_i64().unwrap() >= entry["rebuild"]["target"].as_i64().unwrap());
            break;
        }
    }
    assert!(reads >= 1);

    // Every other kind too, a view twice (its indexes come along each time).
    for name in ["statement", "deposits", "analytics", "users_directory", "deposits"] {
        let started =
            app.post(&format!("/admin/projections/{name}/rebuild"), As::Bearer(&admin), serde_json::json!({})).await;
        started.expect(StatusCode::ACCEPTED);
        let entry = wait_done(&app, &admin, name).await;
        assert_eq!(entry["rebuild"]["state"], "done", "{entry}");
        assert_eq!(entry["lag"], 0, "{entry}");
    }
    app.post("/admin/projections/nothing/rebuild", As::Bearer(&admin), serde_json::json!({}))
        .await
        .expect(StatusCode::NOT_FOUND);
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// Customers place orders and read their list while an admin rebuilds the orders view twice:
/// every read shows exactly the orders its reader has placed so far, never fewer.
async fn a_rebuild_under_load_never_serves_a_half_built_view(database: TestDatabase) {
    let app = std::sync::Arc::new(spawn(database).await);
    workload::run(app.orders.ledger(), 4, 25, 43).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut customers = Vec::new();
    for n in 0..4 {
        let (token, _, id) = app.signed_in(&format!("buyer{n}@example.com")).await;
        app.fund(&id, "100.00").await;
        let (app, stop) = (app.clone(), stop.clone());
        customers.push(tokio::spawn(async move {
            let mut placed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = serde_json::json!({"service": "tg", "country": "GB"});
                app.post("/orders", As::Bearer(&token), body).await.expect(StatusCode::CREATED);
                placed += 1;
                let listed = app.get("/orders?per_page=1", As::Bearer(&token)).await.expect(StatusCode::OK);
                assert_eq!(listed.data()["total"], placed, "a read saw a half-built or stale orders view");
            }
            placed
        }));
    }
    for _ in 0..2 {
        let started = app.post("/admin/projections/orders/rebuild", As::Bearer(&admin), serde_json::json!({})).await;
        started.expect(StatusCode::ACCEPTED);
        let entry = wait_done(&app, &admin, "orders").await;
        assert_eq!(entry["rebuild"]["state"], "done", "{entry}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut placed = 0;
    for customer in customers {
        placed += customer.await.unwrap();
    }
    assert!(placed >= 4, "orders were placed during the rebuilds: {placed}");
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

on_both_engines!(
    views_are_rebuilt_online_without_a_half_built_read,
    a_rebuild_under_load_never_serves_a_half_built_view
);
