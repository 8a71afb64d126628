//! The auditor's replay: recompute the hash chain, re-fold every aggregate and every
//! projection from the log, and compare with what is stored. The first problem is named
//! by its position; nothing in a damaged log makes this panic.

use std::collections::{BTreeMap, HashMap};

use domain::deposit::DepositEvent;
use domain::order::OrderEvent;
use domain::order::OrderState;
use domain::wallet::WalletState;
use domain::{Aggregate, Currency, DepositId, DomainEvent, OrderId, UserId};
use projections::{DepositView, Fold, LedgerEntry, OrderView, ProjectionName, StatementLine};
use rust_decimal::Decimal;
use tokio::sync::oneshot;

use crate::projection::{
    Target, analytics as analytics_view, checkpoint_name, deposits as deposits_view, orders as orders_view, sink,
    users as users_view,
};
use crate::store::canonical::{GENESIS_HASH, chain_hash};
use crate::store::{Engine, EventStore, LogReader, StoreError, snapshot};

/// Events read per page while replaying.
pub const VERIFY_PAGE_EVENTS: u32 = 5_000;

#[derive(Debug, Default)]
pub struct Report {
    pub events: i64,
    pub streams: usize,
    pub ledger_events: u64,
    pub open_holds: usize,
    /// Wallet snapshots compared with the fold of their events (decision 0036).
    pub snapshots: usize,
    pub trial_totals: BTreeMap<Currency, Decimal>,
    pub projections: Vec<(ProjectionName, i64)>,
    /// Position the orders view was compared up to.
    pub orders_view: i64,
    /// Position the deposits view was compared up to.
    pub deposits_view: i64,
    /// Position the analytics view was compared up to.
    pub analytics_view: i64,
    /// Position the users directory was compared up to.
    pub users_view: i64,
    /// Problems in log order; empty means the ledger verified.
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub position: Option<i64>,
    pub what: String,
}

impl Report {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, position: Option<i64>, what: impl Into<String>) {
        self.problems.push(Problem { position, what: what.into() });
    }

    /// A problem found in one event: an event already reported keeps its first problem only
    /// (its unbalanced postings also break its wallet, and that is one fault, not two).
    fn event_problem(&mut self, position: i64, what: impl Into<String>) {
        if self.problems.last().is_some_and(|last| last.position == Some(position)) {
            return;
        }
        self.problem(Some(position), what);
    }
}

#[derive(Default)]
struct Folds {
    /// `None`: broken by a stored event, no longer followed.
    wallets: HashMap<String, Option<WalletState>>,
    orders: HashMap<String, OrderState>,
    versions: HashMap<String, i64>,
    /// Each projection re-folded up to the checkpoint its stored table was read at.
    views: Vec<(ProjectionName, i64, Fold)>,
    /// Sum of every posting per currency (zero in a sound ledger).
    totals: BTreeMap<Currency, Decimal>,
    /// The orders view re-folded up to the checkpoint its stored table was read at.
    orders_checkpoint: i64,
    order_views: BTreeMap<OrderId, OrderView>,
    /// The deposits view, likewise: each deposit's events up to the checkpoint.
    deposits_checkpoint: i64,
    deposit_events: BTreeMap<DepositId, Vec<DepositEvent>>,
    /// The wallets' snapshots not yet compared, by stream: version and state (decision 0036).
    snapshots: HashMap<String, (u64, String)>,
    /// The analytics view, likewise.
    analytics_checkpoint: i64,
    analytics: projections::AnalyticsFold,
    /// The users directory, likewise.
    users_checkpoint: i64,
    users: BTreeMap<UserId, projections::UserRow>,
}

