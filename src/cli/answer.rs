//! `cadenced retry FILE` and `cadenced resolve FILE --posted [URL]`: the user's answer about
//! a post whose outcome the daemon could not learn (`unknown`), or that failed.
//!
//! - `retry`: it was not posted. The attempt becomes `retried`; the daemon then sends the
//!   file again under a new idempotency key (a file in `failed/` moves back into its
//!   channel folder first).
//! - `resolve --posted`: it went out. The attempt becomes `resolved` (counting for caps,
//!   gaps and uniqueness like a published post), with the URL if given, and the file moves
//!   to `published/`.
//!
//! The log is changed first and the file moved second: once the answer is recorded, a file
//! left behind by a failed move is still handled right (the daemon finishes interrupted
//! moves of resolved posts; a retried one is simply queued). The change happens only if the
//! attempt is still in the state the user was told about, so an answer never overrules the
//! daemon settling the same attempt at the same moment. Moves never overwrite a file.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::config::{Channel, Config, lexical_join};
use crate::queue::files;
use crate::store::{Answered, AttemptSummary, Store};

use super::{EXIT_CONFIG, EXIT_PROBLEMS, Output, load_config};

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The post: `shop-x/sale.md` (relative to the queue), or its path, also inside
    /// `failed/`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct ResolveArgs {
    /// The post: `shop-x/sale.md` (relative to the queue), or its path, also inside
    /// `failed/`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// It did go out; give the post's address on the platform if you have it.
    #[arg(long, value_name = "URL", num_args = 0..=1, required = true)]
    pub posted: Option<Option<String>>,
}

/// States an attempt may be in for each answer. `failed` is allowed for both: the platform
/// said no, but the user may know better (a post that went out despite an error reply, or
/// a cause fixed since).
const ANSWERABLE: [&str; 2] = ["unknown", "failed"];

/// Which post the user means: `<channel>/<name>` as the log names it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    channel: String,
    name: String,
}

impl Target {
    fn id(&self) -> String {
        format!("{}/{}", self.channel, self.name)
    }
}

pub fn retry(
    config_path: Option<&Path>,
    args: RetryArgs,
    clock: &dyn Clock,
    out: &Output,
) -> ExitCode {
    let (config, target, mut store, attempt) = match prepare(config_path, &args.file, "retry", out)
    {
        Ok(p) => p,
        Err(code) => return code,
    };
    let id = target.id();
    let channel = Channel::find(&config.channels, &target.channel);
    let tz = channel.map_or(TimeZone::UTC, |c| c.rules.timezone.clone());
    if !ANSWERABLE.contains(&attempt.state.as_str()) {
        eprintln!("{}", refusal(&attempt, "retry", &tz));
        return ExitCode::from(EXIT_PROBLEMS);
    }
    let now = clock.now();
    let detail = format!(
        "retried by hand (it was {}): not published; the daemon sends it again with a new idempotency key",
        attempt.state
    );
    if let Some(code) = record(
        store.retry_attempt(attempt.id, &ANSWERABLE, now, &detail),
        &attempt,
        "retry",
        &tz,
        &store,
    ) {
        return code;
    }
    outln!(
        "{id}: recorded as not published (`retried`; its attempt of {} was `{}`).",
        local(attempt.started, &tz),
        attempt.state
    );

    let dir = config.queue.join(&target.channel);
    let in_place = dir.join(&target.name);
    let failed = dir.join("failed").join(&target.name);
    let mut code = ExitCode::SUCCESS;
    if exists(&failed) {
        if exists(&in_place) {
            outln!(
                "{} is queued already (a newer version?): that one is sent; the failed copy stays at {}.",
                out.path(&in_place),
                out.path(&failed)
            );
        } else {
            match move_no_overwrite(&failed, &dir, OsStr::new(&target.name), false) {
                Ok(to) => {
                    outln!("Moved {} back to {}.", out.path(&failed), out.path(&to));
                    // The note said why it failed and to run `retry`: answered, and it
                    // must not stay behind to be mistaken for the next failure's note.
                    let _ = files::clear_note(&failed, files::ERROR);
                }
                Err(e) => {
                    eprintln!(
                        "error: could not move {} back to {}: {e}\nhelp: move it there by hand; the log already says it is to be sent again",
                        out.path(&failed),
                        out.path(&in_place)
                    );
                    code = ExitCode::from(EXIT_PROBLEMS);
                }
            }
        }
    } else if !exists(&in_place) {
        outln!(
            "{} is not in the queue: put the post back there to have it sent.",
            out.path(&in_place)
        );
        return code;
    }
    match channel {
        Some(ch) if ch.rules.paused => outln!(
            "Next: channel `{}` is paused; the post goes out once `paused` is removed from the config.",
            ch.name
        ),
        Some(ch) => {
            let slot = ch
                .rules
                .slots
                .next_after(now, &ch.rules.timezone)
                .map(|t| format!(" (the next slot is {})", local(t, &ch.rules.timezone)))
                .unwrap_or_default();
            outln!(
                "Next: the daemon checks it again and sends it with a new idempotency key when the channel's cadence allows{slot}; `cadenced plan` shows when."
            );
        }
        None => outln!(
            "Note: the config has no channel `{}`, so nothing will send it until one is added.",
            target.channel
        ),
    }
    code
}

