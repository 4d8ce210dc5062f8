//! The queue folder. (Being written.)

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::diag::Diagnostic;
use crate::post::Post;

/// One post file found in a channel folder, read and parsed (or not).
#[derive(Debug, Clone)]
pub struct QueuedFile {
    /// `<channel>/<file name>`: the identity of the post, relative to the queue folder.
    pub id: String,
    pub channel: String,
    pub path: PathBuf,
    pub modified: Timestamp,
    /// Hex SHA-256 of the content: the version of the post.
    pub hash: String,
    pub content: Result<Accepted, Diagnostic>,
}

/// A post file that parsed, with its media resolved inside the queue.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub post: Post,
    pub media: Vec<Media>,
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
    pub files: Vec<QueuedFile>,
    /// Problems that are not about one post file (unknown channel folder, unreadable folder).
    pub problems: Vec<Diagnostic>,
}

pub fn scan(queue_root: &Path, channels: &[&str]) -> Scan {
    let _ = (queue_root, channels);
    todo!()
}