pub async fn verify(store: &EventStore) -> Result<Report, StoreError> {
    let mut report = Report::default();
    // The stored views are read on another task while the log is replayed.
    let (checkpoints, stored) = spawn_projection_read(store.engine().clone());
    let (checkpoints, [orders_checkpoint, deposits_checkpoint, analytics_checkpoint, users_checkpoint]) =
        match checkpoints.await {
            Ok(checkpoints) => checkpoints,
            Err(_) => {
                return Err(join(stored.await)
                    .err()
                    .unwrap_or(StoreError::TaskFailed("projection read stopped".into())));
            }
        };
    let mut folds = Folds {
        views: checkpoints
            .iter()
            .map(|(projection, checkpoint)| (*projection, *checkpoint, Fold::new(*projection)))
            .collect(),
        orders_checkpoint,
        deposits_checkpoint,
        analytics_checkpoint,
        users_checkpoint,
        // Read before the log: every snapshot read is of a version the replay reaches.
        snapshots: snapshot::all(store.engine())
            .await?
            .into_iter()
            .map(|(stream, version, state)| (stream, (version, state)))
            .collect(),
        ..Folds::default()
    };
    let mut previous = GENESIS_HASH;
    let mut after = 0;
    let mut reader = LogReader::new(store.engine(), 0, VERIFY_PAGE_EVENTS);
    // False when a broken log stopped the replay before its end.
    let replayed_whole = 'pages: loop {
        let page = match reader.next_page().await {
            Ok(page) => page,
            Err(StoreError::Corrupt { position, reason }) => {
                report.problem(Some(position), reason);
                break 'pages false;
            }
            Err(other) => return Err(other),
        };
        if page.is_empty() {
            break true;
        }
        for mut event in page {
            let position = event.position;
            if position != after + 1 {
                report.problem(Some(after + 1), format!("gap in positions: {after} is followed by {position}"));
                break 'pages false;
            }
            after = position;
            let hash = chain_hash(&previous, &event);
            if event.hash != hash {
                report.problem(Some(position), "hash chain broken: the event or an earlier one was altered");
                break 'pages false;
            }
            previous = hash;
            if !folds.versions.contains_key(&event.stream_id) {
                folds.versions.insert(event.stream_id.clone(), 0);
            }
            let last_version = folds.versions.get_mut(&event.stream_id).expect("inserted above");
            if event.version != *last_version + 1 {
                report.problem(
                    Some(position),
                    format!("stream {} jumps from version {last_version} to {}", event.stream_id, event.version),
                );
            }
            *last_version = event.version;
            let payload = std::mem::take(&mut event.payload);
            let decoded = match DomainEvent::decode_owned(&event.event_type, event.schema_version, payload) {
                Ok(decoded) => decoded,
                Err(error) => {
                    report.problem(Some(position), format!("payload does not decode: {error}"));
                    continue;
                }
            };
            fold_aggregate(&mut folds, &mut report, &event.stream_id, position, &decoded);
            if folds.snapshots.get(&event.stream_id).is_some_and(|(version, _)| *version as i64 == event.version) {
                compare_snapshot(&mut folds, &mut report, &event.stream_id, position);
            }
            if let DomainEvent::Order(order) = &decoded
                && position <= folds.orders_checkpoint
            {
                fold_order_view(&mut folds, &event.stream_id, position, order);
            }
            if let DomainEvent::Deposit(deposit) = &decoded
                && position <= folds.deposits_checkpoint
                && let Some(id) = event.stream_id.strip_prefix("deposit-").and_then(|id| id.parse().ok())
            {
                folds.deposit_events.entry(DepositId(id)).or_default().push(deposit.clone());
            }
            if position <= folds.analytics_checkpoint {
                folds.analytics.apply(event.recorded_at.timestamp_micros(), &decoded);
            }
            if let DomainEvent::User(user) = &decoded
                && position <= folds.users_checkpoint
                && let Some(id) = event.stream_id.strip_prefix("user-").and_then(|id| id.parse().ok()).map(UserId)
            {
                match folds.users.get_mut(&id) {
                    Some(row) => row.apply(user),
                    None => {
                        if let Some(row) = projections::UserRow::registered(user) {
                            folds.users.insert(id, row);
                        }
                    }
                }
            }
            if let Some(entry) =
                LedgerEntry::new(position, event.recorded_at.timestamp_micros(), &event.event_type, &decoded)
            {
                report.ledger_events += 1;
                if let Err(unbalanced) = entry.postings.check_balanced() {
                    report.event_problem(position, format!("postings are unbalanced: {unbalanced}"));
                }
                for leg in entry.postings.legs() {
                    *folds.totals.entry(leg.amount.currency).or_insert(Decimal::ZERO) += leg.amount.amount;
                }
                for (_, checkpoint, fold) in &mut folds.views {
                    if position <= *checkpoint {
                        fold.apply(&entry);
                    }
                }
            }
        }
    };
    // Every snapshot was read before the log, so a whole replay reached each one's version;
    // after a replay stopped early, the ones left were not checked, and not wrong.
    if replayed_whole {
        for (stream, (version, _)) in std::mem::take(&mut folds.snapshots) {
            let events = folds.versions.get(&stream).copied().unwrap_or(0);
            report.problem(None, format!("snapshot of {stream} at version {version} is past its {events} events"));
        }
    }
    report.events = after;
    report.streams = folds.versions.len();
    report.open_holds = folds.wallets.values().flatten().map(|w| w.holds.len()).sum();
    report.trial_totals = std::mem::take(&mut folds.totals);
    let unbalanced: Vec<String> = report
        .trial_totals
        .iter()
        .filter(|(_, total)| !total.is_zero())
        .map(|(currency, total)| format!("trial balance in {currency} sums to {total}, not zero"))
        .collect();
    for what in unbalanced {
        report.problem(None, what);
    }
    if report.is_ok() {
        // On a live service the log may have grown since it was read: the head is then past
        // what was checked, which is fine; behind it, or at it with another hash, is not.
        let head = store.head().await?;
        if head.position < after || (head.position == after && after > 0 && head.hash != previous) {
            report.problem(
                Some(head.position),
                format!("head row says position {} but the log ends at {after}", head.position),
            );
        }
        let (stored, stored_orders) = join(stored.await)?;
        compare_projections(&mut report, std::mem::take(&mut folds.views), stored);
        compare_views(&mut report, "orders", "order", &folds.order_views, &stored_orders.views, orders_checkpoint);
        let deposits: BTreeMap<DepositId, DepositView> = folds
            .deposit_events
            .iter()
            .filter_map(|(id, events)| DepositView::fold(events).map(|view| (*id, view)))
            .collect();
        compare_views(&mut report, "deposits", "deposit", &deposits, &stored_orders.deposits, deposits_checkpoint);
        let analytics: BTreeMap<String, Decimal> = folds
            .analytics
            .rows
            .iter()
            .map(|((day, metric, key, currency), value)| (format!("{day} {metric} {key} {currency}"), *value))
            .collect();
        compare_views(&mut report, "analytics", "row", &analytics, &stored_orders.analytics, analytics_checkpoint);
        compare_views(&mut report, "users", "user", &folds.users, &stored_orders.users, users_checkpoint);
    }
    report.projections = checkpoints;
    report.orders_view = orders_checkpoint;
    report.deposits_view = deposits_checkpoint;
    report.analytics_view = analytics_checkpoint;
    report.users_view = users_checkpoint;
    Ok(report)
}

