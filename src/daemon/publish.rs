//! One publish, from the committed attempt row to the file's final folder: resends of
//! transient failures with exponential backoff and jitter (honouring the platform's
//! `Retry-After`/reset hint) while the claim on the slot lasts, re-checking cap, gap and
//! `expires` before each resend; permanent failures to `failed/` with a `.error` note;
//! unknown outcomes reconciled the platform's way, else left `unknown` for the user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::cadence::ChannelRules;
use crate::cadence::policy;
use crate::config::Channel;
use crate::platforms::adapter::{
    AnyAdapter, AttemptInfo, MediaSource, Memo, Outgoing, OutgoingMedia, PublishError, Receipt,
    Reconciled, Sent,
};
use crate::queue::{self, Accepted, files};
use crate::store::AttemptRow;

/// What a publish holds on to while it retries.
#[derive(Debug, Clone)]
pub struct Claim {
    pub attempt_id: i64,
    pub started: Timestamp,
    /// When the attempt's idempotency key was first sent (earlier than `started` when the
    /// attempt reuses its predecessor's key).
    pub key_started: Timestamp,
    /// Resends stop here: the channel's next slot or `catch_up`, whichever is sooner.
    pub until: Timestamp,
    pub expires: Option<Timestamp>,
    pub rules: ChannelRules,
    /// The post file in the queue.
    pub path: PathBuf,
}

/// How a publish ended, for the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ended {
    Published,
    NotPublished,
    /// The channel's credentials were refused before anything was created: the channel is
    /// disabled until the config is reloaded (the post stays queued).
    Credentials(String),
}

/// An attempt's memory between its tries, in the database.
struct StoreMemo<'a> {
    shared: &'a Shared,
    attempt: i64,
}

impl Memo for StoreMemo<'_> {
    fn load(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        self.shared
            .with_store(|s| s.attempt_state(self.attempt))
            .unwrap_or_default()
    }

    fn save(&self, name: &str, value: &serde_json::Value) {
        if let Err(e) = self
            .shared
            .with_store(|s| s.save_attempt_state(self.attempt, name, value))
        {
            // Only costs a repeated upload on the next try.
            tracing::warn!("could not keep `{name}` of the attempt: {e}");
        }
    }
}

/// Media read again at each send, from the queue and confined to it.
pub(crate) struct QueueMedia {
    pub root: PathBuf,
}

impl MediaSource for QueueMedia {
    fn read(&self, media: &OutgoingMedia) -> std::io::Result<Vec<u8>> {
        queue::media::read_confined(&self.root, &media.rel, queue::media::MAX_MEDIA_BYTES)
    }
}

/// The post to send, built from the version of the file just read. Images' dimensions come
/// from their headers (read confined to the queue, like the send will).
pub(crate) fn outgoing(
    queue_root: &Path,
    ch: &Channel,
    file: &str,
    accepted: Option<&Accepted>,
    idempotency_key: &str,
    started: Timestamp,
) -> Outgoing {
    let media = accepted
        .map(|a| {
            a.media
                .iter()
                .map(|m| OutgoingMedia {
                    path: m.path.clone(),
                    rel: m.rel.clone(),
                    alt: m.alt.clone(),
                    bytes: m.bytes,
                    dimensions: queue::media::read_head(queue_root, &m.rel, 64 * 1024)
                        .ok()
                        .and_then(|head| imagesize::blob_size(&head).ok())
                        .and_then(|size| {
                            Some((
                                u32::try_from(size.width).ok()?,
                                u32::try_from(size.height).ok()?,
                            ))
                        }),
                })
                .collect()
        })
        .unwrap_or_default();
    Outgoing {
        channel: ch.name.clone(),
        platform: ch.platform,
        file: file.to_string(),
        text: accepted.map(|a| a.post.body.clone()).unwrap_or_default(),
        media,
        link: accepted.and_then(|a| a.post.front.link.clone()),
        lang: accepted.and_then(|a| a.post.front.lang.clone()),
        fields: accepted
            .map(|a| a.post.front.platform.clone())
            .unwrap_or_default(),
        idempotency_key: idempotency_key.to_string(),
        // The log keeps milliseconds: what is derived from the start (a record key) must
        // come out the same after a restart.
        started: Timestamp::from_millisecond(started.as_millisecond()).unwrap_or(started),
    }
}

