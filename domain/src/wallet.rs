//! The wallet: one per user and currency. It guards "available never below zero" and
//! keeps every hold until it is captured or released.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::ids::{AdjustmentId, DepositId, OrderId, UserId, WithdrawalId};
use crate::ledger::{Account, Clearing, Postings, is_provider_id};
use crate::money::{Currency, Money, PositiveMoney};

/// Longest free-text reason an admin or payer may attach.
pub const REASON_LENGTH_MAX: usize = 500;

/// Why a hold was given back to the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    Cancelled,
    Expired,
    ProviderFailed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalletCommand {
    Deposit {
        deposit_id: DepositId,
        amount: PositiveMoney,
        source: Clearing,
    },
    PlaceHold {
        order_id: OrderId,
        amount: PositiveMoney,
    },
    CaptureHold {
        order_id: OrderId,
        provider_id: String,
        cost: Money,
    },
    ReleaseHold {
        order_id: OrderId,
        reason: ReleaseReason,
    },
    Adjust {
        adjustment_id: AdjustmentId,
        amount: Money,
        reason: String,
        admin_id: UserId,
    },
    RequestWithdrawal {
        withdrawal_id: WithdrawalId,
        amount: PositiveMoney,
    },
    PayWithdrawal {
        withdrawal_id: WithdrawalId,
        clearing: Clearing,
    },
    RejectWithdrawal {
        withdrawal_id: WithdrawalId,
        reason: String,
    },
    /// Money of a deposit taken back (a card refund or a dispute), once per `reversal_id`.
    /// It is taken from the available balance; what is not there becomes debt.
    ReverseDeposit {
        deposit_id: DepositId,
        reversal_id: String,
        amount: PositiveMoney,
        source: Clearing,
    },
}

/// Every wallet event carries the postings it makes; they always sum to zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WalletEvent {
    #[serde(rename = "wallet.deposited")]
    Deposited { deposit_id: DepositId, amount: PositiveMoney, source: Clearing, postings: Postings },
    #[serde(rename = "wallet.hold_placed")]
    HoldPlaced { order_id: OrderId, amount: PositiveMoney, postings: Postings },
    #[serde(rename = "wallet.hold_captured")]
    HoldCaptured { order_id: OrderId, provider_id: String, cost: Money, margin: Money, postings: Postings },
    #[serde(rename = "wallet.hold_released")]
    HoldReleased { order_id: OrderId, reason: ReleaseReason, postings: Postings },
    #[serde(rename = "wallet.adjusted")]
    Adjusted { adjustment_id: AdjustmentId, amount: Money, reason: String, admin_id: UserId, postings: Postings },
    #[serde(rename = "wallet.withdrawal_requested")]
    WithdrawalRequested { withdrawal_id: WithdrawalId, amount: PositiveMoney, postings: Postings },
    #[serde(rename = "wallet.withdrawal_paid")]
    WithdrawalPaid { withdrawal_id: WithdrawalId, clearing: Clearing, postings: Postings },
    #[serde(rename = "wallet.withdrawal_rejected")]
    WithdrawalRejected { withdrawal_id: WithdrawalId, reason: String, postings: Postings },
    /// `taken` came from the available balance, `owed` became debt; they sum to `amount`.
    #[serde(rename = "wallet.deposit_reversed")]
    DepositReversed {
        deposit_id: DepositId,
        reversal_id: String,
        amount: PositiveMoney,
        source: Clearing,
        taken: Money,
        owed: Money,
        postings: Postings,
    },
}

