//! `smsledger serve` on PostgreSQL, killed with SIGKILL three times during mixed load (orders
//! placed, cancelled, expiring, codes arriving; deposits) and started again each time. Clients
//! retry what got no answer with the same Idempotency-Key, as a real client does. Afterwards:
//! every acknowledged order and deposit is in the log exactly once, nothing was recorded that
//! no client asked for, every hold is captured or released within its order's lifetime, and
//! `smsledger verify` passes (hash chain, balances re-folded, every view equal to a rebuild).
//! The same holds when PostgreSQL goes away under load and comes back.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::proxy::Proxy;
use common::serve::{Instance, client_from, count_events, sign_up, verify};

const USERS: usize = 6;
const KILLS: usize = 3;

/// What one client got acknowledged: order ids by key, deposit keys.
#[derive(Default)]
struct Acknowledged {
    orders: BTreeMap<String, String>,
    deposits: BTreeSet<String>,
}

/// Sends until the server answers something other than "unavailable" (it is restarting) or,
/// if `conflicts` are retried, "changed concurrently; retry" (409); backing off from 50 ms to
/// 800 ms between tries, as a client should (each try counts against the user's quotas). The
/// final status and body.
async fn until_answered(conflicts: bool, request: impl Fn() -> reqwest::RequestBuilder) -> (StatusCode, Value) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pause = Duration::from_millis(50);
    loop {
        if let Ok(response) = request().send().await {
            let status = response.status();
            let retry = status.is_server_error()
                || status == StatusCode::REQUEST_TIMEOUT
                || (conflicts && status == StatusCode::CONFLICT);
            if !retry {
                return (status, response.json().await.unwrap_or(Value::Null));
            }
        }
        assert!(Instant::now() < deadline, "no answer for a minute");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(800));
    }
}

async fn client_loop(
    api: String,
    http: reqwest::Client,
    token: String,
    user: usize,
    stop: Arc<AtomicBool>,
) -> Acknowledged {
    let mut acknowledged = Acknowledged::default();
    let mut k = 0_u32;
    while !stop.load(Ordering::Relaxed) {
        k += 1;
        // Every tenth request a deposit, within the recharge quota (10 an hour, one of them
        // the funding deposit; the recharge quota is 10 an hour, tries included).
        if k.is_multiple_of(10) && acknowledged.deposits.len() < 3 {
            let key = format!("deposit-{user}-{k}");
            let (status, body) = until_answered(true, || {
                http.post(format!("{api}/payments/deposit"))
                    .bearer_auth(&token)
                    .header("idempotency-key", &key)
                    .json(&json!({"amount": "2", "method": "sandbox"}))
            })
            .await;
            assert!(status.is_success(), "deposit: {status} {body}");
            acknowledged.deposits.insert(key);
            continue;
        }
        let key = format!("order-{user}-{k}");
        let (status, body) = until_answered(true, || {
            http.post(format!("{api}/orders"))
                .bearer_auth(&token)
                .header("idempotency-key", &key)
                .json(&json!({"service": "tg", "country": "GB"}))
        })
        .await;
        assert!(matches!(status.as_u16(), 200 | 201), "order: {status} {body}");
        let id = body["data"]["order"]["id"].as_str().unwrap().to_owned();
        if k.is_multiple_of(3) {
            let (status, body) = until_answered(false, || {
                http.post(format!("{api}/orders/{id}/cancel")).bearer_auth(&token).json(&json!({}))
            })
            .await;
            // Cancelled now, or already closed (an SMS came first, or a retry after a cancel
            // that was recorded but not answered).
            assert!(matches!(status.as_u16(), 200 | 409 | 422), "cancel: {status} {body}");
        }
        acknowledged.orders.insert(key, id);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    acknowledged
}

/// Settings for a quick order life: half the numbers get a code in 200 ms, the rest expire
/// after 2 s and are refunded.
fn quick_orders() -> Vec<(&'static str, String)> {
    [
        ("APP_ENV", "development"),
        ("TRUST_FORWARDED_FOR", "true"),
        ("API_RATE_LIMIT_PER_MINUTE", "1000000"),
        ("SANDBOX_CODE_DELAY_MS", "200"),
        ("SANDBOX_DELIVER_PERCENT", "50"),
        ("CANCEL_TIMEOUT", "0"),
        ("ORDER_TIMEOUT", "2000"),
        ("ORDER_POLL_MS", "200"),
    ]
    .map(|(k, v)| (k, v.to_owned()))
    .to_vec()
}

/// Registers, signs in and funds `USERS` users; their clients and tokens.
async fn funded_users(api: &str) -> Vec<(reqwest::Client, String)> {
    let mut clients = Vec::new();
    for user in 0..USERS {
        let http = client_from(&format!("10.77.0.{user}"));
        let token = sign_up(&http, api, api, &format!("crash{user}@example.com")).await;
        let funded = http
            .post(format!("{api}/payments/deposit"))
            .bearer_auth(&token)
            .header("idempotency-key", format!("funding-{user}"))
            .json(&json!({"amount": "500", "method": "sandbox"}))
            .send()
            .await
            .unwrap();
        assert!(funded.status().is_success());
        clients.push((http, token));
    }
    clients
}

/// Runs the clients until `trouble` is over and a second more; what was acknowledged.
async fn under_load(
    api: &str,
    clients: Vec<(reqwest::Client, String)>,
    trouble: impl Future<Output = ()>,
) -> Acknowledged {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(user, (http, token))| tokio::spawn(client_loop(api.to_owned(), http, token, user, stop.clone())))
        .collect();
    trouble.await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Acknowledged::default();
    for task in tasks {
        let acknowledged = task.await.unwrap();
        all.orders.extend(acknowledged.orders);
        all.deposits.extend(acknowledged.deposits);
    }
    assert!(all.orders.len() >= 20, "enough load to matter: {} orders", all.orders.len());
    all
}

