//! What the daemon knows about each channel, as it last recorded it: enabled or disabled
//! (and why: only the daemon can read its credentials), the next post and its time, failed
//! and unknown counts, the last attempt. The daemon replaces the whole table after each
//! evaluation; `cadenced status`, run by anyone who can read the log, shows it, so a staff
//! member without the daemon's environment sees the daemon's truth.

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{Result, Store, format_time};

/// One channel as the daemon saw it at `recorded`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    pub channel: String,
    pub recorded: Timestamp,
    /// The daemon's process id, to tell one daemon's records from another's.
    pub pid: u32,
    pub platform: String,
    /// The IANA name of the channel's zone when recorded.
    pub timezone: String,
    /// `None`: enabled; `Some(why)`: disabled (a credential it cannot read...).
    pub disabled: Option<String>,
    pub paused: bool,
    pub dry_run: bool,
    pub queued: u32,
    pub held: u32,
    pub published_today: u32,
    pub max_per_day: u32,
    pub failed: u32,
    pub unknown: u32,
    /// The post the daemon would publish next, and when (as it would decide it now).
    pub next_post: Option<(String, Timestamp)>,
    /// The newest attempt: when it started, its state, its file.
    pub last_attempt: Option<(Timestamp, String, String)>,
}

/// A channel's newest attempt: when it started, its state, its file.
pub type LastAttempt = (Timestamp, String, String);

/// One channel's record, written over any it had.
fn write_record(conn: &rusqlite::Connection, r: &ChannelRecord) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO channel_status (channel, recorded, pid, platform, timezone,
            disabled_reason, paused, dry_run, queued, held, published_today,
            max_per_day, failed, unknown, next_file, next_at, last_attempt_at,
            last_attempt_state, last_attempt_file)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,
            ?16, ?17, ?18, ?19)",
    )?
    .execute(params![
        r.channel,
        format_time(r.recorded),
        r.pid,
        r.platform,
        r.timezone,
        r.disabled,
        r.paused,
        r.dry_run,
        r.queued,
        r.held,
        r.published_today,
        r.max_per_day,
        r.failed,
        r.unknown,
        r.next_post.as_ref().map(|(f, _)| f),
        r.next_post.as_ref().map(|(_, t)| format_time(*t)),
        r.last_attempt.as_ref().map(|(t, _, _)| format_time(*t)),
        r.last_attempt.as_ref().map(|(_, s, _)| s),
        r.last_attempt.as_ref().map(|(_, _, f)| f),
    ])?;
    Ok(())
}

