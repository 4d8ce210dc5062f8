//! A local HTTP server that behaves like X API v2 as its contract
//! (`tests/data/contracts/x/openapi.json`) and X's documentation describe it, for the
//! daemon's X tests and for crash tests that run the real binary.
//!
//! What it does like X:
//! - `POST /2/oauth2/token`: `grant_type=refresh_token` issues a two-hour access token AND a
//!   new refresh token and invalidates the one used (rotation); an unknown or used refresh
//!   token answers 400 `invalid_request` "Value passed for the token was invalid.";
//!   `grant_type=authorization_code` checks the code, its `redirect_uri` and the PKCE S256
//!   challenge it was issued for ([`FakeX::authorize`] plays the user's consent). A
//!   confidential client authenticates with HTTP Basic, a public one names `client_id`.
//! - Every `/2/` call needs a user: an OAuth 2.0 bearer token it issued (and that has not
//!   expired), or an OAuth 1.0a request whose HMAC-SHA1 signature it verifies for real
//!   (RFC 5849 base string: method, URL without the query, sorted query, form and `oauth_`
//!   parameters; JSON and multipart bodies unsigned), with a timestamp within five minutes
//!   and a nonce not seen before. Otherwise 401 `{"title":"Unauthorized",...}`.
//! - `POST /2/media/upload` (multipart `media`, `media_category`) and `POST /2/media/metadata`
//!   (alt text), `POST /2/tweets` (201; the body checked against `CreatePostsRequest`;
//!   `media.media_ids` must be ids it issued; a text the account posted in the last day
//!   answers 403 "duplicate content"), `GET /2/users/me`, `GET /2/users/{id}/tweets` (newest
//!   first; `max_results`, `start_time`, `end_time`, `pagination_token`, `tweet.fields`) with
//!   X's rendering of `text`: `&`, `<`, `>` escaped, every link replaced by a `t.co` link with
//!   its entity, and a trailing `t.co` link for attached media.
//! - Rate-limit headers on every `/2/` answer (`x-rate-limit-limit`, `-remaining`, `-reset`
//!   in epoch seconds, per endpoint and 15-minute window), and a 429 when a window is used up.
//!
//! What it adds for tests: faults for the next create or upload ([`Fault`]), posts that stay
//! out of the timeline for a few reads (X's timelines lag behind), seeded posts, a clock that
//! follows the test's and can be moved ahead, its whole state to inspect, and waits on it.

#![allow(dead_code)] // A shared helper: not every test uses every inspector.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use cadenced::clock::Clock;
use hmac::{KeyInit, Mac};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sha2::Digest;

use crate::fake_server::{
    Answer, Outcome, Received, Server, Shared, WAIT_LIMIT, form_map, json_response,
    parse_multipart, random_hex, set_header, typed_json_response,
};

/// The OAuth 2.0 app: a confidential client (it has a secret; a public client would name
/// only its id).
pub const CLIENT_ID: &str = "ZmFrZS14LWNsaWVudC1pZDox";
pub const CLIENT_SECRET: &str = "fake-x-client-secret-5b1d2c";
/// The OAuth 1.0a app and the account's access token.
pub const CONSUMER_KEY: &str = "fakeXconsumerKey7Zq";
pub const CONSUMER_SECRET: &str = "fakeXconsumerSecret0dW3kPq9";
pub const ACCESS_TOKEN: &str = "1849201738562342912-fakeXaccessTokenR8";
pub const ACCESS_TOKEN_SECRET: &str = "fakeXaccessTokenSecretM2v";
/// The one account.
pub const USER_ID: &str = "1849201738562342912";
pub const USERNAME: &str = "sneakershop";
pub const NAME: &str = "Sneaker Shop";

/// How long an access token lasts (`expires_in`).
pub const ACCESS_TOKEN_SECS: i64 = 7200;
/// How far an OAuth 1.0a timestamp may be from the server's clock.
pub const OAUTH1_SKEW: SignedDuration = SignedDuration::from_mins(5);
/// X refuses a text the account posted within this long.
pub const DUPLICATE_WINDOW: SignedDuration = SignedDuration::from_hours(24);
/// Rate-limit windows are 15 minutes.
pub const WINDOW: SignedDuration = SignedDuration::from_mins(15);

/// X's epoch for post ids (2010-11-04T01:42:54.657Z).
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// What the next create (or upload) does instead of, or after, its normal work. Faults are
/// queued: each request takes the next one.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 401 as for a token X no longer accepts, creating nothing.
    Unauthorized,
    /// 403 "duplicate content", creating nothing.
    Duplicate,
    /// 400 invalid-request with this message, creating nothing.
    Invalid(String),
    /// 429 with `x-rate-limit-remaining: 0` and this reset (epoch seconds), creating nothing;
    /// the window stays used up until then, so creates before the reset get 429 too.
    TooManyRequests { reset: Timestamp },
    /// This status code (500, 503), creating nothing.
    ErrorBeforeCreate(u16),
    /// Creates the post, then answers this status code.
    ErrorAfterCreate(u16),
    /// Closes the connection after reading the request, creating nothing.
    DropBeforeCreate,
    /// Creates the post, then closes the connection without answering.
    DropAfterCreate,
    /// Never answers, creating nothing.
    HangBeforeCreate,
    /// Creates the post, then never answers.
    HangAfterCreate,
    /// A redirect (301, 307, 308) to `location`, creating nothing.
    Redirect { status: u16, location: String },
}

