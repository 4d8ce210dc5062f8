//! The daemon's record of each channel for `cadenced status` ([`crate::store::ChannelRecord`]):
//! written each time the daemon evaluates a channel, so anyone who can read the log sees what the daemon knows
//! (whether it can read its credentials, what it will publish next) rather than what the
//! calling shell can see. The daemon calls [`Daemon::record_channel`]; `status` calls
//! [`channel_records`] itself only when the daemon is not running.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::cadence::day::local_day;
use crate::cadence::simulate::{SimChannel, first_publish};
use crate::config::{Channel, Config};
use crate::review::{LogView, Review, Verdict};
use crate::store::{self, ChannelRecord, Store};

use super::Daemon;

/// How far ahead NEXT POST looks.
const HORIZON: SignedDuration = SignedDuration::from_hours(14 * 24);

/// What the log says beyond `LogView`: attempt counts and each channel's newest attempt.
#[derive(Debug, Default)]
pub struct AttemptFacts {
    pub failed: HashMap<String, u32>,
    pub unknown: HashMap<String, u32>,
    pub last: HashMap<String, (Timestamp, String, String)>,
}

impl AttemptFacts {
    pub fn load(store: &Store) -> store::Result<AttemptFacts> {
        Ok(AttemptFacts {
            failed: store.attempt_counts("failed")?,
            unknown: store.attempt_counts("unknown")?,
            last: store
                .last_attempts()?
                .into_iter()
                .map(|(channel, at, state, file)| (channel, (at, state, file)))
                .collect(),
        })
    }
}

/// Every channel of `config` as judged at `now`. `disabled` holds the channels that cannot
/// publish and why (the daemon's own view, or the shell's when the daemon is not running).
pub fn channel_records(
    config: &Config,
    review: &Review,
    log: &LogView,
    facts: &AttemptFacts,
    disabled: &HashMap<String, String>,
    now: Timestamp,
) -> Vec<ChannelRecord> {
    let sims = review.sim_channels(config, log);
    config
        .channels
        .iter()
        .zip(&sims)
        .map(|(ch, sim)| {
            let (mut queued, mut held) = (0, 0);
            for f in review.files.iter().filter(|f| f.channel == ch.name) {
                match f.verdict {
                    Verdict::Ready(_) => queued += 1,
                    Verdict::Held(_) | Verdict::Invalid(_) => held += 1,
                    Verdict::Expired(_) => {}
                }
            }
            let attempts = ChannelAttempts {
                failed: facts.failed.get(&ch.name).copied().unwrap_or(0),
                unknown: facts.unknown.get(&ch.name).copied().unwrap_or(0),
                last: facts.last.get(&ch.name).cloned(),
            };
            channel_record(
                ch,
                sim,
                (queued, held),
                attempts,
                disabled.get(&ch.name),
                now,
            )
        })
        .collect()
}

/// One channel's attempts as its record shows them.
#[derive(Debug, Default)]
pub struct ChannelAttempts {
    pub failed: u32,
    pub unknown: u32,
    pub last: Option<(Timestamp, String, String)>,
}

/// One channel's record: `sim` holds its rules, history and ready posts; `counts` how many
/// posts are queued (ready) and held.
pub fn channel_record(
    ch: &Channel,
    sim: &SimChannel,
    (queued, held): (u32, u32),
    attempts: ChannelAttempts,
    disabled: Option<&String>,
    now: Timestamp,
) -> ChannelRecord {
    let today = local_day(now, &ch.rules.timezone);
    let published_today = sim.history.iter().filter(|t| today.contains(**t)).count();
    let next_post = if disabled.is_some() {
        None
    } else {
        first_publish(sim, now, now + HORIZON)
    };
    ChannelRecord {
        channel: ch.name.clone(),
        recorded: now,
        pid: std::process::id(),
        platform: ch.platform.name().to_string(),
        timezone: ch.rules.timezone.iana_name().unwrap_or("UTC").to_string(),
        disabled: disabled.cloned(),
        paused: ch.rules.paused,
        dry_run: ch.dry_run,
        queued,
        held,
        published_today: published_today as u32,
        max_per_day: ch.rules.max_per_day,
        failed: attempts.failed,
        unknown: attempts.unknown,
        next_post,
        last_attempt: attempts.last,
    }
}

impl Daemon {
    /// Records what the daemon knows about one channel, after evaluating it (a channel
    /// nothing happens to keeps its record: an idle daemon does not wake to rewrite it). A
    /// failure is logged and costs only a stale `status`.
    pub(super) fn record_channel(
        &self,
        ci: usize,
        sim: &SimChannel,
        counts: (u32, u32),
        now: Timestamp,
    ) {
        let ch = &self.config.channels[ci];
        let result = self.shared.with_store(|s| {
            let attempts = s.channel_attempts(&ch.name)?;
            let record = channel_record(
                ch,
                sim,
                counts,
                ChannelAttempts {
                    failed: attempts.0,
                    unknown: attempts.1,
                    last: attempts.2,
                },
                self.disabled.get(&ch.name),
                now,
            );
            s.record_channel(&record)
        });
        if let Err(e) = result {
            tracing::warn!(channel = %ch.name, "could not record the channel's state for `cadenced status`: {e}");
        }
    }

    /// Forgets every channel's record (start-up, reload): each is recorded again as it is
    /// evaluated, and channels no longer configured go.
    pub(super) fn forget_records(&self) {
        if let Err(e) = self.shared.with_store(|s| s.record_channels(&[])) {
            tracing::warn!("could not clear the channels' state for `cadenced status`: {e}");
        }
    }
}
