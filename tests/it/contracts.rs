//! Every platform's requests against the platform's own contract in `tests/data/contracts/`,
//! checked with a JSON-schema validator (the `jsonschema` crate): the OpenAPI schemas of X
//! and Mastodon by `$ref` into the documents, the atproto lexicons of Bluesky translated into
//! JSON Schema by `lexicon_schema` below (lexicons are not JSON Schema; the translation
//! covers the parts of the lexicon language these files use).
//!
//! The requests are the dry run's (`run::dry_run`), the very ones the network executor sends
//! (`plans.rs` shows that); placeholders for values only a server gives are filled with
//! plausible values first.

use std::path::{Path, PathBuf};

use cadenced::platforms::adapter::{Outgoing, OutgoingMedia};
use cadenced::platforms::keys::{Settings, Value as KeyValue};
use cadenced::platforms::plan::Rendered;
use cadenced::platforms::{ChannelCtx, Platform, run};
use cadenced::secret::SecretRef;
use jiff::Timestamp;
use serde_json::{Map, Value, json};

fn contracts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/contracts")
}

fn load(rel: &str) -> Value {
    let path = contracts().join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn now() -> Timestamp {
    "2026-11-27T09:00:00.250Z".parse().unwrap()
}

fn post(platform: &str, text: &str, media: usize, link: Option<&str>, fields: &str) -> Outgoing {
    Outgoing {
        channel: "shop".into(),
        platform: Platform::named(platform).unwrap(),
        file: "shop/black-friday.md".into(),
        text: text.into(),
        media: (1..=media)
            .map(|i| OutgoingMedia {
                path: PathBuf::from(format!("/q/img/p{i}.jpg")),
                rel: PathBuf::from(format!("img/p{i}.jpg")),
                alt: Some(format!("Photo {i}")),
                bytes: 1000 * i as u64,
                dimensions: Some((1200, 800)),
            })
            .collect(),
        link: link.map(str::to_string),
        lang: Some("en".into()),
        fields: fields.parse().unwrap(),
        idempotency_key: "key-123".into(),
        started: now(),
    }
}

fn requests(platform: &str, settings: &Settings, post: &Outgoing) -> Vec<Rendered> {
    let ctx = ChannelCtx {
        name: "shop",
        settings,
        now: now(),
    };
    run::dry_run(Platform::named(platform).unwrap(), &ctx, post)
}

fn json_body(r: &Rendered) -> Value {
    match &r.body {
        cadenced::platforms::plan::RenderedBody::Json(v) => v.clone(),
        other => panic!("not a JSON body: {other:?}"),
    }
}

fn part_names(r: &Rendered) -> Vec<String> {
    match &r.body {
        cadenced::platforms::plan::RenderedBody::Multipart(parts) => parts
            .iter()
            .map(|p| match p {
                cadenced::platforms::plan::RenderedPart::Text { name, .. }
                | cadenced::platforms::plan::RenderedPart::File { name, .. } => name.clone(),
            })
            .collect(),
        other => panic!("not multipart: {other:?}"),
    }
}

/// Replaces the dry run's placeholders with values of the shape a server gives.
fn fill(value: &Value) -> Value {
    match value {
        Value::String(s) if s.starts_with("<media_id:") => json!("1146654567674912769"),
        Value::String(s) if s.starts_with("<blob:") => json!({
            "$type": "blob",
            "ref": { "$link": "bafkreibme22gw2h7y2h7tg2fhqotaqjucnbc24deqo72b6mkl2egezxhvy" },
            "mimeType": "image/jpeg",
            "size": 1000,
        }),
        Value::String(s) if s.starts_with("<did:") => json!("did:plc:ewvi7nxzyoun6zhxrhs64oiz"),
        Value::String(s) if s.starts_with('<') && s.ends_with('>') => json!("A value"),
        Value::Array(items) => Value::Array(items.iter().map(fill).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), fill(v))).collect())
        }
        other => other.clone(),
    }
}

/// The validation errors of `instance` against `schema`, as text.
fn errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// A schema that is an OpenAPI document with `$ref` to one of its schemas: references
/// inside resolve against the document.
fn openapi_schema(doc: &Value, pointer: &str) -> Value {
    let mut root = doc.clone();
    let map = root.as_object_mut().unwrap();
    map.insert("$ref".into(), json!(format!("#{pointer}")));
    root
}

