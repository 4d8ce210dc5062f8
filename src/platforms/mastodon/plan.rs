//! A post as Mastodon requests: each file uploaded with its description, polled while the
//! instance still processes it, then the status with the media ids and the
//! `Idempotency-Key`. Pure.

use std::time::Duration;

use serde_json::json;

use super::rules::FIELDS;
use super::{base, text_to_send};
use crate::platforms::ChannelCtx;
use crate::platforms::adapter::Outgoing;
use crate::platforms::plan::{
    Auth, Body, Cond, From, Keep, Part, Plan, Role, Step, Text, Tpl, media_ref, toml_to_json,
};

/// Uploads may carry a large video.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The instance's limits are a small public document; a slow instance must not hold the
/// daemon.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn plan(ch: &ChannelCtx<'_>, post: &Outgoing) -> Plan {
    let base = base(ch);
    let auth = Auth::Bearer(Text::secret("token"));
    let mut steps = Vec::new();
    let mut media_ids = Vec::new();
    for (i, media) in post.media.iter().enumerate() {
        let n = i + 1;
        let (id, ready) = (format!("media_id:{n}"), format!("media_ready:{n}"));
        let rel = media.rel.display();
        let mut parts = vec![Part::file("file", media_ref(i, media))];
        if let Some(alt) = media.alt.as_deref().filter(|a| !a.trim().is_empty()) {
            parts.push(Part::text("description", alt));
        }
        steps.push(
            Step::new(
                "upload",
                Role::Prepare,
                "POST",
                format!("{base}/api/v2/media"),
                format!("the upload of {rel}"),
            )
            .auth(auth.clone())
            .body(Body::Multipart(parts))
            .bind(id.clone(), From::Json("/id".into()), Keep::Attempt)
            // Set once the instance has processed the file (at once for small images).
            .bind_optional(ready.clone(), From::Json("/url".into()), Keep::Attempt)
            .timeout(UPLOAD_TIMEOUT),
        );
        steps.push(
            Step::new(
                "poll",
                Role::Prepare,
                "GET",
                Text::lit(format!("{base}/api/v1/media/")).and_hole(id.clone()),
                format!("the processing of {rel}"),
            )
            .when(Cond::Missing(ready.clone()))
            .auth(auth.clone())
            .bind(ready, From::Json("/url".into()), Keep::Attempt),
        );
        media_ids.push(Tpl::hole(id));
    }

    // A status has text, media or both; an empty `status` beside media would match both of
    // the contract's shapes.
    let text = post.with_view(text_to_send);
    let mut status = Tpl::obj(Vec::<(String, Tpl)>::new());
    if !text.is_empty() || media_ids.is_empty() {
        status.push("status", Tpl::str(text));
    }
    if !media_ids.is_empty() {
        status.push("media_ids", Tpl::Array(media_ids));
    }
    for key in FIELDS {
        if let Some(value) = post.fields.get(*key) {
            status.push(*key, Tpl::Value(toml_to_json(value)));
        }
    }
    if !post.fields.contains_key("language")
        && let Some(lang) = post.lang.as_deref().and_then(primary_language)
    {
        status.push("language", Tpl::Value(json!(lang)));
    }
    steps.push(
        Step::new(
            "create",
            Role::Create,
            "POST",
            format!("{base}/api/v1/statuses"),
            "the post",
        )
        .auth(auth)
        .header("Idempotency-Key", post.idempotency_key.as_str())
        .body(Body::Json(status))
        .bind("remote_id", From::Json("/id".into()), Keep::Plan)
        .bind_optional("remote_url", From::Json("/url".into()), Keep::Plan)
        .bind_optional("remote_uri", From::Json("/uri".into()), Keep::Plan),
    );
    Plan {
        steps,
        assumed: Vec::new(),
    }
}

/// `GET /api/v2/instance`, without the token: the endpoint is public, and a bad token must
/// not hide the limit.
pub fn instance_lookup(ch: &ChannelCtx<'_>) -> Step {
    Step::new(
        "instance",
        Role::Lookup,
        "GET",
        format!("{}/api/v2/instance", base(ch)),
        "the instance's limits",
    )
    .timeout(LOOKUP_TIMEOUT)
    .max_answer(256 * 1024)
}

/// `GET /api/v1/accounts/verify_credentials`: the token works, and whose it is.
pub fn account_check(ch: &ChannelCtx<'_>) -> Step {
    Step::new(
        "account",
        Role::Session,
        "GET",
        format!("{}/api/v1/accounts/verify_credentials", base(ch)),
        "the check of the token",
    )
    .auth(Auth::Bearer(Text::secret("token")))
    .bind("account", From::Json("/acct".into()), Keep::Plan)
}

/// `de` of `de-AT`: Mastodon takes ISO 639 codes, a post's `lang` may carry a region.
pub fn primary_language(lang: &str) -> Option<String> {
    let primary = lang.split(['-', '_']).next()?.to_ascii_lowercase();
    ((2..=3).contains(&primary.len()) && primary.bytes().all(|b| b.is_ascii_lowercase()))
        .then_some(primary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_region_is_dropped_from_the_language() {
        assert_eq!(primary_language("de-AT").as_deref(), Some("de"));
        assert_eq!(primary_language("pt_BR").as_deref(), Some("pt"));
        assert_eq!(primary_language("zh").as_deref(), Some("zh"));
        assert_eq!(primary_language("english"), None);
    }
}
