//! The queue folder: which files are posts, reading them safely, confining their media, and
//! scanning the whole tree.
//!
//! The queue is writable by people (and by anything that can drop a file), so reading it is
//! defensive: FIFOs and devices are never opened in a way that can block, symlinks and
//! media must stay inside the queue, sizes are checked before reading. Reading, scanning and
//! watching never change a file; `files` holds the only writes (moves into `published/`,
//! `failed/`, `expired/` that never overwrite, and cadenced's own `.held`/`.error` notes),
//! called by the daemon and by `retry`/`resolve`. A user's file is never deleted. No module
//! here reads the clock.

pub mod files;
mod ignore;
pub mod media;
mod read;
mod scan;
#[cfg(test)]
mod tests;
pub mod watch;

use std::path::PathBuf;

use jiff::Timestamp;

use crate::diag::Diagnostic;
use crate::post::Post;

pub use ignore::{FileKind, POST_EXTENSIONS, classify_file, is_ignored_dir, is_ignored_file};
pub use read::{MAX_POST_BYTES, read_post};
pub use scan::{
    ListedFile, Listing, RootScan, list_channel, list_channels, scan, scan_root, stamp,
    unshowable_name,
};

/// One post file found in a channel folder, read and parsed (or not).
#[derive(Debug, Clone)]
pub struct QueuedFile {
    /// `<channel>/<file name>`: the identity of the post, relative to the queue folder.
    pub id: String,
    pub channel: String,
    /// `<queue root>/<channel>/<file name>`, as found (not resolved through a symlink).
    pub path: PathBuf,
    /// The file's modification time; the Unix epoch when it could not be read.
    pub modified: Timestamp,
    /// Hex SHA-256 of the content: the version of the post. Empty when the content was not
    /// read (not a regular file, over the size limit, not a post file, unreadable).
    pub hash: String,
    pub content: Result<Accepted, Diagnostic>,
}

/// A post file that parsed, with its media resolved inside the queue.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub post: Post,
    pub media: Vec<Media>,
    /// The body as rules 5 and 6 compare it, made once (see [`Accepted::comparable`]).
    comparable: std::sync::OnceLock<Box<str>>,
}

impl Accepted {
    pub fn new(post: Post, media: Vec<Media>) -> Accepted {
        Accepted {
            post,
            media,
            comparable: std::sync::OnceLock::new(),
        }
    }

    /// The body as rules 5 and 6 compare it ([`similarity::comparable`]), computed on first
    /// use: a start-up reading many files computes it on the thread that read the file.
    ///
    /// [`similarity::comparable`]: crate::cadence::similarity::comparable
    pub fn comparable(&self) -> &str {
        self.comparable
            .get_or_init(|| crate::cadence::similarity::comparable(&self.post.body).into())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// Canonical absolute path.
    pub path: PathBuf,
    /// Path relative to the queue folder.
    pub rel: PathBuf,
    pub alt: Option<String>,
    pub bytes: u64,
}

#[derive(Debug, Default)]
pub struct Scan {
    /// Every file of every configured channel folder that is not ignored, sorted by `id`.
    pub files: Vec<QueuedFile>,
    /// Problems that are not about one post file (unknown channel folder, unreadable folder).
    pub problems: Vec<Diagnostic>,
    /// `.held` notes of channel folders whose post file is gone: the daemon removes them
    /// (reading never changes a file).
    pub orphan_notes: Vec<PathBuf>,
}
