//! Start-up's self-join in size order: every near-duplicate pair among many posts
//! inserted at once, for [`PendingIndex::insert_many_prepared_finding_each`].
//!
//! Why: looking each post up among the ones inserted before it (the streaming way, in
//! handle order) walks postings of partners of every size, larger and smaller, through
//! prefixes long enough for the smallest partner a post can have. The pairs are the same
//! whichever post of a pair finds the other, so here the posts are taken smallest first
//! (AllPairs, Bayardo, Ma and Srikant 2007, with PPJoin's position test): a post is only
//! ever looked for by posts at least its size, so it is indexed by a shorter prefix
//! (`b − α(b, b) + ℓ` grams instead of `b − ⌈t·b⌉ + ℓ`: about 0.11·b against 0.2·b at
//! 0.8), and a look-up reads only the postings of posts between `t·a` and its own size,
//! skipping the smaller ones with a search. Each pair found is then handed to the later
//! post of the two in handle order, as the streaming look-ups would have found it.
//!
//! The price is that every pair is held until all are found (the streaming way hands each
//! post's answers on as they come): past [`MAX_PAIRS`], the join stops and the caller
//! looks the posts up the streaming way, so a queue of thousands of copies of one text
//! costs time, as it always did, and not memory.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{
    DocId, Need, PARALLEL_FROM, PendingIndex, Posting, Postings, SCRATCH, SHARED_IN_PREFIX,
    Scratch, saturated, shared_at_most,
};
use crate::cadence::similarity::{Fingerprint, at_least, intersection_len, jaccard};

/// Pairs found before the join gives up for the streaming look-ups (24 bytes each).
const MAX_PAIRS: usize = if cfg!(test) { 256 } else { 1 << 21 };

/// A near-duplicate pair: the later post (by handle), the earlier one, their similarity.
pub(super) type Pair = (DocId, DocId, f64);

/// The posts of a join, smallest first, and their join prefixes' postings (whose `doc` is
/// the post's rank here, not its handle). Handles and sizes lie apart: a look-up reads
/// them for each post it meets.
struct Ranked<'a> {
    handles: Vec<DocId>,
    sizes: Vec<u32>,
    /// Each post's prefix in the index's order.
    prefixes: Vec<&'a [u32]>,
    postings: Postings,
}

impl<K: Sync> PendingIndex<K> {
    /// Every pair of the posts `ids` (inserted with `prefixes`, all the index holds) whose
    /// similarity is at least `threshold`, sorted by later post, then earlier: what
    /// [`PendingIndex::find_below`] of each would find, short posts left out (they have no
    /// prefix; their look-up is a map's). `None` where the join does not apply (see
    /// [`PendingIndex::ranked`]) or found more than [`MAX_PAIRS`] pairs.
    pub(super) fn pairs_by_size(
        &self,
        ids: &[DocId],
        prefixes: &[Vec<u32>],
        threshold: f64,
    ) -> Option<Vec<Pair>> {
        let t = self.query_threshold(threshold)?;
        let ranked = self.ranked(ids, prefixes, t)?;
        let full = AtomicBool::new(false);
        let mut pairs: Vec<Pair> = Vec::new();
        crate::parallel::map_in_order(
            ranked.handles.len(),
            PARALLEL_FROM,
            |r| {
                if full.load(Ordering::Relaxed) {
                    return Vec::new();
                }
                SCRATCH.with(|s| {
                    MET.with(|m| {
                        self.join_one(&ranked, r, t, &mut s.borrow_mut(), &mut m.borrow_mut())
                    })
                })
            },
            |r, found| {
                if full.load(Ordering::Relaxed) {
                    return; // given up: the answers still coming are dropped
                }
                let x = ranked.handles[r];
                for (y, sim) in found {
                    let y = ranked.handles[y as usize];
                    pairs.push((x.max(y), x.min(y), sim));
                }
                if pairs.len() > MAX_PAIRS {
                    full.store(true, Ordering::Relaxed);
                    pairs = Vec::new();
                }
            },
        );
        // Workers' counts went with their threads; this thread's are freed here.
        MET.with(|m| m.take());
        if full.into_inner() {
            return None;
        }
        pairs.sort_unstable_by_key(|p| (p.0, p.1));
        Some(pairs)
    }

