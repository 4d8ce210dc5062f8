//! The log's posts as a near-duplicate index on disk, so rules 5 and 6 can compare a new
//! post with 100,000 published ones without holding their texts (or their grams) in memory.
//!
//! An inverted index in one table, `history_lists`: for each gram token
//! (`similarity::gram_token`) the list of the attempts whose text holds it, in blocks of
//! about 150 keys, each a row keyed by (token, first key) with its keys delta-encoded in a
//! blob of at most a few hundred bytes. A key is the attempt id times 4096 plus the text's
//! gram count (capped at 4095), so the size filter needs no second look-up. Each attempt's
//! normalized text is added when the attempt is recorded, in the same transaction
//! (`begin_attempt`), to the last block of each of its lists.
//!
//! Why not SQLite's own full-text index (FTS5, which this replaced): a query reads each
//! list a block at a time (one row, decoded here) instead of one row per posting through the
//! SQL layer, and there are no segments to merge: a check against 100,000 posts took 1.1 ms
//! at p50 on a freshly merged FTS5 index (2.2 ms as its own merging left it, and the merge
//! took 0.9–1.4 s at start-up), 0.45–0.5 ms here (`neardup` bench). The price is paid when
//! publishing: an attempt rewrites the last block of each of its lists, about one b-tree page
//! per gram of its text (1.5 MB written with the checkpoints, 3 ms, against 0.1 MB and 0.3 ms
//! for FTS5), a few times a day per channel.
//!
//! A query is the same exact search as `similarity::Index::find`: it reads the lists of only
//! the rarest of the text's tokens (enough that every near-duplicate must share one, and a
//! few more), keeps the attempts whose size and shared count can still reach the threshold,
//! and decides with the exact Jaccard of the attempt's stored text. How rare a token is
//! comes from a small count sketch in memory (never below the true count, so a token it has
//! never seen is in no list and costs nothing to "probe"); it is built from the lists on
//! first use and kept up to date by `begin_attempt`.
//!
//! Attempts recorded before the lists existed (an older database) are indexed once when
//! the database is opened for writing; `history_meta` holds the highest attempt id indexed,
//! and a query compares the few attempts above it (none, normally) one by one. Which
//! attempts count (state, dry run, window) is decided from the `attempts` row at query time,
//! so an attempt that later fails stops counting without touching the index. A list only
//! names candidates, each checked against its row: a damaged block (a disk error, a hand
//! edit) can hide posts from the check or name wrong ones, never panic.

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

/// Lists read beyond the fewest an exact search needs. Against 100,000 posts (`neardup`
/// bench, p50 / p99 per check, posts verified): 0 more 0.97 / 2.68 ms, 50.5; 2 more 0.63 /
/// 1.36 ms, 11.4; 4 more 0.62 / 1.21 ms, 3.4; 6 more 0.53 / 0.93 ms, 0.5; 10 more 0.55 /
/// 0.93 ms, 0.0; 20 more 0.71 / 1.28 ms, 0.0.
const EXTRA_PROBES: usize = 6;

/// A list's block takes keys until its blob reaches this many bytes (about 150 keys): the
/// row stays inside its b-tree page (no overflow page to read), and appending rewrites a
/// small row.
const BLOCK_BYTES: usize = 448;

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

/// A post of the log that counts, with its normalized text ([`Store::each_counted`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CountedPost {
    pub attempt: i64,
    pub file: String,
    pub channel: String,
    pub platform: String,
    pub at: Timestamp,
    pub normalized: String,
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

/// A short text's list: a hash of the text (part of the on-disk format, like `gram_token`),
/// negative so it never meets a gram token's list.
fn short_list(text: &str) -> i64 {
    // FNV-1a, 64 bits.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h | 1 << 63) as i64
}

/// The key a post has in the lists: its attempt id and its gram count.
fn doc_key(attempt: i64, fingerprint: &Fingerprint) -> i64 {
    attempt * SIZE_SPAN + fingerprint.gram_count().min(SIZE_CAP) as i64
}

