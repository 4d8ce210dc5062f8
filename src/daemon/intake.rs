//! The daemon's picture of the queue, kept between wakes and updated one file at a time.
//!
//! Why it exists: a file dropped into a queue of 20,000 must be judged in milliseconds, and
//! judging means comparing it with every pending post and every published one. So the
//! daemon reads the whole queue once (start-up, reload, a watch overflow or a folder moved
//! in, and a safety net every few hours), and after that only what an event names: one file
//! (read, judged, its near-duplicates re-judged) or one channel folder (listed, and only
//! the files whose stamp changed read). Judging is `review`'s (`judge_file`, `Holds`), the
//! same code `check` and `plan` run; the log stays the truth for caps, gaps and uniqueness
//! (published posts are found in the log's index on disk, never kept here).
//!
//! What it keeps per file: its stamp, version, times and own verdict in a few dozen bytes
//! (no text, no parsed post), plus the pending posts' near-duplicate index in `Holds`.
//! What it must not do: write anything. It reports what changed ([`Outcome`]) and the
//! daemon logs it, writes the notes and moves files.
//!
//! A file written in place counts only once settled: the watcher says so (`Ready`), or its
//! modification time is older than the settle time; a file found younger than that by a
//! listing gets its own timer (before, it waited for an unrelated wake). `Ready` marks are
//! kept for the settle time even for folders that are not channels yet, so a file renamed
//! into a new channel's folder just before the reload that adds the channel is taken at the
//! reload.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use crate::cadence::holds::{HoldChange, Holds, QueuedText};
use crate::cadence::policy::Pending;
use crate::cadence::similarity::Fingerprint;
use crate::clock;
use crate::config::Config;
use crate::diag::Diagnostic;
use crate::queue::{self, QueuedFile};
use crate::review::{self, LogSource, Verdict};
use crate::store::Store;

/// A file's content version: the SHA-256 of its bytes, or none when it could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Version([u8; 32]);

impl Version {
    const NONE: Version = Version([0; 32]);

    fn of(hex_hash: &str) -> Version {
        let mut v = [0u8; 32];
        match hex::decode_to_slice(hex_hash, &mut v) {
            Ok(()) => Version(v),
            Err(_) => Version::NONE,
        }
    }

    /// As the log writes it: hex, empty for a file that was not read.
    pub(super) fn hex(&self) -> String {
        if *self == Version::NONE {
            String::new()
        } else {
            hex::encode(self.0)
        }
    }
}

/// A file's own verdict, without its message (that went to the log and the note).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Own {
    Ready {
        priority: i64,
        at: Option<Timestamp>,
        expires: Option<Timestamp>,
    },
    /// Breaks rule 7, or its last attempt is `unknown`.
    Held,
    Invalid,
    Expired(Timestamp),
    /// Being sent (its last attempt is `sending`): neither judged nor logged again.
    Sending,
    /// Its last attempt finished with this version: only the move is left to do (to
    /// `failed/` or `published/`).
    Finished {
        failed: bool,
    },
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub channel: usize,
    stamp: u64,
    pub version: Version,
    pub own: Own,
    /// How the log has this version: `accepted`, `held`, or not at all.
    pub logged: Option<&'static str>,
    /// Whether a `.held` note lies beside it: known from a listing of its folder or from
    /// writing or removing the note; `None` when not known (a file the watcher reported),
    /// so clearing the note is tried. A first listing of 100,000 files would otherwise
    /// try to remove 100,000 notes that are not there.
    held_note: Option<bool>,
}

/// A verdict to log (if it differs from what the log has) and to show in the note.
#[derive(Debug, Clone)]
pub(super) struct Change {
    pub id: String,
    pub verdict: Verdict,
}

/// What one update of the picture found; the daemon acts on it.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub changes: Vec<Change>,
    /// Left the queue while the log had them pending: to log `withdrawn`.
    pub withdrawn: Vec<(usize, String)>,
    /// Their last attempt finished with this version: (id, state), to move.
    pub finished: Vec<(String, String)>,
    /// Channels whose ready posts changed: to evaluate.
    pub touched: BTreeSet<usize>,
    pub problems: Vec<Diagnostic>,
    pub orphan_notes: Vec<PathBuf>,
    /// The log could not be read: these files were not judged and are tried again later.
    pub log_error: Option<String>,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.changes.extend(other.changes);
        self.withdrawn.extend(other.withdrawn);
        self.finished.extend(other.finished);
        self.touched.extend(other.touched);
        self.problems.extend(other.problems);
        self.orphan_notes.extend(other.orphan_notes);
        if self.log_error.is_none() {
            self.log_error = other.log_error;
        }
    }
}

/// What the picture reads while it updates: the config, the log, and which channels are
/// not judged yet (their server's limits are being looked up).
pub(super) struct Ctx<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub skip: &'a dyn Fn(&str) -> bool,
    pub now: Timestamp,
}

impl Ctx<'_> {
    fn log(&self) -> LogSource<'_> {
        LogSource::new(Some(self.store), self.config)
    }
}

