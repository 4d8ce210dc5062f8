//! Pure descriptions of the HTTP requests a platform's adapter sends for one post, and each
//! platform's *request plan*: the list of those requests, in order.
//!
//! The outbox writes these plans (SPEC "Publishing") so a dry-run channel shows exactly what
//! would have gone out, and tests check them against the platforms' published contracts.
//! What this module must not do: any IO, read the clock (`now` is an argument), or ever hold
//! a secret. Credentials are written `***`; values only a server response gives (a media id,
//! a session token, a blob reference) are written as placeholders such as `"<media_id:1>"`.
//!
//! A plan describes the straight path. Conditional extra calls the real adapter may need
//! (polling a Mastodon media upload that answered 202, refreshing a Bluesky session) depend
//! on answers and are left out.

use std::path::Path;

use jiff::Timestamp;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::adapter::Outgoing;
use super::{MediaInfo, PostView, bluesky, mastodon, text, x};
use crate::config::Settings;

/// What a secret is replaced with, everywhere.
pub const REDACTED: &str = "***";

/// One HTTP request, described.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSpec {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(Value),
    /// `application/x-www-form-urlencoded` fields, in order.
    Form(Vec<(String, String)>),
    /// `multipart/form-data` parts, in order.
    Multipart(Vec<PartSpec>),
    /// A file sent as the whole body (Bluesky's `uploadBlob` takes raw bytes, `*/*`). Not one
    /// of the three shapes the SPEC lists, because none of them is honest for a raw upload.
    Bytes {
        file_name: String,
        content_type: String,
        bytes: u64,
    },
}

/// One part of a multipart body: a file (`file_name` set, content described by its length)
/// or a text field (`value` set: alt text and categories are worth seeing in the outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartSpec {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: String,
    pub bytes: u64,
    pub value: Option<String>,
}

impl PartSpec {
    pub fn file(name: &str, media: &MediaInfo) -> PartSpec {
        PartSpec {
            name: name.to_string(),
            file_name: Some(file_name(&media.path)),
            content_type: content_type(&media.path).to_string(),
            bytes: media.bytes,
            value: None,
        }
    }

    pub fn text(name: &str, value: &str) -> PartSpec {
        PartSpec {
            name: name.to_string(),
            file_name: None,
            content_type: "text/plain; charset=utf-8".to_string(),
            bytes: value.len() as u64,
            value: Some(value.to_string()),
        }
    }

    fn to_json(&self) -> Value {
        let mut part = Map::new();
        part.insert("name".into(), json!(self.name));
        if let Some(file_name) = &self.file_name {
            part.insert("file_name".into(), json!(file_name));
        }
        part.insert("content_type".into(), json!(self.content_type));
        part.insert("bytes".into(), json!(self.bytes));
        if let Some(value) = &self.value {
            part.insert("value".into(), json!(value));
        }
        Value::Object(part)
    }
}

impl RequestSpec {
    fn new(method: &str, url: String, headers: &[(&str, &str)], body: Body) -> RequestSpec {
        RequestSpec {
            method: method.to_string(),
            url,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body,
        }
    }

    /// The request as the outbox writes it: `{ "method", "url", "headers", "body" }`, headers
    /// as an object, the body as the JSON value, an object of form fields, a list of parts, or
    /// (raw upload) an object describing the file.
    pub fn to_json(&self) -> Value {
        let headers: Map<String, Value> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let body = match &self.body {
            Body::None => Value::Null,
            Body::Json(value) => value.clone(),
            Body::Form(fields) => {
                Value::Object(fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            }
            Body::Multipart(parts) => Value::Array(parts.iter().map(PartSpec::to_json).collect()),
            Body::Bytes {
                file_name,
                content_type,
                bytes,
            } => json!({ "file_name": file_name, "content_type": content_type, "bytes": bytes }),
        };
        json!({ "method": self.method, "url": self.url, "headers": headers, "body": body })
    }

    /// A header's value, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

// ---------------------------------------------------------------------------------------------
// Which plan a channel's settings call for
// ---------------------------------------------------------------------------------------------

/// The request plan of one channel, chosen by its settings (not by `dry_run`: a dry-run
/// channel writes its own platform's plan to the outbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    X,
    Mastodon {
        instance: String,
    },
    Bluesky {
        service: String,
        handle: String,
    },
    Webhook {
        url: String,
    },
    Exec {
        command: Vec<String>,
    },
    /// The outbox platform itself sends nothing: its files carry the post and no requests.
    Outbox,
}

impl Plan {
    pub fn for_settings(settings: &Settings) -> Plan {
        match settings {
            Settings::X { .. } => Plan::X,
            Settings::Mastodon { instance, .. } => Plan::Mastodon {
                instance: instance.clone(),
            },
            Settings::Bluesky {
                service, handle, ..
            } => Plan::Bluesky {
                service: service.clone(),
                handle: handle.clone(),
            },
            Settings::Webhook { url } => Plan::Webhook { url: url.clone() },
            Settings::Exec { command, .. } => Plan::Exec {
                command: command.clone(),
            },
            Settings::Outbox => Plan::Outbox,
        }
    }

