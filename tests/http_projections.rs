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

on_both_engines!(views_are_rebuilt_online_without_a_half_built_read);
