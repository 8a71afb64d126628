//! The log as this process follows it: a tail reads every new event in position order a
//! moment after its commit (woken by this process's own appends, by PostgreSQL's
//! notification of any process's commit, and at least every `TAIL_POLL`), and keeps the
//! streams requests read most (users, wallets, orders) folded in memory and current. A read
//! served from here makes no database round trip.
//!
//! What a cached fold may be used for (decision 0022):
//! - a stream in memory is current as of the tail's position or newer, never older;
//! - a user's own reads first wait for the tail to pass that user's last write through this
//!   process (read-your-writes); another process's write is seen once notified (about a
//!   millisecond on loopback);
//! - a decision made on a cached fold is safe because its append expects the version it was
//!   decided on; a conflict or a refusal is decided again on a fresh read from the database,
//!   so nothing is refused because of a stale cache.
//!
//! How a stream gets in without missing an event: its slot is marked loading *before* the
//! database read; the tail buffers every event of a loading stream; when the read returns,
//! the buffered events newer than it are applied. A stream whose first event the tail sees is
//! complete from the start and is added as it is (a new order, a new user).
//!
//! A wallet read from the database starts from its snapshot when it has one (decision 0036);
//! the tail snapshots the wallets it follows every `SNAPSHOT_EVERY` events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use domain::identity::UserState;
use domain::order::{OrderEvent, OrderState};
use domain::wallet::WalletState;
use domain::{Aggregate, Currency, DomainEvent, UserId};
use projections::OrderView;
use tokio::sync::watch;

use super::snapshot::{self, SNAPSHOT_EVERY};
use super::{Engine, Inner, Loaded, Passed, StoreError};

/// The PostgreSQL notification channel every commit of events is announced on.
pub const CHANNEL: &str = "smsledger_events";
/// Longest the tail goes without looking at the log (a missed notification, SQLite).
const TAIL_POLL: Duration = Duration::from_millis(100);
/// Events the tail reads per query.
const TAIL_PAGE: u32 = 1_000;
/// The newest events kept for the projectors, which read their pages from here while they
/// keep up (one read of the log per process instead of one per projector).
const RECENT_MAX: usize = 4_096;
/// Streams kept in memory; past it the ready ones are dropped and loaded again on use.
const STREAMS_MAX: usize = 10_000;
/// Actors whose last write is remembered; past it the memory starts over from the tail's
/// position (every write before it is then covered by the floor).
const LAST_WRITES_MAX: usize = 100_000;

/// An order's events with their positions: the order aggregate and the order view are both
/// folded from them (order streams are a handful of events).
#[derive(Clone, Debug, Default)]
pub struct OrderLog(pub Vec<(i64, OrderEvent)>);

impl OrderLog {
    pub fn state(&self) -> OrderState {
        self.0.iter().fold(OrderState::default(), |state, (_, event)| state.apply(event))
    }

    /// `None` for an order stream that does not start with `order.placed` (or is empty).
    pub fn view(&self) -> Option<OrderView> {
        OrderView::fold(self.0.iter().map(|(position, event)| (*position, event)))
    }
}

/// A stream folded in memory, by kind (the stream name's prefix says which).
#[derive(Clone, Debug)]
pub enum Folded {
    User(Loaded<UserState>),
    Wallet(Loaded<WalletState>),
    Order(Loaded<OrderLog>),
}

impl Folded {
    /// The empty fold of a stream this cache keeps; `None` for other streams.
    fn empty(stream_id: &str) -> Option<Folded> {
        if let Some(rest) = stream_id.strip_prefix("wallet-") {
            // wallet-{user}-{currency}
            let (user, currency) = rest.rsplit_once('-')?;
            let state = WalletState::new(UserId(user.parse().ok()?), Currency::parse(currency).ok()?);
            Some(Folded::Wallet(Loaded { state, version: 0 }))
        } else if stream_id.starts_with("order-") {
            Some(Folded::Order(Loaded { state: OrderLog::default(), version: 0 }))
        } else if stream_id.starts_with("user-") {
            Some(Folded::User(Loaded { state: UserState::default(), version: 0 }))
        } else {
            None
        }
    }

