//! A short stream of admin settings (maintenance windows, pricing rules) folded into state and
//! kept for a second, so a request does not read the stream each time. A change made through
//! this instance is seen at once; one made through another instance within `CACHE_TTL`.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::DomainEvent;

use crate::store::{AppendRequest, EventStore, ExpectedVersion, Metadata, NewEvent, StoreError, StreamAppend};

pub const CACHE_TTL: Duration = Duration::from_secs(1);

pub struct CachedFold<S> {
    store: EventStore,
    stream: &'static str,
    /// Folds one event; `None`: the event does not belong in this stream.
    fold: fn(S, DomainEvent) -> Option<S>,
    cache: Mutex<Option<(Instant, S)>>,
}

impl<S: Clone + Default> CachedFold<S> {
    pub fn new(store: EventStore, stream: &'static str, fold: fn(S, DomainEvent) -> Option<S>) -> Self {
        CachedFold { store, stream, fold, cache: Mutex::new(None) }
    }

    pub async fn state(&self) -> Result<S, StoreError> {
        if let Some((read_at, state)) = &*self.cache.lock().expect("cache lock")
            && read_at.elapsed() < CACHE_TTL
        {
            return Ok(state.clone());
        }
        let state = self.store.fold_stream(self.stream, S::default(), self.fold).await?.state;
        *self.cache.lock().expect("cache lock") = Some((Instant::now(), state.clone()));
        Ok(state)
    }

    /// Appends `event` (`ExpectedVersion::Any`: the latest setting wins) and returns the new state.
    pub async fn append(&self, event: DomainEvent, metadata: Metadata) -> Result<S, StoreError> {
        let append = StreamAppend {
            stream_id: self.stream.into(),
            expected: ExpectedVersion::Any,
            events: vec![NewEvent::from_domain(&event)],
        };
        self.store.append(AppendRequest { streams: vec![append], idempotency_key: None, metadata }).await?;
        *self.cache.lock().expect("cache lock") = None;
        self.state().await
    }
}
