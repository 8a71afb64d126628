//! Two `smsledger serve` processes on one PostgreSQL database and one Redis, requests split
//! across both: rate limits are counted once for both, a retried deposit credits once whichever
//! instance takes the retry, every order is settled exactly once (captured or released) by
//! whichever instance's monitor holds the lock, the survivor takes over within seconds when the
//! other is killed (SIGKILL), admin alerts are sent once, and `smsledger verify` passes.

mod common;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::fake_telegram::{CHAT, TOKEN, fake_telegram};
use common::serve::{Instance, client_from, count_events as count, sign_up, verify};

/// Sign-in attempts per account in 15 minutes (`Quota::LOGIN`).
const LOGINS: usize = 5;

/// A user's client: an address of its own, new every run (Redis keeps counts across runs).
fn client(n: u8, run: u64) -> reqwest::Client {
    client_from(&format!("fd00::{:x}:{:x}:{:x}:{n:x}", run >> 32, (run >> 16) & 0xffff, run & 0xffff))
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = http.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the instance answers");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Places an order; its id.
async fn place(http: &reqwest::Client, api: &str, token: &str) -> String {
    let body = json!({"service": "tg", "country": "GB"});
    let (status, placed) = call(http, reqwest::Method::POST, format!("{api}/orders"), token, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    placed["data"]["order"]["id"].as_str().unwrap().to_owned()
}

/// Polls an order through `api` until it is closed (finishing it once its code came); its
/// final status.
async fn settle(http: &reqwest::Client, api: &str, token: &str, id: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (status, seen) = call(http, reqwest::Method::GET, format!("{api}/orders/{id}"), token, None).await;
        assert_eq!(status, StatusCode::OK, "{seen}");
        match seen["data"]["order"]["status"].as_str().unwrap() {
            "sms_received" => {
                let url = format!("{api}/orders/{id}/finish");
                let (status, done) = call(http, reqwest::Method::POST, url, token, Some(json!({}))).await;
                assert_eq!(status, StatusCode::OK, "{done}");
            }
            "placed" | "number_assigned" => {}
            closed => return closed.to_owned(),
        }
        assert!(Instant::now() < deadline, "order {id} still open after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `application_name` of the connection holding the order monitor's advisory lock.
async fn monitor_leader(pool: &sqlx::PgPool) -> Option<String> {
    let key = smsledger::orders::monitor::ADVISORY_LOCK_KEY;
    let (high, low) = ((key >> 32) as u32, (key & 0xffff_ffff) as u32);
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 \
         AND l.objsubid = 1 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .bind(i64::from(high))
    .bind(i64::from(low))
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_limits_and_settle_everything_once() {
    let Some(database) = common::postgres_database("two_instances").await else { return };
    let Some(redis) = common::redis_url("two_instances").await else { return };
    let (telegram, fake) = fake_telegram(0).await;
    let env = vec![
        ("REDIS_URL", redis),
        ("APP_ENV", "development".to_owned()),
        ("TRUST_FORWARDED_FOR", "true".to_owned()),
        ("API_RATE_LIMIT_PER_MINUTE", "100000".to_owned()),
        ("SANDBOX_CODE_DELAY_MS", "200".to_owned()),
        ("SANDBOX_DELIVER_PERCENT", "50".to_owned()),
        ("CANCEL_TIMEOUT", "0".to_owned()),
        ("ORDER_TIMEOUT", "2000".to_owned()),
        ("ORDER_POLL_MS", "200".to_owned()),
        ("TELEGRAM_BOT_TOKEN", TOKEN.to_owned()),
        ("TELEGRAM_CHAT_ID", CHAT.to_owned()),
        ("TELEGRAM_API_BASE", telegram),
    ];
    let mut instances = vec![
        Instance::start(&env, &database.url, "instance-0").await,
        Instance::start(&env, &database.url, "instance-1").await,
    ];
    let run = uuid::Uuid::new_v4().as_u64_pair().0 >> 16;

    // Four users, each registered on one instance and signed in on the other.
    let mut users = Vec::new();
    for n in 0..4_u8 {
        let http = client(n, run);
        let (on, other) = (&instances[usize::from(n % 2)].api, &instances[usize::from(1 - n % 2)].api);
        let token = sign_up(&http, on, other, &format!("user{n}-{run:x}@example.com")).await;
        users.push((http, token));
    }

    // A deposit retried on the other instance with the same key credits once.
    for (n, (http, token)) in users.iter().enumerate() {
        for instance in &instances {
            let response = http
                .post(format!("{}/payments/deposit", instance.api))
                .bearer_auth(token)
                .header("idempotency-key", format!("deposit-{n}"))
                .json(&json!({"amount": "20", "method": "sandbox"}))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "{}", response.text().await.unwrap());
        }
    }

    // One count for both: user 0 (signed in once already) guesses passwords on each in
    // turn; counters of their own would let 2 x LOGINS - 1 guesses through.
    let http = &users[0].0;
    let (mut allowed, mut limited) = (0, 0);
    for i in 0..LOGINS * 2 {
        let body = json!({"email": format!("user0-{run:x}@example.com"), "password": format!("wrong guess {i}")});
        let response = http.post(format!("{}/auth/login", instances[i % 2].api)).json(&body).send().await.unwrap();
        match response.status() {
            StatusCode::UNAUTHORIZED => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((allowed, limited), (LOGINS - 1, LOGINS + 1), "one count across both instances");

    // Orders placed on both, followed on the other: half get a code and are finished, the
    // rest expire and are refunded by whichever monitor leads.
    let mut placed = Vec::new();
    for round in 0..3 {
        for (n, (http, token)) in users.iter().enumerate().skip(1) {
            let on = &instances[(n + round) % 2].api;
            placed.push((n, place(http, on, token).await));
        }
    }
    let mut outcomes = Vec::new();
    for (n, id) in &placed {
        let (http, token) = &users[*n];
        let other = &instances[(*n + 1) % 2].api;
        outcomes.push(settle(http, other, token, id, Duration::from_secs(20)).await);
    }
    assert!(outcomes.iter().all(|o| o == "finished" || o == "expired"), "{outcomes:?}");

    // Kill the monitor's leader (SIGKILL); the survivor takes the lock and expires orders.
    let pool = sqlx::PgPool::connect(&database.url).await.unwrap();
    let leader = monitor_leader(&pool).await.expect("one instance leads the monitor");
    let survivor = instances.remove(if leader == "instance-0" { 1 } else { 0 });
    drop(instances);
    let killed = Instant::now();
    let mut after = Vec::new();
    let mut expired_after_kill = 0;
    while expired_after_kill == 0 {
        assert!(after.len() < 24, "no order expired after the kill: the monitor did not move");
        for (n, (http, token)) in users.iter().enumerate().skip(1) {
            let id = place(http, &survivor.api, token).await;
            let outcome = settle(http, &survivor.api, token, &id, Duration::from_secs(20)).await;
            expired_after_kill += usize::from(outcome == "expired");
            after.push((n, id));
        }
    }
    assert_eq!(
        monitor_leader(&pool).await.as_deref(),
        Some(if leader == "instance-0" { "instance-1" } else { "instance-0" })
    );
    eprintln!("{leader} killed; the other expired an order {:?} later", killed.elapsed());

    // Everything once: a deposit per user, a settlement per hold, an alert per registration.
    assert_eq!(count(&pool, "wallet.deposited").await, 4, "the retried deposits credited once");
    let holds = count(&pool, "wallet.hold_placed").await;
    let settled = count(&pool, "wallet.hold_captured").await + count(&pool, "wallet.hold_released").await;
    assert_eq!((holds, settled), ((placed.len() + after.len()) as i64, holds), "every hold settled once");
    let deadline = Instant::now() + Duration::from_secs(15);
    while fake.lock().unwrap().delivered.len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // a second sender would have sent by now
    let delivered = fake.lock().unwrap().delivered.clone();
    let registrations = delivered.iter().filter(|(_, text)| text.starts_with("New registration")).count();
    assert_eq!(registrations, 4, "{delivered:?}");

    drop(survivor);
    let verify = verify(&database.url);
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    pool.close().await;
}
