//! Bluesky (AT Protocol): a session from `com.atproto.server.createSession` with the
//! account's handle and an app password (renewed with `refreshSession` before the access
//! token expires, kept in the token store), images through `uploadBlob`, and the post as an
//! `app.bsky.feed.post` record through `createRecord` with a record key (a TID) chosen
//! before the attempt is recorded, so an unknown outcome is settled by reading that key
//! back with `getRecord`, never by creating a second post.
//!
//! - `rules.rs`: what Bluesky accepts (300 graphemes and 3000 bytes, images, alt text).
//! - `plan.rs`: a post as requests, with its facets (links, mentions, hashtags at UTF-8
//!   byte offsets), its embed (images or a link card) and its record key. Pure.
//! - `read.rs`: Bluesky's answers (expired sessions), the receipt, and the read-back.

mod facets;
mod plan;
mod read;
pub mod rules;

pub use facets::{Facet, FacetKind, facets};
pub use plan::{record_key, tid};
pub use rules::{FIELDS, text_to_send};

use jiff::Timestamp;
use serde_json::Value;

use super::adapter::{Outgoing, Receipt, Reconciled};
use super::http::Answer;
use super::keys::{Key, Kind};
use super::plan::{Bindings, Plan, Step};
use super::run::{ReadBack, Verdict};
use super::{BoxFuture, ChannelCtx, Limits, PlatformSpec, PostView, Violation};

/// Bluesky's main PDS host, used when a channel sets no `service`.
pub const DEFAULT_SERVICE: &str = "https://bsky.social";

pub struct Bluesky;

const KEYS: &[Key] = &[
    Key::defaulted(
        "service",
        Kind::Url,
        "\"https://bsky.social\"",
        "\"https://bsky.social\"",
    )
    .about("the account's PDS (its hosting server)"),
    Key::required("handle", Kind::Handle, "\"shop.bsky.social\"")
        .about("the account's handle, without `@`"),
    Key::required(
        "app_password",
        Kind::Secret,
        "{ credential = \"cadenced_bluesky-app-password\" }",
    )
    .about("an app password (Settings → Privacy and security → App passwords)"),
];

impl PlatformSpec for Bluesky {
    fn name(&self) -> &'static str {
        "bluesky"
    }

    fn title(&self) -> &'static str {
        "Bluesky"
    }

    fn about(&self) -> &'static str {
        "Bluesky. 300 graphemes and 3000 bytes; images need alt text; links, mentions and hashtags become rich text."
    }

    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn fields(&self) -> Option<&'static [&'static str]> {
        Some(FIELDS)
    }

    fn validate(&self, limits: &Limits, post: &PostView<'_>) -> Vec<Violation> {
        rules::validate(limits, post)
    }

    fn plan(&self, ch: &ChannelCtx<'_>, post: &Outgoing) -> Plan {
        plan::plan(ch, post)
    }

    fn read_answer(
        &self,
        _ch: &ChannelCtx<'_>,
        step: &Step,
        answer: &Answer,
        _now: Timestamp,
    ) -> Option<Verdict> {
        read::read_answer(step, answer)
    }

    fn error_text(&self, body: &Value) -> Option<String> {
        read::error_text(body)
    }

    fn receipt(&self, ch: &ChannelCtx<'_>, post: &Outgoing, known: &Bindings) -> Receipt {
        let uri = known
            .get("remote_uri")
            .and_then(|b| b.value.as_str())
            .map(str::to_string);
        read::receipt_for(ch, post, uri)
    }

    fn read_back<'a>(&'a self, rb: ReadBack<'a>) -> BoxFuture<'a, Reconciled> {
        Box::pin(read::read_back(rb))
    }

    fn auth(&self, ch: &ChannelCtx<'_>) -> super::AuthFlow {
        // Logging in with the app password is the check (and the session is kept).
        let mut steps = plan::session_steps(ch);
        steps.push(
            Step::new(
                "account",
                super::plan::Role::Session,
                "GET",
                xrpc(ch, "com.atproto.server.getSession"),
                "the check of the session",
            )
            .auth(super::plan::Auth::Bearer(super::plan::Text::hole(
                "access_jwt",
            )))
            .bind(
                "account",
                super::plan::From::Json("/handle".into()),
                super::plan::Keep::Plan,
            ),
        );
        super::AuthFlow::Check(steps)
    }

    fn read_back_needs_session(&self) -> bool {
        // getRecord is public: a read-back must not depend on a session the PDS may refuse.
        false
    }
}

/// The PDS's base URL without a trailing `/`.
fn service(ch: &ChannelCtx<'_>) -> String {
    ch.settings
        .url("service")
        .unwrap_or(DEFAULT_SERVICE)
        .trim_end_matches('/')
        .to_string()
}

fn xrpc(ch: &ChannelCtx<'_>, method: &str) -> String {
    format!("{}/xrpc/{method}", service(ch))
}

fn handle<'a>(ch: &ChannelCtx<'a>) -> &'a str {
    ch.settings.text("handle").unwrap_or_default()
}
