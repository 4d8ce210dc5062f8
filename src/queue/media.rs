//! Reading a post's media file when it is sent: again, from the queue, confined to it.
//!
//! A media path was checked when its post was accepted, but the post may wait hours (a slot,
//! a retry backoff) and the queue is writable by people: a file replaced by a symlink to
//! `/etc/passwd` in the meantime must not be uploaded. So each send opens the file anew
//! beneath the queue folder with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: symlinks
//! that stay inside the queue still work, any that leads out of it fails. Where the kernel or
//! a seccomp filter refuses `openat2`, the path is walked one component at a time with
//! `O_NOFOLLOW`, refusing every symlink. The file must be a regular file (never opened in a
//! way that blocks) and is read up to a cap.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// The largest media file read for a send: well above every platform's limit (their rules
/// hold larger files before this), small enough to hold in memory.
pub const MAX_MEDIA_BYTES: u64 = 256 * 1024 * 1024;

/// Reads `rel` (relative to the queue folder `root`) confined to `root`, at most `max`
/// bytes.
pub fn read_confined(root: &Path, rel: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open_beneath(root, rel)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > max {
        return Err(io::Error::other(format!(
            "{} bytes, more than the {max} a media file may have",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::other("it grew while it was read"));
    }
    Ok(bytes)
}

/// The first `n` bytes of `rel`, confined the same way (for an image's dimensions).
pub fn read_head(root: &Path, rel: &Path, n: u64) -> io::Result<Vec<u8>> {
    let file = open_beneath(root, rel)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(n).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
}

fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path)?;
    // SAFETY: a plain open(2) of a NUL-terminated path; the fd is owned right away.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh, valid descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_beneath(root: &Path, rel: &Path) -> io::Result<File> {
    // Only a plain relative path: `..` and absolute paths were folded away at acceptance.
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return Err(io::Error::other("the path leaves the queue"));
    }
    let dir = open_dir(root)?;
    match openat2_beneath(&dir, rel) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
            walk_nofollow(dir, rel)
        }
        other => other.map_err(|e| match e.raw_os_error() {
            Some(libc::EXDEV) | Some(libc::ELOOP) => {
                io::Error::other("it is a link that leads out of the queue")
            }
            _ => e,
        }),
    }
}

fn openat2_beneath(dir: &OwnedFd, rel: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let c = c_path(rel)?;
    // SAFETY: open_how is a plain C struct; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: the syscall reads `how` (of the size given) and the NUL-terminated path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

/// The fallback: each component opened with `O_NOFOLLOW` under the previous one.
fn walk_nofollow(mut dir: OwnedFd, rel: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let parts: Vec<&std::ffi::OsStr> = rel.iter().collect();
    for (i, part) in parts.iter().enumerate() {
        let c = CString::new(part.as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))?;
        let last = i + 1 == parts.len();
        let flags = libc::O_RDONLY
            | libc::O_NOFOLLOW
            | libc::O_CLOEXEC
            | if last {
                libc::O_NONBLOCK | libc::O_NOCTTY
            } else {
                libc::O_DIRECTORY
            };
        // SAFETY: openat(2) with a valid dirfd and a NUL-terminated name.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags) };
        if fd < 0 {
            let e = io::Error::last_os_error();
            return Err(if e.raw_os_error() == Some(libc::ELOOP) {
                io::Error::other("it is a link; cadenced does not follow links when it sends")
            } else {
                e
            });
        }
        // SAFETY: a fresh descriptor we own.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        if last {
            return Ok(File::from(owned));
        }
        dir = owned;
    }
    Err(io::Error::other("an empty path"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_replaced_by_a_symlink_out_of_the_queue_is_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("queue");
        std::fs::create_dir_all(root.join("_media/sub")).unwrap();
        std::fs::write(root.join("_media/sale.png"), b"png").unwrap();
        std::fs::write(tmp.path().join("secret"), b"root:x:0:0").unwrap();
        assert_eq!(
            read_confined(&root, Path::new("_media/sale.png"), 100).unwrap(),
            b"png"
        );
        // The file swapped for a link out of the queue while its post waited.
        std::fs::remove_file(root.join("_media/sale.png")).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("_media/sale.png"))
            .unwrap();
        let err = read_confined(&root, Path::new("_media/sale.png"), 100).unwrap_err();
        assert!(err.to_string().contains("out of the queue"), "{err}");
        // A folder on the way swapped for a link out of the queue: refused too.
        std::fs::rename(root.join("_media/sub"), tmp.path().join("elsewhere")).unwrap();
        std::fs::write(tmp.path().join("elsewhere/x.png"), b"x").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), root.join("_media/sub")).unwrap();
        assert!(read_confined(&root, Path::new("_media/sub/x.png"), 100).is_err());
        // A link that stays inside the queue is fine.
        std::fs::write(root.join("_media/real.png"), b"real").unwrap();
        std::os::unix::fs::symlink("real.png", root.join("_media/alias.png")).unwrap();
        assert_eq!(
            read_confined(&root, Path::new("_media/alias.png"), 100).unwrap(),
            b"real"
        );
    }

    #[test]
    fn media_over_the_cap_or_not_a_regular_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("big.png"), vec![0u8; 101]).unwrap();
        let err = read_confined(tmp.path(), Path::new("big.png"), 100).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        let fifo = c_path(&tmp.path().join("pipe.png")).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let err = read_confined(tmp.path(), Path::new("pipe.png"), 100).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(read_confined(tmp.path(), Path::new("../x"), 100).is_err());
    }

    #[test]
    fn the_fallback_walk_refuses_every_link() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("a")).unwrap();
        std::fs::write(tmp.path().join("a/f"), b"f").unwrap();
        std::os::unix::fs::symlink("f", tmp.path().join("a/l")).unwrap();
        let dir = open_dir(tmp.path()).unwrap();
        assert!(walk_nofollow(dir, Path::new("a/f")).is_ok());
        let dir = open_dir(tmp.path()).unwrap();
        assert!(walk_nofollow(dir, Path::new("a/l")).is_err());
    }
}