    fn version(&self) -> u64 {
        match self {
            Folded::User(loaded) => loaded.version,
            Folded::Wallet(loaded) => loaded.version,
            Folded::Order(loaded) => loaded.version,
        }
    }

    /// A wallet's state as a snapshot's JSON, when it is one (other streams are short-lived).
    fn snapshot_text(&self) -> Option<String> {
        match self {
            Folded::Wallet(loaded) => Some(serde_json::to_string(&loaded.state).expect("a wallet state serializes")),
            _ => None,
        }
    }

    /// The fold a snapshot at `version` holds; `None` unless its state is of the wallet this
    /// empty fold names (its user and currency).
    fn snapshot_fold(&self, version: u64, text: &str) -> Option<Folded> {
        let Folded::Wallet(empty) = self else { return None };
        let state: WalletState = serde_json::from_str(text).ok()?;
        let same = state.user == empty.state.user && state.currency == empty.state.currency;
        same.then_some(Folded::Wallet(Loaded { state, version }))
    }

    /// The fold with one more event; `None` if it does not belong in this stream.
    fn apply(self, position: i64, event: DomainEvent) -> Option<Folded> {
        Some(match (self, event) {
            (Folded::User(l), DomainEvent::User(e)) => {
                Folded::User(Loaded { state: l.state.apply(&e), version: l.version + 1 })
            }
            (Folded::Wallet(l), DomainEvent::Wallet(e)) => {
                Folded::Wallet(Loaded { state: l.state.apply(&e), version: l.version + 1 })
            }
            (Folded::Order(mut l), DomainEvent::Order(e)) => {
                l.state.0.push((position, e));
                Folded::Order(Loaded { state: l.state, version: l.version + 1 })
            }
            _ => return None,
        })
    }

    /// The fold with `passed` applied if it is the next event; `None` if it cannot be (a
    /// gap, or an event that does not decode or belong): the slot is then dropped.
    fn next(self, passed: &Passed) -> Option<Folded> {
        let version = u64::try_from(passed.recorded.version).ok()?;
        if version <= self.version() {
            return Some(self); // the database read that filled this slot had it already
        }
        if version != self.version() + 1 {
            return None;
        }
        self.apply(passed.recorded.position, passed.decoded.as_ref().ok()?.clone())
    }
}

enum Slot {
    Ready(Arc<Folded>),
    /// A database read is on its way; events the tail passes meanwhile wait here.
    Loading(Vec<Arc<Passed>>),
}

pub struct Live {
    /// How far the tail has applied the log; -1 until it has read the head once.
    tailed: watch::Sender<i64>,
    streams: Mutex<HashMap<String, Slot>>,
    /// Read models kept elsewhere that the tail feeds every page; the lock is held while a
    /// page is handed out and `tailed` moved, so a follower starts exactly where it joins.
    followers: Mutex<Vec<Arc<dyn Follower>>>,
    /// The last `RECENT_MAX` events the tail passed, oldest first.
    recent: Mutex<std::collections::VecDeque<Arc<Passed>>>,
}

/// A read model the tail keeps current: `start` says where it joins (every event after that
/// position will be passed to it), `passed` hands it each page in position order.
pub trait Follower: Send + Sync {
    fn start(&self, position: i64);
    fn passed(&self, page: &[Arc<Passed>]);
}

/// The newest position written by (or for) each actor (`user:{id}`): this process's appends as
/// they are acknowledged, everyone's as the tail passes them (an event's actor, and the owner
/// of a wallet the event is in, so a refund the monitor made counts as the user's).
#[derive(Default)]
pub(super) struct LastWrites {
    by_actor: HashMap<String, i64>,
    /// Every write at or before this position is covered: an actor not remembered is
    /// answered with it.
    floor: i64,
}

impl LastWrites {
    pub(super) fn wrote(&mut self, actor: &str, position: i64) {
        if self.by_actor.len() >= LAST_WRITES_MAX {
            let newest = self.by_actor.values().copied().max().unwrap_or(0);
            self.floor = self.floor.max(newest);
            self.by_actor.clear();
        }
        let last = self.by_actor.entry(actor.to_owned()).or_default();
        *last = (*last).max(position);
    }

