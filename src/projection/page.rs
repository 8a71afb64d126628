//! A page of the log decoded once and read by every projection folded from it: the
//! projectors of one process share each page (decision 0023) instead of decoding it each.

use domain::DomainEvent;

use super::runner::ProjectionError;
use crate::store::RecordedEvent;

/// Events in position order with their decoded payloads (the raw payloads are taken out;
/// the metadata stays). An event that does not decode is kept with its reason: only a
/// projection that needs that event refuses the page.
pub struct Page {
    events: Vec<RecordedEvent>,
    decoded: Vec<Result<DomainEvent, String>>,
}

impl Page {
    pub fn decode(mut events: Vec<RecordedEvent>) -> Page {
        let decoded = events
            .iter_mut()
            .map(|event| {
                let payload = std::mem::take(&mut event.payload);
                DomainEvent::decode_owned(&event.event_type, event.schema_version, payload).map_err(|e| e.to_string())
            })
            .collect();
        Page { events, decoded }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// The position of the page's last event.
    pub fn last_position(&self) -> Option<i64> {
        self.events.last().map(|event| event.position)
    }

    pub fn all(&self) -> Slice<'_> {
        Slice { events: &self.events, decoded: &self.decoded }
    }

    /// The events after `position` (a projection whose checkpoint is further on than the
    /// page's start).
    pub fn after(&self, position: i64) -> Slice<'_> {
        let from = self.events.partition_point(|event| event.position <= position);
        Slice { events: &self.events[from..], decoded: &self.decoded[from..] }
    }
}

/// Part of a page, borrowed.
#[derive(Clone, Copy)]
pub struct Slice<'a> {
    events: &'a [RecordedEvent],
    decoded: &'a [Result<DomainEvent, String>],
}

impl<'a> Slice<'a> {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn events(&self) -> &'a [RecordedEvent] {
        self.events
    }

    pub fn last_position(&self) -> Option<i64> {
        self.events.last().map(|event| event.position)
    }

    /// Every event with its decoding; one that did not decode is an `Undecodable` error.
    pub fn iter(&self) -> impl Iterator<Item = (&'a RecordedEvent, Result<&'a DomainEvent, ProjectionError>)> + 'a {
        self.events.iter().zip(self.decoded).map(|(event, decoded)| {
            let decoded = decoded
                .as_ref()
                .map_err(|reason| ProjectionError::Undecodable { position: event.position, reason: reason.clone() });
            (event, decoded)
        })
    }
}
