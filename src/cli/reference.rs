//! The reference of every config key and post field: what it takes, its default, what it
//! does and an example. `cadenced.toml(5)`, `cadenced-posts(5)` and README's tables are
//! written from (and tested against) these tables; a test checks that they list exactly the
//! keys the config parser and the post parser accept, so a new key cannot go undocumented.

use std::borrow::Cow;

use crate::platforms::Platform;
use crate::platforms::keys::{Key, Need};

/// One key of the config or of a post's front matter.
#[derive(Debug, Clone)]
pub struct KeyDoc {
    pub key: Cow<'static, str>,
    /// What it takes, in words ("a path", "a duration").
    pub takes: Cow<'static, str>,
    /// The default, or "required".
    pub default: Cow<'static, str>,
    pub about: Cow<'static, str>,
    pub example: Cow<'static, str>,
}

const fn key(
    key: &'static str,
    takes: &'static str,
    default: &'static str,
    about: &'static str,
    example: &'static str,
) -> KeyDoc {
    KeyDoc {
        key: Cow::Borrowed(key),
        takes: Cow::Borrowed(takes),
        default: Cow::Borrowed(default),
        about: Cow::Borrowed(about),
        example: Cow::Borrowed(example),
    }
}

impl KeyDoc {
    /// A platform key's page entry, from the platform's declaration.
    pub fn declared(k: &Key) -> KeyDoc {
        let default = match k.need {
            Need::Required => "required".to_string(),
            Need::Optional => "none".to_string(),
            Need::Default(v) => v.to_string(),
        };
        let mut about = k.about.to_string();
        if let Some(first) = about.get(..1) {
            about = format!("{}{}.", first.to_uppercase(), &about[1..]);
        }
        KeyDoc {
            key: Cow::Borrowed(k.name),
            takes: Cow::Borrowed(k.kind.describe()),
            default: Cow::Owned(default),
            about: Cow::Owned(about),
            example: Cow::Owned(format!("{} = {}", k.name, k.example)),
        }
    }
}

/// Top-level keys (the `[defaults]` and `[channels.<name>]` tables are described apart).
pub const TOP_LEVEL: &[KeyDoc] = &[
    key(
        "queue",
        "a path",
        "queue/ beside the config file",
        "The queue folder: one sub-folder per channel, named like the channel. Installed: /var/spool/cadenced/queue.",
        r#"queue = "/var/spool/cadenced/queue""#,
    ),
    key(
        "database",
        "a path",
        "state/cadenced.sqlite beside the config file",
        "The SQLite publish log, created on the first run. Installed: /var/lib/cadenced/cadenced.sqlite.",
        r#"database = "/var/lib/cadenced/cadenced.sqlite""#,
    ),
    key(
        "outbox",
        "a path",
        "outbox/ beside the config file",
        "Where `outbox` channels and channels with `dry_run = true` write the requests they would send.",
        r#"outbox = "/var/lib/cadenced/outbox""#,
    ),
    key(
        "log_level",
        "error, warn, info, debug, trace or off",
        "info",
        "How much the daemon logs; RUST_LOG, when set, wins.",
        r#"log_level = "debug""#,
    ),
    key(
        "defaults",
        "a table",
        "none",
        "Channel keys every channel inherits unless it sets its own (the channel keys below).",
        "[defaults]\ntimezone = \"Europe/Madrid\"",
    ),
    key(
        "channels",
        "one table per channel",
        "required",
        "One `[channels.<name>]` table per account. Names are lowercase letters, digits and `-`; the name is also the channel's queue folder.",
        "[channels.shop-mastodon]\nplatform = \"mastodon\"",
    ),
];

