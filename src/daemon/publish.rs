//! One publish, from the committed attempt row to the file's final folder: resends of
//! transient failures with exponential backoff and jitter (honouring the platform's
//! `Retry-After`/reset hint) while the claim on the slot lasts, re-checking cap, gap and
//! `expires` before each resend; permanent failures to `failed/` with a `.error` note;
//! unknown outcomes reconciled the platform's way, else left `unknown` for the user.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::Shared;
use crate::cadence::ChannelRules;
use crate::cadence::policy;
use crate::config::Channel;
use crate::platforms::adapter::{
    Adapter, AttemptInfo, Outgoing, OutgoingMedia, PublishError, Receipt, Reconciled,
};
use crate::platforms::registry::AnyAdapter;
use crate::queue::{self, files};
use crate::store::AttemptRow;

/// What a publish holds on to while it retries.
#[derive(Debug, Clone)]
pub struct Claim {
    pub attempt_id: i64,
    pub started: Timestamp,
    /// Resends stop here: the channel's next slot or `catch_up`, whichever is sooner.
    pub until: Timestamp,
    pub expires: Option<Timestamp>,
    pub rules: ChannelRules,
    /// The post file in the queue.
    pub path: PathBuf,
}

/// Publishes `post` under `claim`; returns whether it went out.
pub(crate) async fn publish(
    shared: &Shared,
    adapter: &AnyAdapter,
    post: &Outgoing,
    claim: Claim,
) -> bool {
    let info = AttemptInfo {
        started: claim.started,
        idempotency_key: post.idempotency_key.clone(),
        normalized: crate::cadence::similarity::comparable(&post.text),
    };
    let mut tries: u32 = 0;
    loop {
        tries += 1;
        let result = adapter.publish(post, shared.clock.now()).await;
        let now = shared.clock.now();
        let status = match &result {
            Ok(receipt) => receipt.http_status,
            Err(e) => e.http_status(),
        };
        if let Some(code) = status
            && let Err(e) = shared.with_store(|s| s.set_http_status(claim.attempt_id, code))
        {
            tracing::warn!("could not record the HTTP status: {e}");
        }
        let (reason, retry_after) = match result {
            Ok(receipt) => {
                record_published(shared, &claim, post, &receipt, now);
                return true;
            }
            Err(PublishError::Permanent { reason, fix, .. }) => {
                record_failed(shared, &claim, post, &reason, &fix, now);
                return false;
            }
            Err(PublishError::Transient {
                reason,
                retry_after,
                ..
            }) => (reason, retry_after),
            Err(PublishError::Unknown { reason, .. }) => {
                if adapter.can_resend_same_key(claim.started, now) {
                    // The platform deduplicates by key: resending cannot post twice.
                    (reason, None)
                } else {
                    match adapter.reconcile(post, &info, now).await {
                        Reconciled::Posted(receipt) => {
                            record_published(shared, &claim, post, &receipt, now);
                            return true;
                        }
                        Reconciled::NotPosted => (reason, None),
                        Reconciled::Unknown => {
                            record_unknown(shared, &claim, post, &reason, now);
                            return false;
                        }
                    }
                }
            }
        };
        tracing::warn!(channel = %post.channel, file = %post.file, tries, "{reason}");
        let delay = backoff(shared.options.backoff, tries, retry_after, claim.attempt_id);
        let resend_at = now + SignedDuration::try_from(delay).unwrap_or(SignedDuration::MAX);
        let stop = if resend_at >= claim.until {
            Some("its slot's claim ended before the platform could be reached again".to_string())
        } else if claim.expires.is_some_and(|e| resend_at >= e) {
            Some("it would expire before the next try".to_string())
        } else {
            None
        };
        if let Some(why) = stop {
            give_up(shared, adapter, &claim, post, &info, &reason, &why).await;
            return false;
        }
        tokio::time::sleep(delay).await;
        let now = shared.clock.now();
        if let Some(why) = recheck(shared, &claim, post, now) {
            give_up(shared, adapter, &claim, post, &info, &reason, &why).await;
            return false;
        }
        let detail = format!("try {} after: {reason}", tries + 1);
        if let Err(e) = shared.with_store(|s| s.log_resend(claim.attempt_id, now, &detail)) {
            tracing::error!("could not log the resend: {e}");
        }
    }
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
    policy::blocked(&claim.rules, &history, now).map(|w| w.describe())
}

