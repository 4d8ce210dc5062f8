//! A local HTTP server that behaves like a Bluesky PDS as the reference server
//! (`@atproto/pds`, see `tests/servers/bluesky-pds/`) and the lexicons in
//! `tests/data/contracts/bluesky/` describe it, for the daemon's Bluesky tests without Node.
//!
//! What it does like the reference PDS:
//! - `com.atproto.server.createSession` with the handle (or DID) and the app password: an
//!   access JWT whose `exp` claim is two hours on, a refresh JWT (90 days), the DID and the
//!   handle; a wrong password answers 401 `AuthenticationRequired` "Invalid identifier or
//!   password"; at most 30 sessions per 5 minutes (429 after that).
//! - `refreshSession` with the refresh JWT as bearer rotates the pair: the used refresh
//!   token answers 400 `ExpiredToken` "Token has been revoked" afterwards.
//! - Tokens are checked on use: an access token past its `exp` (on the fake's clock) answers
//!   400 `ExpiredToken` "Token has expired", an unknown one 400 `InvalidToken`, one of the
//!   wrong kind 400 `InvalidToken` "Bad token scope", none 401 `AuthenticationRequired`.
//! - `uploadBlob` (the raw body with its `Content-Type`; over 5 MB answers 413) gives a blob
//!   reference with a real CID; `createRecord` checks the repo, the record key (a valid
//!   13-character TID for posts, else 400 `InvalidRequest`), the record (`$type`, text of at
//!   most 300 graphemes and 3000 bytes, `createdAt`, at most four images whose blobs it holds)
//!   and answers HTTP 500 `InternalServerError` for a key that exists; `getRecord` by handle
//!   or DID (400 `RecordNotFound`); `resolveHandle` (400 "Unable to resolve handle");
//!   `getSession`; `RateLimit-Limit`, `-Remaining`, `-Reset` (epoch seconds) on answers.
//!
//! What it adds for tests: faults for the next session, upload, create or read-back
//! ([`Fault`]), handles of other accounts, a clock that follows the test's and can be moved
//! ahead (to expire tokens early), its whole state to inspect, and waits on it.

#![allow(dead_code)] // A shared helper: not every test uses every inspector.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine as _;
use cadenced::clock::Clock;
use hmac::{KeyInit, Mac};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use sha2::Digest;

use crate::fake_server::{
    Answer, Outcome, Received, Server, Shared, json_response, random_hex, set_header,
};

pub const HANDLE: &str = "sneakerstore.test";
pub const DID: &str = "did:plc:ewvi7nxzyoun6zhxrhs64oiz";
pub const APP_PASSWORD: &str = "x7km-2pqr-v9ta-4wbe";
/// Another account, for mentions.
pub const FRIEND_HANDLE: &str = "ana-repairs.test";
pub const FRIEND_DID: &str = "did:plc:4q3bafk6ymjc5dvkxo4s2w7c";

/// How long an access token lasts, and a refresh token.
pub const ACCESS_LIFETIME: SignedDuration = SignedDuration::from_hours(2);
pub const REFRESH_LIFETIME: SignedDuration = SignedDuration::from_hours(90 * 24);
/// The largest blob the PDS takes (its default `PDS_BLOB_UPLOAD_LIMIT`).
pub const BLOB_LIMIT: usize = 5 * 1024 * 1024;
/// `createSession`: 30 per 5 minutes.
pub const SESSION_LIMIT: u32 = 30;
pub const SESSION_WINDOW: SignedDuration = SignedDuration::from_mins(5);

/// The key the fake signs its JWTs with.
const JWT_KEY: &[u8] = b"fake-pds-jwt-secret";

/// What the next request of a kind does instead of, or after, its normal work. Faults are
/// queued per kind.
#[derive(Debug, Clone)]
pub enum Fault {
    /// 401 `AuthenticationRequired`, doing nothing.
    Unauthorized,
    /// 400 `ExpiredToken` "Token has expired", doing nothing (a token expired early).
    ExpiredToken,
    /// 400 `InvalidRequest` with this message, doing nothing.
    Invalid(String),
    /// 429 `RateLimitExceeded` with `RateLimit-Remaining: 0` and this reset, doing nothing.
    TooManyRequests { reset: Timestamp },
    /// This status code (500, 502, 503) with `InternalServerError`, doing nothing.
    ErrorBefore(u16),
    /// Does the work (the record exists), then answers this status code.
    ErrorAfter(u16),
    /// Closes the connection after reading the request, doing nothing.
    DropBefore,
    /// Does the work, then closes the connection without answering.
    DropAfter,
    /// Never answers, doing nothing.
    HangBefore,
    /// Does the work, then never answers.
    HangAfter,
    /// A redirect (301, 307, 308) to `location`, doing nothing.
    Redirect { status: u16, location: String },
}

