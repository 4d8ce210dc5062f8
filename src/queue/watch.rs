//! Watching the queue with inotify (the `notify` crate) and turning its raw events into three
//! hints for the daemon: a post file is complete ([`QueueEvent::Ready`]), a post file went
//! away ([`QueueEvent::Gone`]), or the events cannot be trusted and everything must be
//! scanned again ([`QueueEvent::Rescan`]).
//!
//! **Events are hints, not a record.** Files present before the watcher starts produce no
//! event, a populated folder moved in reports only the folder, and the kernel queue can
//! overflow. So the daemon starts the watcher *first*, then scans the whole queue, and its
//! ingestion is idempotent: a `Ready` for a version it already knows, a `Gone` for a file it
//! does not hold, or a `Rescan` that finds nothing new change nothing. The daemon's own moves
//! (`files::move_into`) also produce a `Gone` for the file moved out of the channel folder.
//!
//! **Completeness** (SPEC "Post files"): a file renamed into place is `Ready` at once; a file
//! written in place is `Ready` once it was closed after writing (`IN_CLOSE_WRITE`) and then
//! left unchanged for `settle` (1 s by default). Any write after the close cancels the
//! countdown until the next close, so a file still being written (`Create`, `Modify` with no
//! close yet) is never `Ready`. `Create` is not a completeness signal (a copy is visible
//! before it is complete) and neither is the absence of events (a slow writer pauses), which
//! is why `notify-debouncer-full` is not used (see `shared/DEPENDENCIES.md`).
//!
//! **What is watched.** Two levels and no more: the queue folder and each folder in it that
//! `is_ignored_dir` does not skip, one inotify watch each (not notify's recursive mode, whose
//! walk fails as a whole on the first folder it cannot read: one staff member's
//! `chmod 700 _media/private` stopped the daemon). Sub-folders of channel folders
//! (`published/`, `failed/`, `expired/`) and ignored folders (`_media/`, `.git/`) are not
//! watched at all; names that `is_ignored_file` skips are dropped by filtering the events. A
//! folder that cannot be watched is logged once and left to the scans (which report it if it
//! is a channel folder); its attributes changing (a `chmod`) makes the watcher try again. A
//! folder created or moved into the queue root, or a channel folder removed or moved away,
//! is a `Rescan`, sent after the new folder is watched: its files get no events of their own.
//! The watcher does not know the configured channels; the daemon ignores events for folders
//! that are not channels (a `Rescan` reports them).
//!
//! The notify callback only forwards into an unbounded channel, so the inotify reader thread
//! never waits for the daemon and the kernel queue does not overflow because of us. The
//! settle countdowns are tokio timers on the monotonic clock (`tokio::time::Instant`, not the
//! wall clock): one `sleep_until` for the earliest deadline, no polling.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::ignore::{is_ignored_dir, is_ignored_file};

/// How long a file written in place must stay unchanged after its last close (SPEC: "about
/// one second").
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(1);

/// What the watcher tells the daemon. Paths are `<queue root>/<channel>/<file name>`, with
/// the queue root spelled as it was given to [`QueueWatcher::start`] (like `QueuedFile::path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueEvent {
    /// A file in a channel folder is complete: read it (again) and take it. May repeat for a
    /// version the daemon already has (a `touch`, a save without changes).
    Ready(PathBuf),
    /// A file in a channel folder was renamed away or deleted: withdraw it if it was pending.
    /// The path may exist again by the time this is handled (an editor that saves by renaming
    /// the old file away and writing a new one); a `Ready` follows once the new file is done.
    Gone(PathBuf),
    /// The events cannot tell what happened (overflow, watcher error, a folder created, moved
    /// in or away): scan the whole queue.
    Rescan,
}

/// A running watch of the queue. Dropping it stops the watch and closes the event channel.
pub struct QueueWatcher {
    // The task owns the inotify watcher (it adds watches for folders that appear); aborting
    // it drops the watcher, which stops the inotify thread and the forwarding callback.
    task: JoinHandle<()>,
    root: PathBuf,
    root_abs: PathBuf,
    writing: Arc<Mutex<HashSet<PathBuf>>>,
    raw_events: Arc<AtomicU64>,
}

