//! The two executors of a plan. [`publish`] sends it over the network: values an earlier
//! try or session already gave are filled in first (so a retry does not upload again), each
//! step is rendered with [`plan::render`], sent with `http::send`, and its answer read (the
//! platform's own reading first, then the shared one below). [`dry_run`] renders the very
//! same steps with placeholders for what only a server gives, for the outbox.
//!
//! Reading a step's answer depends on what the step is ([`Role`]): nothing before the create
//! can have published anything, so a failure there is transient or permanent, never
//! unknown; once the create was sent, only an answer says whether the post exists.
//!
//! What this module must not do: sleep or retry (an answer of "not yet" goes back to the
//! daemon as [`Sent::NotYet`]), read the clock, or let a secret into a message: every text
//! from outside is scrubbed of the channel's credentials and session tokens.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use super::adapter::{
    AttemptInfo, HttpAdapter, Memo, Outgoing, PublishError, Receipt, Reconciled, Sent,
};
use super::http::{self, Answer, Failure};
use super::plan::{
    self, Bindings, Body, Bound, Expiry, From, Keep, Mode, PartValue, Plan, Rendered, Role, Step,
    Unbound, placeholder,
};
use super::{ChannelCtx, Limits, Platform};
use crate::tokens::Stored;

/// How an answer reads, for the step that got it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It worked: keep the step's values and go on.
    Ok,
    Fail(PublishError),
    /// Not done yet; ask again after this long (an upload still processing).
    NotYet {
        after: SignedDuration,
        why: String,
    },
    /// The platform says this post exists already ("duplicate content"): read it back.
    AlreadyPosted(String),
    /// The session expired: forget these session values and ask again at once (the plan's
    /// session steps then renew it).
    SessionExpired {
        forget: Vec<String>,
        why: String,
    },
}

/// How a session renewal looks to the daemon: at once, not after a backoff.
const AT_ONCE: SignedDuration = SignedDuration::ZERO;

/// What a read-back can use: the channel's adapter, the post, the attempt, and the values
/// its session steps gave (a token). [`ReadBack::fetch`] sends a step with them.
pub struct ReadBack<'a> {
    pub adapter: &'a HttpAdapter,
    pub post: &'a Outgoing,
    pub attempt: &'a AttemptInfo,
    pub known: Bindings,
    pub now: Timestamp,
}

impl ReadBack<'_> {
    pub fn ctx(&self) -> ChannelCtx<'_> {
        self.adapter.ctx(self.now)
    }

    /// Sends one read-only step and gives its answer, whatever its status.
    pub async fn fetch(&self, step: &Step) -> Result<Answer, Failure> {
        let rendered = plan::render(step, &self.known, Mode::Send(&self.adapter.credentials))
            .map_err(|e| Failure::NotSent(e.to_string()))?;
        http::send(
            &self.adapter.client,
            &rendered,
            &BTreeMap::new(),
            self.adapter.timeout(step.timeout),
            step.max_answer,
            self.now,
        )
        .await
    }
}

/// The requests a dry run writes for `post`, rendered for people: secrets as `***`, values
/// only a server gives as placeholders. The session values `cadenced auth` stores are
/// assumed present, as the daemon will find them; every other step runs as on a first try
/// that goes straight through.
pub fn dry_run(platform: Platform, ch: &ChannelCtx<'_>, post: &Outgoing) -> Vec<Rendered> {
    let plan = platform.plan(ch, post);
    let mut known = Bindings::new();
    for name in &plan.assumed {
        known.insert(name.clone(), shown(name));
    }
    let mut out = Vec::new();
    for step in &plan.steps {
        if !plan::applies(step, &known) || already_done(step, &known) {
            continue;
        }
        // A hole nothing fills is a bug the unit tests of each plan catch; a dry run shows
        // the placeholder rather than failing the publish.
        let rendered = match plan::render(step, &known, Mode::Show) {
            Ok(r) => r,
            Err(Unbound(name)) => {
                known.insert(name.clone(), shown(&name));
                match plan::render(step, &known, Mode::Show) {
                    Ok(r) => r,
                    Err(_) => continue,
                }
            }
        };
        out.push(rendered);
        for bind in &step.binds {
            known.insert(bind.name.clone(), shown(&bind.name));
        }
    }
    out
}

