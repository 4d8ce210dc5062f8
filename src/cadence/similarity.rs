//! Near-duplicate detection for cadence rules 5 (unique) and 6 (varied per platform).
//!
//! Why it exists: the SPEC defines "near-duplicate" exactly — normalize the text, then take
//! the Jaccard similarity of the sets of character 4-grams, and compare it with the
//! channel's `similarity` — and a channel's history over `unique_window`, plus the other
//! channels' for rule 6, can hold many posts. So this module owns both the exact definition
//! ([`normalize`], [`Fingerprint`], [`similarity`]) and an [`Index`] that finds every
//! near-duplicate of a text without comparing it with each entry.
//!
//! What it must not do: no IO, no clock, no logging (it is part of the pure policy); and it
//! must never approximate. [`Index::find`] returns exactly the entries brute-force
//! [`similarity`] would accept — no MinHash or LSH, which can miss a duplicate and so let a
//! repeated post go out. Its filters only skip entries that provably cannot qualify; the
//! final word is always the same exact Jaccard that [`similarity`] computes.

use std::collections::HashMap;

use unicode_normalization::UnicodeNormalization;

/// The SPEC's normalization, in its order: Unicode NFKC; lowercase; each URL replaced by
/// its host and path; `@mentions` removed; `#` dropped; every run of characters that are
/// not letters or digits replaced by one space; trimmed.
///
/// ```
/// use cadenced::cadence::similarity::normalize;
/// assert_eq!(
///     normalize("Black Friday: 30% OFF! https://shop.example/bf?utm=x #Sale"),
///     "black friday 30 off shop example bf sale",
/// );
/// ```
pub fn normalize(text: &str) -> String {
    // NFKC first so full-width letters, ligatures and full-width punctuation (`：`, `！`,
    // `＃`, `＠`) take their plain forms before anything looks for URLs, `@` or `#`.
    let folded = nfkc_lowercase(text);
    collapse_non_alphanumeric(&strip_links_mentions_hashes(&folded))
}

/// `text` in NFKC, lowercased. Most posts are NFKC already (ASCII always is), and then
/// only the lowercasing is left to do: composing every character was a third of reading
/// a post at start-up.
fn nfkc_lowercase(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    match unicode_normalization::is_nfkc_quick(text.chars()) {
        unicode_normalization::IsNormalized::Yes => text.to_lowercase(),
        _ => text.nfkc().collect::<String>().to_lowercase(),
    }
}

/// A letter, digit or `_`: what may precede an `@` that is not a mention (an email
/// address's local part). Unicode-aware, since email local parts may be.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Characters a URL may contain: RFC 3986's unreserved and reserved characters and `%`,
/// ASCII only. Ending a URL at the first non-ASCII character keeps text written right
/// after a link without a space (common in Chinese and Japanese) out of the link's path.
fn is_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// Characters of a handle segment on the platforms cadenced posts to (X, Mastodon and
/// Bluesky handles are ASCII; Bluesky's are domain names, IDNs in punycode).
fn is_handle_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Steps 3 to 5 of the normalization, in one left-to-right pass over lowercased NFKC text.
///
/// A URL is replaced first and its host and path are then left alone: a link to a profile
/// (`https://mastodon.social/@anna`) is a link, so its `@anna` is not a mention to remove;
/// a different link must still make a post different.
fn strip_links_mentions_hashes(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let prev = s[..i].chars().next_back();
        if let Some(url) = url_at(&s[i..], prev) {
            out.push_str(url.host);
            out.push_str(url.path);
            i += url.len;
            continue;
        }
        // A mention starts at the beginning or after a non-word character, so the domain
        // of `anna@shop.example` stays text.
        if bytes[i] == b'@' && prev.is_none_or(|c| !is_word_char(c)) {
            let len = mention_len(&bytes[i..]);
            if len > 0 {
                i += len;
                continue;
            }
        }
        let c = s[i..].chars().next().expect("i is on a char boundary");
        // `#` is dropped, not turned into a space: the SPEC says "dropped".
        if c != '#' {
            out.push(c);
        }
        i += c.len_utf8();
    }
    out
}

struct Url<'a> {
    /// Bytes of the text the URL takes, query and fragment included.
    len: usize,
    host: &'a str,
    /// Starts with `/` or is empty.
    path: &'a str,
}

/// The URL starting at the beginning of `rest`, if any: `http://…`, `https://…` or a bare
/// `www.…`. Userinfo and port are not part of the host, so they are dropped with the
/// scheme, query and fragment.
fn url_at(rest: &str, prev: Option<char>) -> Option<Url<'_>> {
    let bytes = rest.as_bytes();
    let start = if rest.starts_with("https://") {
        8
    } else if rest.starts_with("http://") {
        7
    } else if rest.starts_with("www.")
        // A bare `www.` only starts a URL where a host could start: not inside a word, a
        // host name, a path or an email address. (A scheme needs no such check: `://` is
        // distinctive, and Japanese text often runs straight into a link.)
        && prev.is_none_or(|c| !(c.is_ascii_alphanumeric() || "_.-@/".contains(c)))
    {
        0
    } else {
        return None;
    };
    let end = start
        + bytes[start..]
            .iter()
            .take_while(|&&b| is_url_byte(b))
            .count();
    let authority_end = start
        + bytes[start..end]
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(end - start);
    let authority = &rest[start..authority_end];
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let host = if host_port.starts_with('[') {
        // An IPv6 literal keeps its brackets; its colons are not a port.
        host_port.find(']').map_or(host_port, |i| &host_port[..=i])
    } else {
        host_port.split(':').next().unwrap_or(host_port)
    };
    if host.is_empty() {
        return None;
    }
    let path_end = authority_end
        + bytes[authority_end..end]
            .iter()
            .position(|&b| matches!(b, b'?' | b'#'))
            .unwrap_or(end - authority_end);
    Some(Url {
        len: end,
        host,
        path: &rest[authority_end..path_end],
    })
}

