//! The outbox: "publishing" by writing the requests a platform's adapter would send into a
//! local folder, one JSON file per post. It is the `outbox` platform (the embedded default
//! that needs no network or account) and what every `dry_run = true` channel uses, with its
//! own platform's plan rendered by the dry-run executor (`run::dry_run`): the same steps the
//! network executor sends, with placeholders for what only a server gives.
//!
//! A file appears whole or not at all: it is written under a hidden temporary name, synced,
//! then linked to its final name, which never replaces an existing file (`-2`, `-3`… when a
//! name is taken). The file holds the attempt's idempotency key, so `reconcile` can tell
//! after a crash whether the post was written. What this module must not do: write a secret
//! (plans render `***`), read the clock, or delete anything but its own temporary file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::adapter::{AttemptInfo, Outgoing, PublishError, Receipt, Reconciled};
use super::keys::{Key, Settings};
use super::plan::Plan;
use super::run;
use super::webhook::document;
use super::{ChannelCtx, Platform, PlatformSpec, Transport};

pub struct Outbox;

impl PlatformSpec for Outbox {
    fn name(&self) -> &'static str {
        "outbox"
    }

    fn title(&self) -> &'static str {
        "the outbox"
    }

    fn about(&self) -> &'static str {
        "Writes each post into the outbox folder; needs no account and no network."
    }

    fn keys(&self) -> &'static [Key] {
        &[]
    }

    fn transport(&self) -> Transport {
        Transport::Outbox
    }

    /// The outbox platform itself sends nothing: its files carry the post and no requests.
    fn plan(&self, _ch: &ChannelCtx<'_>, _post: &Outgoing) -> Plan {
        Plan::default()
    }
}

#[derive(Debug, Clone)]
pub struct OutboxAdapter {
    /// The config's `outbox` folder; files go to `<root>/<channel>/`.
    root: PathBuf,
    /// The channel's platform (what the file says it was meant for, and whose plan it holds).
    pub platform: Platform,
    channel: String,
    settings: Settings,
    /// True when a channel of a real platform writes here instead of sending.
    dry_run: bool,
}

impl OutboxAdapter {
    pub fn new(
        root: impl Into<PathBuf>,
        platform: Platform,
        channel: &str,
        settings: Settings,
        dry_run: bool,
    ) -> Self {
        OutboxAdapter {
            root: root.into(),
            platform,
            channel: channel.to_string(),
            settings,
            dry_run,
        }
    }

    /// The folder this channel's files go to.
    pub fn folder(&self, channel: &str) -> PathBuf {
        self.root.join(channel)
    }

    /// The content of the file for `post` published at `now`.
    pub fn file_content(&self, post: &Outgoing, now: Timestamp) -> Value {
        let ctx = ChannelCtx {
            name: &self.channel,
            settings: &self.settings,
            now,
        };
        let requests: Vec<Value> = run::dry_run(self.platform, &ctx, post)
            .iter()
            .map(|r| r.to_json())
            .collect();
        json!({
            "channel": post.channel,
            "platform": self.platform.name(),
            "file": post.file,
            "dry_run": self.dry_run,
            "time": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "idempotency_key": post.idempotency_key,
            "requests": requests,
            // The post itself, in the webhook's shape: what a reader of the outbox (or a
            // program that forwards it) needs, whatever the platform.
            "post": document(post),
        })
    }

    pub async fn publish(&self, post: &Outgoing, now: Timestamp) -> Result<Receipt, PublishError> {
        let dir = self.folder(&post.channel);
        let base = base_name(post, now);
        let mut content =
            serde_json::to_vec_pretty(&self.file_content(post, now)).map_err(|e| {
                PublishError::Permanent {
                    reason: format!("cannot encode the outbox file: {e}"),
                    fix: "this is a bug in cadenced: please report it".into(),
                    http_status: None,
                }
            })?;
        content.push(b'\n');
        let written = {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || write_new(&dir, &base, &content)).await
        };
        let path = match written {
            Ok(Ok(path)) => path,
            Ok(Err(e)) => {
                // Nothing was written under a final name, so trying again cannot duplicate
                // a post; a full disk or a permission problem may well pass.
                return Err(PublishError::Transient {
                    reason: format!("cannot write to the outbox {}: {e}", dir.display()),
                    retry_after: None,
                    http_status: None,
                });
            }
            Err(e) => {
                return Err(PublishError::Unknown {
                    reason: format!("writing to the outbox {} stopped: {e}", dir.display()),
                    http_status: None,
                });
            }
        };
        Ok(receipt(&path))
    }

    pub async fn reconcile(&self, post: &Outgoing, attempt: &AttemptInfo) -> Reconciled {
        let dir = self.folder(&post.channel);
        let key = attempt.idempotency_key.clone();
        tokio::task::spawn_blocking(move || find_by_key(&dir, &key))
            .await
            .unwrap_or(Reconciled::Unknown)
    }
}

