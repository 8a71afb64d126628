//! TRON (USDT, TRC-20) transfers, read from a TronGrid-compatible API:
//! `GET {base}/v1/accounts/{our address}/transactions/trc20?only_confirmed=true&only_to=true&
//! contract_address={token}&limit=200[&fingerprint=]` (header `TRON-PRO-API-KEY` when a key is
//! set) -> `{"success": true, "data": [{"transaction_id", "token_info": {"address",
//! "decimals"}, "from", "to", "type": "Transfer", "value": "<integer in token units>"}],
//! "meta": {"fingerprint"}}`. Only confirmed transfers to our address of our token count.

use std::time::Duration;

use rust_decimal::Decimal;
use serde_json::Value;

pub const BASE_URL_DEFAULT: &str = "https://api.trongrid.io";
/// Tether's USDT contract on TRON mainnet.
pub const USDT_CONTRACT_DEFAULT: &str = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t";
/// Pages of 200 transfers searched for one transaction at most.
pub const SEARCH_PAGES_MAX: usize = 5;

#[derive(Clone, Debug)]
pub struct TronSettings {
    /// `TRONGRID_BASE_URL` (tests point it at a local fake).
    pub base_url: String,
    pub api_key: Option<String>,
    /// `TRON_ADDRESS`: where users send, base58.
    pub address: String,
    /// `TRON_USDT_CONTRACT`: the token accepted.
    pub contract: String,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum TronError {
    #[error("the TRON API is unavailable: {0}")]
    Unavailable(String),
}

/// A confirmed transfer of our token to our address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub transaction_id: String,
    pub from: String,
    pub amount: Decimal,
}

pub struct Tron {
    http: reqwest::Client,
    settings: TronSettings,
}

impl Tron {
    pub fn new(settings: TronSettings) -> Tron {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .build()
            .expect("a client with timeouts only always builds");
        Tron { http, settings }
    }

    pub fn address(&self) -> &str {
        &self.settings.address
    }

    /// The confirmed transfer to us with this transaction id, if it is among the newest
    /// [`SEARCH_PAGES_MAX`] pages of transfers to our address.
    pub async fn find_transfer(&self, transaction_id: &str) -> Result<Option<Transfer>, TronError> {
        let mut fingerprint: Option<String> = None;
        for _ in 0..SEARCH_PAGES_MAX {
            let page = self.page(fingerprint.as_deref()).await?;
            for entry in page["data"].as_array().into_iter().flatten() {
                if entry["transaction_id"].as_str() == Some(transaction_id) {
                    return Ok(self.transfer(entry));
                }
            }
            match page["meta"]["fingerprint"].as_str() {
                Some(next) if !next.is_empty() => fingerprint = Some(next.to_owned()),
                _ => return Ok(None),
            }
        }
        Ok(None)
    }

    async fn page(&self, fingerprint: Option<&str>) -> Result<Value, TronError> {
        let url = format!(
            "{}/v1/accounts/{}/transactions/trc20",
            self.settings.base_url.trim_end_matches('/'),
            self.settings.address
        );
        let mut query = vec![
            ("only_confirmed", "true"),
            ("only_to", "true"),
            ("limit", "200"),
            ("contract_address", self.settings.contract.as_str()),
        ];
        if let Some(fingerprint) = fingerprint {
            query.push(("fingerprint", fingerprint));
        }
        let query = serde_urlencoded::to_string(&query).expect("string pairs always encode");
        let mut request = self.http.get(format!("{url}?{query}"));
        if let Some(key) = &self.settings.api_key {
            request = request.header("TRON-PRO-API-KEY", key);
        }
        let unavailable =
            |e: reqwest::Error| TronError::Unavailable(if e.is_timeout() { "timed out".into() } else { e.to_string() });
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(TronError::Unavailable(format!("HTTP {status}")));
        }
        let body: Value = response.json().await.map_err(|_| TronError::Unavailable("not JSON".into()))?;
        if body["success"] != true {
            return Err(TronError::Unavailable(body["error"].as_str().unwrap_or("success is not true").to_owned()));
        }
        Ok(body)
    }

    /// An entry as a transfer, if it moves our token to our address.
    fn transfer(&self, entry: &Value) -> Option<Transfer> {
        let ours = entry["to"].as_str() == Some(self.settings.address.as_str())
            && entry["token_info"]["address"].as_str() == Some(self.settings.contract.as_str())
            && entry["type"].as_str() == Some("Transfer");
        let decimals = u32::try_from(entry["token_info"]["decimals"].as_u64()?).ok().filter(|d| *d <= 18)?;
        let units: i64 = entry["value"].as_str()?.parse().ok()?;
        let amount = Decimal::try_from_i128_with_scale(i128::from(units), decimals).ok()?;
        let from = entry["from"].as_str().unwrap_or_default().to_owned();
        let transaction_id = entry["transaction_id"].as_str()?.to_owned();
        (ours && amount > Decimal::ZERO).then_some(Transfer { transaction_id, from, amount })
    }
}
