//! The ledger projections' rows by key: reading the rows a batch touches (balances,
//! trial-balance rows, each key's newest statement line) and upserting the balances and
//! trial-balance rows. PostgreSQL binds one array per column (`UNNEST`), so each statement has
//! one text, parsed and planned once per connection, whatever the batch size, and reads each
//! key's row by a `LATERAL` step whose plan does not depend on the table's statistics
//! (decision 0033). SQLite has no arrays and binds chunks of rows (`VALUES`).

use std::collections::BTreeMap;

use projections::{AccountKey, Balance, BalanceKey};
use rust_decimal::Decimal;
use sqlx::postgres::{PgHasArrayType, PgRow};
use sqlx::sqlite::SqliteRow;
use sqlx::{Encode, Postgres, Sqlite, Type};

use super::sink::{ROWS_PER_STATEMENT, placeholders, sql};
use super::sql_types::Amount;

/// The key columns of a keyed table: the first column's name and PostgreSQL type, then
/// `currency` (text).
pub(crate) type KeyColumn<'a> = (&'a str, &'a str);

pub(crate) const USER_KEY: KeyColumn<'static> = ("user_id", "uuid");
pub(crate) const ACCOUNT_KEY: KeyColumn<'static> = ("account", "text");

const BALANCE_COLUMNS: &str = "user_id, currency, available, held, position";
const BALANCE_ON_CONFLICT: &str = "ON CONFLICT (user_id, currency) DO UPDATE SET available = excluded.available, \
     held = excluded.held, position = excluded.position";
const TRIAL_COLUMNS: &str = "account, currency, balance, position";
const TRIAL_ON_CONFLICT: &str =
    "ON CONFLICT (account, currency) DO UPDATE SET balance = excluded.balance, position = excluded.position";

/// What to read of a keyed table: for each key `(<key column>, currency)`, the key and
/// `columns`; with `newest_by`, the one row with the highest value of that column among the
/// key's rows (the table's primary key ends with it), else the key's one row.
pub struct KeyedRead<'a> {
    pub table: &'a str,
    pub key: KeyColumn<'a>,
    pub columns: &'a [&'a str],
    pub newest_by: Option<&'a str>,
}

/// `a, b` as `t.a, t.b`.
fn qualified(alias: &str, columns: &[&str]) -> String {
    columns.iter().map(|column| format!("{alias}.{column}")).collect::<Vec<_>>().join(", ")
}

/// The statement of a [`KeyedRead`] on PostgreSQL, the keys bound as two arrays. Each key's
/// row comes from a `LATERAL` subquery with `LIMIT 1`, which is never flattened into a join:
/// its one plan is an index step per key whatever the table's statistics. A plain join (and a
/// correlated `max` for the newest row) was planned as a hash join over a sequential scan of
/// the whole table when prepared on a young table, a plan a connection keeps while the table
/// grows (decision 0033). `pub` for the test of its plan.
pub fn select_postgres(read: &KeyedRead<'_>) -> String {
    let KeyedRead { table, key: (key, key_type), columns, newest_by } = read;
    let order = newest_by.map(|column| format!(" ORDER BY m.{column} DESC")).unwrap_or_default();
    format!(
        "WITH k ({key}, currency) AS (SELECT * FROM UNNEST($1::{key_type}[], $2::text[])) \
         SELECT k.{key}, k.currency, {} FROM k CROSS JOIN LATERAL (SELECT {} FROM {table} m \
         WHERE m.{key} = k.{key} AND m.currency = k.currency{order} LIMIT 1) r",
        qualified("r", columns),
        qualified("m", columns)
    )
}

/// The rows of `read` for `keys` on PostgreSQL: the key, the currency, then the columns.
pub(crate) async fn rows_by_key_postgres<K>(
    connection: &mut sqlx::PgConnection,
    read: &KeyedRead<'_>,
    keys: &[(K, &str)],
) -> Result<Vec<PgRow>, sqlx::Error>
where
    K: Clone + Send + for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + 'static,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query(sql(select_postgres(read)))
        .bind(keys.iter().map(|(key, _)| key.clone()).collect::<Vec<K>>())
        .bind(keys.iter().map(|(_, currency)| *currency).collect::<Vec<&str>>())
        .fetch_all(connection)
        .await
}

