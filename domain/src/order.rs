//! The order for a number: placed (with a hold) -> number assigned -> SMS received
//! (capture) -> finished, or cancelled / expired / provider failed (release).

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::catalog::{CountryCode, PhoneNumber, ServiceCode};
use crate::ids::{OrderId, Timestamp, UserId};
use crate::ledger::is_provider_id;
use crate::money::{Money, PositiveMoney};
use crate::wallet::{ReleaseReason, WalletCommand};

/// Default: a user may not cancel in the first 2 minutes (the provider needs the time).
pub const CANCEL_WINDOW_MS_DEFAULT: u64 = 120_000;
/// Default: an order without an SMS expires, and is refunded, after 20 minutes.
pub const ORDER_LIFETIME_MS_DEFAULT: u64 = 1_200_000;
/// Longest SMS text or code we keep.
pub const SMS_TEXT_LENGTH_MAX: usize = 1_000;
/// Most SMS one order may collect (first code plus "another SMS" requests).
pub const ORDER_SMS_MAX: usize = 10;
/// How many times one order's deadline may be pushed back.
pub const ORDER_EXTENSIONS_MAX: u32 = 2;

const _: () = assert!(CANCEL_WINDOW_MS_DEFAULT < ORDER_LIFETIME_MS_DEFAULT);

/// The windows an order is placed with; they are written into `OrderPlaced`, so a
/// restart or a configuration change never moves an existing order's deadlines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderPolicy {
    pub cancel_window_ms: u64,
    pub lifetime_ms: u64,
}

