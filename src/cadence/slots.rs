//! Posting slots (SPEC "Cadence rules", rule 3): the wall-clock times, in a channel's zone,
//! at which a post without `at` may go out, and the instants they name across DST changes.
//!
//! Why it exists: a slot is a *local* time. A slot written "09:00" must stay at 09:00 local
//! time all year (the bug that made us drop tokio-cron-scheduler), must fire at the first
//! instant after a spring-forward gap that swallows it, and must fire only once in a repeated
//! fall-back hour. Every other module asks this one "when is the next slot?".
//!
//! What it must not do: read the clock (`after` is always an argument), hold state between
//! calls, or trust a cron library with DST. croner 4 parses the cron fields and matches
//! *civil* date-times; turning a civil time into an instant is done here with
//! [`day::resolve_local`], the one place the SPEC's DST rules live. (croner's own zoned search
//! fires interval/wildcard patterns such as `0 * * * *` twice in a repeated hour and skips
//! them in a gap, which the SPEC does not allow.)

use std::fmt;
use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};

use super::day;

/// The accepted forms, shown in every parse error's help.
const FORMS_HELP: &str = "write \"10:00\" (every day), \"Mon-Fri 09:30\", \"Sat,Sun 11:00\", \
     a 5-field cron \"30 9 * * 1-5\" or a 6-field cron with seconds \"0 30 9 * * Mon-Fri\"";

/// How far ahead `next_after` looks before it concludes that a slot never fires. Five years
/// covers a leap-day slot (`0 12 29 2 *`, every four years) from any start; a pattern that
/// cannot match (`0 0 30 2 *`) costs at most this many days of cheap field checks, with
/// non-matching months skipped whole.
const SEARCH_HORIZON_DAYS: i64 = 5 * 366;

/// One slot as written in the config: `"10:00"`, `"Mon-Fri 09:30"`, 5- or 6-field cron.
///
/// Every form is parsed into a croner pattern (the day-and-time forms become
/// `0 MM HH * * <days>`), so one matcher serves all of them.
#[derive(Debug, Clone)]
pub struct Slot {
    spec: String,
    // Shared by the clones: croner's pattern holds a year table of about 10 KB, and the
    // defaults' slots are cloned into every channel (10 MB for 1,000 channels).
    cron: std::sync::Arc<Cron>,
    // The values each time field matches, ascending, computed once at parse time so that
    // finding the first matching time of a day is a few comparisons, not a scan of 86 400
    // seconds.
    hours: Vec<i8>,
    minutes: Vec<i8>,
    seconds: Vec<i8>,
}

/// Why a slot spec was refused: `message` says what is wrong (quoting the spec), `help`
/// shows the accepted forms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SlotError {
    pub message: String,
    pub help: String,
}

impl SlotError {
    fn new(message: String) -> SlotError {
        SlotError {
            message,
            help: FORMS_HELP.to_string(),
        }
    }
}