/// As [`rows_by_key_postgres`], on SQLite (no arrays, no `LATERAL`): a chunk of keys a
/// statement, joined to the table; the newest row through a correlated `max`, which SQLite
/// answers from the end of the primary key (decision 0028).
pub(crate) async fn rows_by_key_sqlite<K>(
    connection: &mut sqlx::SqliteConnection,
    read: &KeyedRead<'_>,
    keys: &[(K, &str)],
) -> Result<Vec<SqliteRow>, sqlx::Error>
where
    K: Clone + Send + for<'q> Encode<'q, Sqlite> + Type<Sqlite> + 'static,
{
    let KeyedRead { table, key: (key, _), columns, newest_by } = read;
    let newest = newest_by
        .map(|column| {
            format!(" AND r.{column} = (SELECT max(m.{column}) FROM {table} m WHERE m.{key} = k.{key} AND m.currency = k.currency)")
        })
        .unwrap_or_default();
    let select = format!(
        "SELECT r.{key}, r.currency, {} FROM k JOIN {table} r ON r.{key} = k.{key} AND r.currency = k.currency{newest}",
        qualified("r", columns)
    );
    let mut rows = Vec::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let text = format!("WITH k ({key}, currency) AS (VALUES {}) {select}", placeholders(chunk.len(), 2));
        let mut statement = sqlx::query(sql(text));
        for (key, currency) in chunk {
            statement = statement.bind(key.clone()).bind(*currency);
        }
        rows.extend(statement.fetch_all(&mut *connection).await?);
    }
    Ok(rows)
}

pub(crate) async fn upsert_balances_postgres(
    connection: &mut sqlx::PgConnection,
    table: &str,
    rows: &BTreeMap<BalanceKey, Balance>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let text = format!(
        "INSERT INTO {table} ({BALANCE_COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::numeric[], \
         $4::numeric[], $5::bigint[]) {BALANCE_ON_CONFLICT}"
    );
    let amount = |f: fn(&Balance) -> Decimal| rows.values().map(f).collect::<Vec<_>>();
    sqlx::query(sql(text))
        .bind(rows.keys().map(|(user, _)| user.0).collect::<Vec<_>>())
        .bind(rows.keys().map(|(_, currency)| currency.as_str()).collect::<Vec<_>>())
        .bind(amount(|row| row.available))
        .bind(amount(|row| row.held))
        .bind(rows.values().map(|row| row.position).collect::<Vec<_>>())
        .execute(connection)
        .await?;
    Ok(())
}

pub(crate) async fn upsert_balances_sqlite(
    connection: &mut sqlx::SqliteConnection,
    table: &str,
    rows: &BTreeMap<BalanceKey, Balance>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<_> = rows.iter().collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let text = format!(
            "INSERT INTO {table} ({BALANCE_COLUMNS}) VALUES {} {BALANCE_ON_CONFLICT}",
            placeholders(chunk.len(), 5)
        );
        let mut query = sqlx::query(sql(text));
        for ((user, currency), row) in chunk {
            query = query
                .bind(user.0)
                .bind(currency.as_str())
                .bind(Amount(row.available))
                .bind(Amount(row.held))
                .bind(row.position);
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

pub(crate) async fn upsert_trial_balance_postgres(
    connection: &mut sqlx::PgConnection,
    table: &str,
    rows: &BTreeMap<AccountKey, (Decimal, i64)>,
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let text = format!(
        "INSERT INTO {table} ({TRIAL_COLUMNS}) SELECT * FROM UNNEST($1::text[], $2::text[], $3::numeric[], \
         $4::bigint[]) {TRIAL_ON_CONFLICT}"
    );
    sqlx::query(sql(text))
        .bind(rows.keys().map(|(account, _)| account.as_str()).collect::<Vec<_>>())
        .bind(rows.keys().map(|(_, currency)| currency.as_str()).collect::<Vec<_>>())
        .bind(rows.values().map(|(balance, _)| *balance).collect::<Vec<_>>())
        .bind(rows.values().map(|(_, position)| *position).collect::<Vec<_>>())
        .execute(connection)
        .await?;
    Ok(())
}

pub(crate) async fn upsert_trial_balance_sqlite(
    connection: &mut sqlx::SqliteConnection,
    table: &str,
    rows: &BTreeMap<AccountKey, (Decimal, i64)>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<_> = rows.iter().collect();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let text = format!(
            "INSERT INTO {table} ({TRIAL_COLUMNS}) VALUES {} {TRIAL_ON_CONFLICT}",
            placeholders(chunk.len(), 4)
        );
        let mut query = sqlx::query(sql(text));
        for ((account, currency), (balance, position)) in chunk {
            query = query.bind(account.as_str()).bind(currency.as_str()).bind(Amount(*balance)).bind(*position);
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}
