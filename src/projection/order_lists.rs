//! Each user's orders list kept in memory, fed by the store's tail (decision 0022): `GET
//! /orders` pages it without a database round trip. A user's list is loaded once from the
//! orders view (at a checkpoint at least where the tail was when the load began) and then
//! followed event by event; order events the tail passes during the load wait in the slot.
//! The same `OrderView` fold as the orders view, so both say the same.
//!
//! How much is kept depends on the list's length (decision 0027): up to `LIST_MAX` orders, the
//! whole list; up to `COUNTED_MAX`, only each order's status, so that a page's rows come from
//! the orders view by its index and its total from memory (its newest `NEWEST_KEPT` orders are
//! kept whole too: the first page comes from memory); past that, nothing (the orders view
//! pages and counts). Past `ORDERS_MAX` in all, the lists read longest ago go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::order::{OrderEvent, OrderStatus};
use domain::{DomainEvent, OrderId, UserId};
use projections::{OrderView, status_after};

use super::orders::OrderPage;
use crate::store::{Follower, Passed};

/// Orders kept whole in all lists together (about 0.7 KB each), or `VIEW_WEIGHT` times as
/// many kept as statuses; past it the lists read longest ago are dropped (down to three
/// quarters of it) and loaded again when next read.
const ORDERS_MAX: usize = 50_000;

/// An order kept whole weighs this many kept as a status (about 0.7 KB against 50 bytes).
const VIEW_WEIGHT: usize = 16;

/// The longest list kept whole.
pub const LIST_MAX: usize = 1_000;

/// The longest list whose statuses are kept; a longer one is paged and counted by the view.
pub const COUNTED_MAX: usize = 20_000;

/// The newest orders a list that keeps statuses also keeps whole: the first page (up to 100
/// orders, the largest page) is answered from memory, however long the list.
pub const NEWEST_KEPT: usize = 100;

/// Lists loading at once; a read that would begin one more waits for a load to end (see
/// [`OrderLists::load_ended`]). Each load holds a user's whole list twice for a moment (rows
/// and views): many at once were the server's peak memory (decision 0023).
const LOADS_MAX: usize = 16;

pub struct OrderLists {
    inner: Mutex<Lists>,
    /// Woken whenever a load ends (loaded or abandoned): a slot is free, or a list is ready.
    ended: tokio::sync::Notify,
}

impl Default for OrderLists {
    fn default() -> Self {
        OrderLists::bounded(ORDERS_MAX)
    }
}

struct Lists {
    /// At most this many orders kept whole (or `VIEW_WEIGHT` times as many statuses).
    bound: usize,
    /// Slots loading now.
    loading: usize,
    /// Every event up to here has been passed to the lists.
    passed: i64,
    /// Counts page reads: when each kept list was read last.
    reads: u64,
    /// The weight of every kept list together (`Slot::weight`), kept as lists change.
    kept: usize,
    users: HashMap<UserId, Slot>,
    /// The owner of every order in a kept list (whole or statuses).
    owners: HashMap<OrderId, UserId>,
}

enum Slot {
    Ready(UserList),
    /// More than `LIST_MAX` orders: their statuses, for the totals.
    Counted(Statuses),
    /// More than `COUNTED_MAX` orders: paged and counted by the orders view.
    Long,
    /// Loading from the orders view, which must be at least at `from`; the order events
    /// passed since wait here.
    Loading {
        from: i64,
        passed: Waiting,
    },
}

/// Order events passed while a list loads, with their positions.
type Waiting = Vec<(i64, OrderId, OrderEvent)>;

/// What a list of `orders` orders weighs kept as statuses: each status, and its newest
/// orders whole.
fn counted_weight(orders: usize) -> usize {
    orders + orders.min(NEWEST_KEPT) * VIEW_WEIGHT
}

/// Whether an order event passed during a load is `user`'s: its placing names them, and a
/// later event's order is one the list already has (`kept`).
fn is_theirs(user: UserId, event: &OrderEvent, kept: impl FnOnce() -> bool) -> bool {
    match event {
        OrderEvent::Placed { user_id, .. } => *user_id == user,
        _ => kept(),
    }
}

impl Slot {
    /// What the slot holds, in statuses' worth.
    fn weight(&self) -> usize {
        match self {
            Slot::Ready(list) => list.orders.len() * VIEW_WEIGHT,
            Slot::Counted(statuses) => counted_weight(statuses.of.len()),
            Slot::Long | Slot::Loading { .. } => 0,
        }
    }