/// The lists a post is in: its gram tokens, or for a text shorter than a gram one list for
/// the whole text (such texts compare by equality); none for an empty text. Returns them
/// with the gram tokens alone (for the sketch).
fn lists_of(normalized: &str) -> (Fingerprint, Vec<i64>, Vec<u32>) {
    let fingerprint = Fingerprint::of_normalized(normalized);
    if normalized.is_empty() {
        return (fingerprint, Vec::new(), Vec::new());
    }
    if fingerprint.is_short() {
        let list = short_list(normalized);
        return (fingerprint, vec![list], Vec::new());
    }
    let tokens = tokens(&fingerprint);
    let lists = tokens.iter().map(|&t| i64::from(t)).collect();
    (fingerprint, lists, tokens)
}

/// A block's keys after its first, each as the zigzag varint of its difference to the one
/// before (keys arrive in attempt order, so differences are small and positive; any order
/// still decodes exactly).
fn push_key(docs: &mut Vec<u8>, previous: i64, key: i64) {
    let d = key.wrapping_sub(previous);
    let mut z = ((d << 1) ^ (d >> 63)) as u64;
    while z >= 0x80 {
        docs.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    docs.push(z as u8);
}

/// Calls `f` with each key of a block. A damaged blob (a varint cut short, or too long)
/// ends the block: keys only name candidates, which are checked against their rows.
fn for_each_key(first: i64, docs: &[u8], mut f: impl FnMut(i64)) {
    f(first);
    let mut key = first;
    let mut z: u64 = 0;
    let mut shift = 0;
    for &b in docs {
        if shift > 63 {
            return;
        }
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 != 0 {
            shift += 7;
            continue;
        }
        let d = (z >> 1) as i64 ^ -((z & 1) as i64);
        key = key.wrapping_add(d);
        f(key);
        z = 0;
        shift = 0;
    }
}

/// One block of a list, as read or being filled.
struct Block {
    first: i64,
    last: i64,
    n: i64,
    /// The keys after the first ([`push_key`]).
    docs: Vec<u8>,
    /// Not in the table yet.
    new: bool,
    changed: bool,
}

impl Block {
    fn starting(key: i64) -> Block {
        Block {
            first: key,
            last: key,
            n: 1,
            docs: Vec::new(),
            new: true,
            changed: true,
        }
    }

    fn write(&self, conn: &rusqlite::Connection, list: i64) -> rusqlite::Result<()> {
        let sql = if self.new {
            "INSERT INTO history_lists (list, first, last, n, docs) VALUES (?1, ?2, ?3, ?4, ?5)"
        } else if self.changed {
            "UPDATE history_lists SET last = ?3, n = ?4, docs = ?5 WHERE list = ?1 AND first = ?2"
        } else {
            return Ok(());
        };
        conn.prepare_cached(sql)?
            .execute(params![list, self.first, self.last, self.n, self.docs])?;
        Ok(())
    }
}

/// Appends keys to a list (inside the caller's transaction): to its last block while that
/// stays under [`BLOCK_BYTES`], then in new blocks.
fn append(conn: &rusqlite::Connection, list: i64, keys: &[i64]) -> rusqlite::Result<()> {
    let Some((&head, rest)) = keys.split_first() else {
        return Ok(());
    };
    let last_block = conn
        .prepare_cached(
            "SELECT first, last, n, docs FROM history_lists WHERE list = ?1
             ORDER BY first DESC LIMIT 1",
        )?
        .query_row([list], |r| {
            Ok(Block {
                first: r.get(0)?,
                last: r.get(1)?,
                n: r.get(2)?,
                docs: r.get(3)?,
                new: false,
                changed: false,
            })
        })
        .optional()?;
    let (mut block, rest) = match last_block {
        Some(block) => (block, keys),
        None => (Block::starting(head), rest),
    };
    for &key in rest {
        if block.docs.len() >= BLOCK_BYTES {
            block.write(conn, list)?;
            block = Block::starting(key);
            continue;
        }
        push_key(&mut block.docs, block.last, key);
        block.last = key;
        block.n += 1;
        block.changed = true;
    }
    block.write(conn, list)
}

/// Adds attempts' texts to the index (inside the caller's transaction), each list written
/// once for all of them. Returns the gram tokens added, for [`Store::count_tokens`] once
/// the transaction is committed.
pub(super) fn index_attempts<'a>(
    conn: &rusqlite::Connection,
    attempts: impl IntoIterator<Item = (i64, &'a str)>,
) -> rusqlite::Result<Vec<u32>> {
    let mut lists: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut added = Vec::new();
    let mut highest = None;
    for (attempt, normalized) in attempts {
        let (fingerprint, of, tokens) = lists_of(normalized);
        let key = doc_key(attempt, &fingerprint);
        for list in of {
            lists.entry(list).or_default().push(key);
        }
        added.extend(tokens);
        highest = highest.max(Some(attempt));
    }
    // In list order: neighbouring rows of the table, written page by page.
    let mut lists: Vec<(i64, Vec<i64>)> = lists.into_iter().collect();
    lists.sort_unstable_by_key(|(list, _)| *list);
    for (list, keys) in &lists {
        append(conn, *list, keys)?;
    }
    if let Some(highest) = highest {
        conn.prepare_cached(
            "INSERT INTO history_meta (key, value) VALUES ('indexed', ?1)
             ON CONFLICT (key) DO UPDATE SET value = MAX(value, ?1)",
        )?
        .execute([highest])?;
    }
    Ok(added)
}

impl Store {
    /// Indexes the attempts recorded before the index existed; returns how many. Runs once
    /// for a database from an older cadenced, then finds nothing to do. In chunks, so the
    /// lists being gathered stay small whatever the size of the log.
    pub(super) fn index_history_backlog(&mut self) -> Result<usize> {
        const CHUNK: usize = 4096;
        let from = self.indexed_up_to()?;
        let tx = self.conn.transaction().map_err(|e| sql(&self.path, e))?;
        let mut n = 0;
        {
            if from == 0 {
                // Nothing indexed: no list may hold a key already (a key twice would only
                // cost time, but a block could not be written twice).
                tx.execute("DELETE FROM history_lists", [])
                    .map_err(|e| sql(&self.path, e))?;
            }
            let mut stmt = tx
                .prepare("SELECT id, normalized FROM attempts WHERE id > ?1 ORDER BY id")
                .map_err(|e| sql(&self.path, e))?;
            let mut rows = stmt.query([from]).map_err(|e| sql(&self.path, e))?;
            let mut chunk: Vec<(i64, String)> = Vec::with_capacity(CHUNK);
            loop {
                let row = rows.next().map_err(|e| sql(&self.path, e))?;
                if let Some(row) = row {
                    chunk.push((
                        row.get(0).map_err(|e| sql(&self.path, e))?,
                        row.get(1).map_err(|e| sql(&self.path, e))?,
                    ));
                }
                if chunk.len() == CHUNK || (row.is_none() && !chunk.is_empty()) {
                    index_attempts(&tx, chunk.iter().map(|(id, t)| (*id, t.as_str())))
                        .map_err(|e| sql(&self.path, e))?;
                    n += chunk.len();
                    chunk.clear();
                    crate::progress::advanced();
                }
                if row.is_none() {
                    break;
                }
            }
        }
        tx.commit().map_err(|e| sql(&self.path, e))?;
        if n > 0 {
            // Built from the index itself on next use.
            *self.sketch.borrow_mut() = None;
        }
        Ok(n)
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

    /// A copy of the sketch of token counts (built first if need be), for a reader, and
    /// the last attempt it counts.
    pub(super) fn sketch_copy(&self) -> Result<(Sketch, i64)> {
        let sketch = self.with_sketch(Sketch::clone)?;
        Ok((sketch, self.indexed_up_to()?))
    }

    /// The sketch of token counts, built from the lists on first use.
    fn with_sketch<T>(&self, f: impl FnOnce(&Sketch) -> T) -> Result<T> {
        if self.sketch.borrow().is_none() {
            let mut sketch = Sketch::new();
            let mut stmt = self
                .conn
                .prepare("SELECT list, sum(n) FROM history_lists WHERE list >= 0 GROUP BY list")
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
                .map_err(|e| self.err(e))?;
            for row in rows {
                let (list, docs) = row.map_err(|e| self.err(e))?;
                if let Ok(token) = u32::try_from(list) {
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
            self.matching(short_list(fingerprint.normalized()), |key| {
                candidates.push(key / SIZE_SPAN)
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
            // The fewest lists that keep the search exact, and a few more: each list more
            // tightens the count filter for every post it does not name, so fewer posts
            // reach the exact check (a row read and the post's grams made).
            let probe = (tokens.len() - min_overlap + 1 + EXTRA_PROBES).min(tokens.len());
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
                // A fast hash: thousands of keys a check, none chosen by an attacker (they
                // are the log's own attempt ids).
                let mut shared: foldhash::HashMap<i64, (usize, usize)> = Default::default();
                for (k, &(_, token)) in known[..probed].iter().enumerate() {
                    let room = known.len() - k;
                    stats.probes += 1;
                    self.matching(i64::from(token), |rowid| {
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
        let counted = self.sketch_upto.map_or(indexed, |upto| upto.min(indexed));
        candidates.extend(self.unindexed_after(counted)?);
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

    /// About how many attempts count at or after `since` (those started since, from an
    /// index: the few published ones that started before and finished after are not
    /// counted), to choose between one look-up per post and one pass over them all.
    pub fn counted_since_estimate(&self, since: Timestamp) -> Result<usize> {
        self.conn
            .prepare_cached("SELECT count(*) FROM attempts WHERE started >= ?1")
            .and_then(|mut s| s.query_row([super::format_time(since)], |r| r.get::<_, i64>(0)))
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(|e| self.err(e))
    }

    /// Every post [`Store::near_posts`] compares a text with at `since`: the attempts that
    /// count at or after it (sent, published, unsure or resolved; dry runs only of
    /// `dry_run_channels`) and have a text, in batches of up to `batch` in attempt order,
    /// so the texts in memory stay bounded however long the log. One pass over the table.
    pub fn each_counted(
        &self,
        since: Timestamp,
        dry_run_channels: &[&str],
        batch: usize,
        mut f: impl FnMut(Vec<CountedPost>),
    ) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT id, file, channel, platform, {COUNTED_AT}, normalized, dry_run
                 FROM attempts
                 WHERE state IN {COUNTING_STATES} AND {COUNTED_AT} >= ?1 AND normalized != ''
                 ORDER BY id"
            ))
            .map_err(|e| self.err(e))?;
        let mut rows = stmt
            .query([super::format_time(since)])
            .map_err(|e| self.err(e))?;
        let mut posts = Vec::with_capacity(batch.max(1));
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let get = |i| row.get::<_, String>(i).map_err(|e| self.err(e));
            let dry: bool = row.get(6).map_err(|e| self.err(e))?;
            let channel = get(2)?;
            if dry && !dry_run_channels.contains(&channel.as_str()) {
                continue;
            }
            posts.push(CountedPost {
                attempt: row.get(0).map_err(|e| self.err(e))?,
                file: get(1)?,
                channel,
                platform: get(3)?,
                at: self.time(get(4)?)?,
                normalized: get(5)?,
            });
            if posts.len() >= batch.max(1) {
                f(std::mem::replace(&mut posts, Vec::with_capacity(batch)));
            }
        }
        if !posts.is_empty() {
            f(posts);
        }
        Ok(())
    }

    /// Calls `f` with the key of every post in `list`.
    fn matching(&self, list: i64, mut f: impl FnMut(i64)) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT first, docs FROM history_lists WHERE list = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows = stmt.query([list]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let first: i64 = row.get(0).map_err(|e| self.err(e))?;
            let docs = row.get_ref(1).map_err(|e| self.err(e))?;
            // Read in place: no copy of the blob.
            let docs = docs.as_blob().unwrap_or_default();
            for_each_key(first, docs, &mut f);
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

    /// An attempt that failed (it never counts).
    fn record_failed(store: &mut Store, file: &str, text: &str, started: &str) -> i64 {
        let id = record(store, file, text, started, false);
        let finished = t(started) + jiff::SignedDuration::from_secs(1);
        store
            .finish_attempt(id, finished, "failed", None, None, "")
            .unwrap();
        id
    }

    const SALE: &str = "Summer sale begins Friday with new linen shirts in every size and colour at half price by mail";

    #[test]
    fn a_reader_finds_what_its_store_finds_and_the_posts_recorded_after_it_was_made() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        record(&mut store, "m/a.md", SALE, "2026-11-20T09:00:00Z", false);
        let since = t("2026-11-01T00:00:00Z");
        let sale = Fingerprint::of_text(SALE);
        let reader = store.reader().unwrap();
        let found = store.near_posts(&sale, 0.8, since, &[]).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(reader.near_posts(&sale, 0.8, since, &[]).unwrap(), found);

        // Tokens its copy of the sketch never counted: still found.
        const REPAIR: &str =
            "Our free repair workshop is back on 12 December, bring your broken lamps";
        let later = record(&mut store, "m/b.md", REPAIR, "2026-11-21T09:00:00Z", false);
        let repair = Fingerprint::of_text(REPAIR);
        let found = reader.near_posts(&repair, 0.8, since, &[]).unwrap();
        assert_eq!(found.iter().map(|p| p.attempt).collect::<Vec<_>>(), [later]);
        assert_eq!(found, store.near_posts(&repair, 0.8, since, &[]).unwrap());

        // Only for reading.
        assert!(reader.conn.execute("DELETE FROM attempts", []).is_err());
    }

    /// The posts handed out for a pass over the log are the ones a look-up compares with:
    /// counted in the window, not failed, dry runs only of channels still dry, with a text;
    /// in batches, in attempt order.
    #[test]
    fn each_counted_hands_out_the_posts_a_look_up_compares_with() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        record(&mut store, "m/old.md", SALE, "2026-10-01T09:00:00Z", false);
        let near = record(&mut store, "m/near.md", SALE, "2026-11-20T09:00:00Z", false);
        record_failed(&mut store, "m/failed.md", SALE, "2026-11-21T09:00:00Z");
        let dry = record(&mut store, "d/dry.md", SALE, "2026-11-21T10:00:00Z", true);
        record(&mut store, "m/media.md", "", "2026-11-21T10:30:00Z", false);
        let ok = record(&mut store, "m/ok.md", "OK!", "2026-11-21T12:00:00Z", false);
        let since = t("2026-10-15T00:00:00Z");
        let counted = |dry_run: &[&str]| {
            let mut batches = Vec::new();
            store
                .each_counted(since, dry_run, 2, |b| {
                    batches.push(b.iter().map(|p| p.attempt).collect::<Vec<_>>())
                })
                .unwrap();
            batches
        };
        assert_eq!(counted(&[]), [vec![near, ok]]);
        assert_eq!(counted(&["d"]), [vec![near, dry], vec![ok]]);
        let mut texts = Vec::new();
        store
            .each_counted(since, &[], 10, |b| texts.extend(b))
            .unwrap();
        assert_eq!(
            texts[0].normalized,
            crate::cadence::similarity::comparable(SALE)
        );
        assert_eq!(
            (
                texts[0].file.as_str(),
                texts[0].channel.as_str(),
                texts[0].at
            ),
            ("m/near.md", "m", t("2026-11-20T09:00:00Z"))
        );
        // The estimate counts by start time, whatever the state.
        assert_eq!(store.counted_since_estimate(since).unwrap(), 5);
    }

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
        record_failed(&mut store, "m/failed.md", SALE, "2026-11-21T09:00:00Z");
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
    fn a_list_longer_than_a_block_is_read_in_every_block() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        // One at a time (a slot's post each), then a batch (many channels due at once),
        // then one more: the common grams' lists grow over several blocks.
        for i in 0..250 {
            record(
                &mut store,
                &format!("m/{i}.md"),
                &format!("{SALE} number {i}"),
                "2026-11-20T09:00:00Z",
                false,
            );
        }
        let files: Vec<String> = (250..400).map(|i| format!("m/{i}.md")).collect();
        let texts: Vec<String> = (250..400)
            .map(|i| crate::cadence::similarity::comparable(&format!("{SALE} number {i}")))
            .collect();
        let batch: Vec<NewAttempt<'_>> = files
            .iter()
            .zip(&texts)
            .map(|(file, normalized)| NewAttempt {
                started: t("2026-11-20T10:00:00Z"),
                channel: "m",
                platform: Platform::named("mastodon").unwrap(),
                file,
                hash: "h",
                normalized,
                idempotency_key: "k",
                key_started: t("2026-11-20T10:00:00Z"),
                dry_run: false,
            })
            .collect();
        store.begin_attempts(&batch).unwrap();
        let last = record(&mut store, "m/last.md", SALE, "2026-11-21T09:00:00Z", false);
        let (lists, blocks): (i64, i64) = store
            .conn
            .query_row(
                "SELECT count(DISTINCT list), count(*) FROM history_lists",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert!(
            blocks > lists,
            "some list spans blocks: {blocks} blocks, {lists} lists"
        );
        let q = Fingerprint::of_text(SALE);
        let hits = store
            .near_posts(&q, 0.8, t("2026-11-01T00:00:00Z"), &[])
            .unwrap();
        assert_eq!(hits.len(), 401);
        assert_eq!(hits.last().map(|h| h.attempt), Some(last));
    }

    #[test]
    fn a_database_with_the_sqlite_full_text_index_is_indexed_again_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        // Schema 5, as the previous cadenced left it: the index in an FTS5 table.
        let conn = rusqlite::Connection::open(&path).unwrap();
        for migration in &super::super::MIGRATIONS[..5] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch(&format!(
            "PRAGMA user_version = 5;
             INSERT INTO attempts (channel, platform, file, hash, normalized, started, state,
                                   idempotency_key, dry_run)
             VALUES ('m', 'mastodon', 'm/a.md', 'h', '{}', '2026-11-20T09:00:00.000Z',
                     'published', 'k', 0);
             INSERT INTO history_meta (key, value) VALUES ('indexed', 1), ('merged', 1);",
            crate::cadence::similarity::comparable(SALE)
        ))
        .unwrap();
        drop(conn);
        let store = Store::open(&path).unwrap();
        let (hits, stats) = store
            .near_posts_with_stats(
                &Fingerprint::of_text(SALE),
                0.8,
                t("2026-11-01T00:00:00Z"),
                &[],
            )
            .unwrap();
        assert_eq!(hits.len(), 1);
        assert!(
            stats.probes > 0 && stats.postings > 0,
            "found through the lists: {stats:?}"
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
            .execute_batch("DELETE FROM history_lists; DELETE FROM history_meta;")
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
        /// Keys come back as they went in, in any order and of any size.
        #[test]
        fn a_block_gives_back_its_keys(keys in prop::collection::vec(any::<i64>(), 1..300)) {
            let mut docs = Vec::new();
            for pair in keys.windows(2) {
                push_key(&mut docs, pair[0], pair[1]);
            }
            let mut back = Vec::new();
            for_each_key(keys[0], &docs, |k| back.push(k));
            prop_assert_eq!(back, keys);
        }

        /// A damaged block (any bytes at all) names some keys and never panics.
        #[test]
        fn a_damaged_block_does_not_panic(first in any::<i64>(), docs in prop::collection::vec(any::<u8>(), 0..64)) {
            let mut n = 0;
            for_each_key(first, &docs, |_| n += 1);
            prop_assert!(n <= docs.len() + 1);
        }
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