/// Stops resending. If the last outcome was unsure, asks the platform first: a post that
/// may have gone out is never queued again on its own.
async fn give_up(
    shared: &Shared,
    adapter: &AnyAdapter,
    claim: &Claim,
    post: &Outgoing,
    info: &AttemptInfo,
    reason: &str,
    why: &str,
) {
    let now = shared.clock.now();
    match adapter.reconcile(post, info, now).await {
        Reconciled::Posted(receipt) => record_published(shared, claim, post, &receipt, now),
        Reconciled::Unknown if !matches!(post.platform, crate::platforms::Platform::Outbox) => {
            record_unknown(shared, claim, post, reason, now)
        }
        _ => {
            let detail = format!(
                "not published: {reason}; stopped because {why}; it stays queued for a later slot"
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
        }
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
        let note = format!(
            "{} was not published: {reason}\n\nWhat to do: {fix}\n\nThen run `cadenced retry {}` to queue it again.\n",
            post.file, post.file
        );
        if let Err(e) = files::write_note(&moved, "error", &note) {
            tracing::warn!(file = %post.file, "could not write the .error note: {e}");
        }
    }
}

fn record_unknown(shared: &Shared, claim: &Claim, post: &Outgoing, reason: &str, now: Timestamp) {
    let detail = format!(
        "{reason}; it may have gone out: check the channel, then `cadenced retry {}` (not posted) or `cadenced resolve {} --posted URL` (posted)",
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
) -> bool {
    let now = shared.clock.now();
    let path = queue_root.join(&attempt.file);
    let path = path.as_path();
    let fresh = queue::read_post(queue_root, &ch.name, path);
    let accepted = fresh.as_ref().and_then(|f| f.content.as_ref().ok());
    let post = Outgoing {
        channel: ch.name.clone(),
        platform: ch.platform,
        file: attempt.file.clone(),
        text: accepted.map(|a| a.post.body.clone()).unwrap_or_default(),
        media: accepted
            .map(|a| {
                a.media
                    .iter()
                    .map(|m| OutgoingMedia {
                        path: m.path.clone(),
                        rel: m.rel.clone(),
                        alt: m.alt.clone(),
                        bytes: m.bytes,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        link: accepted.and_then(|a| a.post.front.link.clone()),
        lang: accepted.and_then(|a| a.post.front.lang.clone()),
        fields: accepted
            .map(|a| a.post.front.platform.clone())
            .unwrap_or_default(),
        idempotency_key: attempt.idempotency_key.clone(),
    };
    let same_version = fresh.as_ref().is_some_and(|f| f.hash == attempt.hash);
    let claim = Claim {
        attempt_id: attempt.id,
        started: attempt.started,
        until: now + ch.rules.catch_up,
        expires: accepted.and_then(|a| a.post.front.expires.map(|e| e.resolve(&ch.rules.timezone))),
        rules: ch.rules.clone(),
        path: path.to_path_buf(),
    };
    if same_version && adapter.can_resend_same_key(attempt.started, now) {
        tracing::info!(channel = %ch.name, file = %attempt.file, "resending an interrupted attempt with the same idempotency key");
        return publish(shared, adapter, &post, claim).await;
    }
    let info = AttemptInfo {
        started: attempt.started,
        idempotency_key: attempt.idempotency_key.clone(),
        normalized: attempt.normalized.clone(),
    };
    match adapter.reconcile(&post, &info, now).await {
        Reconciled::Posted(receipt) => {
            record_published(shared, &claim, &post, &receipt, now);
            true
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
            false
        }
        Reconciled::Unknown => {
            record_unknown(
                shared,
                &claim,
                &post,
                "interrupted while sending (crash or kill)",
                now,
            );
            false
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