    fn read_at(&self) -> Option<u64> {
        match self {
            Slot::Ready(list) => Some(list.read_at),
            Slot::Counted(statuses) => Some(statuses.read_at),
            Slot::Long | Slot::Loading { .. } => None,
        }
    }

    /// Whether a kept list has the order.
    fn has(&self, order_id: &OrderId) -> bool {
        match self {
            Slot::Ready(list) => list.index.contains_key(order_id),
            Slot::Counted(statuses) => statuses.of.contains_key(order_id),
            Slot::Long | Slot::Loading { .. } => false,
        }
    }

    /// Applies an order event to a kept list: `Some(true)` when it placed an order new to
    /// it; `None` when the slot keeps no list.
    fn apply(&mut self, position: i64, order_id: OrderId, event: &OrderEvent) -> Option<bool> {
        match self {
            Slot::Ready(list) => Some(list.apply(position, order_id, event)),
            Slot::Counted(statuses) => Some(statuses.apply(position, order_id, event)),
            Slot::Long | Slot::Loading { .. } => None,
        }
    }

    /// Longer than its kind keeps: to be loaded again (as the longer kind).
    fn overgrown(&self) -> bool {
        match self {
            Slot::Ready(list) => list.orders.len() > LIST_MAX,
            Slot::Counted(statuses) => statuses.of.len() > COUNTED_MAX,
            Slot::Long | Slot::Loading { .. } => false,
        }
    }

    /// The orders a kept list has.
    fn order_ids(&self) -> Vec<OrderId> {
        match self {
            Slot::Ready(list) => list.orders.iter().map(|view| view.order_id).collect(),
            Slot::Counted(statuses) => statuses.of.keys().copied().collect(),
            Slot::Long | Slot::Loading { .. } => Vec::new(),
        }
    }

    /// Applies the events passed during a load, after the view's `checkpoint`, that are
    /// `user`'s: every order event waits in every loading slot, and an order is the user's
    /// if its placing names them or the list has it already.
    fn catch_up(&mut self, user: UserId, passed: &Waiting, checkpoint: i64) {
        for (position, order_id, event) in passed.iter().filter(|(position, ..)| *position > checkpoint) {
            if is_theirs(user, event, || self.has(order_id)) {
                self.apply(*position, *order_id, event);
            }
        }
    }
}

/// One user's orders, oldest first, as the orders view orders them (placed at, then id).
#[derive(Default)]
struct UserList {
    orders: Vec<OrderView>,
    index: HashMap<OrderId, usize>,
    /// `Lists::reads` when this list was last read.
    read_at: u64,
}

impl UserList {
    fn of(mut orders: Vec<OrderView>, read_at: u64) -> UserList {
        orders.sort_by_key(|view| (view.placed_at, view.order_id));
        let index = orders.iter().enumerate().map(|(i, view)| (view.order_id, i)).collect();
        UserList { orders, index, read_at }
    }

    /// Applies an order event; `true` when it placed an order new to this list.
    fn apply(&mut self, position: i64, order_id: OrderId, event: &OrderEvent) -> bool {
        if let Some(&i) = self.index.get(&order_id) {
            self.orders[i].apply(event);
            return false;
        }
        let Some(view) = OrderView::placed(event, position) else { return false };
        let key = (view.placed_at, view.order_id);
        let at = self.orders.partition_point(|o| (o.placed_at, o.order_id) < key);
        self.orders.insert(at, view);
        if at + 1 == self.orders.len() {
            self.index.insert(order_id, at);
        } else {
            self.index = self.orders.iter().enumerate().map(|(i, view)| (view.order_id, i)).collect();
        }
        true
    }

    /// Newest first, optionally of one status.
    fn page(&self, status: Option<OrderStatus>, offset: i64, limit: i64) -> OrderPage {
        let matching = self.orders.iter().rev().filter(|o| status.is_none_or(|s| o.status == s));
        // Every order matches no status: no need to walk the list to count.
        let total = if status.is_none() { self.orders.len() } else { matching.clone().count() } as i64;
        let (offset, limit) = (usize::try_from(offset).unwrap_or(usize::MAX), usize::try_from(limit).unwrap_or(0));
        OrderPage { orders: matching.skip(offset).take(limit).cloned().collect(), total }
    }
}

/// The status of each of one user's orders, and the newest of them whole.
struct Statuses {
    of: HashMap<OrderId, OrderStatus>,
    /// The user's newest `NEWEST_KEPT` orders (fewer only if the user has fewer), oldest
    /// first, as the orders view orders them.
    newest: Vec<OrderView>,
    read_at: u64,
}

