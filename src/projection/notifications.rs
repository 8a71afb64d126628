//! The notifier's tables: in-app notifications and the outbox, written with the notifier's
//! checkpoint (so a notice is derived once, and never lost on a crash), and what the sender and
//! the notification routes read and mark.

use sqlx::Row;
use uuid::Uuid;

use super::page::Slice;
use super::runner::ProjectionError;
use super::sink;
use crate::notifications::derive::{Notice, notices};
use crate::store::Engine;

/// The notifier's checkpoint name.
pub const NAME: &str = "notifier";

#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct InApp {
    pub id: i64,
    /// deposit, reversal, refund, withdrawal or adjustment.
    pub kind: String,
    pub message: String,
    /// RFC 3339.
    pub created_at: String,
    pub read: bool,
}

/// A message waiting in the outbox. `recipient`: a Telegram chat id, an email address, or
/// `user:{id}` for a user's own address, looked up when the mail is sent.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub id: i64,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub attempts: i32,
}

/// Where the notifier puts what it derives: admin alerts to this Telegram chat (none: not
/// kept), receipts by mail (only when mail can be sent).
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub admin_chat: Option<String>,
    pub mail: bool,
}

/// A message queued by a request or a job rather than derived from an event.
#[derive(Clone, Debug)]
pub struct Queued {
    pub channel: &'static str,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// Queued once per key, ever (a job's alert of the day, say); none: always queued.
    pub dedupe: Option<String>,
}

/// A user's recipient in the outbox, resolved to their address when sent.
pub fn user_recipient(user: domain::UserId) -> String {
    format!("user:{user}")
}

fn millis(micros: i64) -> i64 {
    micros.div_euclid(1_000)
}

