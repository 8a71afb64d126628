//! The end-to-end load harness: `smsledger serve` as its own process on PostgreSQL with the
//! sandbox provider, driven over HTTP by N clients, each its own user (registered, signed in,
//! funded by a Stripe deposit confirmed with a signed webhook).
//!
//! Phases, each for a fixed time: the two ceilings (a trivial axum handler with the same layers,
//! served by a process of its own; raw one-row INSERT + COMMIT at the same concurrency), order
//! placement alone, authenticated reads alone (balance, order by id, a page of orders), then,
//! on a database of its own with users of its own, the realistic mix: place, poll until the
//! code comes, finish; some cancels, some numbers that never get a code and expire; balance
//! and order-list reads; now and then a deposit through the webhook. Prints requests/s,
//! p50/p95/p99 per route, errors, the server's peak memory, and whether `smsledger verify`
//! passes on both databases afterwards.
//!
//! Run: `cargo bench --bench load` (BENCH_DATABASE_URL default the local server, BENCH_CLIENTS
//! default 64, BENCH_SECONDS per phase default 10).

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;

use common::{database_url, env_number};

const PASSWORD: &str = "correct horse battery";
const WEBHOOK_SECRET: &str = "whsec_load_harness";
const TRIVIAL_CHILD: &str = "LOAD_TRIVIAL_LISTEN";
/// Money each user starts with, in USD.
const FUNDS: &str = "5000";

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this driver has no tests.
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    if let Ok(listen) = std::env::var(TRIVIAL_CHILD) {
        return runtime.block_on(serve_trivial(listen));
    }
    runtime.block_on(run())
}

/// The ceiling's server: a handler that answers "pong" behind the service's own layers.
async fn serve_trivial(listen: String) -> anyhow::Result<()> {
    let trivial = Router::new().route("/ping", get(|| async { "pong" }));
    let app = smsledger::http::conventions::apply(trivial, &smsledger::http::conventions::HttpLimits::default());
    let listener = tokio::net::TcpListener::bind(listen).await?;
    smsledger::http::serve(listener, app, std::future::pending()).await?;
    Ok(())
}

/// What one route saw: latencies in µs and failed requests; `later`: the latencies without
/// each client's first call of the route (a fresh server loads what that client needs first).
#[derive(Default)]
struct Route {
    latencies: Vec<u64>,
    later: Vec<u64>,
    errors: u64,
}

#[derive(Default)]
struct Stats {
    routes: BTreeMap<&'static str, Route>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        for (name, route) in other.routes {
            let mine = self.routes.entry(name).or_default();
            mine.later.extend(route.latencies.iter().skip(1));
            mine.latencies.extend(route.latencies);
            mine.errors += route.errors;
        }
    }

    fn print(&mut self, seconds: f64) {
        println!(
            "| route | requests | requests/s | p50 ms | p95 ms | p99 ms | p99 ms, first calls left out | errors |"
        );
        println!("|---|---|---|---|---|---|---|---|");
        for (name, route) in &mut self.routes {
            route.latencies.sort_unstable();
            route.later.sort_unstable();
            let at = |l: &[u64], p: f64| {
                if l.is_empty() { 0.0 } else { l[((l.len() - 1) as f64 * p) as usize] as f64 / 1000.0 }
            };
            let (all, later) = (&route.latencies, &route.later);
            let count = all.len();
            println!(
                "| {name} | {count} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                count as f64 / seconds,
                at(all, 0.50),
                at(all, 0.95),
                at(all, 0.99),
                at(later, 0.99),
                route.errors
            );
        }
    }

    fn rate(&self, name: &str, seconds: f64) -> f64 {
        self.routes.get(name).map_or(0.0, |r| r.latencies.len() as f64 / seconds)
    }
}

/// One client: its own user and connection pool, timing every call by route name.
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    stats: Stats,
}

impl Client {
    /// Times one call; the answer's body is read, not parsed (as the ceiling's client does):
    /// `call_json` parses it for the callers that use it.
    async fn call(&mut self, route: &'static str, method: Method, path: &str, body: Option<Value>) -> Option<Vec<u8>> {
        self.call_or_lost(route, method, path, body, None).await.ok()
    }

