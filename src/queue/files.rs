//! The daemon's changes to the queue: moving a post file into its channel's `published/`,
//! `failed/` or `expired/` folder, and the plain-text notes (`<file>.held`, `<file>.error`)
//! that tell people why a file waits or failed.
//!
//! **Nothing a person wrote is ever deleted or overwritten.** A move never replaces an
//! existing file: it renames with `RENAME_NOREPLACE` (or, where the filesystem lacks it,
//! `link` + `unlink`, which also refuses an existing name) and takes the next free name
//! `sale-2.md`, `sale-3.md`... instead; there is no check-then-rename window.
//!
//! **Notes are cadenced's own output**, not user data: a note is replaced when its reason
//! changes, and [`clear_held_note`] removes `<file>.held` once the file is fixed, published
//! or removed, as the SPEC says ("it disappears"). That is the only removal cadenced does,
//! and only of a name that ends in `.held`/`.error`. A note beside a file that moves goes
//! with it (an expired post keeps the note that says why it never went out).
//!
//! The queue is writable by a group of people, so writes here do not follow symlinks: the
//! temporary note is created with `O_EXCL` (which refuses a symlink) and renamed over the
//! note, which replaces a symlink rather than writing through it.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;

/// The note extensions, as in `<file>.held`.
pub const HELD: &str = "held";
pub const ERROR: &str = "error";

/// The folders a post file can move into, inside its channel folder.
pub const SUB_FOLDERS: [&str; 3] = ["published", "failed", "expired"];

/// Gives up finding a free name after this many (a folder with 10,000 `sale-N.md` is a
/// problem to report, not to loop over).
const MAX_NUMBER: u32 = 10_000;

/// Moves `queue/<ch>/<name>` to `queue/<ch>/<sub>/<name>`, creating the folder, and returns
/// the new path. If the name is taken there, the file becomes `<stem>-2.<ext>`, `-3`...
/// Never overwrites. Its notes (`<name>.held`, `<name>.error`) move along under the new
/// name; a note that cannot move is logged and does not fail the move (the file has moved).
/// Both folders are synced, so a move that returned survives a power cut.
pub fn move_into(file: &Path, sub: &str) -> io::Result<PathBuf> {
    if sub.is_empty() || sub.starts_with('.') || sub.contains('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{sub}` is not a folder name"),
        ));
    }
    let (dir, name) = split(file)?;
    let target_dir = dir.join(sub);
    match fs::create_dir(&target_dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) if !target_dir.metadata().is_ok_and(|m| m.is_dir()) => {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                not_a_folder(&target_dir),
            ));
        }
        _ => {}
    }
    let mut number = 1;
    let moved = loop {
        let candidate = target_dir.join(numbered(name, number));
        match rename_noreplace(file, &candidate) {
            Ok(()) => break candidate,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && number < MAX_NUMBER => {
                number += 1;
            }
            Err(e) => return Err(e),
        }
    };
    for ext in [HELD, ERROR] {
        let note = note_path(file, ext);
        if note.symlink_metadata().is_err() {
            continue;
        }
        let to = note_path(&moved, ext);
        match rename_noreplace(&note, &to) {
            Ok(()) => {}
            // A note of ours is already there under that name (left from an earlier
            // file): this one cannot go beside the file and must not stay beside a file
            // that is no longer there. It is our own output; remove it.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if let Err(e) = fs::remove_file(&note) {
                    tracing::warn!("cannot remove the note {}: {e}", note.display());
                }
            }
            Err(e) => tracing::warn!(
                "cannot move the note {} to {}: {e}",
                note.display(),
                to.display()
            ),
        }
    }
    sync_dir(dir);
    sync_dir(&target_dir);
    Ok(moved)
}

/// What to say about `<channel>/published` (or `failed`, `expired`) that exists but is not
/// a folder: nothing can move there until it is renamed.
pub fn not_a_folder(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    format!(
        "{} is a file, not a folder, so cadenced cannot move posts into `{name}/`: move that \
         file out of the channel folder; cadenced then creates the folder itself",
        path.display()
    )
}

/// `<file>.<ext>`: the note beside a post file (`sale.md` → `sale.md.held`).
pub fn note_path(file: &Path, ext: &str) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

