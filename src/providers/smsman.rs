//! SMS-Man's control API (`{base}/control/...`, token in the query, JSON answers).
//!
//! - `get-balance` -> `{"balance": "12.34"}`
//! - `countries`, `applications` -> entries with an `id`, a `title`/`name` and a `code`, as an
//!   object keyed by id or as an array (both are seen; ids as numbers or strings)
//! - `get-prices?country_id=` -> `{"<country_id>": {"<application_id>": {"cost": .., "count": ..}}}`
//! - `get-number?country_id=&application_id=` -> `{"request_id": .., "number": "..."}`
//! - `get-sms?request_id=` -> `{"request_id": .., "sms_code": "..."}`, or the error `wait_sms`
//! - `set-status?request_id=&status=ready|close|reject|used` -> `{"success": true}`
//! - errors: `{"success": false, "error_code": "wrong_token" | "no_numbers" | "balance" | ...,
//!   "error_msg": "..."}`, sometimes with HTTP 200.
//!
//! Our service codes (`tg`) and countries (ISO alpha-2) are mapped to SMS-Man's numeric ids
//! through `applications` and `countries`, read on first need and kept.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use domain::catalog::{CountryCode, PhoneNumber, ServiceCode};
use domain::{Currency, Money};
use rust_decimal::Decimal;
use serde_json::Value;

use super::{
    NumberRequest, Offer, ProviderError, ReceivedSms, Rental, SmsStatus, json_decimal as decimal, json_text as text,
};

pub const PROVIDER_ID: &str = "smsman";
pub const BASE_URL_DEFAULT: &str = "https://api.sms-man.com";

#[derive(Clone, Debug)]
pub struct SmsManSettings {
    /// Without the `/control` suffix (`SMSMAN_BASE_URL`); tests point it at a local fake.
    pub base_url: String,
    pub token: String,
    /// Whole-request timeout, connection included.
    pub timeout: Duration,
    /// SMS-Man prices in this currency.
    pub currency: Currency,
}

#[derive(Default)]
struct Ids {
    services: HashMap<ServiceCode, String>,
    countries: HashMap<CountryCode, String>,
    /// Known costs by (country id, application id), from `get-prices`.
    costs: HashMap<(String, String), Decimal>,
}

pub struct SmsMan {
    http: reqwest::Client,
    settings: SmsManSettings,
    ids: Mutex<Ids>,
}

impl SmsMan {
    pub fn new(settings: SmsManSettings) -> SmsMan {
        let http = super::http_client(settings.timeout);
        SmsMan { http, settings, ids: Mutex::default() }
    }

    /// Answers when the token works.
    pub async fn health(&self) -> Result<(), ProviderError> {
        self.balance().await.map(|_| ())
    }

