//! Posting slots. (Being written.)

use jiff::Timestamp;
use jiff::tz::TimeZone;

/// One slot as written in the config: `"10:00"`, `"Mon-Fri 09:30"`, 5- or 6-field cron.
#[derive(Debug, Clone)]
pub struct Slot {
    spec: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SlotError {
    pub message: String,
    pub help: String,
}

impl Slot {
    pub fn parse(spec: &str) -> Result<Slot, SlotError> {
        let _ = spec;
        todo!()
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }
}

/// A channel's slots together.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    slots: Vec<Slot>,
}

impl Schedule {
    pub fn new(slots: Vec<Slot>) -> Schedule {
        Schedule { slots }
    }

    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The first instant strictly after `after` at which a slot fires in `tz`.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let _ = (after, tz);
        todo!()
    }
}
