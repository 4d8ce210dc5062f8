//! Everything known about the queue at one moment: each file's verdict (ready, invalid,
//! held, expired) from the config, the scanned queue and the log. `check`, `plan` and the
//! daemon all judge files here, so they cannot disagree: a file's own verdict comes from
//! [`judge_file`] (readability, rule 7, expiry, an unsure last attempt), and rules 5 and 6
//! from `cadence::holds::Holds`, which the commands fill once ([`review`]) and the daemon
//! keeps up to date one file at a time (`daemon::intake`). Pure apart from [`LogSource`],
//! which reads the log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use jiff::{SignedDuration, Timestamp};

use crate::cadence::holds::{
    Candidate, ChannelView, CountedText, HoldReason, Holds, Past, PastHit, QueuedText,
};
use crate::cadence::pending_index::GramOrder;
use crate::cadence::policy::Pending;
use crate::cadence::similarity::Fingerprint;
use crate::cadence::simulate::SimChannel;
use crate::config::{Channel, Config};
use crate::diag::{Diagnostic, did_you_mean};
use crate::platforms::{MediaInfo, Platform, PostView};
use crate::queue::{Accepted, QueuedFile, Scan};
use crate::store::{self, Store};

/// What the log says about the channels, as the commands need it.
#[derive(Debug, Clone, Default)]
pub struct LogView {
    /// Per channel: instants that count for cap and gap.
    pub history: HashMap<String, Vec<Timestamp>>,
    pub last_evaluated: HashMap<String, Timestamp>,
}

impl LogView {
    /// Reads what the config's channels need from the log: two days back is enough for any
    /// local day's cap and any gap below 24 h.
    pub fn load(store: &Store, config: &Config, now: Timestamp) -> store::Result<LogView> {
        let mut view = LogView::default();
        for ch in &config.channels {
            let from = now - SignedDuration::from_hours(48).max(ch.rules.min_gap);
            view.history
                .insert(ch.name.clone(), store.history(&ch.name, from, ch.dry_run)?);
            if let Some(t) = store.last_evaluated(&ch.name)? {
                view.last_evaluated.insert(ch.name.clone(), t);
            }
        }
        Ok(view)
    }
}

pub use crate::store::FileFacts;

/// The log's posts in memory at once while the queue is checked against them in one pass
/// (a few hundred bytes each).
const COUNTED_BATCH: usize = 4096;

/// The log as `review` reads it: the facts about a file, and the published posts near a
/// text. Without a database (a fresh install) the log is empty.
pub struct LogSource<'a> {
    store: Option<&'a Store>,
    /// Channels whose dry-run posts still count (the channels in dry-run mode now).
    dry_run: Vec<String>,
}

impl<'a> LogSource<'a> {
    pub fn new(store: Option<&'a Store>, config: &Config) -> Self {
        LogSource {
            store,
            dry_run: config
                .channels
                .iter()
                .filter(|c| c.dry_run)
                .map(|c| c.name.clone())
                .collect(),
        }
    }

    pub fn facts(&self, id: &str, hash: &str) -> store::Result<FileFacts> {
        match self.store {
            Some(s) => s.file_facts(id, hash),
            None => Ok(FileFacts::default()),
        }
    }
}