pub fn resolve(
    config_path: Option<&Path>,
    args: ResolveArgs,
    clock: &dyn Clock,
    out: &Output,
) -> ExitCode {
    let url = match args.posted.flatten() {
        None => None,
        Some(u) => match check_url(&u) {
            Ok(()) => Some(u),
            Err(msg) => {
                eprintln!("error: --posted {u:?}: {msg}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
    };
    let (config, target, mut store, attempt) =
        match prepare(config_path, &args.file, "resolve", out) {
            Ok(p) => p,
            Err(code) => return code,
        };
    let id = target.id();
    let tz = Channel::find(&config.channels, &target.channel)
        .map_or(TimeZone::UTC, |c| c.rules.timezone.clone());
    if !ANSWERABLE.contains(&attempt.state.as_str()) {
        eprintln!("{}", refusal(&attempt, "resolve", &tz));
        return ExitCode::from(EXIT_PROBLEMS);
    }
    let now = clock.now();
    // The URL goes into the attempt's `remote_url`, which the log shows beside this row.
    let detail = format!("resolved by hand (it was {}): it went out", attempt.state);
    if let Some(code) = record(
        store.resolve_attempt(attempt.id, &ANSWERABLE, now, url.as_deref(), &detail),
        &attempt,
        "resolve",
        &tz,
        &store,
    ) {
        return code;
    }
    let url = url.or(attempt.remote_url.clone());
    outln!(
        "{id}: recorded as published (`resolved`; its attempt of {} was `{}`){}.",
        local(attempt.started, &tz),
        attempt.state,
        url.map(|u| format!(", at {u}")).unwrap_or_default()
    );

    let dir = config.queue.join(&target.channel);
    let in_place = dir.join(&target.name);
    let failed = dir.join("failed").join(&target.name);
    let published = dir.join("published");
    let mut code = ExitCode::SUCCESS;
    // Only the version that was sent moves: a file edited since is a new post.
    let sent = |p: &Path| exists(p) && hash_of(p).is_some_and(|h| h == attempt.hash);
    let moved = if sent(&in_place) {
        Some((in_place.clone(), files::move_into(&in_place, "published")))
    } else if sent(&failed) {
        let to = move_no_overwrite(&failed, &published, OsStr::new(&target.name), true);
        if to.is_ok() {
            // The note said it was not published; it was.
            let _ = files::clear_note(&failed, files::ERROR);
        }
        Some((failed.clone(), to))
    } else {
        None
    };
    match moved {
        Some((from, Ok(to))) => outln!("Moved {} to {}.", out.path(&from), out.path(&to)),
        Some((from, Err(e))) => {
            eprintln!(
                "error: could not move {} to {}/: {e}\nhelp: the log already records it as published (it will not be sent again); move it by hand",
                out.path(&from),
                out.path(&published)
            );
            code = ExitCode::from(EXIT_PROBLEMS);
        }
        None if exists(&in_place) => outln!(
            "{} has changed since it was sent, so it stays: it is a new post now (held if it is too close to the one just resolved). Remove or rename it if it should not go out.",
            out.path(&in_place)
        ),
        None => outln!("The file is no longer in the queue; nothing to move."),
    }
    outln!(
        "Next: it counts toward the channel's cap, gap and uniqueness like any published post; the daemon will not send it again."
    );
    code
}

/// Loads the config, names the post and finds its latest attempt in the log (opened for
/// writing: both commands record an answer).
fn prepare(
    config_path: Option<&Path>,
    file: &Path,
    verb: &str,
    out: &Output,
) -> Result<(Config, Target, Store, AttemptSummary), ExitCode> {
    let loaded = load_config(config_path, out)?;
    let config = loaded.config;
    let target = match target(file, &config.queue, &out.cwd) {
        Ok(t) => t,
        Err(msg) => {
            eprintln!("error: {}: {msg}", file.display());
            return Err(ExitCode::from(EXIT_CONFIG));
        }
    };
    let id = target.id();
    // `Store::open` would create an empty log; there is nothing to answer without one.
    if !config.database.exists() {
        eprintln!(
            "no publish log yet at {}: the daemon has not run, so {id} was never sent and there is nothing to {verb}",
            out.path(&config.database)
        );
        return Err(ExitCode::from(EXIT_PROBLEMS));
    }
    let store = Store::open(&config.database).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(EXIT_PROBLEMS)
    })?;
    let attempt = match store.latest_attempt(&id) {
        Ok(Some(a)) => a,
        Ok(None) => {
            let hint = if Channel::find(&config.channels, &target.channel).is_none() {
                format!(
                    " (and the config has no channel `{}`; its channels: {})",
                    target.channel,
                    config
                        .channels
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            };
            eprintln!(
                "{id} was never sent: the log has no attempt for it{hint}; nothing to {verb}. `cadenced log --channel {}` lists what the log holds.",
                target.channel
            );
            return Err(ExitCode::from(EXIT_PROBLEMS));
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(EXIT_PROBLEMS));
        }
    };
    Ok((config, target, store, attempt))
}

/// Reports an answer that could not be recorded; `None` when it was.
fn record(
    result: crate::store::Result<Answered>,
    attempt: &AttemptSummary,
    verb: &str,
    tz: &TimeZone,
    store: &Store,
) -> Option<ExitCode> {
    match result {
        Ok(Answered::Done { .. }) => None,
        Ok(Answered::Stale { .. }) => {
            // Settled in the meantime (by the daemon, or another answer): say what it is now.
            let now = store
                .latest_attempt(&attempt.file)
                .ok()
                .flatten()
                .unwrap_or_else(|| attempt.clone());
            eprintln!("{}", refusal(&now, verb, tz));
            Some(ExitCode::from(EXIT_PROBLEMS))
        }
        Err(e) => {
            eprintln!("error: could not record the answer: {e}");
            Some(ExitCode::from(EXIT_PROBLEMS))
        }
    }
}

/// Why `verb` does not apply to an attempt in its state, and what does.
fn refusal(a: &AttemptSummary, verb: &str, tz: &TimeZone) -> String {
    let when = local(a.started, tz);
    let file = &a.file;
    let state = &a.state;
    let why = match state.as_str() {
        "sending" => format!(
            "it is being sent right now (attempt of {when}); if the daemon is not running, it settles this attempt when it starts. Run `cadenced status` afterwards"
        ),
        "published" | "resolved" => format!(
            "it went out ({when}{}); to post it again, put a copy under a new name into its channel folder",
            a.remote_url
                .as_deref()
                .map(|u| format!(", {u}"))
                .unwrap_or_default()
        ),
        "retried" if verb == "retry" => format!(
            "it is queued to be sent again already (its attempt of {when} is `retried`); `cadenced plan` shows when"
        ),
        "retried" => format!(
            "its attempt of {when} is `retried`: it is queued to be sent again. If it did go out after all, remove or rename the file so it is not sent twice"
        ),
        _ => format!("its latest attempt ({when}) is `{state}`"),
    };
    format!(
        "{file}: nothing to {verb}: {why}. `{verb}` answers an attempt that is `unknown` or `failed`."
    )
}

/// The post the user names, as the log names it. Accepted: a path to the file (absolute or
/// from the current folder) anywhere in the queue, including the channel's `failed/`,
/// `published/` and `expired/` folders; or `<channel>/<name>` relative to the queue.
fn target(arg: &Path, queue: &Path, cwd: &Path) -> Result<Target, String> {
    let abs = lexical_join(cwd, arg);
    let rel = abs
        .strip_prefix(queue)
        .map(Path::to_path_buf)
        .ok()
        .or_else(|| {
            // The same folders reached through a symlink (`/var/spool` on some systems).
            let parent = abs.parent()?.canonicalize().ok()?;
            let queue = queue.canonicalize().ok()?;
            Some(parent.strip_prefix(&queue).ok()?.join(abs.file_name()?))
        })
        .or_else(|| arg.is_relative().then(|| arg.to_path_buf()))
        .ok_or_else(|| format!("not inside the queue folder {}", queue.display()))?;
    let parts: Vec<&OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Ok(p),
            _ => Err(()),
        })
        .collect::<Result<_, _>>()
        .map_err(|()| {
            "expected `<channel>/<file>` inside the queue, e.g. `shop-x/sale.md`".to_string()
        })?;
    let (channel, name) = match parts.as_slice() {
        [channel, name] => (channel, name),
        [channel, sub, name] if files::SUB_FOLDERS.iter().any(|s| OsStr::new(s) == *sub) => {
            (channel, name)
        }
        _ => {
            return Err(format!(
                "expected `<channel>/<file>` inside the queue, e.g. `shop-x/sale.md` (or its path inside {})",
                queue.display()
            ));
        }
    };
    let text = |s: &OsStr| {
        s.to_str()
            .map(str::to_string)
            .ok_or_else(|| "the name is not valid UTF-8".to_string())
    };
    Ok(Target {
        channel: text(channel)?,
        name: text(name)?,
    })
}

