//! Accounts, sessions and tokens over HTTP, against a real server on both engines.

mod common;

use common::TestDatabase;
use common::app::{As, PASSWORD, spawn, text};
use reqwest::StatusCode;
use serde_json::json;

async fn registration_rules_and_duplicates(database: TestDatabase) {
    let app = spawn(database).await;
    let user = app.register("  Ann@Example.com ").await;
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["role"], "user");
    assert_eq!(user["email_verified"], false);
    let register = |email: &str, password: &str| {
        app.post("/auth/register", As::Nobody, json!({"email": email, "password": password}))
    };
    let duplicate = register("ANN@example.com", PASSWORD).await.expect(StatusCode::CONFLICT);
    assert_eq!(duplicate.body["error"], "an account with this email already exists");
    let cases = [
        ("not-an-email", PASSWORD, "email"),
        ("bob@mailinator.com", PASSWORD, "email"),
        ("bob@example.com", "short", "password"),
        ("bob@example.com", "qwertyuiop", "password"),
        ("bob@example.com", "bob@example.com-2026", "password"),
    ];
    for (email, password, field) in cases {
        let reply = register(email, password).await.expect(StatusCode::BAD_REQUEST);
        assert!(reply.body["details"][field].is_array(), "{email} {password}: {}", reply.body);
    }
    app.post("/auth/register", As::Nobody, json!({"email": "bob@example.com"})).await.expect(StatusCode::BAD_REQUEST);
    app.post("/auth/register", As::Nobody, json!({"email": 5, "password": PASSWORD}))
        .await
        .expect(StatusCode::BAD_REQUEST);
}

async fn login_me_refresh_and_logout(database: TestDatabase) {
    let app = spawn(database).await;
    let user = app.register("ann@example.com").await;
    let wrong = app.login("ann@example.com", "wrong password!").await.expect(StatusCode::UNAUTHORIZED);
    let unknown = app.login("nobody@example.com", PASSWORD).await.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["error"], unknown.body["error"], "no hint which emails exist");

    let login = app.login("ANN@example.com", PASSWORD).await.expect(StatusCode::OK);
    assert_eq!(login.data()["token_type"], "Bearer");
    assert_eq!(login.data()["expires_in"], 900);
    assert_eq!(login.data()["user"]["id"], user["id"]);
    let access = text(&login.data()["access_token"]);
    let refresh = text(&login.data()["refresh_token"]);
    let me = app.get("/auth/me", As::Bearer(&access)).await.expect(StatusCode::OK);
    assert_eq!(me.data()["user"]["email"], "ann@example.com");

    let rotated = app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh})).await.expect(StatusCode::OK);
    let (access2, refresh2) = (text(&rotated.data()["access_token"]), text(&rotated.data()["refresh_token"]));
    assert_ne!(refresh2, refresh);
    app.get("/auth/me", As::Bearer(&access2)).await.expect(StatusCode::OK);

    app.post("/auth/logout", As::Bearer(&access2), json!({})).await.expect(StatusCode::OK);
    app.get("/auth/me", As::Bearer(&access2)).await.expect(StatusCode::UNAUTHORIZED);
    app.get("/auth/me", As::Bearer(&access)).await.expect(StatusCode::UNAUTHORIZED);
    app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh2})).await.expect(StatusCode::UNAUTHORIZED);

    for bad in ["", "rt_x_y", "rt_0123456789abcdef0123456789abcdef_forged"] {
        app.post("/auth/refresh", As::Nobody, json!({"refresh_token": bad})).await.expect(StatusCode::UNAUTHORIZED);
    }
    app.get("/auth/me", As::Nobody).await.expect(StatusCode::UNAUTHORIZED);
    app.get("/auth/me", As::Bearer("not.a.jwt")).await.expect(StatusCode::UNAUTHORIZED);
}

