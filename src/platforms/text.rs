//! Text counting rules shared by the platform files: how long a post is in each platform's
//! own unit, and where its URLs are.
//!
//! Each platform counts differently, and none of them counts `str::len` or `chars().count()`:
//! - X counts a weighted length (twitter-text v3): the text is NFC-normalised, code points in a
//!   few Latin/punctuation ranges weigh 1 and everything else 2, an emoji sequence weighs 2 as
//!   a whole, and every URL weighs 23 because X rewrites it to a t.co link.
//! - Mastodon counts extended grapheme clusters, with every `http(s)://` URL counted as 23 and a
//!   remote mention `@user@domain` counted as `@user`.
//! - Bluesky counts graphemes (limit 300) and UTF-8 bytes (limit 3000), URLs in full.
//!
//! URL detection decides most of the difference between a hand-written counter and the
//! platform's. The scanner below reimplements the rules of twitter-text's URL extractor (the
//! `extractUrl` expression and the checks after it): a URL may start after any character but a
//! Latin letter, a digit, `@`, `$` or `#`; a domain is a chain of labels that ends in a known
//! TLD (the embedded list is twitter-text's); labels longer than 63 characters once
//! punycode-encoded are refused; paths and queries may not end in punctuation. Mastodon's server
//! uses the same extractor with a few rules loosened (more schemes, any non-space path
//! character); both are expressed as a [`UrlRules`] value.
//!
//! This module only counts. It must not do IO, read the clock or know about posts: the
//! platform files decide what to count and what the limits are.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::LazyLock;

use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// What every URL counts as on X and Mastodon: the length of a t.co link, which Mastodon
/// copied so that counters agree.
pub const URL_LENGTH: usize = 23;

/// "shorten it by 1 character", "shorten it by 12 characters": the fix of a length
/// violation, with the unit in the right number.
pub fn shorten_by(over: usize, unit: &str) -> String {
    if over == 1 {
        format!("shorten it by 1 {unit}")
    } else {
        format!("shorten it by {over} {unit}s")
    }
}

/// X's limit in weighted characters (twitter-text v3 `maxWeightedTweetLength`).
pub const X_MAX_WEIGHTED_LENGTH: usize = 280;

/// Code point ranges that weigh 1 on X (twitter-text v3 `ranges`, weight 100 at scale 100).
/// Everything else weighs 2 (`defaultWeight` 200). Kept in step with
/// `tests/data/twitter-text/config-v3.json` by a test in `x.rs`.
pub const X_LIGHT_RANGES: [(u32, u32); 4] = [
    (0x0000, 0x10FF),
    (0x2000, 0x200D),
    (0x2010, 0x201F),
    (0x2032, 0x2037),
];

/// Characters that make a post invalid on X however short it is (twitter-text
/// `invalidCharsGroup`): byte-order marks and non-characters.
pub const X_INVALID_CHARS: [char; 3] = ['\u{FFFE}', '\u{FEFF}', '\u{FFFF}'];

// ---------------------------------------------------------------------------------------------
// Counting
// ---------------------------------------------------------------------------------------------

/// The X weighted length of a text and what went into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XCount {
    /// Weighted length as X counts it (twitter-text `weightedLength`).
    pub weighted: usize,
    /// How many URLs were counted as [`URL_LENGTH`] each.
    pub urls: usize,
    /// Characters X refuses anywhere in a post ([`X_INVALID_CHARS`]), in text order.
    pub invalid: Vec<char>,
}

/// Counts `text` as X does (twitter-text v3 with emoji parsing): NFC first, then every URL
/// weighs 23, every emoji sequence 2, and every other code point 1 or 2 by
/// [`X_LIGHT_RANGES`].
pub fn x_count(text: &str) -> XCount {
    let normalized: String = text.nfc().collect();
    let urls = find_urls(&normalized);
    let mut weighted = 0;
    let mut pos = 0;
    for url in &urls {
        weighted += x_weigh_plain(&normalized[pos..url.start]) + URL_LENGTH;
        pos = url.end;
    }
    weighted += x_weigh_plain(&normalized[pos..]);
    let invalid = normalized
        .chars()
        .filter(|c| X_INVALID_CHARS.contains(c))
        .collect();
    XCount {
        weighted,
        urls: urls.len(),
        invalid,
    }
}

/// The X weighted length of `text`; see [`x_count`].
pub fn x_weighted_length(text: &str) -> usize {
    x_count(text).weighted
}

/// Weight of one code point on X, in characters (1 or 2).
pub fn x_char_weight(c: char) -> usize {
    let cp = c as u32;
    if X_LIGHT_RANGES
        .iter()
        .any(|&(start, end)| (start..=end).contains(&cp))
    {
        1
    } else {
        2
    }
}

/// Weighs text that holds no URL. Segmenting into grapheme clusters first finds emoji
/// sequences (a family, a flag, a skin tone, a keycap) that X counts as 2 however many code
/// points they hold; any other cluster is the sum of its code points, as in twitter-text.
fn x_weigh_plain(text: &str) -> usize {
    text.graphemes(true)
        .map(|g| {
            if is_emoji_sequence(g) {
                2
            } else {
                g.chars().map(x_char_weight).sum()
            }
        })
        .sum()
}

/// Whether a grapheme cluster of two or more code points is one emoji as twitter-text's
/// emoji expression (from twemoji) sees it. A single code point needs no answer: any emoji
/// code point outside [`X_LIGHT_RANGES`] weighs 2 anyway, and the two inside (`©`, `®`) are
/// emoji only with U+FE0F, which makes two code points.
fn is_emoji_sequence(cluster: &str) -> bool {
    let mut chars = cluster.chars();
    let (Some(first), Some(second)) = (chars.next(), chars.next()) else {
        return false;
    };
    // U+FE0E asks for text presentation: twemoji does not match such a sequence.
    if cluster.contains('\u{FE0E}') {
        return false;
    }
    match first {
        '\u{1F1E6}'..='\u{1F1FF}' => ('\u{1F1E6}'..='\u{1F1FF}').contains(&second),
        '#' | '*' | '0'..='9' => cluster.contains('\u{20E3}'),
        '\u{A9}' | '\u{AE}' => second == '\u{FE0F}',
        _ => is_extended_pictographic(first),
    }
}