impl Slot {
    pub fn parse(spec: &str) -> Result<Slot, SlotError> {
        let fields: Vec<&str> = spec.split_whitespace().collect();
        let pattern = match fields.as_slice() {
            [] => return Err(SlotError::new(format!("slot {spec:?} is empty"))),
            [time] => {
                if !time.contains(':') {
                    return Err(SlotError::new(format!(
                        "slot {spec:?} is neither a time of day (HH:MM) nor a cron expression"
                    )));
                }
                let (hour, minute) = parse_time(spec, time)?;
                format!("0 {minute} {hour} * * *")
            }
            [days, time] => {
                if days.contains(':') && !time.contains(':') {
                    return Err(SlotError::new(format!(
                        "slot {spec:?}: the days come first, then the time, as in \"{time} {days}\""
                    )));
                }
                let (hour, minute) = parse_time(spec, time)?;
                let days = parse_days(spec, days)?;
                format!("0 {minute} {hour} * * {days}")
            }
            [.., last] if fields.len() < 5 && last.contains(':') => {
                return Err(SlotError::new(format!(
                    "slot {spec:?}: write the days without spaces, as one day (\"Mon\"), a range \
                     (\"Mon-Fri\") or a list (\"Sat,Sun\"), followed by the time"
                )));
            }
            _ if fields.len() == 5 || fields.len() == 6 => {
                check_cron_fields(spec, &fields)?;
                fields.join(" ")
            }
            _ => {
                let year = if fields.len() == 7 {
                    " (a year field is not accepted)"
                } else {
                    ""
                };
                return Err(SlotError::new(format!(
                    "slot {spec:?} has {} fields: a cron slot has 5 fields, or 6 with seconds \
                     first{year}",
                    fields.len()
                )));
            }
        };
        let cron = cron_parser().parse(&pattern).map_err(|error| {
            SlotError::new(format!(
                "slot {spec:?} is not a valid cron expression: {error}"
            ))
        })?;
        let values = |max: i8, matches: &dyn Fn(u32) -> bool| -> Vec<i8> {
            (0..max).filter(|&v| matches(v as u32)).collect()
        };
        let pattern = &cron.pattern;
        let hours = values(24, &|h| pattern.hour_match(h).unwrap_or(false));
        let minutes = values(60, &|m| pattern.minute_match(m).unwrap_or(false));
        let seconds = values(60, &|s| pattern.second_match(s).unwrap_or(false));
        if hours.is_empty() || minutes.is_empty() || seconds.is_empty() {
            return Err(SlotError::new(format!(
                "slot {spec:?} matches no time of day"
            )));
        }
        Ok(Slot {
            spec: spec.trim().to_string(),
            cron: std::sync::Arc::new(cron),
            hours,
            minutes,
            seconds,
        })
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Whether the wall-clock time `dt` is one of this slot's times (whole seconds only).
    pub fn matches(&self, dt: DateTime) -> bool {
        dt.subsec_nanosecond() == 0
            && self.hours.contains(&dt.hour())
            && self.minutes.contains(&dt.minute())
            && self.seconds.contains(&dt.second())
            && self.matches_date(dt.date())
    }

    fn matches_date(&self, date: Date) -> bool {
        let pattern = &self.cron.pattern;
        let (year, month, day) = (
            i32::from(date.year()),
            date.month() as u32,
            date.day() as u32,
        );
        let weekday =
            croner::Weekday::from_days_from_sunday(date.weekday().to_sunday_zero_offset() as u32);
        pattern.year_match(year).unwrap_or(false)
            && pattern.month_match(month).unwrap_or(false)
            && pattern
                .day_match(year, month, day, weekday)
                .unwrap_or(false)
    }

    /// The first civil date-time at or after `from` (whole seconds) that this slot names,
    /// on a date no later than `until`. Civil time only: no zone, no DST.
    fn next_civil(&self, from: DateTime, until: Date) -> Option<DateTime> {
        let mut date = from.date();
        let mut floor = from.time();
        while date <= until {
            if !self
                .cron
                .pattern
                .month_match(date.month() as u32)
                .unwrap_or(false)
            {
                // Skip the whole month: this keeps impossible patterns cheap.
                date = date.last_of_month().tomorrow().ok()?;
                floor = Time::midnight();
                continue;
            }
            if self.matches_date(date)
                && let Some(time) = self.first_time_from(floor)
            {
                return Some(date.to_datetime(time));
            }
            date = date.tomorrow().ok()?;
            floor = Time::midnight();
        }
        None
    }

    /// The first time of day at or after `floor` that the time fields match.
    fn first_time_from(&self, floor: Time) -> Option<Time> {
        let time = |h, m, s| Time::new(h, m, s, 0).ok();
        for &h in self.hours.iter().filter(|&&h| h >= floor.hour()) {
            if h > floor.hour() {
                return time(h, self.minutes[0], self.seconds[0]);
            }
            for &m in self.minutes.iter().filter(|&&m| m >= floor.minute()) {
                if m > floor.minute() {
                    return time(h, m, self.seconds[0]);
                }
                if let Some(&s) = self.seconds.iter().find(|&&s| s >= floor.second()) {
                    return time(h, m, s);
                }
            }
        }
        None
    }
}

impl FromStr for Slot {
    type Err = SlotError;