/// A post on the account.
#[derive(Debug, Clone)]
pub struct FakePost {
    pub id: String,
    /// The text as received (or seeded), before X's rendering.
    pub text: String,
    pub created_at: Timestamp,
    pub media_ids: Vec<String>,
    /// The create request's body (`Null` for seeded posts).
    pub request: Value,
    /// `oauth2` or `oauth1`: how the create was authorized.
    pub auth: &'static str,
    /// Timeline reads it stays out of (X's timelines lag behind).
    hidden_reads: u32,
}

/// An uploaded media file.
#[derive(Debug, Clone)]
pub struct FakeMedia {
    pub id: String,
    pub media_key: String,
    pub category: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: usize,
    pub alt_text: Option<String>,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The body as text (multipart bodies as received, binary parts included lossily).
    pub body: String,
    pub at: Timestamp,
}

/// Everything the fake knows. Tests read it through [`FakeX::state`] or the helpers.
#[derive(Debug)]
pub struct State {
    pub posts: Vec<FakePost>,
    pub media: Vec<FakeMedia>,
    pub requests: Vec<RecordedRequest>,
    /// `POST /2/tweets` received, faults included.
    pub create_requests: usize,
    pub create_faults: VecDeque<Fault>,
    pub upload_faults: VecDeque<Fault>,
    /// Refresh tokens issued, in order (by `cadenced auth` or a rotation).
    pub refresh_issued: Vec<String>,
    /// Refresh tokens used up by a rotation, in order.
    pub refresh_used: Vec<String>,
    /// Refresh tokens refused (unknown or used already).
    pub refresh_refused: Vec<String>,
    /// Access tokens issued, in order.
    pub access_issued: Vec<String>,
    /// Every request with a bearer token answers 401 (the app's access was revoked).
    pub refuse_bearer: bool,
    /// New posts stay out of this many timeline reads.
    pub timeline_lag: u32,
    /// `GET /2/users/{id}/tweets` received.
    pub timeline_reads: usize,
    access: HashMap<String, Timestamp>,
    refresh: HashSet<String>,
    codes: HashMap<String, PendingCode>,
    nonces: HashSet<String>,
    windows: HashMap<&'static str, (Timestamp, u32)>,
    sequence: i64,
}

#[derive(Debug, Clone)]
struct PendingCode {
    challenge: String,
    redirect_uri: String,
    scope: String,
}

impl State {
    pub fn posts_with_text(&self, text: &str) -> usize {
        self.posts.iter().filter(|p| p.text == text).count()
    }

    pub fn requests_to(&self, method: &str, path: &str) -> usize {
        self.requests
            .iter()
            .filter(|r| r.method == method && r.path.split('?').next() == Some(path))
            .count()
    }

    /// A snowflake id as X makes them: milliseconds since X's epoch, then a sequence.
    fn next_id(&mut self, at: Timestamp) -> String {
        self.sequence += 1;
        let millis = (at.as_millisecond() - SNOWFLAKE_EPOCH_MS).max(0);
        ((millis << 22) | (self.sequence & 0x3f_ffff)).to_string()
    }

    fn new_access_token(&mut self, now: Timestamp) -> String {
        let token = format!("fakexat{}", random_hex(20));
        self.access.insert(
            token.clone(),
            now + SignedDuration::from_secs(ACCESS_TOKEN_SECS),
        );
        self.access_issued.push(token.clone());
        token
    }

    fn new_refresh_token(&mut self) -> String {
        let token = format!("fakexrt{}", random_hex(20));
        self.refresh.insert(token.clone());
        self.refresh_issued.push(token.clone());
        token
    }
}

fn new_state() -> State {
    State {
        posts: Vec::new(),
        media: Vec::new(),
        requests: Vec::new(),
        create_requests: 0,
        create_faults: VecDeque::new(),
        upload_faults: VecDeque::new(),
        refresh_issued: Vec::new(),
        refresh_used: Vec::new(),
        refresh_refused: Vec::new(),
        access_issued: Vec::new(),
        refuse_bearer: false,
        timeline_lag: 0,
        timeline_reads: 0,
        access: HashMap::new(),
        refresh: HashSet::new(),
        codes: HashMap::new(),
        nonces: HashSet::new(),
        windows: HashMap::new(),
        sequence: 0,
    }
}

/// A running fake X. Dropping it stops the server.
pub struct FakeX(Server<State>);

impl FakeX {
    /// Starts on the current runtime, on the real clock.
    pub async fn start() -> FakeX {
        FakeX::start_with_clock(Arc::new(cadenced::clock::SystemClock)).await
    }

    /// Starts on the current runtime with the test's clock (the daemon's, in daemon tests).
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> FakeX {
        FakeX(Server::start("fake X", new_state(), clock, handle).await)
    }

    /// Starts on its own thread (for tests that run the binary), on the real clock.
    pub fn start_on_thread() -> FakeX {
        FakeX(Server::start_on_thread("fake-x", new_state(), handle))
    }

    /// `http://127.0.0.1:<port>`: the channel's `api`.
    pub fn url(&self) -> String {
        self.0.url()
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state()
    }

    pub fn now(&self) -> Timestamp {
        self.0.now()
    }

