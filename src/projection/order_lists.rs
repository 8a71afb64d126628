//! Each user's orders list kept in memory, fed by the store's tail (decision 0022): `GET
//! /orders` pages it without a database round trip. A user's list is loaded once from the
//! orders view (at a checkpoint at least where the tail was when the load began) and then
//! followed event by event; order events the tail passes during the load wait in the slot.
//! The same `OrderView` fold as the orders view, so both say the same.
//!
//! Only lists of at most `LIST_MAX` orders are kept (decision 0027): a longer one (a reseller,
//! a bot) is paged from the orders view by its index, so one account cannot fill the memory
//! or be read whole at every page. Past `ORDERS_MAX` in all, the lists read longest ago go.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::order::{OrderEvent, OrderStatus};
use domain::{DomainEvent, OrderId, UserId};
use projections::OrderView;

use super::orders::OrderPage;
use crate::store::{Follower, Passed};

/// Orders kept in all lists together (about 0.7 KB each); past it the lists read longest ago
/// are dropped (down to three quarters of it) and loaded again when next read.
const ORDERS_MAX: usize = 50_000;

/// The longest list kept; a user with more orders is paged from the orders view.
pub const LIST_MAX: usize = 500;

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
    /// At most this many orders in all lists.
    bound: usize,
    /// Slots loading now.
    loading: usize,
    /// Every event up to here has been passed to the lists.
    passed: i64,
    /// Counts page reads: when each ready list was read last.
    reads: u64,
    users: HashMap<UserId, Slot>,
    /// The owner of every order in a ready list.
    owners: HashMap<OrderId, UserId>,
}

enum Slot {
    Ready(UserList),
    /// More than `LIST_MAX` orders: paged from the orders view.
    Long,
    /// Loading from the orders view, which must be at least at `from`; the order events
    /// passed since wait here.
    Loading {
        from: i64,
        passed: Vec<(i64, OrderId, OrderEvent)>,
    },
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
        let total = matching.clone().count() as i64;
        let (offset, limit) = (usize::try_from(offset).unwrap_or(usize::MAX), usize::try_from(limit).unwrap_or(0));
        OrderPage { orders: matching.skip(offset).take(limit).cloned().collect(), total }
    }
}

/// What a page read found: the page, or the position the orders view must reach before a
/// load can begin (`Load`), or no load for this read yet (`Busy`: another read is loading the
/// same list, or `LOADS_MAX` lists are loading): wait for a load to end and ask again; or a
/// list too long to keep (`View`): page the orders view.
pub enum Found {
    Page(OrderPage),
    Load { from: i64 },
    Busy,
    View,
}

impl Lists {
    /// Drops the lists read longest ago until the orders kept are within three quarters of
    /// the bound (loading slots and long-list marks stay).
    fn trim(&mut self) {
        if self.owners.len() <= self.bound {
            return;
        }
        let mut ready: Vec<(u64, UserId)> = (self.users.iter())
            .filter_map(|(user, slot)| match slot {
                Slot::Ready(list) => Some((list.read_at, *user)),
                _ => None,
            })
            .collect();
        ready.sort_unstable();
        for (_, user) in ready {
            if self.owners.len() <= self.bound / 4 * 3 {
                break;
            }
            self.forget(user);
        }
    }

    /// Drops a ready list.
    fn forget(&mut self, user: UserId) {
        if let Some(Slot::Ready(list)) = self.users.remove(&user) {
            for view in &list.orders {
                self.owners.remove(&view.order_id);
            }
        }
    }
}

