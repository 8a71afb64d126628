//! The system log over HTTP, on PostgreSQL and the embedded SQLite store: catalog sync runs,
//! a provider that does not answer, a refused webhook, and the cleanup that deletes entries
//! older than the retention.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with};

async fn entries(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    let reply = app.get(&format!("/admin/logs/system{query}"), As::Bearer(admin)).await.expect(StatusCode::OK);
    reply.data()["entries"].as_array().unwrap().clone()
}

/// Entries are written by a background writer: waits until `query` finds at least one.
async fn eventually(app: &TestApp, admin: &str, query: &str) -> Vec<Value> {
    for _ in 0..100 {
        let found = entries(app, admin, query).await;
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no system log entry for {query}");
}

async fn jobs_providers_and_webhooks_are_logged(database: TestDatabase) {
    let (stripe_url, _stripe) = common::fake_stripe::fake_stripe().await;
    let (smsman_url, _smsman) = common::fake_smsman::fake_smsman().await;
    let broken = common::fake_smsman::client(&smsman_url, "a-wrong-token");
    let sandbox = smsledger::providers::from_settings(
        &smsledger::config::Settings::from_lookup(|_| None).unwrap().providers,
        domain::Currency::USD,
    );
    let env = vec![
        ("STRIPE_SECRET_KEY", common::fake_stripe::SECRET_KEY.to_owned()),
        ("STRIPE_WEBHOOK_SECRET", common::fake_stripe::WEBHOOK_SECRET.to_owned()),
        ("STRIPE_API_BASE", stripe_url),
    ];
    let providers = Some([vec![broken], sandbox].concat());
    let app = spawn_with(database, Options { env, providers, jobs: true, ..Options::default() }).await;
    let (admin, _, _) = app.admin("root@example.com").await;

    let sync = eventually(&app, &admin, "?kind=job&source=catalog-sync").await;
    assert!(sync[0]["message"].as_str().unwrap().contains("from 1 of 2 providers"), "{sync:?}");
    let provider = eventually(&app, &admin, "?kind=provider&source=smsman").await;
    assert_eq!(provider[0]["level"], "warn");

    let forged = reqwest::Client::new()
        .post(format!("{}/payments/webhook", app.base))
        .header("stripe-signature", "t=1,v1=00")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    let webhook = eventually(&app, &admin, "?kind=webhook&source=stripe&level=warn").await;
    assert!(webhook[0]["message"].as_str().unwrap().starts_with("refused"), "{webhook:?}");

    for bad in ["?kind=cron", "?level=fatal", "?per_page=0"] {
        app.get(&format!("/admin/logs/system{bad}"), As::Bearer(&admin)).await.expect(StatusCode::BAD_REQUEST);
    }
    let (user, _, _) = app.signed_in("ann@example.com").await;
    app.get("/admin/logs/system", As::Bearer(&user)).await.expect(StatusCode::FORBIDDEN);

    // The cleanup with no retention deletes everything logged so far, then logs itself.
    let log = smsledger::store::system_log::SystemLog::start(app.store.engine().clone());
    let deleted = smsledger::cleanup::run_once(app.store.engine(), &log, Duration::ZERO).await.unwrap();
    assert!(deleted >= 3, "{deleted}");
    let cleanup = eventually(&app, &admin, "?source=cleanup").await;
    assert!(cleanup[0]["message"].as_str().unwrap().starts_with(&format!("{deleted} ")), "{cleanup:?}");
    assert!(entries(&app, &admin, "?kind=webhook").await.is_empty(), "older entries are gone");
}

on_both_engines!(jobs_providers_and_webhooks_are_logged);
