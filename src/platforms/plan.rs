//! What a send is, as data: a platform turns a post into a [`Plan`], a list of HTTP
//! [`Step`]s (method, URL, headers, body, auth), where later steps use values that earlier
//! answers give (a media id, a session token, a blob reference) through named holes, and a
//! step can be skipped when a value is already known (an upload done by an earlier try).
//!
//! One plan, two executors (`run`): the network executor fills the holes from real answers
//! and sends; the dry run fills them with placeholders (`"<media_id:1>"`) and writes the
//! requests to the outbox. Both render a step with [`render`], so what a dry run shows is
//! what the network gets, by construction.
//!
//! What this module must not do: IO, read the clock, or hold a secret. Credentials appear as
//! [`Piece::Secret`] (the config key that names them) and are filled in only when a request
//! is sent; everything rendered for people shows `***` in their place.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

/// What a secret is replaced with, everywhere people can see it.
pub const REDACTED: &str = "***";

/// A platform's plan for one post.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Session values that `cadenced auth` stores once (X's refresh token): a dry run
    /// assumes they are there, as the daemon will find them.
    pub assumed: Vec<String>,
}

/// One HTTP request of a plan and what to keep from its answer.
#[derive(Debug, Clone)]
pub struct Step {
    /// A short name the platform's answer reader knows the step by: `upload`, `create`.
    pub name: &'static str,
    /// What the step does, for messages: "the upload of img/sale.png".
    pub label: String,
    pub role: Role,
    /// Every condition must hold for the step to run.
    pub when: Vec<Cond>,
    pub method: &'static str,
    pub url: Text,
    pub query: Vec<(String, Text)>,
    pub headers: Vec<(String, Text)>,
    pub body: Body,
    pub auth: Auth,
    /// Values read from a successful answer.
    pub binds: Vec<Bind>,
    /// How long the whole request may take, answer included.
    pub timeout: Duration,
    /// The most of an answer's body that is read.
    pub max_answer: usize,
}

/// What a step means for the post, which decides how a failure is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Gets or refreshes a session. A refusal means the channel's credentials need the
    /// user's attention, not the post.
    Session,
    /// Prepares the post (uploads); nothing anyone can see exists yet, so repeating it is
    /// harmless and no failure here can leave a post half-published.
    Prepare,
    /// Reads something that improves the post (a link card's title, a mention's account).
    /// A failure is no failure: its values stay unbound and the post goes without them.
    Lookup,
    /// Creates the post. Once it is sent, only an answer says whether the post exists.
    Create,
}

/// A condition on the values known so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    Has(String),
    Missing(String),
}

/// A value to keep from an answer.
#[derive(Debug, Clone)]
pub struct Bind {
    pub name: String,
    pub from: From,
    pub keep: Keep,
    /// A missing required value makes the answer unreadable; a missing optional one stays
    /// unbound (a Mastodon attachment's `url` while it is still processing).
    pub required: bool,
}

/// Where in an answer a value is.
#[derive(Debug, Clone)]
pub enum From {
    /// A JSON pointer into the answer's body (`/data/id`); the value may be any JSON.
    Json(String),
    /// A response header, as a string.
    Header(&'static str),
    /// An HTML page's metadata: the first of these `<meta>` properties or names that is
    /// present (`og:title`, `twitter:title`), or `title` for the `<title>` element.
    Html(&'static [&'static str]),
}

/// How long a value is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keep {
    /// For the rest of this plan only.
    Plan,
    /// With the attempt, in the database, so a resend does not repeat the step (media ids,
    /// a container id). Never a secret.
    Attempt,
    /// In the owner-only token store, for every later attempt of the channel (session and
    /// OAuth tokens). Always treated as a secret.
    Session(Expiry),
}

/// When a session value stops being usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expiry {
    Never,
    /// The value is a JWT; its `exp` claim says.
    JwtExp,
    /// The answer gives the lifetime in seconds at this JSON pointer (`/expires_in`).
    Seconds(String),
}

/// A string made of literal text, holes for known values, and secrets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Text(pub Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    /// A value an earlier answer (or the token store, or the attempt's memory) gave.
    Hole(String),
    /// The credential of the channel's config key of this name.
    Secret(&'static str),
}

impl Text {
    pub fn lit(s: impl Into<String>) -> Text {
        Text(vec![Piece::Lit(s.into())])
    }

