//! Projections, rebuild and verify against a scripted workload, on both engines.

mod common;
#[path = "common/workload.rs"]
mod workload;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TestDatabase, open_store};
use domain::DomainEvent;
use domain::order::OrderPolicy;
use domain::wallet::WalletEvent;
use domain::{Account, Currency};
use projections::ProjectionName;
use rust_decimal::Decimal;
use smsledger::projection::{self, Target, sink};
use smsledger::service::Ledger;
use smsledger::store::{AppendRequest, Engine, EventStore, ExpectedVersion, NewEvent, StreamAppend};
use smsledger::{point_in_time, verify};

async fn catch_up(engine: &Engine, batch_max: u32) {
    for projection in ProjectionName::ALL {
        while projection::run_batch(engine, projection, Target::Live, batch_max).await.unwrap() > 0 {}
    }
}

/// Runs the projector group (as `serve` does) until every member is at the head.
async fn group_catch_up(store: &EventStore, batch_max: u32) {
    let targets = projection::notifications::Targets::default();
    while projection::run_group_batch(store.engine(), store.live(), &targets, batch_max, false).await.unwrap() > 0 {}
}

async fn checkpoint_of(engine: &Engine, name: &str) -> i64 {
    let status = projection::status(engine, 0).await.unwrap();
    status.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no projection {name}")).position
}

/// A trigger that fails the insert of the statement line at `position`.
async fn fail_statement_line(engine: &Engine, position: i64) {
    match engine {
        Engine::Postgres(_) => {
            execute(engine, format!("CREATE FUNCTION crash() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'crash'; END $$;\
                CREATE TRIGGER crash BEFORE INSERT ON statement_lines FOR EACH ROW WHEN (NEW.position = {position}) EXECUTE FUNCTION crash();")).await
        }
        Engine::Sqlite(_) => {
            execute(engine, format!("CREATE TRIGGER crash BEFORE INSERT ON statement_lines WHEN NEW.position = {position} BEGIN SELECT RAISE(ABORT, 'crash'); END;")).await
        }
    }
}

async fn drop_statement_failure(engine: &Engine) {
    match engine {
        Engine::Postgres(_) => execute(engine, "DROP TRIGGER crash ON statement_lines").await,
        Engine::Sqlite(_) => execute(engine, "DROP TRIGGER crash").await,
    }
}

async fn ledger_positions(store: &EventStore) -> Vec<i64> {
    let events = store.read_all(0, 100_000).await.unwrap();
    events.iter().filter(|e| e.decode().unwrap().postings().is_some()).map(|e| e.position).collect()
}

