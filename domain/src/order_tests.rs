use super::*;
use crate::aggregate::scenario::Scenario;
use crate::money::Currency;

const T0: Timestamp = Timestamp(1_700_000_000_000);

fn at(ms: u64) -> Timestamp {
    T0.plus_ms(ms)
}

fn usd(amount: &str) -> Money {
    Money::parse(amount, "USD").unwrap()
}

struct Order {
    order_id: OrderId,
    user_id: UserId,
}

fn order() -> Order {
    Order { order_id: OrderId::new(), user_id: UserId::new() }
}

impl Order {
    fn place(&self) -> OrderCommand {
        OrderCommand::Place {
            order_id: self.order_id,
            user_id: self.user_id,
            service: ServiceCode::parse("tg").unwrap(),
            country: CountryCode::parse("GB").unwrap(),
            price: PositiveMoney::parse("1.50", "USD").unwrap(),
            policy: OrderPolicy::default(),
            number: None,
            now: T0,
        }
    }

    fn placed(&self) -> OrderEvent {
        OrderState::default().decide(self.place()).unwrap().remove(0)
    }

    fn assigned() -> OrderEvent {
        OrderEvent::NumberAssigned {
            provider_id: "sandbox".into(),
            provider_order_id: "p-1".into(),
            phone: PhoneNumber::parse("+447700900123").unwrap(),
            cost: usd("1.00"),
            at: at(1_000),
        }
    }

    fn sms(id: &str) -> OrderEvent {
        OrderEvent::SmsReceived { sms_id: id.into(), code: "12345".into(), text: "code 12345".into(), at: at(30_000) }
    }

    fn waiting(&self) -> Vec<OrderEvent> {
        vec![self.placed(), Self::assigned()]
    }

    fn with_sms(&self) -> Vec<OrderEvent> {
        vec![self.placed(), Self::assigned(), Self::sms("s1")]
    }

    fn given(&self, events: &[OrderEvent]) -> Scenario<OrderState> {
        Scenario::given(OrderState::default(), events)
    }
}

fn receive(id: &str, now: Timestamp) -> OrderCommand {
    OrderCommand::ReceiveSms { sms_id: id.into(), code: "12345".into(), text: "code 12345".into(), now }
}

#[test]
fn place_writes_the_deadlines_into_the_event() {
    let o = order();
    o.given(&[]).when(o.place()).then(vec![OrderEvent::Placed {
        order_id: o.order_id,
        user_id: o.user_id,
        service: ServiceCode::parse("tg").unwrap(),
        country: CountryCode::parse("GB").unwrap(),
        price: PositiveMoney::parse("1.5", "USD").unwrap(),
        placed_at: T0,
        cancellable_at: at(120_000),
        expires_at: at(1_200_000),
        number: None,
    }]);
}

fn rented(cost: &str, provider: &str) -> Assignment {
    Assignment {
        provider_id: provider.into(),
        provider_order_id: "p-1".into(),
        phone: PhoneNumber::parse("+447700900123").unwrap(),
        cost: usd(cost),
    }
}

/// Placed with its number (decision 0037): one event, the state an assigned number gives,
/// and the number checked as `AssignNumber` checks it.
#[test]
fn place_with_its_number() {
    let o = order();
    let with = |number: Assignment| {
        let mut place = o.place();
        if let OrderCommand::Place { number: slot, .. } = &mut place {
            *slot = Some(number);
        }
        place
    };
    let events = OrderState::default().decide(with(rented("1.00", "sandbox"))).unwrap();
    assert!(matches!(&events[..], [OrderEvent::Placed { number: Some(n), .. }] if *n == rented("1.00", "sandbox")));
    let one = OrderState::default().apply_all(&events);
    let two = OrderState::default().apply_all(&o.waiting());
    assert_eq!(one, two, "the same state as a placement and an assignment");
    assert_eq!(one.status, Some(OrderStatus::NumberAssigned));
    // What can follow an assigned number follows it.
    o.given(&events).when(receive("s1", at(30_000))).then(vec![Order::sms("s1")]);
    o.given(&[])
        .when(with(rented("1.51", "sandbox")))
        .then_fails(OrderError::CostAbovePrice { cost: usd("1.51"), price: usd("1.5") });
    o.given(&[]).when(with(rented("1", "Not A Slug"))).then_fails(OrderError::BadProviderData("provider id"));
    // An event written before decision 0037 (no `number`) reads as it was written.
    let old = serde_json::to_value(o.placed()).unwrap();
    assert!(old.get("number").is_none(), "{old}");
    let new = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(serde_json::from_value::<OrderEvent>(new).unwrap(), events[0]);
}

#[test]
fn place_rejections() {
    let o = order();
    o.given(&[o.placed()]).when(o.place()).then_fails(OrderError::AlreadyPlaced);
    let mut bad = o.place();
    if let OrderCommand::Place { policy, .. } = &mut bad {
        *policy = OrderPolicy { cancel_window_ms: 10, lifetime_ms: 10 };
    }
    o.given(&[]).when(bad).then_fails(OrderError::BadPolicy);
}

