//! Notifications over HTTP, on PostgreSQL and the embedded SQLite store: in-app notifications
//! with read marks, and admin alerts through the outbox to a local fake of the Telegram Bot
//! API, delivered at least once with a retry after a failure, never twice after success.

mod common;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use common::TestDatabase;
use common::app::{As, Options, spawn_with, text};
use common::fake_telegram::{CHAT, TOKEN, fake_telegram};

async fn users_and_admins_are_notified(database: TestDatabase) {
    let (url, fake) = fake_telegram(1).await;
    let env = vec![
        ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
        ("TELEGRAM_CHAT_ID", CHAT.to_owned()),
        ("TELEGRAM_API_BASE", url),
    ];
    let app = spawn_with(database, Options { env, ..Options::default() }).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (ann, _, ann_id) = app.signed_in("ann@example.com").await;
    let (bob, _, _) = app.signed_in("bob@example.com").await;
    app.fund(&ann_id, "150.00").await;
    let debit = json!({"amount": "-10", "reason": "duplicate top-up"});
    app.post(&format!("/admin/users/{ann_id}/adjust"), As::Bearer(&admin), debit).await.expect(StatusCode::CREATED);

    // In-app: newest first, unread until marked.
    let listed = app.get("/notifications", As::Bearer(&ann)).await.expect(StatusCode::OK);
    let notes = listed.data()["notifications"].as_array().unwrap().clone();
    let kinds: Vec<&str> = notes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["adjustment", "deposit"], "{}", listed.body);
    assert!(text(&notes[1]["message"]).contains("150 USD credited"), "{}", notes[1]);
    assert!(text(&notes[0]["message"]).contains("10 USD debited by support: duplicate top-up"), "{}", notes[0]);
    assert!(notes.iter().all(|n| n["read"] == false));
    let newest = notes[0]["id"].as_i64().unwrap();
    let other = app.post(&format!("/notifications/{newest}/read"), As::Bearer(&bob), json!({})).await;
    assert_eq!(other.expect(StatusCode::OK).data()["updated"], 0, "not bob's");
    let mine = app.post(&format!("/notifications/{newest}/read"), As::Bearer(&ann), json!({})).await;
    assert_eq!(mine.expect(StatusCode::OK).data()["updated"], 1);
    let unread = app.get("/notifications?unread=true", As::Bearer(&ann)).await.expect(StatusCode::OK);
    assert_eq!(unread.data()["total"], 1);
    let all = app.post("/notifications/read-all", As::Bearer(&ann), json!({})).await.expect(StatusCode::OK);
    assert_eq!(all.data()["updated"], 1);
    assert_eq!(app.get("/notifications?unread=true", As::Bearer(&ann)).await.expect(StatusCode::OK).data()["total"], 0);
    app.get("/notifications?per_page=0", As::Bearer(&ann)).await.expect(StatusCode::BAD_REQUEST);
    app.get("/notifications", As::Nobody).await.expect(StatusCode::UNAUTHORIZED);

    // Admin alerts: three registrations and a large deposit; the first send fails and is retried.
    let client = smsledger::notifications::Senders::new(&app.notifications).unwrap();
    let log = smsledger::store::system_log::SystemLog::disabled();
    let engine = app.store.engine();
    // The failed one waits RETRY_BASE_MS: long enough that the second round (the rest of the
    // first round's sends come between) cannot reach it on a busy machine.
    const RETRY_BASE_MS: i64 = 1_000;
    let first = smsledger::notifications::send_due(engine, &client, RETRY_BASE_MS, &log).await.unwrap();
    assert_eq!(first, (3, 1), "one failed");
    let early = smsledger::notifications::send_due(engine, &client, RETRY_BASE_MS, &log).await.unwrap();
    assert_eq!(early, (0, 0), "not due yet");
    tokio::time::sleep(Duration::from_millis(RETRY_BASE_MS as u64 + 50)).await;
    let retried = smsledger::notifications::send_due(engine, &client, RETRY_BASE_MS, &log).await.unwrap();
    assert_eq!(retried, (1, 0), "retried");
    let again = smsledger::notifications::send_due(engine, &client, RETRY_BASE_MS, &log).await.unwrap();
    assert_eq!(again, (0, 0), "sent once");
    let delivered = fake.lock().unwrap().delivered.clone();
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    assert!(delivered.iter().all(|(chat, _)| chat == CHAT));
    let texts: Vec<&str> = delivered.iter().map(|(_, text)| text.as_str()).collect();
    assert!(texts.contains(&"New registration: ann@example.com"), "{texts:?}");
    assert!(texts.iter().any(|t| t.starts_with("Large deposit: 150 USD by user ")), "{texts:?}");
}

