//! The daemon: the only module that wires the others. It watches the queue, asks the pure
//! policy what to do whenever a channel is due, carries out the answer through the
//! adapters, and records every decision and attempt in the log before and after acting.
//!
//! **The queue picture** (`intake`): the queue is read whole at start-up, on reload, after a
//! watch overflow or a folder moved in, and every few hours as a safety net; otherwise the
//! daemon updates only what an event names (one file, or one channel folder listed by
//! stamp). Every new verdict is logged (`accepted`/`held`), and a file that leaves the queue
//! while pending is logged `withdrawn`. Judging is `review`'s, shared with `check` and
//! `plan`; caps, gaps and uniqueness come from the log, never from memory.
//!
//! **Evaluating** a channel calls `policy::decide` and acts: expire, publish, or log a
//! changed deferral. The publishes decided in one pass over the channels start at its end,
//! once all their attempt rows are committed, in one transaction. A channel is evaluated
//! when its ready posts change and when its `policy::next_wake` comes (a slot, an
//! appointment, an expiry), its folder listed again first; a finished publish or
//! reconciliation evaluates its channel.
//!
//! **Sleeping**: until the earliest of the channels' next wakes, a file's settle time, a
//! hold by a published post leaving its window, and the safety-net rescan; no polling. A
//! wall-clock step (NTP, suspend) is noticed by `clockwatch` (a `timerfd` that fires only
//! when the clock is set) and every wake is recomputed after any wake. Under systemd's
//! watchdog, `WATCHDOG=1` follows a database round trip at half its interval.
//!
//! **Start-up**: the queue is reviewed and logged, then `READY=1`; attempts a crash left
//! `sending` are reconciled after that, in the background and channel by channel: such a
//! channel waits for its reconciliation, the others publish meanwhile.

mod clockwatch;
pub mod demo;
mod intake;
pub mod lock;
mod publish;
pub mod status;
pub mod systemd;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use jiff::{SignedDuration, Timestamp};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cadence::policy;
use crate::clock::Clock;
use crate::config::{self, Channel, Config};
use crate::platforms::adapter::{self, AnyAdapter, ConnectCtx};
use crate::platforms::{Limits, Platform, http};
use crate::queue::{self, files, watch};
use crate::store::{self, AttemptRow, NewAttempt, NewEvent, Store};
use crate::tokens::TokenStore;

use intake::{Ctx, Outcome, Picture};
pub use publish::Claim;
use publish::Ended;
use tokio_util::sync::CancellationToken;

/// Knobs that tests and the demo turn; the defaults are what systemd runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// A file written in place is taken once unchanged this long after its last write.
    pub settle: Duration,
    /// The longest sleep without listing the whole queue again: a safety net in case the
    /// watcher missed something (events are hints). Nothing else needs it: the daemon wakes
    /// for what is due, and a wall-clock step wakes it through `watch_clock`.
    pub max_sleep: Duration,
    /// Publishes in flight at once across channels.
    pub concurrency: usize,
    /// Stop once nothing is ready to publish and nothing is in flight (the demo).
    pub exit_when_done: bool,
    /// Base delay of the exponential backoff between resends of a transient failure.
    pub backoff: Duration,
    /// Notice wall-clock steps with a `timerfd` (see `clockwatch`).
    pub watch_clock: bool,
    /// Counts the loop's timer wakes (not the events it handles): tests pin with it that an
    /// idle daemon does not wake.
    pub wakes: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            settle: Duration::from_secs(1),
            max_sleep: Duration::from_secs(6 * 3600),
            concurrency: 4,
            exit_when_done: false,
            backoff: Duration::from_secs(30),
            watch_clock: true,
            wakes: None,
        }
    }
}