/// Unicode's Extended_Pictographic property (emoji-data.txt), the code points that start an
/// emoji sequence. Ranges merged where unassigned code points between them are reserved for
/// emoji too, as the property itself does.
fn is_extended_pictographic(c: char) -> bool {
    const RANGES: &[(u32, u32)] = &[
        (0x00A9, 0x00A9),
        (0x00AE, 0x00AE),
        (0x203C, 0x203C),
        (0x2049, 0x2049),
        (0x2122, 0x2122),
        (0x2139, 0x2139),
        (0x2194, 0x2199),
        (0x21A9, 0x21AA),
        (0x231A, 0x231B),
        (0x2328, 0x2328),
        (0x2388, 0x2388),
        (0x23CF, 0x23CF),
        (0x23E9, 0x23F3),
        (0x23F8, 0x23FA),
        (0x24C2, 0x24C2),
        (0x25AA, 0x25AB),
        (0x25B6, 0x25B6),
        (0x25C0, 0x25C0),
        (0x25FB, 0x25FE),
        (0x2600, 0x2605),
        (0x2607, 0x2612),
        (0x2614, 0x2685),
        (0x2690, 0x2705),
        (0x2708, 0x2712),
        (0x2714, 0x2714),
        (0x2716, 0x2716),
        (0x271D, 0x271D),
        (0x2721, 0x2721),
        (0x2728, 0x2728),
        (0x2733, 0x2734),
        (0x2744, 0x2744),
        (0x2747, 0x2747),
        (0x274C, 0x274C),
        (0x274E, 0x274E),
        (0x2753, 0x2755),
        (0x2757, 0x2757),
        (0x2763, 0x2767),
        (0x2795, 0x2797),
        (0x27A1, 0x27A1),
        (0x27B0, 0x27B0),
        (0x27BF, 0x27BF),
        (0x2934, 0x2935),
        (0x2B05, 0x2B07),
        (0x2B1B, 0x2B1C),
        (0x2B50, 0x2B50),
        (0x2B55, 0x2B55),
        (0x3030, 0x3030),
        (0x303D, 0x303D),
        (0x3297, 0x3297),
        (0x3299, 0x3299),
        (0x1F000, 0x1F0FF),
        (0x1F10D, 0x1F10F),
        (0x1F12F, 0x1F12F),
        (0x1F16C, 0x1F171),
        (0x1F17E, 0x1F17F),
        (0x1F18E, 0x1F18E),
        (0x1F191, 0x1F19A),
        (0x1F1AD, 0x1F1E5),
        (0x1F201, 0x1F20F),
        (0x1F21A, 0x1F21A),
        (0x1F22F, 0x1F22F),
        (0x1F232, 0x1F23A),
        (0x1F23C, 0x1F23F),
        (0x1F249, 0x1F3FA),
        (0x1F400, 0x1F53D),
        (0x1F546, 0x1F64F),
        (0x1F680, 0x1F6FF),
        (0x1F774, 0x1F77F),
        (0x1F7D5, 0x1F7FF),
        (0x1F80C, 0x1F80F),
        (0x1F848, 0x1F84F),
        (0x1F85A, 0x1F85F),
        (0x1F888, 0x1F88F),
        (0x1F8AE, 0x1F8FF),
        (0x1F90C, 0x1F93A),
        (0x1F93C, 0x1F945),
        (0x1F947, 0x1FAFF),
        (0x1FC00, 0x1FFFD),
    ];
    let cp = c as u32;
    RANGES
        .binary_search_by(|&(start, end)| {
            if end < cp {
                std::cmp::Ordering::Less
            } else if start > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// The length Mastodon checks against the instance's `max_characters`: the content warning
/// (`spoiler_text`) and the text are joined and counted in grapheme clusters, after every
/// `http(s)://` URL is replaced by 23 characters and every mention `@user@domain` by `@user`
/// (Mastodon's `StatusLengthValidator`).
pub fn mastodon_length(spoiler_text: &str, text: &str) -> usize {
    let mut combined = String::with_capacity(spoiler_text.len() + text.len());
    combined.push_str(spoiler_text);
    combined.push_str(&mastodon_countable_text(text));
    graphemes(&combined)
}

/// The text with URLs and mentions rewritten as Mastodon counts them; see [`mastodon_length`].
pub fn mastodon_countable_text(text: &str) -> String {
    if text.trim().is_empty() {
        return String::new();
    }
    // Mastodon extracts URLs and mentions separately, sorts them by start and drops any that
    // overlaps an earlier one, so a `@user` inside a URL path stays part of the URL.
    let mut entities: Vec<(Range<usize>, Option<usize>)> = find_mastodon_urls(text)
        .into_iter()
        .map(|r| (r, None))
        .collect();
    entities.extend(
        find_mastodon_mentions(text)
            .into_iter()
            .map(|m| (m.span, Some(m.username_end))),
    );
    entities.sort_by_key(|(r, _)| r.start);
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    for (span, username_end) in entities {
        if span.start < pos {
            continue;
        }
        out.push_str(&text[pos..span.start]);
        match username_end {
            None => out.extend(std::iter::repeat_n('x', URL_LENGTH)),
            Some(end) => out.push_str(&text[span.start..end]),
        }
        pos = span.end;
    }
    out.push_str(&text[pos..]);
    out
}

/// Number of extended grapheme clusters: what a reader sees as characters, and what Bluesky
/// and Mastodon count.
pub fn graphemes(text: &str) -> usize {
    text.graphemes(true).count()
}

/// Number of UTF-8 bytes (Bluesky's second limit).
pub fn utf8_bytes(text: &str) -> usize {
    text.len()
}

// ---------------------------------------------------------------------------------------------
// Links appended to the text
// ---------------------------------------------------------------------------------------------

/// Whether `body` already holds `link` as a whole URL (not just as the start of a longer one).
pub fn contains_link(body: &str, link: &str) -> bool {
    let link = link.trim();
    if link.is_empty() {
        return true;
    }
    body.match_indices(link).any(|(at, _)| {
        // A following character that could continue the URL means this is a different link
        // (`/sale` inside `/sale-2`); sentence punctuation after it does not.
        match body[at + link.len()..].chars().next() {
            None => true,
            Some(c) => !(c.is_alphanumeric() || "/-_~%#?&=+@".contains(c)),
        }
    })
}

/// The text a platform without a separate link field receives: the body, trimmed, and the
/// post's `link` after a blank line unless the body already holds it.
pub fn with_link(body: &str, link: Option<&str>) -> String {
    let body = body.trim();
    match link.map(str::trim) {
        Some(link) if !link.is_empty() && !contains_link(body, link) => {
            if body.is_empty() {
                link.to_string()
            } else {
                format!("{body}\n\n{link}")
            }
        }
        _ => body.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// URL detection
// ---------------------------------------------------------------------------------------------

/// The longest URL twitter-text accepts, protocol included (`MAX_URL_LENGTH`).
const MAX_URL_LENGTH: usize = 4096;
/// A t.co slug longer than this is not a t.co link (`MAX_TCO_SLUG_LENGTH`).
const MAX_TCO_SLUG_LENGTH: usize = 40;
/// DNS limit on one label, checked on the punycode form as twitter-text does.
const MAX_LABEL_LENGTH: usize = 63;

/// How one platform's server recognises URLs in post text. The structure (preceding
/// character, optional scheme, domain with a known TLD, port, path, query) is twitter-text's;
/// the character classes differ per platform.
#[derive(Debug, Clone, Copy)]
pub struct UrlRules {
    /// Schemes accepted before `://`, lowercase; matched without regard to case.
    schemes: &'static [&'static str],
    /// Whether a bare domain with a known TLD (`shop.example.com/sale`) counts as a URL.
    without_protocol: bool,
    path_char: fn(char) -> bool,
    /// Characters a path may end with (so `…/sale.` leaves the full stop out).
    path_end_char: fn(char) -> bool,
    query_char: fn(char) -> bool,
    query_end_char: fn(char) -> bool,
}

/// twitter-text v3, as X counts: `http(s)://` URLs and bare domains.
pub const TWITTER_URLS: UrlRules = UrlRules {
    schemes: &["https", "http"],
    without_protocol: true,
    path_char: twitter_path_char,
    path_end_char: twitter_path_end_char,
    query_char: twitter_query_char,
    query_end_char: twitter_query_end_char,
};

/// Mastodon's server (`config/initializers/twitter_regex.rb` on top of twitter-text): only
/// URLs with a scheme count, a few more schemes are known, and paths and queries take any
/// non-space character.
pub const MASTODON_URLS: UrlRules = UrlRules {
    schemes: &[
        "https", "http", "dat", "dweb", "ipfs", "ipns", "ssb", "gopher", "gemini",
    ],
    without_protocol: false,
    path_char: mastodon_path_char,
    path_end_char: mastodon_path_end_char,
    query_char: mastodon_query_char,
    query_end_char: mastodon_query_end_char,
};

/// Byte ranges of the URLs X finds in `text` (twitter-text rules). The text should already be
/// NFC-normalised if the ranges are to match what X counts; [`x_count`] does that.
pub fn find_urls(text: &str) -> Vec<Range<usize>> {
    find_urls_with(text, &TWITTER_URLS)
}

/// Byte ranges of the URLs Mastodon finds in `text` (only those with a scheme).
pub fn find_mastodon_urls(text: &str) -> Vec<Range<usize>> {
    find_urls_with(text, &MASTODON_URLS)
}

/// Byte ranges of the URLs `rules` finds in `text`, in text order, not overlapping.
pub fn find_urls_with(text: &str, rules: &UrlRules) -> Vec<Range<usize>> {
    // Every URL has a dot in its domain, and a scheme needs a colon.
    let needle = if rules.without_protocol { '.' } else { ':' };
    if !text.contains(needle) {
        return Vec::new();
    }
    let (offsets, chars): (Vec<usize>, Vec<char>) = text.char_indices().unzip();
    let byte = |i: usize| offsets.get(i).copied().unwrap_or(text.len());
    let scan = Scan::new(&chars, rules);
    let mut found = Vec::new();
    // twitter-text matches `(preceding char | start of text)(URL)` repeatedly, each search
    // starting where the previous match ended, preceding character included. Emulating that
    // (rather than "find a URL anywhere") decides cases such as two URLs with nothing between.
    let mut i = 0;
    while i < chars.len() {
        let mut hit = None;
        if may_precede_url(chars[i]) {
            hit = scan.match_at(i + 1).map(|m| (m, Some(chars[i])));
        }
        if hit.is_none() && i == 0 {
            hit = scan.match_at(0).map(|m| (m, None));
        }
        match hit {
            Some((m, before)) => {
                scan.accept(&m, before, &mut found);
                // A match that the checks refuse is still consumed, as in twitter-text.
                i = m.end;
            }
            None => i += 1,
        }
    }
    found
        .into_iter()
        .map(|r| byte(r.start)..byte(r.end))
        .collect()
}

/// A syntactic match before twitter-text's checks, in char indices.
#[derive(Debug)]
struct RawUrl {
    start: usize,
    end: usize,
    /// Length of `scheme://`, 0 when absent.
    protocol: usize,
    domain: Range<usize>,
    has_path: bool,
}

struct Scan<'a> {
    chars: &'a [char],
    rules: &'a UrlRules,
    /// `label_end[i]`: end of the run of domain characters, `-` and `_` that starts at `i`.
    /// Precomputed so that trying a URL at every position of a long text stays linear.
    label_end: Vec<usize>,
    /// `underscores[i]`: number of `_` in `chars[..i]`.
    underscores: Vec<usize>,
}

impl<'a> Scan<'a> {
    fn new(chars: &'a [char], rules: &'a UrlRules) -> Self {
        let n = chars.len();
        let mut label_end = vec![n; n + 1];
        for i in (0..n).rev() {
            let c = chars[i];
            label_end[i] = if is_domain_char(c) || c == '-' || c == '_' {
                label_end[i + 1]
            } else {
                i
            };
        }
        let mut underscores = Vec::with_capacity(n + 1);
        let mut count = 0;
        underscores.push(0);
        for &c in chars {
            count += usize::from(c == '_');
            underscores.push(count);
        }
        Scan {
            chars,
            rules,
            label_end,
            underscores,
        }
    }

    /// The URL that starts exactly at `s`, if any: with a scheme when one is there and the
    /// rest matches, else without.
    fn match_at(&self, s: usize) -> Option<RawUrl> {
        if let Some(protocol) = self.protocol_at(s)
            && let Some(m) = self.rest_at(s, protocol)
        {
            return Some(m);
        }
        self.rest_at(s, 0)
    }

    fn protocol_at(&self, s: usize) -> Option<usize> {
        let chars = self.chars;
        self.rules.schemes.iter().find_map(|scheme| {
            let len = scheme.len();
            let end = s + len + 3;
            (end <= chars.len()
                && chars[s..s + len]
                    .iter()
                    .zip(scheme.chars())
                    .all(|(c, k)| c.to_ascii_lowercase() == k)
                && chars[s + len..end] == [':', '/', '/'])
            .then_some(len + 3)
        })
    }

    fn rest_at(&self, s: usize, protocol: usize) -> Option<RawUrl> {
        let chars = self.chars;
        let n = chars.len();
        let domain_start = s + protocol;
        let domain_end = self.domain_at(domain_start)?;
        let mut p = domain_end;
        if p + 1 < n && chars[p] == ':' && chars[p + 1].is_ascii_digit() {
            p += 1;
            while p < n && chars[p].is_ascii_digit() {
                p += 1;
            }
        }
        let has_path = p < n && chars[p] == '/';
        if has_path {
            p = self.path_end(p + 1);
        }
        if p < n && chars[p] == '?' {
            p = self.query_end(p);
        }
        Some(RawUrl {
            start: s,
            end: p,
            protocol,
            domain: domain_start..domain_end,
            has_path,
        })
    }

    /// End of the domain starting at `p`: labels joined by dots, the last before the TLD
    /// without `_`, ending in a known TLD. Like the regular expression, prefers the most
    /// labels and falls back to fewer.
    fn domain_at(&self, p: usize) -> Option<usize> {
        let chars = self.chars;
        let n = chars.len();
        let mut dots = Vec::new();
        let mut q = p;
        while q < n && is_domain_char(chars[q]) {
            let end = self.label_end[q];
            if !is_domain_char(chars[end - 1]) || end >= n || chars[end] != '.' {
                break;
            }
            dots.push(end);
            q = end + 1;
        }
        (0..dots.len()).rev().find_map(|k| {
            let label_start = if k == 0 { p } else { dots[k - 1] + 1 };
            if self.underscores[dots[k]] > self.underscores[label_start] {
                return None;
            }
            tld_at(chars, dots[k] + 1)
        })
    }

    /// End of a path whose first character (after `/`) is at `p`: the longest run of path
    /// characters and balanced parentheses, cut back to its last allowed ending.
    fn path_end(&self, p: usize) -> usize {
        let chars = self.chars;
        let n = chars.len();
        let (mut q, mut end) = (p, p);
        while q < n {
            if (self.rules.path_char)(chars[q]) {
                q += 1;
                if (self.rules.path_end_char)(chars[q - 1]) {
                    end = q;
                }
            } else if let Some(after) = self.balanced_parens(q) {
                q = after;
                end = q;
            } else {
                break;
            }
        }
        end
    }

    /// `(…)` or `(…(…)…)` in a path (Wikipedia titles, IIS sessions), ending after the `)`.
    fn balanced_parens(&self, q: usize) -> Option<usize> {
        let chars = self.chars;
        let n = chars.len();
        let run = |from: usize| {
            let mut i = from;
            while i < n && (self.rules.path_char)(chars[i]) {
                i += 1;
            }
            i
        };
        if chars.get(q) != Some(&'(') {
            return None;
        }
        let inner = run(q + 1);
        match chars.get(inner) {
            Some(')') if inner > q + 1 => Some(inner + 1),
            Some('(') => {
                let nested = run(inner + 1);
                if nested == inner + 1 || chars.get(nested) != Some(&')') {
                    return None;
                }
                let tail = run(nested + 1);
                (chars.get(tail) == Some(&')')).then_some(tail + 1)
            }
            _ => None,
        }
    }

    /// End of a query starting with the `?` at `p`; `p` itself when no query ending is found.
    fn query_end(&self, p: usize) -> usize {
        let chars = self.chars;
        let mut end = p;
        let mut q = p + 1;
        while q < chars.len() && (self.rules.query_char)(chars[q]) {
            if (self.rules.query_end_char)(chars[q]) {
                end = q + 1;
            }
            q += 1;
        }
        end
    }

    /// twitter-text's checks after a match; pushes the URL (or, for a bare domain, its ASCII
    /// domains) to `out` when they pass.
    fn accept(&self, m: &RawUrl, before: Option<char>, out: &mut Vec<Range<usize>>) {
        let chars = self.chars;
        let domain = &chars[m.domain.clone()];
        if !idna_valid(domain) {
            return;
        }
        let url_len: usize = chars[m.start..m.end].iter().map(|c| c.len_utf16()).sum();
        let protocol_len = if m.protocol > 0 {
            m.protocol
        } else {
            "https://".len()
        };
        if protocol_len + url_len > MAX_URL_LENGTH {
            return;
        }
        if m.protocol == 0 {
            if !self.rules.without_protocol || matches!(before, Some('-' | '_' | '.' | '/')) {
                return;
            }
            // A bare domain counts only for its ASCII part: `日本example.com` links
            // `example.com`. The path, if any, belongs to the last such domain.
            let found = ascii_domains(domain);
            let last = found.len().saturating_sub(1);
            for (k, r) in found.into_iter().enumerate() {
                let start = m.domain.start + r.start;
                let end = if k == last && m.has_path {
                    m.end
                } else {
                    m.domain.start + r.end
                };
                out.push(start..end);
            }
        } else {
            match tco_prefix(&chars[m.start..m.end]) {
                Tco::No => out.push(m.start..m.end),
                Tco::Yes(len) => out.push(m.start..m.start + len),
                Tco::SlugTooLong => {}
            }
        }
    }
}

enum Tco {
    No,
    /// A t.co link: only `https://t.co/<slug>` counts, whatever follows.
    Yes(usize),
    SlugTooLong,
}

fn tco_prefix(url: &[char]) -> Tco {
    let lower: String = url
        .iter()
        .take(13)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let prefix = if lower.starts_with("https://t.co/") {
        13
    } else if lower.starts_with("http://t.co/") {
        12
    } else {
        return Tco::No;
    };
    let slug = url[prefix..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    match slug {
        0 => Tco::No,
        s if s > MAX_TCO_SLUG_LENGTH => Tco::SlugTooLong,
        s => Tco::Yes(prefix + s),
    }
}

/// twitter-text's `idna.toAscii` check: every label is 1–63 characters long once
/// punycode-encoded, and a domain written as punycode must be ASCII.
fn idna_valid(domain: &[char]) -> bool {
    if domain.starts_with(&['x', 'n', '-', '-']) && ascii_domains(domain).is_empty() {
        return false;
    }
    domain.split(|&c| c == '.').all(|label| {
        let len = if label.iter().all(char::is_ascii) {
            Some(label.len())
        } else {
            punycode_len(label).map(|l| "xn--".len() + l)
        };
        matches!(len, Some(1..=MAX_LABEL_LENGTH))
    })
}

/// ASCII domains inside a domain (twitter-text `validAsciiDomain`, matched globally), as
/// char ranges of `domain`.
fn ascii_domains(domain: &[char]) -> Vec<Range<usize>> {
    let is_ascii_label = |c: char| c == '-' || c.is_ascii_alphanumeric() || is_latin_accent(c);
    let n = domain.len();
    let mut out = Vec::new();
    let mut k = 0;
    while k < n {
        let mut dots = Vec::new();
        let mut q = k;
        while q < n && is_ascii_label(domain[q]) {
            let mut e = q;
            while e < n && is_ascii_label(domain[e]) {
                e += 1;
            }
            if e >= n || domain[e] != '.' {
                break;
            }
            dots.push(e);
            q = e + 1;
        }
        match dots.iter().rev().find_map(|&d| tld_at(domain, d + 1)) {
            Some(end) => {
                out.push(k..end);
                k = end;
            }
            None => k += 1,
        }
    }
    out
}

/// End of the TLD starting at `t`, if one is there and is not followed by a character that
/// would continue it. Generic TLDs are tried before country codes, then punycode, as in
/// twitter-text; among TLDs that match, the longest wins (the upstream list is ordered so).
fn tld_at(chars: &[char], t: usize) -> Option<usize> {
    let tlds = &*TLDS;
    let boundary = |i: usize| match chars.get(i) {
        None => true,
        Some(&c) => !(c.is_ascii_alphanumeric() || matches!(c, '@' | '+' | '-')),
    };
    let (mut generic, mut country) = (None, None);
    let mut candidate = String::new();
    for (len, &c) in chars.iter().skip(t).take(tlds.max_chars).enumerate() {
        candidate.extend(c.to_lowercase());
        let end = t + len + 1;
        if !boundary(end) {
            continue;
        }
        if tlds.generic.contains(candidate.as_str()) {
            generic = Some(end);
        } else if tlds.country.contains(candidate.as_str()) {
            country = Some(end);
        }
    }
    generic.or(country).or_else(|| {
        let prefix = chars.get(t..t + 4)?;
        if !prefix
            .iter()
            .zip("xn--".chars())
            .all(|(c, k)| c.to_ascii_lowercase() == k)
        {
            return None;
        }
        let rest = chars[t + 4..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == '-')
            .count();
        (rest > 0).then_some(t + 4 + rest)
    })
}

/// Length of the RFC 3492 punycode encoding of `label` (without `xn--`), or `None` when it
/// would overflow. Only the length matters here, so no string is built.
fn punycode_len(label: &[char]) -> Option<usize> {
    const BASE: u32 = 36;
    const TMIN: u32 = 1;
    const TMAX: u32 = 26;
    const SKEW: u32 = 38;
    const DAMP: u32 = 700;

    fn adapt(delta: u32, points: u32, first: bool) -> u32 {
        let mut delta = if first { delta / DAMP } else { delta / 2 };
        delta += delta / points;
        let mut k = 0;
        while delta > ((BASE - TMIN) * TMAX) / 2 {
            delta /= BASE - TMIN;
            k += BASE;
        }
        k + (BASE - TMIN + 1) * delta / (delta + SKEW)
    }

    let basic = label.iter().filter(|c| c.is_ascii()).count();
    let mut out = basic + usize::from(basic > 0);
    let (mut n, mut delta, mut bias) = (0x80u32, 0u32, 72u32);
    let total = u32::try_from(label.len()).ok()?;
    let b = u32::try_from(basic).ok()?;
    let mut h = b;
    while h < total {
        let m = label.iter().map(|&c| c as u32).filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(h + 1)?)?;
        n = m;
        for &c in label {
            let c = c as u32;
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        TMIN
                    } else if k >= bias + TMAX {
                        TMAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    out += 1;
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                out += 1;
                bias = adapt(delta, h + 1, h == b);
                delta = 0;
                h += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n += 1;
    }
    Some(out)
}

/// A Mastodon mention found in text: `@user` or `@user@domain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// Byte range of the whole mention, `@` included.
    pub span: Range<usize>,
    /// Byte offset where the local part ends (`@user|@domain`).
    pub username_end: usize,
}

/// Mentions as Mastodon's server finds them (`Account::MENTION_RE` plus twitter-text's
/// check of what follows).
pub fn find_mastodon_mentions(text: &str) -> Vec<Mention> {
    if !text.contains('@') {
        return Vec::new();
    }
    let (offsets, chars): (Vec<usize>, Vec<char>) = text.char_indices().unzip();
    let byte = |i: usize| offsets.get(i).copied().unwrap_or(text.len());
    let n = chars.len();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let is_user = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        let after_word = i > 0 && (is_word(chars[i - 1]) || matches!(chars[i - 1], '=' | '/'));
        if chars[i] != '@' || after_word {
            i += 1;
            continue;
        }
        let Some(user_end) = dotted_run(&chars, i + 1, is_user) else {
            i += 1;
            continue;
        };
        let mut end = user_end;
        if chars.get(end) == Some(&'@')
            && let Some(domain_end) = dotted_run(&chars, end + 1, is_word)
        {
            end = domain_end;
        }
        let refused = match chars.get(end) {
            None => false,
            Some(&c) => {
                matches!(c, '@' | '\u{FF20}')
                    || is_latin_accent(c)
                    || chars.get(end..end + 3) == Some(&[':', '/', '/'][..])
            }
        };
        if !refused {
            out.push(Mention {
                span: byte(i)..byte(end),
                username_end: byte(user_end),
            });
        }
        i = end;
    }
    out
}

/// End of `x+([.-]+x+)*` starting at `start`, where `x` is `part`.
fn dotted_run(chars: &[char], start: usize, part: impl Fn(char) -> bool) -> Option<usize> {
    let run = |from: usize, f: &dyn Fn(char) -> bool| {
        from + chars[from.min(chars.len())..]
            .iter()
            .take_while(|&&c| f(c))
            .count()
    };
    let mut end = run(start, &part);
    if end == start {
        return None;
    }
    loop {
        let seps = run(end, &|c| matches!(c, '.' | '-'));
        let next = run(seps, &part);
        if seps == end || next == seps {
            return Some(end);
        }
        end = next;
    }
}

// Character classes of twitter-text's expressions, with their upstream names.

/// `spaces`: Unicode spaces that end a URL.
fn is_url_space(c: char) -> bool {
    matches!(c, '\u{9}'..='\u{D}' | ' ' | '\u{85}' | '\u{A0}' | '\u{1680}' | '\u{180E}'
        | '\u{2000}'..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}')
}

/// `directionalMarkersGroup`: allowed before a URL, never inside a domain.
fn is_directional_marker(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{61C}' | '\u{200E}' | '\u{200F}' | '\u{2066}'..='\u{2069}')
}

/// `validDomainChars`: anything but ASCII punctuation, spaces, invalid characters and
/// directional marks (so CJK and other scripts make internationalised domains). Upstream's
/// punctuation list has no `"` or backtick; neither has this one.
fn is_domain_char(c: char) -> bool {
    !("!'#%&()*+,\\-./:;<=>?@[]^_{|}~$".contains(c)
        || is_url_space(c)
        || X_INVALID_CHARS.contains(&c)
        || is_directional_marker(c))
}

/// `validUrlPrecedingChars`: a URL does not start right after a Latin letter or digit, nor
/// after `@`, `$` or `#` (mentions, cashtags, hashtags).
fn may_precede_url(c: char) -> bool {
    !(c.is_ascii_alphanumeric()
        || matches!(c, '@' | '\u{FF20}' | '$' | '#' | '\u{FF03}')
        || X_INVALID_CHARS.contains(&c))
}

/// `latinAccentChars`.
fn is_latin_accent(c: char) -> bool {
    matches!(c, '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{24F}'
        | '\u{253}' | '\u{254}' | '\u{256}' | '\u{257}' | '\u{259}' | '\u{25B}' | '\u{263}'
        | '\u{268}' | '\u{26F}' | '\u{272}' | '\u{289}' | '\u{28B}' | '\u{2BB}'
        | '\u{300}'..='\u{36F}' | '\u{1E00}'..='\u{1EFF}')
}

fn is_cyrillic(c: char) -> bool {
    ('\u{400}'..='\u{4FF}').contains(&c)
}

/// `validGeneralUrlPathChars`.
fn twitter_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || is_cyrillic(c)
        || is_latin_accent(c)
        || "!*';:=+,.$/%#[]-_~@|&\u{2013}".contains(c)
}

/// `validUrlPathEndingChars` (balanced parentheses are handled by the scanner).
fn twitter_path_end_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_cyrillic(c) || is_latin_accent(c) || "+-=_#/".contains(c)
}

