//! The daemon: the only module that wires the others. It watches the queue, asks the pure
//! policy what to do whenever it wakes, carries out the answer through the adapters, and
//! records every decision and attempt in the log before and after acting.
//!
//! One evaluation (`evaluate`) scans the queue, judges every file with `review`, logs new
//! versions (`accepted`/`held`) and withdrawals, finishes moves a crash interrupted, then
//! calls `policy::decide` for each channel and acts: expire, publish (attempt row committed
//! first), or log a changed deferral. Evaluating is idempotent, so the daemon simply
//! evaluates after every wake: a slot, an appointment, a queue event, a finished publish.
//!
//! Sleeping: until the earliest `policy::next_wake` of all channels, capped (`max_sleep`) so
//! a wall-clock step (NTP, suspend) is noticed within minutes, and at half the systemd
//! watchdog interval when there is one. No polling when idle beyond that cap.

pub mod demo;
pub mod lock;
mod publish;
pub mod status;
pub mod systemd;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::cadence::policy::{self, Pending};
use crate::cadence::similarity::comparable;
use crate::clock::{self, Clock};
use crate::config::{self, Channel, Config};
use crate::diag::Diagnostic;
use crate::platforms::adapter::{self, AnyAdapter, ConnectCtx};
use crate::platforms::{Limits, Platform, http};
use crate::queue::{self, QueuedFile, files, watch};
use crate::review::{self, LogView, Verdict};
use crate::store::{self, NewAttempt, NewEvent, Store};
use crate::tokens::TokenStore;

pub use publish::Claim;

/// The first wait before evaluating again after the log failed; it doubles up to
/// [`LAST_RETRY`] while the failures go on (a full disk, a database locked for long).
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LAST_RETRY: Duration = Duration::from_secs(60);
use publish::Ended;
use tokio_util::sync::CancellationToken;

/// Knobs that tests and the demo turn; the defaults are what systemd runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// A file written in place is taken once unchanged this long after its last write.
    pub settle: Duration,
    /// The longest single sleep, so a wall-clock step is noticed.
    pub max_sleep: Duration,
    /// Publishes in flight at once across channels.
    pub concurrency: usize,
    /// Stop once nothing is ready to publish and nothing is in flight (the demo).
    pub exit_when_done: bool,
    /// Base delay of the exponential backoff between resends of a transient failure.
    pub backoff: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            settle: Duration::from_secs(1),
            max_sleep: Duration::from_secs(300),
            concurrency: 4,
            exit_when_done: false,
            backoff: Duration::from_secs(30),
        }
    }
}

/// Requests from outside besides signals (tests drive the daemon in-process with these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Reload,
    Stop,
}

/// The shared state publish tasks need.
pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub clock: Arc<dyn Clock>,
    pub options: Options,
}

impl Shared {
    pub(crate) fn with_store<T>(
        &self,
        f: impl FnOnce(&mut Store) -> store::Result<T>,
    ) -> store::Result<T> {
        let mut guard = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }
}

struct Daemon {
    config_path: Option<PathBuf>,
    config: Config,
    shared: Arc<Shared>,
    adapters: HashMap<String, Arc<AnyAdapter>>,
    /// Channels that cannot run (an unreadable credential...), with the reason.
    disabled: HashMap<String, String>,
    notifier: systemd::Notifier,
    /// Paths the watcher declared complete (taken even if modified a moment ago).
    ready: HashSet<PathBuf>,
    /// Problems already reported, so a bad folder is logged once, not at every wake.
    reported: HashSet<String>,
    /// A read or write of the log failed during this wake: evaluate again after
    /// `retry_delay` (doubling while it keeps failing), so what was not recorded is recorded
    /// and a slot that fell due is not lost until some unrelated wake. Atomic only so that
    /// `&self` methods can set it.
    log_failed: AtomicBool,
    retry_delay: Duration,
    /// Per channel, the `last_evaluated` to decide with instead of the log's: a slot's
    /// decision recorded but not carried out (its attempt could not be recorded, or the
    /// file changed just before sending) must be decided again at the next wake.
    rewound: HashMap<String, Option<Timestamp>>,
    /// Why the publish log cannot be used (its file deleted or replaced), while it lasts.
    log_unusable: Option<String>,
    /// Publish tasks; each returns its channel and how the publish ended.
    tasks: JoinSet<(String, Ended)>,
    /// Cancelled at SIGTERM: publish tasks waiting to resend stop at once.
    stop: CancellationToken,
    /// Look-ups of limits the servers set (a Mastodon instance's text limit), in the
    /// background so a slow server cannot hold the loop; each returns its channel.
    lookups: JoinSet<Option<Limits>>,
    /// The channel of each look-up task (a task that panicked still names its channel).
    lookup_channels: HashMap<tokio::task::Id, String>,
    /// Channels whose limits are being looked up: their files are judged once it answers
    /// (or gives up), not against a default first.
    awaiting_limits: HashSet<String>,
    permits: Arc<Semaphore>,
    /// Publishes spawned and not finished, per channel.
    in_flight: HashMap<String, usize>,
    published: usize,
}