    /// Moves the fake's clock ahead of the test's.
    pub fn advance(&self, by: SignedDuration) {
        self.0.advance(by);
    }

    pub fn fail_next_create(&self, fault: Fault) {
        self.0.update(|s| s.create_faults.push_back(fault));
    }

    pub fn fail_next_upload(&self, fault: Fault) {
        self.0.update(|s| s.upload_faults.push_back(fault));
    }

    pub fn clear_faults(&self) {
        self.0.update(|s| {
            s.create_faults.clear();
            s.upload_faults.clear();
        });
    }

    /// New posts stay out of the next `reads` timeline reads.
    pub fn set_timeline_lag(&self, reads: u32) {
        self.0.update(|s| s.timeline_lag = reads);
    }

    /// From now on every bearer token is refused (the user revoked the app).
    pub fn refuse_bearer_tokens(&self, refuse: bool) {
        self.0.update(|s| s.refuse_bearer = refuse);
    }

    /// A refresh token, as `cadenced auth` would have obtained it.
    pub fn issue_refresh_token(&self) -> String {
        self.0.update(State::new_refresh_token)
    }

    /// An access token valid for two hours from the fake's clock.
    pub fn issue_access_token(&self) -> String {
        let now = self.now();
        self.0.update(|s| s.new_access_token(now))
    }

    /// The user's consent on X's authorization page: the code the redirect would carry,
    /// for this S256 `code_challenge`.
    pub fn authorize(&self, code_challenge: &str, redirect_uri: &str, scope: &str) -> String {
        let code = format!("fakexcode{}", random_hex(12));
        self.0.update(|s| {
            s.codes.insert(
                code.clone(),
                PendingCode {
                    challenge: code_challenge.to_string(),
                    redirect_uri: redirect_uri.to_string(),
                    scope: scope.to_string(),
                },
            )
        });
        code
    }

    /// Adds a post as if made at `created_at` with another client; returns its id.
    pub fn add_post(&self, text: &str, created_at: Timestamp) -> String {
        self.0.update(|s| {
            let id = s.next_id(created_at);
            s.posts.push(FakePost {
                id: id.clone(),
                text: text.into(),
                created_at,
                media_ids: Vec::new(),
                request: Value::Null,
                auth: "oauth2",
                hidden_reads: 0,
            });
            id
        })
    }

    pub fn posts(&self) -> Vec<FakePost> {
        self.state().posts.clone()
    }

    pub fn media(&self) -> Vec<FakeMedia> {
        self.state().media.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    pub fn create_requests(&self) -> usize {
        self.state().create_requests
    }

    pub fn posts_with_text(&self, text: &str) -> usize {
        self.state().posts_with_text(text)
    }

    /// X's rendering of a post, as `GET /2/users/{id}/tweets` shows it.
    pub fn rendered(&self, id: &str) -> Option<Value> {
        let state = self.state();
        let post = state.posts.iter().find(|p| p.id == id)?;
        Some(post_json(&state, post, &["created_at", "entities"]))
    }

    pub async fn wait_until(&self, what: &str, done: impl Fn(&State) -> bool) {
        self.0.wait_until(what, done).await;
    }

    pub async fn wait_until_within(
        &self,
        limit: std::time::Duration,
        what: &str,
        done: impl Fn(&State) -> bool,
    ) {
        self.0.wait_until_within(limit, what, done).await;
    }

    pub fn wait_until_blocking(&self, what: &str, done: impl Fn(&State) -> bool) {
        self.0.wait_until_blocking(what, done);
    }
}

/// The default wait, for callers that name none.
pub const DEFAULT_WAIT: std::time::Duration = WAIT_LIMIT;

// --- answers -----------------------------------------------------------------------------

fn problem(status: StatusCode, title: &str, detail: &str) -> Answer {
    typed_json_response(
        status,
        "application/problem+json",
        &json!({ "title": title, "type": "about:blank", "status": status.as_u16(), "detail": detail }),
    )
}

fn unauthorized() -> Answer {
    problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
}

fn duplicate() -> Answer {
    problem(
        StatusCode::FORBIDDEN,
        "Forbidden",
        "You are not allowed to create a Tweet with duplicate content.",
    )
}

/// 400 as X answers a request whose parameters are wrong.
fn invalid(errors: Vec<Value>) -> Answer {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({
            "errors": errors,
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
        }),
    )
}

fn invalid_message(message: &str) -> Answer {
    invalid(vec![json!({ "message": message })])
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Answer {
    json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    )
}

fn token_invalid() -> Answer {
    oauth_error(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "Value passed for the token was invalid.",
    )
}

// --- the handler -------------------------------------------------------------------------

/// Who a request speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Auth {
    OAuth2,
    OAuth1,
}

impl Auth {
    fn name(self) -> &'static str {
        match self {
            Auth::OAuth2 => "oauth2",
            Auth::OAuth1 => "oauth1",
        }
    }
}