impl Statuses {
    /// Applies an order event; `true` when it placed an order new to this list.
    fn apply(&mut self, position: i64, order_id: OrderId, event: &OrderEvent) -> bool {
        apply_to_newest(&mut self.newest, position, order_id, event);
        if let Some(status) = self.of.get_mut(&order_id) {
            *status = status_after(*status, event);
            return false;
        }
        if !matches!(event, OrderEvent::Placed { .. }) {
            return false;
        }
        self.of.insert(order_id, status_after(OrderStatus::Placed, event));
        true
    }

    /// A page of all statuses that lies within the newest orders, from memory.
    fn newest_page(&self, status: Option<OrderStatus>, offset: i64, limit: i64) -> Option<OrderPage> {
        let (offset, limit) = (usize::try_from(offset).ok()?, usize::try_from(limit).ok()?);
        if status.is_some() || offset.checked_add(limit)? > self.newest.len() {
            return None;
        }
        let orders = self.newest.iter().rev().skip(offset).take(limit).cloned().collect();
        Some(OrderPage { orders, total: self.of.len() as i64 })
    }

    fn total(&self, status: Option<OrderStatus>) -> i64 {
        match status {
            None => self.of.len() as i64,
            Some(wanted) => self.of.values().filter(|status| **status == wanted).count() as i64,
        }
    }
}

/// Applies an order event to a user's newest orders (oldest first, at most `NEWEST_KEPT`):
/// an order placed among them goes in its place, and the oldest goes if there are too many.
fn apply_to_newest(newest: &mut Vec<OrderView>, position: i64, order_id: OrderId, event: &OrderEvent) {
    if let Some(view) = newest.iter_mut().rev().find(|view| view.order_id == order_id) {
        view.apply(event);
        return;
    }
    let Some(view) = OrderView::placed(event, position) else { return };
    let key = (view.placed_at, view.order_id);
    let at = newest.partition_point(|o| (o.placed_at, o.order_id) < key);
    newest.insert(at, view);
    if newest.len() > NEWEST_KEPT {
        newest.remove(0);
    }
}

/// What a page read found: the page; or the position the orders view must reach before a
/// load can begin (`Load`); or no load for this read yet (`Busy`: another read is loading the
/// same list, or `LOADS_MAX` lists are loading): wait for a load to end and ask again; or the
/// page's total, its rows to be read from the orders view (`Rows`); or nothing: the orders
/// view pages and counts (`View`).
pub enum Found {
    Page(OrderPage),
    Load { from: i64 },
    Busy,
    Rows { total: i64 },
    View,
}

/// What a load found: all it needs; or that the list is short enough to keep whole but was
/// not read whole (`WholeWanted`: read up to `LIST_MAX + 1` orders and call `loaded` again);
/// or that it is too long to keep whole and the statuses of its orders are to be read (its
/// slot stays loading until they are), with the newest orders of the load, to keep whole
/// beside the statuses.
#[derive(Debug, PartialEq, Eq)]
pub enum Loaded {
    Done,
    WholeWanted,
    StatusesWanted(Vec<OrderView>),
}

impl Lists {
    /// Keeps a loaded list (whole or its statuses), unless it grew past what its kind keeps
    /// while loading (the next read loads it again).
    fn keep(&mut self, user: UserId, slot: Slot) {
        if slot.overgrown() {
            return;
        }
        for order_id in slot.order_ids() {
            self.owners.insert(order_id, user);
        }
        self.kept += slot.weight();
        self.users.insert(user, slot);
        self.trim();
    }

    /// Brings what is kept within three quarters of the bound, the lists read longest ago
    /// first: they keep only their statuses (no database read, and no list is loaded again
    /// to be dropped again when readers cycle through more lists than fit), then, if that is
    /// not enough, nothing. Loading slots and long-list marks stay.
    fn trim(&mut self) {
        debug_assert_eq!(self.kept, self.users.values().map(Slot::weight).sum::<usize>());
        let bound = self.bound * VIEW_WEIGHT;
        if self.kept <= bound {
            return;
        }
        let mut held: Vec<(u64, UserId)> =
            self.users.iter().filter_map(|(user, slot)| Some((slot.read_at()?, *user))).collect();
        held.sort_unstable();
        let target = bound / 4 * 3;
        for (_, user) in &held {
            if self.kept <= target {
                return;
            }
            if let Some(slot @ Slot::Ready(_)) = self.users.get_mut(user) {
                let Slot::Ready(list) = &*slot else { continue };
                let (whole, shrunk) = (slot.weight(), counted_weight(list.orders.len()));
                if shrunk >= whole {
                    continue; // short: its newest orders are all of it; dropped below if need be
                }
                let of = list.orders.iter().map(|view| (view.order_id, view.status)).collect();
                let newest = list.orders[list.orders.len().saturating_sub(NEWEST_KEPT)..].to_vec();
                *slot = Slot::Counted(Statuses { of, newest, read_at: list.read_at });
                self.kept = self.kept - whole + shrunk;
            }
        }
        for (_, user) in held {
            if self.kept <= target {
                break;
            }
            self.forget(user);
        }
    }