    pub fn hole(name: impl Into<String>) -> Text {
        Text(vec![Piece::Hole(name.into())])
    }

    pub fn secret(key: &'static str) -> Text {
        Text(vec![Piece::Secret(key)])
    }

    pub fn and_lit(mut self, s: impl Into<String>) -> Text {
        self.0.push(Piece::Lit(s.into()));
        self
    }

    pub fn and_hole(mut self, name: impl Into<String>) -> Text {
        self.0.push(Piece::Hole(name.into()));
        self
    }

    pub fn and_secret(mut self, key: &'static str) -> Text {
        self.0.push(Piece::Secret(key));
        self
    }
}

impl<S: Into<String>> std::convert::From<S> for Text {
    fn from(s: S) -> Text {
        Text::lit(s)
    }
}

/// A JSON value with holes.
#[derive(Debug, Clone, PartialEq)]
pub enum Tpl {
    Value(Value),
    /// A string built from pieces.
    Text(Text),
    /// The whole JSON value a hole holds (a blob reference object, say).
    Hole(String),
    Array(Vec<Tpl>),
    Object(Vec<(String, Tpl)>),
    /// Present only when `name` is known: an array element or an object entry that is
    /// dropped otherwise (a mention facet whose account could not be looked up).
    IfBound(String, Box<Tpl>),
    /// The value of a hole, or this value when the hole is unknown (a link card's title
    /// when the page could not be read).
    HoleOr(String, Value),
}

