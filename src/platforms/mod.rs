//! The platforms cadenced publishes to, and each platform's rules for a post (text length
//! by the platform's own counting rule, media count and size, alt text, extra fields).
//! Validation here is pure: no IO, no clock. Publishing adapters arrive with the daemon.
//!
//! Adding a platform: a variant in [`Platform`], its name in [`Platform::name`], a file with
//! its `validate` and `FIELDS`, and its config keys in `config`. The compiler lists the rest.

pub mod adapter;
pub mod bluesky;
pub mod exec;
pub mod mastodon;
pub mod mastodon_api;
pub mod outbox;
pub mod registry;
pub mod request;
pub mod text;
pub mod webhook;
pub mod x;

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    X,
    Mastodon,
    Bluesky,
    Webhook,
    Exec,
    Outbox,
}

impl Platform {
    pub const ALL: [Platform; 6] = [
        Platform::X,
        Platform::Mastodon,
        Platform::Bluesky,
        Platform::Webhook,
        Platform::Exec,
        Platform::Outbox,
    ];

    /// Platforms the SPEC names that this version cannot publish to yet.
    pub const PLANNED: [&'static str; 8] = [
        "facebook",
        "instagram",
        "pinterest",
        "tumblr",
        "linkedin",
        "threads",
        "telegram",
        "discord",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Platform::X => "x",
            Platform::Mastodon => "mastodon",
            Platform::Bluesky => "bluesky",
            Platform::Webhook => "webhook",
            Platform::Exec => "exec",
            Platform::Outbox => "outbox",
        }
    }

    pub fn parse(name: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Social networks take part in the "different text per platform" rule; generic sinks
    /// (webhook, exec, outbox) only when their channel sets `variation = true`.
    pub fn varies_by_default(self) -> bool {
        !matches!(self, Platform::Webhook | Platform::Exec | Platform::Outbox)
    }

    /// Keys a post's `[platform]` table may hold for this platform, named as its API names them.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            Platform::X => x::FIELDS,
            Platform::Mastodon => mastodon::FIELDS,
            Platform::Bluesky => bluesky::FIELDS,
            // Generic sinks pass the table through to the receiving program untouched.
            Platform::Webhook | Platform::Exec | Platform::Outbox => &[],
        }
    }

    /// Checks a post against this platform's rules. Pure.
    pub fn validate(self, limits: &Limits, post: &PostView<'_>) -> Vec<Violation> {
        match self {
            Platform::X => x::validate(limits, post),
            Platform::Mastodon => mastodon::validate(limits, post),
            Platform::Bluesky => bluesky::validate(limits, post),
            Platform::Webhook | Platform::Exec | Platform::Outbox => Vec::new(),
        }
    }

    /// Whether unknown keys in a post's `[platform]` table are errors (true for platforms
    /// with a fixed API; generic sinks accept anything).
    pub fn checks_fields(self) -> bool {
        self.varies_by_default()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Per-channel settings that change a platform's limits (e.g. a Mastodon instance's
/// `max_characters`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub max_characters: Option<usize>,
}

/// A media file attached to a post, as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaInfo {
    /// Path relative to the queue folder, for messages.
    pub path: PathBuf,
    pub alt: Option<String>,
    pub bytes: u64,
}

/// What platform rules see of a post: pure data.
#[derive(Debug, Clone, Copy)]
pub struct PostView<'a> {
    pub text: &'a str,
    pub media: &'a [MediaInfo],
    pub link: Option<&'a str>,
    pub fields: &'a toml::Table,
}

/// A broken platform rule: what is wrong and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub message: String,
    pub help: String,
}

impl Violation {
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        Violation {
            message: message.into(),
            help: help.into(),
        }
    }
}

/// At most `max` media files per post, in `platform`'s words.
pub(crate) fn check_media_count(
    platform: &str,
    max: usize,
    media: &[MediaInfo],
    out: &mut Vec<Violation>,
) {
    if media.len() > max {
        out.push(Violation::new(
            format!(
                "{} media files are attached; {platform} allows at most {max} per post",
                media.len()
            ),
            format!(
                "remove {} of them, or spread them over two posts",
                media.len() - max
            ),
        ));
    }
}

/// Alt texts of at most `max` characters, in `platform`'s words.
pub(crate) fn check_alt_length(
    platform: &str,
    max: usize,
    media: &[MediaInfo],
    out: &mut Vec<Violation>,
) {
    for m in media {
        let Some(alt) = &m.alt else { continue };
        let len = alt.chars().count();
        if len > max {
            out.push(Violation::new(
                format!(
                    "alt text of {} is {len} characters; {platform} allows {max}",
                    m.path.display()
                ),
                format!("shorten it by {} characters", len - max),
            ));
        }
    }
}
