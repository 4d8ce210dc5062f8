//! Near-duplicates among the pending posts, updated one post at a time.
//!
//! Why it exists: the daemon learns about the queue a file at a time, and rebuilding an
//! index of every pending post for each file that arrives costs time in proportion to the
//! queue. [`similarity::Index`](super::similarity::Index) is built once and never changes;
//! this one takes inserts and removals, and keeps little per post, so memory follows the
//! number of pending posts by a few hundred bytes each.
//!
//! Exact, like everything in `similarity`: prefix filtering (the AllPairs join). Under one
//! fixed total order of grams, two texts whose Jaccard similarity is at least `t` share a
//! gram among the first `n − ⌈t·n⌉ + 1` grams of each (`n` the text's gram count), so each
//! post is indexed by the tokens of that prefix only (about a fifth of its grams at 0.8), a
//! query probes its own prefix, and every candidate found is checked with the same exact
//! Jaccard [`similarity`](super::similarity::similarity) computes. The prefix length
//! depends on the lowest threshold the index is made for, so a query may ask for that
//! threshold or a higher one.
//!
//! The order decides the cost, never the result: rarest grams first ([`GramOrder`], a
//! count sketch of how many posts held each gram when the order was made), then by token
//! (a hash of the gram), then by the gram. With common grams first, every post that says
//! "the " would be a candidate of every other; with rare grams first, a prefix is a post's
//! most distinctive grams and few posts share one. The order is frozen while posts are
//! indexed with it; [`PendingIndex::reorder`] re-indexes every post under a new one.
//!
//! What it keeps per post: the normalized text (to verify candidates) and one 8-byte posting
//! per prefix gram. What it must not do: approximate, or do IO.

use std::collections::HashMap;

use std::sync::Arc;

use super::similarity::{Fingerprint, at_least, at_most, gram_token, intersection_len, jaccard};

/// A fixed order of grams, rarest first: a count-min sketch (two rows of 16-bit saturating
/// counters, 256 KiB) of how many texts held each gram when it was made. A gram it never
/// saw comes first. Only the cost of a query depends on it (see the module documentation).
#[derive(Debug, Clone)]
pub struct GramOrder {
    rows: Option<Box<[[u16; 2]]>>,
    /// How many texts it was made from.
    texts: usize,
}

const ORDER_BITS: u32 = 16;

impl Default for GramOrder {
    /// No counts: grams in token order.
    fn default() -> Self {
        GramOrder {
            rows: None,
            texts: 0,
        }
    }
}

impl GramOrder {
    /// Counts the distinct grams of each text (given one at a time: a first listing of
    /// 100,000 posts does not hold all their grams at once).
    pub fn of<F: std::borrow::Borrow<Fingerprint>>(
        texts: impl IntoIterator<Item = F>,
    ) -> GramOrder {
        let mut rows = vec![[0u16; 2]; 1 << ORDER_BITS].into_boxed_slice();
        let mut count = 0;
        for fp in texts {
            count += 1;
            for &g in fp.borrow().grams() {
                let [a, b] = Self::slots(gram_token(g));
                rows[a][0] = rows[a][0].saturating_add(1);
                rows[b][1] = rows[b][1].saturating_add(1);
            }
        }
        GramOrder {
            rows: Some(rows),
            texts: count,
        }
    }

    /// How many texts the order was made from (0 for no order).
    pub fn texts(&self) -> usize {
        self.texts
    }

    fn slots(token: u32) -> [usize; 2] {
        let mask = (1u32 << ORDER_BITS) - 1;
        [
            (token & mask) as usize,
            ((token >> 16 ^ token.rotate_left(11)) & mask) as usize,
        ]
    }

    /// How many texts held `token`'s gram, at most (the order's first key).
    fn count(&self, token: u32) -> u16 {
        match &self.rows {
            None => 0,
            Some(rows) => {
                let [a, b] = Self::slots(token);
                rows[a][0].min(rows[b][1])
            }
        }
    }
}

