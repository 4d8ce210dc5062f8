//! The HTTP plumbing every platform shares, in one leaf module: the client (TLS, time-outs,
//! no redirects ever), sending a rendered request with its answer read up to a cap, rate
//! limit hints in every format the platforms use, readable snippets of error bodies, the
//! cause chain of a transport error, OAuth 1.0a signing, and scrubbing secrets out of any
//! text that came from outside.
//!
//! What this module must not do: follow a redirect (a POST may be resent or turned into a
//! GET, and a token must never travel to another host: a redirect is reported with its new
//! location for the user to fix the config), read an answer without a limit, retry, sleep,
//! read the clock (`now` comes in), or put a URL from a transport error into a message (a
//! URL may hold a secret: Telegram puts the token in the path, a Discord webhook URL is one).

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::Once;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use reqwest::header::HeaderMap;
use serde_json::Value;

use super::plan::{REDACTED, Rendered, RenderedAuth, RenderedBody, RenderedPart};

/// How long connecting may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest part of an answer quoted in a message, in characters.
pub const MAX_QUOTED: usize = 300;

/// Installs rustls's `ring` provider as the process default, once. reqwest is built with
/// `rustls-no-provider` (ring builds faster and smaller than aws-lc-rs), so this must run
/// before the first client is built; calling it again does nothing.
pub fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another part of the process installed a provider first: that one is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The client every platform uses: a `cadenced/<version>` user agent, a connect time-out
/// (each request sets its own overall one), no redirects and no retries of reqwest's own
/// (a resend is the daemon's decision).
pub fn client() -> Result<reqwest::Client, String> {
    install_tls_provider();
    reqwest::Client::builder()
        .user_agent(concat!("cadenced/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .retry(reqwest::retry::never())
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {}", chain(&e)))
}

/// One client for all the channels connected together (a daemon's channels, one `check`):
/// built at first use and cloned into each adapter, so they share one TLS set-up (root
/// certificates and verifier, about 100 KB a client) and one connection pool.
#[derive(Debug, Default)]
pub struct SharedClient(std::sync::OnceLock<Result<reqwest::Client, String>>);

impl SharedClient {
    /// The client (a clone shares everything with the others).
    pub fn get(&self) -> Result<reqwest::Client, String> {
        self.0.get_or_init(client).clone()
    }
}

/// A server's answer, its body read up to the step's cap.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The body was longer than the cap; `body` holds its start.
    pub truncated: bool,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    }

    /// The body as JSON, if it is (a truncated body is not).
    pub fn json(&self) -> Option<Value> {
        if self.truncated {
            return None;
        }
        serde_json::from_slice(&self.body).ok()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: nothing reached the server.
    Connect(String),
    /// The request could not be built or a media file could not be read: nothing was sent.
    NotSent(String),
    /// Sent (maybe in part), then no complete answer: a time-out or a lost connection.
    NoAnswer(String),
}

impl Failure {
    pub fn describe(&self) -> &str {
        match self {
            Failure::Connect(s) | Failure::NotSent(s) | Failure::NoAnswer(s) => s,
        }
    }
}

/// Sends a request rendered in `Mode::Send`. `media` holds the bytes of the files the body
/// names, by index. The answer's body is read up to `max_answer` bytes; the rest is not read.
pub async fn send(
    client: &reqwest::Client,
    request: &Rendered,
    media: &BTreeMap<usize, Vec<u8>>,
    timeout: Duration,
    max_answer: usize,
    now: Timestamp,
) -> Result<Answer, Failure> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| Failure::NotSent(format!("`{}` is not an HTTP method", request.method)))?;
    let mut builder = client.request(method, request.full_url()).timeout(timeout);
    for (k, v) in &request.headers {
        builder = builder.header(k, v);
    }
    let form_params: Vec<(String, String)> = match &request.body {
        RenderedBody::Form(fields) => fields.clone(),
        _ => Vec::new(),
    };
    match &request.auth {
        RenderedAuth::None => {}
        RenderedAuth::Header(value) => {
            let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| {
                Failure::NotSent("a credential holds characters a header cannot carry".into())
            })?;
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        RenderedAuth::OAuth1 {
            consumer_key,
            consumer_secret,
            token,
            token_secret,
        } => {
            let header = oauth1_header(
                &OAuth1 {
                    consumer_key,
                    consumer_secret,
                    token,
                    token_secret,
                },
                request.method,
                &request.url,
                request.query.iter().chain(form_params.iter()),
                &nonce(),
                now.as_second(),
            );
            let mut value = reqwest::header::HeaderValue::from_str(&header).map_err(|_| {
                Failure::NotSent("a credential holds characters a header cannot carry".into())
            })?;
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
    }
    let file = |m: &super::plan::MediaRef| {
        media
            .get(&m.index)
            .cloned()
            .ok_or_else(|| Failure::NotSent(format!("{} was not read", m.file_name)))
    };
    builder = match &request.body {
        RenderedBody::None => builder,
        RenderedBody::Json(v) => builder
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(v).map_err(|e| Failure::NotSent(e.to_string()))?),
        RenderedBody::Form(fields) => builder
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields.iter())
                    .finish(),
            ),
        RenderedBody::Multipart(parts) => {
            let mut form = reqwest::multipart::Form::new();
            for part in parts {
                form = match part {
                    RenderedPart::Text { name, value } => form.text(name.clone(), value.clone()),
                    RenderedPart::File { name, media } => {
                        let p = reqwest::multipart::Part::bytes(file(media)?)
                            .file_name(media.file_name.clone())
                            .mime_str(&media.content_type)
                            .map_err(|e| {
                                Failure::NotSent(format!(
                                    "content type of {}: {e}",
                                    media.file_name
                                ))
                            })?;
                        form.part(name.clone(), p)
                    }
                };
            }
            builder.multipart(form)
        }
        RenderedBody::File(m) => builder
            .header(reqwest::header::CONTENT_TYPE, &m.content_type)
            .body(file(m)?),
    };
    let response = builder.send().await.map_err(|e| {
        let text = chain(&e);
        if e.is_connect() {
            Failure::Connect(text)
        } else if e.is_builder() {
            Failure::NotSent(text)
        } else {
            Failure::NoAnswer(text)
        }
    })?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let (body, truncated) = read_capped(response, max_answer).await;
    Ok(Answer {
        status,
        headers,
        body,
        truncated,
    })
}

