//! The Mastodon publishing adapter: media uploads (`POST /api/v2/media`), the create
//! (`POST /api/v1/statuses` with an `Idempotency-Key`), the read-back among the account's
//! recent statuses, and the instance's `max_characters` (`GET /api/v2/instance`).
//!
//! It follows the contract in [`super::adapter`]: one attempt per call, errors classified by
//! whether retrying can help, the token never in an error or a log (it only travels in the
//! `Authorization` header, which reqwest marks sensitive). The text Mastodon receives is
//! [`super::mastodon::text_to_send`], the one the rules counted.
//!
//! One documented exception to "never sleep": `POST /api/v2/media` may answer 202 while the
//! server still processes the file, and a status cannot attach it until `url` is set. The
//! adapter polls `GET /api/v1/media/{id}` at most [`MEDIA_POLL_TRIES`] times,
//! [`MEDIA_POLL_PAUSE`] apart (a few seconds in all), then gives up with a transient error.
//! Handing this wait to the daemon would need the media ids kept between attempts; uploads
//! may be repeated freely (nothing is published until the create), so a bounded wait inside
//! one attempt is simpler and cannot post twice.
//!
//! After an unknown outcome the daemon first resends with the same key while
//! [`Adapter::can_resend_same_key`] allows (Mastodon then returns the status it already
//! made); `reconcile` is for later, when a create still in flight has long finished. It
//! matches the normalized text (HTML `content` stripped) among the account's statuses since
//! the attempt started, and answers "not posted" only when it read every status back to
//! then.
//!
//! What it must not do: retry the create on its own (the client is built with reqwest's
//! retries off), read the clock (`now` comes in), or report "not posted" when it cannot tell.

use std::error::Error as _;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::adapter::{Adapter, AttemptInfo, Outgoing, PublishError, Receipt, Reconciled};
use super::mastodon::{DEFAULT_MAX_CHARACTERS, text_to_send};
use super::{MediaInfo, PostView};
use crate::cadence::similarity::normalize;
use crate::config::secret::Secret;

/// Pause between two polls of a media attachment that is still processing.
pub const MEDIA_POLL_PAUSE: Duration = Duration::from_millis(200);
/// Polls of one attachment before the attempt gives up (transiently).
pub const MEDIA_POLL_TRIES: u32 = 20;

/// Mastodon keeps an `Idempotency-Key` for an hour; resending with the same key is safe
/// until five minutes before that, which leaves room for clock skew and a slow request.
pub const SAME_KEY_WINDOW: SignedDuration = SignedDuration::from_mins(55);

/// How far before the attempt's start a status may be dated and still be the attempt's
/// (the instance's clock may run behind ours).
pub const RECONCILE_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// Statuses per page of `GET /api/v1/accounts/{id}/statuses` (Mastodon's maximum).
const PAGE_LIMIT: usize = 40;
/// Pages read back before reconcile says it cannot tell.
const MAX_PAGES: usize = 5;

/// The longest part of an error body quoted in a message.
const MAX_QUOTED: usize = 300;

const TOKEN_FIX: &str = "create a new access token with the write:statuses and write:media scopes and update the credential";

/// Publishes to one Mastodon account.
#[derive(Debug, Clone)]
pub struct MastodonAdapter {
    pub client: reqwest::Client,
    /// The instance's base URL, e.g. `https://mastodon.social` (no trailing `/` needed).
    pub instance: String,
    pub token: Secret,
}

impl MastodonAdapter {
    /// An adapter with a client from [`MastodonAdapter::client_builder`].
    pub fn new(instance: impl Into<String>, token: Secret) -> Result<Self, reqwest::Error> {
        super::registry::install_tls_provider();
        Ok(MastodonAdapter {
            client: Self::client_builder().build()?,
            instance: instance.into(),
            token,
        })
    }