/// SMS-Man holds 12.34 (its fake), TextVerified 3.50; SMS-Man's own threshold is 20, the
/// default 10: both are low. One alert each per day, however often the check runs.
async fn a_low_provider_balance_alerts_the_admins_once_a_day(database: TestDatabase) {
    let (url, fake) = fake_telegram(1).await;
    let env = vec![
        ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
        ("TELEGRAM_CHAT_ID", CHAT.to_owned()),
        ("TELEGRAM_API_BASE", url),
        ("SMSMAN_LOW_BALANCE", "20".to_owned()),
    ];
    let app = spawn_with(database, Options { env, ..Options::default() }).await;
    let (smsman_url, _smsman) = common::fake_smsman::fake_smsman().await;
    let (textverified_url, textverified) = common::fake_textverified::fake_textverified().await;
    textverified.lock().unwrap().balance = 3.5;
    let providers = vec![
        common::fake_smsman::client(&smsman_url, common::fake_smsman::TOKEN),
        common::fake_textverified::client(&textverified_url, "key-1"),
        common::sandbox_provider("0.10"),
    ];
    use smsledger::notifications::low_balance::check;
    let (engine, thresholds) = (app.store.engine(), &app.notifications.low_balance);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    assert_eq!(check(engine, &providers, thresholds, CHAT, today).await.unwrap(), 2);
    assert_eq!(check(engine, &providers, thresholds, CHAT, today).await.unwrap(), 0, "once a day");
    textverified.lock().unwrap().balance = 10.0;
    let tomorrow = today.succ_opt().unwrap();
    assert_eq!(check(engine, &providers, thresholds, CHAT, tomorrow).await.unwrap(), 1, "TextVerified is topped up");

    fake.lock().unwrap().failures = 0;
    let senders = smsledger::notifications::Senders::new(&app.notifications).unwrap();
    let log = smsledger::store::system_log::SystemLog::disabled();
    smsledger::notifications::send_due(engine, &senders, 50, &log).await.unwrap();
    let texts: Vec<String> = fake.lock().unwrap().delivered.iter().map(|(_, text)| text.clone()).collect();
    let low: Vec<&String> = texts.iter().filter(|t| t.starts_with("Low balance")).collect();
    assert_eq!(low.len(), 3, "{texts:?}");
    assert!(low[0].starts_with("Low balance at smsman: 12.34 "), "{low:?}");
    assert!(low[0].contains("(alert below 20 "), "{low:?}");
    assert!(low[1].starts_with("Low balance at textverified: 3.5"), "{low:?}");
    assert!(low[1].contains(" USD left (alert below 10 USD)"), "{low:?}");
}

#[test]
fn retries_wait_longer_each_time_up_to_an_hour() {
    use smsledger::notifications::retry_wait_ms;
    assert_eq!((retry_wait_ms(1_000, 0), retry_wait_ms(1_000, 1), retry_wait_ms(1_000, 3)), (1_000, 2_000, 8_000));
    assert_eq!(retry_wait_ms(1_000, 40), 3_600_000);
}

on_both_engines!(users_and_admins_are_notified, a_low_provider_balance_alerts_the_admins_once_a_day);