    /// The join's posts by rank and their postings; `None` when the index holds other
    /// posts than these, has no usable threshold, or a post is too long for the table of
    /// limits by partner size and the 16-bit sizes of the postings (the streaming way
    /// handles those).
    fn ranked<'a>(&self, ids: &[DocId], prefixes: &'a [Vec<u32>], t: f64) -> Option<Ranked<'a>> {
        if ids.len() != self.len || self.threshold <= 0.0 || t <= 0.0 {
            return None;
        }
        let mut posts = Vec::with_capacity(ids.len());
        for (&d, prefix) in ids.iter().zip(prefixes) {
            if prefix.is_empty() {
                continue; // a short text
            }
            let a = *self.sizes.get(d as usize)?;
            let size = a as usize;
            let span = size - at_least(t * size as f64).max(1).min(size);
            if a >= u32::from(u16::MAX) || span >= TABLE || prefix.len() < self.probe_len(size, t) {
                return None;
            }
            posts.push((d, a, prefix.as_slice()));
        }
        posts.sort_unstable_by_key(|p| (p.1, p.0));
        let need = Need::new(t);
        let mut all = Vec::new();
        for (rank, &(_, b, prefix)) in posts.iter().enumerate() {
            let b = b as usize;
            // Only posts of `b` grams or more look for it: α is at least α(b, b).
            let (alpha, _) = need.of(b, b);
            let keep = (b + SHARED_IN_PREFIX)
                .saturating_sub(alpha)
                .min(prefix.len());
            all.extend(
                prefix[..keep]
                    .iter()
                    .enumerate()
                    .map(|(pos, &token)| Posting {
                        token,
                        doc: rank as DocId,
                        pos: saturated(pos),
                        size: saturated(b),
                    }),
            );
        }
        let mut postings = Postings::default();
        postings.absorb(all);
        Some(Ranked {
            handles: posts.iter().map(|p| p.0).collect(),
            sizes: posts.iter().map(|p| p.1).collect(),
            prefixes: posts.into_iter().map(|p| p.2).collect(),
            postings,
        })
    }

    /// The posts ranked below `r` (no larger than it) whose similarity with it is at least
    /// `t`, by rank.
    fn join_one(
        &self,
        ranked: &Ranked,
        r: usize,
        t: f64,
        scratch: &mut Scratch,
        met: &mut Met,
    ) -> Vec<(DocId, f64)> {
        let (x, a, prefix) = (
            ranked.handles[r],
            ranked.sizes[r] as usize,
            ranked.prefixes[r],
        );
        let size_lo = at_least(t * a as f64).max(1);
        // The first rank of a post that large: the smaller ones cannot be near.
        let lo = ranked.sizes[..r].partition_point(|&b| (b as usize) < size_lo) as DocId;
        if lo as usize >= r {
            return Vec::new();
        }
        let need = Need::new(t);
        let Scratch {
            table,
            ranges,
            j_limits,
            ..
        } = scratch;
        // Per partner size from `size_lo` to `a`: the probe positions that can pass, the
        // partner's positions that can, α and e (as `find_with`).
        table.clear();
        table.extend((size_lo..=a).map(|b| need.limits(a, b)));
        j_limits.clear();
        j_limits.extend(table.iter().map(|l| saturated(l.1)));
        let probe = &prefix[..self.probe_len(a, t)];
        // Where each token's postings start, first for all (independent reads).
        ranges.clear();
        ranges.extend(probe.iter().map(|&token| {
            let start = ranked.postings.run_start(token);
            [start, 0, 0]
        }));
        met.start(ranked.handles.len());
        let run = &ranked.postings.run;
        let mut passing = table.len();
        for (i, (&token, start)) in probe.iter().zip(ranges.drain(..)).enumerate() {
            while passing > 0 && i >= table[passing - 1].0 {
                passing -= 1;
            }
            if passing == 0 {
                break;
            }
            let j_limits = &j_limits[..passing];
            let from = seek(run, start[0], token, lo);
            for p in &run[from..] {
                if p.token != token || p.doc as usize >= r {
                    break;
                }
                // Ranks follow sizes: past the largest size this position can pass for,
                // so are the rest of the token's postings.
                let Some(&j) = j_limits.get(usize::from(p.size).wrapping_sub(size_lo)) else {
                    break;
                };
                if p.pos < j {
                    met.count(p.doc);
                }
            }
        }
        // The posts met by enough of the probe's postings, by rank.
        let mut candidates: Vec<DocId> = met
            .ranks
            .iter()
            .copied()
            .filter(|&y| {
                let b = ranked.sizes[y as usize] as usize;
                usize::from(met.by_rank[y as usize]) >= table[b - size_lo].3
            })
            .collect();
        candidates.sort_unstable();
        let Some(this) = self.docs[x as usize].as_ref() else {
            return Vec::new();
        };
        let grams = std::cell::OnceCell::new();
        let mut hits = Vec::new();
        for y in candidates {
            let b = ranked.sizes[y as usize] as usize;
            let alpha = table[b - size_lo].2;
            let Some(other) = self.docs[ranked.handles[y as usize] as usize].as_ref() else {
                continue;
            };
            if shared_at_most(&this.buckets, &other.buckets) < alpha {
                continue;
            }
            let mine = grams.get_or_init(|| Fingerprint::of_normalized(&this.text));
            let theirs = Fingerprint::of_normalized(&other.text);
            let s = jaccard(intersection_len(mine.grams(), theirs.grams()), a, b);
            if s >= t {
                hits.push((y, s));
            }
        }
        hits
    }
}