/// Bytes taken by the mention at the start of `b` (which starts with `@`), 0 if none.
///
/// A handle is segments of `[a-z0-9_]` joined by `.`, `-` or `@`, so `@anna`,
/// `@anna.bsky.social` and Mastodon's `@anna@mastodon.social` are removed whole, while a
/// sentence's final `.` after `@anna.` stays (it is punctuation, not a segment).
fn mention_len(b: &[u8]) -> usize {
    let segment = |from: usize| {
        b[from.min(b.len())..]
            .iter()
            .take_while(|&&c| is_handle_byte(c))
            .count()
    };
    let first = segment(1);
    if first == 0 {
        return 0;
    }
    let mut i = 1 + first;
    while i < b.len() && matches!(b[i], b'.' | b'-' | b'@') {
        let n = segment(i + 1);
        if n == 0 {
            break;
        }
        i += 1 + n;
    }
    i
}

/// Every run of characters that are not letters or digits becomes one space; no space at
/// either end. Letters and digits are `char::is_alphanumeric`, so CJK ideographs are kept
/// and combining marks NFKC could not compose (some Indic vowel signs) become spaces —
/// the same way on both texts, so they still compare fairly.
fn collapse_non_alphanumeric(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut gap = false;
    for c in s.chars() {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        } else {
            gap = true;
        }
    }
    out
}

/// The text the uniqueness rules compare: the SPEC's normalization, or, when that leaves
/// nothing (a post of emoji only), the trimmed text itself with its whitespace folded, so
/// two different emoji posts are not "the same". Empty for a post without text: such posts
/// (media only) are not compared at all.
pub fn comparable(text: &str) -> String {
    let normalized = normalize(text);
    if !normalized.is_empty() {
        return normalized;
    }
    let folded = nfkc_lowercase(text);
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The comparable form of a normalized text: the text and its set of character 4-grams.
///
/// Each gram is its four chars packed into a `u128` (32 bits each), so the set is exact: no
/// hash, hence no collision that could make two different texts look alike. The grams are
/// sorted and deduplicated, which makes Jaccard a linear merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    normalized: String,
    grams: Box<[u128]>,
}

impl Fingerprint {
    /// Texts shorter than this many characters after normalization compare by equality.
    pub const GRAM: usize = 4;

    /// The fingerprint of an already normalized text (as the log stores it). It is not
    /// normalized again.
    pub fn of_normalized(normalized: &str) -> Fingerprint {
        let chars: Vec<u32> = normalized.chars().map(u32::from).collect();
        let grams: Vec<u128> = if chars.iter().all(|&c| c <= 0xFFFF) {
            // Every character in the Basic Multilingual Plane (Latin, CJK, nearly every
            // post): four 16-bit fields in a u64 sort in the same order as four 32-bit
            // fields in a u128, and sorting half the bytes was a third of making a post's
            // grams.
            let mut narrow: Vec<u64> = chars
                .windows(Self::GRAM)
                .map(|w| {
                    (u64::from(w[0]) << 48)
                        | (u64::from(w[1]) << 32)
                        | (u64::from(w[2]) << 16)
                        | u64::from(w[3])
                })
                .collect();
            narrow.sort_unstable();
            narrow.dedup();
            narrow
                .into_iter()
                .map(|g| {
                    let field = |shift: u32| u128::from((g >> shift) & 0xFFFF);
                    (field(48) << 96) | (field(32) << 64) | (field(16) << 32) | field(0)
                })
                .collect()
        } else {
            let mut grams: Vec<u128> = chars.windows(Self::GRAM).map(wide_gram).collect();
            grams.sort_unstable();
            grams.dedup();
            grams
        };
        Fingerprint {
            normalized: normalized.to_string(),
            grams: grams.into_boxed_slice(),
        }
    }