/// Reads at most `max` bytes of a body. A body that breaks off keeps what came: the status
/// line already said what happened.
pub async fn read_capped(mut response: reqwest::Response, max: usize) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = max.saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return (body, true);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) | Err(_) => return (body, false),
        }
    }
}

/// The error and its causes, for messages, without the URL (it may hold a secret): reqwest's
/// own text is terse ("error sending request"); the causes say what happened (refused,
/// reset, timed out).
pub fn chain(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        let bare = reqwest_text_without_url(error);
        if bare.is_empty() {
            "the connection failed".to_string()
        } else {
            bare
        }
    };
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

fn reqwest_text_without_url(error: &reqwest::Error) -> String {
    // `Display` of a reqwest error appends " for url (…)"; its source chain never holds it.
    let shown = error.to_string();
    match shown.find(" for url (") {
        Some(i) => shown[..i].to_string(),
        None => shown,
    }
}

/// How long the server asked us to wait, from whichever signal it gave, in the order the
/// platforms use them: `Retry-After` (seconds, fractional seconds or an HTTP date), then the
/// rate-limit reset headers (`x-rate-limit-reset`, `X-RateLimit-Reset`, `RateLimit-Reset`:
/// epoch seconds, seconds from now, or an ISO 8601 time), `X-RateLimit-Reset-After`
/// (fractional seconds), then `retry_after` in a JSON body (Discord: fractional seconds;
/// Telegram: `parameters.retry_after`). Absolute times are measured from the answer's
/// `Date` (the server's clock, so our clock's skew does not matter), else from `now`.
/// Never negative; `None` when the server said nothing usable.
pub fn retry_hint(answer: &Answer, now: Timestamp) -> Option<SignedDuration> {
    let reference = answer
        .header("date")
        .and_then(parse_http_date)
        .unwrap_or(now);
    let delta = |value: &str| parse_delay(value, reference);
    let from_headers = answer
        .header("retry-after")
        .and_then(delta)
        .or_else(|| {
            ["x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset"]
                .iter()
                .find_map(|h| answer.header(h).and_then(delta))
        })
        .or_else(|| {
            answer
                .header("x-ratelimit-reset-after")
                .and_then(|v| seconds(v.parse::<f64>().ok()?))
        });
    let from_body = || {
        let json = answer.json()?;
        let value = json
            .get("retry_after")
            .or_else(|| json.pointer("/parameters/retry_after"))?;
        seconds(value.as_f64()?)
    };
    from_headers
        .or_else(from_body)
        .map(|d| d.max(SignedDuration::ZERO))
}

