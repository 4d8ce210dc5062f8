//! The `webhook` adapter: POSTs the post as JSON ([`document`]) to the channel's URL with an
//! `Idempotency-Key` header, and classifies the answer.
//!
//! 2xx is published (the body may carry `{ "id", "url" }`); 408, 429 and 5xx are transient
//! (with `Retry-After` in seconds or as an HTTP date); other answers are permanent. The
//! receiver gets the same `Idempotency-Key` on every resend of one attempt, which is what
//! lets it drop a duplicate after a 5xx that did half its work. A connection that could not
//! be made is transient (nothing was sent); a time-out or a connection lost after sending is
//! unknown (the receiver may have acted). A webhook cannot be read back, so `reconcile`
//! answers `Unknown` and the user decides with `retry` or `resolve`.
//!
//! What this module must not do: retry, sleep, or put the URL's password into a message
//! (reqwest's errors carry the URL; they are stripped of it here).

use std::error::Error as _;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use serde_json::Value;

use super::adapter::{Adapter, AttemptInfo, Outgoing, PublishError, Receipt, Reconciled};
use super::request::{document, redact_url_password};

/// How long one webhook call may take, answer included, unless the adapter is given another.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of a response body read: enough for `{ "id", "url" }` or an error message.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct WebhookAdapter {
    url: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl WebhookAdapter {
    pub fn new(url: impl Into<String>, client: reqwest::Client) -> Self {
        WebhookAdapter {
            url: url.into(),
            client,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The URL as it may appear in messages.
    fn shown_url(&self) -> String {
        redact_url_password(&self.url)
    }
}

impl Adapter for WebhookAdapter {
    async fn publish(&self, post: &Outgoing, now: Timestamp) -> Result<Receipt, PublishError> {
        let body = serde_json::to_vec(&document(post)).expect("JSON values encode");
        let sent = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header("Idempotency-Key", &post.idempotency_key)
            .timeout(self.timeout)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => return Err(send_error(&self.shown_url(), self.timeout, e)),
        };
        let status = response.status();
        let code = Some(status.as_u16());
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(redact_url_password);
        // A body that breaks off after a 2xx does not undo the 2xx: read what comes.
        let body = read_body(&mut response).await;

        if status.is_success() {
            let (remote_id, remote_url) = receipt_fields(&body);
            return Ok(Receipt {
                remote_id,
                remote_url,
                http_status: code,
            });
        }
        let url = self.shown_url();
        let said = snippet(&body);
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            return Err(PublishError::Transient {
                reason: format!("the webhook {url} answered {status}{said}"),
                retry_after,
                http_status: code,
            });
        }
        let fix = if status.is_redirection() {
            match location {
                Some(to) => format!("the webhook moved to {to}: put that address in the channel's `url`"),
                None => "the webhook answers with a redirect: put its final address in the channel's `url`".to_string(),
            }
        } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            "the receiver refused access: check the webhook URL and what the receiver expects, then run `cadenced retry FILE`".to_string()
        } else {
            "the receiver refused the post: read its answer above, fix the post or the receiver, then run `cadenced retry FILE`".to_string()
        };
        Err(PublishError::Permanent {
            reason: format!("the webhook {url} answered {status}{said}"),
            fix,
            http_status: code,
        })
    }

    async fn reconcile(
        &self,
        _post: &Outgoing,
        _attempt: &AttemptInfo,
        _now: Timestamp,
    ) -> Reconciled {
        // A webhook has no read-back; guessing either way could post twice or lose a post.
        Reconciled::Unknown
    }
}

/// Classifies a failed `send`: nothing sent (transient), or maybe received (unknown).
fn send_error(url: &str, timeout: Duration, e: reqwest::Error) -> PublishError {
    let e = e.without_url();
    let why = error_chain(&e);
    if e.is_connect() {
        // Connecting failed (refused, DNS, TLS handshake): the request never left.
        PublishError::Transient {
            reason: format!("cannot reach the webhook {url}: {why}"),
            retry_after: None,
            http_status: None,
        }
    } else if e.is_builder() {
        PublishError::Permanent {
            reason: format!("cannot send to the webhook {url}: {why}"),
            fix: "correct the channel's `url` in the config".to_string(),
            http_status: None,
        }
    } else if e.is_timeout() {
        PublishError::Unknown {
            reason: format!(
                "the webhook {url} did not answer within {} s; it may have received the post",
                timeout.as_secs_f64()
            ),
            http_status: None,
        }
    } else {
        PublishError::Unknown {
            reason: format!(
                "the connection to the webhook {url} broke after sending ({why}); it may have received the post"
            ),
            http_status: None,
        }
    }
}

/// `e: cause: cause`, the way people read an error chain.
fn error_chain(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

async fn read_body(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_BODY);
    body
}

/// `id` and `url` from a JSON answer `{ "id", "url" }` (an `id` may be a number).
pub fn receipt_fields(body: &[u8]) -> (Option<String>, Option<String>) {
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) else {
        return (None, None);
    };
    let id = match map.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let url = map
        .get("url")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    (id, url)
}

/// `: <first line of the answer>`, short, for messages; empty when there was no answer.
pub fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        None => String::new(),
        Some(line) if line.chars().count() > 200 => {
            format!(": {}…", line.chars().take(200).collect::<String>())
        }
        Some(line) => format!(": {line}"),
    }
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110 §10.2.3), relative to `now`.
/// A date in the past means "now" (zero).
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<SignedDuration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<i64>().ok().map(SignedDuration::from_secs);
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(value)
        .ok()?;
    Some(at.duration_since(now).max(SignedDuration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_http_dates() {
        let now: Timestamp = "2026-11-27T09:00:00Z".parse().unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(SignedDuration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 09:01:30 GMT", now),
            Some(SignedDuration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Fri, 27 Nov 2026 08:00:00 GMT", now),
            Some(SignedDuration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn receipts_take_string_or_number_ids() {
        assert_eq!(
            receipt_fields(br#"{"id":"a1","url":"https://x.example/a1"}"#),
            (Some("a1".into()), Some("https://x.example/a1".into()))
        );
        assert_eq!(receipt_fields(br#"{"id":42}"#), (Some("42".into()), None));
        assert_eq!(receipt_fields(b"ok"), (None, None));
    }
}
