//! Finance exports of the ledger's postings, streamed: the log is read a page at a time and
//! each page is written out before the next is read, so memory stays flat however many rows
//! there are. Each export ends with its totals per account and currency, which for an export
//! from the start of the log are the trial balance at its end.
//!
//! CSV: a header, then one row per posting leg:
//! `position,recorded_at,event_id,event_type,stream_id,account,currency,amount`, then one
//! `total` row per account and currency (position, time and ids empty). Plain UTF-8, comma
//! separated, amounts as plain decimals, times in RFC 3339: it opens as is in a spreadsheet.
//! JSONL: one object per leg, then one `{"total": ...}` object per account and currency.

use std::collections::BTreeMap;

use domain::Currency;
use rust_decimal::Decimal;
use serde_json::json;
use tokio::sync::mpsc;

use crate::projection::views::View;
use crate::store::{EventStore, LogReader, StoreError};

/// Events read per page.
pub const EXPORT_PAGE_EVENTS: u32 = 2_000;
/// Pages written ahead of a slow reader before the export waits for it.
pub const EXPORT_PAGES_AHEAD_MAX: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "csv" => Some(Format::Csv),
            "jsonl" => Some(Format::Jsonl),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/x-ndjson",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

const CSV_HEADER: &str = "position,recorded_at,event_id,event_type,stream_id,account,currency,amount\n";

/// Quotes a CSV field that needs it (a comma, a quote or a line break).
fn csv_field(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\"")).into()
    } else {
        text.into()
    }
}

/// Net change per account and currency over the exported rows.
pub type Totals = BTreeMap<(String, Currency), Decimal>;

/// Streams the postings of the events at positions in `(after, up_to]` into `out`, one chunk
/// per page, and the totals last. Returns the totals. A receiver that goes away stops it.
pub async fn postings(
    store: &EventStore,
    after: i64,
    up_to: i64,
    format: Format,
    out: mpsc::Sender<String>,
) -> Result<Totals, StoreError> {
    let mut totals = Totals::new();
    if format == Format::Csv && out.send(CSV_HEADER.to_owned()).await.is_err() {
        return Ok(totals);
    }
    let mut reader = LogReader::new(store.engine(), after, EXPORT_PAGE_EVENTS);
    'pages: loop {
        let page = reader.next_page().await?;
        if page.is_empty() {
            break;
        }
        let mut chunk = String::new();
        for event in &page {
            if event.position > up_to {
                send(&out, chunk).await;
                break 'pages;
            }
            let decoded =
                event.decode().map_err(|e| StoreError::Corrupt { position: event.position, reason: e.to_string() })?;
            let at = event.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            for leg in decoded.postings().into_iter().flat_map(|p| p.legs()) {
                let account = leg.account.to_string();
                let (currency, amount) = (leg.amount.currency, leg.amount.amount);
                *totals.entry((account.clone(), currency)).or_insert(Decimal::ZERO) += amount;
                match format {
                    Format::Csv => chunk.push_str(&format!(
                        "{},{at},{},{},{},{},{currency},{amount}\n",
                        event.position,
                        event.event_id,
                        csv_field(&event.event_type),
                        csv_field(&event.stream_id),
                        csv_field(&account),
                    )),
                    Format::Jsonl => {
                        let row = json!({
                            "position": event.position,
                            "recorded_at": at,
                            "event_id": event.event_id,
                            "event_type": event.event_type,
                            "stream_id": event.stream_id,
                            "account": account,
                            "currency": currency,
                            "amount": amount.to_string(),
                        });
                        chunk.push_str(&row.to_string());
                        chunk.push('\n');
                    }
                }
            }
        }
        if !send(&out, chunk).await {
            return Ok(totals);
        }
    }
    send(&out, totals_text(&totals, format)).await;
    Ok(totals)
}

async fn send(out: &mpsc::Sender<String>, chunk: String) -> bool {
    chunk.is_empty() || out.send(chunk).await.is_ok()
}

/// The trailer: one total per account and currency.
fn totals_text(totals: &Totals, format: Format) -> String {
    let mut text = String::new();
    for ((account, currency), amount) in totals {
        match format {
            Format::Csv => text.push_str(&format!(",,,total,,{},{currency},{amount}\n", csv_field(account))),
            Format::Jsonl => {
                let total = json!({"total": {"account": account, "currency": currency, "amount": amount.to_string()}});
                text.push_str(&total.to_string());
                text.push('\n');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("user:1:available"), "user:1:available");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}

/// A bound the caller gave that is neither a position, an RFC 3339 instant nor a date.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a log position, an RFC 3339 instant or a date (YYYY-MM-DD)")]
pub struct BadBound(pub String);

/// A bound as given: a log position, an instant, or a date (midnight UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Position(i64),
    Instant(chrono::DateTime<chrono::Utc>),
}

impl Bound {
    pub fn parse(text: &str) -> Result<Bound, BadBound> {
        let text = text.trim();
        let bad = || BadBound(text.to_owned());
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse().map(Bound::Position).map_err(|_| bad());
        }
        if let Ok(instant) = chrono::DateTime::parse_from_rfc3339(text) {
            return Ok(Bound::Instant(instant.with_timezone(&chrono::Utc)));
        }
        let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| bad())?;
        Ok(Bound::Instant(date.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc()))
    }
}