/// A post's handle in the index, valid until it is removed (then reused).
pub type DocId = u32;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct PendingIndex<K> {
    threshold: f64,
    order: Arc<GramOrder>,
    docs: Vec<Option<Doc<K>>>,
    free: Vec<DocId>,
    postings: Postings,
    /// Texts shorter than a gram, by text: they compare by equality.
    short: HashMap<Box<str>, Vec<DocId>>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Doc<K> {
    key: K,
    text: Box<str>,
    grams: u32,
    /// How many of its grams fall in each of [`BUCKETS`] buckets (by token).
    buckets: Buckets,
}

/// Grams counted by bucket: two texts share at most `Σ min(a[k], b[k])` grams (a shared
/// gram falls in the same bucket for both), a bound that costs 128 bytes a post and a
/// short loop, and rules out almost every candidate that is not a near-duplicate before
/// its grams are computed.
type Buckets = [u8; BUCKETS];
const BUCKETS: usize = 128;

fn buckets(fingerprint: &Fingerprint) -> Buckets {
    let mut b = [0u8; BUCKETS];
    for &g in fingerprint.grams() {
        let k = gram_token(g) as usize % BUCKETS;
        b[k] = b[k].saturating_add(1);
    }
    b
}

/// At most how many grams two texts with these buckets can share. A saturated count (255)
/// stands for "255 or more": the other text's count still bounds the bucket, unless both
/// are saturated. Written so the loop vectorizes (it runs for every candidate).
fn shared_at_most(a: &Buckets, b: &Buckets) -> usize {
    let mut sum = 0u32;
    let mut both_saturated = false;
    for (&x, &y) in a.iter().zip(b) {
        let m = x.min(y);
        sum += u32::from(m);
        both_saturated |= m == u8::MAX;
    }
    if both_saturated {
        usize::MAX
    } else {
        sum as usize
    }
}

impl<K> PendingIndex<K> {
    /// An index for queries with thresholds of `threshold` or more. A threshold at or below
    /// 0 (every pair a near-duplicate) makes every post a candidate of every query.
    pub fn new(threshold: f64) -> Self {
        Self::with_order(threshold, Arc::default())
    }

    /// An index whose prefixes follow `order`.
    pub fn with_order(threshold: f64, order: Arc<GramOrder>) -> Self {
        PendingIndex {
            threshold,
            order,
            docs: Vec::new(),
            free: Vec::new(),
            postings: Postings::default(),
            short: HashMap::new(),
            len: 0,
        }
    }

    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn key(&self, doc: DocId) -> Option<&K> {
        self.docs.get(doc as usize)?.as_ref().map(|d| &d.key)
    }

    /// The normalized text a post was indexed with.
    pub fn text(&self, doc: DocId) -> Option<&str> {
        self.docs.get(doc as usize)?.as_ref().map(|d| &*d.text)
    }

    pub fn insert(&mut self, key: K, fingerprint: &Fingerprint) -> DocId {
        let doc = Doc {
            key,
            text: fingerprint.normalized().into(),
            grams: fingerprint.gram_count() as u32,
            buckets: buckets(fingerprint),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.docs[id as usize] = Some(doc);
                id
            }
            None => {
                self.docs.push(Some(doc));
                DocId::try_from(self.docs.len() - 1).expect("fewer than 2^32 pending posts")
            }
        };
        if fingerprint.is_short() {
            self.short
                .entry(fingerprint.normalized().into())
                .or_default()
                .push(id);
        } else {
            for token in self.prefix(fingerprint) {
                self.postings.add(token, id);
            }
        }
        self.len += 1;
        id
    }

    /// The order the prefixes follow.
    pub fn order(&self) -> &GramOrder {
        &self.order
    }

    /// Indexes every post again under `order` (their handles stay).
    pub fn reorder(&mut self, order: Arc<GramOrder>) {
        self.order = order;
        self.postings = Postings::default();
        let mut pairs: Vec<(u32, DocId)> = Vec::new();
        for (i, doc) in self.docs.iter().enumerate() {
            let Some(doc) = doc else { continue };
            let fingerprint = Fingerprint::of_normalized(&doc.text);
            if !fingerprint.is_short() {
                for token in self.prefix(&fingerprint) {
                    pairs.push((token, i as DocId));
                }
            }
        }
        pairs.sort_unstable();
        self.postings.run = pairs;
    }

    /// Removes a post; `None` if `doc` is not in the index.
    pub fn remove(&mut self, doc: DocId) -> Option<K> {
        let entry = self.docs.get_mut(doc as usize)?.take()?;
        let fingerprint = Fingerprint::of_normalized(&entry.text);
        if fingerprint.is_short() {
            if let Some(list) = self.short.get_mut(&*entry.text) {
                list.retain(|&d| d != doc);
                if list.is_empty() {
                    self.short.remove(&*entry.text);
                }
            }
        } else {
            for token in self.prefix(&fingerprint) {
                self.postings.remove(token, doc);
            }
        }
        self.free.push(doc);
        self.len -= 1;
        Some(entry.key)
    }

    /// Every post whose similarity with `fingerprint` is at least `threshold`, with that
    /// similarity, in `DocId` order. `threshold` must not be below the index's own (it is
    /// then raised to it: an index cannot find what its prefixes do not hold).
    pub fn find(&self, fingerprint: &Fingerprint, threshold: f64) -> Vec<(DocId, f64)> {
        self.find_counting(fingerprint, threshold).0
    }

    /// [`PendingIndex::find`], also saying how many candidates the prefixes gave and how
    /// many were verified (the benchmark prints them).
    pub fn find_counting(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
    ) -> (Vec<(DocId, f64)>, (usize, usize)) {
        let mut verified = 0;
        let mut found = 0;
        let hits = self.find_inner(fingerprint, threshold, &mut found, &mut verified);
        (hits, (found, verified))
    }

    fn find_inner(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
        found: &mut usize,
        verified: &mut usize,
    ) -> Vec<(DocId, f64)> {
        let t = if threshold < self.threshold {
            debug_assert!(false, "query below the index threshold");
            self.threshold
        } else {
            threshold
        };
        if t.is_nan() || t > 1.0 {
            return Vec::new();
        }
        if fingerprint.is_short() {
            if t <= 0.0 {
                return self.every_doc(fingerprint);
            }
            return self
                .short
                .get(fingerprint.normalized())
                .map(|docs| {
                    let mut hits: Vec<(DocId, f64)> = docs.iter().map(|&d| (d, 1.0)).collect();
                    hits.sort_unstable_by_key(|h| h.0);
                    hits
                })
                .unwrap_or_default();
        }
        if self.threshold <= 0.0 || t <= 0.0 {
            return self.every_doc(fingerprint);
        }
        let a = fingerprint.gram_count();
        let size_lo = at_least(t * a as f64);
        let size_hi = at_most(a as f64 / t);
        let query_buckets = buckets(fingerprint);
        let mut candidates: Vec<DocId> = Vec::new();
        for token in self.prefix(fingerprint) {
            self.postings.each(token, |doc| candidates.push(doc));
        }
        candidates.sort_unstable();
        candidates.dedup();
        *found = candidates.len();
        let mut hits = Vec::new();
        for doc in candidates {
            let Some(entry) = self.docs[doc as usize].as_ref() else {
                continue;
            };
            let b = entry.grams as usize;
            if b < size_lo || b > size_hi {
                continue;
            }
            // The overlap a similarity of `t` needs: |x ∩ y| ≥ t·(a + b) / (1 + t).
            let needed = at_least(t * (a + b) as f64 / (1.0 + t));
            if shared_at_most(&query_buckets, &entry.buckets) < needed {
                continue;
            }
            *verified += 1;
            let other = Fingerprint::of_normalized(&entry.text);
            let s = jaccard(intersection_len(fingerprint.grams(), other.grams()), a, b);
            if s >= t {
                hits.push((doc, s));
            }
        }
        hits
    }

    /// Rough heap use, for the benchmark's report.
    pub fn approx_heap_bytes(&self) -> usize {
        let docs: usize = self.docs.iter().flatten().map(|d| d.text.len()).sum();
        self.docs.capacity() * std::mem::size_of::<Option<Doc<K>>>()
            + docs
            + self.postings.approx_heap_bytes()
            + self.free.capacity() * 4
    }

    /// With no usable threshold every post compares: the exact similarity of each.
    fn every_doc(&self, fingerprint: &Fingerprint) -> Vec<(DocId, f64)> {
        self.docs
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let d = d.as_ref()?;
                let other = Fingerprint::of_normalized(&d.text);
                Some((
                    i as DocId,
                    super::similarity::similarity(fingerprint, &other),
                ))
            })
            .collect()
    }

    /// The tokens of the prefix of a text with grams: the first `n − ⌈t·n⌉ + 1` grams in
    /// the index's order, `t` the index's threshold (rounded so the prefix is never too
    /// short). Deduplicated: two prefix grams may share a token.
    fn prefix(&self, fingerprint: &Fingerprint) -> Vec<u32> {
        let n = fingerprint.gram_count();
        let keep = n - at_least(self.threshold.clamp(0.0, 1.0) * n as f64).min(n) + 1;
        let mut ordered: Vec<(u16, u32, u128)> = fingerprint
            .grams()
            .iter()
            .map(|&g| {
                let token = gram_token(g);
                (self.order.count(token), token, g)
            })
            .collect();
        let keep = keep.min(ordered.len());
        if keep < ordered.len() {
            ordered.select_nth_unstable(keep);
        }
        let mut tokens: Vec<u32> = ordered[..keep].iter().map(|p| p.1).collect();
        tokens.sort_unstable();
        tokens.dedup();
        tokens
    }
}

