//! Mail over SMTP, on PostgreSQL and the embedded SQLite store: verification and password-reset
//! links and deposit receipts go through the outbox to a local SMTP sink (the real lettre
//! client, AUTH PLAIN), a temporary refusal is retried, nothing is sent twice, and a sent
//! mail's body (a sign-in link) is not kept.

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use smsledger::notifications::{Senders, send_due};
use smsledger::store::system_log::SystemLog;

use common::TestDatabase;
use common::app::{As, Options, TestApp, spawn_with, text};
use common::smtp_sink::{Received, Shared, USER, smtp_sink};

/// Runs the sender until the sink holds `count` mails (the notifier and the users directory
/// catch up meanwhile), for at most ten seconds; what the sink holds.
async fn deliver_until(app: &TestApp, sink: &Shared, count: usize) -> Vec<Received> {
    let senders = Senders::new(&app.notifications).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        send_due(app.store.engine(), &senders, 20, &SystemLog::disabled()).await.unwrap();
        let received = sink.lock().unwrap().received.clone();
        if received.len() >= count || Instant::now() > deadline {
            return received;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// The token in a mailed link to `page`.
fn token_in(mail: &Received, page: &str) -> String {
    let body = mail.body();
    let start = body.find(&format!("/{page}?token=")).unwrap_or_else(|| panic!("a {page} link in {body}"));
    let rest = &body[start + page.len() + "/?token=".len()..];
    rest.split_whitespace().next().unwrap().to_owned()
}

async fn links_and_receipts_are_mailed(database: TestDatabase) {
    let (url, sink) = smtp_sink().await;
    let env = vec![("SMTP_URL", url), ("MAIL_FROM", "smsledger <no-reply@example.com>".to_owned())];
    let app = spawn_with(database, Options { env, ..Options::default() }).await;
    sink.lock().unwrap().busy = 1;

    // Verification: the first attempt meets a busy server and is retried.
    let ann = app.register("ann@example.com").await;
    let mails = deliver_until(&app, &sink, 1).await;
    assert_eq!(mails.len(), 1, "{mails:?}");
    let verification = &mails[0];
    assert_eq!(
        (verification.from.as_str(), verification.to.as_slice()),
        ("no-reply@example.com", &["ann@example.com".to_owned()][..])
    );
    assert_eq!(verification.authenticated_as.as_deref(), Some(USER));
    assert_eq!(verification.subject(), "Confirm your email address");
    let token = token_in(verification, "verify-email");
    let verified = app.post("/auth/verify-email", As::Nobody, json!({"token": token})).await.expect(StatusCode::OK);
    assert_eq!(verified.data()["user"]["email_verified"], true, "{}", verified.body);

    // Password reset: the mailed link sets a new password.
    app.post("/auth/password-reset/request", As::Nobody, json!({"email": "ann@example.com"}))
        .await
        .expect(StatusCode::OK);
    app.post("/auth/password-reset/request", As::Nobody, json!({"email": "nobody@example.com"}))
        .await
        .expect(StatusCode::OK);
    let mails = deliver_until(&app, &sink, 2).await;
    assert_eq!(mails.len(), 2, "nothing for an unknown address: {mails:?}");
    assert_eq!(mails[1].subject(), "Reset your password");
    let token = token_in(&mails[1], "reset-password");
    let new_password = "a brand new passphrase";
    let confirm = json!({"token": token, "new_password": new_password});
    app.post("/auth/password-reset/confirm", As::Nobody, confirm).await.expect(StatusCode::OK);
    app.login("ann@example.com", new_password).await.expect(StatusCode::OK);

    // A deposit is receipted to the account's address.
    app.fund(&text(&ann["id"]), "25.00").await;
    let mails = deliver_until(&app, &sink, 3).await;
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert_eq!(mails[2].to, ["ann@example.com"]);
    assert_eq!(mails[2].subject(), "Receipt: 25.00 USD added to your balance");
    assert!(mails[2].body().contains("We received your payment of 25.00 USD (sandbox)"), "{}", mails[2].body());

    // Each was sent once; no sent mail keeps its body.
    let senders = Senders::new(&app.notifications).unwrap();
    let again = send_due(app.store.engine(), &senders, 20, &SystemLog::disabled()).await.unwrap();
    assert_eq!(again, (0, 0), "nothing more to send");
    assert_eq!(sink.lock().unwrap().received.len(), 3);
    let kept = sqlx_bodies(&app).await;
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|(body, sent)| body.is_empty() && *sent), "{kept:?}");
}

/// (body, sent) of every mail in the outbox.
async fn sqlx_bodies(app: &TestApp) -> Vec<(String, bool)> {
    let text = "SELECT body, sent_at IS NOT NULL FROM outbox WHERE channel = 'email' ORDER BY id";
    match app.store.engine() {
        smsledger::store::Engine::Postgres(pool) => sqlx::query_as(text).fetch_all(pool).await.unwrap(),
        smsledger::store::Engine::Sqlite(pool) => sqlx::query_as(text).fetch_all(pool).await.unwrap(),
    }
}

#[test]
fn smtp_needs_a_sender_and_a_usable_url() {
    let settings = |pairs: &[(&str, &str)]| {
        let pairs: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        smsledger::config::Settings::from_lookup(|key| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
    };
    let missing = settings(&[("SMTP_URL", "smtp://127.0.0.1:2525")]).err().unwrap();
    assert!(missing.to_string().contains("MAIL_FROM"), "{missing}");
    let bad_url = settings(&[("SMTP_URL", "http://mail"), ("MAIL_FROM", "a@example.com")]).err().unwrap();
    assert!(bad_url.to_string().contains("SMTP_URL"), "{bad_url}");
    let bad_from = settings(&[("SMTP_URL", "smtp://127.0.0.1:2525"), ("MAIL_FROM", "not an address")]).err().unwrap();
    assert!(bad_from.to_string().contains("MAIL_FROM"), "{bad_from}");
    assert!(settings(&[("SMTP_URL", "smtps://u:p@mail.example.com"), ("MAIL_FROM", "a@example.com")]).is_ok());
}

on_both_engines!(links_and_receipts_are_mailed);