    /// `call`, where a refusal whose error says `lost` (the server's right answer to a race
    /// the client lost) is an answer, timed like a success, not an error: `Err(true)` then.
    async fn call_or_lost(
        &mut self,
        route: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
        lost: Option<&str>,
    ) -> Result<Vec<u8>, bool> {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let sent = Instant::now();
        let answer = match request.send().await {
            Ok(response) if response.status().is_success() => response.bytes().await.map(Vec::from).map_err(|_| false),
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                let error =
                    serde_json::from_str::<Value>(&text).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
                if status.is_client_error() && lost.is_some_and(|lost| error.is_some_and(|e| e.contains(lost))) {
                    Err(true)
                } else {
                    eprintln!("{route}: {status} {}", text.chars().take(200).collect::<String>());
                    Err(false)
                }
            }
            Err(error) => {
                eprintln!("{route}: {error}");
                Err(false)
            }
        };
        let entry = self.stats.routes.entry(route).or_default();
        match &answer {
            Ok(_) | Err(true) => entry.latencies.push(sent.elapsed().as_micros() as u64),
            Err(false) => entry.errors += 1,
        }
        answer
    }

    async fn call_json(
        &mut self,
        route: &'static str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<Value> {
        let answer = self.call(route, method, path, body).await?;
        serde_json::from_slice(&answer).ok()
    }
}

/// A local stand-in for Stripe's `POST /v1/payment_intents`: every intent is accepted.
async fn fake_stripe() -> String {
    let next = Arc::new(AtomicU64::new(0));
    let app = Router::new().route(
        "/v1/payment_intents",
        post(move || {
            let n = next.fetch_add(1, Ordering::Relaxed);
            async move {
                axum::Json(json!({"id": format!("pi_load_{n}"), "object": "payment_intent",
                    "client_secret": format!("pi_load_{n}_secret_x"), "status": "requires_payment_method"}))
            }
        }),
    );
    common::serve(app).await
}

async fn wait_until_up(base: &str, path: &str) {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client.get(format!("{base}{path}")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base}{path} did not come up");
}

fn free_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("an address").to_string()
}

/// The server's peak resident memory in MiB (`VmHWM`).
/// PostgreSQL's counters of WAL flushes (`fsync`s), WAL bytes and the database's committed
/// transactions: what group commit saves shows as flushes and commits per order.
#[derive(Clone, Copy)]
struct DiskCounters {
    flushes: i64,
    wal_bytes: i64,
    commits: i64,
}

async fn disk_counters(url: &str) -> anyhow::Result<DiskCounters> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    // The statistics of other backends' transactions reach the shared counters within a
    // second; a snapshot taken inside this transaction is cleared first.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sqlx::query("SELECT pg_stat_clear_snapshot()").execute(&mut connection).await?;
    let (flushes, wal_bytes, commits): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT wal_sync FROM pg_stat_wal), (SELECT wal_bytes::bigint FROM pg_stat_wal), \
         (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())",
    )
    .fetch_one(&mut connection)
    .await?;
    Ok(DiskCounters { flushes, wal_bytes, commits })
}

fn peak_rss_mib(child: &Child) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Stops the server as an operator does (SIGTERM) and waits for it to exit.
fn stop(server: &mut Child) -> std::io::Result<()> {
    Command::new("kill").arg("-TERM").arg(server.id().to_string()).status()?;
    server.wait().map(|_| ())
}

/// Registers, signs in and funds user `i` through a Stripe deposit and its signed webhook.
async fn sign_up(api: &str, i: usize) -> anyhow::Result<Client> {
    // Each user comes from an address of its own, as real users do (per-address limits).
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256).parse()?);
    let http = reqwest::Client::builder().default_headers(headers).build()?;
    let body = json!({"email": format!("load{i}@example.com"), "password": PASSWORD});
    let registered = http.post(format!("{api}/auth/register")).json(&body).send().await?;
    anyhow::ensure!(registered.status() == StatusCode::CREATED, "register: {}", registered.text().await?);
    let login: Value = http.post(format!("{api}/auth/login")).json(&body).send().await?.json().await?;
    let token = login["data"]["access_token"].as_str().expect("a token").to_owned();
    let mut client = Client { http, base: api.to_owned(), token, stats: Stats::default() };
    deposit(&mut client, i as u64).await;
    Ok(client)
}

