//! The orders view table: one row per order (the whole `OrderView` as JSON, plus the columns
//! it is searched by), kept by a projector with the same discipline as the ledger ones: a
//! batch and its checkpoint commit together. Users list their orders from it; the order
//! monitor scans it for open orders.

use std::collections::BTreeMap;

use domain::order::{OrderEvent, OrderStatus};
use domain::{DomainEvent, OrderId, Timestamp, UserId};
use futures_util::TryStreamExt;
use projections::OrderView;
use sqlx::Row;
use uuid::Uuid;

use super::page::Slice;
use super::runner::ProjectionError;
use super::sink;
use super::views::ByDocument;
use crate::search::{Total, Where};
use crate::store::Engine;

/// The checkpoint name (and table) of the live orders view.
pub const NAME: &str = super::views::View::Orders.name();

pub fn status_text(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Placed => "placed",
        OrderStatus::NumberAssigned => "number_assigned",
        OrderStatus::SmsReceived => "sms_received",
        OrderStatus::Finished => "finished",
        OrderStatus::Cancelled => "cancelled",
        OrderStatus::Expired => "expired",
        OrderStatus::ProviderFailed => "provider_failed",
    }
}

/// The status `status_text` stored as `text`.
pub fn status_from_text(text: &str) -> Option<OrderStatus> {
    use OrderStatus::*;
    [Placed, NumberAssigned, SmsReceived, Finished, Cancelled, Expired, ProviderFailed]
        .into_iter()
        .find(|status| status_text(*status) == text)
}

/// Orders written by one upsert on SQLite (12 values each, within its limit).
const ROWS_PER_STATEMENT: usize = 100;

