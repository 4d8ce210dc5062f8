//! SPEC rules 5 and 6: a post is held when its text is a near-duplicate of a post the same
//! channel published within `unique_window` or of an earlier pending post of that channel
//! (unique), or of a post for a channel on a different platform, published or pending and
//! first (varied per platform). Pure: the caller passes the log's history and the queue.
//!
//! "First" between pending posts: first seen by the daemon (from the log), then the
//! modification time, then the id. Only a post that could itself be published holds
//! another, so candidates are visited in that order and each one that is not held joins
//! the index that later candidates are compared against.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use super::similarity::{Fingerprint, Index};
/// A platform, by the name the config and the log use (`x`, `mastodon`): all the rules
/// here need is whether two channels are on the same one. The policy knows nothing else
/// about platforms.
pub type Platform = &'static str;

/// A channel as the rules of this module see it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelView {
    pub name: String,
    pub platform: Platform,
    /// Takes part in rule 6.
    pub variation: bool,
    pub similarity: f64,
    pub unique_window: SignedDuration,
}

/// A pending post that could be published (valid, not expired).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// `<channel>/<file name>`.
    pub id: String,
    /// Index into the channel list.
    pub channel: usize,
    pub fingerprint: Fingerprint,
    /// When the log first saw this file, if it has.
    pub first_seen: Option<Timestamp>,
    pub modified: Timestamp,
}

/// A post from the log that went out (or may have).
#[derive(Debug, Clone)]
pub struct PastPost {
    /// `<channel>/<file name>` as logged.
    pub id: String,
    pub channel: String,
    pub platform: Platform,
    pub at: Timestamp,
    pub fingerprint: Fingerprint,
}

