//! HTTP load driver for authenticated routes: N clients, each its own signed-in user, call
//! the real router for a fixed time; the ceiling is a trivial axum handler behind the same
//! conventions layers, measured in the same run with the same client.
//!
//! Run: `cargo bench --bench http_auth` (PostgreSQL at BENCH_DATABASE_URL, default the local
//! server; BENCH_ENGINE=sqlite for the embedded store; BENCH_CLIENTS default 32,
//! BENCH_SECONDS default 5).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use smsledger::config::Settings;
use smsledger::http::conventions::HttpLimits;

use common::{Measured, database_url, env_number, measure, serve};
use smsledger::http::{AppState, Secrets, router};
use smsledger::identity::Mailer;
use smsledger::rate_limit::RateLimiter;
use smsledger::store::EventStore;

const PASSWORD: &str = "correct horse battery";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // `cargo test --benches` asks for a list; this driver has no tests.
    }
    let clients = env_number("BENCH_CLIENTS", 32);
    let duration = Duration::from_secs(env_number("BENCH_SECONDS", 5) as u64);
    let (url, cleanup) = database_url().await;
    let settings = Settings::from_lookup(|key| (key == "DATABASE_URL").then(|| url.clone()))?;
    let store = EventStore::open(&settings.store).await?;
    smsledger::projection::spawn_all_live(&store, Default::default(), 1_000, Duration::from_millis(250));
    let secrets = Secrets {
        jwt_secret: "bench jwt secret, thirty-two bytes".into(),
        secrets_key: "bench sealing key, 32 bytes long".into(),
    };
    let mut state = AppState::new(store.clone(), RateLimiter::in_process(), &settings, &secrets, Mailer::memory());
    state.quotas = state.quotas.all_at(1_000_000_000);
    let api = serve(router(state, &settings.http)).await;
    let trivial = Router::new().route("/ping", get(|| async { "pong" }));
    let ceiling = serve(smsledger::http::conventions::apply(trivial, &HttpLimits::default())).await;

    println!("setting up {clients} users, each signed in with a session and an API key ...");
    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    let mut keys = Vec::new();
    let mut streams = Vec::new();
    for i in 0..clients {
        let email = format!("bench{i}@example.com");
        let body = json!({"email": email, "password": PASSWORD});
        let registered: Value =
            client.post(format!("{api}/api/v1/auth/register")).json(&body).send().await?.json().await?;
        streams.push(format!("user-{}", registered["data"]["user"]["id"].as_str().unwrap()));
        let login: Value = client.post(format!("{api}/api/v1/auth/login")).json(&body).send().await?.json().await?;
        let token = login["data"]["access_token"].as_str().unwrap().to_owned();
        let key: Value = client
            .post(format!("{api}/api/v1/user/api-keys"))
            .bearer_auth(&token)
            .json(&json!({"name": "bench"}))
            .send()
            .await?
            .json()
            .await?;
        keys.push(key["data"]["key"].as_str().unwrap().to_owned());
        tokens.push(token);
    }
    let (tokens, keys) = (Arc::new(tokens), Arc::new(keys));

    // The second ceiling: the same layers and one raw indexed read of a user's stream (the
    // query an authenticated request cannot avoid), every column fetched, nothing decoded.
    let engine = store.engine().clone();
    let streams = Arc::new(streams);
    let one_read = Router::new().route(
        "/read/{n}",
        get(move |axum::extract::Path(n): axum::extract::Path<usize>| {
            let (engine, streams) = (engine.clone(), streams.clone());
            async move {
                let stream = &streams[n];
                let query = "SELECT * FROM events WHERE stream_id = $1 ORDER BY version";
                let rows = match &engine {
                    smsledger::store::Engine::Postgres(pool) => {
                        sqlx::query(query).bind(stream).fetch_all(pool).await.map(|r| r.len())
                    }
                    smsledger::store::Engine::Sqlite(pool) => {
                        sqlx::query(query).bind(stream).fetch_all(pool).await.map(|r| r.len())
                    }
                };
                rows.map(|n| n.to_string()).unwrap_or_default()
            }
        }),
    );
    let read_ceiling = serve(smsledger::http::conventions::apply(one_read, &HttpLimits::default())).await;

    let engine = store.engine().name();
    println!("\n{clients} clients, {} s each, {engine}\n", duration.as_secs());
    println!("| measurement | requests/s | p50 ms | p99 ms | vs ceiling |");
    println!("|---|---|---|---|---|");
    let base = measure(clients, duration, move |c, _| c.get(format!("{ceiling}/ping"))).await;
    let row = |name: &str, m: &Measured| {
        println!("| {name} | {:.0} | {:.2} | {:.2} | {:.2} |", m.rate, m.p50_ms, m.p99_ms, m.rate / base.rate);
    };
    row("trivial axum handler, same layers (ceiling)", &base);
    let read = measure(clients, duration, move |c, i| c.get(format!("{read_ceiling}/read/{i}"))).await;
    row("same layers + one raw indexed SELECT of a stream (DB ceiling)", &read);
    let vs_read = |name: &str, m: &Measured| println!("  {name}: {:.2} of the DB ceiling", m.rate / read.rate);
    let (a, t) = (api.clone(), tokens.clone());
    let me = measure(clients, duration, move |c, i| c.get(format!("{a}/api/v1/auth/me")).bearer_auth(&t[i])).await;
    row("GET /auth/me, access token (JWT + user stream read)", &me);
    let (a, k) = (api.clone(), keys.clone());
    let by_key =
        measure(clients, duration, move |c, i| c.get(format!("{a}/api/v1/auth/me")).header("x-api-key", &k[i])).await;
    row("GET /auth/me, API key (owner cached, user stream read)", &by_key);
    let (a, t) = (api.clone(), tokens.clone());
    let balance =
        measure(clients, duration, move |c, i| c.get(format!("{a}/api/v1/user/balance")).bearer_auth(&t[i])).await;
    row("GET /user/balance (auth + read-your-writes balance)", &balance);
    let a = api.clone();
    let logins = measure(clients, duration, move |c, i| {
        c.post(format!("{a}/api/v1/auth/login"))
            .json(&json!({"email": format!("bench{i}@example.com"), "password": PASSWORD}))
    })
    .await;
    row("POST /auth/login (argon2id 19 MiB t=2, session opened)", &logins);
    println!();
    vs_read("GET /auth/me, access token", &me);
    vs_read("GET /auth/me, API key", &by_key);
    vs_read("GET /user/balance", &balance);

    drop(store);
    cleanup.run().await?;
    Ok(())
}