/// One header value as a delay: a number is seconds from now, unless it is so large that it
/// can only be an epoch time (after 2001-09-09); else an HTTP date or an ISO 8601 time.
fn parse_delay(value: &str, reference: Timestamp) -> Option<SignedDuration> {
    if let Ok(number) = value.parse::<f64>() {
        if number >= 1e9 {
            let at = Timestamp::from_second(number as i64).ok()?;
            return Some(at.duration_since(reference));
        }
        return seconds(number);
    }
    let at = parse_http_date(value).or_else(|| value.parse::<Timestamp>().ok())?;
    Some(at.duration_since(reference))
}

fn seconds(value: f64) -> Option<SignedDuration> {
    (value.is_finite() && (0.0..1e10).contains(&value))
        .then(|| SignedDuration::from_secs_f64(value))
}

/// An RFC 9110 HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn parse_http_date(value: &str) -> Option<Timestamp> {
    let time = httpdate::parse_http_date(value).ok()?;
    Timestamp::try_from(time).ok()
}

/// The start of `text`, trimmed and cut to [`MAX_QUOTED`] characters, on one line.
pub fn snippet(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(MAX_QUOTED) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// What an error answer says, readably: `extract` reads the platform's own error shape; else
/// the usual JSON fields (`error_description`, `message`, `detail`, `error`, `title`); else
/// the body's start; else the status's reason phrase.
pub fn error_text(answer: &Answer, extract: impl Fn(&Value) -> Option<String>) -> String {
    let json = serde_json::from_slice::<Value>(&answer.body).ok();
    let said = json.as_ref().and_then(|j| {
        extract(j).or_else(|| {
            ["error_description", "message", "detail", "error", "title"]
                .iter()
                .find_map(|k| j.get(*k)?.as_str().map(str::to_string))
        })
    });
    let text = said.unwrap_or_else(|| {
        let body = String::from_utf8_lossy(&answer.body);
        if body.trim_start().starts_with('<') {
            String::new() // an HTML error page says nothing a message can use
        } else {
            body.into_owned()
        }
    });
    let text = snippet(&text);
    if text.is_empty() {
        reqwest::StatusCode::from_u16(answer.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no explanation")
            .to_string()
    } else {
        text
    }
}

/// Replaces every occurrence of the given secret values in `text` with `***`: the safety
/// net for text that came from outside (an error body echoing a token, a `Location` with
/// the token in its path). Values shorter than four characters are not scrubbed (they would
/// mangle ordinary words and are no real secrets).
pub fn scrub<'a>(text: &str, secrets: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = text.to_string();
    for secret in secrets {
        if secret.len() >= 4 && out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

/// The four OAuth 1.0a credentials of a request.
pub struct OAuth1<'a> {
    pub consumer_key: &'a str,
    pub consumer_secret: &'a str,
    pub token: &'a str,
    pub token_secret: &'a str,
}

/// RFC 5849 percent-encoding: everything but unreserved characters.
const OAUTH_ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn oauth_encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, OAUTH_ENCODE).to_string()
}

