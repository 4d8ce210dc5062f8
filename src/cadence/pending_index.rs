//! Near-duplicates among the pending posts, updated one post at a time.
//!
//! Why it exists: the daemon learns about the queue a file at a time, and rebuilding an
//! index of every pending post for each file that arrives costs time in proportion to the
//! queue. [`similarity::Index`](super::similarity::Index) is built once and never changes;
//! this one takes inserts and removals (and many inserts at once, at start-up), and keeps
//! little per post, so memory follows the number of pending posts by a few hundred bytes
//! each.
//!
//! Exact, like everything in `similarity`: a positional ℓ-prefix filter (AllPairs and
//! PPJoin, with ℓ shared grams instead of one). Put every text's grams in one fixed total
//! order. Two texts of `a` and `b` grams with a Jaccard similarity of at least `t` share at
//! least `α = ⌈t·(a + b) / (1 + t)⌉` grams; the `e`-th smallest shared gram (`e ≤ α`) then
//! sits before position `a − α + e` in the first text and `b − α + e` in the second (only
//! `a − α` of the first text's grams are not shared). So with `e = min(ℓ, α)`, a pair can
//! only be similar enough if `e` of the postings a query meets in its prefix pass the
//! position test for that pair. Each post is indexed by the grams of its prefix (one posting
//! per gram: its token, the post and the position), a query walks the postings of its own
//! prefix, counts per post the ones that pass the size and position tests, and only posts
//! with enough of them are checked with the exact Jaccard
//! [`similarity`](super::similarity::similarity) computes. ℓ = 1 is plain prefix filtering;
//! a larger ℓ lengthens every prefix by ℓ − 1 grams and rules out the posts that share one
//! rare gram by chance, which at 100,000 posts are most of those a prefix meets. Tokens stand
//! for grams in the postings: two grams with one token only add candidates (a posting per
//! gram position, so distinct shared grams always count apart), the exact check decides.
//!
//! The prefix length depends on the lowest threshold the index is made for, so a query may
//! ask for that threshold or a higher one.
//!
//! The order decides the cost, never the result: rarest grams first ([`GramOrder`], a
//! count sketch of how many posts held each gram when the order was made), then by token
//! (a hash of the gram), then by the gram. With common grams first, every post that says
//! "the " would be a candidate of every other; with rare grams first, a prefix is a post's
//! most distinctive grams and few posts share one. The order is frozen while posts are
//! indexed with it; [`PendingIndex::reorder`] re-indexes every post under a new one.
//!
//! What it keeps per post: the normalized text (to verify candidates), its gram count, 128
//! gram counts by bucket (a bound checked before the exact grams are computed) and one
//! 12-byte posting per prefix gram. What it must not do: approximate, or do IO.

mod join;

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