fn handle(shared: &Shared<State>, req: &Received) -> Outcome {
    let now = shared.now();
    shared.update(|s| {
        s.requests.push(RecordedRequest {
            method: req.method.to_string(),
            path: req.path_and_query(),
            authorization: req.header(AUTHORIZATION.as_str()).map(str::to_string),
            content_type: req.header(CONTENT_TYPE.as_str()).map(str::to_string),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            at: now,
        })
    });
    if req.method == Method::POST && req.path == "/2/oauth2/token" {
        return Outcome::Answer(token(shared, req, now));
    }
    if !req.path.starts_with("/2/") {
        return Outcome::Answer(problem(StatusCode::NOT_FOUND, "Not Found", "Not Found"));
    }
    let Some(auth) = authenticate(shared, req, now) else {
        return Outcome::Answer(unauthorized());
    };
    let segments: Vec<&str> = req.path.trim_matches('/').split('/').collect();
    let (route, limit): (&'static str, u32) = match (&req.method, segments.as_slice()) {
        (&Method::POST, ["2", "tweets"]) => ("create", 100),
        (&Method::POST, ["2", "media", "upload"]) => ("upload", 500),
        (&Method::POST, ["2", "media", "metadata"]) => ("metadata", 500),
        (&Method::GET, ["2", "users", "me"]) => ("me", 75),
        (&Method::GET, ["2", "users", _, "tweets"]) => ("timeline", 900),
        _ => {
            return Outcome::Answer(problem(StatusCode::NOT_FOUND, "Not Found", "Not Found"));
        }
    };
    let (remaining, reset) = match take_rate(shared, route, limit, now) {
        Some(r) => r,
        None => {
            let (_, reset) = window(shared, route, now);
            let mut answer = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Too Many Requests",
            );
            rate_headers(&mut answer, limit, 0, reset);
            return Outcome::Answer(answer);
        }
    };
    let outcome = match route {
        "create" => create(shared, req, auth, now, limit),
        "upload" => upload(shared, req),
        "metadata" => Outcome::Answer(metadata(shared, req)),
        "me" => Outcome::Answer(json_response(
            StatusCode::OK,
            &json!({ "data": { "id": USER_ID, "name": NAME, "username": USERNAME } }),
        )),
        _ => Outcome::Answer(timeline(shared, req, segments[2])),
    };
    match outcome {
        Outcome::Answer(mut answer) => {
            if !answer.headers().contains_key("x-rate-limit-limit") {
                rate_headers(&mut answer, limit, remaining, reset);
            }
            Outcome::Answer(answer)
        }
        other => other,
    }
}

fn rate_headers(answer: &mut Answer, limit: u32, remaining: u32, reset: Timestamp) {
    set_header(answer, "x-rate-limit-limit", &limit.to_string());
    set_header(answer, "x-rate-limit-remaining", &remaining.to_string());
    set_header(answer, "x-rate-limit-reset", &reset.as_second().to_string());
}

/// The route's window: its start (a new one begins once the old one is over) and reset.
fn window(shared: &Shared<State>, route: &'static str, now: Timestamp) -> (u32, Timestamp) {
    shared.update(|s| {
        let entry = s.windows.entry(route).or_insert((now, 0));
        if now >= entry.0 + WINDOW {
            *entry = (now, 0);
        }
        (entry.1, entry.0 + WINDOW)
    })
}

/// Counts a request against its window: `(remaining, reset)`, or `None` when used up.
fn take_rate(
    shared: &Shared<State>,
    route: &'static str,
    limit: u32,
    now: Timestamp,
) -> Option<(u32, Timestamp)> {
    let (used, reset) = window(shared, route, now);
    if used >= limit {
        return None;
    }
    shared.update(|s| s.windows.get_mut(route).expect("window").1 += 1);
    Some((limit - used - 1, reset))
}

// --- authentication ----------------------------------------------------------------------

/// Who the request speaks for; `None` answers 401.
fn authenticate(shared: &Shared<State>, req: &Received, now: Timestamp) -> Option<Auth> {
    let header = req.header(AUTHORIZATION.as_str())?;
    if let Some(token) = header.strip_prefix("Bearer ") {
        let state = shared.lock();
        let valid = !state.refuse_bearer
            && state
                .access
                .get(token.trim())
                .is_some_and(|expires| now < *expires);
        return valid.then_some(Auth::OAuth2);
    }
    let params = header.strip_prefix("OAuth ")?;
    verify_oauth1(shared, req, params, now)
        .ok()
        .map(|()| Auth::OAuth1)
}

/// RFC 5849 §3.6 percent-encoding: everything but unreserved characters.
const RFC3986: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, RFC3986).to_string()
}

/// The `oauth_` parameters of an `Authorization: OAuth …` header, decoded.
fn oauth_params(header: &str) -> Option<Vec<(String, String)>> {
    header
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let v = v.trim().strip_prefix('"')?.strip_suffix('"')?;
            let v = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .ok()?
                .into_owned();
            Some((k.trim().to_string(), v))
        })
        .collect()
}

