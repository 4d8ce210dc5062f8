//! Rich-text facets, found the way Bluesky's own app finds them, with UTF-8 byte offsets:
//! links (by the same URL rules the length counters use; a bare domain links to
//! `https://`), mentions (`@handle`, which the plan resolves to a DID) and hashtags (`#tag`
//! after the start of the text or a space, trailing punctuation not part of the tag, not
//! all digits, at most 64 characters). CJK and emoji are counted in bytes, as the record
//! wants; nothing here counts characters.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

use crate::platforms::text;

/// One facet: a byte range of the text and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facet {
    pub range: Range<usize>,
    pub kind: FacetKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FacetKind {
    Link(String),
    /// The handle, without `@`.
    Mention(String),
    /// The tag, without `#`.
    Tag(String),
}

/// The longest tag Bluesky takes, in graphemes.
const MAX_TAG_GRAPHEMES: usize = 64;

/// Every facet of `text`, in text order, none overlapping.
pub fn facets(text: &str) -> Vec<Facet> {
    let mut out: Vec<Facet> = text::find_urls(text)
        .into_iter()
        .map(|range| {
            let url = &text[range.clone()];
            let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
            let uri = if lower.starts_with("https://") || lower.starts_with("http://") {
                url.to_string()
            } else {
                format!("https://{url}")
            };
            Facet {
                range,
                kind: FacetKind::Link(uri),
            }
        })
        .collect();
    // Bluesky's app links any `http(s)://` run, whatever its domain; the counters' rules
    // above want a known top-level domain (`https://shop.test/x` is a link on Bluesky).
    for range in scheme_links(text) {
        if !out
            .iter()
            .any(|f| f.range.start < range.end && range.start < f.range.end)
        {
            out.push(Facet {
                kind: FacetKind::Link(text[range.clone()].to_string()),
                range,
            });
        }
    }
    let inside_link = |at: usize, out: &[Facet]| out.iter().any(|f| f.range.contains(&at));
    for mention in mentions(text) {
        if !inside_link(mention.range.start, &out) {
            out.push(mention);
        }
    }
    for tag in tags(text) {
        if !inside_link(tag.range.start, &out) {
            out.push(tag);
        }
    }
    out.sort_by_key(|f| f.range.start);
    out
}

/// `http://` and `https://` links as Bluesky's app finds them (`detectFacets`): after the
/// start, a space or `(`, up to the next space, without one trailing `.,;:!?` and then a
/// `)` the link does not open.
fn scheme_links(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices("http") {
        let rest = &text[at..];
        let lower = rest.get(..8).unwrap_or(rest).to_ascii_lowercase();
        let scheme = if lower.starts_with("https://") {
            8
        } else if lower.starts_with("http://") {
            7
        } else {
            continue;
        };
        let preceded = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || c == '(');
        let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if !preceded || len <= scheme {
            continue;
        }
        let mut link = &rest[..len];
        if link.ends_with(['.', ',', ';', ':', '!', '?']) {
            link = &link[..link.len() - 1];
        }
        if link.ends_with(')') && !link.contains('(') {
            link = &link[..link.len() - 1];
        }
        if link.len() > scheme {
            out.push(at..at + link.len());
        }
    }
    out
}

/// Whether the character before byte `at` allows a mention or tag to start there.
fn starts_word(text: &str, at: usize) -> bool {
    text[..at]
        .chars()
        .next_back()
        .is_none_or(|c| c.is_whitespace() || c == '(')
}

fn mentions(text: &str) -> Vec<Facet> {
    let mut out = Vec::new();
    for (at, _) in text.match_indices('@') {
        if !starts_word(text, at) {
            continue;
        }
        let rest = &text[at + 1..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        let handle = rest[..len].trim_end_matches(['.', '-']);
        if is_handle(handle) {
            out.push(Facet {
                range: at..at + 1 + handle.len(),
                kind: FacetKind::Mention(handle.to_ascii_lowercase()),
            });
        }
    }
    out
}

/// A domain-like handle: at least two labels of letters, digits and `-`, not starting or
/// ending with `-`, the last one not all digits.
fn is_handle(handle: &str) -> bool {
    let labels: Vec<&str> = handle.split('.').collect();
    labels.len() >= 2
        && handle.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.bytes().any(|b| b.is_ascii_alphabetic()))
}

/// Characters that end a tag even without a space (invisible separators).
fn ends_tag(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{2060}'
                | '\u{200A}'
                | '\u{200B}'
                | '\u{200C}'
                | '\u{200D}'
                | '\u{20E2}'
        )
}

