//! HTTP load driver for orders: N clients, each its own funded user, place orders on the
//! sandbox provider (a number in-process, no network) and read them back, for a fixed time.
//! Ceilings measured in the same run with the same client: a trivial axum handler behind the
//! same layers, and that handler doing one raw single-row INSERT committed on its own (the
//! commit an order cannot avoid).
//!
//! Run: `cargo bench --bench http_orders` (PostgreSQL at BENCH_DATABASE_URL, default the local
//! server; BENCH_ENGINE=sqlite for the embedded store; BENCH_CLIENTS default 32,
//! BENCH_SECONDS default 5).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde_json::{Value, json};
use smsledger::config::Settings;
use smsledger::http::conventions::HttpLimits;
use smsledger::http::{AppState, Secrets, router};
use smsledger::identity::Mailer;
use smsledger::rate_limit::RateLimiter;
use smsledger::store::{EventStore, Metadata};

use common::{Measured, database_url, env_number, measure, serve};

const PASSWORD: &str = "correct horse battery";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this driver has no tests.
    }
    let clients = env_number("BENCH_CLIENTS", 32);
    let duration = Duration::from_secs(env_number("BENCH_SECONDS", 5) as u64);
    let (url, cleanup) = database_url().await;
    let settings = Settings::from_lookup(|key| match key {
        "DATABASE_URL" => Some(url.clone()),
        // No SMS: every order stays open and holds, as during a busy hour.
        "SANDBOX_BEHAVIOUR" => Some("never_deliver".into()),
        _ => None,
    })?;
    let store = EventStore::open(&settings.store).await?;
    smsledger::projection::spawn_all_live(&store, Default::default(), 1_000, Duration::from_millis(250));
    let secrets = Secrets {
        jwt_secret: "bench jwt secret, thirty-two bytes".into(),
        secrets_key: "bench sealing key, 32 bytes long".into(),
    };
    let mut state = AppState::new(store.clone(), RateLimiter::in_process(), &settings, &secrets, Mailer::memory());
    state.quotas = state.quotas.all_at(1_000_000_000);
    let orders = Arc::clone(&state.orders);
    let api = serve(router(state, &settings.http)).await;
    let trivial = Router::new().route("/ping", get(|| async { "pong" }));
    let ceiling = serve(smsledger::http::conventions::apply(trivial, &HttpLimits::default())).await;

    // The write ceiling: one single-row INSERT committed on its own per request.
    let engine = store.engine().clone();
    let create = "CREATE TABLE bench_commits (n BIGINT NOT NULL)";
    match &engine {
        smsledger::store::Engine::Postgres(pool) => sqlx::query(create).execute(pool).await.map(|_| ())?,
        smsledger::store::Engine::Sqlite(pool) => sqlx::query(create).execute(pool).await.map(|_| ())?,
    }
    let counter = Arc::new(AtomicI64::new(0));
    let one_commit = Router::new().route(
        "/commit",
        post(move || {
            let (engine, counter) = (engine.clone(), counter.clone());
            async move {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let insert = "INSERT INTO bench_commits (n) VALUES ($1)";
                let done = match &engine {
                    smsledger::store::Engine::Postgres(pool) => sqlx::query(insert).bind(n).execute(pool).await.is_ok(),
                    smsledger::store::Engine::Sqlite(pool) => sqlx::query(insert).bind(n).execute(pool).await.is_ok(),
                };
                done.to_string()
            }
        }),
    );
    let commit_ceiling = serve(smsledger::http::conventions::apply(one_commit, &HttpLimits::default())).await;

    println!("setting up {clients} users, each signed in and funded ...");
    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    for i in 0..clients {
        let body = json!({"email": format!("bench{i}@example.com"), "password": PASSWORD});
        let registered: Value =
            client.post(format!("{api}/api/v1/auth/register")).json(&body).send().await?.json().await?;
        let user: uuid::Uuid = registered["data"]["user"]["id"].as_str().unwrap().parse()?;
        let deposit = domain::wallet::WalletCommand::Deposit {
            deposit_id: domain::DepositId::new(),
            amount: domain::PositiveMoney::parse("1000000", "USD")?,
            source: domain::Clearing::Sandbox,
        };
        let user = domain::UserId(user);
        orders.ledger().wallet_command(user, domain::Currency::USD, deposit, None, Metadata::default()).await?;
        let login: Value = client.post(format!("{api}/api/v1/auth/login")).json(&body).send().await?.json().await?;
        tokens.push(login["data"]["access_token"].as_str().unwrap().to_owned());
    }
    let tokens = Arc::new(tokens);

    let engine = store.engine().name();
    println!("\n{clients} clients, {} s each, {engine}\n", duration.as_secs());
    println!("| measurement | requests/s | p50 ms | p99 ms | vs ceiling |");
    println!("|---|---|---|---|---|");
    let base = measure(clients, duration, move |c, _| c.get(format!("{ceiling}/ping"))).await;
    let row = |name: &str, m: &Measured| {
        println!("| {name} | {:.0} | {:.2} | {:.2} | {:.2} |", m.rate, m.p50_ms, m.p99_ms, m.rate / base.rate);
    };
    row("trivial axum handler, same layers (ceiling)", &base);
    let commit = measure(clients, duration, move |c, _| c.post(format!("{commit_ceiling}/commit"))).await;
    row("same layers + one raw single-row INSERT commit (DB ceiling)", &commit);
    let (a, t) = (api.clone(), tokens.clone());
    let placed = measure(clients, duration, move |c, i| {
        c.post(format!("{a}/api/v1/orders")).bearer_auth(&t[i]).json(&json!({"service": "tg", "country": "GB"}))
    })
    .await;
    row("POST /orders (auth, route, rent, order + number + hold appended)", &placed);

    // Reading one order back: the newest of each user's.
    let mut ids = Vec::new();
    for token in tokens.iter() {
        let listed: Value =
            client.get(format!("{api}/api/v1/orders?per_page=1")).bearer_auth(token).send().await?.json().await?;
        ids.push(listed["data"]["orders"][0]["id"].as_str().unwrap().to_owned());
    }
    let ids = Arc::new(ids);
    let (a, t) = (api.clone(), tokens.clone());
    let read =
        measure(clients, duration, move |c, i| c.get(format!("{a}/api/v1/orders/{}", ids[i])).bearer_auth(&t[i])).await;
    row("GET /orders/:id (auth, order stream folded, provider polled)", &read);
    let (a, t) = (api.clone(), tokens.clone());
    let listed =
        measure(clients, duration, move |c, i| c.get(format!("{a}/api/v1/orders?per_page=20")).bearer_auth(&t[i]))
            .await;
    row("GET /orders (auth, read-your-writes, a page of 20 from the view)", &listed);
    println!();
    println!("  POST /orders: {:.2} of the DB ceiling", placed.rate / commit.rate);

    drop(store);
    cleanup.run().await?;
    Ok(())
}
