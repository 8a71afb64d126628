//! A deposit: money a user sends us by card (Stripe), UPI, TRON or the sandbox. It is
//! initiated, then succeeds (the wallet is credited in the same append), fails, or is
//! rejected by an admin; a succeeded deposit can later be reversed (refunded or disputed).
//! One stream per deposit; the external reference (payment intent, UPI reference, TRON
//! hash) is claimed once, ever, by its own stream.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::ids::{DepositId, Timestamp, UserId};
use crate::ledger::Clearing;
use crate::money::PositiveMoney;
use crate::wallet::{REASON_LENGTH_MAX, WalletCommand};

/// Longest external reference (payment intent id, UPI reference, transaction hash).
pub const REFERENCE_LENGTH_MAX: usize = 128;

/// How the money comes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepositMethod {
    Stripe,
    Upi,
    Tron,
    Sandbox,
}

impl DepositMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DepositMethod::Stripe => "stripe",
            DepositMethod::Upi => "upi",
            DepositMethod::Tron => "tron",
            DepositMethod::Sandbox => "sandbox",
        }
    }

    pub fn parse(text: &str) -> Option<DepositMethod> {
        [DepositMethod::Stripe, DepositMethod::Upi, DepositMethod::Tron, DepositMethod::Sandbox]
            .into_iter()
            .find(|method| method.as_str() == text)
    }

    /// The clearing account the money comes through.
    pub fn clearing(self) -> Clearing {
        match self {
            DepositMethod::Stripe => Clearing::Stripe,
            DepositMethod::Upi => Clearing::Upi,
            DepositMethod::Tron => Clearing::Tron,
            DepositMethod::Sandbox => Clearing::Sandbox,
        }
    }
}

/// An external reference, checked: 1 to [`REFERENCE_LENGTH_MAX`] printable ASCII characters
/// with no spaces, so it can name a stream and be shown as is.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reference(String);

