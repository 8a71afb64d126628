//! Money in and out: deposits (Stripe, the sandbox), Stripe's webhooks, withdrawals and
//! admin credits. Every movement is a ledger command with an idempotency key; what it
//! moves is decided by the pure `domain::deposit` and `domain::wallet` aggregates.

mod recharge;
pub mod stripe;
pub mod tron;
mod webhook;

use domain::deposit::{DepositCommand, DepositMethod, Reference};
use domain::wallet::{WalletCommand, WalletEvent};
use domain::{AdjustmentId, Currency, DepositId, Money, PositiveMoney, UserId, WithdrawalId};
use rust_decimal::Decimal;

pub use self::recharge::ChainCheck;
pub use self::webhook::{WebhookError, WebhookOutcome};
use crate::config::PaymentSettings;
use crate::identity::now;
use crate::service::{Ledger, ServiceError};
use crate::store::Metadata;

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("the amount must be between {min} and {max}")]
    OutOfLimits { min: Decimal, max: Decimal },
    #[error("{0} payments are not enabled")]
    MethodDisabled(&'static str),
    #[error("{0} is not a currency wallets are kept in")]
    Currency(Currency),
    #[error(transparent)]
    Stripe(#[from] stripe::StripeError),
    #[error(transparent)]
    Tron(#[from] tron::TronError),
    #[error(transparent)]
    Ledger(#[from] ServiceError),
}

/// A deposit just started with Stripe: the client confirms the payment with the secret.
pub struct StripeDeposit {
    pub deposit_id: DepositId,
    pub payment_intent_id: String,
    pub client_secret: String,
}

pub struct Payments {
    ledger: Ledger,
    stripe: Option<stripe::Stripe>,
    tron: Option<tron::Tron>,
    settings: PaymentSettings,
    currencies: Vec<Currency>,
}

impl Payments {
    pub fn new(ledger: Ledger, settings: PaymentSettings, currencies: Vec<Currency>) -> Payments {
        let stripe = settings.stripe.clone().map(stripe::Stripe::new);
        let tron = settings.tron.clone().map(tron::Tron::new);
        Payments { ledger, stripe, tron, settings, currencies }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The methods a user can deposit with, in the order to offer them.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.stripe.is_some() {
            methods.push(DepositMethod::Stripe.as_str());
        }
        if self.settings.upi_vpa.is_some() {
            methods.push(DepositMethod::Upi.as_str());
        }
        if self.tron.is_some() {
            methods.push(DepositMethod::Tron.as_str());
        }
        if self.settings.sandbox {
            methods.push(DepositMethod::Sandbox.as_str());
        }
        methods
    }

    /// Where users send manual recharges: the UPI id and the TRON address, when enabled.
    pub fn pay_to(&self) -> (Option<&str>, Option<&str>) {
        (self.settings.upi_vpa.as_deref(), self.tron.as_ref().map(tron::Tron::address))
    }

    pub fn limits(&self) -> (Decimal, Decimal) {
        (self.settings.recharge_min, self.settings.recharge_max)
    }

    fn check_amount(&self, amount: PositiveMoney) -> Result<(), PaymentError> {
        if !self.currencies.contains(&amount.currency()) {
            return Err(PaymentError::Currency(amount.currency()));
        }
        let (min, max) = self.limits();
        if amount.amount() < min || amount.amount() > max {
            return Err(PaymentError::OutOfLimits { min, max });
        }
        Ok(())
    }

    /// Creates a Stripe payment intent and records the pending deposit, claiming the
    /// intent's id so that it can be credited once, ever.
    pub async fn start_stripe_deposit(
        &self,
        user_id: UserId,
        amount: PositiveMoney,
        metadata: Metadata,
    ) -> Result<StripeDeposit, PaymentError> {
        let stripe = self.stripe.as_ref().ok_or(PaymentError::MethodDisabled("stripe"))?;
        self.check_amount(amount)?;
        stripe::to_minor(amount.amount(), amount.currency())?;
        let deposit_id = DepositId::new();
        let intent = stripe.create_payment_intent(deposit_id, user_id, amount).await?;
        let reference = Reference::parse(&intent.id).map_err(ServiceError::from)?;
        let initiate = DepositCommand::Initiate {
            deposit_id,
            user_id,
            method: DepositMethod::Stripe,
            amount,
            reference: Some(reference),
            at: now(),
        };
        self.ledger.deposit_command(deposit_id, initiate, None, metadata).await?;
        Ok(StripeDeposit { deposit_id, payment_intent_id: intent.id, client_secret: intent.client_secret })
    }

    /// The sandbox method (development only): a deposit that succeeds at once.
    pub async fn sandbox_deposit(
        &self,
        user_id: UserId,
        amount: PositiveMoney,
        key: Option<String>,
        metadata: Metadata,
    ) -> Result<DepositId, PaymentError> {
        if !self.settings.sandbox {
            return Err(PaymentError::MethodDisabled("sandbox"));
        }
        self.check_amount(amount)?;
        let deposit_id = DepositId::new();
        let at = now();
        let initiate = DepositCommand::Initiate {
            deposit_id,
            user_id,
            method: DepositMethod::Sandbox,
            amount,
            reference: None,
            at,
        };
        let key = key.map(|key| format!("deposit:{user_id}:{key}"));
        let first = self.ledger.deposit_command(deposit_id, initiate, key.clone(), metadata.clone()).await?;
        let deposit_id = match first {
            Some(outcome) if outcome.replayed => self.replayed_deposit(key.as_deref()).await?.unwrap_or(deposit_id),
            _ => deposit_id,
        };
        // A retry also completes a first attempt that stopped between the two appends, with
        // what that attempt asked for.
        let deposit = self.ledger.deposit(deposit_id).await?.state;
        let asked = deposit.initiated.map_or(amount, |initiated| initiated.amount);
        let succeed = DepositCommand::Succeed { amount: asked, at };
        match self.ledger.deposit_command(deposit_id, succeed, None, metadata).await {
            Ok(_) | Err(ServiceError::Deposit(domain::deposit::DepositError::NotPending(_))) => Ok(deposit_id),
            Err(error) => Err(error.into()),
        }
    }

    /// The deposit a replayed key created first: its stream is the first in the outcome.
    async fn replayed_deposit(&self, key: Option<&str>) -> Result<Option<DepositId>, ServiceError> {
        let Some(key) = key else { return Ok(None) };
        let outcome = self.ledger.store().idempotent_outcome(key).await?;
        let stream = outcome.and_then(|outcome| outcome.streams.first().map(|s| s.stream_id.clone()));
        Ok(stream.and_then(|s| s.strip_prefix("deposit-").and_then(|id| id.parse().ok())))
    }

    /// Holds `amount` for a payout (available -> payout pending) until an admin decides.
    pub async fn request_withdrawal(
        &self,
        user_id: UserId,
        amount: PositiveMoney,
        key: Option<String>,
        metadata: Metadata,
    ) -> Result<WithdrawalId, PaymentError> {
        if !self.currencies.contains(&amount.currency()) {
            return Err(PaymentError::Currency(amount.currency()));
        }
        let withdrawal_id = WithdrawalId::new();
        let command = WalletCommand::RequestWithdrawal { withdrawal_id, amount };
        let key = key.map(|key| format!("withdrawal:{user_id}:{key}"));
        let outcome = self.ledger.wallet_command(user_id, amount.currency(), command, key, metadata).await?;
        if outcome.replayed {
            return Ok(self.first_withdrawal(&outcome).await?.unwrap_or(withdrawal_id));
        }
        Ok(withdrawal_id)
    }

    /// An admin pays out (payout pending -> clearing) or rejects (back to available).
    pub async fn decide_withdrawal(
        &self,
        user_id: UserId,
        currency: Currency,
        withdrawal_id: WithdrawalId,
        decision: WithdrawalDecision,
        metadata: Metadata,
    ) -> Result<(), PaymentError> {
        let command = match decision {
            WithdrawalDecision::Pay => {
                WalletCommand::PayWithdrawal { withdrawal_id, clearing: domain::Clearing::Manual }
            }
            WithdrawalDecision::Reject(reason) => WalletCommand::RejectWithdrawal { withdrawal_id, reason },
        };
        // One key per outcome: a repeated payout is harmless, a rejection after it is refused.
        let key = Some(match decision_kind(&command) {
            true => format!("withdrawal-paid:{withdrawal_id}"),
            false => format!("withdrawal-rejected:{withdrawal_id}"),
        });
        self.ledger.wallet_command(user_id, currency, command, key, metadata).await?;
        Ok(())
    }

    /// An admin's credit (positive) or debit (negative) with a reason, recorded with the
    /// admin's id. A debit never takes the available balance below zero.
    pub async fn adjust(
        &self,
        admin_id: UserId,
        user_id: UserId,
        amount: Money,
        reason: String,
        key: Option<String>,
        metadata: Metadata,
    ) -> Result<AdjustmentId, PaymentError> {
        if !self.currencies.contains(&amount.currency) {
            return Err(PaymentError::Currency(amount.currency));
        }
        let adjustment_id = AdjustmentId::new();
        let command = WalletCommand::Adjust { adjustment_id, amount, reason, admin_id };
        let key = key.map(|key| format!("adjustment:{admin_id}:{key}"));
        self.ledger.wallet_command(user_id, amount.currency, command, key, metadata).await?;
        Ok(adjustment_id)
    }

    /// The withdrawal a replayed request created: the wallet event at the outcome's version.
    async fn first_withdrawal(
        &self,
        outcome: &crate::store::AppendOutcome,
    ) -> Result<Option<WithdrawalId>, ServiceError> {
        let Some(stream) = outcome.streams.first() else { return Ok(None) };
        let events = self.ledger.store().read_stream_after(&stream.stream_id, stream.version.saturating_sub(1)).await?;
        Ok(events.first().and_then(|recorded| match recorded.decode() {
            Ok(domain::DomainEvent::Wallet(WalletEvent::WithdrawalRequested { withdrawal_id, .. })) => {
                Some(withdrawal_id)
            }
            _ => None,
        }))
    }

    pub(crate) fn stripe(&self) -> Option<&stripe::Stripe> {
        self.stripe.as_ref()
    }
}

fn decision_kind(command: &WalletCommand) -> bool {
    matches!(command, WalletCommand::PayWithdrawal { .. })
}

/// What an admin decides about a pending withdrawal.
#[derive(Clone, Debug)]
pub enum WithdrawalDecision {
    Pay,
    Reject(String),
}
