use rust_decimal::Decimal;

use super::*;
use crate::aggregate::scenario::Scenario;

fn usd(amount: &str) -> Money {
    Money::parse(amount, "USD").unwrap()
}

fn pos(amount: &str) -> PositiveMoney {
    PositiveMoney::parse(amount, "USD").unwrap()
}

struct Fixture {
    user: UserId,
    wallet: WalletState,
}

fn fixture() -> Fixture {
    let user = UserId::new();
    Fixture { user, wallet: WalletState::new(user, Currency::USD) }
}

impl Fixture {
    fn deposited(&self, amount: &str) -> WalletEvent {
        let deposit_id = DepositId::new();
        self.wallet
            .decide(WalletCommand::Deposit { deposit_id, amount: pos(amount), source: Clearing::Stripe })
            .unwrap()
            .remove(0)
    }

    fn held(&self, given: &[WalletEvent], order_id: OrderId, amount: &str) -> WalletEvent {
        let state = self.wallet.clone().apply_all(given);
        state.decide(WalletCommand::PlaceHold { order_id, amount: pos(amount) }).unwrap().remove(0)
    }

    fn scenario(&self, given: &[WalletEvent]) -> Scenario<WalletState> {
        Scenario::given(self.wallet.clone(), given)
    }

    fn available(&self) -> Account {
        Account::UserAvailable(self.user)
    }

    fn held_account(&self) -> Account {
        Account::UserHeld(self.user)
    }
}

#[test]
fn deposit_credits_available_from_clearing() {
    let f = fixture();
    let deposit_id = DepositId::new();
    f.scenario(&[]).when(WalletCommand::Deposit { deposit_id, amount: pos("10"), source: Clearing::Stripe }).then(
        vec![WalletEvent::Deposited {
            deposit_id,
            amount: pos("10"),
            source: Clearing::Stripe,
            postings: Postings::new().transfer(Account::Clearing(Clearing::Stripe), f.available(), usd("10")),
        }],
    );
}

#[test]
fn deposit_in_another_currency_is_refused() {
    let f = fixture();
    f.scenario(&[])
        .when(WalletCommand::Deposit {
            deposit_id: DepositId::new(),
            amount: PositiveMoney::parse("1", "EUR").unwrap(),
            source: Clearing::Manual,
        })
        .then_fails(WalletError::CurrencyMismatch { wallet: Currency::USD, given: Currency::parse("EUR").unwrap() });
}

#[test]
fn hold_moves_available_to_held() {
    let f = fixture();
    let order_id = OrderId::new();
    f.scenario(&[f.deposited("5")]).when(WalletCommand::PlaceHold { order_id, amount: pos("1.25") }).then(vec![
        WalletEvent::HoldPlaced {
            order_id,
            amount: pos("1.25"),
            postings: Postings::new().transfer(f.available(), f.held_account(), usd("1.25")),
        },
    ]);
}

#[test]
fn hold_beyond_available_is_refused() {
    let f = fixture();
    f.scenario(&[f.deposited("1")])
        .when(WalletCommand::PlaceHold { order_id: OrderId::new(), amount: pos("1.01") })
        .then_fails(WalletError::InsufficientFunds { available: Decimal::ONE, needed: Decimal::new(101, 2) });
}

#[test]
fn hold_on_the_last_cent_succeeds_once() {
    let f = fixture();
    let first = f.held(&[f.deposited("1")], OrderId::new(), "1");
    f.scenario(&[f.deposited("1"), first])
        .when(WalletCommand::PlaceHold { order_id: OrderId::new(), amount: pos("0.01") })
        .then_fails(WalletError::InsufficientFunds { available: Decimal::ZERO, needed: Decimal::new(1, 2) });
}

#[test]
fn second_hold_for_the_same_order_is_refused() {
    let f = fixture();
    let order_id = OrderId::new();
    let given = [f.deposited("5")];
    let hold = f.held(&given, order_id, "1");
    f.scenario(&[given[0].clone(), hold])
        .when(WalletCommand::PlaceHold { order_id, amount: pos("1") })
        .then_fails(WalletError::HoldExists(order_id));
}

#[test]
fn capture_splits_the_hold_into_provider_cost_and_margin() {
    let f = fixture();
    let order_id = OrderId::new();
    let given = [f.deposited("5")];
    let hold = f.held(&given, order_id, "1.50");
    f.scenario(&[given[0].clone(), hold])
        .when(WalletCommand::CaptureHold { order_id, provider_id: "smsman".into(), cost: usd("1.10") })
        .then(vec![WalletEvent::HoldCaptured {
            order_id,
            provider_id: "smsman".into(),
            cost: usd("1.10"),
            margin: usd("0.40"),
            postings: Postings::new()
                .transfer(f.held_account(), Account::ProviderPayable("smsman".into()), usd("1.10"))
                .transfer(f.held_account(), Account::RevenueMargin, usd("0.40")),
        }]);
}

