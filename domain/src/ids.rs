//! Typed identifiers, so a user id can never be passed where an order id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id (UUID v7).
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

id_type!(
    /// A registered user.
    UserId
);
id_type!(
    /// An order for a number; also the id of the hold it places.
    OrderId
);
id_type!(
    /// A deposit (Stripe payment intent, recharge, sandbox top-up).
    DepositId
);
id_type!(
    /// A withdrawal request.
    WithdrawalId
);
id_type!(
    /// An admin credit or debit.
    AdjustmentId
);
id_type!(
    /// A login session: one refresh-token family.
    SessionId
);
id_type!(
    /// An API key.
    ApiKeyId
);

/// A point in time, milliseconds since the Unix epoch. The domain never reads a clock:
/// callers pass `now` in, so the same commands always decide the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn plus_ms(self, ms: u64) -> Timestamp {
        Timestamp(self.0.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}