/// A wallet's snapshot against the wallet folded from its events up to the same version.
fn compare_snapshot(folds: &mut Folds, report: &mut Report, stream_id: &str, position: i64) {
    let Some((version, text)) = folds.snapshots.remove(stream_id) else { return };
    report.snapshots += 1;
    let folded = folds.wallets.get(stream_id).and_then(Option::as_ref);
    let stored = serde_json::from_str::<WalletState>(&text).ok();
    if folded.is_none() || stored.as_ref() != folded {
        report.problem(Some(position), format!("snapshot of {stream_id} at version {version} differs from its events"));
    }
}

fn fold_aggregate(folds: &mut Folds, report: &mut Report, stream_id: &str, position: i64, event: &DomainEvent) {
    match event {
        DomainEvent::Wallet(event) => {
            if !folds.wallets.contains_key(stream_id) {
                let Some((user, currency)) = parse_wallet_stream(stream_id) else {
                    report.problem(Some(position), format!("wallet event in stream {stream_id}"));
                    return;
                };
                folds.wallets.insert(stream_id.to_owned(), Some(WalletState::new(user, currency)));
            }
            let slot = folds.wallets.get_mut(stream_id).expect("inserted above");
            // A wallet broken by an earlier event is not followed further (the report fails).
            let Some(state) = slot.take() else { return };
            match state.try_apply(event) {
                Ok(next) => *slot = Some(next),
                Err(broken) => report.event_problem(position, format!("wallet {stream_id}: {broken}")),
            }
        }
        DomainEvent::Order(event) => {
            if !stream_id.starts_with("order-") {
                report.problem(Some(position), format!("order event in stream {stream_id}"));
                return;
            }
            if !folds.orders.contains_key(stream_id) {
                folds.orders.insert(stream_id.to_owned(), OrderState::default());
            }
            let state = folds.orders.get_mut(stream_id).expect("inserted above");
            *state = std::mem::take(state).apply(event);
        }
        // Identity, maintenance and pricing events move no money, nor do deposit events (the
        // wallet events appended with them carry the postings); the chain check covers them.
        DomainEvent::Deposit(_) | DomainEvent::ReferenceClaimed(_) => {}
        DomainEvent::User(_)
        | DomainEvent::EmailClaimed(_)
        | DomainEvent::Session(_)
        | DomainEvent::ApiKey(_)
        | DomainEvent::Maintenance(_)
        | DomainEvent::Pricing(_) => {}
    }
}