    /// The newest position written by or for `actor` known here.
    pub(super) fn last_by(&self, actor: &str) -> i64 {
        self.by_actor.get(actor).copied().unwrap_or(self.floor)
    }

    /// Records the writers of a page the tail read.
    fn passed(&mut self, page: &[Arc<Passed>]) {
        for Passed { recorded, .. } in page.iter().map(|passed| &**passed) {
            if let Some(actor) = recorded.metadata.get("actor").and_then(|a| a.as_str()) {
                self.wrote(actor, recorded.position);
            }
            if let Some(owner) = wallet_owner(&recorded.stream_id) {
                self.wrote(&format!("user:{owner}"), recorded.position);
            }
        }
    }
}

impl Live {
    pub(super) fn new() -> Live {
        Live {
            tailed: watch::channel(-1).0,
            streams: Mutex::default(),
            followers: Mutex::default(),
            recent: Mutex::default(),
        }
    }

    /// Has the tail feed `follower` from its position on.
    pub fn follow(&self, follower: Arc<dyn Follower>) {
        let mut followers = self.followers.lock().expect("live followers lock");
        follower.start(self.tailed());
        followers.push(follower);
    }

    /// The tail starts at `position`.
    fn started(&self, position: i64) {
        let followers = self.followers.lock().expect("live followers lock");
        for follower in followers.iter() {
            follower.start(position);
        }
        self.tailed.send_replace(position);
    }

    /// The tail's position: every event up to it is applied here.
    pub fn tailed(&self) -> i64 {
        *self.tailed.borrow()
    }