impl Store {
    /// Replaces the recorded state of every channel with `records`, in one transaction.
    pub fn record_channels(&mut self, records: &[ChannelRecord]) -> Result<()> {
        let path = self.path.clone();
        let err = |e| super::sql(&path, e);
        let tx = self.conn.transaction().map_err(err)?;
        tx.execute("DELETE FROM channel_status", []).map_err(err)?;
        for r in records {
            write_record(&tx, r).map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// Replaces the recorded state of one channel.
    pub fn record_channel(&mut self, r: &ChannelRecord) -> Result<()> {
        write_record(&self.conn, r).map_err(|e| self.err(e))
    }

    /// One channel's failed and unknown attempt counts and its newest attempt (started,
    /// state, file): index look-ups on the channel's attempts.
    pub fn channel_attempts(&self, channel: &str) -> Result<(u32, u32, Option<LastAttempt>)> {
        let count = |state: &str| -> Result<u32> {
            self.conn
                .prepare_cached("SELECT COUNT(*) FROM attempts WHERE channel = ?1 AND state = ?2")
                .and_then(|mut s| s.query_row(params![channel, state], |r| r.get(0)))
                .map_err(|e| self.err(e))
        };
        let last: Option<(String, String, String)> = self
            .conn
            .prepare_cached(
                "SELECT started, state, file FROM attempts WHERE channel = ?1
                 ORDER BY id DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row([channel], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .optional()
            })
            .map_err(|e| self.err(e))?;
        let last = match last {
            Some((started, state, file)) => Some((self.time(started)?, state, file)),
            None => None,
        };
        Ok((count("failed")?, count("unknown")?, last))
    }

    /// The recorded channels, by name.
    pub fn channel_records(&self) -> Result<Vec<ChannelRecord>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT channel, recorded, pid, platform, timezone, disabled_reason, paused,
                    dry_run, queued, held, published_today, max_per_day, failed, unknown,
                    next_file, next_at, last_attempt_at, last_attempt_state, last_attempt_file
                 FROM channel_status ORDER BY channel",
            )
            .map_err(|e| self.err(e))?;
        type Raw = (
            (String, String, u32, String, String, Option<String>, bool),
            (bool, u32, u32, u32, u32, u32, u32),
            (
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            ),
        );
        let rows = stmt
            .query_map([], |r| -> rusqlite::Result<Raw> {
                Ok((
                    (
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ),
                    (
                        r.get(7)?,
                        r.get(8)?,
                        r.get(9)?,
                        r.get(10)?,
                        r.get(11)?,
                        r.get(12)?,
                        r.get(13)?,
                    ),
                    (r.get(14)?, r.get(15)?, r.get(16)?, r.get(17)?, r.get(18)?),
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (a, b, c) = row.map_err(|e| self.err(e))?;
            let next_post = match (c.0, c.1) {
                (Some(file), Some(at)) => Some((file, self.time(at)?)),
                _ => None,
            };
            let last_attempt = match (c.2, c.3, c.4) {
                (Some(at), Some(state), Some(file)) => Some((self.time(at)?, state, file)),
                _ => None,
            };
            out.push(ChannelRecord {
                channel: a.0,
                recorded: self.time(a.1)?,
                pid: a.2,
                platform: a.3,
                timezone: a.4,
                disabled: a.5,
                paused: a.6,
                dry_run: b.0,
                queued: b.1,
                held: b.2,
                published_today: b.3,
                max_per_day: b.4,
                failed: b.5,
                unknown: b.6,
                next_post,
                last_attempt,
            });
        }
        Ok(out)
    }

    /// The newest attempt of each channel: (channel, started, state, file).
    pub fn last_attempts(&self) -> Result<Vec<(String, Timestamp, String, String)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT channel, started, state, file FROM attempts
                 WHERE id IN (SELECT MAX(id) FROM attempts GROUP BY channel)",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (channel, started, state, file) = row.map_err(|e| self.err(e))?;
            out.push((channel, self.time(started)?, state, file));
        }
        Ok(out)
    }

    /// Per channel, how many attempts are in `state` now (`failed`, `unknown`).
    pub fn attempt_counts(&self, state: &str) -> Result<std::collections::HashMap<String, u32>> {
        let mut stmt = self
            .conn
            .prepare("SELECT channel, COUNT(*) FROM attempts WHERE state = ?1 GROUP BY channel")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([state], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = std::collections::HashMap::new();
        for row in rows {
            let (channel, n) = row.map_err(|e| self.err(e))?;
            out.insert(channel, n);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn record(channel: &str) -> ChannelRecord {
        ChannelRecord {
            channel: channel.into(),
            recorded: t("2026-11-28T09:00:00Z"),
            pid: 42,
            platform: "mastodon".into(),
            timezone: "Europe/Madrid".into(),
            disabled: None,
            paused: false,
            dry_run: false,
            queued: 3,
            held: 1,
            published_today: 1,
            max_per_day: 2,
            failed: 0,
            unknown: 1,
            next_post: Some((format!("{channel}/002.md"), t("2026-11-28T16:30:00Z"))),
            last_attempt: Some((
                t("2026-11-28T09:00:00Z"),
                "published".into(),
                format!("{channel}/001.md"),
            )),
        }
    }

    #[test]
    fn records_replace_the_previous_ones_and_read_back_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("log.sqlite")).unwrap();
        let mut masto = record("masto");
        masto.disabled = Some("environment variable `M_TOKEN` is not set".into());
        masto.next_post = None;
        store
            .record_channels(&[masto.clone(), record("sky")])
            .unwrap();
        assert_eq!(store.channel_records().unwrap(), [masto, record("sky")]);
        // A channel removed from the config disappears with the next record.
        store.record_channels(&[record("sky")]).unwrap();
        let reader = Store::open_read_only(&dir.path().join("log.sqlite"))
            .unwrap()
            .unwrap();
        assert_eq!(reader.channel_records().unwrap(), [record("sky")]);
    }
}