impl QueueWatcher {
    /// Watches `queue_root` and its folders with the default settle time. Must be called
    /// inside a tokio runtime. Fails only when the queue folder itself cannot be watched
    /// (missing, unreadable, inotify limits); a folder in it that cannot be watched is
    /// logged and left to the scans.
    pub fn start(
        queue_root: &Path,
    ) -> Result<(QueueWatcher, UnboundedReceiver<QueueEvent>), notify::Error> {
        QueueWatcher::start_with_settle(queue_root, DEFAULT_SETTLE)
    }

    /// [`QueueWatcher::start`] with another settle time (tests use a short one).
    pub fn start_with_settle(
        queue_root: &Path,
        settle: Duration,
    ) -> Result<(QueueWatcher, UnboundedReceiver<QueueEvent>), notify::Error> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| notify::Error::generic("the queue watcher needs a tokio runtime"))?;
        // notify makes a relative watch path absolute against the current directory and
        // reports events under that absolute path: do the same to strip it again.
        let root_abs = std::path::absolute(queue_root).map_err(notify::Error::io)?;

        let (raw_tx, raw_rx) = mpsc::unbounded_channel::<notify::Result<Event>>();
        let raw_events = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&raw_events);
        // Non-blocking: an unbounded send never waits. A send error means the task ended
        // (the watcher is being dropped); nothing to do then.
        let mut watcher = RecommendedWatcher::new(
            move |res: notify::Result<Event>| {
                counted.fetch_add(1, Ordering::Relaxed);
                let _ = raw_tx.send(res);
            },
            // Not opens and read-only closes: the daemon reads every queued file at
            // start-up, and `check` or `plan` run beside it read them all again; each read
            // would be two events for the reader thread and the tracker to throw away
            // (200,000 for a 100,000-file queue, with the kernel queue's 16,384 at risk).
            notify::Config::default().with_event_kinds(
                notify::EventKindMask::CORE | notify::EventKindMask::ACCESS_CLOSE,
            ),
        )?;
        watcher.watch(&root_abs, RecursiveMode::NonRecursive)?;
        let mut folders = Folders {
            watcher,
            root_abs: root_abs.clone(),
            unwatchable: HashSet::new(),
        };
        folders.refresh();

        let (tx, rx) = mpsc::unbounded_channel();
        let writing = Arc::new(Mutex::new(HashSet::new()));
        let tracker = Tracker::new(root_abs.clone(), settle, Arc::clone(&writing));
        let task = runtime.spawn(run(tracker, folders, raw_rx, tx, queue_root.to_path_buf()));
        Ok((
            QueueWatcher {
                task,
                root: queue_root.to_path_buf(),
                root_abs,
                writing,
                raw_events,
            },
            rx,
        ))
    }

    /// How many events inotify (through notify) has delivered so far, whatever became of
    /// them: what the watch costs, for tests and benches.
    pub fn raw_events(&self) -> u64 {
        self.raw_events.load(Ordering::Relaxed)
    }

    /// Whether `path` (a post file, spelled like the events spell it) is being written in
    /// place or is waiting out its settle time. The daemon checks this right before it
    /// re-reads a pending file to send it, and defers a file that is being edited, so it
    /// never sends a half-saved edit of a file it had already accepted.
    pub fn is_being_written(&self, path: &Path) -> bool {
        let rel = path
            .strip_prefix(&self.root)
            .or_else(|_| path.strip_prefix(&self.root_abs));
        match rel {
            Ok(rel) => lock(&self.writing).contains(rel),
            Err(_) => false,
        }
    }
}

impl Drop for QueueWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The inotify watches: the queue folder and each folder in it, one level each.
struct Folders {
    watcher: RecommendedWatcher,
    root_abs: PathBuf,
    /// Folders that could not be watched, so each is logged once until it can be.
    unwatchable: HashSet<PathBuf>,
}