/// `validUrlQueryChars`.
fn twitter_query_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!?*'@();:&=+$/%#[]-_.,~|".contains(c)
}

/// `validUrlQueryEndingChars`.
fn twitter_query_end_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_&=#/".contains(c)
}

fn mastodon_path_char(c: char) -> bool {
    !(c.is_whitespace() || "<>()?".contains(c))
}

fn mastodon_path_end_char(c: char) -> bool {
    !(c.is_whitespace() || "()?!*\"'\u{300C}\u{300D}<>;:=,.$%[]~&|@".contains(c))
}

/// Mastodon's `UCHARS`: non-ASCII characters allowed in a query.
fn is_mastodon_uchar(c: char) -> bool {
    let cp = c as u32;
    matches!(cp, 0xA0..=0xD7FF | 0xE000..=0xF8FF | 0xF900..=0xFDCF | 0xFDF0..=0xFFEF)
        || (cp >= 0x10000 && (cp & 0xFFFF) <= 0xFFFD && !(0xE0000..0xE1000).contains(&cp))
}

fn mastodon_query_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!?*'();:&=+$/%#[]-_.,~|@^".contains(c) || is_mastodon_uchar(c)
}

fn mastodon_query_end_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_&=#/-".contains(c) || is_mastodon_uchar(c)
}