impl Past for LogSource<'_> {
    fn near(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
        since: Timestamp,
    ) -> Result<Vec<PastHit>, String> {
        let Some(store) = self.store else {
            return Ok(Vec::new());
        };
        near_in(store, &self.dry_run, fingerprint, threshold, since)
    }

    fn counted_hint(&self, since: Timestamp) -> Option<usize> {
        match self.store?.counted_since_estimate(since) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "could not count the log's posts; checking the queue against it post by post");
                None
            }
        }
    }

    fn each_counted(
        &self,
        since: Timestamp,
        f: &mut dyn FnMut(Vec<CountedText>),
    ) -> Result<(), String> {
        let Some(store) = self.store else {
            return Ok(());
        };
        let dry: Vec<&str> = self.dry_run.iter().map(String::as_str).collect();
        store
            .each_counted(since, &dry, COUNTED_BATCH, |posts| {
                f(posts
                    .into_iter()
                    .filter_map(|p| {
                        Some(CountedText {
                            seq: p.attempt,
                            platform: Platform::parse(&p.platform)?.name(),
                            id: p.file,
                            channel: p.channel,
                            at: p.at,
                            normalized: p.normalized,
                        })
                    })
                    .collect())
            })
            .map_err(|e| e.to_string())
    }

    /// A read-only connection for each core, each with the log's sketch of token counts.
    /// If one cannot be opened, the look-ups stay on this thread's connection.
    fn shared(&self) -> Option<Box<dyn Past + Sync + '_>> {
        let store = self.store?;
        let readers: store::Result<Vec<Store>> = (0..crate::parallel::workers())
            .map(|_| store.reader())
            .collect();
        match readers {
            Ok(readers) => Some(Box::new(SharedLog {
                readers: readers.into_iter().map(std::sync::Mutex::new).collect(),
                dry_run: &self.dry_run,
            })),
            Err(e) => {
                tracing::warn!(error = %e, "the log's look-ups stay on one core");
                None
            }
        }
    }
}

/// The log for look-ups on several threads: a connection each (one serves one thread at
/// a time), taken from those no other thread holds.
struct SharedLog<'a> {
    readers: Vec<std::sync::Mutex<Store>>,
    dry_run: &'a [String],
}

impl Past for SharedLog<'_> {
    fn near(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
        since: Timestamp,
    ) -> Result<Vec<PastHit>, String> {
        // One per worker: a free one is there unless more threads ask than were counted.
        let store = self
            .readers
            .iter()
            .find_map(|r| r.try_lock().ok())
            .unwrap_or_else(|| {
                self.readers[0]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            });
        near_in(&store, self.dry_run, fingerprint, threshold, since)
    }
}

/// The posts of the log in `store` near `fingerprint`, as [`Past::near`] gives them.
fn near_in(
    store: &Store,
    dry_run: &[String],
    fingerprint: &Fingerprint,
    threshold: f64,
    since: Timestamp,
) -> Result<Vec<PastHit>, String> {
    let dry: Vec<&str> = dry_run.iter().map(String::as_str).collect();
    let rows = store
        .near_posts(fingerprint, threshold, since, &dry)
        .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(PastHit {
                platform: Platform::parse(&r.platform)?.name(),
                id: r.file,
                channel: r.channel,
                at: r.at,
                similarity: r.similarity,
            })
        })
        .collect())
}

#[derive(Debug, Clone)]
pub enum Verdict {
    /// Waiting for its time.
    Ready(Pending),
    /// Cannot be read or parsed.
    Invalid(Diagnostic),
    /// Breaks rule 5, 6 or 7, or its last attempt is unsure; stays in the queue until fixed.
    Held(Diagnostic),
    /// Past its `expires`.
    Expired(Timestamp),
}

impl Verdict {
    /// The status the log records for this verdict.
    pub fn status(&self) -> &'static str {
        match self {
            Verdict::Ready(_) | Verdict::Expired(_) => "accepted",
            Verdict::Held(_) | Verdict::Invalid(_) => "held",
        }
    }

    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            Verdict::Held(d) | Verdict::Invalid(d) => Some(d),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct FileReview {
    pub id: String,
    pub channel: String,
    pub path: PathBuf,
    pub hash: String,
    pub verdict: Verdict,
}

#[derive(Debug, Default)]
pub struct Review {
    /// In id order.
    pub files: Vec<FileReview>,
    /// Problems not about one file (unknown folders...).
    pub problems: Vec<Diagnostic>,
}

impl Review {
    /// The simulation input: each channel's rules, history and ready posts.
    pub fn sim_channels(&self, config: &Config, log: &LogView) -> Vec<SimChannel> {
        let mut pending: HashMap<&str, Vec<Pending>> = HashMap::new();
        for f in &self.files {
            if let Verdict::Ready(p) = &f.verdict {
                pending
                    .entry(f.channel.as_str())
                    .or_default()
                    .push(p.clone());
            }
        }
        config
            .channels
            .iter()
            .map(|ch| SimChannel {
                name: ch.name.clone(),
                rules: ch.rules.clone(),
                history: log.history.get(&ch.name).cloned().unwrap_or_default(),
                pending: pending.remove(ch.name.as_str()).unwrap_or_default(),
                last_evaluated: log.last_evaluated.get(&ch.name).copied(),
            })
            .collect()
    }
}