    /// Drops a kept list (whole or its statuses).
    fn forget(&mut self, user: UserId) {
        if self.users.get(&user).is_none_or(|slot| slot.read_at().is_none()) {
            return;
        }
        let Some(slot) = self.users.remove(&user) else { return };
        for order_id in slot.order_ids() {
            self.owners.remove(&order_id);
        }
        self.kept -= slot.weight();
    }

    /// Takes the loading slot of `user` off, if it is loading.
    fn end_load(&mut self, user: UserId) -> Option<(i64, Waiting)> {
        if !matches!(self.users.get(&user), Some(Slot::Loading { .. })) {
            return None;
        }
        let Some(Slot::Loading { from, passed }) = self.users.remove(&user) else { return None };
        self.loading -= 1;
        Some((from, passed))
    }
}

impl OrderLists {
    fn bounded(bound: usize) -> OrderLists {
        let lists =
            Lists { bound, loading: 0, passed: 0, reads: 0, kept: 0, users: HashMap::new(), owners: HashMap::new() };
        OrderLists { inner: Mutex::new(lists), ended: tokio::sync::Notify::new() }
    }

    /// Resolves when a load ends after it is enabled (enable it before asking for a page
    /// again, so an end in between is not missed).
    pub fn load_ended(&self) -> tokio::sync::futures::Notified<'_> {
        self.ended.notified()
    }

    /// The page from memory, or what to do to get it there.
    pub fn page(&self, user: UserId, status: Option<OrderStatus>, offset: i64, limit: i64) -> Found {
        let mut lists = self.inner.lock().expect("order lists lock");
        let lists = &mut *lists;
        let from = lists.passed;
        lists.reads += 1;
        let read_at = lists.reads;
        match lists.users.get_mut(&user) {
            Some(Slot::Ready(list)) => {
                list.read_at = read_at;
                Found::Page(list.page(status, offset, limit))
            }
            Some(Slot::Counted(statuses)) => {
                statuses.read_at = read_at;
                match statuses.newest_page(status, offset, limit) {
                    Some(page) => Found::Page(page),
                    None => Found::Rows { total: statuses.total(status) },
                }
            }
            Some(Slot::Long) => Found::View,
            Some(Slot::Loading { .. }) => Found::Busy,
            None if lists.loading >= LOADS_MAX => Found::Busy,
            None => {
                lists.users.insert(user, Slot::Loading { from, passed: Vec::new() });
                lists.loading += 1;
                Found::Load { from }
            }
        }
    }

    /// Ends a load begun by `page`, or asks for more: `found` is the user's newest orders
    /// (a load reads `NEWEST_KEPT` first, so that a long list's load never holds more of them
    /// whole), newest first, in the orders view at `checkpoint` (at least the load's `from`),
    /// and their total.
    pub fn loaded(&self, user: UserId, mut found: OrderPage, checkpoint: i64) -> Loaded {
        let mut lists = self.inner.lock().expect("order lists lock");
        if !matches!(lists.users.get(&user), Some(Slot::Loading { .. })) {
            return Loaded::Done;
        }
        let total = usize::try_from(found.total).unwrap_or(0).max(found.orders.len());
        if total <= LIST_MAX && found.orders.len() < total {
            return Loaded::WholeWanted;
        }
        if total > LIST_MAX && total <= COUNTED_MAX {
            found.orders.truncate(NEWEST_KEPT);
            return Loaded::StatusesWanted(found.orders);
        }
        let Some((from, passed)) = lists.end_load(user) else { return Loaded::Done };
        self.ended.notify_waiters();
        if checkpoint < from {
            return Loaded::Done; // not a view the load may use; the next read loads again
        }
        if total > COUNTED_MAX {
            lists.users.insert(user, Slot::Long);
            return Loaded::Done;
        }
        let mut list = Slot::Ready(UserList::of(found.orders, lists.reads));
        list.catch_up(user, &passed, checkpoint);
        lists.keep(user, list);
        Loaded::Done
    }

    /// Ends a load that wanted statuses: every order of the user with its status in the orders
    /// view at `checkpoint`, and `newest`, what [`Loaded::StatusesWanted`] gave back, as the
    /// view had them at `newest_at` (at most `checkpoint`).
    pub fn loaded_statuses(
        &self,
        user: UserId,
        (mut newest, newest_at): (Vec<OrderView>, i64),
        found: Vec<(OrderId, OrderStatus)>,
        checkpoint: i64,
    ) {
        let mut lists = self.inner.lock().expect("order lists lock");
        let Some((from, passed)) = lists.end_load(user) else { return };
        self.ended.notify_waiters();
        if checkpoint < from || newest_at < from || newest_at > checkpoint {
            return;
        }
        // The newest orders are brought to `checkpoint` here, and past it with the statuses.
        newest.reverse();
        for (position, order_id, event) in passed.iter().filter(|(p, ..)| *p > newest_at && *p <= checkpoint) {
            if is_theirs(user, event, || newest.iter().any(|view| view.order_id == *order_id)) {
                apply_to_newest(&mut newest, *position, *order_id, event);
            }
        }
        let mut statuses = Slot::Counted(Statuses { of: found.into_iter().collect(), newest, read_at: lists.reads });
        statuses.catch_up(user, &passed, checkpoint);
        lists.keep(user, statuses);
    }

    /// A load that failed gives its slot up.
    pub fn abandon(&self, user: UserId) {
        let mut lists = self.inner.lock().expect("order lists lock");
        if lists.end_load(user).is_some() {
            self.ended.notify_waiters();
        }
    }
}

