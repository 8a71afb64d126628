//! A scripted random workload through the real application service: deposits, orders
//! through every ending, withdrawals and admin adjustments, by many users at once.

// Each test binary that includes this file uses a part of it.
#![allow(dead_code)]

use domain::catalog::{CountryCode, PhoneNumber, ServiceCode};
use domain::order::OrderCommand;
use domain::wallet::WalletCommand;
use domain::{
    AdjustmentId, Clearing, Currency, DepositId, Money, OrderId, PositiveMoney, Timestamp, UserId, WithdrawalId,
};
use rust_decimal::Decimal;
use smsledger::service::{Ledger, ServiceError};
use smsledger::store::Metadata;

/// A small deterministic generator (xorshift), so a failing run can be replayed by seed.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Self {
        Random(seed.max(1))
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const T0: Timestamp = Timestamp(1_800_000_000_000);

fn cents(n: u64) -> Money {
    Money { amount: Decimal::new(n as i64, 2), currency: Currency::USD }
}

/// Runs `orders` orders for one user; returns how many commands were accepted.
pub async fn one_user(ledger: &Ledger, user: UserId, seed: u64, orders: usize) -> usize {
    let mut random = Random::new(seed);
    let mut accepted = 0;
    let deposit = WalletCommand::Deposit {
        deposit_id: DepositId::new(),
        amount: PositiveMoney::new(cents(500 + random.below(1_000))).unwrap(),
        source: Clearing::Stripe,
    };
    ledger
        .wallet_command(user, Currency::USD, deposit, Some(format!("deposit:{user}")), Metadata::default())
        .await
        .unwrap();
    accepted += 1;
    for _ in 0..orders {
        accepted += one_order(ledger, user, &mut random).await;
        if random.below(10) == 0 {
            accepted += money_movement(ledger, user, &mut random).await;
        }
    }
    accepted
}

async fn one_order(ledger: &Ledger, user: UserId, random: &mut Random) -> usize {
    let order_id = OrderId::new();
    let price = 50 + random.below(150);
    let place = OrderCommand::Place {
        order_id,
        user_id: user,
        service: ServiceCode::parse("tg").unwrap(),
        country: CountryCode::parse("GB").unwrap(),
        price: PositiveMoney::new(cents(price)).unwrap(),
        policy: ledger.policy,
        number: None,
        now: T0,
    };
    match ledger.order_command(order_id, place, Some(format!("place:{order_id}")), Metadata::default()).await {
        Ok(_) => {}
        Err(ServiceError::Wallet(_)) => return 0,
        Err(other) => panic!("place failed: {other:?}"),
    }
    let mut accepted = 1;
    let run = |command| async { ledger.order_command(order_id, command, None, Metadata::default()).await };
    if random.below(8) == 0 {
        run(OrderCommand::FailProvider { reason: "no numbers".into(), now: T0.plus_ms(1) }).await.unwrap();
        return accepted + 1;
    }
    let assign = OrderCommand::AssignNumber {
        provider_id: "sandbox".into(),
        provider_order_id: format!("sb-{order_id}"),
        phone: PhoneNumber::parse("+447700900123").unwrap(),
        cost: cents(price * 7 / 10),
        now: T0.plus_ms(10),
    };
    run(assign).await.unwrap();
    accepted += 1;
    let sms = |id: &str, at| OrderCommand::ReceiveSms {
        sms_id: id.into(),
        code: "123456".into(),
        text: "Your code 123456".into(),
        now: T0.plus_ms(at),
    };
    let ending = random.below(4);
    let commands = match ending {
        0 => vec![sms("a", 30_000), OrderCommand::Finish { now: T0.plus_ms(40_000) }],
        1 => vec![OrderCommand::Cancel { now: T0.plus_ms(121_000) }],
        2 => vec![OrderCommand::Expire { now: T0.plus_ms(1_200_001) }],
        _ => vec![
            sms("a", 30_000),
            sms("a", 31_000),
            OrderCommand::RequestAnotherSms { now: T0.plus_ms(40_000) },
            sms("b", 50_000),
            OrderCommand::Expire { now: T0.plus_ms(1_300_000) },
        ],
    };
    for command in commands {
        if run(command).await.unwrap().is_some() {
            accepted += 1;
        }
    }
    accepted
}

async fn money_movement(ledger: &Ledger, user: UserId, random: &mut Random) -> usize {
    let run =
        |command| async move { ledger.wallet_command(user, Currency::USD, command, None, Metadata::default()).await };
    let result = match random.below(3) {
        0 => {
            run(WalletCommand::Adjust {
                adjustment_id: AdjustmentId::new(),
                amount: cents(25),
                reason: "goodwill".into(),
                admin_id: UserId::new(),
            })
            .await
        }
        1 => {
            run(WalletCommand::Adjust {
                adjustment_id: AdjustmentId::new(),
                amount: cents(10).negated(),
                reason: "fee".into(),
                admin_id: UserId::new(),
            })
            .await
        }
        _ => {
            let withdrawal_id = WithdrawalId::new();
            let requested =
                run(WalletCommand::RequestWithdrawal { withdrawal_id, amount: PositiveMoney::new(cents(30)).unwrap() })
                    .await;
            if requested.is_ok() {
                let close = if random.below(2) == 0 {
                    WalletCommand::PayWithdrawal { withdrawal_id, clearing: Clearing::Manual }
                } else {
                    WalletCommand::RejectWithdrawal { withdrawal_id, reason: "details mismatch".into() }
                };
                run(close).await.unwrap();
            }
            requested
        }
    };
    match result {
        Ok(_) => 1,
        Err(ServiceError::Wallet(_)) => 0,
        Err(other) => panic!("money movement failed: {other:?}"),
    }
}

/// Runs `users` users concurrently; returns the accepted command count.
pub async fn run(ledger: &Ledger, users: usize, orders_per_user: usize, seed: u64) -> usize {
    let mut tasks = Vec::new();
    for i in 0..users {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            one_user(&ledger, UserId::new(), seed + i as u64 * 7919, orders_per_user).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await.unwrap();
    }
    accepted
}

/// The commands that place an order for `user` at `price` (USD) at `now` and give it a sandbox
/// number costing 0.50: appended together, as `Orders::place` does.
pub fn placing(user: UserId, price: &str, now: Timestamp) -> (OrderId, Vec<OrderCommand>) {
    let order_id = OrderId::new();
    let place = OrderCommand::Place {
        order_id,
        user_id: user,
        service: ServiceCode::parse("tg").unwrap(),
        country: CountryCode::parse("GB").unwrap(),
        price: PositiveMoney::parse(price, "USD").unwrap(),
        policy: domain::order::OrderPolicy::default(),
        number: None,
        now,
    };
    let assign = OrderCommand::AssignNumber {
        provider_id: "sandbox".into(),
        provider_order_id: format!("sb-{order_id}"),
        phone: PhoneNumber::parse("+447700900123").unwrap(),
        cost: Money::parse("0.50", "USD").unwrap(),
        now,
    };
    (order_id, vec![place, assign])
}
