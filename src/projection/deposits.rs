//! The deposits view table: one row per deposit (the whole `DepositView` as JSON, plus the
//! columns it is searched by). Users read their recharge history from it; admins the deposits
//! waiting for them.

use std::collections::BTreeMap;

use domain::deposit::{DepositEvent, DepositMethod, DepositStatus};
use domain::{DepositId, DomainEvent, UserId};
use projections::{DepositView, deposit_status_text as status_text};
use sqlx::Row;
use uuid::Uuid;

use super::page::Slice;
use super::runner::ProjectionError;
use super::sink;
use super::views::ByDocument;
use crate::search::{Total, Where};
use crate::store::Engine;

/// The checkpoint name (and table) of the live deposits view.
pub const NAME: &str = super::views::View::Deposits.name();

/// The deposit events of a page, by deposit, oldest first.
fn deposit_events(page: Slice<'_>) -> Result<ByDocument<'_, DepositId, DepositEvent>, ProjectionError> {
    let by_stream = super::views::events_by_stream(page, "deposit.", "deposit-", |event| match event {
        DomainEvent::Deposit(deposit) => Some(deposit),
        _ => None,
    })?;
    Ok(by_stream.into_iter().map(|(id, events)| (DepositId(id), events)).collect())
}

fn parse_view(text: &str) -> Result<DepositView, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A page of deposits and how many match in all.
#[derive(Debug)]
pub struct DepositPage {
    pub deposits: Vec<DepositView>,
    pub total: Total,
}

macro_rules! engine_deposits {
    ($module:ident, $connection:ty) => {
        pub mod $module {
            use super::*;

            /// Applies a page's deposit events to the rows they touch.
            pub async fn apply_page(
                connection: &mut $connection,
                table: &str,
                page: Slice<'_>,
            ) -> Result<(), ProjectionError> {
                let by_deposit = deposit_events(page)?;
                let ids: Vec<Uuid> = by_deposit.keys().map(|id| id.0).collect();
                let mut views: BTreeMap<DepositId, DepositView> = BTreeMap::new();
                for text in sink::$module::documents_by_id(connection, table, "deposit_id", &ids).await? {
                    let view = parse_view(&text)?;
                    views.insert(view.deposit_id, view);
                }
                for (id, events) in by_deposit {
                    let (view, position) = crate::projection::views::fold_document(
                        id,
                        views.remove(&id),
                        &events,
                        |event, _| DepositView::initiated(event),
                        DepositView::apply,
                        "deposit.initiated",
                    )?;
                    let view = &view;
                    sqlx::query(sink::sql(format!(
                        "INSERT INTO {table} (deposit_id, user_id, method, status, created_at, position, view) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (deposit_id) DO UPDATE SET \
                         status = excluded.status, position = excluded.position, view = excluded.view",
                    )))
                    .bind(id.0)
                    .bind(view.user_id.0)
                    .bind(view.method.as_str())
                    .bind(status_text(view.status))
                    .bind(view.created_at.0)
                    .bind(position)
                    .bind(serde_json::to_string(view).expect("a deposit view serializes"))
                    .execute(&mut *connection)
                    .await?;
                }
                Ok(())
            }

            /// Deposits newest first: one user's (or everyone's), optionally of one status and method.
            pub async fn page(
                connection: &mut $connection,
                user: Option<UserId>,
                status: Option<DepositStatus>,
                method: Option<DepositMethod>,
                offset: i64,
                limit: i64,
            ) -> Result<DepositPage, sqlx::Error> {
                let conditions = Where::new()
                    .and("user_id = $", user.map(|u| u.0))
                    .and("status = $", status.map(status_text))
                    .and("method = $", method.map(DepositMethod::as_str));
                let order = "created_at DESC, deposit_id DESC";
                let (texts, total) =
                    sink::$module::documents_where(connection, (NAME, order), &conditions, offset, limit).await?;
                let deposits = texts.iter().map(|text| parse_view(text)).collect::<Result<_, _>>()?;
                Ok(DepositPage { deposits, total })
            }

            /// Deposits created in `[from, before)` (ms), oldest first, after the key `(created_at, id)`.
            pub async fn created_between(
                connection: &mut $connection,
                from: i64,
                before: i64,
                after: Option<(i64, Uuid)>,
                limit: i64,
            ) -> Result<Vec<DepositView>, sqlx::Error> {
                let columns = (NAME, "created_at", "deposit_id");
                let texts = sink::$module::documents_between(connection, columns, (from, before), after, limit).await?;
                texts.iter().map(|text| parse_view(text)).collect()
            }

            /// Every deposit view, for `verify` to compare with the log.
            pub async fn all(connection: &mut $connection) -> Result<BTreeMap<DepositId, DepositView>, sqlx::Error> {
                let rows = sqlx::query("SELECT view FROM deposits").fetch_all(&mut *connection).await?;
                let mut views = BTreeMap::new();
                for row in rows {
                    let view = parse_view(&row.try_get::<String, _>(0)?)?;
                    views.insert(view.deposit_id, view);
                }
                Ok(views)
            }
        }
    };
}

engine_deposits!(postgres, sqlx::PgConnection);
engine_deposits!(sqlite, sqlx::SqliteConnection);

/// A page of the deposits created in `[from, before)` (ms), oldest first, after the key given.
pub async fn deposits_created_between(
    engine: &Engine,
    from: i64,
    before: i64,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<DepositView>, sqlx::Error> {
    crate::on_engine!(engine, created_between(from, before, after, limit))
}

/// Deposits newest first: one user's (or everyone's), optionally of one status and method.
pub async fn list(
    engine: &Engine,
    user: Option<UserId>,
    status: Option<DepositStatus>,
    method: Option<DepositMethod>,
    offset: i64,
    limit: i64,
) -> Result<DepositPage, sqlx::Error> {
    crate::on_engine!(engine, page(user, status, method, offset, limit))
}