impl Follower for OrderLists {
    fn start(&self, position: i64) {
        let mut lists = self.inner.lock().expect("order lists lock");
        lists.passed = lists.passed.max(position);
    }

    fn passed(&self, page: &[Arc<Passed>]) {
        let mut lists = self.inner.lock().expect("order lists lock");
        let Lists { passed, users, owners, kept, .. } = &mut *lists;
        // Lists that grew past what their kind keeps, or met an event that does not decode.
        let mut dropped = Vec::new();
        for Passed { recorded, decoded } in page.iter().map(|event| &**event) {
            *passed = (*passed).max(recorded.position);
            if users.is_empty() || !recorded.stream_id.starts_with("order-") {
                continue;
            }
            let Some(order_id) = recorded.stream_id.strip_prefix("order-").and_then(|id| id.parse().ok()).map(OrderId)
            else {
                continue;
            };
            // An event that does not decode is the projectors' and `verify`'s to report; the
            // list of its owner is dropped and read again from the view.
            let Ok(DomainEvent::Order(event)) = decoded else {
                dropped.extend(owners.get(&order_id).copied());
                continue;
            };
            for slot in users.values_mut() {
                if let Slot::Loading { passed, .. } = slot {
                    passed.push((recorded.position, order_id, event.clone()));
                }
            }
            let owner = match event {
                OrderEvent::Placed { user_id, .. } => Some(*user_id),
                _ => owners.get(&order_id).copied(),
            };
            let Some((user, slot)) = owner.and_then(|user| Some((user, users.get_mut(&user)?))) else { continue };
            let before = slot.weight();
            if slot.apply(recorded.position, order_id, event) == Some(true) {
                owners.insert(order_id, user);
            }
            *kept = *kept + slot.weight() - before;
            if slot.overgrown() {
                dropped.push(user);
            }
        }
        // Loaded again (as the longer kind) when next read.
        for user in dropped {
            lists.forget(user);
        }
        lists.trim();
    }
}

#[cfg(test)]
mod tests {
    use domain::catalog::{CountryCode, PhoneNumber, ServiceCode};
    use domain::order::OrderPolicy;
    use domain::{Aggregate, Money, PositiveMoney, Timestamp};

    use super::*;