/// Writes `<file>.<ext>` atomically (a temporary file, synced, renamed over the note), so a
/// reader sees the old note or the new one, never half of one.
pub fn write_note(file: &Path, ext: &str, text: &str) -> io::Result<()> {
    let (dir, name) = split(file)?;
    let note = note_path(file, ext);
    // Starts with `.` and ends in `.tmp`: ignored by the queue and the watcher.
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{ext}.{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let mut out = match create_new(&tmp) {
        // Left by a crash (or planted): it is a name of ours; unlinking removes a symlink
        // itself, not its target.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(&tmp)?;
            create_new(&tmp)?
        }
        other => other?,
    };
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.sync_all())
        .and_then(|()| fs::rename(&tmp, &note));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Removes `<file>.held` (cadenced's own note, see the module comment); `Ok(false)` when
/// there was none.
pub fn clear_held_note(file: &Path) -> io::Result<bool> {
    clear_note(file, HELD)
}

/// Removes a `.held` note found without its post file (the scan's `orphan_notes`), unless
/// the file came back since.
pub fn clear_note_of_gone_file(note: &Path) -> io::Result<bool> {
    let name = note.as_os_str().as_bytes();
    let Some(file) = name.strip_suffix(b".held") else {
        return Ok(false);
    };
    let file = Path::new(OsStr::from_bytes(file));
    if file.symlink_metadata().is_ok() {
        return Ok(false);
    }
    clear_note(file, HELD)
}

/// Removes the note `<file>.<ext>`; `Ok(false)` when there was none.
pub fn clear_note(file: &Path, ext: &str) -> io::Result<bool> {
    match fs::remove_file(note_path(file, ext)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// The text of a `.held` note for `problem` (a `review` verdict: held or invalid).
pub fn note_text(problem: &Diagnostic) -> String {
    render(NoteKind::Held, problem)
}

/// The text of an `.error` note for `problem` (a permanent publishing failure), for the
/// note beside a file moved to `failed/`.
pub fn error_note_text(problem: &Diagnostic) -> String {
    render(NoteKind::Error, problem)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NoteKind {
    Held,
    Error,
}

/// A note in plain words: which file, what is wrong (with the line, and the line's text,
/// where there is one), what to do, and what happens next. No colours and no snippet art:
/// it is read in a file manager or with `cat`.
fn render(kind: NoteKind, problem: &Diagnostic) -> String {
    let name = problem.file.file_name().map_or_else(
        || problem.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut text = match kind {
        NoteKind::Held => format!("{name} is held: cadenced will not publish it as it is.\n\n"),
        NoteKind::Error => {
            format!("{name} could not be published, so cadenced moved it here.\n\n")
        }
    };
    let problems: Vec<&Diagnostic> = problem.all().collect();
    for (i, p) in problems.iter().enumerate() {
        // `review` prefixes held reasons with "held: "; the opening line already says it.
        let message = p.message.strip_prefix("held: ").unwrap_or(&p.message);
        if problems.len() > 1 {
            text.push_str(&format!("Problem {} of {}: ", i + 1, problems.len()));
        } else {
            text.push_str("What is wrong: ");
        }
        if let Some(line) = p.line {
            text.push_str(&format!("line {line}: "));
        }
        text.push_str(message);
        text.push('\n');
        if let Some(source) = &p.source {
            text.push_str(&format!("    {}\n", source.text));
        }
        if let Some(help) = &p.help {
            text.push_str(&format!("What to do: {help}\n"));
        }
        text.push('\n');
    }
    match (&problem.next, kind) {
        (Some(next), _) => {
            text.push_str(next);
            text.push('\n');
        }
        (None, NoteKind::Held) => text.push_str(
            "When you save the fixed file, cadenced checks it again and this note goes away. \
             `cadenced check` shows the same problem.\n",
        ),
        (None, NoteKind::Error) => text.push_str(
            "When it is fixed, `cadenced retry` with this file queues it again. \
             Nothing was deleted.\n",
        ),
    }
    text
}

/// `sale.md`, 1 → `sale.md`; 2 → `sale-2.md`. The number goes before the last extension;
/// a name without one (or a dot-file) gets it at the end.
fn numbered(name: &OsStr, number: u32) -> OsString {
    if number <= 1 {
        return name.to_os_string();
    }
    let bytes = name.as_bytes();
    let split = match bytes.iter().rposition(|&b| b == b'.') {
        Some(0) | None => bytes.len(),
        Some(i) => i,
    };
    let mut out = bytes[..split].to_vec();
    out.extend_from_slice(format!("-{number}").as_bytes());
    out.extend_from_slice(&bytes[split..]);
    OsString::from_vec(out)
}

fn split(file: &Path) -> io::Result<(&Path, &OsStr)> {
    match (file.parent(), file.file_name()) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a file path", file.display()),
        )),
    }
}

fn create_new(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Renames `from` to `to`, failing with `AlreadyExists` if `to` exists. Atomic with
/// `renameat2(RENAME_NOREPLACE)`; where the filesystem does not support that flag, `link`
/// (which refuses an existing name just the same) then `unlink`. A crash between those two
/// leaves the file under both names, never under none.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c_from = CString::new(from.as_os_str().as_bytes())?;
    let c_to = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like `rename`.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c_from.as_ptr(),
            libc::AT_FDCWD,
            c_to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
            fs::hard_link(from, to)?;
            fs::remove_file(from)
        }
        _ => Err(e),
    }
}