/// A record in the repository.
#[derive(Debug, Clone)]
pub struct FakeRecord {
    pub collection: String,
    pub rkey: String,
    pub uri: String,
    pub cid: String,
    pub value: Value,
    pub created_at: Timestamp,
}

impl FakeRecord {
    pub fn text(&self) -> &str {
        self.value["text"].as_str().unwrap_or_default()
    }
}

/// An uploaded blob.
#[derive(Debug, Clone)]
pub struct FakeBlob {
    pub cid: String,
    pub mime_type: String,
    pub size: usize,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The body as text (a blob's bytes lossily).
    pub body: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Access,
    Refresh,
}

#[derive(Debug, Clone)]
struct TokenInfo {
    kind: Kind,
    expires: Timestamp,
    revoked: bool,
}

/// Everything the fake knows.
#[derive(Debug)]
pub struct State {
    pub records: Vec<FakeRecord>,
    pub blobs: Vec<FakeBlob>,
    pub requests: Vec<RecordedRequest>,
    /// `createRecord` received, faults included.
    pub create_requests: usize,
    /// Sessions opened with the app password.
    pub sessions_created: usize,
    /// Sessions renewed with a refresh token.
    pub refreshes: usize,
    /// Refresh tokens refused (revoked by a rotation, expired, unknown).
    pub refresh_refused: Vec<String>,
    pub access_issued: Vec<String>,
    pub refresh_issued: Vec<String>,
    pub session_faults: VecDeque<Fault>,
    pub upload_faults: VecDeque<Fault>,
    pub create_faults: VecDeque<Fault>,
    pub get_faults: VecDeque<Fault>,
    /// Handles this PDS (and its directory) resolves, to DIDs.
    pub handles: HashMap<String, String>,
    pub app_password: String,
    /// Web pages served outside `/xrpc/` (a shop page a link card reads), by path.
    pub pages: HashMap<String, String>,
    tokens: HashMap<String, TokenInfo>,
    windows: HashMap<&'static str, (Timestamp, u32)>,
    revision: u64,
}

impl State {
    pub fn posts(&self) -> Vec<&FakeRecord> {
        self.records
            .iter()
            .filter(|r| r.collection == "app.bsky.feed.post")
            .collect()
    }

    pub fn posts_with_text(&self, text: &str) -> usize {
        self.posts().iter().filter(|r| r.text() == text).count()
    }

    pub fn requests_to(&self, method: &str) -> usize {
        let path = format!("/xrpc/{method}");
        self.requests
            .iter()
            .filter(|r| r.path.split('?').next() == Some(path.as_str()))
            .count()
    }

    fn issue(&mut self, kind: Kind, now: Timestamp) -> String {
        let (typ, scope, lifetime) = match kind {
            Kind::Access => ("at+jwt", "com.atproto.appPass", ACCESS_LIFETIME),
            Kind::Refresh => ("refresh+jwt", "com.atproto.refresh", REFRESH_LIFETIME),
        };
        let expires = now + lifetime;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        let header = b64(&json!({ "typ": typ, "alg": "HS256" }));
        let mut claims = json!({
            "scope": scope,
            "sub": DID,
            "iat": now.as_second(),
            "exp": expires.as_second(),
            "aud": "did:web:localhost",
        });
        if kind == Kind::Refresh {
            claims["jti"] = json!(random_hex(16));
        }
        let payload = b64(&claims);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(JWT_KEY).expect("any key");
        mac.update(format!("{header}.{payload}").as_bytes());
        let signature =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let token = format!("{header}.{payload}.{signature}");
        self.tokens.insert(
            token.clone(),
            TokenInfo {
                kind,
                expires,
                revoked: false,
            },
        );
        match kind {
            Kind::Access => self.access_issued.push(token.clone()),
            Kind::Refresh => self.refresh_issued.push(token.clone()),
        }
        token
    }

