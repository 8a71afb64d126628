//! A real server for HTTP tests: the service's router on a random port over a fresh
//! database, with live projectors, mail kept in memory, and a small JSON client.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use smsledger::config::Settings;
use smsledger::http::{AppState, Secrets, router};
use smsledger::identity::Mailer;
use smsledger::rate_limit::{Quotas, RateLimiter};
use smsledger::store::EventStore;

use super::{TestDatabase, open_store};

pub const PASSWORD: &str = "correct horse battery";
const JWT_SECRET: &str = "test jwt secret of thirty-two bytes";
const SECRETS_KEY: &str = "test sealing key, 32 bytes long";

pub struct TestApp {
    pub base: String,
    pub mailer: Mailer,
    pub store: EventStore,
    /// The notification settings the server runs with (tests run the sender with them).
    pub notifications: smsledger::notifications::NotificationSettings,
    /// The server's orders: tests run the monitor's scan on it.
    pub orders: Arc<smsledger::orders::Orders>,
    client: reqwest::Client,
    _database: TestDatabase,
}

/// Quotas high enough that only the rate-limit tests meet them.
pub fn generous_quotas() -> Quotas {
    Quotas::with_api_per_minute(1).all_at(10_000)
}

pub struct Options {
    pub quotas: Quotas,
    pub limiter: RateLimiter,
    pub trust_forwarded_for: bool,
    /// Sent as `X-Forwarded-For` with every request.
    pub forwarded_for: Option<String>,
    /// Settings as if from the environment (`("ORDER_TIMEOUT", "1000")`).
    pub env: Vec<(&'static str, String)>,
    /// Providers instead of the configured ones (the sandbox).
    pub providers: Option<Vec<smsledger::providers::Provider>>,
    /// Run the background jobs (catalog sync, order monitor) as `serve` does.
    pub jobs: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            quotas: generous_quotas(),
            limiter: RateLimiter::in_process(),
            trust_forwarded_for: false,
            forwarded_for: None,
            env: Vec::new(),
            providers: None,
            jobs: false,
        }
    }
}

pub async fn spawn(database: TestDatabase) -> TestApp {
    spawn_with(database, Options::default()).await
}

pub async fn spawn_with(database: TestDatabase, options: Options) -> TestApp {
    let url = database.url.clone();
    let env = options.env.clone();
    let settings = Settings::from_lookup(|key| match key {
        "DATABASE_URL" => Some(url.clone()),
        "FRONTEND_URL" => Some("https://app.example.com".into()),
        // Codes arrive at once unless a test says otherwise.
        "SANDBOX_CODE_DELAY_MS" if !env.iter().any(|(k, _)| *k == key) => Some("0".into()),
        _ => env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone()),
    })
    .expect("test settings");
    let store = open_store(&database).await;
    let targets = settings.notifications.targets();
    smsledger::projection::spawn_all_live(&store, targets, 1_000, Duration::from_millis(20));
    let secrets = Secrets { jwt_secret: JWT_SECRET.into(), secrets_key: SECRETS_KEY.into() };
    // As `serve` chooses, except that tests read the mail a log would have shown.
    let mailer = match Mailer::for_settings(&settings.notifications, store.engine()) {
        Mailer::Log => Mailer::memory(),
        queued => queued,
    };
    let mut state = AppState::new(store.clone(), options.limiter, &settings, &secrets, mailer.clone());
    state.quotas = options.quotas;
    state.trust_forwarded_for = options.trust_forwarded_for;
    if let Some(providers) = options.providers {
        let catalog = Arc::new(smsledger::catalog::CatalogCache::new(providers));
        let ledger = smsledger::service::Ledger::new(store.clone(), settings.order_policy);
        state.orders = Arc::new(smsledger::orders::Orders::new(store.clone(), ledger, catalog));
    }
    let orders = Arc::clone(&state.orders);
    if options.jobs {
        state.start_jobs(&settings.jobs);
    }
    let app = router(state, &settings.http);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(smsledger::http::serve(listener, app, std::future::pending()));
    let mut headers = HeaderMap::new();
    if let Some(ip) = options.forwarded_for {
        headers.insert("x-forwarded-for", ip.parse().unwrap());
    }
    let client = reqwest::Client::builder().default_headers(headers).build().unwrap();
    let notifications = settings.notifications.clone();
    TestApp {
        base: format!("http://{address}/api/v1"),
        mailer,
        store,
        orders,
        client,
        notifications,
        _database: database,
    }
}

