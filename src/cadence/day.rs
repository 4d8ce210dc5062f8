//! Local days and local times in a channel's zone, with the SPEC's DST rules: a local time
//! inside a spring-forward gap means the first instant after the gap; a local time in a
//! repeated fall-back hour means its first occurrence. A local day is 23, 24 or 25 hours.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

/// A calendar date in a zone and the instants it spans: `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalDay {
    pub date: Date,
    pub start: Timestamp,
    pub end: Timestamp,
}

impl LocalDay {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }

    /// The following local day.
    pub fn next(&self, tz: &TimeZone) -> LocalDay {
        day_of_date(self.date.tomorrow().expect("date in range"), tz)
    }
}

/// An instant as people read it in messages: in the channel's zone, with the zone named,
/// e.g. `Sat 2026-11-28 09:00 CET` (seconds only when they are not zero). Every message that
/// shows a time to a user goes through this, so no message mixes UTC and local clocks.
pub fn show(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.second() == 0 {
        z.strftime("%a %Y-%m-%d %H:%M %Z").to_string()
    } else {
        z.strftime("%a %Y-%m-%d %H:%M:%S %Z").to_string()
    }
}

/// The local day that contains `t` in `tz`.
pub fn local_day(t: Timestamp, tz: &TimeZone) -> LocalDay {
    day_of_date(tz.to_datetime(t).date(), tz)
}

/// The instants of a calendar date in `tz`.
pub fn day_of_date(date: Date, tz: &TimeZone) -> LocalDay {
    let next = date.tomorrow().expect("date in range");
    LocalDay {
        date,
        start: start_of(date, tz),
        end: start_of(next, tz),
    }
}

/// The first instant of `date` in `tz` (not always 00:00: some zones skip midnight).
fn start_of(date: Date, tz: &TimeZone) -> Timestamp {
    resolve_local(date.to_datetime(jiff::civil::Time::midnight()), tz)
}

/// The instant a local time names in `tz`, by the SPEC's DST rules.
pub fn resolve_local(dt: DateTime, tz: &TimeZone) -> Timestamp {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset
            .to_timestamp(dt)
            .expect("civil datetime within Timestamp range"),
        AmbiguousOffset::Fold { before, .. } => before
            .to_timestamp(dt)
            .expect("civil datetime within Timestamp range"),
        AmbiguousOffset::Gap { before, .. } => {
            // `dt` read with the old offset lies after the transition; the transition
            // preceding it is the first instant after the gap.
            let past_gap = before
                .to_timestamp(dt)
                .expect("civil datetime within Timestamp range");
            tz.preceding(past_gap.checked_add(1.nanosecond()).unwrap_or(past_gap))
                .next()
                .map(|transition| transition.timestamp())
                .unwrap_or(past_gap)
        }
    }
}

/// Whether `t` shows a wall-clock time that already occurred earlier the same night (the
/// second pass through a repeated fall-back hour).
pub fn is_repeated_wall_time(t: Timestamp, tz: &TimeZone) -> bool {
    let dt = tz.to_datetime(t);
    match tz.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok() != Some(t),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    #[test]
    fn spring_forward_gap_resolves_to_the_end_of_the_gap() {
        let ny = tz("America/New_York");
        let t = resolve_local(date(2027, 3, 14).at(2, 30, 0, 0), &ny);
        assert_eq!(t.to_string(), "2027-03-14T07:00:00Z"); // 03:00 EDT
        let lh = tz("Australia/Lord_Howe"); // 02:00 -> 02:30 on 2026-10-04
        let t = resolve_local(date(2026, 10, 4).at(2, 15, 0, 0), &lh);
        assert_eq!(lh.to_datetime(t), date(2026, 10, 4).at(2, 30, 0, 0));
    }

    #[test]
    fn fall_back_fold_resolves_to_the_first_occurrence() {
        let ny = tz("America/New_York");
        let t = resolve_local(date(2027, 11, 7).at(1, 30, 0, 0), &ny);
        assert_eq!(t.to_string(), "2027-11-07T05:30:00Z"); // 01:30 EDT, not EST
        assert!(!is_repeated_wall_time(t, &ny));
        assert!(is_repeated_wall_time(
            t + jiff::SignedDuration::from_hours(1),
            &ny
        ));
    }

    #[test]
    fn local_days_are_23_24_or_25_hours() {
        let ny = tz("America/New_York");
        let hours = |d: Date| {
            let day = day_of_date(d, &ny);
            (day.end - day.start).get_seconds() / 3600
        };
        assert_eq!(hours(date(2027, 3, 14)), 23);
        assert_eq!(hours(date(2027, 3, 15)), 24);
        assert_eq!(hours(date(2027, 11, 7)), 25);
        let t = resolve_local(date(2027, 3, 14).at(23, 59, 0, 0), &ny);
        assert_eq!(local_day(t, &ny).date, date(2027, 3, 14));
        assert_eq!(local_day(t, &ny).next(&ny).date, date(2027, 3, 15));
    }
}