/// A refresh token used twice means a copy leaked: the whole session ends, including the
/// tokens issued to whoever refreshed first.
async fn a_reused_refresh_token_revokes_the_family(database: TestDatabase) {
    let app = spawn(database).await;
    let (_, refresh, _) = app.signed_in("ann@example.com").await;
    let first = app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh})).await.expect(StatusCode::OK);
    let (access2, refresh2) = (text(&first.data()["access_token"]), text(&first.data()["refresh_token"]));
    let reused = app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh})).await;
    let reused = reused.expect(StatusCode::UNAUTHORIZED);
    assert!(reused.body["error"].as_str().unwrap().contains("already used"), "{}", reused.body);
    app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh2})).await.expect(StatusCode::UNAUTHORIZED);
    app.get("/auth/me", As::Bearer(&access2)).await.expect(StatusCode::UNAUTHORIZED);
    // Other sessions of the same user are untouched.
    let other = app.login("ann@example.com", PASSWORD).await.expect(StatusCode::OK);
    app.get("/auth/me", As::Bearer(&text(&other.data()["access_token"]))).await.expect(StatusCode::OK);
}

async fn sessions_are_listed_and_revoked_by_their_owner_only(database: TestDatabase) {
    let app = spawn(database).await;
    let (phone, _, _) = app.signed_in("ann@example.com").await;
    let laptop = text(&app.login("ann@example.com", PASSWORD).await.expect(StatusCode::OK).data()["access_token"]);
    let tablet = text(&app.login("ann@example.com", PASSWORD).await.expect(StatusCode::OK).data()["access_token"]);
    let (bob, _, _) = app.signed_in("bob@example.com").await;

    let listed = app.get("/auth/sessions", As::Bearer(&phone)).await.expect(StatusCode::OK);
    let sessions = listed.data()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(app.get("/auth/sessions", As::Bearer(&bob)).await.data()["sessions"].as_array().unwrap().len(), 1);

    let laptop_id = {
        let mine = app.get("/auth/sessions", As::Bearer(&laptop)).await;
        text(&mine.data()["sessions"].as_array().unwrap().iter().find(|s| s["current"] == true).unwrap()["id"])
    };
    app.delete(&format!("/auth/sessions/{laptop_id}"), As::Bearer(&bob)).await.expect(StatusCode::NOT_FOUND);
    app.get("/auth/me", As::Bearer(&laptop)).await.expect(StatusCode::OK);
    app.delete(&format!("/auth/sessions/{laptop_id}"), As::Bearer(&phone)).await.expect(StatusCode::OK);
    app.get("/auth/me", As::Bearer(&laptop)).await.expect(StatusCode::UNAUTHORIZED);
    app.delete("/auth/sessions/not-a-uuid", As::Bearer(&phone)).await.expect(StatusCode::BAD_REQUEST);

    let revoked = app.delete("/auth/sessions", As::Bearer(&phone)).await.expect(StatusCode::OK);
    assert_eq!(revoked.data()["revoked"], 1);
    app.get("/auth/me", As::Bearer(&tablet)).await.expect(StatusCode::UNAUTHORIZED);
    app.get("/auth/me", As::Bearer(&phone)).await.expect(StatusCode::OK);
    app.get("/auth/me", As::Bearer(&bob)).await.expect(StatusCode::OK);
}

async fn email_verification_by_mailed_token(database: TestDatabase) {
    let app = spawn(database).await;
    let (access, _, _) = app.signed_in("ann@example.com").await;
    let token = app.mailed_token("ann@example.com", "https://app.example.com/verify-email");
    app.post("/auth/verify-email", As::Nobody, json!({"token": "forged"})).await.expect(StatusCode::BAD_REQUEST);
    let verified = app.post("/auth/verify-email", As::Nobody, json!({"token": token})).await.expect(StatusCode::OK);
    assert_eq!(verified.data()["user"]["email_verified"], true);
    let again = app.post("/auth/send-verification-email", As::Bearer(&access), json!({})).await;
    again.expect(StatusCode::UNPROCESSABLE_ENTITY);

    let (bob, _, _) = app.signed_in("bob@example.com").await;
    app.post("/auth/send-verification-email", As::Bearer(&bob), json!({})).await.expect(StatusCode::OK);
    assert_eq!(app.mailer.sent_to("bob@example.com").len(), 2, "one at registration, one on request");
}

