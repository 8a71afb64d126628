//! Maintenance modes as the service applies them: the `maintenance` stream folded, cached
//! for a second so every request does not read it, and the check routes make.

use domain::events::MAINTENANCE_STREAM;
use domain::maintenance::{MaintenanceEvent, MaintenanceState, Scope, Window};
use domain::{DomainEvent, Timestamp, UserId};

use crate::cached_fold::CachedFold;
use crate::store::{EventStore, Metadata, StoreError};

/// `Retry-After` for a window with no end.
pub const RETRY_AFTER_OPEN_ENDED_S: u64 = 300;

/// A route refused because `scope` is paused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paused {
    pub scope: Scope,
    pub message: String,
    pub retry_after_s: u64,
    pub until: Option<Timestamp>,
}

pub struct Maintenance {
    settings: CachedFold<MaintenanceState>,
}

impl Maintenance {
    pub fn new(store: EventStore) -> Maintenance {
        let fold = |state: MaintenanceState, event| match event {
            DomainEvent::Maintenance(event) => Some(state.apply(&event)),
            _ => None,
        };
        Maintenance { settings: CachedFold::new(store, MAINTENANCE_STREAM, fold) }
    }

    pub async fn state(&self) -> Result<MaintenanceState, StoreError> {
        self.settings.state().await
    }

    /// Switches `scope` on for `window`, or off with `None`. The latest setting wins.
    pub async fn set(
        &self,
        scope: Scope,
        window: Option<Window>,
        by: UserId,
        metadata: Metadata,
    ) -> Result<MaintenanceState, StoreError> {
        let event = MaintenanceEvent::Set { scope, window, by, at: crate::identity::now() };
        self.settings.append(event.into(), metadata).await
    }

    /// `Err(Paused)` when `scope` (or master) is paused now.
    pub async fn check(&self, scope: &Scope) -> Result<Result<(), Paused>, StoreError> {
        let now = crate::identity::now();
        let state = self.state().await?;
        Ok(match state.blocking(scope, now) {
            None => Ok(()),
            Some((scope, window)) => Err(Paused {
                scope: scope.clone(),
                message: window.message.clone(),
                retry_after_s: window.ends_at.map_or(RETRY_AFTER_OPEN_ENDED_S, |end| {
                    u64::try_from((end.0 - now.0 + 999) / 1000).unwrap_or(1).max(1)
                }),
                until: window.ends_at,
            }),
        })
    }
}
