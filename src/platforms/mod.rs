//! The platforms cadenced publishes to. Everything about one platform lives in its own
//! folder (`mastodon/`, `bluesky/`, `x/`) or file (`webhook.rs`, `exec.rs`, `outbox.rs`):
//! its config keys, its text and media rules, its request plan, how it reads answers and
//! how it reads a post back. [`registry`] lists them, one line each; nothing else names a
//! platform.
//!
//! The contract every platform keeps ([`PlatformSpec`]):
//! - `validate` is pure: no IO, no clock.
//! - `plan` is pure: it turns a post into a [`plan::Plan`] of HTTP steps, which the network
//!   executor sends and a dry run writes to the outbox (`run`), so both are the same requests.
//! - Sending makes ONE attempt per call: no sleeping and no retrying inside. The daemon owns
//!   timing, backoff and the cap, and re-checks the rules before each resend. "Not done yet,
//!   ask again at T" is an answer ([`adapter::Sent::NotYet`]), not a sleep.
//! - Errors say whether retrying can help (`adapter::PublishError`): transient, permanent,
//!   unknown (the create may have reached the platform), or the channel's credentials.
//! - `read_back` looks for a post whose outcome is unknown and never creates anything.
//! - Secrets never appear in errors, logs, the outbox or the database.

pub mod adapter;
pub mod bluesky;
pub mod exec;
pub mod http;
pub mod keys;
pub mod mastodon;
pub mod outbox;
pub mod plan;
pub mod registry;
pub mod run;
pub mod text;
pub mod webhook;
pub mod x;

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::pin::Pin;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use adapter::{Outgoing, Receipt, Reconciled};
use http::Answer;
use keys::{Key, KeyProblem, Settings};
use plan::{Bindings, Plan, Step};
use run::{ReadBack, Verdict};

/// A boxed future, for the trait's async methods (the registry holds `dyn` platforms).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a platform's plan is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP, by the network executor.
    Http,
    /// A local program (`exec`): the plan's one step names it.
    Exec,
    /// Nothing is sent; the outbox is the destination (`outbox`).
    Outbox,
}

/// What a channel's plan and answers are read with: its name, its keys, the time.
#[derive(Debug, Clone, Copy)]
pub struct ChannelCtx<'a> {
    pub name: &'a str,
    pub settings: &'a Settings,
    /// The attempt's time (`createdAt` of a record, say): the plan stays pure.
    pub now: Timestamp,
}

