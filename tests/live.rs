//! The streams a process keeps in memory (`store::live`) against the database: another
//! process's writes arrive, a stream loaded while it is being written misses nothing, and a
//! decision memory would refuse is decided again on the database's state.

mod common;
#[path = "common/workload.rs"]
mod workload;

use std::time::Duration;

use common::{TestDatabase, open_store};
use domain::Aggregate;
use domain::order::OrderPolicy;
use domain::order::{OrderCommand, OrderStatus};
use domain::wallet::{WalletCommand, WalletState};
use domain::{Clearing, Currency, DepositId, OrderId, PositiveMoney, UserId};
use rust_decimal::Decimal;
use smsledger::orders::Orders;
use smsledger::projection::orders as orders_view;
use smsledger::projection::views::View;
use smsledger::service::{Ledger, ServiceError};
use smsledger::store::snapshot::{self, SNAPSHOT_EVERY};
use smsledger::store::{Engine, EventStore, Folded, Loaded, Metadata, StoreError};

fn usd(amount: &str) -> Decimal {
    amount.parse().unwrap()
}

fn deposit(amount: &str) -> WalletCommand {
    WalletCommand::Deposit {
        deposit_id: DepositId::new(),
        amount: PositiveMoney::parse(amount, "USD").unwrap(),
        source: Clearing::Sandbox,
    }
}

async fn in_memory(store: &EventStore, user: UserId) -> Loaded<WalletState> {
    match &*store.folded(&domain::events::wallet_stream(user, Currency::USD), false).await.unwrap() {
        Folded::Wallet(wallet) => wallet.clone(),
        other => panic!("not a wallet: {other:?}"),
    }
}

/// Waits until `store`'s tail has passed the log's head as it is now.
async fn caught_up(store: &EventStore) {
    let head = store.head().await.unwrap().position;
    assert!(store.live().wait_tailed(head, Duration::from_secs(5)).await, "the tail reached {head}");
}

