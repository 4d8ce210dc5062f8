//! The daemon in-process against a local platform server (`fake_x`, `fake_bluesky`), on
//! tokio's paused clock: the daemon, the fake and the test share one thread and one clock
//! (`TestClock`, which follows tokio's), a [`Ticker`] keeps the paused clock from jumping
//! past a request's time-out while an answer is on its way, and the daemon's log lines are
//! captured so a test can show what they do (and do not) hold.
//!
//! Waits are on state: the fake's (its own waits) or the publish log's ([`wait_for_log`],
//! which looks again whenever the paused clock has moved a little), each bounded in
//! virtual time so a broken test fails instead of hanging.

#![allow(dead_code)] // Shared by the platform test modules.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadenced::daemon::{self, Control, Options};
use tokio::sync::mpsc;

use crate::fake_server::Ticker;
use crate::support::{Project, TestClock};

/// How far the paused clock may move while nothing can run: far below every time-out.
pub const TICK: Duration = Duration::from_millis(20);

/// A daemon running in-process.
pub struct Running {
    control: mpsc::UnboundedSender<Control>,
    handle: tokio::task::JoinHandle<anyhow::Result<usize>>,
    _ticker: Ticker,
}

/// The options daemon tests use: files taken at once, short sleeps, a 10 s backoff base.
pub fn options() -> Options {
    Options {
        settle: Duration::ZERO,
        max_sleep: Duration::from_secs(60),
        backoff: Duration::from_secs(10),
        ..Options::default()
    }
}

pub fn start(p: &Project, clock: &Arc<TestClock>) -> Running {
    start_with(p, clock, options())
}

pub fn start_with(p: &Project, clock: &Arc<TestClock>, options: Options) -> Running {
    let ticker = Ticker::start(TICK);
    let (control, rx) = mpsc::unbounded_channel();
    let config = p.config();
    let clock: Arc<dyn cadenced::clock::Clock> = clock.clone();
    let handle = tokio::spawn(async move { daemon::run(&config, clock, options, Some(rx)).await });
    Running {
        control,
        handle,
        _ticker: ticker,
    }
}

impl Running {
    /// Stops the daemon (requests in flight finish first); returns how many posts it
    /// published.
    pub async fn stop(self) -> usize {
        self.control.send(Control::Stop).unwrap();
        self.handle.await.unwrap().unwrap()
    }

    pub fn reload(&self) {
        self.control.send(Control::Reload).unwrap();
    }
}

/// One row of the `publish_log` view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub time: String,
    pub status: String,
    pub file: String,
    pub remote_id: Option<String>,
    pub remote_url: Option<String>,
    pub detail: String,
}

pub fn database(p: &Project) -> PathBuf {
    p.root().join("state/cadenced.sqlite")
}

/// Every row of the publish log, in order.
pub fn log(p: &Project) -> Vec<Row> {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        database(p),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return Vec::new();
    };
    let Ok(mut stmt) =
        conn.prepare("SELECT time, status, file, remote_id, remote_url, detail FROM publish_log")
    else {
        return Vec::new();
    };
    stmt.query_map([], |r| {
        Ok(Row {
            time: r.get(0)?,
            status: r.get(1)?,
            file: r.get(2)?,
            remote_id: r.get(3)?,
            remote_url: r.get(4)?,
            detail: r.get(5)?,
        })
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The statuses the log gives `file`, in order.
pub fn statuses(p: &Project, file: &str) -> Vec<String> {
    log(p)
        .into_iter()
        .filter(|r| r.file == file)
        .map(|r| r.status)
        .collect()
}

/// The values attempts kept between tries (`attempt_state`): `(attempt, name, value)`.
pub fn attempt_state(p: &Project) -> Vec<(i64, String, String)> {
    let conn = rusqlite::Connection::open(database(p)).unwrap();
    let mut stmt = conn
        .prepare("SELECT attempt_id, name, value FROM attempt_state ORDER BY attempt_id, name")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// How often [`wait_for_log`] looks, in virtual time.
pub const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// Waits until the publish log satisfies `done`, looking again each time the paused clock
/// moves [`LOOK_AGAIN`] (the daemon writes the log on this thread, so it only changes while
/// the test waits); fails the test after `limit` of virtual time.
pub async fn wait_for_log(p: &Project, what: &str, limit: Duration, done: impl Fn(&[Row]) -> bool) {
    let start = tokio::time::Instant::now();
    loop {
        let rows = log(p);
        if done(&rows) {
            return;
        }
        if start.elapsed() > limit {
            panic!("timed out waiting until {what}; the log: {rows:#?}");
        }
        tokio::time::sleep(LOOK_AGAIN).await;
    }
}

/// Whether `rel` exists under the queue.
pub fn queued(p: &Project, rel: &str) -> bool {
    p.root().join("queue").join(rel).exists()
}

/// A secret in a file of its own (`{ file = "…" }` in the config), mode 0600.
pub fn secret_file(p: &Project, name: &str, value: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = p.root().join("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, value).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Every file under `dir` as bytes, for "this secret is nowhere in there" checks.
pub fn all_bytes_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(all_bytes_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

/// The daemon's log lines, captured while the guard lives (the daemon runs on the test's
/// thread, so a thread-local subscriber sees all of it).
pub struct Logs {
    buffer: Arc<Mutex<Vec<u8>>>,
    _guard: tracing::subscriber::DefaultGuard,
    /// A second registered dispatcher. With only one, tracing decides whether a log line
    /// is wanted by asking the default of whichever thread reaches it first (another test's
    /// thread has none, and its "never" would stick); with two it asks both.
    _other: tracing::Dispatch,
}

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn capture() -> Logs {
        let other = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink(buffer.clone());
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || sink.clone())
            .finish();
        Logs {
            buffer,
            _guard: tracing::subscriber::set_default(subscriber),
            _other: other,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

/// A PNG header of `width` × `height` (enough for a size reader), then filler bytes.
pub fn png(width: u32, height: u32, len: usize) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&[8, 6, 0, 0, 0]);
    out.resize(len.max(out.len()), 0);
    out
}
