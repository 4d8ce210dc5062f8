//! Reading the log for people (`log`, `status`, `report`) and the two answers a person
//! gives about an unsure attempt (`retry`, `resolve`).
//!
//! Readers run one short statement at a time on a read-only connection, so a `log --follow`
//! left open for days never holds a read transaction that keeps the daemon's WAL from being
//! checkpointed. The answers change an attempt only if it is still in a state the person
//! saw (checked in the same write transaction), so a daemon reconciling the same attempt at
//! the same moment cannot be overruled by a stale answer. Like the rest of `store`, this
//! runs SQL and takes no decisions: which states may be answered is the caller's argument.

use jiff::Timestamp;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, TransactionBehavior, params, params_from_iter};

use super::{Result, Store, format_time, sql};

/// One row of the publish log, as the `publish_log` view shows it, plus the event's id so
/// `log --follow` can ask for what came after it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub id: i64,
    pub time: Timestamp,
    pub channel: String,
    pub platform: String,
    pub file: String,
    pub status: String,
    pub remote_id: Option<String>,
    pub remote_url: Option<String>,
    pub detail: String,
}

/// Which rows of the publish log to read. Empty fields do not filter.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub channel: Option<String>,
    /// Rows at or after this instant.
    pub since: Option<Timestamp>,
    /// Rows with one of these statuses.
    pub statuses: Vec<String>,
    /// Rows whose id is greater than this (for following the log).
    pub after: Option<i64>,
    /// Rows whose id is at most this (so a first batch and the follow-up polls neither
    /// overlap nor leave a gap).
    pub up_to: Option<i64>,
    /// Only the last this many matching rows (still returned oldest first).
    pub last: Option<usize>,
}

/// One attempt to send a post, as people are shown it (with its outcome).
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptSummary {
    pub id: i64,
    pub channel: String,
    pub platform: String,
    pub file: String,
    pub hash: String,
    pub started: Timestamp,
    pub state: String,
    pub dry_run: bool,
    pub remote_id: Option<String>,
    pub remote_url: Option<String>,
    pub finished: Option<Timestamp>,
}

/// How many posts a channel published in the two windows of a report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostCounts {
    pub channel: String,
    pub platform: String,
    pub current: u64,
    pub previous: u64,
    pub dry_run_current: u64,
    pub dry_run_previous: u64,
}

/// The outcome of answering an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answered {
    /// The attempt moved to the new state; the id of the logged event.
    Done { event: i64 },
    /// The attempt was no longer in one of the expected states (someone else answered it,
    /// or the daemon settled it, in the meantime); its state now.
    Stale { state: String },
}

/// The columns of `publish_log`: the view's own join, repeated here because a view has no
/// row id to follow. `a_log_query_reads_what_the_view_shows` keeps the two in step.
const LOG_SELECT: &str = "SELECT e.id, e.time, e.channel, e.platform, e.file, e.status,
        CASE WHEN e.status IN ('published', 'resolved') THEN a.remote_id END,
        CASE WHEN e.status IN ('published', 'resolved') THEN a.remote_url END, e.detail
 FROM events e LEFT JOIN attempts a ON a.id = e.attempt_id";

const ATTEMPT_COLUMNS: &str = "id, channel, platform, file, hash, started, state, dry_run,
        remote_id, remote_url, finished";

/// States of an attempt that count as a post that went out, for reports.
const PUBLISHED_STATES: &str = "('published', 'resolved')";

type RawAttempt = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    bool,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn raw_attempt(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawAttempt> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(10)?,
    ))
}