    /// Changes whenever the tail passed new events (what projectors wait on).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.tailed.subscribe()
    }

    /// Up to `limit` events after `after` from the ones the tail passed last, if it still has
    /// the one right after `after` (`None`: read the log). Empty when the tail has not passed
    /// anything after `after` yet.
    pub fn recent_after(&self, after: i64, limit: u32) -> Option<Vec<Arc<Passed>>> {
        let recent = self.recent.lock().expect("live recent lock");
        let first = recent.front()?.recorded.position;
        if first > after + 1 {
            return None;
        }
        let skip = usize::try_from(after + 1 - first).unwrap_or(usize::MAX);
        Some(recent.iter().skip(skip).take(limit as usize).cloned().collect())
    }

    /// Waits until the tail has applied `position`; `false` after `wait`.
    pub async fn wait_tailed(&self, position: i64, wait: Duration) -> bool {
        // Every memory read asks; usually the tail is there already.
        if self.tailed() >= position {
            return true;
        }
        let mut seen = self.tailed.subscribe();
        tokio::time::timeout(wait, seen.wait_for(|tailed| *tailed >= position)).await.is_ok_and(|r| r.is_ok())
    }

    /// The stream as cached, if it is.
    fn ready(&self, stream_id: &str) -> Option<Arc<Folded>> {
        match self.streams.lock().expect("live streams lock").get(stream_id) {
            Some(Slot::Ready(folded)) => Some(folded.clone()),
            _ => None,
        }
    }

    /// Marks the stream loading unless another read is loading it already (that read will
    /// fill the slot; this one goes to the database on its own). Returns whether it did.
    fn start_loading(&self, stream_id: &str) -> bool {
        let mut streams = self.streams.lock().expect("live streams lock");
        if matches!(streams.get(stream_id), Some(Slot::Loading(_))) {
            return false;
        }
        if streams.len() >= STREAMS_MAX {
            // Orders first: they are most of the streams and each is read for a few minutes;
            // users and wallets are read by every request of their owner.
            streams.retain(|id, slot| matches!(slot, Slot::Loading(_)) || !id.starts_with("order-"));
            if streams.len() >= STREAMS_MAX / 2 {
                streams.retain(|_, slot| matches!(slot, Slot::Loading(_)));
            }
        }
        streams.insert(stream_id.to_owned(), Slot::Loading(Vec::new()));
        true
    }

    /// Ends a load: the database's fold plus what the tail passed meanwhile becomes the slot.
    fn finish_loading(&self, stream_id: &str, read: Folded) -> Arc<Folded> {
        let mut streams = self.streams.lock().expect("live streams lock");
        let Some(Slot::Loading(passed)) = streams.remove(stream_id) else { return Arc::new(read) };
        let mut folded = read.clone();
        for event in &passed {
            match folded.next(event) {
                Some(next) => folded = next,
                None => return Arc::new(read),
            }
        }
        let folded = Arc::new(folded);
        streams.insert(stream_id.to_owned(), Slot::Ready(folded.clone()));
        folded
    }

    fn abandon_loading(&self, stream_id: &str) {
        let mut streams = self.streams.lock().expect("live streams lock");
        if matches!(streams.get(stream_id), Some(Slot::Loading(_))) {
            streams.remove(stream_id);
        }
    }

    /// Forgets a stream, so its next read goes to the database.
    pub fn forget(&self, stream_id: &str) {
        let mut streams = self.streams.lock().expect("live streams lock");
        if matches!(streams.get(stream_id), Some(Slot::Ready(_))) {
            streams.remove(stream_id);
        }
    }

    /// Applies one page the tail read, in position order. Returns the wallets whose version
    /// it took to a multiple of `SNAPSHOT_EVERY`, to be snapshotted.
    fn pass(&self, page: &[Arc<Passed>]) -> Vec<(String, Arc<Folded>)> {
        let mut due = Vec::new();
        let mut streams = self.streams.lock().expect("live streams lock");
        for passed in page {
            let recorded = &passed.recorded;
            match streams.remove(&recorded.stream_id) {
                Some(Slot::Ready(folded)) => {
                    if let Some(next) = Arc::unwrap_or_clone(folded).next(passed) {
                        let next = Arc::new(next);
                        if matches!(*next, Folded::Wallet(_)) && next.version().is_multiple_of(SNAPSHOT_EVERY) {
                            due.push((recorded.stream_id.clone(), next.clone()));
                        }
                        streams.insert(recorded.stream_id.clone(), Slot::Ready(next));
                    }
                }
                Some(Slot::Loading(mut waiting)) => {
                    waiting.push(passed.clone());
                    streams.insert(recorded.stream_id.clone(), Slot::Loading(waiting));
                }
                None if recorded.version == 1 && streams.len() < STREAMS_MAX => {
                    let first = Folded::empty(&recorded.stream_id).and_then(|empty| empty.next(passed));
                    if let Some(first) = first {
                        streams.insert(recorded.stream_id.clone(), Slot::Ready(Arc::new(first)));
                    }
                }
                None => {}
            }
        }
        drop(streams);
        let mut recent = self.recent.lock().expect("live recent lock");
        for passed in page.iter().skip(page.len().saturating_sub(RECENT_MAX)) {
            if recent.len() == RECENT_MAX {
                recent.pop_front();
            }
            recent.push_back(passed.clone());
        }
        drop(recent);
        let followers = self.followers.lock().expect("live followers lock");
        for follower in followers.iter() {
            follower.passed(page);
        }
        if let Some(last) = page.last() {
            let last = last.recorded.position;
            self.tailed.send_if_modified(|tailed| {
                let newer = last > *tailed;
                *tailed = (*tailed).max(last);
                newer
            });
        }
        due
    }
}

/// `wallet-{user}-{currency}` → `{user}`.
fn wallet_owner(stream_id: &str) -> Option<&str> {
    stream_id.strip_prefix("wallet-")?.rsplit_once('-').map(|(user, _)| user)
}

