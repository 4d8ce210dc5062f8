//! A local HTTP server that behaves like a Mastodon instance's API as its documentation
//! describes it, for the adapter's tests and for crash tests that run the real binary.
//!
//! What it does like Mastodon: bearer-token check (401 `{"error":"The access token is
//! invalid"}`, 403 for a read-only token), `POST /api/v2/media` (multipart `file` and
//! `description`; 202 with `url: null` while "processing", then `GET /api/v1/media/{id}`
//! answers 206 until it is ready), `POST /api/v1/statuses` with `Idempotency-Key` (a key
//! seen in the last hour returns the same status and creates nothing, scoped to the one
//! account like Mastodon's), its 422 validations, `verify_credentials`, the account's
//! statuses newest first with `limit`/`max_id` paging and HTML `content`, and
//! `GET /api/v2/instance`. Ids are snowflakes (time-ordered) as on Mastodon.
//!
//! What it adds for tests: faults for the next create or upload (see [`CreateFault`],
//! [`UploadFault`]), a clock that can be moved forward ([`FakeMastodon::advance`]), seeded
//! statuses, and its whole state to inspect, with waits on it instead of sleeps.
//!
//! It runs either on the test's own runtime ([`FakeMastodon::start`]) or on a thread with
//! its own runtime ([`FakeMastodon::start_on_thread`]) for synchronous tests that drive the
//! `cadenced` binary. Dropping it stops the server.

#![allow(dead_code)] // A shared helper: not every test uses every inspector.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// The access token the fake accepts.
pub const TOKEN: &str = "fake-mastodon-token";
/// The id of the one account the token belongs to.
pub const ACCOUNT_ID: &str = "109348853520924061";
pub const USERNAME: &str = "shop";

/// How long Mastodon remembers an `Idempotency-Key` (`redis.setex(..., 3_600, ...)`).
pub const IDEMPOTENCY_TTL: SignedDuration = SignedDuration::from_hours(1);

/// How long the waits wait before failing the test.
const WAIT_LIMIT: Duration = Duration::from_secs(20);

/// What the next `POST /api/v1/statuses` does instead of (or after) its normal work. Faults
/// are queued: each create takes the next one.
#[derive(Debug, Clone)]
pub enum CreateFault {
    /// 422 with this `error` text, creating nothing.
    Reject422(String),
    /// 429 as Mastodon's rate limiter answers it: `X-RateLimit-Limit: 300`,
    /// `X-RateLimit-Remaining: 0`, `X-RateLimit-Reset: <reset>` (ISO 8601 with
    /// microseconds), `Date: <date>` (no `Date` header when `None`), `Retry-After` when set
    /// (Mastodon sends none; proxies do). Creates nothing.
    TooManyRequests {
        reset: Option<Timestamp>,
        date: Option<Timestamp>,
        retry_after: Option<String>,
    },
    /// This status code (e.g. 500, 503) without creating anything.
    ErrorBeforeCreate(u16),
    /// Creates the status (idempotency key stored), then answers this status code.
    ErrorAfterCreate(u16),
    /// Closes the connection after reading the request, creating nothing.
    DropBeforeCreate,
    /// Creates the status, then closes the connection without answering.
    DropAfterCreate,
    /// Never answers and creates nothing (the client's time-out fires).
    HangBeforeCreate,
    /// Creates the status, then never answers.
    HangAfterCreate,
    /// Answers 307 Temporary Redirect to this address, creating nothing (a moved or
    /// misconfigured instance; a client that follows it posts to the new address).
    Redirect(String),
}

/// What the next `POST /api/v2/media` does instead of its normal work.
#[derive(Debug, Clone, Copy)]
pub enum UploadFault {
    /// This status code, storing nothing.
    Status(u16),
    /// Closes the connection, storing nothing.
    Drop,
}

/// A status on the fake instance.
#[derive(Debug, Clone)]
pub struct FakeStatus {
    pub id: String,
    /// The `status` text as received (or seeded).
    pub text: String,
    pub idempotency_key: Option<String>,
    pub created_at: Timestamp,
    pub media_ids: Vec<String>,
    pub visibility: String,
    pub spoiler_text: String,
    pub sensitive: bool,
    pub language: Option<String>,
    /// The create request's JSON body (`Null` for seeded statuses).
    pub request: Value,
}

