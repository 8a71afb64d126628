//! TextVerified's API v2 (`{base}/api/pub/v2/...`), US numbers, prices in USD.
//!
//! - `POST /auth` with `X-API-KEY` and `X-API-USERNAME` -> `{"token", "expiresAt"}`: a bearer
//!   token, kept until shortly before it expires
//! - `POST /pricing/verifications` `{serviceName, areaCode, carrier, numberType, capability}`
//!   -> `{"serviceName", "price"}`
//! - `POST /verifications` `{serviceName, capability, maxPrice}` -> 201 and a link
//!   `{"method": "GET", "href": ".../verifications/{id}"}`, followed to the verification
//!   `{"id", "number", "state", "totalCost", ...}`
//! - `GET /sms?reservationId={id}` -> `{"data": [{"id", "smsContent", "parsedCode", ...}]}`
//! - `POST /verifications/{id}/cancel`, `/reuse`
//! - `GET /account/me` -> `{"username", "currentBalance"}`: what we hold there, in USD
//! - webhook `v2.sms.received`, signed `X-Webhook-Signature: HMAC-SHA512=<base64 of the HMAC
//!   of the raw body>` (see [`verify_webhook`]).
//!
//! Our service codes map to TextVerified's service names through [`SERVICE_NAMES`].

use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use domain::catalog::{CountryCode, PhoneNumber, ServiceCode};
use domain::{Currency, Money};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{
    NumberRequest, Offer, ProviderError, ReceivedSms, Rental, SmsStatus, json_decimal as decimal, json_text as text,
};

pub const PROVIDER_ID: &str = "textverified";
pub const BASE_URL_DEFAULT: &str = "https://www.textverified.com";
/// TextVerified rents US numbers only.
pub const COUNTRY: &str = "US";

/// Our service codes (SMS-Activate's conventions) and TextVerified's names for them.
pub const SERVICE_NAMES: [(&str, &str); 12] = [
    ("tg", "telegram"),
    ("wa", "whatsapp"),
    ("go", "google"),
    ("fb", "facebook"),
    ("ig", "instagram"),
    ("tw", "twitter"),
    ("ds", "discord"),
    ("am", "amazon"),
    ("mm", "microsoft"),
    ("ub", "uber"),
    ("vi", "viber"),
    ("tn", "linkedin"),
];

/// A token is renewed this long before TextVerified says it expires.
const TOKEN_RENEW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Clone, Debug)]
pub struct TextVerifiedSettings {
    pub base_url: String,
    pub username: String,
    pub api_key: String,
    pub timeout: Duration,
}

struct Bearer {
    token: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

pub struct TextVerified {
    http: reqwest::Client,
    settings: TextVerifiedSettings,
    bearer: tokio::sync::Mutex<Option<Bearer>>,
}

fn service_name(code: &ServiceCode) -> Option<&'static str> {
    SERVICE_NAMES.iter().find(|(ours, _)| *ours == code.as_str()).map(|(_, theirs)| *theirs)
}

fn usd(amount: Decimal) -> Result<Money, ProviderError> {
    Money::new(amount, Currency::parse("USD").expect("USD")).map_err(|_| garbage("price"))
}

impl TextVerified {
    pub fn new(settings: TextVerifiedSettings) -> TextVerified {
        let http = super::http_client(settings.timeout);
        TextVerified { http, settings, bearer: tokio::sync::Mutex::new(None) }
    }

    /// Answers when the credentials get a token.
    pub async fn health(&self) -> Result<(), ProviderError> {
        self.token().await.map(|_| ())
    }

    /// What we hold at TextVerified (`GET /account/me`, `currentBalance`).
    pub async fn balance(&self) -> Result<Money, ProviderError> {
        let request = self.authorized(reqwest::Method::GET, self.url(&["account", "me"])?).await?;
        let answer = self.send_authorized(request, "account").await?;
        usd(decimal(&answer["currentBalance"]).ok_or_else(|| garbage("account"))?)
    }