    /// The client settings the adapter expects: reqwest's own retries off (a retried create
    /// is the daemon's decision, made with the idempotency window in mind), a connect
    /// time-out, and an overall time-out long enough for a large video upload.
    pub fn client_builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .user_agent(concat!("cadenced/", env!("CARGO_PKG_VERSION")))
            .retry(reqwest::retry::never())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.instance.trim_end_matches('/'))
    }

    fn authed(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(self.token.expose())
    }

    /// The instance's post length limit, `configuration.statuses.max_characters` of
    /// `GET /api/v2/instance` (Mastodon's default of 500 when the instance does not say).
    /// Sent without the token: the endpoint is public, and a bad token must not hide it.
    pub async fn max_characters(&self) -> Result<usize, PublishError> {
        let url = self.url("/api/v2/instance");
        let response = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable_error(&self.instance, &e))?;
        let status = response.status();
        if status != StatusCode::OK {
            let headers = response.headers().clone();
            let error = error_text(response).await;
            let reason = format!("{url} answered HTTP {}: {error}", status.as_u16());
            return Err(
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                    PublishError::Transient {
                        reason,
                        retry_after: retry_after(&headers, None),
                        http_status: Some(status.as_u16()),
                    }
                } else {
                    PublishError::Permanent {
                        reason,
                        fix: "check `instance` in the config: it must be the address of a \
                              Mastodon 4.0 or later server"
                            .into(),
                        http_status: Some(status.as_u16()),
                    }
                },
            );
        }
        let instance: Instance = response.json().await.map_err(|e| PublishError::Transient {
            reason: format!("{url} answered with a body that is not an instance: {e}"),
            retry_after: None,
            http_status: Some(200),
        })?;
        Ok(instance
            .configuration
            .and_then(|c| c.statuses)
            .and_then(|s| s.max_characters)
            .unwrap_or(DEFAULT_MAX_CHARACTERS))
    }

    /// Uploads one file and waits (boundedly, see the module documentation) until the
    /// instance has processed it. Every failure here is before the create, so nothing can
    /// have been published: transient unless the instance refused the file or the token.
    async fn upload(
        &self,
        post: &Outgoing,
        media: &super::adapter::OutgoingMedia,
        now: Timestamp,
    ) -> Result<String, PublishError> {
        let rel = media.rel.display().to_string();
        let bytes = tokio::fs::read(&media.path)
            .await
            .map_err(|e| PublishError::Permanent {
                reason: format!("cannot read media file {rel}: {e}"),
                fix: format!("put the file back at {rel} or remove it from the post's media"),
                http_status: None,
            })?;
        let file_name = media
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "media".into());
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(file_name)
            .mime_str(mime_type(&media.path))
            .expect("the MIME types in `mime_type` are valid");
        let mut form = reqwest::multipart::Form::new().part("file", part);
        if let Some(alt) = &media.alt {
            form = form.text("description", alt.clone());
        }
        let what = format!("the upload of {rel}");
        let response = self
            .authed(self.client.post(self.url("/api/v2/media")))
            .multipart(form)
            .send()
            .await
            .map_err(|e| before_create(&self.instance, &what, &e))?;
        let status = response.status();
        if !matches!(status, StatusCode::OK | StatusCode::ACCEPTED) {
            return Err(media_error(post, &what, response, now).await);
        }
        let attachment: Attachment = response
            .json()
            .await
            .map_err(|e| before_create(&self.instance, &what, &e))?;
        if attachment.url.is_some() {
            return Ok(attachment.id);
        }

        // 202: still processing. See the module documentation for why this waits here.
        let what = format!("processing of {rel}");
        let url = self.url(&format!("/api/v1/media/{}", attachment.id));
        for _ in 0..MEDIA_POLL_TRIES {
            tokio::time::sleep(MEDIA_POLL_PAUSE).await;
            let response = self
                .authed(self.client.get(&url))
                .send()
                .await
                .map_err(|e| before_create(&self.instance, &what, &e))?;
            let status = response.status();
            match status {
                // 206 Partial Content: processing has not finished.
                StatusCode::PARTIAL_CONTENT => continue,
                StatusCode::OK => {
                    let polled: Attachment = response
                        .json()
                        .await
                        .map_err(|e| before_create(&self.instance, &what, &e))?;
                    if polled.url.is_some() {
                        return Ok(polled.id);
                    }
                }
                _ => return Err(media_error(post, &what, response, now).await),
            }
        }
        Err(PublishError::Transient {
            reason: format!(
                "the Mastodon instance was still processing {rel} after {} polls; the upload \
                 is repeated on the next attempt",
                MEDIA_POLL_TRIES
            ),
            retry_after: None,
            http_status: Some(206),
        })
    }

    /// The create request's JSON body.
    fn status_body(post: &Outgoing, media_ids: &[String]) -> Value {
        let mut body = Map::new();
        body.insert("status".into(), Value::String(status_text(post)));
        if !media_ids.is_empty() {
            body.insert("media_ids".into(), json!(media_ids));
        }
        for key in ["visibility", "spoiler_text", "quote_approval_policy"] {
            if let Some(value) = post.fields.get(key).and_then(toml::Value::as_str) {
                body.insert(key.into(), Value::String(value.into()));
            }
        }
        if let Some(sensitive) = post.fields.get("sensitive").and_then(toml::Value::as_bool) {
            body.insert("sensitive".into(), Value::Bool(sensitive));
        }
        let language = post
            .fields
            .get("language")
            .and_then(toml::Value::as_str)
            .map(str::to_string)
            .or_else(|| post.lang.as_deref().and_then(primary_language));
        if let Some(language) = language {
            body.insert("language".into(), Value::String(language));
        }
        Value::Object(body)
    }

    /// The account the token belongs to.
    async fn account_id(&self) -> Result<String, ()> {
        let response = self
            .authed(
                self.client
                    .get(self.url("/api/v1/accounts/verify_credentials")),
            )
            .send()
            .await
            .map_err(drop)?;
        if response.status() != StatusCode::OK {
            return Err(());
        }
        let account: Account = response.json().await.map_err(drop)?;
        if !is_id(&account.id) {
            return Err(());
        }
        Ok(account.id)
    }

    /// Looks for the attempt among the account's statuses since it started. `Ok(None)` only
    /// when every status back to the start of the window was read and none matched.
    async fn find_status(
        &self,
        post: &Outgoing,
        attempt: &AttemptInfo,
    ) -> Result<Option<Receipt>, ()> {
        let id = self.account_id().await?;
        let since = attempt.started - RECONCILE_SKEW;
        let wanted = Wanted::new(post, attempt);
        let mut max_id: Option<String> = None;
        for _ in 0..MAX_PAGES {
            // Built by hand: reqwest's `query` needs a feature the crate does not enable,
            // and both ids are Mastodon's (digits), checked below.
            let mut path =
                format!("/api/v1/accounts/{id}/statuses?limit={PAGE_LIMIT}&exclude_reblogs=true");
            if let Some(max_id) = &max_id {
                path.push_str("&max_id=");
                path.push_str(max_id);
            }
            let request = self.authed(self.client.get(self.url(&path)));
            let response = request.send().await.map_err(drop)?;
            if response.status() != StatusCode::OK {
                return Err(());
            }
            let page: Vec<Status> = response.json().await.map_err(drop)?;
            for status in &page {
                let created: Timestamp = status.created_at.parse().map_err(drop)?;
                if created < since {
                    // Newest first: everything after this is older still.
                    return Ok(None);
                }
                if status.reblog.is_none() && wanted.matches(status) {
                    return Ok(Some(status.receipt(200)));
                }
            }
            if page.len() < PAGE_LIMIT {
                return Ok(None);
            }
            max_id = page.last().map(|s| s.id.clone());
            if !max_id.as_deref().is_some_and(is_id) {
                return Err(());
            }
        }
        // More statuses since the attempt than we read: cannot say it did not go out.
        Err(())
    }
}