/// An uploaded media attachment.
#[derive(Debug, Clone)]
pub struct FakeMedia {
    pub id: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: usize,
    pub description: Option<String>,
    /// `GET /api/v1/media/{id}` answers 206 this many more times.
    pub processing_polls_left: u32,
    /// How often it was polled.
    pub polls: u32,
    pub status_id: Option<String>,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Everything the fake knows. Tests read it through [`FakeMastodon::state`] or the helpers.
#[derive(Debug)]
pub struct State {
    pub statuses: Vec<FakeStatus>,
    pub media: Vec<FakeMedia>,
    pub requests: Vec<RecordedRequest>,
    /// `POST /api/v1/statuses` received, replays and faults included.
    pub create_requests: usize,
    /// Every upload answers 202 and then 206 to this many polls.
    pub processing_polls: u32,
    pub max_characters: usize,
    /// The token lacks the write scopes: every POST answers 403.
    pub read_only: bool,
    /// Reads of the account and its statuses answer 503 (the read-back cannot tell).
    pub reads_fail: bool,
    pub create_faults: VecDeque<CreateFault>,
    pub upload_faults: VecDeque<UploadFault>,
    /// Idempotency key → (status id, when it was stored).
    keys: HashMap<String, (String, Timestamp)>,
    clock_offset: SignedDuration,
    /// The clock the fake follows instead of the real one (the test's, on tokio's paused
    /// clock), so its `created_at`, `Date` and key lifetimes agree with the daemon's time.
    clock: Option<FollowedClock>,
    sequence: u64,
}

/// A clock to follow; a newtype only so that `State` stays `Debug`.
pub struct FollowedClock(pub Arc<dyn cadenced::clock::Clock>);

impl std::fmt::Debug for FollowedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FollowedClock")
    }
}

impl State {
    pub fn statuses_with_key(&self, key: &str) -> usize {
        self.statuses
            .iter()
            .filter(|s| s.idempotency_key.as_deref() == Some(key))
            .count()
    }

    pub fn statuses_with_text(&self, text: &str) -> usize {
        self.statuses.iter().filter(|s| s.text == text).count()
    }

    /// The fake's clock: the real one (or the one it follows) moved by
    /// [`FakeMastodon::advance`].
    pub fn now(&self) -> Timestamp {
        let base = match &self.clock {
            Some(clock) => clock.0.now(),
            None => real_now(),
        };
        base + self.clock_offset
    }

    /// A snowflake id as Mastodon makes them: milliseconds since the epoch, then 16 bits of
    /// sequence, so ids sort by time.
    fn next_id(&mut self, at: Timestamp) -> String {
        self.sequence += 1;
        let millis = u64::try_from(at.as_millisecond()).unwrap_or(0);
        ((millis << 16) | (self.sequence & 0xffff)).to_string()
    }
}

#[allow(
    clippy::disallowed_methods,
    reason = "the fake server stamps `created_at` and `Date` like a real server, from the real clock"
)]
fn real_now() -> Timestamp {
    Timestamp::now()
}

struct Shared {
    state: Mutex<State>,
    /// Wakes blocking waiters on every change.
    changed: Condvar,
    /// Wakes async waiters on every change.
    notify: Notify,
    base_url: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and wakes every waiter.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let result = f(&mut self.lock());
        self.changed.notify_all();
        self.notify.notify_waiters();
        result
    }
}

enum Runner {
    /// The accept loop on the test's runtime; aborting it drops every connection.
    Task(tokio::task::JoinHandle<()>),
    /// A thread with its own runtime, stopped through the sender.
    Thread(Option<tokio::sync::oneshot::Sender<()>>),
}

/// A running fake instance. See the module documentation.
pub struct FakeMastodon {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runner: Runner,
}

impl FakeMastodon {
    /// Starts the server on the current tokio runtime, on 127.0.0.1 and a free port.
    pub async fn start() -> FakeMastodon {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let shared = new_shared(addr);
        let task = tokio::spawn(serve(listener, shared.clone()));
        FakeMastodon {
            addr,
            shared,
            runner: Runner::Task(task),
        }
    }