    /// The events of placing an order for `user`, recorded from `position` on.
    fn placed(user: UserId, position: i64) -> Vec<Arc<Passed>> {
        let order_id = OrderId::new();
        let place = domain::order::OrderCommand::Place {
            order_id,
            user_id: user,
            service: ServiceCode::parse("tg").unwrap(),
            country: CountryCode::parse("GB").unwrap(),
            price: PositiveMoney::parse("1.00", "USD").unwrap(),
            policy: OrderPolicy::default(),
            number: None,
            now: Timestamp(position),
        };
        let assign = domain::order::OrderCommand::AssignNumber {
            provider_id: "sandbox".into(),
            provider_order_id: "sb-1".into(),
            phone: PhoneNumber::parse("+447700900123").unwrap(),
            cost: Money::parse("0.50", "USD").unwrap(),
            now: Timestamp(position),
        };
        let state = domain::order::OrderState::default();
        let mut events = state.decide(place).unwrap();
        events.extend(state.apply_all(&events).decide(assign).unwrap());
        events
            .into_iter()
            .enumerate()
            .map(|(i, event)| {
                let (event_type, payload) = DomainEvent::Order(event).encode();
                let recorded = crate::store::RecordedEvent {
                    position: position + i as i64,
                    stream_id: format!("order-{order_id}"),
                    version: i as i64 + 1,
                    event_id: uuid::Uuid::now_v7(),
                    event_type,
                    schema_version: 1,
                    payload,
                    metadata: serde_json::json!({}),
                    recorded_at: chrono::Utc::now(),
                    hash: vec![0; 32],
                };
                Arc::new(Passed::decode(recorded))
            })
            .collect()
    }

    /// The order the events of `placed` fold to, as the orders view has it.
    fn view_of(events: &[Arc<Passed>]) -> OrderView {
        let order_events: Vec<(i64, OrderEvent)> = events
            .iter()
            .map(|passed| match &passed.decoded {
                Ok(DomainEvent::Order(event)) => (passed.recorded.position, event.clone()),
                other => panic!("an order event, got {other:?}"),
            })
            .collect();
        let (position, first) = &order_events[0];
        let mut view = OrderView::placed(first, *position).expect("order.placed first");
        for (_, event) in &order_events[1..] {
            view.apply(event);
        }
        view
    }

