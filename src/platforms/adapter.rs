//! The publishing side of a channel: what a post to send looks like ([`Outgoing`]), what
//! the answer can be ([`Sent`], [`PublishError`], [`Reconciled`]), and [`AnyAdapter`], the
//! channel's adapter built from its platform and keys by [`connect`].
//!
//! There are three kinds of adapter and no more: HTTP platforms all run through the network
//! executor (`run`), `exec` runs a program, and the outbox (the `outbox` platform and every
//! `dry_run` channel) writes the plan's requests to a folder. Adding a platform never
//! touches this file.
//!
//! What this module must not do: put a credential's value into an error (errors name the
//! channel, the key and where the credential should come from).

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::exec::ExecAdapter;
use super::keys::{Kind, Need, Settings};
use super::outbox::OutboxAdapter;
use super::plan::Secrets;
use super::run;
use super::{ChannelCtx, Limits, MediaInfo, Platform, PostView, Transport};
use crate::secret::{Secret, SecretRef};
use crate::tokens::TokenStore;

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
    /// When the attempt began (as the log records it, to the millisecond): what a record key
    /// chosen in advance is derived from, so a restart derives the same one.
    pub started: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMedia {
    /// Absolute path, inside the queue.
    pub path: PathBuf,
    /// Path relative to the queue, for messages and the outbox.
    pub rel: PathBuf,
    pub alt: Option<String>,
    pub bytes: u64,
    /// Width and height in pixels, where the file's header says (images).
    pub dimensions: Option<(u32, u32)>,
}

impl Outgoing {
    /// The media as the rules see them.
    pub fn media_infos(&self) -> Vec<MediaInfo> {
        self.media
            .iter()
            .map(|m| MediaInfo {
                path: m.rel.clone(),
                alt: m.alt.clone(),
                bytes: m.bytes,
            })
            .collect()
    }

    /// Calls `f` with the post as the rules see it (the view borrows the media list).
    pub fn with_view<T>(&self, f: impl FnOnce(&PostView<'_>) -> T) -> T {
        let media = self.media_infos();
        f(&PostView {
            text: &self.text,
            media: &media,
            link: self.link.as_deref(),
            fields: &self.fields,
        })
    }
}

/// What the platform said when the post went out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub remote_id: Option<String>,
    pub remote_url: Option<String>,
    pub http_status: Option<u16>,
}

/// A successful call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    Published(Receipt),
    /// Not done yet: ask again at `at` (a Mastodon upload still processing, a session that
    /// had to be renewed). What was done so far is kept with the attempt.
    NotYet {
        at: Timestamp,
        why: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// Nothing was published and trying again may work (network, 5xx before the create,
    /// 429): with the platform's own hint of how long to wait, when it gave one.
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<SignedDuration>,
        http_status: Option<u16>,
    },
    /// The platform refused the post; the user must change something (`fix`).
    #[error("{reason}")]
    Permanent {
        reason: String,
        fix: String,
        http_status: Option<u16>,
    },
    /// The create may have reached the platform (time-out, connection lost after sending,
    /// 5xx on the create).
    #[error("{reason}")]
    Unknown {
        reason: String,
        http_status: Option<u16>,
    },
    /// The channel's credentials were refused before anything was created: the post is
    /// fine, the channel needs the user (a new app password, `cadenced auth`).
    #[error("{reason}")]
    Credentials {
        reason: String,
        fix: String,
        http_status: Option<u16>,
    },
}

impl PublishError {
    pub fn http_status(&self) -> Option<u16> {
        match self {
            PublishError::Transient { http_status, .. }
            | PublishError::Permanent { http_status, .. }
            | PublishError::Unknown { http_status, .. }
            | PublishError::Credentials { http_status, .. } => *http_status,
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

/// What an attempt keeps between its tries (media ids, a container id), in the database.
/// Never a secret: session tokens go to the token store.
pub trait Memo: Send + Sync {
    fn load(&self) -> BTreeMap<String, Value>;
    fn save(&self, name: &str, value: &Value);
}

/// A memo that lives as long as the value (for tests and one-off sends).
#[derive(Debug, Default)]
pub struct MemoryMemo(Mutex<BTreeMap<String, Value>>);

impl Memo for MemoryMemo {
    fn load(&self) -> BTreeMap<String, Value> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn save(&self, name: &str, value: &Value) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), value.clone());
    }
}

