//! A post as Bluesky requests: renew or open a session, look up the accounts it mentions,
//! read the linked page for a card, upload its images, then create the record under a key
//! chosen before the attempt was recorded. Pure.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::facets::{FacetKind, facets};
use super::{handle, rules, xrpc};
use crate::platforms::ChannelCtx;
use crate::platforms::adapter::Outgoing;
use crate::platforms::plan::{
    Auth, Body, Cond, Expiry, From, Keep, Plan, Role, Step, Text, Tpl, media_ref, toml_to_json,
};

/// A linked page gets a short look: a card is nice to have, not worth a slow post.
const CARD_TIMEOUT: Duration = Duration::from_secs(5);
/// The head of a page is enough for its metadata.
const CARD_MAX_BYTES: usize = 256 * 1024;
/// An image of up to 2 MB takes a while on a slow line.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

fn session_auth() -> Auth {
    Auth::Bearer(Text::hole("access_jwt"))
}

fn session_binds(step: Step) -> Step {
    step.bind(
        "access_jwt",
        From::Json("/accessJwt".into()),
        Keep::Session(Expiry::JwtExp),
    )
    .bind(
        "refresh_jwt",
        From::Json("/refreshJwt".into()),
        Keep::Session(Expiry::JwtExp),
    )
    .bind(
        "did",
        From::Json("/did".into()),
        Keep::Session(Expiry::Never),
    )
}

/// Renewing the session with the refresh token, or else logging in with the app password.
pub fn session_steps(ch: &ChannelCtx<'_>) -> Vec<Step> {
    let handle = handle(ch);
    vec![
        // The access token lasts about two hours; the refresh token is kept to renew it
        // without the app password (and rotates with each renewal).
        session_binds(
            Step::new(
                "refresh",
                Role::Session,
                "POST",
                xrpc(ch, "com.atproto.server.refreshSession"),
                "the renewal of the session",
            )
            .when(Cond::Has("refresh_jwt".into()))
            .when(Cond::Missing("access_jwt".into()))
            .auth(Auth::Bearer(Text::hole("refresh_jwt"))),
        ),
        session_binds(
            Step::new(
                "session",
                Role::Session,
                "POST",
                xrpc(ch, "com.atproto.server.createSession"),
                "the login with the app password",
            )
            .body(Body::Json(Tpl::obj([
                ("identifier", Tpl::str(handle)),
                ("password", Tpl::Text(Text::secret("app_password"))),
            ]))),
        ),
    ]
}