#[test]
fn commands_on_an_unplaced_order_are_refused() {
    let o = order();
    o.given(&[]).when(OrderCommand::Cancel { now: T0 }).then_fails(OrderError::NotPlaced);
}

#[test]
fn assign_number() {
    let o = order();
    let assign = |cost: &str, provider: &str| OrderCommand::AssignNumber {
        provider_id: provider.into(),
        provider_order_id: "p-1".into(),
        phone: PhoneNumber::parse("+447700900123").unwrap(),
        cost: usd(cost),
        now: at(1_000),
    };
    o.given(&[o.placed()]).when(assign("1.00", "sandbox")).then(vec![Order::assigned()]);
    o.given(&o.waiting()).when(assign("1.00", "sandbox")).then_fails(OrderError::NumberAlreadyAssigned);
    o.given(&[o.placed()])
        .when(assign("1.51", "sandbox"))
        .then_fails(OrderError::CostAbovePrice { cost: usd("1.51"), price: usd("1.5") });
    o.given(&[o.placed()]).when(assign("1", "Not A Slug")).then_fails(OrderError::BadProviderData("provider id"));
    let result = OrderState::default().apply_all(&[o.placed()]).decide(OrderCommand::AssignNumber {
        provider_id: "sandbox".into(),
        provider_order_id: "p-1".into(),
        phone: PhoneNumber::parse("+447700900123").unwrap(),
        cost: Money { amount: usd("1").amount, currency: Currency::parse("EUR").unwrap() },
        now: at(1_000),
    });
    assert!(matches!(result, Err(OrderError::CostAbovePrice { .. })));
}

#[test]
fn sms_arrives_once_per_id() {
    let o = order();
    o.given(&o.waiting()).when(receive("s1", at(30_000))).then(vec![Order::sms("s1")]);
    o.given(&o.with_sms()).when(receive("s1", at(31_000))).then(vec![]);
    o.given(&[o.placed()]).when(receive("s1", at(30_000))).then_fails(OrderError::NoNumberYet);
    o.given(&o.waiting())
        .when(OrderCommand::ReceiveSms { sms_id: "s1".into(), code: " ".into(), text: String::new(), now: at(1) })
        .then_fails(OrderError::BadProviderData("sms id or code"));
}

#[test]
fn another_sms_on_the_same_number() {
    let o = order();
    o.given(&o.with_sms())
        .when(OrderCommand::RequestAnotherSms { now: at(40_000) })
        .then(vec![OrderEvent::AnotherSmsRequested { at: at(40_000) }]);
    o.given(&o.waiting()).when(OrderCommand::RequestAnotherSms { now: at(40_000) }).then_fails(OrderError::NoSmsYet);
    let mut history = o.with_sms();
    history.push(OrderEvent::AnotherSmsRequested { at: at(40_000) });
    o.given(&history).when(receive("s2", at(50_000))).then(vec![OrderEvent::SmsReceived {
        sms_id: "s2".into(),
        code: "12345".into(),
        text: "code 12345".into(),
        at: at(50_000),
    }]);
}

#[test]
fn sms_count_is_bounded() {
    let o = order();
    let mut history = o.waiting();
    for i in 0..ORDER_SMS_MAX {
        history.push(Order::sms(&format!("s{i}")));
    }
    o.given(&history).when(receive("one-more", at(60_000))).then_fails(OrderError::TooManySms);
}

#[test]
fn finish_needs_an_sms() {
    let o = order();
    o.given(&o.with_sms())
        .when(OrderCommand::Finish { now: at(60_000) })
        .then(vec![OrderEvent::Finished { at: at(60_000) }]);
    o.given(&o.waiting()).when(OrderCommand::Finish { now: at(60_000) }).then_fails(OrderError::NoSmsYet);
}

#[test]
fn finishing_a_finished_order_changes_nothing_but_other_closed_orders_refuse() {
    let o = order();
    let mut finished = o.with_sms();
    finished.push(OrderEvent::Finished { at: at(60_000) });
    o.given(&finished).when(OrderCommand::Finish { now: at(61_000) }).then(vec![]);
    let mut expired = o.waiting();
    expired.push(OrderEvent::Expired { at: at(1_300_000) });
    o.given(&expired)
        .when(OrderCommand::Finish { now: at(1_300_001) })
        .then_fails(OrderError::Closed(OrderStatus::Expired));
}

#[test]
fn cancel_is_refused_in_the_first_two_minutes() {
    let o = order();
    o.given(&o.waiting())
        .when(OrderCommand::Cancel { now: at(119_999) })
        .then_fails(OrderError::CancelTooEarly { allowed_at: at(120_000) });
    o.given(&o.waiting())
        .when(OrderCommand::Cancel { now: at(120_000) })
        .then(vec![OrderEvent::Cancelled { at: at(120_000) }]);
    o.given(&o.with_sms()).when(OrderCommand::Cancel { now: at(500_000) }).then_fails(OrderError::SmsAlreadyReceived);
}