/// The signature X computes for an OAuth 1.0a request (RFC 5849 §3.4.1–3.4.2).
pub fn oauth1_signature(
    method: &str,
    base_url: &str,
    params: &[(String, String)],
    consumer_secret: &str,
    token_secret: &str,
) -> String {
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    encoded.sort();
    let normalized = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let base = format!(
        "{}&{}&{}",
        method.to_ascii_uppercase(),
        enc(base_url),
        enc(&normalized)
    );
    let key = format!("{}&{}", enc(consumer_secret), enc(token_secret));
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).expect("any key");
    mac.update(base.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn verify_oauth1(
    shared: &Shared<State>,
    req: &Received,
    header: &str,
    now: Timestamp,
) -> Result<(), &'static str> {
    let oauth = oauth_params(header).ok_or("a malformed OAuth header")?;
    let get = |name: &str| {
        oauth
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if get("oauth_consumer_key") != Some(CONSUMER_KEY) {
        return Err("unknown consumer key");
    }
    if get("oauth_token") != Some(ACCESS_TOKEN) {
        return Err("unknown token");
    }
    if get("oauth_signature_method") != Some("HMAC-SHA1") {
        return Err("unsupported signature method");
    }
    if get("oauth_version").is_some_and(|v| v != "1.0") {
        return Err("unsupported version");
    }
    let timestamp: i64 = get("oauth_timestamp")
        .and_then(|t| t.parse().ok())
        .ok_or("no timestamp")?;
    let at = Timestamp::from_second(timestamp).map_err(|_| "a bad timestamp")?;
    if at.duration_since(now).abs() > OAUTH1_SKEW {
        return Err("timestamp out of bounds");
    }
    let nonce = get("oauth_nonce").ok_or("no nonce")?.to_string();
    let given = get("oauth_signature").ok_or("no signature")?.to_string();
    // The signed parameters: the query, a form body, and the protocol parameters.
    let mut params: Vec<(String, String)> = req.query();
    if req
        .header(CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
    {
        params.extend(crate::fake_server::form_pairs(&req.body));
    }
    params.extend(
        oauth
            .iter()
            .filter(|(k, _)| k != "oauth_signature" && k != "realm")
            .cloned(),
    );
    let host = req.header("host").ok_or("no host")?.to_ascii_lowercase();
    let base_url = format!("http://{host}{}", req.path);
    let expected = oauth1_signature(
        req.method.as_str(),
        &base_url,
        &params,
        CONSUMER_SECRET,
        ACCESS_TOKEN_SECRET,
    );
    if expected != given {
        return Err("a bad signature");
    }
    if !shared.update(|s| s.nonces.insert(format!("{timestamp}:{nonce}"))) {
        return Err("a nonce used before");
    }
    Ok(())
}

// --- POST /2/oauth2/token ----------------------------------------------------------------

fn token(shared: &Shared<State>, req: &Received, now: Timestamp) -> Answer {
    if !req
        .header(CONTENT_TYPE.as_str())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter [grant_type].",
        );
    }
    let form = form_map(&req.body);
    // A confidential client proves itself with Basic; a public one names its id.
    match req.header(AUTHORIZATION.as_str()) {
        Some(basic) => {
            let decoded = basic
                .strip_prefix("Basic ")
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                .and_then(|b| String::from_utf8(b).ok());
            let ok = decoded.as_deref().and_then(|d| d.split_once(':'))
                == Some((CLIENT_ID, CLIENT_SECRET));
            if !ok {
                return oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized_client",
                    "Missing valid authorization header",
                );
            }
        }
        None => {
            if form.get("client_id").map(String::as_str) != Some(CLIENT_ID) {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Missing required parameter [client_id].",
                );
            }
        }
    }
    let scope = "tweet.write users.read tweet.read offline.access media.write";
    match form.get("grant_type").map(String::as_str) {
        Some("refresh_token") => {
            let Some(old) = form.get("refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Missing required parameter [refresh_token].",
                );
            };
            shared.update(|s| {
                if !s.refresh.remove(old) {
                    s.refresh_refused.push(old.clone());
                    return token_invalid();
                }
                s.refresh_used.push(old.clone());
                let access = s.new_access_token(now);
                let refresh = s.new_refresh_token();
                json_response(
                    StatusCode::OK,
                    &json!({
                        "token_type": "bearer",
                        "expires_in": ACCESS_TOKEN_SECS,
                        "access_token": access,
                        "scope": scope,
                        "refresh_token": refresh,
                    }),
                )
            })
        }
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri), Some(verifier)) = (
                form.get("code"),
                form.get("redirect_uri"),
                form.get("code_verifier"),
            ) else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Missing required parameter [code].",
                );
            };
            let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()));
            shared.update(|s| {
                let Some(pending) = s.codes.remove(code) else {
                    return token_invalid();
                };
                if pending.redirect_uri != *redirect_uri || pending.challenge != challenge {
                    return token_invalid();
                }
                let access = s.new_access_token(now);
                let mut answer = json!({
                    "token_type": "bearer",
                    "expires_in": ACCESS_TOKEN_SECS,
                    "access_token": access,
                    "scope": pending.scope,
                });
                if pending.scope.split(' ').any(|s| s == "offline.access") {
                    answer["refresh_token"] = json!(s.new_refresh_token());
                }
                json_response(StatusCode::OK, &answer)
            })
        }
        _ => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Value passed for the grant type was invalid.",
        ),
    }
}

// --- media -------------------------------------------------------------------------------

