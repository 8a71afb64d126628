//! Notifications: the notifier folds the log into in-app notifications and an outbox of admin
//! alerts (with its checkpoint, so nothing is derived twice or lost on a crash); the sender
//! delivers the outbox at least once, retrying with capped backoff, on one instance at a time.

pub mod derive;
pub mod telegram;

use std::time::Duration;

use crate::orders::monitor::Leader;
use crate::projection::notifications as rows;
use crate::store::system_log::SystemLog;
use crate::store::{Engine, EventStore};

/// The sender's PostgreSQL advisory lock (one sending instance).
pub const SENDER_LOCK_KEY: i64 = 0x736d_736d_6e6f_7469;
/// Messages sent per round at most.
const SEND_BATCH_MAX: i64 = 20;
/// Longest wait between two attempts at one message.
const RETRY_WAIT_MAX_MS: i64 = 3_600_000;

/// Where admin alerts go (`TELEGRAM_BOT_TOKEN`, `TELEGRAM_CHAT_ID`, `TELEGRAM_API_BASE`).
#[derive(Clone, Debug)]
pub struct NotificationSettings {
    pub telegram: Option<telegram::TelegramSettings>,
    /// First wait before a failed message is tried again (`NOTIFY_RETRY_BASE_MS`); it doubles.
    pub retry_base_ms: i64,
}

/// Keeps the notifier folding the log, as the projectors do.
pub fn spawn_notifier(store: &EventStore, settings: &NotificationSettings, batch_max: u32, poll: Duration) {
    let engine = store.engine().clone();
    let chat = settings.telegram.as_ref().map(|t| t.chat_id.clone());
    let batch = move || {
        let (engine, chat) = (engine.clone(), chat.clone());
        async move { rows::run_batch(&engine, chat.as_deref(), batch_max).await }
    };
    let head = store.subscribe();
    tokio::spawn(async move { crate::projection::keep_running(rows::NAME, batch, head, poll).await });
}

/// The wait before attempt `attempts + 1` of a failed message.
pub fn retry_wait_ms(base_ms: i64, attempts: i32) -> i64 {
    let doublings = u32::try_from(attempts.clamp(0, 30)).unwrap_or(30);
    base_ms.saturating_mul(1_i64 << doublings).min(RETRY_WAIT_MAX_MS)
}

/// Sends what is due once; returns (sent, failed).
pub async fn send_due(
    engine: &Engine,
    client: &telegram::Telegram,
    retry_base_ms: i64,
    log: &SystemLog,
) -> Result<(usize, usize), sqlx::Error> {
    let now = chrono::Utc::now().timestamp_millis();
    let (mut sent, mut failed) = (0, 0);
    for message in rows::due_messages(engine, now, SEND_BATCH_MAX).await? {
        let result = match message.channel.as_str() {
            "telegram" => client.send(&message.recipient, &message.body).await,
            other => Err(telegram::TelegramError::Refused(format!("no channel {other}"))),
        };
        let now = chrono::Utc::now().timestamp_millis();
        let recorded = match result {
            Ok(()) => {
                sent += 1;
                Ok(now)
            }
            Err(error) => {
                failed += 1;
                log.record("provider", "telegram", "warn", format!("message {} not sent: {error}", message.id));
                Err((error.to_string(), now + retry_wait_ms(retry_base_ms, message.attempts)))
            }
        };
        rows::attempted(engine, message.id, recorded).await?;
    }
    Ok((sent, failed))
}

/// Runs the sender while this instance holds its lock: a round every `every`.
pub fn spawn_sender(store: &EventStore, settings: &NotificationSettings, every: Duration, log: SystemLog) {
    let Some(telegram) = settings.telegram.clone() else { return };
    let (engine, retry_base_ms) = (store.engine().clone(), settings.retry_base_ms);
    tokio::spawn(async move {
        let client = telegram::Telegram::new(telegram);
        loop {
            let mut leader = match Leader::try_acquire_key(&engine, SENDER_LOCK_KEY).await {
                Ok(Some(leader)) => leader,
                Ok(None) | Err(_) => {
                    tokio::time::sleep(every).await;
                    continue;
                }
            };
            while leader.still_leads().await {
                if let Err(error) = send_due(&engine, &client, retry_base_ms, &log).await {
                    tracing::warn!(%error, "notifications.send_failed");
                }
                tokio::time::sleep(every).await;
            }
        }
    });
}