/// The first wait before trying again after the log failed; it doubles up to
/// [`LAST_RETRY`] while the failures go on (a full disk, a database locked for long).
const FIRST_RETRY: Duration = Duration::from_secs(5);
const LAST_RETRY: Duration = Duration::from_secs(60);

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
    notifier: Arc<systemd::Notifier>,
    /// The queue as judged: see `intake`.
    picture: Picture,
    /// Problems already reported, so a bad folder is logged once, not at every wake.
    reported: HashSet<String>,
    /// Publish tasks; each returns its channel, its file and how the publish ended.
    tasks: JoinSet<(String, String, Ended)>,
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
    /// The normalized text of each post being sent: when its attempt ends, the posts near
    /// it are judged against the log again.
    sending_texts: HashMap<String, String>,
    /// Start-up reconciliations running, one task per channel; each returns its channel,
    /// the attempts it settled and how many turned out published.
    reconciles: JoinSet<(String, Vec<AttemptRow>, usize)>,
    /// Channels waiting for their reconciliation: not evaluated until it ends.
    reconciling: HashSet<String>,
    /// Per channel (config order): when `policy::next_wake` asks to be evaluated again.
    wakes: Vec<Option<Timestamp>>,
    /// Channels whose ready posts changed since they were last evaluated.
    dirty: BTreeSet<usize>,
    next_rescan: Instant,
    /// A read or write of the log failed: when to try again (the queue listed again, so
    /// files not judged or verdicts not recorded are done again; withdrawals not recorded
    /// written again; channels evaluated again).
    retry_at: Option<Instant>,
    /// The wait before the next retry: doubles while failures go on.
    retry_delay: Duration,
    /// Withdrawals whose row could not be written: written again at the retry.
    unrecorded_withdrawals: Vec<(usize, String)>,
    /// Sends decided in the current pass over the channels, checked and waiting for their
    /// attempt rows, which are committed together at the end of the pass (`send_prepared`).
    prepared: Vec<Prepared>,
    /// Per channel, the `last_evaluated` to decide with instead of the log's: a slot's
    /// decision recorded but not carried out (its attempt could not be recorded, or the
    /// file changed just before sending) must be decided again at the next wake.
    rewound: HashMap<String, Option<Timestamp>>,
    /// Channels to evaluate again at the retry (their evaluation failed or was not used).
    again: BTreeSet<usize>,
    /// Why the publish log cannot be used (its file deleted or replaced), while it lasts.
    log_unusable: Option<String>,
    /// The last `STATUS=` sent.
    status: String,
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
    keep_large_blocks_apart();
    // Before any start-up work: a SIGTERM during a slow start-up (a large queue, a loaded
    // machine) is then a clean stop once the loop runs, not death by the default action.
    let mut signals = Signals::new()?;
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
    let notifier = Arc::new(systemd::Notifier::from_env());
    // Minutes, the first time a large log from an older cadenced is indexed.
    let store =
        crate::progress::with_progress(notifier.keepalive(), || Store::open(&config.database))
            .with_context(|| format!("opening the publish log {}", config.database.display()))?;
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let picture = Picture::new(&config, options.settle);
    let next_rescan = Instant::now() + options.max_sleep;
    let watch_clock = options.watch_clock;
    let mut daemon = Daemon {
        config_path,
        wakes: vec![None; config.channels.len()],
        config,
        shared: Arc::new(Shared {
            store: Mutex::new(store),
            clock,
            options,
        }),
        adapters: HashMap::new(),
        disabled: HashMap::new(),
        notifier,
        picture,
        reported: HashSet::new(),
        tasks: JoinSet::new(),
        stop: CancellationToken::new(),
        lookups: JoinSet::new(),
        lookup_channels: HashMap::new(),
        awaiting_limits: HashSet::new(),
        permits,
        in_flight: HashMap::new(),
        sending_texts: HashMap::new(),
        reconciles: JoinSet::new(),
        reconciling: HashSet::new(),
        dirty: BTreeSet::new(),
        next_rescan,
        retry_at: None,
        retry_delay: FIRST_RETRY,
        unrecorded_withdrawals: Vec::new(),
        prepared: Vec::new(),
        rewound: HashMap::new(),
        again: BTreeSet::new(),
        log_unusable: None,
        status: String::new(),
        published: 0,
    };
    daemon.build_adapters();
    daemon.learn_limits();

    // Watch first, then scan: files present before the watch started get no event.
    let (mut watcher, mut events) = watch::QueueWatcher::start(&daemon.config.queue)
        .with_context(|| format!("watching the queue {}", daemon.config.queue.display()))?;
    // Channels with attempts a crash left `sending` wait for their reconciliation.
    let unfinished = match daemon.shared.with_store(|s| s.sending_attempts()) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!("could not read unfinished attempts: {e}");
            Vec::new()
        }
    };
    for a in &unfinished {
        daemon.reconciling.insert(a.channel.clone());
    }
    // What the log had pending before this start-up wrote its verdicts.
    let pending_before = daemon.shared.with_store(|s| s.pending_files());
    daemon.rescan();
    daemon.log_startup_withdrawals(pending_before);
    daemon.notifier.ready();
    tracing::info!(
        channels = daemon.config.channels.len(),
        queued = daemon.picture.len(),
        disabled = daemon.disabled.len(),
        "cadenced is running"
    );
    daemon.start_reconciling(unfinished);
    daemon.forget_records();
    daemon.dirty.extend(0..daemon.config.channels.len());
    daemon.evaluate_dirty();

    let mut clock_watch = if watch_clock {
        match clockwatch::ClockWatch::new() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch the wall clock for steps ({e}); a step is noticed at the next wake"
                );
                None
            }
        }
    } else {
        None
    };
    let mut last_watchdog = Instant::now();
    loop {
        daemon.report_status();
        if daemon.shared.options.exit_when_done && daemon.is_done() {
            break;
        }
        let watchdog_at = daemon
            .notifier
            .watchdog_interval()
            .map(|interval| last_watchdog + interval);
        let deadline = daemon.next_deadline(watchdog_at);
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => {
                if watchdog_at.is_some_and(|t| t <= Instant::now()) {
                    // A stuck database (or a stuck loop) stops the pings and systemd
                    // restarts us.
                    if daemon.shared.with_store(|s| s.ping()).is_ok() {
                        daemon.notifier.watchdog();
                        last_watchdog = Instant::now();
                    }
                }
                tracing::debug!("woke for what is due");
                if let Some(wakes) = &daemon.shared.options.wakes {
                    wakes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                daemon.timers_due();
            }
            changed = wait_clock(&mut clock_watch) => {
                match changed {
                    Ok(()) => tracing::info!("the wall clock was set; computing the next wakes again"),
                    Err(e) => {
                        tracing::warn!("stopped watching the wall clock for steps: {e}");
                        clock_watch = None;
                    }
                }
            }
            event = events.recv() => match event {
                Some(first) => {
                    let mut batch = vec![first];
                    while let Ok(more) = events.try_recv() {
                        batch.push(more);
                    }
                    daemon.queue_events(batch);
                }
                None => {
                    tracing::error!("the queue watcher stopped; restarting it");
                    (watcher, events) = watch::QueueWatcher::start(&daemon.config.queue)?;
                    daemon.rescan();
                }
            },
            Some(done) = daemon.tasks.join_next(), if !daemon.tasks.is_empty() => {
                daemon.task_finished(done);
            }
            Some(done) = daemon.reconciles.join_next(), if !daemon.reconciles.is_empty() => {
                daemon.reconciled(done);
            }
            Some(found) = daemon.lookups.join_next_with_id(), if !daemon.lookups.is_empty() => {
                let id = match &found {
                    Ok((id, _)) => *id,
                    Err(e) => e.id(),
                };
                let name = daemon.lookup_channels.get(&id).cloned();
                daemon.limits_learned(found);
                // Its files were left unjudged while it waited: judge them now.
                if let Some(ci) = name.and_then(|n| daemon.index_of(&n)) {
                    daemon.revalidate(ci);
                    daemon.dirty.insert(ci);
                }
            }
            _ = signals.hup.recv() => {
                if daemon.reload_and_rescan().await {
                    (watcher, events) = watch::QueueWatcher::start(&daemon.config.queue)?;
                    daemon.rescan();
                }
            }
            _ = signals.term.recv() => break,
            _ = signals.int.recv() => break,
            c = recv_control(&mut control) => match c {
                Some(Control::Reload) => {
                    if daemon.reload_and_rescan().await {
                        (watcher, events) = watch::QueueWatcher::start(&daemon.config.queue)?;
                        daemon.rescan();
                    }
                }
                Some(Control::Stop) | None => break,
            },
        }
        daemon.evaluate_dirty();
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
    // A reconciliation still asking its platform is left for the next start: its attempt
    // stays `sending`, which is the safe side.
    daemon.reconciles.abort_all();
    drop(watcher);
    Ok(daemon.published)
}