/// A file as far as rules 5 and 6 are concerned, if it takes part: a post that could be
/// published, with text. A post without text (media only) is not a duplicate of every
/// other such post.
pub fn candidate(
    channel: usize,
    file: &QueuedFile,
    verdict: &Verdict,
    facts: &FileFacts,
) -> Option<Candidate> {
    queued_text(channel, file, verdict, facts).map(|q| q.candidate())
}

/// [`candidate`] without its grams (computed when needed: see [`Holds::insert_all`]).
pub fn queued_text(
    channel: usize,
    file: &QueuedFile,
    verdict: &Verdict,
    facts: &FileFacts,
) -> Option<QueuedText> {
    let Verdict::Ready(_) = verdict else {
        return None;
    };
    let accepted = file.content.as_ref().ok()?;
    let text = accepted.comparable();
    if text.is_empty() {
        return None;
    }
    Some(QueuedText {
        id: file.id.as_str().into(),
        channel,
        text: text.into(),
        first_seen: facts.first_seen,
        modified: file.modified,
    })
}

/// The views of the config's channels that `Holds` judges with, in config order.
pub fn channel_views(config: &Config) -> Vec<ChannelView> {
    config.channels.iter().map(channel_view).collect()
}

/// The message and fix for a post held by rule 5 or 6.
pub fn hold_diagnostic(path: &Path, platform: Platform, reason: &HoldReason) -> Diagnostic {
    let (message, help) = reason.describe(platform.name());
    Diagnostic::error(path, format!("held: {message}")).with_help(help)
}

/// Judges every scanned file at `now`, against the log `log` reads.
pub fn review(config: &Config, scan: Scan, log: &LogSource<'_>, now: Timestamp) -> Review {
    let channel_index: HashMap<&str, usize> = config
        .channels
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let mut out = Review {
        files: Vec::with_capacity(scan.files.len()),
        problems: scan.problems,
    };
    let mut candidates = Vec::new();
    let mut log_error = None;
    for file in scan.files {
        let Some(&ci) = channel_index.get(file.channel.as_str()) else {
            continue; // the scan reports unknown channel folders itself
        };
        let facts = log.facts(&file.id, &file.hash).unwrap_or_else(|e| {
            log_error.get_or_insert(e.to_string());
            FileFacts::default()
        });
        // Its latest attempt finished with this very version: a move not done yet (a
        // publish between its outcome and its move, a crash, a `published` that is not a
        // folder). Not queued any more, and never judged against its own past post.
        if facts.finished(&file.hash).is_some() {
            continue;
        }
        let verdict = judge_file(&config.channels[ci], &file, &facts, now);
        candidates.extend(queued_text(ci, &file, &verdict, &facts));
        out.files.push(FileReview {
            id: file.id,
            channel: file.channel,
            path: file.path,
            hash: file.hash,
            verdict,
        });
    }
    // Rarest grams first in the pending posts' index: the order these posts give.
    let order = GramOrder::of_normalized(candidates.len(), |i| &candidates[i].text);
    let mut holds = Holds::with_order(channel_views(config), std::sync::Arc::new(order));
    let (_, failed) = holds.insert_all(candidates, log, now);
    if let Some((_, e)) = failed.into_iter().next() {
        log_error.get_or_insert(e);
    }
    if let Some(e) = log_error {
        out.problems.push(
            Diagnostic::warning(
                &config.database,
                format!("could not read the publish log: {e}"),
            )
            .with_help("caps, gaps and uniqueness are judged without (part of) the history"),
        );
    }
    for f in &mut out.files {
        if let Some(reason) = holds.hold(&f.id) {
            let platform = config.channels[channel_index[f.channel.as_str()]].platform;
            f.verdict = Verdict::Held(hold_diagnostic(&f.path, platform, reason));
        }
    }
    out
}