fn upload(shared: &Shared<State>, req: &Received) -> Outcome {
    if let Some(fault) = shared.update(|s| s.upload_faults.pop_front()) {
        return match fault {
            Fault::DropBeforeCreate | Fault::DropAfterCreate => Outcome::Drop,
            Fault::HangBeforeCreate | Fault::HangAfterCreate => Outcome::Hang,
            Fault::ErrorBeforeCreate(code) | Fault::ErrorAfterCreate(code) => {
                let status = StatusCode::from_u16(code).expect("a status code");
                Outcome::Answer(problem(
                    status,
                    status.canonical_reason().unwrap_or("Error"),
                    "Service Unavailable",
                ))
            }
            Fault::Unauthorized => Outcome::Answer(unauthorized()),
            Fault::Invalid(message) => Outcome::Answer(invalid_message(&message)),
            Fault::TooManyRequests { reset } => {
                let mut answer = problem(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too Many Requests",
                    "Too Many Requests",
                );
                rate_headers(&mut answer, 500, 0, reset);
                Outcome::Answer(answer)
            }
            Fault::Duplicate => Outcome::Answer(duplicate()),
            Fault::Redirect { status, location } => Outcome::Answer(redirect(status, &location)),
        };
    }
    let content_type = req.header(CONTENT_TYPE.as_str()).unwrap_or_default();
    let Some(parts) = parse_multipart(content_type, &req.body) else {
        return Outcome::Answer(invalid_message(
            "The request body must be multipart/form-data with a `media` part.",
        ));
    };
    let Some(file) = parts.iter().find(|p| p.name == "media") else {
        return Outcome::Answer(invalid(vec![json!({
            "parameters": { "media": [] },
            "message": "The `media` field is required.",
        })]));
    };
    let category = parts
        .iter()
        .find(|p| p.name == "media_category")
        .map(|p| String::from_utf8_lossy(&p.data).into_owned());
    let categories = [
        "tweet_image",
        "tweet_video",
        "tweet_gif",
        "dm_image",
        "dm_video",
        "dm_gif",
        "subtitles",
    ];
    let Some(category) = category.filter(|c| categories.contains(&c.as_str())) else {
        return Outcome::Answer(invalid(vec![json!({
            "parameters": { "media_category": [] },
            "message": "The `media_category` field must be one of tweet_image, tweet_video, tweet_gif, dm_image, dm_video, dm_gif, subtitles.",
        })]));
    };
    if file.data.is_empty() {
        return Outcome::Answer(invalid_message("The media file is empty."));
    }
    if category == "tweet_image" && file.data.len() > 5 * 1024 * 1024 {
        return Outcome::Answer(invalid_message(
            "The media file is larger than the 5242880 bytes images may have.",
        ));
    }
    let now = shared.now();
    let size = imagesize::blob_size(&file.data).ok();
    let answer = shared.update(|s| {
        let id = s.next_id(now);
        let media = FakeMedia {
            media_key: format!("3_{id}"),
            id: id.clone(),
            category: category.clone(),
            file_name: file.file_name.clone(),
            content_type: file.content_type.clone(),
            bytes: file.data.len(),
            alt_text: None,
        };
        let mut data = json!({
            "id": media.id,
            "media_key": media.media_key,
            "size": media.bytes,
            "expires_after_secs": 86_400,
        });
        if let (Some(size), Some(ct)) = (size, &media.content_type) {
            data["image"] = json!({ "image_type": ct, "w": size.width, "h": size.height });
        }
        s.media.push(media);
        json_response(StatusCode::OK, &json!({ "data": data }))
    });
    Outcome::Answer(answer)
}

fn metadata(shared: &Shared<State>, req: &Received) -> Answer {
    let Some(body) = req.json() else {
        return invalid_message("The request body is not valid JSON.");
    };
    let problems = schema_errors("/components/schemas/CreateMediaMetadataRequest", &body);
    if !problems.is_empty() {
        return invalid(problems);
    }
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let alt = body
        .pointer("/metadata/alt_text/text")
        .and_then(Value::as_str)
        .map(str::to_string);
    if alt.as_ref().is_some_and(|a| a.chars().count() > 1000) {
        return invalid_message("The alt text is longer than 1000 characters.");
    }
    shared.update(|s| {
        let Some(media) = s.media.iter_mut().find(|m| m.id == id) else {
            return invalid(vec![json!({
                "parameters": { "id": [id] },
                "message": "The media id is invalid.",
            })]);
        };
        if alt.is_some() {
            media.alt_text = alt.clone();
        }
        json_response(
            StatusCode::OK,
            &json!({ "data": { "id": id, "associated_metadata": body["metadata"] } }),
        )
    })
}

// --- POST /2/tweets ----------------------------------------------------------------------

fn redirect(status: u16, location: &str) -> Answer {
    let mut answer = problem(
        StatusCode::from_u16(status).expect("a status code"),
        "Moved",
        "This resource has moved.",
    );
    set_header(&mut answer, "location", location);
    answer
}