    /// Starts the server on its own thread and runtime: for synchronous tests, and for
    /// tests that run the `cadenced` binary against it (kill it, restart it, count posts).
    pub fn start_on_thread() -> FakeMastodon {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("fake-mastodon".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("fake Mastodon runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind 127.0.0.1:0");
                    let addr = listener.local_addr().unwrap();
                    let shared = new_shared(addr);
                    ready_tx.send((addr, shared.clone())).unwrap();
                    tokio::select! {
                        () = serve(listener, shared) => {}
                        _ = stop_rx => {}
                    }
                });
            })
            .expect("spawn the fake Mastodon thread");
        let (addr, shared) = ready_rx.recv().expect("fake Mastodon started");
        FakeMastodon {
            addr,
            shared,
            runner: Runner::Thread(Some(stop_tx)),
        }
    }

    /// `http://127.0.0.1:<port>`: the `instance` to configure.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The whole state, locked: read it, or change settings directly. Do not hold it across
    /// an `.await` (the server needs it to answer).
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock()
    }

    /// Queues a fault for the next create that has none queued before it.
    pub fn fail_next_create(&self, fault: CreateFault) {
        self.shared.update(|s| s.create_faults.push_back(fault));
    }

    /// Forgets the faults not used yet.
    pub fn clear_faults(&self) {
        self.shared.update(|s| s.create_faults.clear());
    }

    /// Queues a fault for the next media upload.
    pub fn fail_next_upload(&self, fault: UploadFault) {
        self.shared.update(|s| s.upload_faults.push_back(fault));
    }

    /// From now on, uploads answer 202 and their polls 206 this many times before the
    /// attachment is ready.
    pub fn set_processing_polls(&self, polls: u32) {
        self.shared.update(|s| s.processing_polls = polls);
    }

    /// `configuration.statuses.max_characters`, and the limit creates are checked against.
    pub fn set_max_characters(&self, max: usize) {
        self.shared.update(|s| s.max_characters = max);
    }

    /// Makes the token read-only: every POST answers 403.
    pub fn set_reads_fail(&self, fail: bool) {
        self.shared.update(|s| s.reads_fail = fail);
    }

    pub fn set_read_only(&self, read_only: bool) {
        self.shared.update(|s| s.read_only = read_only);
    }

    /// Moves the fake's clock forward (idempotency keys expire, new statuses are dated later).
    pub fn advance(&self, by: SignedDuration) {
        self.shared.update(|s| s.clock_offset += by);
    }

    /// The fake's clock.
    pub fn now(&self) -> Timestamp {
        self.state().now()
    }

    /// Follows `clock` from now on instead of the real one (a daemon test's clock).
    pub fn follow(&self, clock: Arc<dyn cadenced::clock::Clock>) {
        self.shared.update(|s| s.clock = Some(FollowedClock(clock)));
    }

    /// Adds a status as if posted at `created_at` by another client; returns its id.
    pub fn add_status(&self, text: &str, created_at: Timestamp) -> String {
        self.shared.update(|s| {
            let id = s.next_id(created_at);
            s.statuses.push(FakeStatus {
                id: id.clone(),
                text: text.into(),
                idempotency_key: None,
                created_at,
                media_ids: Vec::new(),
                visibility: "public".into(),
                spoiler_text: String::new(),
                sensitive: false,
                language: None,
                request: Value::Null,
            });
            id
        })
    }

    pub fn statuses(&self) -> Vec<FakeStatus> {
        self.state().statuses.clone()
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

    pub fn statuses_with_key(&self, key: &str) -> usize {
        self.state().statuses_with_key(key)
    }

    pub fn statuses_with_text(&self, text: &str) -> usize {
        self.state().statuses_with_text(text)
    }

    /// Waits until `done` holds for the state; fails the test after 20 s, naming `what`.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&State) -> bool) {
        let wait = async {
            loop {
                let notified = self.shared.notify.notified();
                tokio::pin!(notified);
                // Registered before the check, so a change between the check and the
                // await still wakes us.
                notified.as_mut().enable();
                if done(&self.state()) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(WAIT_LIMIT, wait).await.is_err() {
            panic!(
                "fake Mastodon: timed out waiting until {what}; state: {:#?}",
                *self.state()
            );
        }
    }

    /// [`FakeMastodon::wait_until`] for synchronous tests.
    pub fn wait_until_blocking(&self, what: &str, done: impl Fn(&State) -> bool) {
        let guard = self.shared.lock();
        let (guard, timeout) = self
            .shared
            .changed
            .wait_timeout_while(guard, WAIT_LIMIT, |s| !done(s))
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() && !done(&guard) {
            panic!(
                "fake Mastodon: timed out waiting until {what}; state: {:#?}",
                *guard
            );
        }
    }
}

impl Drop for FakeMastodon {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Task(task) => task.abort(),
            Runner::Thread(stop) => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
            }
        }
    }
}