    fn session(&mut self, now: Timestamp) -> Value {
        json!({
            "accessJwt": self.issue(Kind::Access, now),
            "refreshJwt": self.issue(Kind::Refresh, now),
            "handle": HANDLE,
            "did": DID,
            "email": format!("shop@{HANDLE}"),
            "emailConfirmed": true,
            "active": true,
        })
    }

    fn next_rev(&mut self, now: Timestamp) -> String {
        self.revision += 1;
        let micros = (now.as_microsecond().max(0) as u64) << 10 | (self.revision & 0x3ff);
        cadenced::platforms::bluesky::tid(micros & 0x7FFF_FFFF_FFFF_FFFF)
    }
}

fn new_state() -> State {
    State {
        records: Vec::new(),
        blobs: Vec::new(),
        requests: Vec::new(),
        create_requests: 0,
        sessions_created: 0,
        refreshes: 0,
        refresh_refused: Vec::new(),
        access_issued: Vec::new(),
        refresh_issued: Vec::new(),
        session_faults: VecDeque::new(),
        upload_faults: VecDeque::new(),
        create_faults: VecDeque::new(),
        get_faults: VecDeque::new(),
        handles: HashMap::from([
            (HANDLE.to_string(), DID.to_string()),
            (FRIEND_HANDLE.to_string(), FRIEND_DID.to_string()),
        ]),
        app_password: APP_PASSWORD.to_string(),
        pages: HashMap::new(),
        tokens: HashMap::new(),
        windows: HashMap::new(),
        revision: 0,
    }
}

/// A running fake PDS. Dropping it stops the server.
pub struct FakeBluesky(Server<State>);

impl FakeBluesky {
    pub async fn start() -> FakeBluesky {
        FakeBluesky::start_with_clock(Arc::new(cadenced::clock::SystemClock)).await
    }

    /// Starts on the current runtime with the test's clock (the daemon's, in daemon tests).
    pub async fn start_with_clock(clock: Arc<dyn Clock>) -> FakeBluesky {
        FakeBluesky(Server::start("fake PDS", new_state(), clock, handle).await)
    }

    pub fn start_on_thread() -> FakeBluesky {
        FakeBluesky(Server::start_on_thread("fake-pds", new_state(), handle))
    }

    /// `http://127.0.0.1:<port>`: the channel's `service`.
    pub fn url(&self) -> String {
        self.0.url()
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state()
    }

    pub fn now(&self) -> Timestamp {
        self.0.now()
    }

    /// Moves the fake's clock ahead of the test's: tokens expire earlier than the client
    /// expects.
    pub fn advance(&self, by: SignedDuration) {
        self.0.advance(by);
    }

    pub fn fail_next_session(&self, fault: Fault) {
        self.0.update(|s| s.session_faults.push_back(fault));
    }

    pub fn fail_next_upload(&self, fault: Fault) {
        self.0.update(|s| s.upload_faults.push_back(fault));
    }

    pub fn fail_next_create(&self, fault: Fault) {
        self.0.update(|s| s.create_faults.push_back(fault));
    }

    pub fn fail_next_get(&self, fault: Fault) {
        self.0.update(|s| s.get_faults.push_back(fault));
    }

    pub fn clear_faults(&self) {
        self.0.update(|s| {
            s.session_faults.clear();
            s.upload_faults.clear();
            s.create_faults.clear();
            s.get_faults.clear();
        });
    }

    /// Serves `html` at `path` (outside `/xrpc/`): a web page a link card reads.
    pub fn serve_page(&self, path: &str, html: &str) {
        self.0
            .update(|s| s.pages.insert(path.to_string(), html.to_string()));
    }

    /// A new app password: the old one stops working (the user revoked it).
    pub fn set_app_password(&self, password: &str) {
        self.0.update(|s| s.app_password = password.to_string());
    }

    pub fn records(&self) -> Vec<FakeRecord> {
        self.state().records.clone()
    }

    pub fn posts_with_text(&self, text: &str) -> usize {
        self.state().posts_with_text(text)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state().requests.clone()
    }