fn create(
    shared: &Shared<State>,
    req: &Received,
    auth: Auth,
    now: Timestamp,
    limit: u32,
) -> Outcome {
    let fault = shared.update(|s| {
        s.create_requests += 1;
        s.create_faults.pop_front()
    });
    match &fault {
        Some(Fault::Unauthorized) => return Outcome::Answer(unauthorized()),
        Some(Fault::Duplicate) => return Outcome::Answer(duplicate()),
        Some(Fault::Invalid(message)) => return Outcome::Answer(invalid_message(message)),
        Some(Fault::TooManyRequests { reset }) => {
            // The window is used up until `reset`: creates before then get 429 too.
            let reset = *reset;
            shared.update(|s| {
                s.windows.insert("create", (reset - WINDOW, limit));
            });
            let mut answer = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Too Many Requests",
            );
            rate_headers(&mut answer, limit, 0, reset);
            return Outcome::Answer(answer);
        }
        Some(Fault::ErrorBeforeCreate(code)) => {
            let status = StatusCode::from_u16(*code).expect("a status code");
            return Outcome::Answer(problem(
                status,
                status.canonical_reason().unwrap_or("Error"),
                status.canonical_reason().unwrap_or("Error"),
            ));
        }
        Some(Fault::DropBeforeCreate) => return Outcome::Drop,
        Some(Fault::HangBeforeCreate) => return Outcome::Hang,
        Some(Fault::Redirect { status, location }) => {
            return Outcome::Answer(redirect(*status, location));
        }
        _ => {}
    }
    let answer = create_post(shared, req, auth, now);
    let created = answer.status() == StatusCode::CREATED;
    match fault {
        Some(Fault::ErrorAfterCreate(code)) if created => {
            let status = StatusCode::from_u16(code).expect("a status code");
            Outcome::Answer(problem(
                status,
                status.canonical_reason().unwrap_or("Error"),
                status.canonical_reason().unwrap_or("Error"),
            ))
        }
        Some(Fault::DropAfterCreate) if created => Outcome::Drop,
        Some(Fault::HangAfterCreate) if created => Outcome::Hang,
        _ => Outcome::Answer(answer),
    }
}

fn create_post(shared: &Shared<State>, req: &Received, auth: Auth, now: Timestamp) -> Answer {
    let Some(body) = req.json() else {
        return invalid_message("The request body is not valid JSON.");
    };
    let problems = schema_errors("/components/schemas/CreatePostsRequest", &body);
    if !problems.is_empty() {
        return invalid(problems);
    }
    let text = body["text"].as_str().unwrap_or_default().to_string();
    let media_ids: Vec<String> = body
        .pointer("/media/media_ids")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if text.trim().is_empty() && media_ids.is_empty() {
        return invalid(vec![json!({
            "parameters": { "text": [text] },
            "message": "Post text or media is required.",
        })]);
    }
    let weighted = cadenced::platforms::text::x_count(&text).weighted;
    if weighted > 280 {
        return invalid(vec![json!({
            "parameters": { "text": [text] },
            "message": format!("The text is {weighted} weighted characters; at most 280 are allowed."),
        })]);
    }
    shared.update(|s| {
        let unknown: Vec<&String> = media_ids
            .iter()
            .filter(|id| !s.media.iter().any(|m| &&m.id == id))
            .collect();
        if !unknown.is_empty() {
            return invalid(vec![json!({
                "parameters": { "media.media_ids": unknown },
                "message": "Your media IDs are invalid.",
            })]);
        }
        if !text.is_empty()
            && s.posts
                .iter()
                .any(|p| p.text == text && now.duration_since(p.created_at) < DUPLICATE_WINDOW)
        {
            return duplicate();
        }
        let id = s.next_id(now);
        let post = FakePost {
            id: id.clone(),
            text,
            created_at: now,
            media_ids,
            request: body.clone(),
            auth: auth.name(),
            hidden_reads: s.timeline_lag,
        };
        let (rendered, _) = render(&post);
        s.posts.push(post);
        json_response(
            StatusCode::CREATED,
            &json!({ "data": { "id": id, "text": rendered, "edit_history_tweet_ids": [id] } }),
        )
    })
}

// --- GET /2/users/{id}/tweets ------------------------------------------------------------

fn timeline(shared: &Shared<State>, req: &Received, user: &str) -> Answer {
    if user != USER_ID {
        return json_response(
            StatusCode::OK,
            &json!({ "errors": [{
                "value": user,
                "detail": format!("Could not find user with id: [{user}]."),
                "title": "Not Found Error",
                "resource_type": "user",
                "parameter": "id",
                "resource_id": user,
                "type": "https://api.twitter.com/2/problems/resource-not-found",
            }]}),
        );
    }
    let max_results = match req.param("max_results") {
        None => 10,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (5..=100).contains(&n) => n,
            _ => {
                return invalid(vec![json!({
                    "parameters": { "max_results": [v] },
                    "message": format!("The `max_results` query parameter value [{v}] is not between 5 and 100"),
                })]);
            }
        },
    };
    let mut times = [None, None];
    for (slot, name) in times.iter_mut().zip(["start_time", "end_time"]) {
        let Some(v) = req.param(name) else { continue };
        match v.parse::<Timestamp>() {
            Ok(t) => *slot = Some(t),
            Err(_) => {
                return invalid(vec![json!({
                    "parameters": { name: [v] },
                    "message": format!("Invalid '{name}':'{v}'. '{name}' must be a valid RFC 3339 date-time."),
                })]);
            }
        }
    }
    let [start, end] = times;
    let offset = match req.param("pagination_token") {
        None => 0,
        Some(t) => match t
            .strip_prefix("7140dibdnow9c7btw")
            .and_then(|n| n.parse().ok())
        {
            Some(n) => n,
            None => {
                return invalid(vec![json!({
                    "parameters": { "pagination_token": [t] },
                    "message": "The `pagination_token` query parameter value is invalid.",
                })]);
            }
        },
    };
    let fields: Vec<String> = req
        .param("tweet.fields")
        .map(|f| f.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    shared.update(|s| {
        s.timeline_reads += 1;
        let mut visible: Vec<FakePost> = Vec::new();
        for post in s.posts.iter_mut() {
            if post.hidden_reads > 0 {
                post.hidden_reads -= 1;
                continue;
            }
            if start.is_some_and(|t| post.created_at < t)
                || end.is_some_and(|t| post.created_at > t)
            {
                continue;
            }
            visible.push(post.clone());
        }
        visible.sort_by_key(|p| std::cmp::Reverse(p.id.parse::<u64>().unwrap_or(0)));
        let page: Vec<&FakePost> = visible.iter().skip(offset).take(max_results).collect();
        let mut meta = json!({ "result_count": page.len() });
        if let (Some(first), Some(last)) = (page.first(), page.last()) {
            meta["newest_id"] = json!(first.id);
            meta["oldest_id"] = json!(last.id);
        }
        if offset + page.len() < visible.len() {
            meta["next_token"] = json!(format!("7140dibdnow9c7btw{}", offset + page.len()));
        }
        let mut answer = json!({ "meta": meta });
        if !page.is_empty() {
            answer["data"] = Value::Array(page.iter().map(|p| post_json(s, p, &fields)).collect());
        }
        json_response(StatusCode::OK, &answer)
    })
}

