//! Queue reading against real files in temporary folders.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use super::read::{ReadError, read_regular};
use super::*;
use crate::diag::Severity;

/// A temporary folder holding `queue/` (the root) and, beside it, files outside the queue.
struct Fixture {
    tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("queue/shop-x")).unwrap();
        Fixture { tmp }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("queue")
    }

    fn outside(&self) -> PathBuf {
        self.tmp.path().to_path_buf()
    }

    /// Writes `rel` (relative to the queue root), creating folders.
    fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root().join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn read(&self, rel: &str) -> Option<QueuedFile> {
        let (channel, _) = rel.split_once('/').unwrap();
        read_post(&self.root(), channel, &self.root().join(rel))
    }

    fn accepted(&self, rel: &str) -> Accepted {
        let file = self.read(rel).expect("not ignored");
        file.content.unwrap_or_else(|d| panic!("{d}"))
    }

    fn rejected(&self, rel: &str) -> (QueuedFile, Diagnostic) {
        let file = self.read(rel).expect("not ignored");
        let d = file.content.clone().expect_err("an error");
        assert_eq!(
            d.file,
            self.root().join(rel),
            "the diagnostic names the post file"
        );
        assert!(d.is_error());
        (file, d)
    }
}

fn help(d: &Diagnostic) -> &str {
    d.help.as_deref().unwrap_or_default()
}

#[test]
fn ignore_rules() {
    for name in [
        ".hidden.md",
        "sale.md~",
        "sale.md.tmp",
        "sale.md.part",
        ".sale.md.swp",
        "sale.swp",
        "sale.md.held",
        "sale.md.error",
        "sale.md.TMP",
    ] {
        assert!(is_ignored_file(name), "{name}");
        assert_eq!(classify_file(name), FileKind::Ignored, "{name}");
    }
    for name in ["sale.md", "sale.txt", "SALE.MD", "tmp.md", "held.txt"] {
        assert!(!is_ignored_file(name), "{name}");
        assert_eq!(classify_file(name), FileKind::Post, "{name}");
    }
    for name in ["sale.jpg", "sale.docx", "README", "sale.md.png", "md"] {
        assert_eq!(classify_file(name), FileKind::Other, "{name}");
    }
    assert!(is_ignored_dir("_media"));
    assert!(is_ignored_dir(".git"));
    assert!(!is_ignored_dir("shop-x"));
}

#[test]
fn ignored_names_and_subfolders_are_not_read() {
    let f = Fixture::new();
    f.write("shop-x/sale.md.held", "why it is held");
    f.write("shop-x/.draft.md", "hidden");
    f.write("shop-x/sale.md.part", "half");
    f.write("shop-x/published/old.md", "old");
    assert!(f.read("shop-x/sale.md.held").is_none());
    assert!(f.read("shop-x/.draft.md").is_none());
    assert!(f.read("shop-x/sale.md.part").is_none());
    assert!(f.read("shop-x/published").is_none());
    assert!(
        f.read("shop-x/gone.md").is_none(),
        "a file that vanished is withdrawn, not an error"
    );
}

#[test]
fn reads_a_post_with_its_version_and_time() {
    let f = Fixture::new();
    let path = f.write("shop-x/hello.md", "hello");
    let file = f.read("shop-x/hello.md").unwrap();
    assert_eq!(file.id, "shop-x/hello.md");
    assert_eq!(file.channel, "shop-x");
    assert_eq!(file.path, path);
    // sha256("hello")
    assert_eq!(
        file.hash,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    let mtime = Timestamp::try_from(fs::metadata(&path).unwrap().modified().unwrap()).unwrap();
    assert_eq!(file.modified, mtime);
    assert_eq!(file.content.unwrap().post.body, "hello");
}

#[test]
fn cjk_text_and_names_round_trip_exactly() {
    let f = Fixture::new();
    let body = "冬季セール開始！全品30%オフ 🎉\n\n한국어도 됩니다. 中文也可以。";
    f.write(
        "shop-x/冬季セール.md",
        format!("+++\nlang = \"ja\"\n+++\n\n{body}\n\n"),
    );
    let file = f.read("shop-x/冬季セール.md").unwrap();
    assert_eq!(file.id, "shop-x/冬季セール.md");
    assert_eq!(file.content.unwrap().post.body, body);
}

#[test]
fn fifo_is_reported_without_blocking() {
    let f = Fixture::new();
    let path = f.root().join("shop-x/pipe.md");
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);

    // On a thread, so that a regression fails the test instead of hanging it.
    let (tx, rx) = mpsc::channel();
    let (root, fifo) = (f.root(), path.clone());
    std::thread::spawn(move || {
        let file = read_post(&root, "shop-x", &fifo);
        // Also the race path: a FIFO that got past the first look is opened without blocking
        // and refused after `fstat`.
        let direct = read_regular(&fifo);
        tx.send((file, direct)).unwrap();
    });
    let (file, direct) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("reading a FIFO blocked");
    let file = file.unwrap();
    let d = file.content.unwrap_err();
    assert!(d.message.contains("named pipe"), "{}", d.message);
    assert!(help(&d).contains("move it out"), "{}", help(&d));
    assert_eq!(file.hash, "");
    assert!(
        matches!(direct, Err(ReadError::NotRegular(_))),
        "{direct:?}"
    );
}