/// Every acknowledged order and deposit is in the log once and nothing else is; every hold
/// is settled within its order's lifetime; `smsledger verify` passes.
async fn assert_exactly_once(database_url: &str, acknowledged: &Acknowledged, what: &str) {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let (holds, settled) = loop {
        let holds = count_events(&pool, "wallet.hold_placed").await;
        let settled =
            count_events(&pool, "wallet.hold_captured").await + count_events(&pool, "wallet.hold_released").await;
        if holds == settled || Instant::now() > deadline {
            break (holds, settled);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(settled, holds, "every hold captured or released once");
    let placed: Vec<String> = sqlx::query_scalar("SELECT stream_id FROM events WHERE event_type = 'order.placed'")
        .fetch_all(&pool)
        .await
        .unwrap();
    let placed_ids: BTreeSet<&str> = placed.iter().map(|s| s.trim_start_matches("order-")).collect();
    assert_eq!(placed.len(), placed_ids.len(), "no order placed twice");
    let acknowledged_ids: BTreeSet<&str> = acknowledged.orders.values().map(String::as_str).collect();
    assert_eq!(acknowledged_ids.len(), acknowledged.orders.len(), "each key its own order");
    assert_eq!(placed_ids, acknowledged_ids, "the log holds exactly the acknowledged orders");
    assert_eq!(holds as usize, acknowledged.orders.len(), "one hold per order");
    let credited = count_events(&pool, "wallet.deposited").await;
    assert_eq!(credited as usize, acknowledged.deposits.len() + USERS, "each deposit key credited once");
    eprintln!(
        "{} orders, {} deposits acknowledged {what}; {holds} holds settled",
        acknowledged.orders.len(),
        acknowledged.deposits.len()
    );
    let verified = verify(database_url);
    assert!(verified.status.success(), "{}", String::from_utf8_lossy(&verified.stdout));
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_under_load_loses_and_doubles_nothing() {
    let Some(database) = common::postgres_database("crash_serve").await else { return };
    let mut server = Instance::start(&quick_orders(), &database.url, "crash").await;
    let api = server.api.clone();
    let clients = funded_users(&api).await;
    let kills = async {
        for _ in 0..KILLS {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            server.restart().await; // SIGKILL, then the same command again
        }
    };
    let acknowledged = under_load(&api, clients, kills).await;
    assert_exactly_once(&database.url, &acknowledged, &format!("across {KILLS} kills")).await;
}

/// PostgreSQL goes away under load (every connection cut, new ones refused for 3 s, as in a
/// restart) and comes back: the service reconnects by itself and loses or doubles nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_is_survived_without_a_restart() {
    let Some(database) = common::postgres_database("database_outage").await else { return };
    let url = reqwest::Url::parse(&database.url).unwrap();
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432));
    let proxy = Proxy::start(target).await;
    let mut proxied = url.clone();
    proxied.set_port(Some(proxy.address.port())).unwrap();
    let mut server = Instance::start(&quick_orders(), proxied.as_str(), "outage").await;
    let clients = funded_users(&server.api).await;
    let outage = async {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(3)).await;
        proxy.resume();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    };
    let acknowledged = under_load(&server.api, clients, outage).await;
    assert_exactly_once(&database.url, &acknowledged, "across a database outage").await;
    assert!(server.is_running(), "the same process served before and after");
}