impl Tpl {
    pub fn obj<K: Into<String>>(entries: impl IntoIterator<Item = (K, Tpl)>) -> Tpl {
        Tpl::Object(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn str(s: impl Into<String>) -> Tpl {
        Tpl::Value(Value::String(s.into()))
    }

    pub fn hole(name: impl Into<String>) -> Tpl {
        Tpl::Hole(name.into())
    }

    /// Adds an entry to an object template (no-op on other shapes).
    pub fn push(&mut self, key: impl Into<String>, value: Tpl) {
        if let Tpl::Object(entries) = self {
            entries.push((key.into(), value));
        }
    }
}

impl std::convert::From<Value> for Tpl {
    fn from(v: Value) -> Tpl {
        Tpl::Value(v)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    None,
    Json(Tpl),
    /// `application/x-www-form-urlencoded` fields, in order.
    Form(Vec<(String, Text)>),
    /// `multipart/form-data` parts, in order.
    Multipart(Vec<Part>),
    /// One of the post's media files as the whole body (Bluesky's `uploadBlob`).
    File(MediaRef),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub name: String,
    pub value: PartValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PartValue {
    Text(Text),
    File(MediaRef),
}

impl Part {
    pub fn text(name: &str, value: impl Into<Text>) -> Part {
        Part {
            name: name.into(),
            value: PartValue::Text(value.into()),
        }
    }

    pub fn file(name: &str, media: MediaRef) -> Part {
        Part {
            name: name.into(),
            value: PartValue::File(media),
        }
    }
}

/// One of the post's media files, described: its bytes are read only when it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// Index into the post's media.
    pub index: usize,
    pub file_name: String,
    pub content_type: String,
    pub bytes: u64,
}

/// How a step proves who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Bearer …`.
    Bearer(Text),
    /// `Authorization: Basic …` (an OAuth client's id and secret).
    Basic {
        user: Text,
        password: Text,
    },
    /// OAuth 1.0a user context, HMAC-SHA1: the four credentials by their config keys.
    OAuth1 {
        consumer_key: &'static str,
        consumer_secret: &'static str,
        token: &'static str,
        token_secret: &'static str,
    },
}

/// A value known while a plan runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub value: Value,
    /// Shown as `***` wherever people see requests (session tokens).
    pub secret: bool,
}

/// The values known so far, by hole name.
pub type Bindings = BTreeMap<String, Bound>;

/// Where secrets come from when a request is rendered.
pub trait Secrets {
    /// The credential of config key `key`, if the channel has it.
    fn get(&self, key: &str) -> Option<&str>;
}

/// Rendering for people (outbox, messages) or for the network.
#[derive(Clone, Copy)]
pub enum Mode<'a> {
    /// Secrets and secret values as `***`.
    Show,
    /// Everything exposed, to be sent.
    Send(&'a dyn Secrets),
}

/// A step's request with every hole filled.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub method: &'static str,
    /// Without the query.
    pub url: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: RenderedBody,
    pub auth: RenderedAuth,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RenderedBody {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
    Multipart(Vec<RenderedPart>),
    File(MediaRef),
}

#[derive(Debug, Clone, PartialEq)]
pub enum RenderedPart {
    Text { name: String, value: String },
    File { name: String, media: MediaRef },
}

#[derive(Debug, Clone, PartialEq)]
pub enum RenderedAuth {
    None,
    /// The whole header value (`Bearer …`, `Basic …`).
    Header(String),
    /// Computed when sent (it signs the final request); holds the four values in `Send`
    /// mode and `***` in `Show` mode.
    OAuth1 {
        consumer_key: String,
        consumer_secret: String,
        token: String,
        token_secret: String,
    },
}

/// A hole with no value, where one was required.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not known")]
pub struct Unbound(pub String);

/// The placeholder a dry run shows for a value only a server gives: `<media_id:1>`.
pub fn placeholder(name: &str) -> String {
    format!("<{name}>")
}

/// Whether every condition of `step` holds.
pub fn applies(step: &Step, known: &Bindings) -> bool {
    step.when.iter().all(|c| match c {
        Cond::Has(name) => known.contains_key(name),
        Cond::Missing(name) => !known.contains_key(name),
    })
}

/// Fills a step's holes and secrets. The one rendering both executors use.
pub fn render(step: &Step, known: &Bindings, mode: Mode<'_>) -> Result<Rendered, Unbound> {
    let text = |t: &Text| render_text(t, known, mode);
    let url = text(&step.url)?;
    let query = step
        .query
        .iter()
        .map(|(k, v)| Ok((k.clone(), text(v)?)))
        .collect::<Result<Vec<_>, Unbound>>()?;
    let headers = step
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), text(v)?)))
        .collect::<Result<Vec<_>, Unbound>>()?;
    let body = match &step.body {
        Body::None => RenderedBody::None,
        Body::Json(t) => RenderedBody::Json(render_tpl(t, known, mode)?.unwrap_or(Value::Null)),
        Body::Form(fields) => RenderedBody::Form(
            fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), text(v)?)))
                .collect::<Result<_, Unbound>>()?,
        ),
        Body::Multipart(parts) => RenderedBody::Multipart(
            parts
                .iter()
                .map(|p| {
                    Ok(match &p.value {
                        PartValue::Text(t) => RenderedPart::Text {
                            name: p.name.clone(),
                            value: text(t)?,
                        },
                        PartValue::File(m) => RenderedPart::File {
                            name: p.name.clone(),
                            media: m.clone(),
                        },
                    })
                })
                .collect::<Result<_, Unbound>>()?,
        ),
        Body::File(m) => RenderedBody::File(m.clone()),
    };
    let auth = match &step.auth {
        Auth::None => RenderedAuth::None,
        Auth::Bearer(t) => RenderedAuth::Header(format!("Bearer {}", text(t)?)),
        Auth::Basic { user, password } => {
            let (user, password) = (text(user)?, text(password)?);
            RenderedAuth::Header(match mode {
                Mode::Show => format!("Basic {REDACTED}"),
                Mode::Send(_) => {
                    use base64::Engine as _;
                    let pair = format!("{user}:{password}");
                    format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD.encode(pair)
                    )
                }
            })
        }
        Auth::OAuth1 {
            consumer_key,
            consumer_secret,
            token,
            token_secret,
        } => {
            let secret = |k: &'static str| text(&Text::secret(k));
            RenderedAuth::OAuth1 {
                consumer_key: secret(consumer_key)?,
                consumer_secret: secret(consumer_secret)?,
                token: secret(token)?,
                token_secret: secret(token_secret)?,
            }
        }
    };
    Ok(Rendered {
        method: step.method,
        url,
        query,
        headers,
        body,
        auth,
    })
}

