//! The order view: everything a user or the order monitor needs to know about one order,
//! folded from its events. `GET /orders/:id` folds it from the order's stream; the `orders`
//! table keeps one per order for listing and for the monitor's scan of open orders.

use domain::catalog::{CountryCode, PhoneNumber, ServiceCode};
use domain::order::{OrderEvent, OrderStatus};
use domain::{Money, OrderId, Timestamp, UserId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsView {
    pub sms_id: String,
    pub code: String,
    pub text: String,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    pub order_id: OrderId,
    /// The log position of `order.placed`: a short number naming the order, unique like its
    /// id (the SMS-Activate protocol's numeric activation id).
    pub serial: i64,
    pub user_id: UserId,
    pub service: ServiceCode,
    pub country: CountryCode,
    pub price: Money,
    pub status: OrderStatus,
    pub provider_id: Option<String>,
    pub provider_order_id: Option<String>,
    pub phone: Option<PhoneNumber>,
    /// What the provider charges us; shown to admins only.
    pub cost: Option<Money>,
    pub sms: Vec<SmsView>,
    pub awaiting_another_sms: bool,
    pub placed_at: Timestamp,
    pub cancellable_at: Timestamp,
    pub expires_at: Timestamp,
    pub closed_at: Option<Timestamp>,
    /// Why the provider side failed, for `provider_failed` orders.
    pub failure: Option<String>,
}

impl OrderView {
    /// The view an `order.placed` event at log position `serial` starts; `None` for any other event.
    pub fn placed(event: &OrderEvent, serial: i64) -> Option<OrderView> {
        let OrderEvent::Placed {
            order_id,
            user_id,
            service,
            country,
            price,
            placed_at,
            cancellable_at,
            expires_at,
            number,
        } = event
        else {
            return None;
        };
        Some(OrderView {
            order_id: *order_id,
            serial,
            user_id: *user_id,
            service: service.clone(),
            country: country.clone(),
            price: price.money(),
            status: status_after(OrderStatus::Placed, event),
            provider_id: number.as_ref().map(|n| n.provider_id.clone()),
            provider_order_id: number.as_ref().map(|n| n.provider_order_id.clone()),
            phone: number.as_ref().map(|n| n.phone.clone()),
            cost: number.as_ref().map(|n| n.cost),
            sms: Vec::new(),
            awaiting_another_sms: false,
            placed_at: *placed_at,
            cancellable_at: *cancellable_at,
            expires_at: *expires_at,
            closed_at: None,
            failure: None,
        })
    }

    pub fn apply(&mut self, event: &OrderEvent) {
        self.status = status_after(self.status, event);
        match event {
            OrderEvent::Placed { .. } => {}
            OrderEvent::NumberAssigned { provider_id, provider_order_id, phone, cost, .. } => {
                self.provider_id = Some(provider_id.clone());
                self.provider_order_id = Some(provider_order_id.clone());
                self.phone = Some(phone.clone());
                self.cost = Some(*cost);
            }
            OrderEvent::SmsReceived { sms_id, code, text, at } => {
                self.sms.push(SmsView { sms_id: sms_id.clone(), code: code.clone(), text: text.clone(), at: *at });
                self.awaiting_another_sms = false;
            }
            OrderEvent::AnotherSmsRequested { .. } => self.awaiting_another_sms = true,
            OrderEvent::Extended { expires_at, .. } => self.expires_at = *expires_at,
            OrderEvent::Finished { at } | OrderEvent::Cancelled { at } | OrderEvent::Expired { at } => self.close(*at),
            OrderEvent::ProviderFailed { reason, at } => {
                self.failure = Some(reason.clone());
                self.close(*at);
            }
        }
    }

    fn close(&mut self, at: Timestamp) {
        self.closed_at = Some(at);
        self.awaiting_another_sms = false;
    }

    /// Folds a whole order stream of `(position, event)`; `None` when it does not start
    /// with `order.placed`.
    pub fn fold<'a>(events: impl IntoIterator<Item = (i64, &'a OrderEvent)>) -> Option<OrderView> {
        let mut events = events.into_iter();
        let (serial, first) = events.next()?;
        let mut view = OrderView::placed(first, serial)?;
        for (_, event) in events {
            view.apply(event);
        }
        Some(view)
    }

    /// The newest code, if any SMS arrived.
    pub fn code(&self) -> Option<&str> {
        self.sms.last().map(|sms| sms.code.as_str())
    }
}

/// An order's status after `event`, from its status before: the one rule the order view and
/// the per-user order counts follow.
pub fn status_after(status: OrderStatus, event: &OrderEvent) -> OrderStatus {
    match event {
        OrderEvent::Placed { number: Some(_), .. } => OrderStatus::NumberAssigned,
        OrderEvent::Placed { number: None, .. } => OrderStatus::Placed,
        OrderEvent::NumberAssigned { .. } => OrderStatus::NumberAssigned,
        OrderEvent::SmsReceived { .. } => OrderStatus::SmsReceived,
        OrderEvent::AnotherSmsRequested { .. } | OrderEvent::Extended { .. } => status,
        OrderEvent::Finished { .. } => OrderStatus::Finished,
        OrderEvent::Cancelled { .. } => OrderStatus::Cancelled,
        OrderEvent::Expired { .. } => OrderStatus::Expired,
        OrderEvent::ProviderFailed { .. } => OrderStatus::ProviderFailed,
    }
}

