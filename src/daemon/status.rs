//! The daemon's record of each channel for `cadenced status` ([`crate::store::ChannelRecord`]):
//! written after each evaluation, so anyone who can read the log sees what the daemon knows
//! (whether it can read its credentials, what it will publish next) rather than what the
//! calling shell can see. The daemon calls [`Daemon::record_status`]; `status` calls
//! [`channel_records`] itself only when the daemon is not running.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use crate::cadence::day::local_day;
use crate::cadence::simulate::first_publish;
use crate::config::Config;
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
            let today = local_day(now, &ch.rules.timezone);
            let published_today = sim.history.iter().filter(|t| today.contains(**t)).count();
            let reason = disabled.get(&ch.name).cloned();
            let next_post = if reason.is_some() {
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
                disabled: reason,
                paused: ch.rules.paused,
                dry_run: ch.dry_run,
                queued,
                held,
                published_today: published_today as u32,
                max_per_day: ch.rules.max_per_day,
                failed: facts.failed.get(&ch.name).copied().unwrap_or(0),
                unknown: facts.unknown.get(&ch.name).copied().unwrap_or(0),
                next_post,
                last_attempt: facts.last.get(&ch.name).cloned(),
            }
        })
        .collect()
}

impl Daemon {
    /// Records what the daemon knows about each channel, from the wake's snapshot. A failure
    /// is logged and costs only a stale `status`.
    pub(super) fn record_status(&self, review: &Review, log: &LogView, now: Timestamp) {
        let result = self.shared.with_store(|s| {
            let facts = AttemptFacts::load(s)?;
            let records = channel_records(&self.config, review, log, &facts, &self.disabled, now);
            s.record_channels(&records)
        });
        if let Err(e) = result {
            tracing::warn!("could not record the channels' state for `cadenced status`: {e}");
        }
    }
}
