//! The log's posts as a near-duplicate index on disk, so rules 5 and 6 can compare a new
//! post with 100,000 published ones without holding their texts (or their grams) in memory.
//!
//! Each attempt's normalized text is indexed when the attempt is recorded, in the same
//! transaction (`begin_attempt`), as an FTS5 document whose terms are its gram tokens
//! (`similarity::gram_token`, eight hex digits each): SQLite's full-text index stores the
//! token → attempts lists compressed and merges them as they grow, which is exactly an
//! inverted index that takes one document at a time. The table is contentless (the text
//! stays in `attempts.normalized`) and keeps no positions. A document's rowid is the
//! attempt id times 4096 plus its gram count (capped at 4095), so the size filter needs no
//! second look-up.
//!
//! A query is the same exact search as `similarity::Index::find`: it reads the lists of only
//! the rarest of the text's tokens (enough that every near-duplicate must share one), keeps
//! the attempts whose size and shared count can still reach the threshold, and decides with
//! the exact Jaccard of the attempt's stored text. How rare a token is comes from a small
//! count sketch in memory (never below the true count, so a token it has never seen is in
//! no document and costs nothing to "probe"); it is built from the index on first use and
//! kept up to date by `begin_attempt`.
//!
//! Attempts recorded before this index existed (an older database) are indexed once when
//! the database is opened for writing; `history_indexed` holds the highest attempt id
//! indexed, and a query compares the few attempts above it (none, normally) one by one.
//! Which attempts count (state, dry run, window) is decided from the `attempts` row at query
//! time, so an attempt that later fails stops counting without touching the index.

use std::collections::HashMap;

use jiff::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::{COUNTED_AT, COUNTING_STATES, Result, Store, sql};
use crate::cadence::similarity::{
    Fingerprint, at_least, at_most, gram_token, intersection_len, jaccard,
};

/// The gram count kept in a rowid: `rowid = attempt id × SIZE_SPAN + min(count, SIZE_CAP)`.
const SIZE_SPAN: i64 = 4096;
const SIZE_CAP: usize = 4095;

/// A published (or maybe published) post near a text.
#[derive(Debug, Clone, PartialEq)]
pub struct NearPost {
    pub attempt: i64,
    pub file: String,
    pub channel: String,
    pub platform: String,
    pub at: Timestamp,
    pub similarity: f64,
}

/// What a query cost (the benchmark prints it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NearStats {
    pub probes: usize,
    pub postings: usize,
    pub verified: usize,
}

/// A count-min sketch of how many indexed documents hold each token: two rows of 16-bit
/// saturating counters, 128 KiB. It never reports less than the true count.
#[derive(Debug, Clone)]
pub(super) struct Sketch {
    rows: [Vec<u16>; 2],
}

const SKETCH_BITS: u32 = 15;

impl Sketch {
    fn new() -> Sketch {
        Sketch {
            rows: [vec![0; 1 << SKETCH_BITS], vec![0; 1 << SKETCH_BITS]],
        }
    }

    fn slots(token: u32) -> [usize; 2] {
        let mask = (1u32 << SKETCH_BITS) - 1;
        [
            (token & mask) as usize,
            ((token >> 17 ^ token.rotate_left(7)) & mask) as usize,
        ]
    }

    fn add(&mut self, token: u32, n: u32) {
        for (row, i) in self.rows.iter_mut().zip(Self::slots(token)) {
            row[i] = row[i].saturating_add(n.min(u32::from(u16::MAX)) as u16);
        }
    }

    fn estimate(&self, token: u32) -> u32 {
        let [a, b] = Self::slots(token);
        u32::from(self.rows[0][a].min(self.rows[1][b]))
    }
}