async fn wait_clock(watch: &mut Option<clockwatch::ClockWatch>) -> std::io::Result<()> {
    match watch {
        Some(w) => w.changed().await,
        None => std::future::pending().await,
    }
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

    fn index_of(&self, name: &str) -> Option<usize> {
        self.config.channels.iter().position(|c| c.name == name)
    }

    fn build_adapters(&mut self) {
        let creds = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
        let env = |n: &str| std::env::var(n).ok();
        let ctx = connect_ctx(&self.config, &env, creds.as_deref());
        self.adapters.clear();
        self.disabled.clear();
        for ch in &self.config.channels {
            match adapter::connect(ch.platform, &ch.name, &ch.settings, ch.dry_run, &ctx) {
                // A channel whose refresh or login the platform refused stays paused across
                // restarts, with the reason, until `cadenced auth` connects it again.
                Ok(_)
                    if let Some(why) = ctx
                        .tokens
                        .as_ref()
                        .filter(|_| !ch.dry_run)
                        .and_then(|t| t.get(&ch.name).ok())
                        .and_then(|t| t.needs_auth) =>
                {
                    let why = format!(
                        "{why}; run `cadenced auth {}`, then reload the daemon",
                        ch.name
                    );
                    tracing::error!(channel = %ch.name, "channel disabled: {why}");
                    self.disabled.insert(ch.name.clone(), why);
                }
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
    /// the config was replaced and, if so, whether the queue folder changed (the watcher
    /// must follow).
    async fn reload(&mut self) -> Option<bool> {
        let path = self.config_path.clone()?;
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
                Some(queue_changed)
            }
            Err(diags) => {
                for d in &diags {
                    tracing::error!("{d}");
                }
                tracing::error!(
                    config = %path.display(),
                    "the new config has errors; keeping the old one"
                );
                None
            }
        };
        self.notifier.ready();
        changed
    }

    /// A reload: with a new config, the queue is judged again from scratch (channels,
    /// limits and rules may all have changed). Returns whether the queue folder changed:
    /// then the caller restarts the watcher and rescans.
    async fn reload_and_rescan(&mut self) -> bool {
        match self.reload().await {
            None => false,
            Some(queue_changed) => {
                self.picture = self.picture.renewed(&self.config);
                self.wakes = vec![None; self.config.channels.len()];
                self.forget_records();
                if !queue_changed {
                    self.rescan();
                }
                self.dirty.extend(0..self.config.channels.len());
                queue_changed
            }
        }
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
    /// for a retry. Returns whether the row is in the log.
    fn log(&mut self, ev: NewEvent<'_>) -> bool {
        match self.shared.with_store(|s| s.log_event(&ev)) {
            Ok(_) => true,
            Err(e) => {
                self.not_recorded(&format!("`{}` for {}", ev.status, ev.file), "", &e);
                false
            }
        }
    }

    /// A failed write (or read) of the log: say what was not recorded, and try again soon
    /// rather than at some unrelated wake.
    fn not_recorded(&mut self, what: &str, so: &str, e: &store::StoreError) {
        self.say_not_recorded(what, so, e);
        self.log_failed();
    }

    fn say_not_recorded(&self, what: &str, so: &str, e: &store::StoreError) {
        tracing::error!(
            "{what} was not recorded in the publish log{so}: {e}; trying again in {} s",
            self.retry_delay.as_secs()
        );
    }

    /// Schedules the retry after a failure of the log (the delay doubles while failures go
    /// on, and starts over after a retry that went through).
    fn log_failed(&mut self) {
        if self.retry_at.is_none() {
            self.retry_at = Some(Instant::now() + self.retry_delay);
            self.retry_delay = (self.retry_delay * 2).min(LAST_RETRY);
        }
    }

    /// Whether the publish log may be used: nothing is judged, decided or published against
    /// a log whose file is gone or replaced (its history would be lost); that is said once,
    /// and everything is done again at the retry after it is back.
    fn log_usable(&mut self) -> bool {
        match self.shared.with_store(|s| s.check_file()) {
            Err(e) => {
                let why = e.to_string();
                if self.log_unusable.as_ref() != Some(&why) {
                    tracing::error!("{why}");
                    self.log_unusable = Some(why);
                }
                self.log_failed();
                false
            }
            Ok(()) => {
                if self.log_unusable.take().is_some() {
                    tracing::info!("the publish log is back; publishing again");
                }
                true
            }
        }
    }

    /// Runs one update of the picture with the log at hand, then acts on what it found.
    fn update(&mut self, f: impl FnOnce(&mut Picture, &Ctx<'_>) -> Outcome) {
        if !self.log_usable() {
            // Judged again from a full listing at the retry.
            self.picture.judge_all_again();
            return;
        }
        let now = self.now();
        let awaiting = &self.awaiting_limits;
        let skip = |name: &str| awaiting.contains(name);
        let outcome = {
            let guard = self.shared.store.lock().unwrap_or_else(|p| p.into_inner());
            guard.reading(|store| {
                let ctx = Ctx {
                    config: &self.config,
                    store,
                    skip: &skip,
                    now,
                };
                f(&mut self.picture, &ctx)
            })
        };
        self.apply(outcome, now);
    }

    /// The whole queue, listed again; only changed files are read. With a large queue
    /// (and a large log to check it against) this is minutes of work on slow machines,
    /// during which the loop sends systemd nothing: the review does, as it advances.
    fn rescan(&mut self) {
        crate::progress::with_progress(self.notifier.keepalive(), || {
            self.update(|p, ctx| p.rescan(ctx));
        });
        release_freed_memory();
    }

    /// One channel folder, listed again.
    fn revalidate(&mut self, ci: usize) {
        self.revalidate_many(&[ci]);
    }

    /// These channel folders, listed again. The queue root is listed once for all of them
    /// (to tell which are there), knowing every channel (so no other channel's folder is
    /// taken for a misspelt one): listing it per channel, knowing only that one, made
    /// 1,000 channels due at one slot list 1,000 entries 1,000 times and look for a
    /// "did you mean" for 999 of them each time.
    fn revalidate_many(&mut self, cis: &[usize]) {
        if cis.is_empty() {
            return;
        }
        let present: HashSet<&str> = {
            let names: Vec<&str> = self
                .config
                .channels
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            queue::scan_root(&self.config.queue, &names)
                .channels
                .into_iter()
                .collect()
        };
        let present: Vec<bool> = cis
            .iter()
            .map(|&ci| present.contains(self.config.channels[ci].name.as_str()))
            .collect();
        for (&ci, here) in cis.iter().zip(present) {
            self.update(|p, ctx| p.revalidate(ctx, ci, here));
        }
    }

    fn queue_events(&mut self, batch: Vec<watch::QueueEvent>) {
        if batch.iter().any(|e| matches!(e, watch::QueueEvent::Rescan)) {
            for e in &batch {
                if let watch::QueueEvent::Ready(path) = e {
                    self.picture.mark_ready(path);
                }
            }
            self.rescan();
            return;
        }
        // Tens of thousands of files copied in at once come as one batch, each file looked
        // up in the log here: a minute and more on a small machine with a long log, with no
        // watchdog ping from the loop meanwhile. Each file says it advances, as a review's
        // batches do.
        crate::progress::with_progress(self.notifier.keepalive(), || {
            for e in batch {
                crate::progress::advanced();
                match e {
                    watch::QueueEvent::Ready(path) => {
                        self.picture.mark_ready(&path);
                        self.update(|p, ctx| p.file_event(ctx, &path));
                    }
                    watch::QueueEvent::Gone(path) => self.update(|p, ctx| p.file_event(ctx, &path)),
                    watch::QueueEvent::Rescan => {}
                }
            }
        });
    }

    /// What the picture found: verdicts logged (each version once) and shown in `.held`
    /// notes, withdrawals logged, interrupted moves finished, problems reported once.
    /// Many rows (the start-up's) go in one transaction.
    fn apply(&mut self, outcome: Outcome, now: Timestamp) {
        let Outcome {
            changes,
            withdrawn,
            finished,
            touched,
            problems,
            orphan_notes,
            log_error,
        } = outcome;
        self.dirty.extend(touched);
        for p in &problems {
            if self.reported.insert(p.to_string()) {
                tracing::warn!("{p}");
            }
        }
        for note in &orphan_notes {
            if let Err(e) = files::clear_note_of_gone_file(note) {
                tracing::debug!("cannot remove the note {}: {e}", note.display());
            }
        }
        if let Some(e) = log_error {
            tracing::error!(
                "could not read the publish log: {e}; judging the files concerned again in {} s",
                self.retry_delay.as_secs()
            );
            self.log_failed();
        }

        // The last verdict of each file counts (a start-up may judge a file twice).
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, c) in changes.iter().enumerate() {
            last.insert(&c.id, i);
        }
        let mut rows: Vec<Row> = Vec::new();
        for (i, change) in changes.iter().enumerate() {
            if last.get(change.id.as_str()) != Some(&i) {
                continue;
            }
            let Some((logged, ci, version)) = self
                .picture
                .entry(&change.id)
                .map(|e| (e.logged, e.channel, e.version))
            else {
                continue;
            };
            let path = self.picture.path_of(&change.id);
            let status = change.verdict.status();
            let diag = change.verdict.diagnostic();
            match diag {
                Some(d) => match files::write_note(&path, "held", &files::note_text(d)) {
                    Ok(()) => self.picture.set_held_note(&change.id, true),
                    Err(e) => {
                        tracing::warn!(file = %change.id, "could not write the .held note: {e}");
                    }
                },
                None => {
                    if self.picture.may_have_held_note(&change.id)
                        && files::clear_held_note(&path).is_ok()
                    {
                        self.picture.set_held_note(&change.id, false);
                    }
                }
            }
            if logged == Some(status) {
                continue;
            }
            let channel = &self.config.channels[ci];
            rows.push(Row {
                channel: channel.name.clone(),
                platform: channel.platform,
                file: change.id.clone(),
                hash: Some(version.hex()),
                status,
                detail: diag
                    .map(|d| match &d.help {
                        Some(h) => format!("{} — {h}", d.message),
                        None => d.message.clone(),
                    })
                    .unwrap_or_default(),
                said: diag.map(|d| d.to_string()),
            });
        }
        for (ci, id) in withdrawn {
            let channel = &self.config.channels[ci];
            rows.push(Row {
                channel: channel.name.clone(),
                platform: channel.platform,
                file: id,
                hash: None,
                status: "withdrawn",
                detail: "renamed or removed from the queue before it was published".to_string(),
                said: None,
            });
        }
        if !rows.is_empty() {
            self.write_rows(rows, now);
        }
        for (id, state) in finished {
            self.finish_move(&id, &state);
        }
    }

    /// Writes verdicts and withdrawals in one transaction, and says them once they are in
    /// the log (stderr never claims what the log lacks). If the write fails, the files are
    /// judged again (and withdrawals written again) at the retry.
    fn write_rows(&mut self, rows: Vec<Row>, now: Timestamp) {
        // Many rows at once (a start-up) go in file order: each index of `events` then
        // grows at one end instead of at pages all over it, which with 100,000 rows spill
        // from SQLite's cache and are read back.
        let mut order: Vec<&Row> = rows.iter().collect();
        if rows.len() > BULK_ROWS {
            order.sort_by(|a, b| (&a.channel, &a.file).cmp(&(&b.channel, &b.file)));
        }
        let written = self.shared.with_store(|s| {
            s.in_transaction(|s| {
                let events: Vec<NewEvent<'_>> = order.iter().map(|r| r.event(now)).collect();
                s.log_events(&events)
            })
        });
        match written {
            Ok(()) => {
                // A start-up with a large queue accepts thousands of files at once: one
                // line for them, each file at debug level (the log has every row). What
                // needs the user (a held or invalid file) always gets its own line.
                let bulk = rows.len() > BULK_ROWS;
                let (mut accepted, mut withdrawn) = (0, 0);
                for r in &rows {
                    match (r.status, &r.said) {
                        ("withdrawn", _) => {
                            withdrawn += 1;
                            if bulk {
                                tracing::debug!(channel = %r.channel, file = %r.file, "withdrawn (renamed or removed)")
                            } else {
                                tracing::info!(channel = %r.channel, file = %r.file, "withdrawn (renamed or removed)")
                            }
                        }
                        (_, Some(d)) => tracing::warn!(channel = %r.channel, file = %r.file, "{d}"),
                        (_, None) => {
                            accepted += 1;
                            if bulk {
                                tracing::debug!(channel = %r.channel, file = %r.file, "accepted")
                            } else {
                                tracing::info!(channel = %r.channel, file = %r.file, "accepted")
                            }
                        }
                    }
                    if r.status != "withdrawn" {
                        self.picture.set_logged(&r.file, r.status);
                    }
                }
                if bulk {
                    tracing::info!(
                        accepted,
                        withdrawn,
                        "logged {} files at once (each one: `cadenced log`)",
                        rows.len()
                    );
                }
            }
            Err(e) => {
                for r in rows.iter().take(10) {
                    tracing::error!(
                        "`{}` for {} was not recorded in the publish log: {e}; trying again in {} s",
                        r.status,
                        r.file,
                        self.retry_delay.as_secs()
                    );
                }
                if rows.len() > 10 {
                    tracing::error!("... and {} more rows", rows.len() - 10);
                }
                for r in rows {
                    if r.status == "withdrawn" {
                        if let Some(ci) = self.index_of(&r.channel) {
                            self.unrecorded_withdrawals.push((ci, r.file));
                        }
                    } else {
                        self.picture.unrecorded(&r.file);
                    }
                }
                self.log_failed();
            }
        }
    }

    /// A crash between recording an outcome and moving the file leaves a published (or
    /// failed) version in the queue: finish the move instead of sending it again. Not while
    /// the channel's publish task runs (it moves its own file right after its outcome) or
    /// its reconciliation; those end with a look at the file. A move that keeps failing (a
    /// `published` that is a file) is logged once.
    fn finish_move(&mut self, id: &str, state: &str) {
        let Some(channel) = id.split('/').next() else {
            return;
        };
        if self.in_flight.get(channel).is_some_and(|n| *n > 0) || self.reconciling.contains(channel)
        {
            return;
        }
        let sub = if state == "failed" {
            "failed"
        } else {
            "published"
        };
        match files::move_into(&self.picture.path_of(id), sub) {
            Ok(to) => {
                tracing::info!(file = %id, "finished an interrupted move to {}", to.display());
                let id = id.to_string();
                self.update(|p, ctx| p.forget(ctx, &id));
            }
            // The listing reports a `published` that is not a folder, once, with the fix.
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {}
            Err(e) => {
                if self.reported.insert(format!("move {id} {sub}: {e}")) {
                    tracing::error!(file = %id, "could not move to {sub}/: {e}");
                }
            }
        }
    }

    /// Files the log had pending that left the queue while the daemon was not running.
    /// `pending`: the files the log had pending before the start-up's listing (reading
    /// them after it would read back every verdict it just wrote).
    fn log_startup_withdrawals(&mut self, pending: crate::store::Result<HashSet<String>>) {
        let pending = match pending {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("could not read the pending files from the log: {e}");
                return;
            }
        };
        let gone: Vec<String> = pending
            .into_iter()
            .filter(|id| {
                self.picture.entry(id).is_none()
                    && self.config.queue.join(id).symlink_metadata().is_err()
            })
            .collect();
        if gone.is_empty() {
            return;
        }
        self.update(|p, ctx| {
            let mut out = Outcome::default();
            for id in &gone {
                out.withdrawn.extend(p.gone_at_start(ctx, id));
            }
            out
        });
    }

    /// Attempts a crash left `sending`, reconciled per platform in the background, one task
    /// per channel.
    fn start_reconciling(&mut self, attempts: Vec<AttemptRow>) {
        let mut by_channel: HashMap<String, Vec<AttemptRow>> = HashMap::new();
        for a in attempts {
            by_channel.entry(a.channel.clone()).or_default().push(a);
        }
        for (name, attempts) in by_channel {
            let (Some(adapter), Some(ch)) = (
                self.adapters.get(&name).cloned(),
                self.channel(&name).cloned(),
            ) else {
                for a in &attempts {
                    tracing::warn!(channel = %a.channel, file = %a.file, "unfinished attempt on a disabled or removed channel; left as it is");
                }
                self.reconciling.remove(&name);
                continue;
            };
            let shared = self.shared.clone();
            let root = self.config.queue.clone();
            let stop = self.stop.clone();
            self.reconciles.spawn(async move {
                let mut published = 0;
                for attempt in &attempts {
                    let ended =
                        publish::reconcile(&shared, &adapter, &ch, attempt, &root, &stop).await;
                    if ended == Ended::Published {
                        published += 1;
                    }
                }
                (name, attempts, published)
            });
        }
    }

    fn reconciled(
        &mut self,
        done: Result<(String, Vec<AttemptRow>, usize), tokio::task::JoinError>,
    ) {
        match done {
            Ok((channel, attempts, published)) => {
                self.published += published;
                self.reconciling.remove(&channel);
                for a in attempts {
                    let (id, text) = (a.file.clone(), a.normalized.clone());
                    self.update(|p, ctx| {
                        let out = p.refresh(ctx, &id);
                        p.and_log_changed_near(ctx, out, &text)
                    });
                }
                if let Some(ci) = self.index_of(&channel) {
                    self.dirty.insert(ci);
                }
            }
            // A panicked reconciliation: its channel stays blocked until the next start,
            // which is the safe side.
            Err(e) => tracing::error!("a reconciliation failed: {e}"),
        }
    }

    /// When the loop must wake next.
    fn next_deadline(&self, watchdog_at: Option<Instant>) -> Instant {
        let now = self.now();
        let inow = Instant::now();
        let at = |t: Timestamp| {
            inow + Duration::try_from(t.duration_since(now)).unwrap_or(Duration::ZERO)
        };
        let mut deadline = self.next_rescan;
        // Without the log nothing is judged, so a settle time or a hold's end that falls
        // due stays due: waking for it would only wake again at once. The retry judges
        // everything again from a full listing, these files with the rest.
        let judging = self.log_unusable.is_none();
        let (hold_end, settle) = if judging {
            (self.picture.next_hold_end(), self.picture.next_settle())
        } else {
            (None, None)
        };
        let timestamps = self.wakes.iter().flatten().copied().chain(hold_end);
        for t in timestamps {
            deadline = deadline.min(at(t));
        }
        for t in [settle, self.retry_at, watchdog_at].into_iter().flatten() {
            deadline = deadline.min(t);
        }
        deadline
    }

    /// Whatever is due now: channels at their wake (folder listed again first), files that
    /// have settled, holds whose window ended, the safety-net rescan.
    fn timers_due(&mut self) {
        let now = self.now();
        let inow = Instant::now();
        let retry = self.retry_at.is_some_and(|t| t <= inow);
        if retry {
            self.retry_at = None;
        }
        if inow >= self.next_rescan || retry {
            self.next_rescan = inow + self.shared.options.max_sleep;
            self.rescan();
        }
        if retry {
            let withdrawals = std::mem::take(&mut self.unrecorded_withdrawals);
            if !withdrawals.is_empty() {
                let rows = withdrawals
                    .into_iter()
                    .map(|(ci, id)| {
                        let ch = &self.config.channels[ci];
                        Row {
                            channel: ch.name.clone(),
                            platform: ch.platform,
                            file: id,
                            hash: None,
                            status: "withdrawn",
                            detail: "renamed or removed from the queue before it was published"
                                .to_string(),
                            said: None,
                        }
                    })
                    .collect();
                self.write_rows(rows, now);
            }
            // Decisions not carried out, evaluations not recorded: decide again.
            let again = std::mem::take(&mut self.again);
            self.dirty.extend(again);
            if self.retry_at.is_none() {
                // Went through: the next failure starts over with a short wait.
                self.retry_delay = FIRST_RETRY;
            }
        }
        // Both can be many files at once (a queue copied in just before the start, the
        // holds by one day's posts ending): say it advances, as a review does.
        if self.picture.next_settle().is_some_and(|t| t <= inow) {
            crate::progress::with_progress(self.notifier.keepalive(), || {
                self.update(|p, ctx| p.settle_due(ctx));
            });
        }
        if self.picture.next_hold_end().is_some_and(|t| t <= now) {
            crate::progress::with_progress(self.notifier.keepalive(), || {
                self.update(|p, ctx| p.hold_ends_due(ctx));
            });
        }
        let due: Vec<usize> = (0..self.wakes.len())
            .filter(|&ci| self.wakes[ci].is_some_and(|t| t <= now))
            .collect();
        // Events are hints: what is in the folder at the slot is what counts.
        for &ci in &due {
            self.wakes[ci] = None;
        }
        self.revalidate_many(&due);
        self.dirty.extend(due);
    }

    /// Evaluates the channels whose posts changed or whose time came.
    fn evaluate_dirty(&mut self) {
        if !self.dirty.is_empty() && !self.log_usable() {
            let dirty = std::mem::take(&mut self.dirty);
            self.again.extend(dirty);
            return;
        }
        // Acting (an expiry, a publish) can change other files; bounded all the same.
        for _ in 0..4 {
            let dirty = std::mem::take(&mut self.dirty);
            if dirty.is_empty() {
                return;
            }
            let now = self.now();
            for ci in dirty {
                if ci < self.config.channels.len() {
                    self.evaluate(ci, now);
                }
            }
            for ci in self.send_prepared() {
                self.record(ci, now);
            }
        }
    }

    /// One channel at `now`: see the module documentation. Its record for `status` is
    /// written after (after the end of the pass if it is about to publish).
    fn evaluate(&mut self, ci: usize, now: Timestamp) {
        self.decide_and_act(ci, now);
        if self.prepared.last().is_none_or(|p| p.ci != ci) {
            self.record(ci, now);
        }
    }

    /// Writes channel `ci`'s record for `status` (`daemon::status`).
    fn record(&mut self, ci: usize, now: Timestamp) {
        let ch = &self.config.channels[ci];
        let from = now - SignedDuration::from_hours(48).max(ch.rules.min_gap);
        let history = self
            .shared
            .with_store(|s| s.history(&ch.name, from, ch.dry_run))
            .unwrap_or_default();
        let sim = crate::cadence::simulate::SimChannel {
            name: ch.name.clone(),
            rules: ch.rules.clone(),
            history,
            pending: self.picture.pending(&self.config, ci),
            last_evaluated: Some(now),
        };
        let counts = self.picture.counts(&self.config, ci);
        self.record_channel(ci, &sim, counts, now);
    }

    fn decide_and_act(&mut self, ci: usize, now: Timestamp) {
        let ch = self.config.channels[ci].clone();
        if self.disabled.contains_key(&ch.name)
            || self.awaiting_limits.contains(&ch.name)
            || self.reconciling.contains(&ch.name)
            || self.in_flight.get(&ch.name).is_some_and(|n| *n > 0)
        {
            self.wakes[ci] = None;
            return;
        }
        for id in self.picture.expired(&self.config, ci) {
            self.expire(&ch, &id, now);
        }
        let pending = self.picture.pending(&self.config, ci);
        let from = now - SignedDuration::from_hours(48).max(ch.rules.min_gap);
        let read = self.shared.with_store(|s| {
            Ok((
                s.history(&ch.name, from, ch.dry_run)?,
                s.last_evaluated(&ch.name)?,
            ))
        });
        let (history, logged_last) = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(
                    channel = %ch.name,
                    "could not read the publish log: {e}; evaluating again in {} s",
                    self.retry_delay.as_secs()
                );
                self.again.insert(ci);
                self.log_failed();
                return;
            }
        };
        let last = match self.rewound.get(&ch.name) {
            Some(rewound) => *rewound,
            None => logged_last,
        };
        let step = policy::decide(&ch.rules, &history, &pending, last, now);
        // Recorded before acting, so a restart never sees a slot twice; when this fails
        // nothing is done and the retry decides again.
        if let Err(e) = self.shared.with_store(|s| {
            s.set_last_evaluated(&ch.name, now, ch.rules.timezone.iana_name().unwrap_or(""))
        }) {
            self.not_recorded(
                &format!("the evaluation of channel `{}`", ch.name),
                ", so nothing was done for it",
                &e,
            );
            self.again.insert(ci);
            return;
        }
        self.wakes[ci] = policy::next_wake(&ch.rules, &history, &pending, now);
        for id in &step.expire {
            self.expire(&ch, id, now);
        }
        for (id, wait) in &step.deferred {
            let Some(hash) = self.picture.entry(id).map(|e| e.version.hex()) else {
                continue;
            };
            let detail = wait.describe_in(&ch.rules.timezone);
            let same = self
                .shared
                .with_store(|s| s.last_deferral(id, &hash))
                .ok()
                .flatten()
                .is_some_and(|d| d == detail);
            if !same {
                self.log(NewEvent {
                    time: now,
                    channel: &ch.name,
                    platform: ch.platform,
                    file: id,
                    hash: Some(&hash),
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
                self.prepare_publish(ci, &ch, id, claim_until, last, now)
            }
            None => true,
        };
        if used {
            self.rewound.remove(&ch.name);
        } else {
            // Decided again at the retry (or at the change that comes with the new version).
            self.rewound.insert(ch.name.clone(), last);
            self.again.insert(ci);
        }
    }

    /// Checks a send decided at `now` and adds it to the pass's prepared sends, which
    /// `send_prepared` records and starts at the end of the pass. The SPEC: a retry keeps
    /// the slot it claimed until the channel's next slot or `catch_up`, whichever is
    /// sooner. Returns `false` when the opportunity was not used and must be decided again:
    /// the file changed just before sending. `last` is the `last_evaluated` the decision
    /// was taken with, to decide again with should the attempt not be recorded.
    fn prepare_publish(
        &mut self,
        ci: usize,
        ch: &Channel,
        id: &str,
        claim_until: Timestamp,
        last: Option<Timestamp>,
        now: Timestamp,
    ) -> bool {
        let Some(adapter) = self.adapters.get(&ch.name).cloned() else {
            return true;
        };
        let Some(reviewed) = self.picture.entry(id).map(|e| e.version.hex()) else {
            return true;
        };
        let path = self.picture.path_of(id);
        // Re-read right before sending: send exactly the version that was just checked.
        let Some(fresh) = queue::read_post(&self.config.queue, &ch.name, &path) else {
            let id = id.to_string();
            self.update(|p, ctx| p.refresh(ctx, &id));
            return true;
        };
        if fresh.hash != reviewed {
            tracing::info!(channel = %ch.name, file = %id, "changed just before sending; checking the new version first");
            let id = id.to_string();
            self.update(|p, ctx| p.refresh(ctx, &id));
            return false;
        }
        let Ok(accepted) = &fresh.content else {
            return true;
        };
        let normalized = accepted.comparable().to_string();
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
        let outgoing = publish::outgoing(&self.config.queue, ch, id, Some(accepted), &key, now);
        let expires = accepted
            .post
            .front
            .expires
            .map(|e| e.resolve(&ch.rules.timezone));
        self.prepared.push(Prepared {
            ci,
            channel: ch.clone(),
            adapter,
            file: id.to_string(),
            hash: fresh.hash.clone(),
            normalized,
            key,
            key_started,
            outgoing,
            claim_until,
            expires,
            path: fresh.path.clone(),
            last,
            now,
        });
        true
    }

    /// Records the attempts of the sends prepared in this pass, all in one durable
    /// transaction (one sync, one flush of the near-duplicate index: with 1,000 channels
    /// due at one slot, one per attempt was a fifth of the loop's time), then starts them. No
    /// request goes out before every attempt row of the pass is committed; if they cannot
    /// be, none is sent and each channel decides again at the retry. Returns the channels
    /// that had a send prepared.
    fn send_prepared(&mut self) -> Vec<usize> {
        let prepared = std::mem::take(&mut self.prepared);
        let channels: Vec<usize> = prepared.iter().map(|p| p.ci).collect();
        if prepared.is_empty() {
            return channels;
        }
        let attempts: Vec<NewAttempt<'_>> = prepared
            .iter()
            .map(|p| NewAttempt {
                started: p.now,
                channel: &p.channel.name,
                platform: p.channel.platform,
                file: &p.file,
                hash: &p.hash,
                normalized: &p.normalized,
                idempotency_key: &p.key,
                key_started: p.key_started,
                dry_run: p.channel.dry_run,
            })
            .collect();
        let recorded = self.shared.with_store(|s| s.begin_attempts(&attempts));
        drop(attempts);
        let ids = match recorded {
            Ok(ids) => ids,
            Err(e) => {
                for p in prepared {
                    self.say_not_recorded(
                        &format!("the attempt to send {}", p.file),
                        ", so it was not sent",
                        &e,
                    );
                    // Decided again at the retry.
                    self.rewound.insert(p.channel.name.clone(), p.last);
                    self.again.insert(p.ci);
                }
                self.log_failed();
                return channels;
            }
        };
        for (p, attempt_id) in prepared.into_iter().zip(ids) {
            let ch = &p.channel;
            let claim = Claim {
                attempt_id,
                started: p.now,
                key_started: p.key_started,
                until: p.claim_until,
                expires: p.expires,
                rules: ch.rules.clone(),
                path: p.path,
            };
            tracing::info!(channel = %ch.name, file = %p.file, platform = %ch.platform, dry_run = ch.dry_run, "publishing");
            *self.in_flight.entry(ch.name.clone()).or_default() += 1;
            // The file is being sent now (not judged again), and it counts in the log: the
            // posts near it are judged against it.
            {
                let id = p.file.clone();
                let text = p.normalized.clone();
                self.update(|pic, ctx| {
                    let out = pic.mark_sending(ctx, &id);
                    pic.and_log_changed_near(ctx, out, &text)
                });
            }
            self.sending_texts.insert(p.file.clone(), p.normalized);
            let shared = self.shared.clone();
            let permits = self.permits.clone();
            let channel = ch.name.clone();
            let file = p.file;
            let adapter = p.adapter;
            let outgoing = p.outgoing;
            let stop = self.stop.clone();
            self.tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let ended = publish::publish(&shared, &adapter, &outgoing, claim, &stop).await;
                (channel, file, ended)
            });
        }
        channels
    }

    fn task_finished(&mut self, done: Result<(String, String, Ended), tokio::task::JoinError>) {
        match done {
            Ok((channel, file, ended)) => {
                if let Some(n) = self.in_flight.get_mut(&channel) {
                    *n = n.saturating_sub(1);
                }
                match ended {
                    Ended::Published => self.published += 1,
                    Ended::NotPublished => {}
                    Ended::Credentials(why) => {
                        tracing::error!(channel = %channel, "channel disabled until the config is reloaded: {why}");
                        self.disabled.insert(channel.clone(), why);
                    }
                }
                // The file moved (or stays, unsure or to be sent again), and the attempt
                // counts or stopped counting: look at both.
                let text = self.sending_texts.remove(&file).unwrap_or_default();
                self.update(|p, ctx| {
                    let out = p.refresh(ctx, &file);
                    p.and_log_changed_near(ctx, out, &text)
                });
                if let Some(ci) = self.index_of(&channel) {
                    self.dirty.insert(ci);
                }
            }
            Err(e) => {
                // A panicked task: its attempt row stays `sending` and is reconciled at the
                // next start; its channel stays blocked until then, which is the safe side.
                tracing::error!("a publish task failed: {e}");
            }
        }
    }

    fn expire(&mut self, ch: &Channel, id: &str, now: Timestamp) {
        let Some(hash) = self.picture.entry(id).map(|e| e.version.hex()) else {
            return;
        };
        match files::move_into(&self.picture.path_of(id), "expired") {
            Ok(to) => {
                tracing::info!(channel = %ch.name, file = %id, "expired unpublished; moved to {}", to.display());
                self.log(NewEvent {
                    time: now,
                    channel: &ch.name,
                    platform: ch.platform,
                    file: id,
                    hash: Some(&hash),
                    status: "expired",
                    detail: &format!("moved to {}", to.display()),
                    attempt: None,
                });
                let id = id.to_string();
                self.update(|p, ctx| p.forget(ctx, &id));
            }
            Err(e) => {
                if self.reported.insert(format!("expire {id}: {e}")) {
                    tracing::error!(channel = %ch.name, file = %id, "could not move an expired post: {e}")
                }
            }
        }
    }

    fn is_done(&self) -> bool {
        if !self.tasks.is_empty() || !self.reconciles.is_empty() {
            return false;
        }
        // Done when nothing is left that could be published: the demo moves its example's
        // appointments to just after its start, so they are waited for too.
        !self
            .picture
            .anything_ready(|ci| !self.disabled.contains_key(&self.config.channels[ci].name))
    }

    /// `STATUS=` for systemd, e.g. "12 queued; next: shop-x Mon 17:30", sent when it changes.
    fn report_status(&mut self) {
        let queued = self.picture.len();
        let next = self
            .wakes
            .iter()
            .enumerate()
            .filter_map(|(ci, w)| Some(((*w)?, ci)))
            .min();
        let next_text = match next {
            Some((t, ci)) => {
                let ch = &self.config.channels[ci];
                format!(
                    "{} {}",
                    ch.name,
                    t.to_zoned(ch.rules.timezone.clone()).strftime("%a %H:%M")
                )
            }
            None => "nothing scheduled".to_string(),
        };
        let disabled = if self.disabled.is_empty() {
            String::new()
        } else {
            format!("; {} channel(s) disabled", self.disabled.len())
        };
        let status = format!("{queued} queued; next: {next_text}{disabled}");
        if status != self.status {
            self.notifier.status(&status);
            self.status = status;
        }
    }
}