impl super::EventStore {
    /// The stream folded, from memory when this process keeps it current, otherwise read from
    /// the database (and kept from then on). It includes every append this process acknowledged
    /// before the call, and other processes' once the tail passed them. `fresh`: read the database whatever memory holds,
    /// as a refused or conflicting decision does. Only user, wallet and order streams are kept.
    pub async fn folded(&self, stream_id: &str, fresh: bool) -> Result<Arc<Folded>, StoreError> {
        let empty = Folded::empty(stream_id)
            .ok_or_else(|| StoreError::Invalid(format!("{stream_id} is not a stream kept in memory")))?;
        let live = self.live();
        // A stream's events never change, so a read from the database continues from what
        // memory holds (a prefix of the stream): it reads only the events after memory's
        // version, not the whole stream again (a long-lived wallet's, on every retry).
        let start = || live.ready(stream_id).map_or_else(|| empty.clone(), |folded| (*folded).clone());
        // Memory is read once the tail has passed every append this process acknowledged
        // (read-your-writes); a tail that cannot get there (the database is unreachable) is
        // not waited for twice: the database answers.
        let own = self.own_head().max(0);
        if !live.wait_tailed(own, crate::read::FRESHNESS_WAIT_MAX).await {
            return self.fold_folded(stream_id, start()).await.map(Arc::new);
        }
        if !fresh && let Some(folded) = live.ready(stream_id) {
            return Ok(folded);
        }
        let from = start();
        if !live.start_loading(stream_id) {
            return self.fold_folded(stream_id, from).await.map(Arc::new);
        }
        match self.fold_folded(stream_id, from).await {
            Ok(read) => Ok(live.finish_loading(stream_id, read)),
            Err(error) => {
                live.abandon_loading(stream_id);
                Err(error)
            }
        }
    }

    /// `from` with the stream's events after its version; from the stream's snapshot when
    /// `from` is empty and there is one. A load that read `SNAPSHOT_EVERY` events or more
    /// leaves a snapshot of what it folded.
    async fn fold_folded(&self, stream_id: &str, from: Folded) -> Result<Folded, StoreError> {
        let from = match from.version() {
            0 if matches!(from, Folded::Wallet(_)) => match snapshot::load(&self.inner.engine, stream_id).await {
                Ok(Some((version, text))) => from.snapshot_fold(version, &text).unwrap_or(from),
                Ok(None) => from,
                Err(error) => {
                    tracing::warn!(%error, stream_id, "store.snapshot_read_failed");
                    from
                }
            },
            _ => from,
        };
        let started = from.version();
        let from = Loaded { version: started, state: from };
        let folded =
            self.fold_stream_at(stream_id, from, |folded, position, event| folded.apply(position, event)).await?.state;
        if folded.version() - started >= SNAPSHOT_EVERY {
            save_snapshots(&self.inner.engine, vec![(stream_id.to_owned(), Arc::new(folded.clone()))]);
        }
        Ok(folded)
    }
}

/// Saves wallets' snapshots on a task of its own, off the request or the tail that found them
/// due; a failure is logged and costs only a longer load later.
fn save_snapshots(engine: &Engine, due: Vec<(String, Arc<Folded>)>) {
    if due.is_empty() {
        return;
    }
    let engine = engine.clone();
    tokio::spawn(async move {
        for (stream_id, folded) in due {
            let Some(text) = folded.snapshot_text() else { continue };
            if let Err(error) = snapshot::save(&engine, &stream_id, folded.version(), &text).await {
                tracing::warn!(%error, stream_id, "store.snapshot_save_failed");
            }
        }
    });
}

/// The tail: reads the log after its position for as long as the store exists.
pub(super) async fn tail(store: Weak<Inner>, live: Arc<Live>) {
    let (engine, mut local, handoff) = match store.upgrade() {
        Some(inner) => (inner.engine.clone(), inner.head.clone(), inner.handoff.clone()),
        None => return,
    };
    let mut notified = Notifications::listen(&engine, handoff.tag()).await;
    let mut position = loop {
        match super::head_position(&engine).await {
            Ok(head) => break head,
            Err(error) => {
                tracing::warn!(%error, "live.tail_start_failed");
                tokio::time::sleep(TAIL_POLL).await;
            }
        }
    };
    match store.upgrade() {
        Some(inner) => inner.writes.lock().expect("last writes lock").floor = position,
        None => return,
    }
    live.started(position);
    loop {
        // This process's own commits come from its writer; the log is read only from the
        // first event the writer did not hand over (another process's, or one it dropped).
        let handed = handoff.take_after(position, TAIL_PAGE as usize);
        let read = if handed.is_empty() {
            super::read_all(&engine, position, TAIL_PAGE).await.map(Passed::decode_all)
        } else {
            Ok(handed.into_iter().map(|handed| Arc::new(Passed::handed(handed))).collect())
        };
        match read {
            Ok(page) => {
                let Some(inner) = store.upgrade() else { return };
                // Writers first: a read that sees the tail past a write finds its writer.
                inner.writes.lock().expect("last writes lock").passed(&page);
                save_snapshots(&engine, live.pass(&page));
                if let Some(last) = page.last() {
                    position = last.recorded.position;
                }
                if page.len() as u32 == TAIL_PAGE {
                    continue;
                }
            }
            Err(error) => tracing::warn!(%error, "live.tail_read_failed"),
        }
        if store.strong_count() == 0 {
            return;
        }
        tokio::select! {
            changed = local.changed() => {
                if changed.is_err() {
                    tokio::time::sleep(TAIL_POLL).await;
                }
            }
            _ = notified.next() => {}
            _ = tokio::time::sleep(TAIL_POLL) => {}
        }
    }
}