async fn password_change_and_reset(database: TestDatabase) {
    let app = spawn(database).await;
    let (current, _, _) = app.signed_in("ann@example.com").await;
    let other = text(&app.login("ann@example.com", PASSWORD).await.data()["access_token"]);
    let change = |current_password: &str, new_password: &str| {
        app.post(
            "/auth/change-password",
            As::Bearer(&current),
            json!({"current_password": current_password, "new_password": new_password}),
        )
    };
    change("wrong password!", "a brand new secret").await.expect(StatusCode::FORBIDDEN);
    change(PASSWORD, "short").await.expect(StatusCode::BAD_REQUEST);
    change(PASSWORD, "a brand new secret").await.expect(StatusCode::OK);
    app.get("/auth/me", As::Bearer(&current)).await.expect(StatusCode::OK);
    app.get("/auth/me", As::Bearer(&other)).await.expect(StatusCode::UNAUTHORIZED);
    app.login("ann@example.com", PASSWORD).await.expect(StatusCode::UNAUTHORIZED);
    app.login("ann@example.com", "a brand new secret").await.expect(StatusCode::OK);

    let request = |email: &str| app.post("/auth/password-reset/request", As::Nobody, json!({"email": email}));
    let known = request("ann@example.com").await.expect(StatusCode::OK);
    let unknown = request("nobody@example.com").await.expect(StatusCode::OK);
    assert_eq!(known.body, unknown.body, "the answer does not reveal whether the account exists");
    assert!(app.mailer.sent_to("nobody@example.com").is_empty());
    let token = app.mailed_token("ann@example.com", "/reset-password");
    let confirm = |new_password: &str| {
        app.post("/auth/password-reset/confirm", As::Nobody, json!({"token": token, "new_password": new_password}))
    };
    confirm("qwertyuiop").await.expect(StatusCode::BAD_REQUEST);
    confirm("reset to this secret").await.expect(StatusCode::OK);
    app.get("/auth/me", As::Bearer(&current)).await.expect(StatusCode::UNAUTHORIZED);
    app.login("ann@example.com", "reset to this secret").await.expect(StatusCode::OK);
    let reused = confirm("and once more again").await.expect(StatusCode::BAD_REQUEST);
    assert!(reused.body["error"].as_str().unwrap().contains("already used"), "{}", reused.body);
}

