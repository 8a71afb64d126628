//! The analytics table: `projections::AnalyticsFold` rows, added to the stored ones a page at a
//! time (read, add in Rust, write: no arithmetic in SQL), by a projector of its own.

use std::collections::BTreeMap;

use projections::{AnalyticsFold, AnalyticsKey};
use rust_decimal::Decimal;
use sqlx::Row;

use super::page::Slice;
use super::runner::ProjectionError;
use super::sink::{self, placeholders};
use super::sql_types::Amount;
use crate::store::Engine;

/// The checkpoint name (and table) of the live analytics view.
pub const NAME: &str = super::views::View::Analytics.name();

/// Rows of 5 parameters per statement.
const ROWS_PER_STATEMENT: usize = 200;

/// One stored row, with its metric as text.
pub type Row5 = (String, String, String, String, Decimal);

/// Folds a page; events that do not decode are refused (a corrupt log stops the projector).
fn fold_page(page: Slice<'_>) -> Result<AnalyticsFold, ProjectionError> {
    let mut fold = AnalyticsFold::default();
    for (event, decoded) in
        page.iter().filter(|(e, _)| e.event_type.starts_with("wallet.") || e.event_type.starts_with("order."))
    {
        fold.apply(event.recorded_at.timestamp_micros(), decoded?);
    }
    Ok(fold)
}

macro_rules! engine_analytics {
    ($module:ident, $connection:ty) => {
        pub mod $module {
            use super::*;

            /// Adds a page's analytics to the stored rows.
            pub async fn apply_page(
                connection: &mut $connection,
                table: &str,
                page: Slice<'_>,
            ) -> Result<(), ProjectionError> {
                let fold = fold_page(page)?;
                let keys: Vec<&AnalyticsKey> = fold.rows.keys().collect();
                let mut stored: BTreeMap<(String, String, String, String), Decimal> = BTreeMap::new();
                for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                    let text = format!(
                        "SELECT day, metric, key, currency, value FROM {table} WHERE (day, metric, key, currency) IN (VALUES {})",
                        placeholders(chunk.len(), 4)
                    );
                    let mut query = sqlx::query(sink::sql(text));
                    for (day, metric, key, currency) in chunk {
                        query = query.bind(day.as_str()).bind(*metric).bind(key.as_str()).bind(currency.as_str());
                    }
                    for row in query.fetch_all(&mut *connection).await? {
                        let key = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?);
                        stored.insert(key, row.try_get::<Amount, _>(4)?.0);
                    }
                }
                let rows: Vec<(&AnalyticsKey, Decimal)> = fold
                    .rows
                    .iter()
                    .map(|(key @ (day, metric, name, currency), value)| {
                        let before = stored.get(&(day.clone(), (*metric).to_owned(), name.clone(), currency.clone()));
                        (key, before.copied().unwrap_or_default() + value)
                    })
                    .collect();
                for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                    let text = format!(
                        "INSERT INTO {table} (day, metric, key, currency, value) VALUES {} \
                         ON CONFLICT (day, metric, key, currency) DO UPDATE SET value = excluded.value",
                        placeholders(chunk.len(), 5)
                    );
                    let mut query = sqlx::query(sink::sql(text));
                    for ((day, metric, key, currency), value) in chunk {
                        query = query
                            .bind(day.as_str())
                            .bind(*metric)
                            .bind(key.as_str())
                            .bind(currency.as_str())
                            .bind(Amount(*value));
                    }
                    query.execute(&mut *connection).await?;
                }
                Ok(())
            }

            /// Rows of the days `from..=to` (`YYYY-MM-DD`), by day.
            pub async fn between(connection: &mut $connection, from: &str, to: &str) -> Result<Vec<Row5>, sqlx::Error> {
                let rows = sqlx::query(
                    "SELECT day, metric, key, currency, value FROM analytics WHERE day >= $1 AND day <= $2 \
                     ORDER BY day, metric, key, currency",
                )
                .bind(from)
                .bind(to)
                .fetch_all(&mut *connection)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?, row.try_get(3)?, row.try_get::<Amount, _>(4)?.0))
                    })
                    .collect()
            }
        }
    };
}

engine_analytics!(postgres, sqlx::PgConnection);
engine_analytics!(sqlite, sqlx::SqliteConnection);

/// Rows of the days `from..=to`, by day.
pub async fn rows_between(engine: &Engine, from: &str, to: &str) -> Result<Vec<Row5>, sqlx::Error> {
    crate::on_engine!(engine, between(from, to))
}
