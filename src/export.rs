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

/// Starts an export on its own task; the receiver yields its chunks in order.
pub fn spawn_postings(
    store: EventStore,
    after: i64,
    up_to: i64,
    format: Format,
) -> (mpsc::Receiver<String>, tokio::task::JoinHandle<Result<Totals, StoreError>>) {
    let (sender, receiver) = mpsc::channel(EXPORT_PAGES_AHEAD_MAX);
    let task = tokio::spawn(async move { postings(&store, after, up_to, format, sender).await });
    (receiver, task)
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