fn assert_valid(schema: &Value, instance: &Value, what: &str) {
    let errs = errors(schema, instance);
    assert!(errs.is_empty(), "{what}: {instance:#}\n{}", errs.join("\n"));
}

// --- Mastodon --------------------------------------------------------------------------------

#[test]
fn mastodon_requests_meet_its_openapi_contract() {
    let doc = load("mastodon/openapi.json");
    let settings = Settings::new()
        .with("instance", KeyValue::Url("https://m.example".into()))
        .with("token", KeyValue::Secret(SecretRef::Env("T".into())));
    // The contract lists a text status, a media status and a poll as `oneOf`, but a status
    // with text and media is both (and Mastodon takes it): at least one must match.
    let variants = doc
        .pointer(
            "/paths/~1api~1v1~1statuses/post/requestBody/content/application~1json/schema/oneOf",
        )
        .unwrap()
        .clone();
    let mut create = doc.clone();
    create
        .as_object_mut()
        .unwrap()
        .insert("anyOf".into(), variants);
    for p in [
        post("mastodon", "Hello", 0, None, ""),
        post("mastodon", "", 1, None, "language = \"de\""),
        post(
            "mastodon",
            "Both",
            4,
            Some("https://shop.example/bf"),
            "visibility = \"private\"\nsensitive = true",
        ),
    ] {
        let plan = requests("mastodon", &settings, &p);
        let last = plan.last().unwrap();
        assert_eq!(last.url, "https://m.example/api/v1/statuses");
        assert_valid(&create, &fill(&json_body(last)), "status");
        // The header the contract names for idempotency is the one sent.
        let params = doc
            .pointer("/paths/~1api~1v1~1statuses/post/parameters")
            .and_then(Value::as_array)
            .unwrap();
        assert!(params.iter().any(|h| h["name"] == "Idempotency-Key"));
        assert!(
            last.headers
                .iter()
                .any(|(k, v)| k == "Idempotency-Key" && v == "key-123")
        );
        let media = doc
            .pointer("/paths/~1api~1v2~1media/post/requestBody/content/multipart~1form-data/schema")
            .unwrap();
        for upload in plan.iter().filter(|r| r.url.ends_with("/api/v2/media")) {
            let names = part_names(upload);
            for name in &names {
                assert!(
                    media["properties"].get(name).is_some(),
                    "unknown part {name}"
                );
            }
            for required in media["required"].as_array().unwrap() {
                assert!(names.iter().any(|n| n == required.as_str().unwrap()));
            }
        }
    }
    // The check can fail: a status without text or media matches neither schema.
    assert!(!errors(&create, &json!({ "visibility": "public" })).is_empty());
}

// --- X ---------------------------------------------------------------------------------------

#[test]
fn x_requests_meet_its_openapi_contract() {
    let doc = load("x/openapi.json");
    let settings = Settings::new()
        .with("client_id", KeyValue::Text("abc".into()))
        .with("api", KeyValue::Url("https://api.x.com".into()));
    let p = post(
        "x",
        "Sale https://shop.example/bf",
        2,
        None,
        "reply_settings = \"following\"\nmade_with_ai = false",
    );
    let plan = requests("x", &settings, &p);
    let urls: Vec<&str> = plan.iter().map(|r| r.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            "https://api.x.com/2/oauth2/token",
            "https://api.x.com/2/media/upload",
            "https://api.x.com/2/media/metadata",
            "https://api.x.com/2/media/upload",
            "https://api.x.com/2/media/metadata",
            "https://api.x.com/2/tweets",
        ]
    );
    let upload = doc
        .pointer("/components/schemas/MediaUploadRequest")
        .unwrap();
    for r in plan.iter().filter(|r| r.url.ends_with("/media/upload")) {
        let names = part_names(r);
        for required in upload["required"].as_array().unwrap() {
            assert!(
                names.iter().any(|n| n == required.as_str().unwrap()),
                "{names:?}"
            );
        }
        for name in &names {
            assert!(
                upload["properties"].get(name).is_some(),
                "unknown part {name}"
            );
        }
    }
    let metadata = openapi_schema(&doc, "/components/schemas/CreateMediaMetadataRequest");
    for r in plan.iter().filter(|r| r.url.ends_with("/media/metadata")) {
        assert_valid(&metadata, &fill(&json_body(r)), "metadata");
    }
    let create = openapi_schema(&doc, "/components/schemas/CreatePostsRequest");
    let tweet = fill(&json_body(plan.last().unwrap()));
    assert_valid(&create, &tweet, "tweet");
    assert_eq!(tweet["reply_settings"], "following");
    // Text only, with a link: no media object (the contract wants at least one id if so).
    let plain = requests(
        "x",
        &settings,
        &post("x", "Hello", 0, Some("https://shop.example"), ""),
    );
    let body = json_body(plain.last().unwrap());
    assert_eq!(body, json!({ "text": "Hello\n\nhttps://shop.example" }));
    assert_valid(&create, &body, "plain tweet");
    // The check can fail: X forbids unknown keys.
    assert!(!errors(&create, &json!({ "text": "a", "lang": "en" })).is_empty());
}