/// Runs the daemon until SIGTERM/SIGINT or `Control::Stop` (or, with `exit_when_done`,
/// until the queue is drained). The config file is re-read on SIGHUP.
pub async fn run(
    config_path: &Path,
    clock: Arc<dyn Clock>,
    options: Options,
    control: Option<mpsc::UnboundedReceiver<Control>>,
) -> anyhow::Result<usize> {
    let loaded = config::load(config_path).map_err(|diags| {
        let text: Vec<String> = diags.iter().map(|d| d.to_string()).collect();
        anyhow::anyhow!("the config has errors:\n{}", text.join("\n"))
    })?;
    run_config(
        loaded.config,
        Some(config_path.to_path_buf()),
        clock,
        options,
        control,
    )
    .await
}

/// Runs the daemon on an already loaded config (the demo's, or a test's).
pub async fn run_config(
    config: Config,
    config_path: Option<PathBuf>,
    clock: Arc<dyn Clock>,
    options: Options,
    mut control: Option<mpsc::UnboundedReceiver<Control>>,
) -> anyhow::Result<usize> {
    http::install_tls_provider();
    // Held until this function returns: one daemon per publish log.
    let lock = lock::DaemonLock::acquire(&config.database)?;
    if lock.ran_before && !config.database.exists() {
        anyhow::bail!(
            "the publish log {} is missing, but cadenced has run with it before ({} says so): \
             put it back or restore it from a backup; starting with an empty log would forget \
             every earlier post (caps, duplicates). To start an empty history on purpose, \
             remove {}",
            config.database.display(),
            lock::lock_path(&config.database).display(),
            lock::lock_path(&config.database).display()
        );
    }
    let store = Store::open(&config.database)
        .with_context(|| format!("opening the publish log {}", config.database.display()))?;
    let notifier = systemd::Notifier::from_env();
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let mut daemon = Daemon {
        config_path,
        config,
        shared: Arc::new(Shared {
            store: Mutex::new(store),
            clock,
            options,
        }),
        adapters: HashMap::new(),
        disabled: HashMap::new(),
        notifier,
        ready: HashSet::new(),
        reported: HashSet::new(),
        log_failed: AtomicBool::new(false),
        retry_delay: FIRST_RETRY,
        rewound: HashMap::new(),
        log_unusable: None,
        tasks: JoinSet::new(),
        stop: CancellationToken::new(),
        lookups: JoinSet::new(),
        lookup_channels: HashMap::new(),
        awaiting_limits: HashSet::new(),
        permits,
        in_flight: HashMap::new(),
        published: 0,
    };
    daemon.build_adapters();
    daemon.learn_limits();

    // Watch first, then scan: files present before the watch started get no event.
    let (mut watcher, mut events) = watch::QueueWatcher::start(&daemon.config.queue)
        .with_context(|| format!("watching the queue {}", daemon.config.queue.display()))?;
    daemon.reconcile_at_startup().await;
    let now = daemon.now();
    daemon.evaluate(now);
    daemon.notifier.ready();
    tracing::info!(
        channels = daemon.config.channels.len(),
        disabled = daemon.disabled.len(),
        "cadenced is running"
    );

    let mut signals = Signals::new()?;
    let mut last_watchdog = tokio::time::Instant::now();
    loop {
        let now = daemon.now();
        // One look at the queue and the log per wake, shared by the three questions below.
        let snapshot = daemon.snapshot(now);
        let next = snapshot.as_ref().and_then(|s| daemon.next_wake(s, now));
        if let Some((review, log)) = &snapshot {
            // Recorded before STATUS= goes out: once systemd shows it, `cadenced status` can.
            daemon.record_status(review, log, now);
            daemon.report_status(review, next.clone());
        }
        if let Some(interval) = daemon.notifier.watchdog_interval()
            && last_watchdog.elapsed() >= interval / 2
        {
            // A stuck database (or a stuck loop) stops the pings and systemd restarts us.
            if daemon.shared.with_store(|s| s.ping()).is_ok() {
                daemon.notifier.watchdog();
                last_watchdog = tokio::time::Instant::now();
            }
        }
        if daemon.shared.options.exit_when_done
            && snapshot
                .as_ref()
                .is_some_and(|(review, _)| daemon.is_done(review))
        {
            break;
        }
        let mut sleep = daemon.shared.options.max_sleep;
        if let Some((next, _)) = &next {
            let until = next.duration_since(now).max(SignedDuration::ZERO);
            sleep = sleep.min(Duration::try_from(until).unwrap_or_default());
        }
        if let Some(interval) = daemon.notifier.watchdog_interval() {
            sleep = sleep.min(interval);
        }
        if let Some(retry) = daemon.retry_after_failure() {
            sleep = sleep.min(retry);
        }
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            event = events.recv() => match event {
                Some(watch::QueueEvent::Ready(path)) => { daemon.ready.insert(path); }
                Some(watch::QueueEvent::Gone(_)) | Some(watch::QueueEvent::Rescan) => {}
                None => {
                    tracing::error!("the queue watcher stopped; restarting it");
                    (watcher, events) = watch::QueueWatcher::start(&daemon.config.queue)?;
                }
            },
            Some(done) = daemon.tasks.join_next(), if !daemon.tasks.is_empty() => {
                daemon.task_finished(done);
            }
            Some(found) = daemon.lookups.join_next_with_id(), if !daemon.lookups.is_empty() => {
                daemon.limits_learned(found);
            }
            _ = signals.hup.recv() => {
                if daemon.reload().await {
                    (watcher, events) = watch::QueueWatcher::start(&daemon.config.queue)?;
                }
            }
            _ = signals.term.recv() => break,
            _ = signals.int.recv() => break,
            c = recv_control(&mut control) => match c {
                Some(Control::Reload) => {
                    if daemon.reload().await {
                        (watcher, events) = watch::QueueWatcher::start(&daemon.config.queue)?;
                    }
                }
                Some(Control::Stop) | None => break,
            },
        }
        let now = daemon.now();
        daemon.evaluate(now);
    }

    daemon.notifier.stopping();
    daemon.stop.cancel();
    daemon.lookups.abort_all();
    tracing::info!(
        in_flight = daemon.tasks.len(),
        "stopping: finishing the requests in flight"
    );
    while let Some(done) = daemon.tasks.join_next().await {
        daemon.task_finished(done);
    }
    drop(watcher);
    Ok(daemon.published)
}