impl Adapter for MastodonAdapter {
    async fn publish(&self, post: &Outgoing, now: Timestamp) -> Result<Receipt, PublishError> {
        let mut media_ids = Vec::with_capacity(post.media.len());
        for media in &post.media {
            media_ids.push(self.upload(post, media, now).await?);
        }

        let body = Self::status_body(post, &media_ids);
        let response = self
            .authed(self.client.post(self.url("/api/v1/statuses")))
            .header("Idempotency-Key", &post.idempotency_key)
            .json(&body)
            .send()
            .await
            .map_err(|e| create_send_error(&self.instance, &e))?;
        let status = response.status();
        if status != StatusCode::OK {
            return Err(create_error(post, response, now).await);
        }
        // The instance said it created the status; a body we cannot read leaves only its id
        // unknown, which the read-back (or the same key) recovers.
        let created: Status = response.json().await.map_err(|e| PublishError::Unknown {
            reason: format!(
                "Mastodon created the post but its answer could not be read: {}",
                chain(&e)
            ),
            http_status: Some(200),
        })?;
        Ok(created.receipt(status.as_u16()))
    }

    async fn reconcile(
        &self,
        post: &Outgoing,
        attempt: &AttemptInfo,
        _now: Timestamp,
    ) -> Reconciled {
        match self.find_status(post, attempt).await {
            Ok(Some(receipt)) => Reconciled::Posted(receipt),
            Ok(None) => Reconciled::NotPosted,
            Err(()) => Reconciled::Unknown,
        }
    }