/// Largest span of partner sizes a post may have in the join (its table of limits).
const TABLE: usize = 4096;

thread_local! {
    static MET: std::cell::RefCell<Met> = std::cell::RefCell::default();
}

/// How many of a look-up's probe postings met each post, counted in place by rank: a
/// look-up passes about 200 postings of about 150 posts, and sorting their ranks to count
/// them was a fifth of the join (an array of 100,000 counts is 200 KB, in a core's cache).
#[derive(Debug, Default)]
struct Met {
    /// By rank; zero for every rank not in `ranks`.
    by_rank: Vec<u16>,
    /// The ranks met so far, each once.
    ranks: Vec<DocId>,
}

impl Met {
    /// Ready for a look-up among `n` posts. The last look-up's counts are cleared here,
    /// not when it ended, so one that panicked leaves nothing behind either.
    fn start(&mut self, n: usize) {
        for &r in &self.ranks {
            self.by_rank[r as usize] = 0;
        }
        self.ranks.clear();
        if self.by_rank.len() < n {
            self.by_rank.resize(n, 0);
        }
    }

    fn count(&mut self, rank: DocId) {
        let c = &mut self.by_rank[rank as usize];
        if *c == 0 {
            self.ranks.push(rank);
        }
        // A post meets each probe token once, and probes are below `u16::MAX` grams.
        *c = c.saturating_add(1);
    }
}