/// The `Authorization: OAuth …` header of an OAuth 1.0a request signed with HMAC-SHA1
/// (RFC 5849 §3.4): the signature base string holds the method, the URL without its query,
/// and every query and form parameter with the protocol parameters, sorted. JSON and
/// multipart bodies are not signed (as X documents).
pub fn oauth1_header<'p>(
    creds: &OAuth1<'_>,
    method: &str,
    url: &str,
    params: impl Iterator<Item = &'p (String, String)>,
    nonce: &str,
    timestamp: i64,
) -> String {
    use hmac::{KeyInit, Mac};
    let timestamp = timestamp.to_string();
    let protocol = [
        ("oauth_consumer_key", creds.consumer_key),
        ("oauth_nonce", nonce),
        ("oauth_signature_method", "HMAC-SHA1"),
        ("oauth_timestamp", timestamp.as_str()),
        ("oauth_token", creds.token),
        ("oauth_version", "1.0"),
    ];
    let mut all: Vec<(String, String)> = params
        .map(|(k, v)| (oauth_encode(k), oauth_encode(v)))
        .chain(
            protocol
                .iter()
                .map(|(k, v)| (oauth_encode(k), oauth_encode(v))),
        )
        .collect();
    all.sort();
    let normalized = all
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        oauth_encode(url),
        oauth_encode(&normalized)
    );
    let key = format!(
        "{}&{}",
        oauth_encode(creds.consumer_secret),
        oauth_encode(creds.token_secret)
    );
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(base.as_bytes());
    use base64::Engine as _;
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut fields: Vec<String> = protocol
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", oauth_encode(v)))
        .collect();
    fields.push(format!("oauth_signature=\"{}\"", oauth_encode(&signature)));
    fields.sort();
    format!("OAuth {}", fields.join(", "))
}