fn shown(name: &str) -> Bound {
    Bound {
        value: Value::String(placeholder(name)),
        secret: false,
    }
}

/// A step that only gets values, all of which are known already (from the attempt's memo
/// or the token store), is skipped: a retry does not upload again, a valid session is not
/// opened again. The create always runs.
fn already_done(step: &Step, known: &Bindings) -> bool {
    step.role != Role::Create
        && step.binds.iter().any(|b| b.required)
        && step
            .binds
            .iter()
            .filter(|b| b.required)
            .all(|b| known.contains_key(&b.name))
}

/// One network attempt for `post` (see the contract in `platforms`).
pub async fn publish(
    a: &HttpAdapter,
    post: &Outgoing,
    memo: &dyn Memo,
    now: Timestamp,
) -> Result<Sent, PublishError> {
    let ch = a.ctx(now);
    let plan = a.platform.plan(&ch, post);
    let mut net = Net::new(a, Some(post), now);
    for (name, value) in memo.load() {
        net.known.insert(
            name,
            Bound {
                value,
                secret: false,
            },
        );
    }
    match net.run(&plan.steps, memo).await {
        Ok(End::Done) => {}
        Ok(End::NotYet { at, why }) => return Ok(Sent::NotYet { at, why }),
        Err(Stop::Error(e)) => return Err(e),
        Err(Stop::AlreadyPosted(why)) => {
            let attempt = AttemptInfo {
                started: post.started,
                idempotency_key: post.idempotency_key.clone(),
                normalized: crate::cadence::similarity::comparable(&post.text),
            };
            let known = std::mem::take(&mut net.known);
            let rb = ReadBack {
                adapter: a,
                post,
                attempt: &attempt,
                known,
                now,
            };
            return match a.platform.read_back(rb).await {
                Reconciled::Posted(receipt) => Ok(Sent::Published(receipt)),
                // Every post since the attempt began was read and none is this one: the
                // duplicate is older (the same text posted by hand, say). A resend would only
                // be refused again, slot after slot, holding up the channel's queue.
                Reconciled::NotPosted => Err(PublishError::Permanent {
                    reason: format!(
                        "{} refuses the post as a duplicate of one already on the account ({why}), and none of the account's posts since this attempt began is it",
                        a.platform.title()
                    ),
                    fix: format!(
                        "if the post is on the account after all, run `cadenced resolve {file} --posted URL`; if the account has an older post with the same text, change the text and run `cadenced retry {file}`",
                        file = post.file
                    ),
                    http_status: net.last_status,
                }),
                Reconciled::Unknown => Err(PublishError::Unknown {
                    reason: format!(
                        "{} says the post exists already ({why}), and it could not be found among the account's recent posts",
                        a.platform.title()
                    ),
                    http_status: net.last_status,
                }),
            };
        }
    }
    let mut receipt: Receipt = a.platform.receipt(&ch, post, &net.known);
    receipt.http_status = net.create_status;
    Ok(Sent::Published(receipt))
}

/// Reads back an attempt whose outcome is unknown: opens a session the plan's way if one
/// is needed, then asks the platform's read-back. Never creates.
pub async fn read_back(
    a: &HttpAdapter,
    post: &Outgoing,
    attempt: &AttemptInfo,
    now: Timestamp,
) -> Reconciled {
    let ch = a.ctx(now);
    let plan: Plan = a.platform.plan(&ch, post);
    let mut net = Net::new(a, Some(post), now);
    let session: Vec<Step> = plan
        .steps
        .into_iter()
        .filter(|s| s.role == Role::Session && a.platform.read_back_needs_session())
        .collect();
    match net.run(&session, &NoMemo).await {
        Ok(End::Done) => {}
        Ok(End::NotYet { .. }) | Err(_) => return Reconciled::Unknown,
    }
    let rb = ReadBack {
        adapter: a,
        post,
        attempt,
        known: net.known,
        now,
    };
    a.platform.read_back(rb).await
}