/// PostgreSQL's notifications of commits; nothing on SQLite (one process writes it). A task
/// of its own receives them as they come (a listener that stops reading lets them pile up, in
/// this process and in PostgreSQL's notification queue) and wakes the tail once for however
/// many arrived; it ends with the tail.
struct Notifications(Option<Arc<tokio::sync::Notify>>);

impl Notifications {
    /// `own` is this process's writer's tag: its commits wake the tail through the handoff
    /// (after the events are there), not through PostgreSQL (which may come first).
    async fn listen(engine: &Engine, own: &str) -> Notifications {
        let Engine::Postgres(pool) = engine else { return Notifications(None) };
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listener.await {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%error, "live.listen_failed");
                return Notifications(None);
            }
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        let tail = Arc::downgrade(&wake);
        let own = own.to_owned();
        tokio::spawn(async move {
            loop {
                // The look for an ended tail comes first in every turn, whichever arm below
                // ended the last (a closed pool fails every `recv` at once, so the timer may
                // never win); returning gives the connection back (a pool's `close` waits for it).
                if tail.strong_count() == 0 {
                    return;
                }
                // `recv` is cancel-safe: the timer that brings the next look loses nothing.
                tokio::select! {
                    received = listener.recv() => match received {
                        Ok(first) => {
                            let mut others = first.payload() != own;
                            while let Some(next) = listener.next_buffered() {
                                others |= next.payload() != own;
                            }
                            let Some(wake) = tail.upgrade() else { return };
                            if others {
                                wake.notify_one();
                            }
                        }
                        Err(sqlx::Error::PoolClosed) => return,
                        Err(error) => {
                            tracing::debug!(%error, "live.notification_lost");
                            tokio::time::sleep(TAIL_POLL).await;
                        }
                    },
                    _ = tokio::time::sleep(TAIL_POLL) => {}
                }
            }
        });
        Notifications(Some(wake))
    }

    /// The next wake-up: one or more commits were announced since the last.
    async fn next(&mut self) {
        match &self.0 {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory full: order streams make room first; users and wallets stay in memory.
    #[test]
    fn a_full_memory_drops_orders_first() {
        let live = Live::new();
        let (user, wallet) = (format!("user-{}", uuid::Uuid::nil()), format!("wallet-{}-USD", uuid::Uuid::nil()));
        let ready = |stream_id: &str| Slot::Ready(Arc::new(Folded::empty(stream_id).expect("a kept kind of stream")));
        {
            let mut streams = live.streams.lock().unwrap();
            streams.insert(user.clone(), ready(&user));
            streams.insert(wallet.clone(), ready(&wallet));
            for n in 0..STREAMS_MAX {
                let order = format!("order-{n}");
                streams.insert(order.clone(), ready(&order));
            }
        }
        assert!(live.start_loading("order-new"));
        assert!(live.ready(&user).is_some() && live.ready(&wallet).is_some());
        assert!(live.ready("order-0").is_none());
        assert_eq!(live.streams.lock().unwrap().len(), 3, "the user, the wallet and the order loading");
    }
}
