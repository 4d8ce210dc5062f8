//! bluesky: the rules Bluesky applies to an `app.bsky.feed.post` record: text of at most 300
//! graphemes and 3000 UTF-8 bytes, at most four images of at most 2,000,000 bytes each with
//! alt text, and the values of the `[platform]` fields cadenced passes on.
//!
//! A post has one embed: images, or an external link card. So a post's `link` becomes the
//! card when there are no images and is appended to the text otherwise. Links in the text
//! count in full here (Bluesky does not shorten them); the adapter sends them as facets.
//! Pure: no IO, no clock, no HTTP.

use crate::platforms::text::{self, fields};
use crate::platforms::{Limits, PostView, Violation};

/// Keys a post's `[platform]` table may hold for Bluesky, named as in `app.bsky.feed.post`:
/// the languages of the text, self-labels (content warnings) and extra hashtags; and as in
/// `app.bsky.embed.external`, the link card's `title` and `description` (otherwise read from
/// the linked page). In the post
/// file `labels` is a plain list of label values; the adapter wraps it in the record's
/// `com.atproto.label.defs#selfLabels` object.
pub const FIELDS: &[&str] = &["langs", "labels", "tags", "title", "description"];

/// Self-label values Bluesky's apps understand on a post.
pub const SELF_LABELS: &[&str] = &[
    "sexual",
    "nudity",
    "porn",
    "graphic-media",
    "!no-unauthenticated",
];

pub const MAX_GRAPHEMES: usize = 300;
pub const MAX_BYTES: usize = 3000;
/// At most this many images (`app.bsky.embed.images` `maxLength`).
pub const MAX_IMAGES: usize = 4;
/// Largest image blob (`app.bsky.embed.images#image` `maxSize`).
pub const MAX_IMAGE_BYTES: u64 = 2_000_000;
/// `langs` `maxLength`.
pub const MAX_LANGS: usize = 3;
/// `tags` `maxLength`, and each tag's `maxGraphemes` and `maxLength` (bytes).
pub const MAX_TAGS: usize = 8;
pub const MAX_TAG_GRAPHEMES: usize = 64;
pub const MAX_TAG_BYTES: usize = 640;

const PLATFORM: &str = "Bluesky";

/// The text Bluesky receives: the body, trimmed; the post's `link` is appended only when the
/// post has images (otherwise it is sent as the card, see [`link_card`]).
pub fn text_to_send(post: &PostView<'_>) -> String {
    if post.media.is_empty() {
        text::with_link(post.text, None)
    } else {
        text::with_link(post.text, post.link)
    }
}

/// The link to send as an `app.bsky.embed.external` card: the post's `link` when it has no
/// images (a post holds one embed, and images take it).
pub fn link_card<'a>(post: &PostView<'a>) -> Option<&'a str> {
    post.link
        .map(str::trim)
        .filter(|link| !link.is_empty() && post.media.is_empty())
}

/// Checks a post against Bluesky's rules. `limits` does not apply: the limits are in the
/// record's schema, the same on every server.
pub fn validate(_limits: &Limits, post: &PostView<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let text = text_to_send(post);
    let what = crate::platforms::text_subject(post, &text);

    crate::platforms::check_not_empty(
        "Bluesky",
        text.is_empty() && post.media.is_empty() && link_card(post).is_none(),
        "no text, no images and no link",
        &mut out,
    );

    let graphemes = text::graphemes(&text);
    if graphemes > MAX_GRAPHEMES {
        out.push(Violation::new(
            format!(
                "{what} is {graphemes} characters (graphemes); Bluesky allows {MAX_GRAPHEMES} \
                 (links count in full)"
            ),
            text::shorten_by(graphemes - MAX_GRAPHEMES, "character"),
        ));
    }
    let bytes = text::utf8_bytes(&text);
    if bytes > MAX_BYTES {
        out.push(Violation::new(
            format!("{what} is {bytes} bytes in UTF-8; Bluesky allows {MAX_BYTES}"),
            format!(
                "{}; a CJK character takes 3 bytes, an emoji 4 or more",
                text::shorten_by(bytes - MAX_BYTES, "byte")
            ),
        ));
    }

    if post.media.len() > MAX_IMAGES {
        out.push(Violation::new(
            format!(
                "{} images are attached; Bluesky allows at most {MAX_IMAGES} per post",
                post.media.len()
            ),
            format!(
                "remove {} of them, or spread them over two posts",
                post.media.len() - MAX_IMAGES
            ),
        ));
    }
    for media in post.media {
        let path = media.path.display();
        if media.bytes > MAX_IMAGE_BYTES {
            out.push(Violation::new(
                format!(
                    "{path} is {} bytes; Bluesky allows {} per image",
                    group_digits(media.bytes),
                    group_digits(MAX_IMAGE_BYTES)
                ),
                format!(
                    "scale it down or save it with stronger compression to under 2 MB \
                     (it is {} bytes over)",
                    group_digits(media.bytes - MAX_IMAGE_BYTES)
                ),
            ));
        }
        if media.alt.as_deref().is_none_or(|alt| alt.trim().is_empty()) {
            out.push(Violation::new(
                format!("{path} has no alt text; Bluesky requires it for every image"),
                "describe the image in its entry of `media` in the front matter, e.g. \
                 `alt = \"Red sneakers on a shelf\"` beside its `path`",
            ));
        }
    }

    check_fields(post.fields, &mut out);
    out
}

