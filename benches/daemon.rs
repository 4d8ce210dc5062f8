//! The daemon at scale, measured from outside: the release binary against a real queue
//! folder, a real SQLite log and (for publishing) a loopback HTTP server. Each figure is
//! printed with a baseline measured in the same run where one exists, as a ratio, because
//! this machine is shared and its speed drifts.
//!
//! Run all of it with `cargo bench --bench daemon`, or one part with
//! `cargo bench --bench daemon -- <part>...`; the parts are listed in [`PARTS`]. Sizes can be
//! made smaller for a quick look (`-- intake --files 2000 --history 10000`). Nothing here
//! asserts: the targets are in BENCHMARKS.md, next to the figures.
//!
//! The corpus is generated (a fixed-seed PRNG over made-up words), so runs compare with each
//! other; every text is distinct enough that no post is held as a near-duplicate.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use rusqlite::{Connection, OpenFlags, params};

use cadenced::cadence::similarity::normalize;
use cadenced::clock::{Clock, SystemClock};

const PARTS: &[&str] = &[
    "intake", "startup", "drops", "rss", "idle", "neardup", "pending", "plan", "log", "burst",
    "size",
];

const BIN: &str = env!("CARGO_BIN_EXE_cadenced");

/// `--keep`: projects are kept (and named) rather than removed, to profile a command on one.
static KEEP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; it means nothing here.
    args.retain(|a| a != "--bench");
    let mut opts = Opts::default();
    let mut parts: Vec<String> = Vec::new();
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.replace('_', "").parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match a.as_str() {
            "--files" => opts.files = Some(num("--files")),
            "--history" => opts.history = Some(num("--history")),
            "--drops" => opts.drops = num("--drops"),
            "--seconds" => opts.seconds = num("--seconds") as u64,
            "--keep" => KEEP.store(true, std::sync::atomic::Ordering::Relaxed),
            p if PARTS.contains(&p) => parts.push(p.to_string()),
            other => panic!("unknown argument {other:?}; parts: {PARTS:?}"),
        }
    }
    if parts.is_empty() {
        parts = PARTS.iter().map(|s| s.to_string()).collect();
    }
    println!(
        "cadenced {} ({}), {} CPUs",
        env!("CARGO_PKG_VERSION"),
        BIN,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for part in &parts {
        println!("\n## {part}");
        match part.as_str() {
            "intake" => intake(&opts),
            "startup" => startup(&opts),
            "drops" => drops(&opts),
            "rss" => rss(&opts),
            "idle" => idle(&opts),
            "neardup" => neardup(&opts),
            "pending" => pending(&opts),
            "plan" => plan(&opts),
            "log" => log_query(&opts),
            "burst" => burst(&opts),
            "size" => size(),
            _ => unreachable!(),
        }
    }
}

#[derive(Debug)]
struct Opts {
    files: Option<usize>,
    history: Option<usize>,
    drops: usize,
    seconds: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            files: None,
            history: None,
            drops: 200,
            seconds: 60,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------

/// SplitMix64: tiny, deterministic, good enough to pick words.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Letters by their frequency in English text (per mille), so made-up words share grams the
/// way real words do.
const LETTERS: &[(char, u32)] = &[
    ('e', 127),
    ('t', 91),
    ('a', 82),
    ('o', 75),
    ('i', 70),
    ('n', 67),
    ('s', 63),
    ('h', 61),
    ('r', 60),
    ('d', 43),
    ('l', 40),
    ('c', 28),
    ('u', 28),
    ('m', 24),
    ('w', 24),
    ('f', 22),
    ('g', 20),
    ('y', 20),
    ('p', 19),
    ('b', 15),
    ('v', 10),
    ('k', 8),
    ('j', 2),
    ('x', 2),
    ('q', 1),
    ('z', 1),
];

/// A vocabulary of 20,000 made-up words used with Zipf's law (the word of rank r about
/// 1/r as often as the most common one), as words are in real posts: a few words in most
/// posts, most words rare. Fixed seed: every run has the same words.
struct Vocabulary {
    words: Vec<String>,
    /// Cumulative Zipf weights, for picking a word by rank.
    cumulative: Vec<f64>,
}

impl Vocabulary {
    fn new() -> Vocabulary {
        let mut rng = Rng(0xC0FFEE);
        let total: u32 = LETTERS.iter().map(|l| l.1).sum();
        let letter = |rng: &mut Rng| {
            let mut pick = (rng.next() % u64::from(total)) as u32;
            for &(c, w) in LETTERS {
                if pick < w {
                    return c;
                }
                pick -= w;
            }
            'e'
        };
        let words: Vec<String> = (0..20_000)
            .map(|_| {
                let len = 2 + rng.below(8);
                (0..len).map(|_| letter(&mut rng)).collect()
            })
            .collect();
        let mut sum = 0.0;
        let cumulative = (1..=words.len())
            .map(|r| {
                sum += 1.0 / r as f64;
                sum
            })
            .collect();
        Vocabulary { words, cumulative }
    }

