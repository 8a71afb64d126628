//! Notifications: the notifier folds the log into in-app notifications and an outbox of admin
//! alerts and mailed receipts (with its checkpoint, so nothing is derived twice or lost on a
//! crash); requests (sign-in links) and jobs (low provider balance) queue into the same outbox;
//! the sender delivers it at least once, retrying with capped backoff, on one instance at a time.

pub mod derive;
pub mod low_balance;
pub mod mail;
pub mod telegram;

use std::time::Duration;

use crate::orders::monitor::Leader;
use crate::projection::notifications::{self as rows, Outgoing, Targets};
use crate::store::system_log::SystemLog;
use crate::store::{Engine, EventStore};

/// The sender's PostgreSQL advisory lock (one sending instance).
pub const SENDER_LOCK_KEY: i64 = 0x736d_736d_6e6f_7469;
/// Messages sent per round at most.
const SEND_BATCH_MAX: i64 = 20;
/// Longest wait between two attempts at one message.
const RETRY_WAIT_MAX_MS: i64 = 3_600_000;

/// Where admin alerts go (`TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID`, `TELEGRAM_API_BASE`) and
/// how mail is sent (`SMTP_URL`, `MAIL_FROM`).
#[derive(Clone, Debug)]
pub struct NotificationSettings {
    pub telegram: Option<telegram::TelegramSettings>,
    pub smtp: Option<mail::SmtpSettings>,
    /// First wait before a failed message is tried again (`NOTIFY_RETRY_BASE_MS`); it doubles.
    pub retry_base_ms: i64,
    /// Below what balance at a provider the admins are alerted.
    pub low_balance: low_balance::Thresholds,
}

impl NotificationSettings {
    /// What the notifier derives into the outbox under these settings.
    pub fn targets(&self) -> Targets {
        Targets { admin_chat: self.telegram.as_ref().map(|t| t.chat_id.clone()), mail: self.smtp.is_some() }
    }
}

/// The channels messages leave by; a message for a channel not configured waits.
pub struct Senders {
    pub telegram: Option<telegram::Telegram>,
    pub smtp: Option<mail::Smtp>,
}

impl Senders {
    pub fn new(settings: &NotificationSettings) -> Result<Senders, String> {
        let smtp = settings.smtp.as_ref().map(mail::Smtp::new).transpose()?;
        Ok(Senders { telegram: settings.telegram.clone().map(telegram::Telegram::new), smtp })
    }

    /// Delivers one message; why not, as text.
    async fn deliver(&self, engine: &Engine, message: &Outgoing) -> Result<(), String> {
        match (message.channel.as_str(), &self.telegram, &self.smtp) {
            ("telegram", Some(client), _) => {
                client.send(&message.recipient, &message.body).await.map_err(|e| e.to_string())
            }
            ("email", _, Some(client)) => {
                let address = match message.recipient.strip_prefix("user:") {
                    None => message.recipient.clone(),
                    Some(user) => {
                        let user = user.parse().map_err(|_| format!("no user {user}"))?;
                        let found = rows::user_address(engine, user).await.map_err(|e| e.to_string())?;
                        found.ok_or("the user's address is not in the users directory yet")?
                    }
                };
                client.send(&address, &message.subject, &message.body).await
            }
            (channel, _, _) => Err(format!("the {channel} channel is not configured")),
        }
    }
}

/// The wait before attempt `attempts + 1` of a failed message.
pub fn retry_wait_ms(base_ms: i64, attempts: i32) -> i64 {
    let doublings = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    base_ms.saturating_mul(1_i64 << doublings).min(RETRY_WAIT_MAX_MS)
}

/// Sends what is due once; returns (sent, failed).
pub async fn send_due(
    engine: &Engine,
    senders: &Senders,
    retry_base_ms: i64,
    log: &SystemLog,
) -> Result<(usize, usize), sqlx::Error> {
    let now = chrono::Utc::now().timestamp_millis();
    let (mut sent, mut failed) = (0, 0);
    for message in rows::due_messages(engine, now, SEND_BATCH_MAX).await? {
        let result = senders.deliver(engine, &message).await;
        let now = chrono::Utc::now().timestamp_millis();
        let recorded = match result {
            Ok(()) => {
                sent += 1;
                Ok(now)
            }
            Err(error) => {
                failed += 1;
                let what = format!("message {} not sent: {error}", message.id);
                log.record("provider", if message.channel == "email" { "smtp" } else { "telegram" }, "warn", what);
                Err((error, now + retry_wait_ms(retry_base_ms, message.attempts)))
            }
        };
        rows::attempted(engine, message.id, recorded).await?;
    }
    Ok((sent, failed))
}

/// Runs the sender while this instance holds its lock: a round every `every`. Nothing runs
/// when no channel is configured.
pub fn spawn_sender(store: &EventStore, settings: &NotificationSettings, every: Duration, log: SystemLog) {
    if settings.telegram.is_none() && settings.smtp.is_none() {
        return;
    }
    let senders = match Senders::new(settings) {
        Ok(senders) => senders,
        Err(error) => return tracing::error!(%error, "notifications.sender_not_started"),
    };
    let (engine, retry_base_ms) = (store.engine().clone(), settings.retry_base_ms);
    tokio::spawn(async move {
        loop {
            let mut leader = match Leader::try_acquire_key(&engine, SENDER_LOCK_KEY).await {
                Ok(Some(leader)) => leader,
                Ok(None) | Err(_) => {
                    tokio::time::sleep(every).await;
                    continue;
                }
            };
            while leader.still_leads().await {
                if let Err(error) = send_due(&engine, &senders, retry_base_ms, &log).await {
                    tracing::warn!(%error, "notifications.send_failed");
                }
                tokio::time::sleep(every).await;
            }
        }
    });
}