pub(super) struct Picture {
    root: PathBuf,
    settle: Duration,
    index_of: HashMap<String, usize>,
    /// Every judged file of the configured channel folders, by id (`<channel>/<name>`), so
    /// one channel's files are one range.
    files: BTreeMap<Box<str>, Entry>,
    holds: Holds,
    /// Files seen written less than `settle` ago: when to look at them again, and their
    /// stamp then (unchanged at that time: complete).
    settling: BTreeSet<(Instant, Box<str>, u64)>,
    /// Files the watcher said are complete, and when: taken even if just modified.
    ready: HashMap<PathBuf, Instant>,
    /// When a hold by a published post ends (it leaves its window): judge again then.
    hold_ends: HoldEnds,
    /// Post files read so far: what an event costs, for the tests that pin it.
    reads: u64,
    /// The channels as `Holds` sees them.
    views: Vec<crate::cadence::holds::ChannelView>,
    /// While a first listing runs: the posts for `Holds`, indexed once all are known (so
    /// the index's gram order comes from this queue; see `cadence::pending_index`).
    deferred: Option<Vec<QueuedText>>,
}

impl Picture {
    pub fn new(config: &Config, settle: Duration) -> Picture {
        Picture {
            root: config.queue.clone(),
            settle,
            index_of: config
                .channels
                .iter()
                .enumerate()
                .map(|(i, c)| (c.name.clone(), i))
                .collect(),
            files: BTreeMap::new(),
            holds: Holds::new(review::channel_views(config)),
            settling: BTreeSet::new(),
            ready: HashMap::new(),
            hold_ends: HoldEnds::default(),
            reads: 0,
            views: review::channel_views(config),
            deferred: None,
        }
    }

    /// A picture for a new config that keeps the watcher's recent `Ready` marks.
    pub fn renewed(&mut self, config: &Config) -> Picture {
        let mut next = Picture::new(config, self.settle);
        next.ready = std::mem::take(&mut self.ready);
        next
    }

    /// Files in the queue: judged, or waiting for their settle time.
    pub fn len(&self) -> usize {
        self.files.len() + self.settling.len()
    }

    pub fn entry(&self, id: &str) -> Option<&Entry> {
        self.files.get(id)
    }