/// A response: status, headers, JSON body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    #[track_caller]
    pub fn expect(self, status: StatusCode) -> Reply {
        assert_eq!(self.status, status, "body: {}", self.body);
        if status.is_success() {
            assert_eq!(self.body["success"], true, "{}", self.body);
        } else {
            assert_eq!(self.body["success"], false, "{}", self.body);
            assert!(self.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{}", self.body);
        }
        self
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub enum As<'a> {
    Nobody,
    Bearer(&'a str),
    Key(&'a str),
}

impl TestApp {
    pub async fn call(&self, method: Method, path: &str, who: As<'_>, body: Option<Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        request = match who {
            As::Nobody => request,
            As::Bearer(token) => request.bearer_auth(token),
            As::Key(key) => request.header("x-api-key", key),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
        Reply { status, headers, body }
    }

    pub async fn get(&self, path: &str, who: As<'_>) -> Reply {
        self.call(Method::GET, path, who, None).await
    }

    pub async fn post(&self, path: &str, who: As<'_>, body: Value) -> Reply {
        self.call(Method::POST, path, who, Some(body)).await
    }

    pub async fn put(&self, path: &str, who: As<'_>, body: Value) -> Reply {
        self.call(Method::PUT, path, who, Some(body)).await
    }

    pub async fn delete(&self, path: &str, who: As<'_>) -> Reply {
        self.call(Method::DELETE, path, who, None).await
    }

    pub async fn register(&self, email: &str) -> Value {
        let reply = self.post("/auth/register", As::Nobody, json!({"email": email, "password": PASSWORD})).await;
        reply.expect(StatusCode::CREATED).data()["user"].clone()
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post("/auth/login", As::Nobody, json!({"email": email, "password": password})).await
    }

    /// Registers and signs in; returns (access token, refresh token, user id).
    pub async fn signed_in(&self, email: &str) -> (String, String, String) {
        let user = self.register(email).await;
        let reply = self.login(email, PASSWORD).await.expect(StatusCode::OK);
        let data = reply.data();
        (text(&data["access_token"]), text(&data["refresh_token"]), text(&user["id"]))
    }

    /// The token in the last mail to `to` whose body links to `path`.
    pub fn mailed_token(&self, to: &str, path: &str) -> String {
        let mail =
            self.mailer.sent_to(to).into_iter().rev().find(|m| m.body.contains(path)).expect("a mail with the link");
        let start = mail.body.find("token=").expect("a token in the link") + "token=".len();
        mail.body[start..].split_whitespace().next().unwrap().to_owned()
    }

    /// An admin signed in with a second factor: (access token, TOTP secret, user id).
    pub async fn admin(&self, email: &str) -> (String, Vec<u8>, String) {
        let (token, _, id) = self.signed_in(email).await;
        self.promote(email).await;
        let setup = self.post("/auth/2fa/setup", As::Bearer(&token), json!({})).await.expect(StatusCode::OK);
        let secret =
            base32::decode(base32::Alphabet::Rfc4648 { padding: false }, setup.data()["secret"].as_str().unwrap())
                .expect("base32 secret");
        let code = smsledger::identity::totp::code_at(&secret, unix_now());
        self.post("/auth/2fa/enable", As::Bearer(&token), json!({"code": code})).await.expect(StatusCode::OK);
        // The next step's code: the one that enabled TOTP is spent (one step of skew is accepted).
        let code = smsledger::identity::totp::code_at(&secret, unix_now() + 30);
        let reply = self
            .post("/auth/login", As::Nobody, json!({"email": email, "password": PASSWORD, "totp_code": code}))
            .await
            .expect(StatusCode::OK);
        (text(&reply.data()["access_token"]), secret, id)
    }

    /// Makes the account an admin the way an operator does (the CLI's code path).
    pub async fn promote(&self, email: &str) {
        let identity = smsledger::identity::Identity::new(
            self.store.clone(),
            JWT_SECRET,
            SECRETS_KEY,
            Mailer::memory(),
            "https://app.example.com",
        );
        let caller = smsledger::identity::Caller::default();
        let (_, created) = identity.make_admin(email, PASSWORD, &caller).await.expect("make admin");
        assert!(!created);
    }
}

pub fn text(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("a string, got {value}")).to_owned()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

impl TestApp {
    /// Credits `amount` USD to a user's wallet, as a sandbox deposit.
    pub async fn fund(&self, user_id: &str, amount: &str) {
        use domain::wallet::WalletCommand;
        let user = domain::UserId(uuid::Uuid::parse_str(user_id).unwrap());
        let command = WalletCommand::Deposit {
            deposit_id: domain::DepositId::new(),
            amount: domain::PositiveMoney::parse(amount, "USD").unwrap(),
            source: domain::Clearing::Sandbox,
        };
        let metadata = smsledger::store::Metadata::default();
        self.orders.ledger().wallet_command(user, domain::Currency::USD, command, None, metadata).await.unwrap();
    }

    /// The caller's USD balance as (available, held), read through the API.
    pub async fn balance(&self, who: As<'_>) -> (rust_decimal::Decimal, rust_decimal::Decimal) {
        let reply = self.get("/user/balance?currency=USD", who).await.expect(StatusCode::OK);
        let line = &reply.data()["balances"][0];
        (text(&line["available"]).parse().unwrap(), text(&line["held"]).parse().unwrap())
    }

    /// `smsledger verify` passes and no hold is left open.
    pub async fn assert_ledger_sound(&self) {
        let report = smsledger::verify::verify(&self.store).await.unwrap();
        assert!(report.is_ok(), "verify found problems: {:?}", report.problems);
        assert_eq!(report.open_holds, 0, "a hold was left open");
    }
}

impl TestApp {
    /// Closes every open order of the caller: finished with a code, else cancelled.
    pub async fn close_all(&self, token: &str) {
        let listed = self.get("/orders?per_page=100", As::Bearer(token)).await.expect(StatusCode::OK);
        for order in listed.data()["orders"].as_array().unwrap() {
            let id = text(&order["id"]);
            let order = self.get(&format!("/orders/{id}"), As::Bearer(token)).await.expect(StatusCode::OK);
            let action = match order.data()["order"]["status"].as_str().unwrap() {
                "sms_received" => "finish",
                "placed" | "number_assigned" => "cancel",
                _ => continue,
            };
            self.post(&format!("/orders/{id}/{action}"), As::Bearer(token), json!({})).await.expect(StatusCode::OK);
        }
    }
}
