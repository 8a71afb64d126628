//! The cleanup job: once a day, system log entries older than the retention are deleted. The
//! event log is never deleted; sessions and refresh tokens end by time (their expiry is in
//! their events, and user state forgets expired sessions), so there is nothing of them to remove.

use std::time::Duration;

use crate::store::Engine;
use crate::store::system_log::{self, SystemLog};

/// How often the cleanup runs.
pub const CLEANUP_EVERY: Duration = Duration::from_secs(24 * 60 * 60);

/// Deletes system log entries older than `retention`; returns how many.
pub async fn run_once(engine: &Engine, log: &SystemLog, retention: Duration) -> Result<u64, sqlx::Error> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let before = chrono::Utc::now().checked_sub_signed(retention).map_or(i64::MIN, |t| t.timestamp_micros());
    let deleted = system_log::delete_before(engine, before).await?;
    log.record("job", "cleanup", "info", format!("{deleted} system log entries older than the retention deleted"));
    Ok(deleted)
}

pub fn spawn(engine: Engine, log: SystemLog, retention: Duration) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(CLEANUP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            if let Err(error) = run_once(&engine, &log, retention).await {
                tracing::warn!(%error, "cleanup.failed");
                log.record("job", "cleanup", "error", format!("cleanup failed: {error}"));
            }
        }
    });
}