/// A Stripe deposit: the intent, then `payment_intent.succeeded` signed as Stripe signs it.
async fn deposit(client: &mut Client, n: u64) {
    let body = json!({"amount": FUNDS, "currency": "USD"});
    let Some(started) = client.call_json("POST /payments/deposit", Method::POST, "/payments/deposit", Some(body)).await
    else {
        return;
    };
    let intent = started["data"]["deposit"]["reference"].as_str().expect("an intent").to_owned();
    let minor: i64 = FUNDS.parse::<i64>().expect("whole dollars") * 100;
    let event = json!({"id": format!("evt_load_{intent}_{n}"), "object": "event", "type": "payment_intent.succeeded",
        "data": {"object": {"id": intent, "object": "payment_intent", "amount": minor, "amount_received": minor,
        "currency": "usd", "status": "succeeded"}}})
    .to_string();
    let at = chrono::Utc::now().timestamp();
    let signature = smsledger::payments::stripe::sign(WEBHOOK_SECRET, event.as_bytes(), at);
    let sent = Instant::now();
    let response = client
        .http
        .post(format!("{}/payments/webhook", client.base))
        .header("content-type", "application/json")
        .header("stripe-signature", signature)
        .body(event)
        .send()
        .await;
    let entry = client.stats.routes.entry("POST /payments/webhook (signed)").or_default();
    match response {
        Ok(r) if r.status().is_success() => entry.latencies.push(sent.elapsed().as_micros() as u64),
        _ => entry.errors += 1,
    }
}

/// Runs `work` on every client for `duration`; the clients and what they saw, merged.
/// Waits until every client's orders list answers (it waits for the orders view to include
/// that user's last order, 503 after 2 s): how long the views took to catch up.
async fn views_caught_up(clients: &[Client]) -> Duration {
    let started = Instant::now();
    for client in clients {
        loop {
            let url = format!("{}/orders?per_page=1", client.base);
            let answer = client.http.get(url).bearer_auth(&client.token).send().await;
            if answer.is_ok_and(|a| a.status().is_success()) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(600), "the views did not catch up in 10 minutes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    started.elapsed()
}

async fn phase<F, Fut>(clients: Vec<Client>, duration: Duration, work: F) -> (Vec<Client>, Stats, f64)
where
    F: Fn(Client, usize, Instant) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Client> + Send,
{
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            let work = work.clone();
            tokio::spawn(async move {
                client.stats = Stats::default();
                work(client, i, deadline).await
            })
        })
        .collect();
    let mut clients = Vec::new();
    let mut stats = Stats::default();
    for task in tasks {
        let mut client = task.await.expect("a client task");
        stats.merge(std::mem::take(&mut client.stats));
        clients.push(client);
    }
    (clients, stats, started.elapsed().as_secs_f64())
}

/// The server's refusal to cancel an order whose code arrived first.
const SMS_FIRST: &str = "an SMS already arrived";

/// The realistic loop: place, poll until the code (or the end), finish; every 10th order is
/// cancelled at once; reads between orders; every 50th round a deposit.
async fn mixed(mut client: Client, i: usize, deadline: Instant) -> Client {
    let mut round = 0_u64;
    while Instant::now() < deadline {
        round += 1;
        let order = json!({"service": "tg", "country": "GB"});
        let Some(placed) = client.call_json("POST /orders", Method::POST, "/orders", Some(order)).await else {
            continue;
        };
        let id = placed["data"]["order"]["id"].as_str().expect("an order id").to_owned();
        if round.is_multiple_of(10) {
            // The code may come before the cancel does (a slow placement answer): the server
            // then refuses to cancel, rightly, and the order is finished instead.
            let path = format!("/orders/{id}/cancel");
            let cancel = client
                .call_or_lost("POST /orders/:id/cancel", Method::POST, &path, Some(json!({})), Some(SMS_FIRST))
                .await;
            if cancel == Err(true) {
                let path = format!("/orders/{id}/finish");
                client.call("POST /orders/:id/finish", Method::POST, &path, Some(json!({}))).await;
            }
        } else {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let Some(seen) = client.call_json("GET /orders/:id", Method::GET, &format!("/orders/{id}"), None).await
                else {
                    break;
                };
                match seen["data"]["order"]["status"].as_str() {
                    Some("sms_received") => {
                        let path = format!("/orders/{id}/finish");
                        client.call("POST /orders/:id/finish", Method::POST, &path, Some(json!({}))).await;
                        break;
                    }
                    Some("number_assigned" | "placed") => {}
                    _ => break, // expired (no code came) and refunded, or cancelled
                }
            }
        }
        client.call("GET /user/balance", Method::GET, "/user/balance", None).await;
        client.call("GET /orders (page of 20)", Method::GET, "/orders?per_page=20", None).await;
        if round.is_multiple_of(50) {
            deposit(&mut client, (i as u64) << 32 | round).await;
        }
    }
    client
}