/// 32 random hexadecimal characters (OAuth nonces, PKCE state).
pub fn nonce() -> String {
    let mut bytes = [0u8; 16];
    // The OS generator does not fail on Linux; a fixed fallback only costs uniqueness.
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn answer(status: u16, headers: &[(&str, &str)], body: &str) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        Answer {
            status,
            headers: map,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-11-27T09:00:00Z";

    #[test]
    fn retry_hints_in_every_format_the_platforms_use() {
        let secs = |a: &Answer| retry_hint(a, t(NOW)).map(|d| d.as_secs_f64());
        // Retry-After: seconds, fractional seconds, an HTTP date (against the answer's Date).
        assert_eq!(secs(&answer(429, &[("Retry-After", "60")], "")), Some(60.0));
        assert_eq!(secs(&answer(429, &[("Retry-After", "1.5")], "")), Some(1.5));
        assert_eq!(
            secs(&answer(
                503,
                &[
                    ("Retry-After", "Fri, 27 Nov 2026 09:02:00 GMT"),
                    ("Date", "Fri, 27 Nov 2026 09:01:00 GMT")
                ],
                ""
            )),
            Some(60.0)
        );
        // X and Bluesky: epoch seconds.
        let epoch = t("2026-11-27T09:15:00Z").as_second().to_string();
        assert_eq!(
            secs(&answer(429, &[("x-rate-limit-reset", &epoch)], "")),
            Some(900.0)
        );
        assert_eq!(
            secs(&answer(429, &[("RateLimit-Reset", &epoch)], "")),
            Some(900.0)
        );
        // Mastodon: an ISO 8601 time.
        assert_eq!(
            secs(&answer(
                429,
                &[("X-RateLimit-Reset", "2026-11-27T09:05:00.000Z")],
                ""
            )),
            Some(300.0)
        );
        // Discord: fractional seconds after, and in the body.
        assert_eq!(
            secs(&answer(429, &[("X-RateLimit-Reset-After", "2.25")], "")),
            Some(2.25)
        );
        assert_eq!(
            secs(&answer(
                429,
                &[],
                r#"{"retry_after": 0.5, "global": false}"#
            )),
            Some(0.5)
        );
        // Telegram: parameters.retry_after.
        assert_eq!(
            secs(&answer(
                429,
                &[],
                r#"{"ok":false,"parameters":{"retry_after":17}}"#
            )),
            Some(17.0)
        );
        // A reset in the past is no wait; garbage is no hint.
        assert_eq!(
            secs(&answer(429, &[("x-rate-limit-reset", "1700000000")], "")),
            Some(0.0)
        );
        assert_eq!(secs(&answer(429, &[("Retry-After", "soon")], "")), None);
        assert_eq!(secs(&answer(429, &[], "not json")), None);
    }

    #[test]
    fn error_text_reads_the_platforms_shapes_and_cuts_long_bodies() {
        let a = answer(
            422,
            &[],
            r#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#,
        );
        assert_eq!(
            error_text(&a, |_| None),
            "Validation failed: Text character limit of 500 exceeded"
        );
        let long = "x".repeat(1000);
        let cut = error_text(&answer(500, &[], &long), |_| None);
        assert_eq!(cut.chars().count(), MAX_QUOTED + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(
            error_text(
                &answer(502, &[], "<html><body>Bad gateway</body></html>"),
                |_| None
            ),
            "Bad Gateway"
        );
        assert_eq!(error_text(&answer(404, &[], ""), |_| None), "Not Found");
    }

    #[tokio::test]
    async fn a_transport_error_never_shows_the_url() {
        // A URL with the token in its path, to a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let request = Rendered {
            method: "POST",
            url: format!("http://127.0.0.1:{port}/bot123456:SECRET-TOKEN/sendMessage"),
            query: Vec::new(),
            headers: Vec::new(),
            body: RenderedBody::None,
            auth: RenderedAuth::None,
        };
        let failure = send(
            &client().unwrap(),
            &request,
            &BTreeMap::new(),
            Duration::from_secs(5),
            1024,
            "2026-11-27T09:00:00Z".parse().unwrap(),
        )
        .await
        .unwrap_err();
        assert!(matches!(failure, Failure::Connect(_)), "{failure:?}");
        assert!(!failure.describe().contains("SECRET-TOKEN"), "{failure:?}");
        assert!(!failure.describe().contains("127.0.0.1"), "{failure:?}");
    }

    #[test]
    fn scrub_removes_secret_values_from_outside_text() {
        assert_eq!(
            scrub(
                "moved to https://api.example/bot123:ABC/sendMessage",
                ["123:ABC"]
            ),
            "moved to https://api.example/bot***/sendMessage"
        );
        assert_eq!(scrub("a b c", ["a"]), "a b c");
    }

    #[test]
    fn oauth1_signature_matches_the_documented_example() {
        // The worked example of X's (then Twitter's) "Creating a signature" documentation:
        // these inputs sign to hCtSmYh+iHYCEqBWrE7C7hYmtUk=.
        let creds = OAuth1 {
            consumer_key: "xvz1evFS4wEEPTGEFPHBog",
            consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
            token: "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
            token_secret: "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
        };
        let params = [
            ("include_entities".to_string(), "true".to_string()),
            (
                "status".to_string(),
                "Hello Ladies + Gentlemen, a signed OAuth request!".to_string(),
            ),
        ];
        let header = oauth1_header(
            &creds,
            "post",
            "https://api.twitter.com/1.1/statuses/update.json",
            params.iter(),
            "kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg",
            1318622958,
        );
        assert!(header.starts_with("OAuth "), "{header}");
        assert!(
            header.contains("oauth_signature=\"hCtSmYh%2BiHYCEqBWrE7C7hYmtUk%3D\""),
            "{header}"
        );
        assert!(
            header.contains("oauth_token=\"370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb\"")
        );
    }
}
