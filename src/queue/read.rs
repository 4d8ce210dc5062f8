//! Reading one post file safely and resolving its media inside the queue.
//!
//! The order of checks is the point: look at the directory entry without following it
//! (`symlink_metadata`), refuse what is not a regular file before any `open`, check the size
//! before reading, and then open with `O_NONBLOCK | O_NOFOLLOW` and `fstat` the open file, so a
//! file swapped for a FIFO or a symlink between the look and the open can neither block the
//! daemon nor lead it outside the queue. Reads only: never writes, moves or deletes.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use super::ignore::{FileKind, POST_EXTENSIONS, classify_file};
use super::{Accepted, Media, QueuedFile};
use crate::diag::Diagnostic;
use crate::post::{self, MediaRef, PostError};

/// The largest post file read. A post is a short text; anything bigger is a mistake (a
/// video saved as `.md`, a log file) and is refused before it is read.
pub const MAX_POST_BYTES: u64 = 256 * 1024;

/// Reads and parses the file at `path` in the folder of `channel`; `None` when the name is
/// ignored, when it is a folder (or a symlink to one: sub-folders of a channel are not
/// posts), or when it no longer exists (it was renamed away or deleted: withdrawn).
pub fn read_post(queue_root: &Path, channel: &str, path: &Path) -> Option<QueuedFile> {
    let name_os = path.file_name()?;
    let name = name_os.to_string_lossy();
    let kind = classify_file(&name);
    // cadenced's own folders are never posts, even where a file took their name (the scan
    // reports that file as a problem).
    if kind == FileKind::Ignored || super::files::SUB_FOLDERS.contains(&&*name) {
        return None;
    }
    // Reported by the listing (`unshowable_name`): never a post, its name never shown.
    if name.chars().any(crate::diag::acts_on_display) {
        return None;
    }
    let shown = queue_root.join(channel).join(name_os);
    let mut file = QueuedFile {
        id: format!("{channel}/{name}"),
        channel: channel.to_string(),
        path: shown.clone(),
        modified: Timestamp::UNIX_EPOCH,
        hash: String::new(),
        content: Err(Diagnostic::error(&shown, "not read")),
    };
    let fail = |message: String, help: &str| Diagnostic::error(&shown, message).with_help(help);

    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            file.content = Err(fail(
                format!("cannot look at the file: {e}"),
                PERMISSION_HELP,
            ));
            return Some(file);
        }
    };
    file.modified = modified(&meta);
    if meta.is_dir() {
        return None;
    }

    // What to open: the entry itself, or the target of a symlink that stays in the queue.
    let target = if meta.file_type().is_symlink() {
        match resolve_link(queue_root, path) {
            Ok(Some(target)) => target,
            Ok(None) => return None, // a link to a folder, ignored like a folder
            Err((message, help)) => {
                file.content = Err(fail(message, help));
                return Some(file);
            }
        }
    } else {
        Target {
            path: path.to_path_buf(),
            meta,
        }
    };

    if name_os.to_str().is_none() {
        file.content = Err(fail(
            "the file name is not valid UTF-8".to_string(),
            "rename the file; post names are part of the post's identity in the log",
        ));
        return Some(file);
    }
    if kind == FileKind::Other {
        file.content = Err(fail(
            format!(
                "`{name}` is not a post file: post files end in {}",
                POST_EXTENSIONS.map(|e| format!(".{e}")).join(" or ")
            ),
            "rename it to end in .md if it is a post; keep media in a sub-folder (e.g. `img/`) \
             or in the queue's `_media/` folder",
        ));
        return Some(file);
    }
    if let Some(what) = not_regular(&target.meta) {
        file.content = Err(fail(
            format!("the file is {what}, not a regular file; it was not opened"),
            "only regular files are posts: move it out of the channel folder",
        ));
        return Some(file);
    }
    if target.meta.len() > MAX_POST_BYTES {
        file.content = Err(fail(too_big(target.meta.len()), TOO_BIG_HELP));
        return Some(file);
    }

    let bytes = match read_regular(&target.path) {
        Ok((bytes, meta)) => {
            file.modified = modified(&meta);
            bytes
        }
        // Gone between the look and the open: withdrawn, as if it had not been listed.
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => return None,
        // `O_NOFOLLOW` met a symlink that was not there at the look: read again next time.
        Err(ReadError::Io(e)) if e.raw_os_error() == Some(libc::ELOOP) => {
            file.content = Err(fail(
                "the file was replaced by a symlink while it was being read".to_string(),
                "it is read again when it changes; a symlink must stay inside the queue",
            ));
            return Some(file);
        }
        Err(ReadError::Io(e)) => {
            file.content = Err(fail(format!("cannot read the file: {e}"), PERMISSION_HELP));
            return Some(file);
        }
        Err(ReadError::NotRegular(what)) => {
            file.content = Err(fail(
                format!("the file is {what}, not a regular file"),
                "only regular files are posts: move it out of the channel folder",
            ));
            return Some(file);
        }
        Err(ReadError::TooBig(len)) => {
            file.content = Err(fail(too_big(len), TOO_BIG_HELP));
            return Some(file);
        }
    };
    file.hash = hex::encode(Sha256::digest(&bytes));
    file.content = accept(queue_root, channel, &shown, &bytes);
    Some(file)
}