/// The longest file stem used in an outbox name as it is: with the time in front, a `-N`
/// and `.json` behind and the temporary name's extra characters, the name stays well under
/// the 255 bytes a file name may have.
const MAX_STEM: usize = 180;

/// `<YYYYMMDDTHHMMSSZ>-<file stem>`, without the `-N` and the extension. A stem longer than
/// [`MAX_STEM`] bytes is cut (at a character boundary) and given 8 hex digits of its hash,
/// so two long names that start alike still get different files.
pub fn base_name(post: &Outgoing, now: Timestamp) -> String {
    let stem = Path::new(&post.file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "post".to_string());
    let stem = if stem.len() > MAX_STEM {
        let mut cut = MAX_STEM;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        let digest = hex::encode(Sha256::digest(stem.as_bytes()));
        format!("{}-{}", &stem[..cut], &digest[..8])
    } else {
        stem
    };
    format!("{}-{stem}", now.strftime("%Y%m%dT%H%M%SZ"))
}

fn receipt(path: &Path) -> Receipt {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Receipt {
        remote_id: path.file_name().map(|n| n.to_string_lossy().into_owned()),
        remote_url: Some(file_url(&absolute)),
        http_status: None,
    }
}

/// `file://` URL of an absolute path, with bytes outside the unreserved set percent-encoded.
pub fn file_url(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut url = String::from("file://");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            url.push(b as char);
        } else {
            url.push_str(&format!("%{b:02X}"));
        }
    }
    url
}

/// Writes `content` to `<dir>/<base>.json`, or `<base>-2.json`, `-3`… if taken, never
/// replacing a file. Returns the path written.
pub fn write_new(dir: &Path, base: &str, content: &[u8]) -> io::Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let (tmp, mut file) = create_temp(dir, base)?;
    let result = (|| {
        file.write_all(content)?;
        file.sync_all()?;
        drop(file);
        let path = link_unique(&tmp, dir, base)?;
        // The new name must survive a crash too, before the attempt is marked published.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(path)
    })();
    // Our own temporary name only: after a link it is a second name of the same file, after
    // a rename it is gone already, after an error it holds nothing anyone asked for.
    let _ = fs::remove_file(&tmp);
    result
}

fn create_temp(dir: &Path, base: &str) -> io::Result<(PathBuf, File)> {
    for n in 0.. {
        let tmp = dir.join(format!(".{base}.{n}.tmp"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// Gives `tmp` its final name. `hard_link` fails when the name exists, so two posts can
/// never overwrite each other; where links are not supported, check then rename.
fn link_unique(tmp: &Path, dir: &Path, base: &str) -> io::Result<PathBuf> {
    for n in 1..=10_000u32 {
        let name = if n == 1 {
            format!("{base}.json")
        } else {
            format!("{base}-{n}.json")
        };
        let path = dir.join(name);
        match fs::hard_link(tmp, &path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) if !path.exists() => {
                fs::rename(tmp, &path)?;
                return Ok(path);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "10,000 outbox files named {base}-N.json exist already"
    )))
}

/// Looks through a channel's outbox folder for the file written with `key`.
pub fn find_by_key(dir: &Path, key: &str) -> Reconciled {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Reconciled::NotPosted,
        // A folder we cannot read does not tell us the file is absent.
        Err(_) => return Reconciled::Unknown,
    };
    let mut unreadable = false;
    for entry in entries {
        let Ok(entry) = entry else {
            unreadable = true;
            continue;
        };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        let Ok(bytes) = fs::read(&path) else {
            unreadable = true;
            continue;
        };
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
            // Not one of ours (files are only ever renamed in whole): not a match.
            continue;
        };
        if value.get("idempotency_key").and_then(Value::as_str) == Some(key) {
            return Reconciled::Posted(receipt(&path));
        }
    }
    if unreadable {
        Reconciled::Unknown
    } else {
        Reconciled::NotPosted
    }
}