fn render_text(t: &Text, known: &Bindings, mode: Mode<'_>) -> Result<String, Unbound> {
    let mut out = String::new();
    for piece in &t.0 {
        match piece {
            Piece::Lit(s) => out.push_str(s),
            Piece::Hole(name) => {
                let bound = known.get(name).ok_or_else(|| Unbound(name.clone()))?;
                if bound.secret && matches!(mode, Mode::Show) {
                    out.push_str(REDACTED);
                } else {
                    match &bound.value {
                        Value::String(s) => out.push_str(s),
                        other => out.push_str(&other.to_string()),
                    }
                }
            }
            Piece::Secret(key) => match mode {
                Mode::Show => out.push_str(REDACTED),
                Mode::Send(secrets) => {
                    out.push_str(secrets.get(key).ok_or_else(|| Unbound((*key).into()))?)
                }
            },
        }
    }
    Ok(out)
}

/// `Ok(None)` for an `IfBound` whose value is unknown (the caller drops it).
fn render_tpl(t: &Tpl, known: &Bindings, mode: Mode<'_>) -> Result<Option<Value>, Unbound> {
    Ok(Some(match t {
        Tpl::Value(v) => v.clone(),
        Tpl::Text(text) => Value::String(render_text(text, known, mode)?),
        Tpl::Hole(name) => {
            let bound = known.get(name).ok_or_else(|| Unbound(name.clone()))?;
            if bound.secret && matches!(mode, Mode::Show) {
                Value::String(REDACTED.into())
            } else {
                bound.value.clone()
            }
        }
        Tpl::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if let Some(v) = render_tpl(item, known, mode)? {
                    out.push(v);
                }
            }
            Value::Array(out)
        }
        Tpl::Object(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                if let Some(v) = render_tpl(v, known, mode)? {
                    out.insert(k.clone(), v);
                }
            }
            Value::Object(out)
        }
        Tpl::IfBound(name, inner) => {
            if !known.contains_key(name) {
                return Ok(None);
            }
            return render_tpl(inner, known, mode);
        }
        Tpl::HoleOr(name, default) => match known.get(name) {
            Some(_) => return render_tpl(&Tpl::Hole(name.clone()), known, mode),
            None => default.clone(),
        },
    }))
}

impl Rendered {
    /// The URL with its query, percent-encoded.
    pub fn full_url(&self) -> String {
        if self.query.is_empty() {
            return self.url.clone();
        }
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.query.iter())
            .finish();
        format!("{}?{query}", self.url)
    }

    /// The request as the outbox writes it: `{ "method", "url", "headers", "body" }`, headers
    /// as an object (`Authorization` included), the body as the JSON value, an object of
    /// form fields, a list of parts, or for a raw upload an object describing the file.
    /// Call on a rendering made in [`Mode::Show`].
    pub fn to_json(&self) -> Value {
        let mut headers = Map::new();
        match &self.auth {
            RenderedAuth::None => {}
            RenderedAuth::Header(h) => {
                headers.insert("Authorization".into(), json!(h));
            }
            RenderedAuth::OAuth1 { .. } => {
                headers.insert(
                    "Authorization".into(),
                    json!(format!("OAuth oauth_consumer_key=\"{REDACTED}\", oauth_token=\"{REDACTED}\", oauth_signature_method=\"HMAC-SHA1\", oauth_signature=\"{REDACTED}\"")),
                );
            }
        }
        for (k, v) in &self.headers {
            headers.insert(k.clone(), json!(v));
        }
        let content_type = match &self.body {
            RenderedBody::Json(_) => Some("application/json".to_string()),
            RenderedBody::Form(_) => Some("application/x-www-form-urlencoded".to_string()),
            RenderedBody::Multipart(_) => Some("multipart/form-data".to_string()),
            RenderedBody::File(m) => Some(m.content_type.clone()),
            RenderedBody::None => None,
        };
        if let Some(ct) = content_type
            && !headers
                .keys()
                .any(|k| k.eq_ignore_ascii_case("content-type"))
        {
            headers.insert("Content-Type".into(), json!(ct));
        }
        let body = match &self.body {
            RenderedBody::None => Value::Null,
            RenderedBody::Json(v) => v.clone(),
            RenderedBody::Form(fields) => {
                Value::Object(fields.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
            }
            RenderedBody::Multipart(parts) => Value::Array(
                parts
                    .iter()
                    .map(|p| match p {
                        RenderedPart::Text { name, value } => json!({
                            "name": name,
                            "content_type": "text/plain; charset=utf-8",
                            "bytes": value.len(),
                            "value": value,
                        }),
                        RenderedPart::File { name, media } => json!({
                            "name": name,
                            "file_name": media.file_name,
                            "content_type": media.content_type,
                            "bytes": media.bytes,
                        }),
                    })
                    .collect(),
            ),
            RenderedBody::File(m) => {
                json!({ "file_name": m.file_name, "content_type": m.content_type, "bytes": m.bytes })
            }
        };
        json!({ "method": self.method, "url": self.full_url(), "headers": headers, "body": body })
    }
}