    pub fn path_of(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// The posts of channel `ci` that could go out: ready and not held.
    pub fn pending(&self, config: &Config, ci: usize) -> Vec<Pending> {
        self.channel_files(config, ci)
            .filter_map(|(id, e)| match &e.own {
                Own::Ready {
                    priority,
                    at,
                    expires,
                } if self.holds.hold(id).is_none() => Some(Pending {
                    id: id.to_string(),
                    priority: *priority,
                    at: *at,
                    expires: *expires,
                }),
                _ => None,
            })
            .collect()
    }

    /// How many posts of channel `ci` are queued (could go out) and held (rules 5 to 7,
    /// unreadable, or an attempt in flight or unsure), as `status` counts them.
    pub fn counts(&self, config: &Config, ci: usize) -> (u32, u32) {
        let (mut queued, mut held) = (0, 0);
        for (id, e) in self.channel_files(config, ci) {
            match e.own {
                Own::Ready { .. } if self.holds.hold(id).is_none() => queued += 1,
                Own::Ready { .. } | Own::Held | Own::Invalid | Own::Sending => held += 1,
                Own::Expired(_) | Own::Finished { .. } => {}
            }
        }
        (queued, held)
    }

    /// The files of channel `ci` found expired when judged.
    pub fn expired(&self, config: &Config, ci: usize) -> Vec<String> {
        self.channel_files(config, ci)
            .filter(|(_, e)| matches!(e.own, Own::Expired(_)))
            .map(|(id, _)| id.to_string())
            .collect()
    }

    /// Whether any enabled channel has a post that could still go out.
    pub fn anything_ready(&self, enabled: impl Fn(usize) -> bool) -> bool {
        self.files.iter().any(|(id, e)| {
            matches!(e.own, Own::Ready { .. })
                && enabled(e.channel)
                && self.holds.hold(id).is_none()
        })
    }

    fn channel_files<'s>(
        &'s self,
        config: &Config,
        ci: usize,
    ) -> impl Iterator<Item = (&'s str, &'s Entry)> + 's {
        let name = &config.channels[ci].name;
        // `/` sorts just below `0`: `<channel>/` up to `<channel>0` is the channel's range.
        let from: Box<str> = format!("{name}/").into();
        let to: Box<str> = format!("{name}0").into();
        self.files
            .range(from..to)
            .map(|(k, e)| (&**k, e))
            .filter(move |(_, e)| e.channel == ci)
    }

    /// The log now has `status` for a file's current version.
    pub fn set_logged(&mut self, id: &str, status: &'static str) {
        if let Some(e) = self.files.get_mut(id) {
            e.logged = Some(status);
        }
    }

    /// The verdict of this file could not be recorded: read and judge it again at the next
    /// listing of its folder.
    pub fn judge_again(&mut self, id: &str) {
        if let Some(e) = self.files.get_mut(id) {
            e.stamp = 0;
        }
    }

    /// The verdict row of this file (its `accepted`) could not be written: not sendable
    /// until it is, and read and judged again (its row written) at the next listing. A post
    /// must not go out with no `accepted` row: the row is never written once it has moved.
    pub fn unrecorded(&mut self, id: &str) {
        if let Some(e) = self.files.get_mut(id) {
            e.stamp = 0;
            if matches!(e.own, Own::Ready { .. }) {
                e.own = Own::Held;
            }
        }
    }

    /// Every file is read and judged again at the next listing (the log could not be used).
    pub fn judge_all_again(&mut self) {
        for e in self.files.values_mut() {
            e.stamp = 0;
        }
    }

    /// The next settle timer.
    pub fn next_settle(&self) -> Option<Instant> {
        self.settling.first().map(|(t, _, _)| *t)
    }

    /// The next end of a hold by a published post.
    pub fn next_hold_end(&self) -> Option<Timestamp> {
        self.hold_ends.first()
    }

    /// The watcher said `path` is complete.
    pub fn mark_ready(&mut self, path: &Path) {
        let now = Instant::now();
        let settle = self.settle;
        self.ready.retain(|_, at| now.duration_since(*at) <= settle);
        self.ready.insert(path.to_path_buf(), now);
    }

    /// Reads the whole queue: every channel folder listed, changed files read. The first
    /// listing (start-up, reload) indexes the pending posts once it has read them all.
    pub fn rescan(&mut self, ctx: &Ctx<'_>) -> Outcome {
        let first = self.holds.is_empty();
        if first {
            self.deferred = Some(Vec::new());
        }
        let names: Vec<&str> = ctx
            .config
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let root = queue::scan_root(&self.root, &names);
        let mut out = Outcome {
            problems: root.problems,
            ..Outcome::default()
        };
        let channels: Vec<(usize, bool)> = names
            .iter()
            .enumerate()
            .map(|(ci, name)| (ci, root.channels.contains(name)))
            .collect();
        out.merge(self.revalidate_all(ctx, &channels));
        if let Some(deferred) = self.deferred.take() {
            out.merge(self.index_deferred(ctx, deferred));
        }
        out
    }

    /// The first listing's posts into `Holds`: under a gram order made from them, all at
    /// once (see [`Holds::insert_all`]).
    fn index_deferred(&mut self, ctx: &Ctx<'_>, deferred: Vec<QueuedText>) -> Outcome {
        let order = crate::cadence::pending_index::GramOrder::of_normalized(deferred.len(), |i| {
            &deferred[i].text
        });
        self.holds = Holds::with_order(self.views.clone(), std::sync::Arc::new(order));
        let (changes, failed) = self.holds.insert_all(deferred, &ctx.log(), ctx.now);
        let mut out = self.hold_changes(ctx, Ok(changes));
        for (c, e) in failed {
            // Not judged against the log: not sendable until it is (read again later).
            self.judge_again(&c.id);
            if let Some(entry) = self.files.get_mut(&*c.id) {
                entry.own = Own::Held;
            }
            out.log_error.get_or_insert(e);
        }
        out
    }

    /// Lists one channel folder and brings its files up to date: new and changed files
    /// read and judged, missing ones removed. `present: false` when the folder is not
    /// there (or may not be read): its files are gone.
    pub fn revalidate(&mut self, ctx: &Ctx<'_>, ci: usize, present: bool) -> Outcome {
        self.revalidate_all(ctx, &[(ci, present)])
    }

    /// [`Picture::revalidate`] for each of these channels, in order, with the files of all
    /// of them read (and made comparable) on every core: a start-up's first listing reads
    /// the whole queue at once.
    fn revalidate_all(&mut self, ctx: &Ctx<'_>, channels: &[(usize, bool)]) -> Outcome {
        let mut out = Outcome::default();
        // Per channel (in `channels`' order): the files gone from its folder.
        let mut gone_of: Vec<Vec<String>> = Vec::with_capacity(channels.len());
        // The files to read, each with the position of its channel in `channels`.
        let mut to_read: Vec<(usize, String, PathBuf, u64, bool)> = Vec::new();
        let root = self.root.clone();
        let config = ctx.config;
        let present = |k: usize| {
            let (ci, present) = channels[k];
            present.then(|| config.channels[ci].name.as_str())
        };
        queue::list_channels(&root, channels.len(), present, |k, listing| {
            let channel = &config.channels[channels[k].0].name;
            out.problems.extend(listing.problems);
            out.orphan_notes.extend(listing.orphan_notes);
            let skipped = (ctx.skip)(channel);
            let mut seen: BTreeSet<String> = BTreeSet::new();
            for listed in listing.entries {
                let Some(id) = id_of(&self.root, &listed.path) else {
                    continue;
                };
                seen.insert(id.clone());
                let unchanged = !listed.is_link
                    && self
                        .files
                        .get(id.as_str())
                        .is_some_and(|e| e.stamp == listed.stamp);
                if !unchanged {
                    if !skipped {
                        to_read.push((k, id, listed.path, listed.stamp, listed.has_note));
                    }
                    continue;
                }
                self.set_held_note(&id, listed.has_note);
                if let Some(Own::Finished { failed }) = self.files.get(id.as_str()).map(|e| &e.own)
                {
                    // A move that failed before (say, `published` was a file): try again.
                    let state = if *failed { "failed" } else { "published" };
                    out.finished.push((id.clone(), state.to_string()));
                }
            }
            gone_of.push(
                self.channel_files(ctx.config, channels[k].0)
                    .map(|(id, _)| id.to_string())
                    .filter(|id| !seen.contains(id))
                    .collect(),
            );
        });
        // Read on every core, judged here in listing order; each channel's gone files are
        // removed after its files were judged, as a listing of that channel alone would.
        let mut done = 0;
        crate::parallel::map_in_order(
            to_read.len(),
            crate::parallel::FILES_FROM,
            |i| {
                let (k, _, path, _, _) = &to_read[i];
                let channel = &config.channels[channels[*k].0].name;
                let file = queue::read_post(&root, channel, path);
                if let Some(Ok(accepted)) = file.as_ref().map(|f| &f.content) {
                    accepted.comparable();
                }
                file
            },
            |i, file| {
                let (k, id, path, stamp, has_note) = &to_read[i];
                for gone in &mut gone_of[done..*k] {
                    for id in std::mem::take(gone) {
                        out.merge(self.remove(ctx, &id, true));
                    }
                }
                done = *k;
                out.merge(self.look_at_read(ctx, channels[*k].0, path, Some(*stamp), file));
                self.set_held_note(id, *has_note);
            },
        );
        for gone in &mut gone_of[done..] {
            for id in std::mem::take(gone) {
                out.merge(self.remove(ctx, &id, true));
            }
        }
        out
    }

    /// The watcher's `Ready` (or `Gone`) for one path: look at that file only.
    pub fn file_event(&mut self, ctx: &Ctx<'_>, path: &Path) -> Outcome {
        if let Some(problem) = queue::unshowable_name(path) {
            return Outcome {
                problems: vec![problem],
                ..Outcome::default()
            };
        }
        let Some(id) = id_of(&self.root, path) else {
            return Outcome::default();
        };
        let Some(&ci) = id.split_once('/').and_then(|(c, _)| self.index_of.get(c)) else {
            // Not a channel (yet): the `Ready` mark is kept for a reload.
            return Outcome::default();
        };
        if path
            .file_name()
            .is_some_and(|n| crate::queue::files::SUB_FOLDERS.iter().any(|s| n == *s))
        {
            // `published` (or `failed`, `expired`) came or went: moves may work now.
            return self.revalidate(ctx, ci, true);
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                let stamp = queue::stamp(&meta);
                self.look_at(ctx, ci, path, Some(stamp))
            }
            _ => self.remove(ctx, &id, true),
        }
    }

    /// Settle timers that are due: files that have stopped changing are taken.
    pub fn settle_due(&mut self, ctx: &Ctx<'_>) -> Outcome {
        let now = Instant::now();
        let mut out = Outcome::default();
        while let Some((at, _, _)) = self.settling.first() {
            if *at > now {
                break;
            }
            let (_, id, stamp_then) = self.settling.pop_first().expect("just looked");
            crate::progress::advanced();
            let Some(&ci) = id.split_once('/').and_then(|(c, _)| self.index_of.get(c)) else {
                continue;
            };
            let path = self.root.join(&*id);
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if !meta.is_dir() => {
                    let stamp = queue::stamp(&meta);
                    if stamp == stamp_then {
                        // Unchanged for the settle time: complete, whatever its time of
                        // modification says (one in the future, from a camera's or another
                        // machine's wrong clock, would otherwise never be old enough).
                        // Marked without `mark_ready`'s sweep of old marks: a queue copied
                        // in settles all at once, and a sweep a file would be quadratic.
                        self.ready.insert(path.clone(), Instant::now());
                    }
                    out.merge(self.look_at(ctx, ci, &path, Some(stamp)))
                }
                _ => out.merge(self.remove(ctx, &id, true)),
            }
        }
        out
    }

    /// Holds by published posts whose window ended: judged again.
    pub fn hold_ends_due(&mut self, ctx: &Ctx<'_>) -> Outcome {
        let ids = self.hold_ends.take_due(ctx.now);
        let refs: Vec<&str> = ids.iter().map(|s| &**s).collect();
        let result = self.holds.recheck(&refs, &ctx.log(), ctx.now);
        self.hold_changes(ctx, result)
    }

    /// `out`, with the verdicts and channels that the log changing near `normalized`
    /// changed (a post just sent, or its attempt ended).
    pub fn and_log_changed_near(
        &mut self,
        ctx: &Ctx<'_>,
        mut out: Outcome,
        normalized: &str,
    ) -> Outcome {
        let near = self.log_changed_near(ctx, normalized);
        out.changes.extend(near.changes);
        out.touched.extend(near.touched);
        out
    }

    /// The log changed near this text: an attempt began (it counts now) or ended (it may
    /// not count any more). The candidates near it look at the log again.
    pub fn log_changed_near(&mut self, ctx: &Ctx<'_>, normalized: &str) -> Outcome {
        let fp = Fingerprint::of_normalized(normalized);
        if fp.normalized().is_empty() {
            return Outcome::default();
        }
        let result = self.holds.log_changed_near(&fp, &ctx.log(), ctx.now);
        self.hold_changes(ctx, result)
    }

    /// An attempt at this file's current version was just recorded (its `sending` row
    /// committed): it leaves the holds and is not judged again until the attempt's outcome
    /// (`refresh` then). What reading it again would find, without the read and the log
    /// query, which were a fifth of the loop's time with 1,000 channels due at one slot.
    pub fn mark_sending(&mut self, ctx: &Ctx<'_>, id: &str) -> Outcome {
        let Some(entry) = self.files.get_mut(id) else {
            return self.refresh(ctx, id);
        };
        entry.own = Own::Sending;
        entry.logged = None;
        let mut out = Outcome::default();
        out.touched.insert(entry.channel);
        let removed = self.holds.remove(id);
        out.merge(self.hold_changes(ctx, Ok(removed)));
        out
    }

    /// Reads one file again (its attempt ended, or it changed just before sending).
    pub fn refresh(&mut self, ctx: &Ctx<'_>, id: &str) -> Outcome {
        let Some(&ci) = id.split_once('/').and_then(|(c, _)| self.index_of.get(c)) else {
            return Outcome::default();
        };
        let path = self.root.join(id);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if !meta.is_dir() => {
                // A new stamp forces the read even if the file itself did not change.
                self.look_at(ctx, ci, &path, None)
            }
            _ => self.remove(ctx, id, true),
        }
    }

    /// A file the log had pending, gone from the queue while the daemon was not running:
    /// `(channel, id)` if it was withdrawn.
    pub fn gone_at_start(&mut self, ctx: &Ctx<'_>, id: &str) -> Option<(usize, String)> {
        let ci = *id.split_once('/').and_then(|(c, _)| self.index_of.get(c))?;
        match ctx.store.withdrawable(id) {
            Ok(true) => Some((ci, id.to_string())),
            Ok(false) => None,
            Err(e) => {
                tracing::error!(file = %id, "could not read the publish log: {e}");
                None
            }
        }
    }

    /// The daemon moved a file out of the queue itself (expired, finished): forget it, no
    /// withdrawal.
    pub fn forget(&mut self, ctx: &Ctx<'_>, id: &str) -> Outcome {
        self.remove(ctx, id, false)
    }

    /// A file as found on disk: settled → read and judged; still being written → a timer.
    fn look_at(&mut self, ctx: &Ctx<'_>, ci: usize, path: &Path, stamp: Option<u64>) -> Outcome {
        let channel = &ctx.config.channels[ci];
        if (ctx.skip)(&channel.name) {
            return Outcome::default();
        }
        let file = queue::read_post(&self.root, &channel.name, path);
        self.look_at_read(ctx, ci, path, stamp, file)
    }

    /// [`Picture::look_at`] once the file was read (`None`: not a post).
    fn look_at_read(
        &mut self,
        ctx: &Ctx<'_>,
        ci: usize,
        path: &Path,
        stamp: Option<u64>,
        file: Option<QueuedFile>,
    ) -> Outcome {
        self.reads += 1;
        let Some(file) = file else {
            // Not a post (any more): a folder, an ignored name, gone.
            let id = id_of(&self.root, path).unwrap_or_default();
            return self.remove(ctx, &id, true);
        };
        let fresh_mark = self
            .ready
            .get(path)
            .is_some_and(|at| Instant::now().duration_since(*at) <= self.settle);
        let stamp = match stamp {
            Some(s) => s,
            None => std::fs::symlink_metadata(path)
                .map(|m| queue::stamp(&m))
                .unwrap_or_default(),
        };
        if !fresh_mark && clock::modified_within(file.modified, self.settle) {
            // Written in place a moment ago: not taken yet. The old version (if any) is
            // not sendable meanwhile, as before.
            let mut out = self.remove(ctx, &file.id, false);
            let age = clock::age(file.modified);
            let wait = self.settle.saturating_sub(age) + Duration::from_millis(10);
            self.settling
                .insert((Instant::now() + wait, file.id.as_str().into(), stamp));
            out.touched.insert(ci);
            return out;
        }
        self.take(ctx, ci, file, stamp)
    }

    /// Judges a file that was read, and whatever its holds touch.
    fn take(&mut self, ctx: &Ctx<'_>, ci: usize, file: QueuedFile, stamp: u64) -> Outcome {
        let mut out = Outcome::default();
        let channel = &ctx.config.channels[ci];
        let mut facts = match ctx.store.file_facts(&file.id, &file.hash) {
            Ok(f) => f,
            Err(e) => {
                out.log_error = Some(e.to_string());
                return out;
            }
        };
        let version = Version::of(&file.hash);
        let id = file.id.clone();
        out.touched.insert(ci);
        if let Some(state) = facts.finished(&file.hash).map(str::to_string) {
            out.finished.push((id.clone(), state.clone()));
            let removed = self.holds.remove(&id);
            out.merge(self.hold_changes(ctx, Ok(removed)));
            let failed = state == "failed";
            self.insert(&id, ci, stamp, version, Own::Finished { failed }, None);
            return out;
        }
        if facts.unsure() == Some("sending") {
            let removed = self.holds.remove(&id);
            out.merge(self.hold_changes(ctx, Ok(removed)));
            let logged = facts.logged.as_deref().and_then(static_status);
            self.insert(&id, ci, stamp, version, Own::Sending, logged);
            return out;
        }
        // Logged now if it is new: it is "first seen" now.
        facts.first_seen = facts.first_seen.or(Some(ctx.now));
        let verdict = review::judge_file(channel, &file, &facts, ctx.now);
        let own = match &verdict {
            Verdict::Ready(p) => Own::Ready {
                priority: p.priority,
                at: p.at,
                expires: p.expires,
            },
            Verdict::Held(_) => Own::Held,
            Verdict::Invalid(_) => Own::Invalid,
            Verdict::Expired(t) => Own::Expired(*t),
        };
        let logged = facts.logged.as_deref().and_then(static_status);
        let queued = review::queued_text(ci, &file, &verdict, &facts);
        self.insert(&id, ci, stamp, version, own, logged);
        if let Some(deferred) = &mut self.deferred {
            // A first listing: judged against the other posts once all are read.
            self.holds.remove(&id);
            match queued {
                Some(q) => deferred.push(q),
                None => out.changes.push(Change { id, verdict }),
            }
            return out;
        }
        let candidate = queued.map(|q| q.candidate());
        let result = match candidate {
            Some(c) => self.holds.upsert(c, &ctx.log(), ctx.now),
            None => Ok(self.holds.remove(&id)),
        };
        let is_candidate = self.holds.contains(&id);
        let held = self.hold_changes(ctx, result);
        if held.log_error.is_some() {
            // Not judged against the log: not sendable until it is.
            self.holds.remove(&id);
            self.files.remove(id.as_str());
            return held;
        }
        out.merge(held);
        if !is_candidate {
            // Its own verdict is all there is (the holds reported nothing for it).
            out.changes.retain(|c| c.id != id);
            out.changes.push(Change { id, verdict });
        }
        out
    }

    fn insert(
        &mut self,
        id: &str,
        channel: usize,
        stamp: u64,
        version: Version,
        own: Own,
        logged: Option<&'static str>,
    ) {
        let held_note = self.files.get(id).and_then(|e| e.held_note);
        self.files.insert(
            id.into(),
            Entry {
                channel,
                stamp,
                version,
                own,
                logged,
                held_note,
            },
        );
    }

    /// Whether `id` may have a `.held` note beside it (see [`Entry`]).
    pub fn may_have_held_note(&self, id: &str) -> bool {
        self.files
            .get(id)
            .is_none_or(|e| e.held_note != Some(false))
    }

    /// `id`'s `.held` note was written (`true`) or removed (`false`).
    pub fn set_held_note(&mut self, id: &str, present: bool) {
        if let Some(e) = self.files.get_mut(id) {
            e.held_note = Some(present);
        }
    }

    /// Takes a file out of the picture; if it left the queue (`withdrawn_if_pending`) and
    /// the log had it pending, it was withdrawn.
    fn remove(&mut self, ctx: &Ctx<'_>, id: &str, withdrawn_if_pending: bool) -> Outcome {
        let mut out = Outcome::default();
        let channel = match self.files.remove(id) {
            Some(entry) => {
                let changes = self.holds.remove(id);
                out.merge(self.hold_changes(ctx, Ok(changes)));
                entry.channel
            }
            // Not in the picture (settling, say) but maybe pending in the log.
            None => match id.split_once('/').and_then(|(c, _)| self.index_of.get(c)) {
                Some(&ci) => ci,
                None => return out,
            },
        };
        out.touched.insert(channel);
        if withdrawn_if_pending {
            self.settling.retain(|(_, s, _)| &**s != id);
        }
        let path = self.root.join(id);
        if path.symlink_metadata().is_err() {
            // Its `.held` note says nothing any more (removed only if the file stays gone).
            out.orphan_notes
                .push(crate::queue::files::note_path(&path, "held"));
        }
        if withdrawn_if_pending && path.symlink_metadata().is_err() {
            match ctx.store.withdrawable(id) {
                Ok(true) => out.withdrawn.push((channel, id.to_string())),
                Ok(false) => {}
                Err(e) => out.log_error = Some(e.to_string()),
            }
        }
        out
    }

    /// Turns hold changes into verdicts; notes when holds by published posts end.
    fn hold_changes(&mut self, ctx: &Ctx<'_>, result: Result<Vec<HoldChange>, String>) -> Outcome {
        let mut out = Outcome::default();
        let changes = match result {
            Ok(c) => c,
            Err(e) => {
                out.log_error = Some(e);
                return out;
            }
        };
        for (id, hold) in changes {
            let Some(entry) = self.files.get(id.as_str()) else {
                continue;
            };
            out.touched.insert(entry.channel);
            let channel = &ctx.config.channels[entry.channel];
            let verdict = match (&hold, &entry.own) {
                (Some(reason), _) => Verdict::Held(review::hold_diagnostic(
                    &self.root.join(&id),
                    channel.platform,
                    reason,
                )),
                (
                    None,
                    Own::Ready {
                        priority,
                        at,
                        expires,
                    },
                ) => Verdict::Ready(Pending {
                    id: id.clone(),
                    priority: *priority,
                    at: *at,
                    expires: *expires,
                }),
                _ => continue,
            };
            self.hold_ends.set(&id, self.holds.past_hold_ends(&id));
            out.changes.push(Change { id, verdict });
        }
        out
    }
}