    pub fn create_requests(&self) -> usize {
        self.state().create_requests
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

// --- answers -----------------------------------------------------------------------------

fn xrpc_error(status: StatusCode, error: &str, message: &str) -> Answer {
    json_response(status, &json!({ "error": error, "message": message }))
}

fn invalid(message: &str) -> Answer {
    xrpc_error(StatusCode::BAD_REQUEST, "InvalidRequest", message)
}

fn auth_required(message: &str) -> Answer {
    xrpc_error(StatusCode::UNAUTHORIZED, "AuthenticationRequired", message)
}

fn expired() -> Answer {
    xrpc_error(StatusCode::BAD_REQUEST, "ExpiredToken", "Token has expired")
}

fn internal(status: u16) -> Answer {
    xrpc_error(
        StatusCode::from_u16(status).expect("a status code"),
        "InternalServerError",
        "Internal Server Error",
    )
}

fn redirect(status: u16, location: &str) -> Answer {
    let mut answer = xrpc_error(
        StatusCode::from_u16(status).expect("a status code"),
        "Moved",
        "Moved",
    );
    set_header(&mut answer, "location", location);
    answer
}

fn rate_headers(answer: &mut Answer, limit: u32, remaining: u32, reset: Timestamp, window: i64) {
    set_header(answer, "ratelimit-limit", &limit.to_string());
    set_header(answer, "ratelimit-remaining", &remaining.to_string());
    set_header(answer, "ratelimit-reset", &reset.as_second().to_string());
    set_header(answer, "ratelimit-policy", &format!("{limit};w={window}"));
}

/// What a fault that comes before the work answers; `None` for the faults that come after.
fn fault_before(fault: &Fault, limit: u32, window: i64) -> Option<Outcome> {
    Some(match fault {
        Fault::Unauthorized => Outcome::Answer(auth_required("Authentication Required")),
        Fault::ExpiredToken => Outcome::Answer(expired()),
        Fault::Invalid(message) => Outcome::Answer(invalid(message)),
        Fault::TooManyRequests { reset } => {
            let mut answer = xrpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitExceeded",
                "Rate Limit Exceeded",
            );
            rate_headers(&mut answer, limit, 0, *reset, window);
            Outcome::Answer(answer)
        }
        Fault::ErrorBefore(code) => Outcome::Answer(internal(*code)),
        Fault::DropBefore => Outcome::Drop,
        Fault::HangBefore => Outcome::Hang,
        Fault::Redirect { status, location } => Outcome::Answer(redirect(*status, location)),
        Fault::ErrorAfter(_) | Fault::DropAfter | Fault::HangAfter => return None,
    })
}

/// What a fault that comes after the work does to a successful answer.
fn fault_after(fault: Option<Fault>, answer: Answer) -> Outcome {
    if !answer.status().is_success() {
        return Outcome::Answer(answer);
    }
    match fault {
        Some(Fault::ErrorAfter(code)) => Outcome::Answer(internal(code)),
        Some(Fault::DropAfter) => Outcome::Drop,
        Some(Fault::HangAfter) => Outcome::Hang,
        _ => Outcome::Answer(answer),
    }
}

// --- the handler -------------------------------------------------------------------------

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
    let Some(method) = req.path.strip_prefix("/xrpc/") else {
        let page = shared.lock().pages.get(&req.path).cloned();
        return Outcome::Answer(match page {
            Some(html) if req.method == Method::GET => hyper::Response::builder()
                .status(StatusCode::OK)
                .header(CONTENT_TYPE, "text/html; charset=utf-8")
                .body(http_body_util::Full::new(bytes::Bytes::from(html)))
                .unwrap(),
            _ => xrpc_error(StatusCode::NOT_FOUND, "NotFound", "Not Found"),
        });
    };
    // Rate limits: createSession's own, and the general one every route shares.
    let (route, limit, window): (&'static str, u32, SignedDuration) = match method {
        "com.atproto.server.createSession" => ("session", SESSION_LIMIT, SESSION_WINDOW),
        _ => ("all", 3000, SignedDuration::from_mins(5)),
    };
    let window_secs = window.as_secs();
    let (remaining, reset) = match take_rate(shared, route, limit, window, now) {
        Ok(r) => r,
        Err(reset) => {
            let mut answer = xrpc_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RateLimitExceeded",
                "Rate Limit Exceeded",
            );
            rate_headers(&mut answer, limit, 0, reset, window_secs);
            return Outcome::Answer(answer);
        }
    };
    let outcome = match (&req.method, method) {
        (&Method::POST, "com.atproto.server.createSession") => create_session(shared, req, now),
        (&Method::POST, "com.atproto.server.refreshSession") => {
            Outcome::Answer(refresh_session(shared, req, now))
        }
        (&Method::GET, "com.atproto.server.getSession") => {
            Outcome::Answer(match authorize(shared, req, Kind::Access, now) {
                Ok(()) => json_response(
                    StatusCode::OK,
                    &json!({ "handle": HANDLE, "did": DID, "email": format!("shop@{HANDLE}"), "emailConfirmed": true, "active": true }),
                ),
                Err(answer) => *answer,
            })
        }
        (&Method::POST, "com.atproto.repo.uploadBlob") => upload_blob(shared, req, now),
        (&Method::POST, "com.atproto.repo.createRecord") => create_record(shared, req, now),
        (&Method::GET, "com.atproto.repo.getRecord") => get_record(shared, req),
        (&Method::GET, "com.atproto.identity.resolveHandle") => {
            let handle = req.param("handle").unwrap_or_default();
            let did = shared.lock().handles.get(&handle.to_lowercase()).cloned();
            Outcome::Answer(match did {
                Some(did) => json_response(StatusCode::OK, &json!({ "did": did })),
                None => invalid("Unable to resolve handle"),
            })
        }
        (_, m) if m.starts_with("app.bsky.") => {
            // No AppView behind this PDS, as on the reference server run alone.
            Outcome::Answer(invalid("No AppView is configured for app.bsky methods"))
        }
        _ => Outcome::Answer(xrpc_error(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            "Method Not Implemented",
        )),
    };
    match outcome {
        Outcome::Answer(mut answer) => {
            if !answer.headers().contains_key("ratelimit-limit") {
                rate_headers(&mut answer, limit, remaining, reset, window_secs);
            }
            Outcome::Answer(answer)
        }
        other => other,
    }
}

