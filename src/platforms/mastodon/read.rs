//! Mastodon's answers: what a processing upload and a "not finished processing" refusal
//! mean, the instance's limits, the receipt, and the read-back among the account's
//! statuses.
//!
//! The read-back matches the normalized text (HTML `content` stripped) among the account's
//! statuses since the attempt started, and answers "not posted" only when it read every
//! status back to then. Before it, the daemon resends with the same key while the instance
//! still remembers it (55 minutes): Mastodon then returns the status it already made.

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::Value;

use super::rules::DEFAULT_MAX_CHARACTERS;
use super::{base, text_to_send};
use crate::cadence::similarity::normalize;
use crate::platforms::adapter::{PublishError, Receipt, Reconciled};
use crate::platforms::http::Answer;
use crate::platforms::plan::{Auth, Bindings, Role, Step, Text};
use crate::platforms::run::{ReadBack, Verdict};
use crate::platforms::{ChannelCtx, Limits};

/// How far before the attempt's start a status may be dated and still be the attempt's
/// (the instance's clock may run behind ours).
pub const RECONCILE_SKEW: SignedDuration = SignedDuration::from_mins(5);

/// How long to wait before asking again about a file the instance is still processing.
pub const PROCESSING_PAUSE: SignedDuration = SignedDuration::from_secs(2);

/// Statuses per page of `GET /api/v1/accounts/{id}/statuses` (Mastodon's maximum).
const PAGE_LIMIT: usize = 40;
/// Pages read back before the read-back says it cannot tell.
const MAX_PAGES: usize = 5;

/// What to do about a refused token, in Mastodon's words.
const TOKEN_FIX: &str = "create a new access token with the write:statuses and write:media scopes (Preferences → Development) and update the channel's credential, then run `cadenced retry FILE`";

pub fn read_answer(
    ch: &ChannelCtx<'_>,
    step: &Step,
    answer: &Answer,
    _now: Timestamp,
) -> Option<Verdict> {
    match (step.name, answer.status) {
        (_, 401 | 403) => {
            let said = crate::platforms::http::error_text(answer, |b| {
                b.get("error")?.as_str().map(str::to_string)
            });
            Some(Verdict::Fail(PublishError::Permanent {
                reason: format!(
                    "the instance refused the token of channel `{}` (HTTP {}: {said}) for {}",
                    ch.name, answer.status, step.label
                ),
                fix: TOKEN_FIX.into(),
                http_status: Some(answer.status),
            }))
        }
        // 206 Partial Content, or 200 without `url`: processing has not finished.
        ("poll", 206) => Some(processing(step)),
        ("poll", 200) if answer.json().is_some_and(|j| j["url"].is_null()) => {
            Some(processing(step))
        }
        // "Cannot attach files that have not finished processing. Try again in a moment!":
        // nothing was created, and waiting helps.
        ("create", 422)
            if String::from_utf8_lossy(&answer.body).contains("not finished processing") =>
        {
            Some(Verdict::NotYet {
                after: PROCESSING_PAUSE,
                why: "the instance is still processing the media".into(),
            })
        }
        _ => None,
    }
}

fn processing(step: &Step) -> Verdict {
    Verdict::NotYet {
        after: PROCESSING_PAUSE,
        why: format!("the instance is still busy with {}", step.label),
    }
}