/// Two processes write one wallet concurrently while the first keeps reading it from memory
/// and dropping it (so it is loaded again while being written); afterwards memory equals the
/// database on both.
async fn memory_follows_every_process_writes(db: TestDatabase) {
    let (a, b) = (open_store(&db).await, open_store(&db).await);
    let (ledger_a, ledger_b) =
        (Ledger::new(a.clone(), OrderPolicy::default()), Ledger::new(b.clone(), OrderPolicy::default()));
    let user = UserId::new();
    let stream = domain::events::wallet_stream(user, Currency::USD);
    let writers: Vec<_> = [ledger_a.clone(), ledger_b.clone()]
        .into_iter()
        .map(|ledger| {
            tokio::spawn(async move {
                for _ in 0..40 {
                    // Two processes racing for one stream may lose more races in a row than a
                    // command retries; the test is about memory, so it retries the command.
                    let command = deposit("0.25");
                    loop {
                        match ledger
                            .wallet_command(user, Currency::USD, command.clone(), None, Metadata::default())
                            .await
                        {
                            Ok(_) => break,
                            Err(ServiceError::Store(StoreError::Conflict { .. })) => continue,
                            Err(error) => panic!("{error}"),
                        }
                    }
                }
            })
        })
        .collect();
    // The invariant: memory is never older than the tail (every event up to the tail's
    // position is in it), whether the stream was just loaded, dropped, or followed.
    let reader = {
        let (a, stream) = (a.clone(), stream.clone());
        tokio::spawn(async move {
            for round in 0..200 {
                if round % 10 == 0 {
                    a.live().forget(&stream);
                }
                let tailed = a.live().tailed();
                let memory = in_memory(&a, user).await.version;
                let logged = a.read_stream(&stream).await.unwrap();
                let passed = logged.iter().filter(|e| e.position <= tailed).count() as u64;
                assert!(memory >= passed, "round {round}: memory at {memory}, the tail passed {passed}");
                tokio::task::yield_now().await;
            }
        })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    reader.await.unwrap();
    for store in [&a, &b] {
        caught_up(store).await;
        let memory = in_memory(store, user).await;
        let database = ledger_a.wallet(user, Currency::USD).await.unwrap();
        assert_eq!(memory.version, 80);
        assert_eq!((memory.version, memory.state.available), (database.version, database.state.available));
        assert_eq!(memory.state.available, usd("20.00"));
    }
}

/// A wallet another process funded a moment ago is still empty in this process's memory; a
/// hold decided here is not refused for it: the refusal is decided again on the database.
async fn a_refusal_from_memory_is_confirmed_against_the_database(db: TestDatabase) {
    let (a, b) = (open_store(&db).await, open_store(&db).await);
    let (ledger_a, ledger_b) = (Ledger::new(a.clone(), OrderPolicy::default()), Ledger::new(b, OrderPolicy::default()));
    let user = UserId::new();
    ledger_a.wallet_command(user, Currency::USD, deposit("1.00"), None, Metadata::default()).await.unwrap();
    caught_up(&a).await;
    assert_eq!(in_memory(&a, user).await.state.available, usd("1.00"));
    ledger_b.wallet_command(user, Currency::USD, deposit("9.00"), None, Metadata::default()).await.unwrap();
    let hold =
        WalletCommand::PlaceHold { order_id: OrderId::new(), amount: PositiveMoney::parse("6.00", "USD").unwrap() };
    ledger_a.wallet_command(user, Currency::USD, hold, None, Metadata::default()).await.expect("the hold is placed");
    caught_up(&a).await;
    let memory = in_memory(&a, user).await.state;
    assert_eq!((memory.available, memory.held), (usd("4.00"), usd("6.00")));
}

/// A stream memory never saw is read from the database; one whose first event the tail passed
/// is kept whole from the start.
async fn a_new_stream_is_kept_from_its_first_event(db: TestDatabase) {
    let store = open_store(&db).await;
    caught_up(&store).await;
    let ledger = Ledger::new(store.clone(), OrderPolicy::default());
    let user = UserId::new();
    ledger.wallet_command(user, Currency::USD, deposit("3.50"), None, Metadata::default()).await.unwrap();
    caught_up(&store).await;
    let wallet = in_memory(&store, user).await;
    assert_eq!((wallet.version, wallet.state.available), (1, usd("3.50")));
    assert!(store.folded("deposit-x", false).await.is_err(), "only users, wallets and orders are kept");
}

/// Projectors read their pages from the events the tail passed last (this process's own
/// handed over by its writer, not read back), the same events as the log's, decoded the same;
/// and from the log once those are gone.
async fn recent_events_are_the_logs(db: TestDatabase) {
    let store = open_store(&db).await;
    caught_up(&store).await;
    let start = store.live().tailed();
    let ledger = Ledger::new(store.clone(), OrderPolicy::default());
    for _ in 0..5 {
        ledger.wallet_command(UserId::new(), Currency::USD, deposit("1.00"), None, Metadata::default()).await.unwrap();
    }
    caught_up(&store).await;
    let head = store.head().await.unwrap().position;
    for (after, limit) in [(start, 100), (start + 1, 2), (head - 1, 10), (head, 10)] {
        let memory = store.live().recent_after(after, limit).expect("the tail has them");
        let log = store.read_all(after, limit).await.unwrap();
        assert_eq!(memory.len(), log.len(), "after {after}, {limit}");
        for (passed, mut recorded) in memory.iter().zip(log) {
            let decoded = recorded.decode().expect("the log's event decodes");
            recorded.payload = serde_json::Value::Null; // taken out by the decoding
            assert_eq!(passed.recorded, recorded, "after {after}, {limit}");
            assert_eq!(passed.decoded.as_ref().expect("decoded"), &decoded);
        }
    }
    assert!(store.live().recent_after(head, 10).is_some_and(|page| page.is_empty()), "nothing after the head yet");
    if start > 0 {
        assert!(store.live().recent_after(start - 1, 10).is_none(), "from before the tail began: the log");
    }
}

/// Six orders placed through both processes in turn, two at each placing time (ties are
/// ordered by id, as in the view); then the last gets its code and the one before is cancelled.
async fn round(placed: &mut Vec<OrderId>, user: UserId, ledgers: [Ledger; 2], first: i64) {
    for (i, ledger) in ledgers.iter().cycle().take(6).enumerate() {
        let (order_id, commands) = workload::placing(user, "1.00", domain::Timestamp(first + i as i64 / 2));
        ledger.order_commands(order_id, commands, None, Metadata::default()).await.unwrap();
        placed.push(order_id);
    }
    let n = placed.len();
    let now = domain::Timestamp(first + 10_000_000);
    let sms = OrderCommand::ReceiveSms { sms_id: "1".into(), code: "4711".into(), text: "4711".into(), now };
    ledgers[1].order_command(placed[n - 1], sms, None, Metadata::default()).await.unwrap();
    let cancel = OrderCommand::ForceCancel { now };
    ledgers[1].order_command(placed[n - 2], cancel, None, Metadata::default()).await.unwrap();
}

/// A user's orders list in memory says what the orders view says, page by page and status by
/// status, while two processes place, cancel and complete that user's orders, before and
/// after the list was first read.
async fn orders_lists_in_memory_equal_the_orders_view(db: TestDatabase) {
    let (a, b) = (open_store(&db).await, open_store(&db).await);
    let (ledger_a, ledger_b) =
        (Ledger::new(a.clone(), OrderPolicy::default()), Ledger::new(b.clone(), OrderPolicy::default()));
    let catalog = std::sync::Arc::new(smsledger::catalog::CatalogCache::new(vec![]));
    let orders = Orders::new(a.clone(), ledger_a.clone(), catalog);
    let user = UserId::new();
    ledger_a.wallet_command(user, Currency::USD, deposit("100.00"), None, Metadata::default()).await.unwrap();
    let mut placed = Vec::new();
    round(&mut placed, user, [ledger_a.clone(), ledger_b.clone()], 1_000).await;
    let compare = |label: &'static str| {
        let (a, orders) = (a.clone(), &orders);
        async move {
            caught_up(&a).await;
            while smsledger::projection::views::run_batch(a.engine(), View::Orders, 1_000).await.unwrap() > 0 {}
            for status in
                [None, Some(OrderStatus::NumberAssigned), Some(OrderStatus::SmsReceived), Some(OrderStatus::Cancelled)]
            {
                for (offset, limit) in [(0, 100), (0, 4), (4, 4), (11, 5)] {
                    let memory = orders.page(user, status, offset, limit).await.unwrap();
                    let (_, view) =
                        orders_view::list_for_user(a.engine(), user, status, offset, limit, None).await.unwrap();
                    let ids =
                        |page: &orders_view::OrderPage| page.orders.iter().map(|o| o.order_id).collect::<Vec<_>>();
                    assert_eq!(
                        (ids(&memory), memory.total),
                        (ids(&view), view.total),
                        "{label} {status:?} {offset}+{limit}"
                    );
                    assert_eq!(memory.orders, view.orders, "{label}: the same views");
                }
            }
        }
    };
    compare("loaded").await;
    round(&mut placed, user, [ledger_b.clone(), ledger_a.clone()], 500).await;
    compare("followed").await;
    assert_eq!(orders.page(user, None, 0, 100).await.unwrap().total, 12);
}

