//! The `smsledger` binary end to end: exit codes and output of its commands, and `serve`.

mod common;
#[path = "common/workload.rs"]
mod workload;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{TestDatabase, open_store};
use domain::order::OrderPolicy;
use smsledger::service::Ledger;
use smsledger::store::Engine;

fn smsledger(db: &TestDatabase, args: &[&str]) -> Output {
    command(db, args).output().expect("run smsledger")
}

fn command(db: &TestDatabase, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_smsledger"));
    // An empty working directory, so no developer's `.env` is read.
    command.args(args).current_dir(std::env::temp_dir()).env("DATABASE_URL", &db.url);
    let inherited = ["LOG_LEVEL", "JWT_SECRET", "SECRETS_KEY", "REDIS_URL", "SMSMAN_API_KEY", "TEXTVERIFIED_USERNAME"];
    for inherited in inherited.into_iter().chain(["TEXTVERIFIED_API_KEY", "SANDBOX_ENABLED", "SANDBOX_BEHAVIOUR"]) {
        command.env_remove(inherited);
    }
    if db.url.starts_with("postgres") {
        command
            .env("JWT_SECRET", "cli test jwt secret, thirty-two bytes")
            .env("SECRETS_KEY", "cli test sealing key, thirty-two bytes");
    }
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn verify_rebuild_status_and_balance_from_the_command_line(db: TestDatabase) {
    let store = open_store(&db).await;
    workload::run(&Ledger::new(store.clone(), OrderPolicy::default()), 3, 4, 11).await;
    let head = store.head().await.unwrap().position;

    let rebuilt = smsledger(&db, &["projections", "rebuild"]);
    assert!(rebuilt.status.success(), "{rebuilt:?}");
    for name in ["balances", "statement", "trial_balance"] {
        assert!(stdout(&rebuilt).contains(&format!("rebuilt {name} to position {head}")), "{}", stdout(&rebuilt));
    }
    let status = smsledger(&db, &["projections", "status"]);
    assert!(stdout(&status).contains(&format!("{:<14} {:>12} {:>10}", "balances", head, 0)), "{}", stdout(&status));

    let verified = smsledger(&db, &["verify"]);
    assert_eq!(verified.status.code(), Some(0), "{}", stdout(&verified));
    assert!(stdout(&verified).contains("OK: hash chain, aggregates, snapshots and projections agree with the log"));

    let margin = smsledger(&db, &["ledger", "balance", "--account", "revenue:margin"]);
    assert!(margin.status.success());
    let expected =
        smsledger::point_in_time::account_balance(&store, &domain::Account::RevenueMargin, head).await.unwrap();
    let amount = expected[&domain::Currency::USD];
    assert!(amount > rust_decimal::Decimal::ZERO);
    assert!(stdout(&margin).contains(&format!("  {amount} USD")), "{}", stdout(&margin));
    let at_zero = smsledger(&db, &["ledger", "balance", "--account", "revenue:margin", "--at", "0"]);
    assert!(stdout(&at_zero).contains("no postings"));
    let bad = smsledger(&db, &["ledger", "balance", "--account", "bogus"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown ledger account \"bogus\""));
    let bad_at = smsledger(&db, &["ledger", "balance", "--account", "revenue:margin", "--at", "yesterday"]);
    assert_eq!(bad_at.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_at.stderr).contains("RFC 3339"));

    tamper(store.engine(), 5).await;
    let failed = smsledger(&db, &["verify"]);
    assert_eq!(failed.status.code(), Some(1), "{}", stdout(&failed));
    assert!(stdout(&failed).contains("first bad position: 5"), "{}", stdout(&failed));
}

async fn tamper(engine: &Engine, position: i64) {
    let (disable, update) = match engine {
        Engine::Postgres(_) => (
            "ALTER TABLE events DISABLE TRIGGER events_append_only",
            "UPDATE events SET event_type = 'x.y' WHERE position = $1",
        ),
        Engine::Sqlite(_) => {
            ("DROP TRIGGER events_no_update", "UPDATE events SET event_type = 'x.y' WHERE position = $1")
        }
    };
    match engine {
        Engine::Postgres(pool) => {
            sqlx::query(disable).execute(pool).await.unwrap();
            sqlx::query(update).bind(position).execute(pool).await.unwrap();
        }
        Engine::Sqlite(pool) => {
            sqlx::query(disable).execute(pool).await.unwrap();
            sqlx::query(update).bind(position).execute(pool).await.unwrap();
        }
    }
}

async fn bad_configuration_names_the_variable(db: TestDatabase) {
    let output = command(&db, &["migrate"]).env("DATABASE_POOL_SIZE", "lots").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_POOL_SIZE must be a number, got \"lots\""));
}