/// The positions `(after, up_to]` an export covers: `from` inclusive (a position, or events
/// recorded at or after an instant), `to` inclusive for a position and exclusive for an
/// instant; no `from` is the start of the log, no `to` its head now.
pub async fn positions(store: &EventStore, from: Option<Bound>, to: Option<Bound>) -> Result<(i64, i64), StoreError> {
    let before = |instant: chrono::DateTime<chrono::Utc>| instant - chrono::Duration::microseconds(1);
    let after = match from {
        None => 0,
        Some(Bound::Position(position)) => position.saturating_sub(1).max(0),
        Some(Bound::Instant(instant)) => store.position_at(before(instant)).await?,
    };
    let up_to = match to {
        None => store.head().await?.position,
        Some(Bound::Position(position)) => position,
        Some(Bound::Instant(instant)) => store.position_at(before(instant)).await?,
    };
    Ok((after, up_to.max(after)))
}

/// What an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// One row per posting leg (the ledger).
    Postings,
    /// One row per order placed in the range (the orders view).
    Orders,
    /// One row per deposit started in the range (the deposits view).
    Deposits,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "postings" => Some(Kind::Postings),
            "orders" => Some(Kind::Orders),
            "deposits" => Some(Kind::Deposits),
            _ => None,
        }
    }
}

/// Events a view folds per transaction while the CLI catches it up for an export.
const CATCH_UP_BATCH_MAX: u32 = 1_000;

/// Documents read per page.
const DOCUMENT_PAGE_ROWS: i64 = 1_000;

const ORDERS_HEADER: &str =
    "order_id,serial,user_id,status,service,country,provider,price,cost,currency,placed_at,closed_at\n";
const DEPOSITS_HEADER: &str =
    "deposit_id,user_id,method,status,amount,received,refunded,disputed,currency,reference,created_at,updated_at\n";

fn time(at: domain::Timestamp) -> String {
    crate::identity::rfc3339(at)
}

/// Per (status or method/status, currency): count and money sums.
type DocumentTotals = BTreeMap<(String, String), (u64, [Decimal; 4])>;

fn order_row(view: &projections::OrderView, format: Format, totals: &mut DocumentTotals) -> String {
    let status = crate::projection::orders::status_text(view.status);
    let cost = view.cost.map(|c| c.amount);
    let entry = totals.entry((status.to_owned(), view.price.currency.to_string())).or_default();
    entry.0 += 1;
    entry.1[0] += view.price.amount;
    entry.1[1] += cost.unwrap_or_default();
    match format {
        Format::Csv => format!(
            "{},{},{},{status},{},{},{},{},{},{},{},{}\n",
            view.order_id,
            view.serial,
            view.user_id,
            view.service,
            view.country,
            view.provider_id.as_deref().map(csv_field).unwrap_or_default(),
            view.price.amount,
            cost.map(|c| c.to_string()).unwrap_or_default(),
            view.price.currency,
            time(view.placed_at),
            view.closed_at.map(time).unwrap_or_default(),
        ),
        Format::Jsonl => format!("{}\n", serde_json::to_string(view).expect("an order view serializes")),
    }
}

fn deposit_row(view: &projections::DepositView, format: Format, totals: &mut DocumentTotals) -> String {
    let status = projections::deposit_status_text(view.status);
    let received = view.received.map(|r| r.amount);
    let key = (format!("{}/{status}", view.method.as_str()), view.amount.currency.to_string());
    let entry = totals.entry(key).or_default();
    entry.0 += 1;
    entry.1[0] += view.amount.amount;
    entry.1[1] += received.unwrap_or_default();
    entry.1[2] += view.refunded;
    entry.1[3] += view.disputed;
    match format {
        Format::Csv => format!(
            "{},{},{},{status},{},{},{},{},{},{},{},{}\n",
            view.deposit_id,
            view.user_id,
            view.method.as_str(),
            view.amount.amount,
            received.map(|r| r.to_string()).unwrap_or_default(),
            view.refunded,
            view.disputed,
            view.amount.currency,
            view.reference.as_deref().map(csv_field).unwrap_or_default(),
            time(view.created_at),
            time(view.updated_at),
        ),
        Format::Jsonl => format!("{}\n", serde_json::to_string(view).expect("a deposit view serializes")),
    }
}