/// Counts a request against its window: `(remaining, reset)`, or the reset when used up.
fn take_rate(
    shared: &Shared<State>,
    route: &'static str,
    limit: u32,
    window: SignedDuration,
    now: Timestamp,
) -> Result<(u32, Timestamp), Timestamp> {
    shared.update(|s| {
        let entry = s.windows.entry(route).or_insert((now, 0));
        if now >= entry.0 + window {
            *entry = (now, 0);
        }
        let reset = entry.0 + window;
        if entry.1 >= limit {
            return Err(reset);
        }
        entry.1 += 1;
        Ok((limit - entry.1, reset))
    })
}

/// Checks the bearer token for a call that needs one of `kind`.
fn authorize(
    shared: &Shared<State>,
    req: &Received,
    kind: Kind,
    now: Timestamp,
) -> Result<(), Box<Answer>> {
    let Some(token) = req
        .header(AUTHORIZATION.as_str())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(str::trim)
    else {
        return Err(Box::new(auth_required("Authentication Required")));
    };
    let state = shared.lock();
    let Some(info) = state.tokens.get(token) else {
        return Err(Box::new(xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidToken",
            "Token could not be verified",
        )));
    };
    if info.kind != kind {
        return Err(Box::new(xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidToken",
            "Bad token scope",
        )));
    }
    if info.revoked {
        return Err(Box::new(xrpc_error(
            StatusCode::BAD_REQUEST,
            "ExpiredToken",
            "Token has been revoked",
        )));
    }
    if now >= info.expires {
        return Err(Box::new(expired()));
    }
    Ok(())
}

fn create_session(shared: &Shared<State>, req: &Received, now: Timestamp) -> Outcome {
    let fault = shared.update(|s| s.session_faults.pop_front());
    if let Some(outcome) = fault
        .as_ref()
        .and_then(|f| fault_before(f, SESSION_LIMIT, SESSION_WINDOW.as_secs()))
    {
        return outcome;
    }
    let Some(body) = req.json() else {
        return Outcome::Answer(invalid("Request body must be JSON"));
    };
    let (Some(identifier), Some(password)) =
        (body["identifier"].as_str(), body["password"].as_str())
    else {
        return Outcome::Answer(invalid(
            "Input must have the properties \"identifier\" and \"password\"",
        ));
    };
    let answer = shared.update(|s| {
        let known = identifier.eq_ignore_ascii_case(HANDLE) || identifier == DID;
        if !known || password != s.app_password {
            return auth_required("Invalid identifier or password");
        }
        s.sessions_created += 1;
        let session = s.session(now);
        json_response(StatusCode::OK, &session)
    });
    fault_after(fault, answer)
}

