use super::*;
use crate::aggregate::scenario::Scenario;

fn pos(amount: &str) -> PositiveMoney {
    PositiveMoney::parse(amount, "USD").unwrap()
}

fn initiated(method: DepositMethod) -> (DepositId, DepositEvent) {
    let deposit_id = DepositId::new();
    let reference = Some(Reference::parse("pi_123").unwrap());
    let event = DepositEvent::Initiated {
        deposit_id,
        user_id: UserId::new(),
        method,
        amount: pos("10"),
        reference,
        at: Timestamp(1),
    };
    (deposit_id, event)
}

fn succeeded(amount: &str) -> DepositEvent {
    DepositEvent::Succeeded { amount: pos(amount), at: Timestamp(2) }
}

fn given(events: &[DepositEvent]) -> Scenario<DepositState> {
    Scenario::given(DepositState::default(), events)
}

#[test]
fn a_pending_deposit_succeeds_once_and_credits_what_was_received() {
    let (deposit_id, start) = initiated(DepositMethod::Stripe);
    given(std::slice::from_ref(&start))
        .when(DepositCommand::Succeed { amount: pos("9.50"), at: Timestamp(2) })
        .then(vec![succeeded("9.50")]);
    let state = DepositState::default().apply(&start);
    let credit = wallet_effect(&state, &succeeded("9.50"));
    assert_eq!(credit, Some(WalletCommand::Deposit { deposit_id, amount: pos("9.50"), source: Clearing::Stripe }));
    given(&[start, succeeded("9.50")])
        .when(DepositCommand::Succeed { amount: pos("9.50"), at: Timestamp(3) })
        .then_fails(DepositError::NotPending(DepositStatus::Succeeded));
}

#[test]
fn a_failed_card_payment_may_still_succeed_but_a_rejected_deposit_never_credits() {
    let (_, start) = initiated(DepositMethod::Upi);
    let failed = DepositEvent::Failed { reason: "card declined".into(), at: Timestamp(2) };
    given(&[start.clone(), failed])
        .when(DepositCommand::Succeed { amount: pos("10"), at: Timestamp(3) })
        .then(vec![DepositEvent::Succeeded { amount: pos("10"), at: Timestamp(3) }]);
    let rejected = DepositEvent::Rejected { reason: "no such transfer".into(), by: UserId::new(), at: Timestamp(2) };
    given(&[start.clone(), rejected])
        .when(DepositCommand::Succeed { amount: pos("10"), at: Timestamp(3) })
        .then_fails(DepositError::NotPending(DepositStatus::Rejected));
    given(std::slice::from_ref(&start))
        .when(DepositCommand::Reject { reason: " ".into(), by: UserId::new(), at: Timestamp(2) })
        .then_fails(DepositError::BadReason);
    given(&[]).when(DepositCommand::Fail { reason: "x".into(), at: Timestamp(2) }).then_fails(DepositError::Unknown);
}

#[test]
fn reversals_need_a_success_and_never_exceed_what_was_received() {
    let (_, start) = initiated(DepositMethod::Stripe);
    let reverse = |id: &str, amount: &str| DepositCommand::Reverse {
        reversal_id: id.into(),
        kind: ReversalKind::Refund,
        amount: pos(amount),
        at: Timestamp(5),
    };
    given(std::slice::from_ref(&start)).when(reverse("r1", "1")).then_fails(DepositError::NotSucceeded);
    let first = DepositEvent::Reversed {
        reversal_id: "r1".into(),
        kind: ReversalKind::Refund,
        amount: pos("6"),
        at: Timestamp(5),
    };
    given(&[start.clone(), succeeded("10")]).when(reverse("r1", "6")).then(vec![first.clone()]);
    given(&[start.clone(), succeeded("10"), first.clone()])
        .when(reverse("r1", "6"))
        .then_fails(DepositError::ReversalExists("r1".into()));
    given(&[start.clone(), succeeded("10"), first.clone()])
        .when(reverse("r2", "4.01"))
        .then_fails(DepositError::ReversalTooLarge { asked: "4.01".parse().unwrap(), left: "4".parse().unwrap() });
    let state = DepositState::default().apply_all(&[start, succeeded("10"), first.clone()]);
    assert_eq!(state.reversible(), "4".parse::<Decimal>().unwrap());
    assert!(matches!(wallet_effect(&state, &first), Some(WalletCommand::ReverseDeposit { .. })));
}

#[test]
fn references_are_checked() {
    assert!(Reference::parse("0xabc123").is_ok());
    for bad in ["", "has space", "tab\t", &"x".repeat(REFERENCE_LENGTH_MAX + 1), "é"] {
        assert_eq!(Reference::parse(bad), Err(DepositError::BadReference), "{bad:?}");
    }
    assert_eq!(DepositMethod::parse("tron"), Some(DepositMethod::Tron));
    assert_eq!(DepositMethod::parse("paypal"), None);
}
