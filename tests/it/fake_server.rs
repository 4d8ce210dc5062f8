//! The plumbing the local platform servers share (`fake_x`, `fake_bluesky`): a hyper
//! server on 127.0.0.1 that hands each request, its body read whole, to the platform's
//! handler; answers, dropped connections and answers that never come; the state behind a
//! lock with waits on it (async and blocking) instead of sleeps; a clock that follows the
//! test's (tokio's paused clock in daemon tests) and can be moved ahead; and small readers
//! for what HTTP clients send (queries, forms, multipart bodies).
//!
//! A fake runs either on the test's own runtime ([`Server::start`]: its exchanges then run
//! on the same thread as the daemon, in step with the paused clock) or on a thread with its
//! own runtime ([`Server::start_on_thread`]) for tests that drive the `cadenced` binary.

#![allow(dead_code)] // A shared helper: not every fake uses every part.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use cadenced::clock::{Clock, SystemClock};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::Notify;

pub type Answer = Response<Full<Bytes>>;

/// How long a wait waits before failing the test, unless it says otherwise. On tokio's
/// paused clock this is virtual time: it passes only while nothing else can run.
pub const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    /// The path without the query.
    pub path: String,
    /// The raw query (without `?`), empty when there is none.
    pub raw_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The query's pairs, percent-decoded, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        form_pairs(self.raw_query.as_bytes())
    }

    /// The first value of a query parameter.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// Path and query, as a client wrote them.
    pub fn path_and_query(&self) -> String {
        if self.raw_query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.raw_query)
        }
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What a handler decided: an answer, or a connection fault.
pub enum Outcome {
    Answer(Answer),
    /// Closes the connection without answering.
    Drop,
    /// Never answers (the client's time-out fires).
    Hang,
}

/// A fake's clock: the test's clock (the real one unless a test gives its own) moved by
/// [`Server::advance`].
pub struct FakeClock {
    base: Arc<dyn Clock>,
    offset: Mutex<SignedDuration>,
}

impl FakeClock {
    pub fn now(&self) -> Timestamp {
        self.base.now() + *self.offset.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The state of a fake, its clock, and what wakes waiters.
pub struct Shared<S> {
    state: Mutex<S>,
    /// Wakes blocking waiters on every change.
    changed: Condvar,
    /// Wakes async waiters on every change.
    notify: Notify,
    pub base_url: String,
    pub clock: FakeClock,
}

impl<S> Shared<S> {
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and wakes every waiter.
    pub fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let result = f(&mut self.lock());
        self.changed.notify_all();
        self.notify.notify_waiters();
        result
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

/// The handler of one fake: the state, the request; an outcome. Synchronous: the body is
/// read whole first.
pub type Handler<S> = fn(&Shared<S>, &Received) -> Outcome;

enum Runner {
    /// The accept loop on the test's runtime; aborting it drops every connection.
    Task(tokio::task::JoinHandle<()>),
    /// A thread with its own runtime, stopped through the sender.
    Thread(Option<tokio::sync::oneshot::Sender<()>>),
}

/// A running fake. Dropping it stops the server.
pub struct Server<S: Send + 'static> {
    addr: SocketAddr,
    pub shared: Arc<Shared<S>>,
    runner: Runner,
    name: &'static str,
}

impl<S: Send + std::fmt::Debug + 'static> Server<S> {
    /// Starts on the current tokio runtime, on 127.0.0.1 and a free port.
    pub async fn start(
        name: &'static str,
        state: S,
        clock: Arc<dyn Clock>,
        handler: Handler<S>,
    ) -> Server<S> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let shared = new_shared(addr, state, clock);
        let task = tokio::spawn(serve(listener, shared.clone(), handler));
        Server {
            addr,
            shared,
            runner: Runner::Task(task),
            name,
        }
    }

    /// Starts on its own thread and runtime (for tests that run the `cadenced` binary), on
    /// the real clock.
    pub fn start_on_thread(name: &'static str, state: S, handler: Handler<S>) -> Server<S> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for the fake");
                runtime.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("bind 127.0.0.1:0");
                    let addr = listener.local_addr().unwrap();
                    let shared = new_shared(addr, state, Arc::new(SystemClock));
                    ready_tx.send((addr, shared.clone())).unwrap();
                    tokio::select! {
                        () = serve(listener, shared, handler) => {}
                        _ = stop_rx => {}
                    }
                });
            })
            .expect("spawn the fake's thread");
        let (addr, shared) = ready_rx.recv().expect("the fake started");
        Server {
            addr,
            shared,
            runner: Runner::Thread(Some(stop_tx)),
            name,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The whole state, locked. Do not hold it across an `.await`.
    pub fn state(&self) -> MutexGuard<'_, S> {
        self.shared.lock()
    }

    pub fn update<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        self.shared.update(f)
    }

    /// The fake's clock.
    pub fn now(&self) -> Timestamp {
        self.shared.now()
    }

    /// Moves the fake's clock ahead of the test's (tokens expire sooner than the client
    /// expects).
    pub fn advance(&self, by: SignedDuration) {
        *self
            .shared
            .clock
            .offset
            .lock()
            .unwrap_or_else(|e| e.into_inner()) += by;
        self.shared.update(|_| ());
    }

    /// Waits until `done` holds for the state; fails the test after [`WAIT_LIMIT`].
    pub async fn wait_until(&self, what: &str, done: impl Fn(&S) -> bool) {
        self.wait_until_within(WAIT_LIMIT, what, done).await;
    }

    /// Waits until `done` holds, at most `limit` (virtual time on a paused clock).
    pub async fn wait_until_within(&self, limit: Duration, what: &str, done: impl Fn(&S) -> bool) {
        let wait = async {
            loop {
                let notified = self.shared.notify.notified();
                tokio::pin!(notified);
                // Registered before the check: a change between the check and the await
                // still wakes us.
                notified.as_mut().enable();
                if done(&self.state()) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            panic!(
                "{}: timed out waiting until {what}; state: {:#?}",
                self.name,
                *self.state()
            );
        }
    }

    /// [`Server::wait_until`] for synchronous tests (real time).
    pub fn wait_until_blocking(&self, what: &str, done: impl Fn(&S) -> bool) {
        let guard = self.shared.lock();
        let (guard, timeout) = self
            .shared
            .changed
            .wait_timeout_while(guard, WAIT_LIMIT, |s| !done(s))
            .unwrap_or_else(|e| e.into_inner());
        if timeout.timed_out() && !done(&guard) {
            panic!(
                "{}: timed out waiting until {what}; state: {:#?}",
                self.name, *guard
            );
        }
    }
}

