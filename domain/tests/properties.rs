//! Property: any sequence of accepted commands keeps the ledger exact.
//! Postings balance, available >= 0, held == sum of open holds, the balances equal the
//! fold of the postings, and once every order is closed no hold is left open.

use std::collections::BTreeMap;

use domain::order::{OrderCommand, OrderPolicy, OrderState, wallet_effect};
use domain::wallet::{WalletCommand, WalletEvent, WalletState};
use domain::{Account, Aggregate, Clearing, Currency, DepositId, Money, OrderId, PositiveMoney, Timestamp, UserId};
use domain::{AdjustmentId, WithdrawalId, catalog::*};
use proptest::prelude::*;
use rust_decimal::Decimal;

#[derive(Clone, Debug)]
enum Op {
    Deposit(i64),
    Place { price: i64, cost_percent: i64 },
    Assign(usize),
    Sms(usize, u8),
    Another(usize),
    Finish(usize),
    Cancel(usize),
    Expire(usize),
    FailProvider(usize),
    Adjust(i64),
    Withdraw(i64),
    PayWithdrawal(usize),
    RejectWithdrawal(usize),
    Wait(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1i64..5_000).prop_map(Op::Deposit),
        (1i64..2_000, 0i64..=100).prop_map(|(price, cost_percent)| Op::Place { price, cost_percent }),
        any::<usize>().prop_map(Op::Assign),
        (any::<usize>(), 0u8..3).prop_map(|(i, s)| Op::Sms(i, s)),
        any::<usize>().prop_map(Op::Another),
        any::<usize>().prop_map(Op::Finish),
        any::<usize>().prop_map(Op::Cancel),
        any::<usize>().prop_map(Op::Expire),
        any::<usize>().prop_map(Op::FailProvider),
        (-3_000i64..3_000).prop_map(Op::Adjust),
        (1i64..3_000).prop_map(Op::Withdraw),
        any::<usize>().prop_map(Op::PayWithdrawal),
        any::<usize>().prop_map(Op::RejectWithdrawal),
        (0u64..700_000).prop_map(Op::Wait),
    ]
}

struct World {
    wallet: WalletState,
    orders: Vec<(OrderState, i64)>,
    withdrawals: Vec<WithdrawalId>,
    trial_balance: BTreeMap<Account, Decimal>,
    now: Timestamp,
}

fn cents(n: i64) -> Money {
    Money { amount: Decimal::new(n, 2), currency: Currency::USD }
}

impl World {
    fn new() -> Self {
        World {
            wallet: WalletState::new(UserId::new(), Currency::USD),
            orders: Vec::new(),
            withdrawals: Vec::new(),
            trial_balance: BTreeMap::new(),
            now: Timestamp(1_700_000_000_000),
        }
    }

    fn apply_wallet(&mut self, command: WalletCommand) -> bool {
        let Ok(events) = self.wallet.decide(command) else { return false };
        for event in &events {
            self.check_and_fold(event);
        }
        true
    }

    fn check_and_fold(&mut self, event: &WalletEvent) {
        let postings = event.postings();
        assert!(postings.check_balanced().is_ok(), "unbalanced {event:?}");
        for leg in postings.legs() {
            *self.trial_balance.entry(leg.account.clone()).or_default() += leg.amount.amount;
        }
        self.wallet = self.wallet.clone().apply(event);
        let user = self.wallet.user;
        assert!(self.wallet.available >= Decimal::ZERO);
        assert_eq!(self.wallet.held, self.wallet.holds.values().copied().sum::<Decimal>());
        let folded = |account| self.trial_balance.get(&account).copied().unwrap_or_default();
        assert_eq!(folded(Account::UserAvailable(user)), self.wallet.available);
        assert_eq!(folded(Account::UserHeld(user)), self.wallet.held);
        assert_eq!(self.trial_balance.values().copied().sum::<Decimal>(), Decimal::ZERO);
    }

    /// An order command and the wallet command it implies succeed together or not at all,
    /// as the atomic multi-stream append makes them in the service.
    fn apply_order(&mut self, index: usize, command: OrderCommand) {
        let (state, _) = &self.orders[index];
        let Ok(events) = state.decide(command) else { return };
        let mut order = state.clone();
        let mut wallet_commands = Vec::new();
        for event in &events {
            wallet_commands.extend(wallet_effect(&order, event));
            order = order.apply(event);
        }
        let mut wallet = self.wallet.clone();
        for command in &wallet_commands {
            let Ok(events) = wallet.decide(command.clone()) else { return };
            wallet = wallet.apply_all(&events);
        }
        for command in wallet_commands {
            assert!(self.apply_wallet(command));
        }
        self.orders[index].0 = order;
        if self.orders[index].0.status.is_some_and(|s| s.is_closed()) {
            assert!(!self.wallet.holds.contains_key(&order_id(&self.orders[index].0)), "closed order kept its hold");
        }
    }

    fn pick(&self, i: usize) -> Option<usize> {
        (!self.orders.is_empty()).then(|| i % self.orders.len())
    }