/// Best effort: makes the renames in `dir` durable. A failure only weakens durability.
fn sync_dir(dir: &Path) {
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!("cannot sync {}: {e}", dir.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_go_before_the_extension() {
        let n = |name: &str, k| numbered(OsStr::new(name), k).into_string().unwrap();
        assert_eq!(n("sale.md", 1), "sale.md");
        assert_eq!(n("sale.md", 2), "sale-2.md");
        assert_eq!(n("sale.md", 13), "sale-13.md");
        assert_eq!(n("archive.tar.md", 2), "archive.tar-2.md");
        assert_eq!(n("notes", 3), "notes-3");
        assert_eq!(n(".hidden", 2), ".hidden-2");
        assert_eq!(n("セール.md", 2), "セール-2.md");
    }

    #[test]
    fn an_unknown_outcome_note_does_not_promise_that_saving_the_file_helps() {
        let d = Diagnostic::error("/q/shop/sale.md", "held: the outcome is unknown")
            .with_help(
                "run `cadenced retry shop/sale.md` or `cadenced resolve shop/sale.md --posted URL`",
            )
            .with_next(
                "This note goes away when you answer with `cadenced retry` or `cadenced resolve`.",
            );
        let text = note_text(&d);
        assert!(!text.contains("When you save the fixed file"), "{text}");
        assert!(
            text.ends_with("answer with `cadenced retry` or `cadenced resolve`.\n"),
            "{text}"
        );
    }

    #[test]
    fn a_note_lists_every_problem_of_the_file() {
        let d = Diagnostic::error("/q/shop/sale.md", "unknown front-matter key `lnik`")
            .at_line(2)
            .with_help("did you mean `link`?")
            .with_also([Diagnostic::error(
                "/q/shop/sale.md",
                "`priority` must be a whole number, not a string",
            )
            .at_line(3)
            .with_help("write e.g. `priority = 1`")]);
        let text = note_text(&d);
        assert!(text.contains("Problem 1 of 2: line 2: unknown front-matter key `lnik`\nWhat to do: did you mean `link`?"), "{text}");
        assert!(
            text.contains("Problem 2 of 2: line 3: `priority`"),
            "{text}"
        );
        assert!(text.contains("When you save the fixed file"), "{text}");
    }

    #[test]
    fn notes_render_in_plain_words() {
        let d = Diagnostic::error("/q/shop/sale.md", "held: unknown key `expire`")
            .at_line(3)
            .with_help("did you mean `expires`?");
        let text = note_text(&d);
        assert!(text.starts_with("sale.md is held"), "{text}");
        assert!(
            text.contains("What is wrong: line 3: unknown key `expire`\n"),
            "{text}"
        );
        assert!(!text.contains("held: unknown"), "{text}");
        assert!(
            text.contains("What to do: did you mean `expires`?"),
            "{text}"
        );
        let text = error_note_text(&Diagnostic::error(
            "/q/shop/sale.md",
            "the token was refused",
        ));
        assert!(text.contains("could not be published"), "{text}");
        assert!(text.contains("cadenced retry"), "{text}");
    }

    #[test]
    fn odd_folder_names_are_refused() {
        for sub in ["", "..", ".hidden", "a/b"] {
            let e = move_into(Path::new("/nonexistent/shop/a.md"), sub).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
    }
}
