//! Snapshots of long-lived streams (decision 0036). A wallet gains events with every order of
//! its owner for as long as the account lives; loading one that memory does not hold (after a
//! restart, or once evicted) read every event it ever had, all at once. A snapshot is the
//! wallet's state after its first `version` events: a load reads the snapshot and the events
//! after it. Snapshots are a cache kept beside the log, never a record: they are taken from
//! states folded from committed events, ignored when of another format, and checked by
//! `verify` against the fold of their stream.

use super::Engine;

/// A wallet is snapshotted each time its version reaches a multiple of this, and when a load
/// read at least this many events.
pub const SNAPSHOT_EVERY: u64 = 1_000;

/// The format of the snapshotted state (JSON of `WalletState`): raised when that shape
/// changes, so that old snapshots are passed over and replaced.
pub const FORMAT: i32 = 1;

/// A stream's snapshot of the current format, if it has one: its version and state.
pub async fn load(engine: &Engine, stream_id: &str) -> Result<Option<(u64, String)>, sqlx::Error> {
    let sql = "SELECT version, state FROM stream_snapshots WHERE stream_id = $1 AND format = $2";
    let row: Option<(i64, String)> = match engine {
        Engine::Postgres(pool) => sqlx::query_as(sql).bind(stream_id).bind(FORMAT).fetch_optional(pool).await?,
        Engine::Sqlite(pool) => sqlx::query_as(sql).bind(stream_id).bind(FORMAT).fetch_optional(pool).await?,
    };
    Ok(row.and_then(|(version, state)| Some((u64::try_from(version).ok()?, state))))
}

/// Keeps `state` as the stream's snapshot at `version` unless a newer one of this format is
/// kept already (two processes following one wallet both save it).
pub async fn save(engine: &Engine, stream_id: &str, version: u64, state: &str) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO stream_snapshots (stream_id, version, format, state) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, format = excluded.format, \
               state = excluded.state \
               WHERE stream_snapshots.version < excluded.version OR stream_snapshots.format <> excluded.format";
    let version = i64::try_from(version).unwrap_or(i64::MAX);
    match engine {
        Engine::Postgres(pool) => {
            sqlx::query(sql).bind(stream_id).bind(version).bind(FORMAT).bind(state).execute(pool).await?;
        }
        Engine::Sqlite(pool) => {
            sqlx::query(sql).bind(stream_id).bind(version).bind(FORMAT).bind(state).execute(pool).await?;
        }
    }
    Ok(())
}

/// Every snapshot of the current format, for `verify`: stream, version, state.
pub async fn all(engine: &Engine) -> Result<Vec<(String, u64, String)>, sqlx::Error> {
    let sql = "SELECT stream_id, version, state FROM stream_snapshots WHERE format = $1 ORDER BY stream_id";
    let rows: Vec<(String, i64, String)> = match engine {
        Engine::Postgres(pool) => sqlx::query_as(sql).bind(FORMAT).fetch_all(pool).await?,
        Engine::Sqlite(pool) => sqlx::query_as(sql).bind(FORMAT).fetch_all(pool).await?,
    };
    Ok(rows.into_iter().map(|(stream, version, state)| (stream, version.max(0) as u64, state)).collect())
}
