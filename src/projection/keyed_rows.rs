//! The keyed projection tables (balances, trial balance): reading the rows a batch touches and
//! upserting them. PostgreSQL binds one array per column (`UNNEST`), so each statement has one
//! text, parsed and planned once per connection, whatever the batch size. SQLite has no arrays
//! and binds chunks of rows (`VALUES`).

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

/// Runs `query`, which reads the keys from `k (<first>, currency)`, for `keys` on PostgreSQL.
pub(crate) async fn rows_by_key_postgres<K>(
    connection: &mut sqlx::PgConnection,
    (first, first_type): KeyColumn<'_>,
    query: &str,
    keys: &[(K, &str)],
) -> Result<Vec<PgRow>, sqlx::Error>
where
    K: Clone + Send + for<'q> Encode<'q, Postgres> + Type<Postgres> + PgHasArrayType + 'static,
{
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let text = format!("WITH k ({first}, currency) AS (SELECT * FROM UNNEST($1::{first_type}[], $2::text[])) {query}");
    sqlx::query(sql(text))
        .bind(keys.iter().map(|(key, _)| key.clone()).collect::<Vec<K>>())
        .bind(keys.iter().map(|(_, currency)| *currency).collect::<Vec<&str>>())
        .fetch_all(connection)
        .await
}

/// As [`rows_by_key_postgres`], on SQLite: a chunk of keys a statement.
pub(crate) async fn rows_by_key_sqlite<K>(
    connection: &mut sqlx::SqliteConnection,
    (first, _): KeyColumn<'_>,
    query: &str,
    keys: &[(K, &str)],
) -> Result<Vec<SqliteRow>, sqlx::Error>
where
    K: Clone + Send + for<'q> Encode<'q, Sqlite> + Type<Sqlite> + 'static,
{
    let mut rows = Vec::new();
    for chunk in keys.chunks(ROWS_PER_STATEMENT) {
        let text = format!("WITH k ({first}, currency) AS (VALUES {}) {query}", placeholders(chunk.len(), 2));
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
