//! mastodon: the rules a Mastodon server applies to a post made with `POST /api/v1/statuses`:
//! the instance's character limit counted as Mastodon counts (graphemes, URLs as 23, remote
//! mentions as `@user`, the content warning included), at most four media, description
//! length, and the values of the `[platform]` fields cadenced passes on.
//!
//! Mastodon has no link field, so a post's `link` travels in the text and is counted there.
//! Pure: no IO, no clock, no HTTP; the instance's `max_characters` comes in through [`Limits`]
//! (the adapter reads it from `GET /api/v2/instance`).

use crate::platforms::text::{self, fields};
use crate::platforms::{Limits, PostView, Violation};

/// Keys a post's `[platform]` table may hold for Mastodon, named as in
/// `POST /api/v1/statuses`: who sees the post, a content warning, marking media sensitive,
/// the language, and who may quote it. Replies, polls and `scheduled_at` are left out:
/// cadenced does the scheduling, and a post written ahead does not reply to a thread.
pub const FIELDS: &[&str] = &[
    "visibility",
    "spoiler_text",
    "sensitive",
    "language",
    "quote_approval_policy",
];

/// `visibility` values (`StatusVisibilityEnum`).
pub const VISIBILITY: &[&str] = &["public", "unlisted", "private", "direct"];

/// `quote_approval_policy` values (Mastodon 4.5).
pub const QUOTE_APPROVAL_POLICY: &[&str] = &["public", "followers", "nobody"];

/// Mastodon's default `max_characters`, for instances that do not say otherwise.
pub const DEFAULT_MAX_CHARACTERS: usize = 500;

/// At most this many media per post.
pub const MAX_MEDIA: usize = 4;

/// Longest media description (alt text) Mastodon stores, in characters
/// (`configuration.media_attachments.description_limit` on current servers).
pub const MAX_DESCRIPTION: usize = 1500;

const PLATFORM: &str = "Mastodon";

/// The text Mastodon receives as `status`: the body, trimmed, with the post's `link` after a
/// blank line unless the body already holds it.
pub fn text_to_send(post: &PostView<'_>) -> String {
    text::with_link(post.text, post.link)
}

/// Checks a post against Mastodon's rules, with the instance's `max_characters` from
/// `limits` (500 when unknown).
pub fn validate(limits: &Limits, post: &PostView<'_>) -> Vec<Violation> {
    let mut out = Vec::new();
    let text = text_to_send(post);
    let what = crate::platforms::text_subject(post, &text);

    crate::platforms::check_not_empty(
        "Mastodon",
        text.is_empty() && post.media.is_empty(),
        "no text and no media",
        &mut out,
    );

    // The content warning counts toward the limit; a wrong type is reported by check_fields.
    let spoiler = post
        .fields
        .get("spoiler_text")
        .and_then(toml::Value::as_str)
        .unwrap_or("");
    let length = text::mastodon_length(spoiler, &text);
    let max = limits.max_characters.unwrap_or(DEFAULT_MAX_CHARACTERS);
    if length > max {
        let (subject, counted) = if spoiler.is_empty() {
            (what.to_string(), "")
        } else {
            (
                format!("{what} with its spoiler_text"),
                ", the content warning too",
            )
        };
        out.push(Violation::new(
            format!(
                "{subject} is {length} characters; this Mastodon server allows {max} \
                 (URLs count 23, @user@server counts as @user{counted})"
            ),
            text::shorten_by(length - max, "character"),
        ));
    }

    crate::platforms::check_media_count("Mastodon", MAX_MEDIA, post.media, &mut out);
    crate::platforms::check_alt_length("Mastodon", MAX_DESCRIPTION, post.media, &mut out);

    check_fields(post.fields, &mut out);
    out
}