async fn execute(engine: &Engine, statement: impl Into<String>) {
    let statement = statement.into();
    let sql = sqlx::AssertSqlSafe(statement.clone());
    match engine {
        Engine::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        Engine::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
    }
    .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn snapshot(engine: &Engine) -> sink::Snapshot {
    match engine {
        Engine::Postgres(pool) => sink::postgres::snapshot(&mut pool.acquire().await.unwrap()).await.unwrap(),
        Engine::Sqlite(pool) => sink::sqlite::snapshot(&mut pool.acquire().await.unwrap()).await.unwrap(),
    }
}

/// The balances projector running as `serve` runs it, woken by this store's tail or the poll.
fn live_balances(store: &EventStore, poll: Duration) -> tokio::task::JoinHandle<()> {
    let live = store.live().clone();
    tokio::spawn(projection::run_live(live, store.engine().clone(), ProjectionName::Balances, 100, poll))
}

async fn count_balances(engine: &Engine) -> i64 {
    let (count,): (i64,) = match engine {
        Engine::Postgres(pool) => sqlx::query_as("SELECT count(*) FROM balances").fetch_one(pool).await.unwrap(),
        Engine::Sqlite(pool) => sqlx::query_as("SELECT count(*) FROM balances").fetch_one(pool).await.unwrap(),
    };
    count
}

async fn ledger_with_workload(db: &TestDatabase, users: usize, orders: usize) -> (EventStore, Ledger) {
    let store = open_store(db).await;
    let ledger = Ledger::new(store.clone(), OrderPolicy::default());
    let accepted = workload::run(&ledger, users, orders, 42).await;
    assert!(accepted > users * orders, "the workload must mostly succeed ({accepted} accepted)");
    (store, ledger)
}

async fn verify_passes_after_a_random_workload_and_rebuild_is_identical(db: TestDatabase) {
    let (store, _) = ledger_with_workload(&db, 12, 12).await;
    // Small batches, so batch boundaries fall mid-order and mid-user.
    catch_up(store.engine(), 7).await;
    let report = verify::verify(&store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    assert!(report.ledger_events > 100);
    assert_eq!(report.open_holds, 0, "every order of the workload ended");
    assert!(report.trial_totals.values().all(Decimal::is_zero));
    let head = store.head().await.unwrap().position;
    assert!(report.projections.iter().all(|(_, position)| *position == head));

    let live = snapshot(store.engine()).await;
    assert!(!live.balances.is_empty() && !live.statement.is_empty() && !live.trial_balance.is_empty());
    let total: Decimal = live.trial_balance.values().map(|(balance, _)| *balance).sum();
    assert_eq!(total, Decimal::ZERO);
    for projection in ProjectionName::ALL {
        let position = projection::rebuild(store.engine(), projection, 50, &|_| {}).await.unwrap();
        assert_eq!(position, head);
    }
    assert_eq!(snapshot(store.engine()).await, live, "a rebuild gives the same views to the cent");
    // And a second rebuild (the aside table names are free again).
    projection::rebuild(store.engine(), ProjectionName::Balances, 1_000, &|_| {}).await.unwrap();
    assert_eq!(snapshot(store.engine()).await, live);
    assert!(verify::verify(&store).await.unwrap().is_ok());
}

async fn a_projector_that_crashes_mid_batch_resumes_without_double_applying(db: TestDatabase) {
    let (store, _) = ledger_with_workload(&db, 4, 5).await;
    let engine = store.engine();
    // A trigger that fails the insert of the third statement line: the batch dies part-way.
    fail_statement_line(engine, ledger_positions(&store).await[2]).await;
    assert!(projection::run_batch(engine, ProjectionName::Statement, Target::Live, 1_000).await.is_err());
    let after_crash = snapshot(engine).await;
    assert!(after_crash.statement.is_empty(), "lines before the failure in the same batch were not kept");
    let status = projection::status(engine, 0).await.unwrap();
    assert_eq!(status.iter().find(|s| s.name == "statement").unwrap().position, 0);
    drop_statement_failure(engine).await;
    catch_up(engine, 1_000).await;
    let report = verify::verify(&store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

/// The group folds each page once into every projection: the same views as each projection
/// folded alone (a rebuild) and as `verify`'s fold of the log, every checkpoint at the head.
async fn the_projector_group_folds_what_each_projection_folds_alone(db: TestDatabase) {
    let (store, _) = ledger_with_workload(&db, 8, 10).await;
    // Small pages, so page boundaries fall mid-order and mid-user.
    group_catch_up(&store, 7).await;
    let head = store.head().await.unwrap().position;
    let status = projection::status(store.engine(), head).await.unwrap();
    assert!(status.iter().all(|s| s.lag == 0), "{status:?}");
    let report = verify::verify(&store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    let grouped = snapshot(store.engine()).await;
    assert!(!grouped.balances.is_empty() && !grouped.statement.is_empty());
    for projection in ProjectionName::ALL {
        projection::rebuild(store.engine(), projection, 50, &|_| {}).await.unwrap();
    }
    assert_eq!(snapshot(store.engine()).await, grouped);
}

/// A member whose checkpoint is further on than the others' (one that ran alone, or a
/// rebuild swapped in) is folded only what comes after it: nothing twice.
async fn a_group_member_ahead_gets_only_what_is_after_its_checkpoint(db: TestDatabase) {
    let (store, ledger) = ledger_with_workload(&db, 4, 5).await;
    while projection::run_batch(store.engine(), ProjectionName::Balances, Target::Live, 1_000).await.unwrap() > 0 {}
    let balances_at = checkpoint_of(store.engine(), "balances").await;
    assert!(balances_at > 0 && checkpoint_of(store.engine(), "statement").await == 0);
    workload::run(&ledger, 3, 3, 9).await;
    group_catch_up(&store, 1_000).await;
    let report = verify::verify(&store).await.unwrap();
    assert!(report.is_ok(), "balances folded twice or missed: {:?}", report.problems);
}

/// A projection that fails its page does not hold the others back: the round falls back to
/// each projection alone; once the fault is gone, the failed one catches up.
async fn one_failing_projection_does_not_stop_the_group(db: TestDatabase) {
    let (store, _) = ledger_with_workload(&db, 4, 5).await;
    let engine = store.engine();
    fail_statement_line(engine, ledger_positions(&store).await[2]).await;
    group_catch_up(&store, 1_000).await;
    let head = store.head().await.unwrap().position;
    assert_eq!(checkpoint_of(engine, "balances").await, head);
    assert_eq!(checkpoint_of(engine, "orders").await, head);
    assert_eq!(checkpoint_of(engine, "statement").await, 0, "the failing projection kept nothing");
    drop_statement_failure(engine).await;
    group_catch_up(&store, 1_000).await;
    assert_eq!(checkpoint_of(engine, "statement").await, head);
    let report = verify::verify(&store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

async fn rebuild_under_writes_never_shows_a_half_built_view(db: TestDatabase) {
    let (store, ledger) = ledger_with_workload(&db, 6, 4).await;
    catch_up(store.engine(), 1_000).await;
    let before = count_balances(store.engine()).await;
    assert_eq!(before, 6);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (engine, stop) = (store.engine().clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0;
            while !stop.load(Ordering::Relaxed) {
                let seen = count_balances(&engine).await;
                assert!(seen >= before, "a reader saw {seen} balances, fewer than {before}: a half-built view");
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        })
    };
    let live = tokio::spawn(projection::run_live(
        store.live().clone(),
        store.engine().clone(),
        ProjectionName::Balances,
        5,
        Duration::from_millis(20),
    ));
    let writer = tokio::spawn(async move { workload::run(&ledger, 4, 3, 7).await });
    projection::rebuild(store.engine(), ProjectionName::Balances, 3, &|_| {}).await.unwrap();
    writer.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(reader.await.unwrap() > 0);
    live.abort();
    catch_up(store.engine(), 1_000).await;
    assert_eq!(count_balances(store.engine()).await, 10);
    let report = verify::verify(&store).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
}

async fn the_live_projector_follows_new_appends(db: TestDatabase) {
    let store = open_store(&db).await;
    let ledger = Ledger::new(store.clone(), OrderPolicy::default());
    let live = live_balances(&store, Duration::from_secs(30));
    workload::run(&ledger, 2, 2, 3).await;
    let head = store.head().await.unwrap().position;
    let caught_up = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let status = projection::status(store.engine(), head).await.unwrap();
            if status.iter().find(|s| s.name == "balances").unwrap().lag == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    live.abort();
    assert!(caught_up.is_ok(), "woken by the writer, not the 30 s poll");
}

async fn verify_names_the_first_tampered_position(db: TestDatabase) {
    let (store, _) = ledger_with_workload(&db, 2, 3).await;
    catch_up(store.engine(), 1_000).await;
    assert!(verify::verify(&store).await.unwrap().is_ok());
    let engine = store.engine();
    match engine {
        Engine::Postgres(_) => {
            execute(engine, "ALTER TABLE events DISABLE TRIGGER events_append_only").await;
            execute(engine, r#"UPDATE events SET payload = payload || '{"tampered": true}' WHERE position = 3"#).await;
        }
        Engine::Sqlite(_) => {
            execute(engine, "DROP TRIGGER events_no_update").await;
            execute(engine, "UPDATE events SET payload = 'not json at all' WHERE position = 3").await;
        }
    }
    let report = verify::verify(&store).await.unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.problems[0].position, Some(3), "{:?}", report.problems);
}

/// A stored view that disagrees with the log is named, per projection.
async fn verify_names_a_projection_that_differs_from_the_log(db: TestDatabase) {
    let (store, _) = ledger_with_workload(&db, 2, 3).await;
    catch_up(store.engine(), 1_000).await;
    assert!(verify::verify(&store).await.unwrap().is_ok());
    execute(
        store.engine(),
        "UPDATE balances SET available = '999' WHERE user_id = (SELECT user_id FROM balances ORDER BY user_id LIMIT 1)",
    )
    .await;
    execute(store.engine(), "DELETE FROM statement_lines WHERE position = (SELECT max(position) FROM statement_lines)")
        .await;
    let report = verify::verify(&store).await.unwrap();
    let problems: Vec<&str> = report.problems.iter().map(|p| p.what.as_str()).collect();
    assert_eq!(report.problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("balances projection differs from the log at"), "{problems:?}");
    assert!(problems[1].starts_with("statement projection differs from the log at line"), "{problems:?}");
    let head = store.head().await.unwrap().position;
    assert_eq!(report.problems[0].position, Some(head), "a balances difference is reported at its checkpoint");
}

/// Events written around the domain (straight to the store, so the hash chain is valid):
/// verify must name their positions and never panic.
async fn verify_reports_forged_events_without_panicking(db: TestDatabase) {
    let store = open_store(&db).await;
    let user = domain::UserId::new();
    let stream = domain::events::wallet_stream(user, Currency::USD);
    let forged_hold = DomainEvent::Wallet(WalletEvent::HoldPlaced {
        order_id: domain::OrderId::new(),
        amount: domain::PositiveMoney::parse("5", "USD").unwrap(),
        postings: domain::Postings::new().transfer(
            Account::UserAvailable(user),
            Account::UserHeld(user),
            domain::Money::parse("5", "USD").unwrap(),
        ),
    });
    let append = |events: Vec<NewEvent>| AppendRequest {
        streams: vec![StreamAppend { stream_id: stream.clone(), expected: ExpectedVersion::Any, events }],
        ..Default::default()
    };
    store.append(append(vec![NewEvent::from_domain(&forged_hold)])).await.unwrap();
    let mut wrong_shape = NewEvent::from_domain(&forged_hold);
    wrong_shape.payload = serde_json::json!({"order_id": "not a uuid"});
    store.append(append(vec![wrong_shape])).await.unwrap();
    let mut unbalanced = NewEvent::from_domain(&forged_hold);
    unbalanced.payload["postings"][0]["amount"]["amount"] = serde_json::json!("-4");
    store.append(append(vec![unbalanced])).await.unwrap();

    let report = verify::verify(&store).await.unwrap();
    let positions: Vec<Option<i64>> = report.problems.iter().map(|p| p.position).collect();
    assert_eq!(positions[..3], [Some(1), Some(2), Some(3)], "{:?}", report.problems);
    assert!(report.problems[0].what.contains("below zero"), "{:?}", report.problems[0]);
    assert!(report.problems[1].what.contains("does not decode"), "{:?}", report.problems[1]);
    assert!(report.problems[2].what.contains("unbalanced"), "{:?}", report.problems[2]);
}

/// A client that just wrote reads its own write, under concurrent writes of others.
async fn a_balance_read_sees_the_writes_before_it(db: TestDatabase) {
    let store = open_store(&db).await;
    let ledger = Ledger::new(store.clone(), OrderPolicy::default());
    let mut users = Vec::new();
    for _ in 0..4 {
        let (store, ledger) = (store.clone(), ledger.clone());
        users.push(tokio::spawn(async move {
            let user = domain::UserId::new();
            for i in 1..=8 {
                let deposit = domain::wallet::WalletCommand::Deposit {
                    deposit_id: domain::DepositId::new(),
                    amount: domain::PositiveMoney::parse("1.25", "USD").unwrap(),
                    source: domain::Clearing::Sandbox,
                };
                ledger.wallet_command(user, Currency::USD, deposit, None, Default::default()).await.unwrap();
                let read = smsledger::read::balance(&store, user, Currency::USD).await.unwrap();
                assert_eq!(read.available, Decimal::new(125, 2) * Decimal::from(i), "read {i} misses its own write");
            }
        }));
    }
    for user in users {
        user.await.unwrap();
    }
    let never_funded = smsledger::read::balance(&store, domain::UserId::new(), Currency::USD).await.unwrap();
    assert_eq!(never_funded, smsledger::read::WalletBalance::default());
    // The balance is the wallet this process keeps in memory: no projector needs to run for a
    // read to include the write before it.
    let late = domain::UserId::new();
    let deposit = domain::wallet::WalletCommand::Deposit {
        deposit_id: domain::DepositId::new(),
        amount: domain::PositiveMoney::parse("2.00", "USD").unwrap(),
        source: domain::Clearing::Sandbox,
    };
    ledger.wallet_command(late, Currency::USD, deposit, None, Default::default()).await.unwrap();
    let read = smsledger::read::balance(&store, late, Currency::USD).await.unwrap();
    assert_eq!(read.available, Decimal::new(200, 2));
}

/// A keyed command retried after it was applied returns its first outcome; the state it
/// created (an order placed, the money gone) must not refuse the retry.
async fn a_retried_command_returns_its_first_outcome(db: TestDatabase) {
    use domain::order::{OrderCommand, OrderError};
    use domain::wallet::WalletCommand;
    use smsledger::service::ServiceError;
    let store = open_store(&db).await;
    let ledger = Ledger::new(store.clone(), OrderPolicy::default());
    let user = domain::UserId::new();
    let usd = |amount: &str| domain::PositiveMoney::parse(amount, "USD").unwrap();
    let key = |k: &str| Some(format!("{user}:{k}"));
    let deposit = WalletCommand::Deposit {
        deposit_id: domain::DepositId::new(),
        amount: usd("2.00"),
        source: domain::Clearing::Sandbox,
    };
    let first =
        ledger.wallet_command(user, Currency::USD, deposit.clone(), key("deposit"), Default::default()).await.unwrap();
    let again = ledger.wallet_command(user, Currency::USD, deposit, key("deposit"), Default::default()).await.unwrap();
    assert!(again.replayed && again.first_position == first.first_position);

    let order_id = domain::OrderId::new();
    let place = OrderCommand::Place {
        order_id,
        user_id: user,
        service: domain::catalog::ServiceCode::parse("tg").unwrap(),
        country: domain::catalog::CountryCode::parse("GB").unwrap(),
        price: usd("1.50"),
        policy: OrderPolicy::default(),
        number: None,
        now: domain::Timestamp(1),
    };
    let placed =
        ledger.order_command(order_id, place.clone(), key("place"), Default::default()).await.unwrap().unwrap();
    let retried =
        ledger.order_command(order_id, place.clone(), key("place"), Default::default()).await.unwrap().unwrap();
    assert!(retried.replayed && retried.last_position == placed.last_position, "not AlreadyPlaced");
    let unkeyed = ledger.order_command(order_id, place, None, Default::default()).await;
    assert!(
        matches!(unkeyed, Err(ServiceError::Order(OrderError::AlreadyPlaced))),
        "without a key it is a new command"
    );

    let withdraw = WalletCommand::RequestWithdrawal { withdrawal_id: domain::WithdrawalId::new(), amount: usd("0.50") };
    ledger.wallet_command(user, Currency::USD, withdraw.clone(), key("withdraw"), Default::default()).await.unwrap();
    let retried =
        ledger.wallet_command(user, Currency::USD, withdraw, key("withdraw"), Default::default()).await.unwrap();
    assert!(retried.replayed, "not InsufficientFunds");

    // The same keyed deposit sent 8 times at once credits once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (ledger, key) = (ledger.clone(), key("burst"));
        tasks.push(tokio::spawn(async move {
            let deposit = WalletCommand::Deposit {
                deposit_id: domain::DepositId::new(),
                amount: usd("1.00"),
                source: domain::Clearing::Sandbox,
            };
            ledger.wallet_command(user, Currency::USD, deposit, key, Default::default()).await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let wallet = ledger.wallet(user, Currency::USD).await.unwrap().state;
    assert_eq!((wallet.available, wallet.held), (Decimal::ONE, Decimal::new(150, 2)), "2.00 - 1.50 - 0.50 + 1.00 once");
}

async fn balance_at_a_past_position(db: TestDatabase) {
    let (store, _) = ledger_with_workload(&db, 3, 2).await;
    let head = store.head().await.unwrap().position;
    let clearing = Account::Clearing(domain::Clearing::Stripe);
    let now = point_in_time::account_balance(&store, &clearing, head).await.unwrap();
    let at_one = point_in_time::account_balance(&store, &clearing, 1).await.unwrap();
    let first = store.read_all(0, 1).await.unwrap().remove(0).decode().unwrap();
    let expected_at_one = first.postings().unwrap().net(&clearing, Currency::USD);
    assert_eq!(at_one.get(&Currency::USD).copied().unwrap_or_default(), expected_at_one);
    assert!(now[&Currency::USD] < Decimal::ZERO, "three deposits came in through Stripe");
    assert!(point_in_time::account_balance(&store, &clearing, 0).await.unwrap().is_empty());
}

/// Two instances (two `Ledger`s, each with its own cache of wallet folds) writing one wallet:
/// each sees the other's writes, and the cached fold plus the tail equals a full fold.
async fn cached_wallet_folds_see_every_write(db: TestDatabase) {
    use domain::wallet::WalletCommand;
    let store = open_store(&db).await;
    let (one, two) =
        (Ledger::new(store.clone(), OrderPolicy::default()), Ledger::new(store.clone(), OrderPolicy::default()));
    let user = domain::UserId::new();
    let deposit = |amount: &str| WalletCommand::Deposit {
        deposit_id: domain::DepositId::new(),
        amount: domain::PositiveMoney::parse(amount, "USD").unwrap(),
        source: domain::Clearing::Sandbox,
    };
    one.wallet_command(user, Currency::USD, deposit("1.00"), None, Default::default()).await.unwrap();
    assert_eq!(one.wallet(user, Currency::USD).await.unwrap().version, 1, "cached at version 1");
    two.wallet_command(user, Currency::USD, deposit("2.00"), None, Default::default()).await.unwrap();
    one.wallet_command(user, Currency::USD, deposit("4.00"), None, Default::default()).await.unwrap();
    for ledger in [&one, &two] {
        let wallet = ledger.wallet(user, Currency::USD).await.unwrap();
        assert_eq!((wallet.version, wallet.state.available), (3, rust_decimal::Decimal::from(7)));
    }
    // The same as folding the whole stream afresh.
    let fresh = Ledger::new(store.clone(), OrderPolicy::default()).wallet(user, Currency::USD).await.unwrap();
    assert_eq!(fresh.state, one.wallet(user, Currency::USD).await.unwrap().state);
}

/// A code arriving while the monitor expires the order: whichever is decided first wins and
/// the other sees a closed order, never a hold that its wallet no longer has.
async fn a_code_racing_an_expiry_settles_the_hold_once(db: TestDatabase) {
    use domain::order::{OrderCommand, OrderError};
    use smsledger::service::ServiceError;
    let store = open_store(&db).await;
    let ledger = Ledger::new(store.clone(), OrderPolicy::default());
    let user = domain::UserId::new();
    let usd = |amount: &str| domain::PositiveMoney::parse(amount, "USD").unwrap();
    let deposit = domain::wallet::WalletCommand::Deposit {
        deposit_id: domain::DepositId::new(),
        amount: usd("100.00"),
        source: domain::Clearing::Sandbox,
    };
    ledger.wallet_command(user, Currency::USD, deposit, None, Default::default()).await.unwrap();
    let t0 = domain::Timestamp(1_000);
    for _ in 0..30 {
        let (order_id, placing) = workload::placing(user, "1.00", t0);
        ledger.order_commands(order_id, placing, None, Default::default()).await.unwrap();
        let code = OrderCommand::ReceiveSms {
            sms_id: "1".into(),
            code: "123456".into(),
            text: "Your code 123456".into(),
            now: t0.plus_ms(1_000),
        };
        let expire = OrderCommand::Expire { now: t0.plus_ms(OrderPolicy::default().lifetime_ms + 1) };
        let racing: Vec<_> = [code, expire]
            .into_iter()
            .map(|command| {
                let ledger = ledger.clone();
                tokio::spawn(async move { ledger.order_command(order_id, command, None, Default::default()).await })
            })
            .collect();
        for result in racing {
            match result.await.unwrap() {
                Ok(_) | Err(ServiceError::Order(OrderError::Closed(_))) => {}
                Err(other) => panic!("a racing command failed with {other:?}"),
            }
        }
    }
    let report = smsledger::verify::verify(&store).await.unwrap();
    assert!(report.is_ok() && report.open_holds == 0, "{:?}", report.problems);
}

on_both_engines!(
    the_projector_group_folds_what_each_projection_folds_alone,
    a_group_member_ahead_gets_only_what_is_after_its_checkpoint,
    one_failing_projection_does_not_stop_the_group,
    a_code_racing_an_expiry_settles_the_hold_once,
    cached_wallet_folds_see_every_write,
    verify_passes_after_a_random_workload_and_rebuild_is_identical,
    a_projector_that_crashes_mid_batch_resumes_without_double_applying,
    rebuild_under_writes_never_shows_a_half_built_view,
    the_live_projector_follows_new_appends,
    verify_names_the_first_tampered_position,
    verify_reports_forged_events_without_panicking,
    verify_names_a_projection_that_differs_from_the_log,
    a_balance_read_sees_the_writes_before_it,
    a_retried_command_returns_its_first_outcome,
    balance_at_a_past_position,
);

/// The ledger projections' loads of the rows a batch touches (each balance, each trial-balance
/// row, each key's newest statement line) are planned as an index step per key even when
/// PostgreSQL plans them generically on empty tables, the plans a connection keeps while the
/// tables grow (decision 0033). Plain joins, and the correlated `max` used for the newest
/// line, were planned there as hash joins over a sequential scan of the whole table.
#[tokio::test]
async fn keyed_loads_are_read_by_index_on_young_tables() {
    let Some((_database, mut connection)) = migrated_connection("keyed_loads_plan").await else { return };
    sqlx::query("SET plan_cache_mode = force_generic_plan").execute(&mut *connection).await.unwrap();
    let loads = [
        ("statement_lines", ("user_id", "uuid"), &["available_after", "held_after", "position"][..], Some("position")),
        ("balances", ("user_id", "uuid"), &["available", "held", "position"][..], None),
        ("trial_balance", ("account", "text"), &["balance", "position"][..], None),
    ];
    for (table, key, columns, newest_by) in loads {
        let key_type = key.1;
        let read = sink::KeyedRead { table, key, columns, newest_by };
        let text = format!("EXPLAIN {}", sink::keyed_select_postgres(&read));
        let keys: Vec<String> = (0..64).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let query = sqlx::query_as(sqlx::AssertSqlSafe(text));
        let query = if key_type == "uuid" {
            query.bind(keys.iter().map(|key| key.parse::<uuid::Uuid>().unwrap()).collect::<Vec<_>>())
        } else {
            query.bind(keys)
        };
        let rows: Vec<(String,)> = query.bind(vec!["USD"; 64]).fetch_all(&mut *connection).await.unwrap();
        let plan = rows.into_iter().map(|(line,)| line).collect::<Vec<_>>().join("\n");
        let step = if newest_by.is_some() { "Index Scan Backward using" } else { "Index Scan using" };
        assert!(plan.contains(&format!("{step} {table}_pkey")), "{table}:\n{plan}");
        assert!(!plan.contains("Seq Scan") && !plan.contains("Hash"), "{table}:\n{plan}");
    }
}

/// A connection to a fresh, migrated PostgreSQL database (kept while the first is held).
async fn migrated_connection(test: &str) -> Option<(TestDatabase, sqlx::pool::PoolConnection<sqlx::Postgres>)> {
    let database = common::postgres_database(test).await?;
    let store = open_store(&database).await;
    let Engine::Postgres(pool) = store.engine() else { panic!("a PostgreSQL store") };
    let connection = pool.acquire().await.unwrap();
    Some((database, connection))
}

/// The order monitor reads the open orders a page at a time by (deadline, id). With many open
/// orders each page must be one range of `orders_open` that stops at the page's end, in both
/// the custom and the generic plan; the old keyset (`$1 IS NULL OR …`) read every open order
/// before the key again (tens of milliseconds a page at 100,000 open orders, decision 0034).
#[tokio::test]
async fn monitor_pages_are_ranges_of_the_open_orders_index() {
    let Some((_database, mut connection)) = migrated_connection("monitor_page_plan").await else { return };
    // 40,000 open orders, one in ten with its SMS (not waiting), deadlines ten apart.
    sqlx::query(
        "INSERT INTO orders (order_id, user_id, status, provider_id, provider_order_id, placed_at, expires_at, \
         position, view, service, country, waiting) \
         SELECT gen_random_uuid(), gen_random_uuid(), CASE WHEN i % 10 = 0 THEN 'sms_received' ELSE 'number_assigned' END, \
         'sandbox', i::text, i, 1000000 + i * 10, i, '{}', 'tg', 'GB', i % 10 <> 0 FROM generate_series(1, 40000) AS i",
    )
    .execute(&mut *connection)
    .await
    .unwrap();
    sqlx::query("ANALYZE orders").execute(&mut *connection).await.unwrap();
    let passed_over = |plan: &str| -> u64 {
        plan.lines()
            .filter_map(|line| line.split("Rows Removed by Filter: ").nth(1))
            .map(|n| n.trim().parse::<u64>().unwrap())
            .sum()
    };
    let prepare = format!("PREPARE watched (bigint, uuid, bigint, bigint) AS {}", projection::orders::WATCHED);
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut *connection).await.unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        // A page from the middle: 20,000 open orders lie before its key.
        let explain = format!(
            "SET plan_cache_mode = {mode}; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) \
             EXECUTE watched({}, '00000000-0000-0000-0000-000000000000', 500, 0)",
            1_000_000 + 20_000 * 10
        );
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(explain)).fetch_all(&mut *connection).await.unwrap();
        let plan = rows.iter().map(|row| sqlx::Row::get::<String, _>(row, 0)).collect::<Vec<_>>().join("\n");
        assert!(plan.contains("Index Scan using orders_open"), "{mode}:\n{plan}");
        assert!(!plan.contains("Sort") && !plan.contains("Seq Scan"), "{mode}:\n{plan}");
        // 500 waiting orders read, and the tenth of the orders in between that have their SMS.
        let removed = passed_over(&plan);
        assert!(removed <= 100, "{mode}: {removed} rows read and passed over\n{plan}");
    }
}

/// Admin searches name only the filters that are set (decision 0035). With an actor, the
/// activity log's page and count are ranges of its by-actor index in the generic plan too (a
/// `$1 IS NULL OR actor = $1` condition read the whole log there), and a count with no filter
/// stops at the cap instead of reading every row.
#[tokio::test]
async fn activity_searches_are_ranges_of_their_indexes() {
    use smsledger::projection::activity::{ActivityFilter, statements};
    let Some((_database, mut connection)) = migrated_connection("activity_search_plan").await else { return };
    // 60,000 rows by 600 actors, a hundred each.
    sqlx::query(
        "INSERT INTO activity_log (position, recorded_at, actor, event_type, stream_id) \
         SELECT i, i, 'user:' || (i % 600), 'order.placed', 'order-' || i FROM generate_series(1, 60000) AS i",
    )
    .execute(&mut *connection)
    .await
    .unwrap();
    sqlx::query("ANALYZE activity_log").execute(&mut *connection).await.unwrap();
    let plan_of = async |connection: &mut sqlx::PgConnection, mode: &str, execute: &str| -> String {
        let explain = format!("SET plan_cache_mode = {mode}; EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {execute}");
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(explain)).fetch_all(&mut *connection).await.unwrap();
        rows.iter().map(|row| sqlx::Row::get::<String, _>(row, 0)).collect::<Vec<_>>().join("\n")
    };
    // The most rows any node of a plan produced or dropped.
    let most_rows = |plan: &str| -> u64 {
        let numbers = |marker: &str| {
            plan.lines()
                .filter_map(|line| line.split(marker).nth(1))
                .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next()?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        };
        numbers("actual rows=").into_iter().chain(numbers("Rows Removed by Filter: ")).max().unwrap_or(0)
    };

    let by_actor = ActivityFilter { actor: Some("user:7".into()), ..ActivityFilter::default() };
    let (count, page) = statements(&by_actor.conditions());
    let prepare = format!("PREPARE counted AS {count}; PREPARE page AS {page}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut *connection).await.unwrap();
    for mode in ["force_custom_plan", "force_generic_plan"] {
        for execute in ["EXECUTE counted('user:7')", "EXECUTE page('user:7', 50, 0)"] {
            let plan = plan_of(&mut connection, mode, execute).await;
            assert!(plan.contains("activity_log_by_actor") && !plan.contains("Seq Scan"), "{mode} {execute}:\n{plan}");
            assert!(most_rows(&plan) <= 100, "{mode} {execute}: read more than the actor's rows\n{plan}");
        }
    }

    let (count, _) = statements(&ActivityFilter::default().conditions());
    let plan = plan_of(&mut connection, "force_custom_plan", &count).await;
    assert!(most_rows(&plan) <= smsledger::search::COUNT_CAP as u64 + 1, "the count read past its cap:\n{plan}");
    let counted: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count)).fetch_one(&mut *connection).await.unwrap();
    assert_eq!(smsledger::search::Total::of_count(counted), smsledger::search::Total { total: 10_000, exact: false });
}