/// The most texts [`GramOrder::of_normalized`] counts. The pending posts' index with
/// 100,000 posts (`pending` bench), by how many texts its order was made from: all of
/// them, 3,776 postings read a look-up; a fifth, 3,836; a twentieth, 3,923. Counting all
/// of them was 0.7 s of a 100,000-post `plan`.
const ORDER_SAMPLE: usize = 10_000;

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
        let mut order = GramOrder::counting();
        for fp in texts {
            order.add(fp.borrow().grams().iter().map(|&g| gram_token(g)));
        }
        order
    }

    /// [`GramOrder::of`] the `n` normalized texts `text(i)`, their grams computed on every
    /// core (a first listing's 100,000 posts). Above [`ORDER_SAMPLE`] texts, from a sample
    /// spread evenly over them (every `k`-th text), standing for all `n` ([`GramOrder::texts`]):
    /// the order only sets the cost of a look-up, and a sample's is nearly as good for a
    /// fraction of the work.
    pub fn of_normalized<'a>(n: usize, text: impl Fn(usize) -> &'a str + Sync) -> GramOrder {
        let step = n.div_ceil(ORDER_SAMPLE).max(1);
        let mut order = GramOrder::counting();
        crate::parallel::map_in_order(
            n.div_ceil(step),
            PARALLEL_FROM,
            |i| {
                let fp = Fingerprint::of_normalized(text(i * step));
                fp.grams()
                    .iter()
                    .map(|&g| gram_token(g))
                    .collect::<Vec<u32>>()
            },
            |_, tokens| order.add(tokens),
        );
        order.texts = n;
        order
    }

    fn counting() -> GramOrder {
        GramOrder {
            rows: Some(vec![[0u16; 2]; 1 << ORDER_BITS].into_boxed_slice()),
            texts: 0,
        }
    }

    /// Counts one text's distinct grams (by token).
    fn add(&mut self, tokens: impl IntoIterator<Item = u32>) {
        let rows = self.rows.as_mut().expect("a counting order");
        self.texts += 1;
        for token in tokens {
            let [a, b] = Self::slots(token);
            rows[a][0] = rows[a][0].saturating_add(1);
            rows[b][1] = rows[b][1].saturating_add(1);
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

/// ℓ: how many shared grams a candidate must show in the prefixes (fewer when the pair
/// needs fewer in all). Chosen with `cargo bench --bench daemon -- pending`: see
/// BENCHMARKS.md.
const SHARED_IN_PREFIX: usize = 4;

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct PendingIndex<K> {
    threshold: f64,
    order: Arc<GramOrder>,
    docs: Vec<Option<Doc<K>>>,
    /// Each post's gram count by `DocId` (0 for a free handle): a query reads it for every
    /// posting it meets, so it lies apart from the rest of the post.
    sizes: Vec<u32>,
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
    buckets_of(fingerprint.grams().iter().map(|&g| gram_token(g)))
}

/// [`buckets`] of a text's gram tokens.
fn buckets_of(tokens: impl Iterator<Item = u32>) -> Buckets {
    let mut b = [0u8; BUCKETS];
    for token in tokens {
        let k = token as usize % BUCKETS;
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

/// What a look-up cost, summed over look-ups (the benchmark prints it).
#[derive(Debug, Clone, Copy, Default)]
pub struct FindCost {
    /// Postings read.
    pub postings: usize,
    /// Of those, how many passed the size and position tests.
    pub passed: usize,
    /// Posts with enough postings that passed: candidates.
    pub candidates: usize,
    /// Candidates the bucket bound did not rule out: their grams were computed.
    pub verified: usize,
}

/// What a pair of texts of `a` and `b` grams needs at threshold `t`: the grams they must
/// share (`α`), and how many of those the prefixes must show (`e`).
#[derive(Clone, Copy)]
struct Need {
    /// `t / (1 + t)`.
    ratio: f64,
}

impl Need {
    fn new(t: f64) -> Need {
        Need {
            ratio: t / (1.0 + t),
        }
    }

    /// `(α, e)`: |x ∩ y| ≥ t·(a + b) / (1 + t) for a similarity of `t`; `e = min(ℓ, α)`.
    fn of(self, a: usize, b: usize) -> (usize, usize) {
        let alpha = at_least(self.ratio * (a + b) as f64);
        (alpha, alpha.min(SHARED_IN_PREFIX))
    }

    /// For a query of `a` grams and a partner of `b`: the query's prefix positions that
    /// can pass (`i < a − α + e`), the partner's (`j < b − α + e`), α and e.
    fn limits(self, a: usize, b: usize) -> (usize, usize, usize, usize) {
        let (alpha, e) = self.of(a, b);
        (
            (a + e).saturating_sub(alpha),
            (b + e).saturating_sub(alpha),
            alpha,
            e,
        )
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
            sizes: Vec::new(),
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
        let id = self.add_doc(key, fingerprint);
        for p in self.postings_of(id, fingerprint) {
            self.postings.add(p);
        }
        id
    }

    /// Inserts many posts at once (start-up, the commands): their postings are sorted in
    /// with one sort instead of one insert each. The handles are given in the order of the
    /// posts; into an index that never had a removal, they count up from [`Self::len`].
    pub fn insert_many<F: std::borrow::Borrow<Fingerprint>>(
        &mut self,
        posts: impl IntoIterator<Item = (K, F)>,
    ) -> Vec<DocId> {
        let preparer = self.preparer();
        let posts: Vec<(K, Prepared)> = posts
            .into_iter()
            .map(|(key, fp)| (key, preparer.prepare(fp.borrow())))
            .collect();
        self.insert_many_prepared(posts)
    }

    /// [`PendingIndex::insert_many`] of posts prepared already (on other threads: see
    /// [`Preparer`]) by this index's [`PendingIndex::preparer`].
    pub fn insert_many_prepared(
        &mut self,
        posts: impl IntoIterator<Item = (K, Prepared)>,
    ) -> Vec<DocId> {
        self.insert_prepared_keeping_prefixes(posts, |_| {}).0
    }

    /// [`PendingIndex::insert_many_prepared`], handing each post's prefix to `keep` (which
    /// may take it) after its postings were made; returns the handles and what `keep`
    /// took.
    fn insert_prepared_keeping_prefixes<T>(
        &mut self,
        posts: impl IntoIterator<Item = (K, Prepared)>,
        mut keep: impl FnMut(Vec<u32>) -> T,
    ) -> (Vec<DocId>, Vec<T>) {
        let mut added = Vec::new();
        let mut ids = Vec::new();
        let mut kept = Vec::new();
        for (key, mut prepared) in posts {
            let size = saturated(prepared.size as usize);
            let prefix = std::mem::take(&mut prepared.prefix);
            let id = self.add_prepared(key, prepared);
            ids.push(id);
            added.extend(prefix.iter().enumerate().map(|(pos, &token)| Posting {
                token,
                doc: id,
                pos: saturated(pos),
                size,
            }));
            kept.push(keep(prefix));
        }
        self.postings.absorb(added);
        (ids, kept)
    }

    /// [`PendingIndex::insert_many_prepared`] into an index that never had a removal, then
    /// each post's near-duplicates among the ones inserted before it (what
    /// [`PendingIndex::find_below`] of its own text finds), handed to `each(index, d, hits)`
    /// in handle order on the calling thread: start-up's self-join.
    ///
    /// When the index holds only these posts, the pairs are found smallest post first on
    /// every core and handed out after (`join`: a quarter of the postings read, 13 % less
    /// time at 100,000 posts, see BENCHMARKS.md). Otherwise, or when there are more pairs
    /// than that keeps, the streaming way: each
    /// post looked up among the ones before it on every core (the index is only read), a
    /// bounded number ahead of `each` ([`crate::parallel::map_in_order`]), so the answers
    /// waiting in memory stay bounded however many near-duplicates there are. Either way a
    /// post's grams and prefix are not made again for its look-up (that was a quarter of a
    /// start-up's look-ups); only a candidate reaching the exact check needs its grams.
    pub fn insert_many_prepared_finding_each(
        &mut self,
        posts: Vec<(K, Prepared)>,
        threshold: f64,
        each: impl FnMut(&Self, DocId, Vec<(DocId, f64)>),
    ) where
        K: Sync,
    {
        self.insert_many_prepared_then_finding_each(posts, threshold, |_| true, each);
    }

    /// [`PendingIndex::insert_many_prepared_finding_each`], calling `between` with the
    /// index once the posts are in and before any is looked up (start-up checks the log's
    /// posts against them there); if it says `false`, nothing is looked up.
    pub fn insert_many_prepared_then_finding_each(
        &mut self,
        posts: Vec<(K, Prepared)>,
        threshold: f64,
        between: impl FnOnce(&Self) -> bool,
        mut each: impl FnMut(&Self, DocId, Vec<(DocId, f64)>),
    ) where
        K: Sync,
    {
        let (ids, prefixes) = self.insert_prepared_keeping_prefixes(posts, |prefix| prefix);
        let index = &*self;
        if !between(index) {
            return;
        }
        if let Some(pairs) = index.pairs_by_size(&ids, &prefixes, threshold) {
            let mut pairs = pairs.into_iter().peekable();
            for (&d, prefix) in ids.iter().zip(&prefixes) {
                let hits = if prefix.is_empty() {
                    // A short text: its look-up is the map's.
                    index.find_below_inserted(d, prefix, threshold)
                } else {
                    std::iter::from_fn(|| pairs.next_if(|p| p.0 == d).map(|p| (p.1, p.2))).collect()
                };
                each(index, d, hits);
            }
            return;
        }
        crate::parallel::map_in_order(
            ids.len(),
            PARALLEL_FROM,
            |i| index.find_below_inserted(ids[i], &prefixes[i], threshold),
            |i, hits| each(index, ids[i], hits),
        );
    }

    /// Takes every post out, keeping the order.
    pub fn clear(&mut self) {
        *self = PendingIndex::with_order(self.threshold, Arc::clone(&self.order));
    }

    /// What indexing a post takes apart from the index itself, for any thread.
    pub fn preparer(&self) -> Preparer {
        Preparer {
            order: Arc::clone(&self.order),
            threshold: self.threshold,
        }
    }

    /// A post's postings: one per gram of its index prefix.
    fn postings_of(&self, doc: DocId, fingerprint: &Fingerprint) -> Vec<Posting> {
        if fingerprint.is_short() {
            return Vec::new();
        }
        let size = saturated(fingerprint.gram_count());
        self.index_prefix(fingerprint)
            .into_iter()
            .enumerate()
            .map(|(pos, token)| Posting {
                token,
                doc,
                pos: saturated(pos),
                size,
            })
            .collect()
    }

    /// A post into `docs`, `sizes` and (if short) `short`; not its postings.
    fn add_doc(&mut self, key: K, fingerprint: &Fingerprint) -> DocId {
        self.add_prepared(key, Prepared::without_prefix(fingerprint))
    }

    /// [`PendingIndex::add_doc`] of a prepared post (its prefix left aside).
    fn add_prepared(&mut self, key: K, prepared: Prepared) -> DocId {
        let Prepared {
            text,
            size,
            buckets,
            short,
            prefix: _,
        } = prepared;
        let short_text = short.then(|| text.clone());
        let doc = Doc { key, text, buckets };
        let id = match self.free.pop() {
            Some(id) => {
                self.docs[id as usize] = Some(doc);
                self.sizes[id as usize] = size;
                id
            }
            None => {
                self.docs.push(Some(doc));
                self.sizes.push(size);
                DocId::try_from(self.docs.len() - 1).expect("fewer than 2^32 pending posts")
            }
        };
        if let Some(text) = short_text {
            self.short.entry(text).or_default().push(id);
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
        let mut all: Vec<Posting> = Vec::new();
        for (i, doc) in self.docs.iter().enumerate() {
            let Some(doc) = doc else { continue };
            all.extend(self.postings_of(i as DocId, &Fingerprint::of_normalized(&doc.text)));
        }
        self.postings = Postings::default();
        self.postings.absorb(all);
    }

    /// Removes a post; `None` if `doc` is not in the index.
    pub fn remove(&mut self, doc: DocId) -> Option<K> {
        let entry = self.docs.get_mut(doc as usize)?.take()?;
        self.sizes[doc as usize] = 0;
        let fingerprint = Fingerprint::of_normalized(&entry.text);
        if fingerprint.is_short() {
            if let Some(list) = self.short.get_mut(&*entry.text) {
                list.retain(|&d| d != doc);
                if list.is_empty() {
                    self.short.remove(&*entry.text);
                }
            }
        } else {
            let mut tokens = self.index_prefix(&fingerprint);
            tokens.sort_unstable();
            tokens.dedup();
            for token in tokens {
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
        self.find_below(fingerprint, threshold, DocId::MAX)
    }

    /// [`PendingIndex::find`] among the posts whose handle is below `below` only (the
    /// posts inserted before, in an index that never had a removal): judging posts in
    /// order, each needs only the ones before it, and skipping the others costs nothing.
    pub fn find_below(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
        below: DocId,
    ) -> Vec<(DocId, f64)> {
        self.find_inner(fingerprint, threshold, below, &mut FindCost::default())
    }

    /// [`PendingIndex::find`], also saying what it cost (the benchmark prints it).
    pub fn find_counting(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
    ) -> (Vec<(DocId, f64)>, FindCost) {
        let mut cost = FindCost::default();
        let hits = self.find_inner(fingerprint, threshold, DocId::MAX, &mut cost);
        (hits, cost)
    }

    fn find_inner(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
        below: DocId,
        cost: &mut FindCost,
    ) -> Vec<(DocId, f64)> {
        let Some(t) = self.query_threshold(threshold) else {
            return Vec::new();
        };
        if fingerprint.is_short() {
            if t <= 0.0 {
                return self.every_doc(fingerprint, below);
            }
            return self
                .short
                .get(fingerprint.normalized())
                .map(|docs| {
                    let mut hits: Vec<(DocId, f64)> = docs
                        .iter()
                        .filter(|&&d| d < below)
                        .map(|&d| (d, 1.0))
                        .collect();
                    hits.sort_unstable_by_key(|h| h.0);
                    hits
                })
                .unwrap_or_default();
        }
        if self.threshold <= 0.0 || t <= 0.0 {
            return self.every_doc(fingerprint, below);
        }
        let a = fingerprint.gram_count();
        let probe = self.probe_len(a, t);
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let mut prefix = std::mem::take(&mut scratch.prefix);
        self.ordered_prefix_into(fingerprint, probe, &mut scratch.ordered, &mut prefix);
        let hits = self.find_with(
            a,
            &prefix,
            &buckets(fingerprint),
            || fingerprint.grams(),
            t,
            below,
            cost,
            &mut scratch,
        );
        scratch.prefix = prefix;
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
        hits
    }

    /// The threshold a query at `threshold` runs at; `None` when nothing can be similar.
    fn query_threshold(&self, threshold: f64) -> Option<f64> {
        let t = if threshold < self.threshold {
            debug_assert!(false, "query below the index threshold");
            self.threshold
        } else {
            threshold
        };
        (!t.is_nan() && t <= 1.0).then_some(t)
    }

    /// How many grams of a text of `a` grams a query at `t` probes: as many as the most any
    /// partner in the size range needs (α grows with the partner's size, so the smallest
    /// partner needs the longest). Never more than a post of `a` grams is indexed by.
    fn probe_len(&self, a: usize, t: f64) -> usize {
        let size_lo = at_least(t * a as f64).max(1);
        let (alpha_min, _) = Need::new(t).of(a, size_lo);
        (a + SHARED_IN_PREFIX).saturating_sub(alpha_min).min(a)
    }

    /// A post already in the index (handle `d`, inserted with `prefix`) among the posts
    /// below it: [`PendingIndex::find_below`] of its own text, without making its grams and
    /// prefix again (only a candidate that reaches the exact check needs its grams).
    fn find_below_inserted(&self, d: DocId, prefix: &[u32], threshold: f64) -> Vec<(DocId, f64)> {
        let Some(entry) = self.docs.get(d as usize).and_then(Option::as_ref) else {
            return Vec::new();
        };
        let Some(t) = self.query_threshold(threshold) else {
            return Vec::new();
        };
        let a = self.sizes[d as usize] as usize;
        let probe = self.probe_len(a, t);
        if self.threshold <= 0.0 || t <= 0.0 || prefix.is_empty() || prefix.len() < probe {
            // A short text, no threshold, or (never, by the bounds) a prefix too short.
            return self.find_below(&Fingerprint::of_normalized(&entry.text), threshold, d);
        }
        let grams = std::cell::OnceCell::new();
        let mut scratch = SCRATCH.with(|s| std::mem::take(&mut *s.borrow_mut()));
        let hits = self.find_with(
            a,
            &prefix[..probe],
            &entry.buckets,
            || {
                grams
                    .get_or_init(|| Fingerprint::of_normalized(&entry.text))
                    .grams()
            },
            t,
            d,
            &mut FindCost::default(),
            &mut scratch,
        );
        SCRATCH.with(|s| *s.borrow_mut() = scratch);
        hits
    }

    /// The look-up of a text of `a` grams by its probe `prefix` (its first grams in the
    /// index's order, [`PendingIndex::probe_len`] of them), among the posts below `below`.
    /// `grams` gives the text's grams for the exact check of the candidates that reach it.
    #[allow(clippy::too_many_arguments)]
    fn find_with<'g>(
        &self,
        a: usize,
        prefix: &[u32],
        query_buckets: &Buckets,
        grams: impl Fn() -> &'g [u128],
        t: f64,
        below: DocId,
        cost: &mut FindCost,
        scratch: &mut Scratch,
    ) -> Vec<(DocId, f64)> {
        let size_lo = at_least(t * a as f64).max(1);
        let size_hi = at_most(a as f64 / t);
        let need = Need::new(t);
        let Scratch {
            table,
            ranges,
            met,
            j_limits,
            ..
        } = scratch;
        // Per partner size, once per query (for a size range a table can hold): the probe
        // positions that can pass (`i < a − α + e`), the post's positions that can
        // (`j < b − α + e`), and α and e.
        let span = size_hi.saturating_sub(size_lo);
        let limits = |b: usize| need.limits(a, b);
        table.clear();
        if span < 4096 {
            table.extend((size_lo..=size_hi).map(limits));
        }
        let limits_of = |b: usize| match table.get(b - size_lo) {
            Some(&l) => l,
            None => limits(b),
        };
        // Walk every probe token's postings after finding where they all are: the look-ups
        // are independent memory reads the processor can overlap.
        ranges.clear();
        ranges.extend(prefix.iter().map(|&t| self.postings.starts(t)));
        met.clear();
        if !table.is_empty() && size_hi < usize::from(u16::MAX) {
            // The same tests with less work per posting (most of a look-up's time): probe
            // position `i` can pass up to a largest partner size (`a − α + e` falls as the
            // size grows), so one bound per token and a table of `b − α + e` by size remain.
            j_limits.clear();
            j_limits.extend(table.iter().map(|l| saturated(l.1)));
            let mut passing = table.len();
            for (i, (&token, starts)) in prefix.iter().zip(ranges.drain(..)).enumerate() {
                while passing > 0 && i >= table[passing - 1].0 {
                    passing -= 1;
                }
                if passing == 0 {
                    break; // no size passes for this position, nor for the later ones
                }
                let j_limits = &j_limits[..passing];
                let mut read = 0;
                self.postings.each_from(token, starts, below, |p| {
                    read += 1;
                    // A saturated size is above `size_hi`: out of the table.
                    let k = usize::from(p.size).wrapping_sub(size_lo);
                    // A saturated position stands for "that far or further": not tested.
                    if j_limits
                        .get(k)
                        .is_some_and(|&j| p.pos < j || p.pos == u16::MAX)
                    {
                        met.push(p.doc);
                    }
                });
                cost.postings += read;
            }
        } else {
            for (i, (&token, starts)) in prefix.iter().zip(ranges.drain(..)).enumerate() {
                self.postings.each_from(token, starts, below, |p| {
                    cost.postings += 1;
                    let b = match p.size {
                        u16::MAX => self.sizes[p.doc as usize] as usize,
                        size => usize::from(size),
                    };
                    if b < size_lo || b > size_hi {
                        return;
                    }
                    let (i_limit, j_limit, _, _) = limits_of(b);
                    // A saturated position stands for "that far or further": not tested.
                    if i < i_limit && (p.pos == u16::MAX || usize::from(p.pos) < j_limit) {
                        met.push(p.doc);
                    }
                });
            }
        }
        cost.passed += met.len();
        met.sort_unstable();
        let mut hits = Vec::new();
        for run in met.chunk_by(|x, y| x == y) {
            let doc = run[0];
            let b = self.sizes[doc as usize] as usize;
            let (_, _, alpha, e) = limits_of(b);
            if run.len() < e {
                continue;
            }
            cost.candidates += 1;
            let Some(entry) = self.docs[doc as usize].as_ref() else {
                continue;
            };
            if shared_at_most(query_buckets, &entry.buckets) < alpha {
                continue;
            }
            cost.verified += 1;
            let other = Fingerprint::of_normalized(&entry.text);
            let s = jaccard(intersection_len(grams(), other.grams()), a, b);
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
            + self.sizes.capacity() * 4
            + docs
            + self.postings.approx_heap_bytes()
            + self.free.capacity() * 4
    }

    /// With no usable threshold every post compares: the exact similarity of each.
    fn every_doc(&self, fingerprint: &Fingerprint, below: DocId) -> Vec<(DocId, f64)> {
        self.docs
            .iter()
            .enumerate()
            .take(below as usize)
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

    /// The tokens of the grams a post is indexed by, in the index's order: the first
    /// `n − ⌈t·n⌉ + ℓ + 1` grams, `t` the index's threshold. That is what any query at `t`
    /// or above can need (its partner has at least `t·n` grams, so the pair needs at least
    /// `t·n` shared ones); the one more gram covers the rounding of the bounds.
    fn index_prefix(&self, fingerprint: &Fingerprint) -> Vec<u32> {
        index_prefix(&self.order, self.threshold, fingerprint)
    }

    /// [`ordered_prefix_into`] under the index's order.
    fn ordered_prefix_into(
        &self,
        fingerprint: &Fingerprint,
        keep: usize,
        ordered: &mut Vec<u64>,
        out: &mut Vec<u32>,
    ) {
        ordered_prefix_into(&self.order, fingerprint, keep, ordered, out);
    }
}

/// The tokens of the grams a post is indexed by under `order` at `threshold` (see
/// [`PendingIndex::index_prefix`]).
fn index_prefix(order: &GramOrder, threshold: f64, fingerprint: &Fingerprint) -> Vec<u32> {
    let tokens = fingerprint.grams().iter().map(|&g| gram_token(g));
    index_prefix_of(order, threshold, tokens)
}

/// [`index_prefix`] of a text's gram tokens (one per gram, in any order).
fn index_prefix_of(
    order: &GramOrder,
    threshold: f64,
    tokens: impl ExactSizeIterator<Item = u32>,
) -> Vec<u32> {
    let n = tokens.len();
    let t = threshold.clamp(0.0, 1.0);
    let keep = (n + SHARED_IN_PREFIX + 1).saturating_sub(at_least(t * n as f64).min(n));
    let mut out = Vec::new();
    SCRATCH.with(|s| {
        let ordered = &mut s.borrow_mut().ordered;
        ordered_prefix_of(order, tokens, keep.min(n), ordered, &mut out);
    });
    out
}

/// The tokens of a text's first `keep` grams in `order`, in that order, into `out`, with
/// `ordered` as working space.
fn ordered_prefix_into(
    order: &GramOrder,
    fingerprint: &Fingerprint,
    keep: usize,
    ordered: &mut Vec<u64>,
    out: &mut Vec<u32>,
) {
    let tokens = fingerprint.grams().iter().map(|&g| gram_token(g));
    ordered_prefix_of(order, tokens, keep, ordered, out);
}

/// [`ordered_prefix_into`] of a text's gram tokens. Grams are ordered by count, then token,
/// then gram; two grams with one token give that token twice whichever comes first, so the
/// gram is left out of the key: a `u64` of count and token sorts faster than the triple.
fn ordered_prefix_of(
    order: &GramOrder,
    tokens: impl Iterator<Item = u32>,
    keep: usize,
    ordered: &mut Vec<u64>,
    out: &mut Vec<u32>,
) {
    ordered.clear();
    ordered.extend(tokens.map(|token| (u64::from(order.count(token)) << 32) | u64::from(token)));
    if keep < ordered.len() {
        ordered.select_nth_unstable(keep);
        ordered.truncate(keep);
    }
    ordered.sort_unstable();
    out.clear();
    out.extend(ordered.iter().map(|&key| key as u32));
}

/// What [`PendingIndex::insert_many_prepared`] needs of a post besides the index: its text,
/// gram count, bucket counts and index prefix. Made by a [`Preparer`].
pub struct Prepared {
    text: Box<str>,
    size: u32,
    buckets: Buckets,
    short: bool,
    /// Empty for a short text (it has no grams).
    prefix: Vec<u32>,
}

/// Prepares posts for an index (its order and threshold), on any thread.
#[derive(Clone)]
pub struct Preparer {
    order: Arc<GramOrder>,
    threshold: f64,
}

impl Prepared {
    fn without_prefix(fingerprint: &Fingerprint) -> Prepared {
        Prepared::with(fingerprint, buckets(fingerprint), Vec::new())
    }

    fn with(fingerprint: &Fingerprint, buckets: Buckets, prefix: Vec<u32>) -> Prepared {
        Prepared {
            text: fingerprint.normalized().into(),
            size: u32::try_from(fingerprint.gram_count()).expect("fewer than 2^32 grams"),
            buckets,
            short: fingerprint.is_short(),
            prefix,
        }
    }
}

impl Preparer {
    pub fn prepare(&self, fingerprint: &Fingerprint) -> Prepared {
        // Each gram's token made once, for the bucket counts and the prefix.
        let tokens: Vec<u32> = fingerprint.grams().iter().map(|&g| gram_token(g)).collect();
        let prefix = if fingerprint.is_short() {
            Vec::new()
        } else {
            index_prefix_of(&self.order, self.threshold, tokens.iter().copied())
        };
        Prepared::with(fingerprint, buckets_of(tokens.into_iter()), prefix)
    }
}

/// Posts below which [`PendingIndex::insert_many_prepared_finding_each`] looks them up on
/// the calling thread (a thread costs more than a few hundred look-ups); 2 under test, so
/// the property tests go through the threads.
const PARALLEL_FROM: usize = if cfg!(test) { 2 } else { 2048 };

/// Buffers a look-up reuses (one per thread): a text's grams in order are kilobytes, and
/// allocating them for every look-up was a tenth of `plan`'s time.
#[derive(Default)]
struct Scratch {
    ordered: Vec<u64>,
    prefix: Vec<u32>,
    /// By partner size: (probe positions that can pass, post positions that can, α, e).
    table: Vec<(usize, usize, usize, usize)>,
    ranges: Vec<[usize; 3]>,
    met: Vec<DocId>,
    /// By partner size: the post positions that can pass, for the common case.
    j_limits: Vec<u16>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// One gram of a post's prefix: its token, the post, the gram's position in the post's
/// order and the post's gram count (the two tests a query makes of a posting, without a
/// look-up elsewhere). Sorted by token, then post: a query walks one token's postings in
/// post order. Position and size saturate at `u16::MAX` (a post of 64 KiB and more): a
/// saturated size is read from the index, a saturated position is not tested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Posting {
    token: u32,
    doc: DocId,
    pos: u16,
    size: u16,
}

fn saturated(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

/// The postings in three sorted lists, as a log-structured merge: a large run with a
/// directory (the first posting of each range of tokens, so a look-up reads a few postings
/// instead of searching the whole run), a middle list of up to a sixteenth of the run, and
/// a tail of up to [`TAIL`] postings that new postings go into. A full tail merges into the
/// middle, a full middle into the run: an insert moves about 35 postings on average, and a
/// look-up searches three lists. Removed postings are marked in the run and the middle and
/// swept out when the middle merges or once they are a quarter of the run. Twelve bytes a
/// posting and about one for the directory, no allocation per token.
#[derive(Debug, Clone, Default)]
struct Postings {
    run: Vec<Posting>,
    /// `dir[k]`: the first posting in `run` whose token's top bits are at least `k`.
    dir: Vec<u32>,
    /// How many top bits of a token `dir` is indexed by.
    bits: u32,
    mid: Vec<Posting>,
    tail: Vec<Posting>,
    dead_run: usize,
    dead_mid: usize,
}

const DEAD: DocId = DocId::MAX;
/// Postings below which [`Postings::absorb`] sorts on the calling thread (2 under test,
/// so the property tests go through the threads). 4 million postings (100,000 posts) took
/// 0.45 s on one core.
const SORT_IN_PARALLEL_FROM: usize = if cfg!(test) { 2 } else { 1 << 16 };

/// Small in the unit tests, so their few posts go through every merge.
const TAIL: usize = if cfg!(test) { 3 } else { 2048 };

impl Postings {
    fn add(&mut self, p: Posting) {
        let at = self.tail.partition_point(|q| *q < p);
        self.tail.insert(at, p);
        if self.tail.len() > TAIL {
            merge_into(&mut self.mid, &mut self.tail);
            if self.mid.len() > (4 * TAIL).max(self.run.len() / 16) {
                self.mid.retain(|p| p.doc != DEAD);
                self.dead_mid = 0;
                merge_into(&mut self.run, &mut self.mid);
                self.index_run();
            }
        }
    }

    /// Many postings at once: one sort.
    fn absorb(&mut self, mut added: Vec<Posting>) {
        if self.run.is_empty() && self.mid.is_empty() && self.tail.is_empty() {
            self.run = added;
        } else {
            self.run
                .reserve_exact(self.mid.len() + self.tail.len() + added.len());
            self.run.append(&mut self.mid);
            self.run.append(&mut self.tail);
            self.run.append(&mut added);
        }
        crate::parallel::sort_by_spread_key(&mut self.run, SORT_IN_PARALLEL_FROM, |p| p.token);
        self.run.shrink_to_fit();
        self.dead_run += self.dead_mid;
        self.dead_mid = 0;
        self.index_run();
    }

    /// Rebuilds the directory: about one entry per distinct token, so a look-up finds its
    /// token's postings at the entry or a step or two after it.
    fn index_run(&mut self) {
        let tokens = 1 + self
            .run
            .windows(2)
            .filter(|w| w[0].token != w[1].token)
            .count();
        self.bits = (usize::BITS - tokens.leading_zeros()).min(24);
        let slots = 1usize << self.bits;
        self.dir.clear();
        self.dir.reserve_exact(slots + 1);
        let mut i = 0;
        for k in 0..slots {
            while i < self.run.len() && self.slot(self.run[i].token) < k {
                i += 1;
            }
            self.dir.push(i as u32);
        }
        self.dir.push(self.run.len() as u32);
    }

    fn slot(&self, token: u32) -> usize {
        token.checked_shr(32 - self.bits).unwrap_or(0) as usize
    }

    /// Where `token`'s postings start in the run.
    fn run_start(&self, token: u32) -> usize {
        if self.dir.is_empty() {
            return 0;
        }
        let k = self.slot(token);
        let (lo, hi) = (self.dir[k] as usize, self.dir[k + 1] as usize);
        // Usually a step or two; a search when a common token shares the entry.
        let mut i = lo;
        while i < hi && i < lo + 8 {
            if self.run[i].token >= token {
                return i;
            }
            i += 1;
        }
        i + self.run[i..hi].partition_point(|p| p.token < token)
    }

    /// Where `token`'s postings are in the run.
    fn run_range(&self, token: u32) -> std::ops::Range<usize> {
        let start = self.run_start(token);
        start..start + self.run[start..].partition_point(|p| p.token == token)
    }

    /// Marks (or, in the tail, takes out) every posting of `doc` under `token`. A post's
    /// postings may be in all three lists: merges fall between two of its inserts.
    fn remove(&mut self, token: u32, doc: DocId) {
        let tail = range(&self.tail, token);
        let mut i = tail.start;
        let mut end = tail.end;
        while i < end {
            if self.tail[i].doc == doc {
                self.tail.remove(i);
                end -= 1;
            } else {
                i += 1;
            }
        }
        let mid = range(&self.mid, token);
        for p in &mut self.mid[mid] {
            if p.doc == doc {
                p.doc = DEAD;
                self.dead_mid += 1;
            }
        }
        let run = self.run_range(token);
        for p in &mut self.run[run] {
            if p.doc == doc {
                p.doc = DEAD;
                self.dead_run += 1;
            }
        }
        if self.dead_run * 4 > self.run.len() {
            self.run.retain(|p| p.doc != DEAD);
            self.run.shrink_to(self.run.len() + self.run.len() / 8);
            self.dead_run = 0;
            self.index_run();
        }
    }

    /// Where `token`'s postings start in each list.
    fn starts(&self, token: u32) -> [usize; 3] {
        [
            self.run_start(token),
            self.mid.partition_point(|p| p.token < token),
            self.tail.partition_point(|p| p.token < token),
        ]
    }

    /// Calls `f` with each posting of `token` whose post is below `below`; `starts` from
    /// [`Postings::starts`].
    fn each_from(&self, token: u32, starts: [usize; 3], below: DocId, mut f: impl FnMut(&Posting)) {
        for (list, start) in [&self.run, &self.mid, &self.tail].into_iter().zip(starts) {
            for p in &list[start..] {
                if p.token != token {
                    break;
                }
                // A marked posting is out of post order: look past it.
                if p.doc == DEAD {
                    continue;
                }
                if p.doc >= below {
                    // Skip to the next list: the rest of this token is later posts (or
                    // marked ones).
                    break;
                }
                f(p);
            }
        }
    }

    fn approx_heap_bytes(&self) -> usize {
        (self.run.capacity() + self.mid.capacity() + self.tail.capacity())
            * std::mem::size_of::<Posting>()
            + self.dir.capacity() * 4
    }
}

/// Where `token`'s postings are in a sorted list.
fn range(list: &[Posting], token: u32) -> std::ops::Range<usize> {
    list.partition_point(|p| p.token < token)..list.partition_point(|p| p.token <= token)
}

/// Merges sorted `from` into sorted `into` (emptying `from`), from the back: no scratch
/// space, each posting of `into` after the first one of `from` moved once. Marked postings
/// in `into` are out of post order within their token; the merge keeps every other posting
/// in order around them, which is all [`Postings::each`] needs.
fn merge_into(into: &mut Vec<Posting>, from: &mut Vec<Posting>) {
    let (n, m) = (into.len(), from.len());
    // Exactly: a merge copies the list anyway, and a doubled run would be megabytes idle.
    into.reserve_exact(m);
    into.resize(
        n + m,
        Posting {
            token: 0,
            doc: DEAD,
            pos: 0,
            size: 0,
        },
    );
    let (mut i, mut j) = (n, m);
    while j > 0 {
        let k = i + j - 1;
        if i > 0 && into[i - 1] > from[j - 1] {
            into[k] = into[i - 1];
            i -= 1;
        } else {
            into[k] = from[j - 1];
            j -= 1;
        }
    }
    from.clear();
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
    fn posts_of_more_than_65535_grams_are_found_with_saturated_sizes_and_positions() {
        // Sizes and positions saturate in a posting (u16): the look-up must still find a
        // near-duplicate of such a post, and a short post among them.
        // Chinese characters at random: (almost) every 4-gram distinct.
        let han = |i: u64| {
            let r = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 20_000;
            char::from_u32(0x4E00 + r as u32).unwrap()
        };
        let long: String = (0..100_000).map(han).collect();
        let edited: String = (0..100_000)
            .map(|i| if i == 777 { 'x' } else { han(i) })
            .collect();
        let (a, b, short) = (fp(&long), fp(&edited), fp("linen shirts for the summer"));
        assert!(a.gram_count() > usize::from(u16::MAX));
        for t in [0.8, 0.95] {
            let mut index = PendingIndex::new(t);
            let ids = index.insert_many([(0, &a), (1, &short)]);
            let hits = index.find(&b, t);
            assert_eq!(hits.iter().map(|h| h.0).collect::<Vec<_>>(), vec![ids[0]]);
            assert!(hits[0].1 >= t && hits[0].1 < 1.0);
            assert_eq!(index.find(&short, t), vec![(ids[1], 1.0)]);
        }
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

    /// Texts of 20 to 60 words, each a few edits away from one of three base texts: many
    /// pairs sit near any threshold, and prefixes are much shorter than the texts (the
    /// position and count tests decide).
    fn edited() -> impl Strategy<Value = String> {
        edited_of(20..60)
    }

    /// [`edited`] texts of as many words as `lengths` gives.
    pub(super) fn edited_of(lengths: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        let words = [
            "linen", "shirts", "summer", "sale", "friday", "colour", "every", "size", "half",
            "price", "mail", "repair", "workshop", "december", "冬季", "促销", "全场", "八折",
            "new", "the",
        ];
        (
            0..3usize,
            prop::collection::vec((0..60usize, prop::sample::select(words.to_vec())), 0..12),
            lengths,
        )
            .prop_map(move |(base, edits, len)| {
                let mut w: Vec<&str> = (0..len)
                    .map(|i| words[(i * (base + 3) + base * 7 + i / 5) % words.len()])
                    .collect();
                for (at, word) in edits {
                    let at = at % w.len();
                    w[at] = word;
                }
                w.join(" ")
            })
    }

    #[test]
    fn an_order_made_on_every_core_counts_like_one_made_here() {
        let texts: Vec<String> = (0..3000)
            .map(|i| format!("post number {} about linen shirts {}", i % 97, i % 13))
            .collect();
        let fps: Vec<Fingerprint> = texts.iter().map(|t| fp(t)).collect();
        let here = GramOrder::of(&fps);
        let parallel = GramOrder::of_normalized(fps.len(), |i| fps[i].normalized());
        assert_eq!(parallel.texts(), 3000);
        assert_eq!(parallel.rows, here.rows);
    }

    #[test]
    fn an_order_of_many_texts_is_made_from_an_even_sample_and_stands_for_all() {
        let texts: Vec<String> = (0..2 * ORDER_SAMPLE + 1)
            .map(|i| format!("post {i} about linen shirts {}", i % 13))
            .collect();
        let order = GramOrder::of_normalized(texts.len(), |i| &texts[i]);
        // Every third text: 0, 3, 6, ..., the last one included.
        let sample = GramOrder::of(texts.iter().step_by(3).map(|t| fp(t)));
        assert_eq!(order.rows, sample.rows);
        assert_eq!(order.texts(), texts.len(), "stands for all: not stale");
    }

    proptest! {
        /// Many posts inserted at once and looked up among the ones before each, as
        /// start-up judges them: exactly what comparing with each earlier post finds.
        #[test]
        fn insert_many_and_find_below_equal_brute_force(
            texts in prop::collection::vec(edited(), 1..40),
            t in prop::sample::select(vec![0.5, 0.7, 0.8, 0.9, 1.0]),
            ordered in any::<bool>(),
        ) {
            let fps: Vec<Fingerprint> = texts.iter().map(|t| fp(t)).collect();
            let order = if ordered { Arc::new(GramOrder::of(&fps)) } else { Arc::default() };
            let mut index = PendingIndex::with_order(t, order);
            let ids = index.insert_many(fps.iter().enumerate());
            prop_assert_eq!(&ids, &(0..fps.len() as DocId).collect::<Vec<_>>());
            let live: Vec<(DocId, Fingerprint)> = ids.iter().copied().zip(fps.iter().cloned()).collect();
            for (k, q) in fps.iter().enumerate() {
                prop_assert_eq!(index.find_below(q, t, k as DocId), brute(&live[..k], q, t));
                prop_assert_eq!(index.find(q, t), brute(&live, q, t));
            }
            // The same self-join as start-up makes it, on every core and handed back in
            // order: inserted from what was prepared, each post looked up without making
            // its grams again.
            let expected: Vec<_> = (0..fps.len())
                .map(|k| (k as DocId, brute(&live[..k], &fps[k], t)))
                .collect();
            let mut fresh = PendingIndex::with_order(t, Arc::clone(&index.order));
            let preparer = fresh.preparer();
            let prepared: Vec<(usize, Prepared)> =
                fps.iter().enumerate().map(|(k, f)| (k, preparer.prepare(f))).collect();
            let mut joined = Vec::new();
            fresh.insert_many_prepared_finding_each(prepared, t, |index, d, hits| {
                assert_eq!(index.key(d), Some(&(d as usize)));
                joined.push((d, hits));
            });
            prop_assert_eq!(joined, expected);
            // Its own postings serve the look-ups, removals and inserts that follow.
            for q in &fps {
                prop_assert_eq!(fresh.find(q, t), brute(&live, q, t));
            }
            prop_assert!(fresh.remove(0).is_some());
            prop_assert_eq!(fresh.find(&fps[0], t), brute(&live[1..], &fps[0], t));
            // A higher threshold than the index's is served too.
            let (q, higher) = (&fps[0], f64::max(t, 0.95));
            prop_assert_eq!(index.find(q, higher), brute(&live, q, higher));
        }

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