/// Publishes `post` under `claim`. Resends transient failures with backoff while the claim
/// lasts; comes back at the time the platform names when it is "not done yet"; stops at once
/// when `stop` is cancelled (SIGTERM), leaving the attempt for the next start.
pub(crate) async fn publish(
    shared: &Shared,
    adapter: &AnyAdapter,
    post: &Outgoing,
    claim: Claim,
    stop: &CancellationToken,
) -> Ended {
    let info = AttemptInfo {
        started: claim.started,
        idempotency_key: post.idempotency_key.clone(),
        normalized: crate::cadence::similarity::comparable(&post.text),
    };
    let memo = StoreMemo {
        shared,
        attempt: claim.attempt_id,
    };
    let mut tries: u32 = 0;
    // Whether any try may have reached the platform: only then is a read-back needed.
    let mut unsure = false;
    loop {
        let result = adapter.publish(post, &memo, shared.clock.now()).await;
        let now = shared.clock.now();
        let status = match &result {
            Ok(Sent::Published(receipt)) => receipt.http_status,
            Ok(Sent::NotYet { .. }) => None,
            Err(e) => e.http_status(),
        };
        if let Some(code) = status
            && let Err(e) = shared.with_store(|s| s.set_http_status(claim.attempt_id, code))
        {
            tracing::warn!("could not record the HTTP status: {e}");
        }
        let (reason, resend_at, counts_as_try) = match result {
            Ok(Sent::Published(receipt)) => {
                record_published(shared, &claim, post, &receipt, now);
                return Ended::Published;
            }
            Ok(Sent::NotYet { at, why }) => (why, at, false),
            Err(PublishError::Permanent { reason, fix, .. }) => {
                record_failed(shared, &claim, post, &reason, &fix, now);
                return Ended::NotPublished;
            }
            Err(PublishError::Credentials { reason, fix, .. }) => {
                let detail = format!(
                    "not published: {reason}. {fix}. The channel is paused until the config is reloaded; the post stays queued."
                );
                tracing::error!(channel = %post.channel, file = %post.file, "{detail}");
                finish(
                    shared,
                    claim.attempt_id,
                    now,
                    "retried",
                    None,
                    None,
                    &detail,
                );
                return Ended::Credentials(format!("{reason}. {fix}"));
            }
            Err(PublishError::Transient {
                reason,
                retry_after,
                ..
            }) => {
                tries += 1;
                let delay = backoff(shared.options.backoff, tries, retry_after, claim.attempt_id);
                (reason, later(now, delay), true)
            }
            Err(PublishError::Unknown { reason, .. }) => {
                tries += 1;
                let delay = backoff(shared.options.backoff, tries, None, claim.attempt_id);
                if adapter.can_resend_same_key(claim.key_started, now) {
                    // The platform deduplicates by key: resending cannot post twice.
                    unsure = true;
                    (reason, later(now, delay), true)
                } else {
                    match adapter.reconcile(post, &info, now).await {
                        Reconciled::Posted(receipt) => {
                            record_published(shared, &claim, post, &receipt, now);
                            return Ended::Published;
                        }
                        // Read back: it is not there, so the tries so far created nothing.
                        Reconciled::NotPosted => (reason, later(now, delay), true),
                        Reconciled::Unknown => {
                            record_unknown(shared, &claim, post, &reason, now);
                            return Ended::NotPublished;
                        }
                    }
                }
            }
        };
        if counts_as_try {
            tracing::warn!(channel = %post.channel, file = %post.file, tries, "{reason}");
        } else {
            tracing::info!(channel = %post.channel, file = %post.file, "{reason}; asking again shortly");
        }
        let stop_reason = if resend_at >= claim.until {
            Some("its slot's claim ended before the platform could be reached again".to_string())
        } else if claim.expires.is_some_and(|e| resend_at >= e) {
            Some("it would expire before the next try".to_string())
        } else {
            None
        };
        if let Some(why) = stop_reason {
            give_up(shared, adapter, &claim, post, &info, &reason, &why, unsure).await;
            return Ended::NotPublished;
        }
        let wait = Duration::try_from(resend_at.duration_since(now)).unwrap_or_default();
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = stop.cancelled() => {
                stopped(shared, &claim, post, &reason, unsure);
                return Ended::NotPublished;
            }
        }
        let now = shared.clock.now();
        if let Some(why) = recheck(shared, &claim, post, now) {
            give_up(shared, adapter, &claim, post, &info, &reason, &why, unsure).await;
            return Ended::NotPublished;
        }
        if counts_as_try {
            let detail = format!("try {} after: {reason}", tries + 1);
            if let Err(e) = shared.with_store(|s| s.log_resend(claim.attempt_id, now, &detail)) {
                tracing::error!("could not log the resend: {e}");
            }
        }
    }
}