/// Keys every channel takes; all but `platform` may also be set in `[defaults]`.
pub const CHANNEL: &[KeyDoc] = &[
    key(
        "platform",
        "x, mastodon, bluesky, webhook, exec or outbox",
        "required",
        "The kind of network behind the channel. Each platform takes its own keys (below).",
        r#"platform = "mastodon""#,
    ),
    key(
        "timezone",
        "an IANA time zone name",
        "required (here or in [defaults])",
        "Slots, `at` times without an offset and the local day of the daily cap are read in this zone.",
        r#"timezone = "Europe/Madrid""#,
    ),
    key(
        "slots",
        "a list of times: \"HH:MM\", \"Mon-Fri HH:MM\", or 5- or 6-field cron",
        "none (only posts with `at` go out, with a warning)",
        "When the channel may publish a post without `at`. A slot in a skipped DST hour fires when the hour ends; one in a repeated hour fires once.",
        r#"slots = ["Mon-Fri 10:00", "Sat 11:00", "30 17 * * 1-5"]"#,
    ),
    key(
        "max_per_day",
        "a whole number, 1 or more",
        "2",
        "At most this many posts per local day. Above 2 is allowed, with a warning: earn it.",
        "max_per_day = 1",
    ),
    key(
        "min_gap",
        "a duration",
        "3h",
        "At least this much time between two posts of the channel.",
        r#"min_gap = "4h""#,
    ),
    key(
        "unique_window",
        "a duration",
        "30d",
        "How long a published text holds back a near-duplicate on this channel (and, with `variation`, on channels of other platforms).",
        r#"unique_window = "60d""#,
    ),
    key(
        "similarity",
        "a number from 0 to 1",
        "0.8",
        "Texts whose 4-gram Jaccard similarity is at least this are near-duplicates. Between two channels the lower value applies.",
        "similarity = 0.7",
    ),
    key(
        "catch_up",
        "a duration",
        "1h",
        "After downtime, the channel publishes once for the slots it missed, if the latest is this recent. A first start catches up nothing.",
        r#"catch_up = "30m""#,
    ),
    key(
        "paused",
        "true or false",
        "false",
        "Stops the channel without removing it: its posts wait in the queue.",
        "paused = true",
    ),
    key(
        "dry_run",
        "true or false",
        "false",
        "Keeps the platform's rules but writes the requests to the outbox instead of sending them.",
        "dry_run = true",
    ),
    key(
        "variation",
        "true or false",
        "true for social networks; false for webhook, exec and outbox",
        "Whether the channel takes part in \"a different text per platform\": a near-duplicate of a post for a channel on another platform is held.",
        "variation = true",
    ),
];

/// The keys only channels of `platform` take, never inherited from `[defaults]`: the
/// platform's own declaration.
pub fn platform_keys(platform: Platform) -> Vec<KeyDoc> {
    platform.keys().iter().map(KeyDoc::declared).collect()
}

/// The keys of a post file's front matter.
pub const POST: &[KeyDoc] = &[
    key(
        "at",
        "a local date and time, or one with an offset (RFC 3339)",
        "none: the post goes out at a slot",
        "Publish at this time instead of at a slot (still within the cap and the gap). A local time is read in the channel's zone.",
        r#"at = "2026-11-27T09:00""#,
    ),
    key(
        "expires",
        "like `at`",
        "none",
        "Give up if not published by then: the file moves to expired/.",
        r#"expires = "2026-11-28T00:00""#,
    ),
    key(
        "priority",
        "a whole number",
        "0",
        "Higher goes first among posts due at the same slot.",
        "priority = 1",
    ),
    key(
        "media",
        "a list of { path, alt } tables",
        "none",
        "Images or videos to attach; paths are relative to the post file and must stay inside the queue.",
        r#"media = [{ path = "../_media/sale.jpg", alt = "Red sneakers on a shelf" }]"#,
    ),
    key(
        "link",
        "an http:// or https:// address",
        "none",
        "For platforms that take a link apart from the text; the others append it to the text if it is not there.",
        r#"link = "https://shop.example/black-friday""#,
    ),
    key(
        "lang",
        "a language tag",
        "none",
        "The post's language, for platforms that record it.",
        r#"lang = "en""#,
    ),
    key(
        "platform",
        "a table",
        "none",
        "Platform-specific fields, named as the platform's API names them; each platform checks its own (`man cadenced-posts` lists them).",
        "[platform]\nvisibility = \"unlisted\"",
    ),
];

/// The keys of one `media` entry.
pub const MEDIA: &[KeyDoc] = &[
    key(
        "path",
        "a relative path",
        "required",
        "The file, relative to the post file (`..` is fine while it stays inside the queue).",
        r#"path = "img/sale.jpg""#,
    ),
    key(
        "alt",
        "text",
        "none (some platforms require it)",
        "A description of the image for people who cannot see it.",
        r#"alt = "Red sneakers on a shelf""#,
    ),
];

