//! The daemon's questions to the log: which attempts are unfinished, which file versions were
//! already logged, which files were pending (to notice withdrawals), and the watchdog's
//! round trip.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, format_time};

/// An attempt as the daemon needs it to reconcile or resend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRow {
    pub id: i64,
    pub channel: String,
    pub platform: String,
    pub file: String,
    pub hash: String,
    pub normalized: String,
    pub started: Timestamp,
    pub state: String,
    pub idempotency_key: String,
    pub dry_run: bool,
    /// When the idempotency key was first sent.
    pub key_started: Timestamp,
}

/// What the log says about one file: what judging it and "first" need.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileFacts {
    /// When the log first saw the file (any version).
    pub first_seen: Option<Timestamp>,
    /// How this version was logged (`accepted` or `held`) since the file's last final row.
    pub logged: Option<String>,
    /// The state of the file's latest attempt and the version it sent.
    pub latest_attempt: Option<(String, String)>,
}

impl FileFacts {
    /// The file's latest attempt has an unsure outcome (`sending`, `unknown`): it must not
    /// be sent again on its own.
    pub fn unsure(&self) -> Option<&str> {
        self.latest_attempt
            .as_ref()
            .map(|(state, _)| state.as_str())
            .filter(|s| *s == "sending" || *s == "unknown")
    }

    /// The file's latest attempt finished with this version (`published`, `resolved`,
    /// `failed`): the file only has to move (a crash came between the outcome and the move).
    pub fn finished(&self, hash: &str) -> Option<&str> {
        self.latest_attempt
            .as_ref()
            .filter(|(state, h)| {
                h == hash && matches!(state.as_str(), "published" | "resolved" | "failed")
            })
            .map(|(state, _)| state.as_str())
    }
}

/// Statuses after which a file version is no longer pending.
const TERMINAL: &str = "('published', 'failed', 'expired', 'withdrawn', 'resolved')";

impl Store {
    /// A cheap query that proves the database answers (for the systemd watchdog).
    pub fn ping(&self) -> Result<()> {
        self.conn
            .query_row("SELECT 1", [], |_| Ok(()))
            .map_err(|e| self.err(e))
    }