fn new_shared(addr: SocketAddr) -> Arc<Shared> {
    Arc::new(Shared {
        state: Mutex::new(State {
            statuses: Vec::new(),
            media: Vec::new(),
            requests: Vec::new(),
            create_requests: 0,
            processing_polls: 0,
            max_characters: 500,
            read_only: false,
            reads_fail: false,
            create_faults: VecDeque::new(),
            upload_faults: VecDeque::new(),
            keys: HashMap::new(),
            clock_offset: SignedDuration::ZERO,
            clock: None,
            sequence: 0,
        }),
        changed: Condvar::new(),
        notify: Notify::new(),
        base_url: format!("http://{addr}"),
    })
}

/// Accepts connections until the task is aborted; the `JoinSet` drops every connection
/// with it.
async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            // A handler that must "drop the connection" signals here; dropping the
            // connection future closes the socket without an answer.
            let kill = Arc::new(Notify::new());
            let service = {
                let kill = kill.clone();
                service_fn(move |request| handle(shared.clone(), kill.clone(), request))
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            // Every answer gets its `Date` from the fake's clock, or none when a fault
            // says so; hyper's automatic one would read the real clock.
            builder.auto_date_header(false);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = kill.notified() => {}
            }
        });
    }
}

type Answer = Response<Full<Bytes>>;

/// Marks an answer that must go out without a `Date` header.
#[derive(Clone, Copy)]
struct NoDate;

/// What a handler decided: an answer, or a connection fault.
enum Outcome {
    Answer(Answer),
    Drop,
    Hang,
}

async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let (parts, body) = request.into_parts();
    // The body is read whole before anything is decided, as Rails does.
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "Could not read the body")),
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let authorization = header(AUTHORIZATION.as_str());
    let idempotency_key = header("idempotency-key");
    shared.update(|s| {
        s.requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: path_and_query.clone(),
            authorization: authorization.clone(),
            idempotency_key: idempotency_key.clone(),
        })
    });

    let path = parts.uri.path();
    let query = parse_query(parts.uri.query().unwrap_or(""));
    let outcome = if parts.method == Method::GET && path == "/api/v2/instance" {
        Outcome::Answer(instance(&shared))
    } else if !path.starts_with("/api/") {
        Outcome::Answer(error(StatusCode::NOT_FOUND, "Record not found"))
    } else if authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        Outcome::Answer(unauthorized())
    } else if parts.method == Method::POST && shared.lock().read_only {
        Outcome::Answer(error(
            StatusCode::FORBIDDEN,
            "This action is outside the authorized scopes",
        ))
    } else {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (&parts.method, segments.as_slice()) {
            (&Method::POST, ["api", "v2", "media"]) => {
                let content_type = header(CONTENT_TYPE.as_str()).unwrap_or_default();
                upload(&shared, &content_type, &body)
            }
            (&Method::GET, ["api", "v1", "media", id]) => Outcome::Answer(poll_media(&shared, id)),
            (&Method::POST, ["api", "v1", "statuses"]) => {
                create(&shared, idempotency_key.as_deref(), &body)
            }
            (&Method::GET, ["api", "v1", "statuses", id]) => {
                let state = shared.lock();
                Outcome::Answer(match state.statuses.iter().find(|s| s.id == *id) {
                    Some(status) => ok(status_json(&shared.base_url, &state, status)),
                    None => error(StatusCode::NOT_FOUND, "Record not found"),
                })
            }
            (&Method::GET, ["api", "v1", "accounts", ..]) if shared.lock().reads_fail => {
                Outcome::Answer(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable",
                ))
            }
            (&Method::GET, ["api", "v1", "accounts", "verify_credentials"]) => {
                Outcome::Answer(ok(account_json(&shared.base_url)))
            }
            (&Method::GET, ["api", "v1", "accounts", id, "statuses"]) => {
                Outcome::Answer(account_statuses(&shared, id, &query))
            }
            _ => Outcome::Answer(error(StatusCode::NOT_FOUND, "Record not found")),
        }
    };
    match outcome {
        Outcome::Answer(mut answer) => {
            if !answer.headers().contains_key("date")
                && answer.extensions().get::<NoDate>().is_none()
            {
                let date = http_date(shared.lock().now());
                answer
                    .headers_mut()
                    .insert("date", HeaderValue::from_str(&date).unwrap());
            }
            Ok(answer)
        }
        Outcome::Drop => {
            kill.notify_one();
            std::future::pending().await
        }
        Outcome::Hang => std::future::pending().await,
    }
}

