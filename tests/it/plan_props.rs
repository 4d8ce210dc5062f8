//! Properties of the plan (the daemon's decisions replayed) across DST changes, in zones
//! with odd rules: America/New_York, Europe/London, Australia/Lord_Howe (30-minute shift),
//! Asia/Kolkata (no DST, +05:30), Pacific/Chatham (+12:45/+13:45).
//!
//! Whatever the slots, caps, gaps and appointments, the plan never exceeds the cap on a
//! local day, never breaks the gap, publishes slot posts only at slot times (or the end of
//! the DST gap a slot falls in), never fires a repeated wall-clock slot twice, and never
//! lets a slot post crowd out an appointment.

use cadenced::cadence::day::{local_day, resolve_local};
use cadenced::cadence::policy::Pending;
use cadenced::cadence::simulate::{Fate, SimChannel, simulate};
use cadenced::cadence::{ChannelRules, Schedule, Slot};
use jiff::civil::date;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

const ZONES: [&str; 6] = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Europe/Madrid",
];

#[derive(Debug, Clone)]
struct Case {
    zone: &'static str,
    /// Which DST change of 2027 to start near (0 or 1), and how many minutes before it.
    transition: usize,
    lead_minutes: i64,
    slots: Vec<(i8, i8)>,
    max_per_day: u32,
    gap_minutes: i64,
    slot_posts: usize,
    /// Minutes after the start, and an optional expiry that many minutes after `at`.
    appointments: Vec<(i64, Option<i64>)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..ZONES.len(),
        0..2usize,
        0..(48 * 60i64),
        prop::collection::vec((0..24i8, prop::sample::select(vec![0i8, 15, 30, 45])), 1..5),
        1..=3u32,
        prop::sample::select(vec![0i64, 30, 60, 180, 300]),
        0..8usize,
        prop::collection::vec((0..(72 * 60i64), prop::option::of(0..600i64)), 0..4),
    )
        .prop_map(
            |(
                z,
                transition,
                lead_minutes,
                slots,
                max_per_day,
                gap_minutes,
                slot_posts,
                appointments,
            )| Case {
                zone: ZONES[z],
                transition,
                lead_minutes,
                slots,
                max_per_day,
                gap_minutes,
                slot_posts,
                appointments,
            },
        )
}

fn start_of(case: &Case, tz: &TimeZone) -> Timestamp {
    let year_start = resolve_local(date(2027, 1, 1).at(0, 0, 0, 0), tz).expect("2027 is in range");
    let anchor = tz
        .following(year_start)
        .nth(case.transition)
        .map(|t| t.timestamp())
        .unwrap_or(year_start + SignedDuration::from_hours(24 * 180));
    anchor - SignedDuration::from_mins(case.lead_minutes)
}

struct Outcome {
    tz: TimeZone,
    rules: ChannelRules,
    from: Timestamp,
    until: Timestamp,
    pending: Vec<Pending>,
    /// (id, instant, had `at`)
    published: Vec<(String, Timestamp, bool)>,
}

fn run(case: &Case) -> Outcome {
    let tz = TimeZone::get(case.zone).unwrap();
    let slots = case
        .slots
        .iter()
        .map(|(h, m)| Slot::parse(&format!("{h:02}:{m:02}")).unwrap())
        .collect();
    let mut rules = ChannelRules::new(tz.clone(), Schedule::new(slots));
    rules.max_per_day = case.max_per_day;
    rules.min_gap = SignedDuration::from_mins(case.gap_minutes);
    let from = start_of(case, &tz);
    let until = from + SignedDuration::from_hours(72);
    let mut pending: Vec<Pending> = (0..case.slot_posts)
        .map(|i| Pending::new(format!("c/slot-{i:02}.md")))
        .collect();
    for (i, (offset, expiry)) in case.appointments.iter().enumerate() {
        let at = from + SignedDuration::from_mins(*offset);
        let mut p = Pending::new(format!("c/appt-{i:02}.md"));
        p.at = Some(at);
        p.expires = expiry.map(|e| at + SignedDuration::from_mins(e + 1));
        pending.push(p);
    }
    let ch = SimChannel {
        name: "c".into(),
        rules: rules.clone(),
        history: vec![],
        pending: pending.clone(),
        last_evaluated: None,
    };
    let published = simulate(&[ch], from, until)
        .into_iter()
        .filter_map(|p| match p.fate {
            Fate::Published(t) => {
                let had_at = pending.iter().any(|q| q.id == p.id && q.at.is_some());
                Some((p.id, t, had_at))
            }
            _ => None,
        })
        .collect();
    Outcome {
        tz,
        rules,
        from,
        until,
        pending,
        published,
    }
}

