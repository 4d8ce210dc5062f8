//! The time rules of one channel (SPEC rules 1–4, `expires` and catch-up), as a pure function
//! of the rules, the log's history, the pending posts and `now`.
//!
//! The daemon calls [`decide`] whenever it wakes for a channel and [`next_wake`] to know when
//! to wake next; `cadenced plan` calls the same two functions with a simulated clock. Nothing
//! here reads a clock, a file or the database.
//!
//! Choices the SPEC leaves open, made here:
//! - A slot firing is one publishing opportunity: at most one slot post per slot.
//! - An appointment (`at`) goes at its time; if the cap or the gap stops it, it may still go
//!   as soon as they allow within `catch_up` of its time; after that it waits for the
//!   channel's slots like any other post (ahead of them, by queue order). This keeps late
//!   posts on the human cadence instead of firing at odd hours such as midnight.

use std::cmp::Ordering;

use jiff::Timestamp;
use jiff::civil::Date;

use super::ChannelRules;
use super::day::local_day;

/// A post waiting in a channel's queue, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// `<channel>/<file name>`.
    pub id: String,
    pub priority: i64,
    pub at: Option<Timestamp>,
    pub expires: Option<Timestamp>,
}

impl Pending {
    pub fn new(id: impl Into<String>) -> Self {
        Pending {
            id: id.into(),
            priority: 0,
            at: None,
            expires: None,
        }
    }

    fn is_expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// Due as an appointment right now: its time has come and is at most `catch_up` old.
    fn is_due_appointment(&self, rules: &ChannelRules, now: Timestamp) -> bool {
        self.at
            .is_some_and(|at| at <= now && now.duration_since(at) <= rules.catch_up)
    }

    /// An appointment still ahead.
    fn is_future_appointment(&self, now: Timestamp) -> bool {
        self.at.is_some_and(|at| at > now)
    }
}

/// SPEC queue order: priority (high first), then `at` (posts with one first), then the id in
/// byte order (so `001-…`, `002-…` go in that order).
pub fn queue_order(a: &Pending, b: &Pending) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| match (a.at, b.at) {
            (Some(x), Some(y)) => x.cmp(&y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        })
        .then_with(|| a.id.as_bytes().cmp(b.id.as_bytes()))
}

/// Why a post that could have gone out did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The channel is paused.
    Paused,
    /// The local day's cap is used up.
    DailyCap { date: Date, max: u32 },
    /// The last post was too recent.
    Gap { until: Timestamp },
    /// Publishing now would leave no room for this appointment later the same local day.
    YieldsTo { appointment: String, at: Timestamp },
    /// Another post was ahead in the queue at this slot.
    Queued,
}

impl Wait {
    /// Plain words for logs, `plan` and `status`, with times in the channel's zone `tz`,
    /// the zone named (e.g. "the minimum gap after the last post lasts until
    /// Sat 2026-11-28 01:56 CET").
    pub fn describe_in(&self, tz: &jiff::tz::TimeZone) -> String {
        use crate::cadence::day::show;
        match self {
            Wait::Paused => "the channel is paused (`paused = true`)".to_string(),
            Wait::DailyCap { date, max } => format!(
                "the daily cap of {max} post{} is used up for {}",
                if *max == 1 { "" } else { "s" },
                date.strftime("%a %Y-%m-%d")
            ),
            Wait::Gap { until } => format!(
                "the minimum gap after the last post lasts until {}",
                show(*until, tz)
            ),
            Wait::YieldsTo { appointment, at } => format!(
                "it waits for the appointment {appointment} at {}",
                show(*at, tz)
            ),
            Wait::Queued => "another post is ahead in the queue".to_string(),
        }
    }

    /// [`Wait::describe_in`] with times in UTC (named); where the channel is known, use
    /// `describe_in` with its zone.
    pub fn describe(&self) -> String {
        self.describe_in(&jiff::tz::TimeZone::UTC)
    }
}

/// What one evaluation of a channel decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// Publish these now, in this order.
    pub publish: Vec<String>,
    /// Past their `expires`: move them to `expired/`.
    pub expire: Vec<String>,
    /// Posts that had an opportunity now and did not take it, and why.
    pub deferred: Vec<(String, Wait)>,
    /// Whether a slot (on time, or caught up) was evaluated.
    pub slot_fired: bool,
}