/// `wallet-{user uuid}-{currency}`.
fn parse_wallet_stream(stream_id: &str) -> Option<(UserId, Currency)> {
    let rest = stream_id.strip_prefix("wallet-")?;
    let (user, currency) = rest.rsplit_once('-')?;
    Some((user.parse().ok()?, Currency::parse(currency).ok()?))
}

type Checkpoints = Vec<(ProjectionName, i64)>;

/// The orders and deposits views as stored.
#[derive(Default)]
struct StoredOrders {
    views: BTreeMap<OrderId, OrderView>,
    deposits: BTreeMap<DepositId, DepositView>,
    /// Rows by `"{day} {metric} {key} {currency}"`.
    analytics: BTreeMap<String, Decimal>,
    users: BTreeMap<UserId, projections::UserRow>,
}

type SnapshotTask = tokio::task::JoinHandle<Result<(sink::Snapshot, StoredOrders), StoreError>>;

/// Checkpoints and tables, read in one snapshot so a running projector cannot skew them.
/// The checkpoints arrive first (the replay needs them); the tables follow.
fn spawn_projection_read(engine: Engine) -> (oneshot::Receiver<(Checkpoints, [i64; 4])>, SnapshotTask) {
    let (send_checkpoints, checkpoints) = oneshot::channel();
    let task = tokio::spawn(async move {
        macro_rules! read {
            ($sink:ident, $tx:expr) => {{
                let tx = $tx;
                let mut checkpoints = Vec::new();
                for projection in ProjectionName::ALL {
                    let position =
                        sink::$sink::checkpoint(&mut *tx, &checkpoint_name(projection, Target::Live)).await?;
                    checkpoints.push((projection, position));
                }
                let orders_checkpoint = sink::$sink::checkpoint(&mut *tx, orders_view::NAME).await?;
                let deposits_checkpoint = sink::$sink::checkpoint(&mut *tx, deposits_view::NAME).await?;
                let analytics_checkpoint = sink::$sink::checkpoint(&mut *tx, analytics_view::NAME).await?;
                let users_checkpoint = sink::$sink::checkpoint(&mut *tx, users_view::NAME).await?;
                let views_checkpoints =
                    [orders_checkpoint, deposits_checkpoint, analytics_checkpoint, users_checkpoint];
                let _ = send_checkpoints.send((checkpoints, views_checkpoints));
                let snapshot = sink::$sink::snapshot(&mut *tx).await?;
                let views = orders_view::$sink::all(&mut *tx).await?;
                let deposits = deposits_view::$sink::all(&mut *tx).await?;
                let analytics = analytics_view::$sink::between(&mut *tx, "0000-00-00", "9999-99-99")
                    .await?
                    .into_iter()
                    .map(|(day, metric, key, currency, value)| (format!("{day} {metric} {key} {currency}"), value))
                    .collect();
                let users = users_view::$sink::all(&mut *tx).await?;
                (snapshot, StoredOrders { views, deposits, analytics, users })
            }};
        }
        Ok(match engine {
            Engine::Postgres(pool) => {
                let mut tx = pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
                read!(postgres, &mut *tx)
            }
            Engine::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                read!(sqlite, &mut *tx)
            }
        })
    });
    (checkpoints, task)
}