#[cfg(test)]
mod tests {
    use domain::Aggregate;
    use domain::order::{OrderCommand, OrderPolicy, OrderState};

    use super::*;

    fn positioned(events: &[OrderEvent]) -> impl Iterator<Item = (i64, &OrderEvent)> {
        events.iter().enumerate().map(|(i, e)| (i as i64 + 1, e))
    }

    #[test]
    fn the_view_follows_the_order_through_its_life() {
        let mut state = OrderState::default();
        let mut events = Vec::new();
        let mut run = |events: &mut Vec<OrderEvent>, command: OrderCommand| {
            let decided = state.decide(command).unwrap();
            state = std::mem::take(&mut state).apply_all(&decided);
            events.extend(decided);
        };
        run(
            &mut events,
            OrderCommand::Place {
                order_id: OrderId::new(),
                user_id: UserId::new(),
                service: ServiceCode::parse("tg").unwrap(),
                country: CountryCode::parse("GB").unwrap(),
                price: domain::PositiveMoney::parse("0.50", "USD").unwrap(),
                policy: OrderPolicy::default(),
                number: None,
                now: Timestamp(1_000),
            },
        );
        run(
            &mut events,
            OrderCommand::AssignNumber {
                provider_id: "sandbox".into(),
                provider_order_id: "r1".into(),
                phone: PhoneNumber::parse("+447700900001").unwrap(),
                cost: Money::parse("0.30", "USD").unwrap(),
                now: Timestamp(2_000),
            },
        );
        run(
            &mut events,
            OrderCommand::ReceiveSms {
                sms_id: "s1".into(),
                code: "123456".into(),
                text: "code 123456".into(),
                now: Timestamp(3_000),
            },
        );
        run(&mut events, OrderCommand::RequestAnotherSms { now: Timestamp(4_000) });
        let waiting = OrderView::fold(positioned(&events)).unwrap();
        assert!(waiting.awaiting_another_sms);
        assert_eq!((waiting.status, waiting.code()), (OrderStatus::SmsReceived, Some("123456")));
        run(&mut events, OrderCommand::Finish { now: Timestamp(5_000) });
        let view = OrderView::fold(positioned(&events)).unwrap();
        assert_eq!(view.serial, 1);
        assert_eq!(view.status, OrderStatus::Finished);
        assert_eq!(view.closed_at, Some(Timestamp(5_000)));
        assert_eq!(view.expires_at, Timestamp(1_000 + 1_200_000));
        assert_eq!(view.phone.as_ref().map(PhoneNumber::as_str), Some("+447700900001"));
        assert!(!view.awaiting_another_sms);
        assert!(OrderView::fold(positioned(&events[1..])).is_none(), "a view starts at order.placed");
    }

    /// An order placed with its number (decision 0037) has the view a placement followed by
    /// an assignment gave.
    #[test]
    fn an_order_placed_with_its_number_is_viewed_as_one_assigned_after() {
        let (order_id, user_id) = (OrderId::new(), UserId::new());
        let number = domain::order::Assignment {
            provider_id: "sandbox".into(),
            provider_order_id: "r1".into(),
            phone: PhoneNumber::parse("+447700900001").unwrap(),
            cost: Money::parse("0.30", "USD").unwrap(),
        };
        let place = |number| OrderCommand::Place {
            order_id,
            user_id,
            service: ServiceCode::parse("tg").unwrap(),
            country: CountryCode::parse("GB").unwrap(),
            price: domain::PositiveMoney::parse("0.50", "USD").unwrap(),
            policy: OrderPolicy::default(),
            number,
            now: Timestamp(1_000),
        };
        let one = OrderState::default().decide(place(Some(number.clone()))).unwrap();
        let placed = OrderState::default().decide(place(None)).unwrap();
        let assigned = OrderState::default()
            .apply_all(&placed)
            .decide(OrderCommand::AssignNumber {
                provider_id: number.provider_id.clone(),
                provider_order_id: number.provider_order_id.clone(),
                phone: number.phone.clone(),
                cost: number.cost,
                now: Timestamp(1_000),
            })
            .unwrap();
        let two: Vec<OrderEvent> = placed.into_iter().chain(assigned).collect();
        let (one, two) = (OrderView::fold(positioned(&one)).unwrap(), OrderView::fold(positioned(&two)).unwrap());
        assert_eq!(one, two);
        assert_eq!((one.status, one.provider_id.as_deref()), (OrderStatus::NumberAssigned, Some("sandbox")));
    }
}
