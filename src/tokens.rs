//! The token store: tokens cadenced gets for itself (a Bluesky session, an OAuth pair that
//! `cadenced auth` obtained and the daemon refreshes), kept per channel in one owner-only
//! file in the state directory, beside the database.
//!
//! Why not the database: the log is group-readable so staff can run `cadenced log`, and must
//! not hand them a token. This file is mode 0600 and written atomically (a new file, synced,
//! renamed over the old one, the folder synced), so a crash between a platform rotating a
//! token and the write leaves the previous pair, never half a file.
//!
//! What this module must not do: print a token (values are [`Secret`]s; `Debug` shows
//! `***`), write the file with wider permissions, or leave a temporary file behind.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// The store's file name in the state directory.
pub const FILE_NAME: &str = "tokens.json";

/// The most of the file read: a few tokens per channel, for hundreds of channels.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// One process writes at a time (the daemon's publish tasks, `cadenced auth`); another
/// process is kept out by an advisory lock on the file's folder entry `tokens.json.lock`.
static WRITE: Mutex<()> = Mutex::new(());

/// The tokens of one channel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelTokens {
    #[serde(default)]
    pub values: BTreeMap<String, Stored>,
    /// Why the channel needs `cadenced auth` again, when it does (a refresh was refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_auth: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<Timestamp>,
}

/// A token and when it stops working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    #[serde(with = "secret_text")]
    pub value: Secret,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Timestamp>,
}

mod secret_text {
    use super::Secret;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(secret: &Secret, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(secret.expose())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        Ok(Secret::new(String::deserialize(d)?))
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Document {
    #[serde(default)]
    channels: BTreeMap<String, ChannelTokens>,
}

/// The store of one state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStore {
    path: PathBuf,
}

impl TokenStore {
    /// The store in the folder of the database `database`.
    pub fn beside(database: &Path) -> TokenStore {
        let dir = database.parent().unwrap_or(Path::new("."));
        TokenStore {
            path: dir.join(FILE_NAME),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A channel's tokens (none when the file or the channel is not there yet).
    pub fn get(&self, channel: &str) -> io::Result<ChannelTokens> {
        Ok(self.read()?.channels.remove(channel).unwrap_or_default())
    }

    /// Changes a channel's tokens and writes the file atomically.
    pub fn update(
        &self,
        channel: &str,
        now: Timestamp,
        change: impl FnOnce(&mut ChannelTokens),
    ) -> io::Result<()> {
        let _guard = WRITE.lock().unwrap_or_else(|p| p.into_inner());
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.path.with_extension("json.lock"))?;
        flock(&lock)?;
        let mut doc = self.read()?;
        let entry = doc.channels.entry(channel.to_string()).or_default();
        change(entry);
        entry.updated = Some(now);
        let mut text = serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?;
        text.push(b'\n');
        self.write_atomically(dir, &text)
    }

    fn read(&self) -> io::Result<Document> {
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Document::default()),
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                self.path.display()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(io::Error::other(format!(
                "{} can be read by others (mode {:o}); run `chmod 600 {}`",
                self.path.display(),
                meta.mode() & 0o777,
                self.path.display()
            )));
        }
        let mut text = Vec::new();
        (&mut file).take(MAX_BYTES).read_to_end(&mut text)?;
        serde_json::from_slice(&text).map_err(|e| {
            io::Error::other(format!(
                "{} is damaged ({e}); move it aside and run `cadenced auth` for each channel again",
                self.path.display()
            ))
        })
    }

    fn write_atomically(&self, dir: &Path, content: &[u8]) -> io::Result<()> {
        let tmp = dir.join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        // A process killed between creating its temporary file and the rename leaves it
        // behind; a later one that gets the same pid must not fail on it (that failure would
        // lose a refresh token the platform has just rotated). Under the lock every such
        // file is a leftover (a live writer would hold the lock), so all of them go.
        let prefix = format!(".{FILE_NAME}.");
        for entry in fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                match fs::remove_file(entry.path()) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            // The same owner as the folder: `cadenced auth` run as root must leave a file
            // the daemon's user can read.
            if let Ok(meta) = fs::metadata(dir) {
                let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
            }
            file.write_all(content)?;
            file.sync_all()?;
            drop(file);
            fs::rename(&tmp, &self.path)?;
            if let Ok(d) = File::open(dir) {
                d.sync_all()?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

fn flock(file: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // Blocking is fine: the other holder is another cadenced writing a few hundred bytes.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn tokens_are_kept_per_channel_owner_only_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::beside(&dir.path().join("cadenced.sqlite"));
        assert_eq!(store.get("shop-x").unwrap(), ChannelTokens::default());
        store
            .update("shop-x", t("2026-11-27T09:00:00Z"), |c| {
                c.values.insert(
                    "refresh_token".into(),
                    Stored {
                        value: Secret::new("rt-secret-1"),
                        expires: None,
                    },
                );
            })
            .unwrap();
        store
            .update("shop-bsky", t("2026-11-27T09:00:01Z"), |c| {
                c.needs_auth = Some("the refresh token was refused".into())
            })
            .unwrap();
        let x = store.get("shop-x").unwrap();
        assert_eq!(x.values["refresh_token"].value.expose(), "rt-secret-1");
        assert!(!format!("{x:?}").contains("rt-secret-1"));
        assert_eq!(
            store.get("shop-bsky").unwrap().needs_auth.as_deref(),
            Some("the refresh token was refused")
        );
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        // No temporary file is left behind.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".lock"))
            .collect();
        assert_eq!(names, [FILE_NAME]);
    }

    #[test]
    fn a_temporary_file_left_by_a_killed_writer_keeps_the_old_pair_and_blocks_no_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::beside(&dir.path().join("cadenced.sqlite"));
        let keep = |value: &'static str| {
            move |c: &mut ChannelTokens| {
                c.values.insert(
                    "refresh_token".into(),
                    Stored {
                        value: Secret::new(value),
                        expires: None,
                    },
                );
            }
        };
        store
            .update("shop-x", t("2026-11-27T09:00:00Z"), keep("rt-old"))
            .unwrap();
        // A writer killed after writing half of its temporary file, with this very pid
        // (pids come round again), and one left by another process.
        let tmp = dir
            .path()
            .join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let other = dir.path().join(format!(".{FILE_NAME}.4194303.tmp"));
        fs::write(&other, b"{").unwrap();
        fs::write(
            &tmp,
            b"{\"channels\": {\"shop-x\": {\"values\": {\"refresh_t",
        )
        .unwrap();
        assert_eq!(
            store.get("shop-x").unwrap().values["refresh_token"]
                .value
                .expose(),
            "rt-old",
            "the store still holds the previous pair"
        );
        store
            .update("shop-x", t("2026-11-27T10:00:00Z"), keep("rt-new"))
            .unwrap();
        assert_eq!(
            store.get("shop-x").unwrap().values["refresh_token"]
                .value
                .expose(),
            "rt-new"
        );
        assert!(!tmp.exists());
        assert!(!other.exists(), "leftovers of other processes go too");
    }

    #[test]
    fn a_store_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::beside(&dir.path().join("db"));
        store
            .update("a", t("2026-11-27T09:00:00Z"), |_| {})
            .unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.get("a").unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
