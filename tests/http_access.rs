//! API keys, admin second factor, blocked users, maintenance modes and rate limits over
//! HTTP, against a real server on both engines (rate limits also on the real Redis).

mod common;

use common::TestDatabase;
use common::app::{As, Options, PASSWORD, generous_quotas, spawn, spawn_with, text, unix_now};
use reqwest::StatusCode;
use serde_json::json;
use smsledger::identity::totp::code_at;
use smsledger::rate_limit::{Quota, RateLimiter};

async fn api_keys_are_shown_once_used_and_revoked_by_their_owner(database: TestDatabase) {
    let app = spawn(database).await;
    let (ann, _, _) = app.signed_in("ann@example.com").await;
    let (bob, _, _) = app.signed_in("bob@example.com").await;
    let created = app.post("/user/api-keys", As::Bearer(&ann), json!({"name": "my bot"})).await;
    let created = created.expect(StatusCode::CREATED);
    let key = text(&created.data()["key"]);
    let key_id = text(&created.data()["id"]);
    assert!(key.starts_with(created.data()["prefix"].as_str().unwrap()));

    let listed = app.get("/user/api-keys", As::Bearer(&ann)).await.expect(StatusCode::OK);
    let keys = listed.data()["api_keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["name"], "my bot");
    assert!(keys[0].get("key").is_none() && !listed.body.to_string().contains(&key), "the key is shown once");
    assert_eq!(keys[0]["last_used_at"], json!(null));
    assert!(app.get("/user/api-keys", As::Bearer(&bob)).await.data()["api_keys"].as_array().unwrap().is_empty());

    let me = app.get("/auth/me", As::Key(&key)).await.expect(StatusCode::OK);
    assert_eq!(me.data()["user"]["email"], "ann@example.com");
    let by_query = app.get(&format!("/user/profile?api_key={key}"), As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(by_query.data()["user"]["email"], "ann@example.com");
    let used = app.get("/user/api-keys", As::Bearer(&ann)).await;
    assert!(used.data()["api_keys"][0]["last_used_at"].is_string(), "{}", used.body);

    app.post("/user/api-keys", As::Key(&key), json!({"name": "from a key"})).await.expect(StatusCode::FORBIDDEN);
    // A key acts on user routes, but cannot manage keys, sessions or the password.
    let change = json!({"current_password": PASSWORD, "new_password": "a brand new secret"});
    app.post("/auth/change-password", As::Key(&key), change).await.expect(StatusCode::FORBIDDEN);
    app.delete("/auth/sessions", As::Key(&key)).await.expect(StatusCode::FORBIDDEN);
    app.post("/auth/logout", As::Key(&key), json!({})).await.expect(StatusCode::FORBIDDEN);
    app.post("/auth/2fa/setup", As::Key(&key), json!({})).await.expect(StatusCode::FORBIDDEN);
    app.delete(&format!("/user/api-keys/{key_id}"), As::Key(&key)).await.expect(StatusCode::FORBIDDEN);
    app.post("/user/api-keys", As::Bearer(&ann), json!({"name": ""})).await.expect(StatusCode::BAD_REQUEST);
    app.post("/user/api-keys", As::Bearer(&ann), json!({})).await.expect(StatusCode::BAD_REQUEST);
    let forged = format!("{}x", &key[..key.len() - 1]);
    app.get("/auth/me", As::Key(&forged)).await.expect(StatusCode::UNAUTHORIZED);
    app.get("/auth/me", As::Key("sk_nonsense")).await.expect(StatusCode::UNAUTHORIZED);

    app.delete(&format!("/user/api-keys/{key_id}"), As::Bearer(&bob)).await.expect(StatusCode::NOT_FOUND);
    app.get("/auth/me", As::Key(&key)).await.expect(StatusCode::OK);
    app.delete(&format!("/user/api-keys/{key_id}"), As::Bearer(&ann)).await.expect(StatusCode::OK);
    app.get("/auth/me", As::Key(&key)).await.expect(StatusCode::UNAUTHORIZED);
    app.delete(&format!("/user/api-keys/{key_id}"), As::Bearer(&ann)).await.expect(StatusCode::NOT_FOUND);
}

async fn admin_routes_need_an_admin_with_a_second_factor(database: TestDatabase) {
    let app = spawn(database).await;
    let (user, _, user_id) = app.signed_in("ann@example.com").await;
    let path = format!("/admin/users/{user_id}");
    app.get(&path, As::Nobody).await.expect(StatusCode::UNAUTHORIZED);
    app.get(&path, As::Bearer(&user)).await.expect(StatusCode::FORBIDDEN);

    // An admin without TOTP may sign in (to enrol) but not use admin routes.
    let (no_totp, _, _) = app.signed_in("root@example.com").await;
    app.promote("root@example.com").await;
    let refused = app.get(&path, As::Bearer(&no_totp)).await.expect(StatusCode::FORBIDDEN);
    assert!(refused.body["error"].as_str().unwrap().contains("two-factor"), "{}", refused.body);
    let setup = app.post("/auth/2fa/setup", As::Bearer(&no_totp), json!({})).await.expect(StatusCode::OK);
    assert!(setup.data()["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/"));
    let secret =
        base32::decode(base32::Alphabet::Rfc4648 { padding: false }, setup.data()["secret"].as_str().unwrap()).unwrap();
    app.post("/auth/2fa/enable", As::Bearer(&no_totp), json!({"code": "000000x"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    let code = code_at(&secret, unix_now());
    app.post("/auth/2fa/enable", As::Bearer(&no_totp), json!({"code": code})).await.expect(StatusCode::OK);
    app.get(&path, As::Bearer(&no_totp)).await.expect(StatusCode::FORBIDDEN);

    let without_code = app.login("root@example.com", PASSWORD).await.expect(StatusCode::UNAUTHORIZED);
    assert_eq!(without_code.body["details"]["totp_required"], true);
    let login = |code: String| {
        app.post(
            "/auth/login",
            As::Nobody,
            json!({"email": "root@example.com", "password": PASSWORD, "totp_code": code}),
        )
    };
    login("123456".into()).await.expect(StatusCode::UNAUTHORIZED);
    let spent = login(code).await.expect(StatusCode::UNAUTHORIZED);
    assert!(spent.body["error"].as_str().unwrap().contains("already used"), "the enabling code: {}", spent.body);
    let code = code_at(&secret, unix_now() + 30);
    let admin = text(&login(code.clone()).await.expect(StatusCode::OK).data()["access_token"]);
    let replayed = login(code).await.expect(StatusCode::UNAUTHORIZED);
    assert!(replayed.body["error"].as_str().unwrap().contains("already used"), "{}", replayed.body);
    let viewed = app.get(&path, As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(viewed.data()["user"]["email"], "ann@example.com");
    app.get("/admin/users/not-a-uuid", As::Bearer(&admin)).await.expect(StatusCode::BAD_REQUEST);
    app.get(&format!("/admin/users/{}", uuid::Uuid::now_v7()), As::Bearer(&admin)).await.expect(StatusCode::NOT_FOUND);

    // An admin's API key is not a second factor.
    let key = app.post("/user/api-keys", As::Bearer(&admin), json!({"name": "ops"})).await;
    let key = text(&key.expect(StatusCode::CREATED).data()["key"]);
    app.get(&path, As::Key(&key)).await.expect(StatusCode::FORBIDDEN);
}

async fn blocked_users_cannot_sign_in_or_use_keys(database: TestDatabase) {
    let app = spawn(database).await;
    let (admin, _, admin_id) = app.admin("root@example.com").await;
    let (ann, refresh, ann_id) = app.signed_in("ann@example.com").await;
    let key = app.post("/user/api-keys", As::Bearer(&ann), json!({"name": "bot"})).await;
    let key = text(&key.expect(StatusCode::CREATED).data()["key"]);

    let block = format!("/admin/users/{ann_id}/block");
    app.post(&block, As::Bearer(&ann), json!({"reason": "fraud"})).await.expect(StatusCode::FORBIDDEN);
    app.post(&block, As::Bearer(&admin), json!({"reason": " "})).await.expect(StatusCode::BAD_REQUEST);
    app.post(&format!("/admin/users/{admin_id}/block"), As::Bearer(&admin), json!({"reason": "oops"}))
        .await
        .expect(StatusCode::UNPROCESSABLE_ENTITY);
    let blocked = app.post(&block, As::Bearer(&admin), json!({"reason": "chargeback fraud"})).await;
    assert_eq!(blocked.expect(StatusCode::OK).data()["user"]["blocked"], true);

    app.get("/auth/me", As::Bearer(&ann)).await.expect(StatusCode::FORBIDDEN);
    app.get("/auth/me", As::Key(&key)).await.expect(StatusCode::FORBIDDEN);
    app.login("ann@example.com", PASSWORD).await.expect(StatusCode::FORBIDDEN);
    app.post("/auth/refresh", As::Nobody, json!({"refresh_token": refresh})).await.expect(StatusCode::UNAUTHORIZED);

    app.post(&format!("/admin/users/{ann_id}/unblock"), As::Bearer(&admin), json!({})).await.expect(StatusCode::OK);
    let again = text(&app.login("ann@example.com", PASSWORD).await.expect(StatusCode::OK).data()["access_token"]);
    app.get("/auth/me", As::Bearer(&again)).await.expect(StatusCode::OK);
    app.get("/auth/me", As::Key(&key)).await.expect(StatusCode::OK);
}

/// Blocking touches identity only: an order placed before the block still gets its SMS and
/// is captured, so nobody's hold is left open by a block.
async fn a_blocked_users_open_order_finishes_normally(database: TestDatabase) {
    use domain::catalog::{CountryCode, PhoneNumber, ServiceCode};
    use domain::order::{OrderCommand, OrderPolicy};
    use domain::wallet::WalletCommand;
    use domain::{Clearing, Currency, DepositId, Money, OrderId, PositiveMoney, Timestamp, UserId};
    let app = spawn(database).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (ann, _, ann_id) = app.signed_in("ann@example.com").await;
    let user: UserId = ann_id.parse().unwrap();
    let ledger = smsledger::service::Ledger::new(app.store.clone(), OrderPolicy::default());
    let usd = Currency::parse("USD").unwrap();
    let deposit = WalletCommand::Deposit {
        deposit_id: DepositId::new(),
        amount: PositiveMoney::parse("5.00", "USD").unwrap(),
        source: Clearing::Sandbox,
    };
    ledger.wallet_command(user, usd, deposit, None, Default::default()).await.unwrap();
    let order_id = OrderId::new();
    let t0 = Timestamp(1_800_000_000_000);
    let place = OrderCommand::Place {
        order_id,
        user_id: user,
        service: ServiceCode::parse("tg").unwrap(),
        country: CountryCode::parse("GB").unwrap(),
        price: PositiveMoney::parse("1.50", "USD").unwrap(),
        policy: ledger.policy,
        number: None,
        now: t0,
    };
    ledger.order_command(order_id, place, None, Default::default()).await.unwrap();
    let held = app.get("/user/balance", As::Bearer(&ann)).await.expect(StatusCode::OK);
    let held: rust_decimal::Decimal = text(&held.data()["balances"][0]["held"]).parse().unwrap();
    assert_eq!(held, rust_decimal::Decimal::new(150, 2));

    app.post(&format!("/admin/users/{ann_id}/block"), As::Bearer(&admin), json!({"reason": "fraud"}))
        .await
        .expect(StatusCode::OK);
    let assign = OrderCommand::AssignNumber {
        provider_id: "sandbox".into(),
        provider_order_id: "sb-1".into(),
        phone: PhoneNumber::parse("+447700900123").unwrap(),
        cost: Money::parse("1.00", "USD").unwrap(),
        now: t0.plus_ms(10),
    };
    ledger.order_command(order_id, assign, None, Default::default()).await.unwrap();
    let sms = OrderCommand::ReceiveSms {
        sms_id: "1".into(),
        code: "123456".into(),
        text: "Your code 123456".into(),
        now: t0.plus_ms(30_000),
    };
    ledger.order_command(order_id, sms, None, Default::default()).await.unwrap();
    let wallet = ledger.wallet(user, usd).await.unwrap().state;
    assert!(wallet.holds.is_empty() && wallet.held.is_zero(), "the hold was captured");
    assert_eq!(wallet.available, rust_decimal::Decimal::new(350, 2));
}

async fn pricing_rules_are_set_listed_and_removed_by_admins_only(database: TestDatabase) {
    let app = spawn(database).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (user, _, _) = app.signed_in("ann@example.com").await;
    let rule = json!({"service": "tg", "country": "GB", "markup_percent": "25", "max_price": "2.00"});
    app.put("/admin/pricing-rules", As::Bearer(&user), rule.clone()).await.expect(StatusCode::FORBIDDEN);
    for bad in [
        json!({"markup_percent": "-5"}),
        json!({"markup_percent": "lots"}),
        json!({"markup_percent": "10", "min_price": "3", "max_price": "2"}),
        json!({"service": "Telegram!", "markup_percent": "10"}),
        json!({"country": "GBR", "markup_percent": "10"}),
    ] {
        app.put("/admin/pricing-rules", As::Bearer(&admin), bad).await.expect(StatusCode::BAD_REQUEST);
    }
    app.post("/admin/pricing-rules", As::Bearer(&admin), json!({"markup_percent": "50"}))
        .await
        .expect(StatusCode::CREATED);
    let taken = app.post("/admin/pricing-rules", As::Bearer(&admin), json!({"markup_percent": "60"})).await;
    taken.expect(StatusCode::CONFLICT);
    app.post("/admin/pricing-rules", As::Bearer(&admin), json!({"markup_percent": "lots"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    app.post("/admin/pricing-rules", As::Bearer(&user), rule.clone()).await.expect(StatusCode::FORBIDDEN);
    let set = app.put("/admin/pricing-rules", As::Bearer(&admin), rule).await.expect(StatusCode::OK);
    assert_eq!(set.data()["rules"].as_array().unwrap().len(), 2);
    assert_eq!(set.data()["rules"][0]["markup_percent"], "50", "the refused add changed nothing: {}", set.body);
    // The preview prices the sandbox's offer (0.10) with the most specific rule: +25%.
    let preview = app.get("/admin/pricing-rules/preview?service=tg&country=gb", As::Bearer(&admin)).await;
    let preview = preview.expect(StatusCode::OK);
    let offer = &preview.data()["offers"][0];
    assert_eq!(
        (offer["provider"].as_str(), offer["price"].as_str()),
        (Some("sandbox"), Some("0.13")),
        "{}",
        preview.body
    );
    assert_eq!(offer["rule"]["service"], "tg");
    app.get("/admin/pricing-rules/preview?service=tg", As::Bearer(&admin)).await.expect(StatusCode::BAD_REQUEST);
    app.get("/admin/pricing-rules/preview?service=tg&country=GB", As::Bearer(&user))
        .await
        .expect(StatusCode::FORBIDDEN);
    let listed = app.get("/admin/pricing-rules", As::Bearer(&admin)).await.expect(StatusCode::OK);
    let rules = listed.data()["rules"].as_array().unwrap().clone();
    let tg = rules.iter().find(|r| r["service"] == "tg").expect("the tg rule").clone();
    assert_eq!(tg["country"], "GB");
    assert_eq!(tg["markup_percent"], "25");
    assert_eq!(tg["max_price"], "2.00");
    let scope = json!({"service": "tg", "country": "GB"});
    let delete = |body: serde_json::Value| {
        app.call(reqwest::Method::DELETE, "/admin/pricing-rules", As::Bearer(&admin), Some(body))
    };
    delete(scope.clone()).await.expect(StatusCode::OK);
    delete(scope).await.expect(StatusCode::NOT_FOUND);
    let left = app.get("/admin/pricing-rules", As::Bearer(&admin)).await.expect(StatusCode::OK);
    assert_eq!(left.data()["rules"].as_array().unwrap().len(), 1, "the global rule stays");
}

async fn maintenance_pauses_only_the_routes_it_names(database: TestDatabase) {
    let app = spawn(database).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    // An admin who has not enrolled TOTP yet: may sign in (to enrol), also during maintenance.
    app.signed_in("ops@example.com").await;
    app.promote("ops@example.com").await;
    let (ann, _, _) = app.signed_in("ann@example.com").await;
    let set = |body: serde_json::Value| app.put("/admin/maintenance", As::Bearer(&admin), body);
    set(json!({"scope": "orders", "enabled": true})).await.expect(StatusCode::BAD_REQUEST);
    set(json!({"scope": "auth", "enabled": true, "message": ""})).await.expect(StatusCode::BAD_REQUEST);
    app.put("/admin/maintenance", As::Bearer(&ann), json!({"scope": "auth", "enabled": true}))
        .await
        .expect(StatusCode::FORBIDDEN);

    let ends_at = chrono::Utc::now() + chrono::Duration::minutes(10);
    set(json!({"scope": "auth", "enabled": true, "message": "upgrading sign-in", "ends_at": ends_at}))
        .await
        .expect(StatusCode::OK);
    let paused = app
        .post("/auth/register", As::Nobody, json!({"email": "new@example.com", "password": PASSWORD}))
        .await
        .expect(StatusCode::SERVICE_UNAVAILABLE);
    assert!(paused.body["error"].as_str().unwrap().contains("upgrading sign-in"), "{}", paused.body);
    assert_eq!(paused.body["details"]["maintenance"], "auth");
    let retry_after: u64 = paused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((590..=600).contains(&retry_after), "{retry_after}");
    app.login("ann@example.com", PASSWORD).await.expect(StatusCode::SERVICE_UNAVAILABLE);
    // Only sign-in is paused: a signed-in user goes on, and admins can still sign in.
    app.get("/user/profile", As::Bearer(&ann)).await.expect(StatusCode::OK);
    app.login("ops@example.com", PASSWORD).await.expect(StatusCode::OK);
    let shown = app.get("/system/maintenance", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(shown.data()["active"], true);
    assert_eq!(shown.data()["windows"][0]["scope"], "auth");

    set(json!({"scope": "master", "enabled": true, "message": "database move"})).await.expect(StatusCode::OK);
    let master = app.get("/user/profile", As::Bearer(&ann)).await.expect(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(master.headers["retry-after"], "300");
    app.get("/system/status", As::Nobody).await.expect(StatusCode::OK);
    set(json!({"scope": "master", "enabled": false})).await.expect(StatusCode::OK);
    set(json!({"scope": "auth", "enabled": false})).await.expect(StatusCode::OK);
    app.get("/user/profile", As::Bearer(&ann)).await.expect(StatusCode::OK);
    app.login("ann@example.com", PASSWORD).await.expect(StatusCode::OK);

    // A window scheduled for later pauses nothing yet but is shown.
    let starts_at = chrono::Utc::now() + chrono::Duration::hours(1);
    set(json!({"scope": "master", "enabled": true, "message": "tonight", "starts_at": starts_at}))
        .await
        .expect(StatusCode::OK);
    app.get("/user/profile", As::Bearer(&ann)).await.expect(StatusCode::OK);
    let shown = app.get("/system/maintenance", As::Nobody).await.expect(StatusCode::OK);
    assert_eq!(shown.data()["active"], false);
    assert_eq!(shown.data()["windows"][0]["scope"], "master");
    set(json!({"scope": "master", "enabled": true, "starts_at": starts_at, "ends_at": starts_at}))
        .await
        .expect(StatusCode::BAD_REQUEST);
}

async fn quotas_answer_429_with_retry_after(database: TestDatabase) {
    let mut quotas = generous_quotas();
    quotas.login = Quota::LOGIN;
    quotas.register = Quota::REGISTER;
    quotas.api = Quota { limit: 3, ..Quota::API };
    let app = spawn_with(database, Options { quotas, ..Options::default() }).await;
    check_quotas(&app, "ann@example.com").await;
}

/// The quotas as configured by default: login 5 per 15 minutes per address and account,
/// registration 3 per hour per address; and the general API quota set to 3 per minute.
async fn check_quotas(app: &common::app::TestApp, email: &str) {
    let (ann, _, _) = app.signed_in(email).await; // one registration, one login
    for _ in 0..3 {
        app.get("/auth/me", As::Bearer(&ann)).await.expect(StatusCode::OK);
    }
    let limited = app.get("/auth/me", As::Bearer(&ann)).await.expect(StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_eq!(limited.body["details"]["quota"], "api");

    for _ in 0..4 {
        app.login(email, "wrong password!").await.expect(StatusCode::UNAUTHORIZED);
    }
    let limited = app.login(email, PASSWORD).await.expect(StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((60..=180).contains(&retry_after), "one login comes back every 3 minutes: {retry_after}");

    for n in 1..=2 {
        app.register(&format!("{n}.{email}")).await;
    }
    let limited = app
        .post("/auth/register", As::Nobody, json!({"email": format!("x.{email}"), "password": PASSWORD}))
        .await
        .expect(StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
}

/// The same quotas kept in the real Redis, keyed by the forwarded client address (unique per
/// run, since the Redis outlives test runs).
async fn quotas_on_redis(database: TestDatabase) {
    let Some(url) = common::redis_url("quotas_on_redis").await else { return };
    let mut quotas = generous_quotas();
    quotas.login = Quota::LOGIN;
    quotas.register = Quota::REGISTER;
    quotas.api = Quota { limit: 3, ..Quota::API };
    let limiter = RateLimiter::with_redis(&url).await.unwrap();
    assert_eq!(limiter.backend(), "redis");
    let run = uuid::Uuid::new_v4().simple().to_string();
    let forwarded_for = format!("10.{}.{}.{}", rand_octet(&run, 0), rand_octet(&run, 1), rand_octet(&run, 2));
    let options = Options {
        quotas,
        limiter,
        trust_forwarded_for: true,
        forwarded_for: Some(forwarded_for),
        ..Options::default()
    };
    let app = spawn_with(database, options).await;
    check_quotas(&app, &format!("ann.{run}@example.com")).await;
}

fn rand_octet(hex: &str, index: usize) -> u8 {
    u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).unwrap()
}

on_both_engines!(
    api_keys_are_shown_once_used_and_revoked_by_their_owner,
    admin_routes_need_an_admin_with_a_second_factor,
    blocked_users_cannot_sign_in_or_use_keys,
    a_blocked_users_open_order_finishes_normally,
    pricing_rules_are_set_listed_and_removed_by_admins_only,
    maintenance_pauses_only_the_routes_it_names,
    quotas_answer_429_with_retry_after,
    quotas_on_redis,
);