fn json_response(status: StatusCode, value: &Value) -> Answer {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

fn ok(value: Value) -> Answer {
    json_response(StatusCode::OK, &value)
}

fn error(status: StatusCode, message: &str) -> Answer {
    json_response(status, &json!({ "error": message }))
}

fn unauthorized() -> Answer {
    let mut answer = error(StatusCode::UNAUTHORIZED, "The access token is invalid");
    answer.headers_mut().insert(
        "www-authenticate",
        HeaderValue::from_static(
            "Bearer realm=\"Doorkeeper\", error=\"invalid_token\", \
             error_description=\"The access token is invalid\"",
        ),
    );
    answer
}

fn http_date(at: Timestamp) -> String {
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&at)
        .expect("a timestamp in HTTP date range")
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn instance(shared: &Shared) -> Answer {
    let max_characters = shared.lock().max_characters;
    let domain = shared.base_url.trim_start_matches("http://");
    ok(json!({
        "domain": domain,
        "title": "Fake Mastodon",
        "version": "4.5.0",
        "source_url": "https://github.com/mastodon/mastodon",
        "description": "A local server that behaves like Mastodon, for tests.",
        "usage": { "users": { "active_month": 1 } },
        "languages": ["en"],
        "configuration": {
            "urls": { "streaming": format!("ws://{domain}") },
            "accounts": { "max_featured_tags": 10, "max_pinned_statuses": 5 },
            "statuses": {
                "max_characters": max_characters,
                "max_media_attachments": 4,
                "characters_reserved_per_url": 23
            },
            "media_attachments": {
                "supported_mime_types": ["image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4"],
                "description_limit": 1500,
                "image_size_limit": 16_777_216,
                "image_matrix_limit": 33_177_600,
                "video_size_limit": 103_809_024,
                "video_frame_rate_limit": 120,
                "video_matrix_limit": 8_294_400
            },
            "polls": {
                "max_options": 4,
                "max_characters_per_option": 50,
                "min_expiration": 300,
                "max_expiration": 2_629_746
            }
        },
        "registrations": { "enabled": false, "approval_required": false, "message": null },
        "contact": { "email": "admin@example.invalid" },
        "rules": []
    }))
}

fn account_json(base_url: &str) -> Value {
    json!({
        "id": ACCOUNT_ID,
        "username": USERNAME,
        "acct": USERNAME,
        "display_name": "Shop",
        "locked": false,
        "bot": false,
        "created_at": "2022-11-13T00:00:00.000Z",
        "note": "",
        "url": format!("{base_url}/@{USERNAME}"),
        "avatar": format!("{base_url}/avatars/original/missing.png"),
        "header": format!("{base_url}/headers/original/missing.png"),
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": 0,
        "emojis": [],
        "fields": [],
        "source": { "privacy": "public", "sensitive": false, "language": "en", "note": "", "fields": [] }
    })
}

/// `created_at` as Mastodon writes it: UTC with milliseconds.
fn mastodon_time(at: Timestamp) -> String {
    at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn media_json(base_url: &str, media: &FakeMedia) -> Value {
    let ready = media.processing_polls_left == 0;
    let kind = match media.content_type.as_deref() {
        Some(t) if t.starts_with("image/gif") => "gifv",
        Some(t) if t.starts_with("image/") => "image",
        Some(t) if t.starts_with("video/") => "video",
        Some(t) if t.starts_with("audio/") => "audio",
        _ => "unknown",
    };
    let url = format!(
        "{base_url}/system/media_attachments/files/{}/original",
        media.id
    );
    json!({
        "id": media.id,
        "type": kind,
        "url": if ready { Value::String(url) } else { Value::Null },
        "preview_url": format!("{base_url}/system/media_attachments/files/{}/small", media.id),
        "remote_url": null,
        "text_url": null,
        "meta": {},
        "description": media.description,
        "blurhash": "UFBWY:8_0Jxv4mx]t8t64.%M-:IUWGWAt6M}"
    })
}

fn status_json(base_url: &str, state: &State, status: &FakeStatus) -> Value {
    let media: Vec<Value> = status
        .media_ids
        .iter()
        .filter_map(|id| state.media.iter().find(|m| &m.id == id))
        .map(|m| media_json(base_url, m))
        .collect();
    json!({
        "id": status.id,
        "created_at": mastodon_time(status.created_at),
        "in_reply_to_id": null,
        "in_reply_to_account_id": null,
        "sensitive": status.sensitive,
        "spoiler_text": status.spoiler_text,
        "visibility": status.visibility,
        "language": status.language,
        "uri": format!("{base_url}/users/{USERNAME}/statuses/{}", status.id),
        "url": format!("{base_url}/@{USERNAME}/{}", status.id),
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "edited_at": null,
        "favourited": false,
        "reblogged": false,
        "muted": false,
        "bookmarked": false,
        "pinned": false,
        "content": render_html(base_url, &status.text),
        "filtered": [],
        "reblog": null,
        "application": { "name": "cadenced", "website": null },
        "account": account_json(base_url),
        "media_attachments": media,
        "mentions": [],
        "tags": [],
        "emojis": [],
        "card": null,
        "poll": null
    })
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The status text as Mastodon's `content`: paragraphs on blank lines, `<br />` on line
/// breaks, links split into invisible scheme and visible rest, hashtags and mentions as
/// links, everything else escaped. Clients (and the adapter's read-back) see only this.
fn render_html(base_url: &str, text: &str) -> String {
    let paragraphs: Vec<String> = text
        .split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|paragraph| {
            let lines: Vec<String> = paragraph
                .split('\n')
                .map(|line| render_line(base_url, line))
                .collect();
            format!("<p>{}</p>", lines.join("<br />"))
        })
        .collect();
    paragraphs.concat()
}

fn render_line(base_url: &str, line: &str) -> String {
    let mut out = String::new();
    for (i, word) in line.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if let Some(rest) = word
            .strip_prefix("https://")
            .map(|r| ("https://", r))
            .or_else(|| word.strip_prefix("http://").map(|r| ("http://", r)))
        {
            let (scheme, rest) = rest;
            // Mastodon shows the first 30 characters and hides the rest in a span.
            let cut = rest.char_indices().nth(30).map_or(rest.len(), |(i, _)| i);
            let (shown, hidden) = rest.split_at(cut);
            let class = if hidden.is_empty() { "" } else { "ellipsis" };
            out.push_str(&format!(
                "<a href=\"{}\" target=\"_blank\" rel=\"nofollow noopener\" translate=\"no\">\
                 <span class=\"invisible\">{scheme}</span><span class=\"{class}\">{}</span>\
                 <span class=\"invisible\">{}</span></a>",
                escape(word),
                escape(shown),
                escape(hidden)
            ));
        } else if let Some(tag) = word
            .strip_prefix('#')
            .filter(|t| !t.is_empty() && t.chars().all(|c| c.is_alphanumeric() || c == '_'))
        {
            out.push_str(&format!(
                "<a href=\"{base_url}/tags/{}\" class=\"mention hashtag\" rel=\"tag\">#<span>{}</span></a>",
                escape(&tag.to_lowercase()),
                escape(tag)
            ));
        } else if let Some(handle) = word.strip_prefix('@').filter(|h| {
            !h.is_empty() && h.chars().all(|c| c.is_alphanumeric() || "_.@-".contains(c))
        }) {
            // `@user@host` shows as `@user`, as Mastodon renders remote mentions.
            let user = handle.split('@').next().unwrap_or(handle);
            out.push_str(&format!(
                "<span class=\"h-card\" translate=\"no\"><a href=\"{base_url}/@{}\" \
                 class=\"u-url mention\">@<span>{}</span></a></span>",
                escape(handle),
                escape(user)
            ));
        } else {
            out.push_str(&escape(word));
        }
    }
    out
}

/// One part of a `multipart/form-data` body.
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A small RFC 7578 reader: enough for what HTTP clients send.
fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("\r\n--{boundary}");
    let mut data = b"\r\n".to_vec();
    data.extend_from_slice(body);
    let mut parts = Vec::new();
    let mut rest = &data[..];
    // Skip the preamble up to the first delimiter.
    let start = find(rest, delimiter.as_bytes())?;
    rest = &rest[start + delimiter.len()..];
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let end = find(rest, delimiter.as_bytes())?;
        let part = &rest[..end];
        rest = &rest[end + delimiter.len()..];
        let split = find(part, b"\r\n\r\n")?;
        let headers = std::str::from_utf8(&part[..split]).ok()?;
        let mut name = None;
        let mut file_name = None;
        let mut content_type = None;
        for line in headers.split("\r\n") {
            let (key, value) = line.split_once(':')?;
            match key.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    for param in value.split(';').map(str::trim) {
                        if let Some(v) = param.strip_prefix("name=") {
                            name = Some(v.trim_matches('"').to_string());
                        } else if let Some(v) = param.strip_prefix("filename=") {
                            file_name = Some(v.trim_matches('"').to_string());
                        }
                    }
                }
                "content-type" => content_type = Some(value.trim().to_string()),
                _ => {}
            }
        }
        parts.push(Part {
            name: name?,
            file_name,
            content_type,
            data: part[split + 4..].to_vec(),
        });
    }
}