/// The trailer of an orders or deposits export: count and sums per group and currency.
/// CSV: the first column says `total`, the second the count; orders put the price and cost
/// sums in the price and cost columns, deposits the amount, received, refunded and disputed sums
/// in theirs, and the group (status, or method/status) in the status column.
fn document_totals(kind: Kind, totals: &DocumentTotals, format: Format) -> String {
    let mut text = String::new();
    for ((group, currency), (count, sums)) in totals {
        let line = match (format, kind) {
            (Format::Csv, Kind::Orders) => format!("total,{count},,{group},,,,{},{},{currency},,\n", sums[0], sums[1]),
            (Format::Csv, _) => {
                format!("total,{count},,{group},{},{},{},{},{currency},,,\n", sums[0], sums[1], sums[2], sums[3])
            }
            (Format::Jsonl, Kind::Orders) => format!(
                "{}\n",
                json!({"total": {"status": group, "currency": currency, "count": count,
                    "price": sums[0].to_string(), "cost": sums[1].to_string()}})
            ),
            (Format::Jsonl, _) => format!(
                "{}\n",
                json!({"total": {"group": group, "currency": currency, "count": count, "amount": sums[0].to_string(),
                    "received": sums[1].to_string(), "refunded": sums[2].to_string(), "disputed": sums[3].to_string()}})
            ),
        };
        text.push_str(&line);
    }
    text
}

/// Streams the orders placed (or deposits started) in `[from_ms, before_ms)` into `out`, a page
/// at a time, oldest first, and the totals last.
pub async fn documents(
    engine: &crate::store::Engine,
    kind: Kind,
    from_ms: i64,
    before_ms: i64,
    format: Format,
    out: mpsc::Sender<String>,
) -> Result<(), StoreError> {
    let header = if kind == Kind::Orders { ORDERS_HEADER } else { DEPOSITS_HEADER };
    if format == Format::Csv && out.send(header.to_owned()).await.is_err() {
        return Ok(());
    }
    let mut totals = DocumentTotals::new();
    let mut after = None;
    loop {
        let database = |e: sqlx::Error| StoreError::from(e);
        let (chunk, last, count) = match kind {
            Kind::Orders => {
                let page = crate::projection::orders::orders_placed_between(
                    engine,
                    from_ms,
                    before_ms,
                    after,
                    DOCUMENT_PAGE_ROWS,
                )
                .await
                .map_err(database)?;
                let last = page.last().map(|v| (v.placed_at.0, v.order_id.0));
                (page.iter().map(|v| order_row(v, format, &mut totals)).collect::<String>(), last, page.len())
            }
            _ => {
                let page = crate::projection::deposits::deposits_created_between(
                    engine,
                    from_ms,
                    before_ms,
                    after,
                    DOCUMENT_PAGE_ROWS,
                )
                .await
                .map_err(database)?;
                let last = page.last().map(|v| (v.created_at.0, v.deposit_id.0));
                (page.iter().map(|v| deposit_row(v, format, &mut totals)).collect::<String>(), last, page.len())
            }
        };
        if !send(&out, chunk).await {
            return Ok(());
        }
        if (count as i64) < DOCUMENT_PAGE_ROWS {
            break;
        }
        after = last;
    }
    send(&out, document_totals(kind, &totals, format)).await;
    Ok(())
}

/// Milliseconds of a bound for a document export: instants and dates only.
pub fn bound_ms(bound: Option<Bound>, default: i64) -> Result<i64, BadBound> {
    match bound {
        None => Ok(default),
        Some(Bound::Instant(instant)) => Ok(instant.timestamp_millis()),
        Some(Bound::Position(position)) => {
            Err(BadBound(format!("{position} (orders and deposits take dates or instants)")))
        }
    }
}

/// Starts an export of any kind on its own task; the receiver yields its chunks in order.
pub async fn spawn(
    store: EventStore,
    kind: Kind,
    from: Option<Bound>,
    to: Option<Bound>,
    format: Format,
) -> Result<(mpsc::Receiver<String>, tokio::task::JoinHandle<Result<(), StoreError>>), ExportError> {
    let (sender, receiver) = mpsc::channel(EXPORT_PAGES_AHEAD_MAX);
    let task = match kind {
        Kind::Postings => {
            let (after, up_to) = positions(&store, from, to).await?;
            tokio::spawn(async move { postings(&store, after, up_to, format, sender).await.map(|_| ()) })
        }
        Kind::Orders | Kind::Deposits => {
            let (from_ms, before_ms) = (bound_ms(from, i64::MIN)?, bound_ms(to, i64::MAX)?);
            let engine = store.engine().clone();
            tokio::spawn(async move { documents(&engine, kind, from_ms, before_ms, format, sender).await })
        }
    };
    Ok((receiver, task))
}

/// The view an export of `kind` reads, if it reads one.
pub fn view_of(kind: Kind) -> Option<View> {
    match kind {
        Kind::Postings => None,
        Kind::Orders => Some(View::Orders),
        Kind::Deposits => Some(View::Deposits),
    }
}

/// Brings the view an export reads up to the log head, for a process that runs no projector
/// (the CLI); `serve` waits for its live projector instead (`read::wait_for_view`).
pub async fn catch_up(store: &EventStore, kind: Kind) -> Result<(), StoreError> {
    let Some(view) = view_of(kind) else { return Ok(()) };
    while crate::projection::views::run_batch(store.engine(), view, CATCH_UP_BATCH_MAX)
        .await
        .map_err(|e| StoreError::TaskFailed(format!("catching up {}: {e}", view.name())))?
        > 0
    {}
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Bound(#[from] BadBound),
    #[error(transparent)]
    Store(#[from] StoreError),
}