    fn run(&mut self, op: Op) {
        let now = self.now;
        match op {
            Op::Deposit(n) => {
                let amount = PositiveMoney::new(cents(n)).unwrap();
                self.apply_wallet(WalletCommand::Deposit {
                    deposit_id: DepositId::new(),
                    amount,
                    source: Clearing::Stripe,
                });
            }
            Op::Place { price, cost_percent } => {
                let command = OrderCommand::Place {
                    order_id: OrderId::new(),
                    user_id: self.wallet.user,
                    service: ServiceCode::parse("tg").unwrap(),
                    country: CountryCode::parse("GB").unwrap(),
                    price: PositiveMoney::new(cents(price)).unwrap(),
                    policy: OrderPolicy::default(),
                    number: None,
                    now,
                };
                self.orders.push((OrderState::default(), price * cost_percent / 100));
                let index = self.orders.len() - 1;
                self.apply_order(index, command);
                if self.orders[index].0.status.is_none() {
                    self.orders.pop();
                }
            }
            Op::Assign(i) => {
                if let Some(i) = self.pick(i) {
                    let cost = cents(self.orders[i].1);
                    let phone = PhoneNumber::parse("+447700900123").unwrap();
                    let command = OrderCommand::AssignNumber {
                        provider_id: "sandbox".into(),
                        provider_order_id: format!("p{i}"),
                        phone,
                        cost,
                        now,
                    };
                    self.apply_order(i, command);
                }
            }
            Op::Sms(i, s) => self.on_order(
                i,
                OrderCommand::ReceiveSms { sms_id: format!("s{s}"), code: "1".into(), text: String::new(), now },
            ),
            Op::Another(i) => self.on_order(i, OrderCommand::RequestAnotherSms { now }),
            Op::Finish(i) => self.on_order(i, OrderCommand::Finish { now }),
            Op::Cancel(i) => self.on_order(i, OrderCommand::Cancel { now }),
            Op::Expire(i) => self.on_order(i, OrderCommand::Expire { now }),
            Op::FailProvider(i) => self.on_order(i, OrderCommand::FailProvider { reason: "down".into(), now }),
            Op::Adjust(n) => {
                let command = WalletCommand::Adjust {
                    adjustment_id: AdjustmentId::new(),
                    amount: cents(n),
                    reason: "test".into(),
                    admin_id: UserId::new(),
                };
                self.apply_wallet(command);
            }
            Op::Withdraw(n) => {
                let withdrawal_id = WithdrawalId::new();
                let amount = PositiveMoney::new(cents(n)).unwrap();
                if self.apply_wallet(WalletCommand::RequestWithdrawal { withdrawal_id, amount }) {
                    self.withdrawals.push(withdrawal_id);
                }
            }
            Op::PayWithdrawal(i) | Op::RejectWithdrawal(i) if self.withdrawals.is_empty() => {
                let _ = i;
            }
            Op::PayWithdrawal(i) => {
                let withdrawal_id = self.withdrawals[i % self.withdrawals.len()];
                self.apply_wallet(WalletCommand::PayWithdrawal { withdrawal_id, clearing: Clearing::Manual });
            }
            Op::RejectWithdrawal(i) => {
                let withdrawal_id = self.withdrawals[i % self.withdrawals.len()];
                self.apply_wallet(WalletCommand::RejectWithdrawal { withdrawal_id, reason: "no".into() });
            }
            Op::Wait(ms) => self.now = self.now.plus_ms(ms),
        }
    }

    fn on_order(&mut self, i: usize, command: OrderCommand) {
        if let Some(i) = self.pick(i) {
            self.apply_order(i, command);
        }
    }
}

fn order_id(state: &OrderState) -> OrderId {
    state.placed.as_ref().unwrap().order_id
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepted_commands_keep_the_ledger_exact(ops in prop::collection::vec(op(), 1..120)) {
        let mut world = World::new();
        for op in ops {
            world.run(op);
        }
        // Every hold ends captured or released: after the lifetime, expiring closes them all.
        world.now = world.now.plus_ms(OrderPolicy::default().lifetime_ms + 1);
        for i in 0..world.orders.len() {
            world.apply_order(i, OrderCommand::Expire { now: world.now });
            let status = world.orders[i].0.status.unwrap();
            prop_assert!(status.is_closed(), "order {i} still {status:?}");
        }
        prop_assert!(world.wallet.holds.is_empty());
        prop_assert_eq!(world.wallet.held, Decimal::ZERO);
        let captured = world.orders.iter().filter(|(o, _)| o.is_captured()).count();
        let revenue = world.trial_balance.get(&Account::RevenueMargin).copied().unwrap_or_default();
        prop_assert!(revenue >= Decimal::ZERO);
        prop_assert!(captured > 0 || revenue.is_zero());
    }
}

#[test]
fn a_rejected_hold_places_no_order() {
    let mut world = World::new();
    world.run(Op::Deposit(100));
    world.run(Op::Place { price: 101, cost_percent: 50 });
    assert!(world.orders.is_empty());
    assert_eq!(world.wallet.available, Decimal::ONE);
}
