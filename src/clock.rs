//! The one place that reads the wall clock. Everything else takes `now` as an argument, so
//! tests can drive time through DST days, midnights and restarts deterministically.

use jiff::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The real wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the composition root is where the clock is read
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that returns a fixed instant until it is moved; for tests and simulations.
#[derive(Debug)]
pub struct FixedClock(std::sync::Mutex<Timestamp>);

impl FixedClock {
    pub fn new(at: Timestamp) -> Self {
        FixedClock(std::sync::Mutex::new(at))
    }

    pub fn set(&self, at: Timestamp) {
        *self.0.lock().expect("clock lock") = at;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("clock lock")
    }
}

/// Whether a file modified at `modified` changed less than `within` ago. File times are
/// real time, so this compares with the real clock, not the injected scheduling clock:
/// a test that drives the schedule through 2027 still writes its files today.
#[allow(clippy::disallowed_methods)] // see above: file times live on the real clock
pub fn modified_within(modified: Timestamp, within: std::time::Duration) -> bool {
    let age = Timestamp::now().duration_since(modified);
    age < jiff::SignedDuration::try_from(within).unwrap_or(jiff::SignedDuration::MAX)
}

/// How long ago (real time) a file was modified; zero for a time in the future.
#[allow(clippy::disallowed_methods)] // file times live on the real clock, as above
pub fn age(modified: Timestamp) -> std::time::Duration {
    std::time::Duration::try_from(Timestamp::now().duration_since(modified)).unwrap_or_default()
}