// --- Bluesky ---------------------------------------------------------------------------------

/// The Bluesky lexicons in `tests/data/contracts/bluesky`, by id.
fn lexicons() -> Map<String, Value> {
    let mut out = Map::new();
    for entry in std::fs::read_dir(contracts().join("bluesky")).unwrap() {
        let path = entry.unwrap().path();
        let doc = load(&format!(
            "bluesky/{}",
            path.file_name().unwrap().to_string_lossy()
        ));
        out.insert(doc["id"].as_str().unwrap().to_string(), doc);
    }
    out
}

/// `$defs` key of a lexicon definition.
fn def_key(id: &str, def: &str) -> String {
    format!("{}__{def}", id.replace('.', "_"))
}

/// The lexicon type `def` (of lexicon `id`) as JSON Schema; references go to `$defs`.
fn lexicon_type(id: &str, def: &Value, lex: &Map<String, Value>) -> Value {
    let reference = |r: &str| -> Value {
        let (rid, rdef) = match r.split_once('#') {
            Some(("", d)) => (id.to_string(), d.to_string()),
            Some((i, d)) => (i.to_string(), d.to_string()),
            None => (r.to_string(), "main".to_string()),
        };
        if lex.get(&rid).and_then(|l| l["defs"].get(&rdef)).is_some() {
            json!({ "$ref": format!("#/$defs/{}", def_key(&rid, &rdef)) })
        } else {
            // A lexicon not copied into the repository: anything goes.
            json!({})
        }
    };
    match def["type"].as_str().unwrap_or("unknown") {
        "object" | "params" => {
            let mut props = Map::new();
            props.insert("$type".into(), json!({ "type": "string" }));
            if let Some(p) = def["properties"].as_object() {
                for (k, v) in p {
                    props.insert(k.clone(), lexicon_type(id, v, lex));
                }
            }
            json!({
                "type": "object",
                "properties": props,
                "required": def.get("required").cloned().unwrap_or(json!([])),
                "additionalProperties": false,
            })
        }
        "record" => lexicon_type(id, &def["record"], lex),
        "string" => {
            let mut s = json!({ "type": "string" });
            if let Some(n) = def.get("maxLength") {
                s["maxLength"] = n.clone();
            }
            if let Some(e) = def.get("enum") {
                s["enum"] = e.clone();
            }
            if let Some(c) = def.get("const") {
                s["const"] = c.clone();
            }
            if def["format"] == "datetime" {
                s["pattern"] = json!("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}");
            }
            s
        }
        "integer" => {
            let mut s = json!({ "type": "integer" });
            for (from, to) in [("minimum", "minimum"), ("maximum", "maximum")] {
                if let Some(n) = def.get(from) {
                    s[to] = n.clone();
                }
            }
            s
        }
        "boolean" => json!({ "type": "boolean" }),
        "array" => {
            let mut s = json!({ "type": "array", "items": lexicon_type(id, &def["items"], lex) });
            if let Some(n) = def.get("maxLength") {
                s["maxItems"] = n.clone();
            }
            if let Some(n) = def.get("minLength") {
                s["minItems"] = n.clone();
            }
            s
        }
        "ref" => reference(def["ref"].as_str().unwrap()),
        "union" => {
            // One of the known variants, told apart by `$type` (variants not copied into
            // the repository are left out: the union is checked as closed).
            let variants: Vec<Value> = def["refs"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| {
                    let r = r.as_str().unwrap();
                    let full = if r.starts_with('#') {
                        format!("{id}{r}")
                    } else {
                        r.to_string()
                    };
                    let type_name = full.strip_suffix("#main").unwrap_or(&full).to_string();
                    let schema = reference(r);
                    (schema != json!({})).then(|| {
                        json!({ "allOf": [schema, {
                            "required": ["$type"],
                            "properties": { "$type": { "const": type_name } },
                        }] })
                    })
                })
                .collect();
            if variants.is_empty() {
                json!({})
            } else {
                json!({ "anyOf": variants })
            }
        }
        "blob" => json!({
            "type": "object",
            "required": ["$type", "ref", "mimeType", "size"],
            "properties": { "$type": { "const": "blob" } },
        }),
        _ => json!({}),
    }
}

