//! What the log says users and admins should be told: a pure function of one event.

use domain::wallet::{ReleaseReason, WalletEvent};
use domain::{DomainEvent, UserId};
use rust_decimal::Decimal;

/// A deposit at or above this (in any currency) alerts the admins.
pub const LARGE_DEPOSIT_ALERT: Decimal = Decimal::from_parts(100, 0, 0, false, 0);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Shown to the user in the app.
    InApp { user: UserId, kind: &'static str, message: String },
    /// Sent to the admins' channel (Telegram).
    Admin { message: String },
    /// Mailed to the user (when SMTP is configured): a receipt.
    Mail { user: UserId, subject: String, body: String },
}

fn user_of(event: &WalletEvent) -> Option<UserId> {
    event.postings().legs().iter().find_map(|leg| leg.account.user())
}

/// An amount as a receipt shows it: at least two decimals (`25.00 USD`), never rounded.
fn receipt_amount(money: domain::Money) -> String {
    let mut amount = money.amount;
    if amount.scale() < 2 {
        amount.rescale(2);
    }
    format!("{amount} {}", money.currency)
}

pub fn notices(event: &DomainEvent) -> Vec<Notice> {
    let mut found = Vec::new();
    match event {
        DomainEvent::Wallet(wallet) => {
            let Some(user) = user_of(wallet) else { return found };
            let in_app = |kind: &'static str, message: String| Notice::InApp { user, kind, message };
            match wallet {
                WalletEvent::Deposited { deposit_id, amount, source, .. } => {
                    let money = amount.money();
                    found.push(in_app("deposit", format!("{money} credited ({})", source.as_str())));
                    let shown = receipt_amount(money);
                    found.push(Notice::Mail {
                        user,
                        subject: format!("Receipt: {shown} added to your balance"),
                        body: format!(
                            "We received your payment of {shown} ({}) and added it to your smsledger balance.\n\
                             Deposit reference: {}.",
                            source.as_str(),
                            deposit_id.0
                        ),
                    });
                    if amount.amount() >= LARGE_DEPOSIT_ALERT {
                        found.push(Notice::Admin { message: format!("Large deposit: {money} by user {user}") });
                    }
                }
                WalletEvent::DepositReversed { amount, owed, .. } => {
                    let owed = if owed.is_positive() { format!("; {owed} owed") } else { String::new() };
                    found.push(in_app("reversal", format!("{} taken back from a deposit{owed}", amount.money())));
                }
                WalletEvent::HoldReleased { order_id, reason, postings } => {
                    let amount = postings.legs().iter().find(|leg| leg.amount.is_positive()).map(|leg| leg.amount);
                    let why = match reason {
                        ReleaseReason::Cancelled => "cancelled",
                        ReleaseReason::Expired => "no SMS came in time",
                        ReleaseReason::ProviderFailed => "the provider failed",
                    };
                    let amount = amount.map_or_else(String::new, |a| format!("{a} "));
                    found.push(in_app("refund", format!("{amount}refunded for order {order_id}: {why}")));
                }
                WalletEvent::WithdrawalPaid { withdrawal_id, .. } => {
                    found.push(in_app("withdrawal", format!("withdrawal {withdrawal_id} paid out")));
                }
                WalletEvent::WithdrawalRejected { withdrawal_id, reason, .. } => {
                    found.push(in_app("withdrawal", format!("withdrawal {withdrawal_id} rejected: {reason}")));
                }
                WalletEvent::Adjusted { amount, reason, .. } => {
                    let what = if amount.is_positive() { "credited" } else { "debited" };
                    let shown = if amount.is_positive() { *amount } else { amount.negated() };
                    found.push(in_app("adjustment", format!("{shown} {what} by support: {reason}")));
                }
                WalletEvent::HoldPlaced { .. }
                | WalletEvent::HoldCaptured { .. }
                | WalletEvent::WithdrawalRequested { .. } => {}
            }
        }
        DomainEvent::User(domain::identity::UserEvent::Registered { email, .. }) => {
            found.push(Notice::Admin { message: format!("New registration: {}", email.as_str()) });
        }
        DomainEvent::Order(domain::order::OrderEvent::ProviderFailed { reason, .. }) => {
            found.push(Notice::Admin { message: format!("A provider failed an order: {reason}") });
        }
        _ => {}
    }
    found
}
