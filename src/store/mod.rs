//! The SQLite log: every decision and attempt, the source of truth for caps, gaps and
//! uniqueness (never memory, so a restart cannot exceed a cap). WAL mode, so `cadenced log`
//! and `sqlite3` read while the daemon writes without blocking either side.
//!
//! Schema versions live in [`MIGRATIONS`] and are applied in order, tracked with
//! `PRAGMA user_version`. The `publish_log` view is the documented interface for people;
//! its columns keep their names and meaning.
//!
//! Times are stored as RFC 3339 UTC text with fixed millisecond precision, so they sort
//! as text. This module runs SQL; it takes no decisions.

mod attempts;
mod history;

pub use attempts::{AttemptRow, FileFacts};
pub use history::{CountedPost, NearPost, NearStats};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::platforms::Platform;

/// Every status a row of the log can have (SPEC "The log").
pub const STATUSES: [&str; 11] = [
    "accepted",
    "held",
    "deferred",
    "sending",
    "published",
    "failed",
    "unknown",
    "retried",
    "resolved",
    "expired",
    "withdrawn",
];

/// Schema versions, applied in order; index + 1 is the `user_version` after each.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE attempts (
    id              INTEGER PRIMARY KEY,
    channel         TEXT NOT NULL,
    platform        TEXT NOT NULL,
    file            TEXT NOT NULL,
    hash            TEXT NOT NULL,
    -- the normalized text, so uniqueness can be checked against it later
    normalized      TEXT NOT NULL,
    -- committed before the request goes out; counts for cap and gap until the outcome is
    -- known (a published attempt counts at `finished`: see COUNTED_AT)
    started         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN
                        ('sending', 'published', 'failed', 'unknown', 'retried', 'resolved')),
    idempotency_key TEXT NOT NULL,
    dry_run         INTEGER NOT NULL DEFAULT 0,
    remote_id       TEXT,
    remote_url      TEXT,
    http_status     INTEGER,
    finished        TEXT
);
CREATE INDEX attempts_channel_started ON attempts (channel, started);
CREATE INDEX attempts_started ON attempts (started);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    time       TEXT NOT NULL,
    channel    TEXT NOT NULL,
    platform   TEXT NOT NULL,
    file       TEXT NOT NULL,
    hash       TEXT,
    status     TEXT NOT NULL CHECK (status IN ('accepted', 'held', 'deferred', 'sending',
                   'published', 'failed', 'unknown', 'retried', 'resolved', 'expired',
                   'withdrawn')),
    detail     TEXT NOT NULL DEFAULT '',
    attempt_id INTEGER REFERENCES attempts (id)
);
CREATE INDEX events_time ON events (time);
CREATE INDEX events_file ON events (file);

CREATE TABLE channels (
    name           TEXT PRIMARY KEY,
    last_evaluated TEXT,
    timezone       TEXT
);

CREATE VIEW publish_log AS
SELECT e.time, e.channel, e.platform, e.file, e.status,
       -- the remote id and URL belong to the row that reports them, not to `sending`
       CASE WHEN e.status IN ('published', 'resolved') THEN a.remote_id END AS remote_id,
       CASE WHEN e.status IN ('published', 'resolved') THEN a.remote_url END AS remote_url,
       e.detail
FROM events e LEFT JOIN attempts a ON a.id = e.attempt_id
ORDER BY e.id;
"#,
    // What an attempt keeps between its tries (media ids, a container id): never a token,
    // which lives in the owner-only token store. `key_started` is when the attempt's
    // idempotency key was first sent (an attempt that reuses its predecessor's key inherits
    // it), which bounds how long the platform still recognises the key.
    r#"
CREATE TABLE attempt_state (
    attempt_id INTEGER NOT NULL REFERENCES attempts (id),
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (attempt_id, name)
);
ALTER TABLE attempts ADD COLUMN key_started TEXT;
ALTER TABLE attempts ADD COLUMN key_reusable INTEGER NOT NULL DEFAULT 0;
"#,
    // What the daemon knows about each channel (store::status), replaced after each
    // evaluation, so `cadenced status` shows the daemon's view, not the calling shell's.
    r#"
CREATE TABLE channel_status (
    channel            TEXT PRIMARY KEY,
    recorded           TEXT NOT NULL,
    pid                INTEGER NOT NULL,
    platform           TEXT NOT NULL,
    timezone           TEXT NOT NULL,
    disabled_reason    TEXT,
    paused             INTEGER NOT NULL,
    dry_run            INTEGER NOT NULL,
    queued             INTEGER NOT NULL,
    held               INTEGER NOT NULL,
    published_today    INTEGER NOT NULL,
    max_per_day        INTEGER NOT NULL,
    failed             INTEGER NOT NULL,
    unknown            INTEGER NOT NULL,
    next_file          TEXT,
    next_at            TEXT,
    last_attempt_at    TEXT,
    last_attempt_state TEXT,
    last_attempt_file  TEXT
);
"#,
    // 4: `log --channel C --since T` reads one channel's rows by time; the daemon asks for a
    // file's attempts.
    r#"
