//! The order lifecycle as the service runs it: routing a new order to a provider, holding
//! its price, and every later step (SMS, cancel, finish, another SMS, expiry), each decided
//! by the order aggregate and appended with its wallet effect (see `service::Ledger`).
//!
//! The provider is called around the ledger, never inside it: a number is rented first, then
//! the order, its number and its hold are appended together; when the ledger refuses (funds
//! gone, a concurrent retry won), the number is given back.

pub mod monitor;

use std::sync::Arc;

use domain::catalog::{CountryCode, ServiceCode};
use domain::events::order_stream;
use domain::order::{Assignment, OrderCommand, OrderError, OrderStatus};
use domain::pricing::PricingState;
use domain::wallet::WalletError;
use domain::{Aggregate, Money, OrderId, PositiveMoney, UserId};
use projections::OrderView;

use crate::catalog::CatalogCache;
use crate::identity::now;
use crate::projection::order_lists::{Found, LIST_MAX, Loaded, NEWEST_KEPT, OrderLists};
use crate::projection::orders::{self as orders_view, OrderPage};
use crate::providers::routing::{RoutingError, candidates, rent_first};
use crate::providers::{Provider, ProviderError, SmsStatus};
use crate::read::{self, ReadError};
use crate::service::{Ledger, ServiceError};
use crate::store::{AppendOutcome, EventStore, Folded, Metadata, StoreError};

/// Longest a request that reads an order waits for its provider's answer.
pub const INLINE_POLL_MAX: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum OrderFailure {
    #[error("no such order")]
    NotFound,
    #[error("no provider offers service {0}")]
    UnknownService(ServiceCode),
    #[error("no numbers for this service and country{}", cheapest.map(|c| format!(" within the price (cheapest is {c})")).unwrap_or_default())]
    NoNumbers { cheapest: Option<Money> },
    #[error("insufficient balance: {available} available, {needed} needed")]
    NoBalance { available: rust_decimal::Decimal, needed: rust_decimal::Decimal },
    #[error("this Idempotency-Key was used for another request")]
    KeyReused,
    #[error("the provider of this order cannot keep the number longer")]
    CannotExtend,
    #[error("the provider is unavailable; try again: {0}")]
    ProviderUnavailable(String),
    #[error(transparent)]
    Refused(ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ServiceError> for OrderFailure {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Wallet(WalletError::InsufficientFunds { available, needed }) => {
                OrderFailure::NoBalance { available, needed }
            }
            // A lost race after retries stays a refusal (409); other store faults are ours.
            ServiceError::Store(error) if !matches!(error, StoreError::Conflict { .. }) => OrderFailure::Store(error),
            other => OrderFailure::Refused(other),
        }
    }
}

/// What a user asks for.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub user: UserId,
    pub service: ServiceCode,
    pub country: CountryCode,
    pub max_price: Option<Money>,
    /// The client's `Idempotency-Key`, scoped to the user here.
    pub key: Option<String>,
}

pub struct Orders {
    store: EventStore,
    ledger: Ledger,
    pub catalog: Arc<CatalogCache>,
    /// Users' orders lists in memory, fed by the store's tail once the first list is read.
    lists: std::sync::OnceLock<Arc<OrderLists>>,
}