    fn can_resend_same_key(&self, started: Timestamp, now: Timestamp) -> bool {
        now.duration_since(started) <= SAME_KEY_WINDOW
    }
}

/// The `status` text: what the rules counted.
fn status_text(post: &Outgoing) -> String {
    let media: Vec<MediaInfo> = post
        .media
        .iter()
        .map(|m| MediaInfo {
            path: m.rel.clone(),
            alt: m.alt.clone(),
            bytes: m.bytes,
        })
        .collect();
    text_to_send(&PostView {
        text: &post.text,
        media: &media,
        link: post.link.as_deref(),
        fields: &post.fields,
    })
}

/// A Mastodon id as it may go into a URL unescaped (Mastodon's ids are decimal digits).
fn is_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `de` of `de-AT`: Mastodon takes ISO 639 codes, a post's `lang` may carry a region.
fn primary_language(lang: &str) -> Option<String> {
    let primary = lang.split(['-', '_']).next()?.to_ascii_lowercase();
    ((2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase()))
        .then_some(primary)
}

/// What a read-back looks for: the normalized text, or for a post without text, the same
/// media descriptions.
struct Wanted {
    texts: Vec<String>,
    alts: Vec<String>,
}

impl Wanted {
    fn new(post: &Outgoing, attempt: &AttemptInfo) -> Wanted {
        // The attempt's own fingerprint, and the text as sent (with the appended link), in
        // case the fingerprint was taken from the body alone.
        let mut texts = vec![attempt.normalized.clone(), normalize(&status_text(post))];
        texts.retain(|t| !t.is_empty());
        texts.dedup();
        Wanted {
            texts,
            alts: post
                .media
                .iter()
                .map(|m| m.alt.clone().unwrap_or_default())
                .collect(),
        }
    }

    fn matches(&self, status: &Status) -> bool {
        let text = normalize(&html_to_text(&status.content));
        if self.texts.is_empty() {
            // A media-only post: an empty text is too common to match on alone.
            let alts: Vec<String> = status
                .media_attachments
                .iter()
                .map(|m| m.description.clone().unwrap_or_default())
                .collect();
            text.is_empty() && !self.alts.is_empty() && alts == self.alts
        } else {
            self.texts.contains(&text)
        }
    }
}