#[test]
fn symlink_out_of_the_queue_is_refused() {
    let f = Fixture::new();
    let secret = f.outside().join("secret.md");
    fs::write(&secret, "not for posting").unwrap();
    symlink(&secret, f.root().join("shop-x/leak.md")).unwrap();
    let (file, d) = f.rejected("shop-x/leak.md");
    assert!(
        d.message.contains("outside the queue folder"),
        "{}",
        d.message
    );
    assert!(
        help(&d).contains("copy the file into the queue"),
        "{}",
        help(&d)
    );
    assert_eq!(file.hash, "", "the target was not read");

    // Relative links that climb out are the same.
    symlink("../../secret.md", f.root().join("shop-x/leak2.md")).unwrap();
    assert!(
        f.rejected("shop-x/leak2.md")
            .1
            .message
            .contains("outside the queue folder")
    );
}

#[test]
fn symlink_inside_the_queue_is_followed() {
    let f = Fixture::new();
    f.write("_drafts/real.md", "Drafted elsewhere in the queue");
    symlink("../_drafts/real.md", f.root().join("shop-x/linked.md")).unwrap();
    let file = f.read("shop-x/linked.md").unwrap();
    assert_eq!(file.id, "shop-x/linked.md");
    assert_eq!(file.path, f.root().join("shop-x/linked.md"));
    assert_eq!(
        file.content.unwrap().post.body,
        "Drafted elsewhere in the queue"
    );
}

#[test]
fn dangling_symlink_is_reported() {
    let f = Fixture::new();
    symlink("nowhere.md", f.root().join("shop-x/dangling.md")).unwrap();
    let (_, d) = f.rejected("shop-x/dangling.md");
    assert!(d.message.contains("does not exist"), "{}", d.message);
}

#[test]
fn media_staying_inside_via_dotdot_is_accepted() {
    let f = Fixture::new();
    f.write("_media/logo.png", [0u8; 1234]);
    f.write("shop-x/img/sale.jpg", [1u8; 10]);
    f.write(
        "shop-x/sale.md",
        "+++\nmedia = [\n  { path = \"../_media/logo.png\", alt = \"Logo\" },\n  { path = \"./img/../img/sale.jpg\" },\n]\n+++\nSale",
    );
    let accepted = f.accepted("shop-x/sale.md");
    let root = fs::canonicalize(f.root()).unwrap();
    assert_eq!(
        accepted.media,
        vec![
            Media {
                path: root.join("_media/logo.png"),
                rel: PathBuf::from("_media/logo.png"),
                alt: Some("Logo".into()),
                bytes: 1234,
            },
            Media {
                path: root.join("shop-x/img/sale.jpg"),
                rel: PathBuf::from("shop-x/img/sale.jpg"),
                alt: None,
                bytes: 10,
            },
        ]
    );
}

#[test]
fn media_escaping_via_dotdot_is_refused() {
    let f = Fixture::new();
    fs::write(f.outside().join("outside.jpg"), "x").unwrap();
    f.write(
        "shop-x/sale.md",
        "+++\nlang = \"en\"\nmedia = [{ path = \"../../outside.jpg\" }]\n+++\nSale",
    );
    let (_, d) = f.rejected("shop-x/sale.md");
    assert_eq!(
        d.message,
        "media path `../../outside.jpg` leads out of the queue folder"
    );
    assert!(help(&d).contains("_media/"), "{}", help(&d));
    assert_eq!(d.line, Some(3));
}