const PERMISSION_HELP: &str = "make sure the daemon can read it (files in the queue should be readable by the `cadenced` group)";

const TOO_BIG_HELP: &str = "a post file holds the post text only; put images and videos in separate files named in `media`";

fn too_big(len: u64) -> String {
    format!(
        "the file is {len} bytes, over the limit of {} KiB for a post file",
        MAX_POST_BYTES / 1024
    )
}

fn modified(meta: &Metadata) -> Timestamp {
    meta.modified()
        .ok()
        .and_then(|t| Timestamp::try_from(t).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// What kind of non-regular file this is, in words; `None` for a regular file.
fn not_regular(meta: &Metadata) -> Option<&'static str> {
    let ft = meta.file_type();
    if ft.is_file() {
        None
    } else if ft.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if ft.is_socket() {
        Some("a socket")
    } else if ft.is_block_device() || ft.is_char_device() {
        Some("a device")
    } else if ft.is_dir() {
        Some("a folder")
    } else {
        Some("not a regular file")
    }
}

struct Target {
    path: PathBuf,
    meta: Metadata,
}

/// Follows a symlink only when its target resolves inside the queue: `Ok(None)` for a link
/// to a folder.
fn resolve_link(queue_root: &Path, path: &Path) -> Result<Option<Target>, (String, &'static str)> {
    let root = canonical_root(queue_root)?;
    let target = fs::canonicalize(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            (
                "the file is a symlink to a file that does not exist".to_string(),
                "fix or remove the link",
            )
        } else {
            (format!("cannot follow the symlink: {e}"), PERMISSION_HELP)
        }
    })?;
    if !target.starts_with(&root) {
        return Err((
            format!(
                "the file is a symlink to `{}`, outside the queue folder; it was not read",
                target.display()
            ),
            "copy the file into the queue instead of linking to it",
        ));
    }
    let meta = fs::metadata(&target)
        .map_err(|e| (format!("cannot follow the symlink: {e}"), PERMISSION_HELP))?;
    if meta.is_dir() {
        return Ok(None);
    }
    Ok(Some(Target { path: target, meta }))
}

fn canonical_root(queue_root: &Path) -> Result<PathBuf, (String, &'static str)> {
    fs::canonicalize(queue_root).map_err(|e| {
        (
            format!(
                "cannot resolve the queue folder `{}`: {e}",
                queue_root.display()
            ),
            "check the `queue` setting in the config",
        )
    })
}

#[derive(Debug)]
pub(super) enum ReadError {
    Io(io::Error),
    NotRegular(&'static str),
    TooBig(u64),
}

/// Opens without blocking and without following a final symlink, checks that what was opened
/// is a regular file within the size limit, and reads it. `O_NONBLOCK` makes opening a FIFO
/// return at once (and is harmless for regular files); `O_NOCTTY` keeps a terminal device
/// from becoming the controlling terminal.
pub(super) fn read_regular(path: &Path) -> Result<(Vec<u8>, Metadata), ReadError> {
    let file = open_nonblocking(path).map_err(ReadError::Io)?;
    let meta = file.metadata().map_err(ReadError::Io)?; // fstat of the open file
    if let Some(what) = not_regular(&meta) {
        return Err(ReadError::NotRegular(what));
    }
    if meta.len() > MAX_POST_BYTES {
        return Err(ReadError::TooBig(meta.len()));
    }
    // The file may grow after the `fstat`; read one byte past the limit to notice.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_POST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_POST_BYTES {
        return Err(ReadError::TooBig(bytes.len() as u64));
    }
    Ok((bytes, meta))
}

fn open_nonblocking(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)
}