/// Plain text of a status's HTML `content`: line breaks and paragraphs become newlines,
/// other tags go (Mastodon's link markup keeps the full URL across its `<span>`s), and
/// character references are decoded.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let end = rest.find('>').map_or(rest.len(), |i| i + 1);
                let tag = rest[1..end.saturating_sub(1).max(1)].trim();
                let name: String = tag
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect::<String>()
                    .to_ascii_lowercase();
                match name.as_str() {
                    "br" => out.push('\n'),
                    "p" if tag.starts_with('/') => out.push_str("\n\n"),
                    _ => {}
                }
                rest = &rest[end..];
            }
            '&' => {
                let decoded = rest
                    .find(';')
                    .filter(|&i| i <= 10)
                    .and_then(|i| decode_entity(&rest[1..i]).map(|c| (c, i + 1)));
                match decoded {
                    Some((c, len)) => {
                        out.push(c);
                        rest = &rest[len..];
                    }
                    None => {
                        out.push('&');
                        rest = &rest[1..];
                    }
                }
            }
            _ => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out.trim().to_string()
}

fn decode_entity(name: &str) -> Option<char> {
    match name {
        "amp" => Some('&'),
        "lt" => Some('<'),
        "gt" => Some('>'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        "nbsp" => Some('\u{a0}'),
        _ => {
            let number = name.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

/// The MIME type of a media file, by extension: Mastodon refuses a file part without one.
fn mime_type(path: &std::path::Path) -> &'static str {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "oga" => "audio/ogg",
        "wav" => "audio/wave",
        "flac" => "audio/flac",
        _ => "application/octet-stream",
    }
}

/// How long the instance asked us to wait: `X-RateLimit-Reset` (an ISO 8601 instant)
/// measured from the response's `Date` (the server's clock, so our clock's skew does not
/// matter) or else from `now`; then `Retry-After` (seconds or an HTTP date). Never negative.
fn retry_after(headers: &HeaderMap, now: Option<Timestamp>) -> Option<SignedDuration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let http_date = |s: &str| {
        jiff::fmt::rfc2822::DateTimeParser::new()
            .parse_timestamp(s)
            .ok()
    };
    let date = header("date").and_then(http_date);
    let reference = date.or(now);
    let from_reset = header("x-ratelimit-reset")
        .and_then(|s| s.parse::<Timestamp>().ok())
        .zip(reference)
        .map(|(reset, reference)| reset.duration_since(reference));
    let from_retry_after = || {
        let value = header(RETRY_AFTER.as_str())?;
        match value.parse::<u64>() {
            Ok(secs) => Some(SignedDuration::from_secs(i64::try_from(secs).ok()?)),
            Err(_) => Some(http_date(value)?.duration_since(reference?)),
        }
    };
    from_reset
        .or_else(from_retry_after)
        .map(|d| d.max(SignedDuration::ZERO))
}

/// The `error` of a Mastodon error body (`{ "error": "..." }`), else the start of the body.
async fn error_text(response: Response) -> String {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let text = serde_json::from_str::<ErrorBody>(&body)
        .map(|e| e.error)
        .unwrap_or_else(|_| body.trim().to_string());
    if text.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no explanation")
            .to_string();
    }
    match text.char_indices().nth(MAX_QUOTED) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

fn refused_token(post: &Outgoing, status: StatusCode, error: &str) -> PublishError {
    PublishError::Permanent {
        reason: format!(
            "the instance refused the token of channel `{}` (HTTP {}: {error})",
            post.channel,
            status.as_u16()
        ),
        fix: TOKEN_FIX.into(),
        http_status: Some(status.as_u16()),
    }
}

fn rate_limited(what: &str, headers: &HeaderMap, error: &str, now: Timestamp) -> PublishError {
    PublishError::Transient {
        reason: format!("the Mastodon instance is rate limiting {what}: {error}"),
        retry_after: retry_after(headers, Some(now)),
        http_status: Some(429),
    }
}

/// A media upload or poll answered with an error: nothing was published.
async fn media_error(
    post: &Outgoing,
    what: &str,
    response: Response,
    now: Timestamp,
) -> PublishError {
    let status = response.status();
    let headers = response.headers().clone();
    let error = error_text(response).await;
    let code = Some(status.as_u16());
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => refused_token(post, status, &error),
        StatusCode::TOO_MANY_REQUESTS => rate_limited(what, &headers, &error, now),
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::PAYLOAD_TOO_LARGE => {
            PublishError::Permanent {
                reason: format!("Mastodon refused {what}: {error}"),
                fix: "use a file type and size the instance accepts (see its \
                      configuration.media_attachments), then `cadenced retry` the post"
                    .into(),
                http_status: code,
            }
        }
        s if s.is_client_error()
            && s != StatusCode::NOT_FOUND
            && s != StatusCode::REQUEST_TIMEOUT =>
        {
            PublishError::Permanent {
                reason: format!("Mastodon answered HTTP {} to {what}: {error}", s.as_u16()),
                fix: "check `instance` in the config and the media file".into(),
                http_status: code,
            }
        }
        // 5xx, a lost attachment (404), a time-out: another upload may well work.
        s => PublishError::Transient {
            reason: format!("Mastodon answered HTTP {} to {what}: {error}", s.as_u16()),
            retry_after: retry_after(&headers, Some(now)),
            http_status: code,
        },
    }
}