async fn serve_answers_health_and_stops_on_sigterm(db: TestDatabase) {
    // On PostgreSQL with the real Redis; on SQLite with a Redis that is not there (port 1):
    // the service must start anyway and say that rate limits run in-process.
    let live_redis = if db.url.starts_with("postgres") { common::redis_url("serve with redis").await } else { None };
    if db.url.starts_with("postgres") {
        // PostgreSQL deployments must set their secrets; the embedded default generates them.
        let refused =
            command(&db, &["serve"]).env_remove("JWT_SECRET").env("LISTEN_ADDR", "127.0.0.1:0").output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "{refused:?}");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("JWT_SECRET and SECRETS_KEY must be set"),
            "{refused:?}"
        );
    }
    let redis_url = live_redis.clone().unwrap_or_else(|| "redis://127.0.0.1:1".into());
    let mut child = command(&db, &["serve"])
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", &redis_url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut address = None;
    let mut line = String::new();
    while stderr.read_line(&mut line).unwrap() > 0 {
        if line.contains("smsledger.listening") {
            let log: serde_json::Value = serde_json::from_str(&line).expect("JSON logs when stderr is not a terminal");
            address = Some(log["address"].as_str().unwrap().to_owned());
            break;
        }
        line.clear();
    }
    let address = address.expect("serve logs its address");
    let (status, body) = get(&address, "/health");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["store"]["ok"], true);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let names: Vec<&str> =
        health["projections"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "balances",
            "statement",
            "trial_balance",
            "orders",
            "deposits",
            "analytics",
            "users_directory",
            "activity_log"
        ]
    );
    assert_eq!(health["projections"][0]["lag"], 0);
    let (status, body) = get(&address, "/nope");
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap()["error"], "no such route");

    let (status, body) = get(&address, "/api/v1/system/status");
    assert_eq!(status, 200, "{body}");
    let system: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(system["success"], true);
    assert_eq!(system["data"]["store"]["ok"], true);
    assert_eq!(system["data"]["providers"], serde_json::json!([{"id": "sandbox", "ok": true}]), "the default provider");
    assert_eq!(system["data"]["redis"]["configured"], true);
    assert_eq!(system["data"]["redis"]["ok"], live_redis.is_some(), "{body}");
    assert_eq!(system["data"]["ok"], live_redis.is_some());
    assert_eq!(
        system["data"]["projections"].as_array().unwrap().len(),
        8,
        "balances, statement, trial balance, orders, deposits, analytics, users directory, activity log"
    );

    let (status, body) = get(&address, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains(r#"http_requests_total{method="GET",route="/health",status="200"} 1"#), "{body}");
    assert!(
        body.contains(r#"http_requests_total{method="GET",route="/api/v1/system/status",status="200"} 1"#),
        "{body}"
    );
    assert!(body.contains(r#"http_requests_total{method="any",route="unmatched",status="404"} 1"#), "{body}");
    assert!(body.contains("http_request_duration_seconds_bucket"), "{body}");
    assert!(body.contains(r#"projection_lag_events{projection="balances"} 0"#), "{body}");
    assert!(body.contains("store_head_position 0"), "{body}");

    let (status, body) = get(&address, "/api/v1/system/config");
    assert_eq!(status, 200, "{body}");
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["data"]["currencies"], serde_json::json!(["USD"]));
    assert_eq!(config["data"]["order"], serde_json::json!({"cancel_after_ms": 120_000, "lifetime_ms": 1_200_000}));
    assert_eq!(config["data"]["rate_limits"][0], serde_json::json!({"name": "login", "limit": 5, "period_s": 900}));

    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let exit = wait_with_timeout(&mut child, Duration::from_secs(10));
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "serve stops cleanly on SIGTERM");
}

fn get(address: &str, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

fn wait_with_timeout(child: &mut std::process::Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// `admin create` makes a new admin with a generated password shown once, or from stdin, and
/// promotes an existing account without touching its password.
async fn admin_create_bootstraps_and_promotes(db: TestDatabase) {
    let created = smsledger(&db, &["admin", "create", "--email", "Root@Example.com"]);
    assert!(created.status.success(), "{created:?}");
    let text = stdout(&created);
    assert!(text.contains("created admin root@example.com"), "{text}");
    let password = text.lines().find_map(|l| l.strip_prefix("password (shown once): ")).expect("a password");
    assert!(password.len() >= 20, "{password}");

    let again = smsledger(&db, &["admin", "create", "--email", "root@example.com"]);
    assert!(stdout(&again).contains("is now an admin; their password is unchanged"), "{again:?}");

    let mut child = command(&db, &["admin", "create", "--email", "ops@example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let weak = child.wait_with_output().unwrap();
    assert_eq!(weak.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("at least 10 characters"), "{weak:?}");

    let store = open_store(&db).await;
    let identity = smsledger::identity::Identity::new(
        store,
        "unused here, but thirty-two bytes!",
        "unused here, but thirty-two bytes!",
        smsledger::identity::Mailer::memory(),
        "http://localhost",
    );
    let email = domain::identity::Email::parse("root@example.com").unwrap();
    let id = identity.user_id_by_email(&email).await.unwrap().expect("registered");
    assert_eq!(identity.user_view(id).await.unwrap().role, domain::identity::Role::Admin);
}

/// Totals per (account, currency) from an export's rows, and its own total rows.
type Sums = std::collections::BTreeMap<(String, String), rust_decimal::Decimal>;

fn csv_sums(text: &str) -> (Sums, Sums, usize) {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("position,recorded_at,event_id,event_type,stream_id,account,currency,amount"));
    let (mut rows, mut totals, mut count) = (Sums::new(), Sums::new(), 0);
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 8, "{line}");
        let key = (fields[5].to_owned(), fields[6].to_owned());
        let amount: rust_decimal::Decimal = fields[7].parse().unwrap();
        if fields[3] == "total" {
            assert!(totals.insert(key, amount).is_none(), "one total per account: {line}");
        } else {
            assert!(totals.is_empty(), "totals come last");
            *rows.entry(key).or_default() += amount;
            count += 1;
        }
    }
    (rows, totals, count)
}

async fn export_streams_postings_that_reconcile_to_the_trial_balance(db: TestDatabase) {
    let store = open_store(&db).await;
    workload::run(&Ledger::new(store.clone(), OrderPolicy::default()), 3, 4, 23).await;
    let head = store.head().await.unwrap().position;
    let exported = smsledger(&db, &["export", "--format", "csv"]);
    assert!(exported.status.success(), "{exported:?}");
    let (rows, totals, count) = csv_sums(&stdout(&exported));
    assert!(count > 20, "{count} rows");
    assert_eq!(rows, totals, "the totals are the rows' sums");
    let trial = smsledger::point_in_time::trial_balance(&store, head).await.unwrap();
    let trial: Sums =
        trial.into_iter().map(|((account, currency), amount)| ((account, currency.to_string()), amount)).collect();
    assert_eq!(totals, trial, "an export from the start reconciles to the trial balance at its end");
    let mut per_currency: std::collections::BTreeMap<String, rust_decimal::Decimal> = Default::default();
    for ((_, currency), amount) in &totals {
        *per_currency.entry(currency.clone()).or_default() += amount;
    }
    assert!(per_currency.values().all(|sum| sum.is_zero()), "{per_currency:?}");

    // JSON lines carry the same totals; a later range only its own.
    let jsonl = smsledger(&db, &["export", "--format", "jsonl"]);
    let mut json_totals = Sums::new();
    for line in stdout(&jsonl).lines() {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(total) = value.get("total") {
            let key = (total["account"].as_str().unwrap().to_owned(), total["currency"].as_str().unwrap().to_owned());
            json_totals.insert(key, total["amount"].as_str().unwrap().parse().unwrap());
        }
    }
    assert_eq!(json_totals, totals);
    let middle = head / 2;
    let later = smsledger(&db, &["export", "--from", &(middle + 1).to_string(), "--to", &head.to_string()]);
    let (_, later_totals, _) = csv_sums(&stdout(&later));
    let before = smsledger::point_in_time::trial_balance(&store, middle).await.unwrap();
    for ((account, currency), amount) in &trial {
        let earlier = before.iter().find(|((a, c), _)| a == account && c.to_string() == *currency).map(|(_, v)| *v);
        let change = amount - earlier.unwrap_or_default();
        assert_eq!(later_totals.get(&(account.clone(), currency.clone())).copied().unwrap_or_default(), change);
    }
    let none = smsledger(&db, &["export", "--to", "2000-01-01"]);
    assert_eq!(csv_sums(&stdout(&none)).2, 0, "nothing before the log began");
    let bad = smsledger(&db, &["export", "--format", "xlsx"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--format must be csv or jsonl"));
    let orders = smsledger(&db, &["export", "--kind", "orders", "--format", "jsonl"]);
    assert!(orders.status.success(), "{orders:?}");
    assert!(stdout(&orders).lines().last().unwrap_or_default().starts_with("{\"total\""), "{}", stdout(&orders));
    let positions = smsledger(&db, &["export", "--kind", "deposits", "--from", "5"]);
    assert_eq!(positions.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&positions.stderr).contains("take dates or instants"));
}

on_both_engines!(
    export_streams_postings_that_reconcile_to_the_trial_balance,
    admin_create_bootstraps_and_promotes,
    verify_rebuild_status_and_balance_from_the_command_line,
    bad_configuration_names_the_variable,
    serve_answers_health_and_stops_on_sigterm,
);