/// A schema for lexicon `id`'s definition at `path` (e.g. `["main", "input", "schema"]`).
fn lexicon_schema(lex: &Map<String, Value>, id: &str, path: &[&str]) -> Value {
    let mut defs = Map::new();
    for (lid, doc) in lex {
        for (name, def) in doc["defs"].as_object().unwrap() {
            defs.insert(def_key(lid, name), lexicon_type(lid, def, lex));
        }
    }
    let mut target = &lex[id]["defs"];
    for p in path {
        target = &target[*p];
    }
    let mut schema = lexicon_type(id, target, lex);
    schema["$defs"] = Value::Object(defs);
    schema
}

#[test]
fn bluesky_requests_meet_its_lexicons() {
    let lex = lexicons();
    let settings = Settings::new()
        .with("service", KeyValue::Url("https://pds.example".into()))
        .with("handle", KeyValue::Text("shop.bsky.social".into()))
        .with("app_password", KeyValue::Secret(SecretRef::Env("P".into())));
    let with_images = post(
        "bluesky",
        "Größe zählt: @anna.bsky.social shop.com/bf #Sale 冬季促销 #冬季促销 👩‍👩‍👧",
        2,
        Some("https://shop.com/card"),
        "labels = [\"nudity\"]\ntags = [\"sale\"]",
    );
    let with_card = post(
        "bluesky",
        "Our sale",
        0,
        Some("https://shop.example/bf"),
        "langs = [\"de\", \"en\"]",
    );
    let session = lexicon_schema(
        &lex,
        "com.atproto.server.createSession",
        &["main", "input", "schema"],
    );
    let create = lexicon_schema(
        &lex,
        "com.atproto.repo.createRecord",
        &["main", "input", "schema"],
    );
    let record = lexicon_schema(&lex, "app.bsky.feed.post", &["main"]);
    let resolve = lexicon_schema(
        &lex,
        "com.atproto.identity.resolveHandle",
        &["main", "parameters"],
    );
    for p in [with_images, with_card] {
        let plan = requests("bluesky", &settings, &p);
        for r in &plan {
            let method = r.url.rsplit('/').next().unwrap();
            match method {
                "com.atproto.server.createSession" => {
                    assert_valid(&session, &json_body(r), "createSession")
                }
                "com.atproto.repo.createRecord" => {
                    let body = fill(&json_body(r));
                    assert_valid(&create, &body, "createRecord");
                    assert_valid(&record, &body["record"], "app.bsky.feed.post");
                }
                "com.atproto.identity.resolveHandle" => {
                    let params: Map<String, Value> =
                        r.query.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                    assert_valid(&resolve, &Value::Object(params), "resolveHandle");
                }
                "com.atproto.repo.uploadBlob" => {
                    assert!(matches!(
                        r.body,
                        cadenced::platforms::plan::RenderedBody::File(_)
                    ));
                }
                // The card's page.
                _ => assert_eq!(r.method, "GET", "{r:?}"),
            }
        }
    }
    // The checks can fail: a record without createdAt; an image without alt; an unknown key.
    let broken = json!({ "$type": "app.bsky.feed.post", "text": "x" });
    assert!(!errors(&record, &broken).is_empty());
    let no_alt = json!({ "$type": "app.bsky.feed.post", "text": "x", "createdAt": "2026-11-27T09:00:00.000Z",
        "embed": { "$type": "app.bsky.embed.images", "images": [{ "image": fill(&json!("<blob:1>")) }] } });
    assert!(!errors(&record, &no_alt).is_empty());
    let unknown = json!({ "$type": "app.bsky.feed.post", "text": "x", "createdAt": "2026-11-27T09:00:00.000Z", "mood": 1 });
    assert!(!errors(&record, &unknown).is_empty());
}

#[test]
fn the_contract_files_are_in_the_repository() {
    // Nothing a test reads may come from outside the repository.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(contracts().starts_with(root));
    assert!(contracts().join("README.md").is_file());
}