/// When each hold by a published post ends: by time, for the loop's next timer, and by
/// file, so a file's end is replaced without a walk over everyone's (a start-up judges
/// every file, and each used to walk all the ends found so far).
#[derive(Debug, Default)]
struct HoldEnds {
    by_time: BTreeSet<(Timestamp, Box<str>)>,
    by_file: HashMap<Box<str>, Timestamp>,
}

impl HoldEnds {
    fn first(&self) -> Option<Timestamp> {
        self.by_time.first().map(|(t, _)| *t)
    }

    /// `id`'s hold by a published post now ends at `end`, or there is none.
    fn set(&mut self, id: &str, end: Option<Timestamp>) {
        if let Some((key, old)) = self.by_file.remove_entry(id) {
            self.by_time.remove(&(old, key));
        }
        if let Some(end) = end {
            let id: Box<str> = id.into();
            self.by_time.insert((end, id.clone()));
            self.by_file.insert(id, end);
        }
    }

    /// The files whose hold ended by `now`, taken out.
    fn take_due(&mut self, now: Timestamp) -> Vec<Box<str>> {
        let mut ids = Vec::new();
        while self.first().is_some_and(|at| at <= now) {
            let (_, id) = self.by_time.pop_first().expect("just looked");
            self.by_file.remove(&id);
            ids.push(id);
        }
        ids
    }
}

