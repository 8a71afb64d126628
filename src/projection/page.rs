//! A page of the log decoded once and read by every projection folded from it: the
//! projectors of one process share each page (decision 0023), and a page the tail passed
//! was decoded by the tail (the same events the streams in memory and the orders lists use).

use std::sync::Arc;

use domain::DomainEvent;

use super::runner::ProjectionError;
use crate::store::{Passed, RecordedEvent};

/// Events in position order with their decoded payloads. An event that does not decode is
/// kept with its reason: only a projection that needs that event refuses the page.
pub struct Page {
    events: Vec<Arc<Passed>>,
}

impl Page {
    /// A page of events decoded already (by the tail, or by [`store::read_page`]).
    ///
    /// [`store::read_page`]: crate::store::read_page
    pub fn new(events: Vec<Arc<Passed>>) -> Page {
        Page { events }
    }

    /// A page of events read from the log, decoded here.
    pub fn decode(events: Vec<RecordedEvent>) -> Page {
        Page::new(Passed::decode_all(events))
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// The position of the page's last event.
    pub fn last_position(&self) -> Option<i64> {
        self.events.last().map(|event| event.recorded.position)
    }

    pub fn all(&self) -> Slice<'_> {
        Slice { events: &self.events }
    }

    /// The events after `position` (a projection whose checkpoint is further on than the
    /// page's start).
    pub fn after(&self, position: i64) -> Slice<'_> {
        let from = self.events.partition_point(|event| event.recorded.position <= position);
        Slice { events: &self.events[from..] }
    }
}

/// Part of a page, borrowed.
#[derive(Clone, Copy)]
pub struct Slice<'a> {
    events: &'a [Arc<Passed>],
}

impl<'a> Slice<'a> {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events as recorded (without their payloads).
    pub fn events(&self) -> impl Iterator<Item = &'a RecordedEvent> + 'a {
        self.events.iter().map(|event| &event.recorded)
    }

    pub fn last_position(&self) -> Option<i64> {
        self.events.last().map(|event| event.recorded.position)
    }

    /// Every event with its decoding; one that did not decode is an `Undecodable` error.
    pub fn iter(&self) -> impl Iterator<Item = (&'a RecordedEvent, Result<&'a DomainEvent, ProjectionError>)> + 'a {
        self.events.iter().map(|event| {
            let recorded = &event.recorded;
            let decoded = event
                .decoded
                .as_ref()
                .map_err(|reason| ProjectionError::Undecodable { position: recorded.position, reason: reason.clone() });
            (recorded, decoded)
        })
    }
}
