//! The queue watcher on real inotify, and the daemon's file moves and notes, in temp dirs.
//!
//! No sleep is used to synchronise: tests await the event channel with a time-out, and
//! "nothing happened" is proven by a *marker*: a file renamed into another channel folder
//! after the action under test. Events come in order, so when the marker's `Ready` arrives,
//! every event the action caused has arrived before it. Where the absence must also outlast
//! the settle time, a bounded wait of twice the settle time must pass without an event.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cadenced::queue::files;
use cadenced::queue::watch::{QueueEvent, QueueWatcher};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

const SETTLE: Duration = Duration::from_millis(200);
const PATIENCE: Duration = Duration::from_secs(5);

/// `queue/` with a `shop` channel and a `zz-marker` channel, and `outside/` on the same
/// filesystem to rename from.
struct Setup {
    _dir: tempfile::TempDir,
    queue: PathBuf,
    outside: PathBuf,
    markers: u32,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let queue = dir.path().join("queue");
        let outside = dir.path().join("outside");
        for d in [queue.join("shop"), queue.join("zz-marker"), outside.clone()] {
            fs::create_dir_all(d).unwrap();
        }
        Setup {
            _dir: dir,
            queue,
            outside,
            markers: 0,
        }
    }

    fn q(&self, rel: &str) -> PathBuf {
        self.queue.join(rel)
    }

    /// Writes `outside/<name>` and renames it to `queue/<rel>`.
    fn rename_in(&self, name: &str, rel: &str, content: &str) -> PathBuf {
        let from = self.outside.join(name);
        fs::write(&from, content).unwrap();
        let to = self.q(rel);
        fs::rename(&from, &to).unwrap();
        to
    }

    /// Renames a marker in and returns every event that came before its `Ready`.
    async fn until_marker(&mut self, rx: &mut UnboundedReceiver<QueueEvent>) -> Vec<QueueEvent> {
        self.markers += 1;
        let name = format!("marker-{}.md", self.markers);
        let marker = self.rename_in(&name, &format!("zz-marker/{name}"), "marker");
        let mut before = Vec::new();
        loop {
            match next(rx).await {
                QueueEvent::Ready(p) if p == marker => return before,
                other => before.push(other),
            }
        }
    }
}

async fn next(rx: &mut UnboundedReceiver<QueueEvent>) -> QueueEvent {
    timeout(PATIENCE, rx.recv())
        .await
        .expect("no queue event within 5 s")
        .expect("the watcher stopped")
}

/// A bounded wait that must see no event.
async fn assert_quiet(rx: &mut UnboundedReceiver<QueueEvent>, wait: Duration) {
    if let Ok(event) = timeout(wait, rx.recv()).await {
        panic!("expected no event for {wait:?}, got {event:?}");
    }
}

fn start(s: &Setup) -> (QueueWatcher, UnboundedReceiver<QueueEvent>) {
    QueueWatcher::start_with_settle(&s.queue, SETTLE).expect("watch the queue")
}

#[tokio::test]
async fn renamed_in_file_is_ready_at_once() {
    let s = Setup::new();
    let (_w, mut rx) = start(&s);
    let mut latencies = Vec::new();
    for i in 0..20 {
        let from = s.outside.join(format!("p{i}.md"));
        fs::write(&from, "Black Friday").unwrap();
        let to = s.q(&format!("shop/p{i}.md"));
        let t = Instant::now();
        fs::rename(&from, &to).unwrap();
        assert_eq!(next(&mut rx).await, QueueEvent::Ready(to));
        latencies.push(t.elapsed());
    }
    latencies.sort();
    eprintln!(
        "rename → Ready: median {:?}, max {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );
    // Not held back by the settle time.
    assert!(latencies[latencies.len() / 2] < SETTLE, "{latencies:?}");
}

#[tokio::test]
async fn file_written_in_place_is_ready_only_after_close_and_settle() {
    let mut s = Setup::new();
    let (w, mut rx) = start(&s);
    let path = s.q("shop/slow.md");
    let mut file = File::create(&path).unwrap();
    file.write_all(b"+++\npriority = 1\n+++\n").unwrap();
    file.flush().unwrap();
    // Every event of the first chunk has been seen, and none was a Ready.
    assert_eq!(s.until_marker(&mut rx).await, vec![]);
    assert!(w.is_being_written(&path));
    // Open, written, not closed: still nothing after more than the settle time.
    assert_quiet(&mut rx, SETTLE * 2).await;

    file.write_all(b"Black Friday: 30% off").unwrap();
    file.flush().unwrap();
    assert_eq!(s.until_marker(&mut rx).await, vec![]);
    assert_quiet(&mut rx, SETTLE * 2).await;

    let closed = Instant::now();
    drop(file);
    assert_eq!(next(&mut rx).await, QueueEvent::Ready(path.clone()));
    let waited = closed.elapsed();
    eprintln!("close → Ready: {waited:?} (settle {SETTLE:?})");
    assert!(waited >= SETTLE, "{waited:?}");
    assert!(!w.is_being_written(&path));
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "+++\npriority = 1\n+++\nBlack Friday: 30% off"
    );
}