impl<S: Send + 'static> Drop for Server<S> {
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

fn new_shared<S>(addr: SocketAddr, state: S, clock: Arc<dyn Clock>) -> Arc<Shared<S>> {
    Arc::new(Shared {
        state: Mutex::new(state),
        changed: Condvar::new(),
        notify: Notify::new(),
        base_url: format!("http://{addr}"),
        clock: FakeClock {
            base: clock,
            offset: Mutex::new(SignedDuration::ZERO),
        },
    })
}

/// Accepts connections until the task is aborted; the `JoinSet` drops every connection
/// with it.
async fn serve<S: Send + 'static>(
    listener: TcpListener,
    shared: Arc<Shared<S>>,
    handler: Handler<S>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            // A handler that must "drop the connection" signals here; dropping the
            // connection future closes the socket without an answer.
            let kill = Arc::new(Notify::new());
            let service = {
                let kill = kill.clone();
                service_fn(move |request| handle(shared.clone(), kill.clone(), handler, request))
            };
            let mut builder = hyper::server::conn::http1::Builder::new();
            // Every answer gets its `Date` from the fake's clock; hyper's own would read
            // the real one.
            builder.auto_date_header(false);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = kill.notified() => {}
            }
        });
    }
}

async fn handle<S>(
    shared: Arc<Shared<S>>,
    kill: Arc<Notify>,
    handler: Handler<S>,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(text_response(
                StatusCode::BAD_REQUEST,
                "could not read the body",
            ));
        }
    };
    let received = Received {
        method: parts.method,
        path: parts.uri.path().to_string(),
        raw_query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts.headers,
        body,
    };
    match handler(&shared, &received) {
        Outcome::Answer(mut answer) => {
            if !answer.headers().contains_key("date") {
                let date = http_date(shared.now());
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

pub fn json_response(status: StatusCode, value: &Value) -> Answer {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

/// An answer with a content type of its own (`application/problem+json`).
pub fn typed_json_response(status: StatusCode, content_type: &str, value: &Value) -> Answer {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(value.to_string())))
        .unwrap()
}

pub fn text_response(status: StatusCode, text: &str) -> Answer {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Full::new(Bytes::from(text.to_string())))
        .unwrap()
}

pub fn set_header(answer: &mut Answer, name: &'static str, value: &str) {
    answer.headers_mut().insert(
        name,
        HeaderValue::from_str(value).expect("a valid header value"),
    );
}

/// An RFC 9110 date, as servers send `Date`.
pub fn http_date(at: Timestamp) -> String {
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&at)
        .expect("a timestamp in HTTP date range")
}

/// `application/x-www-form-urlencoded` pairs (also a query), decoded.
pub fn form_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn form_map(bytes: &[u8]) -> HashMap<String, String> {
    form_pairs(bytes).into_iter().collect()
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A small RFC 7578 reader: enough for what HTTP clients send.
pub fn parse_multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
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

/// Random lowercase hexadecimal characters (tokens, nonces).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random generator");
    hex::encode(buf)
}

/// Keeps tokio's paused clock from jumping past a request's time-out while the request is
/// in flight. On a paused runtime, tokio moves the clock to the next timer whenever no task
/// can run, even when an answer is on its way over the loopback: with a request's 30 s
/// time-out as the next timer, every request would time out at once. This task's timer is
/// never more than `step` away, so an idle runtime moves the clock by at most `step`, and a
/// loopback exchange (a handful of such moves) ends long before any time-out. Waits the
/// daemon makes (a backoff, a rate-limit reset, the next slot) still pass, `step` by `step`.
pub struct Ticker(tokio::task::JoinHandle<()>);

impl Ticker {
    pub fn start(step: Duration) -> Ticker {
        Ticker(tokio::spawn(async move {
            loop {
                tokio::time::sleep(step).await;
            }
        }))
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.0.abort();
    }
}
