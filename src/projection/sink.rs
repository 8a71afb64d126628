//! Projection sinks: load the rows a batch touches, fold the batch with the pure folds of
//! the `projections` crate, write the rows back. The SQL is the same on both engines;
//! a macro stamps it out once per connection type.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use domain::{Currency, UserId};
use projections::{AccountKey, Balance, BalanceKey, Fold, LedgerEntry, ProjectionName, StatementLine};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr, SqlStr};
use uuid::Uuid;

use super::keyed_rows::{self, ACCOUNT_KEY, USER_KEY};
pub use super::keyed_rows::{KeyedRead, select_postgres as keyed_select_postgres};
use super::sql_types::{Amount, Instant};

/// Everything a projection table holds, for `verify` to compare with a fresh fold.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub balances: BTreeMap<BalanceKey, Balance>,
    pub statement: Vec<StatementLine>,
    pub trial_balance: BTreeMap<(String, Currency), (rust_decimal::Decimal, i64)>,
}

fn currency(text: &str) -> Result<Currency, sqlx::Error> {
    Currency::parse(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Rows per multi-row statement: 200 rows of up to 10 columns stay far below both
/// engines' bound-parameter limits (SQLite 32766, PostgreSQL 65535).
pub(crate) const ROWS_PER_STATEMENT: usize = 200;
const _: () = assert!(ROWS_PER_STATEMENT * 10 < 32_766);

/// `($1, $2), ($3, $4)` for `rows` rows of `columns` parameters.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..columns {
            let separator = if column == 0 { "" } else { ", " };
            write!(text, "{separator}${}", row * columns + column + 1).expect("writing to a String cannot fail");
        }
        text.push(')');
    }
    text
}

pub(crate) fn sql(text: String) -> SqlStr {
    // Only table and column names fixed in the code (plus a fixed suffix), placeholders and
    // integers are formatted in; values are bound.
    AssertSqlSafe(text).into_sql_str()
}

/// The stored documents (`view` column) of a document view's `table` whose `key` column is
/// one of `ids`; on PostgreSQL as one array, so one statement text whatever their number.
async fn documents_by_id_postgres(
    connection: &mut sqlx::PgConnection,
    table: &str,
    key: &str,
    ids: &[Uuid],
) -> Result<Vec<String>, sqlx::Error> {
    let text = format!("SELECT view FROM {table} WHERE {key} = ANY($1::uuid[])");
    sqlx::query_scalar(sql(text)).bind(ids).fetch_all(connection).await
}

/// As [`documents_by_id_postgres`], on SQLite (no arrays): 500 ids a statement.
async fn documents_by_id_sqlite(
    connection: &mut sqlx::SqliteConnection,
    table: &str,
    key: &str,
    ids: &[Uuid],
) -> Result<Vec<String>, sqlx::Error> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let text = format!("SELECT view FROM {table} WHERE {key} IN {}", placeholders(1, chunk.len()));
        let mut query = sqlx::query_scalar::<_, String>(sql(text));
        for id in chunk {
            query = query.bind(*id);
        }
        found.extend(query.fetch_all(&mut *connection).await?);
    }
    Ok(found)
}