    pub fn of_text(text: &str) -> Fingerprint {
        Fingerprint::of_normalized(&normalize(text))
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// How many distinct 4-grams the text has (0 for a short text).
    pub fn gram_count(&self) -> usize {
        self.grams.len()
    }

    /// Shorter than 4 characters: compared by equality, not by grams.
    pub fn is_short(&self) -> bool {
        self.grams.is_empty()
    }

    /// The distinct 4-grams, each packed into a `u128`, ascending.
    pub fn grams(&self) -> &[u128] {
        &self.grams
    }
}

/// Four characters packed into a gram, 32 bits each.
fn wide_gram(w: &[u32]) -> u128 {
    (u128::from(w[0]) << 96)
        | (u128::from(w[1]) << 64)
        | (u128::from(w[2]) << 32)
        | u128::from(w[3])
}

/// A 32-bit token for a gram, for indexes that keep tokens instead of grams (the log's
/// index on disk, the pending posts' index in memory). Two grams may share a token, so a
/// token match only makes a candidate; the exact grams decide. The function is part of the
/// log's on-disk format: changing it means re-indexing the log (see `store::history`).
pub fn gram_token(gram: u128) -> u32 {
    // SplitMix64's finalizer over both halves: cheap, and every input bit moves the output.
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let h = mix((gram as u64) ^ mix((gram >> 64) as u64 ^ 0x9E37_79B9_7F4A_7C15));
    (h ^ (h >> 32)) as u32
}

/// Jaccard similarity of the 4-gram sets (equality for short texts): 1.0 for identical
/// normalized texts, 0.0 for texts with no gram in common.
pub fn similarity(a: &Fingerprint, b: &Fingerprint) -> f64 {
    if a.is_short() || b.is_short() {
        // A short text cannot equal a long one, so this also gives 0.0 for short vs long.
        return if a.normalized == b.normalized {
            1.0
        } else {
            0.0
        };
    }
    jaccard(
        intersection_len(&a.grams, &b.grams),
        a.grams.len(),
        b.grams.len(),
    )
}

pub fn is_near_duplicate(a: &Fingerprint, b: &Fingerprint, threshold: f64) -> bool {
    similarity(a, b) >= threshold
}

/// The one place Jaccard is computed as a float, so [`similarity`] and [`Index::find`]
/// give bit-identical values and agree at the threshold.
pub(crate) fn jaccard(intersection: usize, a: usize, b: usize) -> f64 {
    intersection as f64 / (a + b - intersection) as f64
}

/// Size of the intersection of two sorted, deduplicated slices.
pub(crate) fn intersection_len<T: Ord + Copy>(a: &[T], b: &[T]) -> usize {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        // Branch-free steps: which side advances is data-dependent and unpredictable.
        let (x, y) = (a[i], b[j]);
        n += usize::from(x == y);
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    n
}

/// [`intersection_len`] when it is at least `needed`; `None` as soon as the rest of the
/// slices could no longer bring it there. Most candidates fail, and fail early.
fn intersection_len_at_least(a: &[u32], b: &[u32], needed: usize) -> Option<usize> {
    let (mut i, mut j, mut n) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        if n + (a.len() - i).min(b.len() - j) < needed {
            return None;
        }
        let (x, y) = (a[i], b[j]);
        n += usize::from(x == y);
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    (n >= needed).then_some(n)
}

// Bounds derived from `threshold` are computed in floating point, and a filter that is off
// by one gram at the boundary would drop a true near-duplicate (e.g. 7/25 × 25 evaluates to
// 7.000000000000001, whose ceiling would wrongly demand 8 shared grams of an entry whose
// similarity is exactly 7/25). So every bound is
// loosened by a relative 1e-9 before rounding: far more than the few ulps of error in
// computing it and in `jaccard`'s division (which `similarity ≥ t` inherits), far less than
// one gram for any text a post can hold. Loosening only admits more candidates, and the
// exact Jaccard still decides.
const SLACK: f64 = 1e-9;

/// The smallest integer that can be ≥ `x`, allowing for rounding.
pub(crate) fn at_least(x: f64) -> usize {
    (x * (1.0 - SLACK)).ceil() as usize
}

/// The largest integer that can be ≤ `x`, allowing for rounding (saturates for huge `x`).
pub(crate) fn at_most(x: f64) -> usize {
    (x * (1.0 + SLACK)).floor() as usize
}

/// What a query cost; the benchmark reports it, tests check the filters do work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FindStats {
    /// Postings read from the inverted index.
    pub postings_scanned: usize,
    /// Distinct entries that shared a probed gram and passed the size filter.
    pub candidates: usize,
    /// Entries whose exact Jaccard was computed (candidates left by the overlap filter).
    pub verified: usize,
}

/// Finds near-duplicates among many fingerprints without comparing with each one.
///
/// An inverted index (gram → entries that contain it) finds candidates; exact Jaccard
/// decides. For a query with `a` grams and threshold `t`, an entry can only qualify if it
/// shares at least `o = ⌈t·a⌉` grams with the query (the union is at least `a`), so it
/// must share one of any `a − o + 1` of the query's grams: `find` reads the postings of
/// only the rarest such grams (prefix filtering by rarity), and grams no entry has cost
/// nothing. Entries outside `t·a ≤ b ≤ a/t` grams are skipped; an entry first met late in
/// the probe, or sharing too few probed grams, cannot reach the overlap its size needs
/// (`t·(a+b)/(1+t)`) and is dropped; the exact check stops as soon as that overlap is out
/// of reach. Each filter only drops entries that provably fall below `t`.
///
/// Entries are stored compactly: each distinct gram gets a `u32` id, and an entry keeps
/// its sorted gram ids in one shared array. Texts shorter than 4 characters go in an
/// exact-match map. Entries are never removed: build a fresh index for the window in
/// question.
#[derive(Debug, Clone)]
pub struct Index<K> {
    keys: Vec<K>,
    gram_ids: HashMap<u128, u32>,
    /// By gram id: the entries that contain the gram, ascending.
    postings: Vec<Vec<u32>>,
    /// Entry `e`'s sorted gram ids are `entry_grams[entry_ends[e-1]..entry_ends[e]]`.
    entry_grams: Vec<u32>,
    entry_ends: Vec<u32>,
    /// Short texts by normalized text: the entries holding it, ascending.
    short: HashMap<Box<str>, Vec<u32>>,
    /// The most grams any entry has: caps the size filter's upper bound.
    max_gram_count: usize,
}