    /// A list that keeps statuses keeps its newest orders whole: a first page comes from
    /// memory, brought up to date by what passed during the load and after it.
    #[test]
    fn a_long_lists_newest_orders_are_kept_whole() {
        let ann = UserId::new();
        let lists = OrderLists::default();
        lists.start(10);
        let old: Vec<OrderView> = [1, 3, 5].iter().map(|p| view_of(&placed(ann, *p))).collect();
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Load { from: 10 }));
        let newest_first = OrderPage { orders: old.iter().rev().cloned().collect(), total: LIST_MAX as i64 + 1 };
        let Loaded::StatusesWanted(newest) = lists.loaded(ann, newest_first, 10) else { panic!("statuses wanted") };
        assert_eq!(newest.len(), 3);
        // Placed while the statuses load: in the view the statuses come from (checkpoint
        // 12), after the one the newest orders came from (10).
        let during = placed(ann, 11);
        lists.passed(&during);
        let mut statuses: Vec<(OrderId, OrderStatus)> = old.iter().map(|view| (view.order_id, view.status)).collect();
        let fourth = view_of(&during);
        statuses.push((fourth.order_id, fourth.status));
        lists.loaded_statuses(ann, (newest, 10), statuses, 12);

        let Found::Page(page) = lists.page(ann, None, 0, 4) else { panic!("the newest four are in memory") };
        let mut expected = old.clone();
        expected.push(fourth);
        expected.reverse();
        assert_eq!(page.orders, expected, "newest first, each as the view folds it");
        assert_eq!(page.total, 4);
        assert!(matches!(lists.page(ann, None, 0, 5), Found::Rows { total: 4 }), "past the newest: the view");
        assert!(matches!(lists.page(ann, Some(OrderStatus::NumberAssigned), 0, 1), Found::Rows { total: 4 }));

        // Followed after the load; at most NEWEST_KEPT are kept whole.
        let next = placed(ann, 13);
        lists.passed(&next);
        let Found::Page(page) = lists.page(ann, None, 0, 1) else { panic!("in memory") };
        assert_eq!(page.orders, [view_of(&next)]);
        let mut last = Vec::new();
        for n in 0..NEWEST_KEPT as i64 {
            last = placed(ann, 15 + 2 * n);
            lists.passed(&last);
        }
        let Found::Page(page) = lists.page(ann, None, 0, NEWEST_KEPT as i64) else { panic!("in memory") };
        assert_eq!((page.orders.len(), page.total), (NEWEST_KEPT, 5 + NEWEST_KEPT as i64));
        assert_eq!(page.orders[0], view_of(&last));
        assert!(matches!(lists.page(ann, None, 1, NEWEST_KEPT as i64), Found::Rows { .. }));
    }

    /// A load reads the newest `NEWEST_KEPT` orders first; a list short enough to keep whole
    /// but longer than that is read again, whole, before it is kept.
    #[test]
    fn a_list_read_in_part_is_read_again_whole() {
        let ann = UserId::new();
        let lists = OrderLists::default();
        lists.start(10);
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Load { from: 10 }));
        let all: Vec<OrderView> = [1, 3, 5].iter().rev().map(|p| view_of(&placed(ann, *p))).collect();
        let part = OrderPage { orders: all[..2].to_vec(), total: 3 };
        assert_eq!(lists.loaded(ann, part, 10), Loaded::WholeWanted);
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Busy), "still loading");
        assert_eq!(lists.loaded(ann, OrderPage { orders: all.clone(), total: 3 }, 10), Loaded::Done);
        let Found::Page(page) = lists.page(ann, None, 0, 10) else { panic!("kept whole") };
        assert_eq!((page.orders, page.total), (all, 3));
    }

    /// Orders of other users placed while a user's list loads are not that user's.
    #[test]
    fn a_load_takes_only_its_users_orders_from_what_passed_meanwhile() {
        let (ann, bob) = (UserId::new(), UserId::new());
        let lists = OrderLists::default();
        lists.start(10);
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Load { from: 10 }));
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Busy));
        let mut page = placed(bob, 11);
        page.extend(placed(ann, 13));
        lists.passed(&page);
        assert_eq!(lists.loaded(ann, OrderPage::default(), 10), Loaded::Done);
        let Found::Page(found) = lists.page(ann, None, 0, 10) else { panic!("ann's list is loaded") };
        assert_eq!(found.total, 1);
        assert_eq!((found.orders[0].user_id, found.orders[0].status), (ann, OrderStatus::NumberAssigned));
        // Followed from then on; bob's list was never read, so nothing is kept for him.
        lists.passed(&placed(ann, 15));
        lists.passed(&placed(bob, 17));
        let Found::Page(found) = lists.page(ann, None, 0, 10) else { panic!("ann's list is loaded") };
        assert_eq!(found.total, 2);
        assert!(matches!(lists.page(bob, None, 0, 10), Found::Load { from: 18 }));
    }

    /// At most `LOADS_MAX` lists load at once; the next read waits until a load ends.
    #[tokio::test]
    async fn loads_at_once_are_bounded() {
        let lists = OrderLists::default();
        lists.start(10);
        let users: Vec<UserId> = (0..=LOADS_MAX).map(|_| UserId::new()).collect();
        for user in &users[..LOADS_MAX] {
            assert!(matches!(lists.page(*user, None, 0, 10), Found::Load { .. }));
        }
        let last = users[LOADS_MAX];
        let mut ended = std::pin::pin!(lists.load_ended());
        ended.as_mut().enable();
        assert!(matches!(lists.page(last, None, 0, 10), Found::Busy));
        let no_time = std::time::Duration::ZERO;
        assert!(tokio::time::timeout(no_time, ended.as_mut()).await.is_err(), "no load has ended yet");
        lists.loaded(users[0], OrderPage::default(), 10);
        assert!(tokio::time::timeout(no_time, ended.as_mut()).await.is_ok(), "the waiting read is woken");
        lists.abandon(users[1]);
        assert!(matches!(lists.page(last, None, 0, 10), Found::Load { .. }));
        assert!(matches!(lists.page(users[1], None, 0, 10), Found::Load { .. }));
        assert!(matches!(lists.page(UserId::new(), None, 0, 10), Found::Busy));
    }

    /// Past the bound, the lists read longest ago keep only their statuses (and their newest
    /// orders whole), then nothing; the list just read stays whole; a list too short to
    /// weigh less as statuses stays whole (or is dropped, if that is not enough).
    #[test]
    fn lists_past_the_bound_shrink_longest_unread_first() {
        let (ann, bob, cat) = (UserId::new(), UserId::new(), UserId::new());
        let lists = OrderLists::bounded(2 * NEWEST_KEPT);
        lists.start(10);
        for user in [ann, bob, cat] {
            assert!(matches!(lists.page(user, None, 0, 10), Found::Load { .. }));
            assert_eq!(lists.loaded(user, OrderPage::default(), 10), Loaded::Done);
        }
        let mut position = 11;
        let mut place = |user| {
            let events = placed(user, position);
            position += 2;
            lists.passed(&events);
            events
        };
        place(cat);
        let mut bobs = Vec::new();
        for _ in 0..2 * NEWEST_KEPT - 2 {
            bobs.push(place(bob));
        }
        place(ann);
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Page(_)), "ann's read last");
        bobs.push(place(bob)); // one order more than the bound: bob's list, read longest ago, shrinks
        let Found::Page(found) = lists.page(ann, None, 0, 10) else { panic!("ann's list stays whole") };
        assert_eq!(found.total, 1);
        let total = 2 * NEWEST_KEPT as i64 - 1;
        let Found::Page(found) = lists.page(bob, None, 0, 10) else { panic!("bob's newest stay whole") };
        assert_eq!((found.total, found.orders[0].order_id), (total, view_of(&bobs[bobs.len() - 1]).order_id));
        assert!(matches!(lists.page(bob, None, 0, NEWEST_KEPT as i64 + 1), Found::Rows { total: t } if t == total));
        assert!(
            matches!(lists.page(bob, Some(OrderStatus::NumberAssigned), 0, 10), Found::Rows { total: t } if t == total)
        );
        let Found::Page(found) = lists.page(cat, None, 0, 10) else { panic!("too short to shrink: whole") };
        assert_eq!(found.total, 1);

        // Statuses past the bound too: the list read longest ago goes.
        let small = OrderLists::bounded(0);
        small.start(10);
        assert!(matches!(small.page(ann, None, 0, 10), Found::Load { .. }));
        assert_eq!(small.loaded(ann, OrderPage::default(), 10), Loaded::Done);
        small.passed(&placed(ann, 11));
        assert!(matches!(small.page(ann, None, 0, 10), Found::Load { from: 12 }), "nothing kept");
    }

    /// A list longer than `LIST_MAX` keeps only its statuses (a page's total comes from them,
    /// its rows from the view); one longer than `COUNTED_MAX` keeps nothing.
    #[test]
    fn long_lists_keep_statuses_or_nothing() {
        let (ann, bob, cat) = (UserId::new(), UserId::new(), UserId::new());
        let lists = OrderLists::default();
        lists.start(10);
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Load { .. }));
        let long = OrderPage { orders: Vec::new(), total: LIST_MAX as i64 + 1 };
        assert_eq!(lists.loaded(ann, long, 10), Loaded::StatusesWanted(Vec::new()));
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Busy), "still loading");
        let mut passed = placed(ann, 11); // placed and assigned during the load
        passed.extend(placed(bob, 13));
        lists.passed(&passed);
        let old = (OrderId::new(), OrderStatus::Finished);
        lists.loaded_statuses(ann, (Vec::new(), 10), vec![old, (OrderId::new(), OrderStatus::Expired)], 10);
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Rows { total: 3 }));
        assert!(matches!(lists.page(ann, Some(OrderStatus::NumberAssigned), 0, 10), Found::Rows { total: 1 }));
        lists.passed(&placed(ann, 15));
        assert!(matches!(lists.page(ann, Some(OrderStatus::NumberAssigned), 0, 10), Found::Rows { total: 2 }));

        assert!(matches!(lists.page(cat, None, 0, 10), Found::Load { .. }));
        let longest = OrderPage { orders: Vec::new(), total: COUNTED_MAX as i64 + 1 };
        assert_eq!(lists.loaded(cat, longest, 16), Loaded::Done);
        assert!(matches!(lists.page(cat, None, 0, 10), Found::View));

        // A whole list that grows past LIST_MAX is dropped, and loaded again when read.
        assert!(matches!(lists.page(bob, None, 0, 10), Found::Load { .. }));
        assert_eq!(lists.loaded(bob, OrderPage::default(), 16), Loaded::Done);
        for n in 0..LIST_MAX as i64 {
            lists.passed(&placed(bob, 17 + 2 * n));
        }
        let Found::Page(found) = lists.page(bob, None, 0, 10) else { panic!("LIST_MAX orders are kept whole") };
        assert_eq!(found.total, LIST_MAX as i64);
        lists.passed(&placed(bob, 17 + 2 * LIST_MAX as i64));
        assert!(matches!(lists.page(bob, None, 0, 10), Found::Load { .. }), "one more is not");
        let owners = lists.inner.lock().unwrap().owners.values().filter(|owner| **owner == bob).count();
        assert_eq!(owners, 0, "nothing of it is kept");
    }
}