/// Decides what a channel does at `now`.
///
/// `history` holds the instants of the channel's posts that count for the cap and the gap
/// (published, sending and unknown attempts), in any order. `last_evaluated` is the instant
/// of the channel's previous evaluation as recorded in the log (`None` on a first start:
/// nothing is caught up). Slots in `(last_evaluated, now]` have fired; if there are several
/// (downtime), they give one opportunity, and only if the latest is within `catch_up`.
pub fn decide(
    rules: &ChannelRules,
    history: &[Timestamp],
    pending: &[Pending],
    last_evaluated: Option<Timestamp>,
    now: Timestamp,
) -> Step {
    let mut step = Step::default();
    let mut live: Vec<&Pending> = Vec::with_capacity(pending.len());
    for p in pending {
        if p.is_expired(now) {
            step.expire.push(p.id.clone());
        } else {
            live.push(p);
        }
    }
    live.sort_by(|a, b| queue_order(a, b));

    step.slot_fired = match last_evaluated {
        None => false,
        Some(last) => {
            let window_start = last.max(now - rules.catch_up);
            window_start < now
                && rules
                    .slots
                    .next_after(window_start, &rules.timezone)
                    .is_some_and(|slot| slot <= now)
        }
    };

    let mut counted: Vec<Timestamp> = history.to_vec();

    // Appointments first: each due appointment is its own opportunity.
    for p in live.iter().filter(|p| p.is_due_appointment(rules, now)) {
        match blocked(rules, &counted, now) {
            None => {
                step.publish.push(p.id.clone());
                counted.push(now);
            }
            Some(wait) => step.deferred.push((p.id.clone(), wait)),
        }
    }

    if step.slot_fired {
        // Due appointments had their own opportunity above; the rest compete for the slot.
        let candidates: Vec<&Pending> = live
            .iter()
            .copied()
            .filter(|p| !p.is_future_appointment(now) && !p.is_due_appointment(rules, now))
            .collect();
        if let Some((first, rest)) = candidates.split_first() {
            let wait = blocked(rules, &counted, now)
                .or_else(|| yields_to_appointment(rules, &counted, &live, now));
            match wait {
                None => {
                    step.publish.push(first.id.clone());
                    counted.push(now);
                }
                Some(wait) => step.deferred.push((first.id.clone(), wait)),
            }
            step.deferred
                .extend(rest.iter().map(|p| (p.id.clone(), Wait::Queued)));
        }
    }
    step
}

/// Whether the cap, the gap or a pause stops a post at `now`.
pub fn blocked(rules: &ChannelRules, counted: &[Timestamp], now: Timestamp) -> Option<Wait> {
    if rules.paused {
        return Some(Wait::Paused);
    }
    let day = local_day(now, &rules.timezone);
    let today = counted.iter().filter(|t| day.contains(**t)).count();
    if today >= rules.max_per_day as usize {
        return Some(Wait::DailyCap {
            date: day.date,
            max: rules.max_per_day,
        });
    }
    // Elapsed time, in both directions: after a clock step back a logged post can lie ahead.
    let nearest = counted
        .iter()
        .filter(|t| now.duration_since(**t).abs() < rules.min_gap)
        .max();
    nearest.map(|t| Wait::Gap {
        until: *t + rules.min_gap,
    })
}

/// Slot posts yield to the day's appointments: publishing a slot post at `now` must leave
/// room (cap and gap) for every appointment due later the same local day.
fn yields_to_appointment(
    rules: &ChannelRules,
    counted: &[Timestamp],
    live: &[&Pending],
    now: Timestamp,
) -> Option<Wait> {
    let day = local_day(now, &rules.timezone);
    let mut later: Vec<(&Pending, Timestamp)> = live
        .iter()
        .filter_map(|p| Some((*p, p.at?)))
        .filter(|(p, at)| *at > now && *at < day.end && p.expires.is_none_or(|e| e > *at))
        .collect();
    if later.is_empty() {
        return None;
    }
    later.sort_by_key(|(_, at)| *at);
    let today = counted.iter().filter(|t| day.contains(**t)).count();
    let (first, first_at) = later[0];
    let wait = Wait::YieldsTo {
        appointment: first.id.clone(),
        at: first_at,
    };
    if today + 1 + later.len() > rules.max_per_day as usize
        || first_at.duration_since(now) < rules.min_gap
    {
        return Some(wait);
    }
    None
}