/// Reads a post's media file when it is sent. The daemon's reads it again under the queue
/// without following a symlink out of it and with a size cap (`queue::media`).
pub trait MediaSource: Send + Sync {
    fn read(&self, media: &OutgoingMedia) -> io::Result<Vec<u8>>;
}

/// The channel's credentials, read once when its adapter is built, by config key.
#[derive(Clone, Default)]
pub struct Credentials(HashMap<&'static str, Secret>);

impl Credentials {
    pub fn insert(&mut self, key: &'static str, secret: Secret) {
        self.0.insert(key, secret);
    }

    /// Every credential value, for scrubbing text that came from outside.
    pub fn values(&self) -> impl Iterator<Item = &str> {
        self.0.values().map(Secret::expose)
    }
}

impl Secrets for Credentials {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(Secret::expose)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<&&str> = self.0.keys().collect();
        keys.sort();
        write!(f, "Credentials({keys:?}: ***)")
    }
}

/// A channel's HTTP adapter: everything the network executor needs.
#[derive(Clone)]
pub struct HttpAdapter {
    pub platform: Platform,
    pub channel: String,
    pub settings: Settings,
    pub credentials: Credentials,
    pub client: reqwest::Client,
    pub tokens: Option<TokenStore>,
    pub media: Arc<dyn MediaSource>,
    /// Caps every request's time-out (the steps set their own; tests make them short).
    pub timeout_cap: Option<Duration>,
}

impl std::fmt::Debug for HttpAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAdapter")
            .field("platform", &self.platform)
            .field("channel", &self.channel)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

impl HttpAdapter {
    /// A step's time-out, capped where the adapter says.
    pub fn timeout(&self, step: Duration) -> Duration {
        self.timeout_cap.map_or(step, |cap| step.min(cap))
    }

    pub fn ctx(&self, now: Timestamp) -> ChannelCtx<'_> {
        ChannelCtx {
            name: &self.channel,
            settings: &self.settings,
            now,
        }
    }
}

/// A channel's adapter.
#[derive(Debug, Clone)]
pub enum AnyAdapter {
    Http(HttpAdapter),
    Exec(ExecAdapter),
    Outbox(OutboxAdapter),
}

impl AnyAdapter {
    pub fn platform(&self) -> Platform {
        match self {
            AnyAdapter::Http(a) => a.platform,
            AnyAdapter::Exec(_) => Platform::named("exec").expect("exec is registered"),
            AnyAdapter::Outbox(a) => a.platform,
        }
    }

    /// One attempt to publish `post` (see the contract in `platforms`). `memo` holds what
    /// earlier tries of this attempt already did.
    pub async fn publish(
        &self,
        post: &Outgoing,
        memo: &dyn Memo,
        now: Timestamp,
    ) -> Result<Sent, PublishError> {
        match self {
            AnyAdapter::Http(a) => run::publish(a, post, memo, now).await,
            AnyAdapter::Exec(a) => a.publish(post).await.map(Sent::Published),
            AnyAdapter::Outbox(a) => a.publish(post, now).await.map(Sent::Published),
        }
    }

    /// Finds out whether an attempt with an unknown outcome went out. Never creates.
    pub async fn reconcile(
        &self,
        post: &Outgoing,
        attempt: &AttemptInfo,
        now: Timestamp,
    ) -> Reconciled {
        match self {
            AnyAdapter::Http(a) => run::read_back(a, post, attempt, now).await,
            // A program has no read-back contract; only the user can say what happened.
            AnyAdapter::Exec(_) => Reconciled::Unknown,
            AnyAdapter::Outbox(a) => a.reconcile(post, attempt).await,
        }
    }

    /// Whether resending with the same idempotency key is safe at `now` for an attempt that
    /// started at `started` (the platform deduplicates it).
    pub fn can_resend_same_key(&self, started: Timestamp, now: Timestamp) -> bool {
        match self {
            AnyAdapter::Http(a) => a
                .platform
                .resend_window()
                .is_some_and(|w| now.duration_since(started) <= w),
            // The outbox does not deduplicate (a resend writes a second file), and its
            // reconcile always knows the answer instead.
            AnyAdapter::Exec(_) | AnyAdapter::Outbox(_) => false,
        }
    }

