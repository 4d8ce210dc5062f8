//! X: `POST /2/tweets`, images through the v2 media upload (`POST /2/media/upload`, alt text
//! with `POST /2/media/metadata`), in one of two auth modes a shop may have:
//! - OAuth 2.0 user context: `cadenced auth CHANNEL` runs the authorization-code flow with
//!   PKCE once and stores the refresh token (scope `offline.access`) in the token store; the
//!   plan renews the two-hour access token with it, and the new pair replaces the old one
//!   at once (X rotates refresh tokens). A fixed user `token` works too, until it expires.
//! - OAuth 1.0a user context: the app's API key and secret and the account's access token
//!   and secret, every request signed with HMAC-SHA1.
//!
//! X has no idempotency key: a 403 "duplicate content" means the post exists (read it back),
//! and an unknown outcome is read back from the account's recent posts by its text, never
//! resent blind.
//!
//! - `rules.rs`: what X accepts (weighted length, media, fields). Pure.
//! - `plan.rs`: a post as requests, and the auth mode from the keys. Pure.
//! - `read.rs`: X's answers and the read-back.

mod plan;
mod read;
pub mod rules;

pub use plan::{AUTHORIZE_URL, SCOPES};
pub use rules::{FIELDS, text_to_send};

use jiff::Timestamp;
use serde_json::Value;

use super::adapter::{Outgoing, Receipt, Reconciled};
use super::http::Answer;
use super::keys::{Key, KeyProblem, Kind, Settings};
use super::plan::{Bindings, Plan, Step};
use super::run::{ReadBack, Verdict};
use super::{BoxFuture, ChannelCtx, Limits, PlatformSpec, PostView, Violation};

pub struct X;

/// The OAuth 1.0a keys, as X's developer portal names them.
const OAUTH1: [&str; 4] = [
    "api_key",
    "api_secret",
    "access_token",
    "access_token_secret",
];

const KEYS: &[Key] = &[
    Key::optional(
        "client_id",
        Kind::Id,
        "\"M1M5R3BMVy13QmpScXkzTUt5OE46MTpjaQ\"",
    )
    .about("OAuth 2.0: the app's client id; then run `cadenced auth CHANNEL` once"),
    Key::optional(
        "client_secret",
        Kind::Secret,
        "{ env = \"SHOP_X_CLIENT_SECRET\" }",
    )
    .about("OAuth 2.0: the client secret, for apps of the confidential type"),
    Key::defaulted(
        "redirect_uri",
        Kind::Url,
        "\"http://127.0.0.1:8976/callback\"",
        "\"https://shop.example/x-callback\"",
    )
    .about("OAuth 2.0: the callback address registered for the app"),
    Key::optional(
        "token",
        Kind::Secret,
        "{ file = \"/etc/cadenced/x-token\" }",
    )
    .about("OAuth 2.0: a user access token, instead of `client_id` (it expires)"),
    Key::optional("api_key", Kind::Secret, "{ env = \"SHOP_X_API_KEY\" }")
        .about("OAuth 1.0a: the app's API key (consumer key)"),
    Key::optional(
        "api_secret",
        Kind::Secret,
        "{ env = \"SHOP_X_API_SECRET\" }",
    )
    .about("OAuth 1.0a: the app's API key secret"),
    Key::optional(
        "access_token",
        Kind::Secret,
        "{ env = \"SHOP_X_ACCESS_TOKEN\" }",
    )
    .about("OAuth 1.0a: the account's access token"),
    Key::optional(
        "access_token_secret",
        Kind::Secret,
        "{ env = \"SHOP_X_ACCESS_TOKEN_SECRET\" }",
    )
    .about("OAuth 1.0a: the account's access token secret"),
    Key::defaulted(
        "api",
        Kind::Url,
        "\"https://api.x.com\"",
        "\"https://api.x.com\"",
    )
    .about("the API's address (change it only for a proxy)"),
];

