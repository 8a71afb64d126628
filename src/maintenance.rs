//! Maintenance modes as the service applies them: the `maintenance` stream folded, cached
//! for a second so every request does not read it, and the check routes make.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::events::MAINTENANCE_STREAM;
use domain::maintenance::{MaintenanceEvent, MaintenanceState, Scope, Window};
use domain::{DomainEvent, Timestamp, UserId};

use crate::store::{AppendRequest, EventStore, ExpectedVersion, Metadata, NewEvent, StoreError, StreamAppend};

/// How long a read of the maintenance stream is reused. A change made on this instance is
/// seen at once; one made on another instance within this time.
pub const CACHE_TTL: Duration = Duration::from_secs(1);
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
    store: EventStore,
    cache: Mutex<Option<(Instant, MaintenanceState)>>,
}

impl Maintenance {
    pub fn new(store: EventStore) -> Maintenance {
        Maintenance { store, cache: Mutex::new(None) }
    }

    pub async fn state(&self) -> Result<MaintenanceState, StoreError> {
        if let Some((read_at, state)) = &*self.cache.lock().expect("maintenance cache lock")
            && read_at.elapsed() < CACHE_TTL
        {
            return Ok(state.clone());
        }
        let mut state = MaintenanceState::default();
        for recorded in self.store.read_stream(MAINTENANCE_STREAM).await? {
            match recorded.decode() {
                Ok(DomainEvent::Maintenance(event)) => state = state.apply(&event),
                _ => {
                    return Err(StoreError::Corrupt {
                        position: recorded.position,
                        reason: "the maintenance stream holds only maintenance events".into(),
                    });
                }
            }
        }
        *self.cache.lock().expect("maintenance cache lock") = Some((Instant::now(), state.clone()));
        Ok(state)
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
        let append = StreamAppend {
            stream_id: MAINTENANCE_STREAM.into(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::from_domain(&event.into())],
        };
        self.store.append(AppendRequest { streams: vec![append], idempotency_key: None, metadata }).await?;
        *self.cache.lock().expect("maintenance cache lock") = None;
        self.state().await
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