    fn word(&self, rng: &mut Rng) -> &str {
        let total = *self.cumulative.last().unwrap();
        let x = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * total;
        let i = self.cumulative.partition_point(|c| *c < x);
        &self.words[i.min(self.words.len() - 1)]
    }
}

thread_local! {
    static VOCABULARY: Vocabulary = Vocabulary::new();
}

/// A post of 20 to 40 words with a product link half of the time: 100 to 300 characters.
fn post_text(rng: &mut Rng) -> String {
    VOCABULARY.with(|v| {
        let n = 20 + rng.below(21);
        let mut text = (0..n).map(|_| v.word(rng)).collect::<Vec<_>>().join(" ");
        text[..1].make_ascii_uppercase();
        text.push('.');
        if rng.below(2) == 0 {
            text.push_str(&format!(
                " https://shop.example/p/{}-{}?utm_source=social",
                v.word(rng),
                rng.below(10_000)
            ));
        }
        text
    })
}

// ---------------------------------------------------------------------------------------
// A project on disk: config, queue, log
// ---------------------------------------------------------------------------------------

struct Project {
    dir: tempfile::TempDir,
    channels: usize,
}

/// How the channels of a project post.
#[derive(Clone, Copy, PartialEq)]
enum Slots {
    /// A slot far away (29 February): nothing falls due while measuring.
    Never,
    /// One slot at this instant (UTC, to the second).
    At(Timestamp),
}

impl Project {
    /// `channels` channels named `c0000`…, alternating `outbox` and `webhook` (both with
    /// `variation = true`, so rule 6 compares across them), all in UTC.
    fn new(channels: usize, slots: Slots, webhook: Option<&str>) -> Project {
        let mut dir = tempfile::Builder::new()
            .prefix("cadenced-bench-")
            .tempdir_in(bench_dir())
            .expect("temp dir");
        if KEEP.load(std::sync::atomic::Ordering::Relaxed) {
            dir.disable_cleanup(true);
            println!("(kept: {})", dir.path().display());
        }
        let root = dir.path();
        std::fs::create_dir_all(root.join("queue")).unwrap();
        std::fs::create_dir_all(root.join("state")).unwrap();
        std::fs::create_dir_all(root.join("staging")).unwrap();
        let slot = match slots {
            Slots::Never => "0 0 29 2 *".to_string(),
            Slots::At(t) => {
                let z = t.to_zoned(jiff::tz::TimeZone::UTC);
                format!("{} {} {} * * *", z.second(), z.minute(), z.hour())
            }
        };
        let mut config = format!(
            "queue = \"{q}\"\ndatabase = \"{d}\"\noutbox = \"{o}\"\nlog_level = \"info\"\n\n\
             [defaults]\ntimezone = \"UTC\"\nslots = [\"{slot}\"]\nmax_per_day = 2\n\
             min_gap = \"1h\"\nvariation = true\n",
            q = root.join("queue").display(),
            d = root.join("state/cadenced.sqlite").display(),
            o = root.join("outbox").display(),
        );
        for c in 0..channels {
            let name = channel_name(c);
            match webhook {
                Some(url) => config.push_str(&format!(
                    "\n[channels.{name}]\nplatform = \"webhook\"\nurl = \"{url}/{name}\"\n"
                )),
                None if c.is_multiple_of(2) => {
                    config.push_str(&format!("\n[channels.{name}]\nplatform = \"outbox\"\n"))
                }
                None => config.push_str(&format!(
                    "\n[channels.{name}]\nplatform = \"webhook\"\nurl = \"http://127.0.0.1:9/{name}\"\ndry_run = true\n"
                )),
            }
            std::fs::create_dir_all(root.join("queue").join(&name)).unwrap();
        }
        std::fs::write(root.join("cadenced.toml"), config).unwrap();
        Project { dir, channels }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> PathBuf {
        self.root().join("cadenced.toml")
    }

    fn db(&self) -> PathBuf {
        self.root().join("state/cadenced.sqlite")
    }

    /// Writes `files` posts spread evenly over the channels; returns their ids.
    fn queue_files(&self, files: usize, rng: &mut Rng) -> Vec<String> {
        let mut ids = Vec::with_capacity(files);
        for i in 0..files {
            let channel = channel_name(i % self.channels);
            let id = format!("{channel}/{i:06}.md");
            std::fs::write(self.root().join("queue").join(&id), post_text(rng)).unwrap();
            ids.push(id);
        }
        // Files written just before the start count as being written for the settle time
        // (one second): measure a queue that was there before the daemon started.
        std::thread::sleep(Duration::from_millis(1_200));
        ids
    }

    /// `posts` published posts in the log, spread over the channels and the last 29 days
    /// (inside the default 30-day `unique_window`, so all of them count), each with the
    /// `accepted`, `sending` and `published` rows the daemon writes.
    fn history(&self, posts: usize, rng: &mut Rng) {
        // Let cadenced create (or migrate) the schema, then fill it directly.
        drop(cadenced::store::Store::open(&self.db()).expect("open the log"));
        let mut conn = Connection::open(self.db()).unwrap();
        let tx = conn.transaction().unwrap();
        let now = SystemClock.now();
        {
            let mut attempt = tx
                .prepare(
                    "INSERT INTO attempts (channel, platform, file, hash, normalized, started,
                        state, idempotency_key, dry_run, remote_id, finished)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'published', ?7, 0, ?8, ?6)",
                )
                .unwrap();
            let mut event = tx
                .prepare(
                    "INSERT INTO events (time, channel, platform, file, hash, status, detail,
                        attempt_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', ?7)",
                )
                .unwrap();
            let span = SignedDuration::from_hours(29 * 24).as_secs();
            for i in 0..posts {
                let c = i % self.channels;
                let channel = channel_name(c);
                let platform = if c.is_multiple_of(2) {
                    "outbox"
                } else {
                    "webhook"
                };
                let file = format!("{channel}/old-{i:07}.md");
                let hash = format!("{:064x}", i);
                let at = now - SignedDuration::from_secs(1 + (rng.next() % span as u64) as i64);
                let at = cadenced::store::format_time(at);
                let normalized = normalize(&post_text(rng));
                attempt
                    .execute(params![
                        channel,
                        platform,
                        file,
                        hash,
                        normalized,
                        at,
                        format!("k{i}"),
                        format!("{i}")
                    ])
                    .unwrap();
                let id = tx.last_insert_rowid();
                for status in ["accepted", "sending", "published"] {
                    let attempt_id = (status != "accepted").then_some(id);
                    event
                        .execute(params![
                            at, channel, platform, file, hash, status, attempt_id
                        ])
                        .unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }

    fn start(&self) -> Daemon {
        Daemon::start(self)
    }
}

fn channel_name(c: usize) -> String {
    format!("c{c:04}")
}

/// Where projects are made: the target folder (a real disk, not a tmpfs), unless
/// `CADENCED_BENCH_DIR` says otherwise.
fn bench_dir() -> PathBuf {
    let dir = std::env::var_os("CADENCED_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-projects"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------
// The daemon as a process
// ---------------------------------------------------------------------------------------

struct Daemon {
    child: Child,
    started: Instant,
    ready: Arc<Mutex<Option<Instant>>>,
    _socket_thread: std::thread::JoinHandle<()>,
    db: PathBuf,
}

impl Daemon {
    fn start(p: &Project) -> Daemon {
        let socket_path = p.root().join("notify.sock");
        let _ = std::fs::remove_file(&socket_path);
        let socket = UnixDatagram::bind(&socket_path).unwrap();
        let ready = Arc::new(Mutex::new(None));
        let seen = ready.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]);
                if msg.lines().any(|l| l == "READY=1") {
                    let mut r = seen.lock().unwrap();
                    if r.is_none() {
                        *r = Some(Instant::now());
                    }
                }
                if msg.lines().any(|l| l == "STOPPING=1") {
                    return;
                }
            }
        });
        let log = std::fs::File::create(p.root().join("daemon.log")).unwrap();
        let started = Instant::now();
        let child = Command::new(BIN)
            .arg("--config")
            .arg(p.config())
            .arg("run")
            .env("NOTIFY_SOCKET", &socket_path)
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cadenced");
        Daemon {
            child,
            started,
            ready,
            _socket_thread: thread,
            db: p.db(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time from the start to `READY=1`.
    fn wait_ready(&mut self, limit: Duration) -> Duration {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(t) = *self.ready.lock().unwrap() {
                return t - self.started;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cadenced exited before READY=1: {status}");
            }
            assert!(Instant::now() < deadline, "no READY=1 within {limit:?}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until the log has `n` rows of `status`; returns the time since the start.
    fn wait_rows(&mut self, status: &str, n: usize, limit: Duration) -> Duration {
        let deadline = Instant::now() + limit;
        let conn = loop {
            if let Ok(c) = read_only(&self.db) {
                break c;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        loop {
            let count: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM events WHERE status = ?1",
                    [status],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            if count as usize >= n {
                return self.started.elapsed();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("cadenced exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "only {count} of {n} `{status}` rows within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the daemon (see `Drop`).
    fn stop(self) {}
}

impl Drop for Daemon {
    /// SIGTERM, and SIGKILL if it is not gone within a minute: also when a part panics, so
    /// no daemon is left running.
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_only(db: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // Fails until the daemon created the schema.
    conn.query_row("SELECT COUNT(*) FROM events", [], |_| Ok(()))?;
    Ok(conn)
}

/// `VmRSS` of a process, in bytes.
fn rss_of(pid: u32) -> u64 {
    proc_status_kb(pid, "VmRSS:") * 1024
}

fn proc_status_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU time (ns) and context switches (each one a wake-up or a preemption) summed over a
/// process's threads.
fn cpu_and_switches(pid: u32) -> (u64, u64) {
    let mut cpu = 0;
    let mut switches = 0;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return (0, 0);
    };
    for task in tasks.flatten() {
        let path = task.path();
        if let Ok(s) = std::fs::read_to_string(path.join("schedstat")) {
            cpu += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(path.join("status")) {
            for l in s.lines() {
                if let Some(v) = l
                    .strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                {
                    switches += v.trim().parse::<u64>().unwrap_or(0);
                }
            }
        }
    }
    (cpu, switches)
}

/// Reads every file of the queue once, the way any program would (list, open, read).
fn read_queue_once(queue: &Path) -> (Duration, usize) {
    let t = Instant::now();
    let mut n = 0;
    let mut buf = Vec::new();
    for channel in std::fs::read_dir(queue).unwrap().flatten() {
        if !channel.file_type().unwrap().is_dir() {
            continue;
        }
        for f in std::fs::read_dir(channel.path()).unwrap().flatten() {
            if f.file_type().unwrap().is_file() {
                buf.clear();
                std::fs::File::open(f.path())
                    .unwrap()
                    .read_to_end(&mut buf)
                    .unwrap();
                n += 1;
            }
        }
    }
    (t.elapsed(), n)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

// ---------------------------------------------------------------------------------------
// The parts
// ---------------------------------------------------------------------------------------

/// A file renamed into the queue → its `accepted` row committed, one file at a time, with a
/// large queue and history against a small one.
fn intake(opts: &Opts) {
    let files = opts.files.unwrap_or(20_000);
    let history = opts.history.unwrap_or(100_000);
    let small = intake_once(100, 0, opts.drops, 1);
    let large = intake_once(files, history, opts.drops, 2);
    for (name, r) in [
        (format!("{} queued, {} history", 100, 0), &small),
        (format!("{files} queued, {history} history"), &large),
    ] {
        println!(
            "drop -> accepted, {name}: n={} p50 {} p99 {} max {}",
            r.len(),
            ms(percentile(r, 0.5)),
            ms(percentile(r, 0.99)),
            ms(*r.last().unwrap())
        );
    }
    println!(
        "ratio large/small: p50 {:.2}x, p99 {:.2}x",
        percentile(&large, 0.5).as_secs_f64() / percentile(&small, 0.5).as_secs_f64(),
        percentile(&large, 0.99).as_secs_f64() / percentile(&small, 0.99).as_secs_f64()
    );
}

fn intake_once(files: usize, history: usize, drops: usize, seed: u64) -> Vec<Duration> {
    let channels = 1_000.min(files.max(1));
    let p = Project::new(channels, Slots::Never, None);
    let mut rng = Rng(seed);
    p.history(history, &mut rng);
    p.queue_files(files, &mut rng);
    let mut d = p.start();
    d.wait_ready(Duration::from_secs(600));
    d.wait_rows("accepted", history + files, Duration::from_secs(600));
    // Let the start-up's tail (moves, notes, logging) finish.
    std::thread::sleep(Duration::from_millis(500));
    let conn = read_only(&p.db()).unwrap();
    let mut stmt = conn
        .prepare("SELECT 1 FROM events WHERE file = ?1 AND status = 'accepted' LIMIT 1")
        .unwrap();
    let mut times = Vec::new();
    let budget = Instant::now() + Duration::from_secs(120);
    for i in 0..drops {
        let channel = channel_name(i % channels);
        let name = format!("drop-{i:05}.md");
        let staged = p.root().join("staging").join(&name);
        std::fs::write(&staged, post_text(&mut rng)).unwrap();
        let id = format!("{channel}/{name}");
        let t = Instant::now();
        std::fs::rename(&staged, p.root().join("queue").join(&id)).unwrap();
        loop {
            if stmt.exists([&id]).unwrap_or(false) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
            if t.elapsed() > Duration::from_secs(900) {
                let log = std::fs::read_to_string(p.root().join("daemon.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                panic!(
                    "{id} never accepted; the daemon's log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
        }
        times.push(t.elapsed());
        std::thread::sleep(Duration::from_millis(10));
        if Instant::now() > budget && times.len() >= 3 {
            break;
        }
    }
    drop(stmt);
    d.stop();
    if let Some((i, t)) = times.iter().enumerate().max_by_key(|(_, t)| **t) {
        println!("slowest drop: #{i} of {}, {}", times.len(), ms(*t));
    }
    times.sort();
    times
}

/// Start-up with a large queue and an empty log (or `--history` published posts in it):
/// until `READY=1` and every file accepted, against reading those files once.
fn startup(opts: &Opts) {
    let files = opts.files.unwrap_or(100_000);
    let p = Project::new(1_000, Slots::Never, None);
    let mut rng = Rng(3);
    if let Some(history) = opts.history {
        p.history(history, &mut rng);
        // A first start indexes the posts written here behind its back (once per log;
        // the daemon indexes each post as it records it): not what is measured.
        let mut d = p.start();
        d.wait_ready(Duration::from_secs(900));
        d.stop();
        println!("with {history} posts of history (indexed by a start before)");
    }
    p.queue_files(files, &mut rng);
    read_queue_once(&p.root().join("queue")); // warm the page cache for both
    let (read, n) = read_queue_once(&p.root().join("queue"));
    let mut d = p.start();
    let ready = d.wait_ready(Duration::from_secs(900));
    // Each post of the history has its `accepted` row already.
    let rows = files + opts.history.unwrap_or(0);
    let accepted = d.wait_rows("accepted", rows, Duration::from_secs(900));
    let rss = rss_of(d.pid());
    let cpu = process_cpu(d.pid());
    d.stop();
    let all = ready.max(accepted);
    println!("reading the {n} files once: {}", ms(read));
    println!(
        "start-up: READY=1 after {}, all accepted after {}; ratio {:.2}x (RSS then {})",
        ms(ready),
        ms(accepted),
        all.as_secs_f64() / read.as_secs_f64(),
        mb(rss)
    );
    // Steadier than the wall clock on a shared machine: what the work cost, whoever else
    // ran meanwhile.
    println!(
        "start-up CPU (user + system, all threads, until then): {:.2} s",
        cpu.as_secs_f64()
    );
}

/// Many files renamed into a running daemon's queue at once (a month of posts for every
/// channel copied in) with `--history` published posts in the log: until every one is
/// accepted, with the daemon's CPU time for it and its RSS after.
fn drops(opts: &Opts) {
    let files = opts.files.unwrap_or(10_000);
    let history = opts.history.unwrap_or(100_000);
    let p = Project::new(1_000.min(files.max(1)), Slots::Never, None);
    let mut rng = Rng(5);
    p.history(history, &mut rng);
    let moves: Vec<(PathBuf, PathBuf)> = (0..files)
        .map(|i| {
            let name = format!("{i:06}.md");
            let staged = p.root().join("staging").join(&name);
            std::fs::write(&staged, post_text(&mut rng)).unwrap();
            let channel = channel_name(i % p.channels);
            (staged, p.root().join("queue").join(channel).join(name))
        })
        .collect();
    let mut d = p.start();
    // The start indexes the history written behind its back: not what is measured.
    d.wait_ready(Duration::from_secs(900));
    d.wait_rows("accepted", history, Duration::from_secs(60));
    let cpu = process_cpu(d.pid());
    let t = Instant::now();
    for (from, to) in &moves {
        std::fs::rename(from, to).unwrap();
    }
    let renamed = t.elapsed();
    d.wait_rows("accepted", history + files, Duration::from_secs(900));
    let all = t.elapsed();
    let cpu = process_cpu(d.pid()) - cpu;
    std::thread::sleep(Duration::from_secs(3));
    let rss = rss_of(d.pid());
    d.stop();
    println!(
        "{files} files renamed in at once (in {}), {history} posts of history: all accepted \
         after {} ({:.2} ms a file), daemon CPU {:.2} s; RSS 3 s later {}",
        ms(renamed),
        ms(all),
        all.as_secs_f64() * 1e3 / files.max(1) as f64,
        cpu.as_secs_f64(),
        mb(rss)
    );
}

/// User and system time of a process so far, its exited threads included (from
/// `/proc/<pid>/stat`; the per-thread `schedstat` of [`cpu_and_switches`] loses the
/// threads that ended, such as start-up's workers).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which may hold spaces and ends at the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf only reads a system setting.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// RSS once idle, with a queue and a history, against the same history with no queue.
fn rss(opts: &Opts) {
    let files = opts.files.unwrap_or(10_000);
    let history = opts.history.unwrap_or(100_000);
    let (base, _) = rss_once(0, history, 4);
    let (full, peak) = rss_once(files, history, 4);
    let (empty, _) = rss_once(0, 0, 5);
    println!("idle RSS, nothing queued, no history: {}", mb(empty));
    println!("idle RSS, nothing queued, {history} history: {}", mb(base));
    println!(
        "idle RSS, {files} queued, {history} history: {} (peak {})",
        mb(full),
        mb(peak)
    );
    println!(
        "memory per queued file: {:.0} bytes",
        (full as f64 - base as f64) / files as f64
    );
}

fn rss_once(files: usize, history: usize, seed: u64) -> (u64, u64) {
    let p = Project::new(1_000, Slots::Never, None);
    let mut rng = Rng(seed);
    p.history(history, &mut rng);
    p.queue_files(files, &mut rng);
    let mut d = p.start();
    d.wait_ready(Duration::from_secs(900));
    d.wait_rows("accepted", history + files, Duration::from_secs(900));
    std::thread::sleep(Duration::from_secs(3));
    let rss = rss_of(d.pid());
    let peak = proc_status_kb(d.pid(), "VmHWM:") * 1024;
    d.stop();
    (rss, peak)
}

/// CPU and wake-ups of an idle daemon with a queue and no slot due.
fn idle(opts: &Opts) {
    let files = opts.files.unwrap_or(10_000);
    let p = Project::new(1_000, Slots::Never, None);
    let mut rng = Rng(6);
    p.queue_files(files, &mut rng);
    let mut d = p.start();
    d.wait_ready(Duration::from_secs(900));
    d.wait_rows("accepted", files, Duration::from_secs(900));
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, sw0) = cpu_and_switches(d.pid());
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(opts.seconds));
    let (cpu1, sw1) = cpu_and_switches(d.pid());
    let wall = t.elapsed();
    d.stop();
    println!(
        "idle over {:.0} s with {files} queued: CPU {:.3} % ({:.1} ms), {} context switches",
        wall.as_secs_f64(),
        (cpu1 - cpu0) as f64 / wall.as_nanos() as f64 * 100.0,
        (cpu1 - cpu0) as f64 / 1e6,
        sw1 - sw0
    );
}

/// Checking one new post against the log's history for near-duplicates, the way the
/// daemon does when a file arrives.
fn neardup(opts: &Opts) {
    use cadenced::cadence::similarity::{Fingerprint, Index};
    let history = opts.history.unwrap_or(100_000);
    let p = Project::new(1_000, Slots::Never, None);
    let mut rng = Rng(7);
    p.history(history, &mut rng);
    // The log's index on disk is built when the database is opened (once, for a log from
    // before it existed, as here).
    let t = Instant::now();
    let store = cadenced::store::Store::open(&p.db()).unwrap();
    let indexing = t.elapsed();
    let now = SystemClock.now();
    let since = now - SignedDuration::from_hours(30 * 24);
    let fresh: Vec<Fingerprint> = (0..500)
        .map(|_| Fingerprint::of_text(&post_text(&mut rng)))
        .collect();
    // A copy of a post from the history with one word added: the check must find it.
    let old: String = read_only(&p.db())
        .unwrap()
        .query_row(
            "SELECT normalized FROM attempts ORDER BY id LIMIT 1 OFFSET 500",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let dup = Fingerprint::of_normalized(&format!("{old} extra"));

    // The daemon's check: the log's index on disk.
    store.near_posts(&fresh[0], 0.8, since, &[]).unwrap(); // first use builds the sketch
    let checks = |store: &cadenced::store::Store| {
        let mut probes = 0;
        let mut postings = 0;
        let mut verified = 0;
        let mut times: Vec<Duration> = fresh
            .iter()
            .map(|f| {
                let t = Instant::now();
                let (hits, stats) = store.near_posts_with_stats(f, 0.8, since, &[]).unwrap();
                let took = t.elapsed();
                std::hint::black_box(hits);
                probes += stats.probes;
                postings += stats.postings;
                verified += stats.verified;
                took
            })
            .collect();
        times.sort();
        (times, probes, postings, verified)
    };
    let (times, probes, postings, verified) = checks(&store);
    // What publishing costs the index: each attempt adds its text to the lists of its
    // grams, in the transaction that records it (one attempt per transaction, as a post due
    // alone at its slot).
    let mut store = store;
    let written = written_bytes();
    let mut recording: Vec<Duration> = fresh[..200]
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let file = format!("c0000/new-{i:03}.md");
            let attempt = cadenced::store::NewAttempt {
                started: now,
                channel: "c0000",
                platform: cadenced::platforms::Platform::named("outbox").unwrap(),
                file: &file,
                hash: "h",
                normalized: f.normalized(),
                idempotency_key: "k",
                key_started: now,
                dry_run: true,
            };
            let t = Instant::now();
            store.begin_attempt(&attempt).unwrap();
            t.elapsed()
        })
        .collect();
    let written = (written_bytes() - written) / recording.len() as u64;
    recording.sort();
    // And 1,000 at once, as a slot with 1,000 channels due records them.
    let files: Vec<String> = (0..1_000)
        .map(|i| format!("c0001/batch-{i:04}.md"))
        .collect();
    let texts: Vec<String> = (0..1_000)
        .map(|_| normalize(&post_text(&mut rng)))
        .collect();
    let batch: Vec<cadenced::store::NewAttempt<'_>> = files
        .iter()
        .zip(&texts)
        .map(|(file, normalized)| cadenced::store::NewAttempt {
            started: now,
            channel: "c0001",
            platform: cadenced::platforms::Platform::named("outbox").unwrap(),
            file,
            hash: "h",
            normalized,
            idempotency_key: "k",
            key_started: now,
            dry_run: true,
        })
        .collect();
    let t = Instant::now();
    store.begin_attempts(&batch).unwrap();
    let batch_took = t.elapsed();
    println!(
        "recording an attempt (its text into the index, in a durable transaction of its own) against {history} posts: p50 {} p99 {}, {} written (log and checkpoints); 1,000 in one transaction (a slot with 1,000 channels due): {}",
        ms(percentile(&recording, 0.5)),
        ms(percentile(&recording, 0.99)),
        mb(written),
        ms(batch_took),
    );
    let found = store.near_posts(&dup, 0.8, since, &[]).unwrap().len();
    let db_mb = std::fs::metadata(p.db()).map_or(0, |m| m.len());

    // The baseline: main's way, every post's grams in memory.
    let conn = read_only(&p.db()).unwrap();
    let texts: Vec<String> = conn
        .prepare("SELECT normalized FROM attempts")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let t = Instant::now();
    let mut index = Index::new();
    for (i, text) in texts.iter().enumerate() {
        index.insert(i, Fingerprint::of_normalized(text));
    }
    let build = t.elapsed();
    let mut memory: Vec<Duration> = fresh
        .iter()
        .map(|f| {
            let t = Instant::now();
            std::hint::black_box(index.find(f, 0.8));
            t.elapsed()
        })
        .collect();
    memory.sort();
    println!(
        "the log's index on disk: built once in {} (database {}); per check against {history} posts: p50 {} p99 {} ({:.0} token lists, {:.0} postings read, {:.1} posts verified on average); the planted near-duplicate found: {}",
        ms(indexing),
        mb(db_mb),
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        probes as f64 / fresh.len() as f64,
        postings as f64 / fresh.len() as f64,
        verified as f64 / fresh.len() as f64,
        found > 0
    );
    println!(
        "baseline, every post's grams in memory (main's way, rebuilt at every wake): build {} ({} of memory), per check p50 {} p99 {}; ratio on disk / in memory: p50 {:.2}x, p99 {:.2}x",
        ms(build),
        mb(index.approx_heap_bytes() as u64),
        ms(percentile(&memory, 0.5)),
        ms(percentile(&memory, 0.99)),
        percentile(&times, 0.5).as_secs_f64() / percentile(&memory, 0.5).as_secs_f64(),
        percentile(&times, 0.99).as_secs_f64() / percentile(&memory, 0.99).as_secs_f64(),
    );
}

/// Bytes this process has written with `write` and the like (`wchar` in `/proc/self/io`).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("wchar: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The pending posts' index (in memory, updated per post): inserting a new post and finding
/// its near-duplicates among 10,000 (or `--files`) queued posts.
fn pending(opts: &Opts) {
    use cadenced::cadence::pending_index::{FindCost, GramOrder, PendingIndex};
    use cadenced::cadence::similarity::Fingerprint;
    use std::sync::Arc;
    let n = opts.files.unwrap_or(10_000);
    let mut rng = Rng(11);
    let texts: Vec<Fingerprint> = (0..n)
        .map(|_| Fingerprint::of_text(&post_text(&mut rng)))
        .collect();
    for (name, order) in [
        ("no order (token order)", Arc::new(GramOrder::default())),
        ("rarest grams first", Arc::new(GramOrder::of(&texts))),
    ] {
        let t = Instant::now();
        let mut index = PendingIndex::with_order(0.8, order);
        for (i, f) in texts.iter().enumerate() {
            index.insert(i, f);
        }
        let build = t.elapsed();
        let at_once = index.order().texts() > 0;
        // Start-up's way: every post prepared (here on one thread), then all inserted at
        // once and each looked up among the ones before it (on every core).
        let t = Instant::now();
        let mut bulk = PendingIndex::with_order(0.8, index.order().clone().into());
        let preparer = bulk.preparer();
        let prepared: Vec<_> = texts
            .iter()
            .enumerate()
            .map(|(i, f)| (i, preparer.prepare(f)))
            .collect();
        let bulk_build = t.elapsed();
        let t = Instant::now();
        let mut pairs = 0;
        if at_once {
            bulk.insert_many_prepared_finding_each(prepared, 0.8, |_, _, hits| pairs += hits.len());
        }
        let self_join = t.elapsed();
        drop(bulk);
        let fresh: Vec<Fingerprint> = (0..500)
            .map(|_| Fingerprint::of_text(&post_text(&mut rng)))
            .collect();
        let mut cost = FindCost::default();
        let mut times: Vec<Duration> = fresh
            .iter()
            .map(|f| {
                let t = Instant::now();
                let (hits, c) = index.find_counting(f, 0.8);
                let took = t.elapsed();
                std::hint::black_box(hits);
                cost.postings += c.postings;
                cost.passed += c.passed;
                cost.candidates += c.candidates;
                cost.verified += c.verified;
                took
            })
            .collect();
        times.sort();
        println!(
            "{name}: {n} posts indexed in {} ({}); per query p50 {} p99 {}; on average {:.0} postings read, {:.0} passed, {:.1} candidates, {:.2} verified",
            ms(build),
            mb(index.approx_heap_bytes() as u64),
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.99)),
            cost.postings as f64 / fresh.len() as f64,
            cost.passed as f64 / fresh.len() as f64,
            cost.candidates as f64 / fresh.len() as f64,
            cost.verified as f64 / fresh.len() as f64,
        );
        println!(
            "  {n} posts at once: prepared in {}, inserted and each looked up among the ones before it in {} ({pairs} pairs; not run in token order)",
            ms(bulk_build),
            ms(self_join),
        );
    }
}

/// `cadenced plan` for 1,000 channels × 100 posts over 7 days, against reading the files.
fn plan(opts: &Opts) {
    let files = opts.files.unwrap_or(100_000);
    let p = Project::new(1_000, Slots::Never, None);
    let mut rng = Rng(8);
    p.queue_files(files, &mut rng);
    read_queue_once(&p.root().join("queue"));
    let (read, _) = read_queue_once(&p.root().join("queue"));
    let run = |args: &[&str]| {
        let t = Instant::now();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(p.config())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(out.code().is_some(), "{args:?} was killed");
        t.elapsed()
    };
    run(&["plan", "--days", "7"]);
    let times: Vec<Duration> = (0..3).map(|_| run(&["plan", "--days", "7"])).collect();
    let best = *times.iter().min().unwrap();
    println!("reading the {files} files once: {}", ms(read));
    println!(
        "plan --days 7, {} channels x {} posts: best of 3 {} ({:.2}x reading)",
        1_000,
        files / 1_000,
        ms(best),
        best.as_secs_f64() / read.as_secs_f64()
    );
}

/// `cadenced log --channel C --since 7d` on a large log, against the same on a small one.
fn log_query(opts: &Opts) {
    let rows = opts.history.unwrap_or(1_000_000);
    let small = log_once(10_000);
    let large = log_once(rows);
    println!("log --channel c0007 --since 7d, 10000 rows: {}", ms(small));
    println!(
        "log --channel c0007 --since 7d, {rows} rows: {} ({:.2}x)",
        ms(large),
        large.as_secs_f64() / small.as_secs_f64()
    );
}

fn log_once(rows: usize) -> Duration {
    let p = Project::new(1_000, Slots::Never, None);
    drop(cadenced::store::Store::open(&p.db()).unwrap());
    {
        let mut conn = Connection::open(p.db()).unwrap();
        let tx = conn.transaction().unwrap();
        let now = SystemClock.now();
        let span = SignedDuration::from_hours(30 * 24).as_secs() as u64;
        let mut rng = Rng(9);
        {
            let mut stmt = tx
                .prepare(
                    "INSERT INTO events (time, channel, platform, file, hash, status, detail)
                     VALUES (?1, ?2, 'outbox', ?3, 'h', ?4, '')",
                )
                .unwrap();
            let statuses = ["accepted", "deferred", "sending", "published"];
            let mut times: Vec<Timestamp> = (0..rows)
                .map(|_| now - SignedDuration::from_secs((rng.next() % span) as i64))
                .collect();
            times.sort();
            for (i, at) in times.into_iter().enumerate() {
                let channel = channel_name(rng.below(1_000));
                stmt.execute(params![
                    cadenced::store::format_time(at),
                    channel,
                    format!("{channel}/{i}.md"),
                    statuses[i % 4]
                ])
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let run = || {
        let t = Instant::now();
        let status = Command::new(BIN)
            .arg("--config")
            .arg(p.config())
            .args(["log", "--channel", "c0007", "--since", "7d"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        t.elapsed()
    };
    run();
    (0..5).map(|_| run()).min().unwrap()
}

/// 1,000 webhook channels due at one slot, publishing to a loopback HTTP server.
fn burst(opts: &Opts) {
    let channels = opts.files.unwrap_or(1_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let addr = runtime.block_on(serve(arrivals.clone()));
    let url = format!("http://{addr}");
    // The slot: far enough ahead for the daemon to start and accept every file.
    let slot = SystemClock.now() + SignedDuration::from_secs(20 + channels as i64 / 100);
    let slot = slot.round(jiff::Unit::Second).unwrap();
    let p = Project::new(channels, Slots::At(slot), Some(&url));
    let mut rng = Rng(10);
    p.queue_files(channels, &mut rng);
    let mut d = p.start();
    d.wait_ready(Duration::from_secs(300));
    d.wait_rows("accepted", channels, Duration::from_secs(300));
    let until_slot = slot.duration_since(SystemClock.now());
    assert!(
        until_slot > SignedDuration::ZERO,
        "start-up took past the slot"
    );
    let slot_instant = Instant::now() + Duration::try_from(until_slot).unwrap();
    std::thread::sleep(Duration::try_from(until_slot).unwrap());
    d.wait_rows("published", channels, Duration::from_secs(300));
    let published = slot_instant.elapsed();
    d.stop();
    let arrivals = arrivals.lock().unwrap();
    let last = arrivals.iter().max().copied().unwrap();
    println!(
        "{channels} channels due at one slot: {} requests received, the last {} after the slot; all `published` rows after {}",
        arrivals.len(),
        ms(last.saturating_duration_since(slot_instant)),
        ms(published)
    );
    drop(arrivals);
    runtime.shutdown_background();
}

/// A webhook receiver on a loopback port that answers 200 with an id and notes when each
/// request arrived.
async fn serve(arrivals: Arc<Mutex<Vec<Instant>>>) -> std::net::SocketAddr {
    use http_body_util::{BodyExt, Full};
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let arrivals = arrivals.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let arrivals = arrivals.clone();
                    let counter = counter.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        arrivals.lock().unwrap().push(Instant::now());
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let body =
                            format!("{{\"id\":\"{n}\",\"url\":\"https://example.test/{n}\"}}");
                        Ok::<_, std::convert::Infallible>(
                            hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(bytes::Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn size() {
    let bytes = std::fs::metadata(BIN).map(|m| m.len()).unwrap_or(0);
    println!("release binary {BIN}: {} ({bytes} bytes)", mb(bytes));
}