/// The order events of a page, by order, oldest first.
fn order_events(page: Slice<'_>) -> Result<ByDocument<'_, OrderId, OrderEvent>, ProjectionError> {
    let by_stream = super::views::events_by_stream(page, "order.", "order-", |event| match event {
        DomainEvent::Order(order) => Some(order),
        _ => None,
    })?;
    Ok(by_stream.into_iter().map(|(id, events)| (OrderId(id), events)).collect())
}

fn parse_view(text: &str) -> Result<OrderView, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// What admins narrow the orders list by; `None` matches all.
#[derive(Clone, Debug, Default)]
pub struct AdminFilter {
    pub user: Option<UserId>,
    pub status: Option<OrderStatus>,
    pub provider: Option<String>,
    pub service: Option<String>,
    pub country: Option<String>,
    /// Placed at or after.
    pub placed_from: Option<domain::Timestamp>,
    /// Placed before.
    pub placed_before: Option<domain::Timestamp>,
}

/// A page of orders and how many match in all.
#[derive(Debug, Default)]
pub struct OrderPage {
    pub orders: Vec<OrderView>,
    pub total: i64,
}

/// An order folded by a batch: its view, the position of its last event, the view as JSON.
type Folded = (OrderView, i64, String);

/// The columns an order's row is written with, in this order.
const COLUMNS: &str = "order_id, user_id, status, provider_id, provider_order_id, placed_at, expires_at, position, view, service, country, waiting";

/// The open orders (`placed`, `number_assigned`, `sms_received`: the statuses of the
/// `orders_open` index) the monitor acts on (waiting for an SMS or past their deadline, `$4`), a
/// page of `$3` after the deadline and id `($1, $2)`, in the order of the `orders_open` index.
pub const WATCHED: &str = "SELECT view FROM orders \
     WHERE status IN ('placed', 'number_assigned', 'sms_received') AND (waiting OR expires_at <= $4) \
     AND (expires_at, order_id) > ($1, $2) ORDER BY expires_at, order_id LIMIT $3";

/// What an upsert changes on an order's row (the rest never changes).
const ON_CONFLICT: &str = "ON CONFLICT (order_id) DO UPDATE SET status = excluded.status, \
     provider_id = excluded.provider_id, provider_order_id = excluded.provider_order_id, \
     expires_at = excluded.expires_at, position = excluded.position, view = excluded.view, \
     waiting = excluded.waiting";

/// On PostgreSQL a batch's orders go in as twelve arrays (`UNNEST`): one statement text,
/// prepared once per connection, however many orders. Orders the table does not have yet are
/// inserted plainly (an `ON CONFLICT` insert checks the key first and cost a quarter more); the
/// rest are upserted by the same arrays, whose arbiter is the key's index whatever the plan.
async fn write_rows_postgres(
    connection: &mut sqlx::PgConnection,
    table: &str,
    folded: &[Folded],
    new: bool,
) -> Result<(), sqlx::Error> {
    if folded.is_empty() {
        return Ok(());
    }
    let on_conflict = if new { "" } else { ON_CONFLICT };
    let text = format!(
        "INSERT INTO {table} ({COLUMNS}) SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], \
         $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::bool[]) {on_conflict}"
    );
    let column = |f: fn(&Folded) -> Option<&str>| folded.iter().map(f).collect::<Vec<_>>();
    let number = |f: fn(&Folded) -> i64| folded.iter().map(f).collect::<Vec<_>>();
    sqlx::query(sink::sql(text))
        .bind(folded.iter().map(|(view, ..)| view.order_id.0).collect::<Vec<_>>())
        .bind(folded.iter().map(|(view, ..)| view.user_id.0).collect::<Vec<_>>())
        .bind(column(|(view, ..)| Some(status_text(view.status))))
        .bind(column(|(view, ..)| view.provider_id.as_deref()))
        .bind(column(|(view, ..)| view.provider_order_id.as_deref()))
        .bind(number(|(view, ..)| view.placed_at.0))
        .bind(number(|(view, ..)| view.expires_at.0))
        .bind(number(|(_, position, _)| *position))
        .bind(column(|(.., json)| Some(json.as_str())))
        .bind(column(|(view, ..)| Some(view.service.as_str())))
        .bind(column(|(view, ..)| Some(view.country.as_str())))
        .bind(folded.iter().map(|(view, ..)| crate::orders::waits_for_sms(view)).collect::<Vec<_>>())
        .execute(connection)
        .await?;
    Ok(())
}

/// On SQLite (no arrays), many rows a statement: one round trip for a page's orders. New and
/// stored orders alike are upserted (an embedded insert's key check costs little).
async fn write_rows_sqlite(
    connection: &mut sqlx::SqliteConnection,
    table: &str,
    folded: &[Folded],
    _new: bool,
) -> Result<(), sqlx::Error> {
    for chunk in folded.chunks(ROWS_PER_STATEMENT) {
        let text =
            format!("INSERT INTO {table} ({COLUMNS}) VALUES {} {ON_CONFLICT}", sink::placeholders(chunk.len(), 12));
        let mut query = sqlx::query(sink::sql(text));
        for (view, position, json) in chunk {
            query = query
                .bind(view.order_id.0)
                .bind(view.user_id.0)
                .bind(status_text(view.status))
                .bind(view.provider_id.as_deref())
                .bind(view.provider_order_id.as_deref())
                .bind(view.placed_at.0)
                .bind(view.expires_at.0)
                .bind(*position)
                .bind(json.as_str())
                .bind(view.service.as_str())
                .bind(view.country.as_str())
                .bind(crate::orders::waits_for_sms(view));
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}

macro_rules! engine_orders {
    ($module:ident, $connection:ty, $write_rows:path) => {
        pub mod $module {
            use super::*;

            /// Applies a page's order events to the rows they touch.
            pub async fn apply_page(
                connection: &mut $connection,
                table: &str,
                page: Slice<'_>,
            ) -> Result<(), ProjectionError> {
                let by_order = order_events(page)?;
                if by_order.is_empty() {
                    return Ok(());
                }
                let ids: Vec<Uuid> = by_order.keys().map(|id| id.0).collect();
                let mut views: BTreeMap<OrderId, OrderView> = BTreeMap::new();
                for text in sink::$module::documents_by_id(connection, table, "order_id", &ids).await? {
                    let view = parse_view(&text)?;
                    views.insert(view.order_id, view);
                }
                // Orders placed in this page, and orders the table has.
                let (mut new, mut stored) = (Vec::new(), Vec::with_capacity(views.len()));
                for (id, events) in by_order {
                    let view = views.remove(&id);
                    let rows = if view.is_some() { &mut stored } else { &mut new };
                    let (view, position) = crate::projection::views::fold_document(
                        id,
                        view,
                        &events,
                        OrderView::placed,
                        OrderView::apply,
                        "order.placed",
                    )?;
                    let json = serde_json::to_string(&view).expect("an order view serializes");
                    rows.push((view, position, json));
                }
                $write_rows(connection, table, &new, true).await?;
                $write_rows(connection, table, &stored, false).await?;
                Ok(())
            }

            /// A user's orders, newest first, optionally of one status, and the view's
            /// checkpoint, in one statement (one snapshot): the page includes every event up
            /// to the checkpoint.
            pub async fn for_user(
                connection: &mut $connection,
                user: UserId,
                status: Option<OrderStatus>,
                offset: i64,
                limit: i64,
                known_total: Option<i64>,
            ) -> Result<(i64, OrderPage), sqlx::Error> {
                let filter = if status.is_some() { "AND status = $2" } else { "AND $2 IS NULL" };
                // Counting visits every one of the user's rows: skipped when the caller knows.
                let total = if known_total.is_none() { format!("(SELECT count(*) FROM orders WHERE user_id = $1 {filter})") } else { "CAST(0 AS BIGINT)".into() };
                let text = format!(
                    "SELECT c.checkpoint, c.total, o.view FROM \
                     (SELECT COALESCE((SELECT position FROM projection_checkpoints WHERE name = $5), 0) AS checkpoint, \
                             {total} AS total) AS c \
                     LEFT JOIN (SELECT view, placed_at, order_id FROM orders WHERE user_id = $1 {filter} \
                                ORDER BY placed_at DESC, order_id DESC LIMIT $3 OFFSET $4) AS o ON 1 = 1 \
                     ORDER BY o.placed_at DESC, o.order_id DESC"
                );
                // Each row is parsed as it arrives and dropped: a whole list's load (up to
                // `LIST_MAX` orders, 16 loads at once) never holds its rows and views together.
                let mut rows = sqlx::query(sink::sql(text))
                    .bind(user.0)
                    .bind(status.map(status_text))
                    .bind(limit)
                    .bind(offset)
                    .bind(NAME)
                    .fetch(&mut *connection);
                let mut head = None;
                let mut orders = Vec::new();
                while let Some(row) = rows.try_next().await? {
                    if head.is_none() {
                        head = Some((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?));
                    }
                    if let Some(view) = row.try_get::<Option<&str>, _>(2)? {
                        orders.push(parse_view(view)?);
                    }
                }
                let Some((checkpoint, total)) = head else { return Err(sqlx::Error::RowNotFound) };
                Ok((checkpoint, OrderPage { orders, total: known_total.unwrap_or(total) }))
            }

            /// Every order of a user with its status, and the view's checkpoint, in one
            /// statement.
            pub async fn statuses_for_user(
                connection: &mut $connection,
                user: UserId,
            ) -> Result<(i64, Vec<(OrderId, OrderStatus)>), sqlx::Error> {
                let text = "SELECT c.checkpoint, o.order_id, o.status FROM \
                     (SELECT COALESCE((SELECT position FROM projection_checkpoints WHERE name = $2), 0) AS checkpoint) AS c \
                     LEFT JOIN (SELECT order_id, status FROM orders WHERE user_id = $1) AS o ON 1 = 1";
                let rows = sqlx::query(sink::sql(text.to_owned())).bind(user.0).bind(NAME).fetch_all(&mut *connection).await?;
                let Some(first) = rows.first() else { return Err(sqlx::Error::RowNotFound) };
                let checkpoint: i64 = first.try_get(0)?;
                let mut statuses = Vec::with_capacity(rows.len());
                for row in &rows {
                    if let Some(id) = row.try_get::<Option<Uuid>, _>(1)? {
                        let text: String = row.try_get(2)?;
                        let status = status_from_text(&text)
                            .ok_or_else(|| sqlx::Error::Decode(format!("unknown order status {text:?}").into()))?;
                        statuses.push((OrderId(id), status));
                    }
                }
                Ok((checkpoint, statuses))
            }

            /// Every user's orders, newest first, narrowed by the filter.
            pub async fn search(
                connection: &mut $connection,
                filter: &AdminFilter,
                offset: i64,
                limit: i64,
            ) -> Result<(Vec<OrderView>, Total), sqlx::Error> {
                let conditions = Where::new()
                    .and("user_id = $", filter.user.map(|u| u.0))
                    .and("status = $", filter.status.map(status_text))
                    .and("provider_id = $", filter.provider.as_deref())
                    .and("service = $", filter.service.as_deref())
                    .and("country = $", filter.country.as_deref())
                    .and("placed_at >= $", filter.placed_from.map(|t| t.0))
                    .and("placed_at < $", filter.placed_before.map(|t| t.0));
                let order = "placed_at DESC, order_id DESC";
                let (texts, total) =
                    sink::$module::documents_where(connection, (NAME, order), &conditions, offset, limit).await?;
                let orders = texts.iter().map(|text| parse_view(text)).collect::<Result<_, _>>()?;
                Ok((orders, total))
            }

            /// Orders placed in `[from, before)` (ms), oldest first, after the key `(placed_at, id)`.
            pub async fn placed_between(
                connection: &mut $connection,
                from: i64,
                before: i64,
                after: Option<(i64, Uuid)>,
                limit: i64,
            ) -> Result<Vec<OrderView>, sqlx::Error> {
                let columns = (NAME, "placed_at", "order_id");
                let texts = sink::$module::documents_between(connection, columns, (from, before), after, limit).await?;
                texts.iter().map(|text| parse_view(text)).collect()
            }

            /// Open orders the monitor must act on at `now` (waiting for an SMS, or past their
            /// expiry), the soonest to expire first.
            pub async fn watched(
                connection: &mut $connection,
                now: Timestamp,
                after: Option<(Timestamp, OrderId)>,
                limit: i64,
            ) -> Result<Vec<OrderView>, sqlx::Error> {
                // The first page starts before every key: the keyset is then one range of
                // `orders_open`, whatever the page (decision 0034).
                let (at, id) = after.map_or((i64::MIN, Uuid::nil()), |(at, id)| (at.0, id.0));
                let rows = sqlx::query(sink::sql(WATCHED.to_owned()))
                    .bind(at)
                    .bind(id)
                    .bind(limit)
                    .bind(now.0)
                    .fetch_all(&mut *connection)
                    .await?;
                rows.iter().map(|row| parse_view(&row.try_get::<String, _>(0)?)).collect()
            }

            /// Every order view, for `verify` to compare with the log.
            pub async fn all(connection: &mut $connection) -> Result<BTreeMap<OrderId, OrderView>, sqlx::Error> {
                let rows = sqlx::query("SELECT view FROM orders").fetch_all(&mut *connection).await?;
                let mut views = BTreeMap::new();
                for row in rows {
                    let view = parse_view(&row.try_get::<String, _>(0)?)?;
                    views.insert(view.order_id, view);
                }
                Ok(views)
            }

            /// The order a provider's rental belongs to.
            pub async fn by_rental(
                connection: &mut $connection,
                provider_id: &str,
                provider_order_id: &str,
            ) -> Result<Option<OrderId>, sqlx::Error> {
                let row: Option<(Uuid,)> =
                    sqlx::query_as("SELECT order_id FROM orders WHERE provider_id = $1 AND provider_order_id = $2")
                        .bind(provider_id)
                        .bind(provider_order_id)
                        .fetch_optional(&mut *connection)
                        .await?;
                Ok(row.map(|(id,)| OrderId(id)))
            }
        }
    };
}

engine_orders!(postgres, sqlx::PgConnection, write_rows_postgres);
engine_orders!(sqlite, sqlx::SqliteConnection, write_rows_sqlite);

/// Calls the engine's version of a query function on a pooled connection.
#[macro_export]
#[doc(hidden)]
macro_rules! on_engine {
    ($engine:expr, $function:ident($($arg:expr),*)) => {
        match $engine {
            Engine::Postgres(pool) => postgres::$function(&mut *pool.acquire().await?, $($arg),*).await,
            Engine::Sqlite(pool) => sqlite::$function(&mut *pool.acquire().await?, $($arg),*).await,
        }
    };
}

/// A user's orders, newest first, optionally of one status, with the view's checkpoint; the
/// page's total is `known_total` when the caller knows it, else counted.
pub async fn list_for_user(
    engine: &Engine,
    user: UserId,
    status: Option<OrderStatus>,
    offset: i64,
    limit: i64,
    known_total: Option<i64>,
) -> Result<(i64, OrderPage), sqlx::Error> {
    on_engine!(engine, for_user(user, status, offset, limit, known_total))
}

/// Every order of a user with its status, with the view's checkpoint.
pub async fn statuses_for_user(
    engine: &Engine,
    user: UserId,
) -> Result<(i64, Vec<(OrderId, OrderStatus)>), sqlx::Error> {
    on_engine!(engine, statuses_for_user(user))
}

/// Every user's orders, newest first, narrowed by the filter.
pub async fn search_orders(
    engine: &Engine,
    filter: &AdminFilter,
    offset: i64,
    limit: i64,
) -> Result<(Vec<OrderView>, Total), sqlx::Error> {
    on_engine!(engine, search(filter, offset, limit))
}

/// A page of the orders placed in `[from, before)` (ms), oldest first, after the key given.
pub async fn orders_placed_between(
    engine: &Engine,
    from: i64,
    before: i64,
    after: Option<(i64, Uuid)>,
    limit: i64,
) -> Result<Vec<OrderView>, sqlx::Error> {
    on_engine!(engine, placed_between(from, before, after, limit))
}

/// Open orders the monitor must act on at `now`: waiting for an SMS, or past their expiry (an
/// order with its SMS is not read again until then); the soonest to expire first (then by
/// id), after `after` (that deadline and id).
pub async fn watched_orders(
    engine: &Engine,
    now: Timestamp,
    after: Option<(Timestamp, OrderId)>,
    limit: i64,
) -> Result<Vec<OrderView>, sqlx::Error> {
    on_engine!(engine, watched(now, after, limit))
}

/// The order a provider's rental belongs to.
pub async fn find_rental(
    engine: &Engine,
    provider_id: &str,
    provider_order_id: &str,
) -> Result<Option<OrderId>, sqlx::Error> {
    on_engine!(engine, by_rental(provider_id, provider_order_id))
}