    /// Limits the server sets (a Mastodon instance's text limit), asked with a short
    /// time-out; `None` when the platform has none or the server did not say.
    pub async fn learn_limits(&self, now: Timestamp) -> Option<Limits> {
        match self {
            AnyAdapter::Http(a) => run::learn_limits(a, now).await,
            AnyAdapter::Exec(_) | AnyAdapter::Outbox(_) => None,
        }
    }
}

/// What building an adapter needs from outside: the environment and `$CREDENTIALS_DIRECTORY`
/// (passed in so tests and `check` control them), where the outbox is, the token store, and
/// how media files are read.
pub struct ConnectCtx<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub credentials_dir: Option<&'a Path>,
    pub outbox: &'a Path,
    pub tokens: Option<TokenStore>,
    pub media: Arc<dyn MediaSource>,
    /// Environment variables holding any channel's credential: an exec program must not
    /// inherit them.
    pub hidden_env: Vec<String>,
    /// The HTTP client every channel connected with this context uses.
    pub client: super::http::SharedClient,
}

/// The adapter for a channel: the outbox for `dry_run` channels (with their own platform's
/// plan; no credential is read, since none is sent) and for the `outbox` platform; the exec
/// adapter for `exec`; the network executor for every HTTP platform, with the credentials
/// its keys name read here. An error names the channel and what to do, never a value.
pub fn connect(
    platform: Platform,
    channel: &str,
    settings: &Settings,
    dry_run: bool,
    ctx: &ConnectCtx<'_>,
) -> Result<AnyAdapter, String> {
    if dry_run || platform.transport() == Transport::Outbox {
        return Ok(AnyAdapter::Outbox(OutboxAdapter::new(
            ctx.outbox,
            platform,
            channel,
            settings.clone(),
            dry_run,
        )));
    }
    if platform.transport() == Transport::Exec {
        let command = settings.argv("command").unwrap_or_default().to_vec();
        let timeout = settings
            .duration("timeout")
            .and_then(|d| Duration::try_from(d).ok())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| {
                format!("channel `{channel}`: the exec `timeout` must be a positive duration")
            })?;
        return Ok(AnyAdapter::Exec(
            ExecAdapter::new(command, timeout).hiding_env(ctx.hidden_env.iter().cloned()),
        ));
    }
    let mut credentials = Credentials::default();
    for key in platform.keys() {
        if key.kind != Kind::Secret {
            continue;
        }
        let Some(secret) = settings.secret(key.name) else {
            if key.need == Need::Required {
                return Err(format!(
                    "channel `{channel}`: `{}` is missing; add {} to [channels.{channel}]",
                    key.name,
                    key.example_line(channel)
                ));
            }
            continue;
        };
        credentials.insert(
            key.name,
            read_secret(channel, key.name, secret, ctx.env, ctx.credentials_dir)?,
        );
    }
    Ok(AnyAdapter::Http(HttpAdapter {
        platform,
        channel: channel.to_string(),
        settings: settings.clone(),
        credentials,
        client: ctx
            .client
            .get()
            .map_err(|e| format!("channel `{channel}`: {e}"))?,
        tokens: ctx.tokens.clone(),
        media: ctx.media.clone(),
        timeout_cap: None,
    }))
}

/// Reads one credential; the error names the channel, the key and where the value should
/// have come from (`SecretRef::read` never includes the value).
pub fn read_secret(
    channel: &str,
    key: &str,
    secret: &SecretRef,
    env_lookup: impl Fn(&str) -> Option<String>,
    credentials_dir: Option<&Path>,
) -> Result<Secret, String> {
    secret.read(env_lookup, credentials_dir).map_err(|why| {
        format!(
            "channel `{channel}`: cannot read its `{key}` from {}: {why}",
            secret.describe()
        )
    })
}

/// Reads media with a plain open that refuses a symlink as the last component and a file
/// over `max_bytes`: for tests and the `check`-free paths. The daemon uses the queue's
/// confined reader instead.
#[derive(Debug, Clone, Copy)]
pub struct PlainFiles {
    pub max_bytes: u64,
}

impl MediaSource for PlainFiles {
    fn read(&self, media: &OutgoingMedia) -> io::Result<Vec<u8>> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&media.path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut bytes = Vec::new();
        file.take(self.max_bytes + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(io::Error::other(format!(
                "larger than {} bytes",
                self.max_bytes
            )));
        }
        Ok(bytes)
    }
}