async fn run() -> anyhow::Result<()> {
    let clients_n = env_number("BENCH_CLIENTS", 64);
    let seconds = Duration::from_secs(env_number("BENCH_SECONDS", 10) as u64);
    let (url, cleanup) = database_url().await;
    let exe = env!("CARGO_BIN_EXE_smsledger");

    // Ceiling 1: raw one-row INSERT + COMMIT at the same concurrency, before the server runs.
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(clients_n as u32).connect(&url).await?;
    sqlx::query("CREATE TABLE load_commits (n BIGINT NOT NULL)").execute(&pool).await?;
    let raw_before = disk_counters(&url).await?;
    let commits = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..clients_n)
        .map(|_| {
            let (pool, commits) = (pool.clone(), commits.clone());
            tokio::spawn(async move {
                while started.elapsed() < seconds {
                    let n = commits.fetch_add(1, Ordering::Relaxed) as i64;
                    sqlx::query("INSERT INTO load_commits (n) VALUES ($1)").bind(n).execute(&pool).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await?;
    }
    let commit_rate = commits.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    pool.close().await;
    let raw_after = disk_counters(&url).await?;
    let raw_flushes = (raw_after.flushes - raw_before.flushes) as f64 / commits.load(Ordering::Relaxed).max(1) as f64;

    // Ceiling 2: the trivial handler, a process of its own, the same client.
    let trivial_address = free_address();
    let mut trivial = Command::new(std::env::current_exe()?).env(TRIVIAL_CHILD, &trivial_address).spawn()?;
    let trivial_base = format!("http://{trivial_address}");
    wait_until_up(&trivial_base, "/ping").await;
    let base = common::measure(clients_n, seconds, move |c, _| c.get(format!("{trivial_base}/ping"))).await;
    trivial.kill()?;
    trivial.wait()?;

    // The service.
    let stripe = fake_stripe().await;
    let address = free_address();
    let log = std::env::temp_dir().join("smsledger-load-serve.log");
    let serve = |quick: bool, url: &str| -> std::io::Result<Child> {
        // Production's order windows for placement and reads; short ones for the mix, so
        // that numbers without a code expire (and are refunded) while it runs.
        let windows: &[(&str, &str)] = if quick {
            &[
                ("CANCEL_TIMEOUT", "0"),
                ("ORDER_TIMEOUT", "3000"),
                ("ORDER_POLL_MS", "500"),
                ("SANDBOX_DELIVER_PERCENT", "90"),
            ]
        } else {
            // Placement and reads measure the request paths: the monitor's first round of the
            // open orders comes after them.
            &[("ORDER_POLL_MS", "120000")]
        };
        Command::new(exe)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs([
                ("DATABASE_URL", url),
                ("LISTEN_ADDR", address.as_str()),
                ("JWT_SECRET", "load harness jwt secret, 32 bytes long"),
                ("SECRETS_KEY", "load harness sealing key, 32 bytes"),
                ("STRIPE_SECRET_KEY", "sk_test_load"),
                ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
                ("STRIPE_API_BASE", stripe.as_str()),
                ("MAX_RECHARGE_AMOUNT", FUNDS),
                ("TRUST_FORWARDED_FOR", "true"),
                ("API_RATE_LIMIT_PER_MINUTE", "1000000"),
                ("SANDBOX_CODE_DELAY_MS", "300"),
                ("LOG_LEVEL", "warn"),
            ])
            .envs(windows.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(&log)?)
            .spawn()
    };
    let mut server = serve(false, &url)?;
    let server_base = format!("http://{address}");
    wait_until_up(&server_base, "/health").await;
    let api = format!("{server_base}/api/v1");

    println!("setting up {clients_n} users (register, sign in, Stripe deposit + signed webhook) ...");
    let mut clients = Vec::new();
    for i in 0..clients_n {
        clients.push(sign_up(&api, i).await?);
    }

    println!("\n{clients_n} clients, {} s a phase, PostgreSQL\n", seconds.as_secs());
    println!(
        "Ceilings: trivial axum handler {:.0} requests/s (p50 {:.2} ms, p99 {:.2} ms); raw INSERT + COMMIT {commit_rate:.0} commits/s ({raw_flushes:.3} WAL flushes a commit)\n",
        base.rate, base.p50_ms, base.p99_ms
    );

    let place = |mut client: Client, _i: usize, deadline: Instant| async move {
        while Instant::now() < deadline {
            let order = json!({"service": "tg", "country": "GB"});
            client.call("POST /orders", Method::POST, "/orders", Some(order)).await;
        }
        client
    };
    let disk_before = disk_counters(&url).await?;
    let (clients, mut placing, placing_s) = phase(clients, seconds, place).await;
    println!("Order placement alone:\n");
    placing.print(placing_s);
    let placed_rate = placing.rate("POST /orders", placing_s);
    let behind = views_caught_up(&clients).await;
    println!(
        "\nThe views (each user's orders list) included every order placed {:.1} s after placement stopped.",
        behind.as_secs_f64()
    );
    // Cluster-wide flushes and WAL (this run is the only load), this database's commits; the
    // two counter reads add two commits of their own.
    let disk_after = disk_counters(&url).await?;
    let placed = placing.routes.get("POST /orders").map_or(0, |r| r.latencies.len()).max(1) as f64;
    println!(
        "PostgreSQL per order placed, projections included: {:.3} WAL flushes, {:.0} WAL bytes, {:.3} commits",
        (disk_after.flushes - disk_before.flushes) as f64 / placed,
        (disk_after.wal_bytes - disk_before.wal_bytes) as f64 / placed,
        (disk_after.commits - disk_before.commits) as f64 / placed,
    );

    let read = |mut client: Client, _i: usize, deadline: Instant| async move {
        let listed = client.call_json("GET /orders (page of 20)", Method::GET, "/orders?per_page=1", None).await;
        let id = listed.and_then(|l| l["data"]["orders"][0]["id"].as_str().map(str::to_owned)).unwrap_or_default();
        while Instant::now() < deadline {
            client.call("GET /user/balance", Method::GET, "/user/balance", None).await;
            client.call("GET /orders/:id", Method::GET, &format!("/orders/{id}"), None).await;
            client.call("GET /orders (page of 20)", Method::GET, "/orders?per_page=20", None).await;
        }
        client
    };
    let (clients, mut reading, reading_s) = phase(clients, seconds, read).await;
    println!("\nAuthenticated reads alone (each client: balance, order by id, a page, in turn):\n");
    reading.print(reading_s);
    let reads_rate = reading.routes.values().map(|r| r.latencies.len()).sum::<usize>() as f64 / reading_s;

    // The mix runs on a server with short order windows, on a database of its own: the
    // placement phase's orders (tens of thousands, with production windows) would otherwise
    // all get their codes from the mix's monitor while the mix runs, and be measured as it.
    let mut peak = peak_rss_mib(&server);
    stop(&mut server)?;
    drop(clients);
    let (mix_url, mix_cleanup) = database_url().await;
    server = serve(true, &mix_url)?;
    wait_until_up(&server_base, "/health").await;
    let mut clients = Vec::new();
    for i in 0..clients_n {
        clients.push(sign_up(&api, i).await?);
    }
    let (clients, mut mix, mix_s) = phase(clients, seconds * 2, mixed).await;
    println!("\nThe realistic mix (orders expire after 3 s; 90% of numbers get a code after 0.3 s):\n");
    mix.print(mix_s);
    drop(clients);

    peak = peak.max(peak_rss_mib(&server));
    println!();
    println!("order placement: {placed_rate:.0} orders/s = {:.2}x the raw commit rate", placed_rate / commit_rate);
    println!("authenticated reads: {reads_rate:.0} requests/s = {:.2} of the trivial handler", reads_rate / base.rate);
    println!("server peak RSS: {peak:.0} MiB");
    stop(&mut server)?;
    let verify = |url: &str| {
        Command::new(exe)
            .arg("verify")
            .env("DATABASE_URL", url)
            .env("JWT_SECRET", "load harness jwt secret, 32 bytes long")
            .env("SECRETS_KEY", "load harness sealing key, 32 bytes")
            .stdout(Stdio::null())
            .status()
            .map(|status| status.success())
    };
    let verified = verify(&url)? && verify(&mix_url)?;
    println!("smsledger verify after the run (both databases): {}", if verified { "passed" } else { "FAILED" });
    cleanup.run().await?;
    mix_cleanup.run().await?;
    anyhow::ensure!(verified, "verify failed after the load run (server log: {})", log.display());
    Ok(())
}