/// The first posting from `from` on that is not of `token` with a post below `lo`:
/// `run[from..]` starts with `token`'s postings (if any) in post order. A galloping search,
/// so skipping `k` postings reads about `2·log k` of them.
fn seek(run: &[Posting], from: usize, token: u32, lo: DocId) -> usize {
    let before = |p: &Posting| p.token == token && p.doc < lo;
    if run.get(from).is_none_or(|p| !before(p)) {
        return from;
    }
    // `run[from]` is before; find a step that is not.
    let mut last = from;
    let mut step = 1;
    loop {
        let next = from + step;
        if run.get(next).is_none_or(|p| !before(p)) {
            let end = next.min(run.len());
            return last + 1 + run[last + 1..end].partition_point(before);
        }
        last = next;
        step *= 2;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::GramOrder;
    use super::*;
    use crate::cadence::similarity::similarity;
    use proptest::prelude::*;

    /// Every pair (later, earlier, similarity) at `t` or above, comparing each with each.
    fn brute_pairs(fps: &[Fingerprint], t: f64) -> Vec<Pair> {
        let mut pairs = Vec::new();
        for (i, x) in fps.iter().enumerate() {
            for (j, y) in fps[..i].iter().enumerate() {
                let s = similarity(x, y);
                if s >= t && !x.is_short() {
                    pairs.push((i as DocId, j as DocId, s));
                }
            }
        }
        pairs
    }

    /// An index of `fps` inserted at once, and their prefixes.
    fn indexed(fps: &[Fingerprint], t: f64) -> (PendingIndex<usize>, Vec<DocId>, Vec<Vec<u32>>) {
        let mut index = PendingIndex::with_order(t, Arc::new(GramOrder::of(fps)));
        let preparer = index.preparer();
        let prepared = fps
            .iter()
            .enumerate()
            .map(|(i, f)| (i, preparer.prepare(f)));
        let (ids, prefixes) = index.insert_prepared_keeping_prefixes(prepared, |p| p);
        (index, ids, prefixes)
    }

    /// Texts of 8 to 60 words a few edits away from one of three base texts, and short
    /// ones: sizes spread widely (the join's window by size matters), many pairs near any
    /// threshold.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => super::super::tests::edited_of(8..60),
            1 => prop::sample::select(vec!["ok", "OK!", "", "sale", "a b"]).prop_map(String::from),
        ]
    }

    proptest! {
        /// The pairs found smallest first are exactly those of comparing each with each.
        #[test]
        fn pairs_by_size_equal_comparing_each_with_each(
            texts in prop::collection::vec(text(), 1..50),
            t in prop::sample::select(vec![0.3, 0.5, 0.7, 0.8, 0.9, 1.0]),
        ) {
            let fps: Vec<Fingerprint> = texts.iter().map(|t| Fingerprint::of_text(t)).collect();
            let (index, ids, prefixes) = indexed(&fps, t);
            let expected = brute_pairs(&fps, t);
            prop_assume!(expected.len() <= MAX_PAIRS);
            let pairs = index.pairs_by_size(&ids, &prefixes, t);
            prop_assert_eq!(pairs, Some(expected));
        }
    }

    #[test]
    fn more_pairs_than_the_join_keeps_are_found_the_streaming_way() {
        // 20 copies of one text and 20 of another: 2 · 190 pairs, over the test's cap.
        let fps: Vec<Fingerprint> = (0..40)
            .map(|i| {
                let base = if i % 2 == 0 {
                    "summer sale on linen shirts"
                } else {
                    "冬季促销 全场八折"
                };
                Fingerprint::of_text(&format!("{base} today"))
            })
            .collect();
        let (index, ids, prefixes) = indexed(&fps, 0.8);
        assert_eq!(index.pairs_by_size(&ids, &prefixes, 0.8), None);
        let mut fresh = PendingIndex::with_order(0.8, Arc::clone(&index.order));
        let preparer = fresh.preparer();
        let prepared = fps
            .iter()
            .enumerate()
            .map(|(i, f)| (i, preparer.prepare(f)))
            .collect();
        let mut found = 0;
        fresh.insert_many_prepared_finding_each(prepared, 0.8, |_, d, hits| {
            assert_eq!(
                hits.len(),
                d as usize / 2,
                "every earlier copy of the same text"
            );
            found += hits.len();
        });
        assert_eq!(found, 2 * 190);
    }

    #[test]
    fn counts_left_by_a_look_up_that_stopped_halfway_are_cleared_by_the_next() {
        let mut met = Met::default();
        met.start(10);
        met.count(3);
        met.count(3);
        met.count(7);
        assert_eq!((met.by_rank[3], met.by_rank[7]), (2, 1));
        // No end of the look-up (a panic): the next one, in a smaller join, starts clean.
        met.start(5);
        assert!(met.by_rank.iter().all(|&c| c == 0));
        assert!(met.ranks.is_empty());
        met.count(4);
        assert_eq!(met.ranks, [4]);
    }

    #[test]
    fn seek_skips_a_tokens_postings_below_a_post_and_stops_at_the_next_token() {
        let p = |token, doc| Posting {
            token,
            doc,
            pos: 0,
            size: 1,
        };
        let run: Vec<Posting> = (0..100)
            .map(|d| p(7, d))
            .chain([p(9, 0), p(9, 5)])
            .collect();
        for lo in [0, 1, 2, 3, 50, 63, 64, 65, 99, 100, 1000] {
            assert_eq!(seek(&run, 0, 7, lo), (lo as usize).min(100), "lo {lo}");
        }
        assert_eq!(seek(&run, 100, 9, 3), 101);
        assert_eq!(seek(&run, 102, 9, 3), 102);
        assert_eq!(seek(&run, 100, 8, 3), 100, "another token: nothing to skip");
    }
}