#[test]
fn capture_rejections() {
    let f = fixture();
    let order_id = OrderId::new();
    let given = [f.deposited("5")];
    let hold = f.held(&given, order_id, "1");
    let history = [given[0].clone(), hold];
    f.scenario(&history)
        .when(WalletCommand::CaptureHold { order_id, provider_id: "smsman".into(), cost: usd("1.01") })
        .then_fails(WalletError::CostOutOfRange { cost: Decimal::new(101, 2), held: Decimal::ONE });
    f.scenario(&history)
        .when(WalletCommand::CaptureHold { order_id, provider_id: "smsman".into(), cost: usd("-0.01") })
        .then_fails(WalletError::CostOutOfRange { cost: Decimal::new(-1, 2), held: Decimal::ONE });
    f.scenario(&history)
        .when(WalletCommand::CaptureHold { order_id, provider_id: "Bad Id".into(), cost: usd("0.5") })
        .then_fails(WalletError::BadProvider("Bad Id".into()));
    let unknown = OrderId::new();
    f.scenario(&history)
        .when(WalletCommand::CaptureHold { order_id: unknown, provider_id: "smsman".into(), cost: usd("0.5") })
        .then_fails(WalletError::UnknownHold(unknown));
}

#[test]
fn release_returns_the_hold_and_a_second_release_is_refused() {
    let f = fixture();
    let order_id = OrderId::new();
    let given = [f.deposited("5")];
    let hold = f.held(&given, order_id, "2");
    let release = WalletEvent::HoldReleased {
        order_id,
        reason: ReleaseReason::Expired,
        postings: Postings::new().transfer(f.held_account(), f.available(), usd("2")),
    };
    f.scenario(&[given[0].clone(), hold.clone()])
        .when(WalletCommand::ReleaseHold { order_id, reason: ReleaseReason::Expired })
        .then(vec![release.clone()]);
    f.scenario(&[given[0].clone(), hold, release])
        .when(WalletCommand::ReleaseHold { order_id, reason: ReleaseReason::Cancelled })
        .then_fails(WalletError::UnknownHold(order_id));
}

#[test]
fn admin_credit_and_debit() {
    let f = fixture();
    let admin_id = UserId::new();
    let adjustment_id = AdjustmentId::new();
    f.scenario(&[])
        .when(WalletCommand::Adjust { adjustment_id, amount: usd("3"), reason: "goodwill".into(), admin_id })
        .then(vec![WalletEvent::Adjusted {
            adjustment_id,
            amount: usd("3"),
            reason: "goodwill".into(),
            admin_id,
            postings: Postings::new().transfer(Account::EquityAdjustments, f.available(), usd("3")),
        }]);
    f.scenario(&[f.deposited("5")])
        .when(WalletCommand::Adjust { adjustment_id, amount: usd("-2"), reason: "chargeback".into(), admin_id })
        .then(vec![WalletEvent::Adjusted {
            adjustment_id,
            amount: usd("-2"),
            reason: "chargeback".into(),
            admin_id,
            postings: Postings::new().transfer(f.available(), Account::EquityAdjustments, usd("2")),
        }]);
}

#[test]
fn adjustment_rejections() {
    let f = fixture();
    let admin_id = UserId::new();
    let adjust = |amount: &str, reason: &str| WalletCommand::Adjust {
        adjustment_id: AdjustmentId::new(),
        amount: usd(amount),
        reason: reason.into(),
        admin_id,
    };
    f.scenario(&[f.deposited("1")])
        .when(adjust("-2", "too much"))
        .then_fails(WalletError::InsufficientFunds { available: Decimal::ONE, needed: Decimal::TWO });
    f.scenario(&[]).when(adjust("0", "nothing")).then_fails(WalletError::ZeroAdjustment);
    f.scenario(&[]).when(adjust("1", "   ")).then_fails(WalletError::BadReason);
    f.scenario(&[]).when(adjust("1", &"x".repeat(REASON_LENGTH_MAX + 1))).then_fails(WalletError::BadReason);
}

