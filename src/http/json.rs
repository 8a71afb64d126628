//! `ApiJson<T>`: axum's `Json` whose every rejection is a 400 in the project's format.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(reject(rejection)),
        }
    }
}

fn reject(rejection: JsonRejection) -> ApiError {
    let message = match &rejection {
        JsonRejection::JsonDataError(_) => "request body has a missing field or a field of the wrong type",
        JsonRejection::JsonSyntaxError(_) => "request body is not valid JSON",
        JsonRejection::MissingJsonContentType(_) => "request body must be JSON (Content-Type: application/json)",
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            "request body is larger than the limit"
        }
        _ => "request body could not be read",
    };
    ApiError::bad_request(message).with_details(json!({"reason": rejection.body_text()}))
}

/// axum's `Path` whose rejection is a 400 in the project's format.
pub struct ApiPath<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::bad_request("a path parameter is malformed")
                .with_details(json!({"reason": rejection.body_text()}))),
        }
    }
}

/// axum's `Query` whose rejection is a 400 in the project's format.
pub struct ApiQuery<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(ApiQuery(value)),
            Err(rejection) => Err(ApiError::bad_request("a query parameter is malformed")
                .with_details(json!({"reason": rejection.body_text()}))),
        }
    }
}