#[tokio::test]
async fn writing_again_after_a_close_restarts_the_countdown() {
    let mut s = Setup::new();
    let (_w, mut rx) = start(&s);
    let path = s.q("shop/twice.md");
    fs::write(&path, "first").unwrap();
    // Closed once; reopened and written before the settle time is over, and kept open.
    let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b" second").unwrap();
    file.flush().unwrap();
    assert_eq!(s.until_marker(&mut rx).await, vec![]);
    assert_quiet(&mut rx, SETTLE * 2).await;
    drop(file);
    assert_eq!(next(&mut rx).await, QueueEvent::Ready(path));
}

#[tokio::test]
async fn copy_from_elsewhere_gives_one_ready() {
    let mut s = Setup::new();
    let (_w, mut rx) = start(&s);
    let source = s.outside.join("big.md");
    // Large enough for several writes (Create, many Modify, Close).
    fs::write(&source, "Lorem ipsum dolor sit amet. ".repeat(40_000)).unwrap();
    let status = Command::new("cp")
        .arg(&source)
        .arg(s.q("shop/"))
        .status()
        .unwrap();
    assert!(status.success());
    let copied = s.q("shop/big.md");
    assert_eq!(next(&mut rx).await, QueueEvent::Ready(copied.clone()));
    assert_eq!(fs::read(&copied).unwrap(), fs::read(&source).unwrap());
    assert_eq!(s.until_marker(&mut rx).await, vec![], "exactly one Ready");
}

#[tokio::test]
async fn deleted_or_renamed_away_is_gone() {
    let s = Setup::new();
    let (_w, mut rx) = start(&s);
    let a = s.rename_in("a.md", "shop/a.md", "a");
    assert_eq!(next(&mut rx).await, QueueEvent::Ready(a.clone()));
    fs::remove_file(&a).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Gone(a));

    let b = s.rename_in("b.md", "shop/b.md", "b");
    assert_eq!(next(&mut rx).await, QueueEvent::Ready(b.clone()));
    fs::rename(&b, s.outside.join("b.md")).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Gone(b));

    // Renamed inside the channel folder: the old name goes, the new one is complete.
    let c = s.rename_in("c.md", "shop/c.md", "c");
    assert_eq!(next(&mut rx).await, QueueEvent::Ready(c.clone()));
    let d = s.q("shop/d.md");
    fs::rename(&c, &d).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Gone(c));
    assert_eq!(next(&mut rx).await, QueueEvent::Ready(d));
}

#[tokio::test]
async fn folders_moved_in_or_created_rescan() {
    let mut s = Setup::new();
    let (_w, mut rx) = start(&s);
    // A channel folder moved in already populated: its files get no events of their own.
    let staged = s.outside.join("news");
    fs::create_dir(&staged).unwrap();
    fs::write(staged.join("x.md"), "x").unwrap();
    fs::write(staged.join("y.md"), "y").unwrap();
    fs::rename(&staged, s.q("news")).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Rescan);

    fs::create_dir(s.q("blog")).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Rescan);

    // A channel folder moved away: its files are gone without events of their own.
    fs::rename(s.q("news"), s.outside.join("news")).unwrap();
    assert_eq!(next(&mut rx).await, QueueEvent::Rescan);

    // A populated folder moved into a channel folder is a sub-folder: ignored.
    let sub = s.outside.join("drafts");
    fs::create_dir(&sub).unwrap();
    fs::write(sub.join("z.md"), "z").unwrap();
    fs::rename(&sub, s.q("shop/drafts")).unwrap();
    fs::write(s.q("shop/drafts/later.md"), "later").unwrap();
    assert_eq!(s.until_marker(&mut rx).await, vec![]);
}