/// Whether `t` is when one of the slots fires on `t`'s local date: the slot's wall time,
/// or the end of the DST gap the slot's wall time falls in.
fn is_slot_instant(case: &Case, tz: &TimeZone, t: Timestamp) -> bool {
    let d = tz.to_datetime(t).date();
    case.slots
        .iter()
        .any(|(h, m)| resolve_local(d.at(*h, *m, 0, 0), tz) == Some(t))
}

fn can_publish(o: &Outcome, before: &[Timestamp], at: Timestamp) -> bool {
    let day = local_day(at, &o.tz);
    let today = before.iter().filter(|t| day.contains(**t)).count();
    today < o.rules.max_per_day as usize
        && before
            .iter()
            .all(|t| at.duration_since(*t).abs() >= o.rules.min_gap)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_plan_keeps_every_rule(case in case()) {
        let o = run(&case);
        let mut times: Vec<Timestamp> = o.published.iter().map(|(_, t, _)| *t).collect();
        times.sort();

        // Cap per local day.
        for t in &times {
            let day = local_day(*t, &o.tz);
            let n = times.iter().filter(|u| day.contains(**u)).count();
            prop_assert!(n <= case.max_per_day as usize, "{n} posts on {}", day.date);
        }
        // Minimum gap.
        for w in times.windows(2) {
            prop_assert!(w[1].duration_since(w[0]) >= o.rules.min_gap, "{} then {}", w[0], w[1]);
        }
        for (id, t, had_at) in &o.published {
            prop_assert!(*t >= o.from && *t < o.until);
            // A real local time, never one inside a gap.
            let dt = o.tz.to_datetime(*t);
            let in_gap = matches!(o.tz.to_ambiguous_timestamp(dt).offset(), AmbiguousOffset::Gap { .. });
            prop_assert!(!in_gap, "{} maps to a local time inside a gap", t);
            let p = o.pending.iter().find(|p| &p.id == id).unwrap();
            let on_time_appointment = p.at.is_some_and(|at| *t >= at && t.duration_since(at) <= o.rules.catch_up);
            if !*had_at || !on_time_appointment {
                prop_assert!(is_slot_instant(&case, &o.tz, *t), "{id} at {} is not a slot time", dt);
            }
            if let Some(e) = p.expires {
                prop_assert!(*t < e, "{id} published after it expired");
            }
        }
        // A slot's wall-clock time never stands for two different instants: nothing fires
        // again in the second pass through a repeated fall-back hour. (Appointments are
        // exact instants and may legitimately fall in either pass.)
        let slot_times: Vec<Timestamp> = o
            .published
            .iter()
            .filter(|(id, t, _)| {
                let p = o.pending.iter().find(|p| &p.id == id).unwrap();
                p.at.is_none_or(|at| *t != at)
            })
            .map(|(_, t, _)| *t)
            .collect();
        for a in &slot_times {
            for b in &slot_times {
                if o.tz.to_datetime(*a) == o.tz.to_datetime(*b) {
                    prop_assert_eq!(a, b, "wall time {} used twice", o.tz.to_datetime(*a));
                }
            }
        }

        // No slot post crowds out an appointment.
        for p in o.pending.iter().filter(|p| p.at.is_some()) {
            let at = p.at.unwrap();
            if at >= o.until || p.expires.is_some_and(|e| e <= at) {
                continue;
            }
            let went_at = o.published.iter().find(|(id, _, _)| id == &p.id).map(|(_, t, _)| *t);
            if went_at == Some(at) {
                continue;
            }
            let day = local_day(at, &o.tz);
            let before: Vec<Timestamp> = o
                .published
                .iter()
                .filter(|(id, t, had_at)| *t <= at && id != &p.id && (*had_at || !day.contains(*t)))
                .map(|(_, t, _)| *t)
                .collect();
            prop_assert!(
                !can_publish(&o, &before, at),
                "appointment {} at {} was crowded out by a slot post",
                p.id,
                o.tz.to_datetime(at)
            );
        }
    }
}
