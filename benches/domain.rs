//! Criterion bench of the pure decide/apply path and the hash chain step.
//! Run: `cargo bench --bench domain`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use domain::catalog::{CountryCode, ServiceCode};
use domain::order::{OrderCommand, OrderPolicy, OrderState};
use domain::wallet::{WalletCommand, WalletState};
use domain::{Aggregate, Clearing, Currency, DepositId, DomainEvent, OrderId, PositiveMoney, Timestamp, UserId};
use smsledger::store::canonical::chain_hash;
use smsledger::store::{NewEvent, RecordedEvent};

fn funded_wallet(open_holds: usize) -> WalletState {
    let mut wallet = WalletState::new(UserId::new(), Currency::USD);
    let deposit = WalletCommand::Deposit {
        deposit_id: DepositId::new(),
        amount: PositiveMoney::parse("1000000", "USD").unwrap(),
        source: Clearing::Stripe,
    };
    let events = wallet.decide(deposit).unwrap();
    wallet = wallet.apply_all(&events);
    for _ in 0..open_holds {
        let hold =
            WalletCommand::PlaceHold { order_id: OrderId::new(), amount: PositiveMoney::parse("1.25", "USD").unwrap() };
        let events = wallet.decide(hold).unwrap();
        wallet = wallet.apply_all(&events);
    }
    wallet
}

fn wallet_hold(c: &mut Criterion) {
    let wallet = funded_wallet(100);
    let amount = PositiveMoney::parse("1.25", "USD").unwrap();
    c.bench_function("wallet: decide + apply a hold (100 open holds)", |b| {
        b.iter(|| {
            let events = wallet.decide(WalletCommand::PlaceHold { order_id: OrderId::new(), amount }).unwrap();
            black_box(wallet.clone().apply_all(&events))
        })
    });
}

fn order_place(c: &mut Criterion) {
    let service = ServiceCode::parse("tg").unwrap();
    let country = CountryCode::parse("GB").unwrap();
    let price = PositiveMoney::parse("1.50", "USD").unwrap();
    c.bench_function("order: decide + apply place", |b| {
        b.iter(|| {
            let command = OrderCommand::Place {
                order_id: OrderId::new(),
                user_id: UserId::new(),
                service: service.clone(),
                country: country.clone(),
                price,
                policy: OrderPolicy::default(),
                number: None,
                now: Timestamp(1),
            };
            let events = OrderState::default().decide(command).unwrap();
            black_box(OrderState::default().apply_all(&events))
        })
    });
}

fn encode_and_hash(c: &mut Criterion) {
    let wallet = funded_wallet(0);
    let hold =
        WalletCommand::PlaceHold { order_id: OrderId::new(), amount: PositiveMoney::parse("1.25", "USD").unwrap() };
    let event = DomainEvent::Wallet(wallet.decide(hold).unwrap().remove(0));
    c.bench_function("event: encode + canonical sha256 chain step", |b| {
        b.iter(|| {
            let new = NewEvent::from_domain(&event);
            let recorded = RecordedEvent {
                position: 1,
                stream_id: "wallet-x-USD".into(),
                version: 1,
                event_id: new.event_id,
                event_type: new.event_type,
                schema_version: new.schema_version,
                payload: new.payload,
                metadata: serde_json::json!({}),
                recorded_at: chrono::DateTime::from_timestamp_micros(0).unwrap(),
                hash: Vec::new(),
            };
            black_box(chain_hash(&[0; 32], &recorded))
        })
    });
}

criterion_group!(benches, wallet_hold, order_place, encode_and_hash);
criterion_main!(benches);