// ---------------------------------------------------------------------------------------------
// TLDs
// ---------------------------------------------------------------------------------------------

/// The TLDs twitter-text recognises (`conformance/tld_lib.yml`, Apache-2.0), lowercase.
/// A bare domain is a URL only with one of these, and a domain after `https://` too: a URL
/// such as `https://shop.example/sale` is counted as plain text on X and Mastodon.
struct Tlds {
    generic: HashSet<&'static str>,
    country: HashSet<&'static str>,
    /// Longest TLD in characters, to bound the search.
    max_chars: usize,
}

static TLDS: LazyLock<Tlds> = LazyLock::new(|| {
    let generic: HashSet<&str> = GENERIC_TLDS.split_whitespace().collect();
    let country: HashSet<&str> = COUNTRY_TLDS.split_whitespace().collect();
    let max_chars = generic
        .iter()
        .chain(&country)
        .map(|t| t.chars().count())
        .max()
        .unwrap_or(0);
    Tlds {
        generic,
        country,
        max_chars,
    }
});

const COUNTRY_TLDS: &str = "\
    한국 香港 澳門 新加坡 台灣 台湾 中國 中国 გე ລາວ ไทย ලංකා ഭാരതം ಭಾರತ భారత్ சிங்கப்பூர் இலங்கை இந்தியா ଭାରତ \
    ભારત ਭਾਰਤ ভাৰত ভারত বাংলা भारोत भारतम् भारत ڀارت پاکستان موريتانيا مليسيا مصر قطر فلسطين \
    عمان عراق سورية سودان تونس بھارت بارت ایران امارات المغرب السعودية الجزائر البحرين الاردن \
    հայ қаз укр срб рф мон мкд ею бел бг ευ ελ zw zm za yt ye ws wf vu vn vi vg ve vc va uz uy \
    us um uk ug ua tz tw tv tt tr tp to tn tm tl tk tj th tg tf td tc sz sy sx sv su st ss sr so \
    sn sm sl sk sj si sh sg se sd sc sb sa rw ru rs ro re qa py pw pt ps pr pn pm pl pk ph pg pf \
    pe pa om nz nu nr np no nl ni ng nf ne nc na mz my mx mw mv mu mt ms mr mq mp mo mn mm ml mk \
    mh mg mf me md mc ma ly lv lu lt ls lr lk li lc lb la kz ky kw kr kp kn km ki kh kg ke jp jo \
    jm je it is ir iq io in im il ie id hu ht hr hn hm hk gy gw gu gt gs gr gq gp gn gm gl gi gh \
    gg gf ge gd gb ga fr fo fm fk fj fi eu et es er eh eg ee ec dz do dm dk dj de cz cy cx cw cv \
    cu cr co cn cm cl ck ci ch cg cf cd cc ca bz by bw bv bt bs br bq bo bn bm bl bj bi bh bg bf \
    be bd bb ba az ax aw au at as ar aq ao an am al ai ag af ae ad ac";