/// A post as X's read endpoints show it: the rendered text, and the fields asked for.
fn post_json(_state: &State, post: &FakePost, fields: &[&str]) -> Value {
    let (text, urls) = render(post);
    let mut value = json!({ "id": post.id, "text": text, "edit_history_tweet_ids": [post.id] });
    if fields.contains(&"created_at") {
        value["created_at"] = json!(
            post.created_at
                .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        );
    }
    if fields.contains(&"entities") && !urls.is_empty() {
        value["entities"] = json!({ "urls": urls });
    }
    if fields.contains(&"attachments") && !post.media_ids.is_empty() {
        value["attachments"] = json!({
            "media_keys": post.media_ids.iter().map(|id| format!("3_{id}")).collect::<Vec<_>>()
        });
    }
    value
}

/// A `t.co` link for the `n`th link of a post: the same every time the post is read.
fn tco(post_id: &str, n: usize) -> String {
    let digest = sha2::Sha256::digest(format!("{post_id}/{n}").as_bytes());
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let code: String = digest
        .iter()
        .take(10)
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    format!("https://t.co/{code}")
}

/// Where a link ends: at whitespace, without the punctuation that ends a sentence.
fn link_end(text: &str) -> usize {
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    text[..end]
        .trim_end_matches(['.', ',', '!', '?', ';', ':', ')', '\'', '"'])
        .len()
}

/// X's rendering of a post's text: `&`, `<`, `>` escaped, each link a `t.co` link, and a
/// `t.co` link for the media at the end; with the URL entities (`start`/`end` in code points
/// of the rendered text).
fn render(post: &FakePost) -> (String, Vec<Value>) {
    let mut out = String::new();
    let mut urls = Vec::new();
    let mut rest = post.text.as_str();
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    loop {
        let next = ["https://", "http://"]
            .iter()
            .filter_map(|scheme| rest.find(scheme))
            .min();
        let Some(at) = next else {
            out.push_str(&escape(rest));
            break;
        };
        out.push_str(&escape(&rest[..at]));
        let len = link_end(&rest[at..]);
        let link = &rest[at..at + len];
        let short = tco(&post.id, urls.len());
        let start = out.chars().count();
        out.push_str(&short);
        let display = link
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let display = match display.char_indices().nth(26) {
            Some((i, _)) => format!("{}…", &display[..i]),
            None => display.to_string(),
        };
        urls.push(json!({
            "start": start,
            "end": start + short.chars().count(),
            "url": short,
            "expanded_url": link,
            "display_url": display,
        }));
        rest = &rest[at + len..];
    }
    if !post.media_ids.is_empty() {
        let short = tco(&post.id, urls.len());
        if !out.is_empty() {
            out.push(' ');
        }
        let start = out.chars().count();
        out.push_str(&short);
        urls.push(json!({
            "start": start,
            "end": start + short.chars().count(),
            "url": short,
            "expanded_url": format!("https://x.com/{USERNAME}/status/{}/photo/1", post.id),
            "display_url": format!("pic.x.com/{}", short.trim_start_matches("https://t.co/")),
            "media_key": format!("3_{}", post.media_ids[0]),
        }));
    }
    (out, urls)
}

// --- the contract ------------------------------------------------------------------------

/// The contract's validation errors of `body` against the schema at `pointer`, as X lists
/// them in a 400.
pub fn schema_errors(pointer: &'static str, body: &Value) -> Vec<Value> {
    static VALIDATORS: OnceLock<
        std::sync::Mutex<HashMap<&'static str, Arc<jsonschema::Validator>>>,
    > = OnceLock::new();
    let validator = {
        let mut map = VALIDATORS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        map.entry(pointer)
            .or_insert_with(|| {
                let mut root = contract().clone();
                root.as_object_mut()
                    .unwrap()
                    .insert("$ref".into(), json!(format!("#{pointer}")));
                Arc::new(jsonschema::validator_for(&root).expect("the contract compiles"))
            })
            .clone()
    };
    validator
        .iter_errors(body)
        .map(|e| json!({ "message": format!("{e} at {}", e.instance_path()) }))
        .collect()
}

/// X's OpenAPI document, read once.
pub fn contract() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let path = crate::support::repo().join("tests/data/contracts/x/openapi.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).expect("the X contract is JSON")
    })
}