CREATE INDEX events_channel_time ON events (channel, time);
CREATE INDEX attempts_file ON attempts (file, id);
"#,
    // 5: the log's texts as a near-duplicate index on disk (see `store::history`).
    r#"
CREATE VIRTUAL TABLE history_grams USING fts5(
    grams, content = '', contentless_delete = 1, detail = none,
    tokenize = 'ascii'
);
CREATE TABLE history_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"#,
    // 6: the same index in cadenced's own lists, read a block at a time instead of a row
    // per post (see `store::history`); the lists are filled from `attempts` when the
    // database is opened.
    r#"
DROP TABLE history_grams;
DELETE FROM history_meta;
CREATE TABLE history_lists (
    list  INTEGER NOT NULL,
    first INTEGER NOT NULL,
    last  INTEGER NOT NULL,
    n     INTEGER NOT NULL,
    docs  BLOB NOT NULL,
    PRIMARY KEY (list, first)
) WITHOUT ROWID;
"#,
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this cadenced knows ({known}); upgrade cadenced"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error(
        "the publish log {path} was deleted while cadenced runs: nothing is published until \
         it is back (move it back where it was; a restart would start an empty history)"
    )]
    Gone { path: PathBuf },
    #[error(
        "the publish log {path} was replaced by another file while cadenced runs: nothing is \
         published until the original is back (or restart cadenced to use the new file)"
    )]
    Replaced { path: PathBuf },
    #[error("could not create the folder for database {path}: {source}")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path} holds a bad time `{value}`")]
    BadTime { path: PathBuf, value: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Device and inode of the file opened: see [`Store::check_file`].
    identity: Option<(u64, u64)>,
    /// How many indexed posts hold each gram token, roughly (see `history`).
    sketch: std::cell::RefCell<Option<history::Sketch>>,
    /// For a [`Store::reader`]: the last attempt its copy of the sketch counts. Later ones
    /// are checked one by one, as if not indexed yet (the copy does not learn them).
    sketch_upto: Option<i64>,
}

/// A new row of the log.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub time: Timestamp,
    pub channel: &'a str,
    pub platform: Platform,
    pub file: &'a str,
    pub hash: Option<&'a str>,
    pub status: &'a str,
    pub detail: &'a str,
    pub attempt: Option<i64>,
}

/// A send about to happen, committed before the request goes out.
#[derive(Debug, Clone)]
pub struct NewAttempt<'a> {
    pub started: Timestamp,
    pub channel: &'a str,
    pub platform: Platform,
    pub file: &'a str,
    pub hash: &'a str,
    pub normalized: &'a str,
    pub idempotency_key: &'a str,
    /// When this key was first sent: `started`, or the time of the attempt whose key this
    /// one reuses.
    pub key_started: Timestamp,
    pub dry_run: bool,
}

/// A post the log says went out (or may have), for uniqueness checks.
#[derive(Debug, Clone, PartialEq)]
pub struct PastRow {
    pub file: String,
    pub channel: String,
    pub platform: String,
    pub at: Timestamp,
    pub normalized: String,
}

/// States of an attempt that count for cap, gap and uniqueness: an unsure outcome counts.
const COUNTING_STATES: &str = "('sending', 'published', 'unknown', 'resolved')";

/// The instant an attempt counts at: a post counts on the local day it actually went out,
/// so a published attempt counts when the platform took it (a retry may cross midnight);
/// others (in flight, unsure, resolved by hand later) count when they started.
const COUNTED_AT: &str =
    "CASE WHEN state = 'published' THEN COALESCE(finished, started) ELSE started END";

/// Device and inode of the file at `path`.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Rows in one `INSERT` of [`Store::log_events`]: 512 parameters, far below SQLite's limit
/// of 32,766. Enough to make a statement's fixed cost small against its rows; not tuned
/// further.
const EVENTS_PER_INSERT: usize = 64;

pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Folder {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| sql(path, e))?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            identity: None,
            sketch: Default::default(),
            sketch_upto: None,
        };
        store.configure()?;
        store.migrate()?;
        store.identity = identity(path);
        let indexed = store.index_history_backlog()?;
        if indexed > 0 {
            tracing::info!(
                posts = indexed,
                "indexed the log's posts for near-duplicate checks (once, for this version)"
            );
        }
        Ok(store)
    }

    /// Whether the path still names the file this store opened. Deleted or replaced under
    /// a running daemon, the connection would go on writing into the old inode and the next
    /// start would begin an empty history (caps and uniqueness forgotten): the daemon checks
    /// this before acting and publishes nothing until the file is back.
    pub fn check_file(&self) -> Result<()> {
        let Some(opened) = self.identity else {
            return Ok(());
        };
        match std::fs::metadata(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::Gone {
                path: self.path.clone(),
            }),
            Ok(_) if identity(&self.path) != Some(opened) => Err(StoreError::Replaced {
                path: self.path.clone(),
            }),
            // Unreadable folder and the like: SQLite itself says more at the next call.
            _ => Ok(()),
        }
    }

    /// Opens an existing database for reading only; `None` when there is none yet (a fresh
    /// install: the plan simply has no history).
    pub fn open_read_only(path: &Path) -> Result<Option<Store>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql(path, e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| sql(path, e))?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            identity: identity(path),
            sketch: Default::default(),
            sketch_upto: None,
        };
        let version = store.user_version()?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: version,
                known: MIGRATIONS.len() as i64,
            });
        }
        if version < MIGRATIONS.len() as i64 {
            // Written by an older cadenced and not migrated yet: nothing we can read safely.
            return Ok(None);
        }
        Ok(Some(store))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Another connection to this database, for reading only, with this one's sketch of
    /// token counts: for near-duplicate look-ups on another thread (a connection serves
    /// one thread at a time). An error if the path no longer names the file opened here.
    pub fn reader(&self) -> Result<Store> {
        let mut store = Store::open_read_only(&self.path)?.ok_or_else(|| StoreError::Gone {
            path: self.path.clone(),
        })?;
        if self.identity.is_some() && store.identity != self.identity {
            return Err(StoreError::Replaced {
                path: self.path.clone(),
            });
        }
        store.configure_statements()?;
        let (sketch, upto) = self.sketch_copy()?;
        *store.sketch.borrow_mut() = Some(sketch);
        store.sketch_upto = Some(upto);
        Ok(store)
    }

    fn configure(&self) -> Result<()> {
        self.configure_statements()?;
        self.conn
            .busy_timeout(Duration::from_secs(5))
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| self.err(e))?;
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| self.err(e))
    }

    fn configure_statements(&self) -> Result<()> {
        // The statements the daemon runs per post are prepared once and kept: more than
        // rusqlite's default 16, and parsing them again was a visible part of a slot with
        // 1,000 channels due.
        self.conn.set_prepared_statement_cache_capacity(64);
        // One plan per statement, whatever its parameters: otherwise SQLite (built with
        // STAT4, as bundled) compiles a statement like `WHERE file = ?1` again at each new
        // value, to re-plan with statistics cadenced never gathers; that was 7 % of a
        // 100,000-file start-up, and every per-file query paid it.
        self.conn
            .set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
                true,
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn user_version(&self) -> Result<i64> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    fn migrate(&mut self) -> Result<()> {
        let version = self.user_version()?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                known,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = self.conn.transaction().map_err(|e| sql(&self.path, e))?;
            tx.execute_batch(migration)
                .map_err(|e| sql(&self.path, e))?;
            tx.pragma_update(None, "user_version", i as i64 + 1)
                .map_err(|e| sql(&self.path, e))?;
            tx.commit().map_err(|e| sql(&self.path, e))?;
        }
        Ok(())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sql(&self.path, e)
    }

    fn time(&self, value: String) -> Result<Timestamp> {
        value.parse().map_err(|_| StoreError::BadTime {
            path: self.path.clone(),
            value,
        })
    }

    pub fn log_event(&self, ev: &NewEvent<'_>) -> Result<i64> {
        self.conn
            .prepare_cached(
                "INSERT INTO events (time, channel, platform, file, hash, status, detail, attempt_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    format_time(ev.time),
                    ev.channel,
                    ev.platform.name(),
                    ev.file,
                    ev.hash,
                    ev.status,
                    ev.detail,
                    ev.attempt
                ])
            })
            .map_err(|e| self.err(e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// [`Store::log_event`] for many rows, in order, in as few statements as SQLite
    /// allows ([`EVENTS_PER_INSERT`] rows each): a start-up's 100,000 verdicts spend most
    /// of their time in the cost of a statement, not in the rows. Call it inside a
    /// transaction ([`Store::in_transaction`]) to have all or none.
    pub fn log_events(&self, events: &[NewEvent<'_>]) -> Result<()> {
        let mut chunks = events.chunks_exact(EVENTS_PER_INSERT);
        if events.len() >= EVENTS_PER_INSERT {
            let sql = format!(
                "INSERT INTO events (time, channel, platform, file, hash, status, detail, attempt_id)
                 VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?)"; EVENTS_PER_INSERT].join(", ")
            );
            let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
            for chunk in chunks.by_ref() {
                let times: Vec<String> = chunk.iter().map(|ev| format_time(ev.time)).collect();
                let names: Vec<&str> = chunk.iter().map(|ev| ev.platform.name()).collect();
                let values: Vec<&dyn rusqlite::ToSql> = chunk
                    .iter()
                    .zip(times.iter().zip(&names))
                    .flat_map(|(ev, (time, name))| -> [&dyn rusqlite::ToSql; 8] {
                        [
                            time,
                            &ev.channel,
                            name,
                            &ev.file,
                            &ev.hash,
                            &ev.status,
                            &ev.detail,
                            &ev.attempt,
                        ]
                    })
                    .collect();
                stmt.execute(values.as_slice()).map_err(|e| self.err(e))?;
            }
        }
        for ev in chunks.remainder() {
            self.log_event(ev)?;
        }
        Ok(())
    }

    /// Commits an attempt in state `sending` (and its `sending` row) before any request,
    /// durably (see [`Store::durably`]).
    pub fn begin_attempt(&mut self, a: &NewAttempt<'_>) -> Result<i64> {
        let ids = self.begin_attempts(std::slice::from_ref(a))?;
        Ok(ids[0])
    }

    /// [`Store::begin_attempt`] for several attempts in one durable transaction: all are
    /// recorded or none is. One sync and one flush of the near-duplicate index for all of
    /// them, instead of one each (1,000 channels due at one slot). Returns their ids in
    /// order.
    pub fn begin_attempts(&mut self, attempts: &[NewAttempt<'_>]) -> Result<Vec<i64>> {
        if attempts.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, tokens) = self.durably(|tx, path| {
            let ids = attempts
                .iter()
                .map(|a| Self::insert_attempt(tx, path, a))
                .collect::<Result<Vec<_>>>()?;
            // In the same transaction: the index never lacks an attempt (see `history`).
            let tokens = history::index_attempts(
                tx,
                ids.iter().zip(attempts).map(|(&id, a)| (id, a.normalized)),
            )
            .map_err(|e| sql(path, e))?;
            Ok((ids, tokens))
        })?;
        // Counted once committed: a batch rolled back leaves the sketch as it was.
        self.count_tokens(&tokens);
        Ok(ids)
    }

    fn insert_attempt(
        tx: &rusqlite::Transaction<'_>,
        path: &Path,
        a: &NewAttempt<'_>,
    ) -> Result<i64> {
        tx.prepare_cached(
            "INSERT INTO attempts (channel, platform, file, hash, normalized, started, state,
                                   idempotency_key, dry_run, key_started)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'sending', ?7, ?8, ?9)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                a.channel,
                a.platform.name(),
                a.file,
                a.hash,
                a.normalized,
                format_time(a.started),
                a.idempotency_key,
                a.dry_run,
                format_time(a.key_started)
            ])
        })
        .map_err(|e| sql(path, e))?;
        let id = tx.last_insert_rowid();
        tx.prepare_cached(
            "INSERT INTO events (time, channel, platform, file, hash, status, detail, attempt_id)
             VALUES (?1, ?2, ?3, ?4, ?5, 'sending', '', ?6)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                format_time(a.started),
                a.channel,
                a.platform.name(),
                a.file,
                a.hash,
                id
            ])
        })
        .map_err(|e| sql(path, e))?;
        Ok(id)
    }

    /// Runs `f` in a transaction committed with `synchronous=FULL`: in WAL mode that
    /// syncs the log file at the commit, so the rows survive a power cut, not only a crash
    /// of the process. The rest of the log uses `NORMAL` (a row lost to a power cut is
    /// written again or reconciled), which spares a sync per `accepted` row when thousands
    /// of files arrive; an attempt row is different: a request must never go out without a
    /// durable record that it may have (ARCHITECTURE.md, "SQLite").
    pub fn durably<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>, &Path) -> Result<T>,
    ) -> Result<T> {
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(|e| self.err(e))?;
        let result = (|| {
            let tx = self.conn.transaction().map_err(|e| sql(&self.path, e))?;
            let value = f(&tx, &self.path)?;
            tx.commit().map_err(|e| sql(&self.path, e))?;
            Ok(value)
        })();
        // Back to the default; should this fail, the connection only stays slower.
        let _ = self.conn.pragma_update(None, "synchronous", "NORMAL");
        result
    }

    /// Records an attempt's outcome and its log row together.
    pub fn finish_attempt(
        &mut self,
        id: i64,
        at: Timestamp,
        state: &str,
        remote_id: Option<&str>,
        remote_url: Option<&str>,
        detail: &str,
    ) -> Result<()> {
        let tx = self.conn.transaction().map_err(|e| sql(&self.path, e))?;
        tx.prepare_cached(
            "UPDATE attempts SET state = ?2, remote_id = ?3, remote_url = ?4, finished = ?5
             WHERE id = ?1",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![id, state, remote_id, remote_url, format_time(at)])
        })
        .map_err(|e| sql(&self.path, e))?;
        tx.prepare_cached(
            "INSERT INTO events (time, channel, platform, file, hash, status, detail, attempt_id)
             SELECT ?2, channel, platform, file, hash, ?3, ?4, id FROM attempts WHERE id = ?1",
        )
        .and_then(|mut stmt| stmt.execute(params![id, format_time(at), state, detail]))
        .map_err(|e| sql(&self.path, e))?;
        tx.commit().map_err(|e| sql(&self.path, e))
    }

    /// Instants of the channel's posts that count for the cap and the gap since `since`.
    /// Dry-run posts count only while the channel is still in dry-run mode.
    pub fn history(
        &self,
        channel: &str,
        since: Timestamp,
        dry_run: bool,
    ) -> Result<Vec<Timestamp>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COUNTED_AT} AS at FROM attempts
                 WHERE channel = ?1 AND {COUNTED_AT} >= ?2 AND state IN {COUNTING_STATES}
                   AND (dry_run = 0 OR ?3)
                 ORDER BY at"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![channel, format_time(since), dry_run], |r| {
                r.get::<_, String>(0)
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(self.time(row.map_err(|e| self.err(e))?)?);
        }
        Ok(out)
    }

    /// Posts that went out (or may have) since `since`, with their normalized text.
    /// `dry_run_channels` names the channels whose dry-run posts still count.
    pub fn past_posts(&self, since: Timestamp, dry_run_channels: &[&str]) -> Result<Vec<PastRow>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT file, channel, platform, {COUNTED_AT} AS at, normalized, dry_run
                 FROM attempts
                 WHERE {COUNTED_AT} >= ?1 AND state IN {COUNTING_STATES} ORDER BY at"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![format_time(since)], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (file, channel, platform, at, normalized, dry) = row.map_err(|e| self.err(e))?;
            if dry && !dry_run_channels.contains(&channel.as_str()) {
                continue;
            }
            out.push(PastRow {
                file,
                channel,
                platform,
                at: self.time(at)?,
                normalized,
            });
        }
        Ok(out)
    }

    /// When the log first saw each file (any version): the SPEC's "first" between pending
    /// posts.
    pub fn first_seen(&self) -> Result<HashMap<String, Timestamp>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT file, MIN(time) FROM events WHERE status IN ('accepted', 'held')
                 GROUP BY file",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::new();
        for row in rows {
            let (file, time) = row.map_err(|e| self.err(e))?;
            out.insert(file, self.time(time)?);
        }
        Ok(out)
    }

    pub fn last_evaluated(&self, channel: &str) -> Result<Option<Timestamp>> {
        let value: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT last_evaluated FROM channels WHERE name = ?1",
                [channel],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        value.flatten().map(|v| self.time(v)).transpose()
    }

    pub fn set_last_evaluated(&self, channel: &str, at: Timestamp, timezone: &str) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO channels (name, last_evaluated, timezone) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET last_evaluated = ?2, timezone = ?3",
            )
            .and_then(|mut stmt| stmt.execute(params![channel, format_time(at), timezone]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

fn sql(path: &Path, source: rusqlite::Error) -> StoreError {
    StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn attempt<'a>(file: &'a str, started: &str, dry_run: bool) -> NewAttempt<'a> {
        NewAttempt {
            started: t(started),
            channel: "shop-x",
            platform: Platform::named("x").unwrap(),
            file,
            hash: "abc",
            normalized: "black friday",
            idempotency_key: "k1",
            key_started: t(started),
            dry_run,
        }
    }

    /// A commit that failed (a full disk, here a deferred constraint) left the connection
    /// inside the transaction, so every later write joined it and none was committed; a
    /// panic inside did the same.
    #[test]
    fn a_transaction_whose_commit_fails_or_that_panics_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path).unwrap();
        store
            .conn
            .execute_batch(
                "PRAGMA foreign_keys = ON;
                 CREATE TABLE parent (id INTEGER PRIMARY KEY);
                 CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);",
            )
            .unwrap();
        let insert =
            |s: &Store, sql: &str| s.conn.execute(sql, []).map(|_| ()).map_err(|e| s.err(e));
        let failed = store.in_transaction(|s| insert(s, "INSERT INTO child VALUES (1)"));
        assert!(failed.is_err(), "the commit fails: no parent 1");
        assert!(store.conn.is_autocommit(), "no transaction left open");
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.in_transaction(|s| -> Result<()> {
                insert(s, "INSERT INTO parent VALUES (2)")?;
                panic!("a bug inside")
            })
        }));
        assert!(panicked.is_err());
        assert!(store.conn.is_autocommit(), "no transaction left open");
        // What is written next is committed: another connection sees it.
        store
            .in_transaction(|s| insert(s, "INSERT INTO parent VALUES (3)"))
            .unwrap();
        let other = rusqlite::Connection::open(&path).unwrap();
        let ids: Vec<i64> = other
            .prepare("SELECT id FROM parent UNION ALL SELECT p FROM child")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(ids, [3]);
    }

    #[test]
    fn events_logged_many_at_once_are_the_rows_logged_one_at_a_time_in_order() {
        // Full statements of EVENTS_PER_INSERT rows and a remainder, two platforms, an
        // attempt id, a missing hash, different times.
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let attempt_id = store
            .begin_attempt(&attempt("c/000-冬季.md", "2026-11-28T09:00:00Z", true))
            .unwrap();
        let before: i64 = store
            .conn
            .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
            .unwrap();
        let n = 2 * EVENTS_PER_INSERT + 5;
        let files: Vec<String> = (0..n).map(|i| format!("c/{i:03}-冬季.md")).collect();
        let details: Vec<String> = (0..n).map(|i| format!("detail {i}")).collect();
        let events: Vec<NewEvent<'_>> = (0..n)
            .map(|i| NewEvent {
                time: t("2026-11-28T10:00:00Z") + jiff::SignedDuration::from_secs(i as i64 / 50),
                channel: if i % 2 == 0 { "shop-x" } else { "shop-bsky" },
                platform: Platform::named(if i % 2 == 0 { "x" } else { "bluesky" }).unwrap(),
                file: &files[i],
                hash: (i % 3 != 0).then_some("abc"),
                status: if i % 5 == 0 { "held" } else { "accepted" },
                detail: &details[i],
                attempt: (i % 7 == 0).then_some(attempt_id),
            })
            .collect();
        store.in_transaction(|s| s.log_events(&events)).unwrap();
        type Got = (
            i64,
            String,
            String,
            String,
            String,
            Option<String>,
            String,
            String,
            Option<i64>,
        );
        let got: Vec<Got> = store
            .conn
            .prepare("SELECT id, time, channel, platform, file, hash, status, detail, attempt_id FROM events WHERE id > ?1 ORDER BY id")
            .unwrap()
            .query_map([before], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(got.len(), n);
        for (i, (ev, row)) in events.iter().zip(&got).enumerate() {
            let want: Got = (
                before + i as i64 + 1,
                format_time(ev.time),
                ev.channel.to_string(),
                ev.platform.name().to_string(),
                ev.file.to_string(),
                ev.hash.map(str::to_string),
                ev.status.to_string(),
                ev.detail.to_string(),
                ev.attempt,
            );
            assert_eq!(row, &want, "row {i}");
        }
    }

    #[test]
    fn a_listing_reads_the_log_in_one_transaction() {
        // Store::reading: the look-ups inside share one read transaction (one lock of the
        // file for all, not one per query). Seen from outside: one snapshot, so a write
        // another connection commits meanwhile shows only after it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let store = Store::open(&path).unwrap();
        let other = Store::open(&path).unwrap();
        let accepted = NewEvent {
            time: t("2026-11-28T10:00:00Z"),
            channel: "shop-x",
            platform: Platform::named("x").unwrap(),
            file: "shop-x/a.md",
            hash: Some("abc"),
            status: "accepted",
            detail: "",
            attempt: None,
        };
        let first_seen = |s: &Store| s.file_facts("shop-x/a.md", "abc").unwrap().first_seen;
        store.reading(|s| {
            assert_eq!(first_seen(s), None);
            other.log_event(&accepted).unwrap();
            assert_eq!(
                first_seen(s),
                None,
                "the second look-up saw a row committed after the first: not one transaction"
            );
        });
        assert_eq!(first_seen(&store), Some(t("2026-11-28T10:00:00Z")));
        // Inside a transaction already, it simply runs in that one.
        let mut store = store;
        store
            .in_transaction(|s| {
                s.log_event(&NewEvent {
                    file: "shop-x/b.md",
                    ..accepted
                })?;
                assert!(
                    s.reading(|s| s.file_facts("shop-x/b.md", "abc"))?
                        .first_seen
                        .is_some()
                );
                Ok(())
            })
            .unwrap();
        assert!(store.conn.is_autocommit());
        // A panic inside ends the transaction too: later look-ups see later rows.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            store.reading(|_| panic!("a bug in a listing"))
        }));
        assert!(caught.is_err());
        assert!(
            store.conn.is_autocommit(),
            "left inside the read transaction"
        );
        other
            .log_event(&NewEvent {
                file: "shop-x/c.md",
                ..accepted
            })
            .unwrap();
        assert!(
            store
                .file_facts("shop-x/c.md", "abc")
                .unwrap()
                .first_seen
                .is_some()
        );
    }

    #[test]
    fn a_per_file_query_is_not_compiled_again_for_each_file() {
        // SQLite built with STAT4 recompiles `WHERE file = ?1` at every new binding unless
        // the query planner's stability guarantee is on (`Store::configure`).
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        for i in 0..3 {
            store.file_facts(&format!("c/{i}.md"), "abc").unwrap();
        }
        let stmt = store
            .conn
            .prepare_cached(
                "SELECT MIN(time) FROM events WHERE file = ?1 AND status IN ('accepted', 'held')",
            )
            .unwrap();
        assert_eq!(
            stmt.get_status(rusqlite::StatementStatus::RePrepare),
            0,
            "file_facts' statement was compiled again for a new file"
        );
    }

    #[test]
    fn times_sort_as_text() {
        assert_eq!(
            format_time(t("2026-11-22T10:00:00Z")),
            "2026-11-22T10:00:00.000Z"
        );
        assert!(format_time(t("2026-11-22T10:00:00.5Z")) > format_time(t("2026-11-22T10:00:00Z")));
    }

    #[test]
    fn migrations_apply_once_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/cadenced.sqlite");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        assert_eq!(store.user_version().unwrap(), MIGRATIONS.len() as i64);
        let mode: String = store
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn the_attempt_row_is_committed_with_a_full_sync_and_the_rest_without() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let level = |conn: &Connection| -> i64 {
            conn.pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        assert_eq!(level(&store.conn), 1, "NORMAL for the many ordinary rows");
        let inside = store.durably(|tx, _| Ok(level(tx))).unwrap();
        assert_eq!(inside, 2, "FULL while the attempt commits");
        assert_eq!(level(&store.conn), 1, "back to NORMAL after");
        // A failing transaction restores it too.
        let failed = store.durably(|tx, path| {
            tx.execute("INSERT INTO nowhere VALUES (1)", [])
                .map_err(|e| sql(path, e))
        });
        assert!(failed.is_err());
        assert_eq!(level(&store.conn), 1);
        store
            .begin_attempt(&attempt("shop-x/a.md", "2026-11-22T09:00:00Z", false))
            .unwrap();
        assert_eq!(store.unsure_files().unwrap().len(), 1);
    }

    /// Attempts of different channels with distinct texts, as one pass of the daemon
    /// decides them.
    fn batch<'a>(normalized: &'a [String]) -> Vec<NewAttempt<'a>> {
        const FILES: [&str; 4] = ["c1/a.md", "c2/b.md", "c3/c.md", "c4/d.md"];
        normalized
            .iter()
            .zip(FILES)
            .map(|(text, file)| NewAttempt {
                started: t("2026-11-22T09:00:00Z"),
                channel: file.split('/').next().unwrap(),
                platform: Platform::named("mastodon").unwrap(),
                file,
                hash: "h",
                normalized: text,
                idempotency_key: "k",
                key_started: t("2026-11-22T09:00:00Z"),
                dry_run: false,
            })
            .collect()
    }

    fn texts() -> Vec<String> {
        [
            "Summer sale begins Friday with new linen shirts in every size and colour",
            "Our free repair workshop is back on 12 December, bring your broken lamps",
            "冬季促销从周五开始，所有羊毛衫半价，欢迎光临我们的新店",
            "OK",
        ]
        .iter()
        .map(|t| crate::cadence::similarity::comparable(t))
        .collect()
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store.conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_batch_of_attempts_is_recorded_with_its_sending_rows_and_found_as_near_duplicates() {
        use crate::cadence::similarity::Fingerprint;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let since = t("2026-11-01T00:00:00Z");
        // The sketch of token counts exists before the batch: it must learn the batch's.
        let earlier = store
            .begin_attempt(&attempt("shop-x/a.md", "2026-11-21T09:00:00Z", false))
            .unwrap();
        assert!(
            store
                .near_posts(&Fingerprint::of_normalized(&texts()[0]), 0.8, since, &[])
                .unwrap()
                .is_empty()
        );

        let texts = texts();
        let ids = store.begin_attempts(&batch(&texts)).unwrap();
        assert_eq!(ids.len(), texts.len());
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > earlier,
            "{ids:?}"
        );
        let sending: Vec<(i64, String)> = {
            let mut stmt = store
                .conn
                .prepare("SELECT attempt_id, file FROM events WHERE status = 'sending' ORDER BY id")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(|r| r.unwrap())
                .collect()
        };
        let mut expected = vec![(earlier, "shop-x/a.md".to_string())];
        expected.extend(
            ids.iter()
                .zip(["c1/a.md", "c2/b.md", "c3/c.md", "c4/d.md"])
                .map(|(&id, f)| (id, f.to_string())),
        );
        assert_eq!(sending, expected);
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM attempts WHERE state = 'sending'"
            ),
            5
        );
        for (text, &id) in texts.iter().zip(&ids) {
            let (hits, stats) = store
                .near_posts_with_stats(&Fingerprint::of_normalized(text), 0.8, since, &[])
                .unwrap();
            assert_eq!(
                hits.iter().map(|h| h.attempt).collect::<Vec<_>>(),
                [id],
                "{text}"
            );
            assert!(stats.probes > 0, "found through the index: {stats:?}");
        }
        assert_eq!(store.indexed_up_to().unwrap(), *ids.last().unwrap());
        assert!(store.begin_attempts(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_failing_batch_of_attempts_records_none_of_them() {
        use crate::cadence::similarity::Fingerprint;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let since = t("2026-11-01T00:00:00Z");
        let before = store
            .begin_attempt(&attempt("shop-x/a.md", "2026-11-21T09:00:00Z", false))
            .unwrap();
        // The last attempt of the batch fails, as a full disk would fail it: a real SQLite
        // error once the others are written in the transaction.
        store
            .conn
            .execute_batch(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON attempts WHEN NEW.file = 'c4/d.md'
                 BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;",
            )
            .unwrap();
        let texts = texts();
        let err = store.begin_attempts(&batch(&texts)).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM attempts"), 1);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM events"), 1);
        assert_eq!(store.indexed_up_to().unwrap(), before);
        for text in &texts {
            assert!(
                store
                    .near_posts(&Fingerprint::of_normalized(text), 0.8, since, &[])
                    .unwrap()
                    .is_empty(),
                "{text}"
            );
        }
        // Back to FULL-then-NORMAL, and the same batch goes through once the cause is gone.
        let level: i64 = store
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(level, 1);
        store.conn.execute_batch("DROP TRIGGER refuse").unwrap();
        let ids = store.begin_attempts(&batch(&texts)).unwrap();
        assert_eq!(ids.len(), 4);
        let hits = store
            .near_posts(&Fingerprint::of_normalized(&texts[1]), 0.8, since, &[])
            .unwrap();
        assert_eq!(hits.iter().map(|h| h.attempt).collect::<Vec<_>>(), [ids[1]]);
    }

    #[test]
    fn unsure_attempts_count_and_failed_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let a = store
            .begin_attempt(&attempt("shop-x/a.md", "2026-11-22T09:00:00Z", false))
            .unwrap();
        let b = store
            .begin_attempt(&attempt("shop-x/b.md", "2026-11-22T12:00:00Z", false))
            .unwrap();
        store
            .begin_attempt(&attempt("shop-x/c.md", "2026-11-22T15:00:00Z", false))
            .unwrap();
        store
            .finish_attempt(
                a,
                t("2026-11-22T09:00:01Z"),
                "published",
                Some("1"),
                None,
                "",
            )
            .unwrap();
        store
            .finish_attempt(b, t("2026-11-22T12:00:01Z"), "failed", None, None, "401")
            .unwrap();
        let hist = store
            .history("shop-x", t("2026-11-01T00:00:00Z"), false)
            .unwrap();
        // Published counts when the platform took it; the one still sending, when it started.
        assert_eq!(
            hist,
            vec![t("2026-11-22T09:00:01Z"), t("2026-11-22T15:00:00Z")]
        );
        let past = store.past_posts(t("2026-11-01T00:00:00Z"), &[]).unwrap();
        assert_eq!(past.len(), 2);
        assert_eq!(past[0].normalized, "black friday");
    }

    #[test]
    fn dry_runs_count_only_while_the_channel_stays_dry() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        store
            .begin_attempt(&attempt("shop-x/a.md", "2026-11-22T09:00:00Z", true))
            .unwrap();
        let since = t("2026-11-01T00:00:00Z");
        assert_eq!(store.history("shop-x", since, true).unwrap().len(), 1);
        assert!(store.history("shop-x", since, false).unwrap().is_empty());
        assert_eq!(store.past_posts(since, &["shop-x"]).unwrap().len(), 1);
        assert!(store.past_posts(since, &[]).unwrap().is_empty());
    }

    #[test]
    fn publish_log_view_has_the_documented_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let id = store
            .begin_attempt(&attempt("shop-x/a.md", "2026-11-22T09:00:00Z", false))
            .unwrap();
        store
            .finish_attempt(
                id,
                t("2026-11-22T09:00:01Z"),
                "published",
                Some("42"),
                Some("https://x.com/s/42"),
                "",
            )
            .unwrap();
        let stmt = store.conn.prepare("SELECT * FROM publish_log").unwrap();
        let cols: Vec<&str> = stmt.column_names().collect();
        assert_eq!(
            cols,
            [
                "time",
                "channel",
                "platform",
                "file",
                "status",
                "remote_id",
                "remote_url",
                "detail"
            ]
        );
        let last: (String, Option<String>) = store
            .conn
            .query_row(
                "SELECT status, remote_url FROM publish_log ORDER BY time DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            last,
            (
                "published".to_string(),
                Some("https://x.com/s/42".to_string())
            )
        );
    }

    #[test]
    fn first_seen_and_last_evaluated_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        for (time, status) in [
            ("2026-11-20T10:00:00Z", "accepted"),
            ("2026-11-21T10:00:00Z", "held"),
        ] {
            store
                .log_event(&NewEvent {
                    time: t(time),
                    channel: "shop-x",
                    platform: Platform::named("x").unwrap(),
                    file: "shop-x/a.md",
                    hash: Some("h"),
                    status,
                    detail: "",
                    attempt: None,
                })
                .unwrap();
        }
        assert_eq!(
            store.first_seen().unwrap()["shop-x/a.md"],
            t("2026-11-20T10:00:00Z")
        );
        assert_eq!(store.last_evaluated("shop-x").unwrap(), None);
        store
            .set_last_evaluated("shop-x", t("2026-11-22T09:00:00Z"), "Europe/Madrid")
            .unwrap();
        assert_eq!(
            store.last_evaluated("shop-x").unwrap(),
            Some(t("2026-11-22T09:00:00Z"))
        );
    }
}

// Reading the log for people and the person's answers (retry, resolve).
mod queries;
pub use queries::{Answered, AttemptSummary, LogQuery, LogRow, PostCounts};

// What the daemon knows about each channel, for `cadenced status`.
mod status;
pub use status::ChannelRecord;
