//! Audit and finance routes over HTTP, on PostgreSQL and the embedded SQLite store: the
//! replay report, the trial balance and an account's balance at a past position or date, and
//! the streamed postings export, whose totals reconcile to the trial balance.

mod common;
#[path = "common/workload.rs"]
mod workload;

use std::collections::BTreeMap;

use reqwest::StatusCode;
use rust_decimal::Decimal;

use common::TestDatabase;
use common::app::{As, TestApp, spawn, text};

type Sums = BTreeMap<(String, String), Decimal>;

async fn download(app: &TestApp, token: &str, query: &str) -> (StatusCode, String, String) {
    let response = reqwest::Client::new()
        .get(format!("{}/admin/exports/{query}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

/// (sums of the rows, the total rows) of a CSV export.
fn csv_sums(text: &str) -> (Sums, Sums) {
    let (mut rows, mut totals) = (Sums::new(), Sums::new());
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let key = (fields[5].to_owned(), fields[6].to_owned());
        let amount: Decimal = fields[7].parse().unwrap();
        if fields[3] == "total" {
            totals.insert(key, amount);
        } else {
            *rows.entry(key).or_default() += amount;
        }
    }
    (rows, totals)
}

fn balances(data: &serde_json::Value) -> Sums {
    data["balances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| ((text(&b["account"]), text(&b["currency"])), text(&b["balance"]).parse().unwrap()))
        .collect()
}

async fn the_ledger_is_audited_and_exported(database: TestDatabase) {
    let app = spawn(database).await;
    workload::run(app.orders.ledger(), 3, 4, 31).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (user, _, _) = app.signed_in("ann@example.com").await;

    app.get("/admin/ledger/verify", As::Bearer(&user)).await.expect(StatusCode::FORBIDDEN);
    let report = app.get("/admin/ledger/verify", As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(report.data()["ok"], true, "{}", report.body);
    assert!(report.data()["ledger_events"].as_u64().unwrap() > 10);
    assert!(text(&report.data()["trial_totals"]["USD"]).parse::<Decimal>().unwrap().is_zero());

    let head = app.store.head().await.unwrap().position;
    let trial = app.get("/admin/ledger/trial-balance", As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(trial.data()["position"], head);
    assert!(text(&trial.data()["totals"]["USD"]).parse::<Decimal>().unwrap().is_zero());
    let trial = balances(trial.data());

    let (status, kind, csv) = download(&app, &admin, "postings").await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "text/csv; charset=utf-8"));
    let (rows, totals) = csv_sums(&csv);
    assert_eq!(rows, totals);
    let nonzero: Sums = totals.clone().into_iter().filter(|(_, amount)| !amount.is_zero()).collect();
    let trial_nonzero: Sums = trial.clone().into_iter().filter(|(_, amount)| !amount.is_zero()).collect();
    assert_eq!(nonzero, trial_nonzero, "the export reconciles to the trial balance");
    let (_, kind, jsonl) = download(&app, &admin, "postings?format=jsonl").await;
    assert_eq!(kind, "application/x-ndjson");
    assert!(jsonl.lines().last().unwrap().starts_with("{\"total\""));

    // The past: the trial balance at an earlier position equals an export up to it.
    let middle = head / 2;
    let earlier = app.get(&format!("/admin/ledger/trial-balance?at={middle}"), As::Bearer(&admin)).await;
    let earlier = balances(earlier.expect(StatusCode::OK).data());
    let (_, up_to_middle) = csv_sums(&download(&app, &admin, &format!("postings?to={middle}")).await.2);
    assert_eq!(earlier, up_to_middle);
    let margin = app.get("/admin/ledger/balance?account=revenue:margin", As::Bearer(&admin)).await;
    let margin = balances(margin.expect(StatusCode::OK).data());
    assert_eq!(
        margin.get(&("revenue:margin".into(), "USD".into())),
        trial.get(&("revenue:margin".into(), "USD".into()))
    );
    let before = app.get("/admin/ledger/balance?account=revenue:margin&at=2000-01-01", As::Bearer(&admin)).await;
    assert_eq!(before.expect(StatusCode::OK).data()["balances"], serde_json::json!([]));

    // Bad input is a 400 naming the field.
    let bad = app.get("/admin/ledger/balance?account=bank:vault", As::Bearer(&admin)).await;
    assert_eq!(bad.expect(StatusCode::BAD_REQUEST).body["details"]["field"], "account");
    let bad = app.get("/admin/ledger/trial-balance?at=yesterday", As::Bearer(&admin)).await;
    assert_eq!(bad.expect(StatusCode::BAD_REQUEST).body["details"]["field"], "at");
    assert_eq!(download(&app, &admin, "postings?format=xlsx").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(download(&app, &admin, "postings?from=soon").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(download(&app, &user, "postings").await.0, StatusCode::FORBIDDEN);
}

/// CSV rows split into fields, the header left out.
fn rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines().skip(1).map(|line| line.split(',').map(str::to_owned).collect()).collect()
}

async fn orders_and_deposits_are_exported_with_totals(database: TestDatabase) {
    let env = vec![("APP_ENV", "development".to_owned())];
    let app = common::app::spawn_with(database, common::app::Options { env, ..Default::default() }).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (ann, _, _) = app.signed_in("ann@example.com").await;
    for amount in ["5", "3"] {
        let body = serde_json::json!({"amount": amount, "method": "sandbox"});
        app.post("/payments/deposit", As::Bearer(&ann), body).await.expect(StatusCode::CREATED);
    }
    let tg = serde_json::json!({"service": "tg", "country": "GB"});
    let first = app.post("/orders", As::Bearer(&ann), tg.clone()).await.expect(StatusCode::CREATED);
    let first = text(&first.data()["order"]["id"]);
    app.post("/orders", As::Bearer(&ann), tg).await.expect(StatusCode::CREATED);
    app.post(&format!("/orders/{first}/finish"), As::Bearer(&admin), serde_json::json!({}))
        .await
        .expect(StatusCode::NOT_FOUND);
    app.post(&format!("/orders/{first}/finish"), As::Bearer(&ann), serde_json::json!({})).await.expect(StatusCode::OK);
    app.get("/orders", As::Bearer(&ann)).await.expect(StatusCode::OK);

    let (status, kind, orders) = download(&app, &admin, "orders").await;
    assert_eq!((status, kind.as_str()), (StatusCode::OK, "text/csv; charset=utf-8"));
    assert!(orders.starts_with("order_id,serial,user_id,status,"), "{orders}");
    let orders = rows(&orders);
    assert_eq!(orders.len(), 4, "two orders, then a total per status: {orders:?}");
    assert_eq!(orders[0][0], first);
    let finished = orders.iter().find(|row| row[0] == "total" && row[3] == "finished").expect("a finished total");
    assert_eq!((finished[1].as_str(), finished[7].parse::<Decimal>().unwrap()), ("1", "0.10".parse().unwrap()));

    let (_, _, deposits) = download(&app, &admin, "deposits?format=csv").await;
    let deposits = rows(&deposits);
    assert_eq!(deposits.len(), 3, "{deposits:?}");
    let total = &deposits[2];
    assert_eq!((total[0].as_str(), total[1].as_str(), total[3].as_str()), ("total", "2", "sandbox/succeeded"));
    assert_eq!(total[5].parse::<Decimal>().unwrap(), Decimal::from(8), "received in all");
    let (_, kind, jsonl) = download(&app, &admin, "deposits?format=jsonl").await;
    assert_eq!(kind, "application/x-ndjson");
    assert_eq!(jsonl.lines().count(), 3);

    let tomorrow = chrono::Utc::now().date_naive() + chrono::Duration::days(1);
    let (_, _, later) = download(&app, &admin, &format!("orders?from={tomorrow}")).await;
    assert_eq!(rows(&later).len(), 0, "nothing placed from tomorrow");
    assert_eq!(download(&app, &admin, "orders?from=5").await.0, StatusCode::BAD_REQUEST, "positions are for postings");
    assert_eq!(download(&app, &admin, "invoices").await.0, StatusCode::NOT_FOUND);
}

on_both_engines!(the_ledger_is_audited_and_exported, orders_and_deposits_are_exported_with_totals);