/// `<channel>/<name>` of a path in the queue, if it is directly in a folder of it.
fn id_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts = rel.components();
    let channel = parts.next()?.as_os_str().to_str()?;
    let name = parts.next()?.as_os_str().to_string_lossy();
    if parts.next().is_some() {
        return None;
    }
    Some(format!("{channel}/{name}"))
}

fn static_status(s: &str) -> Option<&'static str> {
    match s {
        "accepted" => Some("accepted"),
        "held" => Some("held"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! The picture on a real queue folder and a real log: what one event costs and what it
    //! finds.

    use super::*;

    #[test]
    fn a_files_hold_end_is_replaced_not_added_and_taken_once_when_due() {
        let at = |hour: i64| Timestamp::from_second(hour * 3600).unwrap();
        let mut ends = HoldEnds::default();
        ends.set("c/a.md", Some(at(5)));
        ends.set("c/b.md", Some(at(3)));
        ends.set("c/a.md", Some(at(1)));
        assert_eq!(
            ends.first(),
            Some(at(1)),
            "a's new end replaced its old one"
        );
        ends.set("c/b.md", None);
        assert_eq!(ends.take_due(at(0)), Vec::<Box<str>>::new());
        assert_eq!(
            ends.take_due(at(10)),
            [Box::from("c/a.md")],
            "a once, b no more"
        );
        assert_eq!(ends.first(), None);
        assert!(ends.by_file.is_empty());
        ends.set("c/a.md", Some(at(7)));
        assert_eq!(ends.first(), Some(at(7)), "a taken out can be held again");
    }

    struct Setup {
        dir: tempfile::TempDir,
        config: Config,
        store: Store,
    }

    fn setup(channels: &[&str]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let mut text = format!(
            "queue = \"{}\"\ndatabase = \"{}\"\noutbox = \"{}\"\n[defaults]\ntimezone = \"UTC\"\nslots = [\"10:00\"]\n",
            dir.path().join("queue").display(),
            dir.path().join("db.sqlite").display(),
            dir.path().join("outbox").display()
        );
        for c in channels {
            std::fs::create_dir_all(dir.path().join("queue").join(c)).unwrap();
            text.push_str(&format!(
                "[channels.{c}]\nplatform = \"outbox\"\nvariation = true\n"
            ));
        }
        std::fs::write(dir.path().join("c.toml"), text).unwrap();
        let config = crate::config::load(&dir.path().join("c.toml"))
            .unwrap_or_else(|d| panic!("{d:?}"))
            .config;
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        Setup { dir, config, store }
    }

    impl Setup {
        fn post(&self, id: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join("queue").join(id);
            std::fs::write(&path, text).unwrap();
            path
        }

        fn run<T>(&self, f: impl FnOnce(&Ctx<'_>) -> T) -> T {
            let skip = |_: &str| false;
            let ctx = Ctx {
                config: &self.config,
                store: &self.store,
                skip: &skip,
                now: "2026-11-23T08:00:00Z".parse().unwrap(),
            };
            f(&ctx)
        }
    }

    fn statuses(out: &Outcome) -> Vec<(String, &'static str)> {
        let mut v: Vec<(String, &'static str)> = out
            .changes
            .iter()
            .map(|c| (c.id.clone(), c.verdict.status()))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn a_new_file_reads_that_file_only_whatever_the_queue_holds() {
        let s = setup(&["news", "shop"]);
        for i in 0..300 {
            s.post(
                &format!("{}/{i:03}.md", if i % 2 == 0 { "news" } else { "shop" }),
                &format!(
                    "Post {i}: {}\n",
                    (0..12)
                        .map(|k| format!("w{}", (i * 7919 + k * 104_729) % 100_003))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            );
        }
        let mut picture = Picture::new(&s.config, Duration::ZERO);
        let out = s.run(|ctx| picture.rescan(ctx));
        assert_eq!(picture.reads, 300);
        let judged: BTreeSet<&str> = out.changes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(judged.len(), 300);

        let path = s.post("news/new.md", "A post about the winter opening hours.\n");
        picture.mark_ready(&path);
        let out = s.run(|ctx| picture.file_event(ctx, &path));
        assert_eq!(picture.reads, 301, "one event, one file read");
        assert_eq!(statuses(&out), [("news/new.md".to_string(), "accepted")]);
        let news = s
            .config
            .channels
            .iter()
            .position(|c| c.name == "news")
            .unwrap();
        assert_eq!(out.touched, BTreeSet::from([news]));

        // Listing a folder again reads only what changed since.
        let out = s.run(|ctx| picture.revalidate(ctx, news, true));
        assert_eq!(picture.reads, 301, "nothing changed: nothing read");
        assert!(out.changes.is_empty());
        std::fs::remove_file(s.dir.path().join("queue/news/000.md")).unwrap();
        s.post(
            "news/002.md",
            "A new version of post two, rewritten from scratch today.\n",
        );
        let out = s.run(|ctx| picture.revalidate(ctx, news, true));
        assert_eq!(picture.reads, 302, "the changed file only");
        assert_eq!(statuses(&out), [("news/002.md".to_string(), "accepted")]);
        assert_eq!(picture.len(), 300);
    }

    #[tokio::test]
    async fn a_near_duplicate_arriving_holds_itself_and_its_removal_frees_nobody_else() {
        let s = setup(&["x", "m"]);
        let text = "Summer sale begins Friday with new linen shirts in every size and colour.";
        s.post("x/first.md", text);
        let mut picture = Picture::new(&s.config, Duration::ZERO);
        s.run(|ctx| picture.rescan(ctx));
        // Same channel: rule 5 holds the later one, and only it is judged.
        let path = s.post("x/again.md", text);
        let out = s.run(|ctx| picture.file_event(ctx, &path));
        assert_eq!(statuses(&out), [("x/again.md".to_string(), "held")]);
        let x = s
            .config
            .channels
            .iter()
            .position(|c| c.name == "x")
            .unwrap();
        assert_eq!(picture.pending(&s.config, x).len(), 1);
        // The first one goes: the held one is free, found through the index.
        std::fs::remove_file(s.dir.path().join("queue/x/first.md")).unwrap();
        let gone = s.dir.path().join("queue/x/first.md");
        let out = s.run(|ctx| picture.file_event(ctx, &gone));
        assert_eq!(statuses(&out), [("x/again.md".to_string(), "accepted")]);
        assert_eq!(picture.reads, 2, "no other file read");
    }

    #[tokio::test]
    async fn a_file_dropped_in_with_a_line_break_in_its_name_is_a_problem_not_a_post() {
        let s = setup(&["news"]);
        let mut picture = Picture::new(&s.config, Duration::ZERO);
        s.run(|ctx| picture.rescan(ctx));
        let path = s.post("news/evil\nERROR forged.md", "A post.\n");
        let out = s.run(|ctx| picture.file_event(ctx, &path));
        assert!(out.changes.is_empty());
        assert_eq!(picture.len(), 0);
        let shown: Vec<String> = out.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(shown.len(), 1);
        assert!(shown[0].contains(r"evil\nERROR forged.md"), "{shown:?}");
        assert!(!shown[0].contains('\n'), "{shown:?}");
    }

    #[tokio::test]
    async fn a_file_still_being_written_at_start_up_gets_its_own_settle_timer() {
        let s = setup(&["news"]);
        s.post(
            "news/fresh.md",
            "Written a moment ago, maybe not finished yet.\n",
        );
        let mut picture = Picture::new(&s.config, Duration::from_secs(3600));
        let out = s.run(|ctx| picture.rescan(ctx));
        assert!(out.changes.is_empty(), "not taken before it settles");
        assert_eq!(picture.len(), 1, "but counted as queued");
        let timer = picture.next_settle().expect("a settle timer");
        assert!(
            timer > Instant::now() + Duration::from_secs(3500),
            "{timer:?}"
        );
    }
}