/// A text's distinct gram tokens, ascending.
fn tokens(fingerprint: &Fingerprint) -> Vec<u32> {
    let mut tokens: Vec<u32> = fingerprint.grams().iter().map(|&g| gram_token(g)).collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

fn token_term(token: u32) -> String {
    format!("{token:08x}")
}

/// A short text's term: `s` and a hash of the text (the text itself may hold anything).
fn short_term(text: &str) -> String {
    // FNV-1a, 64 bits: part of the on-disk format, like `gram_token`.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("s{h:016x}")
}

/// The rowid an attempt's document gets.
fn rowid(attempt: i64, fingerprint: &Fingerprint) -> i64 {
    attempt * SIZE_SPAN + fingerprint.gram_count().min(SIZE_CAP) as i64
}

/// Adds one attempt's text to the index (inside the caller's transaction). Returns the
/// gram tokens it added, for [`Store::count_tokens`] once the transaction is committed.
pub(super) fn index_attempt(
    conn: &rusqlite::Connection,
    attempt: i64,
    normalized: &str,
) -> rusqlite::Result<Vec<u32>> {
    let fingerprint = Fingerprint::of_normalized(normalized);
    // Its terms: its gram tokens, or for a text shorter than a gram one term for the whole
    // text (such texts compare by equality); none for an empty text.
    let mut tokens = Vec::new();
    if !normalized.is_empty() {
        let terms = if fingerprint.is_short() {
            short_term(normalized)
        } else {
            tokens = self::tokens(&fingerprint);
            tokens
                .iter()
                .map(|&t| token_term(t))
                .collect::<Vec<_>>()
                .join(" ")
        };
        conn.prepare_cached("INSERT INTO history_grams (rowid, grams) VALUES (?1, ?2)")?
            .execute(params![rowid(attempt, &fingerprint), terms])?;
    }
    conn.prepare_cached(
        "INSERT INTO history_meta (key, value) VALUES ('indexed', ?1)
         ON CONFLICT (key) DO UPDATE SET value = MAX(value, ?1)",
    )?
    .execute([attempt])?;
    Ok(tokens)
}

impl Store {
    /// Indexes the attempts recorded before the index existed; returns how many. Runs once
    /// for a database from an older cadenced, then finds nothing to do.
    pub(super) fn index_history_backlog(&mut self) -> Result<usize> {
        let from = self.indexed_up_to()?;
        let tx = self.conn.transaction().map_err(|e| sql(&self.path, e))?;
        let mut n = 0;
        {
            let mut stmt = tx
                .prepare("SELECT id, normalized FROM attempts WHERE id > ?1 ORDER BY id")
                .map_err(|e| sql(&self.path, e))?;
            let rows = stmt
                .query_map([from], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(|e| sql(&self.path, e))?;
            for row in rows {
                let (id, normalized) = row.map_err(|e| sql(&self.path, e))?;
                index_attempt(&tx, id, &normalized).map_err(|e| sql(&self.path, e))?;
                n += 1;
            }
        }
        tx.commit().map_err(|e| sql(&self.path, e))?;
        if n > 0 {
            // Built from the index itself on next use.
            *self.sketch.borrow_mut() = None;
        }
        Ok(n)
    }

    /// Merges the index's segments into one when the index has grown by a tenth (and at
    /// least 100 posts) since it was last merged; returns whether it did. A look-up reads
    /// each token's list in every segment, and SQLite's own merging leaves a dozen or so:
    /// a near-duplicate check against 100,000 posts took 2.8 ms against 1.6 ms on one
    /// segment (`neardup` bench). The merge rewrites the index (about 1.4 s for 100,000
    /// posts, with the checkpoint of the WAL it fills), so the daemon runs it once at
    /// start-up, after `READY=1`, and only when it grew enough for it to pay.
    pub fn tidy_history_index(&self) -> Result<bool> {
        let indexed = self.indexed_up_to()?;
        let merged: i64 = self
            .conn
            .query_row(
                "SELECT value FROM history_meta WHERE key = 'merged'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?
            .unwrap_or(0);
        if indexed - merged < (merged / 10).max(100) {
            return Ok(false);
        }
        self.conn
            .execute_batch(&format!(
                "BEGIN;
                 INSERT INTO history_grams (history_grams) VALUES ('optimize');
                 INSERT INTO history_meta (key, value) VALUES ('merged', {indexed})
                   ON CONFLICT (key) DO UPDATE SET value = excluded.value;
                 COMMIT;"
            ))
            .map_err(|e| {
                let _ = self.conn.execute_batch("ROLLBACK");
                self.err(e)
            })?;
        // The rewrite went through the WAL (the size of the index): copied back now, not
        // by the next small commit (a dropped file's row waited 110 ms for it), and the
        // WAL file truncated. Busy readers only make it partial: not an error.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(|e| self.err(e))?;
        Ok(true)
    }

    /// Counts a committed document's tokens in the sketch (if it was built already).
    pub(super) fn count_tokens(&self, tokens: &[u32]) {
        if let Some(sketch) = self.sketch.borrow_mut().as_mut() {
            for &t in tokens {
                sketch.add(t, 1);
            }
        }
    }

    pub(super) fn indexed_up_to(&self) -> Result<i64> {
        // Cached: every near-duplicate check asks (100,000 times at a large start-up).
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM history_meta WHERE key = 'indexed'")
            .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))?
            .unwrap_or(0))
    }

    /// The sketch of token counts, built from the index's vocabulary on first use.
    fn with_sketch<T>(&self, f: impl FnOnce(&Sketch) -> T) -> Result<T> {
        if self.sketch.borrow().is_none() {
            let mut sketch = Sketch::new();
            self.conn
                .execute_batch(
                    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.history_vocab
                     USING fts5vocab(main, history_grams, row)",
                )
                .map_err(|e| self.err(e))?;
            let mut stmt = self
                .conn
                .prepare("SELECT term, doc FROM temp.history_vocab")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(|e| self.err(e))?;
            for row in rows {
                let (term, docs) = row.map_err(|e| self.err(e))?;
                if let Ok(token) = u32::from_str_radix(&term, 16) {
                    sketch.add(token, u32::try_from(docs).unwrap_or(u32::MAX));
                }
            }
            *self.sketch.borrow_mut() = Some(sketch);
        }
        Ok(f(self.sketch.borrow().as_ref().expect("just built")))
    }

    /// Posts of the log counted at or after `since` (sent, published, unsure or resolved;
    /// dry runs only of `dry_run_channels`) whose similarity with `fingerprint` is at least
    /// `threshold`, oldest first. Exactly what comparing with each such post would find.
    pub fn near_posts(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
        since: Timestamp,
        dry_run_channels: &[&str],
    ) -> Result<Vec<NearPost>> {
        Ok(self
            .near_posts_with_stats(fingerprint, threshold, since, dry_run_channels)?
            .0)
    }

    /// [`Store::near_posts`], also saying how much work it took.
    pub fn near_posts_with_stats(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
        since: Timestamp,
        dry_run_channels: &[&str],
    ) -> Result<(Vec<NearPost>, NearStats)> {
        let mut stats = NearStats::default();
        let t = threshold;
        if fingerprint.normalized().is_empty() || t.is_nan() || t > 1.0 || !self.has_attempts()? {
            return Ok((Vec::new(), stats));
        }
        // Candidate attempts with a lower bound of their gram count.
        let mut candidates: Vec<i64> = Vec::new();
        if t <= 0.0 {
            // Every post is a near-duplicate at 0: compare with each.
            candidates = self.all_indexed()?;
        } else if fingerprint.is_short() {
            self.matching(&short_term(fingerprint.normalized()), |rowid| {
                candidates.push(rowid / SIZE_SPAN)
            })?;
            stats.probes = 1;
        } else {
            let a = fingerprint.gram_count();
            // Only the probed tokens are written out as terms: against an empty or small
            // log (a first start with a large queue) most checks probe none.
            let tokens = tokens(fingerprint);
            // Two grams of the text may share a token: count in tokens, conservatively.
            let merged = a - tokens.len();
            let overlap = |b: usize| -> usize {
                at_least(t * (a + b) as f64 / (1.0 + t)).saturating_sub(merged)
            };
            let min_overlap = at_least(t * a as f64)
                .clamp(1, a)
                .saturating_sub(merged)
                .max(1);
            let probe = tokens.len() - min_overlap + 1;
            let mut known: Vec<(u32, u32)> = self.with_sketch(|s| {
                tokens
                    .iter()
                    .map(|&tok| (s.estimate(tok), tok))
                    .filter(|(n, _)| *n > 0)
                    .collect()
            })?;
            let unknown = tokens.len() - known.len();
            if probe > unknown {
                known.sort_unstable();
                let probed = probe - unknown;
                let size_lo = at_least(t * a as f64);
                let size_hi = at_most(a as f64 / t);
                let mut shared: HashMap<i64, (usize, usize)> = HashMap::new();
                for (k, &(_, token)) in known[..probed].iter().enumerate() {
                    let room = known.len() - k;
                    stats.probes += 1;
                    self.matching(&token_term(token), |rowid| {
                        stats.postings += 1;
                        let b = (rowid % SIZE_SPAN) as usize;
                        let capped = b >= SIZE_CAP;
                        if (!capped && b < size_lo) || b > size_hi {
                            return;
                        }
                        let entry = shared.entry(rowid / SIZE_SPAN);
                        match entry {
                            std::collections::hash_map::Entry::Occupied(mut e) => {
                                e.get_mut().0 += 1
                            }
                            std::collections::hash_map::Entry::Vacant(e) => {
                                if room >= overlap(b) {
                                    e.insert((1, b));
                                }
                            }
                        }
                    })?;
                }
                let unprobed = known.len() - probed;
                candidates = shared
                    .into_iter()
                    .filter(|(_, (n, b))| n + unprobed >= overlap(*b))
                    .map(|(id, _)| id)
                    .collect();
            }
        }
        // Attempts recorded after the index was last brought up to date (none, normally).
        let indexed = self.indexed_up_to()?;
        candidates.extend(self.unindexed_after(indexed)?);
        candidates.sort_unstable();
        candidates.dedup();

        let mut hits = Vec::new();
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT file, channel, platform, {COUNTED_AT}, normalized, dry_run
                 FROM attempts WHERE id = ?1 AND state IN {COUNTING_STATES}"
            ))
            .map_err(|e| self.err(e))?;
        let since_text = super::format_time(since);
        for id in candidates {
            let row = stmt
                .query_row([id], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, bool>(5)?,
                    ))
                })
                .optional()
                .map_err(|e| self.err(e))?;
            let Some((file, channel, platform, at, normalized, dry)) = row else {
                continue;
            };
            // A post without text (media only) is compared with nothing.
            if normalized.is_empty()
                || at < since_text
                || (dry && !dry_run_channels.contains(&channel.as_str()))
            {
                continue;
            }
            stats.verified += 1;
            let other = Fingerprint::of_normalized(&normalized);
            let similarity = match (fingerprint.is_short(), other.is_short()) {
                (false, false) => jaccard(
                    intersection_len(fingerprint.grams(), other.grams()),
                    fingerprint.gram_count(),
                    other.gram_count(),
                ),
                _ => crate::cadence::similarity::similarity(fingerprint, &other),
            };
            if similarity >= t {
                hits.push(NearPost {
                    attempt: id,
                    file,
                    channel,
                    platform,
                    at: self.time(at)?,
                    similarity,
                });
            }
        }
        hits.sort_by_key(|h| (h.at, h.attempt));
        Ok((hits, stats))
    }

    /// Calls `f` with the rowid of every document holding `term`.
    fn matching(&self, term: &str, mut f: impl FnMut(i64)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT rowid FROM history_grams WHERE history_grams MATCH ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([format!("\"{term}\"")], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        for row in rows {
            f(row.map_err(|e| self.err(e))?);
        }
        Ok(())
    }

    /// Whether the log holds any attempt: a first start with a large queue checks each
    /// post against an empty log, and one look-up answers for all of them.
    fn has_attempts(&self) -> Result<bool> {
        self.conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM attempts)")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| self.err(e))
    }

    fn all_indexed(&self) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM attempts")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }

    fn unindexed_after(&self, indexed: i64) -> Result<Vec<i64>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM attempts WHERE id > ?1")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([indexed], |r| r.get::<_, i64>(0))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::super::NewAttempt;
    use super::*;
    use crate::cadence::similarity::similarity;
    use crate::platforms::Platform;
    use proptest::prelude::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn record(store: &mut Store, file: &str, text: &str, started: &str, dry_run: bool) -> i64 {
        let normalized = crate::cadence::similarity::comparable(text);
        store
            .begin_attempt(&NewAttempt {
                started: t(started),
                channel: file.split('/').next().unwrap(),
                platform: Platform::named("mastodon").unwrap(),
                file,
                hash: "h",
                normalized: &normalized,
                idempotency_key: "k",
                key_started: t(started),
                dry_run,
            })
            .unwrap()
    }

    const SALE: &str = "Summer sale begins Friday with new linen shirts in every size and colour at half price by mail";

    #[test]
    fn finds_near_duplicates_in_the_window_that_still_count() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        let old = record(&mut store, "m/old.md", SALE, "2026-10-01T09:00:00Z", false);
        let near = record(
            &mut store,
            "m/near.md",
            &SALE.replace("linen", "cotton"),
            "2026-11-20T09:00:00Z",
            false,
        );
        let failed = record(
            &mut store,
            "m/failed.md",
            SALE,
            "2026-11-21T09:00:00Z",
            false,
        );
        store
            .finish_attempt(failed, t("2026-11-21T09:00:01Z"), "failed", None, None, "")
            .unwrap();
        record(&mut store, "d/dry.md", SALE, "2026-11-21T10:00:00Z", true);
        record(
            &mut store,
            "m/other.md",
            "Our free repair workshop is back on 12 December.",
            "2026-11-21T11:00:00Z",
            false,
        );
        record(&mut store, "m/ok.md", "OK!", "2026-11-21T12:00:00Z", false);

        let q = Fingerprint::of_text(SALE);
        let since = t("2026-10-15T00:00:00Z");
        let hits = store.near_posts(&q, 0.8, since, &[]).unwrap();
        assert_eq!(
            hits.iter().map(|h| h.attempt).collect::<Vec<_>>(),
            [near],
            "the old one is out of the window, the failed one does not count, the dry run belongs to a channel no longer dry"
        );
        assert_eq!(
            hits[0].similarity,
            similarity(&q, &Fingerprint::of_text(&SALE.replace("linen", "cotton")))
        );
        let with_dry = store.near_posts(&q, 0.8, since, &["d"]).unwrap();
        assert_eq!(with_dry.len(), 2);
        let all = store
            .near_posts(&q, 0.8, t("2026-01-01T00:00:00Z"), &[])
            .unwrap();
        assert_eq!(all.first().map(|h| h.attempt), Some(old), "oldest first");
        // Short texts compare by equality.
        let ok = store
            .near_posts(&Fingerprint::of_text("ok"), 0.8, since, &[])
            .unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].file, "m/ok.md");
        assert!(
            store
                .near_posts(&Fingerprint::of_text(""), 0.8, since, &[])
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn merging_the_index_changes_no_answer_and_waits_for_a_tenth_more_posts() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        let texts: Vec<String> = (0..150)
            .map(|i| format!("{SALE} number {i} of {}", i % 7))
            .collect();
        for (i, text) in texts.iter().enumerate() {
            record(
                &mut store,
                &format!("m/{i}.md"),
                text,
                "2026-11-20T09:00:00Z",
                false,
            );
        }
        let since = t("2026-11-01T00:00:00Z");
        let answers = |store: &Store| -> Vec<Vec<i64>> {
            texts
                .iter()
                .step_by(10)
                .map(|q| {
                    let q = Fingerprint::of_text(q);
                    let hits = store.near_posts(&q, 0.8, since, &[]).unwrap();
                    hits.iter().map(|h| h.attempt).collect()
                })
                .collect()
        };
        let before = answers(&store);
        assert!(before.iter().all(|a| a.len() > 1), "{before:?}");
        assert!(
            store.tidy_history_index().unwrap(),
            "150 posts, never merged"
        );
        assert_eq!(answers(&store), before);
        assert!(!store.tidy_history_index().unwrap(), "nothing new");
        // Posts recorded after a merge are found too; 99 more are not enough for another.
        for i in 150..249 {
            record(
                &mut store,
                &format!("m/{i}.md"),
                SALE,
                "2026-11-21T09:00:00Z",
                false,
            );
        }
        assert!(!store.tidy_history_index().unwrap());
        let q = Fingerprint::of_text(SALE);
        assert_eq!(
            store.near_posts(&q, 0.8, since, &[]).unwrap().len(),
            150 + 99
        );
        record(&mut store, "m/249.md", SALE, "2026-11-21T09:00:00Z", false);
        assert!(store.tidy_history_index().unwrap(), "100 more");
        assert_eq!(
            store.near_posts(&q, 0.8, since, &[]).unwrap().len(),
            150 + 100
        );
    }

    #[test]
    fn a_database_from_before_the_index_is_indexed_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path).unwrap();
        let id = record(&mut store, "m/a.md", SALE, "2026-11-20T09:00:00Z", false);
        // As an older cadenced left it: attempts, no index.
        store
            .conn
            .execute_batch("INSERT INTO history_grams (history_grams) VALUES ('delete-all'); DELETE FROM history_meta;")
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        let q = Fingerprint::of_text(SALE);
        let (hits, stats) = store
            .near_posts_with_stats(&q, 0.8, t("2026-11-01T00:00:00Z"), &[])
            .unwrap();
        assert_eq!(hits.iter().map(|h| h.attempt).collect::<Vec<_>>(), [id]);
        assert!(stats.probes > 0, "found through the index: {stats:?}");
    }

    fn sentence() -> impl Strategy<Value = String> {
        let word = prop::sample::select(vec![
            "sale", "shoes", "red", "blue", "new", "today", "冬季", "促销", "ok", "the", "friday",
            "winter", "half", "price", "@anna", "#deal",
        ]);
        prop::collection::vec(word, 0..12).prop_map(|w| w.join(" "))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// The index finds exactly what comparing with every post in the log finds.
        #[test]
        fn near_posts_equal_brute_force(
            texts in prop::collection::vec(sentence(), 1..30),
            query in sentence(),
            threshold in prop::sample::select(vec![0.0, 0.3, 0.5, 0.8, 1.0]),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = Store::open(&dir.path().join("db")).unwrap();
            let mut expected = Vec::new();
            let q = Fingerprint::of_normalized(&crate::cadence::similarity::comparable(&query));
            for (i, text) in texts.iter().enumerate() {
                let id = record(&mut store, &format!("c/{i}.md"), text, "2026-11-20T09:00:00Z", false);
                let f = Fingerprint::of_normalized(&crate::cadence::similarity::comparable(text));
                if !f.normalized().is_empty() && !q.normalized().is_empty() && similarity(&q, &f) >= threshold {
                    expected.push(id);
                }
            }
            let hits = store.near_posts(&q, threshold, t("2026-11-01T00:00:00Z"), &[]).unwrap();
            prop_assert_eq!(hits.iter().map(|h| h.attempt).collect::<Vec<_>>(), expected);
        }
    }
}