/// Builds steps with the defaults most steps share.
impl Step {
    pub fn new(
        name: &'static str,
        role: Role,
        method: &'static str,
        url: impl Into<Text>,
        label: impl Into<String>,
    ) -> Step {
        Step {
            name,
            label: label.into(),
            role,
            when: Vec::new(),
            method,
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::None,
            auth: Auth::None,
            binds: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_answer: DEFAULT_MAX_ANSWER,
        }
    }

    pub fn when(mut self, cond: Cond) -> Step {
        self.when.push(cond);
        self
    }

    pub fn query(mut self, key: &str, value: impl Into<Text>) -> Step {
        self.query.push((key.into(), value.into()));
        self
    }

    pub fn header(mut self, key: &str, value: impl Into<Text>) -> Step {
        self.headers.push((key.into(), value.into()));
        self
    }

    pub fn body(mut self, body: Body) -> Step {
        self.body = body;
        self
    }

    pub fn auth(mut self, auth: Auth) -> Step {
        self.auth = auth;
        self
    }

    pub fn bind(mut self, name: impl Into<String>, from: From, keep: Keep) -> Step {
        self.binds.push(Bind {
            name: name.into(),
            from,
            keep,
            required: true,
        });
        self
    }

    pub fn bind_optional(mut self, name: impl Into<String>, from: From, keep: Keep) -> Step {
        self.binds.push(Bind {
            name: name.into(),
            from,
            keep,
            required: false,
        });
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Step {
        self.timeout = timeout;
        self
    }

    pub fn max_answer(mut self, bytes: usize) -> Step {
        self.max_answer = bytes;
        self
    }
}

/// One of the post's media files as a body part or raw body: its file name and content
/// type (by extension, from the one MIME table every platform shares).
pub fn media_ref(index: usize, media: &crate::platforms::adapter::OutgoingMedia) -> MediaRef {
    MediaRef {
        index,
        file_name: media
            .rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "media".into()),
        content_type: content_type(&media.rel),
        bytes: media.bytes,
    }
}

/// The media type of a file by its extension; `application/octet-stream` when unknown (the
/// platform then decides).
pub fn content_type(path: &std::path::Path) -> String {
    mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_string()
}

/// A post's `[platform]` table value as JSON. By hand: serde would turn a TOML date into
/// toml's private wrapper object; here it becomes the string the user wrote.
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

pub fn toml_table_to_json(table: &toml::Table) -> Value {
    Value::Object(
        table
            .iter()
            .map(|(k, v)| (k.clone(), toml_to_json(v)))
            .collect(),
    )
}

/// `https://user:secret@host/…` → `https://user:***@host/…`; a lone userinfo part is a
/// token more often than a user name and goes entirely.
pub fn redact_url_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let redacted = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{REDACTED}"),
        None => REDACTED.to_string(),
    };
    format!("{}{redacted}{}", &url[..scheme_end + 3], &rest[at..])
}