/// Token → post pairs: a large sorted run plus a small sorted tail that new pairs go into,
/// merged when the tail grows; removed pairs in the run are marked and swept out once they
/// are a quarter of it. Eight bytes a pair, no allocation per token.
#[derive(Debug, Clone, Default)]
struct Postings {
    run: Vec<(u32, DocId)>,
    tail: Vec<(u32, DocId)>,
    dead: usize,
}

const DEAD: DocId = DocId::MAX;

impl Postings {
    fn add(&mut self, token: u32, doc: DocId) {
        let at = self.tail.partition_point(|p| p.0 < token);
        self.tail.insert(at, (token, doc));
        // An insert moves half the tail; a merge moves the run, once per `bound` inserts.
        // A bound near √run keeps both small: with 4 million pairs, about 2,000 moves an
        // insert (a bound of run/16 moved 125,000).
        let bound = 2048.max(2 * self.run.len().isqrt());
        if self.tail.len() > bound {
            self.run.append(&mut self.tail);
            // Two sorted runs: the stable sort merges them in linear time.
            self.run.sort_by_key(|p| p.0);
        }
    }

    fn remove(&mut self, token: u32, doc: DocId) {
        let tail = range(&self.tail, token);
        if let Some(i) = self.tail[tail.clone()].iter().position(|p| p.1 == doc) {
            self.tail.remove(tail.start + i);
            return;
        }
        let run = range(&self.run, token);
        if let Some(p) = self.run[run].iter_mut().find(|p| p.1 == doc) {
            p.1 = DEAD;
            self.dead += 1;
            if self.dead * 4 > self.run.len() {
                self.run.retain(|p| p.1 != DEAD);
                self.run.shrink_to(self.run.len() + self.run.len() / 8);
                self.dead = 0;
            }
        }
    }