impl WalletEvent {
    pub fn postings(&self) -> &Postings {
        match self {
            WalletEvent::Deposited { postings, .. }
            | WalletEvent::HoldPlaced { postings, .. }
            | WalletEvent::HoldCaptured { postings, .. }
            | WalletEvent::HoldReleased { postings, .. }
            | WalletEvent::Adjusted { postings, .. }
            | WalletEvent::WithdrawalRequested { postings, .. }
            | WalletEvent::WithdrawalPaid { postings, .. }
            | WalletEvent::WithdrawalRejected { postings, .. }
            | WalletEvent::DepositReversed { postings, .. } => postings,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    #[error("this wallet holds {wallet}, not {given}")]
    CurrencyMismatch { wallet: Currency, given: Currency },
    #[error("insufficient funds: {available} available, {needed} needed")]
    InsufficientFunds { available: Decimal, needed: Decimal },
    #[error("order {0} already has a hold")]
    HoldExists(OrderId),
    #[error("order {0} has no open hold")]
    UnknownHold(OrderId),
    #[error("provider cost {cost} is outside 0..={held}")]
    CostOutOfRange { cost: Decimal, held: Decimal },
    #[error("provider id {0:?} is not a valid slug")]
    BadProvider(String),
    #[error("an adjustment must not be zero")]
    ZeroAdjustment,
    #[error("a reason is required (1 to {REASON_LENGTH_MAX} characters)")]
    BadReason,
    #[error("withdrawal {0} already exists")]
    WithdrawalExists(WithdrawalId),
    #[error("withdrawal {0} is not pending")]
    UnknownWithdrawal(WithdrawalId),
    #[error("reversal {0:?} was already taken")]
    ReversalExists(String),
    #[error("a reversal id is 1 to {REASON_LENGTH_MAX} characters")]
    BadReversalId,
}

/// Serialized only for snapshots of long-lived wallets (the service's `stream_snapshots`):
/// a change of its fields needs a new snapshot format there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletState {
    pub user: UserId,
    pub currency: Currency,
    pub available: Decimal,
    pub held: Decimal,
    /// What the user owes after a chargeback larger than their balance (zero or more).
    pub debt: Decimal,
    /// Open holds by order. `held` is always their sum.
    pub holds: BTreeMap<OrderId, Decimal>,
    /// Withdrawals waiting for an admin, by id.
    pub pending_withdrawals: BTreeMap<WithdrawalId, Decimal>,
    /// Every withdrawal id ever seen, so an id is used once.
    withdrawal_ids: std::collections::BTreeSet<WithdrawalId>,
    /// Every reversal id taken, so a refund or dispute is taken once.
    reversal_ids: std::collections::BTreeSet<String>,
}

impl WalletState {
    pub fn new(user: UserId, currency: Currency) -> Self {
        WalletState {
            user,
            currency,
            available: Decimal::ZERO,
            held: Decimal::ZERO,
            debt: Decimal::ZERO,
            holds: BTreeMap::new(),
            pending_withdrawals: BTreeMap::new(),
            withdrawal_ids: Default::default(),
            reversal_ids: Default::default(),
        }
    }

    fn available_account(&self) -> Account {
        Account::UserAvailable(self.user)
    }

    fn held_account(&self) -> Account {
        Account::UserHeld(self.user)
    }

    fn debt_account(&self) -> Account {
        Account::UserDebt(self.user)
    }

    fn money(&self, amount: Decimal) -> Money {
        Money { amount, currency: self.currency }
    }

    fn check_currency(&self, currency: Currency) -> Result<(), WalletError> {
        if currency == self.currency {
            Ok(())
        } else {
            Err(WalletError::CurrencyMismatch { wallet: self.currency, given: currency })
        }
    }

    fn check_funds(&self, needed: Decimal) -> Result<(), WalletError> {
        if self.available >= needed {
            Ok(())
        } else {
            Err(WalletError::InsufficientFunds { available: self.available, needed })
        }
    }

    fn open_hold(&self, order_id: OrderId) -> Result<Decimal, WalletError> {
        self.holds.get(&order_id).copied().ok_or(WalletError::UnknownHold(order_id))
    }

    fn pending_withdrawal(&self, id: WithdrawalId) -> Result<Decimal, WalletError> {
        self.pending_withdrawals.get(&id).copied().ok_or(WalletError::UnknownWithdrawal(id))
    }
}

/// A reason an admin or payer gives: 1 to [`REASON_LENGTH_MAX`] characters, not blank.
pub(crate) fn is_reason(reason: &str) -> bool {
    let length = reason.trim().chars().count();
    length > 0 && length <= REASON_LENGTH_MAX
}

fn check_reason(reason: &str) -> Result<(), WalletError> {
    if is_reason(reason) { Ok(()) } else { Err(WalletError::BadReason) }
}

impl Aggregate for WalletState {
    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = WalletError;

