//! `webhook`: POSTs the post as JSON ([`document`]) to the channel's URL with an
//! `Idempotency-Key` header.
//!
//! 2xx is published (the body may carry `{ "id", "url" }`); 408, 429 and 5xx are transient
//! (with `Retry-After` in seconds or as an HTTP date): the receiver gets the same
//! `Idempotency-Key` on every resend of one attempt, which is what lets it drop a duplicate
//! after a 5xx that did half its work. Other answers are permanent. A connection that could
//! not be made is transient (nothing was sent); a time-out or a connection lost after
//! sending is unknown (the receiver may have acted). A webhook cannot be read back, so the
//! user decides an unknown outcome with `retry` or `resolve`.

use std::time::Duration;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::adapter::{Outgoing, PublishError};
use super::http::{self, Answer};
use super::keys::{Key, Kind};
use super::plan::{
    Body, From, Keep, Plan, Role, Step, Tpl, redact_url_password, toml_table_to_json,
};
use super::run::Verdict;
use super::{ChannelCtx, PlatformSpec};

/// How long one webhook call may take, answer included, unless the channel says.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The most of an answer read: enough for `{ "id", "url" }` or an error message.
const MAX_ANSWER: usize = 64 * 1024;

pub struct Webhook;

const KEYS: &[Key] = &[
    Key::required("url", Kind::Url, "\"https://hooks.example/cadenced\"")
        .about("where the post is POSTed as JSON"),
    Key::defaulted(
        "timeout",
        Kind::Duration { min_secs: 1 },
        "\"30s\"",
        "\"10s\"",
    )
    .about("how long the receiver may take to answer"),
];

impl PlatformSpec for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn title(&self) -> &'static str {
        "the webhook"
    }

    fn about(&self) -> &'static str {
        "POSTs each post as JSON to a URL of yours, with an Idempotency-Key header."
    }

    fn keys(&self) -> &'static [Key] {
        KEYS
    }

    fn plan(&self, ch: &ChannelCtx<'_>, post: &Outgoing) -> Plan {
        let url = ch.settings.url("url").unwrap_or_default();
        Plan {
            steps: vec![
                Step::new("create", Role::Create, "POST", url, "the post")
                    .header("Idempotency-Key", post.idempotency_key.as_str())
                    .body(Body::Json(Tpl::Value(document(post))))
                    .bind_optional("remote_id", From::Json("/id".into()), Keep::Plan)
                    .bind_optional("remote_url", From::Json("/url".into()), Keep::Plan)
                    .timeout(
                        ch.settings
                            .duration("timeout")
                            .and_then(|d| Duration::try_from(d).ok())
                            .unwrap_or(TIMEOUT),
                    )
                    .max_answer(MAX_ANSWER),
            ],
            assumed: Vec::new(),
        }
    }

    fn read_answer(
        &self,
        _ch: &ChannelCtx<'_>,
        step: &Step,
        answer: &Answer,
        now: Timestamp,
    ) -> Option<Verdict> {
        if answer.is_success() {
            return None;
        }
        let url = step_url(step);
        let status = answer.status;
        let said = http::error_text(answer, |_| None);
        let code = Some(status);
        if status == 408 || status == 429 || status >= 500 {
            return Some(Verdict::Fail(PublishError::Transient {
                reason: format!("the webhook {url} answered HTTP {status}: {said}"),
                retry_after: http::retry_hint(answer, now),
                http_status: code,
            }));
        }
        if answer.is_redirect() {
            return None; // the shared reading names the new location
        }
        let fix = if status == 401 || status == 403 {
            "the receiver refused access: check the webhook URL and what the receiver expects, then run `cadenced retry FILE`"
        } else {
            "the receiver refused the post: read its answer above, fix the post or the receiver, then run `cadenced retry FILE`"
        };
        Some(Verdict::Fail(PublishError::Permanent {
            reason: format!("the webhook {url} answered HTTP {status}: {said}"),
            fix: fix.into(),
            http_status: code,
        }))
    }
}

fn step_url(step: &Step) -> String {
    let text: String = step
        .url
        .0
        .iter()
        .map(|p| match p {
            super::plan::Piece::Lit(s) => s.as_str(),
            _ => super::plan::REDACTED,
        })
        .collect();
    redact_url_password(&text)
}

/// The JSON a webhook receives and an exec program reads on stdin:
/// `{ "channel", "platform", "file", "text", "link", "lang", "media": [{ "path", "alt",
/// "bytes", "local_path" }], "fields", "idempotency_key" }`. `path` is relative to the queue
/// (like `file`); `local_path` is absolute, so a local program can open the file.
pub fn document(post: &Outgoing) -> Value {
    let media: Vec<Value> = post
        .media
        .iter()
        .map(|m| {
            json!({
                "path": m.rel.to_string_lossy(),
                "alt": m.alt,
                "bytes": m.bytes,
                "local_path": m.path.to_string_lossy(),
            })
        })
        .collect();
    json!({
        "channel": post.channel,
        "platform": post.platform.name(),
        "file": post.file,
        "text": post.text,
        "link": post.link,
        "lang": post.lang,
        "media": media,
        "fields": toml_table_to_json(&post.fields),
        "idempotency_key": post.idempotency_key,
    })
}