macro_rules! engine_sink {
    (
        $module:ident,
        $connection:ty,
        $row:ty,
        $insert_lines:path,
        $documents_by_id:path,
        $rows_by_key:path,
        $upsert_balances:path,
        $upsert_trial_balance:path
    ) => {
        pub mod $module {
            use super::*;

            /// The stored documents of `table` whose `key` is one of `ids`.
            pub async fn documents_by_id(
                connection: &mut $connection,
                table: &str,
                key: &str,
                ids: &[Uuid],
            ) -> Result<Vec<String>, sqlx::Error> {
                $documents_by_id(connection, table, key, ids).await
            }

            /// One keyset page of a document view's documents with `time` in `[from, before)`
            /// (ms), oldest first, after the key `(time, key)`.
            pub async fn documents_between(
                connection: &mut $connection,
                (table, time, key): (&str, &str, &str),
                (from, before): (i64, i64),
                after: Option<(i64, Uuid)>,
                limit: i64,
            ) -> Result<Vec<String>, sqlx::Error> {
                let (at, id) = after.unwrap_or((i64::MIN, Uuid::nil()));
                let text = format!(
                    "SELECT view FROM {table} WHERE {time} >= $1 AND {time} < $2 \
                     AND ({time} > $3 OR ({time} = $3 AND {key} > $4)) ORDER BY {time}, {key} LIMIT $5"
                );
                let rows = sqlx::query(sql(text))
                    .bind(from)
                    .bind(before)
                    .bind(at)
                    .bind(id)
                    .bind(limit)
                    .fetch_all(&mut *connection)
                    .await?;
                rows.iter().map(|row| row.try_get::<String, _>(0)).collect()
            }

            /// A page of a document view's documents matching `conditions`, in `order`, and how
            /// many match (counted up to the cap; decision 0035).
            pub async fn documents_where(
                connection: &mut $connection,
                (table, order): (&str, &str),
                conditions: &crate::search::Where,
                offset: i64,
                limit: i64,
            ) -> Result<(Vec<String>, crate::search::Total), sqlx::Error> {
                let counted: (i64,) = crate::bind_where!(sqlx::query_as(sql(conditions.count_text(table))), conditions)
                    .fetch_one(&mut *connection)
                    .await?;
                let text = conditions.page_text("view", table, order);
                let rows = crate::bind_where!(sqlx::query(sql(text)), conditions)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&mut *connection)
                    .await?;
                let documents = rows.iter().map(|row| row.try_get::<String, _>(0)).collect::<Result<_, _>>()?;
                Ok((documents, crate::search::Total::of_count(counted.0)))
            }

            pub async fn checkpoint(connection: &mut $connection, name: &str) -> Result<i64, sqlx::Error> {
                let row: Option<(i64,)> = sqlx::query_as("SELECT position FROM projection_checkpoints WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&mut *connection)
                    .await?;
                Ok(row.map_or(0, |(position,)| position))
            }

            pub async fn set_checkpoint(connection: &mut $connection, name: &str, position: i64) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO projection_checkpoints (name, position, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(position)
                .bind(Instant::now())
                .execute(&mut *connection)
                .await?;
                Ok(())
            }

            /// Folds `entries` over the rows they touch (loaded first) and writes those rows.
            pub async fn write_batch(
                connection: &mut $connection,
                projection: ProjectionName,
                table: &str,
                entries: &[LedgerEntry<'_>],
            ) -> Result<(), sqlx::Error> {
                let mut fold = load(connection, projection, table, entries).await?;
                for entry in entries {
                    fold.apply(entry);
                }
                write(connection, table, &fold).await
            }

            /// Rows of `(user_id, currency, available, held, position)` for every user key the
            /// entries touch, as `read` reads them.
            async fn balance_rows(
                connection: &mut $connection,
                read: &KeyedRead<'_>,
                entries: &[LedgerEntry<'_>],
            ) -> Result<BTreeMap<BalanceKey, Balance>, sqlx::Error> {
                let keys: BTreeSet<BalanceKey> = entries.iter().flat_map(|e| e.user_changes().into_keys()).collect();
                let keys: Vec<(Uuid, &str)> = keys.iter().map(|(user, currency)| (user.0, currency.as_str())).collect();
                let mut balances = BTreeMap::new();
                for row in $rows_by_key(connection, read, &keys).await? {
                    let (key, balance) = balance_row(&row)?;
                    balances.insert(key, balance);
                }
                Ok(balances)
            }

            fn balance_row(row: &$row) -> Result<(BalanceKey, Balance), sqlx::Error> {
                let key = (UserId(row.try_get::<Uuid, _>(0)?), currency(&row.try_get::<String, _>(1)?)?);
                let balance = Balance {
                    available: row.try_get::<Amount, _>(2)?.0,
                    held: row.try_get::<Amount, _>(3)?.0,
                    position: row.try_get(4)?,
                };
                Ok((key, balance))
            }

            /// The current rows for every key `entries` touch, as a fold to continue.
            pub async fn load(
                connection: &mut $connection,
                projection: ProjectionName,
                table: &str,
                entries: &[LedgerEntry<'_>],
            ) -> Result<Fold, sqlx::Error> {
                let mut fold = Fold::new(projection);
                match &mut fold {
                    Fold::Balances(fold) => {
                        let read = KeyedRead { table, key: USER_KEY, columns: &["available", "held", "position"], newest_by: None };
                        fold.rows = balance_rows(connection, &read, entries).await?;
                    }
                    Fold::Statement(fold) => {
                        // The newest line per key carries the running balance: one step down
                        // the primary key per key, whatever the user's history (decisions
                        // 0028, 0033).
                        let columns = &["available_after", "held_after", "position"];
                        let read = KeyedRead { table, key: USER_KEY, columns, newest_by: Some("position") };
                        fold.running = balance_rows(connection, &read, entries).await?;
                    }
                    Fold::TrialBalance(fold) => {
                        let keys: BTreeSet<AccountKey> = entries.iter().flat_map(|e| e.account_changes().into_keys()).collect();
                        let keys: Vec<(String, &str)> =
                            keys.iter().map(|(account, currency)| (account.clone(), currency.as_str())).collect();
                        let read = KeyedRead { table, key: ACCOUNT_KEY, columns: &["balance", "position"], newest_by: None };
                        for row in $rows_by_key(connection, &read, &keys).await? {
                            let key = (row.try_get::<String, _>(0)?, currency(&row.try_get::<String, _>(1)?)?);
                            fold.rows.insert(key, (row.try_get::<Amount, _>(2)?.0, row.try_get(3)?));
                        }
                    }
                }
                Ok(fold)
            }

            /// Writes a fold's rows: balances and trial balance rows are upserted, statement
            /// lines inserted.
            pub async fn write(connection: &mut $connection, table: &str, fold: &Fold) -> Result<(), sqlx::Error> {
                match fold {
                    Fold::Balances(fold) => $upsert_balances(connection, table, &fold.rows).await,
                    Fold::Statement(fold) => $insert_lines(connection, table, &fold.lines).await,
                    Fold::TrialBalance(fold) => $upsert_trial_balance(connection, table, &fold.rows).await,
                }
            }

            /// One user's statement lines of the given event types, newest first, and how many
            /// there are in all.
            pub async fn statement_page(
                connection: &mut $connection,
                user: UserId,
                event_types: &[&str],
                limit: i64,
                offset: i64,
            ) -> Result<(Vec<StatementLine>, i64), sqlx::Error> {
                let types = (0..event_types.len()).map(|i| format!("${}", i + 2)).collect::<Vec<_>>().join(", ");
                let filter = format!("FROM statement_lines WHERE user_id = $1 AND event_type IN ({types})");
                let mut count = sqlx::query_scalar::<_, i64>(sql(format!("SELECT COUNT(*) {filter}"))).bind(user.0);
                for event_type in event_types {
                    count = count.bind(*event_type);
                }
                let total = count.fetch_one(&mut *connection).await?;
                let text = format!(
                    "SELECT user_id, currency, position, event_type, reference, available_change, held_change, \
                     available_after, held_after, recorded_at {filter} ORDER BY position DESC, currency LIMIT {limit} OFFSET {offset}"
                );
                let mut query = sqlx::query(sql(text)).bind(user.0);
                for event_type in event_types {
                    query = query.bind(*event_type);
                }
                let rows = query.fetch_all(&mut *connection).await?;
                let lines = rows.iter().map(statement_line).collect::<Result<_, _>>()?;
                Ok((lines, total))
            }

            fn statement_line(row: &$row) -> Result<StatementLine, sqlx::Error> {
                Ok(StatementLine {
                    user_id: UserId(row.try_get::<Uuid, _>(0)?),
                    currency: currency(&row.try_get::<String, _>(1)?)?,
                    position: row.try_get(2)?,
                    event_type: row.try_get(3)?,
                    reference: row.try_get(4)?,
                    available_change: row.try_get::<Amount, _>(5)?.0,
                    held_change: row.try_get::<Amount, _>(6)?.0,
                    available_after: row.try_get::<Amount, _>(7)?.0,
                    held_after: row.try_get::<Amount, _>(8)?.0,
                    recorded_at_micros: row.try_get::<Instant, _>(9)?.0,
                })
            }

            /// Reads the live tables whole, for `verify`.
            pub async fn snapshot(connection: &mut $connection) -> Result<Snapshot, sqlx::Error> {
                let mut snapshot = Snapshot::default();
                let rows = sqlx::query("SELECT user_id, currency, available, held, position FROM balances")
                    .fetch_all(&mut *connection)
                    .await?;
                for row in rows {
                    let (key, balance) = balance_row(&row)?;
                    snapshot.balances.insert(key, balance);
                }
                let rows = sqlx::query(
                    "SELECT user_id, currency, position, event_type, reference, available_change, held_change, \
                     available_after, held_after, recorded_at FROM statement_lines ORDER BY position, user_id, currency",
                )
                .fetch_all(&mut *connection)
                .await?;
                for row in rows {
                    snapshot.statement.push(statement_line(&row)?);
                }
                let rows = sqlx::query("SELECT account, currency, balance, position FROM trial_balance")
                    .fetch_all(&mut *connection)
                    .await?;
                for row in rows {
                    let key = (row.try_get::<String, _>(0)?, currency(&row.try_get::<String, _>(1)?)?);
                    snapshot.trial_balance.insert(key, (row.try_get::<Amount, _>(2)?.0, row.try_get(3)?));
                }
                Ok(snapshot)
            }
        }
    };
}

engine_sink!(
    postgres,
    sqlx::PgConnection,
    sqlx::postgres::PgRow,
    insert_lines_postgres,
    documents_by_id_postgres,
    keyed_rows::rows_by_key_postgres,
    keyed_rows::upsert_balances_postgres,
    keyed_rows::upsert_trial_balance_postgres
);
engine_sink!(
    sqlite,
    sqlx::SqliteConnection,
    sqlx::sqlite::SqliteRow,
    insert_lines_sqlite,
    documents_by_id_sqlite,
    keyed_rows::rows_by_key_sqlite,
    keyed_rows::upsert_balances_sqlite,
    keyed_rows::upsert_trial_balance_sqlite
);

/// Statement lines are the one projection that writes a row per event; on PostgreSQL they go
/// in as ten arrays (`UNNEST`), far cheaper to parse than thousands of bound values.
async fn insert_lines_postgres(
    connection: &mut sqlx::PgConnection,
    table: &str,
    lines: &[StatementLine],
) -> Result<(), sqlx::Error> {
    if lines.is_empty() {
        return Ok(());
    }
    let text = format!(
        "INSERT INTO {table} (user_id, currency, position, event_type, reference, available_change, held_change, \
         available_after, held_after, recorded_at) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], $4::text[], \
         $5::text[], $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::timestamptz[])"
    );
    let column = |f: fn(&StatementLine) -> rust_decimal::Decimal| lines.iter().map(f).collect::<Vec<_>>();
    let recorded_at: Result<Vec<_>, sqlx::Error> = lines
        .iter()
        .map(|l| {
            chrono::DateTime::from_timestamp_micros(l.recorded_at_micros)
                .ok_or_else(|| sqlx::Error::Protocol(format!("recorded_at out of range at position {}", l.position)))
        })
        .collect();
    sqlx::query(sql(text))
        .bind(lines.iter().map(|l| l.user_id.0).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.currency.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.position).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.event_type.as_str()).collect::<Vec<_>>())
        .bind(lines.iter().map(|l| l.reference.as_deref()).collect::<Vec<_>>())
        .bind(column(|l| l.available_change))
        .bind(column(|l| l.held_change))
        .bind(column(|l| l.available_after))
        .bind(column(|l| l.held_after))
        .bind(recorded_at?)
        .execute(connection)
        .await?;
    Ok(())
}

async fn insert_lines_sqlite(
    connection: &mut sqlx::SqliteConnection,
    table: &str,
    lines: &[StatementLine],
) -> Result<(), sqlx::Error> {
    for chunk in lines.chunks(ROWS_PER_STATEMENT) {
        let text = format!(
            "INSERT INTO {table} (user_id, currency, position, event_type, reference, available_change, \
             held_change, available_after, held_after, recorded_at) VALUES {}",
            placeholders(chunk.len(), 10)
        );
        let mut query = sqlx::query(sql(text));
        for line in chunk {
            query = query
                .bind(line.user_id.0)
                .bind(line.currency.as_str())
                .bind(line.position)
                .bind(line.event_type.as_str())
                .bind(line.reference.as_deref())
                .bind(Amount(line.available_change))
                .bind(Amount(line.held_change))
                .bind(Amount(line.available_after))
                .bind(Amount(line.held_after))
                .bind(Instant(line.recorded_at_micros));
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}