impl Default for OrderPolicy {
    fn default() -> Self {
        OrderPolicy { cancel_window_ms: CANCEL_WINDOW_MS_DEFAULT, lifetime_ms: ORDER_LIFETIME_MS_DEFAULT }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Placed,
    NumberAssigned,
    SmsReceived,
    Finished,
    Cancelled,
    Expired,
    ProviderFailed,
}

impl OrderStatus {
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            OrderStatus::Finished | OrderStatus::Cancelled | OrderStatus::Expired | OrderStatus::ProviderFailed
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderCommand {
    /// Places an order; with the number the provider rented for it, the order starts with that
    /// number in one event (decision 0037). Without one, `AssignNumber` gives it one later.
    Place {
        order_id: OrderId,
        user_id: UserId,
        service: ServiceCode,
        country: CountryCode,
        price: PositiveMoney,
        policy: OrderPolicy,
        number: Option<Assignment>,
        now: Timestamp,
    },
    AssignNumber {
        provider_id: String,
        provider_order_id: String,
        phone: PhoneNumber,
        cost: Money,
        now: Timestamp,
    },
    ReceiveSms {
        sms_id: String,
        code: String,
        text: String,
        now: Timestamp,
    },
    RequestAnotherSms {
        now: Timestamp,
    },
    /// Pushes the deadline back by `by_ms` while the order waits for an SMS (the provider
    /// has agreed to keep the number that much longer).
    Extend {
        by_ms: u64,
        now: Timestamp,
    },
    Finish {
        now: Timestamp,
    },
    Cancel {
        now: Timestamp,
    },
    /// An admin's cancel: as `Cancel`, without the cancel window (who did it is in the
    /// event's metadata). Still refused once an SMS arrived: that hold is captured.
    ForceCancel {
        now: Timestamp,
    },
    Expire {
        now: Timestamp,
    },
    FailProvider {
        reason: String,
        now: Timestamp,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum OrderEvent {
    #[serde(rename = "order.placed")]
    Placed {
        order_id: OrderId,
        user_id: UserId,
        service: ServiceCode,
        country: CountryCode,
        price: PositiveMoney,
        placed_at: Timestamp,
        cancellable_at: Timestamp,
        expires_at: Timestamp,
        /// The number the order was placed with (since decision 0037); absent in orders
        /// whose number came in an `order.number_assigned` of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number: Option<Assignment>,
    },
    #[serde(rename = "order.number_assigned")]
    NumberAssigned { provider_id: String, provider_order_id: String, phone: PhoneNumber, cost: Money, at: Timestamp },
    #[serde(rename = "order.sms_received")]
    SmsReceived { sms_id: String, code: String, text: String, at: Timestamp },
    #[serde(rename = "order.another_sms_requested")]
    AnotherSmsRequested { at: Timestamp },
    #[serde(rename = "order.extended")]
    Extended { expires_at: Timestamp, at: Timestamp },
    #[serde(rename = "order.finished")]
    Finished { at: Timestamp },
    #[serde(rename = "order.cancelled")]
    Cancelled { at: Timestamp },
    #[serde(rename = "order.expired")]
    Expired { at: Timestamp },
    #[serde(rename = "order.provider_failed")]
    ProviderFailed { reason: String, at: Timestamp },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("order already placed")]
    AlreadyPlaced,
    #[error("order not found")]
    NotPlaced,
    #[error("order is closed ({0:?})")]
    Closed(OrderStatus),
    #[error("order can be cancelled from {allowed_at:?}")]
    CancelTooEarly { allowed_at: Timestamp },
    #[error("an SMS already arrived; finish the order instead")]
    SmsAlreadyReceived,
    #[error("no SMS has arrived yet")]
    NoSmsYet,
    #[error("a number is already assigned")]
    NumberAlreadyAssigned,
    #[error("no number assigned yet")]
    NoNumberYet,
    #[error("provider cost {cost} exceeds the price {price}")]
    CostAbovePrice { cost: Money, price: Money },
    #[error("bad provider data: {0}")]
    BadProviderData(&'static str),
    #[error("order is not overdue until {expires_at:?}")]
    NotOverdue { expires_at: Timestamp },
    #[error("order has reached {ORDER_SMS_MAX} SMS")]
    TooManySms,
    #[error("the cancel window must be shorter than the order lifetime")]
    BadPolicy,
    #[error("only an order waiting for an SMS can be extended")]
    NotWaiting,
    #[error("an order can be extended at most {ORDER_EXTENSIONS_MAX} times")]
    TooManyExtensions,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub provider_id: String,
    pub provider_order_id: String,
    pub phone: PhoneNumber,
    pub cost: Money,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderState {
    pub placed: Option<OrderPlacedFacts>,
    pub status: Option<OrderStatus>,
    pub assignment: Option<Assignment>,
    pub sms_ids: Vec<String>,
    pub awaiting_another_sms: bool,
    pub extensions: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderPlacedFacts {
    pub order_id: OrderId,
    pub user_id: UserId,
    pub price: PositiveMoney,
    pub cancellable_at: Timestamp,
    pub expires_at: Timestamp,
}

impl OrderState {
    fn open_status(&self) -> Result<OrderStatus, OrderError> {
        match self.status {
            None => Err(OrderError::NotPlaced),
            Some(status) if status.is_closed() => Err(OrderError::Closed(status)),
            Some(status) => Ok(status),
        }
    }

    fn facts(&self) -> &OrderPlacedFacts {
        self.placed.as_ref().expect("an open order has its placement facts")
    }

    /// The hold is captured on the first SMS only.
    pub fn is_captured(&self) -> bool {
        !self.sms_ids.is_empty()
    }
}

/// A provider's rental fits the order: a provider id and rental id of the accepted shapes, a
/// cost in the price's currency and not above it.
fn check_assignment(number: &Assignment, price: PositiveMoney) -> Result<(), OrderError> {
    if !is_provider_id(&number.provider_id) {
        return Err(OrderError::BadProviderData("provider id"));
    }
    if number.provider_order_id.is_empty() || number.provider_order_id.len() > 128 {
        return Err(OrderError::BadProviderData("provider order id"));
    }
    let (cost, price) = (number.cost, price.money());
    if cost.currency != price.currency || cost.is_negative() || cost.amount > price.amount {
        return Err(OrderError::CostAbovePrice { cost, price });
    }
    Ok(())
}

fn check_text(text: &str, what: &'static str) -> Result<(), OrderError> {
    if text.chars().count() > SMS_TEXT_LENGTH_MAX { Err(OrderError::BadProviderData(what)) } else { Ok(()) }
}

impl Aggregate for OrderState {
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        if let OrderCommand::Place { order_id, user_id, service, country, price, policy, number, now } = command {
            if self.status.is_some() {
                return Err(OrderError::AlreadyPlaced);
            }
            if policy.cancel_window_ms >= policy.lifetime_ms {
                return Err(OrderError::BadPolicy);
            }
            if let Some(number) = &number {
                check_assignment(number, price)?;
            }
            return Ok(vec![OrderEvent::Placed {
                order_id,
                user_id,
                service,
                country,
                price,
                placed_at: now,
                cancellable_at: now.plus_ms(policy.cancel_window_ms),
                expires_at: now.plus_ms(policy.lifetime_ms),
                number,
            }]);
        }
        if matches!(command, OrderCommand::Finish { .. }) && self.status == Some(OrderStatus::Finished) {
            // A retried finish, or one that crossed the monitor closing the order at the end
            // of its lifetime (which finishes an order that got its code): nothing to do.
            return Ok(vec![]);
        }
        let status = self.open_status()?;
        let facts = self.facts();
        let event = match command {
            OrderCommand::Place { .. } => unreachable!("handled above"),
            OrderCommand::AssignNumber { provider_id, provider_order_id, phone, cost, now } => {
                if status != OrderStatus::Placed {
                    return Err(OrderError::NumberAlreadyAssigned);
                }
                let number = Assignment { provider_id, provider_order_id, phone, cost };
                check_assignment(&number, facts.price)?;
                let Assignment { provider_id, provider_order_id, phone, cost } = number;
                OrderEvent::NumberAssigned { provider_id, provider_order_id, phone, cost, at: now }
            }
            OrderCommand::ReceiveSms { sms_id, code, text, now } => {
                if status == OrderStatus::Placed {
                    return Err(OrderError::NoNumberYet);
                }
                if self.sms_ids.contains(&sms_id) {
                    // A provider poll that sees the same SMS again changes nothing.
                    return Ok(vec![]);
                }
                if self.sms_ids.len() >= ORDER_SMS_MAX {
                    return Err(OrderError::TooManySms);
                }
                if sms_id.is_empty() || sms_id.len() > 128 || code.trim().is_empty() {
                    return Err(OrderError::BadProviderData("sms id or code"));
                }
                check_text(&code, "code")?;
                check_text(&text, "text")?;
                OrderEvent::SmsReceived { sms_id, code, text, at: now }
            }
            OrderCommand::RequestAnotherSms { now } => {
                if status != OrderStatus::SmsReceived {
                    return Err(OrderError::NoSmsYet);
                }
                OrderEvent::AnotherSmsRequested { at: now }
            }
            OrderCommand::Extend { by_ms, now } => {
                let waiting = status == OrderStatus::NumberAssigned
                    || (status == OrderStatus::SmsReceived && self.awaiting_another_sms);
                if !waiting || now >= facts.expires_at || by_ms == 0 {
                    return Err(OrderError::NotWaiting);
                }
                if self.extensions >= ORDER_EXTENSIONS_MAX {
                    return Err(OrderError::TooManyExtensions);
                }
                OrderEvent::Extended { expires_at: facts.expires_at.plus_ms(by_ms), at: now }
            }
            OrderCommand::Finish { now } => {
                if status != OrderStatus::SmsReceived {
                    return Err(OrderError::NoSmsYet);
                }
                OrderEvent::Finished { at: now }
            }
            OrderCommand::Cancel { now } => {
                if status == OrderStatus::SmsReceived {
                    return Err(OrderError::SmsAlreadyReceived);
                }
                if now < facts.cancellable_at {
                    return Err(OrderError::CancelTooEarly { allowed_at: facts.cancellable_at });
                }
                OrderEvent::Cancelled { at: now }
            }
            OrderCommand::ForceCancel { now } => {
                if status == OrderStatus::SmsReceived {
                    return Err(OrderError::SmsAlreadyReceived);
                }
                OrderEvent::Cancelled { at: now }
            }
            OrderCommand::Expire { now } => {
                if now < facts.expires_at {
                    return Err(OrderError::NotOverdue { expires_at: facts.expires_at });
                }
                if status == OrderStatus::SmsReceived {
                    // The code came; the order simply closes as finished.
                    OrderEvent::Finished { at: now }
                } else {
                    OrderEvent::Expired { at: now }
                }
            }
            OrderCommand::FailProvider { reason, now } => {
                if status == OrderStatus::SmsReceived {
                    return Err(OrderError::SmsAlreadyReceived);
                }
                check_text(&reason, "reason")?;
                OrderEvent::ProviderFailed { reason, at: now }
            }
        };
        Ok(vec![event])
    }

    fn apply(mut self, event: &OrderEvent) -> Self {
        match event {
            OrderEvent::Placed { order_id, user_id, price, cancellable_at, expires_at, number, .. } => {
                self.placed = Some(OrderPlacedFacts {
                    order_id: *order_id,
                    user_id: *user_id,
                    price: *price,
                    cancellable_at: *cancellable_at,
                    expires_at: *expires_at,
                });
                self.status = Some(if number.is_some() { OrderStatus::NumberAssigned } else { OrderStatus::Placed });
                self.assignment = number.clone();
            }
            OrderEvent::NumberAssigned { provider_id, provider_order_id, phone, cost, .. } => {
                self.assignment = Some(Assignment {
                    provider_id: provider_id.clone(),
                    provider_order_id: provider_order_id.clone(),
                    phone: phone.clone(),
                    cost: *cost,
                });
                self.status = Some(OrderStatus::NumberAssigned);
            }
            OrderEvent::SmsReceived { sms_id, .. } => {
                self.sms_ids.push(sms_id.clone());
                self.awaiting_another_sms = false;
                self.status = Some(OrderStatus::SmsReceived);
            }
            OrderEvent::AnotherSmsRequested { .. } => self.awaiting_another_sms = true,
            OrderEvent::Extended { expires_at, .. } => {
                if let Some(facts) = self.placed.as_mut() {
                    facts.expires_at = *expires_at;
                }
                self.extensions += 1;
            }
            OrderEvent::Finished { .. } => self.status = Some(OrderStatus::Finished),
            OrderEvent::Cancelled { .. } => self.status = Some(OrderStatus::Cancelled),
            OrderEvent::Expired { .. } => self.status = Some(OrderStatus::Expired),
            OrderEvent::ProviderFailed { .. } => self.status = Some(OrderStatus::ProviderFailed),
        }
        self
    }
}

/// What an order event does to the user's wallet, decided on the order state *before* the
/// event. The application appends both in one atomic multi-stream append, so an order and
/// its hold can never disagree.
pub fn wallet_effect(before: &OrderState, event: &OrderEvent) -> Option<WalletCommand> {
    match event {
        OrderEvent::Placed { order_id, price, .. } => {
            Some(WalletCommand::PlaceHold { order_id: *order_id, amount: *price })
        }
        OrderEvent::SmsReceived { .. } if !before.is_captured() => {
            let facts = before.facts();
            let assignment = before.assignment.as_ref().expect("an SMS arrives only on an assigned number");
            Some(WalletCommand::CaptureHold {
                order_id: facts.order_id,
                provider_id: assignment.provider_id.clone(),
                cost: assignment.cost,
            })
        }
        OrderEvent::Cancelled { .. } => Some(release(before, ReleaseReason::Cancelled)),
        OrderEvent::Expired { .. } => Some(release(before, ReleaseReason::Expired)),
        OrderEvent::ProviderFailed { .. } => Some(release(before, ReleaseReason::ProviderFailed)),
        _ => None,
    }
}

fn release(before: &OrderState, reason: ReleaseReason) -> WalletCommand {
    WalletCommand::ReleaseHold { order_id: before.facts().order_id, reason }
}

#[cfg(test)]
#[path = "order_tests.rs"]
mod tests;
