//! Mastodon: `POST /api/v1/statuses` with an `Idempotency-Key`, media through
//! `POST /api/v2/media` (polling `GET /api/v1/media/{id}` while the server processes a file),
//! the instance's own text limit from `GET /api/v2/instance`, and a read-back among the
//! account's recent statuses.
//!
//! - `rules.rs`: what Mastodon accepts (length as Mastodon counts, media, fields). Pure.
//! - `plan.rs`: a post as requests. Pure.
//! - `read.rs`: Mastodon's answers, the instance's limit, and the read-back.

mod plan;
pub mod read;
pub mod rules;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::adapter::{Outgoing, Reconciled};
use super::http::Answer;
use super::keys::{Key, Kind, Settings};
use super::run::{ReadBack, Verdict};
use super::{BoxFuture, ChannelCtx, Limits, PlatformSpec, PostView, Violation};

pub use rules::{DEFAULT_MAX_CHARACTERS, FIELDS, text_to_send};

/// Mastodon keeps an `Idempotency-Key` for an hour; resending with the same key is safe
/// until five minutes before that, which leaves room for clock skew and a slow request.
pub const SAME_KEY_WINDOW: SignedDuration = SignedDuration::from_mins(55);

pub struct Mastodon;

const KEYS: &[Key] = &[
    Key::required("instance", Kind::Url, "\"https://mastodon.social\"")
        .about("the server the account is on"),
    Key::required("token", Kind::Secret, "{ env = \"SHOP_MASTODON_TOKEN\" }")
        .about("an access token with the write:statuses and write:media scopes"),
    Key::optional(
        "max_characters",
        Kind::Integer {
            min: 1,
            max: 1_000_000,
        },
        "500",
    )
    .about("the instance's post length limit; read from the instance when left out"),
];

impl PlatformSpec for Mastodon {
    fn name(&self) -> &'static str {
        "mastodon"
    }

    fn title(&self) -> &'static str {
        "Mastodon"
    }

    fn about(&self) -> &'static str {
        "Mastodon. The instance's own character limit applies; links count 23."
    }

    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn fields(&self) -> Option<&'static [&'static str]> {
        Some(FIELDS)
    }

    fn limits(&self, settings: &Settings) -> Limits {
        Limits {
            max_characters: settings
                .integer("max_characters")
                .and_then(|n| usize::try_from(n).ok()),
        }
    }

    fn validate(&self, limits: &Limits, post: &PostView<'_>) -> Vec<Violation> {
        rules::validate(limits, post)
    }

    fn plan(&self, ch: &ChannelCtx<'_>, post: &Outgoing) -> super::plan::Plan {
        plan::plan(ch, post)
    }

    fn read_answer(
        &self,
        ch: &ChannelCtx<'_>,
        step: &super::plan::Step,
        answer: &Answer,
        now: Timestamp,
    ) -> Option<Verdict> {
        read::read_answer(ch, step, answer, now)
    }

    fn error_text(&self, body: &Value) -> Option<String> {
        body.get("error")?.as_str().map(str::to_string)
    }

    fn receipt(
        &self,
        _ch: &ChannelCtx<'_>,
        _post: &Outgoing,
        known: &super::plan::Bindings,
    ) -> super::adapter::Receipt {
        read::receipt(known)
    }

    fn read_back<'a>(&'a self, rb: ReadBack<'a>) -> BoxFuture<'a, Reconciled> {
        Box::pin(read::read_back(rb))
    }

    fn resend_window(&self) -> Option<SignedDuration> {
        Some(SAME_KEY_WINDOW)
    }

    fn limits_lookup(&self, ch: &ChannelCtx<'_>) -> Option<super::plan::Step> {
        // A limit the config sets wins; no need to ask.
        if ch.settings.integer("max_characters").is_some() {
            return None;
        }
        Some(plan::instance_lookup(ch))
    }

    fn read_limits(&self, answer: &Answer) -> Option<Limits> {
        read::read_limits(answer)
    }

    fn auth(&self, ch: &ChannelCtx<'_>) -> super::AuthFlow {
        super::AuthFlow::Check(vec![plan::account_check(ch)])
    }
}

/// The instance's base URL without a trailing `/`.
fn base(ch: &ChannelCtx<'_>) -> String {
    ch.settings
        .url("instance")
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_string()
}
