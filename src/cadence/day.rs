//! Local days and local times in a channel's zone, with the SPEC's DST rules: a local time
//! inside a spring-forward gap means the first instant after the gap; a local time in a
//! repeated fall-back hour means its first occurrence. A local day is 23, 24 or 25 hours.
//!
//! Nothing here panics on a far date: a time outside jiff's range is `None`
//! ([`resolve_local`]) or clamped to the ends of time ([`day_of_date`]). Inputs from outside
//! are kept inside [`FIRST_YEAR`]..=[`LAST_YEAR`] where they are read (post times, `--from`,
//! `--since`) and config durations are at most [`MAX_DURATION`], so an instant plus or minus
//! any duration stays far inside jiff's range (years -9999 to 9999) and no sum overflows.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

/// The first year a post time or a command-line date may name.
pub const FIRST_YEAR: i16 = 1900;
/// The last year a post time or a command-line date may name.
pub const LAST_YEAR: i16 = 8999;
/// The longest duration the config accepts (`min_gap`, `unique_window`, `catch_up`, ...):
/// 100 years of 365 days.
pub const MAX_DURATION: SignedDuration = SignedDuration::from_hours(24 * 365 * 100);

/// Why a date given from outside is refused: it lies outside the years cadenced plans with.
/// `None` when `date` is within [`FIRST_YEAR`]..=[`LAST_YEAR`].
pub fn out_of_range(date: Date) -> Option<String> {
    let year = date.year();
    (!(FIRST_YEAR..=LAST_YEAR).contains(&year)).then(|| {
        format!(
            "the year {year} is outside {FIRST_YEAR}–{LAST_YEAR}, the years cadenced plans with"
        )
    })
}

/// [`out_of_range`] for an exact instant, read in UTC.
pub fn instant_out_of_range(t: Timestamp) -> Option<String> {
    out_of_range(TimeZone::UTC.to_datetime(t).date())
}

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

    /// The following local day; `None` after the last date jiff knows.
    pub fn next(&self, tz: &TimeZone) -> Option<LocalDay> {
        Some(day_of_date(self.date.tomorrow().ok()?, tz))
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

/// The instants of a calendar date in `tz`. At the ends of jiff's range, where the day's
/// first or next midnight is not a representable instant, the bound is clamped to
/// `Timestamp::MIN` or `Timestamp::MAX`.
pub fn day_of_date(date: Date, tz: &TimeZone) -> LocalDay {
    let start = start_of(date, tz);
    let end = match date.tomorrow() {
        Ok(next) => start_of(next, tz),
        Err(_) => Timestamp::MAX,
    };
    LocalDay { date, start, end }
}

/// The first instant of `date` in `tz` (not always 00:00: some zones skip midnight).
fn start_of(date: Date, tz: &TimeZone) -> Timestamp {
    let midnight = date.to_datetime(jiff::civil::Time::midnight());
    resolve_local(midnight, tz).unwrap_or(if date.year() > 0 {
        Timestamp::MAX
    } else {
        Timestamp::MIN
    })
}

/// The instant a local time names in `tz`, by the SPEC's DST rules; `None` when it lies
/// outside jiff's range of instants (a local time late on 9999-12-31, say).
pub fn resolve_local(dt: DateTime, tz: &TimeZone) -> Option<Timestamp> {
    let ambiguous = tz.to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { offset } => offset.to_timestamp(dt).ok(),
        AmbiguousOffset::Fold { before, .. } => before.to_timestamp(dt).ok(),
        AmbiguousOffset::Gap { before, .. } => {
            // `dt` read with the old offset lies after the transition; the transition
            // preceding it is the first instant after the gap.
            let past_gap = before.to_timestamp(dt).ok()?;
            Some(
                tz.preceding(past_gap.checked_add(1.nanosecond()).unwrap_or(past_gap))
                    .next()
                    .map(|transition| transition.timestamp())
                    .unwrap_or(past_gap),
            )
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
        let t = resolve_local(date(2027, 3, 14).at(2, 30, 0, 0), &ny).unwrap();
        assert_eq!(t.to_string(), "2027-03-14T07:00:00Z"); // 03:00 EDT
        let lh = tz("Australia/Lord_Howe"); // 02:00 -> 02:30 on 2026-10-04
        let t = resolve_local(date(2026, 10, 4).at(2, 15, 0, 0), &lh).unwrap();
        assert_eq!(lh.to_datetime(t), date(2026, 10, 4).at(2, 30, 0, 0));
    }

    #[test]
    fn fall_back_fold_resolves_to_the_first_occurrence() {
        let ny = tz("America/New_York");
        let t = resolve_local(date(2027, 11, 7).at(1, 30, 0, 0), &ny).unwrap();
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
        let t = resolve_local(date(2027, 3, 14).at(23, 59, 0, 0), &ny).unwrap();
        assert_eq!(local_day(t, &ny).date, date(2027, 3, 14));
        assert_eq!(local_day(t, &ny).next(&ny).unwrap().date, date(2027, 3, 15));
    }

    #[test]
    fn local_time_in_year_9999_is_none_not_a_panic() {
        let madrid = tz("Europe/Madrid");
        assert_eq!(
            resolve_local(date(9999, 12, 31).at(23, 59, 0, 0), &madrid),
            None
        );
        assert_eq!(
            resolve_local(date(-9999, 1, 1).at(0, 0, 0, 0), &tz("Pacific/Kiritimati")),
            None
        );
        // The last and the first local days clamp to the ends of time.
        let last = day_of_date(date(9999, 12, 31), &madrid);
        assert_eq!((last.start, last.end), (Timestamp::MAX, Timestamp::MAX));
        assert_eq!(last.next(&madrid), None);
        assert_eq!(local_day(Timestamp::MAX, &madrid).end, Timestamp::MAX);
        assert_eq!(local_day(Timestamp::MIN, &madrid).date.year(), -9999);
    }

    #[test]
    fn the_supported_years_leave_room_for_any_config_duration() {
        let far = [Timestamp::MIN, Timestamp::MAX];
        for zone in ["Pacific/Kiritimati", "Etc/GMT+12", "UTC"] {
            let tz = tz(zone);
            let first = resolve_local(date(FIRST_YEAR, 1, 1).at(0, 0, 0, 0), &tz).unwrap();
            let last = resolve_local(date(LAST_YEAR, 12, 31).at(23, 59, 59, 0), &tz).unwrap();
            assert!(!far.contains(&first) && !far.contains(&last));
            assert!(first.checked_sub(MAX_DURATION).is_ok(), "{zone}");
            assert!(last.checked_add(MAX_DURATION).is_ok(), "{zone}");
            // A local day, a slot search horizon (5 years) and a plan of 366 days fit too.
            assert!(last.checked_add(MAX_DURATION * 2).is_ok(), "{zone}");
        }
        assert_eq!(out_of_range(date(LAST_YEAR, 12, 31)), None);
        assert_eq!(out_of_range(date(FIRST_YEAR, 1, 1)), None);
        let msg = out_of_range(date(9999, 12, 31)).unwrap();
        assert!(msg.contains("9999") && msg.contains("1900–8999"), "{msg}");
        assert!(out_of_range(date(1899, 12, 31)).is_some());
    }
}