fn refresh_session(shared: &Shared<State>, req: &Received, now: Timestamp) -> Answer {
    let token = req
        .header(AUTHORIZATION.as_str())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    if let Err(answer) = authorize(shared, req, Kind::Refresh, now) {
        if let Some(token) = token {
            shared.update(|s| s.refresh_refused.push(token));
        }
        return *answer;
    }
    let token = token.expect("authorized");
    shared.update(|s| {
        if let Some(info) = s.tokens.get_mut(&token) {
            info.revoked = true;
        }
        s.refreshes += 1;
        let session = s.session(now);
        json_response(StatusCode::OK, &session)
    })
}

/// A CIDv1 with sha2-256, in base32 with its multibase prefix: `raw` (0x55) blobs start
/// `bafkrei`, `dag-cbor` (0x71) records `bafyrei`.
fn cid(codec: u8, bytes: &[u8]) -> String {
    let mut raw = vec![0x01, codec, 0x12, 0x20];
    raw.extend_from_slice(&sha2::Sha256::digest(bytes));
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::from("b");
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in raw {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

fn upload_blob(shared: &Shared<State>, req: &Received, now: Timestamp) -> Outcome {
    if let Err(answer) = authorize(shared, req, Kind::Access, now) {
        return Outcome::Answer(*answer);
    }
    let fault = shared.update(|s| s.upload_faults.pop_front());
    if let Some(outcome) = fault.as_ref().and_then(|f| fault_before(f, 3000, 300)) {
        return outcome;
    }
    if req.body.len() > BLOB_LIMIT {
        return Outcome::Answer(xrpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeError",
            "request entity too large",
        ));
    }
    let mime_type = req
        .header(CONTENT_TYPE.as_str())
        .unwrap_or("application/octet-stream")
        .to_string();
    let answer = shared.update(|s| {
        let blob = FakeBlob {
            cid: cid(0x55, &req.body),
            mime_type,
            size: req.body.len(),
        };
        let answer = json_response(
            StatusCode::OK,
            &json!({ "blob": {
                "$type": "blob",
                "ref": { "$link": blob.cid },
                "mimeType": blob.mime_type,
                "size": blob.size,
            }}),
        );
        s.blobs.push(blob);
        answer
    });
    fault_after(fault, answer)
}

/// Whether `rkey` is a TID: 13 characters of base32-sortable, the first at most `j`.
pub fn is_tid(rkey: &str) -> bool {
    const ALPHABET: &str = "234567abcdefghijklmnopqrstuvwxyz";
    rkey.len() == 13
        && rkey.chars().all(|c| ALPHABET.contains(c))
        && rkey
            .chars()
            .next()
            .is_some_and(|c| "234567abcdefghij".contains(c))
}

/// The checks the PDS makes of an `app.bsky.feed.post` record; the message of the first
/// that fails.
fn check_post(record: &Value, blobs: &[FakeBlob]) -> Result<(), String> {
    let prefix = "Invalid app.bsky.feed.post record";
    let text = record["text"]
        .as_str()
        .ok_or(format!("{prefix}: Record must have the property \"text\""))?;
    let graphemes = unicode_segmentation::UnicodeSegmentation::graphemes(text, true).count();
    if graphemes > 300 {
        return Err(format!(
            "{prefix}: Record/text must not be longer than 300 graphemes"
        ));
    }
    if text.len() > 3000 {
        return Err(format!(
            "{prefix}: Record/text must not be longer than 3000 characters"
        ));
    }
    let created = record["createdAt"].as_str().ok_or(format!(
        "{prefix}: Record must have the property \"createdAt\""
    ))?;
    if created.parse::<Timestamp>().is_err() {
        return Err(format!(
            "{prefix}: Record/createdAt must be an valid atproto datetime (both RFC-3339 and ISO-8601)"
        ));
    }
    for (i, facet) in record["facets"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let (Some(start), Some(end)) = (
            facet.pointer("/index/byteStart").and_then(Value::as_u64),
            facet.pointer("/index/byteEnd").and_then(Value::as_u64),
        ) else {
            return Err(format!(
                "{prefix}: Record/facets/{i}/index must have the properties \"byteStart\" and \"byteEnd\""
            ));
        };
        if start > end {
            return Err(format!(
                "{prefix}: Record/facets/{i}/index is not a valid range"
            ));
        }
    }
    if let Some(langs) = record["langs"].as_array()
        && langs.len() > 3
    {
        return Err(format!(
            "{prefix}: Record/langs must not have more than 3 elements"
        ));
    }
    if record.pointer("/embed/$type").and_then(Value::as_str) == Some("app.bsky.embed.images") {
        let images = record
            .pointer("/embed/images")
            .and_then(Value::as_array)
            .ok_or(format!(
                "{prefix}: Record/embed must have the property \"images\""
            ))?;
        if images.len() > 4 {
            return Err(format!(
                "{prefix}: Record/embed/images must not have more than 4 elements"
            ));
        }
        for (i, image) in images.iter().enumerate() {
            if image["alt"].as_str().is_none() {
                return Err(format!(
                    "{prefix}: Record/embed/images/{i} must have the property \"alt\""
                ));
            }
            let link = image
                .pointer("/image/ref/$link")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !blobs.iter().any(|b| b.cid == link) {
                return Err(format!("Could not find blob: {link}"));
            }
        }
    }
    Ok(())
}

fn create_record(shared: &Shared<State>, req: &Received, now: Timestamp) -> Outcome {
    if let Err(answer) = authorize(shared, req, Kind::Access, now) {
        return Outcome::Answer(*answer);
    }
    let fault = shared.update(|s| {
        s.create_requests += 1;
        s.create_faults.pop_front()
    });
    if let Some(outcome) = fault.as_ref().and_then(|f| fault_before(f, 3000, 300)) {
        return outcome;
    }
    let Some(body) = req.json() else {
        return Outcome::Answer(invalid("Request body must be JSON"));
    };
    let answer = shared.update(|s| {
        let repo = body["repo"].as_str().unwrap_or_default();
        if !(repo.eq_ignore_ascii_case(HANDLE) || repo == DID) {
            return invalid(&format!("Invalid repo: {repo}"));
        }
        let Some(collection) = body["collection"].as_str() else {
            return invalid("Input must have the property \"collection\"");
        };
        let record = body["record"].clone();
        if record["$type"].as_str() != Some(collection) {
            return invalid(&format!(
                "Invalid $type: expected {collection}, got {}",
                record["$type"]
            ));
        }
        let rkey = match body["rkey"].as_str() {
            Some(k) => k.to_string(),
            None => s.next_rev(now),
        };
        if collection == "app.bsky.feed.post" {
            if !is_tid(&rkey) {
                return invalid(&format!("Invalid TID: {rkey}"));
            }
            if let Err(message) = check_post(&record, &s.blobs) {
                return invalid(&message);
            }
        }
        if s.records
            .iter()
            .any(|r| r.collection == collection && r.rkey == rkey)
        {
            // What the reference PDS answers for a key that exists.
            return internal(500);
        }
        let uri = format!("at://{DID}/{collection}/{rkey}");
        let cid = cid(0x71, record.to_string().as_bytes());
        let rev = s.next_rev(now);
        s.records.push(FakeRecord {
            collection: collection.to_string(),
            rkey,
            uri: uri.clone(),
            cid: cid.clone(),
            value: record,
            created_at: now,
        });
        json_response(
            StatusCode::OK,
            &json!({
                "uri": uri,
                "cid": cid,
                "commit": { "cid": cid, "rev": rev },
                "validationStatus": "valid",
            }),
        )
    });
    fault_after(fault, answer)
}

fn get_record(shared: &Shared<State>, req: &Received) -> Outcome {
    let fault = shared.update(|s| s.get_faults.pop_front());
    if let Some(outcome) = fault.as_ref().and_then(|f| fault_before(f, 3000, 300)) {
        return outcome;
    }
    let (Some(repo), Some(collection), Some(rkey)) = (
        req.param("repo"),
        req.param("collection"),
        req.param("rkey"),
    ) else {
        return Outcome::Answer(invalid(
            "Params must have the properties \"repo\", \"collection\" and \"rkey\"",
        ));
    };
    let state = shared.lock();
    let did = if repo.starts_with("did:") {
        Some(repo.clone())
    } else {
        state.handles.get(&repo.to_lowercase()).cloned()
    };
    if did.as_deref() != Some(DID) {
        return Outcome::Answer(invalid(&format!("Could not find repo: {repo}")));
    }
    let answer = match state
        .records
        .iter()
        .find(|r| r.collection == collection && r.rkey == rkey)
    {
        Some(r) => json_response(
            StatusCode::OK,
            &json!({ "uri": r.uri, "cid": r.cid, "value": r.value }),
        ),
        None => xrpc_error(
            StatusCode::BAD_REQUEST,
            "RecordNotFound",
            &format!("Could not locate record: at://{DID}/{collection}/{rkey}"),
        ),
    };
    drop(state);
    fault_after(fault, answer)
}