macro_rules! engine_notifications {
    ($module:ident, $connection:ty) => {
        pub mod $module {
            use super::*;

            /// Derives a page's notices and stores them; `admin_chat`: where admin alerts go
            /// (none: they are not kept).
            pub async fn apply_page(
                connection: &mut $connection,
                page: Slice<'_>,
                targets: &Targets,
            ) -> Result<(), ProjectionError> {
                for (event, decoded) in page.iter() {
                    let decoded = decoded?;
                    let at = millis(event.recorded_at.timestamp_micros());
                    for notice in notices(decoded) {
                        match (notice, targets.admin_chat.as_deref()) {
                            (Notice::InApp { user, kind, message }, _) => {
                                sqlx::query(
                                    "INSERT INTO notifications (position, user_id, kind, message, created_at) \
                                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (position, user_id) DO NOTHING",
                                )
                                .bind(event.position)
                                .bind(user.0)
                                .bind(kind)
                                .bind(message)
                                .bind(at)
                                .execute(&mut *connection)
                                .await?;
                            }
                            (Notice::Admin { message }, Some(chat)) => {
                                sqlx::query(
                                    "INSERT INTO outbox (position, channel, recipient, body, next_attempt_at) \
                                     VALUES ($1, 'telegram', $2, $3, $4) ON CONFLICT (position, channel, recipient) DO NOTHING",
                                )
                                .bind(event.position)
                                .bind(chat)
                                .bind(message)
                                .bind(at)
                                .execute(&mut *connection)
                                .await?;
                            }
                            (Notice::Mail { user, subject, body }, _) if targets.mail => {
                                sqlx::query(
                                    "INSERT INTO outbox (position, channel, recipient, subject, body, next_attempt_at) \
                                     VALUES ($1, 'email', $2, $3, $4, $5) ON CONFLICT (position, channel, recipient) DO NOTHING",
                                )
                                .bind(event.position)
                                .bind(user_recipient(user))
                                .bind(subject)
                                .bind(body)
                                .bind(at)
                                .execute(&mut *connection)
                                .await?;
                            }
                            (Notice::Admin { .. }, None) | (Notice::Mail { .. }, _) => {}
                        }
                    }
                }
                Ok(())
            }

            /// A user's notifications, newest first; and how many match.
            pub async fn for_user(
                connection: &mut $connection,
                user: Uuid,
                unread_only: bool,
                offset: i64,
                limit: i64,
            ) -> Result<(Vec<InApp>, i64), sqlx::Error> {
                let filter = if unread_only { "AND read_at IS NULL" } else { "" };
                let count = format!("SELECT count(*) FROM notifications WHERE user_id = $1 {filter}");
                let total: (i64,) = sqlx::query_as(sink::sql(count)).bind(user).fetch_one(&mut *connection).await?;
                let text = format!(
                    "SELECT id, kind, message, created_at, read_at FROM notifications WHERE user_id = $1 {filter} \
                     ORDER BY id DESC LIMIT $2 OFFSET $3"
                );
                let rows = sqlx::query(sink::sql(text)).bind(user).bind(limit).bind(offset).fetch_all(&mut *connection).await?;
                let found = rows
                    .iter()
                    .map(|row| {
                        let created: i64 = row.try_get(3)?;
                        Ok(InApp {
                            id: row.try_get(0)?,
                            kind: row.try_get(1)?,
                            message: row.try_get(2)?,
                            created_at: crate::identity::rfc3339(domain::Timestamp(created)),
                            read: row.try_get::<Option<i64>, _>(4)?.is_some(),
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()?;
                Ok((found, total.0))
            }

            /// Marks one of the user's notifications (or all, with `None`) read; how many changed.
            pub async fn mark_read(
                connection: &mut $connection,
                user: Uuid,
                id: Option<i64>,
                now_ms: i64,
            ) -> Result<u64, sqlx::Error> {
                let done = sqlx::query(
                    "UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL AND ($3 IS NULL OR id = $3)",
                )
                .bind(now_ms)
                .bind(user)
                .bind(id)
                .execute(&mut *connection)
                .await?;
                Ok(done.rows_affected())
            }

            /// Queues a message now; false when its dedupe key was queued before.
            pub async fn queue(connection: &mut $connection, message: &Queued, now_ms: i64) -> Result<bool, sqlx::Error> {
                let done = sqlx::query(
                    "INSERT INTO outbox (channel, recipient, subject, body, next_attempt_at, dedupe) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                )
                .bind(message.channel)
                .bind(&message.recipient)
                .bind(&message.subject)
                .bind(&message.body)
                .bind(now_ms)
                .bind(&message.dedupe)
                .execute(&mut *connection)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            /// The address of a user, from the users directory.
            pub async fn address(connection: &mut $connection, user: Uuid) -> Result<Option<String>, sqlx::Error> {
                let found: Option<(String,)> = sqlx::query_as("SELECT email FROM users_directory WHERE user_id = $1")
                    .bind(user)
                    .fetch_optional(&mut *connection)
                    .await?;
                Ok(found.map(|(email,)| email))
            }

            /// Messages due for sending, oldest first.
            pub async fn due(connection: &mut $connection, now_ms: i64, limit: i64) -> Result<Vec<Outgoing>, sqlx::Error> {
                let rows = sqlx::query(
                    "SELECT id, channel, recipient, subject, body, attempts FROM outbox \
                     WHERE sent_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
                )
                .bind(now_ms)
                .bind(limit)
                .fetch_all(&mut *connection)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok(Outgoing {
                            id: row.try_get(0)?,
                            channel: row.try_get(1)?,
                            recipient: row.try_get(2)?,
                            subject: row.try_get(3)?,
                            body: row.try_get(4)?,
                            attempts: row.try_get(5)?,
                        })
                    })
                    .collect()
            }

            /// Records a sending: sent, or failed with the next attempt's time. A sent mail's
            /// body is dropped: it may carry a sign-in link, and the subject says what it was.
            pub async fn record_attempt(
                connection: &mut $connection,
                id: i64,
                result: Result<i64, (String, i64)>,
            ) -> Result<(), sqlx::Error> {
                let query = match result {
                    Ok(sent_at) => sqlx::query("UPDATE outbox SET sent_at = $2, attempts = attempts + 1, \
                         body = CASE WHEN channel = 'email' THEN '' ELSE body END WHERE id = $1")
                        .bind(id)
                        .bind(sent_at),
                    Err((error, next)) => sqlx::query(
                        "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3 WHERE id = $1",
                    )
                    .bind(id)
                    .bind(error)
                    .bind(next),
                };
                query.execute(&mut *connection).await?;
                Ok(())
            }
        }
    };
}

engine_notifications!(postgres, sqlx::PgConnection);
engine_notifications!(sqlite, sqlx::SqliteConnection);

/// Runs one batch of the notifier; returns how many events it read (0: caught up). `news`:
/// the caller knows there are new events.
pub async fn run_batch(
    engine: &Engine,
    recent: Option<&crate::store::Live>,
    targets: &Targets,
    batch_max: u32,
    news: bool,
) -> Result<usize, ProjectionError> {
    super::views::run_batch_into(engine, recent, super::views::Fold::Notifier(targets), NAME, batch_max, news).await
}

/// A user's notifications, newest first; and how many match.
pub async fn list(
    engine: &Engine,
    user: Uuid,
    unread_only: bool,
    offset: i64,
    limit: i64,
) -> Result<(Vec<InApp>, i64), sqlx::Error> {
    crate::on_engine!(engine, for_user(user, unread_only, offset, limit))
}

/// Marks one of the user's notifications (or all) read; how many changed.
pub async fn read(engine: &Engine, user: Uuid, id: Option<i64>, now_ms: i64) -> Result<u64, sqlx::Error> {
    crate::on_engine!(engine, mark_read(user, id, now_ms))
}

/// Queues a message made by a request or a job; false when its dedupe key was queued before.
pub async fn enqueue(engine: &Engine, message: &Queued) -> Result<bool, sqlx::Error> {
    let now = chrono::Utc::now().timestamp_millis();
    crate::on_engine!(engine, queue(message, now))
}

/// A user's address, from the users directory (none until it has the registration).
pub async fn user_address(engine: &Engine, user: Uuid) -> Result<Option<String>, sqlx::Error> {
    crate::on_engine!(engine, address(user))
}

/// Messages due for sending, oldest first.
pub async fn due_messages(engine: &Engine, now_ms: i64, limit: i64) -> Result<Vec<Outgoing>, sqlx::Error> {
    crate::on_engine!(engine, due(now_ms, limit))
}

/// Records a sending: `Ok(sent_at)` or `Err((error, next attempt at))`, in ms.
pub async fn attempted(engine: &Engine, id: i64, result: Result<i64, (String, i64)>) -> Result<(), sqlx::Error> {
    crate::on_engine!(engine, record_attempt(id, result))
}
