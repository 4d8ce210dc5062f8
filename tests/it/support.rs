//! Shared helpers: temporary projects (config + queue) on disk, and the binary.

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A throwaway project: `config/cadenced.toml` and `queue/` under a temp dir.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new(config: &str) -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("config")).unwrap();
        fs::create_dir_all(dir.path().join("queue")).unwrap();
        // The layout of the bundled example: the queue and the state beside `config/`.
        let config = format!(
            "queue = \"../queue\"\ndatabase = \"../state/cadenced.sqlite\"\noutbox = \"../outbox\"\n{config}"
        );
        fs::write(dir.path().join("config/cadenced.toml"), config).unwrap();
        Project { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.root().join("config/cadenced.toml")
    }

    /// Writes `queue/<rel>`, creating folders.
    pub fn post(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.root().join("queue").join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    /// `cadenced --config <this config> <args>`, run from the project folder with a clean
    /// environment for the variables cadenced reads.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("cadenced").unwrap();
        cmd.current_dir(self.root())
            .env_remove("CADENCED_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .env("NO_COLOR", "1")
            .arg("--config")
            .arg(self.config())
            .args(args);
        cmd
    }
}

/// The repository's own folder.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A clock for the daemon in-process: wall time that moves with tokio's clock, so under
/// `#[tokio::test(start_paused = true)]` the daemon's sleeps complete at once and its
/// `now` jumps exactly as far. `skip` moves it without the daemon noticing (downtime).
pub struct TestClock {
    base: jiff::Timestamp,
    start: tokio::time::Instant,
    skipped: std::sync::Mutex<jiff::SignedDuration>,
}

impl TestClock {
    pub fn at(rfc3339: &str) -> std::sync::Arc<TestClock> {
        std::sync::Arc::new(TestClock {
            base: rfc3339.parse().expect("an RFC 3339 time"),
            start: tokio::time::Instant::now(),
            skipped: std::sync::Mutex::new(jiff::SignedDuration::ZERO),
        })
    }

    /// Jumps ahead, as if the machine had been off.
    pub fn skip(&self, by: jiff::SignedDuration) {
        *self.skipped.lock().unwrap() += by;
    }
}

impl cadenced::clock::Clock for TestClock {
    fn now(&self) -> jiff::Timestamp {
        let elapsed = jiff::SignedDuration::try_from(self.start.elapsed()).unwrap();
        self.base + elapsed + *self.skipped.lock().unwrap()
    }
}

/// SIGKILL, then reap: the crash a test means.
pub fn kill9(child: &mut std::process::Child) {
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
}

/// How many post files of `channel` are in its `published/` folder.
pub fn published_count(p: &Project, channel: &str) -> usize {
    std::fs::read_dir(p.root().join("queue").join(channel).join("published"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "md")
            })
            .count()
        })
        .unwrap_or(0)
}

/// A text far from every other `distinct_text(k)`: ten made-up words of random letters from
/// a fixed generator, so no two texts share many character 4-grams (the near-duplicate rule
/// leaves them alone, and its indexes stay selective).
pub fn distinct_text(k: usize) -> String {
    let mut x = (k as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = |n: u64| {
        x ^= x >> 29;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 32;
        x % n
    };
    let words: Vec<String> = (0..10)
        .map(|_| {
            let len = 3 + next(6);
            (0..len)
                .map(|_| char::from(b'a' + next(26) as u8))
                .collect()
        })
        .collect();
    format!("{}\n", words.join(" "))
}

/// A child process killed when the test ends, even by a panic (a daemon left running
/// after its test's folder is gone would run on, unseen).
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sets the file's time of modification a day ahead (a camera's or another machine's
/// clock that is wrong).
#[allow(clippy::disallowed_methods)] // file times are on the real clock
pub fn modified_a_day_ahead(path: &Path) {
    let tomorrow = std::time::SystemTime::now() + std::time::Duration::from_secs(24 * 3600);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(tomorrow)
        .unwrap();
}
