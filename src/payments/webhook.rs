//! Stripe's webhook events, after the signature is checked:
//!
//! - `payment_intent.succeeded` credits `amount_received` once (keyed on the event id, and the
//!   deposit refuses a second success);
//! - `payment_intent.payment_failed` / `payment_intent.canceled` record a failure (a later
//!   success still credits: a declined card can be retried on the same intent);
//! - `charge.refunded` takes back what was newly refunded: `amount_refunded` is cumulative,
//!   so a repeat or an older event arriving late takes nothing;
//! - `charge.dispute.created` takes back the disputed amount, once per dispute id.
//!
//! A refund or dispute of a deposit not yet credited is answered 409, so Stripe delivers it
//! again later (after the success it was reordered with). Other event types are acknowledged
//! and ignored.

use domain::deposit::{DepositCommand, DepositError, DepositState, ReversalKind};
use domain::events::deposit_reference_stream;
use domain::{Currency, DepositId, DomainEvent, PositiveMoney};
use serde_json::Value;

use super::stripe::{SignatureError, from_minor, verify_signature};
use super::{PaymentError, Payments};
use crate::identity::now;
use crate::service::ServiceError;
use crate::store::Metadata;

#[derive(Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Money moved or a state was recorded.
    Recorded(&'static str),
    /// Nothing to do (a repeat, an event type we do not use, an intent that is not ours).
    Ignored(String),
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("Stripe payments are not enabled")]
    Disabled,
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("malformed event: {0}")]
    Malformed(String),
    /// Stripe should deliver it again later.
    #[error("not yet: {0}")]
    NotYet(String),
    #[error(transparent)]
    Ledger(#[from] ServiceError),
}

impl From<PaymentError> for WebhookError {
    fn from(error: PaymentError) -> Self {
        match error {
            PaymentError::Ledger(error) => WebhookError::Ledger(error),
            other => WebhookError::Malformed(other.to_string()),
        }
    }
}

struct Event<'a> {
    id: &'a str,
    object: &'a Value,
}

impl Payments {
    /// Verifies and applies one webhook delivery. `now_s` is the current unix time.
    pub async fn stripe_webhook(
        &self,
        signature: Option<&str>,
        body: &[u8],
        now_s: i64,
        metadata: Metadata,
    ) -> Result<WebhookOutcome, WebhookError> {
        let stripe = self.stripe().ok_or(WebhookError::Disabled)?;
        verify_signature(stripe.webhook_secret(), signature.unwrap_or_default(), body, now_s)?;
        let json: Value = serde_json::from_slice(body).map_err(|_| WebhookError::Malformed("not JSON".into()))?;
        let (Some(id), Some(kind)) = (json["id"].as_str(), json["type"].as_str()) else {
            return Err(WebhookError::Malformed("no id or type".into()));
        };
        let event = Event { id, object: &json["data"]["object"] };
        let mut metadata = metadata;
        metadata.actor = Some(format!("stripe:{id}"));
        match kind {
            "payment_intent.succeeded" => self.intent_succeeded(&event, metadata).await,
            "payment_intent.payment_failed" | "payment_intent.canceled" => {
                let reason = event.object["last_payment_error"]["message"]
                    .as_str()
                    .or(event.object["cancellation_reason"].as_str())
                    .unwrap_or(if kind.ends_with("canceled") { "canceled" } else { "payment failed" });
                self.intent_failed(&event, reason, metadata).await
            }
            "charge.refunded" => self.charge_refunded(&event, metadata).await,
            "charge.dispute.created" => self.dispute_created(&event, metadata).await,
            other => Ok(WebhookOutcome::Ignored(format!("{other} is not used"))),
        }
    }

    async fn intent_succeeded(&self, event: &Event<'_>, metadata: Metadata) -> Result<WebhookOutcome, WebhookError> {
        let amount = money(event.object, "amount_received");
        self.settle_intent(
            event,
            move || Ok(DepositCommand::Succeed { amount: amount?, at: now() }),
            "credited",
            metadata,
        )
        .await
    }

    async fn intent_failed(
        &self,
        event: &Event<'_>,
        reason: &str,
        metadata: Metadata,
    ) -> Result<WebhookOutcome, WebhookError> {
        let reason: String = reason.chars().take(domain::wallet::REASON_LENGTH_MAX).collect();
        let command = move || Ok(DepositCommand::Fail { reason, at: now() });
        self.settle_intent(event, command, "failure recorded", metadata).await
    }

    /// Applies a success or failure to the deposit of the event's payment intent; a deposit
    /// that already succeeded (a repeat, or a failure delivered after the success) is left.
    async fn settle_intent(
        &self,
        event: &Event<'_>,
        command: impl FnOnce() -> Result<DepositCommand, WebhookError>,
        done: &'static str,
        metadata: Metadata,
    ) -> Result<WebhookOutcome, WebhookError> {
        let Some((deposit_id, _)) = self.deposit_for_intent(event.object["id"].as_str()).await? else {
            return Ok(WebhookOutcome::Ignored("not one of our payment intents".into()));
        };
        let key = Some(format!("stripe:{}", event.id));
        match self.ledger.deposit_command(deposit_id, command()?, key, metadata).await {
            Ok(_) => Ok(WebhookOutcome::Recorded(done)),
            Err(ServiceError::Deposit(DepositError::NotPending(status))) => {
                Ok(WebhookOutcome::Ignored(format!("the deposit is already {status:?}")))
            }
            Err(error) => Err(error.into()),
        }
    }

