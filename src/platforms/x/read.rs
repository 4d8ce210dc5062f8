//! X's answers: "duplicate content" (the post exists: read it back), an access token that
//! lapsed early, X's two error shapes (`Problem` and `{ "errors": [...] }`), the receipt,
//! and the read-back among the account's recent posts by text fingerprint (with X's t.co
//! links expanded back to the links the post had).

use jiff::SignedDuration;
use serde::Deserialize;
use serde_json::Value;

use super::{api, plan::auth, text_to_send};
use crate::cadence::similarity::normalize;
use crate::platforms::adapter::{Receipt, Reconciled};
use crate::platforms::http::Answer;
use crate::platforms::plan::{Auth, Role, Step, Text};
use crate::platforms::run::{ReadBack, Verdict};

/// How far before the attempt's start a post may be dated and still be the attempt's.
const SKEW: SignedDuration = SignedDuration::from_mins(5);
/// Posts per page (X's maximum for this endpoint) and pages read before giving up.
const PAGE: usize = 100;
const MAX_PAGES: usize = 3;

pub fn error_text(body: &Value) -> Option<String> {
    let detail = body.get("detail").and_then(Value::as_str);
    let title = body.get("title").and_then(Value::as_str);
    let message = body.pointer("/errors/0/message").and_then(Value::as_str);
    // An invalid-request problem's `detail` is generic ("One or more parameters to your
    // request was invalid."); what was wrong is in `errors`.
    match (detail, message) {
        (Some(detail), Some(message)) => return Some(format!("{detail} {message}")),
        (Some(detail), None) => return Some(detail.to_string()),
        (None, Some(message)) => return Some(message.to_string()),
        (None, None) => {}
    }
    if let Some(description) = body.get("error_description").and_then(Value::as_str) {
        return Some(description.to_string());
    }
    title.map(str::to_string)
}

pub fn read_answer(step: &Step, answer: &Answer) -> Option<Verdict> {
    if answer.is_success() {
        return None;
    }
    let said = answer
        .json()
        .as_ref()
        .and_then(error_text)
        .unwrap_or_default();
    match (step.name, answer.status) {
        ("create", 403) if said.to_ascii_lowercase().contains("duplicate") => {
            Some(Verdict::AlreadyPosted(said))
        }
        // An OAuth 2.0 access token revoked or lapsed before its time: renew it (the plan's
        // refresh step) rather than failing the post. Only for tokens the daemon renews.
        (_, 401)
            if step.role != Role::Session
                && step.auth == Auth::Bearer(Text::hole("access_token")) =>
        {
            Some(Verdict::SessionExpired {
                forget: vec!["access_token".into()],
                why: "X refused the access token; renewing it".into(),
            })
        }
        _ => None,
    }
}

pub fn receipt(id: Option<String>) -> Receipt {
    Receipt {
        remote_url: id
            .as_ref()
            .map(|id| format!("https://x.com/i/web/status/{id}")),
        remote_id: id,
        http_status: None,
    }
}

#[derive(Deserialize)]
struct Me {
    data: MeData,
}

#[derive(Deserialize)]
struct MeData {
    id: String,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Post>,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Deserialize)]
struct Meta {
    next_token: Option<String>,
}

#[derive(Deserialize)]
struct Post {
    id: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    entities: Option<Entities>,
}

#[derive(Deserialize)]
struct Entities {
    #[serde(default)]
    urls: Vec<UrlEntity>,
}

#[derive(Deserialize)]
struct UrlEntity {
    url: String,
    #[serde(default)]
    expanded_url: Option<String>,
    #[serde(default)]
    media_key: Option<String>,
}

impl Post {
    /// The text as it was written: X's `&amp;`-style escapes decoded, each t.co link back to
    /// the link it stands for, and the t.co link X appends for attached media removed.
    fn original_text(&self) -> String {
        let mut text = html_escape::decode_html_entities(&self.text).into_owned();
        if let Some(entities) = &self.entities {
            for url in &entities.urls {
                let replacement = match (&url.media_key, &url.expanded_url) {
                    (Some(_), _) => "",
                    (None, Some(expanded)) => expanded.as_str(),
                    (None, None) => continue,
                };
                text = text.replace(&url.url, replacement);
            }
        }
        text.trim().to_string()
    }
}

