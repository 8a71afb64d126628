//! The one error type of the HTTP layer and the project's response envelopes.
//!
//! Success: `{"success": true, "data": ...}`. Error: `{"success": false, "error": "message",
//! "details": {...}}`. Internal causes are logged once, with the request id, by
//! [`super::conventions`], and never shown to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub details: Value,
    pub retry_after_s: Option<u64>,
    /// For 500s: what went wrong, for the log only.
    cause: Option<String>,
}

/// Marks an error response whose body is already what the client should see.
#[derive(Clone, Copy, Debug)]
pub struct FormattedError;

/// The internal cause of a 500, carried to the logging middleware and dropped there.
#[derive(Clone, Debug)]
pub struct InternalCause(pub String);

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into(), details: json!({}), retry_after_s: None, cause: None }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// A business rule refused the request (insufficient balance, cancel too early, ...).
    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn rate_limited(retry_after_s: u64) -> Self {
        let mut error = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too many requests; retry later");
        error.retry_after_s = Some(retry_after_s);
        error
    }

    pub fn unavailable(message: impl Into<String>, retry_after_s: u64) -> Self {
        let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message);
        error.retry_after_s = Some(retry_after_s);
        error
    }

    /// A fault of ours. The client sees a request id to quote; the log gets `cause`.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut error = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        error.cause = Some(cause.to_string());
        error
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"success": false, "error": self.message, "details": self.details});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after_s {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(FormattedError);
        if let Some(cause) = self.cause {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

/// `{"success": true, "data": ...}` with 200.
pub struct ApiOk<T>(pub T);

/// The success envelope, serialized straight to the body (no JSON tree built first: that
/// was a quarter of a read's CPU time).
#[derive(Serialize)]
struct Success<T> {
    success: bool,
    data: T,
}

impl<T: Serialize> IntoResponse for ApiOk<T> {
    fn into_response(self) -> Response {
        success(StatusCode::OK, self.0)
    }
}

/// Bytes reserved for a success body before it is serialized. A page of 20 orders is about
/// 10 KiB; grown from axum's 128 bytes, it was copied seven times on the way.
const BODY_BYTES_RESERVED: usize = 4096;

/// The success envelope around `data`, serialized into one buffer.
fn success<T: Serialize>(status: StatusCode, data: T) -> Response {
    let mut body = Vec::with_capacity(BODY_BYTES_RESERVED);
    match serde_json::to_writer(&mut body, &Success { success: true, data }) {
        Ok(()) => {
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
        }
        Err(error) => ApiError::internal(format!("serializing a response: {error}")).into_response(),
    }
}

/// `{"success": true, "data": ...}` with 201.
pub struct ApiCreated<T>(pub T);

impl<T: Serialize> IntoResponse for ApiCreated<T> {
    fn into_response(self) -> Response {
        success(StatusCode::CREATED, self.0)
    }
}

/// A ledger command's refusal: a business rule is 422, a lost race after retries 409, the
/// rest is ours (500).
impl From<crate::service::ServiceError> for ApiError {
    fn from(error: crate::service::ServiceError) -> Self {
        use crate::service::ServiceError;
        match error {
            ServiceError::Wallet(refused) => ApiError::unprocessable(refused.to_string()),
            ServiceError::Order(refused) => ApiError::unprocessable(refused.to_string()),
            ServiceError::Deposit(refused) => ApiError::unprocessable(refused.to_string()),
            ServiceError::ReferenceUsed => ApiError::conflict("this reference was already used for a deposit"),
            ServiceError::Store(crate::store::StoreError::Conflict { .. }) => {
                ApiError::conflict("the resource changed concurrently; retry")
            }
            other => ApiError::internal(other),
        }
    }
}

/// A read that waited for its view: a view that did not catch up in time is a 503 (retry
/// shortly); anything else is ours.
impl From<crate::read::ReadError> for ApiError {
    fn from(error: crate::read::ReadError) -> Self {
        match error {
            crate::read::ReadError::Stale { projection, .. } => {
                ApiError::unavailable(format!("the {projection} view is catching up; retry shortly"), 1)
            }
            other => ApiError::internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(response: Response) -> (StatusCode, String, Value) {
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE].to_str().unwrap().to_owned();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, content_type, serde_json::from_slice(&body).unwrap())
    }

    /// Success envelopes are JSON with their status, small or larger than the buffer reserved.
    #[tokio::test]
    async fn successes_are_json_envelopes() {
        let small = parts(ApiOk(json!({"balance": "1.50"})).into_response()).await;
        assert_eq!(
            small,
            (StatusCode::OK, "application/json".into(), json!({"success": true, "data": {"balance": "1.50"}}))
        );
        let long = "x".repeat(3 * BODY_BYTES_RESERVED);
        let created = parts(ApiCreated(vec![long.as_str(); 2]).into_response()).await;
        assert_eq!(
            created,
            (StatusCode::CREATED, "application/json".into(), json!({"success": true, "data": [long, long]}))
        );
    }
}