/// `--posted URL`: an absolute http(s) address.
fn check_url(u: &str) -> Result<(), String> {
    match reqwest::Url::parse(u) {
        Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => Ok(()),
        _ => Err("expected the post's address, e.g. `https://mastodon.social/@shop/1234` (or leave it out: `--posted` alone)".to_string()),
    }
}

fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

/// The version hash the daemon records (hex SHA-256 of the bytes); `None` for anything
/// but a readable regular file.
fn hash_of(p: &Path) -> Option<String> {
    if !p.symlink_metadata().ok()?.is_file() {
        return None;
    }
    let bytes = std::fs::read(p).ok()?;
    Some(hex::encode(Sha256::digest(&bytes)))
}

/// Renames `from` to `dir/name` (or, if `numbered`, the first free `name-2`, `name-3`...,
/// the daemon's naming), creating `dir`. Never replaces a file: each name is checked
/// before the rename (`queue::files` keeps its atomic no-replace rename to itself; the
/// window here is one person's command against the daemon's own moves of other files).
fn move_no_overwrite(from: &Path, dir: &Path, name: &OsStr, numbered: bool) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for n in 1..=10_000u32 {
        let to = dir.join(numbered_name(name, n));
        match to.symlink_metadata() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::rename(from, &to)?;
                return Ok(to);
            }
            Err(e) => return Err(e),
            Ok(_) if !numbered => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists", to.display()),
                ));
            }
            Ok(_) => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free name left",
    ))
}