#[test]
fn withdrawal_request_pay_and_reject() {
    let f = fixture();
    let withdrawal_id = WithdrawalId::new();
    let requested = WalletEvent::WithdrawalRequested {
        withdrawal_id,
        amount: pos("4"),
        postings: Postings::new().transfer(f.available(), Account::PayoutPending, usd("4")),
    };
    let funded = f.deposited("5");
    f.scenario(std::slice::from_ref(&funded))
        .when(WalletCommand::RequestWithdrawal { withdrawal_id, amount: pos("4") })
        .then(vec![requested.clone()]);
    let history = [funded, requested];
    f.scenario(&history).when(WalletCommand::PayWithdrawal { withdrawal_id, clearing: Clearing::Manual }).then(vec![
        WalletEvent::WithdrawalPaid {
            withdrawal_id,
            clearing: Clearing::Manual,
            postings: Postings::new().transfer(Account::PayoutPending, Account::Clearing(Clearing::Manual), usd("4")),
        },
    ]);
    f.scenario(&history).when(WalletCommand::RejectWithdrawal { withdrawal_id, reason: "name mismatch".into() }).then(
        vec![WalletEvent::WithdrawalRejected {
            withdrawal_id,
            reason: "name mismatch".into(),
            postings: Postings::new().transfer(Account::PayoutPending, f.available(), usd("4")),
        }],
    );
}

#[test]
fn withdrawal_rejections() {
    let f = fixture();
    let withdrawal_id = WithdrawalId::new();
    let funded = f.deposited("5");
    f.scenario(std::slice::from_ref(&funded))
        .when(WalletCommand::RequestWithdrawal { withdrawal_id, amount: pos("6") })
        .then_fails(WalletError::InsufficientFunds { available: Decimal::new(5, 0), needed: Decimal::new(6, 0) });
    f.scenario(&[])
        .when(WalletCommand::PayWithdrawal { withdrawal_id, clearing: Clearing::Manual })
        .then_fails(WalletError::UnknownWithdrawal(withdrawal_id));
    let state = f.wallet.clone().apply(&funded);
    let requested = state.decide(WalletCommand::RequestWithdrawal { withdrawal_id, amount: pos("1") }).unwrap();
    let paid = WalletEvent::WithdrawalPaid {
        withdrawal_id,
        clearing: Clearing::Manual,
        postings: Postings::new().transfer(Account::PayoutPending, Account::Clearing(Clearing::Manual), usd("1")),
    };
    let history = [funded, requested[0].clone(), paid];
    f.scenario(&history[..2])
        .when(WalletCommand::RejectWithdrawal { withdrawal_id, reason: String::new() })
        .then_fails(WalletError::BadReason);
    f.scenario(&history)
        .when(WalletCommand::RejectWithdrawal { withdrawal_id, reason: "late".into() })
        .then_fails(WalletError::UnknownWithdrawal(withdrawal_id));
    f.scenario(&history)
        .when(WalletCommand::RequestWithdrawal { withdrawal_id, amount: pos("1") })
        .then_fails(WalletError::WithdrawalExists(withdrawal_id));
}

#[test]
fn try_apply_reports_a_corrupt_event_instead_of_panicking() {
    let f = fixture();
    let forged = WalletEvent::HoldPlaced {
        order_id: OrderId::new(),
        amount: pos("1"),
        postings: Postings::new().transfer(f.available(), f.held_account(), usd("1")),
    };
    assert_eq!(f.wallet.clone().try_apply(&forged), Err(BrokenInvariant::NegativeAvailable(Decimal::NEGATIVE_ONE)));
}

/// A hold event whose postings move a different amount than the hold it names breaks
/// `held` = the open holds' sum, whichever of the two is wrong.
#[test]
fn try_apply_reports_held_drifting_from_the_open_holds() {
    let f = fixture();
    let funded = f.wallet.clone().apply(&f.deposited("10"));
    let order_id = OrderId::new();
    let forged = WalletEvent::HoldPlaced {
        order_id,
        amount: pos("2"),
        postings: Postings::new().transfer(f.available(), f.held_account(), usd("3")),
    };
    let drift = BrokenInvariant::HeldDrift { held: Decimal::from(3), holds: Decimal::from(2) };
    assert_eq!(funded.clone().try_apply(&forged), Err(drift));
    let placed = funded.apply(&WalletEvent::HoldPlaced {
        order_id,
        amount: pos("2"),
        postings: Postings::new().transfer(f.available(), f.held_account(), usd("2")),
    });
    // A release of less than the hold leaves held at 1 with no hold open.
    let short_release = WalletEvent::HoldReleased {
        order_id,
        reason: ReleaseReason::Cancelled,
        postings: Postings::new().transfer(f.held_account(), f.available(), usd("1")),
    };
    let drift = BrokenInvariant::HeldDrift { held: Decimal::ONE, holds: Decimal::ZERO };
    assert_eq!(placed.clone().try_apply(&short_release), Err(drift));
    // A second hold for the same order replaces the first: held must move by the difference.
    let doubled = WalletEvent::HoldPlaced {
        order_id,
        amount: pos("2"),
        postings: Postings::new().transfer(f.available(), f.held_account(), usd("2")),
    };
    let drift = BrokenInvariant::HeldDrift { held: Decimal::from(4), holds: Decimal::from(2) };
    assert_eq!(placed.try_apply(&doubled), Err(drift));
}