/// Runs steps that connect or check the account (`cadenced auth`) with the channel's
/// credentials, from scratch (a stored session is not used: the point is to test the
/// credentials), keeping what they give (tokens to the token store). `given` are values
/// the caller knows (an authorization code), treated as secrets. Returns every value known
/// at the end (secrets included: for the caller's own use, never to print).
pub async fn connect_account(
    a: &HttpAdapter,
    steps: &[Step],
    given: &[(&str, String)],
    now: Timestamp,
) -> Result<Bindings, PublishError> {
    let mut net = Net::new(a, None, now);
    net.known.retain(|_, b| !b.secret);
    for (name, value) in given {
        net.known.insert(
            (*name).to_string(),
            Bound {
                value: Value::String(value.clone()),
                secret: true,
            },
        );
    }
    // A session renewed on the way answers "not yet": once more, now with it.
    let mut why = String::new();
    for _ in 0..2 {
        match net.run(steps, &NoMemo).await {
            Ok(End::Done) => return Ok(net.known),
            Ok(End::NotYet { why: w, .. }) => why = w,
            Err(Stop::Error(e)) => return Err(e),
            Err(Stop::AlreadyPosted(w)) => {
                return Err(PublishError::Permanent {
                    reason: w,
                    fix: String::new(),
                    http_status: None,
                });
            }
        }
    }
    Err(PublishError::Transient {
        reason: why,
        retry_after: None,
        http_status: None,
    })
}

/// The limits the server sets, asked once with the platform's look-up step.
pub async fn learn_limits(a: &HttpAdapter, now: Timestamp) -> Option<Limits> {
    let step = a.platform.limits_lookup(&a.ctx(now))?;
    let rendered = plan::render(&step, &Bindings::new(), Mode::Send(&a.credentials)).ok()?;
    let answer = http::send(
        &a.client,
        &rendered,
        &BTreeMap::new(),
        a.timeout(step.timeout),
        step.max_answer,
        now,
    )
    .await
    .ok()?;
    if !answer.is_success() {
        return None;
    }
    a.platform.read_limits(&answer)
}

struct NoMemo;

impl Memo for NoMemo {
    fn load(&self) -> BTreeMap<String, Value> {
        BTreeMap::new()
    }
    fn save(&self, _: &str, _: &Value) {}
}

enum End {
    Done,
    NotYet { at: Timestamp, why: String },
}

enum Stop {
    Error(PublishError),
    AlreadyPosted(String),
}

/// A plan being sent.
struct Net<'a> {
    a: &'a HttpAdapter,
    /// The post being sent; none when `cadenced auth` connects the account.
    post: Option<&'a Outgoing>,
    now: Timestamp,
    known: Bindings,
    create_status: Option<u16>,
    last_status: Option<u16>,
    /// Values the plan's steps keep in the token store: missing, they mean the channel is
    /// not connected.
    session_names: std::collections::BTreeSet<String>,
    /// A session step succeeded during this call: a session refused now is not stale, and
    /// renewing it again would only loop.
    renewed: bool,
}