/// A send decided and checked in the current pass, waiting for its attempt row.
struct Prepared {
    /// The channel's index in the config, and the channel.
    ci: usize,
    channel: Channel,
    adapter: Arc<AnyAdapter>,
    file: String,
    /// The version re-read just before, which is what is sent.
    hash: String,
    normalized: String,
    key: String,
    key_started: Timestamp,
    outgoing: adapter::Outgoing,
    claim_until: Timestamp,
    expires: Option<Timestamp>,
    path: PathBuf,
    /// The `last_evaluated` the decision was taken with.
    last: Option<Timestamp>,
    /// When it was decided: the attempt's start.
    now: Timestamp,
}

/// A row of the log the daemon writes for a verdict or a withdrawal.
struct Row {
    channel: String,
    platform: Platform,
    file: String,
    hash: Option<String>,
    status: &'static str,
    detail: String,
    /// What stderr says once the row is written (a held file's message).
    said: Option<String>,
}

impl Row {
    fn event(&self, now: Timestamp) -> NewEvent<'_> {
        NewEvent {
            time: now,
            channel: &self.channel,
            platform: self.platform,
            file: &self.file,
            hash: self.hash.as_deref(),
            status: self.status,
            detail: &self.detail,
            attempt: None,
        }
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
        client: Default::default(),
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

/// Rows written at once above which the daemon's log says how many instead of one line
/// each (see `Daemon::write_rows`).
const BULK_ROWS: usize = 50;

/// Makes every allocation of 128 KiB or more a mapping of its own, returned to the system
/// when freed. glibc starts with that threshold but raises it each time such a block is
/// freed (up to 32 MiB), so after start-up's large temporary vectors (the self-join's
/// postings and pairs among them) the next ones came from the heap, between blocks that
/// stay: idle memory with 10,000 queued was 43–44 MB instead of 40 (`rss` part, see
/// BENCHMARKS.md). A fixed threshold turns that raising off.
fn keep_large_blocks_apart() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a glibc tunable; it takes no pointer of ours.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Gives the memory a full scan freed back to the system. A scan of a large queue reads,
/// compares and indexes every file, partly on worker threads (each with its own malloc
/// arena); glibc keeps what was freed for later use, so an idle daemon stayed at the
/// scan's high-water mark instead of what it holds.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes no pointer of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}
