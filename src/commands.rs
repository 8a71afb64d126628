//! What each CLI command does.

use std::io::IsTerminal;

use anyhow::{Context, bail};
use domain::Account;
use indicatif::{ProgressBar, ProgressStyle};
use projections::ProjectionName;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::http::{AppState, router};
use crate::rate_limit::RateLimiter;
use crate::store::EventStore;
use crate::{point_in_time, projection, verify as audit};

/// Structured logs: JSON when stdout is not a terminal, human-readable when it is.
pub fn init_tracing(level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::io::stdout().is_terminal() {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

async fn open(settings: &Settings) -> anyhow::Result<EventStore> {
    EventStore::open(&settings.store)
        .await
        .with_context(|| format!("cannot open the store at {}", redact(&settings.store.database_url)))
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***@{}", &url[..scheme], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let store = open(&settings).await?;
    let targets = settings.notifications.targets();
    projection::spawn_all_live(&store, targets, settings.projection_batch_max, settings.projection_poll);
    let listener =
        TcpListener::bind(settings.listen).await.with_context(|| format!("cannot listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, engine = store.engine().name(), "smsledger.listening");
    if std::io::stdout().is_terminal() {
        println!(
            "smsledger is listening on http://{address} (store: {}); try: curl http://{address}/health",
            store.engine().name()
        );
    }
    let limiter = match &settings.redis_url {
        Some(url) => RateLimiter::with_redis_lazy(url).context("REDIS_URL is not a valid Redis URL")?,
        None => RateLimiter::in_process(),
    };
    let (jwt_secret, secrets_key) = crate::config::resolve_secrets(&settings)?;
    let secrets = crate::http::Secrets { jwt_secret, secrets_key };
    let mailer = crate::identity::Mailer::for_settings(&settings.notifications, store.engine());
    let state = AppState::new(store, limiter, &settings, &secrets, mailer);
    state.start_jobs(&settings.jobs);
    crate::http::serve(listener, router(state, &settings.http), shutdown_signal()).await?;
    tracing::info!("smsledger.stopped");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        () = terminate => {}
    }
}

pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let store = open(settings).await?;
    println!("migrated {} store at {}", store.engine().name(), redact(&settings.store.database_url));
    Ok(())
}

pub async fn rebuild(settings: &Settings, name: Option<&str>) -> anyhow::Result<()> {
    let targets: Vec<ProjectionName> = match name {
        None => ProjectionName::ALL.to_vec(),
        Some(name) => match ProjectionName::parse(name) {
            Some(projection) => vec![projection],
            None if projection::views::View::parse(name).is_some() => vec![],
            None => bail!("unknown projection {name:?}; choose balances, statement, trial_balance, orders or deposits"),
        },
    };
    let store = open(settings).await?;
    let head = store.head().await?.position;
    for projection in targets {
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new(head as u64) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_message(projection.as_str());
        let position = projection::rebuild(store.engine(), projection, settings.projection_batch_max, &|p| {
            bar.set_position(p as u64)
        })
        .await?;
        bar.finish_and_clear();
        println!("rebuilt {projection} to position {position}");
    }
    for view in projection::views::View::ALL {
        if name.is_none_or(|name| name == view.name()) {
            let batch = settings.projection_batch_max;
            let position = projection::views::rebuild(store.engine(), view, batch, &|_| {}).await?;
            println!("rebuilt {} to position {position}", view.name());
        }
    }
    Ok(())
}

pub async fn status(settings: &Settings) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let head = store.head().await?.position;
    println!("{:<14} {:>12} {:>10}", "projection", "position", "lag");
    for status in projection::status(store.engine(), head).await? {
        println!("{:<14} {:>12} {:>10}", status.name, status.position, status.lag);
    }
    println!("{:<14} {:>12}", "log head", head);
    Ok(())
}

/// Prints the replay report; `Ok(false)` when the ledger does not verify.
pub async fn verify(settings: &Settings) -> anyhow::Result<bool> {
    let store = open(settings).await?;
    let report = audit::verify(&store).await?;
    println!("events replayed   {}", report.events);
    println!("streams           {}", report.streams);
    println!("ledger events     {}", report.ledger_events);
    println!("open holds        {}", report.open_holds);
    println!("wallet snapshots  {} compared with their events", report.snapshots);
    for (currency, total) in &report.trial_totals {
        println!("trial balance     {currency} sums to {total}");
    }
    for (projection, position) in &report.projections {
        println!("projection        {projection} compared up to position {position}");
    }
    println!("projection        orders compared up to position {}", report.orders_view);
    println!("projection        deposits compared up to position {}", report.deposits_view);
    println!("projection        analytics compared up to position {}", report.analytics_view);
    println!("projection        users compared up to position {}", report.users_view);
    if report.is_ok() {
        println!("OK: hash chain, aggregates, snapshots and projections agree with the log");
        return Ok(true);
    }
    for problem in &report.problems {
        match problem.position {
            Some(position) => println!("MISMATCH at position {position}: {}", problem.what),
            None => println!("MISMATCH: {}", problem.what),
        }
    }
    if let Some(first) = report.problems.iter().find_map(|p| p.position) {
        println!("first bad position: {first}");
    }
    Ok(false)
}

pub async fn balance(settings: &Settings, account: &str, at: Option<&str>) -> anyhow::Result<()> {
    let account: Account = account.parse()?;
    let store = open(settings).await?;
    let position = match at {
        None => store.head().await?.position,
        Some(text) if text.bytes().all(|b| b.is_ascii_digit()) => text.parse().context("--at position is too large")?,
        Some(text) => {
            let instant = chrono::DateTime::parse_from_rfc3339(text)
                .with_context(|| format!("--at must be a position or an RFC 3339 instant, got {text:?}"))?;
            store.position_at(instant.with_timezone(&chrono::Utc)).await?
        }
    };
    let balances = point_in_time::account_balance(&store, &account, position).await?;
    println!("{account} at position {position}:");
    if balances.is_empty() {
        println!("  no postings");
    }
    for (currency, amount) in balances {
        println!("  {amount} {currency}");
    }
    Ok(())
}

/// `smsledger export`: streams postings, orders or deposits to stdout a page at a time; the
/// totals close it.
pub async fn export(
    settings: &Settings,
    from: Option<&str>,
    to: Option<&str>,
    format: &str,
    kind: &str,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let format = crate::export::Format::parse(format)
        .with_context(|| format!("--format must be csv or jsonl, got {format:?}"))?;
    let kind = crate::export::Kind::parse(kind)
        .with_context(|| format!("--kind must be postings, orders or deposits, got {kind:?}"))?;
    let from = from.map(crate::export::Bound::parse).transpose()?;
    let to = to.map(crate::export::Bound::parse).transpose()?;
    let store = open(settings).await?;
    crate::export::catch_up(&store, kind).await?;
    let (mut chunks, task) = crate::export::spawn(store, kind, from, to, format).await?;
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = chunks.recv().await {
        stdout.write_all(chunk.as_bytes())?;
    }
    stdout.flush()?;
    task.await.context("the export task stopped")??;
    Ok(())
}

/// `smsledger admin create --email E [--password-stdin]`: bootstraps an admin. The admin then
/// signs in, enrols TOTP (`POST /api/v1/auth/2fa/setup`, `/enable`) and signs in again with a
/// code; admin routes refuse sessions without one.
pub async fn create_admin(settings: &Settings, email: &str, password_stdin: bool) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let (jwt_secret, secrets_key) = crate::config::resolve_secrets(settings)?;
    let identity = crate::identity::Identity::new(
        store,
        &jwt_secret,
        &secrets_key,
        crate::identity::Mailer::Log,
        &settings.auth.link_base,
    );
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).context("cannot read the password from stdin")?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (crate::identity::secrets::random_token(18), true)
    };
    let caller = crate::identity::Caller { request_id: Some("cli:admin-create".into()), ..Default::default() };
    let (user, created) = identity
        .make_admin(email, &password, &caller)
        .await
        .map_err(|error| anyhow::anyhow!("{error}{}", problems(&error)))?;
    if !created {
        println!("{} ({}) is now an admin; their password is unchanged.", user.email, user.id);
    } else if generated {
        println!("created admin {} ({})\npassword (shown once): {password}", user.email, user.id);
    } else {
        println!("created admin {} ({})", user.email, user.id);
    }
    println!("next: sign in, enrol TOTP with POST /api/v1/auth/2fa/setup and /2fa/enable, then sign in with a code.");
    Ok(())
}

fn problems(error: &crate::identity::AuthError) -> String {
    match error {
        crate::identity::AuthError::Invalid { details, .. } => format!(": {details}"),
        _ => String::new(),
    }
}