fn get(rb: &ReadBack<'_>, path: &str, what: &str) -> Step {
    Step::new(
        "read",
        Role::Lookup,
        "GET",
        format!("{}{path}", api(&rb.ctx())),
        what,
    )
    .auth(auth(&rb.ctx()))
}

pub async fn read_back(rb: ReadBack<'_>) -> Reconciled {
    match find(&rb).await {
        Ok(Some(receipt)) => Reconciled::Posted(receipt),
        Ok(None) => Reconciled::NotPosted,
        Err(()) => Reconciled::Unknown,
    }
}

/// Looks for the attempt's text among the account's posts since it started (X returns
/// them newest first). `Ok(None)` only when every post back to then was read.
async fn find(rb: &ReadBack<'_>) -> Result<Option<Receipt>, ()> {
    let answer = rb
        .fetch(&get(rb, "/2/users/me", "the account"))
        .await
        .map_err(drop)?;
    if answer.status != 200 {
        return Err(());
    }
    let me: Me = serde_json::from_slice(&answer.body).map_err(drop)?;
    if me.data.id.is_empty() || !me.data.id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(());
    }
    let mut wanted = vec![
        rb.attempt.normalized.clone(),
        normalize(&rb.post.with_view(text_to_send)),
    ];
    wanted.retain(|t| !t.is_empty());
    if wanted.is_empty() {
        // A post of images only: nothing to recognise it by.
        return Err(());
    }
    let since = (rb.attempt.started - SKEW)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut step = get(
            rb,
            &format!("/2/users/{}/tweets", me.data.id),
            "the account's posts",
        )
        .query("max_results", PAGE.to_string())
        .query("start_time", since.as_str())
        .query("tweet.fields", "created_at,entities")
        .query("exclude", "retweets,replies");
        if let Some(token) = &token {
            step = step.query("pagination_token", token.as_str());
        }
        let answer = rb.fetch(&step).await.map_err(drop)?;
        if answer.status != 200 || answer.truncated {
            return Err(());
        }
        let page: Page = serde_json::from_slice(&answer.body).map_err(drop)?;
        for post in &page.data {
            if wanted.contains(&normalize(&post.original_text())) {
                let mut found = receipt(Some(post.id.clone()));
                found.http_status = Some(200);
                return Ok(Some(found));
            }
        }
        match page.meta.and_then(|m| m.next_token) {
            Some(next) => token = Some(next),
            None => return Ok(None),
        }
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_text_comes_back_from_x_s_rendering() {
        let post: Post = serde_json::from_value(serde_json::json!({
            "id": "1",
            "text": "Sale &amp; more: https://t.co/abc https://t.co/pic",
            "entities": { "urls": [
                { "url": "https://t.co/abc", "expanded_url": "https://shop.example/bf?utm=x" },
                { "url": "https://t.co/pic", "expanded_url": "https://x.com/shop/status/1/photo/1", "media_key": "3_1" },
            ]},
        }))
        .unwrap();
        assert_eq!(
            post.original_text(),
            "Sale & more: https://shop.example/bf?utm=x"
        );
    }

    #[test]
    fn x_errors_read_in_both_shapes_and_an_invalid_request_names_what_was_wrong() {
        let problem = serde_json::json!({"title": "Forbidden", "detail": "You are not allowed to create a Tweet with duplicate content.", "type": "about:blank", "status": 403});
        assert_eq!(
            error_text(&problem).as_deref(),
            Some("You are not allowed to create a Tweet with duplicate content.")
        );
        let errors = serde_json::json!({"errors": [{"message": "Invalid media id"}]});
        assert_eq!(error_text(&errors).as_deref(), Some("Invalid media id"));
        let invalid = serde_json::json!({
            "errors": [{ "parameters": { "media.media_ids": ["123"] }, "message": "Your media IDs are invalid." }],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        });
        assert_eq!(
            error_text(&invalid).as_deref(),
            Some("One or more parameters to your request was invalid. Your media IDs are invalid.")
        );
        let oauth = serde_json::json!({"error": "invalid_request", "error_description": "Value passed for the token was invalid."});
        assert_eq!(
            error_text(&oauth).as_deref(),
            Some("Value passed for the token was invalid.")
        );
    }
}
