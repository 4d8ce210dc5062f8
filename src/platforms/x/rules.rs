//! x: the rules X applies to a post made with `POST /2/tweets`: the weighted length of the
//! text (twitter-text v3), at most four media, alt text length, characters X refuses, and the
//! values of the `[platform]` fields cadenced passes on.
//!
//! X has no link field, so a post's `link` travels in the text and is counted there. The
//! counting itself lives in `text.rs`, which the twitter-text conformance vectors check below.
//! Pure: no IO, no clock, no HTTP; publishing belongs to the adapter.

use crate::platforms::text::{self, fields};
use crate::platforms::{Limits, PostView, Violation};

/// Keys a post's `[platform]` table may hold for X, named as in `CreatePostsRequest`. Chosen
/// for scheduled posts: who may reply, quoting a post, posting into a community, and the two
/// disclosures X asks for. Replies, polls, cards and edits are left out: a post written days
/// ahead does not reply to a thread.
pub const FIELDS: &[&str] = &[
    "reply_settings",
    "quote_tweet_id",
    "community_id",
    "made_with_ai",
    "paid_partnership",
];

/// `reply_settings` values (`CreatePostsRequest`); leaving the key out lets everyone reply.
pub const REPLY_SETTINGS: &[&str] = &["following", "mentionedUsers", "subscribers", "verified"];

/// At most this many media per post (`media.media_ids` `maxItems`).
pub const MAX_MEDIA: usize = 4;

/// The media types X's simple upload takes (videos need X's chunked upload, which cadenced
/// does not do).
pub const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

/// Largest image X takes (5 MB; GIFs up to 15 MB, held to the same bound here).
pub const MAX_IMAGE_BYTES: u64 = 5 * 1024 * 1024;

/// Longest alt text X stores for an image, in characters.
pub const MAX_ALT_TEXT: usize = 1000;

const PLATFORM: &str = "X";

/// The text X receives: the body, trimmed, with the post's `link` after a blank line unless
/// the body already holds it.
pub fn text_to_send(post: &PostView<'_>) -> String {
    text::with_link(post.text, post.link)
}

/// Checks a post against X's rules. The length limit is 280 weighted characters unless the
/// channel sets `max_characters` (X Premium accounts may post longer).
pub fn validate(limits: &Limits, post: &PostView<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let text = text_to_send(post);
    let what = crate::platforms::text_subject(post, &text);

    crate::platforms::check_not_empty(
        "X",
        text.is_empty() && post.media.is_empty(),
        "no text and no media",
        &mut out,
    );

    let count = text::x_count(&text);
    let max = limits.max_characters.unwrap_or(text::X_MAX_WEIGHTED_LENGTH);
    if count.weighted > max {
        let over = count.weighted - max;
        out.push(Violation::new(
            format!(
                "{what} is {} weighted characters; X allows {max} (URLs count 23, CJK and emoji 2)",
                count.weighted
            ),
            format!(
                "{}; each CJK character or emoji you remove saves 2",
                text::shorten_by(over, "character")
            ),
        ));
    }
    if let Some(&c) = count.invalid.first() {
        let kind = if c == '\u{FEFF}' {
            "a byte-order mark"
        } else {
            "a Unicode non-character"
        };
        out.push(Violation::new(
            format!(
                "text contains U+{:04X} ({kind}), which X refuses in any post",
                c as u32
            ),
            "delete it; it is invisible in most editors, so retype the text around it if need be",
        ));
    }

    crate::platforms::check_media_count("X", MAX_MEDIA, post.media, &mut out);
    for media in post.media {
        let content_type = crate::platforms::plan::content_type(&media.path);
        if !IMAGE_TYPES.contains(&content_type.as_str()) {
            out.push(Violation::new(
                format!(
                    "{} is not an image (JPEG, PNG, GIF or WebP); cadenced uploads only images to X",
                    media.path.display()
                ),
                "attach an image instead, or post the video from X's own app",
            ));
        } else if media.bytes > MAX_IMAGE_BYTES {
            out.push(Violation::new(
                format!(
                    "{} is {} bytes; X takes images of up to 5 MB",
                    media.path.display(),
                    media.bytes
                ),
                "scale it down or save it with stronger compression",
            ));
        }
    }
    crate::platforms::check_alt_length("X", MAX_ALT_TEXT, post.media, &mut out);

    check_fields(post.fields, &mut out);
    out
}