const GENERIC_TLDS: &str = "\
    삼성 닷컴 닷넷 香格里拉 餐厅 食品 飞利浦 電訊盈科 集团 通販 购物 谷歌 诺基亚 联通 网络 网站 网店 网址 组织机构 移动 珠宝 点看 游戏 淡马锡 机构 書籍 时尚 新闻 \
    政府 政务 招聘 手表 手机 我爱你 慈善 微博 广东 工行 家電 娱乐 天主教 大拿 大众汽车 在线 嘉里大酒店 嘉里 商标 商店 商城 公益 公司 八卦 健康 信息 佛山 企业 \
    中文网 中信 世界 ポイント ファッション セール ストア コム グーグル クラウド みんな คอม संगठन नेट कॉम همراه موقع موبايلي كوم \
    كاثوليك عرب شبكة بيتك بازار العليان ارامكو اتصالات ابوظبي קום сайт рус орг онлайн москва ком \
    католик дети zuerich zone zippo zip zero zara zappos yun youtube you yokohama yoga yodobashi \
    yandex yamaxun yahoo yachts xyz xxx xperia xin xihuan xfinity xerox xbox wtf wtc wow world \
    works work woodside wolterskluwer wme winners wine windows win williamhill wiki wien whoswho \
    weir weibo wedding wed website weber webcam weatherchannel weather watches watch warman \
    wanggou wang walter walmart wales vuelos voyage voto voting vote volvo volkswagen vodka \
    vlaanderen vivo viva vistaprint vista vision visa virgin vip vin villas viking vig video \
    viajes vet versicherung vermögensberatung vermögensberater verisign ventures vegas vanguard \
    vana vacations ups uol uno university unicom uconnect ubs ubank tvs tushu tunes tui tube trv \
    trust travelersinsurance travelers travelchannel travel training trading trade toys toyota \
    town tours total toshiba toray top tools tokyo today tmall tkmaxx tjx tjmaxx tirol tires \
    tips tiffany tienda tickets tiaa theatre theater thd teva tennis temasek telefonica telecity \
    tel technology tech team tdk tci taxi tax tattoo tatar tatamotors target taobao talk taipei \
    tab systems symantec sydney swiss swiftcover swatch suzuki surgery surf support supply \
    supplies sucks style study studio stream store storage stockholm stcgroup stc statoil \
    statefarm statebank starhub star staples stada srt srl spreadbetting spot sport spiegel \
    space soy sony song solutions solar sohu software softbank social soccer sncf smile smart \
    sling skype sky skin ski site singles sina silk shriram showtime show shouji shopping shop \
    shoes shiksha shia shell shaw sharp shangrila sfr sexy sex sew seven ses services sener \
    select seek security secure seat search scot scor scjohnson science schwarz schule school \
    scholarships schmidt schaeffler scb sca sbs sbi saxo save sas sarl sapo sap sanofi \
    sandvikcoromant sandvik samsung samsclub salon sale sakura safety safe saarland ryukyu rwe \
    run ruhr rugby rsvp room rogers rodeo rocks rocher rmit rip rio ril rightathome ricoh \
    richardli rich rexroth reviews review restaurant rest republican report repair rentals rent \
    ren reliance reit reisen reise rehab redumbrella redstone red recipes realty realtor \
    realestate read raid radio racing qvc quest quebec qpon pwc pub prudential pru protection \
    property properties promo progressive prof productions prod pro prime press praxi pramerica \
    post porn politie poker pohl pnc plus plumbing playstation play place pizza pioneer pink \
    ping pin pid pictures pictet pics piaget physio photos photography photo phone philips phd \
    pharmacy pfizer pet pccw pay passagens party parts partners pars paris panerai panasonic \
    pamperedchef page ovh ott otsuka osaka origins orientexpress organic org orange oracle open \
    ooo onyourside online onl ong one omega ollo oldnavy olayangroup olayan okinawa office off \
    observer obi nyc ntt nrw nra nowtv nowruz now norton northwesternmutual nokia nissay nissan \
    ninja nikon nike nico nhk ngo nfl nexus nextdirect next news newholland new neustar network \
    netflix netbank net nec nba navy natura nationwide name nagoya nadex nab mutuelle mutual \
    museum mtr mtpc mtn msd movistar movie mov motorcycles moto moscow mortgage mormon mopar \
    montblanc monster money monash mom moi moe moda mobily mobile mobi mma mls mlb mitsubishi \
    mit mint mini mil microsoft miami metlife merckmsd meo menu men memorial meme melbourne meet \
    media med mckinsey mcdonalds mcd mba mattel maserati marshalls marriott markets marketing \
    market map mango management man makeup maison maif madrid macys luxury luxe lupin lundbeck \
    ltda ltd lplfinancial lpl love lotto lotte london lol loft locus locker loans loan llp llc \
    lixil living live lipsy link linde lincoln limo limited lilly like lighting lifestyle \
    lifeinsurance life lidl liaison lgbt lexus lego legal lefrak leclerc lease lds lawyer law \
    latrobe latino lat lasalle lanxess landrover land lancome lancia lancaster lamer lamborghini \
    ladbrokes lacaixa kyoto kuokgroup kred krd kpn kpmg kosher komatsu koeln kiwi kitchen kindle \
    kinder kim kia kfh kerryproperties kerrylogistics kerryhotels kddi kaufen juniper juegos \
    jprs jpmorgan joy jot joburg jobs jnj jmp jll jlc jio jewelry jetzt jeep jcp jcb java jaguar \
    iwc iveco itv itau istanbul ist ismaili iselect irish ipiranga investments intuit \
    international intel int insure insurance institute ink ing info infiniti industries inc \
    immobilien immo imdb imamat ikano iinet ifm ieee icu ice icbc ibm hyundai hyatt hughes htc \
    hsbc how house hotmail hotels hoteles hot hosting host hospital horse honeywell honda \
    homesense homes homegoods homedepot holiday holdings hockey hkt hiv hitachi hisamitsu hiphop \
    hgtv hermes here helsinki help healthcare health hdfcbank hdfc hbo haus hangout hamburg hair \
    guru guitars guide guge gucci guardian group grocery gripe green gratis graphics grainger \
    gov got gop google goog goodyear goodhands goo golf goldpoint gold godaddy gmx gmo gmbh \
    gmail globo global gle glass glade giving gives gifts gift ggee george genting gent gea gdn \
    gbiz gay garden gap games game gallup gallo gallery gal fyi futbol furniture fund fun \
    fujixerox fujitsu ftr frontier frontdoor frogans frl fresenius free fox foundation forum \
    forsale forex ford football foodnetwork food foo fly flsmidth flowers florist flir flights \
    flickr fitness fit fishing fish firmdale firestone fire financial finance final film fido \
    fidelity fiat ferrero ferrari feedback fedex fast fashion farmers farm fans fan family faith \
    fairwinds fail fage extraspace express exposed expert exchange everbank events eus \
    eurovision etisalat esurance estate esq erni ericsson equipment epson epost enterprises \
    engineering engineer energy emerck email education edu edeka eco eat earth dvr dvag durban \
    dupont duns dunlop duck dubai dtv drive download dot doosan domains doha dog dodge doctor \
    docs dnp diy dish discover discount directory direct digital diet diamonds dhl dev design \
    desi dentist dental democrat delta deloitte dell delivery degree deals dealer deal dds dclk \
    day datsun dating date data dance dad dabur cyou cymru cuisinella csc cruises cruise crs \
    crown cricket creditunion creditcard credit cpa courses coupons coupon country corsica coop \
    cool cookingchannel cooking contractors contact consulting construction condos comsec \
    computer compare company community commbank comcast com cologne college coffee codes coach \
    clubmed club cloud clothing clinique clinic click cleaning claims cityeats city citic citi \
    citadel cisco circle cipriani church chrysler chrome christmas chloe chintai cheap chat \
    chase charity channel chanel cfd cfa cern ceo center ceb cbs cbre cbn cba catholic catering \
    cat casino cash caseih case casa cartier cars careers career care cards caravan car \
    capitalone capital capetown canon cancerresearch camp camera cam calvinklein call cal cafe \
    cab bzh buzz buy business builders build bugatti budapest brussels brother broker broadway \
    bridgestone bradesco box boutique bot boston bostik bosch boots booking book boo bond bom \
    bofa boehringer boats bnpparibas bnl bmw bms blue bloomberg blog blockbuster blanco \
    blackfriday black biz bio bingo bing bike bid bible bharti bet bestbuy best berlin bentley \
    beer beauty beats bcn bcg bbva bbt bbc bayern bauhaus basketball baseball bargains barefoot \
    barclays barclaycard barcelona bar bank band bananarepublic banamex baidu baby azure axa aws \
    avianca autos auto author auspost audio audible audi auction attorney athleta associates \
    asia asda arte art arpa army archi aramco arab aquarelle apple app apartments aol anz anquan \
    android analytics amsterdam amica amfam amex americanfamily americanexpress alstom alsace \
    ally allstate allfinanz alipay alibaba alfaromeo akdn airtel airforce airbus aigo aig agency \
    agakhan africa afl afamilycompany aetna aero aeg adult ads adac actor active aco accountants \
    accountant accenture academy abudhabi abogado able abc abbvie abbott abb abarth aarp aaa \
    onion";