/// The create answered with something other than 200.
async fn create_error(post: &Outgoing, response: Response, now: Timestamp) -> PublishError {
    let status = response.status();
    let headers = response.headers().clone();
    let error = error_text(response).await;
    let code = Some(status.as_u16());
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => refused_token(post, status, &error),
        StatusCode::TOO_MANY_REQUESTS => rate_limited("new posts", &headers, &error, now),
        // "Cannot attach files that have not finished processing. Try again in a moment!":
        // nothing was created, and waiting helps.
        StatusCode::UNPROCESSABLE_ENTITY if error.contains("not finished processing") => {
            PublishError::Transient {
                reason: format!("Mastodon refused the post: {error}"),
                retry_after: None,
                http_status: code,
            }
        }
        StatusCode::UNPROCESSABLE_ENTITY => PublishError::Permanent {
            reason: format!("Mastodon refused the post: {error}"),
            fix: "edit the post so the instance accepts it (`cadenced check` counts as \
                  Mastodon does), then `cadenced retry` it"
                .into(),
            http_status: code,
        },
        // The request reached the server, which failed or timed out while handling it: the
        // status may exist. The daemon resends with the same key or reads back.
        s if s.is_server_error() || s == StatusCode::REQUEST_TIMEOUT => PublishError::Unknown {
            reason: format!(
                "Mastodon answered HTTP {} to the create ({error}); the post may have been \
                 published",
                s.as_u16()
            ),
            http_status: code,
        },
        s => PublishError::Permanent {
            reason: format!(
                "Mastodon answered HTTP {} to the create: {error}",
                s.as_u16()
            ),
            fix: "check `instance` in the config: it must be the address of a Mastodon server"
                .into(),
            http_status: code,
        },
    }
}

/// The error and its causes, for messages: reqwest's own text is terse ("error sending
/// request"); the cause says what happened (refused, reset, timed out).
fn chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn unreachable_error(instance: &str, error: &reqwest::Error) -> PublishError {
    PublishError::Transient {
        reason: format!(
            "could not reach the Mastodon instance {instance}: {}",
            chain(error)
        ),
        retry_after: None,
        http_status: None,
    }
}

/// A network error before the create was sent: nothing can have been published.
fn before_create(instance: &str, what: &str, error: &reqwest::Error) -> PublishError {
    PublishError::Transient {
        reason: format!("{what} to {instance} failed: {}", chain(error)),
        retry_after: None,
        http_status: error.status().map(|s| s.as_u16()),
    }
}

