//! `/api/v1/webhooks/*`: providers telling us about SMS, checked by signature before anything
//! else. A webhook for a rental we do not know (yet) is a 404, so the provider retries it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;

use super::AppState;
use super::bodies::{Envelope, ErrorBody, Message};
use super::error::{ApiError, ApiOk};
use crate::projection::orders as orders_view;
use crate::providers::textverified;
use crate::store::Metadata;

#[utoipa::path(
    post,
    path = "/api/v1/webhooks/textverified",
    tag = "webhooks",
    summary = "TextVerified's v2.sms.received, signed X-Webhook-Signature: HMAC-SHA512=<base64>",
    description = "The body is TextVerified's event JSON, read only after its signature checks out.",
    params(("X-Webhook-Signature" = String, Header, description = "HMAC-SHA512=<base64 of the HMAC of the body>")),
    responses(
        (status = 200, body = Envelope<Message>),
        (status = 401, description = "missing or bad signature", body = ErrorBody),
        (status = 404, description = "webhooks not configured, or an unknown rental", body = ErrorBody),
    )
)]
pub async fn textverified(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<ApiOk<Message>, ApiError> {
    let Some(secret) = &state.textverified_webhook_secret else {
        return Err(ApiError::not_found("TextVerified webhooks are not configured (TEXTVERIFIED_WEBHOOK_SECRET)"));
    };
    let signature = headers.get("x-webhook-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (rental, sms) = textverified::verify_webhook(secret.as_bytes(), signature, &body).map_err(|error| {
        state.system_log.record("webhook", "textverified", "warn", format!("refused: {error}"));
        ApiError::unauthorized(error.to_string())
    })?;
    // The rental was recorded before the provider could send an SMS to it; the view may lag.
    crate::read::wait_for_view(&state.store, orders_view::NAME).await?;
    let order = orders_view::find_rental(state.store.engine(), textverified::PROVIDER_ID, &rental)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found(format!("no order has rental {rental}")))?;
    let metadata = Metadata { actor: Some("provider:textverified".into()), ..Metadata::default() };
    state.orders.record_sms(order, sms.sms_id, sms.code, sms.text, &metadata).await?;
    Ok(ApiOk(Message::new("recorded")))
}