impl<K: Clone> Default for Index<K> {
    fn default() -> Self {
        Index {
            keys: Vec::new(),
            gram_ids: HashMap::new(),
            postings: Vec::new(),
            entry_grams: Vec::new(),
            entry_ends: Vec::new(),
            short: HashMap::new(),
            max_gram_count: 0,
        }
    }
}

/// A query's grams in the index's terms.
struct Query<'a> {
    fingerprint: &'a Fingerprint,
    /// Ids of the query's grams that some entry has, sorted.
    known: Vec<u32>,
}

impl<K: Clone> Index<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, key: K, fingerprint: Fingerprint) {
        let entry = u32::try_from(self.keys.len()).expect("an index holds fewer than 2^32 entries");
        self.keys.push(key);
        if fingerprint.is_short() {
            self.short
                .entry(fingerprint.normalized.into_boxed_str())
                .or_default()
                .push(entry);
        } else {
            let start = self.entry_grams.len();
            for &gram in fingerprint.grams.iter() {
                let fresh = u32::try_from(self.postings.len()).expect("fewer than 2^32 grams");
                let id = *self.gram_ids.entry(gram).or_insert(fresh);
                if id == fresh {
                    self.postings.push(Vec::new());
                }
                self.postings[id as usize].push(entry);
                self.entry_grams.push(id);
            }
            self.entry_grams[start..].sort_unstable();
            self.max_gram_count = self.max_gram_count.max(fingerprint.gram_count());
        }
        let end = u32::try_from(self.entry_grams.len()).expect("fewer than 2^32 postings");
        self.entry_ends.push(end);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every entry whose similarity with `fingerprint` is ≥ `threshold`, with that similarity,
    /// in insertion order. Exactly what comparing with each entry by [`similarity`] would
    /// return. A threshold ≤ 0 accepts every entry (that is a full scan, by definition); a
    /// threshold above 1 or NaN accepts none.
    pub fn find(&self, fingerprint: &Fingerprint, threshold: f64) -> Vec<(K, f64)> {
        self.find_with_stats(fingerprint, threshold).0
    }

    /// [`Index::find`], also saying how much work the query took.
    pub fn find_with_stats(
        &self,
        fingerprint: &Fingerprint,
        threshold: f64,
    ) -> (Vec<(K, f64)>, FindStats) {
        let mut stats = FindStats::default();
        let t = threshold;
        if t.is_nan() || t > 1.0 {
            return (Vec::new(), stats);
        }
        let query = Query {
            fingerprint,
            known: self.known_ids(fingerprint),
        };
        if t <= 0.0 {
            let hits = (0..self.keys.len())
                .map(|e| (self.keys[e].clone(), self.similarity_to(&query, e)))
                .collect();
            stats.verified = self.keys.len();
            return (hits, stats);
        }
        if fingerprint.is_short() {
            // Only an equal short text reaches similarity 1.0; everything else is 0.0 < t.
            let hits = self
                .equal_short(fingerprint)
                .iter()
                .map(|&e| (self.keys[e as usize].clone(), 1.0))
                .collect();
            return (hits, stats);
        }

        let a = fingerprint.gram_count();
        // A qualifying entry shares at least `min_overlap` grams with the query, so it
        // shares one of any `probe` of the query's grams.
        let min_overlap = at_least(t * a as f64).clamp(1, a);
        let probe = a - min_overlap + 1;
        let unknown = a - query.known.len();
        if probe <= unknown {
            // Grams no entry has can be "probed" for free and match nothing.
            return (Vec::new(), stats);
        }
        // Rarest first, so the long postings lists come last, when few entries can still
        // become candidates (see `room` below).
        let mut by_rarity = query.known.clone();
        by_rarity.sort_unstable_by_key(|&id| self.postings[id as usize].len());
        let probed = &by_rarity[..probe - unknown];

        // Size filter: I ≤ min(a, b) and U ≥ max(a, b), so t·a ≤ b ≤ a/t.
        let size_lo = at_least(t * a as f64);
        let size_hi = at_most(a as f64 / t).min(self.max_gram_count);
        if size_lo > size_hi {
            return (Vec::new(), stats);
        }
        // Overlap an entry of `b` grams needs: I ≥ t·U = t·(a + b − I) ⇔ I ≥ t·(a+b)/(1+t).
        let needed: Vec<usize> = (size_lo..=size_hi)
            .map(|b| at_least(t * (a + b) as f64 / (1.0 + t)))
            .collect();

        // Overlap counting over the probed grams, in a dense array: no hashing, no sorting
        // of postings. Zeroing it costs 4 bytes per entry (400 KB at 100,000 entries), small
        // beside the postings a query reads in an index that size.
        let mut shared = vec![0u32; self.keys.len()];
        let mut candidates: Vec<u32> = Vec::new();
        for (k, &id) in probed.iter().enumerate() {
            // An entry first met here lacks the `unknown + k` query grams probed before,
            // so it shares at most `room` grams with the query.
            let room = a - unknown - k;
            let postings = &self.postings[id as usize];
            stats.postings_scanned += postings.len();
            for &e in postings {
                let b = self.gram_ids_of(e as usize).len();
                if b < size_lo || b > size_hi {
                    continue;
                }
                let count = &mut shared[e as usize];
                if *count == 0 {
                    if room < needed[b - size_lo] {
                        continue;
                    }
                    candidates.push(e);
                }
                *count += 1;
            }
        }
        stats.candidates = candidates.len();

        // An entry shares its counted grams plus at most all unprobed ones.
        let unprobed = a - probe;
        let mut hits: Vec<(u32, f64)> = Vec::new();
        for e in candidates {
            let grams = self.gram_ids_of(e as usize);
            let b = grams.len();
            if shared[e as usize] as usize + unprobed < needed[b - size_lo] {
                continue;
            }
            stats.verified += 1;
            let Some(shared) = intersection_len_at_least(&query.known, grams, needed[b - size_lo])
            else {
                continue;
            };
            let s = jaccard(shared, a, b);
            if s >= t {
                hits.push((e, s));
            }
        }
        hits.sort_unstable_by_key(|&(e, _)| e);
        let hits = hits
            .into_iter()
            .map(|(e, s)| (self.keys[e as usize].clone(), s))
            .collect();
        (hits, stats)
    }