async fn profile_is_read_and_updated(database: TestDatabase) {
    let app = spawn(database).await;
    let (ann, _, _) = app.signed_in("ann@example.com").await;
    let (bob, _, _) = app.signed_in("bob@example.com").await;
    let updated = app
        .put("/user/profile", As::Bearer(&ann), json!({"display_name": " Ann ", "language": "pt-BR"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(updated.data()["user"]["display_name"], "Ann");
    let read = app.get("/user/profile", As::Bearer(&ann)).await.expect(StatusCode::OK);
    assert_eq!(read.data()["user"]["language"], "pt-BR");
    assert_eq!(app.get("/user/profile", As::Bearer(&bob)).await.data()["user"]["display_name"], json!(null));
    app.put("/user/profile", As::Bearer(&ann), json!({"language": "english"})).await.expect(StatusCode::BAD_REQUEST);
    app.put("/user/profile", As::Bearer(&ann), json!({"display_name": ""})).await.expect(StatusCode::BAD_REQUEST);
    app.put("/user/profile", As::Bearer(&ann), json!({})).await.expect(StatusCode::BAD_REQUEST);
    app.get("/user/profile", As::Nobody).await.expect(StatusCode::UNAUTHORIZED);
}

/// The balance route reads the balances view and sees a deposit made just before.
async fn balance_reads_your_writes_and_only_yours(database: TestDatabase) {
    use domain::wallet::WalletCommand;
    use domain::{Clearing, Currency, DepositId, PositiveMoney, UserId};
    let app = spawn(database).await;
    let (ann, _, ann_id) = app.signed_in("ann@example.com").await;
    let (bob, _, _) = app.signed_in("bob@example.com").await;
    let ledger = smsledger::service::Ledger::new(app.store.clone(), domain::order::OrderPolicy::default());
    let deposit = WalletCommand::Deposit {
        deposit_id: DepositId::new(),
        amount: PositiveMoney::parse("12.34", "USD").unwrap(),
        source: Clearing::Sandbox,
    };
    let user: UserId = ann_id.parse().unwrap();
    ledger.wallet_command(user, Currency::parse("USD").unwrap(), deposit, None, Default::default()).await.unwrap();
    let mine = app.get("/user/balance", As::Bearer(&ann)).await.expect(StatusCode::OK);
    assert_eq!(mine.data()["balances"], json!([{"currency": "USD", "available": "12.34", "held": "0"}]));
    let theirs = app.get("/user/balance?currency=USD", As::Bearer(&bob)).await.expect(StatusCode::OK);
    assert_eq!(theirs.data()["balances"], json!([{"currency": "USD", "available": "0", "held": "0"}]));
    app.get("/user/balance?currency=EUR", As::Bearer(&ann)).await.expect(StatusCode::BAD_REQUEST);
    app.get("/user/balance?currency=dollars", As::Bearer(&ann)).await.expect(StatusCode::BAD_REQUEST);
}

/// Racing registrations of one address: exactly one account is opened.
async fn one_account_per_address_under_concurrency(database: TestDatabase) {
    let app = std::sync::Arc::new(spawn(database).await);
    let attempts = (0..6).map(|i| {
        let app = app.clone();
        tokio::spawn(async move {
            let email = if i % 2 == 0 { "race@example.com" } else { "RACE@example.com" };
            app.post("/auth/register", As::Nobody, json!({"email": email, "password": PASSWORD})).await.status
        })
    });
    let mut statuses = Vec::new();
    for attempt in attempts {
        statuses.push(attempt.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{statuses:?}");
    app.login("race@example.com", PASSWORD).await.expect(StatusCode::OK);
}

/// Two refreshes racing with one token: at most one gets a new pair, and since the token was
/// then presented twice, the session ends for both.
async fn racing_refreshes_with_one_token_end_the_session(database: TestDatabase) {
    let app = std::sync::Arc::new(spawn(database).await);
    let (_, refresh, _) = app.signed_in("ann@example.com").await;
    let racers = (0..2).map(|_| {
        let (app, refresh) = (app.clone(), refresh.clone());
        tokio::spawn(async move { app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh})).await })
    });
    let mut winners = Vec::new();
    for racer in racers {
        let reply = racer.await.unwrap();
        if reply.status == StatusCode::OK {
            winners.push(text(&reply.data()["refresh_token"]));
        } else {
            reply.expect(StatusCode::UNAUTHORIZED);
        }
    }
    assert!(winners.len() <= 1, "{winners:?}");
    for token in winners {
        app.post("/auth/refresh", As::Nobody, json!({"refresh_token": token})).await.expect(StatusCode::UNAUTHORIZED);
    }
}

on_both_engines!(
    one_account_per_address_under_concurrency,
    racing_refreshes_with_one_token_end_the_session,
    registration_rules_and_duplicates,
    login_me_refresh_and_logout,
    a_reused_refresh_token_revokes_the_family,
    sessions_are_listed_and_revoked_by_their_owner_only,
    email_verification_by_mailed_token,
    password_change_and_reset,
    profile_is_read_and_updated,
    balance_reads_your_writes_and_only_yours,
);
