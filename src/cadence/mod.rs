//! The cadence policy, pure: no files, no SQLite, no network, no clock reads. Everything it
//! decides comes from its arguments (the channel's rules, the log's history, the pending
//! posts and `now`), so `cadenced plan` and the daemon decide the same way and tests can
//! drive it through any day.

pub mod day;
pub mod holds;
pub mod pending_index;
pub mod policy;
pub mod similarity;
pub mod simulate;
pub mod slots;

use jiff::SignedDuration;
use jiff::tz::TimeZone;

pub use slots::{Schedule, Slot};

/// One channel's cadence rules, with the defaults already applied.
#[derive(Debug, Clone)]
pub struct ChannelRules {
    pub timezone: TimeZone,
    pub slots: Schedule,
    /// At most this many posts per local day (≥ 1).
    pub max_per_day: u32,
    /// At least this much elapsed time between two posts of the channel.
    pub min_gap: SignedDuration,
    /// How far back published posts count for uniqueness and variation.
    pub unique_window: SignedDuration,
    /// Jaccard threshold at or above which two texts are near-duplicates.
    pub similarity: f64,
    /// After downtime, a missed slot is caught up only if the latest one is this recent.
    pub catch_up: SignedDuration,
    pub paused: bool,
}

impl ChannelRules {
    pub const DEFAULT_MAX_PER_DAY: u32 = 2;
    pub const DEFAULT_MIN_GAP: SignedDuration = SignedDuration::from_hours(3);
    pub const DEFAULT_UNIQUE_WINDOW: SignedDuration = SignedDuration::from_hours(30 * 24);
    pub const DEFAULT_SIMILARITY: f64 = 0.8;
    pub const DEFAULT_CATCH_UP: SignedDuration = SignedDuration::from_hours(1);

    /// The SPEC's defaults in the given zone with the given slots.
    pub fn new(timezone: TimeZone, slots: Schedule) -> Self {
        ChannelRules {
            timezone,
            slots,
            max_per_day: Self::DEFAULT_MAX_PER_DAY,
            min_gap: Self::DEFAULT_MIN_GAP,
            unique_window: Self::DEFAULT_UNIQUE_WINDOW,
            similarity: Self::DEFAULT_SIMILARITY,
            catch_up: Self::DEFAULT_CATCH_UP,
            paused: false,
        }
    }
}
