//! Typed settings from the environment (and `.env`), with clear errors for bad values.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderValue;

use domain::Currency;
use domain::order::{CANCEL_WINDOW_MS_DEFAULT, ORDER_LIFETIME_MS_DEFAULT, OrderPolicy};
use rust_decimal::Decimal;

use crate::http::conventions::HttpLimits;

/// Where the embedded default keeps everything when `DATABASE_URL` is not set.
pub const EMBEDDED_DATABASE_URL: &str = "sqlite://data/smsledger.db";

#[derive(Clone, Debug)]
pub struct StoreSettings {
    pub database_url: String,
    /// Connections in the pool (`DATABASE_POOL_SIZE`).
    pub pool_size: u32,
    /// Group commit: most events in one transaction (`STORE_BATCH_EVENTS_MAX`).
    pub batch_events_max: usize,
    /// Group commit: how long the writer waits for more appends after the first (`STORE_BATCH_WAIT_US`).
    pub batch_wait_us: u64,
    /// Appends queued for the writer before callers wait (`STORE_APPEND_QUEUE_MAX`).
    pub append_queue_max: usize,
}

impl StoreSettings {
    pub fn new(database_url: impl Into<String>) -> Self {
        StoreSettings {
            database_url: database_url.into(),
            pool_size: 16,
            batch_events_max: BATCH_EVENTS_MAX_DEFAULT,
            batch_wait_us: 0,
            append_queue_max: APPEND_QUEUE_MAX_DEFAULT,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub store: StoreSettings,
    pub database_read_url: Option<String>,
    pub redis_url: Option<String>,
    pub listen: SocketAddr,
    pub log_level: String,
    /// Events a projector folds per transaction (`PROJECTION_BATCH_MAX`).
    pub projection_batch_max: u32,
    /// How often projectors look for events written by other processes (`PROJECTION_POLL_MS`).
    pub projection_poll: Duration,
    /// Timeouts, body limits and the allowed browser origin of the HTTP server.
    pub http: HttpLimits,
    /// Cancel window and lifetime of new orders (`CANCEL_TIMEOUT`, `ORDER_TIMEOUT`, in ms).
    pub order_policy: OrderPolicy,
    /// Currencies wallets are kept in (`CURRENCIES`, comma-separated; default `USD`).
    pub currencies: Vec<Currency>,
    pub auth: AuthSettings,
    pub providers: ProviderSettings,
    pub jobs: JobSettings,
    pub payments: PaymentSettings,
    pub notifications: crate::notifications::NotificationSettings,
}

/// How money comes in and goes out.
#[derive(Clone, Debug)]
pub struct PaymentSettings {
    /// `STRIPE_SECRET_KEY` + `STRIPE_WEBHOOK_SECRET` (both or neither), `STRIPE_API_BASE`.
    pub stripe: Option<crate::payments::stripe::StripeSettings>,
    /// Smallest and largest deposit (`MIN_RECHARGE_AMOUNT`, `MAX_RECHARGE_AMOUNT`).
    pub recharge_min: rust_decimal::Decimal,
    pub recharge_max: rust_decimal::Decimal,
    /// The sandbox payment method: instant made-up deposits, for development only
    /// (`APP_ENV=development`, the default with the embedded store).
    pub sandbox: bool,
    /// `UPI_VPA`: the UPI id users pay to; UPI recharges are on when it is set and are
    /// credited when an admin confirms them.
    pub upi_vpa: Option<String>,
    /// `TRON_ADDRESS` (+ `TRON_USDT_CONTRACT`, `TRONGRID_BASE_URL`, `TRONGRID_API_KEY`): USDT
    /// recharges, credited when the chain shows them confirmed.
    pub tron: Option<crate::payments::tron::TronSettings>,
}

/// Background jobs: the catalog sync and the order monitor.
#[derive(Clone, Copy, Debug)]
pub struct JobSettings {
    /// How often every provider's services, countries, costs and health are read
    /// (`CATALOG_SYNC_MS`, default 5 minutes).
    pub catalog_sync: Duration,
    /// How often the order monitor polls providers for open orders (`ORDER_POLL_MS`, default 10 s).
    pub order_poll: Duration,
    /// Open orders the monitor works on at once (`ORDER_POLL_CONCURRENCY`, default 8).
    pub order_poll_concurrency: usize,
    /// How long system log entries are kept (`SYSTEM_LOG_RETENTION_DAYS`, default 30).
    pub system_log_retention: Duration,
}

/// Upstream providers. With no provider keys, the sandbox is on so everything works locally.
#[derive(Clone, Debug)]
pub struct ProviderSettings {
    /// Whole-request timeout of every provider call (`PROVIDER_TIMEOUT_MS`).
    pub timeout: Duration,
    /// `SMSMAN_API_KEY` (and `SMSMAN_BASE_URL`).
    pub smsman: Option<(String, String)>,
    /// `TEXTVERIFIED_USERNAME` + `TEXTVERIFIED_API_KEY` (and `TEXTVERIFIED_BASE_URL`).
    pub textverified: Option<crate::providers::TextVerifiedSettings>,
    /// `TEXTVERIFIED_WEBHOOK_SECRET`: verifies TextVerified's webhooks.
    pub textverified_webhook_secret: Option<String>,
    /// `SANDBOX_ENABLED` (default: on when no provider key is set).
    pub sandbox: bool,
    /// `SANDBOX_CODE_DELAY_MS` (default 5000).
    pub sandbox_code_delay: Duration,
    /// `SANDBOX_BEHAVIOUR`: deliver, never_deliver, no_numbers or fail.
    pub sandbox_behaviour: crate::providers::SandboxBehaviour,
    /// The share of sandbox rentals that get an SMS (`SANDBOX_DELIVER_PERCENT`, 0-100).
    pub sandbox_deliver_percent: u8,
    /// `SANDBOX_COST`: what a sandbox number costs, in the first of `CURRENCIES` (default 0.10).
    pub sandbox_cost: rust_decimal::Decimal,
}

/// Secrets and limits of sign-in and API access.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Signs access and mailed tokens (`JWT_SECRET`, 32+ bytes). Unset with the embedded
    /// store: generated once and kept next to the database (see [`resolve_secrets`]).
    pub jwt_secret: Option<String>,
    /// Seals secrets at rest, such as TOTP secrets (`SECRETS_KEY`, 32+ bytes). Same default.
    pub secrets_key: Option<String>,
    /// Take the client address from `X-Forwarded-For` (`TRUST_FORWARDED_FOR=true`): only
    /// behind a proxy that sets it, or clients could pick their own rate-limit key.
    pub trust_forwarded_for: bool,
    /// General API requests per minute per user or key (`API_RATE_LIMIT_PER_MINUTE`).
    pub api_rate_per_minute: u32,
    /// Where links in mail point: `FRONTEND_URL`, else this server.
    pub link_base: String,
}

/// Shortest `JWT_SECRET` / `SECRETS_KEY` accepted, in bytes.
pub const SECRET_BYTES_MIN: usize = 32;

pub const BATCH_EVENTS_MAX_DEFAULT: usize = 2_000;
pub const APPEND_QUEUE_MAX_DEFAULT: usize = 10_000;
const _: () = assert!(APPEND_QUEUE_MAX_DEFAULT >= BATCH_EVENTS_MAX_DEFAULT, "the queue holds a full batch");

impl Settings {
    /// Reads `.env` if present, then the process environment (which wins).
    pub fn from_env() -> anyhow::Result<Settings> {
        let _ = dotenvy::dotenv();
        Settings::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Settings> {
        let database_url =
            get("DATABASE_URL").filter(|v| !v.is_empty()).unwrap_or_else(|| EMBEDDED_DATABASE_URL.into());
        if !(database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://")
            || database_url.starts_with("sqlite:"))
        {
            bail!("DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got {database_url:?})");
        }
        let mut store = StoreSettings::new(database_url);
        store.pool_size = parse(&get, "DATABASE_POOL_SIZE", store.pool_size, 1..=512)?;
        store.batch_events_max = parse(&get, "STORE_BATCH_EVENTS_MAX", store.batch_events_max, 1..=10_000)?;
        store.batch_wait_us = parse(&get, "STORE_BATCH_WAIT_US", store.batch_wait_us, 0..=100_000)?;
        store.append_queue_max = parse(&get, "STORE_APPEND_QUEUE_MAX", store.append_queue_max, 1..=1_000_000)?;
        let log_level = get("LOG_LEVEL").unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            bail!("LOG_LEVEL must be a tracing filter such as \"info\" or \"smsledger=debug,info\", got {log_level:?}");
        }
        let listen = get("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen.parse().with_context(|| format!("LISTEN_ADDR must be host:port, got {listen:?}"))?;
        let frontend_origin = match get("FRONTEND_URL").filter(|v| !v.is_empty()) {
            None => None,
            Some(url) => {
                let origin = url.trim_end_matches('/');
                let host = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
                if !host.is_some_and(|host| !host.is_empty() && !host.contains('/')) {
                    bail!("FRONTEND_URL must be an origin such as https://app.example.com, got {url:?}");
                }
                Some(
                    HeaderValue::from_str(origin)
                        .with_context(|| format!("FRONTEND_URL is not a valid origin: {url:?}"))?,
                )
            }
        };
        let http = HttpLimits {
            request_timeout: Duration::from_millis(parse(&get, "REQUEST_TIMEOUT_MS", 10_000, 100..=600_000)?),
            body_bytes_max: parse(&get, "REQUEST_BODY_BYTES_MAX", 64 * 1024, 1_024..=10 * 1024 * 1024)?,
            frontend_origin,
        };
        let order_policy = OrderPolicy {
            cancel_window_ms: parse(&get, "CANCEL_TIMEOUT", CANCEL_WINDOW_MS_DEFAULT, 0..=86_400_000)?,
            lifetime_ms: parse(&get, "ORDER_TIMEOUT", ORDER_LIFETIME_MS_DEFAULT, 1_000..=86_400_000)?,
        };
        if order_policy.cancel_window_ms >= order_policy.lifetime_ms {
            bail!(
                "CANCEL_TIMEOUT ({} ms) must be shorter than ORDER_TIMEOUT ({} ms)",
                order_policy.cancel_window_ms,
                order_policy.lifetime_ms
            );
        }
        let currencies = get("CURRENCIES").unwrap_or_else(|| "USD".into());
        let currencies = currencies
            .split(',')
            .map(|code| Currency::parse(code.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("CURRENCIES must be comma-separated codes such as USD,EUR: {e}"))?;
        let secret = |key: &str| -> anyhow::Result<Option<String>> {
            match get(key).filter(|v| !v.is_empty()) {
                Some(value) if value.len() < SECRET_BYTES_MIN => {
                    bail!("{key} must be at least {SECRET_BYTES_MIN} bytes (try: openssl rand -hex 32)")
                }
                value => Ok(value),
            }
        };
        let trust_forwarded_for = match get("TRUST_FORWARDED_FOR").as_deref().map(str::trim) {
            None | Some("" | "false" | "0") => false,
            Some("true" | "1") => true,
            Some(other) => bail!("TRUST_FORWARDED_FOR must be true or false, got {other:?}"),
        };
        let link_base = match &http.frontend_origin {
            Some(origin) => origin.to_str().unwrap_or_default().to_owned(),
            None => format!("http://{listen}"),
        };
        let auth = AuthSettings {
            jwt_secret: secret("JWT_SECRET")?,
            secrets_key: secret("SECRETS_KEY")?,
            trust_forwarded_for,
            api_rate_per_minute: parse(&get, "API_RATE_LIMIT_PER_MINUTE", 30, 1..=1_000_000)?,
            link_base,
        };
        let timeout = Duration::from_millis(parse(&get, "PROVIDER_TIMEOUT_MS", 10_000, 100..=120_000)?);
        let smsman = get("SMSMAN_API_KEY").filter(|v| !v.is_empty()).map(|token| {
            let base = get("SMSMAN_BASE_URL").unwrap_or_else(|| crate::providers::smsman::BASE_URL_DEFAULT.into());
            (base, token)
        });
        let textverified = match (get("TEXTVERIFIED_USERNAME"), get("TEXTVERIFIED_API_KEY")) {
            (Some(username), Some(api_key)) if !username.is_empty() && !api_key.is_empty() => {
                Some(crate::providers::TextVerifiedSettings {
                    base_url: get("TEXTVERIFIED_BASE_URL")
                        .unwrap_or_else(|| crate::providers::textverified::BASE_URL_DEFAULT.into()),
                    username,
                    api_key,
                    timeout,
                })
            }
            (None, None) => None,
            _ => bail!("TEXTVERIFIED_USERNAME and TEXTVERIFIED_API_KEY are set together or not at all"),
        };
        let sandbox = match get("SANDBOX_ENABLED").as_deref().map(str::trim) {
            None | Some("") => smsman.is_none() && textverified.is_none(),
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => bail!("SANDBOX_ENABLED must be true or false, got {other:?}"),
        };
        let sandbox_behaviour = match get("SANDBOX_BEHAVIOUR").as_deref().map(str::trim) {
            None | Some("" | "deliver") => crate::providers::SandboxBehaviour::Deliver,
            Some("never_deliver") => crate::providers::SandboxBehaviour::NeverDeliver,
            Some("no_numbers") => crate::providers::SandboxBehaviour::NoNumbers,
            Some("fail") => crate::providers::SandboxBehaviour::Fail,
            Some(other) => bail!("SANDBOX_BEHAVIOUR must be deliver, never_deliver, no_numbers or fail, got {other:?}"),
        };
        let sandbox_cost = get("SANDBOX_COST").unwrap_or_else(|| "0.10".into());
        let sandbox_cost = rust_decimal::Decimal::from_str_exact(sandbox_cost.trim())
            .ok()
            .filter(|cost| *cost > rust_decimal::Decimal::ZERO)
            .with_context(|| format!("SANDBOX_COST must be a positive amount such as 0.10, got {sandbox_cost:?}"))?;
        let providers = ProviderSettings {
            timeout,
            smsman,
            textverified,
            textverified_webhook_secret: get("TEXTVERIFIED_WEBHOOK_SECRET").filter(|v| !v.is_empty()),
            sandbox,
            sandbox_code_delay: Duration::from_millis(parse(&get, "SANDBOX_CODE_DELAY_MS", 5_000, 0..=3_600_000)?),
            sandbox_behaviour,
            sandbox_deliver_percent: parse(&get, "SANDBOX_DELIVER_PERCENT", 100, 0..=100)?,
            sandbox_cost,
        };
        let payments = payment_settings(&get, &store.database_url)?;
        let jobs = JobSettings {
            catalog_sync: Duration::from_millis(parse(&get, "CATALOG_SYNC_MS", 300_000, 1_000..=86_400_000)?),
            order_poll: Duration::from_millis(parse(&get, "ORDER_POLL_MS", 10_000, 10..=3_600_000)?),
            order_poll_concurrency: parse(&get, "ORDER_POLL_CONCURRENCY", 8, 1..=256)?,
            system_log_retention: Duration::from_secs(
                86_400 * parse(&get, "SYSTEM_LOG_RETENTION_DAYS", 30_u64, 1..=3_650)?,
            ),
        };
        let telegram = match (
            get("TELEGRAM_BOT_TOKEN").filter(|v| !v.is_empty()),
            get("TELEGRAM_CHAT_ID").filter(|v| !v.is_empty()),
        ) {
            (Some(token), Some(chat_id)) => Some(crate::notifications::telegram::TelegramSettings {
                base_url: get("TELEGRAM_API_BASE")
                    .unwrap_or_else(|| crate::notifications::telegram::API_BASE_DEFAULT.into()),
                token,
                chat_id,
                timeout: Duration::from_millis(parse(&get, "TELEGRAM_TIMEOUT_MS", 10_000, 100..=120_000)?),
            }),
            (None, None) => None,
            _ => bail!("TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID are set together or not at all"),
        };
        let smtp = match get("SMTP_URL").filter(|v| !v.is_empty()) {
            None => None,
            Some(url) => {
                let from = get("MAIL_FROM")
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("SMTP_URL is set: MAIL_FROM must say who mail is from"))?;
                let timeout = Duration::from_millis(parse(&get, "SMTP_TIMEOUT_MS", 10_000, 100..=120_000)?);
                let smtp = crate::notifications::mail::SmtpSettings { url, from, timeout };
                crate::notifications::mail::Smtp::new(&smtp).map_err(|e| anyhow::anyhow!(e))?;
                Some(smtp)
            }
        };
        let mut per_provider = Vec::new();
        for provider in ["smsman", "textverified"] {
            let key = format!("{}_LOW_BALANCE", provider.to_uppercase());
            if get(&key).is_some() {
                per_provider.push((provider, parse(&get, &key, Decimal::ZERO, Decimal::ZERO..=Decimal::MAX)?));
            }
        }
        let low_balance = crate::notifications::low_balance::Thresholds {
            default: parse(&get, "PROVIDER_LOW_BALANCE", Decimal::TEN, Decimal::ZERO..=Decimal::MAX)?,
            per_provider,
        };
        let notifications = crate::notifications::NotificationSettings {
            telegram,
            smtp,
            retry_base_ms: parse(&get, "NOTIFY_RETRY_BASE_MS", 1_000, 1..=3_600_000)?,
            low_balance,
        };
        Ok(Settings {
            notifications,
            payments,
            jobs,
            providers,
            auth,
            order_policy,
            currencies,
            http,
            store,
            database_read_url: get("DATABASE_READ_URL").filter(|v| !v.is_empty()),
            redis_url: get("REDIS_URL").filter(|v| !v.is_empty()),
            listen,
            log_level,
            projection_batch_max: parse(&get, "PROJECTION_BATCH_MAX", 4_000, 1..=100_000)?,
            projection_poll: Duration::from_millis(parse(&get, "PROJECTION_POLL_MS", 250, 1..=60_000)?),
        })
    }
}

fn payment_settings(get: &impl Fn(&str) -> Option<String>, database_url: &str) -> anyhow::Result<PaymentSettings> {
    let production = match get("APP_ENV").as_deref().map(str::trim) {
        None | Some("") => !database_url.starts_with("sqlite:"),
        Some("production") => true,
        Some("development") => false,
        Some(other) => bail!("APP_ENV must be development or production, got {other:?}"),
    };
    let amount = |key: &str, default: &str| -> anyhow::Result<rust_decimal::Decimal> {
        let text = get(key).filter(|v| !v.is_empty()).unwrap_or_else(|| default.into());
        rust_decimal::Decimal::from_str_exact(text.trim())
            .ok()
            .filter(|amount| *amount > rust_decimal::Decimal::ZERO)
            .with_context(|| format!("{key} must be a positive amount such as {default}, got {text:?}"))
    };
    let (recharge_min, recharge_max) = (amount("MIN_RECHARGE_AMOUNT", "1")?, amount("MAX_RECHARGE_AMOUNT", "10000")?);
    if recharge_min > recharge_max {
        bail!("MIN_RECHARGE_AMOUNT ({recharge_min}) must not be above MAX_RECHARGE_AMOUNT ({recharge_max})");
    }
    let stripe = match (
        get("STRIPE_SECRET_KEY").filter(|v| !v.is_empty()),
        get("STRIPE_WEBHOOK_SECRET").filter(|v| !v.is_empty()),
    ) {
        (Some(secret_key), Some(webhook_secret)) => Some(crate::payments::stripe::StripeSettings {
            base_url: get("STRIPE_API_BASE").unwrap_or_else(|| crate::payments::stripe::BASE_URL_DEFAULT.into()),
            secret_key,
            webhook_secret,
            timeout: Duration::from_millis(parse(get, "STRIPE_TIMEOUT_MS", 10_000, 100..=120_000)?),
        }),
        (None, None) => None,
        _ => bail!("STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are set together or not at all"),
    };
    let tron = get("TRON_ADDRESS").filter(|v| !v.is_empty()).map(|address| -> anyhow::Result<_> {
        Ok(crate::payments::tron::TronSettings {
            base_url: get("TRONGRID_BASE_URL").unwrap_or_else(|| crate::payments::tron::BASE_URL_DEFAULT.into()),
            api_key: get("TRONGRID_API_KEY").filter(|v| !v.is_empty()),
            address,
            contract: get("TRON_USDT_CONTRACT").unwrap_or_else(|| crate::payments::tron::USDT_CONTRACT_DEFAULT.into()),
            timeout: Duration::from_millis(parse(get, "TRONGRID_TIMEOUT_MS", 10_000, 100..=120_000)?),
        })
    });
    Ok(PaymentSettings {
        stripe,
        recharge_min,
        recharge_max,
        sandbox: !production,
        upi_vpa: get("UPI_VPA").filter(|v| !v.is_empty()),
        tron: tron.transpose()?,
    })
}

/// `(JWT_SECRET, SECRETS_KEY)`: as configured, or for the embedded store, generated on first
/// start and kept in `secrets.env` beside the database file (mode 0600), so tokens and sealed
/// TOTP secrets survive restarts. PostgreSQL deployments must set both.
pub fn resolve_secrets(settings: &Settings) -> anyhow::Result<(String, String)> {
    if let (Some(jwt), Some(key)) = (&settings.auth.jwt_secret, &settings.auth.secrets_key) {
        return Ok((jwt.clone(), key.clone()));
    }
    let Some(path) = settings.store.database_url.strip_prefix("sqlite:") else {
        bail!("JWT_SECRET and SECRETS_KEY must be set (32+ bytes each; try: openssl rand -hex 32) with PostgreSQL");
    };
    let path = std::path::Path::new(path.trim_start_matches("//").split('?').next().unwrap_or_default());
    let file = path.parent().unwrap_or(std::path::Path::new(".")).join("secrets.env");
    let mut saved = std::collections::HashMap::new();
    if let Ok(text) = std::fs::read_to_string(&file) {
        for line in text.lines() {
            if let Some((key, value)) = line.split_once('=') {
                saved.insert(key.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
    let mut changed = false;
    let mut pick = |key: &str, configured: &Option<String>| -> String {
        if let Some(value) = configured {
            return value.clone();
        }
        saved
            .entry(key.to_owned())
            .or_insert_with(|| {
                changed = true;
                crate::identity::secrets::random_token(32)
            })
            .clone()
    };
    let jwt = pick("JWT_SECRET", &settings.auth.jwt_secret);
    let key = pick("SECRETS_KEY", &settings.auth.secrets_key);
    if changed {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let text: String = saved.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        write_private(&file, &text).with_context(|| format!("cannot write {}", file.display()))?;
        tracing::warn!(file = %file.display(), "config.secrets_generated: set JWT_SECRET and SECRETS_KEY in production");
    }
    Ok((jwt, key))
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())
}

fn parse<T>(
    get: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> anyhow::Result<T>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let Some(text) = get(key) else { return Ok(default) };
    let value: T = text.trim().parse().map_err(|_| anyhow::anyhow!("{key} must be a number, got {text:?}"))?;
    if !range.contains(&value) {
        bail!("{key} must be between {} and {}, got {value}", range.start(), range.end());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> anyhow::Result<Settings> {
        Settings::from_lookup(|key| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn defaults_to_the_embedded_store() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.store.database_url, EMBEDDED_DATABASE_URL);
        assert_eq!(s.listen.port(), 8080);
    }

    #[test]
    fn bad_values_are_named() {
        let error = settings(&[("DATABASE_POOL_SIZE", "lots")]).unwrap_err().to_string();
        assert_eq!(error, "DATABASE_POOL_SIZE must be a number, got \"lots\"");
        let error = settings(&[("DATABASE_POOL_SIZE", "0")]).unwrap_err().to_string();
        assert_eq!(error, "DATABASE_POOL_SIZE must be between 1 and 512, got 0");
        assert!(settings(&[("DATABASE_URL", "mysql://x")]).unwrap_err().to_string().contains("DATABASE_URL"));
        assert!(settings(&[("LISTEN_ADDR", "nope")]).unwrap_err().to_string().contains("LISTEN_ADDR"));
        assert!(settings(&[("LOG_LEVEL", "info,=[")]).unwrap_err().to_string().contains("LOG_LEVEL"));
        for bad in ["app.example.com", "http://", "https:///x"] {
            assert!(settings(&[("FRONTEND_URL", bad)]).unwrap_err().to_string().contains("FRONTEND_URL"), "{bad}");
        }
        assert!(
            settings(&[("FRONTEND_URL", "https://app.example.com/login")])
                .unwrap_err()
                .to_string()
                .contains("FRONTEND_URL")
        );
        let ok = settings(&[("FRONTEND_URL", "https://app.example.com/")]).unwrap();
        assert_eq!(ok.http.frontend_origin.unwrap(), "https://app.example.com");
        assert!(
            settings(&[("REQUEST_BODY_BYTES_MAX", "10")]).unwrap_err().to_string().contains("REQUEST_BODY_BYTES_MAX")
        );
        assert!(settings(&[("JWT_SECRET", "short")]).unwrap_err().to_string().contains("JWT_SECRET"));
        assert!(settings(&[("TRUST_FORWARDED_FOR", "maybe")]).unwrap_err().to_string().contains("TRUST_FORWARDED_FOR"));
        for (key, bad) in [("SANDBOX_BEHAVIOUR", "sometimes"), ("SANDBOX_COST", "-1"), ("SANDBOX_ENABLED", "yes")] {
            assert!(settings(&[(key, bad)]).unwrap_err().to_string().contains(key), "{key}");
        }
        let half = settings(&[("TEXTVERIFIED_USERNAME", "ann")]).unwrap_err().to_string();
        assert!(half.contains("TEXTVERIFIED_API_KEY"), "{half}");
    }

    #[test]
    fn the_sandbox_is_on_until_a_provider_key_is_set() {
        assert!(settings(&[]).unwrap().providers.sandbox);
        let smsman = settings(&[("SMSMAN_API_KEY", "t")]).unwrap().providers;
        assert!(!smsman.sandbox);
        assert_eq!(smsman.smsman.unwrap().0, crate::providers::smsman::BASE_URL_DEFAULT);
        assert!(settings(&[("SMSMAN_API_KEY", "t"), ("SANDBOX_ENABLED", "true")]).unwrap().providers.sandbox);
    }

    #[test]
    fn secrets_are_required_with_postgres_and_generated_once_for_the_embedded_store() {
        let pg = settings(&[("DATABASE_URL", "postgres://localhost/x")]).unwrap();
        assert!(resolve_secrets(&pg).unwrap_err().to_string().contains("JWT_SECRET"));
        let dir = std::env::temp_dir().join(format!("smsledger-secrets-{}", uuid::Uuid::now_v7()));
        let url = format!("sqlite://{}/db.sqlite", dir.display());
        let embedded = settings(&[("DATABASE_URL", &url)]).unwrap();
        let first = resolve_secrets(&embedded).unwrap();
        assert!(first.0.len() >= SECRET_BYTES_MIN && first.1.len() >= SECRET_BYTES_MIN && first.0 != first.1);
        assert_eq!(resolve_secrets(&embedded).unwrap(), first, "kept across restarts");
        let configured = settings(&[("DATABASE_URL", &url), ("JWT_SECRET", &"j".repeat(32))]).unwrap();
        assert_eq!(resolve_secrets(&configured).unwrap(), ("j".repeat(32), first.1));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