/// How a channel proves who it is to X.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// OAuth 2.0 with a refresh token from `cadenced auth`.
    Refresh,
    /// OAuth 2.0 with a fixed user access token.
    Token,
    OAuth1,
}

/// The channel's auth mode, from its keys (`check_keys` makes sure exactly one is set).
pub fn auth_mode(settings: &Settings) -> AuthMode {
    if OAUTH1.iter().all(|k| settings.contains(k)) {
        AuthMode::OAuth1
    } else if settings.contains("token") {
        AuthMode::Token
    } else {
        AuthMode::Refresh
    }
}

impl PlatformSpec for X {
    fn name(&self) -> &'static str {
        "x"
    }

    fn title(&self) -> &'static str {
        "X"
    }

    fn about(&self) -> &'static str {
        "X (Twitter). Counts 280 weighted characters: links 23, CJK characters and emoji 2."
    }

    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn starter_keys(&self) -> Vec<&'static Key> {
        // OAuth 2.0 with `cadenced auth` is the way X recommends.
        KEYS.iter().filter(|k| k.name == "client_id").collect()
    }

    fn check_keys(&self, settings: &Settings) -> Vec<KeyProblem> {
        let oauth1: Vec<&str> = OAUTH1
            .iter()
            .copied()
            .filter(|k| settings.contains(k))
            .collect();
        let mut out = Vec::new();
        if !oauth1.is_empty() && oauth1.len() < OAUTH1.len() {
            let missing: Vec<String> = OAUTH1
                .iter()
                .filter(|k| !oauth1.contains(k))
                .map(|k| format!("`{k}`"))
                .collect();
            out.push(KeyProblem::new(
                Some(oauth1[0]),
                format!(
                    "OAuth 1.0a needs all four keys; {} missing",
                    missing.join(", ")
                ),
                "add them (from the app's \"Keys and tokens\" page in X's developer portal), or remove the OAuth 1.0a keys and use `client_id` with `cadenced auth`",
            ));
        }
        let modes = [
            !oauth1.is_empty(),
            settings.contains("token"),
            settings.contains("client_id"),
        ];
        match modes.iter().filter(|m| **m).count() {
            0 => out.push(KeyProblem::new(
                None,
                "an X channel needs credentials",
                "add `client_id` (OAuth 2.0; then run `cadenced auth CHANNEL`), or the four OAuth 1.0a keys `api_key`, `api_secret`, `access_token`, `access_token_secret`",
            )),
            1 => {}
            _ => out.push(KeyProblem::new(
                None,
                "an X channel takes one way to log in; this one sets several (`client_id`, `token`, OAuth 1.0a keys)",
                "keep `client_id` (OAuth 2.0 with `cadenced auth`), `token`, or the four OAuth 1.0a keys, and remove the others",
            )),
        }
        if settings.contains("client_secret") && !settings.contains("client_id") {
            out.push(KeyProblem::new(
                Some("client_secret"),
                "`client_secret` is set without `client_id`",
                "add the app's `client_id`, or remove `client_secret`",
            ));
        }
        out
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

    fn receipt(&self, _ch: &ChannelCtx<'_>, _post: &Outgoing, known: &Bindings) -> Receipt {
        let id = known
            .get("remote_id")
            .and_then(|b| b.value.as_str())
            .map(str::to_string);
        read::receipt(id)
    }

    fn read_back<'a>(&'a self, rb: ReadBack<'a>) -> BoxFuture<'a, Reconciled> {
        Box::pin(read::read_back(rb))
    }

    fn auth(&self, ch: &ChannelCtx<'_>) -> super::AuthFlow {
        plan::auth_flow(ch)
    }
}

/// The API's base URL without a trailing `/`.
fn api(ch: &ChannelCtx<'_>) -> String {
    ch.settings
        .url("api")
        .unwrap_or("https://api.x.com")
        .trim_end_matches('/')
        .to_string()
}