    fn decide(&self, command: WalletCommand) -> Result<Vec<WalletEvent>, WalletError> {
        let event = match command {
            WalletCommand::Deposit { deposit_id, amount, source } => {
                self.check_currency(amount.currency())?;
                // Debt is repaid first; the rest becomes available.
                let repaid = self.money(amount.amount().min(self.debt));
                let credited = self.money(amount.amount() - repaid.amount);
                let postings = Postings::new()
                    .transfer(Account::Clearing(source), self.debt_account(), repaid)
                    .transfer(Account::Clearing(source), self.available_account(), credited);
                WalletEvent::Deposited { deposit_id, amount, source, postings }
            }
            WalletCommand::PlaceHold { order_id, amount } => {
                self.check_currency(amount.currency())?;
                if self.holds.contains_key(&order_id) {
                    return Err(WalletError::HoldExists(order_id));
                }
                self.check_funds(amount.amount())?;
                let postings = Postings::new().transfer(self.available_account(), self.held_account(), amount.money());
                WalletEvent::HoldPlaced { order_id, amount, postings }
            }
            WalletCommand::CaptureHold { order_id, provider_id, cost } => {
                self.check_currency(cost.currency)?;
                let held = self.open_hold(order_id)?;
                if !is_provider_id(&provider_id) {
                    return Err(WalletError::BadProvider(provider_id));
                }
                if cost.is_negative() || cost.amount > held {
                    return Err(WalletError::CostOutOfRange { cost: cost.amount, held });
                }
                let margin = self.money(held - cost.amount);
                let postings = Postings::new()
                    .transfer(self.held_account(), Account::ProviderPayable(provider_id.clone()), cost)
                    .transfer(self.held_account(), Account::RevenueMargin, margin);
                WalletEvent::HoldCaptured { order_id, provider_id, cost, margin, postings }
            }
            WalletCommand::ReleaseHold { order_id, reason } => {
                let held = self.open_hold(order_id)?;
                let postings =
                    Postings::new().transfer(self.held_account(), self.available_account(), self.money(held));
                WalletEvent::HoldReleased { order_id, reason, postings }
            }
            WalletCommand::Adjust { adjustment_id, amount, reason, admin_id } => {
                self.check_currency(amount.currency)?;
                check_reason(&reason)?;
                let postings = if amount.is_positive() {
                    Postings::new().transfer(Account::EquityAdjustments, self.available_account(), amount)
                } else if amount.is_negative() {
                    self.check_funds(-amount.amount)?;
                    Postings::new().transfer(self.available_account(), Account::EquityAdjustments, amount.negated())
                } else {
                    return Err(WalletError::ZeroAdjustment);
                };
                WalletEvent::Adjusted { adjustment_id, amount, reason, admin_id, postings }
            }
            WalletCommand::RequestWithdrawal { withdrawal_id, amount } => {
                self.check_currency(amount.currency())?;
                if self.withdrawal_ids.contains(&withdrawal_id) {
                    return Err(WalletError::WithdrawalExists(withdrawal_id));
                }
                self.check_funds(amount.amount())?;
                let postings =
                    Postings::new().transfer(self.available_account(), Account::PayoutPending, amount.money());
                WalletEvent::WithdrawalRequested { withdrawal_id, amount, postings }
            }
            WalletCommand::PayWithdrawal { withdrawal_id, clearing } => {
                let amount = self.pending_withdrawal(withdrawal_id)?;
                let postings =
                    Postings::new().transfer(Account::PayoutPending, Account::Clearing(clearing), self.money(amount));
                WalletEvent::WithdrawalPaid { withdrawal_id, clearing, postings }
            }
            WalletCommand::RejectWithdrawal { withdrawal_id, reason } => {
                let amount = self.pending_withdrawal(withdrawal_id)?;
                check_reason(&reason)?;
                let postings =
                    Postings::new().transfer(Account::PayoutPending, self.available_account(), self.money(amount));
                WalletEvent::WithdrawalRejected { withdrawal_id, reason, postings }
            }
            WalletCommand::ReverseDeposit { deposit_id, reversal_id, amount, source } => {
                self.check_currency(amount.currency())?;
                if reversal_id.is_empty() || reversal_id.len() > REASON_LENGTH_MAX {
                    return Err(WalletError::BadReversalId);
                }
                if self.reversal_ids.contains(&reversal_id) {
                    return Err(WalletError::ReversalExists(reversal_id));
                }
                let taken = self.money(amount.amount().min(self.available));
                let owed = self.money(amount.amount() - taken.amount);
                let postings = Postings::new()
                    .transfer(self.available_account(), Account::Clearing(source), taken)
                    .transfer(self.debt_account(), Account::Clearing(source), owed);
                WalletEvent::DepositReversed { deposit_id, reversal_id, amount, source, taken, owed, postings }
            }
        };
        debug_assert!(event.postings().check_balanced().is_ok());
        Ok(vec![event])
    }