    /// The requests, in order. `now` is the record's `createdAt` where a platform wants one.
    pub fn requests(&self, post: &Outgoing, now: Timestamp) -> Vec<RequestSpec> {
        match self {
            Plan::X => x_plan(post),
            Plan::Mastodon { instance } => mastodon_plan(instance, post),
            Plan::Bluesky { service, handle } => bluesky_plan(service, handle, post, now),
            Plan::Webhook { url } => vec![webhook_request(url, post)],
            Plan::Exec { command } => vec![exec_request(command, post)],
            Plan::Outbox => Vec::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The generic document (webhook body, exec stdin)
// ---------------------------------------------------------------------------------------------

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

/// The webhook's one request. A password in the URL (`https://user:pass@host/`) is redacted;
/// the rest of the URL is the config's, which holds no secret by design (credentials go
/// through `SecretRef`).
pub fn webhook_request(url: &str, post: &Outgoing) -> RequestSpec {
    RequestSpec::new(
        "POST",
        redact_url_password(url),
        &[
            ("Content-Type", "application/json"),
            ("Idempotency-Key", &post.idempotency_key),
        ],
        Body::Json(document(post)),
    )
}

/// What an exec channel runs, in the same shape: method `EXEC`, `url` = the program, the
/// other arguments as headers `Arg-1`, `Arg-2`…, the body = the stdin document.
pub fn exec_request(command: &[String], post: &Outgoing) -> RequestSpec {
    let program = command.first().cloned().unwrap_or_default();
    let mut spec = RequestSpec::new("EXEC", program, &[], Body::Json(document(post)));
    // A program has no headers; its further arguments are shown in their place, numbered.
    for (i, arg) in command.iter().enumerate().skip(1) {
        spec.headers.push((format!("Arg-{i}"), arg.clone()));
    }
    spec
}

// ---------------------------------------------------------------------------------------------
// Mastodon
// ---------------------------------------------------------------------------------------------

/// `POST /api/v2/media` per media (multipart `file` + `description`), then
/// `POST /api/v1/statuses` (JSON) with the `Idempotency-Key` header.
pub fn mastodon_plan(instance: &str, post: &Outgoing) -> Vec<RequestSpec> {
    let base = instance.trim_end_matches('/');
    let auth = format!("Bearer {REDACTED}");
    let media = media_infos(post);
    let mut out = Vec::new();
    for m in &media {
        let mut parts = vec![PartSpec::file("file", m)];
        if let Some(alt) = m.alt.as_deref().filter(|a| !a.trim().is_empty()) {
            parts.push(PartSpec::text("description", alt));
        }
        out.push(RequestSpec::new(
            "POST",
            format!("{base}/api/v2/media"),
            &[("Authorization", &auth)],
            Body::Multipart(parts),
        ));
    }
    let view = view(post, &media);
    let mut status = Map::new();
    status.insert("status".into(), json!(mastodon::text_to_send(&view)));
    if !media.is_empty() {
        status.insert(
            "media_ids".into(),
            json!(placeholders("media_id", media.len())),
        );
    }
    copy_fields(&post.fields, mastodon::FIELDS, &mut status);
    if !status.contains_key("language")
        && let Some(lang) = &post.lang
    {
        status.insert("language".into(), json!(lang));
    }
    out.push(RequestSpec::new(
        "POST",
        format!("{base}/api/v1/statuses"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", &post.idempotency_key),
        ],
        Body::Json(Value::Object(status)),
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// X
// ---------------------------------------------------------------------------------------------

pub const X_API: &str = "https://api.x.com";

/// `POST /2/media/upload` per media (multipart `media` + `media_category`), `POST
/// /2/media/metadata` for each one with alt text, then `POST /2/tweets`
/// (`CreatePostsRequest`). X has no idempotency key: its reconcile reads recent posts.
pub fn x_plan(post: &Outgoing) -> Vec<RequestSpec> {
    let auth = format!("Bearer {REDACTED}");
    let media = media_infos(post);
    let mut out = Vec::new();
    for m in &media {
        let category = match content_type(&m.path) {
            "image/gif" => "tweet_gif",
            t if t.starts_with("video/") => "tweet_video",
            _ => "tweet_image",
        };
        out.push(RequestSpec::new(
            "POST",
            format!("{X_API}/2/media/upload"),
            &[("Authorization", &auth)],
            Body::Multipart(vec![
                PartSpec::file("media", m),
                PartSpec::text("media_category", category),
            ]),
        ));
    }
    for (i, m) in media.iter().enumerate() {
        let Some(alt) = m.alt.as_deref().filter(|a| !a.trim().is_empty()) else {
            continue;
        };
        out.push(RequestSpec::new(
            "POST",
            format!("{X_API}/2/media/metadata"),
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Body::Json(json!({
                "id": placeholder("media_id", i + 1),
                "metadata": { "alt_text": { "text": alt } },
            })),
        ));
    }
    let view = view(post, &media);
    let mut tweet = Map::new();
    // `text` is always sent (the contract defaults it to "" because X rejects its absence).
    tweet.insert("text".into(), json!(x::text_to_send(&view)));
    if !media.is_empty() {
        tweet.insert(
            "media".into(),
            json!({ "media_ids": placeholders("media_id", media.len()) }),
        );
    }
    copy_fields(&post.fields, x::FIELDS, &mut tweet);
    out.push(RequestSpec::new(
        "POST",
        format!("{X_API}/2/tweets"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Body::Json(Value::Object(tweet)),
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// Bluesky
// ---------------------------------------------------------------------------------------------

/// `createSession` (handle + app password), `uploadBlob` per image (raw bytes), then
/// `createRecord` of an `app.bsky.feed.post` with the caller-chosen `rkey` (a TID derived
/// from the idempotency key, so a resend of one attempt asks for the same record and the
/// reconcile can read it back with `getRecord`).
pub fn bluesky_plan(
    service: &str,
    handle: &str,
    post: &Outgoing,
    now: Timestamp,
) -> Vec<RequestSpec> {
    let base = service.trim_end_matches('/');
    let xrpc = |method: &str| format!("{base}/xrpc/{method}");
    let session_auth = "Bearer <access_jwt>";
    let media = media_infos(post);
    let mut out = vec![RequestSpec::new(
        "POST",
        xrpc("com.atproto.server.createSession"),
        &[("Content-Type", "application/json")],
        Body::Json(json!({ "identifier": handle, "password": REDACTED })),
    )];
    for m in &media {
        let content_type = content_type(&m.path);
        out.push(RequestSpec::new(
            "POST",
            xrpc("com.atproto.repo.uploadBlob"),
            &[
                ("Authorization", session_auth),
                ("Content-Type", content_type),
            ],
            Body::Bytes {
                file_name: file_name(&m.path),
                content_type: content_type.to_string(),
                bytes: m.bytes,
            },
        ));
    }

    let view = view(post, &media);
    let text = bluesky::text_to_send(&view);
    let mut record = Map::new();
    record.insert("$type".into(), json!("app.bsky.feed.post"));
    record.insert("text".into(), json!(text));
    let facets = bluesky_link_facets(&text);
    if !facets.is_empty() {
        record.insert("facets".into(), Value::Array(facets));
    }
    if !media.is_empty() {
        let images: Vec<Value> = media
            .iter()
            .enumerate()
            .map(|(i, m)| {
                json!({ "image": placeholder("blob", i + 1), "alt": m.alt.clone().unwrap_or_default() })
            })
            .collect();
        record.insert(
            "embed".into(),
            json!({ "$type": "app.bsky.embed.images", "images": images }),
        );
    } else if let Some(link) = bluesky::link_card(&view) {
        // A card needs a title and a description (required by the lexicon). cadenced does
        // not fetch the page to read them; the link itself is an honest title.
        record.insert(
            "embed".into(),
            json!({
                "$type": "app.bsky.embed.external",
                "external": { "uri": link, "title": link, "description": "" },
            }),
        );
    }
    let langs = match post.fields.get("langs") {
        Some(value) => toml_to_json(value),
        None => match &post.lang {
            Some(lang) => json!([lang]),
            None => Value::Null,
        },
    };
    if !langs.is_null() {
        record.insert("langs".into(), langs);
    }
    if let Some(toml::Value::Array(labels)) = post.fields.get("labels") {
        let values: Vec<Value> = labels
            .iter()
            .filter_map(toml::Value::as_str)
            .map(|val| json!({ "val": val }))
            .collect();
        record.insert(
            "labels".into(),
            json!({ "$type": "com.atproto.label.defs#selfLabels", "values": values }),
        );
    }
    if let Some(tags) = post.fields.get("tags") {
        record.insert("tags".into(), toml_to_json(tags));
    }
    record.insert(
        "createdAt".into(),
        json!(now.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()),
    );

    out.push(RequestSpec::new(
        "POST",
        xrpc("com.atproto.repo.createRecord"),
        &[
            ("Authorization", session_auth),
            ("Content-Type", "application/json"),
        ],
        Body::Json(json!({
            "repo": handle,
            "collection": "app.bsky.feed.post",
            "rkey": tid_for_key(&post.idempotency_key),
            "record": record,
        })),
    ));
    out
}

/// `app.bsky.richtext.facet` link facets for the URLs in `text`, with UTF-8 byte offsets.
/// URLs are found by the twitter-text rules (as Bluesky's app does, bare domains included);
/// a bare domain links to `https://`.
pub fn bluesky_link_facets(text: &str) -> Vec<Value> {
    text::find_urls(text)
        .into_iter()
        .map(|range| {
            let url = &text[range.clone()];
            let start = url.get(..8).unwrap_or(url).to_ascii_lowercase();
            let has_scheme = start.starts_with("https://") || start.starts_with("http://");
            let uri = if has_scheme {
                url.to_string()
            } else {
                format!("https://{url}")
            };
            json!({
                "index": { "byteStart": range.start, "byteEnd": range.end },
                "features": [{ "$type": "app.bsky.richtext.facet#link", "uri": uri }],
            })
        })
        .collect()
}

/// A TID (atproto timestamp identifier: 13 characters of base32-sortable) derived from the
/// idempotency key: the same key always gives the same record key, so a resend of one
/// attempt can never create a second post, and `getRecord` finds the first one.
///
/// The 63 bits come from SHA-256 of the key, so the "timestamp" part is not a real time.
/// atproto checks a TID record key's syntax (first character `234567abcdefghij`), which this
/// meets; nothing reads the time out of a post's key (`createdAt` carries the time).
pub fn tid_for_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let value = u64::from_be_bytes(first) & 0x7FFF_FFFF_FFFF_FFFF;
    tid(value)
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
    String::from_utf8(out.to_vec()).expect("the alphabet is ASCII")
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn media_infos(post: &Outgoing) -> Vec<MediaInfo> {
    post.media
        .iter()
        .map(|m| MediaInfo {
            path: m.rel.clone(),
            alt: m.alt.clone(),
            bytes: m.bytes,
        })
        .collect()
}

fn view<'a>(post: &'a Outgoing, media: &'a [MediaInfo]) -> PostView<'a> {
    PostView {
        text: &post.text,
        media,
        link: post.link.as_deref(),
        fields: &post.fields,
    }
}

/// `"<kind:1>"`, `"<kind:2>"`, …: a value the server's answer to an earlier request gives.
pub fn placeholder(kind: &str, n: usize) -> String {
    format!("<{kind}:{n}>")
}

fn placeholders(kind: &str, count: usize) -> Vec<String> {
    (1..=count).map(|n| placeholder(kind, n)).collect()
}

/// Copies the post's `[platform]` fields a platform takes into a request body, by the
/// platform's own names.
fn copy_fields(fields: &toml::Table, keys: &[&str], into: &mut Map<String, Value>) {
    for key in keys {
        if let Some(value) = fields.get(*key) {
            into.insert((*key).to_string(), toml_to_json(value));
        }
    }
}

/// A post's `[platform]` table as JSON.
pub fn toml_table_to_json(table: &toml::Table) -> Value {
    Value::Object(
        table
            .iter()
            .map(|(k, v)| (k.clone(), toml_to_json(v)))
            .collect(),
    )
}

/// TOML to JSON by hand: serde would turn a TOML date into toml's private wrapper object;
/// here it becomes the string the user wrote.
pub fn toml_to_json(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(items) => Value::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => toml_table_to_json(table),
    }
}

/// The last component of a path, for multipart file names.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The media type of a file, by its extension (what the platforms accept; anything else is
/// sent as `application/octet-stream` and the platform decides).
pub fn content_type(path: &Path) -> &'static str {
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
        "mp4" | "m4v" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// `https://user:secret@host/…` → `https://user:***@host/…`.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    let redacted = if userinfo.contains(':') {
        format!("{user}:{REDACTED}")
    } else {
        // A lone userinfo part is a token more often than a user name.
        REDACTED.to_string()
    };
    format!("{}{redacted}{}", &url[..scheme_end + 3], &rest[at..])
}

#[cfg(test)]
mod tests {
    //! The plans against the platforms' own contracts (`tests/data/contracts`):
    //! request bodies are validated against the OpenAPI schemas (X, Mastodon) and the atproto
    //! lexicons (Bluesky) by a small validator below. A full JSON-Schema crate would cover
    //! only the OpenAPI files (lexicons are not JSON Schema) and add a long build; this one
    //! checks what a wrong request gets wrong: required keys, unknown keys where the schema
    //! forbids them, types, enums, lengths, `$ref`s and unions.

    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::platforms::Platform;
    use crate::platforms::adapter::OutgoingMedia;

    const NOW: &str = "2026-11-27T09:00:00.250Z";

    fn contracts() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/contracts")
    }

    fn load(rel: &str) -> Value {
        let path = contracts().join(rel);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read the contract {} ({e}); these tests need shared/ beside the repository",
                path.display()
            )
        });
        serde_json::from_str(&text).expect("contract parses")
    }

    fn post(text: &str, media: usize, link: Option<&str>, fields: &str) -> Outgoing {
        Outgoing {
            channel: "shop".into(),
            platform: Platform::Mastodon,
            file: "shop/black-friday.md".into(),
            text: text.into(),
            media: (1..=media)
                .map(|i| OutgoingMedia {
                    path: PathBuf::from(format!("/q/img/p{i}.jpg")),
                    rel: PathBuf::from(format!("img/p{i}.jpg")),
                    alt: Some(format!("Photo {i}")),
                    bytes: 1000 * i as u64,
                })
                .collect(),
            link: link.map(str::to_string),
            lang: Some("en".into()),
            fields: fields.parse().expect("test TOML parses"),
            idempotency_key: "key-123".into(),
        }
    }

    fn now() -> Timestamp {
        NOW.parse().unwrap()
    }

    fn json_body(spec: &RequestSpec) -> &Value {
        match &spec.body {
            Body::Json(v) => v,
            other => panic!("expected a JSON body, got {other:?}"),
        }
    }

    fn parts(spec: &RequestSpec) -> &[PartSpec] {
        match &spec.body {
            Body::Multipart(p) => p,
            other => panic!("expected a multipart body, got {other:?}"),
        }
    }

    /// Placeholders stand where the server's answers go; for schema checks they become
    /// values of the right shape (X ids are digits).
    fn fill_placeholders(v: &Value) -> Value {
        match v {
            Value::String(s) if s.starts_with("<media_id:") => json!("1234567890"),
            Value::Array(a) => Value::Array(a.iter().map(fill_placeholders).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .map(|(k, v)| (k.clone(), fill_placeholders(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    // --- a small OpenAPI schema checker ------------------------------------------------------

    fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("local $ref");
                resolve(doc, doc.pointer(pointer).expect("$ref resolves"))
            }
            None => schema,
        }
    }

    fn openapi_errors(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
        let schema = resolve(doc, schema);
        let mut errors = Vec::new();
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                errors.extend(openapi_errors(doc, s, value, at));
            }
        }
        for key in ["oneOf", "anyOf"] {
            // `oneOf` is checked as "at least one": Mastodon's TextStatus and MediaStatus
            // both match a status with text and media, which its server accepts.
            if let Some(any) = schema.get(key).and_then(Value::as_array)
                && !any
                    .iter()
                    .any(|s| openapi_errors(doc, s, value, at).is_empty())
            {
                errors.push(format!("{at}: matches none of {key}"));
            }
        }
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.is_empty() {
            let ok = types.iter().any(|t| match *t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "boolean" => value.is_boolean(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "null" => value.is_null(),
                _ => true,
            });
            if !ok {
                errors.push(format!("{at}: {value} is not of type {types:?}"));
                return errors;
            }
        }
        if let Some(options) = schema.get("enum").and_then(Value::as_array)
            && !options.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {options:?}"));
        }
        if let Some(obj) = value.as_object() {
            let props = schema.get("properties").and_then(Value::as_object);
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let req = req.as_str().unwrap();
                if !obj.contains_key(req) {
                    errors.push(format!("{at}: required `{req}` is missing"));
                }
            }
            for (k, v) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => errors.extend(openapi_errors(doc, s, v, &format!("{at}.{k}"))),
                    None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                        errors.push(format!("{at}: `{k}` is not allowed"))
                    }
                    None => {}
                }
            }
        }
        if let Some(items) = value.as_array() {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errors.push(format!("{at}: more than {max} items"));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!("{at}: fewer than {min} items"));
            }
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    errors.extend(openapi_errors(doc, s, v, &format!("{at}[{i}]")));
                }
            }
        }
        if let (Some(s), Some(max)) = (
            value.as_str(),
            schema.get("maxLength").and_then(Value::as_u64),
        ) && s.chars().count() as u64 > max
        {
            errors.push(format!("{at}: longer than {max}"));
        }
        if schema.get("pattern").and_then(Value::as_str) == Some("^[0-9]{1,19}$")
            && let Some(s) = value.as_str()
            && !(1..=19).contains(&s.len()) | !s.bytes().all(|b| b.is_ascii_digit())
        {
            errors.push(format!("{at}: {s:?} is not an id of 1 to 19 digits"));
        }
        errors
    }

    fn assert_openapi(doc: &Value, schema_pointer: &str, value: &Value) {
        let schema = doc.pointer(schema_pointer).expect("schema exists");
        let errors = openapi_errors(doc, schema, &fill_placeholders(value), "body");
        assert!(errors.is_empty(), "{value:#}\n{}", errors.join("\n"));
    }

    // --- a small atproto lexicon checker -----------------------------------------------------

    struct Lexicons(BTreeMap<String, Value>);

    impl Lexicons {
        fn load() -> Lexicons {
            let mut map = BTreeMap::new();
            for entry in std::fs::read_dir(contracts().join("bluesky")).expect("bluesky contracts")
            {
                let path = entry.unwrap().path();
                let doc = load(&format!(
                    "bluesky/{}",
                    path.file_name().unwrap().to_string_lossy()
                ));
                map.insert(doc["id"].as_str().unwrap().to_string(), doc);
            }
            Lexicons(map)
        }

        /// A `ref` ("#def", "nsid", "nsid#def") seen from lexicon `from`. None when the
        /// lexicon is not among the contracts (then the value is not checked further).
        fn def(&self, from: &str, r: &str) -> Option<(String, &Value)> {
            let (nsid, name) = match r.split_once('#') {
                Some(("", name)) => (from, name),
                Some((nsid, name)) => (nsid, name),
                None => (r, "main"),
            };
            let def = self.0.get(nsid)?.get("defs")?.get(name)?;
            Some((nsid.to_string(), def))
        }

        fn errors(&self, lex: &str, def: &Value, value: &Value, at: &str) -> Vec<String> {
            let mut errors = Vec::new();
            let ty = def["type"].as_str().unwrap_or("");
            match ty {
                "ref" => {
                    if let Some((nsid, d)) = self.def(lex, def["ref"].as_str().unwrap()) {
                        errors.extend(self.errors(&nsid, d, value, at));
                    }
                }
                "union" => {
                    let Some(t) = value.get("$type").and_then(Value::as_str) else {
                        return vec![format!("{at}: a union member needs `$type`")];
                    };
                    let refs: Vec<&str> = def["refs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    let full = |r: &str| {
                        if r.starts_with('#') {
                            format!("{lex}{r}")
                        } else {
                            r.to_string()
                        }
                    };
                    let Some(r) = refs
                        .iter()
                        .find(|r| full(r) == t || full(r) == format!("{t}#main"))
                    else {
                        return vec![format!("{at}: `$type` {t} is not one of {refs:?}")];
                    };
                    if let Some((nsid, d)) = self.def(lex, r) {
                        errors.extend(self.errors(&nsid, d, value, at));
                    }
                }
                "record" => errors.extend(self.errors(lex, &def["record"], value, at)),
                "object" => {
                    let Some(obj) = value.as_object() else {
                        return vec![format!("{at}: {value} is not an object")];
                    };
                    for req in def["required"].as_array().into_iter().flatten() {
                        let req = req.as_str().unwrap();
                        if !obj.contains_key(req) {
                            errors.push(format!("{at}: required `{req}` is missing"));
                        }
                    }
                    for (k, v) in obj {
                        match def["properties"].get(k) {
                            Some(d) => errors.extend(self.errors(lex, d, v, &format!("{at}.{k}"))),
                            None if k == "$type" => {}
                            // Lexicon objects are open, but a key the schema does not know
                            // in what cadenced builds is a typo.
                            None => errors.push(format!("{at}: `{k}` is not in the lexicon")),
                        }
                    }
                }
                "array" => {
                    let Some(items) = value.as_array() else {
                        return vec![format!("{at}: {value} is not an array")];
                    };
                    if let Some(max) = def["maxLength"].as_u64()
                        && items.len() as u64 > max
                    {
                        errors.push(format!("{at}: more than {max} items"));
                    }
                    for (i, v) in items.iter().enumerate() {
                        errors.extend(self.errors(lex, &def["items"], v, &format!("{at}[{i}]")));
                    }
                }
                "string" => match value.as_str() {
                    None => errors.push(format!("{at}: {value} is not a string")),
                    Some(s) => {
                        if def["maxLength"]
                            .as_u64()
                            .is_some_and(|m| s.len() as u64 > m)
                        {
                            errors.push(format!("{at}: more bytes than allowed"));
                        }
                        if def["maxGraphemes"]
                            .as_u64()
                            .is_some_and(|m| text::graphemes(s) as u64 > m)
                        {
                            errors.push(format!("{at}: more graphemes than allowed"));
                        }
                        if def["format"] == "datetime" && s.parse::<Timestamp>().is_err() {
                            errors.push(format!("{at}: {s:?} is not a datetime"));
                        }
                        if def["format"] == "uri" && !s.contains("://") {
                            errors.push(format!("{at}: {s:?} is not a URI"));
                        }
                        if def["format"] == "record-key" && !is_tid(s) {
                            errors.push(format!("{at}: {s:?} is not a TID"));
                        }
                    }
                },
                "integer" => {
                    if !value.is_u64() {
                        errors.push(format!("{at}: {value} is not a non-negative integer"));
                    }
                }
                "boolean" => {
                    if !value.is_boolean() {
                        errors.push(format!("{at}: {value} is not a boolean"));
                    }
                }
                "blob" => {
                    if !value.as_str().is_some_and(|s| s.starts_with("<blob:")) {
                        errors.push(format!("{at}: a blob must be the uploadBlob placeholder"));
                    }
                }
                "unknown" => {}
                other => errors.push(format!("{at}: unchecked lexicon type {other}")),
            }
            errors
        }

        fn assert_valid(&self, nsid: &str, def_path: &[&str], value: &Value) {
            let mut def = &self.0[nsid]["defs"];
            for step in def_path {
                def = &def[*step];
            }
            let errors = self.errors(nsid, def, value, "value");
            assert!(errors.is_empty(), "{value:#}\n{}", errors.join("\n"));
        }
    }

    fn is_tid(s: &str) -> bool {
        s.len() == 13
            && s.starts_with(|c: char| "234567abcdefghij".contains(c))
            && s.chars()
                .all(|c| "234567abcdefghijklmnopqrstuvwxyz".contains(c))
    }

    // --- Mastodon ----------------------------------------------------------------------------

    #[test]
    fn mastodon_plan_uploads_media_then_creates_the_status() {
        let p = post(
            "Black Friday: 30% off",
            2,
            Some("https://shop.example/bf"),
            "visibility = \"unlisted\"\nspoiler_text = \"Sale\"\nsensitive = false",
        );
        let plan = mastodon_plan("https://mastodon.example/", &p);
        assert_eq!(plan.len(), 3);
        for (i, upload) in plan[..2].iter().enumerate() {
            assert_eq!(upload.method, "POST");
            assert_eq!(upload.url, "https://mastodon.example/api/v2/media");
            assert_eq!(upload.header("authorization"), Some("Bearer ***"));
            let parts = parts(upload);
            assert_eq!(parts[0].name, "file");
            assert_eq!(
                parts[0].file_name.as_deref(),
                Some(&*format!("p{}.jpg", i + 1))
            );
            assert_eq!(parts[0].content_type, "image/jpeg");
            assert_eq!(parts[0].bytes, 1000 * (i as u64 + 1));
            assert_eq!(parts[1].name, "description");
            assert_eq!(
                parts[1].value.as_deref(),
                Some(&*format!("Photo {}", i + 1))
            );
        }
        let create = &plan[2];
        assert_eq!(create.url, "https://mastodon.example/api/v1/statuses");
        assert_eq!(create.header("Idempotency-Key"), Some("key-123"));
        assert_eq!(
            json_body(create),
            &json!({
                "status": "Black Friday: 30% off\n\nhttps://shop.example/bf",
                "media_ids": ["<media_id:1>", "<media_id:2>"],
                "visibility": "unlisted",
                "spoiler_text": "Sale",
                "sensitive": false,
                "language": "en",
            })
        );
    }

    #[test]
    fn mastodon_plan_meets_the_openapi_contract() {
        let doc = load("mastodon/openapi.json");
        let create = doc.pointer("/paths/~1api~1v1~1statuses/post").unwrap();
        let schema = &create["requestBody"]["content"]["application/json"]["schema"];
        for p in [
            post("Hello", 0, None, ""),
            post("", 1, None, "language = \"de\""),
            post("Both", 4, None, "visibility = \"private\""),
        ] {
            let plan = mastodon_plan("https://m.example", &p);
            let body = fill_placeholders(json_body(plan.last().unwrap()));
            let errors = openapi_errors(&doc, schema, &body, "body");
            assert!(errors.is_empty(), "{body:#}\n{}", errors.join("\n"));
            // The header the contract names for idempotency is the one sent.
            let params = create["parameters"].as_array().unwrap();
            assert!(params.iter().any(|h| h["name"] == "Idempotency-Key"));
            assert!(plan.last().unwrap().header("Idempotency-Key").is_some());

            let media = doc
                .pointer(
                    "/paths/~1api~1v2~1media/post/requestBody/content/multipart~1form-data/schema",
                )
                .unwrap();
            for upload in &plan[..plan.len() - 1] {
                let names: Vec<&str> = parts(upload).iter().map(|p| p.name.as_str()).collect();
                for name in &names {
                    assert!(
                        media["properties"].get(*name).is_some(),
                        "unknown part {name}"
                    );
                }
                for req in media["required"].as_array().unwrap() {
                    assert!(names.contains(&req.as_str().unwrap()));
                }
            }
        }
        // The check can fail: a status without text or media matches neither schema.
        let errors = openapi_errors(&doc, schema, &json!({ "visibility": "public" }), "body");
        assert!(!errors.is_empty());
    }

    // --- X -----------------------------------------------------------------------------------

    #[test]
    fn x_plan_meets_the_openapi_contract() {
        let doc = load("x/openapi.json");
        let p = post(
            "Sale https://shop.example/bf",
            2,
            None,
            "reply_settings = \"following\"\nmade_with_ai = false",
        );
        let plan = x_plan(&p);
        // Two uploads, two alt texts, one post.
        assert_eq!(plan.len(), 5);
        let upload_schema = "/components/schemas/MediaUploadRequest";
        let upload = doc.pointer(upload_schema).unwrap();
        for spec in &plan[..2] {
            assert_eq!(spec.url, "https://api.x.com/2/media/upload");
            assert_eq!(spec.header("Authorization"), Some("Bearer ***"));
            let parts = parts(spec);
            for req in upload["required"].as_array().unwrap() {
                assert!(parts.iter().any(|p| p.name == req.as_str().unwrap()));
            }
            let category = parts.iter().find(|p| p.name == "media_category").unwrap();
            assert_eq!(category.value.as_deref(), Some("tweet_image"));
            assert!(
                upload["properties"]["media_category"]["enum"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("tweet_image"))
            );
        }
        for (i, spec) in plan[2..4].iter().enumerate() {
            assert_eq!(spec.url, "https://api.x.com/2/media/metadata");
            let body = json_body(spec);
            assert_eq!(body["id"], placeholder("media_id", i + 1));
            assert_eq!(
                body["metadata"]["alt_text"]["text"],
                format!("Photo {}", i + 1)
            );
            assert_openapi(&doc, "/components/schemas/CreateMediaMetadataRequest", body);
        }
        let tweet = &plan[4];
        assert_eq!(tweet.url, "https://api.x.com/2/tweets");
        assert_eq!(
            json_body(tweet),
            &json!({
                "text": "Sale https://shop.example/bf",
                "media": { "media_ids": ["<media_id:1>", "<media_id:2>"] },
                "reply_settings": "following",
                "made_with_ai": false,
            })
        );
        assert_openapi(
            &doc,
            "/components/schemas/CreatePostsRequest",
            json_body(tweet),
        );
        // Text only: no media object (the contract wants at least one id if it is there).
        let plain = x_plan(&post("Hello", 0, Some("https://shop.example"), ""));
        assert_eq!(plain.len(), 1);
        assert_eq!(
            json_body(&plain[0]),
            &json!({ "text": "Hello\n\nhttps://shop.example" })
        );
        assert_openapi(
            &doc,
            "/components/schemas/CreatePostsRequest",
            json_body(&plain[0]),
        );
        // The check can fail: X forbids unknown keys.
        let schema = doc
            .pointer("/components/schemas/CreatePostsRequest")
            .unwrap();
        assert!(
            !openapi_errors(&doc, schema, &json!({ "text": "a", "lang": "en" }), "b").is_empty()
        );
    }

    // --- Bluesky -----------------------------------------------------------------------------

    #[test]
    fn bluesky_plan_meets_the_lexicons() {
        let lex = Lexicons::load();
        let p = post(
            "Größe zählt: shop.com/bf und https://shop.com/größe!",
            2,
            Some("https://shop.com/card"),
            "labels = [\"nudity\"]\ntags = [\"sale\"]",
        );
        let plan = bluesky_plan("https://pds.example/", "shop.bsky.social", &p, now());
        assert_eq!(plan.len(), 4);
        let session = &plan[0];
        assert_eq!(
            session.url,
            "https://pds.example/xrpc/com.atproto.server.createSession"
        );
        assert_eq!(
            json_body(session),
            &json!({ "identifier": "shop.bsky.social", "password": "***" })
        );
        lex.assert_valid(
            "com.atproto.server.createSession",
            &["main", "input", "schema"],
            json_body(session),
        );
        for spec in &plan[1..3] {
            assert_eq!(
                spec.url,
                "https://pds.example/xrpc/com.atproto.repo.uploadBlob"
            );
            assert_eq!(spec.header("Authorization"), Some("Bearer <access_jwt>"));
            assert_eq!(spec.header("Content-Type"), Some("image/jpeg"));
            assert!(
                matches!(&spec.body, Body::Bytes { content_type, .. } if content_type == "image/jpeg")
            );
        }
        let create = json_body(&plan[3]);
        lex.assert_valid(
            "com.atproto.repo.createRecord",
            &["main", "input", "schema"],
            create,
        );
        let record = &create["record"];
        lex.assert_valid("app.bsky.feed.post", &["main"], record);
        assert_eq!(create["collection"], "app.bsky.feed.post");
        assert_eq!(create["rkey"], tid_for_key("key-123"));
        assert_eq!(record["createdAt"], NOW);
        assert_eq!(record["langs"], json!(["en"]));
        assert_eq!(record["embed"]["$type"], "app.bsky.embed.images");
        assert_eq!(
            record["embed"]["images"][1],
            json!({ "image": "<blob:2>", "alt": "Photo 2" })
        );
        assert_eq!(
            record["labels"],
            json!({ "$type": "com.atproto.label.defs#selfLabels", "values": [{ "val": "nudity" }] })
        );

        // Facets point at UTF-8 bytes: the text before the first link holds 3 two-byte letters.
        let text = record["text"].as_str().unwrap();
        let facets = record["facets"].as_array().unwrap();
        let links: Vec<(&str, &str)> = facets
            .iter()
            .map(|f| {
                let start = f["index"]["byteStart"].as_u64().unwrap() as usize;
                let end = f["index"]["byteEnd"].as_u64().unwrap() as usize;
                (&text[start..end], f["features"][0]["uri"].as_str().unwrap())
            })
            .collect();
        assert_eq!(
            links,
            [
                ("shop.com/bf", "https://shop.com/bf"),
                ("https://shop.com/größe", "https://shop.com/größe"),
                ("https://shop.com/card", "https://shop.com/card"),
            ]
        );
        assert_eq!(facets[0]["index"]["byteStart"], 16);
    }

    #[test]
    fn bluesky_link_without_images_becomes_a_card() {
        let lex = Lexicons::load();
        let p = post(
            "Our sale",
            0,
            Some("https://shop.example/bf"),
            "langs = [\"de\", \"en\"]",
        );
        let plan = bluesky_plan("https://bsky.social", "shop.bsky.social", &p, now());
        assert_eq!(plan.len(), 2, "a session and the record; no uploads");
        let record = &json_body(&plan[1])["record"];
        lex.assert_valid("app.bsky.feed.post", &["main"], record);
        assert_eq!(record["text"], "Our sale");
        assert!(record.get("facets").is_none());
        assert_eq!(record["langs"], json!(["de", "en"]));
        assert_eq!(
            record["embed"],
            json!({
                "$type": "app.bsky.embed.external",
                "external": { "uri": "https://shop.example/bf", "title": "https://shop.example/bf", "description": "" },
            })
        );
        // The check can fail: a record without createdAt, an image without alt.
        let mut broken = record.clone();
        broken.as_object_mut().unwrap().remove("createdAt");
        let def = &lex.0["app.bsky.feed.post"]["defs"]["main"];
        assert!(
            !lex.errors("app.bsky.feed.post", def, &broken, "r")
                .is_empty()
        );
        let no_alt =
            json!({ "$type": "app.bsky.embed.images", "images": [{ "image": "<blob:1>" }] });
        let def = &lex.0["app.bsky.embed.images"]["defs"]["main"];
        assert!(
            !lex.errors("app.bsky.embed.images", def, &no_alt, "e")
                .is_empty()
        );
    }

    #[test]
    fn record_keys_are_tids_fixed_by_the_key() {
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
        let a = tid_for_key("key-123");
        assert!(is_tid(&a), "{a}");
        assert_eq!(a, tid_for_key("key-123"));
        assert_ne!(a, tid_for_key("key-124"));
    }

    // --- webhook, exec, redaction ------------------------------------------------------------

    #[test]
    fn the_generic_document_carries_everything_a_receiver_needs() {
        let mut p = post(
            "Hi",
            1,
            Some("https://s.example"),
            "board = \"x\"\nwhen = 2026-11-27",
        );
        p.platform = Platform::Webhook;
        let spec = webhook_request("https://user:pw@hooks.example/in?x=1", &p);
        assert_eq!(spec.url, "https://user:***@hooks.example/in?x=1");
        assert_eq!(spec.header("Idempotency-Key"), Some("key-123"));
        assert_eq!(
            json_body(&spec),
            &json!({
                "channel": "shop",
                "platform": "webhook",
                "file": "shop/black-friday.md",
                "text": "Hi",
                "link": "https://s.example",
                "lang": "en",
                "media": [{ "path": "img/p1.jpg", "alt": "Photo 1", "bytes": 1000, "local_path": "/q/img/p1.jpg" }],
                "fields": { "board": "x", "when": "2026-11-27" },
                "idempotency_key": "key-123",
            })
        );
        let exec = exec_request(&["/bin/post".into(), "--to".into(), "shop".into()], &p);
        assert_eq!(
            (exec.method.as_str(), exec.url.as_str()),
            ("EXEC", "/bin/post")
        );
        assert_eq!(exec.header("Arg-2"), Some("shop"));
        assert_eq!(json_body(&exec), json_body(&spec));
    }

    #[test]
    fn url_passwords_are_redacted() {
        assert_eq!(
            redact_url_password("https://h.example/p"),
            "https://h.example/p"
        );
        assert_eq!(
            redact_url_password("https://tok@h.example/p@x"),
            "https://***@h.example/p@x"
        );
        assert_eq!(
            redact_url_password("http://u:p@127.0.0.1:8/"),
            "http://u:***@127.0.0.1:8/"
        );
    }

    #[test]
    fn outbox_json_shapes() {
        let spec = RequestSpec::new(
            "POST",
            "https://h/x".into(),
            &[("A", "b")],
            Body::Form(vec![("k".into(), "v".into())]),
        );
        assert_eq!(
            spec.to_json(),
            json!({ "method": "POST", "url": "https://h/x", "headers": { "A": "b" }, "body": { "k": "v" } })
        );
        let media = MediaInfo {
            path: "a/b.png".into(),
            alt: None,
            bytes: 7,
        };
        let spec = RequestSpec::new(
            "POST",
            "u".into(),
            &[],
            Body::Multipart(vec![PartSpec::file("file", &media)]),
        );
        assert_eq!(
            spec.to_json()["body"],
            json!([{ "name": "file", "file_name": "b.png", "content_type": "image/png", "bytes": 7 }])
        );
        let spec = RequestSpec::new("GET", "u".into(), &[], Body::None);
        assert_eq!(spec.to_json()["body"], Value::Null);
    }
}