impl<'a> Net<'a> {
    /// Starts with the channel's session values that have not expired.
    fn new(a: &'a HttpAdapter, post: Option<&'a Outgoing>, now: Timestamp) -> Net<'a> {
        let mut known = Bindings::new();
        if let Some(tokens) = &a.tokens
            && let Ok(stored) = tokens.get(&a.channel)
        {
            for (name, token) in stored.values {
                // A token about to expire is treated as expired: it could lapse in flight.
                let usable = token
                    .expires
                    .is_none_or(|e| e > now + SignedDuration::from_mins(2));
                if usable {
                    known.insert(
                        name,
                        Bound {
                            value: Value::String(token.value.expose().to_string()),
                            secret: true,
                        },
                    );
                }
            }
        }
        Net {
            a,
            post,
            now,
            known,
            create_status: None,
            last_status: None,
            session_names: Default::default(),
            renewed: false,
        }
    }

    fn platform(&self) -> Platform {
        self.a.platform
    }

    /// The post's file, for the `cadenced retry` hints of messages.
    fn file(&self) -> &str {
        self.post.map_or("FILE", |p| p.file.as_str())
    }

    /// Every credential and session value, for scrubbing outside text.
    fn secret_values(&self) -> Vec<String> {
        self.a
            .credentials
            .values()
            .map(str::to_string)
            .chain(
                self.known
                    .values()
                    .filter(|b| b.secret)
                    .filter_map(|b| b.value.as_str().map(str::to_string)),
            )
            .collect()
    }

    fn scrub(&self, text: &str) -> String {
        let secrets = self.secret_values();
        http::scrub(text, secrets.iter().map(String::as_str))
    }

    async fn run(&mut self, steps: &[Step], memo: &dyn Memo) -> Result<End, Stop> {
        self.session_names.extend(
            steps
                .iter()
                .flat_map(|s| &s.binds)
                .filter(|b| matches!(b.keep, Keep::Session(_)))
                .map(|b| b.name.clone()),
        );
        for step in steps {
            if !plan::applies(step, &self.known) || already_done(step, &self.known) {
                continue;
            }
            match self.step(step, memo).await? {
                Some(end @ End::NotYet { .. }) => return Ok(end),
                Some(End::Done) | None => {}
            }
        }
        Ok(End::Done)
    }

    /// Sends one step. `Ok(None)`: done (or, for a look-up, given up on).
    async fn step(&mut self, step: &Step, memo: &dyn Memo) -> Result<Option<End>, Stop> {
        let title = self.platform().title();
        let rendered = match plan::render(step, &self.known, Mode::Send(&self.a.credentials)) {
            Ok(r) => r,
            Err(_) if step.role == Role::Lookup => return Ok(None),
            // A session value nothing gave: the channel has not been connected (or its
            // tokens were lost): the user must act, not the post.
            Err(Unbound(name)) if self.session_names.contains(&name) => {
                let channel = &self.a.channel;
                return Err(Stop::Error(PublishError::Credentials {
                    reason: format!(
                        "channel `{channel}` is not connected to {title} (no `{name}` in the token store)"
                    ),
                    fix: format!(
                        "run `cadenced auth {channel}` once, as the user the daemon runs as"
                    ),
                    http_status: None,
                }));
            }
            Err(Unbound(name)) => {
                return Err(Stop::Error(PublishError::Permanent {
                    reason: format!(
                        "{title}: {} needs `{name}`, which neither the config nor an earlier answer gave",
                        step.label
                    ),
                    fix: "check the channel's keys with `cadenced check`; if they are complete, this is a bug in cadenced: please report it with the log".into(),
                    http_status: None,
                }));
            }
        };
        let media = match self.read_media(step) {
            Ok(m) => m,
            Err(e) => return Err(Stop::Error(e)),
        };
        let sent = http::send(
            &self.a.client,
            &rendered,
            &media,
            self.a.timeout(step.timeout),
            step.max_answer,
            self.now,
        )
        .await;
        let verdict = match &sent {
            Err(failure) => self.failure_verdict(step, failure),
            Ok(answer) => {
                self.last_status = Some(answer.status);
                if step.role == Role::Create {
                    self.create_status = Some(answer.status);
                }
                self.platform()
                    .read_answer(&self.a.ctx(self.now), step, answer, self.now)
                    .unwrap_or_else(|| self.answer_verdict(step, answer))
            }
        };
        match verdict {
            Verdict::Ok => {
                let answer = sent.as_ref().expect("an Ok verdict comes with an answer");
                self.keep(step, answer, memo).map_err(Stop::Error)?;
                if step.role == Role::Session {
                    self.renewed = true;
                }
                Ok(None)
            }
            Verdict::Fail(_) if step.role == Role::Lookup => Ok(None),
            Verdict::Fail(e) => {
                if let PublishError::Credentials { reason, .. } = &e
                    && let Some(tokens) = &self.a.tokens
                {
                    let reason = reason.clone();
                    let _ =
                        tokens.update(&self.a.channel, self.now, |t| t.needs_auth = Some(reason));
                }
                Err(Stop::Error(e))
            }
            Verdict::NotYet { after, why } => Ok(Some(End::NotYet {
                at: self.now + after.max(SignedDuration::ZERO),
                why,
            })),
            Verdict::AlreadyPosted(why) => Err(Stop::AlreadyPosted(why)),
            Verdict::SessionExpired { .. } if self.renewed => {
                // Refused right after it was opened or renewed: not an expired session but
                // credentials the platform no longer honours (an app whose access was
                // revoked). Renewing again would loop; the channel needs the user.
                let channel = &self.a.channel;
                let status = self
                    .last_status
                    .map(|s| format!(" (HTTP {s})"))
                    .unwrap_or_default();
                let reason = format!(
                    "{title} refused the session it had just given channel `{channel}` for {}{status}",
                    step.label
                );
                if let Some(tokens) = &self.a.tokens {
                    let why = reason.clone();
                    let _ = tokens.update(channel, self.now, |t| t.needs_auth = Some(why));
                }
                Err(Stop::Error(PublishError::Credentials {
                    reason,
                    fix: format!(
                        "check that the account still allows the app, then run `cadenced auth {channel}` to connect it again"
                    ),
                    http_status: self.last_status,
                }))
            }
            Verdict::SessionExpired { forget, why } => {
                if let Some(tokens) = &self.a.tokens {
                    let _ = tokens.update(&self.a.channel, self.now, |t| {
                        t.values.retain(|k, _| !forget.contains(k))
                    });
                }
                Ok(Some(End::NotYet {
                    at: self.now + AT_ONCE,
                    why,
                }))
            }
        }
    }

    /// The media files a step sends, read now (the daemon's reader re-confines each one
    /// to the queue and caps its size).
    fn read_media(&self, step: &Step) -> Result<BTreeMap<usize, Vec<u8>>, PublishError> {
        let mut wanted = Vec::new();
        match &step.body {
            Body::File(m) => wanted.push(m.index),
            Body::Multipart(parts) => {
                for p in parts {
                    if let PartValue::File(m) = &p.value {
                        wanted.push(m.index);
                    }
                }
            }
            _ => {}
        }
        let mut out = BTreeMap::new();
        for index in wanted {
            let Some(media) = self.post.and_then(|p| p.media.get(index)) else {
                continue;
            };
            let bytes = self.a.media.read(media).map_err(|e| {
                let rel = media.rel.display();
                PublishError::Permanent {
                    reason: format!("cannot read media file {rel}: {e}"),
                    fix: format!(
                        "put the file back at {rel} (a regular file inside the queue, not a link out of it), then run `cadenced retry {}`",
                        self.file()
                    ),
                    http_status: None,
                }
            })?;
            out.insert(index, bytes);
        }
        Ok(out)
    }

    /// A request that got no answer.
    fn failure_verdict(&self, step: &Step, failure: &Failure) -> Verdict {
        let title = self.platform().title();
        let why = self.scrub(failure.describe());
        Verdict::Fail(match (failure, step.role) {
            (Failure::NotSent(_), _) => PublishError::Permanent {
                reason: format!("{title}: {} could not be sent: {why}", step.label),
                fix: "check the channel's keys with `cadenced check`".into(),
                http_status: None,
            },
            (Failure::NoAnswer(_), Role::Create) => PublishError::Unknown {
                reason: format!(
                    "{title} got the post but gave no answer ({why}); it may have been published"
                ),
                http_status: None,
            },
            // No connection, or a step before the create: nothing can have been published.
            _ => PublishError::Transient {
                reason: format!("could not reach {title} for {}: {why}", step.label),
                retry_after: None,
                http_status: None,
            },
        })
    }

    /// The shared reading of an answer, by status and by what the step is.
    fn answer_verdict(&self, step: &Step, answer: &Answer) -> Verdict {
        if answer.is_success() {
            return Verdict::Ok;
        }
        let title = self.platform().title();
        let status = answer.status;
        let code = Some(status);
        let said = self.scrub(&http::error_text(answer, |body| {
            self.platform().error_text(body)
        }));
        let channel = &self.a.channel;
        Verdict::Fail(if answer.is_redirect() {
            let to = answer
                .header("location")
                .map(|l| self.scrub(l))
                .unwrap_or_else(|| "an address it did not give".into());
            PublishError::Permanent {
                reason: format!(
                    "{title} answered {} with a redirect (HTTP {status}) to {to}; cadenced never follows a redirect (a post could be sent twice, a token to another host)",
                    step.label
                ),
                fix: format!(
                    "if {to} is the right address, put it in [channels.{channel}] in place of the old one, then run `cadenced retry {}`",
                    self.file()
                ),
                http_status: code,
            }
        } else if status == 429 {
            PublishError::Transient {
                reason: format!("{title} is rate limiting {}: {said}", step.label),
                retry_after: http::retry_hint(answer, self.now),
                http_status: code,
            }
        } else if step.role == Role::Session && (400..500).contains(&status) && status != 408 {
            PublishError::Credentials {
                reason: format!(
                    "{title} refused the credentials of channel `{channel}` (HTTP {status}: {said})"
                ),
                fix: format!(
                    "check the channel's credentials; `cadenced auth {channel}` tests them (and connects the account where the platform uses OAuth)"
                ),
                http_status: code,
            }
        } else if status == 401 || status == 403 {
            PublishError::Permanent {
                reason: format!(
                    "{title} refused the credentials of channel `{channel}` for {} (HTTP {status}: {said})",
                    step.label
                ),
                fix: format!(
                    "give the channel a token with the rights to post (see README, \"Connecting your accounts\"), then run `cadenced retry {}`",
                    self.file()
                ),
                http_status: code,
            }
        } else if (status >= 500 || status == 408) && step.role == Role::Create {
            PublishError::Unknown {
                reason: format!(
                    "{title} answered HTTP {status} to the post ({said}); it may have been published"
                ),
                http_status: code,
            }
        } else if status >= 500 || status == 408 || status == 404 && step.role != Role::Create {
            PublishError::Transient {
                reason: format!("{title} answered HTTP {status} to {}: {said}", step.label),
                retry_after: http::retry_hint(answer, self.now),
                http_status: code,
            }
        } else {
            PublishError::Permanent {
                reason: format!("{title} refused {} (HTTP {status}): {said}", step.label),
                fix: format!(
                    "edit the post so {title} accepts it (`cadenced check` counts as {title} does), then run `cadenced retry {}`",
                    self.file()
                ),
                http_status: code,
            }
        })
    }

    /// Keeps the values a successful answer gives.
    fn keep(&mut self, step: &Step, answer: &Answer, memo: &dyn Memo) -> Result<(), PublishError> {
        let json = answer.json();
        let mut session: Vec<(String, Stored)> = Vec::new();
        for bind in &step.binds {
            let value = match &bind.from {
                From::Json(pointer) => json
                    .as_ref()
                    .and_then(|j| j.pointer(pointer))
                    .filter(|v| !v.is_null())
                    .cloned(),
                From::Header(name) => answer.header(name).map(|v| Value::String(v.into())),
                From::Html(names) => html_meta(&answer.body, names).map(Value::String),
            };
            let Some(value) = value else {
                if bind.required {
                    let title = self.platform().title();
                    let reason = format!(
                        "{title} answered {} without the `{}` cadenced needs",
                        step.label, bind.name
                    );
                    return Err(if step.role == Role::Create {
                        PublishError::Unknown {
                            reason: format!("{reason}; the post may have been published"),
                            http_status: Some(answer.status),
                        }
                    } else {
                        PublishError::Transient {
                            reason,
                            retry_after: None,
                            http_status: Some(answer.status),
                        }
                    });
                }
                continue;
            };
            match &bind.keep {
                Keep::Plan => {}
                Keep::Attempt => memo.save(&bind.name, &value),
                Keep::Session(expiry) => {
                    if let Some(text) = value.as_str() {
                        session.push((
                            bind.name.clone(),
                            Stored {
                                value: crate::secret::Secret::new(text),
                                expires: expires_at(expiry, text, json.as_ref(), self.now),
                            },
                        ));
                    }
                }
            }
            let secret = matches!(bind.keep, Keep::Session(_));
            self.known
                .insert(bind.name.clone(), Bound { value, secret });
        }
        if !session.is_empty()
            && let Some(tokens) = &self.a.tokens
        {
            // Written at once, as one pair: a platform that rotates a refresh token has
            // already invalidated the old one.
            tokens
                .update(&self.a.channel, self.now, |t| {
                    for (name, stored) in session {
                        t.values.insert(name, stored);
                    }
                    t.needs_auth = None;
                })
                .map_err(|e| PublishError::Transient {
                    reason: format!(
                        "could not save the new session of channel `{}` in the token store: {e}",
                        self.a.channel
                    ),
                    retry_after: None,
                    http_status: None,
                })?;
        }
        Ok(())
    }
}