fn upload(shared: &Shared, content_type: &str, body: &[u8]) -> Outcome {
    if let Some(fault) = shared.update(|s| s.upload_faults.pop_front()) {
        return match fault {
            UploadFault::Status(code) => Outcome::Answer(error(
                StatusCode::from_u16(code).expect("a valid status code"),
                "Internal server error",
            )),
            UploadFault::Drop => Outcome::Drop,
        };
    }
    let Some(parts) = parse_multipart(content_type, body) else {
        return Outcome::Answer(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: File can't be blank",
        ));
    };
    let Some(file) = parts.iter().find(|p| p.name == "file") else {
        return Outcome::Answer(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: File can't be blank",
        ));
    };
    if file.content_type.as_deref().is_none_or(str::is_empty) {
        return Outcome::Answer(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: File content type is invalid",
        ));
    }
    let description = parts
        .iter()
        .find(|p| p.name == "description")
        .map(|p| String::from_utf8_lossy(&p.data).into_owned());
    let answer = shared.update(|s| {
        let now = s.now();
        let media = FakeMedia {
            id: s.next_id(now),
            file_name: file.file_name.clone(),
            content_type: file.content_type.clone(),
            bytes: file.data.len(),
            description,
            processing_polls_left: s.processing_polls,
            polls: 0,
            status_id: None,
        };
        // Mastodon: 200 when processed synchronously, 202 with `url: null` otherwise.
        let code = if media.processing_polls_left > 0 {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        let answer = json_response(code, &media_json(&shared.base_url, &media));
        s.media.push(media);
        answer
    });
    Outcome::Answer(answer)
}