// ---------------------------------------------------------------------------------------------
// `[platform]` values
// ---------------------------------------------------------------------------------------------

/// Checks on the values of a post's `[platform]` table, shared by the platform files. They sit
/// here only because the file list of `platforms/` is fixed for now (a `platforms/fields.rs`
/// would be their natural home); they count nothing. Unknown keys are not reported here: the
/// caller compares the table with `Platform::fields`.
pub(crate) mod fields {
    use toml::{Table, Value};

    use crate::platforms::Violation;

    /// How a TOML value reads in a message.
    pub(crate) fn type_name(value: &Value) -> &'static str {
        match value {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a number with a fraction",
            Value::Boolean(_) => "true or false",
            Value::Datetime(_) => "a date",
            Value::Array(_) => "a list",
            Value::Table(_) => "a table",
        }
    }

    fn wrong_type(
        platform: &str,
        key: &str,
        value: &Value,
        expected: &str,
        example: &str,
    ) -> Violation {
        let help = match value {
            // The usual slip: an id or a number written without quotes.
            Value::Integer(i) if expected == "a string" => {
                format!("put it in quotes: {key} = \"{i}\"")
            }
            _ => format!("write it as {key} = {example}"),
        };
        Violation::new(
            format!(
                "[platform] {key} is {}; {platform} expects {expected}",
                type_name(value)
            ),
            help,
        )
    }

    /// `key` must be `true` or `false` if present.
    pub(crate) fn boolean(platform: &str, fields: &Table, key: &str, out: &mut Vec<Violation>) {
        if let Some(value) = fields.get(key)
            && !value.is_bool()
        {
            out.push(wrong_type(platform, key, value, "true or false", "true"));
        }
    }

    /// `key` as a string if present; a violation if it is something else.
    pub(crate) fn string<'a>(
        platform: &str,
        fields: &'a Table,
        key: &str,
        example: &str,
        out: &mut Vec<Violation>,
    ) -> Option<&'a str> {
        let value = fields.get(key)?;
        match value.as_str() {
            Some(s) => Some(s),
            None => {
                out.push(wrong_type(platform, key, value, "a string", example));
                None
            }
        }
    }

    /// `key` must be one of `allowed` (spelled exactly) if present.
    pub(crate) fn one_of(
        platform: &str,
        fields: &Table,
        key: &str,
        allowed: &[&str],
        out: &mut Vec<Violation>,
    ) {
        let example = format!("\"{}\"", allowed[0]);
        let Some(value) = string(platform, fields, key, &example, out) else {
            return;
        };
        if allowed.contains(&value) {
            return;
        }
        let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        let help = match allowed.iter().find(|a| a.eq_ignore_ascii_case(value)) {
            Some(right) => format!("{platform} spells it \"{right}\": {key} = \"{right}\""),
            None => format!(
                "use one of {}, or remove {key} to get {platform}'s default",
                quoted.join(", ")
            ),
        };
        out.push(Violation::new(
            format!(
                "[platform] {key} is \"{value}\"; {platform} accepts {}",
                quoted.join(", ")
            ),
            help,
        ));
    }

    /// `key` as a list of strings if present; a violation if it is something else.
    pub(crate) fn string_list<'a>(
        platform: &str,
        fields: &'a Table,
        key: &str,
        example: &str,
        out: &mut Vec<Violation>,
    ) -> Option<Vec<&'a str>> {
        let value = fields.get(key)?;
        let list = value
            .as_array()
            .and_then(|items| items.iter().map(Value::as_str).collect::<Option<Vec<_>>>());
        if list.is_none() {
            out.push(wrong_type(
                platform,
                key,
                value,
                "a list of strings",
                example,
            ));
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(text: &str) -> Vec<&str> {
        find_urls(text).into_iter().map(|r| &text[r]).collect()
    }

    fn mastodon_urls(text: &str) -> Vec<&str> {
        find_mastodon_urls(text)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn finds_urls_with_and_without_protocol() {
        assert_eq!(
            urls("Sale: https://shop.com/sneakers?size=42 and www.shop.co.uk/x."),
            ["https://shop.com/sneakers?size=42", "www.shop.co.uk/x"]
        );
        assert_eq!(urls("see example.com, then t.co"), ["example.com", "t.co"]);
        assert_eq!(
            urls("HTTPS://WWW.EXAMPLE.COM/Index.html"),
            ["HTTPS://WWW.EXAMPLE.COM/Index.html"]
        );
    }

    #[test]
    fn leaves_out_trailing_punctuation_and_keeps_balanced_parens() {
        assert_eq!(urls("(https://example.com/a)."), ["https://example.com/a"]);
        assert_eq!(
            urls("https://en.wikipedia.org/wiki/Primer_(film)!"),
            ["https://en.wikipedia.org/wiki/Primer_(film)"]
        );
        assert_eq!(
            urls("https://example.com/search?q=1&"),
            ["https://example.com/search?q=1&"]
        );
        assert_eq!(
            urls("https://example.com/search?q=1!"),
            ["https://example.com/search?q=1"]
        );
        // A query with no allowed last character is left out entirely.
        assert_eq!(urls("https://example.com/a?!"), ["https://example.com/a"]);
    }

    #[test]
    fn needs_a_known_tld_and_a_boundary_before() {
        // `.example` is reserved, not a TLD: X counts such a URL as text.
        assert!(urls("https://shop.example/black-friday").is_empty());
        assert!(urls("version 1.2 is out, file.txt attached").is_empty());
        assert!(
            urls("user@example.com").is_empty(),
            "an e-mail address is not a URL"
        );
        assert!(urls("#example.com $example.com").is_empty());
        assert!(
            urls("path/example.com and -example.com").is_empty(),
            "a bare domain right after `/` or `-` is part of something else"
        );
        assert_eq!(urls("foo-example.com"), ["foo-example.com"]);
    }

    #[test]
    fn refuses_domains_with_overlong_labels() {
        let label = "a".repeat(64);
        assert!(urls(&format!("https://{label}.com")).is_empty());
        let label = "a".repeat(63);
        assert_eq!(urls(&format!("https://{label}.com")).len(), 1);
    }

    #[test]
    fn internationalised_domains() {
        assert_eq!(
            urls("http://foobar.پاکستان/ ok"),
            ["http://foobar.پاکستان/"]
        );
        assert_eq!(urls("http://☃.net/"), ["http://☃.net/"]);
        // Without a scheme only the ASCII part of a domain is linked.
        assert_eq!(urls("日本語example.com"), ["example.com"]);
    }

    #[test]
    fn tco_links_stop_after_the_slug() {
        assert_eq!(urls("https://t.co/abc123.de"), ["https://t.co/abc123"]);
    }

    #[test]
    fn punycode_lengths_match_rfc_3492() {
        let len = |s: &str| punycode_len(&s.chars().collect::<Vec<_>>());
        assert_eq!(len("bücher"), Some("bcher-kva".len()));
        assert_eq!(len("ü"), Some("tda".len()));
        assert_eq!(len("پاکستان"), Some("mgbai9azgqp6j".len()));
        assert_eq!(len("☃"), Some("n3h".len()));
    }

    #[test]
    fn x_weights_latin_cjk_emoji_and_urls() {
        assert_eq!(x_weighted_length("Hello"), 5);
        assert_eq!(x_weighted_length("冬季促销"), 8);
        assert_eq!(x_weighted_length("🇯🇵👍🏽👨‍👩‍👧"), 6);
        assert_eq!(x_weighted_length("“quoted” – ok"), 13);
        // A 60-character URL counts 23, a bare domain too.
        let url = format!("https://shop.com/{}", "p".repeat(43));
        assert_eq!(x_weighted_length(&url), 23);
        assert_eq!(x_weighted_length("shop.com"), 23);
        // ©, ® and keycap digits count 1 alone but 2 as emoji.
        assert_eq!(x_weighted_length("©"), 1);
        assert_eq!(x_weighted_length("©\u{FE0F}"), 2);
        assert_eq!(x_weighted_length("1\u{FE0F}\u{20E3}"), 2);
    }

    #[test]
    fn x_normalises_before_counting() {
        // "é" as e + combining acute is one character after NFC.
        assert_eq!(x_weighted_length("e\u{301}"), 1);
    }

    #[test]
    fn x_reports_invalid_characters() {
        let count = x_count("a\u{FEFF}b");
        assert_eq!(count.invalid, ['\u{FEFF}']);
        assert!(x_count("ab").invalid.is_empty());
    }

    #[test]
    fn mastodon_counts_graphemes_urls_and_mentions() {
        assert_eq!(mastodon_length("", "👨‍👩‍👧‍👦 é"), 3);
        // `.example` is no TLD, so this URL counts in full.
        let url = format!("https://shop.example/{}", "p".repeat(60));
        assert_eq!(mastodon_length("", &url), url.len());
        assert_eq!(mastodon_length("", "https://shop.com/x"), 23);
        assert_eq!(
            mastodon_length("", "shop.com"),
            8,
            "Mastodon needs a scheme"
        );
        assert_eq!(
            mastodon_length("", "hi @alice@social.example.org"),
            "hi @alice".len()
        );
        assert_eq!(mastodon_length("CW", "text"), 6);
        assert_eq!(mastodon_length("", "   "), 0);
    }

    #[test]
    fn mastodon_urls_take_any_path_character() {
        assert_eq!(
            mastodon_urls("https://example.com/日本語 and gemini://capsule.org/x."),
            ["https://example.com/日本語", "gemini://capsule.org/x"]
        );
        assert_eq!(
            mastodon_countable_text("see https://mastodon.social/@bob now"),
            format!("see {} now", "x".repeat(23))
        );
    }

    #[test]
    fn mastodon_mentions() {
        let found =
            find_mastodon_mentions("cc @bob@mastodon.social and @carol, not me@example.com");
        let spans: Vec<_> = found.iter().map(|m| m.span.clone()).collect();
        assert_eq!(spans, [3..23, 28..34]);
        assert_eq!(found[0].username_end, 7);
    }

    #[test]
    fn bluesky_units() {
        assert_eq!(graphemes("👨‍👩‍👧‍👦ab"), 3);
        assert_eq!(utf8_bytes("é"), 2);
    }

    #[test]
    fn links_are_appended_once() {
        let link = "https://shop.com/sale";
        assert_eq!(
            with_link("Sale!\n", Some(link)),
            "Sale!\n\nhttps://shop.com/sale"
        );
        assert_eq!(
            with_link("Sale: https://shop.com/sale.", Some(link)),
            "Sale: https://shop.com/sale."
        );
        // A longer URL that starts like the link is another link.
        assert_eq!(
            with_link("https://shop.com/sale-2", Some(link)),
            "https://shop.com/sale-2\n\nhttps://shop.com/sale"
        );
        assert_eq!(with_link("", Some(link)), link);
        assert_eq!(with_link(" Body ", None), "Body");
    }
}
