//! `smsledger serve` as a process of its own (the binary this test run built), for tests that
//! run several instances or kill one: started on a free port and waited for, killed with
//! SIGKILL, restarted on the same address; and `smsledger verify` on a database.

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const PASSWORD: &str = "correct horse battery";
pub const JWT_SECRET: &str = "process tests' jwt secret, 32+ bytes";
pub const SECRETS_KEY: &str = "process tests' sealing key, 32 bytes";

/// A `serve` process, killed when dropped.
pub struct Instance {
    child: Child,
    address: String,
    env: Vec<(String, String)>,
    pub api: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(address: &str, env: &[(String, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_smsledger"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LISTEN_ADDR", address)
        .env("JWT_SECRET", JWT_SECRET)
        .env("SECRETS_KEY", SECRETS_KEY)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts")
}

impl Instance {
    /// Starts `serve` on `database_url`, its PostgreSQL connections named `name`.
    pub async fn start(env: &[(&str, String)], database_url: &str, name: &str) -> Instance {
        let address = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().to_string()
        };
        let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        env.push(("DATABASE_URL".into(), format!("{database_url}?application_name={name}")));
        let child = spawn(&address, &env);
        let instance = Instance { child, api: format!("http://{address}/api/v1"), address, env };
        instance.wait_up().await;
        instance
    }

    async fn wait_up(&self) {
        let health = format!("http://{}/health", self.address);
        for _ in 0..300 {
            if reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("serve on {} did not come up", self.address);
    }

    /// Whether the process is still the one started (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and waits for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same address with the same settings.
    pub async fn restart(&mut self) {
        self.kill();
        self.child = spawn(&self.address, &self.env);
        self.wait_up().await;
    }
}

/// `smsledger verify` on the database.
pub fn verify(database_url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_smsledger"))
        .arg("verify")
        .env("DATABASE_URL", database_url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("SECRETS_KEY", SECRETS_KEY)
        .output()
        .expect("verify runs")
}

/// How many events of this type the log holds.
pub async fn count_events(pool: &sqlx::PgPool, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// A client whose requests say they come from `address` (`X-Forwarded-For`, which the
/// instances are started to trust), so per-address limits are its own.
pub fn client_from(address: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().unwrap());
    reqwest::Client::builder().default_headers(headers).build().unwrap()
}

/// Registers `email` through one instance's API and signs in through another's (or the
/// same); the access token.
pub async fn sign_up(http: &reqwest::Client, register_on: &str, sign_in_on: &str, email: &str) -> String {
    let body = serde_json::json!({"email": email, "password": PASSWORD});
    let registered = http.post(format!("{register_on}/auth/register")).json(&body).send().await.unwrap();
    assert_eq!(registered.status(), reqwest::StatusCode::CREATED);
    let login: serde_json::Value =
        http.post(format!("{sign_in_on}/auth/login")).json(&body).send().await.unwrap().json().await.unwrap();
    login["data"]["access_token"].as_str().unwrap_or_else(|| panic!("{login}")).to_owned()
}
