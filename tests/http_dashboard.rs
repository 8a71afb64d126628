//! The admin dashboard over HTTP, on PostgreSQL and the embedded SQLite store: a scripted day
//! of deposits and orders (one finished, one cancelled) and the figures it must show.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use common::TestDatabase;
use common::app::{As, Options, spawn_with, text};

fn d(value: &Value) -> Decimal {
    text(value).parse().unwrap()
}

async fn the_dashboard_sums_a_scripted_day(database: TestDatabase) {
    let env = [("SANDBOX_CODE_DELAY_MS", "1500"), ("CANCEL_TIMEOUT", "0")];
    let options = Options { env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(), ..Options::default() };
    let app = spawn_with(database, options).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (ann, _, ann_id) = app.signed_in("ann@example.com").await;
    let (_, _, bob_id) = app.signed_in("bob@example.com").await;
    app.fund(&ann_id, "1.00").await;
    app.fund(&bob_id, "2.00").await;
    let place = || app.post("/orders", As::Bearer(&ann), json!({"service": "tg", "country": "GB"}));
    let kept = text(&place().await.expect(StatusCode::CREATED).data()["order"]["id"]);
    let cancelled = text(&place().await.expect(StatusCode::CREATED).data()["order"]["id"]);
    app.post(&format!("/orders/{cancelled}/cancel"), As::Bearer(&ann), json!({})).await.expect(StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let read = app.get(&format!("/orders/{kept}"), As::Bearer(&ann)).await.expect(StatusCode::OK);
    assert_eq!(read.data()["order"]["status"], "sms_received");
    app.post(&format!("/orders/{kept}/finish"), As::Bearer(&ann), json!({})).await.expect(StatusCode::OK);

    // Yesterday to tomorrow, so the test holds across midnight.
    let today = chrono::Utc::now().date_naive();
    let range = format!("?from={}&to={}", today - chrono::Duration::days(1), today + chrono::Duration::days(1));
    app.get(&format!("/admin/dashboard{range}"), As::Bearer(&ann)).await.expect(StatusCode::FORBIDDEN);
    let reply = app.get(&format!("/admin/dashboard{range}"), As::Bearer(&admin)).await.expect(StatusCode::OK);
    let dashboard = reply.data();
    let totals = &dashboard["totals"];
    assert_eq!(d(&totals["deposits"]["USD"]), "3.00".parse::<Decimal>().unwrap(), "{dashboard}");
    assert_eq!(totals["deposits_count"], 2);
    assert_eq!(d(&totals["revenue"]["USD"]), "0.10".parse::<Decimal>().unwrap());
    assert_eq!(d(&totals["provider_cost"]["USD"]), "0.10".parse::<Decimal>().unwrap());
    assert_eq!(d(&totals["margin"]["USD"]), Decimal::ZERO);
    assert_eq!(d(&totals["refunds"]["USD"]), "0.10".parse::<Decimal>().unwrap());
    assert_eq!(totals["orders"], 2);
    assert_eq!(totals["orders_by_status"], json!({"finished": 1, "cancelled": 1}));
    assert_eq!(totals["success_rate"], "0.5");
    assert_eq!(totals["active_users"], 2, "ann ordered and deposited, bob deposited");
    assert_eq!(dashboard["orders_by_service"], json!({"tg": 2}));
    assert_eq!(dashboard["orders_by_country"], json!({"GB": 2}));
    assert_eq!(dashboard["orders_by_provider"], json!({"sandbox": 2}));
    assert_eq!(d(&dashboard["revenue_by_provider"]["sandbox"]["USD"]), "0.10".parse::<Decimal>().unwrap());
    let days = dashboard["days"].as_array().unwrap();
    assert_eq!(days.iter().map(|day| day["orders"].as_u64().unwrap()).sum::<u64>(), 2);

    // A range with nothing in it, and bad ranges.
    let empty = app.get("/admin/dashboard?from=2001-01-01&to=2001-01-31", As::Bearer(&admin)).await;
    let empty = empty.expect(StatusCode::OK);
    assert_eq!(
        (empty.data()["totals"]["orders"].as_u64(), empty.data()["days"].as_array().map(Vec::len)),
        (Some(0), Some(0))
    );
    assert_eq!(empty.data()["totals"]["success_rate"], Value::Null);
    for bad in ["?from=2026-13-01", "?from=2026-02-01&to=2026-01-01", "?from=2020-01-01&to=2026-01-01"] {
        app.get(&format!("/admin/dashboard{bad}"), As::Bearer(&admin)).await.expect(StatusCode::BAD_REQUEST);
    }
    let report = smsledger::verify::verify(&app.store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.analytics_view > 0, "the analytics view was compared");
}

on_both_engines!(the_dashboard_sums_a_scripted_day);