/// When the channel next needs an evaluation after `now`: its next slot, an appointment,
/// an expiry, or the end of a gap that holds back an appointment still within `catch_up`.
pub fn next_wake(
    rules: &ChannelRules,
    history: &[Timestamp],
    pending: &[Pending],
    now: Timestamp,
) -> Option<Timestamp> {
    let mut wake = rules.slots.next_after(now, &rules.timezone);
    let mut consider = |t: Timestamp| {
        if t > now {
            wake = Some(wake.map_or(t, |w| w.min(t)));
        }
    };
    for p in pending {
        if let Some(e) = p.expires {
            consider(e);
        }
        if let Some(at) = p.at {
            consider(at);
            if p.is_due_appointment(rules, now)
                && let Some(Wait::Gap { until }) = blocked(rules, history, now)
                && until.duration_since(at) <= rules.catch_up
            {
                consider(until);
            }
        }
    }
    wake
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cadence::{Schedule, Slot};
    use jiff::SignedDuration;
    use jiff::tz::TimeZone;

    fn rules(slots: &[&str]) -> ChannelRules {
        let slots = slots.iter().map(|s| Slot::parse(s).unwrap()).collect();
        ChannelRules::new(
            TimeZone::get("Europe/Madrid").unwrap(),
            Schedule::new(slots),
        )
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_slot_publishes_the_first_post_in_queue_order() {
        let r = rules(&["10:00"]);
        let mut b = Pending::new("c/002-b.md");
        b.priority = 0;
        let a = Pending::new("c/001-a.md");
        let mut urgent = Pending::new("c/zzz.md");
        urgent.priority = 5;
        let step = decide(
            &r,
            &[],
            &[b.clone(), a.clone(), urgent],
            Some(t("2026-11-23T08:00:00Z")),
            t("2026-11-23T09:00:00Z"), // 10:00 in Madrid
        );
        assert!(step.slot_fired);
        assert_eq!(step.publish, vec!["c/zzz.md"]);
        let step = decide(
            &r,
            &[],
            &[b, a],
            Some(t("2026-11-23T08:00:00Z")),
            t("2026-11-23T09:00:00Z"),
        );
        assert_eq!(step.publish, vec!["c/001-a.md"]);
        assert_eq!(
            step.deferred,
            vec![("c/002-b.md".to_string(), Wait::Queued)]
        );
    }

    #[test]
    fn no_slot_no_post_and_first_start_catches_up_nothing() {
        let r = rules(&["10:00"]);
        let p = [Pending::new("c/a.md")];
        let step = decide(
            &r,
            &[],
            &p,
            Some(t("2026-11-23T09:30:00Z")),
            t("2026-11-23T10:00:00Z"),
        );
        assert!(!step.slot_fired);
        assert!(step.publish.is_empty());
        let step = decide(&r, &[], &p, None, t("2026-11-23T09:00:00Z"));
        assert!(step.publish.is_empty(), "a first start catches up nothing");
    }

    #[test]
    fn catch_up_only_within_the_window_and_once() {
        let r = rules(&["10:00", "12:00"]);
        let p = [Pending::new("c/a.md"), Pending::new("c/b.md")];
        // Down from 08:00 to 11:30 Madrid: the 10:00 slot is 90 min old, beyond catch_up 1h.
        let step = decide(
            &r,
            &[],
            &p,
            Some(t("2026-11-23T07:00:00Z")),
            t("2026-11-23T10:30:00Z"),
        );
        assert!(step.publish.is_empty());
        // Down until 12:20 Madrid: 10:00 and 12:00 missed, the latest is 20 min old: one post.
        let step = decide(
            &r,
            &[],
            &p,
            Some(t("2026-11-23T07:00:00Z")),
            t("2026-11-23T11:20:00Z"),
        );
        assert_eq!(step.publish, vec!["c/a.md"]);
    }

    #[test]
    fn cap_and_gap_count_from_history() {
        let mut r = rules(&["10:00", "13:00", "18:00"]);
        r.max_per_day = 2;
        let p = [Pending::new("c/a.md")];
        let hist = [t("2026-11-23T09:00:00Z"), t("2026-11-23T12:00:00Z")];
        let step = decide(
            &r,
            &hist,
            &p,
            Some(t("2026-11-23T16:00:00Z")),
            t("2026-11-23T17:00:00Z"),
        );
        assert!(matches!(step.deferred[0].1, Wait::DailyCap { max: 2, .. }));
        let hist = [t("2026-11-23T10:30:00Z")];
        let step = decide(
            &r,
            &hist,
            &p,
            Some(t("2026-11-23T11:00:00Z")),
            t("2026-11-23T12:00:00Z"),
        );
        assert_eq!(
            step.deferred[0].1,
            Wait::Gap {
                until: t("2026-11-23T13:30:00Z")
            }
        );
    }

    #[test]
    fn a_min_gap_deferral_names_its_end_in_the_channels_zone_not_utc_milliseconds() {
        let madrid = jiff::tz::TimeZone::get("Europe/Madrid").unwrap();
        let gap = Wait::Gap {
            until: t("2026-11-28T00:56:00.049Z"),
        };
        assert_eq!(
            gap.describe_in(&madrid),
            "the minimum gap after the last post lasts until Sat 2026-11-28 01:56 CET"
        );
        let appointment = Wait::YieldsTo {
            appointment: "shop-x/sale.md".into(),
            at: t("2026-07-01T15:30:00Z"),
        };
        assert_eq!(
            appointment.describe_in(&madrid),
            "it waits for the appointment shop-x/sale.md at Wed 2026-07-01 17:30 CEST"
        );
    }

    #[test]
    fn slot_posts_yield_to_a_later_appointment() {
        let mut r = rules(&["10:00"]);
        r.max_per_day = 1;
        let mut appt = Pending::new("c/appt.md");
        appt.at = Some(t("2026-11-23T17:00:00Z"));
        let slot_post = Pending::new("c/a.md");
        let pending = [slot_post, appt];
        let step = decide(
            &r,
            &[],
            &pending,
            Some(t("2026-11-23T08:00:00Z")),
            t("2026-11-23T09:00:00Z"),
        );
        assert!(step.publish.is_empty());
        assert!(
            matches!(&step.deferred[0].1, Wait::YieldsTo { appointment, .. } if appointment == "c/appt.md")
        );
        // At its time the appointment goes.
        let step = decide(
            &r,
            &[],
            &pending,
            Some(t("2026-11-23T16:00:00Z")),
            t("2026-11-23T17:00:00Z"),
        );
        assert_eq!(step.publish, vec!["c/appt.md"]);
    }

    #[test]
    fn an_appointment_close_after_a_slot_makes_the_slot_post_wait() {
        let r = rules(&["10:00"]); // cap 2, gap 3h
        let mut appt = Pending::new("c/appt.md");
        appt.at = Some(t("2026-11-23T10:00:00Z")); // 11:00 Madrid, one hour after the slot
        let pending = [Pending::new("c/a.md"), appt];
        let step = decide(
            &r,
            &[],
            &pending,
            Some(t("2026-11-23T08:00:00Z")),
            t("2026-11-23T09:00:00Z"),
        );
        assert!(step.publish.is_empty());
    }

    #[test]
    fn expired_posts_are_expired_not_published() {
        let r = rules(&["10:00"]);
        let mut p = Pending::new("c/flash.md");
        p.expires = Some(t("2026-11-23T09:00:00Z"));
        let step = decide(
            &r,
            &[],
            &[p],
            Some(t("2026-11-23T08:00:00Z")),
            t("2026-11-23T09:00:00Z"),
        );
        assert_eq!(step.expire, vec!["c/flash.md"]);
        assert!(step.publish.is_empty());
    }

    #[test]
    fn a_late_appointment_waits_for_the_gap_within_catch_up_then_for_slots() {
        let r = rules(&["18:00"]);
        let mut appt = Pending::new("c/appt.md");
        appt.at = Some(t("2026-11-23T11:00:00Z"));
        let pending = [appt];
        let hist = [t("2026-11-23T08:30:00Z")]; // gap ends 11:30Z, within catch_up of 11:00Z
        let now = t("2026-11-23T11:00:00Z");
        let step = decide(
            &r,
            &hist,
            &pending,
            Some(now - SignedDuration::from_mins(1)),
            now,
        );
        assert!(matches!(step.deferred[0].1, Wait::Gap { .. }));
        assert_eq!(
            next_wake(&r, &hist, &pending, now),
            Some(t("2026-11-23T11:30:00Z"))
        );
        let later = t("2026-11-23T11:30:00Z");
        let step = decide(&r, &hist, &pending, Some(now), later);
        assert_eq!(step.publish, vec!["c/appt.md"]);
    }

    #[test]
    fn paused_channels_publish_nothing() {
        let mut r = rules(&["10:00"]);
        r.paused = true;
        let step = decide(
            &r,
            &[],
            &[Pending::new("c/a.md")],
            Some(t("2026-11-23T08:00:00Z")),
            t("2026-11-23T09:00:00Z"),
        );
        assert!(step.publish.is_empty());
        assert_eq!(step.deferred[0].1, Wait::Paused);
    }
}