impl Orders {
    pub fn new(store: EventStore, ledger: Ledger, catalog: Arc<CatalogCache>) -> Orders {
        Orders { store, ledger, catalog, lists: std::sync::OnceLock::new() }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The order as it is after every write this process acknowledged (and other processes'
    /// once its tail passed them): from memory; from the database when memory does not have
    /// it (placed through another process just now). `None` when there is no such order.
    pub async fn view(&self, order_id: OrderId) -> Result<Option<OrderView>, StoreError> {
        if let Some(view) = self.view_as(order_id, false).await? {
            return Ok(Some(view));
        }
        self.view_as(order_id, true).await
    }

    async fn view_as(&self, order_id: OrderId, fresh: bool) -> Result<Option<OrderView>, StoreError> {
        let stream = order_stream(order_id);
        let folded = self.store.folded(&stream, fresh).await?;
        let Folded::Order(log) = &*folded else {
            return Err(StoreError::Invalid(format!("{stream} is not an order")));
        };
        match (log.state.view(), log.state.0.first()) {
            (Some(view), _) => Ok(Some(view)),
            (None, None) => Ok(None),
            (None, Some((position, _))) => Err(StoreError::Corrupt {
                position: *position,
                reason: format!("{stream} does not start with order.placed"),
            }),
        }
    }

    /// A page of the user's orders, newest first, optionally of one status, including every
    /// write of theirs this process knows of (decision 0022): from the user's list in memory,
    /// loaded from the orders view on first use; a list too long to keep (decision 0027) is
    /// paged from the orders view once it has the user's writes.
    pub async fn page(
        &self,
        user: UserId,
        status: Option<OrderStatus>,
        offset: i64,
        limit: i64,
    ) -> Result<OrderPage, ReadError> {
        let target = read::user_position(&self.store, user).await?;
        let lists = self.lists.get_or_init(|| {
            let lists = Arc::new(OrderLists::default());
            self.store.live().follow(lists.clone());
            lists
        });
        let engine = self.store.engine();
        // The page from the orders view, once it has the user's writes; counted there unless
        // the total is known.
        let from_view = |known: Option<i64>| async move {
            let read = || orders_view::list_for_user(engine, user, status, offset, limit, known);
            Ok(read::view_at(&self.store, orders_view::NAME, target, read).await?.1)
        };
        // Busy (another read is loading this list, or enough others are): wait for a load to
        // end and ask again, so a list is loaded by the read that needs it (one slow read
        // per list); past the freshness wait, the orders view answers.
        let deadline = tokio::time::Instant::now() + read::FRESHNESS_WAIT_MAX;
        let mut ended = None;
        let from = loop {
            match lists.page(user, status, offset, limit) {
                Found::Page(page) => return Ok(page),
                Found::Rows { total } => return from_view(Some(total)).await,
                Found::View => return from_view(None).await,
                Found::Load { from } => break from,
                Found::Busy => match ended.take() {
                    None => {
                        let mut waiting = Box::pin(lists.load_ended());
                        waiting.as_mut().enable();
                        ended = Some(waiting);
                    }
                    Some(waiting) => {
                        if tokio::time::timeout_at(deadline, waiting).await.is_err() {
                            return from_view(None).await;
                        }
                    }
                },
            }
        };
        if let Err(error) = self.load_list(lists, user, from.max(target)).await {
            lists.abandon(user);
            return Err(error);
        }
        match lists.page(user, status, offset, limit) {
            Found::Page(page) => Ok(page),
            Found::Rows { total } => from_view(Some(total)).await,
            _ => from_view(None).await,
        }
    }

    /// Loads a user's list from the orders view at `at` or later: the newest `NEWEST_KEPT`
    /// orders and the total; then, if there are more, either the whole list (up to one more
    /// than a list kept whole may have: more says it grew long) or, if it is long, the status
    /// of each order.
    async fn load_list(&self, lists: &OrderLists, user: UserId, at: i64) -> Result<(), ReadError> {
        let engine = self.store.engine();
        let mut limit = NEWEST_KEPT;
        loop {
            let read = || orders_view::list_for_user(engine, user, None, 0, limit as i64, None);
            let (checkpoint, newest) = read::view_at(&self.store, orders_view::NAME, at, read).await?;
            match lists.loaded(user, newest, checkpoint) {
                Loaded::Done => return Ok(()),
                // One statement reads the rows and the count: LIST_MAX + 1 of them are the
                // whole list or say it is long, so this asks again at most once.
                Loaded::WholeWanted => limit = LIST_MAX + 1,
                Loaded::StatusesWanted(newest) => {
                    let newest_at = checkpoint;
                    let read = || orders_view::statuses_for_user(engine, user);
                    let (checkpoint, statuses) = read::view_at(&self.store, orders_view::NAME, at, read).await?;
                    lists.loaded_statuses(user, (newest, newest_at), statuses, checkpoint);
                    return Ok(());
                }
            }
        }
    }

    /// The order placed at log position `serial` (its numeric id), if that is an order.
    pub async fn by_serial(&self, serial: i64) -> Result<Option<OrderView>, StoreError> {
        if serial < 1 {
            return Ok(None);
        }
        let found = self.store.read_all(serial - 1, 1).await?;
        let Some(event) = found.first().filter(|e| e.position == serial && e.event_type == "order.placed") else {
            return Ok(None);
        };
        let Some(order_id) = event.stream_id.strip_prefix("order-").and_then(|id| id.parse().ok()) else {
            return Ok(None);
        };
        self.view(OrderId(order_id)).await
    }

    /// The caller's order, or `NotFound` (also for someone else's: ids are not confirmed).
    pub async fn owned(&self, user: UserId, order_id: OrderId) -> Result<OrderView, OrderFailure> {
        match self.view(order_id).await? {
            Some(view) if view.user_id == user => Ok(view),
            _ => Err(OrderFailure::NotFound),
        }
    }

    /// Places an order: a number is rented from the cheapest provider that has one (failing
    /// over to the next on no numbers or errors), then the order, its number and the hold of
    /// its price are appended in one atomic append. Funds are checked before renting; if they
    /// are gone by the append, nothing is appended and the number goes back. A retry with the
    /// same key returns the same order.
    pub async fn place(
        &self,
        request: NewOrder,
        pricing: &PricingState,
        metadata: Metadata,
    ) -> Result<OrderView, OrderFailure> {
        let placed = self.place_once(request, pricing, metadata).await;
        let outcome = match &placed {
            Ok(view) => view.provider_id.clone().unwrap_or_default(),
            Err(OrderFailure::NoBalance { .. }) => "no_balance".into(),
            Err(OrderFailure::NoNumbers { .. }) => "no_numbers".into(),
            Err(OrderFailure::UnknownService(_)) => "unknown_service".into(),
            Err(_) => "error".into(),
        };
        let result = if placed.is_ok() { "placed" } else { "refused" };
        metrics::counter!("orders_placed_total", "result" => result, "outcome" => outcome).increment(1);
        placed
    }

    async fn place_once(
        &self,
        request: NewOrder,
        pricing: &PricingState,
        metadata: Metadata,
    ) -> Result<OrderView, OrderFailure> {
        let key = request.key.as_ref().map(|key| format!("order:{}:{key}", request.user));
        if let Some(key) = &key
            && let Some(first) = self.store.idempotent_outcome(key).await?
        {
            return self.replayed(&request, &first).await;
        }
        let synced = self.catalog.current().await;
        let found = candidates(&synced.catalog, pricing, &request.service, &request.country, request.max_price);
        let Some(cheapest) = found.first() else {
            if !synced.catalog.offers.iter().any(|(_, offer)| offer.service == request.service) {
                return Err(OrderFailure::UnknownService(request.service));
            }
            let any = candidates(&synced.catalog, pricing, &request.service, &request.country, None);
            return Err(OrderFailure::NoNumbers { cheapest: any.first().map(|c| c.price) });
        };
        // From memory; a shortage is confirmed against the database (a deposit through
        // another process may not have reached this one yet).
        let (user, currency) = (request.user, cheapest.price.currency);
        let mut available = self.ledger.available_as(user, currency, false).await?;
        if available < cheapest.price.amount {
            available = self.ledger.available_as(user, currency, true).await?;
        }
        if available < cheapest.price.amount {
            return Err(OrderFailure::NoBalance { available, needed: cheapest.price.amount });
        }
        let (candidate, rental) = rent_first(&found, &request.service, &request.country).await.map_err(|error| {
            tracing::info!(%error, service = %request.service, country = %request.country, "order.no_number");
            match error {
                // The last provider asked did not answer (down, timed out): try again later.
                RoutingError::Exhausted(ProviderError::Unavailable(why)) => OrderFailure::ProviderUnavailable(why),
                _ => OrderFailure::NoNumbers { cheapest: None },
            }
        })?;
        let order_id = OrderId::new();
        let at = now();
        let price = PositiveMoney::new(candidate.price).map_err(|_| OrderFailure::NoNumbers { cheapest: None })?;
        // One event: the order with its number (decision 0037).
        let commands = vec![OrderCommand::Place {
            order_id,
            user_id: request.user,
            service: request.service.clone(),
            country: request.country.clone(),
            price,
            policy: self.ledger.policy,
            number: Some(Assignment {
                provider_id: candidate.provider.id().to_owned(),
                provider_order_id: rental.provider_order_id.clone(),
                phone: rental.phone.clone(),
                cost: rental.cost,
            }),
            now: at,
        }];
        let placed = self.ledger.order_commands(order_id, commands, key, metadata).await;
        match placed {
            Ok(Some(outcome)) if !outcome.replayed => self.view(order_id).await?.ok_or(OrderFailure::NotFound),
            Ok(outcome) => {
                // A concurrent retry with the same key placed it first: this number goes back.
                give_back(&candidate.provider, &rental.provider_order_id).await;
                let outcome = outcome.ok_or(OrderFailure::KeyReused)?;
                self.replayed(&request, &outcome).await
            }
            Err(error) => {
                give_back(&candidate.provider, &rental.provider_order_id).await;
                Err(error.into())
            }
        }
    }

    /// The order a first attempt with the same key placed, if it was this request.
    async fn replayed(&self, request: &NewOrder, first: &AppendOutcome) -> Result<OrderView, OrderFailure> {
        let order_id = first
            .streams
            .iter()
            .find_map(|s| s.stream_id.strip_prefix("order-")?.parse().ok().map(OrderId))
            .ok_or(OrderFailure::KeyReused)?;
        let view = self.view(order_id).await?.ok_or(OrderFailure::KeyReused)?;
        if view.user_id != request.user || view.service != request.service || view.country != request.country {
            return Err(OrderFailure::KeyReused);
        }
        Ok(view)
    }

    fn provider(&self, view: &OrderView) -> Option<(&Provider, String)> {
        let provider = self.catalog.provider(view.provider_id.as_deref()?)?;
        Some((provider, view.provider_order_id.clone()?))
    }

    /// Asks the provider for new SMS of an order waiting for one and records them; the
    /// order as it is afterwards.
    pub async fn refresh(&self, view: OrderView, metadata: &Metadata) -> Result<OrderView, OrderFailure> {
        let Some((provider, rental)) = self.provider(&view).filter(|_| waits_for_sms(&view)) else { return Ok(view) };
        match provider.sms(&rental).await {
            Ok(SmsStatus::Waiting) => return Ok(view),
            Ok(SmsStatus::Received(all)) => {
                for sms in all.into_iter().filter(|sms| !view.sms.iter().any(|seen| seen.sms_id == sms.sms_id)) {
                    self.record_sms(view.order_id, sms.sms_id, sms.code, sms.text, metadata).await?;
                }
            }
            Ok(SmsStatus::Ended) if view.sms.is_empty() => {
                let fail = OrderCommand::FailProvider { reason: "the provider ended the rental".into(), now: now() };
                self.ignore_closed(self.ledger.order_command(view.order_id, fail, None, metadata.clone()).await)?;
            }
            Ok(SmsStatus::Ended) => {}
            Err(error) => {
                tracing::warn!(order_id = %view.order_id, provider = provider.id(), %error, "order.poll_failed");
                return Ok(view);
            }
        }
        self.view(view.order_id).await?.ok_or(OrderFailure::NotFound)
    }

    /// `refresh` for a reader who is waiting: at most `INLINE_POLL_MAX`, else the order as
    /// recorded (the monitor polls again soon). A poll cut short loses nothing: an SMS is
    /// either appended or not, and the next poll finds it again.
    pub async fn refresh_briefly(&self, view: OrderView, metadata: &Metadata) -> Result<OrderView, OrderFailure> {
        match tokio::time::timeout(INLINE_POLL_MAX, self.refresh(view.clone(), metadata)).await {
            Ok(refreshed) => refreshed,
            Err(_) => {
                tracing::info!(order_id = %view.order_id, "order.inline_poll_timed_out");
                Ok(view)
            }
        }
    }

    /// Records one SMS (a repeat of a known one changes nothing); the first captures the hold.
    pub async fn record_sms(
        &self,
        order_id: OrderId,
        sms_id: String,
        code: String,
        text: String,
        metadata: &Metadata,
    ) -> Result<(), OrderFailure> {
        let receive = OrderCommand::ReceiveSms { sms_id, code, text, now: now() };
        self.ignore_closed(self.ledger.order_command(order_id, receive, None, metadata.clone()).await)
    }

    /// A closed order refuses late news from a provider; that is not an error of the caller.
    fn ignore_closed(&self, result: Result<Option<AppendOutcome>, ServiceError>) -> Result<(), OrderFailure> {
        match result {
            Ok(_) | Err(ServiceError::Order(OrderError::Closed(_))) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Cancels before any SMS (not in the first `CANCEL_TIMEOUT`): the provider is told
    /// first, so it refunds us, then the hold is released.
    pub async fn cancel(&self, user: UserId, order_id: OrderId, metadata: Metadata) -> Result<OrderView, OrderFailure> {
        let view = self.owned(user, order_id).await?;
        let view = self.refresh(view, &metadata).await?;
        let cancel = OrderCommand::Cancel { now: now() };
        // Decide first: a refused cancel must not give the number back.
        self.ledger.order(order_id).await?.state.decide(cancel.clone()).map_err(ServiceError::Order)?;
        if let Some((provider, rental)) = self.provider(&view) {
            match provider.cancel(&rental).await {
                Ok(()) => {}
                Err(ProviderError::Unavailable(why)) => return Err(OrderFailure::ProviderUnavailable(why)),
                Err(error) => tracing::warn!(%order_id, %error, "order.provider_cancel_refused"),
            }
        }
        self.ledger.order_command(order_id, cancel, None, metadata).await?;
        self.view(order_id).await?.ok_or(OrderFailure::NotFound)
    }

    /// An admin's cancel of any user's order, inside the cancel window too: the provider is
    /// told (best effort: the admin decides to refund the user whatever the provider says),
    /// then the hold is released. Refused once an SMS arrived (that money is captured).
    pub async fn force_cancel(&self, order_id: OrderId, metadata: Metadata) -> Result<OrderView, OrderFailure> {
        let view = self.view(order_id).await?.ok_or(OrderFailure::NotFound)?;
        let view = self.refresh(view, &metadata).await?;
        let cancel = OrderCommand::ForceCancel { now: now() };
        self.ledger.order(order_id).await?.state.decide(cancel.clone()).map_err(ServiceError::Order)?;
        if let Some((provider, rental)) = self.provider(&view)
            && let Err(error) = provider.cancel(&rental).await
        {
            tracing::warn!(%order_id, %error, "order.provider_cancel_failed");
        }
        self.ledger.order_command(order_id, cancel, None, metadata).await?;
        self.view(order_id).await?.ok_or(OrderFailure::NotFound)
    }

    /// Closes an order that got its SMS (asking the provider first, if it is still waiting);
    /// the provider is told afterwards. Finishing a finished order changes nothing and answers
    /// the order (a retry; or the monitor closed it at its lifetime's end meanwhile).
    pub async fn finish(&self, user: UserId, order_id: OrderId, metadata: Metadata) -> Result<OrderView, OrderFailure> {
        // A code that reached the provider but not us yet counts.
        let view = self.refresh(self.owned(user, order_id).await?, &metadata).await?;
        let appended = self.ledger.order_command(order_id, OrderCommand::Finish { now: now() }, None, metadata).await?;
        if appended.is_some()
            && let Some((provider, rental)) = self.provider(&view)
            && let Err(error) = provider.finish(&rental).await
        {
            tracing::warn!(%order_id, %error, "order.provider_finish_failed");
        }
        self.view(order_id).await?.ok_or(OrderFailure::NotFound)
    }

    /// Asks for another SMS on the same number, free of charge.
    pub async fn another_sms(
        &self,
        user: UserId,
        order_id: OrderId,
        metadata: Metadata,
    ) -> Result<OrderView, OrderFailure> {
        let view = self.owned(user, order_id).await?;
        let request = OrderCommand::RequestAnotherSms { now: now() };
        self.ledger.order(order_id).await?.state.decide(request.clone()).map_err(ServiceError::Order)?;
        if let Some((provider, rental)) = self.provider(&view) {
            provider.another_sms(&rental).await.map_err(|e| match e {
                ProviderError::Unavailable(why) => OrderFailure::ProviderUnavailable(why),
                other => OrderFailure::ProviderUnavailable(other.to_string()),
            })?;
        }
        self.ledger.order_command(order_id, request, None, metadata).await?;
        self.view(order_id).await?.ok_or(OrderFailure::NotFound)
    }

    /// Keeps the number one more order lifetime (`ORDER_TIMEOUT`), free, if its provider can;
    /// at most `ORDER_EXTENSIONS_MAX` times, and only while the order waits for an SMS.
    pub async fn extend(&self, user: UserId, order_id: OrderId, metadata: Metadata) -> Result<OrderView, OrderFailure> {
        let view = self.owned(user, order_id).await?;
        let by_ms = self.ledger.policy.lifetime_ms;
        let extend = OrderCommand::Extend { by_ms, now: now() };
        self.ledger.order(order_id).await?.state.decide(extend.clone()).map_err(ServiceError::Order)?;
        let Some((provider, rental)) = self.provider(&view) else { return Err(OrderFailure::CannotExtend) };
        if !provider.can_extend() {
            return Err(OrderFailure::CannotExtend);
        }
        provider.extend(&rental, std::time::Duration::from_millis(by_ms)).await.map_err(|e| match e {
            ProviderError::Unavailable(why) => OrderFailure::ProviderUnavailable(why),
            _ => OrderFailure::CannotExtend,
        })?;
        self.ledger.order_command(order_id, extend, None, metadata).await?;
        self.view(order_id).await?.ok_or(OrderFailure::NotFound)
    }

    /// Closes an overdue order: expired and refunded without an SMS (and the number given
    /// back), finished with one.
    pub async fn expire(&self, view: &OrderView, metadata: &Metadata) -> Result<(), OrderFailure> {
        let expire = OrderCommand::Expire { now: now() };
        self.ignore_closed(self.ledger.order_command(view.order_id, expire, None, metadata.clone()).await)?;
        if let Some((provider, rental)) = self.provider(view) {
            let told =
                if view.sms.is_empty() { provider.cancel(&rental).await } else { provider.finish(&rental).await };
            if let Err(error) = told {
                tracing::warn!(order_id = %view.order_id, %error, "order.provider_close_failed");
            }
        }
        Ok(())
    }
}

/// Best effort: the number goes back to its provider.
async fn give_back(provider: &Provider, rental: &str) {
    if let Err(error) = provider.cancel(rental).await {
        tracing::warn!(provider = provider.id(), rental, %error, "order.give_back_failed");
    }
}

/// Whether an order waits for an SMS and should be polled.
pub fn waits_for_sms(view: &OrderView) -> bool {
    view.status == OrderStatus::NumberAssigned || (view.status == OrderStatus::SmsReceived && view.awaiting_another_sms)
}