/// One file's own verdict: readable, rule 7, expired, or held because its last attempt may
/// have gone out. Rules 5 and 6 come on top (`Holds`).
pub fn judge_file(
    channel: &Channel,
    file: &QueuedFile,
    facts: &FileFacts,
    now: Timestamp,
) -> Verdict {
    match facts.unsure() {
        Some(state) => Verdict::Held(unsure(file, state)),
        None => judge(channel, file, now),
    }
}

/// A file whose last attempt may or may not have gone out waits for the user: at most once
/// where exactly once is impossible.
fn unsure(file: &QueuedFile, state: &str) -> Diagnostic {
    let what = if state == "sending" {
        "an attempt to publish it was interrupted and has not been reconciled yet"
    } else {
        "the outcome of the last attempt to publish it is unknown: it may have gone out"
    };
    let next = if state == "sending" {
        "cadenced finds out what happened when it next starts (it asks the platform where it \
         can), and then this note goes away."
    } else {
        "Nothing is sent again on its own. This note goes away when you answer with \
         `cadenced retry` or `cadenced resolve`."
    };
    Diagnostic::error(&file.path, format!("held: {what}"))
        .with_help(format!(
            "look at the channel; if it was not posted run `cadenced retry {}`, if it was run `cadenced resolve {} --posted URL`",
            file.id, file.id
        ))
        .with_next(next)
}

pub fn channel_view(ch: &Channel) -> ChannelView {
    ChannelView {
        name: ch.name.clone(),
        platform: ch.platform.name(),
        variation: ch.variation,
        similarity: ch.rules.similarity,
        unique_window: ch.rules.unique_window,
    }
}

/// Rule 7 and the file's own readability, for one file.
fn judge(channel: &Channel, file: &QueuedFile, now: Timestamp) -> Verdict {
    let accepted = match &file.content {
        Ok(a) => a,
        Err(d) => return Verdict::Invalid(d.clone()),
    };
    let tz = &channel.rules.timezone;
    let front = &accepted.post.front;
    let pending = Pending {
        id: file.id.clone(),
        priority: front.priority,
        at: front.at.map(|t| t.resolve(tz)),
        expires: front.expires.map(|t| t.resolve(tz)),
    };
    if let Some(problem) = platform_problem(channel, file, accepted) {
        return Verdict::Held(problem);
    }
    match pending.expires {
        Some(e) if e <= now => Verdict::Expired(e),
        _ => Verdict::Ready(pending),
    }
}