fn join<T>(joined: Result<Result<T, StoreError>, tokio::task::JoinError>) -> Result<T, StoreError> {
    joined.map_err(|e| StoreError::TaskFailed(format!("projection read task failed: {e}")))?
}

/// Compares each re-folded view with its stored table; a difference is reported at the
/// statement line's position, or at the view's checkpoint.
fn compare_projections(report: &mut Report, views: Vec<(ProjectionName, i64, Fold)>, mut stored: sink::Snapshot) {
    for (projection, checkpoint, fold) in views {
        let difference = match fold {
            Fold::Balances(fold) => {
                first_difference(&fold.rows, &stored.balances).map(|key| (checkpoint, format!("{key:?}")))
            }
            Fold::TrialBalance(fold) => {
                first_difference(&fold.rows, &stored.trial_balance).map(|key| (checkpoint, format!("{key:?}")))
            }
            Fold::Statement(fold) => first_line_difference(fold.lines, &mut stored.statement),
        };
        if let Some((position, what)) = difference {
            report.problem(Some(position), format!("{projection} projection differs from the log at {what}"));
        }
    }
}

/// Folds one order event into the re-folded orders view (an order stream that does not start
/// with `order.placed` is reported by the order aggregate's own fold).
fn fold_order_view(folds: &mut Folds, stream_id: &str, position: i64, event: &OrderEvent) {
    let Some(id) = stream_id.strip_prefix("order-").and_then(|id| id.parse().ok()).map(OrderId) else { return };
    match folds.order_views.get_mut(&id) {
        Some(view) => view.apply(event),
        None => {
            if let Some(view) = OrderView::placed(event, position) {
                folds.order_views.insert(id, view);
            }
        }
    }
}

/// Compares a re-folded document view with its stored table; a difference is reported at the
/// view's checkpoint, naming the first document that differs.
fn compare_views<K: Ord + std::fmt::Display, V: PartialEq>(
    report: &mut Report,
    name: &str,
    noun: &str,
    expected: &BTreeMap<K, V>,
    stored: &BTreeMap<K, V>,
    checkpoint: i64,
) {
    if expected == stored {
        return;
    }
    let differs = expected
        .iter()
        .find(|(id, view)| stored.get(id) != Some(view))
        .map(|(id, _)| id)
        .or_else(|| stored.keys().find(|id| !expected.contains_key(id)));
    let what = differs.map_or_else(String::new, |id| format!(" at {noun} {id}"));
    report.problem(Some(checkpoint), format!("{name} projection differs from the log{what}"));
}

fn first_line_difference(mut expected: Vec<StatementLine>, actual: &mut [StatementLine]) -> Option<(i64, String)> {
    expected.sort_by_key(|l| (l.position, l.user_id, l.currency));
    actual.sort_by_key(|l| (l.position, l.user_id, l.currency));
    if expected[..] == actual[..] {
        return None;
    }
    let index =
        expected.iter().zip(actual.iter()).position(|(a, b)| a != b).unwrap_or(expected.len().min(actual.len()));
    let position = expected.get(index).or(actual.get(index)).map_or(0, |l| l.position);
    Some((position, format!("line {index} ({} expected, {} stored)", expected.len(), actual.len())))
}

fn first_difference<K: Ord + Clone + std::fmt::Debug, V: PartialEq>(
    expected: &BTreeMap<K, V>,
    actual: &BTreeMap<K, V>,
) -> Option<K> {
    expected
        .iter()
        .find(|(k, v)| actual.get(k) != Some(v))
        .map(|(k, _)| k.clone())
        .or_else(|| actual.keys().find(|k| !expected.contains_key(k)).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallet_stream_names_parse() {
        let user = UserId::new();
        assert_eq!(parse_wallet_stream(&format!("wallet-{user}-USD")), Some((user, Currency::USD)));
        assert_eq!(parse_wallet_stream("wallet-nope-USD"), None);
        assert_eq!(parse_wallet_stream(&format!("order-{user}")), None);
    }
}
