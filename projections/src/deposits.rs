//! The deposit view: a deposit as its user and admins see it, folded from its events.
//! `GET /payments/deposits/:id` folds it from the deposit's stream; the `deposits` table keeps
//! one per deposit for recharge history and the admins' queue of deposits to check.

use domain::deposit::{DepositEvent, DepositMethod, DepositStatus, ReversalKind};
use domain::{DepositId, Money, Timestamp, UserId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepositView {
    pub deposit_id: DepositId,
    pub user_id: UserId,
    pub method: DepositMethod,
    pub status: DepositStatus,
    /// What the user said they send.
    pub amount: Money,
    /// What was credited.
    pub received: Option<Money>,
    /// Refunded in all.
    pub refunded: Decimal,
    /// Disputed in all.
    pub disputed: Decimal,
    pub reference: Option<String>,
    /// Why it failed or was rejected.
    pub reason: Option<String>,
    /// The admin who rejected it.
    pub decided_by: Option<UserId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl DepositView {
    /// The view a `deposit.initiated` event starts; `None` for any other event.
    pub fn initiated(event: &DepositEvent) -> Option<DepositView> {
        let DepositEvent::Initiated { deposit_id, user_id, method, amount, reference, at } = event else {
            return None;
        };
        Some(DepositView {
            deposit_id: *deposit_id,
            user_id: *user_id,
            method: *method,
            status: DepositStatus::Pending,
            amount: amount.money(),
            received: None,
            refunded: Decimal::ZERO,
            disputed: Decimal::ZERO,
            reference: reference.as_ref().map(|r| r.as_str().to_owned()),
            reason: None,
            decided_by: None,
            created_at: *at,
            updated_at: *at,
        })
    }

    pub fn apply(&mut self, event: &DepositEvent) {
        match event {
            DepositEvent::Initiated { .. } => {}
            DepositEvent::Succeeded { amount, at } => {
                self.status = DepositStatus::Succeeded;
                self.received = Some(amount.money());
                self.updated_at = *at;
            }
            DepositEvent::Failed { reason, at } => {
                self.status = DepositStatus::Failed;
                self.reason = Some(reason.clone());
                self.updated_at = *at;
            }
            DepositEvent::Rejected { reason, by, at } => {
                self.status = DepositStatus::Rejected;
                self.reason = Some(reason.clone());
                self.decided_by = Some(*by);
                self.updated_at = *at;
            }
            DepositEvent::Reversed { kind, amount, at, .. } => {
                match kind {
                    ReversalKind::Refund => self.refunded += amount.amount(),
                    ReversalKind::Dispute => self.disputed += amount.amount(),
                }
                self.updated_at = *at;
            }
        }
    }

    /// Folds a deposit's events, oldest first; `None` if they do not start with its initiation.
    pub fn fold<'a>(events: impl IntoIterator<Item = &'a DepositEvent>) -> Option<DepositView> {
        let mut events = events.into_iter();
        let mut view = DepositView::initiated(events.next()?)?;
        for event in events {
            view.apply(event);
        }
        Some(view)
    }
}

/// How a status is stored and shown.
pub fn status_text(status: DepositStatus) -> &'static str {
    match status {
        DepositStatus::Pending => "pending",
        DepositStatus::Succeeded => "succeeded",
        DepositStatus::Failed => "failed",
        DepositStatus::Rejected => "rejected",
    }
}

#[cfg(test)]
mod tests {
    use domain::PositiveMoney;
    use domain::deposit::Reference;

    use super::*;

    #[test]
    fn folds_a_deposit_from_initiation_to_reversals() {
        let usd = |amount: &str| PositiveMoney::parse(amount, "USD").unwrap();
        let events = [
            DepositEvent::Initiated {
                deposit_id: DepositId::new(),
                user_id: UserId::new(),
                method: DepositMethod::Stripe,
                amount: usd("10"),
                reference: Some(Reference::parse("pi_1").unwrap()),
                at: Timestamp(1),
            },
            DepositEvent::Succeeded { amount: usd("10"), at: Timestamp(2) },
            DepositEvent::Reversed {
                reversal_id: "r".into(),
                kind: ReversalKind::Refund,
                amount: usd("3"),
                at: Timestamp(3),
            },
            DepositEvent::Reversed {
                reversal_id: "d".into(),
                kind: ReversalKind::Dispute,
                amount: usd("7"),
                at: Timestamp(4),
            },
        ];
        let view = DepositView::fold(&events).unwrap();
        assert_eq!(
            (view.status, view.refunded, view.disputed),
            (DepositStatus::Succeeded, Decimal::from(3), Decimal::from(7))
        );
        assert_eq!((view.reference.as_deref(), view.updated_at), (Some("pi_1"), Timestamp(4)));
        assert!(DepositView::fold(&events[1..]).is_none(), "a view starts with its initiation");
    }
}