#[tokio::test]
async fn ignored_names_and_folders_produce_nothing() {
    let mut s = Setup::new();
    fs::create_dir_all(s.q("_media")).unwrap();
    let (_w, mut rx) = start(&s);
    let names = [
        ".hidden.md",
        "sale.md~",
        "sale.md.tmp",
        "sale.md.part",
        ".sale.md.swp",
        "sale.md.held",
        "sale.md.error",
    ];
    for name in names {
        fs::write(s.q(&format!("shop/{name}")), "written in place").unwrap();
        // Then renamed over by a complete version.
        s.rename_in(name, &format!("shop/{name}"), "renamed in");
    }
    fs::write(s.q("_media/photo.md"), "not a post").unwrap();
    fs::create_dir(s.q(".git")).unwrap();
    fs::write(s.q(".git/HEAD"), "ref").unwrap();
    // The daemon's own notes (a temp file and a rename) are ignored names too.
    let post = s.q("shop/post.md");
    files::write_note(&post, "held", "held: because").unwrap();
    assert_quiet(&mut rx, SETTLE * 2).await;
    assert_eq!(s.until_marker(&mut rx).await, vec![]);
}

#[tokio::test]
async fn files_inside_channel_subfolders_produce_nothing() {
    let mut s = Setup::new();
    let (_w, mut rx) = start(&s);
    let sale = s.rename_in("sale.md", "shop/sale.md", "sale");
    assert_eq!(next(&mut rx).await, QueueEvent::Ready(sale.clone()));
    // The daemon's own move: the channel folder loses the file (a Gone the daemon's
    // idempotent ingestion ignores); `published/` and its contents produce nothing.
    let moved = files::move_into(&sale, "published").unwrap();
    assert_eq!(moved, s.q("shop/published/sale.md"));
    assert_eq!(next(&mut rx).await, QueueEvent::Gone(sale));
    fs::write(s.q("shop/published/in-place.md"), "x").unwrap();
    s.rename_in("r.md", "shop/published/r.md", "r");
    fs::create_dir(s.q("shop/failed")).unwrap();
    fs::write(s.q("shop/failed/f.md"), "f").unwrap();
    assert_quiet(&mut rx, SETTLE * 2).await;
    assert_eq!(s.until_marker(&mut rx).await, vec![]);
}

#[tokio::test]
async fn paths_are_spelled_like_the_queue_root_given() {
    // Paths in events are spelled like the queue root given to `start`, as `scan` spells
    // them; here a root with a `..` in it.
    let s = Setup::new();
    let spelled = s.outside.join("../queue");
    let (_w, mut rx) = QueueWatcher::start_with_settle(&spelled, SETTLE).unwrap();
    s.rename_in("a.md", "shop/a.md", "a");
    assert_eq!(
        next(&mut rx).await,
        QueueEvent::Ready(spelled.join("shop/a.md"))
    );
}

#[tokio::test]
async fn reading_queued_files_makes_no_watch_events() {
    // notify 8 watched opens and read-only closes too: every file the daemon read (all of
    // them at start-up), and every file `check` or `plan` read beside it, came back as two
    // events for the watcher to throw away.
    let mut s = Setup::new();
    for i in 0..200 {
        fs::write(s.q(&format!("shop/{i:03}.md")), "queued before the watch").unwrap();
    }
    let (w, mut rx) = start(&s);
    let before = w.raw_events();
    for i in 0..200 {
        assert_eq!(
            read(&s.q(&format!("shop/{i:03}.md"))),
            "queued before the watch"
        );
    }
    assert_eq!(s.until_marker(&mut rx).await, vec![]);
    assert_eq!(
        w.raw_events() - before,
        1,
        "reading 200 queued files made watch events (the marker's rename is the one expected)"
    );
}