    /// A rough count of the heap bytes the index holds (keys counted by their inline size
    /// only), for capacity planning and the benchmark.
    pub fn approx_heap_bytes(&self) -> usize {
        use std::mem::size_of;
        // hashbrown keeps about 8 buckets per 7 usable slots, plus one control byte each.
        let map = |capacity: usize, slot: usize| capacity * 8 / 7 * (slot + 1);
        self.keys.capacity() * size_of::<K>()
            + map(self.gram_ids.capacity(), size_of::<(u128, u32)>())
            + self.postings.capacity() * size_of::<Vec<u32>>()
            + self
                .postings
                .iter()
                .map(|p| p.capacity() * 4)
                .sum::<usize>()
            + self.entry_grams.capacity() * 4
            + self.entry_ends.capacity() * 4
            + map(self.short.capacity(), size_of::<(Box<str>, Vec<u32>)>())
            + self
                .short
                .iter()
                .map(|(k, v)| k.len() + v.capacity() * 4)
                .sum::<usize>()
    }

    fn known_ids(&self, fingerprint: &Fingerprint) -> Vec<u32> {
        let mut ids: Vec<u32> = fingerprint
            .grams
            .iter()
            .filter_map(|g| self.gram_ids.get(g).copied())
            .collect();
        ids.sort_unstable();
        ids
    }

    fn gram_ids_of(&self, e: usize) -> &[u32] {
        let start = if e == 0 {
            0
        } else {
            self.entry_ends[e - 1] as usize
        };
        &self.entry_grams[start..self.entry_ends[e] as usize]
    }

    fn equal_short(&self, fingerprint: &Fingerprint) -> &[u32] {
        self.short
            .get(fingerprint.normalized())
            .map_or(&[], Vec::as_slice)
    }