/// A read "as the database has it now" (a retry after a conflict, an admin's look) of a wallet
/// memory keeps reads only the events after memory's version, and ends where reading the whole
/// stream does.
async fn a_fresh_read_continues_from_memory(db: TestDatabase) {
    let (a, b) = (open_store(&db).await, open_store(&db).await);
    let (ledger_a, ledger_b) = (Ledger::new(a.clone(), OrderPolicy::default()), Ledger::new(b, OrderPolicy::default()));
    let user = UserId::new();
    for _ in 0..30 {
        ledger_a.wallet_command(user, Currency::USD, deposit("1.00"), None, Metadata::default()).await.unwrap();
    }
    caught_up(&a).await;
    assert_eq!(in_memory(&a, user).await.version, 30);
    for _ in 0..2 {
        ledger_b.wallet_command(user, Currency::USD, deposit("0.50"), None, Metadata::default()).await.unwrap();
    }
    let read_before = a.events_read_by_folds();
    let fresh = ledger_a.wallet(user, Currency::USD).await.unwrap();
    assert_eq!((fresh.version, fresh.state.available), (32, usd("31.00")));
    let read = a.events_read_by_folds() - read_before;
    assert!(read <= 2, "{read} events read: memory had 30 of the 32");
    a.live().forget(&domain::events::wallet_stream(user, Currency::USD));
    let whole = ledger_a.wallet(user, Currency::USD).await.unwrap();
    assert_eq!((whole.version, whole.state.available), (fresh.version, fresh.state.available));
    assert_eq!(a.events_read_by_folds() - read_before - read, 32, "forgotten: the whole stream is read");
}