    fn apply(self, event: &WalletEvent) -> Self {
        match self.try_apply(event) {
            Ok(state) => state,
            Err(broken) => panic!("wallet invariant broken by {event:?}: {broken}"),
        }
    }
}

/// A stored event that would break a wallet invariant (only a corrupt log can hold one).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BrokenInvariant {
    #[error("postings are unbalanced: {0}")]
    Unbalanced(#[from] crate::ledger::Unbalanced),
    #[error("available balance would be {0}, below zero")]
    NegativeAvailable(Decimal),
    #[error("debt would be {0}, below zero")]
    NegativeDebt(Decimal),
    #[error("held {held} differs from the sum of open holds {holds}")]
    HeldDrift { held: Decimal, holds: Decimal },
}

impl WalletState {
    /// `apply` without the panic: what `verify` uses to re-fold a log it does not trust.
    pub fn try_apply(mut self, event: &WalletEvent) -> Result<Self, BrokenInvariant> {
        // The postings are the truth for balances; the named fields drive hold bookkeeping.
        let postings = event.postings();
        postings.check_balanced()?;
        self.available += postings.net(&self.available_account(), self.currency);
        let held_change = postings.net(&self.held_account(), self.currency);
        self.held += held_change;
        self.debt -= postings.net(&self.debt_account(), self.currency);
        // What the open holds changed by, for the `held` check below.
        let holds_change = match event {
            WalletEvent::HoldPlaced { order_id, amount, .. } => {
                amount.amount() - self.holds.insert(*order_id, amount.amount()).unwrap_or_default()
            }
            WalletEvent::HoldCaptured { order_id, .. } | WalletEvent::HoldReleased { order_id, .. } => {
                -self.holds.remove(order_id).unwrap_or_default()
            }
            WalletEvent::WithdrawalRequested { withdrawal_id, amount, .. } => {
                self.withdrawal_ids.insert(*withdrawal_id);
                self.pending_withdrawals.insert(*withdrawal_id, amount.amount());
                Decimal::ZERO
            }
            WalletEvent::WithdrawalPaid { withdrawal_id, .. }
            | WalletEvent::WithdrawalRejected { withdrawal_id, .. } => {
                self.pending_withdrawals.remove(withdrawal_id);
                Decimal::ZERO
            }
            WalletEvent::DepositReversed { reversal_id, .. } => {
                self.reversal_ids.insert(reversal_id.clone());
                Decimal::ZERO
            }
            WalletEvent::Deposited { .. } | WalletEvent::Adjusted { .. } => Decimal::ZERO,
        };
        if self.debt < Decimal::ZERO {
            return Err(BrokenInvariant::NegativeDebt(self.debt));
        }
        if self.available < Decimal::ZERO {
            return Err(BrokenInvariant::NegativeAvailable(self.available));
        }
        // `held` equalled the open holds' sum before this event (every state starts empty and
        // comes through here), so it still does when both moved by the same amount. Summing
        // the holds on every event made a wallet with many open orders quadratic to fold.
        if held_change != holds_change {
            return Err(BrokenInvariant::HeldDrift { held: self.held, holds: self.holds.values().copied().sum() });
        }
        Ok(self)
    }
}

#[cfg(test)]
#[path = "wallet_tests.rs"]
mod tests;