async fn recv_control(control: &mut Option<mpsc::UnboundedReceiver<Control>>) -> Option<Control> {
    match control {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

impl Daemon {
    fn now(&self) -> Timestamp {
        self.shared.clock.now()
    }

    fn channel(&self, name: &str) -> Option<&Channel> {
        self.config.channels.iter().find(|c| c.name == name)
    }

    fn build_adapters(&mut self) {
        let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let env = |n: &str| std::env::var(n).ok();
        let ctx = connect_ctx(&self.config, &env, creds.as_deref());
        self.adapters.clear();
        self.disabled.clear();
        for ch in &self.config.channels {
            match adapter::connect(ch.platform, &ch.name, &ch.settings, ch.dry_run, &ctx) {
                Ok(a) => {
                    self.adapters.insert(ch.name.clone(), Arc::new(a));
                }
                Err(why) => {
                    tracing::error!(channel = %ch.name, "channel disabled: {why}");
                    self.disabled.insert(ch.name.clone(), why);
                }
            }
        }
    }

    /// Asks the servers that set their own limits (a Mastodon instance's text limit), in
    /// the background with a short time-out; a channel's files wait for its answer.
    fn learn_limits(&mut self) {
        self.lookups.abort_all();
        self.lookup_channels.clear();
        self.awaiting_limits.clear();
        for ch in &self.config.channels {
            let Some(adapter) = self.adapters.get(&ch.name).cloned() else {
                continue;
            };
            let ctx = crate::platforms::ChannelCtx {
                name: &ch.name,
                settings: &ch.settings,
                now: self.now(),
            };
            if ch.dry_run || ch.platform.limits_lookup(&ctx).is_none() {
                continue;
            }
            self.awaiting_limits.insert(ch.name.clone());
            let now = self.now();
            let task = self
                .lookups
                .spawn(async move { adapter.learn_limits(now).await });
            self.lookup_channels.insert(task.id(), ch.name.clone());
        }
    }

    fn limits_learned(
        &mut self,
        found: Result<(tokio::task::Id, Option<Limits>), tokio::task::JoinError>,
    ) {
        let (id, limits) = match found {
            Ok((id, limits)) => (id, limits),
            // Aborted by a reload (its channel was asked again) or failed: the default.
            Err(e) => (e.id(), None),
        };
        let Some(name) = self.lookup_channels.remove(&id) else {
            return;
        };
        self.awaiting_limits.remove(&name);
        let Some(ch) = self.config.channels.iter_mut().find(|c| c.name == name) else {
            return;
        };
        match limits.and_then(|l| l.max_characters) {
            Some(n) => {
                tracing::info!(channel = %name, max_characters = n, "read the server's text limit");
                ch.limits.max_characters = Some(n);
            }
            None => tracing::warn!(
                channel = %name,
                "could not read the server's text limit; using the platform's default (set `max_characters` in the channel to skip the look-up)"
            ),
        }
    }

    /// Re-reads the config; a broken one is refused and the old one kept. Returns whether
    /// the queue folder changed (the watcher must follow).
    async fn reload(&mut self) -> bool {
        let Some(path) = self.config_path.clone() else {
            return false;
        };
        self.notifier.reloading();
        let changed = match config::load(&path) {
            Ok(loaded) => {
                let queue_changed = loaded.config.queue != self.config.queue;
                self.note_timezone_changes(&loaded.config);
                self.config = loaded.config;
                self.build_adapters();
                self.learn_limits();
                self.reported.clear();
                tracing::info!(config = %path.display(), "config reloaded");
                queue_changed
            }
            Err(diags) => {
                for d in &diags {
                    tracing::error!("{d}");
                }
                tracing::error!(
                    config = %path.display(),
                    "the new config has errors; keeping the old one"
                );
                false
            }
        };
        self.notifier.ready();
        changed
    }

    /// The SPEC: if a reload changes a channel's zone, that day's cap counts every post
    /// since the earlier of the two local midnights. History is read from 48 h back and the
    /// day is judged in the new zone; a post made in the old zone's day that the new zone's
    /// day no longer contains could otherwise be forgotten, so this logs the change.
    fn note_timezone_changes(&self, new: &Config) {
        for ch in &new.channels {
            if let Some(old) = self.channel(&ch.name)
                && old.rules.timezone != ch.rules.timezone
            {
                tracing::warn!(
                    channel = %ch.name,
                    from = old.rules.timezone.iana_name().unwrap_or("?"),
                    to = ch.rules.timezone.iana_name().unwrap_or("?"),
                    "time zone changed: today's cap counts posts since the earlier local midnight"
                );
            }
        }
    }

    /// Writes a row of the publish log; on failure says which row was not recorded and asks
    /// for a retry wake (each caller's row is written again at a later evaluation: versions,
    /// deferrals and withdrawals are derived from what the log lacks). Returns whether the
    /// row is in the log.
    fn log(&self, ev: NewEvent<'_>) -> bool {
        match self.shared.with_store(|s| s.log_event(&ev)) {
            Ok(_) => true,
            Err(e) => {
                self.not_recorded(&format!("`{}` for {}", ev.status, ev.file), "", &e);
                false
            }
        }
    }

    /// A failed write (or read) of the log: say what was not recorded, and evaluate again
    /// soon rather than at some unrelated wake.
    fn not_recorded(&self, what: &str, so: &str, e: &store::StoreError) {
        tracing::error!(
            "{what} was not recorded in the publish log{so}: {e}; trying again in {} s",
            self.retry_delay.as_secs()
        );
        self.log_failed.store(true, Ordering::Relaxed);
    }

    /// After a wake whose evaluation could not read or write the log: how soon to evaluate
    /// again. The delay doubles while failures go on and starts over after a clean wake.
    fn retry_after_failure(&mut self) -> Option<Duration> {
        if self.log_failed.swap(false, Ordering::Relaxed) {
            let delay = self.retry_delay;
            self.retry_delay = (self.retry_delay * 2).min(LAST_RETRY);
            Some(delay)
        } else {
            self.retry_delay = FIRST_RETRY;
            None
        }
    }

    fn platform_of(&self, channel: &str) -> Platform {
        self.channel(channel)
            .map(|c| c.platform)
            .or_else(|| Platform::named("outbox"))
            .expect("the outbox platform is registered")
    }

    /// One evaluation at `now`: see the module documentation.
    fn evaluate(&mut self, now: Timestamp) {
        // Nothing is decided against a log whose file is gone: its history would be lost.
        match self.shared.with_store(|s| s.check_file()) {
            Err(e) => {
                let why = e.to_string();
                if self.log_unusable.as_ref() != Some(&why) {
                    tracing::error!("{why}");
                    self.log_unusable = Some(why);
                }
                self.log_failed.store(true, Ordering::Relaxed);
                return;
            }
            Ok(()) => {
                if self.log_unusable.take().is_some() {
                    tracing::info!("the publish log is back; publishing again");
                }
            }
        }
        let log = match self
            .shared
            .with_store(|s| LogView::load(s, &self.config, now))
        {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(
                    "could not read the publish log: {e}; evaluating again in {} s",
                    self.retry_delay.as_secs()
                );
                self.log_failed.store(true, Ordering::Relaxed);
                return;
            }
        };
        let mut scan = queue::scan(&self.config.queue, &self.channel_names());
        // Forget "ready" marks of files that left the queue, so the set stays bounded.
        let in_queue: HashSet<&PathBuf> = scan.files.iter().map(|f| &f.path).collect();
        self.ready.retain(|p| in_queue.contains(p));
        // A file written in place is taken only once it has settled; the watcher says so
        // (Ready) or its modification time does.
        let settle = self.shared.options.settle;
        scan.files.retain(|f| {
            self.ready.contains(&f.path) || !clock::modified_within(f.modified, settle)
        });
        // A channel whose server is still telling its limits is judged once it has.
        scan.files
            .retain(|f| !self.awaiting_limits.contains(&f.channel));
        for p in &scan.problems {
            let key = p.to_string();
            if self.reported.insert(key) {
                tracing::warn!("{p}");
            }
        }
        for note in &scan.orphan_notes {
            if let Err(e) = files::clear_note_of_gone_file(note) {
                tracing::debug!("cannot remove the note {}: {e}", note.display());
            }
        }
        let present: HashMap<String, QueuedFile> = scan
            .files
            .iter()
            .map(|f| (f.id.clone(), f.clone()))
            .collect();
        self.finish_interrupted_moves(&present, &log);
        let review = review::review(&self.config, scan, &log, now);
        self.log_versions(&review, &log, now);
        self.log_withdrawals(&present, now);

        for ch in self.config.channels.clone() {
            if self.disabled.contains_key(&ch.name)
                || self.awaiting_limits.contains(&ch.name)
                || self.in_flight.get(&ch.name).is_some_and(|n| *n > 0)
            {
                continue;
            }
            let pending: Vec<Pending> = review
                .files
                .iter()
                .filter(|f| f.channel == ch.name)
                .filter_map(|f| match &f.verdict {
                    Verdict::Ready(p) => Some(p.clone()),
                    _ => None,
                })
                .collect();
            let expired: Vec<&review::FileReview> = review
                .files
                .iter()
                .filter(|f| f.channel == ch.name && matches!(f.verdict, Verdict::Expired(_)))
                .collect();
            for f in expired {
                self.expire(&ch, &f.id, &f.path, &f.hash, now);
            }
            let history = log.history.get(&ch.name).cloned().unwrap_or_default();
            let last = match self.rewound.get(&ch.name) {
                Some(rewound) => *rewound,
                None => log.last_evaluated.get(&ch.name).copied(),
            };
            let step = policy::decide(&ch.rules, &history, &pending, last, now);
            // Recorded before acting, so a restart never sees a slot twice; when this fails
            // nothing is done and the retry wake decides again.
            if let Err(e) = self.shared.with_store(|s| {
                s.set_last_evaluated(&ch.name, now, ch.rules.timezone.iana_name().unwrap_or(""))
            }) {
                self.not_recorded(
                    &format!("the evaluation of channel `{}`", ch.name),
                    ", so nothing was done for it",
                    &e,
                );
                continue;
            }
            for id in &step.expire {
                if let Some(f) = review.files.iter().find(|f| &f.id == id) {
                    self.expire(&ch, id, &f.path, &f.hash, now);
                }
            }
            for (id, wait) in &step.deferred {
                let Some(f) = review.files.iter().find(|f| &f.id == id) else {
                    continue;
                };
                let detail = wait.describe_in(&ch.rules.timezone);
                let same = self
                    .shared
                    .with_store(|s| s.last_deferral(id, &f.hash))
                    .ok()
                    .flatten()
                    .is_some_and(|d| d == detail);
                if !same {
                    self.log(NewEvent {
                        time: now,
                        channel: &ch.name,
                        platform: ch.platform,
                        file: id,
                        hash: Some(&f.hash),
                        status: "deferred",
                        detail: &detail,
                        attempt: None,
                    });
                }
            }
            // At most one publish in flight per channel: the next one waits for this outcome.
            let used = match step.publish.first() {
                Some(id) => {
                    let claim_until = claim_end(&ch, now);
                    self.start_publish(&ch, id, &present, claim_until, now)
                }
                None => true,
            };
            if used {
                self.rewound.remove(&ch.name);
            } else {
                self.rewound.insert(ch.name.clone(), last);
            }
        }
    }

    /// The SPEC: a retry keeps the slot it claimed until the channel's next slot or
    /// `catch_up`, whichever is sooner. Returns `false` when the opportunity was not used
    /// and must be decided again at the next wake: the file changed just before sending,
    /// or its attempt could not be recorded first.
    fn start_publish(
        &mut self,
        ch: &Channel,
        id: &str,
        present: &HashMap<String, QueuedFile>,
        claim_until: Timestamp,
        now: Timestamp,
    ) -> bool {
        let Some(adapter) = self.adapters.get(&ch.name).cloned() else {
            return true;
        };
        let Some(reviewed) = present.get(id) else {
            return true;
        };
        // Re-read right before sending: send exactly the version that was just checked.
        let Some(fresh) = queue::read_post(&self.config.queue, &ch.name, &reviewed.path) else {
            return true;
        };
        if fresh.hash != reviewed.hash {
            tracing::info!(channel = %ch.name, file = %id, "changed just before sending; checking the new version first");
            return false;
        }
        let Ok(accepted) = &fresh.content else {
            return true;
        };
        let normalized = comparable(&accepted.post.body);
        // After an unsure outcome the platform may still recognise the key: reuse it (and
        // its age) so a duplicate is dropped; otherwise a new key per attempt.
        let reusable = self
            .shared
            .with_store(|s| s.reusable_key(id, &fresh.hash))
            .ok()
            .flatten();
        let (key, key_started) = match reusable {
            Some((key, first)) => (key, first),
            None => {
                let count = self
                    .shared
                    .with_store(|s| s.attempt_count(id))
                    .unwrap_or_default();
                (idempotency_key(id, &fresh.hash, count), now)
            }
        };
        let attempt = NewAttempt {
            started: now,
            channel: &ch.name,
            platform: ch.platform,
            file: id,
            hash: &fresh.hash,
            normalized: &normalized,
            idempotency_key: &key,
            key_started,
            dry_run: ch.dry_run,
        };
        let attempt_id = match self.shared.with_store(|s| s.begin_attempt(&attempt)) {
            Ok(a) => a,
            Err(e) => {
                self.not_recorded(
                    &format!("the attempt to send {id}"),
                    ", so it was not sent",
                    &e,
                );
                return false;
            }
        };
        let outgoing = publish::outgoing(&self.config.queue, ch, id, Some(accepted), &key, now);
        let expires = accepted
            .post
            .front
            .expires
            .map(|e| e.resolve(&ch.rules.timezone));
        let claim = Claim {
            attempt_id,
            started: now,
            key_started,
            until: claim_until,
            expires,
            rules: ch.rules.clone(),
            path: fresh.path.clone(),
        };
        tracing::info!(channel = %ch.name, file = %id, platform = %ch.platform, dry_run = ch.dry_run, "publishing");
        *self.in_flight.entry(ch.name.clone()).or_default() += 1;
        let shared = self.shared.clone();
        let permits = self.permits.clone();
        let channel = ch.name.clone();
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let ended = publish::publish(&shared, &adapter, &outgoing, claim, &stop).await;
            (channel, ended)
        });
        true
    }

    fn task_finished(&mut self, done: Result<(String, Ended), tokio::task::JoinError>) {
        match done {
            Ok((channel, ended)) => {
                if let Some(n) = self.in_flight.get_mut(&channel) {
                    *n = n.saturating_sub(1);
                }
                match ended {
                    Ended::Published => self.published += 1,
                    Ended::NotPublished => {}
                    Ended::Credentials(why) => {
                        tracing::error!(channel = %channel, "channel disabled until the config is reloaded: {why}");
                        self.disabled.insert(channel, why);
                    }
                }
            }
            Err(e) => {
                // A panicked task: its attempt row stays `sending` and is reconciled at the
                // next start; its channel stays blocked until then, which is the safe side.
                tracing::error!("a publish task failed: {e}");
            }
        }
    }

    fn expire(&self, ch: &Channel, id: &str, path: &Path, hash: &str, now: Timestamp) {
        match files::move_into(path, "expired") {
            Ok(to) => {
                tracing::info!(channel = %ch.name, file = %id, "expired unpublished; moved to {}", to.display());
                self.log(NewEvent {
                    time: now,
                    channel: &ch.name,
                    platform: ch.platform,
                    file: id,
                    hash: Some(hash),
                    status: "expired",
                    detail: &format!("moved to {}", to.display()),
                    attempt: None,
                });
            }
            Err(e) => {
                tracing::error!(channel = %ch.name, file = %id, "could not move an expired post: {e}")
            }
        }
    }

    /// Logs each new version of a file once (`accepted` or `held`) and keeps its `.held`
    /// note in step with its verdict.
    fn log_versions(&self, review: &review::Review, log: &LogView, now: Timestamp) {
        for f in &review.files {
            // Being sent (or interrupted, reconciled at the next start): not a new verdict.
            if log
                .unsure
                .get(&f.id)
                .is_some_and(|state| state == "sending")
            {
                continue;
            }
            let (status, diag): (&str, Option<&Diagnostic>) = match &f.verdict {
                Verdict::Ready(_) | Verdict::Expired(_) => ("accepted", None),
                Verdict::Held(d) | Verdict::Invalid(d) => ("held", Some(d)),
            };
            match diag {
                Some(d) => {
                    if let Err(e) = files::write_note(&f.path, "held", &files::note_text(d)) {
                        tracing::warn!(file = %f.id, "could not write the .held note: {e}");
                    }
                }
                None => {
                    let _ = files::clear_held_note(&f.path);
                }
            }
            let logged = self
                .shared
                .with_store(|s| s.version_logged(&f.id, &f.hash))
                .ok()
                .flatten();
            if logged.as_deref() == Some(status) {
                continue;
            }
            let detail = diag.map(|d| match &d.help {
                Some(h) => format!("{} — {h}", d.message),
                None => d.message.clone(),
            });
            // Said once the row is in the log, so stderr never claims what the log lacks.
            let logged = self.log(NewEvent {
                time: now,
                channel: &f.channel,
                platform: self.platform_of(&f.channel),
                file: &f.id,
                hash: Some(&f.hash),
                status,
                detail: detail.as_deref().unwrap_or(""),
                attempt: None,
            });
            match diag {
                Some(d) if logged => tracing::warn!(channel = %f.channel, file = %f.id, "{d}"),
                None if logged => tracing::info!(channel = %f.channel, file = %f.id, "accepted"),
                _ => {}
            }
        }
    }

    /// Files the log saw pending that left the queue (renamed or deleted) were withdrawn.
    fn log_withdrawals(&self, present: &HashMap<String, QueuedFile>, now: Timestamp) {
        let Ok(pending) = self.shared.with_store(|s| s.pending_files()) else {
            return;
        };
        let unsure = self
            .shared
            .with_store(|s| s.unsure_files())
            .unwrap_or_default();
        for id in pending {
            if present.contains_key(&id) || unsure.contains_key(&id) {
                continue;
            }
            // A file still on disk but not taken yet (settling) is not withdrawn.
            if self.config.queue.join(&id).exists() {
                continue;
            }
            let channel = id.split('/').next().unwrap_or_default().to_string();
            tracing::info!(channel = %channel, file = %id, "withdrawn (renamed or removed)");
            self.log(NewEvent {
                time: now,
                channel: &channel,
                platform: self.platform_of(&channel),
                file: &id,
                hash: None,
                status: "withdrawn",
                detail: "renamed or removed from the queue before it was published",
                attempt: None,
            });
        }
    }

    /// A crash between recording an outcome and moving the file leaves a published (or
    /// failed) version in the queue: finish the move instead of sending it again. Not while
    /// the channel's publish task runs: the task moves its own file right after recording
    /// its outcome, and two movers of one file made one of them fail ("No such file").
    /// A move that keeps failing (a `published` that is a file) is logged once.
    fn finish_interrupted_moves(&mut self, present: &HashMap<String, QueuedFile>, log: &LogView) {
        for (id, f) in present {
            let Some((state, hash)) = log.finished.get(id) else {
                continue;
            };
            if f.hash != *hash || self.in_flight.get(&f.channel).is_some_and(|n| *n > 0) {
                continue; // a new version under the same name is a new post
            }
            let sub = if state == "failed" {
                "failed"
            } else {
                "published"
            };
            match files::move_into(&f.path, sub) {
                Ok(to) => {
                    tracing::info!(file = %id, "finished an interrupted move to {}", to.display())
                }
                // The scan reports a `published` that is not a folder, once, with the fix.
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
                Err(e) => {
                    if self.reported.insert(format!("move {id} {sub}: {e}")) {
                        tracing::error!(file = %id, "could not move to {sub}/: {e}");
                    }
                }
            }
        }
    }

    /// Start-up: attempts left `sending` by a crash are reconciled per platform before
    /// anything else is sent.
    async fn reconcile_at_startup(&mut self) {
        let sending = match self.shared.with_store(|s| s.sending_attempts()) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!("could not read unfinished attempts: {e}");
                return;
            }
        };
        for attempt in sending {
            let Some(adapter) = self.adapters.get(&attempt.channel).cloned() else {
                tracing::warn!(channel = %attempt.channel, file = %attempt.file, "unfinished attempt on a disabled or removed channel; left as it is");
                continue;
            };
            let Some(ch) = self.channel(&attempt.channel).cloned() else {
                continue;
            };
            let ended = publish::reconcile(
                &self.shared,
                &adapter,
                &ch,
                &attempt,
                &self.config.queue,
                &self.stop,
            )
            .await;
            if ended == Ended::Published {
                self.published += 1;
            }
        }
    }

    fn channel_names(&self) -> Vec<&str> {
        self.config
            .channels
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The queue as `review` judges it now, with the log it was judged against.
    fn snapshot(&self, now: Timestamp) -> Option<(review::Review, LogView)> {
        let log = self
            .shared
            .with_store(|s| LogView::load(s, &self.config, now))
            .ok()?;
        let scan = queue::scan(&self.config.queue, &self.channel_names());
        Some((review::review(&self.config, scan, &log, now), log))
    }

    /// The earliest next wake of any enabled channel, with that channel.
    fn next_wake(
        &self,
        (review, log): &(review::Review, LogView),
        now: Timestamp,
    ) -> Option<(Timestamp, String)> {
        review
            .sim_channels(&self.config, log)
            .iter()
            .filter(|c| !self.disabled.contains_key(&c.name))
            .filter_map(|c| {
                Some((
                    policy::next_wake(&c.rules, &c.history, &c.pending, now)?,
                    c.name.clone(),
                ))
            })
            .min()
    }

    fn is_done(&self, review: &review::Review) -> bool {
        if !self.tasks.is_empty() {
            return false;
        }
        // Done when nothing is left that could be published: the demo moves its example's
        // appointments to just after its start, so they are waited for too.
        !review.files.iter().any(|f| {
            matches!(f.verdict, Verdict::Ready(_)) && !self.disabled.contains_key(&f.channel)
        })
    }

    /// `STATUS=` for systemd, e.g. "12 queued; next: shop-x Mon 17:30".
    fn report_status(&self, review: &review::Review, next: Option<(Timestamp, String)>) {
        let queued = review.files.len();
        let next_text = match next {
            Some((t, channel)) => {
                let tz = self
                    .channel(&channel)
                    .map(|c| c.rules.timezone.clone())
                    .unwrap_or(jiff::tz::TimeZone::UTC);
                format!("{channel} {}", t.to_zoned(tz).strftime("%a %H:%M"))
            }
            None => "nothing scheduled".to_string(),
        };
        let disabled = if self.disabled.is_empty() {
            String::new()
        } else {
            format!("; {} channel(s) disabled", self.disabled.len())
        };
        self.notifier
            .status(&format!("{queued} queued; next: {next_text}{disabled}"));
    }
}