/// What `verify` finds after `sql` changed the database.
async fn tampered(store: &EventStore, sql: &'static str) -> Vec<smsledger::verify::Problem> {
    match store.engine() {
        Engine::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
        Engine::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap();
    smsledger::verify::verify(store).await.unwrap().problems
}

/// A long-lived wallet is snapshotted as the tail follows it (every `SNAPSHOT_EVERY` events);
/// loaded again, it is read from its snapshot and the events after it, and ends where the
/// whole stream does. `verify` compares each snapshot with the fold of its events.
async fn a_long_wallet_loads_from_its_snapshot(db: TestDatabase) {
    let store = open_store(&db).await;
    let ledger = Ledger::new(store.clone(), OrderPolicy::default());
    let user = UserId::new();
    let stream = domain::events::wallet_stream(user, Currency::USD);
    let events = SNAPSHOT_EVERY + 5;
    for _ in 0..events {
        ledger.wallet_command(user, Currency::USD, deposit("0.01"), None, Metadata::default()).await.unwrap();
    }
    caught_up(&store).await;
    let mut saved = None;
    for _ in 0..100 {
        saved = snapshot::load(store.engine(), &stream).await.unwrap();
        if saved.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (version, _) = saved.expect("the tail snapshotted the wallet");
    assert_eq!(version, SNAPSHOT_EVERY);

    store.live().forget(&stream);
    let read_before = store.events_read_by_folds();
    let loaded = ledger.wallet(user, Currency::USD).await.unwrap();
    assert_eq!(store.events_read_by_folds() - read_before, 5, "the snapshot and the events after it");
    let whole = store.fold_stream(&stream, WalletState::new(user, Currency::USD), |state, event| match event {
        domain::DomainEvent::Wallet(event) => Some(state.apply(&event)),
        _ => None,
    });
    let whole = whole.await.unwrap();
    assert_eq!((loaded.version, &loaded.state), (whole.version, &whole.state));
    assert_eq!(loaded.state.available, usd("10.05"));
    let report = smsledger::verify::verify(&store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert_eq!(report.snapshots, 1, "the snapshot was compared with the wallet's first 1,000 events");

    let problems = tampered(
        &store,
        "UPDATE stream_snapshots SET state = replace(state, '\"available\":\"10.00\"', '\"available\":\"99.00\"')",
    )
    .await;
    assert!(problems.iter().any(|p| p.what.contains("differs from its events")), "{problems:?}");
    let problems = tampered(&store, "UPDATE stream_snapshots SET version = 5000").await;
    assert!(problems.iter().any(|p| p.what.contains("is past its 1005 events")), "{problems:?}");
}

on_both_engines!(
    a_long_wallet_loads_from_its_snapshot,
    a_dropped_store_lets_its_pool_close,
    a_fresh_read_continues_from_memory,
    recent_events_are_the_logs,
    orders_lists_in_memory_equal_the_orders_view,
    memory_follows_every_process_writes,
    a_refusal_from_memory_is_confirmed_against_the_database,
    a_new_stream_is_kept_from_its_first_event,
);

/// A store's tail and its listener end with the store: once it is dropped, its pool closes at
/// once (the listener kept its connection, looping on the closed pool's errors, until this
/// was fixed).
async fn a_dropped_store_lets_its_pool_close(db: TestDatabase) {
    let store = open_store(&db).await;
    caught_up(&store).await;
    let engine = store.engine().clone();
    drop(store);
    let closed = match &engine {
        Engine::Postgres(pool) => tokio::time::timeout(Duration::from_secs(5), pool.close()).await,
        Engine::Sqlite(pool) => tokio::time::timeout(Duration::from_secs(5), pool.close()).await,
    };
    assert!(closed.is_ok(), "the pool closed within 5 s of the store's drop");
}

/// Each process's commits are announced with a tag of its own, the same for all its commits,
/// so that its tail skips its own announcements (the writer hands it those events) and wakes
/// for the other processes'.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_are_announced_with_their_process_tag() {
    let Some(db) = common::postgres_database("commits_are_announced_with_their_process_tag").await else { return };
    let (a, b) = (open_store(&db).await, open_store(&db).await);
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen(smsledger::store::CHANNEL).await.unwrap();
    let mut tags = Vec::new();
    for store in [&a, &a, &b] {
        let ledger = Ledger::new(store.clone(), OrderPolicy::default());
        ledger.wallet_command(UserId::new(), Currency::USD, deposit("1.00"), None, Metadata::default()).await.unwrap();
        let announced = tokio::time::timeout(Duration::from_secs(5), listener.recv()).await.expect("announced");
        tags.push(announced.unwrap().payload().to_owned());
    }
    assert!(!tags[0].is_empty());
    assert_eq!(tags[0], tags[1], "one process, one tag");
    assert_ne!(tags[0], tags[2], "another process, another tag");
    // And each still passes the other's commits.
    caught_up(&a).await;
    caught_up(&b).await;
}
