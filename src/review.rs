//! Everything known about the queue at one moment: each file's verdict (ready, invalid,
//! held, expired) from the config, the scanned queue and the log's history. `check`, `plan`
//! and the daemon all judge files here, so they cannot disagree. Pure apart from
//! [`LogView::load`], which reads the log.

use std::collections::HashMap;
use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};

use crate::cadence::holds::{self, Candidate, ChannelView, PastPost};
use crate::cadence::policy::Pending;
use crate::cadence::similarity::{Fingerprint, comparable};
use crate::cadence::simulate::SimChannel;
use crate::config::{Channel, Config};
use crate::diag::{Diagnostic, did_you_mean};
use crate::platforms::{MediaInfo, Platform, PostView};
use crate::queue::{Accepted, QueuedFile, Scan};
use crate::store::{self, Store};

/// What the log says, as far as judging the queue needs it.
#[derive(Debug, Clone, Default)]
pub struct LogView {
    /// Per channel: instants that count for cap and gap.
    pub history: HashMap<String, Vec<Timestamp>>,
    pub past: Vec<store::PastRow>,
    pub first_seen: HashMap<String, Timestamp>,
    pub last_evaluated: HashMap<String, Timestamp>,
    /// Files whose latest attempt has an unsure outcome (`sending`, `unknown`).
    pub unsure: HashMap<String, String>,
    /// Files whose latest attempt finished (`published`, `resolved`, `failed`): the state
    /// and the version sent. That version still in the queue is a move not done yet (a
    /// publish task between its outcome and its move, a crash, a `published` that is not
    /// a folder): it is not queued any more, and never judged against its own past post.
    pub finished: HashMap<String, (String, String)>,
}

impl LogView {
    /// Reads what the config's channels need from the log, back as far as any window goes.
    pub fn load(store: &Store, config: &Config, now: Timestamp) -> store::Result<LogView> {
        let longest = config
            .channels
            .iter()
            .map(|c| c.rules.unique_window)
            .max()
            .unwrap_or_default()
            .max(SignedDuration::from_hours(48));
        let since = now - longest;
        let dry: Vec<&str> = config
            .channels
            .iter()
            .filter(|c| c.dry_run)
            .map(|c| c.name.as_str())
            .collect();
        let mut view = LogView {
            past: store.past_posts(since, &dry)?,
            first_seen: store.first_seen()?,
            unsure: store.unsure_files()?,
            finished: store.finished_versions()?,
            ..LogView::default()
        };
        for ch in &config.channels {
            // Two days back is enough for any local day's cap and any gap below 24 h.
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

#[derive(Debug, Clone)]
pub enum Verdict {
    /// Waiting for its time.
    Ready(Pending),
    /// Cannot be read or parsed.
    Invalid(Diagnostic),
    /// Breaks rule 5, 6 or 7; stays in the queue until fixed.
    Held(Diagnostic),
    /// Past its `expires`.
    Expired(Timestamp),
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
        config
            .channels
            .iter()
            .map(|ch| SimChannel {
                name: ch.name.clone(),
                rules: ch.rules.clone(),
                history: log.history.get(&ch.name).cloned().unwrap_or_default(),
                pending: self
                    .files
                    .iter()
                    .filter(|f| f.channel == ch.name)
                    .filter_map(|f| match &f.verdict {
                        Verdict::Ready(p) => Some(p.clone()),
                        _ => None,
                    })
                    .collect(),
                last_evaluated: log.last_evaluated.get(&ch.name).copied(),
            })
            .collect()
    }
}

/// Judges every scanned file at `now`.
pub fn review(config: &Config, scan: Scan, log: &LogView, now: Timestamp) -> Review {
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
    for file in scan.files {
        let Some(&ci) = channel_index.get(file.channel.as_str()) else {
            continue; // the scan reports unknown channel folders itself
        };
        let channel = &config.channels[ci];
        if log
            .finished
            .get(&file.id)
            .is_some_and(|(_, hash)| *hash == file.hash)
        {
            continue;
        }
        let verdict = match log.unsure.get(&file.id) {
            Some(state) => Verdict::Held(unsure(&file, state)),
            None => judge(channel, &file, now),
        };
        let fingerprint = file
            .content
            .as_ref()
            .ok()
            .map(|a| Fingerprint::of_normalized(&comparable(&a.post.body)));
        // A post without text (media only) is not a duplicate of every other such post.
        let comparable = fingerprint
            .as_ref()
            .is_some_and(|f| !f.normalized().is_empty());
        if let (Verdict::Ready(_), Some(fingerprint), true) = (&verdict, fingerprint, comparable) {
            candidates.push(Candidate {
                id: file.id.clone(),
                channel: ci,
                fingerprint,
                first_seen: log.first_seen.get(&file.id).copied(),
                modified: file.modified,
            });
        }
        out.files.push(FileReview {
            id: file.id,
            channel: file.channel,
            path: file.path,
            hash: file.hash,
            verdict,
        });
    }

    let views: Vec<ChannelView> = config.channels.iter().map(channel_view).collect();
    let past: Vec<PastPost> = log
        .past
        .iter()
        .filter_map(|row| {
            Some(PastPost {
                id: row.file.clone(),
                channel: row.channel.clone(),
                platform: Platform::parse(&row.platform)?.name(),
                at: row.at,
                fingerprint: Fingerprint::of_normalized(&row.normalized),
            })
        })
        .collect();
    let holds = holds::find_holds(&views, &candidates, &past, now);
    for f in &mut out.files {
        if let Some(reason) = holds.get(&f.id) {
            let platform = config.channels[channel_index[f.channel.as_str()]].platform;
            let (message, help) = reason.describe(platform.name());
            f.verdict = Verdict::Held(
                Diagnostic::error(&f.path, format!("held: {message}")).with_help(help),
            );
        }
    }
    out
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

fn channel_view(ch: &Channel) -> ChannelView {
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