fn check_fields(table: &toml::Table, out: &mut Vec<Violation>) {
    fields::string(PLATFORM, table, "title", "\"Winter sale\"", out);
    fields::string(
        PLATFORM,
        table,
        "description",
        "\"30% off all sneakers\"",
        out,
    );
    if let Some(langs) = fields::string_list(PLATFORM, table, "langs", "[\"en\"]", out) {
        if langs.len() > MAX_LANGS {
            out.push(Violation::new(
                format!(
                    "[platform] langs lists {} languages; Bluesky allows {MAX_LANGS}",
                    langs.len()
                ),
                "keep the main languages of the text",
            ));
        }
        for lang in langs.iter().filter(|l| !is_language_tag(l)) {
            out.push(Violation::new(
                format!("[platform] langs holds \"{lang}\", which is not a language tag"),
                "use BCP 47 tags such as \"en\", \"de\" or \"pt-BR\"",
            ));
        }
    }
    if let Some(labels) = fields::string_list(PLATFORM, table, "labels", "[\"nudity\"]", out) {
        for label in labels.iter().filter(|l| !SELF_LABELS.contains(l)) {
            let quoted: Vec<String> = SELF_LABELS.iter().map(|l| format!("\"{l}\"")).collect();
            out.push(Violation::new(
                format!("[platform] labels holds \"{label}\", which Bluesky does not know"),
                format!("use one of {}", quoted.join(", ")),
            ));
        }
    }
    if let Some(tags) = fields::string_list(PLATFORM, table, "tags", "[\"sale\"]", out) {
        if tags.len() > MAX_TAGS {
            out.push(Violation::new(
                format!(
                    "[platform] tags lists {} tags; Bluesky allows {MAX_TAGS}",
                    tags.len()
                ),
                format!("remove {} of them", tags.len() - MAX_TAGS),
            ));
        }
        for tag in tags {
            let graphemes = text::graphemes(tag);
            if tag.trim().is_empty() || graphemes > MAX_TAG_GRAPHEMES || tag.len() > MAX_TAG_BYTES {
                out.push(Violation::new(
                    format!(
                        "[platform] tags holds \"{tag}\" ({graphemes} characters); Bluesky \
                         takes tags of 1 to {MAX_TAG_GRAPHEMES} characters"
                    ),
                    "shorten the tag, or drop it",
                ));
            }
        }
    }
}

