//! The plan: the daemon's decisions replayed with a simulated clock. It calls the very
//! functions the daemon calls ([`policy::decide`] at each [`policy::next_wake`]), so the
//! timetable `cadenced plan` shows is the one the daemon will follow, as long as nothing
//! new is dropped into the queue.

use jiff::Timestamp;

use super::ChannelRules;
use super::policy::{self, Pending, Wait};

/// One channel's state going into the simulation.
#[derive(Debug, Clone)]
pub struct SimChannel {
    pub name: String,
    pub rules: ChannelRules,
    /// Instants of the posts that count for cap and gap, from the log.
    pub history: Vec<Timestamp>,
    /// Posts that could be published (not held, not invalid).
    pub pending: Vec<Pending>,
    /// The log's last evaluation of this channel; `None` treats `from` as that.
    pub last_evaluated: Option<Timestamp>,
}

/// What happens to one post in the simulated window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Published(Timestamp),
    Expired(Timestamp),
    /// Still waiting at the end of the window; the last reason it was passed over, if any.
    Waiting(Option<Wait>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPost {
    pub channel: String,
    pub id: String,
    pub fate: Fate,
}

/// Replays `[from, until)` for every channel. Channels do not interact in time, so each is
/// simulated on its own; the result is ordered by time, then channel.
pub fn simulate(channels: &[SimChannel], from: Timestamp, until: Timestamp) -> Vec<PlannedPost> {
    let mut out = Vec::new();
    for ch in channels {
        out.extend(simulate_channel(ch, from, until, false));
    }
    out.sort_by(|a, b| {
        fate_time(&a.fate)
            .cmp(&fate_time(&b.fate))
            .then_with(|| a.channel.cmp(&b.channel))
            .then_with(|| a.id.cmp(&b.id))
    });
    out
}

fn fate_time(f: &Fate) -> Option<Timestamp> {
    match f {
        Fate::Published(t) | Fate::Expired(t) => Some(*t),
        Fate::Waiting(_) => None,
    }
    .or(Some(Timestamp::MAX))
}

/// The channel's next post in `[from, until)` and when it goes out, as the daemon would
/// decide it now: the same replay, stopped at the first publish (so it stays cheap with a
/// long queue). `status` shows it as NEXT POST.
pub fn first_publish(
    ch: &SimChannel,
    from: Timestamp,
    until: Timestamp,
) -> Option<(String, Timestamp)> {
    simulate_channel(ch, from, until, true)
        .into_iter()
        .find_map(|p| match p.fate {
            Fate::Published(t) => Some((p.id, t)),
            _ => None,
        })
}

fn simulate_channel(
    ch: &SimChannel,
    from: Timestamp,
    until: Timestamp,
    stop_at_first: bool,
) -> Vec<PlannedPost> {
    let mut history = ch.history.clone();
    let mut pending = ch.pending.clone();
    let mut last_reason: Vec<(String, Wait)> = Vec::new();
    let mut out = Vec::new();
    let mut last = Some(ch.last_evaluated.unwrap_or(from));
    // Like the daemon at start-up, evaluate at `from` itself: an appointment due exactly then
    // is no later wake. After that, a bounded loop: every wake strictly advances time, and
    // the window is finite.
    let mut next = Some(from);
    while let Some(wake) = next {
        if wake >= until || pending.is_empty() {
            break;
        }
        let step = policy::decide(&ch.rules, &history, &pending, last, wake);
        for id in &step.publish {
            history.push(wake);
            out.push(PlannedPost {
                channel: ch.name.clone(),
                id: id.clone(),
                fate: Fate::Published(wake),
            });
        }
        for id in &step.expire {
            out.push(PlannedPost {
                channel: ch.name.clone(),
                id: id.clone(),
                fate: Fate::Expired(wake),
            });
        }
        if stop_at_first && !step.publish.is_empty() {
            return out;
        }
        pending.retain(|p| !step.publish.contains(&p.id) && !step.expire.contains(&p.id));
        for (id, wait) in step.deferred {
            last_reason.retain(|(i, _)| i != &id);
            last_reason.push((id, wait));
        }
        last = Some(wake);
        next = policy::next_wake(&ch.rules, &history, &pending, wake);
    }
    for p in pending {
        let reason = last_reason
            .iter()
            .find(|(id, _)| id == &p.id)
            .map(|(_, w)| w.clone());
        out.push(PlannedPost {
            channel: ch.name.clone(),
            id: p.id,
            fate: Fate::Waiting(reason),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cadence::{Schedule, Slot};
    use jiff::tz::TimeZone;

    fn new_york(slots: &[&str], posts: usize) -> Vec<String> {
        let slots = slots.iter().map(|s| Slot::parse(s).unwrap()).collect();
        let tz = TimeZone::get("America/New_York").unwrap();
        let rules = ChannelRules::new(tz.clone(), Schedule::new(slots));
        let pending = (1..=posts)
            .map(|i| Pending::new(format!("ny/{i:03}.md")))
            .collect();
        let ch = SimChannel {
            name: "ny".into(),
            rules,
            history: vec![],
            pending,
            last_evaluated: None,
        };
        let from: Timestamp = "2027-03-13T05:00:00Z".parse().unwrap();
        let until = from + jiff::SignedDuration::from_hours(72);
        simulate(&[ch], from, until)
            .iter()
            .filter_map(|p| match p.fate {
                Fate::Published(t) => Some(tz.to_datetime(t).to_string()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_slot_inside_the_spring_gap_publishes_at_the_end_of_the_gap() {
        assert_eq!(
            new_york(&["02:30", "16:00"], 9),
            [
                "2027-03-13T02:30:00",
                "2027-03-13T16:00:00",
                "2027-03-14T03:00:00",
                "2027-03-14T16:00:00",
                "2027-03-15T02:30:00",
                "2027-03-15T16:00:00",
            ]
        );
    }

    /// Regression (found by `tests/it/plan_props.rs`): an appointment at the very start of
    /// the window was never evaluated and slipped to the next day's slot.
    #[test]
    fn an_appointment_at_the_start_instant_goes_at_once() {
        let tz = TimeZone::get("America/New_York").unwrap();
        let rules = ChannelRules::new(tz, Schedule::new(vec![Slot::parse("00:00").unwrap()]));
        let from: Timestamp = "2027-03-14T07:00:00Z".parse().unwrap();
        let mut appt = Pending::new("c/appt.md");
        appt.at = Some(from);
        let ch = SimChannel {
            name: "c".into(),
            rules,
            history: vec![],
            pending: vec![appt],
            last_evaluated: None,
        };
        let plan = simulate(&[ch], from, from + jiff::SignedDuration::from_hours(24));
        assert_eq!(plan[0].fate, Fate::Published(from));
    }

    #[test]
    fn posts_run_out_and_the_rest_wait() {
        assert_eq!(new_york(&["10:00"], 2).len(), 2);
    }

    #[test]
    fn new_york_across_the_spring_change() {
        assert_eq!(
            new_york(&["01:30", "02:30", "10:00", "16:00"], 9),
            [
                "2027-03-13T01:30:00",
                "2027-03-13T10:00:00",
                // 01:30 still exists on the 14th; 02:30 (fired at 03:00) is then too close.
                "2027-03-14T01:30:00",
                "2027-03-14T10:00:00",
                "2027-03-15T01:30:00",
                "2027-03-15T10:00:00",
            ]
        );
    }
}