pub fn plan(ch: &ChannelCtx<'_>, post: &Outgoing) -> Plan {
    let handle = handle(ch);
    let mut steps = session_steps(ch);

    let text = post.with_view(rules::text_to_send);
    let found = facets(&text);
    let mut facet_tpls = Vec::new();
    for facet in &found {
        let index = json!({ "byteStart": facet.range.start, "byteEnd": facet.range.end });
        let feature = |f: Tpl| {
            Tpl::obj([
                ("index", Tpl::Value(index.clone())),
                ("features", Tpl::Array(vec![f])),
            ])
        };
        match &facet.kind {
            FacetKind::Link(uri) => facet_tpls.push(feature(Tpl::Value(
                json!({ "$type": "app.bsky.richtext.facet#link", "uri": uri }),
            ))),
            FacetKind::Tag(tag) => facet_tpls.push(feature(Tpl::Value(
                json!({ "$type": "app.bsky.richtext.facet#tag", "tag": tag }),
            ))),
            FacetKind::Mention(mentioned) => {
                let did = format!("did:{mentioned}");
                if !steps.iter().any(|s| s.binds.iter().any(|b| b.name == did)) {
                    steps.push(
                        Step::new(
                            "resolve",
                            Role::Lookup,
                            "GET",
                            xrpc(ch, "com.atproto.identity.resolveHandle"),
                            format!("the look-up of @{mentioned}"),
                        )
                        .query("handle", mentioned.as_str())
                        .bind(
                            did.clone(),
                            From::Json("/did".into()),
                            Keep::Attempt,
                        ),
                    );
                }
                // A handle nobody has stays plain text, as in Bluesky's app.
                facet_tpls.push(Tpl::IfBound(
                    did.clone(),
                    Box::new(feature(Tpl::obj([
                        ("$type", Tpl::str("app.bsky.richtext.facet#mention")),
                        ("did", Tpl::hole(did)),
                    ]))),
                ));
            }
        }
    }

    let mut record = Tpl::obj([
        ("$type", Tpl::str("app.bsky.feed.post")),
        ("text", Tpl::str(text.clone())),
    ]);
    if !facet_tpls.is_empty() {
        record.push("facets", Tpl::Array(facet_tpls));
    }

    if !post.media.is_empty() {
        let mut images = Vec::new();
        for (i, media) in post.media.iter().enumerate() {
            let blob = format!("blob:{}", i + 1);
            steps.push(
                Step::new(
                    "upload",
                    Role::Prepare,
                    "POST",
                    xrpc(ch, "com.atproto.repo.uploadBlob"),
                    format!("the upload of {}", media.rel.display()),
                )
                .auth(session_auth())
                .body(Body::File(media_ref(i, media)))
                .bind(blob.clone(), From::Json("/blob".into()), Keep::Attempt)
                .timeout(UPLOAD_TIMEOUT),
            );
            // `validate` holds a post with an image without alt text; an empty one here
            // would be a bug, not a choice.
            let alt = media.alt.as_deref().unwrap_or_default().trim().to_string();
            let mut image = Tpl::obj([("image", Tpl::hole(blob)), ("alt", Tpl::str(alt))]);
            if let Some((width, height)) = media.dimensions.filter(|(w, h)| *w > 0 && *h > 0) {
                image.push(
                    "aspectRatio",
                    Tpl::Value(json!({ "width": width, "height": height })),
                );
            }
            images.push(image);
        }
        record.push(
            "embed",
            Tpl::obj([
                ("$type", Tpl::str("app.bsky.embed.images")),
                ("images", Tpl::Array(images)),
            ]),
        );
    } else if let Some(link) = post.with_view(|v| rules::link_card(v).map(str::to_string)) {
        let given = |key: &str| post.fields.get(key).and_then(toml::Value::as_str);
        let fetch =
            may_fetch(&link) && (given("title").is_none() || given("description").is_none());
        if fetch {
            steps.push(
                Step::new(
                    "card",
                    Role::Lookup,
                    "GET",
                    link.as_str(),
                    "the linked page (for its card)",
                )
                .bind_optional(
                    "card_title",
                    From::Html(&["og:title", "twitter:title", "title"]),
                    Keep::Attempt,
                )
                .bind_optional(
                    "card_description",
                    From::Html(&["og:description", "twitter:description", "description"]),
                    Keep::Attempt,
                )
                .timeout(CARD_TIMEOUT)
                .max_answer(CARD_MAX_BYTES),
            );
        }
        let field = |key: &str, hole: &str, default: &str| match given(key) {
            Some(v) => Tpl::str(v),
            None => Tpl::HoleOr(hole.into(), Value::String(default.into())),
        };
        record.push(
            "embed",
            Tpl::obj([
                ("$type", Tpl::str("app.bsky.embed.external")),
                (
                    "external",
                    Tpl::obj([
                        ("uri", Tpl::str(link.clone())),
                        ("title", field("title", "card_title", &link)),
                        ("description", field("description", "card_description", "")),
                    ]),
                ),
            ]),
        );
    }

    let langs = match post.fields.get("langs") {
        Some(value) => Some(toml_to_json(value)),
        None => post.lang.as_ref().map(|lang| json!([lang])),
    };
    if let Some(langs) = langs {
        record.push("langs", Tpl::Value(langs));
    }
    if let Some(toml::Value::Array(labels)) = post.fields.get("labels") {
        let values: Vec<Value> = labels
            .iter()
            .filter_map(toml::Value::as_str)
            .map(|val| json!({ "val": val }))
            .collect();
        record.push(
            "labels",
            Tpl::Value(json!({ "$type": "com.atproto.label.defs#selfLabels", "values": values })),
        );
    }
    if let Some(tags) = post.fields.get("tags") {
        record.push("tags", Tpl::Value(toml_to_json(tags)));
    }
    record.push(
        "createdAt",
        Tpl::str(post.started.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
    );

    steps.push(
        Step::new(
            "create",
            Role::Create,
            "POST",
            xrpc(ch, "com.atproto.repo.createRecord"),
            "the post",
        )
        .auth(session_auth())
        .body(Body::Json(Tpl::obj([
            ("repo", Tpl::str(handle)),
            ("collection", Tpl::str("app.bsky.feed.post")),
            ("rkey", Tpl::str(record_key(post))),
            ("record", record),
        ])))
        .bind("remote_uri", From::Json("/uri".into()), Keep::Plan),
    );
    Plan {
        steps,
        assumed: Vec::new(),
    }
}

/// Whether the linked page may be read for its card: `https://`, or plain `http://` only on
/// this machine (as for every address cadenced talks to).
fn may_fetch(link: &str) -> bool {
    let Ok(url) = url::Url::parse(link) else {
        return false;
    };
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

/// The record key of the attempt: a TID (atproto's timestamp identifier, 13 characters of
/// sortable base32) made of the attempt's start time in microseconds and a 10-bit clock id
/// from its idempotency key. Both are in the attempt row, so every resend and every read-back
/// after a restart asks for the same record, and two attempts of one file (a `retry`) get
/// different keys.
pub fn record_key(post: &Outgoing) -> String {
    let micros = post.started.as_millisecond().max(0) as u64 * 1000;
    let digest = Sha256::digest(post.idempotency_key.as_bytes());
    let clock_id = u64::from(u16::from_be_bytes([digest[0], digest[1]]) & 0x3FF);
    tid((micros << 10 | clock_id) & 0x7FFF_FFFF_FFFF_FFFF)
}

/// Encodes a 64-bit value (top bit clear) as a 13-character TID.
pub fn tid(value: u64) -> String {
    const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'2'; 13];
    let mut v = value;
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    out.iter().map(|&b| b as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tids_encode_like_atproto() {
        assert_eq!(tid(0), "2222222222222");
        assert_eq!(tid(u64::MAX >> 1), "bzzzzzzzzzzzz");
        // atproto's example TID 3jzfcijpj2z2a decodes and encodes back.
        let decode = |s: &str| {
            s.bytes().fold(0u64, |acc, c| {
                acc * 32
                    + b"234567abcdefghijklmnopqrstuvwxyz"
                        .iter()
                        .position(|&a| a == c)
                        .unwrap() as u64
            })
        };
        assert_eq!(tid(decode("3jzfcijpj2z2a")), "3jzfcijpj2z2a");
    }
}
