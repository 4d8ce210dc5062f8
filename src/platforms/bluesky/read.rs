//! Bluesky's answers: an expired or refused session (renewed, not a failure of the post),
//! the error shape `{ "error", "message" }`, the receipt (the record's `at://` URI and its
//! `bsky.app` address), and the read-back of the record key with `getRecord`.

use serde_json::Value;

use super::{handle, plan::record_key, xrpc};
use crate::platforms::ChannelCtx;
use crate::platforms::adapter::{Outgoing, Receipt, Reconciled};
use crate::platforms::http::Answer;
use crate::platforms::plan::{Role, Step};
use crate::platforms::run::{ReadBack, Verdict};

pub fn error_text(body: &Value) -> Option<String> {
    let error = body.get("error").and_then(Value::as_str);
    let message = body.get("message").and_then(Value::as_str);
    match (error, message) {
        (Some(e), Some(m)) => Some(format!("{e}: {m}")),
        (Some(e), None) => Some(e.to_string()),
        (None, Some(m)) => Some(m.to_string()),
        (None, None) => None,
    }
}

fn error_name(answer: &Answer) -> Option<String> {
    answer.json()?.get("error")?.as_str().map(str::to_string)
}

pub fn read_answer(step: &Step, answer: &Answer) -> Option<Verdict> {
    if answer.is_success() {
        return None;
    }
    let error = error_name(answer).unwrap_or_default();
    match (step.name, answer.status) {
        // A refresh token that expired or was rotated away: log in again with the app
        // password (the next step of the plan).
        ("refresh", 400 | 401) => Some(Verdict::SessionExpired {
            forget: vec!["access_jwt".into(), "refresh_jwt".into()],
            why: format!("the Bluesky session could not be renewed ({error}); logging in again"),
        }),
        // The access token expired (or the PDS no longer knows it) before a step that
        // needed it: nothing was created; renew and go on.
        (_, 400 | 401)
            if step.role != Role::Session
                && matches!(error.as_str(), "ExpiredToken" | "InvalidToken") =>
        {
            Some(Verdict::SessionExpired {
                forget: vec!["access_jwt".into()],
                why: format!("the Bluesky session expired ({error}); renewing it"),
            })
        }
        _ => None,
    }
}

/// The record's `at://` URI (as the server gave it, with the account's DID; else built
/// from the handle) and its address in Bluesky's app.
pub fn receipt_for(ch: &ChannelCtx<'_>, post: &Outgoing, uri: Option<String>) -> Receipt {
    let rkey = record_key(post);
    let handle = handle(ch);
    Receipt {
        remote_id: Some(uri.unwrap_or_else(|| format!("at://{handle}/app.bsky.feed.post/{rkey}"))),
        remote_url: Some(format!("https://bsky.app/profile/{handle}/post/{rkey}")),
        http_status: None,
    }
}

/// `getRecord` on the attempt's key: the record there (found) or `RecordNotFound` (not
/// posted) decides; anything else cannot tell.
pub async fn read_back(rb: ReadBack<'_>) -> Reconciled {
    let ctx = rb.ctx();
    let step = Step::new(
        "read",
        Role::Lookup,
        "GET",
        xrpc(&ctx, "com.atproto.repo.getRecord"),
        "the read-back of the post",
    )
    .query("repo", handle(&ctx))
    .query("collection", "app.bsky.feed.post")
    .query("rkey", record_key(rb.post).as_str());
    let Ok(answer) = rb.fetch(&step).await else {
        return Reconciled::Unknown;
    };
    match answer.status {
        200 => {
            let uri = answer
                .json()
                .and_then(|j| j.get("uri")?.as_str().map(str::to_string));
            let mut receipt = receipt_for(&ctx, rb.post, uri);
            receipt.http_status = Some(200);
            Reconciled::Posted(receipt)
        }
        400 | 404 if error_name(&answer).as_deref() == Some("RecordNotFound") => {
            Reconciled::NotPosted
        }
        _ => Reconciled::Unknown,
    }
}