impl Folders {
    /// Watches every folder of the queue root that is not ignored. Adding a watch that
    /// exists changes nothing, so this simply runs again whenever the root's folders change.
    /// Symlinked folders are not watched (as before: the scans read them).
    fn refresh(&mut self) {
        // An unreadable queue folder is the scan's to report.
        let Ok(entries) = std::fs::read_dir(&self.root_abs) else {
            return;
        };
        let mut seen = HashSet::new();
        for entry in entries.flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir())
                || is_ignored_dir(&entry.file_name().to_string_lossy())
            {
                continue;
            }
            let path = entry.path();
            match self.watcher.watch(&path, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    if self.unwatchable.remove(&path) {
                        tracing::info!(folder = %path.display(), "watching the folder now");
                    }
                }
                Err(e) => {
                    if self.unwatchable.insert(path.clone()) {
                        tracing::warn!(
                            folder = %path.display(),
                            "cannot watch the folder ({e}); its files are only seen by full scans \
                             until it can be read (the queue should be readable by the `cadenced` group)"
                        );
                    }
                }
            }
            seen.insert(path);
        }
        self.unwatchable.retain(|p| seen.contains(p));
    }
}

/// The forwarding task: raw events in, `QueueEvent`s out, one timer for the earliest settle
/// deadline. Ends when the watcher is dropped or the daemon drops the receiver.
async fn run(
    mut tracker: Tracker,
    mut folders: Folders,
    mut raw_rx: UnboundedReceiver<notify::Result<Event>>,
    tx: UnboundedSender<QueueEvent>,
    root: PathBuf,
) {
    loop {
        let deadline = tracker.next_deadline();
        tokio::select! {
            raw = raw_rx.recv() => {
                let Some(raw) = raw else { return };
                let now = Instant::now();
                tracker.handle(raw, now);
                // Take what is already queued as one batch, so a burst yields one Rescan.
                while let Ok(raw) = raw_rx.try_recv() {
                    tracker.handle(raw, now);
                }
            }
            () = sleep_until_some(deadline) => tracker.fire(Instant::now()),
        }
        // Whatever calls for a rescan may have changed the root's folders: watch them again
        // before the `Rescan` goes out, so the scan it causes sees every file that arrived
        // before a new folder's watch.
        if tracker.rescan {
            folders.refresh();
        }
        for event in tracker.drain(&root) {
            if tx.send(event).is_err() {
                return;
            }
        }
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The set is only ever inserted into and removed from: still valid after a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where an event's path sits in the queue.
enum Place {
    /// The queue folder itself.
    Root,
    /// An entry of the queue folder (a channel folder, or a stray file).
    Top,
    /// `<channel>/<name>`, not ignored: a candidate post file. Holds the relative path.
    Post(PathBuf),
    /// Anything else: ignored names, ignored folders, inside channel sub-folders, outside.
    Ignored,
}

/// The state of files being written in place, keyed by path relative to the queue root.
struct Tracker {
    root_abs: PathBuf,
    settle: Duration,
    /// `None`: written, not closed since; `Some(t)`: closed, `Ready` at `t` unless written.
    pending: HashMap<PathBuf, Option<Instant>>,
    /// The keys of `pending`, shared with [`QueueWatcher::is_being_written`].
    writing: Arc<Mutex<HashSet<PathBuf>>>,
    /// The rename cookie of the last `Name(To)` handled: its `Name(Both)` twin is skipped.
    last_to: Option<usize>,
    out: Vec<QueueEvent>,
    rescan: bool,
}

impl Tracker {
    fn new(root_abs: PathBuf, settle: Duration, writing: Arc<Mutex<HashSet<PathBuf>>>) -> Self {
        Tracker {
            root_abs,
            settle,
            pending: HashMap::new(),
            writing,
            last_to: None,
            out: Vec::new(),
            rescan: false,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().flatten().min().copied()
    }

    /// The events decided since the last call, a `Rescan` last (after it the daemon reads
    /// everything anyway).
    fn drain(&mut self, root: &Path) -> Vec<QueueEvent> {
        let mut out: Vec<QueueEvent> = self
            .out
            .drain(..)
            .map(|e| match e {
                QueueEvent::Ready(rel) => QueueEvent::Ready(root.join(rel)),
                QueueEvent::Gone(rel) => QueueEvent::Gone(root.join(rel)),
                QueueEvent::Rescan => QueueEvent::Rescan,
            })
            .collect();
        if std::mem::take(&mut self.rescan) {
            out.push(QueueEvent::Rescan);
        }
        out
    }

    /// Files whose settle time is over become `Ready`.
    fn fire(&mut self, now: Instant) {
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, deadline)| deadline.is_some_and(|d| d <= now))
            .map(|(rel, _)| rel.clone())
            .collect();
        for rel in due {
            self.forget(&rel);
            // Removed without an event we could place (say, its folder went away): nothing
            // to take.
            if self.root_abs.join(&rel).symlink_metadata().is_ok() {
                self.out.push(QueueEvent::Ready(rel));
            }
        }
    }

    fn handle(&mut self, raw: notify::Result<Event>, now: Instant) {
        let event = match raw {
            Ok(event) => event,
            Err(e) => {
                // An error may mean lost events (a watch limit reached for a new folder):
                // nothing tells which, so look at everything.
                tracing::warn!("watching the queue: {e}; scanning it again");
                self.rescan = true;
                return;
            }
        };
        tracing::trace!(?event, "queue event");
        if event.need_rescan() {
            // Overflow: every countdown may have missed its close or its write. The scan
            // reads every file; keeping stale states could hold a file as "being written"
            // forever.
            tracing::warn!("the queue's watch events overflowed; scanning it again");
            self.pending.clear();
            lock(&self.writing).clear();
            self.rescan = true;
            return;
        }
        match event.kind {
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                // On inotify, `From` and `To` were already reported on their own; `Both`
                // repeats them with the same cookie. Other backends may send only `Both`.
                if event.tracker().is_some() && event.tracker() == self.last_to {
                    return;
                }
                if let [from, to] = event.paths.as_slice() {
                    self.renamed_from(from);
                    self.renamed_to(to);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                self.last_to = event.tracker();
                for path in &event.paths {
                    self.renamed_to(path);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                for path in &event.paths {
                    self.renamed_from(path);
                }
            }
            EventKind::Modify(ModifyKind::Name(_)) => {
                // A rename without a direction: the path tells what is left.
                for path in &event.paths {
                    if path.symlink_metadata().is_ok() {
                        self.renamed_to(path);
                    } else {
                        self.renamed_from(path);
                    }
                }
            }
            EventKind::Create(kind) => {
                for path in &event.paths {
                    self.created(path, kind);
                }
            }
            EventKind::Remove(kind) => {
                for path in &event.paths {
                    self.removed(path, kind);
                }
            }
            // Attribute changes (chmod, touch's times) do not change a file's content; a
            // folder of the root may have become readable (a `chmod`): watch it and look.
            EventKind::Modify(ModifyKind::Metadata(_)) => {
                for path in &event.paths {
                    if matches!(self.place(path), Place::Top)
                        && path.symlink_metadata().is_ok_and(|m| m.is_dir())
                    {
                        self.rescan = true;
                    }
                }
            }
            EventKind::Modify(_) => {
                // Data written (or truncated): not complete until closed again.
                for path in &event.paths {
                    if let Place::Post(rel) = self.place(path) {
                        self.set(rel, None);
                    }
                }
            }
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for path in &event.paths {
                    if let Place::Post(rel) = self.place(path) {
                        self.set(rel, Some(now + self.settle));
                    }
                }
            }
            // Opens and read-only closes (including the daemon's own reads), `Any`, `Other`.
            _ => {}
        }
    }

    fn renamed_to(&mut self, path: &Path) {
        match self.place(path) {
            Place::Root | Place::Ignored => {}
            Place::Top => {
                // A folder moved in: its files get no events (notify #727). Follows a
                // symlink, like the scan does for a linked channel folder.
                if path.metadata().is_ok_and(|m| m.is_dir()) {
                    self.rescan = true;
                }
            }
            Place::Post(rel) => match path.symlink_metadata() {
                // A sub-folder moved into a channel folder: ignored, like `published/`.
                Ok(meta) if meta.is_dir() => {}
                // A rename is atomic: the file is complete.
                Ok(_) => {
                    self.forget(&rel);
                    self.out.push(QueueEvent::Ready(rel));
                }
                // Already renamed on again; its `From` follows.
                Err(_) => {}
            },
        }
    }

    fn renamed_from(&mut self, path: &Path) {
        match self.place(path) {
            // The queue folder itself moved (notify reports its `MOVE_SELF` as `From`), or
            // an entry of it, maybe a channel folder whose files get no events of their own.
            Place::Root | Place::Top => self.rescan = true,
            Place::Post(rel) => {
                self.forget(&rel);
                self.out.push(QueueEvent::Gone(rel));
            }
            Place::Ignored => {}
        }
    }

    fn created(&mut self, path: &Path, kind: CreateKind) {
        match self.place(path) {
            Place::Root | Place::Ignored => {}
            Place::Top => {
                if kind == CreateKind::Folder || path.metadata().is_ok_and(|m| m.is_dir()) {
                    // `mkdir` then files written fast: some may land before notify adds the
                    // new folder's watch.
                    self.rescan = true;
                }
            }
            Place::Post(rel) => {
                if kind == CreateKind::Folder {
                    return;
                }
                match path.symlink_metadata() {
                    Ok(meta) if meta.is_dir() => {}
                    // Created empty and being written: wait for the close.
                    Ok(meta) if meta.is_file() => self.set(rel, None),
                    // A symlink, FIFO, socket or device appears complete (and the safe read
                    // reports what it is): take it now, or nothing would ever say so.
                    Ok(_) => {
                        self.forget(&rel);
                        self.out.push(QueueEvent::Ready(rel));
                    }
                    // Gone already; its `Remove` or `From` follows.
                    Err(_) => {}
                }
            }
        }
    }

    fn removed(&mut self, path: &Path, kind: RemoveKind) {
        match self.place(path) {
            Place::Root => self.rescan = true,
            Place::Top => {
                if kind != RemoveKind::File {
                    self.rescan = true;
                }
            }
            Place::Post(rel) => {
                if kind == RemoveKind::Folder {
                    return;
                }
                self.forget(&rel);
                self.out.push(QueueEvent::Gone(rel));
            }
            Place::Ignored => {}
        }
    }

    fn set(&mut self, rel: PathBuf, deadline: Option<Instant>) {
        lock(&self.writing).insert(rel.clone());
        self.pending.insert(rel, deadline);
    }

    fn forget(&mut self, rel: &Path) {
        if self.pending.remove(rel).is_some() {
            lock(&self.writing).remove(rel);
        }
    }

    fn place(&self, path: &Path) -> Place {
        let Ok(rel) = path.strip_prefix(&self.root_abs) else {
            return Place::Ignored;
        };
        let mut names = Vec::with_capacity(2);
        for component in rel.components() {
            match component {
                Component::Normal(name) => names.push(name),
                // Not produced by notify (it joins names onto the watched path).
                _ => return Place::Ignored,
            }
            if names.len() > 2 {
                // Inside a sub-folder of a channel folder.
                return Place::Ignored;
            }
        }
        match names.as_slice() {
            [] => Place::Root,
            [top] if is_ignored_dir(&top.to_string_lossy()) => Place::Ignored,
            [_] => Place::Top,
            [channel, name] => {
                if is_ignored_dir(&channel.to_string_lossy())
                    || is_ignored_file(&name.to_string_lossy())
                {
                    Place::Ignored
                } else {
                    Place::Post(rel.to_path_buf())
                }
            }
            _ => Place::Ignored,
        }
    }
}

#[cfg(test)]
mod tests {
    //! The tracker's decisions on synthetic events (the real inotify runs in
    //! `tests/it/watch.rs`).

    use super::*;
    use notify::event::{DataChange, Flag};

    fn tracker(root: &Path) -> Tracker {
        Tracker::new(
            root.to_path_buf(),
            Duration::from_millis(200),
            Arc::default(),
        )
    }

    fn ev(kind: EventKind, path: &Path) -> notify::Result<Event> {
        Ok(Event::new(kind).add_path(path.to_path_buf()))
    }

    const DATA: EventKind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    const CLOSE_WRITE: EventKind = EventKind::Access(AccessKind::Close(AccessMode::Write));

    #[test]
    fn written_in_place_is_ready_only_after_close_and_settle() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("shop")).unwrap();
        let file = root.join("shop/sale.md");
        std::fs::write(&file, "hi").unwrap();
        let mut t = tracker(root);
        let t0 = Instant::now();
        t.handle(ev(EventKind::Create(CreateKind::File), &file), t0);
        t.handle(ev(DATA, &file), t0);
        assert_eq!(t.next_deadline(), None, "no countdown while open");
        t.fire(t0 + Duration::from_secs(60));
        assert!(t.drain(root).is_empty());
        assert!(lock(&t.writing).contains(Path::new("shop/sale.md")));

        t.handle(ev(CLOSE_WRITE, &file), t0);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(200)));
        // Written again before the settle time is over: the countdown stops.
        t.handle(ev(DATA, &file), t0 + Duration::from_millis(100));
        assert_eq!(t.next_deadline(), None);
        let t1 = t0 + Duration::from_millis(150);
        t.handle(ev(CLOSE_WRITE, &file), t1);
        t.fire(t1 + Duration::from_millis(199));
        assert!(t.drain(root).is_empty());
        t.fire(t1 + Duration::from_millis(200));
        assert_eq!(
            t.drain(root),
            vec![QueueEvent::Ready(root.join("shop/sale.md"))]
        );
        assert!(lock(&t.writing).is_empty());
    }

    #[test]
    fn renames_ignored_names_subfolders_and_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("shop/published")).unwrap();
        std::fs::write(root.join("shop/b.md"), "hi").unwrap();
        let now = Instant::now();
        let mut t = tracker(root);

        let from = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::From)))
            .add_path(root.join("shop/a.md"))
            .set_tracker(7);
        let to = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::To)))
            .add_path(root.join("shop/b.md"))
            .set_tracker(7);
        let both = Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
            .add_path(root.join("shop/a.md"))
            .add_path(root.join("shop/b.md"))
            .set_tracker(7);
        for e in [from, to, both] {
            t.handle(Ok(e), now);
        }
        assert_eq!(
            t.drain(root),
            vec![
                QueueEvent::Gone(root.join("shop/a.md")),
                QueueEvent::Ready(root.join("shop/b.md")),
            ]
        );

        for name in [
            "shop/.x.md",
            "shop/x.md~",
            "shop/x.md.held",
            "shop/published/x.md",
        ] {
            t.handle(
                ev(EventKind::Create(CreateKind::File), &root.join(name)),
                now,
            );
            t.handle(ev(CLOSE_WRITE, &root.join(name)), now);
        }
        t.handle(
            ev(
                EventKind::Create(CreateKind::Folder),
                &root.join("shop/published"),
            ),
            now,
        );
        t.handle(
            ev(EventKind::Create(CreateKind::Folder), &root.join("_media")),
            now,
        );
        t.fire(now + Duration::from_secs(5));
        assert!(t.drain(root).is_empty());

        t.handle(
            ev(EventKind::Create(CreateKind::Folder), &root.join("news")),
            now,
        );
        assert_eq!(t.drain(root), vec![QueueEvent::Rescan]);

        t.handle(ev(DATA, &root.join("shop/c.md")), now);
        t.handle(Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)), now);
        t.handle(Err(notify::Error::generic("boom")), now);
        assert_eq!(t.drain(root), vec![QueueEvent::Rescan], "one per batch");
        assert!(lock(&t.writing).is_empty(), "overflow forgets stale states");
    }
}