/// Punctuation, ASCII and the general, CJK and full-width blocks: not part of a tag's end.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c as u32,
            0x2010..=0x2027 | 0x2030..=0x205E | 0x3000..=0x303F | 0xFF01..=0xFF0F
            | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40 | 0xFF5B..=0xFF65 | 0x00A1 | 0x00A7 | 0x00AB
            | 0x00B6 | 0x00B7 | 0x00BB | 0x00BF)
}

fn tags(text: &str) -> Vec<Facet> {
    let mut out = Vec::new();
    for (at, hash) in text.match_indices(['#', '＃']) {
        if !starts_word(text, at) {
            continue;
        }
        let body_start = at + hash.len();
        let rest = &text[body_start..];
        // A keycap emoji (#️⃣) is no tag.
        if rest.starts_with('\u{FE0F}') {
            continue;
        }
        let len = rest.find(ends_tag).unwrap_or(rest.len());
        let tag = rest[..len].trim_end_matches(is_punctuation);
        if tag.is_empty()
            || tag.chars().all(|c| c.is_numeric() || is_punctuation(c))
            || tag.graphemes(true).count() > MAX_TAG_GRAPHEMES
        {
            continue;
        }
        out.push(Facet {
            range: at..body_start + tag.len(),
            kind: FacetKind::Tag(tag.to_string()),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> Vec<(&str, FacetKind)> {
        facets(text)
            .into_iter()
            .map(|f| (&text[f.range.clone()], f.kind))
            .collect()
    }

    #[test]
    fn links_mentions_and_tags_at_utf8_byte_offsets() {
        let text = "Größe zählt! @anna.bsky.social sagt: shop.com/bf #Sale.";
        let found = facets(text);
        assert_eq!(
            shown(text),
            [
                (
                    "@anna.bsky.social",
                    FacetKind::Mention("anna.bsky.social".into())
                ),
                ("shop.com/bf", FacetKind::Link("https://shop.com/bf".into())),
                ("#Sale", FacetKind::Tag("Sale".into())),
            ]
        );
        // "Größe zählt! " is 16 bytes (ö, ß, ä take two each), not 13 characters.
        assert_eq!(found[0].range.start, 16);
    }

    #[test]
    fn cjk_and_emoji_tags_count_in_bytes() {
        let text = "冬季促销：全场八折！ #冬季促销 👩‍👩‍👧 #セール！";
        let found = shown(text);
        assert_eq!(
            found,
            [
                ("#冬季促销", FacetKind::Tag("冬季促销".into())),
                ("#セール", FacetKind::Tag("セール".into())),
            ]
        );
        let first = &facets(text)[0];
        // 10 CJK characters of 3 bytes and a space before the tag.
        assert_eq!(first.range, 31..44);
    }

    #[test]
    fn a_link_with_a_scheme_is_a_link_facet_whatever_its_top_level_domain() {
        // Bluesky's app links these; X's rules (a known top-level domain) do not.
        assert_eq!(
            shown("Winter sale: https://shop.example/winter. (see https://shop.test/a)"),
            [
                (
                    "https://shop.example/winter",
                    FacetKind::Link("https://shop.example/winter".into())
                ),
                (
                    "https://shop.test/a",
                    FacetKind::Link("https://shop.test/a".into())
                ),
            ]
        );
        // No scheme and no known domain: plain text, as in Bluesky's app.
        assert!(shown("shop.example/winter").is_empty());
        assert!(shown("https://").is_empty());
    }

    #[test]
    fn what_is_not_a_facet() {
        // No space before `#` or `@`; all digits; a keycap; an e-mail address; no dot.
        assert!(shown("price#1 mail@shop.example #2024 #️⃣ @anna").is_empty());
        // A URL's fragment is part of the link, not a tag.
        assert_eq!(
            shown("see https://shop.com/p#top"),
            [(
                "https://shop.com/p#top",
                FacetKind::Link("https://shop.com/p#top".into())
            )]
        );
        // A mention in parentheses; a trailing dot is not part of the handle.
        assert_eq!(
            shown("(@shop.bsky.social) thanks @anna.bsky.social."),
            [
                (
                    "@shop.bsky.social",
                    FacetKind::Mention("shop.bsky.social".into())
                ),
                (
                    "@anna.bsky.social",
                    FacetKind::Mention("anna.bsky.social".into())
                ),
            ]
        );
    }
}