fn platform_problem(
    channel: &Channel,
    file: &QueuedFile,
    accepted: &Accepted,
) -> Option<Diagnostic> {
    let platform = channel.platform;
    let front = &accepted.post.front;
    if let Some(allowed) = platform.fields()
        && let Some(key) = front
            .platform
            .keys()
            .find(|k| !allowed.contains(&k.as_str()))
    {
        let hint = match did_you_mean(key, allowed.iter().copied()) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        let known = if allowed.is_empty() {
            "none".to_string()
        } else {
            allowed.join(", ")
        };
        return Some(
            Diagnostic::error(
                &file.path,
                format!("held: `[platform]` key `{key}` is not a {platform} field"),
            )
            .with_help(format!("{hint}{platform} takes: {known}")),
        );
    }
    let media: Vec<MediaInfo> = accepted
        .media
        .iter()
        .map(|m| MediaInfo {
            path: m.rel.clone(),
            alt: m.alt.clone(),
            bytes: m.bytes,
        })
        .collect();
    let view = PostView {
        text: &accepted.post.body,
        media: &media,
        link: front.link.as_deref(),
        fields: &front.platform,
    };
    let violations = platform.validate(&channel.limits(), &view);
    // Every problem at once, each with its own fix.
    let mut all = violations.iter().map(|v| {
        Diagnostic::error(&file.path, format!("held: {}", v.message))
            .at_line(accepted.post.body_line)
            .with_help(v.help.as_str())
    });
    let first = all.next()?;
    Some(first.with_also(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cadence::holds::LookupsOnly;
    use crate::cadence::similarity::comparable;
    use crate::store::NewAttempt;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A queue checked against the real log in one pass over its posts gets the holds a
    /// look-up per queued post gives: the same posts (window, state, dry runs), the same
    /// similarities to the last bit (thresholds of 0.7 and 0.9 on channels that compare
    /// across platforms), the same oldest-first choice among equals.
    #[test]
    fn a_pass_over_the_log_holds_what_a_look_up_per_post_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        let words = [
            "linen", "cotton", "wool", "boots", "shirts", "repair", "Friday", "Monday", "half",
            "colour", "size", "sale",
        ];
        let text = |i: usize| {
            // Variants of four sentences, a word or two apart.
            let base = [
                "Summer sale begins Friday with new linen shirts in every size and colour at half price",
                "Our free repair workshop is back on Saturday, bring your boots and your questions",
                "Autumn boots are back in brown and black leather, every size, from Monday on",
                "Wool socks for the cold months, knitted here, three pairs for the price of two",
            ][i % 4];
            let mut words_of: Vec<&str> = base.split(' ').collect();
            let k = (i / 4) % words_of.len();
            words_of[k] = words[i % words.len()];
            if i.is_multiple_of(3) {
                words_of.swap(1, 2);
            }
            words_of.join(" ")
        };
        let channels = [
            ("m", "mastodon", false),
            ("b", "bluesky", false),
            ("x", "x", false),
            ("d", "webhook", true),
        ];
        for i in 0..24 {
            let (channel, platform, dry) = channels[i % 4];
            let normalized = comparable(&text(i * 5 + 1));
            let started = t("2026-11-01T09:00:00Z") + SignedDuration::from_hours(i as i64 * 13);
            let file = format!("{channel}/old{i}.md");
            let id = store
                .begin_attempt(&NewAttempt {
                    started,
                    channel,
                    platform: Platform::named(platform).unwrap(),
                    file: &file,
                    hash: "h",
                    normalized: &normalized,
                    idempotency_key: "k",
                    key_started: started,
                    dry_run: dry,
                })
                .unwrap();
            let state = if i % 5 == 4 { "failed" } else { "published" };
            store
                .finish_attempt(id, started, state, None, None, "")
                .unwrap();
        }
        let views: Vec<ChannelView> = channels
            .iter()
            .enumerate()
            .map(|(i, (name, platform, _))| ChannelView {
                name: name.to_string(),
                platform: Platform::named(platform).unwrap().name(),
                variation: true,
                similarity: [0.7, 0.9][i % 2],
                unique_window: SignedDuration::from_hours(24 * [30, 12][i % 2]),
            })
            .collect();
        let now = t("2026-11-25T00:00:00Z");
        let queued: Vec<QueuedText> = (0..60)
            .map(|i| QueuedText {
                id: format!("{}/{i}.md", channels[i % 4].0).into(),
                channel: i % 4,
                text: comparable(&text(i)).into(),
                first_seen: None,
                modified: now - SignedDuration::from_hours(i as i64),
            })
            .collect();
        let config_dry = vec!["d".to_string()];
        let log = LogSource {
            store: Some(&store),
            dry_run: config_dry,
        };
        assert!(
            log.counted_hint(now - SignedDuration::from_hours(24 * 30))
                .is_some()
        );
        let mut by_pass = Holds::new(views.clone());
        let (pass, failed) = by_pass.insert_all(queued.clone(), &log, now);
        assert!(failed.is_empty());
        let mut by_lookups = Holds::new(views);
        let (lookups, failed) = by_lookups.insert_all(queued, &LookupsOnly(&log), now);
        assert!(failed.is_empty());
        assert_eq!(pass, lookups);
        let by_log = pass
            .iter()
            .filter(|(_, h)| h.as_ref().is_some_and(|h| h.published.is_some()))
            .count();
        assert!(by_log >= 10, "{by_log} held by the log: {pass:#?}");
    }
}