    fn from_str(spec: &str) -> Result<Slot, SlotError> {
        Slot::parse(spec)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

fn cron_parser() -> CronParser {
    // Seconds optional (5 or 6 fields), never a year: the SPEC's two cron forms and no more.
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// `HH:MM`, strictly: two digits each, 00-23 and 00-59. A lenient reading of "9:7" could mean
/// 09:07 or 09:70; asking for "09:07" costs the user a keystroke and removes the doubt.
fn parse_time(spec: &str, time: &str) -> Result<(u8, u8), SlotError> {
    let two_digits = |s: &str| {
        (s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<u8>().ok())
    };
    let Some((h, m)) = time.split_once(':') else {
        return Err(SlotError::new(format!(
            "slot {spec:?}: {time:?} is not a time of day; write it as HH:MM, e.g. \"09:30\""
        )));
    };
    match (two_digits(h).flatten(), two_digits(m).flatten()) {
        (Some(hour), _) if hour > 23 => Err(SlotError::new(format!(
            "slot {spec:?}: hour {hour} is out of range 00-23 (midnight is \"00:00\")"
        ))),
        (_, Some(minute)) if minute > 59 => Err(SlotError::new(format!(
            "slot {spec:?}: minute {minute} is out of range 00-59"
        ))),
        (Some(hour), Some(minute)) => Ok((hour, minute)),
        _ => {
            let hint = match (h.parse::<u8>(), m.parse::<u8>()) {
                (Ok(hour), Ok(minute))
                    if hour < 24 && minute < 60 && h.len() <= 2 && m.len() <= 2 =>
                {
                    format!(", e.g. \"{hour:02}:{minute:02}\"")
                }
                _ => String::new(),
            };
            Err(SlotError::new(format!(
                "slot {spec:?}: {time:?} is not a time of day; \
                 write HH:MM with two digits each{hint}"
            )))
        }
    }
}

const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A day name, a range or a comma list (`Mon`, `Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri`), into a
/// cron day-of-week field (`1,2,3,4,5`, 0 = Sunday). Ranges wrap around the week, so
/// `Fri-Mon` is Friday to Monday, as a reader would take it.
fn parse_days(spec: &str, days: &str) -> Result<String, SlotError> {
    let day = |name: &str| -> Result<usize, SlotError> {
        DAY_NAMES
            .iter()
            .position(|d| d.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                SlotError::new(format!(
                    "slot {spec:?}: {name:?} is not a day; days are written Mon, Tue, Wed, Thu, \
                     Fri, Sat, Sun, as one day, a range (\"Mon-Fri\") or a list (\"Sat,Sun\")"
                ))
            })
    };
    let mut set = [false; 7];
    for part in days.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (day(first)?, day(last)?);
                let mut d = first;
                loop {
                    set[d] = true;
                    if d == last {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => set[day(part)?] = true,
        }
    }
    Ok((0..7)
        .filter(|&d| set[d])
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(","))
}

/// Checks each cron field on its own (the others as `*`), so the error names the field at
/// fault instead of croner's field-less message.
fn check_cron_fields(spec: &str, fields: &[&str]) -> Result<(), SlotError> {
    const NAMES: [&str; 6] = [
        "second",
        "minute",
        "hour",
        "day-of-month",
        "month",
        "day-of-week",
    ];
    let names = &NAMES[6 - fields.len()..];
    let parser = cron_parser();
    for (i, field) in fields.iter().enumerate() {
        let alone: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { *field } else { "*" })
            .collect();
        if let Err(error) = parser.parse(&alone.join(" ")) {
            return Err(SlotError::new(format!(
                "slot {spec:?}: the {} field {field:?} is invalid ({error})",
                names[i]
            )));
        }
    }
    Ok(())
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

    /// The first instant strictly after `after` at which a slot fires in `tz`, or `None` if
    /// none fires within about five years.
    ///
    /// Works on civil time: each slot yields its first civil date-time after `after`'s wall
    /// time, the earliest one wins, and [`day::resolve_local`] maps it to an instant (a time
    /// in a gap → the end of the gap; a repeated time → its first occurrence). Resolution is
    /// monotonic in civil time, so the earliest civil time gives the earliest instant, slots
    /// naming the same instant fire once, and a wall-clock time never fires twice.
    pub fn next_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        if self.slots.is_empty() {
            return None;
        }
        let mut from = first_candidate(after, tz)?;
        let until = from.date().checked_add(SEARCH_HORIZON_DAYS.days()).ok()?;
        // `first_candidate` makes the first answer the right one; the loop is a safety net
        // that keeps the result strictly after `after` whatever the zone does. It ends
        // because `from` grows and `next_civil` stops at `until`.
        loop {
            let civil = self
                .slots
                .iter()
                .filter_map(|slot| slot.next_civil(from, until))
                .min()?;
            debug_assert!(civil >= from, "next_civil went back: {civil} < {from}");
            let t = day::resolve_local(civil, tz)?;
            if t > after {
                return Some(t);
            }
            from = civil.checked_add(1.second()).ok()?;
        }
    }