    fn each(&self, token: u32, mut f: impl FnMut(DocId)) {
        for list in [&self.run, &self.tail] {
            for p in &list[range(list, token)] {
                if p.1 != DEAD {
                    f(p.1);
                }
            }
        }
    }

    fn approx_heap_bytes(&self) -> usize {
        (self.run.capacity() + self.tail.capacity()) * 8
    }
}

fn range(list: &[(u32, DocId)], token: u32) -> std::ops::Range<usize> {
    let start = list.partition_point(|p| p.0 < token);
    let end = start + list[start..].partition_point(|p| p.0 == token);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cadence::similarity::similarity;
    use proptest::prelude::*;

    fn fp(text: &str) -> Fingerprint {
        Fingerprint::of_text(text)
    }

    fn brute(live: &[(DocId, Fingerprint)], q: &Fingerprint, t: f64) -> Vec<(DocId, f64)> {
        let mut hits: Vec<(DocId, f64)> = live
            .iter()
            .map(|(d, f)| (*d, similarity(q, f)))
            .filter(|(_, s)| *s >= t)
            .collect();
        hits.sort_by_key(|h| h.0);
        hits
    }

    #[test]
    fn a_saturated_bucket_is_bounded_by_the_other_text_unless_both_are() {
        let mut a = [0u8; BUCKETS];
        let mut b = [0u8; BUCKETS];
        a[0] = u8::MAX;
        b[0] = 3;
        a[1] = 2;
        b[1] = 5;
        assert_eq!(shared_at_most(&a, &b), 5);
        b[0] = u8::MAX;
        assert_eq!(shared_at_most(&a, &b), usize::MAX);
    }

    #[test]
    fn finds_exactly_what_comparing_with_each_post_finds_across_inserts_and_removals() {
        let texts = [
            "Summer sale begins Friday with new linen shirts in every size and colour at half price by mail",
            "Summer sale begins Friday with new cotton shirts in every size and colour at half price by mail",
            "冬季促销，全场八折！欢迎光临本店。新品上市，数量有限",
            "冬季促销 全场八折 欢迎光临本店 新品上市 数量有限 先到先得",
            "ok",
            "OK!",
            "Our free repair workshop is back on 12 December.",
        ];
        let mut index = PendingIndex::new(0.5);
        let mut live: Vec<(DocId, Fingerprint)> = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            let d = index.insert(i, &fp(t));
            live.push((d, fp(t)));
        }
        for t in &texts {
            assert_eq!(index.find(&fp(t), 0.8), brute(&live, &fp(t), 0.8), "{t}");
            assert_eq!(index.find(&fp(t), 0.5), brute(&live, &fp(t), 0.5), "{t}");
        }
        // The linen shirt goes; its near-duplicate stays findable, and slots are reused.
        assert_eq!(index.remove(live[0].0), Some(0));
        live.remove(0);
        assert_eq!(index.remove(DocId::MAX - 1), None);
        let q = fp(texts[0]);
        assert_eq!(index.find(&q, 0.8), brute(&live, &q, 0.8));
        assert_eq!(index.find(&q, 0.8).len(), 1);
        let again = index.insert(99, &q);
        assert_eq!(again, 0, "the freed slot is reused");
        assert_eq!(index.key(again), Some(&99));
        assert_eq!(index.len(), texts.len());
    }

    fn sentence() -> impl Strategy<Value = String> {
        let word = prop::sample::select(vec![
            "sale", "shoes", "red", "blue", "new", "today", "冬季", "促销", "ok", "the", "friday",
            "winter", "half", "price",
        ]);
        prop::collection::vec(word, 0..14).prop_map(|w| w.join(" "))
    }

    proptest! {
        /// Any sequence of inserts and removals: every query finds exactly the posts a
        /// comparison with each live post finds.
        #[test]
        fn find_equals_brute_force_under_churn(
            ops in prop::collection::vec((sentence(), any::<bool>()), 1..60),
            t in prop::sample::select(vec![0.3, 0.5, 0.8, 0.95, 1.0]),
        ) {
            // Half the time under an order made from some of the texts (frozen, as in use).
            let order = if ops.len() % 2 == 0 {
                let sample: Vec<Fingerprint> = ops.iter().step_by(3).map(|(t, _)| fp(t)).collect();
                Arc::new(GramOrder::of(&sample))
            } else {
                Arc::default()
            };
            let mut index = PendingIndex::with_order(t, order);
            let mut live: Vec<(DocId, Fingerprint)> = Vec::new();
            for (i, (text, remove)) in ops.iter().enumerate() {
                if i == ops.len() / 2 {
                    let all: Vec<Fingerprint> = live.iter().map(|(_, f)| f.clone()).collect();
                    index.reorder(Arc::new(GramOrder::of(&all)));
                }
                if *remove && !live.is_empty() {
                    let (d, _) = live.remove(i % live.len());
                    prop_assert!(index.remove(d).is_some());
                } else {
                    let f = fp(text);
                    live.push((index.insert(i, &f), f));
                }
                let q = fp(&ops[(i * 7) % ops.len()].0);
                prop_assert_eq!(index.find(&q, t), brute(&live, &q, t));
            }
        }
    }
}
