//! A fault-injecting HTTP proxy for the reliability suite: it stands between the daemon and
//! a platform server (the Mastodon-like fake, a webhook receiver) and makes 30 % of the
//! requests fail, in every way a server or a network fails:
//!
//! - `500` without passing the request on;
//! - `429` with the reset headers Mastodon sends (`X-RateLimit-*`, `Date`) and
//!   `Retry-After`, without passing it on;
//! - the connection reset before the request reached the server (nothing happened) or
//!   after the server answered (it acted; the client cannot know);
//! - an answer slower than the client's time-out (the server acted);
//! - a malformed JSON body in a `200` (the server acted);
//! - a `307` redirect to the server itself (a client that followed it would send again).
//!
//! The faults come from a seeded schedule, not a coin: every round of [`ROUND`] requests
//! holds each kind once (29 % faults in all), in an order the seed shuffles, so
//! a run is repeatable and every kind is certain to happen. Runs on the test's runtime
//! (tokio's paused clock: a slow answer costs virtual time only).

#![allow(dead_code)] // Shared by the reliability tests.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cadenced::clock::Clock;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Requests per round of the schedule; [`FAULTS_PER_ROUND`] of them fail.
pub const ROUND: usize = 24;
pub const FAULTS_PER_ROUND: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Error500,
    RateLimited,
    ResetBefore,
    ResetAfter,
    SlowAfter,
    Malformed,
    Redirect,
}

pub const ALL_FAULTS: [Fault; 7] = [
    Fault::Error500,
    Fault::RateLimited,
    Fault::ResetBefore,
    Fault::ResetAfter,
    Fault::SlowAfter,
    Fault::Malformed,
    Fault::Redirect,
];

type Answer = Response<Full<Bytes>>;

struct Schedule {
    rng: u64,
    next: VecDeque<Option<Fault>>,
}

impl Schedule {
    fn random(&mut self) -> u64 {
        // xorshift64*: enough to shuffle a round, and the same for the same seed.
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn take(&mut self) -> Option<Fault> {
        if self.next.is_empty() {
            let mut round: Vec<Option<Fault>> = ALL_FAULTS.iter().copied().map(Some).collect();
            while round.len() < FAULTS_PER_ROUND {
                let kind = ALL_FAULTS[(self.random() % ALL_FAULTS.len() as u64) as usize];
                round.push(Some(kind));
            }
            round.resize(ROUND, None);
            for i in (1..round.len()).rev() {
                let j = (self.random() % (i as u64 + 1)) as usize;
                round.swap(i, j);
            }
            self.next.extend(round);
        }
        self.next.pop_front().flatten()
    }
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    slow: Duration,
    schedule: Mutex<Schedule>,
    /// `(method and path, fault)` of every request, in order.
    seen: Mutex<Vec<(String, Option<Fault>)>>,
}

/// A running proxy; dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Proxies to `upstream` (`http://127.0.0.1:<port>`); a slow answer comes `slow` after
    /// the server's (make it longer than the client's time-out).
    pub async fn start(
        upstream: &str,
        seed: u64,
        slow: Duration,
        clock: Arc<dyn Clock>,
    ) -> FaultProxy {
        cadenced::platforms::http::install_tls_provider();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            clock,
            slow,
            schedule: Mutex::new(Schedule {
                rng: seed | 1,
                next: VecDeque::new(),
            }),
            seen: Mutex::new(Vec::new()),
        });
        let task = tokio::spawn(serve(listener, shared.clone()));
        FaultProxy { addr, shared, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests met each fault.
    pub fn faults(&self) -> BTreeMap<Fault, usize> {
        let mut counts = BTreeMap::new();
        for (_, fault) in self.shared.seen.lock().unwrap().iter() {
            if let Some(f) = fault {
                *counts.entry(*f).or_default() += 1;
            }
        }
        counts
    }

    /// Every request, with the fault it met.
    pub fn seen(&self) -> Vec<(String, Option<Fault>)> {
        self.shared.seen.lock().unwrap().clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let shared = shared.clone();
        connections.spawn(async move {
            let kill = Arc::new(Notify::new());
            let service = {
                let kill = kill.clone();
                service_fn(move |request| handle(shared.clone(), kill.clone(), request))
            };
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = connection => {}
                () = kill.notified() => {}
            }
        });
    }
}

async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Notify>,
    request: Request<Incoming>,
) -> Result<Answer, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let fault = shared.schedule.lock().unwrap().take();
    shared
        .seen
        .lock()
        .unwrap()
        .push((format!("{} {path}", parts.method), fault));
    let now = shared.clock.now();
    let answer = match fault {
        Some(Fault::Error500) => json(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"injected"}"#),
        Some(Fault::RateLimited) => {
            let reset = now + jiff::SignedDuration::from_secs(3);
            let mut a = json(
                StatusCode::TOO_MANY_REQUESTS,
                r#"{"error":"Too many requests"}"#,
            );
            let h = a.headers_mut();
            h.insert("x-ratelimit-limit", "300".parse().unwrap());
            h.insert("x-ratelimit-remaining", "0".parse().unwrap());
            h.insert(
                "x-ratelimit-reset",
                reset
                    .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
                    .to_string()
                    .parse()
                    .unwrap(),
            );
            h.insert("retry-after", "3".parse().unwrap());
            h.insert("date", http_date(now).parse().unwrap());
            a
        }
        Some(Fault::ResetBefore) => {
            kill.notify_one();
            return std::future::pending().await;
        }
        Some(Fault::Redirect) => {
            let mut a = json(StatusCode::TEMPORARY_REDIRECT, "{}");
            a.headers_mut().insert(
                "location",
                format!("{}{path}", shared.upstream).parse().unwrap(),
            );
            a
        }
        None | Some(Fault::ResetAfter | Fault::SlowAfter | Fault::Malformed) => {
            let upstream = forward(&shared, &parts, body).await;
            match fault {
                Some(Fault::ResetAfter) => {
                    kill.notify_one();
                    return std::future::pending().await;
                }
                Some(Fault::SlowAfter) => {
                    tokio::time::sleep(shared.slow).await;
                    upstream
                }
                Some(Fault::Malformed) => json(StatusCode::OK, r#"{"id": "1093485"#),
                _ => upstream,
            }
        }
    };
    Ok(answer)
}

/// Passes the request to the server and its answer back.
async fn forward(shared: &Shared, parts: &hyper::http::request::Parts, body: Bytes) -> Answer {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut request = shared
        .client
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    match request.send().await {
        Ok(answer) => {
            let mut out = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    out = out.header(name.as_str(), value.as_bytes());
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            out.body(Full::new(bytes)).unwrap()
        }
        Err(_) => json(
            StatusCode::BAD_GATEWAY,
            r#"{"error":"upstream unreachable"}"#,
        ),
    }
}

fn json(status: StatusCode, body: &str) -> Answer {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn http_date(at: jiff::Timestamp) -> String {
    at.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