    fn attempts_where(
        &self,
        clause: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<AttemptRow>> {
        let sql = format!(
            "SELECT id, channel, platform, file, hash, normalized, started, state,
                    idempotency_key, dry_run, COALESCE(key_started, started)
             FROM attempts WHERE {clause} ORDER BY id"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, bool>(9)?,
                    r.get::<_, String>(10)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (
                id,
                channel,
                platform,
                file,
                hash,
                normalized,
                started,
                state,
                key,
                dry_run,
                key_started,
            ) = row.map_err(|e| self.err(e))?;
            out.push(AttemptRow {
                id,
                channel,
                platform,
                file,
                hash,
                normalized,
                started: self.time(started)?,
                state,
                idempotency_key: key,
                dry_run,
                key_started: self.time(key_started)?,
            });
        }
        Ok(out)
    }

    /// Attempts left in `sending` (a crash or kill mid-request): reconcile these at start-up.
    pub fn sending_attempts(&self) -> Result<Vec<AttemptRow>> {
        self.attempts_where("state = 'sending'", &[])
    }

    /// Files whose latest attempt has an unsure outcome: they must not be sent again on
    /// their own. Maps the file to the state.
    pub fn unsure_files(&self) -> Result<HashMap<String, String>> {
        let rows = self.attempts_where(
            "id IN (SELECT MAX(id) FROM attempts GROUP BY file)
             AND state IN ('sending', 'unknown')",
            &[],
        )?;
        Ok(rows.into_iter().map(|a| (a.file, a.state)).collect())
    }

    /// How many attempts a file has had: part of each new idempotency key, so a `retry`
    /// after an unknown outcome never reuses the old key.
    pub fn attempt_count(&self, file: &str) -> Result<i64> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM attempts WHERE file = ?1",
                [file],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    /// Whether this version of the file was already logged `accepted` or `held` (each
    /// version is logged once) since its last terminal event.
    pub fn version_logged(&self, file: &str, hash: &str) -> Result<Option<String>> {
        // Cached: parsing it was 5 % of the daemon's CPU taking in a burst of files.
        self.conn
            .prepare_cached(&format!(
                "SELECT status FROM events
                 WHERE file = ?1 AND hash = ?2 AND status IN ('accepted', 'held')
                   AND id > COALESCE((SELECT MAX(id) FROM events
                                      WHERE file = ?1 AND status IN {TERMINAL}), 0)
                 ORDER BY id DESC LIMIT 1"
            ))
            .and_then(|mut s| s.query_row(params![file, hash], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// What the log says about `file` at version `hash` (three indexed look-ups).
    pub fn file_facts(&self, file: &str, hash: &str) -> Result<FileFacts> {
        let first_seen: Option<String> = self
            .conn
            .prepare_cached(
                "SELECT MIN(time) FROM events WHERE file = ?1 AND status IN ('accepted', 'held')",
            )
            .and_then(|mut s| s.query_row([file], |r| r.get(0)))
            .map_err(|e| self.err(e))?;
        let latest_attempt = self
            .conn
            .prepare_cached(
                "SELECT state, hash FROM attempts WHERE file = ?1 ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([file], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        // Never logged `accepted` or `held`: no version of it was.
        let logged = match first_seen {
            Some(_) => self.version_logged(file, hash)?,
            None => None,
        };
        Ok(FileFacts {
            first_seen: first_seen.map(|t| self.time(t)).transpose()?,
            logged,
            latest_attempt,
        })
    }

    /// Whether `file`, gone from the queue, was withdrawn: the log last saw it pending
    /// (`accepted` or `held`, nothing final after) and no attempt of it is unsure (an
    /// unsure one is the user's to answer; a file being sent moves by itself).
    pub fn withdrawable(&self, file: &str) -> Result<bool> {
        let last: Option<String> = self
            .conn
            // Pending statuses and the final ones (TERMINAL).
            .prepare_cached(
                "SELECT status FROM events WHERE file = ?1
                   AND status IN ('accepted', 'held', 'published', 'failed', 'expired',
                                  'withdrawn', 'resolved')
                 ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut s| s.query_row([file], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        if !matches!(last.as_deref(), Some("accepted" | "held")) {
            return Ok(false);
        }
        let latest: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM attempts WHERE file = ?1 ORDER BY id DESC LIMIT 1")
            .and_then(|mut s| s.query_row([file], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?;
        Ok(!matches!(latest.as_deref(), Some("sending" | "unknown")))
    }

    /// Runs `f` in one transaction (many small writes at once: the start-up's verdicts).
    /// Rolled back if `f` fails or panics, or if the commit fails (a full disk): the
    /// connection is never left inside a transaction, where every later write would join
    /// one that is never committed.
    pub fn in_transaction<T>(&mut self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        // Rolls back when dropped uncommitted, also after a failed commit.
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        let v = f(self)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(v)
    }

    /// Runs `f`, which only reads, inside one read transaction: a listing's look-ups (three
    /// per file, and a near-duplicate check per post) then share one snapshot and one lock
    /// of the database file. Each query on its own takes the file's shared lock and gives
    /// it back (two `fcntl` calls and a check of the WAL index), which was half of what a
    /// 100,000-file start-up spent on the log's facts about its files. Inside a
    /// transaction already, or if one cannot begin, `f` simply runs. If `f` panics, the
    /// transaction ends anyway: the connection is never left in an old snapshot.
    pub fn reading<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        let began = self.conn.is_autocommit() && self.conn.execute_batch("BEGIN").is_ok();
        let _end = began.then(|| EndOnDrop(&self.conn));
        f(self)
    }

    /// Files the log last saw as pending (accepted or held, with nothing final after):
    /// a file among these that is gone from the queue was withdrawn.
    pub fn pending_files(&self) -> Result<HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT file FROM events e
                 WHERE status IN ('accepted', 'held')
                   AND NOT EXISTS (SELECT 1 FROM events t WHERE t.file = e.file AND t.id > e.id
                                   AND t.status IN {TERMINAL})
                 GROUP BY file"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<std::result::Result<HashSet<_>, _>>()
            .map_err(|e| self.err(e))
    }

    /// The latest `deferred` detail logged for a file version, to log a deferral only when
    /// the reason changes.
    pub fn last_deferral(&self, file: &str, hash: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT detail FROM events WHERE file = ?1 AND hash = ?2 AND status = 'deferred'
                 ORDER BY id DESC LIMIT 1",
                params![file, hash],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Records the HTTP status the platform answered an attempt with.
    pub fn set_http_status(&self, attempt: i64, status: u16) -> Result<()> {
        self.conn
            .prepare_cached("UPDATE attempts SET http_status = ?2 WHERE id = ?1")
            .and_then(|mut stmt| stmt.execute(params![attempt, status]))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Logs a resend of an attempt (a `sending` row pointing at the same attempt).
    pub fn log_resend(&self, attempt: i64, at: Timestamp, detail: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO events (time, channel, platform, file, hash, status, detail, attempt_id)
                 SELECT ?2, channel, platform, file, hash, 'sending', ?3, id
                 FROM attempts WHERE id = ?1",
                params![attempt, format_time(at), detail],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl Store {
    /// What an attempt kept between its tries.
    pub fn attempt_state(&self, attempt: i64) -> Result<BTreeMap<String, serde_json::Value>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name, value FROM attempt_state WHERE attempt_id = ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([attempt], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (name, value) = row.map_err(|e| self.err(e))?;
            // A value that does not parse was not written by us: forgetting it only costs
            // a repeated upload.
            if let Ok(value) = serde_json::from_str(&value) {
                out.insert(name, value);
            }
        }
        Ok(out)
    }

    /// Keeps one value of an attempt (committed at once: it must survive a crash).
    pub fn save_attempt_state(
        &self,
        attempt: i64,
        name: &str,
        value: &serde_json::Value,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO attempt_state (attempt_id, name, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (attempt_id, name) DO UPDATE SET value = excluded.value",
                params![attempt, name, value.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Marks an attempt whose outcome is unsure as resendable with its key: the next
    /// attempt of the same version reuses it while the platform still recognises it.
    pub fn set_key_reusable(&self, attempt: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE attempts SET key_reusable = 1 WHERE id = ?1",
                [attempt],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The key (and when it was first sent) the next attempt of this version should reuse:
    /// the latest attempt of the file, if it is of this version and marked reusable.
    pub fn reusable_key(&self, file: &str, hash: &str) -> Result<Option<(String, Timestamp)>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT idempotency_key, COALESCE(key_started, started) FROM attempts
                 WHERE id = (SELECT MAX(id) FROM attempts WHERE file = ?1)
                   AND hash = ?2 AND key_reusable = 1 AND state = 'retried'",
                params![file, hash],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        match row {
            Some((key, started)) => Ok(Some((key, self.time(started)?))),
            None => Ok(None),
        }
    }

    /// Files whose latest attempt finished (`published`, `resolved` or `failed`), with that
    /// state and the version sent: a crash between the outcome and the file move leaves such
    /// a file in the queue, and the daemon finishes the move.
    pub fn finished_versions(&self) -> Result<HashMap<String, (String, String)>> {
        let rows = self.attempts_where(
            "id IN (SELECT MAX(id) FROM attempts GROUP BY file)
             AND state IN ('published', 'resolved', 'failed')",
            &[],
        )?;
        Ok(rows
            .into_iter()
            .map(|a| (a.file, (a.state, a.hash)))
            .collect())
    }
}

/// Ends the read transaction [`Store::reading`] began, however `f` returned: a commit, or
/// if that fails a rollback (nothing was written inside).
struct EndOnDrop<'c>(&'c rusqlite::Connection);

impl Drop for EndOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.execute_batch("COMMIT").is_err() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NewAttempt, NewEvent};
    use super::*;
    use crate::platforms::Platform;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn event(store: &Store, file: &str, hash: &str, status: &str) {
        store
            .log_event(&NewEvent {
                time: t("2026-11-22T10:00:00Z"),
                channel: "c",
                platform: Platform::named("outbox").unwrap(),
                file,
                hash: Some(hash),
                status,
                detail: "",
                attempt: None,
            })
            .unwrap();
    }

    #[test]
    fn versions_are_logged_once_until_something_final_happens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        assert_eq!(store.version_logged("c/a.md", "h1").unwrap(), None);
        event(&store, "c/a.md", "h1", "accepted");
        assert_eq!(
            store.version_logged("c/a.md", "h1").unwrap().as_deref(),
            Some("accepted")
        );
        assert_eq!(store.version_logged("c/a.md", "h2").unwrap(), None);
        assert!(store.pending_files().unwrap().contains("c/a.md"));
        event(&store, "c/a.md", "h1", "withdrawn");
        assert_eq!(
            store.version_logged("c/a.md", "h1").unwrap(),
            None,
            "a file put back is new again"
        );
        assert!(store.pending_files().unwrap().is_empty());
    }

    #[test]
    fn unsure_files_follow_the_latest_attempt() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        let a = NewAttempt {
            started: t("2026-11-22T10:00:00Z"),
            channel: "c",
            platform: Platform::named("outbox").unwrap(),
            file: "c/a.md",
            hash: "h",
            normalized: "a",
            idempotency_key: "k",
            key_started: t("2026-11-22T10:00:00Z"),
            dry_run: false,
        };
        let id = store.begin_attempt(&a).unwrap();
        assert_eq!(store.sending_attempts().unwrap().len(), 1);
        assert_eq!(store.unsure_files().unwrap()["c/a.md"], "sending");
        store
            .finish_attempt(
                id,
                t("2026-11-22T10:01:00Z"),
                "unknown",
                None,
                None,
                "timeout",
            )
            .unwrap();
        assert_eq!(store.unsure_files().unwrap()["c/a.md"], "unknown");
        store
            .finish_attempt(id, t("2026-11-22T10:02:00Z"), "retried", None, None, "")
            .unwrap();
        assert!(store.unsure_files().unwrap().is_empty());
        assert_eq!(store.attempt_count("c/a.md").unwrap(), 1);
        store.ping().unwrap();
    }
}