/// Parses the bytes and resolves the media; errors name the post file and point at the line.
#[expect(
    clippy::result_large_err,
    reason = "the shape of `QueuedFile::content`, built once per file read"
)]
fn accept(
    queue_root: &Path,
    channel: &str,
    shown: &Path,
    bytes: &[u8],
) -> Result<Accepted, Diagnostic> {
    let post = post::parse_as(bytes, post::Format::of_path(shown))
        .map_err(|e| post_diagnostic(shown, bytes, e))?;
    // `parse` succeeded, so the bytes are UTF-8; lines as `parse` saw them.
    let lines = post::normalize_line_ends(bytes);
    let text = std::str::from_utf8(&lines).unwrap_or_default();
    let mut media = Vec::with_capacity(post.front.media.len());
    if !post.front.media.is_empty() {
        let root = canonical_root(queue_root)
            .map_err(|(message, help)| Diagnostic::error(shown, message).with_help(help))?;
        // Every media problem at once, not one per save.
        let mut problems = Vec::new();
        for m in &post.front.media {
            match resolve_media(&root, channel, m) {
                Ok(resolved) => media.push(resolved),
                Err((message, help)) => problems.push(
                    Diagnostic::error(shown, message)
                        .at_first(text, &m.path)
                        .with_help(help),
                ),
            }
        }
        if !problems.is_empty() {
            let first = problems.remove(0);
            return Err(first.with_also(problems));
        }
    }
    Ok(Accepted::new(post, media))
}

/// A [`PostError`] as a diagnostic on the file, at its line where it has one.
pub(super) fn post_diagnostic(shown: &Path, bytes: &[u8], mut e: PostError) -> Diagnostic {
    let also: Vec<Diagnostic> = std::mem::take(&mut e.also)
        .into_iter()
        .map(|more| post_diagnostic(shown, bytes, more))
        .collect();
    one_post_diagnostic(shown, bytes, e).with_also(also)
}

fn one_post_diagnostic(shown: &Path, bytes: &[u8], e: PostError) -> Diagnostic {
    // Lines as the parser counted them (a bare `\r` ends a line too).
    let bytes = &*post::normalize_line_ends(bytes);
    let mut d = Diagnostic::error(shown, e.message);
    if let Some(span) = e.span {
        d = match std::str::from_utf8(bytes) {
            Ok(text) => d.at_span(text, span),
            // Not UTF-8: no snippet to show, but the line is still known.
            Err(_) => {
                let start = span.start.min(bytes.len());
                d.at_line(bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1)
            }
        };
    }
    if e.help.is_empty() {
        d
    } else {
        d.with_help(e.help)
    }
}

/// Resolves a media path written relative to the post file (in `<root>/<channel>/`).
///
/// `..` is resolved by name first (as a reader of the file would: `../_media/x.jpg` from
/// `shop-x/` is `_media/x.jpg`), refusing any path that climbs above the queue; then the
/// result is canonicalized and must still be inside the queue, which refuses symlinks out.
fn resolve_media(
    root: &Path,
    channel: &str,
    m: &MediaRef,
) -> Result<Media, (String, &'static str)> {
    let written = &m.path;
    let mut rel = PathBuf::from(channel);
    for component in Path::new(written).components() {
        match component {
            Component::Normal(part) => rel.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !rel.pop() {
                    return Err(escapes(written));
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err(escapes(written)),
        }
    }
    let path = fs::canonicalize(root.join(&rel)).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            (
                format!("media file `{written}` not found (looked for `{}`)", rel.display()),
                "media paths are relative to the post file; check the name and that the file is in the queue",
            )
        } else {
            (format!("cannot read media file `{written}`: {e}"), PERMISSION_HELP)
        }
    })?;
    let Ok(rel) = path.strip_prefix(root).map(Path::to_path_buf) else {
        return Err((
            format!(
                "media file `{written}` is a symlink to `{}`, outside the queue folder",
                path.display()
            ),
            "copy the media file into the queue (e.g. into `_media/`) instead of linking to it",
        ));
    };
    let meta = fs::metadata(&path).map_err(|e| {
        (
            format!("cannot read media file `{written}`: {e}"),
            PERMISSION_HELP,
        )
    })?;
    if let Some(what) = not_regular(&meta) {
        return Err((
            format!("media `{written}` is {what}, not a regular file"),
            "name an image or video file in `media`",
        ));
    }
    // Opened (not read) to prove it is readable now rather than at publishing time.
    let opened = open_nonblocking(&path)
        .and_then(|f| f.metadata())
        .map_err(|e| {
            (
                format!("cannot read media file `{written}`: {e}"),
                PERMISSION_HELP,
            )
        })?;
    if let Some(what) = not_regular(&opened) {
        return Err((
            format!("media `{written}` is {what}, not a regular file"),
            "name an image or video file in `media`",
        ));
    }
    Ok(Media {
        path,
        rel,
        alt: m.alt.clone(),
        bytes: opened.len(),
    })
}

fn escapes(written: &str) -> (String, &'static str) {
    (
        format!("media path `{written}` leads out of the queue folder"),
        "media must be inside the queue folder: put the file in a sub-folder of the channel or in `_media/`",
    )
}