    /// One call: `GET {base}/control/{method}?token=..&{params}`, the answer as JSON, SMS-Man's
    /// error objects turned into `ProviderError`.
    async fn call(&self, method: &str, params: &[(&str, &str)]) -> Result<Value, ProviderError> {
        let url = format!("{}/control/{method}", self.settings.base_url.trim_end_matches('/'));
        let mut query = vec![("token", self.settings.token.as_str())];
        query.extend_from_slice(params);
        let url = reqwest::Url::parse_with_params(&url, &query)
            .map_err(|e| ProviderError::Unavailable(format!("SMS-Man base URL: {e}")))?;
        let response = self.http.get(url).send().await.map_err(|e| {
            let what = if e.is_timeout() { "timed out" } else { "unreachable" };
            ProviderError::Unavailable(format!("SMS-Man {method} {what}"))
        })?;
        let status = response.status();
        let body =
            response.bytes().await.map_err(|_| ProviderError::Unavailable(format!("SMS-Man {method}: body cut")))?;
        let value: Option<Value> = serde_json::from_slice(&body).ok();
        if let Some(error) = value.as_ref().and_then(error_of) {
            return Err(error);
        }
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!("SMS-Man {method}: HTTP {status}")));
        }
        match value {
            Some(value) if status.is_success() => Ok(value),
            Some(_) => Err(ProviderError::Refused(format!("SMS-Man {method}: HTTP {status}"))),
            None => Err(ProviderError::Unavailable(format!("SMS-Man {method}: not JSON (HTTP {status})"))),
        }
    }

    pub async fn balance(&self) -> Result<Money, ProviderError> {
        let answer = self.call("get-balance", &[]).await?;
        let balance = decimal(&answer["balance"]).ok_or_else(|| garbage("get-balance"))?;
        Money::new(balance, self.settings.currency).map_err(|_| garbage("get-balance"))
    }

    /// Reads SMS-Man's application and country lists into the id maps.
    async fn load_ids(&self) -> Result<(), ProviderError> {
        let applications = self.call("applications", &[]).await?;
        let countries = self.call("countries", &[]).await?;
        let mut ids = self.ids.lock().expect("ids lock");
        for (id, code) in entries(&applications) {
            if let Ok(code) = ServiceCode::parse(&code.to_lowercase()) {
                ids.services.insert(code, id);
            }
        }
        for (id, code) in entries(&countries) {
            if let Ok(code) = CountryCode::parse(&code.to_uppercase()) {
                ids.countries.insert(code, id);
            }
        }
        Ok(())
    }

    async fn ids_for(&self, service: &ServiceCode, country: &CountryCode) -> Result<(String, String), ProviderError> {
        let known = |ids: &Ids| Some((ids.countries.get(country)?.clone(), ids.services.get(service)?.clone()));
        if let Some(found) = known(&self.ids.lock().expect("ids lock")) {
            return Ok(found);
        }
        self.load_ids().await?;
        known(&self.ids.lock().expect("ids lock")).ok_or(ProviderError::NoNumbers)
    }

    /// Prices and free numbers of one country, by application id; remembered for `rent`.
    async fn prices(&self, country_id: &str) -> Result<HashMap<String, (Decimal, u32)>, ProviderError> {
        let answer = self.call("get-prices", &[("country_id", country_id)]).await?;
        let by_application = answer.get(country_id).and_then(Value::as_object).ok_or_else(|| garbage("get-prices"))?;
        let mut prices = HashMap::new();
        for (application_id, offer) in by_application {
            let (Some(cost), count) = (decimal(&offer["cost"]), number(&offer["count"]).unwrap_or(0)) else {
                continue;
            };
            prices.insert(application_id.clone(), (cost, u32::try_from(count).unwrap_or(u32::MAX)));
        }
        let mut ids = self.ids.lock().expect("ids lock");
        for (application_id, (cost, _)) in &prices {
            ids.costs.insert((country_id.to_owned(), application_id.clone()), *cost);
        }
        Ok(prices)
    }

    /// Every priced service in every country we have a code for.
    pub async fn offers(&self) -> Result<Vec<Offer>, ProviderError> {
        self.load_ids().await?;
        let (countries, services): (Vec<_>, HashMap<String, ServiceCode>) = {
            let ids = self.ids.lock().expect("ids lock");
            let countries = ids.countries.iter().map(|(code, id)| (code.clone(), id.clone())).collect();
            let services = ids.services.iter().map(|(code, id)| (id.clone(), code.clone())).collect();
            (countries, services)
        };
        let mut offers = Vec::new();
        for (country, country_id) in countries {
            for (application_id, (cost, available)) in self.prices(&country_id).await? {
                let Some(service) = services.get(&application_id) else { continue };
                let cost = Money::new(cost, self.settings.currency).map_err(|_| garbage("get-prices"))?;
                offers.push(Offer { service: service.clone(), country: country.clone(), cost, available });
            }
        }
        Ok(offers)
    }

    pub async fn rent(&self, request: &NumberRequest) -> Result<Rental, ProviderError> {
        let (country_id, application_id) = self.ids_for(&request.service, &request.country).await?;
        let key = (country_id.clone(), application_id.clone());
        let known_cost = self.ids.lock().expect("ids lock").costs.get(&key).copied();
        let cost = match known_cost {
            Some(cost) => cost,
            None => {
                self.prices(&country_id).await?.get(&application_id).map(|(c, _)| *c).ok_or(ProviderError::NoNumbers)?
            }
        };
        let cost = Money::new(cost, self.settings.currency).map_err(|_| garbage("get-prices"))?;
        request.check_cost(cost)?;
        let answer =
            self.call("get-number", &[("country_id", &country_id), ("application_id", &application_id)]).await?;
        let request_id = text(&answer["request_id"]).ok_or_else(|| garbage("get-number"))?;
        let number = text(&answer["number"]).ok_or_else(|| garbage("get-number"))?;
        let phone =
            PhoneNumber::parse(&format!("+{}", number.trim_start_matches('+'))).map_err(|_| garbage("get-number"))?;
        Ok(Rental { provider_order_id: request_id, phone, cost })
    }

    pub async fn sms(&self, provider_order_id: &str) -> Result<SmsStatus, ProviderError> {
        match self.call("get-sms", &[("request_id", provider_order_id)]).await {
            Ok(answer) => match text(&answer["sms_code"]) {
                Some(code) if !code.is_empty() => Ok(SmsStatus::Received(vec![ReceivedSms {
                    sms_id: format!("{provider_order_id}-0"),
                    text: code.clone(),
                    code,
                }])),
                _ => Ok(SmsStatus::Waiting),
            },
            Err(ProviderError::Refused(reason)) if reason.starts_with("wait_sms") => Ok(SmsStatus::Waiting),
            Err(ProviderError::Refused(reason)) if is_closed(&reason) => Ok(SmsStatus::Ended),
            Err(other) => Err(other),
        }
    }

    async fn set_status(&self, provider_order_id: &str, status: &str) -> Result<(), ProviderError> {
        self.call("set-status", &[("request_id", provider_order_id), ("status", status)]).await.map(|_| ())
    }

    /// `reject`: the number is given back unused and SMS-Man refunds it.
    pub async fn cancel(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        self.set_status(provider_order_id, "reject").await
    }

    /// `close`: the activation is complete.
    pub async fn finish(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        self.set_status(provider_order_id, "close").await
    }

    /// SMS-Man's control API has no "another SMS" status.
    pub async fn another_sms(&self, _provider_order_id: &str) -> Result<(), ProviderError> {
        Err(ProviderError::Refused("SMS-Man cannot send another SMS to a number".into()))
    }
}

/// SMS-Man's error object, as a `ProviderError` (what routing should do with it).
fn error_of(value: &Value) -> Option<ProviderError> {
    let code = value.get("error_code").and_then(Value::as_str)?;
    let message = value.get("error_msg").and_then(Value::as_str).unwrap_or("");
    Some(match code {
        "no_numbers" => ProviderError::NoNumbers,
        "balance" => ProviderError::Unavailable(format!("our SMS-Man balance is too low: {message}")),
        "wrong_request_id" | "request_not_found" => ProviderError::UnknownRental,
        _ => ProviderError::Refused(format!("{code}: {message}")),
    })
}

fn is_closed(reason: &str) -> bool {
    ["closed", "reject", "cancel", "expired"].iter().any(|word| reason.contains(word))
}

fn garbage(method: &str) -> ProviderError {
    ProviderError::Unavailable(format!("SMS-Man {method}: unexpected answer"))
}

fn number(value: &Value) -> Option<u64> {
    text(value)?.parse().ok()
}

/// `(id, code)` of a list answer, whether an array or an object keyed by id.
fn entries(value: &Value) -> Vec<(String, String)> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => vec![],
    };
    items.into_iter().filter_map(|item| Some((text(&item["id"])?, text(&item["code"])?))).collect()
}