impl Store {
    /// Rows of the publish log matching `q`, oldest first.
    pub fn log_rows(&self, q: &LogQuery) -> Result<Vec<LogRow>> {
        let mut sql_text = format!("{LOG_SELECT} WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        if let Some(channel) = &q.channel {
            args.push(Value::Text(channel.clone()));
            sql_text += &format!(" AND e.channel = ?{}", args.len());
        }
        if let Some(since) = q.since {
            // Times are fixed-width UTC text, so text order is time order.
            args.push(Value::Text(format_time(since)));
            sql_text += &format!(" AND e.time >= ?{}", args.len());
        }
        if !q.statuses.is_empty() {
            let mut marks = Vec::new();
            for s in &q.statuses {
                args.push(Value::Text(s.clone()));
                marks.push(format!("?{}", args.len()));
            }
            sql_text += &format!(" AND e.status IN ({})", marks.join(", "));
        }
        if let Some(after) = q.after {
            args.push(Value::Integer(after));
            sql_text += &format!(" AND e.id > ?{}", args.len());
        }
        if let Some(up_to) = q.up_to {
            args.push(Value::Integer(up_to));
            sql_text += &format!(" AND e.id <= ?{}", args.len());
        }
        // The last N rows: newest first with a limit, turned around below.
        match q.last {
            Some(n) => sql_text += &format!(" ORDER BY e.id DESC LIMIT {n}"),
            None => sql_text += " ORDER BY e.id",
        }
        let mut stmt = self.conn.prepare(&sql_text).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params_from_iter(args), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, String>(8)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, time, channel, platform, file, status, remote_id, remote_url, detail) =
                row.map_err(|e| self.err(e))?;
            out.push(LogRow {
                id,
                time: self.time(time)?,
                channel,
                platform,
                file,
                status,
                remote_id,
                remote_url,
                detail,
            });
        }
        if q.last.is_some() {
            out.reverse();
        }
        Ok(out)
    }

    /// The id of the newest row of the log; 0 when it is empty.
    pub fn last_event_id(&self) -> Result<i64> {
        self.conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| r.get(0))
            .map_err(|e| self.err(e))
    }

    /// The newest attempt to send `file` (`<channel>/<name>`), if there was any.
    pub fn latest_attempt(&self, file: &str) -> Result<Option<AttemptSummary>> {
        let raw = self
            .conn
            .query_row(
                &format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE file = ?1
                     ORDER BY id DESC LIMIT 1"
                ),
                [file],
                raw_attempt,
            )
            .optional()
            .map_err(|e| self.err(e))?;
        raw.map(|r| self.attempt(r)).transpose()
    }

    /// Every attempt now in `state`, oldest first.
    pub fn attempts_in_state(&self, state: &str) -> Result<Vec<AttemptSummary>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE state = ?1 ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([state], raw_attempt)
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            out.push(self.attempt(row.map_err(|e| self.err(e))?)?);
        }
        Ok(out)
    }

    /// The channel's newest `failed` row: when, and the detail it gave.
    pub fn last_failure(&self, channel: &str) -> Result<Option<(Timestamp, String)>> {
        let row: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT time, detail FROM events WHERE channel = ?1 AND status = 'failed'
                 ORDER BY id DESC LIMIT 1",
                [channel],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(time, detail)| Ok((self.time(time)?, detail)))
            .transpose()
    }

    /// Per channel (by name, with the platform of its newest post): posts that went out
    /// (`published` or `resolved`) with a start in `[mid, to)` (current) and in
    /// `[from, mid)` (previous), dry runs counted apart.
    pub fn post_counts(
        &self,
        from: Timestamp,
        mid: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<PostCounts>> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT channel, dry_run, started >= ?2 AS current, COUNT(*), MAX(id)
                 FROM attempts
                 WHERE state IN {PUBLISHED_STATES} AND started >= ?1 AND started < ?3
                 GROUP BY channel, dry_run, current
                 ORDER BY channel"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![format_time(from), format_time(mid), format_time(to)],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, bool>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                    ))
                },
            )
            .map_err(|e| self.err(e))?;
        let mut out: Vec<PostCounts> = Vec::new();
        let mut newest: Vec<i64> = Vec::new();
        for row in rows {
            let (channel, dry, current, count, max_id) = row.map_err(|e| self.err(e))?;
            let i = match out.iter().position(|c| c.channel == channel) {
                Some(i) => i,
                None => {
                    out.push(PostCounts {
                        channel,
                        ..PostCounts::default()
                    });
                    newest.push(0);
                    out.len() - 1
                }
            };
            let count = count as u64;
            let slot = match (dry, current) {
                (false, true) => &mut out[i].current,
                (false, false) => &mut out[i].previous,
                (true, true) => &mut out[i].dry_run_current,
                (true, false) => &mut out[i].dry_run_previous,
            };
            *slot += count;
            newest[i] = newest[i].max(max_id);
        }
        for (c, id) in out.iter_mut().zip(newest) {
            c.platform = self
                .conn
                .query_row("SELECT platform FROM attempts WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .map_err(|e| self.err(e))?;
        }
        Ok(out)
    }

    /// The person says attempt `id` was not published: it becomes `retried` (so the daemon
    /// sends the file again, under a new idempotency key) and a `retried` row is logged.
    /// Only if the attempt is still in one of `expected`.
    pub fn retry_attempt(
        &mut self,
        id: i64,
        expected: &[&str],
        at: Timestamp,
        detail: &str,
    ) -> Result<Answered> {
        self.answer(id, expected, "retried", at, None, detail)
    }

    /// The person says attempt `id` did go out: it becomes `resolved`, with `remote_url`
    /// when they gave one (else the URL it had stays), and a `resolved` row is logged.
    /// Only if the attempt is still in one of `expected`.
    pub fn resolve_attempt(
        &mut self,
        id: i64,
        expected: &[&str],
        at: Timestamp,
        remote_url: Option<&str>,
        detail: &str,
    ) -> Result<Answered> {
        self.answer(id, expected, "resolved", at, remote_url, detail)
    }

    fn answer(
        &mut self,
        id: i64,
        expected: &[&str],
        state: &str,
        at: Timestamp,
        remote_url: Option<&str>,
        detail: &str,
    ) -> Result<Answered> {
        // IMMEDIATE takes the write lock before reading the state, so the check and the
        // change see the same row even if the daemon writes in between.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sql(&self.path, e))?;
        let now_state: Option<String> = tx
            .query_row("SELECT state FROM attempts WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| sql(&self.path, e))?;
        let Some(now_state) = now_state else {
            return Ok(Answered::Stale {
                state: "missing".to_string(),
            });
        };
        if !expected.contains(&now_state.as_str()) {
            return Ok(Answered::Stale { state: now_state });
        }
        // `finished` keeps the moment the outcome was first recorded; the answer's own time
        // is the event row's.
        tx.execute(
            "UPDATE attempts SET state = ?2, remote_url = COALESCE(?3, remote_url),
                                 finished = COALESCE(finished, ?4)
             WHERE id = ?1",
            params![id, state, remote_url, format_time(at)],
        )
        .map_err(|e| sql(&self.path, e))?;
        tx.execute(
            "INSERT INTO events (time, channel, platform, file, hash, status, detail, attempt_id)
             SELECT ?2, channel, platform, file, hash, ?3, ?4, id FROM attempts WHERE id = ?1",
            params![id, format_time(at), state, detail],
        )
        .map_err(|e| sql(&self.path, e))?;
        let event = tx.last_insert_rowid();
        tx.commit().map_err(|e| sql(&self.path, e))?;
        Ok(Answered::Done { event })
    }

    fn attempt(&self, r: RawAttempt) -> Result<AttemptSummary> {
        let (
            id,
            channel,
            platform,
            file,
            hash,
            started,
            state,
            dry_run,
            remote_id,
            remote_url,
            finished,
        ) = r;
        Ok(AttemptSummary {
            id,
            channel,
            platform,
            file,
            hash,
            started: self.time(started)?,
            state,
            dry_run,
            remote_id,
            remote_url,
            finished: finished.map(|f| self.time(f)).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::Platform;
    use crate::store::{NewAttempt, NewEvent};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        (dir, store)
    }

    fn send(store: &mut Store, file: &str, started: &str, dry_run: bool) -> i64 {
        store
            .begin_attempt(&NewAttempt {
                started: t(started),
                channel: file.split('/').next().unwrap(),
                platform: Platform::named("mastodon").unwrap(),
                file,
                hash: "h",
                normalized: "n",
                idempotency_key: "k",
                key_started: t(started),
                dry_run,
            })
            .unwrap()
    }

    #[test]
    fn a_log_query_reads_what_the_view_shows() {
        let (_dir, mut store) = open();
        let id = send(&mut store, "shop-m/a.md", "2026-11-22T09:00:00Z", false);
        store
            .finish_attempt(
                id,
                t("2026-11-22T09:00:01Z"),
                "published",
                Some("1"),
                Some("https://m.example/@shop/1"),
                "",
            )
            .unwrap();
        store
            .log_event(&NewEvent {
                time: t("2026-11-22T10:00:00Z"),
                channel: "shop-m",
                platform: Platform::named("mastodon").unwrap(),
                file: "shop-m/b.md",
                hash: None,
                status: "held",
                detail: "too long",
                attempt: None,
            })
            .unwrap();
        let ours: Vec<_> = store
            .log_rows(&LogQuery::default())
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    super::super::format_time(r.time),
                    r.channel,
                    r.platform,
                    r.file,
                    r.status,
                    r.remote_id,
                    r.remote_url,
                    r.detail,
                )
            })
            .collect();
        let mut stmt = store.conn.prepare("SELECT * FROM publish_log").unwrap();
        let view: Vec<_> = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(ours.len(), 3);
        assert_eq!(ours, view);
    }

    #[test]
    fn log_filters_combine_and_last_keeps_the_newest_in_order() {
        let (_dir, mut store) = open();
        for (i, file) in ["shop-m/a.md", "shop-m/b.md", "other/c.md"]
            .iter()
            .enumerate()
        {
            send(
                &mut store,
                file,
                &format!("2026-11-2{}T09:00:00Z", i + 1),
                false,
            );
        }
        let q = |f: &dyn Fn(&mut LogQuery)| {
            let mut q = LogQuery::default();
            f(&mut q);
            store
                .log_rows(&q)
                .unwrap()
                .into_iter()
                .map(|r| r.file)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            q(&|q| q.channel = Some("shop-m".into())),
            ["shop-m/a.md", "shop-m/b.md"]
        );
        assert_eq!(
            q(&|q| q.since = Some(t("2026-11-22T00:00:00Z"))),
            ["shop-m/b.md", "other/c.md"]
        );
        assert_eq!(q(&|q| q.last = Some(2)), ["shop-m/b.md", "other/c.md"]);
        assert_eq!(
            q(&|q| q.statuses = vec!["published".into()]),
            [] as [&str; 0]
        );
        assert_eq!(q(&|q| q.after = Some(1)), ["shop-m/b.md", "other/c.md"]);
        assert_eq!(q(&|q| q.up_to = Some(1)), ["shop-m/a.md"]);
        assert_eq!(store.last_event_id().unwrap(), 3);
    }

    #[test]
    fn answers_change_only_the_states_the_person_saw() {
        let (_dir, mut store) = open();
        let id = send(&mut store, "shop-m/a.md", "2026-11-22T09:00:00Z", false);
        store
            .finish_attempt(
                id,
                t("2026-11-22T09:00:30Z"),
                "unknown",
                None,
                None,
                "time-out",
            )
            .unwrap();
        let at = t("2026-11-22T12:00:00Z");
        assert_eq!(
            store.retry_attempt(id, &["failed"], at, "by hand").unwrap(),
            Answered::Stale {
                state: "unknown".into()
            }
        );
        assert!(matches!(
            store
                .resolve_attempt(id, &["unknown"], at, Some("https://m.example/1"), "by hand")
                .unwrap(),
            Answered::Done { .. }
        ));
        let a = store.latest_attempt("shop-m/a.md").unwrap().unwrap();
        assert_eq!(a.state, "resolved");
        assert_eq!(a.remote_url.as_deref(), Some("https://m.example/1"));
        assert_eq!(a.finished, Some(t("2026-11-22T09:00:30Z")));
        // A resolved post counts for the cap again.
        assert_eq!(
            store
                .history("shop-m", t("2026-11-22T00:00:00Z"), false)
                .unwrap()
                .len(),
            1
        );
        let last = store.log_rows(&LogQuery::default()).unwrap().pop().unwrap();
        assert_eq!(
            (last.status.as_str(), last.remote_url.as_deref()),
            ("resolved", Some("https://m.example/1"))
        );
    }

    #[test]
    fn post_counts_split_windows_and_dry_runs() {
        let (_dir, mut store) = open();
        let published = |store: &mut Store, started: &str, dry| {
            let id = send(store, "shop-m/a.md", started, dry);
            store
                .finish_attempt(id, t(started), "published", None, None, "")
                .unwrap();
        };
        published(&mut store, "2026-11-01T09:00:00Z", false); // previous
        published(&mut store, "2026-11-20T09:00:00Z", false); // current
        published(&mut store, "2026-11-21T09:00:00Z", true); // current, dry
        published(&mut store, "2026-10-01T09:00:00Z", false); // before both windows
        let failed = send(&mut store, "shop-m/b.md", "2026-11-21T10:00:00Z", false);
        store
            .finish_attempt(
                failed,
                t("2026-11-21T10:00:01Z"),
                "failed",
                None,
                None,
                "401",
            )
            .unwrap();
        let counts = store
            .post_counts(
                t("2026-10-25T00:00:00Z"),
                t("2026-11-15T00:00:00Z"),
                t("2026-12-01T00:00:00Z"),
            )
            .unwrap();
        assert_eq!(
            counts,
            [PostCounts {
                channel: "shop-m".into(),
                platform: "mastodon".into(),
                current: 1,
                previous: 1,
                dry_run_current: 1,
                dry_run_previous: 0,
            }]
        );
        assert_eq!(
            store.last_failure("shop-m").unwrap(),
            Some((t("2026-11-21T10:00:01Z"), "401".to_string()))
        );
    }
}