impl OrderLists {
    fn bounded(bound: usize) -> OrderLists {
        let lists = Lists { bound, loading: 0, passed: 0, reads: 0, users: HashMap::new(), owners: HashMap::new() };
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

    /// Ends a load begun by `page`: `found` is the user's newest `LIST_MAX + 1` orders (or
    /// fewer) in the orders view at `checkpoint` (at least the load's `from`), and their total.
    pub fn loaded(&self, user: UserId, found: OrderPage, checkpoint: i64) {
        let mut lists = self.inner.lock().expect("order lists lock");
        let Some(Slot::Loading { from, passed }) = lists.users.remove(&user) else { return };
        lists.loading -= 1;
        self.ended.notify_waiters();
        if checkpoint < from {
            return; // not a view the load may use; the next read loads again
        }
        if found.total > LIST_MAX as i64 || found.orders.len() > LIST_MAX {
            lists.users.insert(user, Slot::Long);
            return;
        }
        let mut list = UserList::of(found.orders, lists.reads);
        // Every order event passed during the load waits in every loading slot: only this
        // user's orders are taken (their placing names them; later events find them listed).
        for (position, order_id, event) in passed.iter().filter(|(position, ..)| *position > checkpoint) {
            let theirs = match event {
                OrderEvent::Placed { user_id, .. } => *user_id == user,
                _ => list.index.contains_key(order_id),
            };
            if theirs {
                list.apply(*position, *order_id, event);
            }
        }
        if list.orders.len() > LIST_MAX {
            lists.users.insert(user, Slot::Long);
            return;
        }
        for view in &list.orders {
            lists.owners.insert(view.order_id, user);
        }
        lists.users.insert(user, Slot::Ready(list));
        lists.trim();
    }

    /// A load that failed gives its slot up.
    pub fn abandon(&self, user: UserId) {
        let mut lists = self.inner.lock().expect("order lists lock");
        if matches!(lists.users.get(&user), Some(Slot::Loading { .. })) {
            lists.users.remove(&user);
            lists.loading -= 1;
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
        let Lists { passed, users, owners, .. } = &mut *lists;
        let mut grown = Vec::new();
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
                if let Some(user) = owners.get(&order_id).copied()
                    && matches!(users.get(&user), Some(Slot::Ready(_)))
                {
                    users.remove(&user);
                }
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
            if let Some(user) = owner
                && let Some(Slot::Ready(list)) = users.get_mut(&user)
                && list.apply(recorded.position, order_id, event)
            {
                owners.insert(order_id, user);
                if list.orders.len() > LIST_MAX {
                    grown.push(user);
                }
            }
        }
        for user in grown {
            lists.forget(user);
            lists.users.insert(user, Slot::Long);
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
        lists.loaded(ann, OrderPage::default(), 10);
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

    /// Past the bound, the lists read longest ago are dropped (and loaded again when read);
    /// the list just read stays.
    #[test]
    fn lists_past_the_bound_go_longest_unread_first() {
        let (ann, bob) = (UserId::new(), UserId::new());
        let lists = OrderLists::bounded(4);
        lists.start(10);
        for user in [ann, bob] {
            assert!(matches!(lists.page(user, None, 0, 10), Found::Load { .. }));
            lists.loaded(user, OrderPage::default(), 10);
        }
        lists.passed(&placed(ann, 11));
        lists.passed(&placed(bob, 13));
        lists.passed(&placed(ann, 15));
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Page(_)), "ann's read last");
        lists.passed(&placed(bob, 17));
        lists.passed(&placed(bob, 19)); // five orders kept: bob's list goes, read longest ago
        let Found::Page(found) = lists.page(ann, None, 0, 10) else { panic!("ann's list stays") };
        assert_eq!(found.total, 2);
        assert!(matches!(lists.page(bob, None, 0, 10), Found::Load { from: 20 }), "bob's is read again");
    }

    /// A list longer than `LIST_MAX` is not kept: when loaded, or when it grows past it.
    #[test]
    fn long_lists_are_paged_from_the_view() {
        let (ann, bob) = (UserId::new(), UserId::new());
        let lists = OrderLists::default();
        lists.start(10);
        assert!(matches!(lists.page(ann, None, 0, 10), Found::Load { .. }));
        lists.loaded(ann, OrderPage { orders: Vec::new(), total: LIST_MAX as i64 + 1 }, 10);
        assert!(matches!(lists.page(ann, None, 0, 10), Found::View));

        assert!(matches!(lists.page(bob, None, 0, 10), Found::Load { .. }));
        lists.loaded(bob, OrderPage::default(), 10);
        for n in 0..LIST_MAX as i64 {
            lists.passed(&placed(bob, 11 + 2 * n));
        }
        let Found::Page(found) = lists.page(bob, None, 0, 10) else { panic!("LIST_MAX orders are kept") };
        assert_eq!(found.total, LIST_MAX as i64);
        lists.passed(&placed(bob, 11 + 2 * LIST_MAX as i64));
        assert!(matches!(lists.page(bob, None, 0, 10), Found::View), "one more is not");
        assert_eq!(lists.inner.lock().unwrap().owners.len(), 0, "nothing of it is kept");
    }
}