/// Everything about one platform. See the module documentation for the contract.
pub trait PlatformSpec: Send + Sync + 'static {
    /// The name in the config and the log: `mastodon`.
    fn name(&self) -> &'static str;

    /// The name in messages: `Mastodon`.
    fn title(&self) -> &'static str;

    /// What it is, in one line (for the man page and the config `cadenced init` writes).
    fn about(&self) -> &'static str;

    /// The keys its channels take.
    fn keys(&self) -> &'static [Key];

    /// The keys `cadenced init` writes into a new channel (with their examples): by default
    /// the required ones.
    fn starter_keys(&self) -> Vec<&'static Key> {
        self.keys()
            .iter()
            .filter(|k| k.need == keys::Need::Required)
            .collect()
    }

    /// Checks of keys that depend on each other (after each key parsed on its own).
    fn check_keys(&self, settings: &Settings) -> Vec<KeyProblem> {
        let _ = settings;
        Vec::new()
    }

    /// Keys a post's `[platform]` table may hold, named as the platform's API names them;
    /// `None` (the default, for generic sinks) passes any table through.
    fn fields(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Whether its channels take part in the "different text per platform" rule unless
    /// they set `variation`: by default when the platform checks its fields (a social
    /// network), not for generic sinks.
    fn varies_by_default(&self) -> bool {
        self.fields().is_some()
    }

    /// The limits a channel's keys set (a Mastodon instance's `max_characters`).
    fn limits(&self, settings: &Settings) -> Limits {
        let _ = settings;
        Limits::default()
    }

    /// Checks a post against the platform's rules. Pure. Generic sinks have none.
    fn validate(&self, limits: &Limits, post: &PostView<'_>) -> Vec<Violation> {
        let _ = (limits, post);
        Vec::new()
    }

    fn transport(&self) -> Transport {
        Transport::Http
    }

    /// The requests that publish `post`, in order. Pure.
    fn plan(&self, ch: &ChannelCtx<'_>, post: &Outgoing) -> Plan;

    /// Reads an answer the platform's own way (a "duplicate" refusal, an expired session,
    /// an upload still processing); `None` leaves it to the shared reading in `run`.
    fn read_answer(
        &self,
        ch: &ChannelCtx<'_>,
        step: &Step,
        answer: &Answer,
        now: Timestamp,
    ) -> Option<Verdict> {
        let _ = (ch, step, answer, now);
        None
    }

    /// The message of an error body in the platform's own shape, when it has one.
    fn error_text(&self, body: &Value) -> Option<String> {
        let _ = body;
        None
    }

    /// What goes into the log once the create succeeded: by default the `remote_id` and
    /// `remote_url` values the create step kept.
    fn receipt(&self, ch: &ChannelCtx<'_>, post: &Outgoing, known: &Bindings) -> Receipt {
        let _ = (ch, post);
        let text = |name: &str| {
            known.get(name).and_then(|b| match &b.value {
                Value::String(s) if !s.is_empty() => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
        };
        Receipt {
            remote_id: text("remote_id"),
            remote_url: text("remote_url"),
            http_status: None,
        }
    }

    /// Finds out whether an attempt whose outcome is unknown went out. Must not create.
    fn read_back<'a>(&'a self, rb: ReadBack<'a>) -> BoxFuture<'a, Reconciled> {
        let _ = rb;
        Box::pin(async { Reconciled::Unknown })
    }

    /// Whether `read_back` needs the plan's session steps to run first (a token).
    fn read_back_needs_session(&self) -> bool {
        true
    }

    /// How long after an attempt started a resend with the same idempotency key is safe
    /// (the platform deduplicates it); `None`: never.
    fn resend_window(&self) -> Option<SignedDuration> {
        None
    }

    /// A request that reads limits the server sets (a Mastodon instance's text limit);
    /// the daemon sends it in the background and gives the answer to `read_limits`.
    fn limits_lookup(&self, ch: &ChannelCtx<'_>) -> Option<Step> {
        let _ = ch;
        None
    }

    fn read_limits(&self, answer: &Answer) -> Option<Limits> {
        let _ = answer;
        None
    }

    /// How `cadenced auth` connects (or checks) a channel of this platform.
    fn auth(&self, ch: &ChannelCtx<'_>) -> AuthFlow {
        let _ = ch;
        AuthFlow::Check(Vec::new())
    }
}

/// What `cadenced auth CHANNEL` does for a platform.
#[derive(Debug, Clone)]
pub enum AuthFlow {
    /// The channel's keys are all it needs: these steps check them (a login, a read of the
    /// account); the values named `account` in their answers say who it is. No steps:
    /// nothing to connect.
    Check(Vec<Step>),
    /// OAuth 2.0 authorization code with PKCE: the user opens `authorize_url` (with
    /// `state` and `code_challenge` added), agrees, and pastes back the address the browser
    /// was sent to; `exchange` turns the code into tokens (holes `code` and
    /// `code_verifier`) and keeps them in the token store; `check` then reads the account.
    OAuth2 {
        authorize_url: String,
        exchange: Box<Step>,
        check: Vec<Step>,
    },
}

/// A platform, by its entry in the [`registry`]. Cheap to copy; compares by name.
#[derive(Clone, Copy)]
pub struct Platform(pub &'static dyn PlatformSpec);

impl Platform {
    /// The registered platform of this name.
    pub fn named(name: &str) -> Option<Platform> {
        Platform::all().find(|p| p.name() == name)
    }

    /// Same as [`Platform::named`] (the name the log and the config use).
    pub fn parse(name: &str) -> Option<Platform> {
        Platform::named(name)
    }

    /// Every registered platform, in the registry's order.
    pub fn all() -> impl Iterator<Item = Platform> {
        registry::ALL.iter().map(|spec| Platform(*spec))
    }

    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Whether unknown keys in a post's `[platform]` table are errors.
    pub fn checks_fields(self) -> bool {
        self.0.fields().is_some()
    }
}

impl std::ops::Deref for Platform {
    type Target = dyn PlatformSpec;
    fn deref(&self) -> &Self::Target {
        self.0
    }
}

impl PartialEq for Platform {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Platform {}

impl Hash for Platform {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state);
    }
}

impl PartialOrd for Platform {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Platform {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.name().cmp(other.name())
    }
}

impl fmt::Debug for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
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

impl MediaInfo {
    /// The alt text, unless it is missing or blank: a blank alt text is no description, on
    /// every platform (it is neither sent nor counted as present).
    pub fn alt_text(&self) -> Option<&str> {
        self.alt.as_deref().filter(|a| !a.trim().is_empty())
    }
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

/// How messages name the text a platform receives: "text", or "text with the appended
/// link" when the post's `link` was added to the body (`sent` is what goes out).
pub(crate) fn text_subject(post: &PostView<'_>, sent: &str) -> &'static str {
    if sent.trim() != post.text.trim() {
        "text with the appended link"
    } else {
        "text"
    }
}

/// A post with nothing to show (`empty`), in `platform`'s words: `what` lists what the
/// platform would take (`"no text and no media"`), the help says how to add some.
pub(crate) fn check_not_empty(platform: &str, empty: bool, what: &str, out: &mut Vec<Violation>) {
    if empty {
        out.push(Violation::new(
            format!("the post has {what}; {platform} needs at least one of them"),
            "write the text below the front matter, or attach an image with \
             media = [{ path = \"…\", alt = \"…\" }]",
        ));
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
                text::shorten_by(len - max, "character"),
            ));
        }
    }
}

/// What the rules' unit tests of every platform build their posts from.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    use super::{MediaInfo, PostView};

    /// A post of `text` with `media` and `[platform]` `fields`, without a link.
    pub fn view<'a>(
        text: &'a str,
        media: &'a [MediaInfo],
        fields: &'a toml::Table,
    ) -> PostView<'a> {
        PostView {
            text,
            media,
            link: None,
            fields,
        }
    }

    /// A 300 kB JPEG with `alt`.
    pub fn image(alt: Option<&str>) -> MediaInfo {
        image_of(alt, 300_000)
    }

    /// A JPEG of `bytes` with `alt`.
    pub fn image_of(alt: Option<&str>, bytes: u64) -> MediaInfo {
        MediaInfo {
            path: PathBuf::from("img/sale.jpg"),
            alt: alt.map(str::to_string),
            bytes,
        }
    }

    /// A `[platform]` table from TOML text.
    pub fn table(toml_text: &str) -> toml::Table {
        toml_text.parse().expect("test TOML parses")
    }
}