/// The status's id and its web address (`url`, else the ActivityPub `uri`).
pub fn receipt(known: &Bindings) -> Receipt {
    let text = |name: &str| {
        known
            .get(name)
            .and_then(|b| b.value.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    Receipt {
        remote_id: text("remote_id"),
        remote_url: text("remote_url").or_else(|| text("remote_uri")),
        http_status: None,
    }
}

/// `configuration.statuses.max_characters` of `GET /api/v2/instance` (Mastodon's default
/// of 500 when the instance does not say).
pub fn read_limits(answer: &Answer) -> Option<Limits> {
    let json = answer.json()?;
    // An answer that is not an instance document (a login page, say) says nothing.
    json.get("configuration")
        .or_else(|| json.get("domain"))
        .or_else(|| json.get("uri"))?;
    let max = json
        .pointer("/configuration/statuses/max_characters")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_MAX_CHARACTERS);
    Some(Limits {
        max_characters: Some(max),
    })
}

pub async fn read_back(rb: ReadBack<'_>) -> Reconciled {
    match find_status(&rb).await {
        Ok(Some(receipt)) => Reconciled::Posted(receipt),
        Ok(None) => Reconciled::NotPosted,
        Err(()) => Reconciled::Unknown,
    }
}

fn get(rb: &ReadBack<'_>, path: &str, what: &str) -> Step {
    Step::new(
        "read",
        Role::Lookup,
        "GET",
        format!("{}{path}", base(&rb.ctx())),
        what,
    )
    .auth(Auth::Bearer(Text::secret("token")))
}

/// Looks for the attempt among the account's statuses since it started. `Ok(None)` only
/// when every status back to the start of the window was read and none matched.
async fn find_status(rb: &ReadBack<'_>) -> Result<Option<Receipt>, ()> {
    let answer = rb
        .fetch(&get(
            rb,
            "/api/v1/accounts/verify_credentials",
            "the account",
        ))
        .await
        .map_err(drop)?;
    if answer.status != 200 {
        return Err(());
    }
    let account: Account = serde_json::from_slice(&answer.body).map_err(drop)?;
    if !is_id(&account.id) {
        return Err(());
    }
    let since = rb.attempt.started - RECONCILE_SKEW;
    let wanted = Wanted::new(rb);
    let mut max_id: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut path = format!(
            "/api/v1/accounts/{}/statuses?limit={PAGE_LIMIT}&exclude_reblogs=true",
            account.id
        );
        if let Some(max_id) = &max_id {
            path.push_str("&max_id=");
            path.push_str(max_id);
        }
        let answer = rb
            .fetch(&get(rb, &path, "the account's statuses"))
            .await
            .map_err(drop)?;
        if answer.status != 200 || answer.truncated {
            return Err(());
        }
        let page: Vec<Status> = serde_json::from_slice(&answer.body).map_err(drop)?;
        for status in &page {
            let created: Timestamp = status.created_at.parse().map_err(drop)?;
            if created < since {
                // Newest first: everything after this is older still.
                return Ok(None);
            }
            if status.reblog.is_none() && wanted.matches(status) {
                return Ok(Some(Receipt {
                    remote_id: Some(status.id.clone()),
                    remote_url: status.url.clone().or_else(|| status.uri.clone()),
                    http_status: Some(200),
                }));
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

/// A Mastodon id as it may go into a URL unescaped (Mastodon's ids are decimal digits).
fn is_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What a read-back looks for: the normalized text, or for a post without text, the same
/// media descriptions.
struct Wanted {
    texts: Vec<String>,
    alts: Vec<String>,
}

impl Wanted {
    fn new(rb: &ReadBack<'_>) -> Wanted {
        // The attempt's own fingerprint, and the text as sent (with the appended link), in
        // case the fingerprint was taken from the body alone.
        let mut texts = vec![
            rb.attempt.normalized.clone(),
            normalize(&rb.post.with_view(text_to_send)),
        ];
        texts.retain(|t| !t.is_empty());
        texts.dedup();
        Wanted {
            texts,
            alts: rb
                .post
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
    while let Some(lt) = rest.find('<') {
        out.push_str(&html_escape::decode_html_entities(&rest[..lt]));
        let end = rest[lt..].find('>').map_or(rest.len(), |i| lt + i + 1);
        let tag = rest[lt + 1..end.saturating_sub(1).max(lt + 1)].trim();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        match name.as_str() {
            "br" => out.push('\n'),
            "p" if tag.starts_with('/') => out.push_str("\n\n"),
            _ => {}
        }
        rest = &rest[end..];
    }
    out.push_str(&html_escape::decode_html_entities(rest));
    out.trim().to_string()
}

#[derive(Deserialize)]
struct Attachment {
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

#[cfg(test)]
mod tests {
    use super::*;

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
            html_to_text("<p>冬季促销：全场八折！</p>"),
            "冬季促销：全场八折！"
        );
    }

    #[test]
    fn the_instance_limit_defaults_to_500() {
        let answer = |body: &str| Answer {
            status: 200,
            headers: Default::default(),
            body: body.as_bytes().to_vec(),
            truncated: false,
        };
        let limit = |body| read_limits(&answer(body)).and_then(|l| l.max_characters);
        assert_eq!(
            limit(r#"{"domain":"m.example","configuration":{"statuses":{"max_characters":1000}}}"#),
            Some(1000)
        );
        assert_eq!(
            limit(r#"{"domain":"m.example","configuration":{}}"#),
            Some(500)
        );
        assert_eq!(limit(r#"{"unrelated":true}"#), None);
        assert_eq!(limit("<html>login</html>"), None);
    }
}
