//! Durations as the config writes them: `"90s"`, `"15m"`, `"3h"`, `"30d"`, `"0s"`, and sums
//! such as `"1h30m"`. Pure parsing, no IO.
//!
//! Deliberately small: whole numbers with the units s, m, h and d only. No fractions, no
//! signs, no bare numbers — a bare `3` could mean seconds or hours, and a wrong guess about
//! a posting gap is exactly the kind of silent mistake the config must not allow. A day is
//! 24 hours of elapsed time here (the cadence rules measure gaps and windows in elapsed
//! time; local days are handled elsewhere).

use jiff::SignedDuration;

use crate::cadence::day::MAX_DURATION;

/// The accepted form, as errors show it.
pub const FORM: &str = "write a whole number and a unit (s, m, h or d), e.g. \"90s\", \"15m\", \"3h\", \"30d\", \"0s\" or \"1h30m\"";

/// Parses a config duration. The error says what is wrong and shows the accepted form.
pub fn parse_duration(s: &str) -> Result<SignedDuration, String> {
    parse(s).map_err(|why| format!("invalid duration \"{s}\": {why}; {FORM}"))
}

/// Like [`parse_duration`], but the error is only the reason, so a diagnostic can put
/// [`FORM`] into its help line.
pub(crate) fn parse(s: &str) -> Result<SignedDuration, String> {
    let input = s.trim();
    let bad = |why: &str| Err(why.to_string());
    if input.is_empty() {
        return bad("it is empty");
    }
    if input.starts_with('-') {
        return bad("durations cannot be negative");
    }
    let mut total = SignedDuration::ZERO;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return bad("expected a number");
        }
        let (number, after) = rest.split_at(digits);
        let Some(unit) = after.chars().next() else {
            return bad("the number has no unit");
        };
        let seconds_per_unit: i64 = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            '.' | ',' => return bad("only whole numbers are accepted"),
            _ => return bad(&format!("unknown unit `{unit}`")),
        };
        let part = number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds_per_unit))
            .and_then(|secs| total.checked_add(SignedDuration::from_secs(secs)));
        match part {
            Some(sum) => total = sum,
            None => return bad("it is too long"),
        }
        rest = &after[unit.len_utf8()..];
    }
    // Gaps, windows and time-outs are added to instants; a bound keeps every such sum
    // within the dates cadenced handles instead of overflowing (and panicking) later.
    if total > MAX_DURATION {
        return bad(&format!(
            "it is too long (at most {}d, 100 years)",
            MAX_DURATION.as_hours() / 24
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit_and_zero() {
        assert_eq!(parse_duration("90s"), Ok(SignedDuration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(SignedDuration::from_mins(15)));
        assert_eq!(parse_duration("3h"), Ok(SignedDuration::from_hours(3)));
        assert_eq!(parse_duration("30d"), Ok(SignedDuration::from_hours(720)));
        assert_eq!(parse_duration("0s"), Ok(SignedDuration::ZERO));
    }

    #[test]
    fn min_gap_of_999999999d_is_an_error_not_a_panic() {
        // Added to an instant, it overflowed jiff's range and panicked at the first wake.
        let err = parse_duration("999999999d").unwrap_err();
        assert!(err.contains("too long"), "{err}");
        assert_eq!(parse_duration("36500d"), Ok(MAX_DURATION));
    }

    #[test]
    fn accepts_combinations() {
        assert_eq!(parse_duration("1h30m"), Ok(SignedDuration::from_mins(90)));
        assert_eq!(
            parse_duration("1d2h3m4s"),
            Ok(SignedDuration::from_secs(86_400 + 7_200 + 180 + 4))
        );
    }

    #[test]
    fn negative_is_an_error_that_shows_the_form() {
        let err = parse_duration("-3h").unwrap_err();
        assert!(err.contains("cannot be negative"), "{err}");
        assert!(err.contains("\"1h30m\""), "{err}");
    }

    #[test]
    fn unitless_is_an_error_that_shows_the_form() {
        let err = parse_duration("90").unwrap_err();
        assert!(err.contains("no unit"), "{err}");
        assert!(err.contains("\"90s\""), "{err}");
    }

    #[test]
    fn other_mistakes_are_errors() {
        for (input, why) in [
            ("", "empty"),
            ("h", "expected a number"),
            ("1.5h", "whole numbers"),
            ("3 hours", "unknown unit ` `"),
            ("3w", "unknown unit `w`"),
            ("1h30", "no unit"),
            ("99999999999999999999d", "too long"),
            ("999999999d", "too long (at most 36500d"),
            ("36500d1s", "too long"),
        ] {
            let err = parse_duration(input).unwrap_err();
            assert!(err.contains(why), "{input:?}: {err}");
            assert!(
                err.starts_with(&format!("invalid duration \"{input}\"")),
                "{err}"
            );
        }
    }
}
