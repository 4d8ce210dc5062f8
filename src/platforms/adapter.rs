//! The publishing side of a platform: one small trait with a written contract, and one enum
//! that lists every adapter (adding one is a compiler-guided checklist).
//!
//! Contract for every adapter:
//! - `publish` makes ONE network attempt (a create, plus the media uploads it needs). It never
//!   sleeps, never retries and never reads the clock: the daemon owns timing, backoff and the
//!   cap, and re-checks the rules before each resend.
//! - Errors say whether retrying can help: [`PublishError::Transient`] (network error, 5xx
//!   before the create, 429) with the platform's `Retry-After`/reset hint when it gave one;
//!   [`PublishError::Permanent`] (bad credentials, rejected content) with what the user must
//!   fix; [`PublishError::Unknown`] when the create may have reached the platform (time-out,
//!   connection lost after sending, 5xx on the create).
//! - `reconcile` looks for a post whose outcome is unknown (read back by key, or among recent
//!   posts) and never creates anything.
//! - Secrets never appear in errors, logs or the outbox: adapters write `***` instead.

use std::future::Future;
use std::path::PathBuf;

use jiff::{SignedDuration, Timestamp};

use super::Platform;

/// A post about to be sent, as adapters see it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub channel: String,
    pub platform: Platform,
    /// `<channel>/<file name>`, relative to the queue.
    pub file: String,
    /// The post text (the body of the file).
    pub text: String,
    pub media: Vec<OutgoingMedia>,
    pub link: Option<String>,
    pub lang: Option<String>,
    /// The post's `[platform]` table.
    pub fields: toml::Table,
    /// Chosen before the attempt row is committed; the same for every resend of one attempt.
    pub idempotency_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMedia {
    /// Absolute path, inside the queue.
    pub path: PathBuf,
    /// Path relative to the queue, for messages and the outbox.
    pub rel: PathBuf,
    pub alt: Option<String>,
    pub bytes: u64,
}

/// What the platform said when the post went out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub remote_id: Option<String>,
    pub remote_url: Option<String>,
    pub http_status: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("{reason}")]
    Transient {
        reason: String,
        /// How long the platform asked us to wait, when it said.
        retry_after: Option<SignedDuration>,
        http_status: Option<u16>,
    },
    #[error("{reason}")]
    Permanent {
        reason: String,
        /// What the user should do.
        fix: String,
        http_status: Option<u16>,
    },
    #[error("{reason}")]
    Unknown {
        reason: String,
        http_status: Option<u16>,
    },
}

impl PublishError {
    pub fn http_status(&self) -> Option<u16> {
        match self {
            PublishError::Transient { http_status, .. }
            | PublishError::Permanent { http_status, .. }
            | PublishError::Unknown { http_status, .. } => *http_status,
        }
    }
}

/// What a read-back found out about an attempt whose outcome was unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// It went out.
    Posted(Receipt),
    /// It certainly did not go out: safe to send again (with the same key where the platform
    /// still remembers it).
    NotPosted,
    /// Cannot tell: the attempt stays `unknown` until the user runs `retry` or `resolve`.
    Unknown,
}

/// What the daemon knows about an earlier attempt when it reconciles.
#[derive(Debug, Clone)]
pub struct AttemptInfo {
    pub started: Timestamp,
    pub idempotency_key: String,
    /// The normalized text, for matching among recent posts.
    pub normalized: String,
}

/// One platform's publishing. See the module documentation for the contract.
pub trait Adapter: Send + Sync {
    /// One attempt to publish `post`. `now` is for names and logs only.
    fn publish(
        &self,
        post: &Outgoing,
        now: Timestamp,
    ) -> impl Future<Output = Result<Receipt, PublishError>> + Send;

    /// Finds out whether an attempt with an unknown outcome went out. Must not create.
    fn reconcile(
        &self,
        post: &Outgoing,
        attempt: &AttemptInfo,
        now: Timestamp,
    ) -> impl Future<Output = Reconciled> + Send;

    /// Whether resending with the same idempotency key is safe at `now` for an attempt
    /// started at `started` (the platform deduplicates it). Default: never.
    fn can_resend_same_key(&self, started: Timestamp, now: Timestamp) -> bool {
        let _ = (started, now);
        false
    }
}
