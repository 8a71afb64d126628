//! The activity log: one row per event whose metadata names an actor (a user, an admin, a
//! provider, a job), with the address and request it came from. Admins read who did what.

use sqlx::Row;

use super::page::Slice;
use super::runner::ProjectionError;
use super::sink::{self, placeholders};
use crate::search::{Total, Where};
use crate::store::{Engine, RecordedEvent};

/// The checkpoint name of the live activity log.
pub const NAME: &str = super::views::View::Activity.name();

/// Rows of 7 parameters per statement on SQLite.
const ROWS_PER_STATEMENT: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Activity {
    pub position: i64,
    /// RFC 3339.
    pub at: String,
    /// `user:<id>`, `stripe:<event>`, `provider:<id>`, `system:<job>`.
    pub actor: String,
    pub event_type: String,
    pub stream_id: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// What admins narrow the activity log by; `None` matches all.
#[derive(Clone, Debug, Default)]
pub struct ActivityFilter {
    pub actor: Option<String>,
    /// Event types starting with this, e.g. `order.`.
    pub event_type_prefix: Option<String>,
    /// Recorded at or after, microseconds.
    pub from_micros: Option<i64>,
    /// Recorded before, microseconds.
    pub before_micros: Option<i64>,
}

impl ActivityFilter {
    /// The conditions it sets. An event type prefix is matched with `LIKE`, its own `%` dropped
    /// and `_` escaped.
    pub fn conditions(&self) -> Where {
        let prefix = self.event_type_prefix.as_ref().map(|p| format!("{}%", p.replace('%', "").replace('_', "\\_")));
        Where::new()
            .and("actor = $", self.actor.as_deref())
            .and("event_type LIKE $ ESCAPE '\\'", prefix)
            .and("recorded_at >= $", self.from_micros)
            .and("recorded_at < $", self.before_micros)
    }
}

/// A search's statements: its count, and its page (limit and offset bound after the values).
pub fn statements(conditions: &Where) -> (String, String) {
    (conditions.count_text("activity_log"), conditions.page_text(COLUMNS, "activity_log", "position DESC"))
}

struct Entry<'a> {
    event: &'a RecordedEvent,
    actor: &'a str,
}

fn entries<'a>(events: impl Iterator<Item = &'a RecordedEvent>) -> Vec<Entry<'a>> {
    events.filter_map(|event| Some(Entry { event, actor: event.metadata.get("actor")?.as_str()? })).collect()
}

fn text_of<'a>(event: &'a RecordedEvent, key: &str) -> Option<&'a str> {
    event.metadata.get(key).and_then(|value| value.as_str())
}

const COLUMNS: &str = "position, recorded_at, actor, event_type, stream_id, ip, request_id";

// Rows are inserted, not upserted: a position is folded once, after the checkpoint locked in
// the same transaction, so a second row for a position is a bug to fail on, as it is for the
// statement lines (an `ON CONFLICT` check cost a quarter of each insert, decision 0033).

/// On PostgreSQL a page's rows go in as seven arrays (`UNNEST`): one statement text, prepared
/// once per connection, however many rows.
async fn insert_postgres(
    connection: &mut sqlx::PgConnection,
    table: &str,
    entries: &[Entry<'_>],
) -> Result<(), sqlx::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let text = format!(
        "INSERT INTO {table} ({COLUMNS}) SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::text[])"
    );
    let texts = |f: for<'e> fn(&'e Entry<'_>) -> Option<&'e str>| entries.iter().map(f).collect::<Vec<_>>();
    sqlx::query(sink::sql(text))
        .bind(entries.iter().map(|e| e.event.position).collect::<Vec<_>>())
        .bind(entries.iter().map(|e| e.event.recorded_at.timestamp_micros()).collect::<Vec<_>>())
        .bind(texts(|e| Some(e.actor)))
        .bind(texts(|e| Some(e.event.event_type.as_str())))
        .bind(texts(|e| Some(e.event.stream_id.as_str())))
        .bind(texts(|e| text_of(e.event, "ip")))
        .bind(texts(|e| text_of(e.event, "request_id")))
        .execute(connection)
        .await?;
    Ok(())
}

/// On SQLite (no arrays), many rows a statement.
async fn insert_sqlite(
    connection: &mut sqlx::SqliteConnection,
    table: &str,
    entries: &[Entry<'_>],
) -> Result<(), sqlx::Error> {
    for chunk in entries.chunks(ROWS_PER_STATEMENT) {
        let text = format!("INSERT INTO {table} ({COLUMNS}) VALUES {}", placeholders(chunk.len(), 7));
        let mut query = sqlx::query(sink::sql(text));
        for entry in chunk {
            query = query
                .bind(entry.event.position)
                .bind(entry.event.recorded_at.timestamp_micros())
                .bind(entry.actor)
                .bind(entry.event.event_type.as_str())
                .bind(entry.event.stream_id.as_str())
                .bind(text_of(entry.event, "ip"))
                .bind(text_of(entry.event, "request_id"));
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

macro_rules! engine_activity {
    ($module:ident, $connection:ty, $insert:path) => {
        pub mod $module {
            use super::*;

            /// Adds a page's attributed events to the log.
            pub async fn apply_page(
                connection: &mut $connection,
                table: &str,
                page: Slice<'_>,
            ) -> Result<(), ProjectionError> {
                $insert(connection, table, &entries(page.events())).await?;
                Ok(())
            }

            /// Newest first, narrowed by the filter; and how many match.
            pub async fn search(
                connection: &mut $connection,
                filter: &ActivityFilter,
                offset: i64,
                limit: i64,
            ) -> Result<(Vec<Activity>, Total), sqlx::Error> {
                let conditions = filter.conditions();
                let (count, page) = statements(&conditions);
                let counted: (i64,) = crate::bind_where!(sqlx::query_as(sink::sql(count)), conditions)
                    .fetch_one(&mut *connection)
                    .await?;
                let rows = crate::bind_where!(sqlx::query(sink::sql(page)), conditions)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&mut *connection)
                    .await?;
                let entries = rows
                    .iter()
                    .map(|row| {
                        let micros: i64 = row.try_get(1)?;
                        Ok(Activity {
                            position: row.try_get(0)?,
                            at: chrono::DateTime::from_timestamp_micros(micros).unwrap_or_default().to_rfc3339(),
                            actor: row.try_get(2)?,
                            event_type: row.try_get(3)?,
                            stream_id: row.try_get(4)?,
                            ip: row.try_get(5)?,
                            request_id: row.try_get(6)?,
                        })
                    })
                    .collect::<Result<_, sqlx::Error>>()?;
                Ok((entries, Total::of_count(counted.0)))
            }
        }
    };
}

engine_activity!(postgres, sqlx::PgConnection, insert_postgres);
engine_activity!(sqlite, sqlx::SqliteConnection, insert_sqlite);

/// Newest first, narrowed by the filter; and how many match.
pub async fn search_activity(
    engine: &Engine,
    filter: &ActivityFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Activity>, Total), sqlx::Error> {
    crate::on_engine!(engine, search(filter, offset, limit))
}