fn later(now: Timestamp, delay: Duration) -> Timestamp {
    now.checked_add(SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// SIGTERM while waiting to resend: exit now. An attempt whose tries were all refused is
/// finished as not published (it stays queued); one with an unsure try stays `sending`, so
/// the next start reconciles it the platform's way.
fn stopped(shared: &Shared, claim: &Claim, post: &Outgoing, reason: &str, unsure: bool) {
    if unsure {
        tracing::info!(channel = %post.channel, file = %post.file, "stopping while the post waits to be resent; the next start checks whether it went out");
        return;
    }
    let detail =
        format!("not published: {reason}; cadenced stopped before the next try; it stays queued");
    finish(
        shared,
        claim.attempt_id,
        shared.clock.now(),
        "retried",
        None,
        None,
        &detail,
    );
}

/// Before each resend: the cap, the gap (not counting this attempt itself) and `expires`.
fn recheck(shared: &Shared, claim: &Claim, post: &Outgoing, now: Timestamp) -> Option<String> {
    if claim.expires.is_some_and(|e| e <= now) {
        return Some("it expired".to_string());
    }
    let since = now - SignedDuration::from_hours(48).max(claim.rules.min_gap);
    let mut history = shared
        .with_store(|s| s.history(&post.channel, since, true))
        .unwrap_or_default();
    if let Some(pos) = history.iter().position(|t| *t == claim.started) {
        history.remove(pos);
    }
    policy::blocked(&claim.rules, &history, now).map(|w| w.describe_in(&claim.rules.timezone))
}

/// Stops resending. Only when a try may have reached the platform is it asked first (a
/// post that may have gone out is never queued again on its own); then, if it cannot tell
/// but still recognises the attempt's key, the next slot resends with that key.
#[allow(clippy::too_many_arguments)]
async fn give_up(
    shared: &Shared,
    adapter: &AnyAdapter,
    claim: &Claim,
    post: &Outgoing,
    info: &AttemptInfo,
    reason: &str,
    why: &str,
    unsure: bool,
) {
    let now = shared.clock.now();
    let queued_again = |extra: &str| {
        let detail = format!(
            "not published: {reason}; stopped because {why}; it stays queued for a later slot{extra}"
        );
        tracing::warn!(channel = %post.channel, file = %post.file, "{detail}");
        finish(
            shared,
            claim.attempt_id,
            now,
            "retried",
            None,
            None,
            &detail,
        );
    };
    if !unsure {
        queued_again("");
        return;
    }
    match adapter.reconcile(post, info, now).await {
        Reconciled::Posted(receipt) => record_published(shared, claim, post, &receipt, now),
        Reconciled::NotPosted => queued_again(""),
        Reconciled::Unknown if adapter.can_resend_same_key(claim.key_started, now) => {
            queued_again(
                " and is sent with the same idempotency key, so the platform drops a duplicate",
            );
            if let Err(e) = shared.with_store(|s| s.set_key_reusable(claim.attempt_id)) {
                tracing::error!("could not mark the attempt's key for reuse: {e}");
            }
        }
        Reconciled::Unknown => record_unknown(shared, claim, post, reason, now),
    }
}

fn finish(
    shared: &Shared,
    attempt: i64,
    now: Timestamp,
    state: &str,
    remote_id: Option<&str>,
    remote_url: Option<&str>,
    detail: &str,
) {
    if let Err(e) =
        shared.with_store(|s| s.finish_attempt(attempt, now, state, remote_id, remote_url, detail))
    {
        // The attempt stays `sending` and is reconciled at the next start.
        tracing::error!("could not record the outcome ({state}): {e}");
    }
}

fn record_published(
    shared: &Shared,
    claim: &Claim,
    post: &Outgoing,
    receipt: &Receipt,
    now: Timestamp,
) {
    let detail = match &receipt.http_status {
        Some(code) => format!("HTTP {code}"),
        None => String::new(),
    };
    finish(
        shared,
        claim.attempt_id,
        now,
        "published",
        receipt.remote_id.as_deref(),
        receipt.remote_url.as_deref(),
        &detail,
    );
    tracing::info!(
        channel = %post.channel,
        file = %post.file,
        url = receipt.remote_url.as_deref().unwrap_or(""),
        "published"
    );
    move_file(&claim.path, "published", &post.file);
}

fn record_failed(
    shared: &Shared,
    claim: &Claim,
    post: &Outgoing,
    reason: &str,
    fix: &str,
    now: Timestamp,
) {
    finish(
        shared,
        claim.attempt_id,
        now,
        "failed",
        None,
        None,
        &format!("{reason} — {fix}"),
    );
    tracing::error!(channel = %post.channel, file = %post.file, "failed: {reason}; {fix}");
    if let Some(moved) = move_file(&claim.path, "failed", &post.file) {
        let then = if fix.contains("cadenced retry") {
            String::new()
        } else {
            format!(
                "\n\nThen run `cadenced retry {}` to queue it again.",
                post.file
            )
        };
        let note = format!(
            "{} was not published: {reason}\n\nWhat to do: {fix}{then}\n",
            post.file
        );
        if let Err(e) = files::write_note(&moved, "error", &note) {
            tracing::warn!(file = %post.file, "could not write the .error note: {e}");
        }
    }
}

fn record_unknown(shared: &Shared, claim: &Claim, post: &Outgoing, reason: &str, now: Timestamp) {
    let detail = format!(
        "{reason}. Look for the post on the channel, then run `cadenced resolve {} --posted URL` if it is there or `cadenced retry {}` if it is not",
        post.file, post.file
    );
    finish(
        shared,
        claim.attempt_id,
        now,
        "unknown",
        None,
        None,
        &detail,
    );
    tracing::error!(channel = %post.channel, file = %post.file, "outcome unknown: {detail}");
}

fn move_file(path: &Path, sub: &str, id: &str) -> Option<PathBuf> {
    match files::move_into(path, sub) {
        Ok(to) => {
            let _ = files::clear_held_note(path);
            Some(to)
        }
        Err(e) => {
            // The outcome is recorded; the next evaluation finishes the move.
            tracing::error!(file = %id, "could not move to {sub}/: {e}");
            None
        }
    }
}

/// Exponential backoff with jitter; the platform's own hint wins when it is longer.
fn backoff(base: Duration, tries: u32, hint: Option<SignedDuration>, seed: i64) -> Duration {
    let exp = base.saturating_mul(1u32 << tries.saturating_sub(1).min(10));
    // Up to +25% jitter, derived from the attempt so concurrent retries spread out.
    let mut x = (seed as u64) ^ (u64::from(tries) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let jitter = exp.mul_f64((x % 1000) as f64 / 4000.0);
    let hinted = hint
        .and_then(|h| Duration::try_from(h).ok())
        .unwrap_or_default();
    (exp + jitter).max(hinted)
}

/// Start-up reconciliation of an attempt a crash left `sending`. Returns whether the post
/// turned out published.
pub(crate) async fn reconcile(
    shared: &Shared,
    adapter: &AnyAdapter,
    ch: &Channel,
    attempt: &AttemptRow,
    queue_root: &Path,
    stop: &CancellationToken,
) -> Ended {
    let now = shared.clock.now();
    let path = queue_root.join(&attempt.file);
    let fresh = queue::read_post(queue_root, &ch.name, &path);
    let accepted = fresh.as_ref().and_then(|f| f.content.as_ref().ok());
    let post = outgoing(
        queue_root,
        ch,
        &attempt.file,
        accepted,
        &attempt.idempotency_key,
        attempt.started,
    );
    let same_version = fresh.as_ref().is_some_and(|f| f.hash == attempt.hash);
    let claim = Claim {
        attempt_id: attempt.id,
        started: attempt.started,
        key_started: attempt.key_started,
        until: now + ch.rules.catch_up,
        expires: accepted.and_then(|a| a.post.front.expires.map(|e| e.resolve(&ch.rules.timezone))),
        rules: ch.rules.clone(),
        path: path.clone(),
    };
    if same_version && adapter.can_resend_same_key(attempt.key_started, now) {
        tracing::info!(channel = %ch.name, file = %attempt.file, "resending an interrupted attempt with the same idempotency key");
        return publish(shared, adapter, &post, claim, stop).await;
    }
    let info = AttemptInfo {
        started: attempt.started,
        idempotency_key: attempt.idempotency_key.clone(),
        normalized: attempt.normalized.clone(),
    };
    match adapter.reconcile(&post, &info, now).await {
        Reconciled::Posted(receipt) => {
            record_published(shared, &claim, &post, &receipt, now);
            Ended::Published
        }
        Reconciled::NotPosted => {
            finish(
                shared,
                attempt.id,
                now,
                "retried",
                None,
                None,
                "interrupted before it reached the platform; queued again",
            );
            Ended::NotPublished
        }
        Reconciled::Unknown => {
            record_unknown(
                shared,
                &claim,
                &post,
                "interrupted while sending (crash or kill)",
                now,
            );
            Ended::NotPublished
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_honours_the_platform_hint() {
        let base = Duration::from_secs(30);
        let one = backoff(base, 1, None, 7);
        let three = backoff(base, 3, None, 7);
        assert!(one >= base && one <= base.mul_f64(1.25), "{one:?}");
        assert!(
            three >= base * 4 && three <= (base * 4).mul_f64(1.25),
            "{three:?}"
        );
        let hinted = backoff(base, 1, Some(SignedDuration::from_secs(600)), 7);
        assert_eq!(hinted, Duration::from_secs(600));
        assert_ne!(
            backoff(base, 2, None, 1),
            backoff(base, 2, None, 2),
            "jitter spreads retries"
        );
    }
}