    async fn charge_refunded(&self, event: &Event<'_>, metadata: Metadata) -> Result<WebhookOutcome, WebhookError> {
        let Some((deposit_id, deposit)) = self.deposit_for_intent(event.object["payment_intent"].as_str()).await?
        else {
            return Ok(WebhookOutcome::Ignored("not one of our payment intents".into()));
        };
        let charge =
            event.object["id"].as_str().ok_or_else(|| WebhookError::Malformed("a charge without id".into()))?;
        let refunded = money(event.object, "amount_refunded")?;
        let prefix = format!("refund:{charge}:");
        let taken: rust_decimal::Decimal =
            deposit.reversals.iter().filter(|(id, _)| id.starts_with(&prefix)).map(|(_, amount)| *amount).sum();
        let Ok(newly) = PositiveMoney::new(domain::Money { amount: refunded.amount() - taken, ..refunded.money() })
        else {
            return Ok(WebhookOutcome::Ignored("no new refund".into()));
        };
        let reversal_id = format!("{prefix}{}", refunded.amount());
        self.reverse(deposit_id, &deposit, reversal_id, ReversalKind::Refund, newly, event.id, metadata).await
    }

    async fn dispute_created(&self, event: &Event<'_>, metadata: Metadata) -> Result<WebhookOutcome, WebhookError> {
        let Some((deposit_id, deposit)) = self.deposit_for_intent(event.object["payment_intent"].as_str()).await?
        else {
            return Ok(WebhookOutcome::Ignored("not one of our payment intents".into()));
        };
        let dispute =
            event.object["id"].as_str().ok_or_else(|| WebhookError::Malformed("a dispute without id".into()))?;
        let amount = money(event.object, "amount")?;
        self.reverse(deposit_id, &deposit, dispute.to_owned(), ReversalKind::Dispute, amount, event.id, metadata).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn reverse(
        &self,
        deposit_id: DepositId,
        deposit: &DepositState,
        reversal_id: String,
        kind: ReversalKind,
        amount: PositiveMoney,
        event_id: &str,
        metadata: Metadata,
    ) -> Result<WebhookOutcome, WebhookError> {
        if deposit.received.is_none() {
            return Err(WebhookError::NotYet("the deposit is not credited yet".into()));
        }
        let command = DepositCommand::Reverse { reversal_id, kind, amount, at: now() };
        let key = Some(format!("stripe:{event_id}"));
        match self.ledger.deposit_command(deposit_id, command, key, metadata).await {
            Ok(_) => Ok(WebhookOutcome::Recorded("taken back")),
            Err(ServiceError::Deposit(
                refused @ (DepositError::ReversalExists(_) | DepositError::ReversalTooLarge { .. }),
            )) => {
                tracing::warn!(%deposit_id, %refused, "payments.reversal_ignored");
                Ok(WebhookOutcome::Ignored(refused.to_string()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The deposit that claimed this payment intent, with its state.
    async fn deposit_for_intent(
        &self,
        intent: Option<&str>,
    ) -> Result<Option<(DepositId, DepositState)>, WebhookError> {
        let intent = intent.ok_or_else(|| WebhookError::Malformed("no payment intent".into()))?;
        let Ok(reference) = domain::deposit::Reference::parse(intent) else { return Ok(None) };
        let stream = deposit_reference_stream(domain::deposit::DepositMethod::Stripe, &reference);
        let claim = self.ledger.store().read_stream(&stream).await.map_err(ServiceError::from)?;
        let deposit_id = claim.first().and_then(|recorded| match recorded.decode() {
            Ok(DomainEvent::ReferenceClaimed(domain::events::ReferenceClaim::Claimed { deposit_id, .. })) => {
                Some(deposit_id)
            }
            _ => None,
        });
        let Some(deposit_id) = deposit_id else { return Ok(None) };
        Ok(Some((deposit_id, self.ledger.deposit(deposit_id).await?.state)))
    }
}

/// `object[field]` in minor units with `object.currency`, as a positive amount.
fn money(object: &Value, field: &str) -> Result<PositiveMoney, WebhookError> {
    let malformed = || WebhookError::Malformed(format!("{field} and currency must be given"));
    let minor = object[field].as_i64().ok_or_else(malformed)?;
    let currency = object["currency"].as_str().ok_or_else(malformed)?;
    let currency = Currency::parse(&currency.to_ascii_uppercase()).map_err(|_| malformed())?;
    let amount = from_minor(minor, currency).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    PositiveMoney::new(domain::Money { amount, currency })
        .map_err(|_| WebhookError::Malformed(format!("{field} is not positive")))
}