impl Reference {
    pub fn parse(text: &str) -> Result<Reference, DepositError> {
        let ok = !text.is_empty() && text.len() <= REFERENCE_LENGTH_MAX && text.bytes().all(|b| b.is_ascii_graphic());
        if ok { Ok(Reference(text.to_owned())) } else { Err(DepositError::BadReference) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reference {
    type Error = DepositError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Reference::parse(&text)
    }
}

impl From<Reference> for String {
    fn from(reference: Reference) -> String {
        reference.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepositStatus {
    Pending,
    Succeeded,
    Failed,
    Rejected,
}

/// Why money of a succeeded deposit went back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReversalKind {
    Refund,
    Dispute,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DepositCommand {
    Initiate {
        deposit_id: DepositId,
        user_id: UserId,
        method: DepositMethod,
        amount: PositiveMoney,
        reference: Option<Reference>,
        at: Timestamp,
    },
    /// The money arrived: `amount` is what was received (it may differ from what was asked).
    Succeed {
        amount: PositiveMoney,
        at: Timestamp,
    },
    Fail {
        reason: String,
        at: Timestamp,
    },
    Reject {
        reason: String,
        by: UserId,
        at: Timestamp,
    },
    Reverse {
        reversal_id: String,
        kind: ReversalKind,
        amount: PositiveMoney,
        at: Timestamp,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum DepositEvent {
    #[serde(rename = "deposit.initiated")]
    Initiated {
        deposit_id: DepositId,
        user_id: UserId,
        method: DepositMethod,
        amount: PositiveMoney,
        reference: Option<Reference>,
        at: Timestamp,
    },
    #[serde(rename = "deposit.succeeded")]
    Succeeded { amount: PositiveMoney, at: Timestamp },
    #[serde(rename = "deposit.failed")]
    Failed { reason: String, at: Timestamp },
    #[serde(rename = "deposit.rejected")]
    Rejected { reason: String, by: UserId, at: Timestamp },
    #[serde(rename = "deposit.reversed")]
    Reversed { reversal_id: String, kind: ReversalKind, amount: PositiveMoney, at: Timestamp },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DepositError {
    #[error("this deposit already exists")]
    AlreadyInitiated,
    #[error("no such deposit")]
    Unknown,
    #[error("the deposit is {0:?}, not pending")]
    NotPending(DepositStatus),
    #[error("the deposit has not succeeded")]
    NotSucceeded,
    #[error("the amount is in {given}, the deposit in {deposit}")]
    CurrencyMismatch { deposit: crate::Currency, given: crate::Currency },
    #[error("a reference is 1 to {REFERENCE_LENGTH_MAX} printable characters without spaces")]
    BadReference,
    #[error("a reason is required (1 to {REASON_LENGTH_MAX} characters)")]
    BadReason,
    #[error("reversal {0:?} was already recorded")]
    ReversalExists(String),
    #[error("reversing {asked} would take back more than the {left} left of this deposit")]
    ReversalTooLarge { asked: Decimal, left: Decimal },
}

/// What is known of one deposit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DepositState {
    pub initiated: Option<Initiated>,
    pub status: Option<DepositStatus>,
    /// What was credited on success.
    pub received: Option<PositiveMoney>,
    /// Reversals by id, with their amounts.
    pub reversals: BTreeMap<String, Decimal>,
    pub reason: Option<String>,
    pub updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Initiated {
    pub deposit_id: DepositId,
    pub user_id: UserId,
    pub method: DepositMethod,
    pub amount: PositiveMoney,
    pub reference: Option<Reference>,
    pub at: Timestamp,
}

impl DepositState {
    /// A deposit still open: pending, or failed (a card payment that failed may be retried
    /// and succeed, so a failure is not the end; a rejection is).
    fn open(&self) -> Result<&Initiated, DepositError> {
        let initiated = self.initiated.as_ref().ok_or(DepositError::Unknown)?;
        match self.status {
            Some(DepositStatus::Pending | DepositStatus::Failed) => Ok(initiated),
            Some(other) => Err(DepositError::NotPending(other)),
            None => Err(DepositError::Unknown),
        }
    }

    /// What may still be reversed: received minus what was reversed already.
    pub fn reversible(&self) -> Decimal {
        let received = self.received.map_or(Decimal::ZERO, |r| r.amount());
        received - self.reversals.values().copied().sum::<Decimal>()
    }
}

fn check_reason(reason: &str) -> Result<(), DepositError> {
    if crate::wallet::is_reason(reason) { Ok(()) } else { Err(DepositError::BadReason) }
}

impl Aggregate for DepositState {
    type Command = DepositCommand;
    type Event = DepositEvent;
    type Error = DepositError;

    fn decide(&self, command: DepositCommand) -> Result<Vec<DepositEvent>, DepositError> {
        let event = match command {
            DepositCommand::Initiate { deposit_id, user_id, method, amount, reference, at } => {
                if self.initiated.is_some() {
                    return Err(DepositError::AlreadyInitiated);
                }
                DepositEvent::Initiated { deposit_id, user_id, method, amount, reference, at }
            }
            DepositCommand::Succeed { amount, at } => {
                let initiated = self.open()?;
                if amount.currency() != initiated.amount.currency() {
                    let (deposit, given) = (initiated.amount.currency(), amount.currency());
                    return Err(DepositError::CurrencyMismatch { deposit, given });
                }
                DepositEvent::Succeeded { amount, at }
            }
            DepositCommand::Fail { reason, at } => {
                self.open()?;
                check_reason(&reason)?;
                DepositEvent::Failed { reason, at }
            }
            DepositCommand::Reject { reason, by, at } => {
                self.open()?;
                if self.status == Some(DepositStatus::Failed) {
                    return Err(DepositError::NotPending(DepositStatus::Failed));
                }
                check_reason(&reason)?;
                DepositEvent::Rejected { reason, by, at }
            }
            DepositCommand::Reverse { reversal_id, kind, amount, at } => {
                let received = self.received.ok_or(DepositError::NotSucceeded)?;
                if amount.currency() != received.currency() {
                    return Err(DepositError::CurrencyMismatch {
                        deposit: received.currency(),
                        given: amount.currency(),
                    });
                }
                if self.reversals.contains_key(&reversal_id) {
                    return Err(DepositError::ReversalExists(reversal_id));
                }
                if amount.amount() > self.reversible() {
                    return Err(DepositError::ReversalTooLarge { asked: amount.amount(), left: self.reversible() });
                }
                DepositEvent::Reversed { reversal_id, kind, amount, at }
            }
        };
        Ok(vec![event])
    }

    fn apply(mut self, event: &DepositEvent) -> Self {
        match event {
            DepositEvent::Initiated { deposit_id, user_id, method, amount, reference, at } => {
                self.initiated = Some(Initiated {
                    deposit_id: *deposit_id,
                    user_id: *user_id,
                    method: *method,
                    amount: *amount,
                    reference: reference.clone(),
                    at: *at,
                });
                self.status = Some(DepositStatus::Pending);
                self.updated_at = *at;
            }
            DepositEvent::Succeeded { amount, at } => {
                self.status = Some(DepositStatus::Succeeded);
                self.received = Some(*amount);
                self.updated_at = *at;
            }
            DepositEvent::Failed { reason, at } => {
                self.status = Some(DepositStatus::Failed);
                self.reason = Some(reason.clone());
                self.updated_at = *at;
            }
            DepositEvent::Rejected { reason, at, .. } => {
                self.status = Some(DepositStatus::Rejected);
                self.reason = Some(reason.clone());
                self.updated_at = *at;
            }
            DepositEvent::Reversed { reversal_id, amount, at, .. } => {
                self.reversals.insert(reversal_id.clone(), amount.amount());
                self.updated_at = *at;
            }
        }
        self
    }
}

/// The wallet command a deposit event implies: a success credits, a reversal takes back.
pub fn wallet_effect(state: &DepositState, event: &DepositEvent) -> Option<WalletCommand> {
    let initiated = state.initiated.as_ref()?;
    let source = initiated.method.clearing();
    match event {
        DepositEvent::Succeeded { amount, .. } => {
            Some(WalletCommand::Deposit { deposit_id: initiated.deposit_id, amount: *amount, source })
        }
        DepositEvent::Reversed { reversal_id, amount, .. } => Some(WalletCommand::ReverseDeposit {
            deposit_id: initiated.deposit_id,
            reversal_id: reversal_id.clone(),
            amount: *amount,
            source,
        }),
        _ => None,
    }
}

#[cfg(test)]
#[path = "deposit_tests.rs"]
mod tests;
