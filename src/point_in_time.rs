//! Balances as they were: fold an account's postings from the log up to a position.

use std::collections::BTreeMap;

use domain::{Account, Currency};
use rust_decimal::Decimal;

use crate::store::{EventStore, StoreError};

/// Events read per page while folding.
const PAGE_EVENTS: u32 = 5_000;

/// The balance of `account` per currency after every event up to and including `position`.
pub async fn account_balance(
    store: &EventStore,
    account: &Account,
    position: i64,
) -> Result<BTreeMap<Currency, Decimal>, StoreError> {
    let mut balances = BTreeMap::new();
    let mut after = 0;
    while after < position {
        let page = store.read_all(after, PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in page.iter().take_while(|e| e.position <= position) {
            let decoded =
                event.decode().map_err(|e| StoreError::Corrupt { position: event.position, reason: e.to_string() })?;
            for leg in decoded.postings().into_iter().flat_map(|p| p.legs()) {
                if &leg.account == account {
                    *balances.entry(leg.amount.currency).or_insert(Decimal::ZERO) += leg.amount.amount;
                }
            }
        }
    }
    Ok(balances)
}

/// Every account's balance per currency after every event up to and including `position`:
/// the trial balance as it was then. Its sum per currency is zero in a sound ledger.
pub async fn trial_balance(
    store: &EventStore,
    position: i64,
) -> Result<BTreeMap<(String, Currency), Decimal>, StoreError> {
    let mut balances = BTreeMap::new();
    let mut reader = crate::store::LogReader::new(store.engine(), 0, PAGE_EVENTS);
    'pages: loop {
        let page = reader.next_page().await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            if event.position > position {
                break 'pages;
            }
            let decoded =
                event.decode().map_err(|e| StoreError::Corrupt { position: event.position, reason: e.to_string() })?;
            for leg in decoded.postings().into_iter().flat_map(|p| p.legs()) {
                *balances.entry((leg.account.to_string(), leg.amount.currency)).or_insert(Decimal::ZERO) +=
                    leg.amount.amount;
            }
        }
    }
    Ok(balances)
}