fn reverse(deposit_id: DepositId, reversal_id: &str, amount: &str) -> WalletCommand {
    WalletCommand::ReverseDeposit {
        deposit_id,
        reversal_id: reversal_id.into(),
        amount: pos(amount),
        source: Clearing::Stripe,
    }
}

#[test]
fn a_reversal_within_the_balance_takes_it_back() {
    let f = fixture();
    let deposit_id = DepositId::new();
    let stripe = Account::Clearing(Clearing::Stripe);
    f.scenario(&[f.deposited("10")]).when(reverse(deposit_id, "re_1", "4")).then(vec![WalletEvent::DepositReversed {
        deposit_id,
        reversal_id: "re_1".into(),
        amount: pos("4"),
        source: Clearing::Stripe,
        taken: usd("4"),
        owed: usd("0"),
        postings: Postings::new().transfer(f.available(), stripe, usd("4")),
    }]);
}

#[test]
fn a_reversal_beyond_the_balance_becomes_debt_that_the_next_deposit_repays() {
    let f = fixture();
    let deposit_id = DepositId::new();
    // 10 in, 7 held by an order: only 3 available when a 10 dispute comes.
    let given = [f.deposited("10")];
    let hold = f.held(&given, OrderId::new(), "7");
    let state = f.wallet.clone().apply_all(&[given[0].clone(), hold]);
    let reversed = state.decide(reverse(deposit_id, "dp_1", "10")).unwrap();
    let WalletEvent::DepositReversed { taken, owed, postings, .. } = &reversed[0] else { panic!("{reversed:?}") };
    assert_eq!((taken, owed), (&usd("3"), &usd("7")));
    assert_eq!(postings.net(&Account::UserDebt(f.user), Currency::USD), Decimal::from(-7));
    let state = state.apply_all(&reversed);
    assert_eq!((state.available, state.held, state.debt), (Decimal::ZERO, Decimal::from(7), Decimal::from(7)));
    // Nothing can be ordered while in debt; a deposit of 10 repays 7 and leaves 3.
    assert!(state.decide(WalletCommand::PlaceHold { order_id: OrderId::new(), amount: pos("0.01") }).is_err());
    let deposit = WalletCommand::Deposit { deposit_id: DepositId::new(), amount: pos("10"), source: Clearing::Upi };
    let credited = state.decide(deposit).unwrap();
    let WalletEvent::Deposited { postings, .. } = &credited[0] else { panic!() };
    assert_eq!(postings.net(&Account::UserDebt(f.user), Currency::USD), Decimal::from(7));
    assert_eq!(postings.net(&f.available(), Currency::USD), Decimal::from(3));
    let state = state.apply_all(&credited);
    assert_eq!((state.available, state.debt), (Decimal::from(3), Decimal::ZERO));
}

#[test]
fn a_reversal_is_taken_once() {
    let f = fixture();
    let deposit_id = DepositId::new();
    let first = f.wallet.clone().apply(&f.deposited("10")).decide(reverse(deposit_id, "re_1", "1")).unwrap();
    f.scenario(&[f.deposited("10"), first[0].clone()])
        .when(reverse(deposit_id, "re_1", "1"))
        .then_fails(WalletError::ReversalExists("re_1".into()));
    f.scenario(&[]).when(reverse(deposit_id, "", "1")).then_fails(WalletError::BadReversalId);
}

/// A wallet's state read back from its snapshot's JSON is the same state: balances to the
/// cent, open holds, pending withdrawals, and the ids it has seen (a reversal id is still
/// refused the second time).
#[test]
fn a_wallet_state_survives_its_snapshot_json() {
    let f = fixture();
    let mut state = f.wallet.clone();
    let (withdrawal_id, order_id) = (WithdrawalId::new(), OrderId::new());
    for command in [
        WalletCommand::Deposit { deposit_id: DepositId::new(), amount: pos("10.37"), source: Clearing::Stripe },
        WalletCommand::PlaceHold { order_id, amount: pos("0.13") },
        WalletCommand::RequestWithdrawal { withdrawal_id, amount: pos("2") },
        reverse(DepositId::new(), "re_9", "9"),
    ] {
        let events = state.decide(command).unwrap();
        state = state.apply_all(&events);
    }
    assert_eq!(
        (state.available, state.held, state.debt),
        (Decimal::ZERO, "0.13".parse().unwrap(), "0.76".parse().unwrap())
    );
    let json = serde_json::to_string(&state).unwrap();
    let read: WalletState = serde_json::from_str(&json).unwrap();
    assert_eq!(read, state);
    assert!(read.decide(reverse(DepositId::new(), "re_9", "1")).is_err());
}