/// Why a post is held by rule 5 or 6.
#[derive(Debug, Clone, PartialEq)]
pub struct HoldReason {
    pub rule: HoldRule,
    /// The other post (`<channel>/<file name>`).
    pub other: String,
    pub other_platform: Platform,
    /// When the other post was published; `None` when it is pending.
    pub published: Option<Timestamp>,
    pub similarity: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRule {
    /// Rule 5: the same channel already has this text.
    Unique,
    /// Rule 6: a channel on another platform has this text.
    Varied,
}

impl HoldReason {
    /// What happened and what to do, in plain words.
    pub fn describe(&self, this_platform: Platform) -> (String, String) {
        let pct = (self.similarity * 100.0).floor();
        let when = match self.published {
            Some(at) => format!("published {}", at.strftime("%Y-%m-%d %H:%M UTC")),
            None => "pending, and first in the queue".to_string(),
        };
        match self.rule {
            HoldRule::Unique => (
                format!(
                    "near-duplicate ({pct}% similar) of {} ({when}) on the same channel",
                    self.other
                ),
                "followers leave when they see the same post again: write a new text, or remove this file".to_string(),
            ),
            HoldRule::Varied => (
                format!(
                    "same text ({pct}% similar) as {} for {} ({when})",
                    self.other, self.other_platform
                ),
                format!(
                    "each platform needs its own text: rewrite this post for {this_platform}"
                ),
            ),
        }
    }
}

#[derive(Clone)]
enum Entry {
    Past(usize),
    Pending(usize),
}

/// Decides which candidates rules 5 and 6 hold. `now` bounds the unique windows.
pub fn find_holds(
    channels: &[ChannelView],
    candidates: &[Candidate],
    past: &[PastPost],
    now: Timestamp,
) -> HashMap<String, HoldReason> {
    let mut holds = HashMap::new();
    let Some(min_threshold) = channels.iter().map(|c| c.similarity).reduce(f64::min) else {
        return holds;
    };
    let longest_window = channels
        .iter()
        .map(|c| c.unique_window)
        .max()
        .unwrap_or_default();
    let by_name: HashMap<&str, &ChannelView> =
        channels.iter().map(|c| (c.name.as_str(), c)).collect();

    let mut index: Index<Entry> = Index::new();
    for (i, p) in past.iter().enumerate() {
        if now.duration_since(p.at) <= longest_window {
            index.insert(Entry::Past(i), p.fingerprint.clone());
        }
    }

    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (&candidates[a], &candidates[b]);
        (
            a.first_seen.is_none(),
            a.first_seen,
            a.modified,
            a.id.as_bytes(),
        )
            .cmp(&(
                b.first_seen.is_none(),
                b.first_seen,
                b.modified,
                b.id.as_bytes(),
            ))
    });

    for ci in order {
        let cand = &candidates[ci];
        let this = &channels[cand.channel];
        let mut best: Option<HoldReason> = None;
        for (entry, sim) in index.find(&cand.fingerprint, min_threshold) {
            let (other_id, other_channel, other_platform, published) = match entry {
                Entry::Past(i) => {
                    let p = &past[i];
                    (&p.id, p.channel.as_str(), p.platform, Some(p.at))
                }
                Entry::Pending(i) => {
                    let c = &candidates[i];
                    let ch = &channels[c.channel];
                    (&c.id, ch.name.as_str(), ch.platform, None)
                }
            };
            if published.is_some_and(|at| now.duration_since(at) > this.unique_window) {
                continue;
            }
            let other = by_name.get(other_channel);
            let threshold = other.map_or(this.similarity, |o| o.similarity.min(this.similarity));
            if sim < threshold {
                continue;
            }
            let rule = if other_channel == this.name {
                HoldRule::Unique
            } else if other_platform != this.platform
                && this.variation
                && other.is_none_or(|o| o.variation)
            {
                HoldRule::Varied
            } else {
                continue;
            };
            let better = best.as_ref().is_none_or(|b| sim > b.similarity);
            if better {
                best = Some(HoldReason {
                    rule,
                    other: other_id.clone(),
                    other_platform,
                    published,
                    similarity: sim,
                });
            }
        }
        match best {
            Some(reason) => {
                holds.insert(cand.id.clone(), reason);
            }
            None => index.insert(Entry::Pending(ci), cand.fingerprint.clone()),
        }
    }
    holds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str, platform: Platform) -> ChannelView {
        ChannelView {
            name: name.into(),
            platform,
            variation: !matches!(platform, "webhook" | "exec" | "outbox"),
            similarity: 0.8,
            unique_window: SignedDuration::from_hours(30 * 24),
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cand(id: &str, channel: usize, text: &str, modified: &str) -> Candidate {
        Candidate {
            id: id.into(),
            channel,
            fingerprint: Fingerprint::of_text(text),
            first_seen: None,
            modified: t(modified),
        }
    }

    const SALE: &str = "Black Friday: 30% off all sneakers until midnight, in store and online.";

    #[test]
    fn same_text_for_x_and_mastodon_holds_exactly_the_later_one() {
        let channels = [channel("shop-x", "x"), channel("shop-masto", "mastodon")];
        let cands = [
            cand("shop-masto/bf.md", 1, SALE, "2026-11-20T10:00:00Z"),
            cand("shop-x/bf.md", 0, SALE, "2026-11-20T09:00:00Z"),
        ];
        let holds = find_holds(&channels, &cands, &[], t("2026-11-22T00:00:00Z"));
        assert_eq!(holds.len(), 1);
        let reason = &holds["shop-masto/bf.md"];
        assert_eq!(reason.rule, HoldRule::Varied);
        assert_eq!(reason.other, "shop-x/bf.md");
        let (msg, help) = reason.describe("mastodon");
        assert!(msg.contains("shop-x/bf.md"), "{msg}");
        assert!(help.contains("rewrite this post for mastodon"), "{help}");
    }

    #[test]
    fn first_seen_in_the_log_beats_modification_time() {
        let channels = [channel("a", "x"), channel("b", "bluesky")];
        let mut older = cand("a/1.md", 0, SALE, "2026-11-20T09:00:00Z");
        let mut seen_first = cand("b/1.md", 1, SALE, "2026-11-20T10:00:00Z");
        seen_first.first_seen = Some(t("2026-11-19T00:00:00Z"));
        older.first_seen = None;
        let holds = find_holds(
            &channels,
            &[older, seen_first],
            &[],
            t("2026-11-22T00:00:00Z"),
        );
        assert!(holds.contains_key("a/1.md"));
    }

    #[test]
    fn published_posts_hold_only_within_the_window() {
        let channels = [channel("a", "x")];
        let past = [PastPost {
            id: "a/old.md".into(),
            channel: "a".into(),
            platform: "x",
            at: t("2026-10-01T00:00:00Z"),
            fingerprint: Fingerprint::of_text(SALE),
        }];
        let cands = [cand("a/new.md", 0, SALE, "2026-11-20T09:00:00Z")];
        let held = find_holds(&channels, &cands, &past, t("2026-10-20T00:00:00Z"));
        assert_eq!(held["a/new.md"].rule, HoldRule::Unique);
        assert_eq!(held["a/new.md"].published, Some(t("2026-10-01T00:00:00Z")));
        let free = find_holds(&channels, &cands, &past, t("2026-11-20T00:00:00Z"));
        assert!(
            free.is_empty(),
            "31 days later the window of 30 days is over"
        );
    }

    #[test]
    fn generic_sinks_take_part_only_with_variation() {
        let mut hook = channel("hook", "webhook");
        let channels = [channel("x", "x"), hook.clone()];
        let cands = [
            cand("x/a.md", 0, SALE, "2026-11-20T09:00:00Z"),
            cand("hook/a.md", 1, SALE, "2026-11-20T10:00:00Z"),
        ];
        assert!(find_holds(&channels, &cands, &[], t("2026-11-21T00:00:00Z")).is_empty());
        hook.variation = true;
        let channels = [channel("x", "x"), hook];
        assert!(
            find_holds(&channels, &cands, &[], t("2026-11-21T00:00:00Z")).contains_key("hook/a.md")
        );
    }

    #[test]
    fn two_channels_of_the_same_platform_may_share_a_text() {
        let channels = [channel("x1", "x"), channel("x2", "x")];
        let cands = [
            cand("x1/a.md", 0, SALE, "2026-11-20T09:00:00Z"),
            cand("x2/a.md", 1, SALE, "2026-11-20T10:00:00Z"),
        ];
        assert!(find_holds(&channels, &cands, &[], t("2026-11-21T00:00:00Z")).is_empty());
    }

    #[test]
    fn the_stricter_similarity_of_the_two_channels_applies() {
        let mut strict = channel("m", "mastodon");
        strict.similarity = 0.3;
        let channels = [channel("x", "x"), strict];
        let cands = [
            cand("x/a.md", 0, SALE, "2026-11-20T09:00:00Z"),
            cand(
                "m/a.md",
                1,
                "Black Friday: 30% off every sneaker until midnight, online only!",
                "2026-11-20T10:00:00Z",
            ),
        ];
        let holds = find_holds(&channels, &cands, &[], t("2026-11-21T00:00:00Z"));
        assert!(holds.contains_key("m/a.md"), "0.3 applies, not 0.8");
    }

    #[test]
    fn a_held_post_does_not_hold_a_third() {
        let channels = [channel("a", "x")];
        let cands = [
            cand("a/1.md", 0, SALE, "2026-11-20T09:00:00Z"),
            cand("a/2.md", 0, SALE, "2026-11-20T10:00:00Z"),
            cand("a/3.md", 0, SALE, "2026-11-20T11:00:00Z"),
        ];
        let holds = find_holds(&channels, &cands, &[], t("2026-11-21T00:00:00Z"));
        assert_eq!(holds["a/2.md"].other, "a/1.md");
        assert_eq!(holds["a/3.md"].other, "a/1.md");
    }
}