/// When a session value expires.
fn expires_at(
    expiry: &Expiry,
    value: &str,
    answer: Option<&Value>,
    now: Timestamp,
) -> Option<Timestamp> {
    match expiry {
        Expiry::Never => None,
        Expiry::JwtExp => jwt_expiry(value),
        Expiry::Seconds(pointer) => {
            let secs = answer?.pointer(pointer)?.as_i64()?;
            now.checked_add(SignedDuration::from_secs(secs.clamp(0, 10 * 365 * 86_400)))
                .ok()
        }
    }
}

/// The `exp` claim of a JWT (its payload is base64url JSON); nothing is verified: the
/// server does that, this only says when to renew.
pub fn jwt_expiry(token: &str) -> Option<Timestamp> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    Timestamp::from_second(claims.get("exp")?.as_i64()?).ok()
}

/// The first of `names` an HTML page's head gives: `<meta property="…" content="…">` (or
/// `name=`), or for `title` the `<title>` element; entities decoded, whitespace folded.
pub fn html_meta(page: &[u8], names: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(page);
    let lower = text.to_ascii_lowercase();
    for wanted in names {
        if *wanted == "title" {
            if let Some(start) = lower.find("<title")
                && let Some(open_end) = lower[start..].find('>')
                && let Some(end) = lower[start + open_end..].find("</title")
            {
                let inner = &text[start + open_end + 1..start + open_end + end];
                if let Some(v) = clean(inner) {
                    return Some(v);
                }
            }
            continue;
        }
        let mut from = 0;
        while let Some(i) = lower[from..].find("<meta") {
            let start = from + i;
            let end = lower[start..].find('>').map_or(lower.len(), |e| start + e);
            let tag = &text[start..end];
            let key = attribute(tag, "property").or_else(|| attribute(tag, "name"));
            if key.is_some_and(|k| k.eq_ignore_ascii_case(wanted))
                && let Some(v) = attribute(tag, "content").and_then(|c| clean(&c))
            {
                return Some(v);
            }
            from = end;
        }
    }
    None
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(i) = lower[from..].find(name) {
        let at = from + i;
        from = at + name.len();
        let before_ok = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
        let rest = tag[from..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let rest = rest[1..].trim_start();
        let quote = rest.chars().next()?;
        return if quote == '"' || quote == '\'' {
            rest[1..].split(quote).next().map(str::to_string)
        } else {
            rest.split(|c: char| c.is_whitespace() || c == '>')
                .next()
                .map(str::to_string)
        };
    }
    None
}

fn clean(raw: &str) -> Option<String> {
    let decoded = html_escape::decode_html_entities(raw);
    let folded = decoded.split_whitespace().collect::<Vec<_>>().join(" ");
    (!folded.is_empty()).then_some(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_metadata_prefers_open_graph_and_decodes_entities() {
        let page = br#"<html><head><TITLE>Shop &amp; more</TITLE>
            <meta name="description" content="Plain description">
            <meta property="og:title" content="Sneakers &#8211; 30% off" />
            <meta property='og:description' content='Red, blue &amp; green'>
            </head><body>"#;
        assert_eq!(
            html_meta(page, &["og:title", "twitter:title", "title"]).as_deref(),
            Some("Sneakers \u{2013} 30% off")
        );
        assert_eq!(
            html_meta(page, &["og:description", "description"]).as_deref(),
            Some("Red, blue & green")
        );
        assert_eq!(
            html_meta(page, &["twitter:title", "title"]).as_deref(),
            Some("Shop & more")
        );
        assert_eq!(
            html_meta(b"<html>no head</html>", &["og:title", "title"]),
            None
        );
        // CJK titles come through untouched.
        let cjk = "<meta property=\"og:title\" content=\"冬季促销 全场八折\">".as_bytes();
        assert_eq!(
            html_meta(cjk, &["og:title"]).as_deref(),
            Some("冬季促销 全场八折")
        );
    }

    #[test]
    fn jwt_expiry_reads_the_exp_claim() {
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"scope":"com.atproto.access","exp":1795770000}"#);
        let jwt = format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig");
        assert_eq!(
            jwt_expiry(&jwt),
            Some(Timestamp::from_second(1795770000).unwrap())
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
    }
}