fn check_fields(table: &toml::Table, out: &mut Vec<Violation>) {
    fields::one_of(PLATFORM, table, "reply_settings", REPLY_SETTINGS, out);
    check_id(
        table,
        "quote_tweet_id",
        "the number at the end of the post's address (x.com/…/status/1234567890)",
        out,
    );
    check_id(
        table,
        "community_id",
        "the number at the end of the community's address (x.com/i/communities/1234567890)",
        out,
    );
    fields::boolean(PLATFORM, table, "made_with_ai", out);
    fields::boolean(PLATFORM, table, "paid_partnership", out);
}

/// X ids are strings of 1 to 19 digits (`^[0-9]{1,19}$` in the API contract).
fn check_id(table: &toml::Table, key: &str, where_to_find: &str, out: &mut Vec<Violation>) {
    let Some(id) = fields::string(PLATFORM, table, key, "\"1234567890\"", out) else {
        return;
    };
    if !(1..=19).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_digit()) {
        out.push(Violation::new(
            format!("[platform] {key} is \"{id}\"; X expects an id of 1 to 19 digits"),
            format!("use {where_to_find}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::platforms::testing::{image, table, view};

    // --- conformance: twitter-text's own vectors ---------------------------------------------

    #[derive(Deserialize)]
    struct Conformance {
        tests: Sections,
    }

    #[derive(Deserialize)]
    struct Sections {
        #[serde(rename = "WeightedTweetsWithDiscountedEmojiCounterTest")]
        emoji: Vec<Vector>,
        #[serde(rename = "UnicodeDirectionalMarkerCounterTest")]
        directional: Vec<Vector>,
    }

    #[derive(Deserialize)]
    struct Vector {
        description: String,
        text: String,
        expected: Expected,
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Expected {
        weighted_length: usize,
        valid: bool,
    }

    fn data(name: &str) -> String {
        let path = format!(
            "{}/tests/data/twitter-text/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
    }

    /// Every vector of the two v3-with-emoji sections of twitter-text's `validate.yml`.
    #[test]
    fn twitter_text_conformance_vectors() {
        let conformance: Conformance =
            serde_yaml_ng::from_str(&data("validate.yml")).expect("validate.yml parses");
        let vectors: Vec<(&str, &Vector)> = conformance
            .tests
            .emoji
            .iter()
            .map(|v| ("WeightedTweetsWithDiscountedEmojiCounterTest", v))
            .chain(
                conformance
                    .tests
                    .directional
                    .iter()
                    .map(|v| ("UnicodeDirectionalMarkerCounterTest", v)),
            )
            .collect();
        assert_eq!(vectors.len(), 24, "the two sections hold 22 + 2 vectors");

        let mut failures = Vec::new();
        for (section, vector) in &vectors {
            let count = text::x_count(&vector.text);
            // twitter-text's `valid`: no refused character, not empty, within the limit.
            let valid = count.invalid.is_empty()
                && count.weighted > 0
                && count.weighted <= text::X_MAX_WEIGHTED_LENGTH;
            if count.weighted != vector.expected.weighted_length || valid != vector.expected.valid {
                failures.push(format!(
                    "{section} / {:?}: weightedLength {} (expected {}), valid {valid} (expected {})",
                    vector.description,
                    count.weighted,
                    vector.expected.weighted_length,
                    vector.expected.valid
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} twitter-text vectors failed:\n{}",
            failures.len(),
            vectors.len(),
            failures.join("\n")
        );
    }

    /// The weights in `text.rs` are the ones in twitter-text's `config/v3.json`.
    #[test]
    fn weights_match_twitter_text_config_v3() {
        let config: serde_json::Value =
            serde_json::from_str(&data("config-v3.json")).expect("config-v3.json parses");
        assert_eq!(config["maxWeightedTweetLength"], 280);
        assert_eq!(config["transformedURLLength"], text::URL_LENGTH);
        assert_eq!(config["scale"], 100);
        assert_eq!(config["defaultWeight"], 200);
        assert_eq!(config["emojiParsingEnabled"], true);
        let ranges: Vec<(u32, u32, u64)> = config["ranges"]
            .as_array()
            .expect("ranges is a list")
            .iter()
            .map(|r| {
                let field = |k: &str| r[k].as_u64().expect("range fields are numbers");
                (field("start") as u32, field("end") as u32, field("weight"))
            })
            .collect();
        let ours: Vec<(u32, u32, u64)> = text::X_LIGHT_RANGES
            .iter()
            .map(|&(start, end)| (start, end, 100))
            .collect();
        assert_eq!(ranges, ours);
    }

    // --- length ------------------------------------------------------------------------------

    #[test]
    fn latin_text_at_the_limit_passes_and_one_more_fails() {
        let fields = toml::Table::new();
        let text = "a".repeat(280);
        assert!(validate(&Limits::default(), &view(&text, &[], &fields)).is_empty());
        let text = "a".repeat(281);
        let violations = validate(&Limits::default(), &view(&text, &[], &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "text is 281 weighted characters; X allows 280 (URLs count 23, CJK and emoji 2)"
        );
        assert_eq!(
            violations[0].help,
            "shorten it by 1 character; each CJK character or emoji you remove saves 2"
        );
    }

    #[test]
    fn cjk_counts_double() {
        let fields = toml::Table::new();
        let text = "促".repeat(140);
        assert!(validate(&Limits::default(), &view(&text, &[], &fields)).is_empty());
        let text = "促".repeat(141);
        let violations = validate(&Limits::default(), &view(&text, &[], &fields));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.starts_with("text is 282 weighted"));
        assert!(violations[0].help.contains("by 2 characters"));
    }

    #[test]
    fn emoji_sequences_count_two() {
        let fields = toml::Table::new();
        // 140 family emoji of 7 code points each: 280, exactly the limit.
        let text = "👨‍👩‍👧‍👦".repeat(140);
        assert!(validate(&Limits::default(), &view(&text, &[], &fields)).is_empty());
        let text = format!("{text}!");
        assert_eq!(
            validate(&Limits::default(), &view(&text, &[], &fields)).len(),
            1
        );
    }

    #[test]
    fn every_url_counts_23_whatever_its_length() {
        let fields = toml::Table::new();
        // 256 letters, a space and a 100-character URL: 357 characters, 280 weighted.
        let url = format!("https://shop.com/{}", "p".repeat(83));
        let text = format!("{} {url}", "a".repeat(256));
        assert_eq!(text::x_weighted_length(&text), 256 + 1 + 23);
        assert!(validate(&Limits::default(), &view(&text, &[], &fields)).is_empty());
        // The same length of plain text is too long.
        let plain = "a".repeat(text.chars().count());
        assert_eq!(
            validate(&Limits::default(), &view(&plain, &[], &fields)).len(),
            1
        );
    }

    #[test]
    fn the_link_is_appended_and_counted() {
        let fields = toml::Table::new();
        let body = "a".repeat(260);
        let mut post = view(&body, &[], &fields);
        post.link = Some("https://shop.com/black-friday");
        assert_eq!(
            text_to_send(&post),
            format!("{body}\n\nhttps://shop.com/black-friday")
        );
        // 260 + 2 newlines + 23 = 285.
        let violations = validate(&Limits::default(), &post);
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "text with the appended link is 285 weighted characters; X allows 280 \
             (URLs count 23, CJK and emoji 2)"
        );
        // A link already in the body is not appended again.
        let body = "Sale: https://shop.com/black-friday";
        post.text = body;
        assert_eq!(text_to_send(&post), body);
        assert!(validate(&Limits::default(), &post).is_empty());
    }

    #[test]
    fn a_channel_may_raise_the_limit() {
        let fields = toml::Table::new();
        let text = "a".repeat(1000);
        let limits = Limits {
            max_characters: Some(25_000),
        };
        assert!(validate(&limits, &view(&text, &[], &fields)).is_empty());
    }

    #[test]
    fn refused_characters_are_reported() {
        let fields = toml::Table::new();
        let violations = validate(&Limits::default(), &view("Sale\u{FEFF}!", &[], &fields));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("U+FEFF"));
    }

    // --- media -------------------------------------------------------------------------------

    #[test]
    fn empty_text_needs_media() {
        let fields = toml::Table::new();
        let violations = validate(&Limits::default(), &view("  \n", &[], &fields));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("no text and no media"));
        let media = [image(Some("Red sneakers"))];
        assert!(validate(&Limits::default(), &view("", &media, &fields)).is_empty());
    }

    #[test]
    fn at_most_four_media() {
        let fields = toml::Table::new();
        let four = vec![image(Some("a")); 4];
        assert!(validate(&Limits::default(), &view("Sale", &four, &fields)).is_empty());
        let six = vec![image(Some("a")); 6];
        let violations = validate(&Limits::default(), &view("Sale", &six, &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "6 media files are attached; X allows at most 4 per post"
        );
        assert!(violations[0].help.starts_with("remove 2 of them"));
    }

    #[test]
    fn alt_text_is_optional_but_limited() {
        let fields = toml::Table::new();
        let media = [image(None)];
        assert!(validate(&Limits::default(), &view("Sale", &media, &fields)).is_empty());
        let long = "a".repeat(1001);
        let media = [image(Some(&long))];
        let violations = validate(&Limits::default(), &view("Sale", &media, &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "alt text of img/sale.jpg is 1001 characters; X allows 1000"
        );
    }

    // --- [platform] fields -------------------------------------------------------------------

    #[test]
    fn good_field_values_pass() {
        let fields = table(
            r#"
            reply_settings = "mentionedUsers"
            quote_tweet_id = "1346889436626259968"
            community_id = "1"
            made_with_ai = false
            paid_partnership = true
            "#,
        );
        assert!(validate(&Limits::default(), &view("Sale", &[], &fields)).is_empty());
        for key in fields.keys() {
            assert!(FIELDS.contains(&key.as_str()), "{key} is in FIELDS");
        }
    }

    #[test]
    fn bad_reply_settings() {
        let fields = table(r#"reply_settings = "everyone""#);
        let violations = validate(&Limits::default(), &view("Sale", &[], &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "[platform] reply_settings is \"everyone\"; X accepts \"following\", \
             \"mentionedUsers\", \"subscribers\", \"verified\""
        );
        let fields = table(r#"reply_settings = "mentionedusers""#);
        let violations = validate(&Limits::default(), &view("Sale", &[], &fields));
        assert!(violations[0].help.contains("\"mentionedUsers\""));
    }

    #[test]
    fn ids_must_be_quoted_digits() {
        let fields = table("quote_tweet_id = 1346889436626259968");
        let violations = validate(&Limits::default(), &view("Sale", &[], &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "[platform] quote_tweet_id is an integer; X expects a string"
        );
        assert_eq!(
            violations[0].help,
            "put it in quotes: quote_tweet_id = \"1346889436626259968\""
        );
        let fields = table(r#"community_id = "x.com/i/communities/12""#);
        let violations = validate(&Limits::default(), &view("Sale", &[], &fields));
        assert_eq!(violations.len(), 1);
        assert!(violations[0].message.contains("1 to 19 digits"));
    }

    #[test]
    fn disclosures_are_booleans() {
        let fields = table(r#"made_with_ai = "yes""#);
        let violations = validate(&Limits::default(), &view("Sale", &[], &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "[platform] made_with_ai is a string; X expects true or false"
        );
    }
}