#[test]
fn media_symlink_out_of_the_queue_is_refused() {
    let f = Fixture::new();
    let outside = f.outside().join("outside.jpg");
    fs::write(&outside, "x").unwrap();
    fs::create_dir_all(f.root().join("shop-x/img")).unwrap();
    symlink(&outside, f.root().join("shop-x/img/link.jpg")).unwrap();
    f.write(
        "shop-x/sale.md",
        "+++\nmedia = [{ path = \"img/link.jpg\" }]\n+++\nSale",
    );
    let (_, d) = f.rejected("shop-x/sale.md");
    assert!(
        d.message.contains("`img/link.jpg` is a symlink"),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("outside the queue folder"),
        "{}",
        d.message
    );
    assert_eq!(d.line, Some(2));
}

#[test]
fn missing_media_names_the_media_and_the_post() {
    let f = Fixture::new();
    f.write(
        "shop-x/sale.md",
        "+++\nlang = \"en\"\n\nmedia = [{ path = \"img/missing.jpg\" }]\n+++\nSale",
    );
    let (_, d) = f.rejected("shop-x/sale.md");
    assert!(
        d.message.contains("`img/missing.jpg` not found"),
        "{}",
        d.message
    );
    assert!(
        help(&d).contains("relative to the post file"),
        "{}",
        help(&d)
    );
    assert_eq!(d.line, Some(4));
    assert!(d.to_string().contains("shop-x/sale.md:4:"), "{d}");
}

#[test]
fn media_that_is_a_folder_is_refused() {
    let f = Fixture::new();
    fs::create_dir_all(f.root().join("shop-x/img")).unwrap();
    f.write(
        "shop-x/sale.md",
        "+++\nmedia = [{ path = \"img\" }]\n+++\nSale",
    );
    let (_, d) = f.rejected("shop-x/sale.md");
    assert!(d.message.contains("is a folder"), "{}", d.message);
}

#[test]
fn size_limit_is_checked_before_reading() {
    let f = Fixture::new();
    f.write("shop-x/big.md", vec![b'a'; MAX_POST_BYTES as usize + 1]);
    let (file, d) = f.rejected("shop-x/big.md");
    assert!(
        d.message.contains("over the limit of 256 KiB"),
        "{}",
        d.message
    );
    assert!(help(&d).contains("media"), "{}", help(&d));
    assert_eq!(file.hash, "");

    f.write("shop-x/limit.md", vec![b'a'; MAX_POST_BYTES as usize]);
    assert_eq!(
        f.accepted("shop-x/limit.md").post.body.len(),
        MAX_POST_BYTES as usize
    );
}

#[test]
fn binary_file_is_refused() {
    let f = Fixture::new();
    f.write("shop-x/photo.md", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    let (file, d) = f.rejected("shop-x/photo.md");
    assert!(d.message.contains("binary file"), "{}", d.message);
    assert_eq!(d.line, Some(3));
    assert_eq!(file.hash.len(), 64, "read, so it has a version");
}

#[test]
fn non_utf8_file_says_which_line() {
    let f = Fixture::new();
    f.write("shop-x/latin1.md", b"Line one\nCaf\xe9\n");
    let (_, d) = f.rejected("shop-x/latin1.md");
    assert!(d.message.contains("not valid UTF-8"), "{}", d.message);
    assert!(d.message.contains("line 2, byte 12"), "{}", d.message);
    assert_eq!(d.line, Some(2));
    assert!(help(&d).contains("UTF-8"));
}

#[test]
fn empty_file_is_refused() {
    let f = Fixture::new();
    f.write("shop-x/empty.md", "");
    let (_, d) = f.rejected("shop-x/empty.md");
    assert_eq!(d.message, "the file is empty");
    assert_eq!(d.line, None);
}

#[test]
fn parse_errors_point_at_the_line_with_help() {
    let f = Fixture::new();
    f.write(
        "shop-x/typo.md",
        "+++\nlang = \"en\"\nprority = 2\n+++\nSale",
    );
    let (_, d) = f.rejected("shop-x/typo.md");
    assert_eq!(d.message, "unknown front-matter key `prority`");
    assert_eq!(d.help.as_deref(), Some("did you mean `priority`?"));
    assert_eq!((d.line, d.column), (Some(3), Some(1)));
    assert_eq!(d.source.unwrap().text, "prority = 2");
}

#[test]
fn other_extensions_are_reported_not_taken() {
    let f = Fixture::new();
    f.write("shop-x/sale.docx", "PK");
    let (file, d) = f.rejected("shop-x/sale.docx");
    assert!(d.message.contains("not a post file"), "{}", d.message);
    assert!(d.message.contains(".md or .txt"), "{}", d.message);
    assert_eq!(file.hash, "", "not read");
}

#[test]
fn scan_lists_channel_files_in_id_order() {
    let f = Fixture::new();
    f.write("shop-x/b.md", "B");
    f.write("shop-x/a.txt", "A");
    f.write("shop-x/B.md", "upper");
    f.write("shop-x/bad.md", "");
    f.write("shop-x/.hidden.md", "hidden");
    f.write("shop-x/published/old.md", "old");
    f.write("shop-masto/m.md", "M");
    f.write("_media/logo.png", "png");
    f.write(".git/config", "");
    let scan = scan(&f.root(), &["shop-x", "shop-masto", "shop-bsky"]);
    let ids: Vec<&str> = scan.files.iter().map(|q| q.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "shop-masto/m.md",
            "shop-x/B.md",
            "shop-x/a.txt",
            "shop-x/b.md",
            "shop-x/bad.md"
        ]
    );
    assert!(scan.files[4].content.is_err());
    assert!(scan.problems.is_empty(), "{:?}", scan.problems);
}