fn poll_media(shared: &Shared, id: &str) -> Answer {
    shared.update(|s| {
        let Some(media) = s.media.iter_mut().find(|m| m.id == id) else {
            return error(StatusCode::NOT_FOUND, "Record not found");
        };
        media.polls += 1;
        if media.processing_polls_left > 0 {
            media.processing_polls_left -= 1;
            // Still processing: 206 Partial Content, `url: null`.
            let mut still = media.clone();
            still.processing_polls_left = still.processing_polls_left.max(1);
            return json_response(
                StatusCode::PARTIAL_CONTENT,
                &media_json(&shared.base_url, &still),
            );
        }
        json_response(StatusCode::OK, &media_json(&shared.base_url, media))
    })
}

fn create(shared: &Shared, key: Option<&str>, body: &[u8]) -> Outcome {
    let fault = shared.update(|s| {
        s.create_requests += 1;
        s.create_faults.pop_front()
    });
    // Faults that stop the request before the application creates anything.
    match &fault {
        Some(CreateFault::Reject422(message)) => {
            return Outcome::Answer(error(StatusCode::UNPROCESSABLE_ENTITY, message));
        }
        Some(CreateFault::TooManyRequests {
            reset,
            date,
            retry_after,
        }) => {
            let mut answer = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            let headers = answer.headers_mut();
            headers.insert("x-ratelimit-limit", HeaderValue::from_static("300"));
            headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
            if let Some(reset) = reset {
                let value = reset.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
                headers.insert("x-ratelimit-reset", HeaderValue::from_str(&value).unwrap());
            }
            // `date` is set (or left out) here, so `handle` adds none.
            match date {
                Some(date) => {
                    headers.insert("date", HeaderValue::from_str(&http_date(*date)).unwrap());
                }
                None => {
                    answer.extensions_mut().insert(NoDate);
                }
            }
            if let Some(retry_after) = retry_after {
                answer
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_str(retry_after).unwrap());
            }
            return Outcome::Answer(answer);
        }
        Some(CreateFault::ErrorBeforeCreate(code)) => {
            return Outcome::Answer(error(
                StatusCode::from_u16(*code).expect("a valid status code"),
                "Internal server error",
            ));
        }
        Some(CreateFault::DropBeforeCreate) => return Outcome::Drop,
        Some(CreateFault::Redirect(to)) => {
            let mut answer = error(StatusCode::TEMPORARY_REDIRECT, "Moved");
            answer
                .headers_mut()
                .insert("location", HeaderValue::from_str(to).unwrap());
            return Outcome::Answer(answer);
        }
        Some(CreateFault::HangBeforeCreate) => return Outcome::Hang,
        _ => {}
    }

    let answer = shared.update(|s| create_status(s, &shared.base_url, key, body));
    match fault {
        Some(CreateFault::ErrorAfterCreate(code)) if answer.status() == StatusCode::OK => {
            Outcome::Answer(error(
                StatusCode::from_u16(code).expect("a valid status code"),
                "Internal server error",
            ))
        }
        Some(CreateFault::DropAfterCreate) if answer.status() == StatusCode::OK => Outcome::Drop,
        Some(CreateFault::HangAfterCreate) if answer.status() == StatusCode::OK => Outcome::Hang,
        _ => Outcome::Answer(answer),
    }
}

