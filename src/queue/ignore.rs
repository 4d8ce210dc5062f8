//! Which names in the queue are posts, which are ignored, and which are mistakes. Pure: names
//! in, answers out.

/// The extensions of post files (compared without regard to ASCII case).
pub const POST_EXTENSIONS: [&str; 2] = ["md", "txt"];

/// Suffixes of files that are not (yet) posts: editor backups and swap files, partial
/// downloads and writes, and the daemon's own `.held` / `.error` notes.
const IGNORED_SUFFIXES: [&str; 6] = ["~", ".tmp", ".part", ".swp", ".held", ".error"];

/// What a file name in a channel folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Skipped silently (hidden, temporary, the daemon's notes).
    Ignored,
    /// A `.md` or `.txt` file: read and parsed.
    Post,
    /// Anything else: reported, so a post saved as `sale.docx` is not silently dropped.
    Other,
}

/// Files skipped silently: names starting with `.`, or ending in `~`, `.tmp`, `.part`,
/// `.swp`, `.held`, `.error`.
pub fn is_ignored_file(name: &str) -> bool {
    name.is_empty()
        || name.starts_with('.')
        || IGNORED_SUFFIXES
            .iter()
            .any(|suffix| ends_with_ignore_case(name, suffix))
}

/// Folders of the queue root that are not channels and are skipped silently: names
/// starting with `_` (a shared `_media/`) or `.`.
pub fn is_ignored_dir(name: &str) -> bool {
    name.is_empty() || name.starts_with('_') || name.starts_with('.')
}

pub fn classify_file(name: &str) -> FileKind {
    if is_ignored_file(name) {
        return FileKind::Ignored;
    }
    let is_post = POST_EXTENSIONS
        .iter()
        .any(|ext| name.len() > ext.len() + 1 && ends_with_ignore_case(name, &format!(".{ext}")));
    if is_post {
        FileKind::Post
    } else {
        FileKind::Other
    }
}

fn ends_with_ignore_case(name: &str, suffix: &str) -> bool {
    name.len() >= suffix.len()
        && name.as_bytes()[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}