    /// Every instant in `(from, to]` at which a slot fires, in order, each once.
    pub fn fires_between(&self, from: Timestamp, to: Timestamp, tz: &TimeZone) -> Vec<Timestamp> {
        let mut fires = Vec::new();
        let mut t = from;
        while let Some(next) = self.next_after(t, tz).filter(|&next| next <= to) {
            fires.push(next);
            t = next;
        }
        fires
    }
}

/// The earliest civil time that can name an instant after `after`.
///
/// Civil times up to `after`'s own wall time resolve to `after` or earlier, so the search
/// starts at the next whole second. In the second pass through a repeated hour, every wall
/// time left in that hour resolves to its first pass, already behind us: the search starts
/// where the repetition ends.
fn first_candidate(after: Timestamp, tz: &TimeZone) -> Option<DateTime> {
    let local = tz.to_datetime(after);
    let mut from = local
        .with()
        .subsec_nanosecond(0)
        .build()
        .ok()?
        .checked_add(1.second())
        .ok()?;
    if day::is_repeated_wall_time(after, tz)
        && let AmbiguousOffset::Fold { before, .. } = tz.to_ambiguous_timestamp(local).offset()
        && let Some(transition) = after
            .checked_add(1.nanosecond())
            .ok()
            .and_then(|t| tz.preceding(t).next())
    {
        from = from.max(before.to_datetime(transition.timestamp()));
    }
    Some(from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn tz(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn schedule(specs: &[&str]) -> Schedule {
        Schedule::new(specs.iter().map(|s| Slot::parse(s).unwrap()).collect())
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Local wall times with offsets, for readable assertions.
    fn local(fires: &[Timestamp], tz: &TimeZone) -> Vec<String> {
        fires
            .iter()
            .map(|&t| {
                t.to_zoned(tz.clone())
                    .strftime("%F %H:%M:%S%:z")
                    .to_string()
            })
            .collect()
    }

    /// Regression for tokio-cron-scheduler #87 (DEPENDENCIES.md): a 09:00 Europe/Berlin slot
    /// must stay at 09:00 local time after the spring and the autumn change, not drift by the
    /// offset it had when it was created.
    #[test]
    fn berlin_0900_keeps_its_local_time_across_both_dst_changes() {
        let berlin = tz("Europe/Berlin");
        let s = schedule(&["09:00"]);
        // Spring: 2027-03-28 02:00 CET -> 03:00 CEST.
        let spring = s.fires_between(
            ts("2027-03-26T00:00:00Z"),
            ts("2027-03-30T00:00:00Z"),
            &berlin,
        );
        assert_eq!(
            spring.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            [
                "2027-03-26T08:00:00Z",
                "2027-03-27T08:00:00Z",
                "2027-03-28T07:00:00Z",
                "2027-03-29T07:00:00Z"
            ]
        );
        // Autumn: 2027-10-31 03:00 CEST -> 02:00 CET.
        let autumn = s.fires_between(
            ts("2027-10-29T00:00:00Z"),
            ts("2027-11-02T00:00:00Z"),
            &berlin,
        );
        assert_eq!(
            autumn.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
            [
                "2027-10-29T07:00:00Z",
                "2027-10-30T07:00:00Z",
                "2027-10-31T08:00:00Z",
                "2027-11-01T08:00:00Z"
            ]
        );
        // A whole year, stepping one fire at a time as the daemon does: always 09:00 local.
        let year = s.fires_between(
            ts("2027-01-01T00:00:00Z"),
            ts("2028-01-01T00:00:00Z"),
            &berlin,
        );
        assert_eq!(year.len(), 365);
        assert!(
            year.iter()
                .all(|&t| berlin.to_datetime(t).time() == Time::constant(9, 0, 0, 0))
        );
    }

    #[test]
    fn new_york_spring_forward_moves_the_0230_slot_to_0300_edt() {
        let ny = tz("America/New_York");
        let s = schedule(&["01:30", "02:30", "10:00", "16:00"]);
        let fires = s.fires_between(
            ts("2027-03-13T00:00:00-05:00"),
            ts("2027-03-15T12:00:00-04:00"),
            &ny,
        );
        assert_eq!(
            local(&fires, &ny),
            [
                "2027-03-13 01:30:00-05:00",
                "2027-03-13 02:30:00-05:00",
                "2027-03-13 10:00:00-05:00",
                "2027-03-13 16:00:00-05:00",
                "2027-03-14 01:30:00-05:00",
                "2027-03-14 03:00:00-04:00",
                "2027-03-14 10:00:00-04:00",
                "2027-03-14 16:00:00-04:00",
                "2027-03-15 01:30:00-04:00",
                "2027-03-15 02:30:00-04:00",
                "2027-03-15 10:00:00-04:00",
            ]
        );
        assert_eq!(fires[5], ts("2027-03-14T07:00:00Z"));
    }

    #[test]
    fn new_york_fall_back_fires_0130_once_at_its_first_occurrence() {
        let ny = tz("America/New_York");
        let s = schedule(&["01:30", "02:30", "10:00", "16:00"]);
        let fires = s.fires_between(ts("2027-11-06T20:00:00Z"), ts("2027-11-07T16:00:00Z"), &ny);
        assert_eq!(
            local(&fires, &ny),
            [
                "2027-11-07 01:30:00-04:00",
                "2027-11-07 02:30:00-05:00",
                "2027-11-07 10:00:00-05:00",
            ]
        );
        // Asked from inside the second pass of the repeated hour (01:10 EST), the 01:30 slot
        // has already fired (at 01:30 EDT): the next fire is 02:30 EST.
        assert_eq!(
            s.next_after(ts("2027-11-07T06:10:00Z"), &ny),
            Some(ts("2027-11-07T07:30:00Z"))
        );
    }

    /// croner fires patterns with a wildcard or a list in a time field on both passes of a
    /// repeated hour; the SPEC says a wall-clock time fires once.
    #[test]
    fn wildcard_crons_fire_each_wall_time_once_and_collapse_a_gap() {
        let ny = tz("America/New_York");
        let hourly = schedule(&["0 * * * *"]);
        let fires =
            hourly.fires_between(ts("2027-11-07T04:00:00Z"), ts("2027-11-07T09:00:00Z"), &ny);
        assert_eq!(
            local(&fires, &ny),
            [
                "2027-11-07 01:00:00-04:00",
                "2027-11-07 02:00:00-05:00",
                "2027-11-07 03:00:00-05:00",
                "2027-11-07 04:00:00-05:00",
            ]
        );
        let list = schedule(&["30 1,13 * * *"]);
        let fires = list.fires_between(ts("2027-11-07T04:00:00Z"), ts("2027-11-07T20:00:00Z"), &ny);
        assert_eq!(
            local(&fires, &ny),
            ["2027-11-07 01:30:00-04:00", "2027-11-07 13:30:00-05:00"]
        );
        let half_hourly = schedule(&["*/30 * * * *"]);
        let fires =
            half_hourly.fires_between(ts("2027-03-14T06:00:00Z"), ts("2027-03-14T07:45:00Z"), &ny);
        assert_eq!(
            local(&fires, &ny),
            [
                "2027-03-14 01:30:00-05:00",
                "2027-03-14 03:00:00-04:00",
                "2027-03-14 03:30:00-04:00",
            ]
        );
        // From the second pass of the fold, a 20-minute cron resumes at 02:00 EST.
        let every20 = schedule(&["*/20 * * * *"]);
        assert_eq!(
            every20.next_after(ts("2027-11-07T06:10:00Z"), &ny),
            Some(ts("2027-11-07T07:00:00Z"))
        );
    }

    #[test]
    fn slots_naming_the_same_instant_fire_once() {
        let ny = tz("America/New_York");
        let s = schedule(&["02:00", "02:30", "03:00", "0 0 3 * * *"]);
        let fires = s.fires_between(ts("2027-03-14T05:00:00Z"), ts("2027-03-14T12:00:00Z"), &ny);
        assert_eq!(fires, [ts("2027-03-14T07:00:00Z")]);
    }

    #[test]
    fn lord_howe_shifts_by_thirty_minutes() {
        let lh = tz("Australia/Lord_Howe");
        let s = schedule(&["01:45", "02:15"]);
        // 2026-10-04 02:00 +10:30 -> 02:30 +11:00: 02:15 is skipped and fires at 02:30.
        let spring = s.fires_between(ts("2026-10-03T12:00:00Z"), ts("2026-10-04T12:00:00Z"), &lh);
        assert_eq!(
            local(&spring, &lh),
            ["2026-10-04 01:45:00+10:30", "2026-10-04 02:30:00+11:00"]
        );
        // 2027-04-04 02:00 +11:00 -> 01:30 +10:30: 01:45 happens twice and fires once.
        let autumn = s.fires_between(ts("2027-04-03T12:00:00Z"), ts("2027-04-04T12:00:00Z"), &lh);
        assert_eq!(
            local(&autumn, &lh),
            ["2027-04-04 01:45:00+11:00", "2027-04-04 02:15:00+10:30"]
        );
    }

    #[test]
    fn kolkata_has_no_dst_and_a_half_hour_offset() {
        let kolkata = tz("Asia/Kolkata");
        let s = schedule(&["09:30"]);
        let fires = s.fires_between(
            ts("2027-01-01T00:00:00Z"),
            ts("2028-01-01T00:00:00Z"),
            &kolkata,
        );
        assert_eq!(fires.len(), 365);
        assert!(fires.iter().all(|t| t.to_string().ends_with("T04:00:00Z")));
    }

    #[test]
    fn chatham_shifts_at_quarter_to_three() {
        let chatham = tz("Pacific/Chatham");
        let s = schedule(&["03:00"]);
        // 2026-09-27 02:45 +12:45 -> 03:45 +13:45: 03:00 fires at 03:45.
        let spring = s.fires_between(
            ts("2026-09-25T00:00:00Z"),
            ts("2026-09-27T12:00:00Z"),
            &chatham,
        );
        assert_eq!(
            local(&spring, &chatham),
            ["2026-09-26 03:00:00+12:45", "2026-09-27 03:45:00+13:45"]
        );
        // 2027-04-04 03:45 +13:45 -> 02:45 +12:45: 03:00 fires once, the first time.
        let autumn = s.fires_between(
            ts("2027-04-03T00:00:00Z"),
            ts("2027-04-04T12:00:00Z"),
            &chatham,
        );
        assert_eq!(local(&autumn, &chatham), ["2027-04-04 03:00:00+13:45"]);
    }

    #[test]
    fn london_gap_and_fold() {
        let london = tz("Europe/London");
        let s = schedule(&["01:30"]);
        // 2027-03-28 01:00 GMT -> 02:00 BST.
        assert_eq!(
            s.next_after(ts("2027-03-27T12:00:00Z"), &london),
            Some(ts("2027-03-28T01:00:00Z"))
        );
        // 2027-10-31 02:00 BST -> 01:00 GMT: 01:30 BST only.
        let fires = s.fires_between(
            ts("2027-10-30T12:00:00Z"),
            ts("2027-11-01T00:00:00Z"),
            &london,
        );
        assert_eq!(fires, [ts("2027-10-31T00:30:00Z")]);
    }

    #[test]
    fn day_forms_pick_their_days() {
        let utc = TimeZone::UTC;
        // 2027-03-13 is a Saturday.
        let weekdays = schedule(&["mon-FRI 09:30"]);
        assert_eq!(
            weekdays.next_after(ts("2027-03-13T00:00:00Z"), &utc),
            Some(ts("2027-03-15T09:30:00Z"))
        );
        let weekend = schedule(&["Sat,Sun 11:00"]);
        let fires =
            weekend.fires_between(ts("2027-03-13T00:00:00Z"), ts("2027-03-21T00:00:00Z"), &utc);
        assert_eq!(
            fires,
            [
                ts("2027-03-13T11:00:00Z"),
                ts("2027-03-14T11:00:00Z"),
                ts("2027-03-20T11:00:00Z")
            ]
        );
        let wrapped = schedule(&["Fri-Mon 08:00"]);
        let days: Vec<_> = wrapped
            .fires_between(ts("2027-03-15T12:00:00Z"), ts("2027-03-23T00:00:00Z"), &utc)
            .iter()
            .map(|t| utc.to_datetime(*t).weekday().to_sunday_zero_offset())
            .collect();
        assert_eq!(days, [5, 6, 0, 1]);
        let cron5 = schedule(&["30 9 * * 1-5"]);
        let cron6 = schedule(&["0 30 9 * * Mon-Fri"]);
        let from = ts("2027-03-13T00:00:00Z");
        let to = ts("2027-04-13T00:00:00Z");
        assert_eq!(
            cron5.fires_between(from, to, &utc),
            weekdays.fires_between(from, to, &utc)
        );
        assert_eq!(
            cron6.fires_between(from, to, &utc),
            weekdays.fires_between(from, to, &utc)
        );
        let seconds = schedule(&["15 30 9 * * *"]);
        assert_eq!(
            seconds.next_after(from, &utc),
            Some(ts("2027-03-13T09:30:15Z"))
        );
    }

    #[test]
    fn next_after_is_strictly_after_even_within_a_second() {
        let utc = TimeZone::UTC;
        let s = schedule(&["09:00"]);
        assert_eq!(
            s.next_after(ts("2027-03-13T09:00:00Z"), &utc),
            Some(ts("2027-03-14T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2027-03-13T08:59:59.999Z"), &utc),
            Some(ts("2027-03-13T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2027-03-13T09:00:00.5Z"), &utc),
            Some(ts("2027-03-14T09:00:00Z"))
        );
        assert_eq!(
            Schedule::default().next_after(ts("2027-03-13T09:00:00Z"), &utc),
            None
        );
    }

    #[test]
    fn impossible_and_rare_patterns_terminate() {
        let utc = TimeZone::UTC;
        let started = std::time::Instant::now();
        assert_eq!(
            schedule(&["0 0 30 2 *"]).next_after(ts("2027-01-01T00:00:00Z"), &utc),
            None
        );
        assert_eq!(
            schedule(&["0 0 31 4 *"]).next_after(ts("2027-01-01T00:00:00Z"), &utc),
            None
        );
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
        // A leap-day slot is four years away from just after one.
        assert_eq!(
            schedule(&["0 12 29 2 *"]).next_after(ts("2028-03-01T00:00:00Z"), &utc),
            Some(ts("2032-02-29T12:00:00Z"))
        );
    }

    #[test]
    fn accepted_forms() {
        for spec in [
            "10:00",
            "00:00",
            "23:59",
            " 10:00 ",
            "Mon 10:00",
            "mon-fri 09:30",
            "Sat,Sun 11:00",
            "Mon,Wed-Fri 07:05",
            "30 9 * * 1-5",
            "0 30 9 * * Mon-Fri",
            "*/15 8-18 * * *",
            "0 12 L * *",
        ] {
            assert!(Slot::parse(spec).is_ok(), "{spec:?} should parse");
        }
        assert_eq!(Slot::parse(" 10:00 ").unwrap().spec(), "10:00");
    }

    #[test]
    fn parse_errors_say_what_is_wrong_and_show_the_forms() {
        let cases = [
            ("", "is empty"),
            ("   ", "is empty"),
            ("24:00", "hour 24 is out of range"),
            ("25:00", "hour 25 is out of range"),
            ("12:60", "minute 60 is out of range"),
            ("9:7", "e.g. \"09:07\""),
            ("9:30", "e.g. \"09:30\""),
            ("09:3x", "not a time of day"),
            ("0930", "neither a time of day"),
            ("@daily", "neither a time of day"),
            ("Monday 10:00", "\"Monday\" is not a day"),
            ("Mon-Sund 10:00", "\"Sund\" is not a day"),
            ("Mon,,Tue 10:00", "\"\" is not a day"),
            ("Mon- 10:00", "\"\" is not a day"),
            ("1-5 10:00", "\"1\" is not a day"),
            ("Mon 24:00", "hour 24"),
            ("10:00 Mon", "the days come first"),
            ("Mon - Fri 09:30", "without spaces"),
            ("1 2 3", "has 3 fields"),
            ("0 0 0 * * * 2025", "has 7 fields"),
            ("0 0 0 * * * * *", "has 8 fields"),
            ("61 9 * * *", "minute field \"61\""),
            ("0 25 * * *", "hour field \"25\""),
            ("0 9 * * 8", "day-of-week field \"8\""),
            ("0 9 32 * *", "day-of-month field \"32\""),
            ("0 9 * 13 *", "month field \"13\""),
            ("60 30 9 * * *", "second field \"60\""),
            ("a b c d e", "minute field \"a\""),
        ];
        for (spec, expected) in cases {
            let error = Slot::parse(spec).expect_err(spec);
            assert!(
                error.message.contains(expected),
                "{spec:?}: {:?} lacks {expected:?}",
                error.message
            );
            assert!(
                error.message.contains(&format!("{spec:?}")),
                "{spec:?}: message {:?} does not quote the spec",
                error.message
            );
            assert!(error.help.contains("\"Mon-Fri 09:30\""), "{}", error.help);
            assert!(
                error.help.contains("\"0 30 9 * * Mon-Fri\""),
                "{}",
                error.help
            );
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const ZONES: [&str; 6] = [
            "America/New_York",
            "Europe/London",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
            "Pacific/Chatham",
            "Europe/Berlin",
        ];

        /// Times biased to the small hours, where DST changes happen.
        fn hour() -> impl Strategy<Value = u8> {
            prop_oneof![3 => 0u8..4, 1 => 0u8..24]
        }

        fn minute() -> impl Strategy<Value = u8> {
            prop_oneof![3 => prop::sample::select(vec![0u8, 15, 30, 45]), 1 => 0u8..60]
        }

        fn days() -> impl Strategy<Value = &'static str> {
            prop::sample::select(vec!["Mon-Fri", "Sat,Sun", "Sun", "Fri-Mon", "Mon,Wed,Fri"])
        }

        fn spec() -> impl Strategy<Value = String> {
            prop_oneof![
                (hour(), minute()).prop_map(|(h, m)| format!("{h:02}:{m:02}")),
                (days(), hour(), minute()).prop_map(|(d, h, m)| format!("{d} {h:02}:{m:02}")),
                (hour(), minute()).prop_map(|(h, m)| format!("{m} {h} * * *")),
                (hour(), minute(), prop::sample::select(vec![0u8, 30]))
                    .prop_map(|(h, m, s)| format!("{s} {m} {h} * * *")),
                prop::sample::select(vec![
                    "0 * * * *",
                    "*/30 * * * *",
                    "*/20 0-4 * * *",
                    "15,45 1,2,3 * * *",
                    "30 */2 * * *",
                    "0 */30 1-3 * * *",
                    "*/30 15,45 1,2 * * *",
                    "0,30 59 0,1 * * *",
                ])
                .prop_map(String::from),
            ]
        }

        /// The expected fires in `(from, to]`, found without the civil-time search: scan the
        /// instants every 30 s (every slot time here is a multiple of 30 s, and so are the
        /// zones' transitions) and apply the SPEC's rules to each instant directly: a slot's
        /// wall time on its first pass, or the end of a gap that swallowed a slot time.
        fn oracle(s: &Schedule, tz: &TimeZone, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
            let mut expected: Vec<Timestamp> = tz
                .following(from)
                .map(|transition| transition.timestamp())
                .take_while(|&t| t <= to)
                .filter(|&t| gap_ending_at(tz, t).is_some_and(|(a, b)| gap_has_slot(s, a, b)))
                .collect();
            let mut t =
                Timestamp::from_second(from.as_second() - from.as_second().rem_euclid(30)).unwrap();
            // The offset only changes at a transition: look it up once per stretch between
            // transitions rather than at every step, which keeps this test fast.
            let mut offset = tz.to_offset(t);
            let mut next_transition = tz.following(t).next().map(|tr| tr.timestamp());
            while t <= to {
                if next_transition.is_some_and(|tr| tr <= t) {
                    offset = tz.to_offset(t);
                    next_transition = tz.following(t).next().map(|tr| tr.timestamp());
                }
                let wall = offset.to_datetime(t);
                if t > from
                    && s.slots().iter().any(|slot| slot.matches(wall))
                    && tz.to_ambiguous_timestamp(wall).earlier().unwrap() == t
                {
                    expected.push(t);
                }
                t = t.checked_add(jiff::SignedDuration::from_secs(30)).unwrap();
            }
            expected.sort();
            expected.dedup();
            expected
        }

        /// The civil range `[start, end)` skipped by a spring-forward transition at `t`.
        fn gap_ending_at(tz: &TimeZone, t: Timestamp) -> Option<(DateTime, DateTime)> {
            let before = tz.to_offset(t.checked_sub(1.nanosecond()).unwrap());
            let after = tz.to_offset(t);
            (after > before).then(|| (before.to_datetime(t), after.to_datetime(t)))
        }

        fn gap_has_slot(s: &Schedule, start: DateTime, end: DateTime) -> bool {
            let mut c = start;
            while c < end {
                if s.slots().iter().any(|slot| slot.matches(c)) {
                    return true;
                }
                c = c.checked_add(1.second()).unwrap();
            }
            false
        }

        fn setup() -> impl Strategy<Value = (Vec<String>, &'static str, usize, i64)> {
            (
                prop::collection::vec(spec(), 1..4),
                prop::sample::select(ZONES.to_vec()),
                0usize..6,
                -36 * 3600i64..12 * 3600,
            )
        }

        /// A start near the `which`-th transition of the zone from 2026 on (or, for a zone
        /// without DST, near an arbitrary date), shifted by `shift` seconds.
        fn start(tz: &TimeZone, which: usize, shift: i64) -> Timestamp {
            let base = ts("2026-01-01T00:00:00Z");
            let anchor = tz
                .following(base)
                .nth(which)
                .map(|tr| tr.timestamp())
                .unwrap_or(ts("2026-03-29T01:00:00Z"));
            anchor
                .checked_add(jiff::SignedDuration::from_secs(shift))
                .unwrap()
        }

        /// Probes of `next_after` are this far apart, from a random phase, so that across the
        /// cases every position relative to a transition gets asked about.
        const PROBE_STEP_SECONDS: i64 = 607;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn fires_follow_the_dst_rules(
                (specs, zone, which, shift) in setup(),
                probe_phase in 0..PROBE_STEP_SECONDS,
            ) {
                let s = Schedule::new(specs.iter().map(|x| Slot::parse(x).unwrap()).collect());
                let tz = tz(zone);
                let from = start(&tz, which, shift);
                let to = from.checked_add(jiff::SignedDuration::from_hours(48)).unwrap();

                let mut fires = Vec::new();
                let mut t = from;
                while let Some(next) = s.next_after(t, &tz) {
                    prop_assert!(next > t, "{next} is not after {t}");
                    if next > to {
                        break;
                    }
                    fires.push(next);
                    t = next;
                }

                let mut walls = HashSet::new();
                for &fire in &fires {
                    let wall = tz.to_datetime(fire);
                    let on_slot = s.slots().iter().any(|slot| slot.matches(wall));
                    let after_gap = gap_ending_at(&tz, fire)
                        .is_some_and(|(a, b)| gap_has_slot(&s, a, b));
                    prop_assert!(
                        on_slot || after_gap,
                        "{fire} ({wall}) is neither a slot time nor the end of a gap holding one"
                    );
                    let first_pass = tz.to_ambiguous_timestamp(wall).earlier().unwrap();
                    prop_assert_eq!(fire, first_pass, "{} is the second pass of {}", fire, wall);
                    prop_assert!(walls.insert(wall), "wall time {wall} fired twice");
                }
                prop_assert_eq!(&fires, &s.fires_between(from, to, &tz));
                let expected = oracle(&s, &tz, from, to);
                prop_assert_eq!(&fires, &expected);

                // Asked from anywhere (inside a repeated hour too), the answer is the first
                // expected fire after that instant.
                let step = jiff::SignedDuration::from_secs(PROBE_STEP_SECONDS);
                let mut probe = from + jiff::SignedDuration::from_secs(probe_phase);
                while let Some(&last) = expected.last()
                    && probe < last
                {
                    let want = expected.iter().copied().find(|&f| f > probe);
                    prop_assert_eq!(s.next_after(probe, &tz), want, "asked after {}", probe);
                    probe += step;
                }
            }
        }
    }
}