/// A well-formed BCP 47 tag, roughly: a 2–3 letter language, then subtags of letters and
/// digits (`en`, `pt-BR`, `zh-Hant`). Bluesky rejects anything else in `langs`.
fn is_language_tag(tag: &str) -> bool {
    let mut parts = tag.split('-');
    let language = parts.next().unwrap_or("");
    (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_alphabetic())
        && parts.all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `2500000` → `2,500,000`, so byte counts read at a glance.
fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::testing::{image_of as image, table, view};

    #[test]
    fn latin_text_at_the_grapheme_limit() {
        let fields = toml::Table::new();
        let text = "a".repeat(300);
        assert!(validate(&Limits::default(), &view(&text, &[], &fields)).is_empty());
        let text = "a".repeat(312);
        let violations = validate(&Limits::default(), &view(&text, &[], &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "text is 312 characters (graphemes); Bluesky allows 300 (links count in full)"
        );
        assert_eq!(violations[0].help, "shorten it by 12 characters");
    }

    #[test]
    fn emoji_count_one_grapheme_but_many_bytes() {
        let fields = toml::Table::new();
        // 300 family emoji: 300 graphemes but 25 bytes each, 7500 bytes.
        let text = "👨‍👩‍👧‍👦".repeat(300);
        let violations = validate(&Limits::default(), &view(&text, &[], &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "text is 7500 bytes in UTF-8; Bluesky allows 3000"
        );
        assert!(violations[0].help.starts_with("shorten it by 4500 bytes"));
    }

    #[test]
    fn cjk_counts_one_grapheme_each() {
        let fields = toml::Table::new();
        let text = "促".repeat(300);
        assert!(validate(&Limits::default(), &view(&text, &[], &fields)).is_empty());
    }

    #[test]
    fn urls_count_in_full() {
        let fields = toml::Table::new();
        let url = format!("https://shop.com/{}", "p".repeat(100));
        let text = format!("{} {url}", "a".repeat(190));
        // 190 + 1 + 117: over 300 on Bluesky, though 214 on X.
        let violations = validate(&Limits::default(), &view(&text, &[], &fields));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.starts_with("text is 308 characters"));
    }

    #[test]
    fn the_link_is_a_card_without_images_and_text_with_them() {
        let fields = toml::Table::new();
        let body = "a".repeat(290);
        let mut post = view(&body, &[], &fields);
        post.link = Some("https://shop.com/black-friday");
        assert_eq!(text_to_send(&post), body);
        assert_eq!(link_card(&post), Some("https://shop.com/black-friday"));
        assert!(validate(&Limits::default(), &post).is_empty());

        let media = [image(Some("Red sneakers"), 1000)];
        post.media = &media;
        assert_eq!(link_card(&post), None);
        assert_eq!(
            text_to_send(&post),
            format!("{body}\n\nhttps://shop.com/black-friday")
        );
        // 290 + 2 + 29 = 321 graphemes.
        let violations = validate(&Limits::default(), &post);
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0]
                .message
                .starts_with("text with the appended link is 321 characters")
        );
    }

    #[test]
    fn empty_posts_need_an_image_or_a_link() {
        let fields = toml::Table::new();
        let mut post = view("", &[], &fields);
        assert_eq!(validate(&Limits::default(), &post).len(), 1);
        post.link = Some("https://shop.com/");
        assert!(validate(&Limits::default(), &post).is_empty());
    }

    #[test]
    fn images_count_size_and_alt_text() {
        let fields = toml::Table::new();
        let four = vec![image(Some("a"), 2_000_000); 4];
        assert!(validate(&Limits::default(), &view("Sale", &four, &fields)).is_empty());

        let five = vec![image(Some("a"), 1000); 5];
        let violations = validate(&Limits::default(), &view("Sale", &five, &fields));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.starts_with("5 images are attached"));

        let big = [image(Some("a"), 2_500_000)];
        let violations = validate(&Limits::default(), &view("Sale", &big, &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "img/sale.jpg is 2,500,000 bytes; Bluesky allows 2,000,000 per image"
        );
        assert!(violations[0].help.contains("500,000 bytes over"));

        for alt in [None, Some("  ")] {
            let media = [image(alt, 1000)];
            let violations = validate(&Limits::default(), &view("Sale", &media, &fields));
            assert_eq!(violations.len(), 1, "alt {alt:?}");
            assert_eq!(
                violations[0].message,
                "img/sale.jpg has no alt text; Bluesky requires it for every image"
            );
        }
    }

    #[test]
    fn good_field_values_pass() {
        let fields = table(
            r#"
            langs = ["en", "pt-BR"]
            labels = ["nudity"]
            tags = ["sale", "sneakers"]
            "#,
        );
        assert!(validate(&Limits::default(), &view("Sale", &[], &fields)).is_empty());
        for key in fields.keys() {
            assert!(FIELDS.contains(&key.as_str()), "{key} is in FIELDS");
        }
    }

    #[test]
    fn bad_field_values() {
        let fields = table(
            r#"
            langs = ["en", "de", "fr", "English"]
            labels = ["nsfw"]
            tags = "sale"
            "#,
        );
        let violations = validate(&Limits::default(), &view("Sale", &[], &fields));
        let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "[platform] langs lists 4 languages; Bluesky allows 3",
                "[platform] langs holds \"English\", which is not a language tag",
                "[platform] labels holds \"nsfw\", which Bluesky does not know",
                "[platform] tags is a string; Bluesky expects a list of strings",
            ]
        );
        assert_eq!(violations[3].help, "write it as tags = [\"sale\"]");
    }

    #[test]
    fn tags_are_limited() {
        let long = "t".repeat(65);
        let fields = table(&format!(
            "tags = [\"a\", \"b\", \"c\", \"d\", \"e\", \"f\", \"g\", \"h\", \"{long}\"]"
        ));
        let violations = validate(&Limits::default(), &view("Sale", &[], &fields));
        assert_eq!(violations.len(), 2);
        assert_eq!(
            violations[0].message,
            "[platform] tags lists 9 tags; Bluesky allows 8"
        );
        assert!(violations[1].message.contains("(65 characters)"));
    }

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(2_000_000), "2,000,000");
    }
}