/// README's reference tables, in Markdown: every config key (top level, channel, each
/// platform's) and every post field, with what it takes and its default. README holds this
/// text between `<!-- reference:begin -->` and `<!-- reference:end -->`; a test keeps the
/// two identical (its failure prints the text to paste).
pub fn markdown() -> String {
    fn cell(s: &str) -> String {
        s.replace('|', "\\|").replace('\n', " ")
    }
    fn row(out: &mut String, cells: &[&str]) {
        out.push('|');
        for c in cells {
            out.push(' ');
            out.push_str(&cell(c));
            out.push_str(" |");
        }
        out.push('\n');
    }
    let code = |k: &str| format!("`{k}`");
    let mut out = String::new();
    out.push_str("**The config** (`man cadenced.toml`; paths relative to the config file):\n\n");
    row(
        &mut out,
        &["key", "where", "takes", "default", "what it does"],
    );
    row(&mut out, &["---", "---", "---", "---", "---"]);
    for d in TOP_LEVEL {
        row(
            &mut out,
            &[&code(&d.key), "top level", &d.takes, &d.default, &d.about],
        );
    }
    for d in CHANNEL {
        let place = if d.key == "platform" {
            "channel"
        } else {
            "channel or `[defaults]`"
        };
        row(
            &mut out,
            &[&code(&d.key), place, &d.takes, &d.default, &d.about],
        );
    }
    for p in Platform::all() {
        for d in platform_keys(p) {
            row(
                &mut out,
                &[
                    &code(&d.key),
                    &format!("`{}` channel", p.name()),
                    &d.takes,
                    &d.default,
                    &d.about,
                ],
            );
        }
    }
    out.push_str("\n**Post files** (`man cadenced-posts`; every field is optional):\n\n");
    row(&mut out, &["field", "takes", "default", "what it does"]);
    row(&mut out, &["---", "---", "---", "---"]);
    for d in POST {
        row(&mut out, &[&code(&d.key), &d.takes, &d.default, &d.about]);
    }
    for d in MEDIA {
        row(
            &mut out,
            &[
                &format!("`media` `{}`", d.key),
                &d.takes,
                &d.default,
                &d.about,
            ],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(docs: &[KeyDoc]) -> Vec<String> {
        let mut k: Vec<_> = docs.iter().map(|d| d.key.to_string()).collect();
        k.sort_unstable();
        k
    }

    fn sorted(keys: &[&'static str]) -> Vec<String> {
        let mut k: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        k.sort_unstable();
        k
    }

    #[test]
    fn every_config_key_is_documented_and_nothing_else() {
        assert_eq!(keys(TOP_LEVEL), sorted(&crate::config::TOP_KEYS));
        let mut channel = crate::config::COMMON_KEYS.to_vec();
        channel.push("platform");
        assert_eq!(keys(CHANNEL), sorted(&channel));
        for p in Platform::all() {
            let declared: Vec<&'static str> = crate::config::platform_keys(p).collect();
            assert_eq!(keys(&platform_keys(p)), sorted(&declared), "{p}");
        }
    }

    #[test]
    fn readme_holds_the_reference_tables_as_generated() {
        let readme = include_str!("../../README.md");
        let begin = "<!-- reference:begin -->\n";
        let end = "<!-- reference:end -->";
        let start = readme
            .find(begin)
            .expect("README has the reference markers")
            + begin.len();
        let stop = readme[start..].find(end).expect("an end marker") + start;
        let expected = markdown();
        assert!(
            readme[start..stop] == expected,
            "README's reference tables are out of date: put the output of `cargo run --example manpages -- --readme` between the markers:\n{expected}"
        );
    }

    #[test]
    fn every_post_field_is_documented_and_nothing_else() {
        assert_eq!(keys(POST), sorted(&crate::post::KEYS));
        assert_eq!(keys(MEDIA), sorted(&crate::post::MEDIA_KEYS));
    }

    #[test]
    fn every_config_example_parses() {
        // Each channel key's example in a channel of its platform: what the page shows works.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cadenced.toml");
        for p in Platform::all() {
            let mut channel = format!("[channels.c]\nplatform = \"{p}\"\n");
            for k in CHANNEL.iter().filter(|k| k.key != "platform") {
                channel.push_str(&k.example);
                channel.push('\n');
            }
            // The keys a new channel starts with (alternatives, such as X's ways to log in,
            // cannot all be set at once).
            for k in p.starter_keys() {
                channel.push_str(&KeyDoc::declared(k).example);
                channel.push('\n');
            }
            let text = format!(
                "queue = \"q\"\ndatabase = \"d\"\noutbox = \"o\"\nlog_level = \"debug\"\n{channel}"
            );
            if let Err(diags) = crate::config::parse(&path, &text) {
                panic!("{p}: {diags:?}\n{text}");
            }
        }
    }
}