/// What `adapter::connect` needs to build a channel's adapter: the daemon's own context,
/// also used by `cadenced check`, so whatever makes `run` disable a channel makes `check`
/// fail (one path for both).
pub fn connect_ctx<'a>(
    config: &'a Config,
    env: &'a dyn Fn(&str) -> Option<String>,
    credentials_dir: Option<&'a Path>,
) -> ConnectCtx<'a> {
    ConnectCtx {
        env,
        credentials_dir,
        outbox: &config.outbox,
        tokens: Some(TokenStore::beside(&config.database)),
        media: Arc::new(publish::QueueMedia {
            root: config.queue.clone(),
        }),
        hidden_env: config::credential_env_names(config),
    }
}

/// The end of a publish's claim on its slot: the channel's next slot or `catch_up`,
/// whichever is sooner.
fn claim_end(ch: &Channel, now: Timestamp) -> Timestamp {
    let catch_up = now + ch.rules.catch_up;
    ch.rules
        .slots
        .next_after(now, &ch.rules.timezone)
        .map_or(catch_up, |next| next.min(catch_up))
}

/// Derived from the post (file and version) and the attempt number: the same for every
/// resend of one attempt, new for a `retry`.
pub fn idempotency_key(file: &str, hash: &str, attempt: i64) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{file}\n{hash}\n{attempt}").as_bytes());
    format!("cadenced-{}", &hex::encode(digest)[..32])
}