/// `PostStatusService` as Mastodon runs it: a known key returns its status; then the
/// validations; then the status, and the key remembered for an hour.
fn create_status(s: &mut State, base_url: &str, key: Option<&str>, body: &[u8]) -> Answer {
    let now = s.now();
    let remembered = key
        .filter(|k| !k.is_empty())
        .and_then(|key| s.keys.get(key))
        .filter(|(_, stored)| now.duration_since(*stored) < IDEMPOTENCY_TTL)
        .map(|(id, _)| id.clone());
    if let Some(id) = remembered {
        let status = s
            .statuses
            .iter()
            .find(|st| st.id == id)
            .expect("keyed status");
        return ok(status_json(base_url, s, status));
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: Text can't be blank",
        );
    };
    let text = request["status"].as_str().unwrap_or("").to_string();
    let spoiler_text = request["spoiler_text"].as_str().unwrap_or("").to_string();
    let media_ids: Vec<String> = request["media_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if text.trim().is_empty() && media_ids.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: Text can't be blank",
        );
    }
    // Counted as Mastodon counts (URLs as 23, remote mentions as `@user`, the warning too).
    if cadenced::platforms::text::mastodon_length(&spoiler_text, &text) > s.max_characters {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!(
                "Validation failed: Text character limit of {} exceeded",
                s.max_characters
            ),
        );
    }
    if media_ids.len() > 4 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Cannot attach more than 4 files",
        );
    }
    let missing: Vec<&str> = media_ids
        .iter()
        .filter(|id| {
            !s.media
                .iter()
                .any(|m| &&m.id == id && m.status_id.is_none())
        })
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("Media {} not found", missing.join(", ")),
        );
    }
    if s.media
        .iter()
        .any(|m| media_ids.contains(&m.id) && m.processing_polls_left > 0)
    {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Cannot attach files that have not finished processing. Try again in a moment!",
        );
    }
    let visibility = request["visibility"]
        .as_str()
        .unwrap_or("public")
        .to_string();
    if !["public", "unlisted", "private", "direct"].contains(&visibility.as_str()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: Visibility is not included in the list",
        );
    }
    let id = s.next_id(now);
    for media in s.media.iter_mut().filter(|m| media_ids.contains(&m.id)) {
        media.status_id = Some(id.clone());
    }
    let status = FakeStatus {
        id: id.clone(),
        text,
        idempotency_key: key.map(str::to_string),
        created_at: now,
        media_ids,
        visibility,
        spoiler_text,
        sensitive: request["sensitive"].as_bool().unwrap_or(false),
        language: request["language"].as_str().map(str::to_string),
        request,
    };
    let answer = ok(status_json(base_url, s, &status));
    s.statuses.push(status);
    if let Some(key) = key.filter(|k| !k.is_empty()) {
        s.keys.insert(key.to_string(), (id, now));
    }
    answer
}

/// `GET /api/v1/accounts/{id}/statuses`: newest first, `limit` (default 20, at most 40),
/// `max_id` (older than), `since_id` (newer than).
fn account_statuses(shared: &Shared, id: &str, query: &HashMap<String, String>) -> Answer {
    if id != ACCOUNT_ID {
        return error(StatusCode::NOT_FOUND, "Record not found");
    }
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<u128>().ok());
    let limit = query
        .get("limit")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 40);
    let (max_id, since_id) = (number("max_id"), number("since_id"));
    let state = shared.lock();
    let mut statuses: Vec<&FakeStatus> = state
        .statuses
        .iter()
        .filter(|s| {
            let id: u128 = s.id.parse().unwrap();
            max_id.is_none_or(|max| id < max) && since_id.is_none_or(|since| id > since)
        })
        .collect();
    statuses.sort_by_key(|s| std::cmp::Reverse(s.id.parse::<u128>().unwrap()));
    let page: Vec<Value> = statuses
        .into_iter()
        .take(limit)
        .map(|s| status_json(&shared.base_url, &state, s))
        .collect();
    ok(Value::Array(page))
}