#[test]
fn unknown_channel_folder_is_an_error_with_a_suggestion() {
    let f = Fixture::new();
    f.write("shop-z/post.md", "hello");
    let scan = scan(&f.root(), &["shop-x", "shop-masto"]);
    assert!(scan.files.is_empty());
    let [d] = scan.problems.as_slice() else {
        panic!("{:?}", scan.problems)
    };
    assert_eq!(d.severity, Severity::Error);
    assert_eq!(d.file, f.root().join("shop-z"));
    assert!(
        d.message.contains("`shop-z` is not a configured channel"),
        "{}",
        d.message
    );
    let h = help(d);
    assert!(
        h.starts_with("did you mean `shop-x`? The configured channels are"),
        "{h}"
    );
    assert!(
        h.contains("`shop-x`, `shop-masto`") && h.contains("`_shop-z`"),
        "{h}"
    );
}

#[test]
fn files_directly_in_the_queue_are_reported() {
    let f = Fixture::new();
    f.write("sale.md", "hello");
    f.write("sale.md~", "backup");
    let scan = scan(&f.root(), &["shop-x"]);
    let [d] = scan.problems.as_slice() else {
        panic!("{:?}", scan.problems)
    };
    assert_eq!(d.severity, Severity::Warning);
    assert_eq!(d.file, f.root().join("sale.md"));
    assert!(help(d).contains("`shop-x`"), "{}", help(d));
}

#[test]
fn missing_queue_folder_is_a_problem_but_missing_channel_folders_are_not() {
    let f = Fixture::new();
    let missing = f.outside().join("nope");
    let scan_missing = scan(&missing, &["shop-x"]);
    let [d] = scan_missing.problems.as_slice() else {
        panic!("{:?}", scan_missing.problems)
    };
    assert_eq!(d.message, "the queue folder does not exist");
    assert!(help(d).contains("mkdir -p"), "{}", help(d));

    let empty = scan(&f.root(), &["shop-x", "never-created"]);
    assert!(empty.problems.is_empty() && empty.files.is_empty());
}

#[test]
fn channel_folder_linked_out_of_the_queue_is_refused() {
    let f = Fixture::new();
    let elsewhere = f.outside().join("elsewhere");
    fs::create_dir_all(&elsewhere).unwrap();
    fs::write(elsewhere.join("post.md"), "hello").unwrap();
    symlink(&elsewhere, f.root().join("shop-m")).unwrap();
    let scan = scan(&f.root(), &["shop-x", "shop-m"]);
    assert!(scan.files.is_empty());
    assert_eq!(scan.problems.len(), 1, "{:?}", scan.problems);
    assert!(
        scan.problems[0]
            .message
            .contains("symlink out of the queue")
    );
}

#[test]
fn nothing_is_moved_or_deleted() {
    let f = Fixture::new();
    f.write("shop-x/a.md", "A");
    f.write("shop-x/bad.md", "+++\nnope = 1\n+++\nx");
    f.write("stray.txt", "s");
    let before = list_tree(&f.root());
    let _ = scan(&f.root(), &["shop-x"]);
    assert_eq!(list_tree(&f.root()), before);
}

fn list_tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(list_tree(&path));
        }
        out.push(path);
    }
    out.sort();
    out
}