// --- moving files and notes -------------------------------------------------------------

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn moves_number_taken_names_and_never_overwrite() {
    let s = Setup::new();
    let sale = s.q("shop/sale.md");
    let mut moved = Vec::new();
    for content in ["one", "two", "three"] {
        fs::write(&sale, content).unwrap();
        moved.push(files::move_into(&sale, "published").unwrap());
    }
    assert_eq!(
        moved,
        ["sale.md", "sale-2.md", "sale-3.md"].map(|n| s.q("shop/published").join(n))
    );
    for (path, content) in moved.iter().zip(["one", "two", "three"]) {
        assert_eq!(read(path), content);
    }
    assert!(!sale.exists());

    // A name a person put there is skipped, not replaced, and gaps are not refilled
    // by overwriting.
    fs::write(s.q("shop/published/plain.md"), "theirs").unwrap();
    fs::write(s.q("shop/published/plain-2.md"), "theirs too").unwrap();
    fs::write(s.q("shop/plain.md"), "ours").unwrap();
    let to = files::move_into(&s.q("shop/plain.md"), "published").unwrap();
    assert_eq!(to, s.q("shop/published/plain-3.md"));
    assert_eq!(read(&s.q("shop/published/plain.md")), "theirs");
    assert_eq!(read(&s.q("shop/published/plain-2.md")), "theirs too");
    assert_eq!(read(&to), "ours");

    // A file without an extension.
    fs::write(s.q("shop/notes"), "a").unwrap();
    files::move_into(&s.q("shop/notes"), "expired").unwrap();
    fs::write(s.q("shop/notes"), "c").unwrap();
    assert_eq!(
        files::move_into(&s.q("shop/notes"), "expired").unwrap(),
        s.q("shop/expired/notes-2")
    );

    // A missing file is an error, and nothing is created in its name.
    let e = files::move_into(&s.q("shop/missing.md"), "failed").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn notes_are_written_atomically_and_move_with_the_file() {
    let s = Setup::new();
    let sale = s.q("shop/sale.md");
    fs::write(&sale, "sale").unwrap();
    files::write_note(&sale, "held", "first reason").unwrap();
    files::write_note(&sale, "held", "second reason\n").unwrap();
    assert_eq!(read(&s.q("shop/sale.md.held")), "second reason\n");
    // No temporary file is left behind.
    assert_eq!(names(&s.q("shop")), ["sale.md", "sale.md.held"]);

    let to = files::move_into(&sale, "expired").unwrap();
    assert_eq!(to, s.q("shop/expired/sale.md"));
    assert_eq!(names(&s.q("shop")), ["expired"]);
    assert_eq!(names(&s.q("shop/expired")), ["sale.md", "sale.md.held"]);
    assert_eq!(read(&s.q("shop/expired/sale.md.held")), "second reason\n");

    // Numbered files take their notes under the new name.
    fs::write(&sale, "sale again").unwrap();
    files::write_note(&sale, "held", "why").unwrap();
    let to = files::move_into(&sale, "expired").unwrap();
    assert_eq!(to, s.q("shop/expired/sale-2.md"));
    assert_eq!(read(&s.q("shop/expired/sale-2.md.held")), "why");
    assert_eq!(read(&s.q("shop/expired/sale.md.held")), "second reason\n");

    // An error note beside a failed file.
    fs::write(&sale, "bad").unwrap();
    let failed = files::move_into(&sale, "failed").unwrap();
    files::write_note(&failed, "error", "the token was refused").unwrap();
    assert_eq!(names(&s.q("shop/failed")), ["sale.md", "sale.md.error"]);
}

#[test]
fn held_notes_are_cleared_and_only_they() {
    let s = Setup::new();
    let sale = s.q("shop/sale.md");
    fs::write(&sale, "sale").unwrap();
    assert!(!files::clear_held_note(&sale).unwrap());
    files::write_note(&sale, "held", "why").unwrap();
    assert!(files::clear_held_note(&sale).unwrap());
    assert_eq!(names(&s.q("shop")), ["sale.md"]);
    assert_eq!(read(&sale), "sale");
}

#[test]
fn a_note_never_writes_through_a_symlink() {
    let s = Setup::new();
    let sale = s.q("shop/sale.md");
    fs::write(&sale, "sale").unwrap();
    let precious = s.outside.join("precious");
    fs::write(&precious, "keep me").unwrap();
    std::os::unix::fs::symlink(&precious, s.q("shop/sale.md.held")).unwrap();
    // A planted temporary name, too.
    let tmp = s.q(&format!("shop/.sale.md.held.{}.tmp", std::process::id()));
    std::os::unix::fs::symlink(&precious, &tmp).unwrap();
    files::write_note(&sale, "held", "why").unwrap();
    assert_eq!(read(&precious), "keep me");
    assert_eq!(read(&s.q("shop/sale.md.held")), "why");
    assert!(!s.q("shop/sale.md.held").is_symlink());
    assert!(tmp.symlink_metadata().is_err());
}

#[test]
fn cjk_names_move_and_take_their_notes() {
    let s = Setup::new();
    for name in ["セール告知.md", "促销 活动.md", "세일.txt"] {
        let file = s.q(&format!("shop/{name}"));
        for round in 1..=2 {
            fs::write(&file, format!("{name} {round}")).unwrap();
            files::write_note(&file, "held", "理由").unwrap();
            let to = files::move_into(&file, "published").unwrap();
            let (stem, ext) = name.rsplit_once('.').unwrap();
            let expected = if round == 1 {
                name.to_string()
            } else {
                format!("{stem}-2.{ext}")
            };
            assert_eq!(to, s.q("shop/published").join(&expected));
            assert_eq!(read(&to), format!("{name} {round}"));
            assert_eq!(read(&files::note_path(&to, "held")), "理由");
        }
    }
    assert_eq!(names(&s.q("shop")), ["published"]);
}