/// A network error on the create. Only a failed connection proves it never left; a
/// time-out or a connection lost while waiting for the answer may follow a create.
fn create_send_error(instance: &str, error: &reqwest::Error) -> PublishError {
    if error.is_connect() {
        unreachable_error(instance, error)
    } else if error.is_builder() {
        PublishError::Permanent {
            reason: format!("cannot build the request to {instance}: {}", chain(error)),
            fix: "check `instance` in the config".into(),
            http_status: None,
        }
    } else {
        PublishError::Unknown {
            reason: format!(
                "the create sent to {instance} got no answer ({}); the post may have been \
                 published",
                chain(error)
            ),
            http_status: None,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

#[derive(Deserialize)]
struct Attachment {
    id: String,
    url: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct Account {
    id: String,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    created_at: String,
    #[serde(default)]
    content: String,
    url: Option<String>,
    uri: Option<String>,
    #[serde(default)]
    media_attachments: Vec<Attachment>,
    #[serde(default)]
    reblog: Option<Value>,
}

impl Status {
    fn receipt(&self, http_status: u16) -> Receipt {
        Receipt {
            remote_id: Some(self.id.clone()),
            remote_url: self.url.clone().or_else(|| self.uri.clone()),
            http_status: Some(http_status),
        }
    }
}

#[derive(Deserialize)]
struct Instance {
    configuration: Option<Configuration>,
}

#[derive(Deserialize)]
struct Configuration {
    statuses: Option<StatusesConfiguration>,
}

#[derive(Deserialize)]
struct StatusesConfiguration {
    max_characters: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn html_of_a_status_becomes_its_text() {
        let html = "<p>Black Friday: 30% off &amp; free shipping!<br />Today only</p>\
                    <p><a href=\"https://shop.example/bf\" rel=\"nofollow noopener\" \
                    target=\"_blank\"><span class=\"invisible\">https://</span><span \
                    class=\"\">shop.example/bf</span><span class=\"invisible\"></span></a> \
                    <a href=\"https://m.example/tags/sale\" class=\"mention hashtag\" \
                    rel=\"tag\">#<span>Sale</span></a> &lt;3 &#39;x&#x27; &unknown; a&b</p>";
        assert_eq!(
            html_to_text(html),
            "Black Friday: 30% off & free shipping!\nToday only\n\n\
             https://shop.example/bf #Sale <3 'x' &unknown; a&b"
        );
        assert_eq!(
            normalize(&html_to_text(html)),
            normalize(
                "Black Friday: 30% off & free shipping!\nToday only\n\n\
                 https://shop.example/bf #Sale <3 'x' &unknown; a&b"
            )
        );
    }

    #[test]
    fn retry_after_from_the_reset_header_counts_from_the_server_date() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-ratelimit-reset",
            HeaderValue::from_static("2026-11-27T09:05:00.250000Z"),
        );
        headers.insert(
            "date",
            HeaderValue::from_static("Fri, 27 Nov 2026 09:00:00 GMT"),
        );
        // `now` (our clock) is ignored when the server says what time it is.
        let now = ts("2026-11-27T08:00:00Z");
        assert_eq!(
            retry_after(&headers, Some(now)),
            Some(SignedDuration::new(300, 250_000_000))
        );
        headers.remove("date");
        assert_eq!(
            retry_after(&headers, Some(ts("2026-11-27T09:04:00.250Z"))),
            Some(SignedDuration::from_secs(60))
        );
        // A reset in the past means "now".
        assert_eq!(
            retry_after(&headers, Some(ts("2026-11-27T10:00:00Z"))),
            Some(SignedDuration::ZERO)
        );
    }

    #[test]
    fn retry_after_header_in_seconds_or_as_a_date() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
        assert_eq!(
            retry_after(&headers, None),
            Some(SignedDuration::from_secs(120))
        );
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Fri, 27 Nov 2026 09:01:30 GMT"),
        );
        headers.insert(
            "date",
            HeaderValue::from_static("Fri, 27 Nov 2026 09:00:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers, None),
            Some(SignedDuration::from_secs(90))
        );
        assert_eq!(
            retry_after(&HeaderMap::new(), Some(ts("2026-01-01T00:00:00Z"))),
            None
        );
    }

    #[test]
    fn languages_keep_their_primary_subtag() {
        assert_eq!(primary_language("de-AT").as_deref(), Some("de"));
        assert_eq!(primary_language("EN").as_deref(), Some("en"));
        assert_eq!(primary_language("English"), None);
    }
}