/// `sale.md`, 2 → `sale-2.md`: the number before the last extension, as the daemon names.
fn numbered_name(name: &OsStr, n: u32) -> OsString {
    if n <= 1 {
        return name.to_os_string();
    }
    let bytes = name.as_bytes();
    let split = match bytes.iter().rposition(|&b| b == b'.') {
        Some(0) | None => bytes.len(),
        Some(i) => i,
    };
    let mut out = bytes[..split].to_vec();
    out.extend_from_slice(format!("-{n}").as_bytes());
    out.extend_from_slice(&bytes[split..]);
    OsString::from_vec(out)
}

fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(channel: &str, name: &str) -> Result<Target, String> {
        Ok(Target {
            channel: channel.into(),
            name: name.into(),
        })
    }

    #[test]
    fn a_post_is_named_by_path_or_by_queue_id() {
        let queue = Path::new("/srv/q");
        let cwd = Path::new("/home/anna");
        assert_eq!(
            target(Path::new("shop-x/sale.md"), queue, cwd),
            t("shop-x", "sale.md")
        );
        assert_eq!(
            target(Path::new("/srv/q/shop-x/sale.md"), queue, cwd),
            t("shop-x", "sale.md")
        );
        assert_eq!(
            target(Path::new("/srv/q/shop-x/failed/冬季.md"), queue, cwd),
            t("shop-x", "冬季.md")
        );
        assert_eq!(
            target(Path::new("q/shop-x/sale.md"), queue, Path::new("/srv")),
            t("shop-x", "sale.md")
        );
        assert_eq!(
            target(
                Path::new("../q/shop-x/sale.md"),
                queue,
                Path::new("/srv/other")
            ),
            t("shop-x", "sale.md")
        );
        assert!(target(Path::new("/etc/passwd"), queue, cwd).is_err());
        assert!(target(Path::new("sale.md"), queue, cwd).is_err());
        assert!(target(Path::new("shop-x/drafts/sale.md"), queue, cwd).is_err());
        assert!(target(Path::new("../shop-x/sale.md"), queue, cwd).is_err());
    }

    #[test]
    fn urls_must_be_web_addresses() {
        assert!(check_url("https://mastodon.social/@shop/1").is_ok());
        assert!(check_url("shop-x/sale.md").is_err());
        assert!(check_url("ftp://x.example/1").is_err());
    }

    #[test]
    fn numbered_names_match_the_daemons() {
        let n = |s: &str, k| numbered_name(OsStr::new(s), k).into_string().unwrap();
        assert_eq!(n("sale.md", 1), "sale.md");
        assert_eq!(n("sale.md", 3), "sale-3.md");
        assert_eq!(n("notes", 2), "notes-2");
    }

    #[test]
    fn moves_never_replace_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let from = dir.path().join("a.md");
        let to_dir = dir.path().join("published");
        std::fs::create_dir(&to_dir).unwrap();
        std::fs::write(to_dir.join("a.md"), "older").unwrap();
        std::fs::write(&from, "new").unwrap();
        let err = move_no_overwrite(&from, &to_dir, OsStr::new("a.md"), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let to = move_no_overwrite(&from, &to_dir, OsStr::new("a.md"), true).unwrap();
        assert_eq!(to, to_dir.join("a-2.md"));
        assert_eq!(
            std::fs::read_to_string(to_dir.join("a.md")).unwrap(),
            "older"
        );
        assert_eq!(std::fs::read_to_string(to).unwrap(), "new");
    }
}