/// How long a request may take unless its step says otherwise: long enough for a slow
/// server, short enough that a hung one cannot hold a channel for long.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The most of an answer read unless its step says otherwise: every answer cadenced reads
/// (an id, an error, a page of recent posts) fits many times over.
pub const DEFAULT_MAX_ANSWER: usize = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    struct Creds;
    impl Secrets for Creds {
        fn get(&self, key: &str) -> Option<&str> {
            (key == "token").then_some("tok-123")
        }
    }

    fn bound(v: Value, secret: bool) -> Bound {
        Bound { value: v, secret }
    }

    #[test]
    fn show_redacts_secrets_and_secret_values_and_send_exposes_them() {
        let step = Step::new(
            "t",
            Role::Create,
            "POST",
            Text::lit("https://h/bot")
                .and_secret("token")
                .and_lit("/send"),
            "send",
        )
        .auth(Auth::Bearer(Text::hole("jwt")))
        .body(Body::Json(Tpl::obj([
            ("id", Tpl::hole("media_id:1")),
            ("password", Tpl::Text(Text::secret("token"))),
        ])));
        let mut known = Bindings::new();
        known.insert("jwt".into(), bound(json!("eyJ.session"), true));
        known.insert("media_id:1".into(), bound(json!("77"), false));
        let shown = render(&step, &known, Mode::Show).unwrap();
        assert_eq!(shown.url, "https://h/bot***/send");
        assert_eq!(shown.auth, RenderedAuth::Header("Bearer ***".into()));
        assert_eq!(
            shown.body,
            RenderedBody::Json(json!({ "id": "77", "password": "***" }))
        );
        let sent = render(&step, &known, Mode::Send(&Creds)).unwrap();
        assert_eq!(sent.url, "https://h/bottok-123/send");
        assert_eq!(sent.auth, RenderedAuth::Header("Bearer eyJ.session".into()));
        assert_eq!(
            sent.body,
            RenderedBody::Json(json!({ "id": "77", "password": "tok-123" }))
        );
    }

    #[test]
    fn a_whole_url_that_is_a_secret_is_shown_as_stars() {
        // A Discord webhook URL is itself the credential.
        let step = Step::new("t", Role::Create, "POST", Text::secret("token"), "the post");
        let shown = render(&step, &Bindings::new(), Mode::Show).unwrap();
        assert_eq!(shown.url, REDACTED);
        assert_eq!(shown.to_json()["url"], REDACTED);
        let sent = render(&step, &Bindings::new(), Mode::Send(&Creds)).unwrap();
        assert_eq!(sent.url, "tok-123");
    }

    #[test]
    fn a_missing_value_is_an_error_unless_the_template_makes_it_optional() {
        let step =
            Step::new("t", Role::Create, "POST", "https://h/x", "x").body(Body::Json(Tpl::obj([
                (
                    "facets",
                    Tpl::Array(vec![
                        Tpl::IfBound("did:a".into(), Box::new(Tpl::hole("did:a"))),
                        Tpl::str("kept"),
                    ]),
                ),
                (
                    "card",
                    Tpl::IfBound("title".into(), Box::new(Tpl::hole("title"))),
                ),
            ])));
        let shown = render(&step, &Bindings::new(), Mode::Show).unwrap();
        assert_eq!(
            shown.body,
            RenderedBody::Json(json!({ "facets": ["kept"] }))
        );
        let needs = Step::new(
            "t",
            Role::Create,
            "GET",
            Text::lit("https://h/").and_hole("id"),
            "x",
        );
        assert_eq!(
            render(&needs, &Bindings::new(), Mode::Show),
            Err(Unbound("id".into()))
        );
    }

    #[test]
    fn the_outbox_shape_names_the_content_type_and_encodes_the_query() {
        let step = Step::new("t", Role::Lookup, "GET", "https://h/x", "x")
            .query("handle", "anna bsky")
            .query("q", "a&b");
        let shown = render(&step, &Bindings::new(), Mode::Show).unwrap();
        assert_eq!(shown.full_url(), "https://h/x?handle=anna+bsky&q=a%26b");
        assert_eq!(shown.to_json()["body"], Value::Null);
        let media = MediaRef {
            index: 0,
            file_name: "b.png".into(),
            content_type: "image/png".into(),
            bytes: 7,
        };
        let up =
            Step::new("t", Role::Prepare, "POST", "https://h/u", "u").body(Body::Multipart(vec![
                Part::file("file", media.clone()),
                Part::text("description", "Red shoes"),
            ]));
        let json = render(&up, &Bindings::new(), Mode::Show).unwrap().to_json();
        assert_eq!(json["headers"]["Content-Type"], "multipart/form-data");
        assert_eq!(
            json["body"],
            json!([
                { "name": "file", "file_name": "b.png", "content_type": "image/png", "bytes": 7 },
                { "name": "description", "content_type": "text/plain; charset=utf-8", "bytes": 9, "value": "Red shoes" },
            ])
        );
        let raw = Step::new("t", Role::Prepare, "POST", "https://h/u", "u").body(Body::File(media));
        let json = render(&raw, &Bindings::new(), Mode::Show)
            .unwrap()
            .to_json();
        assert_eq!(json["headers"]["Content-Type"], "image/png");
        assert_eq!(
            json["body"],
            json!({ "file_name": "b.png", "content_type": "image/png", "bytes": 7 })
        );
    }
}