fn check_fields(table: &toml::Table, out: &mut Vec<Violation>) {
    fields::one_of(PLATFORM, table, "visibility", VISIBILITY, out);
    fields::string(PLATFORM, table, "spoiler_text", "\"Spoilers ahead\"", out);
    fields::boolean(PLATFORM, table, "sensitive", out);
    fields::one_of(
        PLATFORM,
        table,
        "quote_approval_policy",
        QUOTE_APPROVAL_POLICY,
        out,
    );
    if let Some(language) = fields::string(PLATFORM, table, "language", "\"en\"", out) {
        // ISO 639-1 (two letters); Mastodon also knows some three-letter ISO 639-3 codes.
        let well_formed =
            (2..=3).contains(&language.len()) && language.bytes().all(|b| b.is_ascii_lowercase());
        if !well_formed {
            out.push(Violation::new(
                format!(
                    "[platform] language is \"{language}\"; Mastodon expects an ISO 639 \
                     language code such as \"en\" or \"de\""
                ),
                "use the two-letter code in lower case (\"en\", not \"en-US\" or \"English\")",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::testing::{image, table, view};

    #[test]
    fn latin_text_at_the_default_limit() {
        let fields = toml::Table::new();
        let text = "a".repeat(500);
        assert!(validate(&Limits::default(), &view(&text, &[], &fields)).is_empty());
        let text = "a".repeat(512);
        let violations = validate(&Limits::default(), &view(&text, &[], &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "text is 512 characters; this Mastodon server allows 500 \
             (URLs count 23, @user@server counts as @user)"
        );
        assert_eq!(violations[0].help, "shorten it by 12 characters");
    }

    #[test]
    fn the_instance_limit_applies() {
        let fields = toml::Table::new();
        let text = "a".repeat(600);
        let limits = Limits {
            max_characters: Some(1000),
        };
        assert!(validate(&limits, &view(&text, &[], &fields)).is_empty());
        let limits = Limits {
            max_characters: Some(300),
        };
        let violations = validate(&limits, &view(&text, &[], &fields));
        assert!(violations[0].message.contains("allows 300"));
    }

    #[test]
    fn cjk_and_emoji_count_one_grapheme_each() {
        let fields = toml::Table::new();
        // Unlike X, a CJK character or a family emoji is one character on Mastodon.
        let text = "促".repeat(250) + &"👨‍👩‍👧‍👦".repeat(250);
        assert!(validate(&Limits::default(), &view(&text, &[], &fields)).is_empty());
        let text = text + "!";
        assert_eq!(
            validate(&Limits::default(), &view(&text, &[], &fields)).len(),
            1
        );
    }

    #[test]
    fn urls_count_23_and_remote_mentions_count_the_username() {
        let fields = toml::Table::new();
        let url = format!("https://shop.com/{}", "p".repeat(200));
        let mention = "@shopkeeper@very-long-instance-name.example.social";
        let body = format!("{} {url} {mention}", "a".repeat(464));
        // 464 + 1 + 23 + 1 + "@shopkeeper".len() = 500.
        assert_eq!(text::mastodon_length("", &body), 500);
        assert!(validate(&Limits::default(), &view(&body, &[], &fields)).is_empty());
    }

    #[test]
    fn a_bare_domain_counts_in_full() {
        let fields = toml::Table::new();
        // Mastodon only shortens URLs with a scheme.
        let body = format!("{} shop.com", "a".repeat(492));
        assert_eq!(text::mastodon_length("", &body), 501);
        assert_eq!(
            validate(&Limits::default(), &view(&body, &[], &fields)).len(),
            1
        );
    }

    #[test]
    fn the_link_is_appended_and_counted() {
        let fields = toml::Table::new();
        let body = "a".repeat(480);
        let mut post = view(&body, &[], &fields);
        post.link = Some("https://shop.com/black-friday");
        assert_eq!(
            text_to_send(&post),
            format!("{body}\n\nhttps://shop.com/black-friday")
        );
        // 480 + 2 + 23 = 505.
        let violations = validate(&Limits::default(), &post);
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0]
                .message
                .starts_with("text with the appended link is 505 characters")
        );
    }

    #[test]
    fn the_content_warning_counts() {
        let fields = table(r#"spoiler_text = "Black Friday spoilers""#);
        let text = "a".repeat(490);
        let violations = validate(&Limits::default(), &view(&text, &[], &fields));
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0]
                .message
                .starts_with("text with its spoiler_text is 511 characters")
        );
        assert_eq!(violations[0].help, "shorten it by 11 characters");
    }

    #[test]
    fn empty_text_needs_media() {
        let fields = toml::Table::new();
        assert_eq!(
            validate(&Limits::default(), &view("", &[], &fields)).len(),
            1
        );
        let media = [image(Some("Red sneakers"))];
        assert!(validate(&Limits::default(), &view("", &media, &fields)).is_empty());
    }

    #[test]
    fn media_count_and_description_length() {
        let fields = toml::Table::new();
        let five = vec![image(Some("a")); 5];
        let violations = validate(&Limits::default(), &view("Sale", &five, &fields));
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].message,
            "5 media files are attached; Mastodon allows at most 4 per post"
        );
        let long = "a".repeat(1501);
        let media = [image(Some(&long))];
        let violations = validate(&Limits::default(), &view("Sale", &media, &fields));
        assert_eq!(violations.len(), 1);
        assert!(
            violations[0]
                .message
                .contains("1501 characters; Mastodon allows 1500")
        );
        let media = [image(None)];
        assert!(validate(&Limits::default(), &view("Sale", &media, &fields)).is_empty());
    }

    #[test]
    fn good_field_values_pass() {
        let fields = table(
            r#"
            visibility = "unlisted"
            spoiler_text = "Sale"
            sensitive = false
            language = "de"
            quote_approval_policy = "followers"
            "#,
        );
        assert!(validate(&Limits::default(), &view("Angebot", &[], &fields)).is_empty());
        for key in fields.keys() {
            assert!(FIELDS.contains(&key.as_str()), "{key} is in FIELDS");
        }
    }

    #[test]
    fn bad_field_values() {
        let fields = table(
            r#"
            visibility = "friends"
            sensitive = "no"
            language = "English"
            spoiler_text = 3
            quote_approval_policy = "Nobody"
            "#,
        );
        let violations = validate(&Limits::default(), &view("Sale", &[], &fields));
        let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "[platform] visibility is \"friends\"; Mastodon accepts \"public\", \
                 \"unlisted\", \"private\", \"direct\"",
                "[platform] spoiler_text is an integer; Mastodon expects a string",
                "[platform] sensitive is a string; Mastodon expects true or false",
                "[platform] quote_approval_policy is \"Nobody\"; Mastodon accepts \"public\", \
                 \"followers\", \"nobody\"",
                "[platform] language is \"English\"; Mastodon expects an ISO 639 language code \
                 such as \"en\" or \"de\"",
            ]
        );
        assert_eq!(
            violations[3].help,
            "Mastodon spells it \"nobody\": quote_approval_policy = \"nobody\""
        );
    }
}