    /// `{base}/api/pub/v2/{segments...}`, each segment escaped (ids come from TextVerified).
    fn url(&self, segments: &[&str]) -> Result<reqwest::Url, ProviderError> {
        let mut url = reqwest::Url::parse(&self.settings.base_url)
            .map_err(|e| ProviderError::Unavailable(format!("TextVerified base URL: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| ProviderError::Unavailable("TextVerified base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["api", "pub", "v2"])
            .extend(segments);
        Ok(url)
    }

    /// A valid bearer token: the kept one, or a new one from `POST /auth`.
    async fn token(&self) -> Result<String, ProviderError> {
        let mut bearer = self.bearer.lock().await;
        if let Some(current) = bearer.as_ref()
            && current.expires_at - TOKEN_RENEW_MARGIN > chrono::Utc::now()
        {
            return Ok(current.token.clone());
        }
        let request = self
            .http
            .post(self.url(&["auth"])?)
            .header("X-API-KEY", &self.settings.api_key)
            .header("X-API-USERNAME", &self.settings.username);
        let answer = self.send(request, "auth").await?;
        let token = text(&answer["token"]).ok_or_else(|| garbage("auth"))?;
        let expires_at = text(&answer["expiresAt"])
            .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
            .map(|at| at.with_timezone(&chrono::Utc))
            .ok_or_else(|| garbage("auth"))?;
        *bearer = Some(Bearer { token: token.clone(), expires_at });
        Ok(token)
    }

    /// Sends a request made with the kept token; a 401 drops the token, so the next call
    /// takes a new one. (Not while `token` holds the lock: it calls `send` directly.)
    async fn send_authorized(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, ProviderError> {
        let result = self.send(request, what).await;
        if let Err(ProviderError::Refused(reason)) = &result
            && reason.contains("HTTP 401")
        {
            *self.bearer.lock().await = None;
        }
        result
    }

    /// Sends one request; the answer as JSON (`{}` when empty).
    async fn send(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, ProviderError> {
        let response = request.send().await.map_err(|e| {
            let how = if e.is_timeout() { "timed out" } else { "unreachable" };
            ProviderError::Unavailable(format!("TextVerified {what} {how}"))
        })?;
        let status = response.status();
        let body =
            response.bytes().await.map_err(|_| ProviderError::Unavailable(format!("TextVerified {what}: body cut")))?;
        let value: Option<Value> = if body.is_empty() { Some(json!({})) } else { serde_json::from_slice(&body).ok() };
        if status.is_server_error() {
            return Err(ProviderError::Unavailable(format!("TextVerified {what}: HTTP {status}")));
        }
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ProviderError::UnknownRental);
        }
        match value {
            Some(value) if status.is_success() => Ok(value),
            Some(value) => {
                let reason = text(&value["errorDescription"]).or_else(|| text(&value["errorCode"])).unwrap_or_default();
                if reason.to_lowercase().contains("no ") && reason.to_lowercase().contains("available") {
                    return Err(ProviderError::NoNumbers);
                }
                Err(ProviderError::Refused(format!("TextVerified {what}: HTTP {status} {reason}")))
            }
            None => Err(ProviderError::Unavailable(format!("TextVerified {what}: not JSON (HTTP {status})"))),
        }
    }

    async fn authorized(
        &self,
        method: reqwest::Method,
        url: reqwest::Url,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let token = self.token().await?;
        Ok(self.http.request(method, url).bearer_auth(token))
    }

    async fn price(&self, name: &str) -> Result<Money, ProviderError> {
        let body = json!({
            "serviceName": name, "areaCode": false, "carrier": false, "numberType": "mobile", "capability": "sms"
        });
        let request =
            self.authorized(reqwest::Method::POST, self.url(&["pricing", "verifications"])?).await?.json(&body);
        let answer = self.send_authorized(request, "pricing").await?;
        usd(decimal(&answer["price"]).ok_or_else(|| garbage("pricing"))?)
    }

    /// A price for every mapped service, in the US. Availability is not published: offered
    /// services count as available.
    pub async fn offers(&self) -> Result<Vec<Offer>, ProviderError> {
        let mut offers = Vec::new();
        for (code, name) in SERVICE_NAMES {
            let cost = match self.price(name).await {
                Ok(cost) => cost,
                Err(ProviderError::Refused(_) | ProviderError::NoNumbers) => continue,
                Err(other) => return Err(other),
            };
            offers.push(Offer {
                service: ServiceCode::parse(code).expect("valid service code"),
                country: CountryCode::parse(COUNTRY).expect("valid country"),
                cost,
                available: 1,
            });
        }
        Ok(offers)
    }

    pub async fn rent(&self, request: &NumberRequest) -> Result<Rental, ProviderError> {
        let name = match (request.country.as_str(), service_name(&request.service)) {
            (COUNTRY, Some(name)) => name,
            _ => return Err(ProviderError::NoNumbers),
        };
        let cost = self.price(name).await?;
        request.check_cost(cost)?;
        let mut body = json!({"serviceName": name, "capability": "sms"});
        if let Some(max) = request.max_cost {
            body["maxPrice"] = json!(max.amount.to_string().parse::<f64>().unwrap_or_default());
        }
        let create = self.authorized(reqwest::Method::POST, self.url(&["verifications"])?).await?.json(&body);
        let link = self.send_authorized(create, "create verification").await?;
        let href = text(&link["href"]).ok_or_else(|| garbage("create verification"))?;
        let token = self.token().await?;
        let details = self.send_authorized(self.http.get(&href).bearer_auth(token), "verification").await?;
        let id = text(&details["id"]).ok_or_else(|| garbage("verification"))?;
        let number = text(&details["number"]).ok_or_else(|| garbage("verification"))?;
        let digits: String = number.chars().filter(char::is_ascii_digit).collect();
        let international = if digits.len() == 10 { format!("+1{digits}") } else { format!("+{digits}") };
        let phone = PhoneNumber::parse(&international).map_err(|_| garbage("verification"))?;
        let cost = decimal(&details["totalCost"]).map(usd).transpose()?.unwrap_or(cost);
        // `maxPrice` caps it on TextVerified's side; should a dearer one come back anyway, it is
        // given back rather than sold at a loss.
        if let Err(too_dear) = request.check_cost(cost) {
            if let Err(error) = self.cancel(&id).await {
                tracing::warn!(verification = %id, %error, "textverified.cancel_after_price_rise_failed");
            }
            return Err(too_dear);
        }
        Ok(Rental { provider_order_id: id, phone, cost })
    }

    pub async fn sms(&self, provider_order_id: &str) -> Result<SmsStatus, ProviderError> {
        let mut url = self.url(&["sms"])?;
        url.query_pairs_mut().append_pair("reservationId", provider_order_id);
        let request = self.authorized(reqwest::Method::GET, url).await?;
        let answer = self.send_authorized(request, "sms").await?;
        let received: Vec<ReceivedSms> =
            answer["data"].as_array().map(|items| items.iter().filter_map(received_sms).collect()).unwrap_or_default();
        if !received.is_empty() {
            return Ok(SmsStatus::Received(received));
        }
        let url = self.url(&["verifications", provider_order_id])?;
        let details = self.send_authorized(self.authorized(reqwest::Method::GET, url).await?, "verification").await?;
        let state = text(&details["state"]).unwrap_or_default();
        Ok(if state == "verificationPending" || state == "verificationReactivated" {
            SmsStatus::Waiting
        } else {
            SmsStatus::Ended
        })
    }

    async fn post_action(&self, provider_order_id: &str, action: &str) -> Result<(), ProviderError> {
        let url = self.url(&["verifications", provider_order_id, action])?;
        self.send_authorized(self.authorized(reqwest::Method::POST, url).await?, action).await.map(|_| ())
    }

    /// Cancel before an SMS: TextVerified refunds it.
    pub async fn cancel(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        self.post_action(provider_order_id, "cancel").await
    }

    /// Nothing to tell TextVerified: a verification ends by itself once used.
    pub async fn finish(&self, _provider_order_id: &str) -> Result<(), ProviderError> {
        Ok(())
    }

    /// `reuse`: the same number for another SMS.
    pub async fn another_sms(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        self.post_action(provider_order_id, "reuse").await
    }
}

/// An SMS from TextVerified's list or webhook, if it carries a code or text.
fn received_sms(item: &Value) -> Option<ReceivedSms> {
    let sms_id = text(&item["id"])?;
    let text_content = text(&item["smsContent"]).unwrap_or_default();
    let code = text(&item["parsedCode"]).filter(|c| !c.is_empty()).unwrap_or_else(|| text_content.clone());
    if code.is_empty() {
        return None;
    }
    Some(ReceivedSms { sms_id, code, text: text_content })
}

/// A `v2.sms.received` webhook, checked against its signature: the rental it is for and the SMS.
pub fn verify_webhook(
    secret: &[u8],
    signature_header: &str,
    body: &[u8],
) -> Result<(String, ReceivedSms), ProviderError> {
    let refused = |why: &str| ProviderError::Refused(format!("TextVerified webhook: {why}"));
    let signature = signature_header.trim().strip_prefix("HMAC-SHA512=").ok_or_else(|| refused("unsigned"))?;
    let signature = STANDARD.decode(signature).map_err(|_| refused("signature is not base64"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret);
    hmac::verify(&key, body, &signature).map_err(|_| refused("bad signature"))?;
    let event: Value = serde_json::from_slice(body).map_err(|_| refused("not JSON"))?;
    if event["event"] != "v2.sms.received" {
        return Err(refused("not an SMS event"));
    }
    let data = &event["data"];
    let reservation = text(&data["reservationId"]).ok_or_else(|| refused("no reservation"))?;
    let sms = received_sms(data).ok_or_else(|| refused("no SMS"))?;
    Ok((reservation, sms))
}

/// `HMAC-SHA512=<base64>` of `body`, as TextVerified signs it (for tests and tools).
pub fn sign_webhook(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA512, secret);
    format!("HMAC-SHA512={}", STANDARD.encode(hmac::sign(&key, body).as_ref()))
}

fn garbage(what: &str) -> ProviderError {
    ProviderError::Unavailable(format!("TextVerified {what}: unexpected answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhooks_are_accepted_only_with_a_good_signature() {
        let body = br#"{"attempt":1,"event":"v2.sms.received","id":"e1","idempotencyKey":"k1",
            "data":{"id":"sms-1","reservationId":"ver-9","smsContent":"Your code is 551122","parsedCode":"551122"}}"#;
        let signature = sign_webhook(b"whsec", body);
        let (reservation, sms) = verify_webhook(b"whsec", &signature, body).unwrap();
        assert_eq!((reservation.as_str(), sms.code.as_str(), sms.sms_id.as_str()), ("ver-9", "551122", "sms-1"));
        assert!(verify_webhook(b"other", &signature, body).is_err());
        let mut tampered = body.to_vec();
        tampered[30] ^= 1;
        assert!(verify_webhook(b"whsec", &signature, &tampered).is_err());
        assert!(verify_webhook(b"whsec", "HMAC-SHA256=abc", body).is_err());
        assert!(verify_webhook(b"whsec", "HMAC-SHA512=***", body).is_err());
    }
}