#[test]
fn an_admin_may_cancel_inside_the_window_but_not_after_the_sms() {
    let o = order();
    o.given(&o.waiting())
        .when(OrderCommand::ForceCancel { now: at(5_000) })
        .then(vec![OrderEvent::Cancelled { at: at(5_000) }]);
    o.given(&o.with_sms())
        .when(OrderCommand::ForceCancel { now: at(40_000) })
        .then_fails(OrderError::SmsAlreadyReceived);
    let mut closed = o.waiting();
    closed.push(OrderEvent::Expired { at: at(1_300_000) });
    o.given(&closed)
        .when(OrderCommand::ForceCancel { now: at(1_400_000) })
        .then_fails(OrderError::Closed(OrderStatus::Expired));
}

#[test]
fn closed_orders_refuse_everything() {
    let o = order();
    let mut history = o.waiting();
    history.push(OrderEvent::Cancelled { at: at(130_000) });
    o.given(&history)
        .when(OrderCommand::Cancel { now: at(140_000) })
        .then_fails(OrderError::Closed(OrderStatus::Cancelled));
    o.given(&history).when(receive("late", at(140_000))).then_fails(OrderError::Closed(OrderStatus::Cancelled));
}

#[test]
fn expiry_after_twenty_minutes() {
    let o = order();
    o.given(&o.waiting())
        .when(OrderCommand::Expire { now: at(1_199_999) })
        .then_fails(OrderError::NotOverdue { expires_at: at(1_200_000) });
    o.given(&o.waiting())
        .when(OrderCommand::Expire { now: at(1_200_000) })
        .then(vec![OrderEvent::Expired { at: at(1_200_000) }]);
    o.given(&o.with_sms())
        .when(OrderCommand::Expire { now: at(1_200_000) })
        .then(vec![OrderEvent::Finished { at: at(1_200_000) }]);
}

#[test]
fn provider_failure_before_sms_only() {
    let o = order();
    let fail = || OrderCommand::FailProvider { reason: "no numbers".into(), now: at(5) };
    o.given(&[o.placed()])
        .when(fail())
        .then(vec![OrderEvent::ProviderFailed { reason: "no numbers".into(), at: at(5) }]);
    o.given(&o.with_sms()).when(fail()).then_fails(OrderError::SmsAlreadyReceived);
}

#[test]
fn wallet_effects_follow_the_order() {
    let o = order();
    let fresh = OrderState::default();
    assert_eq!(
        wallet_effect(&fresh, &o.placed()),
        Some(WalletCommand::PlaceHold { order_id: o.order_id, amount: PositiveMoney::parse("1.5", "USD").unwrap() })
    );
    let waiting = OrderState::default().apply_all(&o.waiting());
    assert_eq!(
        wallet_effect(&waiting, &Order::sms("s1")),
        Some(WalletCommand::CaptureHold { order_id: o.order_id, provider_id: "sandbox".into(), cost: usd("1") })
    );
    let captured = OrderState::default().apply_all(&o.with_sms());
    assert_eq!(wallet_effect(&captured, &Order::sms("s2")), None, "only the first SMS captures");
    assert_eq!(
        wallet_effect(&waiting, &OrderEvent::Expired { at: at(1) }),
        Some(WalletCommand::ReleaseHold { order_id: o.order_id, reason: ReleaseReason::Expired })
    );
}

#[test]
fn extending_pushes_the_deadline_a_bounded_number_of_times() {
    let o = order();
    let extend = |now| OrderCommand::Extend { by_ms: 600_000, now: at(now) };
    let extended = |expires| OrderEvent::Extended { expires_at: at(expires), at: at(60_000) };
    o.given(&o.waiting()).when(extend(60_000)).then(vec![extended(1_800_000)]);
    let mut history = o.waiting();
    history.push(extended(1_800_000));
    // The new deadline holds: not overdue at the old one, overdue at the new one.
    o.given(&history)
        .when(OrderCommand::Expire { now: at(1_200_000) })
        .then_fails(OrderError::NotOverdue { expires_at: at(1_800_000) });
    o.given(&history)
        .when(OrderCommand::Expire { now: at(1_800_000) })
        .then(vec![OrderEvent::Expired { at: at(1_800_000) }]);
    history.push(extended(2_400_000));
    o.given(&history).when(extend(70_000)).then_fails(OrderError::TooManyExtensions);
    // Only while waiting, before the deadline, by something.
    o.given(&o.with_sms()).when(extend(60_000)).then_fails(OrderError::NotWaiting);
    o.given(&[o.placed()]).when(extend(60_000)).then_fails(OrderError::NotWaiting);
    o.given(&o.waiting()).when(extend(1_200_000)).then_fails(OrderError::NotWaiting);
    o.given(&o.waiting()).when(OrderCommand::Extend { by_ms: 0, now: at(1) }).then_fails(OrderError::NotWaiting);
}