    /// [`similarity`] between the query and entry `e`, from the index's compact form.
    fn similarity_to(&self, query: &Query<'_>, e: usize) -> f64 {
        let grams = self.gram_ids_of(e);
        let fingerprint = query.fingerprint;
        match (fingerprint.is_short(), grams.is_empty()) {
            (false, false) => jaccard(
                intersection_len(&query.known, grams),
                fingerprint.gram_count(),
                grams.len(),
            ),
            (true, true) => {
                let equal = self
                    .equal_short(fingerprint)
                    .binary_search(&(e as u32))
                    .is_ok();
                if equal { 1.0 } else { 0.0 }
            }
            // A short text never equals a long one.
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sim(a: &str, b: &str) -> f64 {
        similarity(&Fingerprint::of_text(a), &Fingerprint::of_text(b))
    }

    /// Jaccard values below are exact ratios, so compare with the same division.
    fn ratio(n: u32, d: u32) -> f64 {
        f64::from(n) / f64::from(d)
    }

    #[test]
    fn spec_table() {
        assert_eq!(
            normalize("Black Friday: 30% OFF! https://shop.example/bf?utm=x #Sale"),
            "black friday 30 off shop example bf sale"
        );
        assert_eq!(
            normalize("冬季促销：全场八折！#冬季促销"),
            "冬季促销 全场八折 冬季促销"
        );
        assert_eq!(
            normalize("@anna thanks — see https://shop.example/p/2#top"),
            "thanks see shop example p 2"
        );
    }

    #[test]
    fn nfkc_and_lowercase_come_first() {
        // Full-width letters, a ligature, full-width `＃` and `＠` all fold before the
        // hashtag and mention rules look for them.
        assert_eq!(
            normalize("ＳＡＬＥ ﬁnal ＃Ｄｅａｌ ＠ａｎｎａ"),
            "sale final deal"
        );
        assert_eq!(normalize("ΣΟΦΙΑ"), "σοφια");
        assert_eq!(normalize("  --  "), "");
        assert_eq!(normalize("a_b"), "a b");
    }

    #[test]
    fn urls_keep_host_and_path_only() {
        assert_eq!(
            normalize("http://shop.example/p/red?a=1&b=2#x"),
            "shop example p red"
        );
        assert_eq!(normalize("HTTPS://Shop.Example"), "shop example");
        // Userinfo and port are not the host.
        assert_eq!(
            normalize("https://me:pw@shop.example:8443/p"),
            "shop example p"
        );
        assert_eq!(
            normalize("see www.shop.example/p/red?utm_source=x."),
            "see www shop example p red"
        );
        // Not a bare URL inside a word or an email address.
        assert_eq!(normalize("awww.cute?yes"), "awww cute yes");
        // A link ends where non-ASCII text runs into it; the text stays.
        assert_eq!(
            normalize("見てhttps://shop.example/p?x=1新品"),
            "見てshop example p新品"
        );
        // A profile link is a link: its `@anna` is path, not a mention.
        assert_eq!(
            normalize("https://mastodon.social/@anna?x"),
            "mastodon social anna"
        );
        assert_eq!(normalize("https:// nothing"), "https nothing");
    }

    #[test]
    fn tracking_parameters_do_not_make_a_post_new() {
        let a = "Back in stock! https://shop.example/p/red-sneakers?utm_source=x&utm_medium=social";
        let b = "Back in stock! https://shop.example/p/red-sneakers?utm_source=mastodon#reviews";
        assert_eq!(Fingerprint::of_text(a), Fingerprint::of_text(b));
        assert_eq!(sim(a, b), 1.0);
    }

    #[test]
    fn a_different_product_page_makes_a_post_new() {
        // "back in stock shop example p " (29 chars) is common: its 26 grams are shared.
        // The rest are all distinct: 38 grams in the 41-char text, 36 in the 39-char one,
        // so the union is 38 + 36 − 26 = 48.
        let a = "Back in stock! https://shop.example/p/red-sneakers";
        let b = "Back in stock! https://shop.example/p/blue-boots";
        assert_eq!(normalize(a), "back in stock shop example p red sneakers");
        assert_eq!(sim(a, b), ratio(26, 48));
        assert!(!is_near_duplicate(
            &Fingerprint::of_text(a),
            &Fingerprint::of_text(b),
            0.8
        ));
    }

    #[test]
    fn one_word_changed_in_a_long_latin_sentence_is_a_near_duplicate() {
        // 94 chars, all 91 grams distinct. The 8 grams touching "linen" go, the 9 touching
        // "cotton" come, but "n sh" is in both (both words end in n): I = 91 − 8 + 1 = 84,
        // U = 84 + 7 + 8 = 99.
        let a = "Summer sale begins Friday with new linen shirts in every size and colour at half price by mail";
        let b = a.replace("linen", "cotton");
        assert_eq!(sim(a, &b), ratio(84, 99));
        assert!(sim(a, &b) >= 0.8);
    }

    #[test]
    fn one_word_changed_in_a_shorter_sentence_is_not() {
        // 61 chars, 58 distinct grams: I = 58 − 8 + 1 = 51, U = 51 + 7 + 8 = 66.
        let a = "Summer sale begins Friday with new linen shirts in every size";
        let b = a.replace("linen", "cotton");
        assert_eq!(sim(a, &b), ratio(51, 66));
        assert!(sim(a, &b) < 0.8);
    }

    #[test]
    fn cjk_near_duplicates() {
        // 18 ideographs, 15 distinct grams; changing one interior character replaces the 4
        // grams that touch it: I = 11, U = 11 + 4 + 4 = 19. Not a near-duplicate at 0.8.
        let a = "冬季促销全场八折欢迎光临本店新品上市";
        let b = "冬季促销全场九折欢迎光临本店新品上市";
        assert_eq!(sim(a, b), ratio(11, 19));
        // Punctuation differences vanish; appending a 4-character phrase to a 26-character
        // text adds 5 grams (the space and the 4 new characters each end one): 23 / 28.
        let c = "冬季促销，全场八折！欢迎光临本店。新品上市，数量有限";
        let d = "冬季促销 全场八折 欢迎光临本店 新品上市 数量有限 先到先得";
        assert_eq!(
            normalize(c),
            "冬季促销 全场八折 欢迎光临本店 新品上市 数量有限"
        );
        assert_eq!(sim(c, d), ratio(23, 28));
        assert!(sim(c, d) >= 0.8);
    }

    #[test]
    fn hashtags_only_lose_their_hash() {
        assert_eq!(
            sim(
                "Winter sale starts now #sale",
                "Winter sale starts now sale"
            ),
            1.0
        );
        assert_eq!(sim("#冬季促销 开始了!", "冬季促销 开始了"), 1.0);
        // A space is a character, so only hashtags lose nothing: "冬季促销 开始了" and
        // "冬季促销开始了" share only the gram 冬季促销, of 5 + 4 grams: 1 / 8.
        assert_eq!(sim("#冬季促销 开始了", "#冬季促销开始了"), ratio(1, 8));
        // `#SummerSale` keeps its word, unsplit: the 20 grams of "new linen shirts summer"
        // are shared, then "mers ersa rsal sale" vs "mer_ er_s r_sa _sal sale" share "sale":
        // I = 21, U = 24 + 25 − 21 = 28.
        assert_eq!(
            sim(
                "New linen shirts #SummerSale",
                "New linen shirts summer sale"
            ),
            ratio(21, 28)
        );
    }

    #[test]
    fn mentions_are_removed_but_email_addresses_stay() {
        assert_eq!(
            sim(
                "@anna thanks for the lovely photo of our shop!",
                "Thanks for the lovely photo of our shop, @ben_k."
            ),
            1.0
        );
        assert_eq!(
            normalize("write to anna@shop.example"),
            "write to anna shop example"
        );
        assert_eq!(
            normalize("hi @anna@mastodon.social and @bo.bsky.social!"),
            "hi and"
        );
        assert_eq!(normalize("thanks @anna. see you"), "thanks see you");
        assert_eq!(normalize("(@anna)谢谢"), "谢谢");
        assert_eq!(normalize("a @ b"), "a b");
    }

    #[test]
    fn short_texts_compare_by_equality() {
        assert_eq!(sim("OK!", "ok"), 1.0);
        assert_eq!(sim("ok", "no"), 0.0);
        assert_eq!(sim("abc", "abcd"), 0.0);
        assert_eq!(sim("abcd", "abcd"), 1.0);
        assert!(Fingerprint::of_text("a b").is_short());
        assert!(!Fingerprint::of_text("ab c").is_short());
        // The SPEC compares short texts by equality, so two texts that normalize to
        // nothing (emoji only) are equal.
        assert_eq!(sim("🎉🎉", "✨"), 1.0);
    }

    #[test]
    fn grams_are_exact_sets() {
        let fp = Fingerprint::of_normalized("abab ab");
        // Windows "abab", "bab ", "ab a", "b ab": 4 distinct grams.
        assert_eq!(fp.gram_count(), 4);
        let fp = Fingerprint::of_normalized("aaaaaa");
        assert_eq!(fp.gram_count(), 1);
        assert_eq!(sim("aaaaaa", "aaaa"), 1.0);
    }

    fn index_of(texts: &[&str]) -> Index<usize> {
        let mut index = Index::new();
        for (i, t) in texts.iter().enumerate() {
            index.insert(i, Fingerprint::of_text(t));
        }
        index
    }

    #[test]
    fn index_finds_near_duplicates_and_short_texts() {
        let long = "Summer sale begins Friday with new linen shirts in every size and colour at half price by mail";
        let texts = [
            long,
            "Something else entirely about our opening hours",
            "ok",
            "OK!",
            "no",
            &long.replace("linen", "cotton"),
        ];
        let index = index_of(&texts);
        assert_eq!(index.len(), 6);
        assert!(!index.is_empty());
        assert_eq!(
            index.find(&Fingerprint::of_text(long), 0.8),
            vec![(0, 1.0), (5, ratio(84, 99))]
        );
        assert_eq!(
            index.find(&Fingerprint::of_text("Ok."), 0.8),
            vec![(2, 1.0), (3, 1.0)]
        );
        assert_eq!(
            index.find(&Fingerprint::of_text("fresh words here"), 0.8),
            vec![]
        );
        // Threshold edges: ≤ 0 is everyone, > 1 and NaN are no one, 1 is equal grams.
        assert_eq!(index.find(&Fingerprint::of_text("ok"), 0.0).len(), 6);
        assert_eq!(index.find(&Fingerprint::of_text(long), 1.0000001), vec![]);
        assert_eq!(index.find(&Fingerprint::of_text(long), f64::NAN), vec![]);
        assert_eq!(index.find(&Fingerprint::of_text(long), 1.0), vec![(0, 1.0)]);
        assert!(Index::<usize>::new().is_empty());
    }

    #[test]
    fn index_reads_only_rare_postings() {
        // 200 entries share "summer sale begins friday"; the query shares that too, but
        // is only a near-duplicate of one. Prefix filtering must skip the common grams.
        let mut index = Index::new();
        for i in 0..200 {
            index.insert(
                i,
                Fingerprint::of_text(&format!(
                    "Summer sale begins Friday, item {i}: {}",
                    "x".repeat(i % 7)
                )),
            );
        }
        let target = "Summer sale begins Friday with new linen shirts in every size and colour at half price by mail";
        index.insert(200, Fingerprint::of_text(target));
        let (hits, stats) = index.find_with_stats(
            &Fingerprint::of_text(&target.replace("linen", "cotton")),
            0.8,
        );
        assert_eq!(hits, vec![(200, ratio(84, 99))]);
        assert_eq!(stats.candidates, 1, "{stats:?}");
        assert_eq!(stats.verified, 1);
        assert!(stats.postings_scanned < 50, "{stats:?}");
    }

    #[test]
    fn filter_bounds_allow_for_rounding() {
        // 7/25 × 25 is 7.000000000000001 in floating point: a filter taking its ceiling
        // would demand 8 shared grams of a 25-gram query and miss an entry that shares 7,
        // whose similarity is exactly 7/25.
        let t = 7.0 / 25.0;
        assert!(t * 25.0 > 7.0);
        assert_eq!(at_least(t * 25.0), 7);
        let a = Fingerprint::of_normalized("abcdefghijklmnopqrstuvwxyz01"); // 25 grams
        let b = Fingerprint::of_normalized("abcdefghij"); // 7 of them
        assert_eq!(similarity(&a, &b), t);
        let mut index = Index::new();
        index.insert("b", b);
        assert_eq!(index.find(&a, t), vec![("b", t)]);
    }

    fn brute_force(corpus: &[Fingerprint], query: &Fingerprint, t: f64) -> Vec<(usize, f64)> {
        corpus
            .iter()
            .enumerate()
            .map(|(i, fp)| (i, similarity(query, fp)))
            .filter(|&(_, s)| s >= t)
            .collect()
    }

    fn threshold() -> impl Strategy<Value = f64> {
        prop_oneof![
            // Exact ratios hit the boundary where a filter off by one gram shows.
            (1u32..12, 1u32..12).prop_map(|(n, d)| f64::from(n.min(d)) / f64::from(d.max(n))),
            0.0f64..=1.0,
            Just(0.8),
            Just(0.0),
            Just(1.0),
            -0.5f64..0.0,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The shortcut for text in NFKC already changes nothing.
        #[test]
        fn nfkc_lowercase_equals_composing_every_character(
            text in prop_oneof![any::<String>(), "[a-zA-Z0-9 #@:/.]{0,40}", "[ａ-ｚＡ-Ｚ０-９ﬁé́中文Ⅻ ]{0,20}"],
        ) {
            prop_assert_eq!(nfkc_lowercase(&text), text.nfkc().collect::<String>().to_lowercase());
        }


        /// Grams made through 16-bit fields (every character in the BMP) are the grams
        /// made through 32-bit ones, in the same order.
        #[test]
        fn grams_of_bmp_text_equal_the_wide_grams(
            text in prop_oneof![any::<String>(), "[a-z 冬季促销é]{0,40}", "[a-z\u{FFFF}\u{10000}😀]{0,12}"],
        ) {
            let chars: Vec<u32> = text.chars().map(u32::from).collect();
            let mut wide: Vec<u128> = chars.windows(Fingerprint::GRAM).map(wide_gram).collect();
            wide.sort_unstable();
            wide.dedup();
            let fp = Fingerprint::of_normalized(&text);
            prop_assert_eq!(fp.grams(), &wide[..]);
        }

        /// A small alphabet makes texts share many grams, so candidates, the size filter and
        /// the overlap bound all come into play, as do short texts and CJK.
        #[test]
        fn index_find_equals_brute_force(
            corpus in prop::collection::vec("[ab cA#@冬]{0,14}", 0..40),
            queries in prop::collection::vec("[ab cA#@冬]{0,14}", 1..5),
            from_corpus in any::<prop::sample::Index>(),
            t in threshold(),
        ) {
            let fps: Vec<Fingerprint> = corpus.iter().map(|s| Fingerprint::of_text(s)).collect();
            let mut index = Index::new();
            for (i, fp) in fps.iter().enumerate() {
                index.insert(i, fp.clone());
            }
            let mut queries: Vec<Fingerprint> = queries.iter().map(|s| Fingerprint::of_text(s)).collect();
            if !fps.is_empty() {
                queries.push(fps[from_corpus.index(fps.len())].clone());
            }
            for q in &queries {
                prop_assert_eq!(index.find(q, t), brute_force(&fps, q, t), "query {:?} t {}", q.normalized(), t);
            }
        }

        /// Longer texts built from a few words, as near-duplicates are in practice.
        #[test]
        fn index_find_equals_brute_force_on_sentences(
            corpus in prop::collection::vec(prop::collection::vec(0usize..6, 3..12), 0..40),
            query in prop::collection::vec(0usize..6, 3..12),
            t in threshold(),
        ) {
            const WORDS: [&str; 6] = ["sale", "shirts", "new", "冬季", "促销", "friday"];
            let text = |ws: &Vec<usize>| ws.iter().map(|&w| WORDS[w]).collect::<Vec<_>>().join(" ");
            let fps: Vec<Fingerprint> = corpus.iter().map(|ws| Fingerprint::of_text(&text(ws))).collect();
            let mut index = Index::new();
            for (i, fp) in fps.iter().enumerate() {
                index.insert(i, fp.clone());
            }
            let q = Fingerprint::of_text(&text(&query));
            prop_assert_eq!(index.find(&q, t), brute_force(&fps, &q, t));
            // Thresholds equal to a similarity that occurs are where rounding bites.
            for fp in &fps {
                let t = similarity(&q, fp);
                prop_assert_eq!(index.find(&q, t), brute_force(&fps, &q, t), "t = {}", t);
            }
        }
    }

    #[test]
    fn emoji_only_posts_compare_as_themselves_and_empty_posts_not_at_all() {
        assert_eq!(comparable("Black Friday! #Sale"), "black friday sale");
        assert_eq!(comparable("🎉  🔥"), "🎉 🔥");
        let a = Fingerprint::of_normalized(&comparable("🎉🔥"));
        let b = Fingerprint::of_normalized(&comparable("🎉🔥"));
        let c = Fingerprint::of_normalized(&comparable("🌧️"));
        assert_eq!(similarity(&a, &b), 1.0);
        assert_eq!(similarity(&a, &c), 0.0);
        assert_eq!(comparable("  \n "), "");
    }
}
