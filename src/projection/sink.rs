//! Projection sinks: load the rows a batch touches, fold the batch with the pure folds of
//! the `projections` crate, write the rows back. The SQL is the same on both engines;
//! a macro stamps it out once per connection type.

use std::collections::BTreeMap;

use domain::{Currency, UserId};
use projections::{
    Balance, BalanceKey, BalancesFold, LedgerEntry, ProjectionName, StatementFold, StatementLine, TrialBalanceFold,
};
use sqlx::{AssertSqlSafe, Row, SqlSafeStr, SqlStr};
use uuid::Uuid;

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

fn sql(text: String) -> SqlStr {
    // Only table names from `ProjectionName::table()` (plus a fixed suffix) are formatted in.
    AssertSqlSafe(text).into_sql_str()
}

macro_rules! engine_sink {
    ($module:ident, $connection:ty) => {
        pub mod $module {
            use super::*;

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

            pub async fn write_batch(
                connection: &mut $connection,
                projection: ProjectionName,
                table: &str,
                entries: &[LedgerEntry<'_>],
            ) -> Result<(), sqlx::Error> {
                match projection {
                    ProjectionName::Balances => write_balances(connection, table, entries).await,
                    ProjectionName::Statement => write_statement(connection, table, entries).await,
                    ProjectionName::TrialBalance => write_trial_balance(connection, table, entries).await,
                }
            }

            async fn write_balances(connection: &mut $connection, table: &str, entries: &[LedgerEntry<'_>]) -> Result<(), sqlx::Error> {
                let mut fold = BalancesFold::default();
                for key in entries.iter().flat_map(|e| e.user_changes().into_keys()) {
                    if fold.rows.contains_key(&key) {
                        continue;
                    }
                    let row: Option<(Amount, Amount, i64)> = sqlx::query_as(sql(format!(
                        "SELECT available, held, position FROM {table} WHERE user_id = $1 AND currency = $2"
                    )))
                    .bind(key.0.0)
                    .bind(key.1.as_str())
                    .fetch_optional(&mut *connection)
                    .await?;
                    let (available, held, position) = row.unwrap_or((Amount(0.into()), Amount(0.into()), 0));
                    fold.rows.insert(key, Balance { available: available.0, held: held.0, position });
                }
                for entry in entries {
                    fold.apply(entry);
                }
                let upsert = sql(format!(
                    "INSERT INTO {table} (user_id, currency, available, held, position) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (user_id, currency) DO UPDATE SET available = excluded.available, \
                     held = excluded.held, position = excluded.position"
                ));
                for ((user, currency), row) in &fold.rows {
                    sqlx::query(upsert.clone())
                        .bind(user.0)
                        .bind(currency.as_str())
                        .bind(Amount(row.available))
                        .bind(Amount(row.held))
                        .bind(row.position)
                        .execute(&mut *connection)
                        .await?;
                }
                Ok(())
            }

            async fn write_statement(connection: &mut $connection, table: &str, entries: &[LedgerEntry<'_>]) -> Result<(), sqlx::Error> {
                let mut fold = StatementFold::default();
                for key in entries.iter().flat_map(|e| e.user_changes().into_keys()) {
                    if fold.running.contains_key(&key) {
                        continue;
                    }
                    let row: Option<(Amount, Amount, i64)> = sqlx::query_as(sql(format!(
                        "SELECT available_after, held_after, position FROM {table} \
                         WHERE user_id = $1 AND currency = $2 ORDER BY position DESC LIMIT 1"
                    )))
                    .bind(key.0.0)
                    .bind(key.1.as_str())
                    .fetch_optional(&mut *connection)
                    .await?;
                    let (available, held, position) = row.unwrap_or((Amount(0.into()), Amount(0.into()), 0));
                    fold.running.insert(key, Balance { available: available.0, held: held.0, position });
                }
                for entry in entries {
                    fold.apply(entry);
                }
                let insert = sql(format!(
                    "INSERT INTO {table} (user_id, currency, position, event_type, reference, available_change, \
                     held_change, available_after, held_after, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ));
                for line in &fold.lines {
                    sqlx::query(insert.clone())
                        .bind(line.user_id.0)
                        .bind(line.currency.as_str())
                        .bind(line.position)
                        .bind(&line.event_type)
                        .bind(&line.reference)
                        .bind(Amount(line.available_change))
                        .bind(Amount(line.held_change))
                        .bind(Amount(line.available_after))
                        .bind(Amount(line.held_after))
                        .bind(Instant(line.recorded_at_micros))
                        .execute(&mut *connection)
                        .await?;
                }
                Ok(())
            }

            async fn write_trial_balance(connection: &mut $connection, table: &str, entries: &[LedgerEntry<'_>]) -> Result<(), sqlx::Error> {
                let mut fold = TrialBalanceFold::default();
                for key in entries.iter().flat_map(|e| e.account_changes().into_keys()) {
                    if fold.rows.contains_key(&key) {
                        continue;
                    }
                    let row: Option<(Amount, i64)> =
                        sqlx::query_as(sql(format!("SELECT balance, position FROM {table} WHERE account = $1 AND currency = $2")))
                            .bind(&key.0)
                            .bind(key.1.as_str())
                            .fetch_optional(&mut *connection)
                            .await?;
                    let (balance, position) = row.unwrap_or((Amount(0.into()), 0));
                    fold.rows.insert(key, (balance.0, position));
                }
                for entry in entries {
                    fold.apply(entry);
                }
                let upsert = sql(format!(
                    "INSERT INTO {table} (account, currency, balance, position) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account, currency) DO UPDATE SET balance = excluded.balance, position = excluded.position"
                ));
                for ((account, currency), (balance, position)) in &fold.rows {
                    sqlx::query(upsert.clone())
                        .bind(account)
                        .bind(currency.as_str())
                        .bind(Amount(*balance))
                        .bind(*position)
                        .execute(&mut *connection)
                        .await?;
                }
                Ok(())
            }

            /// Reads the live tables whole, for `verify`.
            pub async fn snapshot(connection: &mut $connection) -> Result<Snapshot, sqlx::Error> {
                let mut snapshot = Snapshot::default();
                let rows = sqlx::query("SELECT user_id, currency, available, held, position FROM balances")
                    .fetch_all(&mut *connection)
                    .await?;
                for row in rows {
                    let key = (UserId(row.try_get::<Uuid, _>(0)?), currency(&row.try_get::<String, _>(1)?)?);
                    let balance = Balance {
                        available: row.try_get::<Amount, _>(2)?.0,
                        held: row.try_get::<Amount, _>(3)?.0,
                        position: row.try_get(4)?,
                    };
                    snapshot.balances.insert(key, balance);
                }
                let rows = sqlx::query(
                    "SELECT user_id, currency, position, event_type, reference, available_change, held_change, \
                     available_after, held_after, recorded_at FROM statement_lines ORDER BY position, user_id, currency",
                )
                .fetch_all(&mut *connection)
                .await?;
                for row in rows {
                    snapshot.statement.push(StatementLine {
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
                    });
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

engine_sink!(postgres, sqlx::PgConnection);
engine_sink!(sqlite, sqlx::SqliteConnection);
