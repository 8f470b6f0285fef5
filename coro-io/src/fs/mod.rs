//! Files and paths through the scheduler's driver: [`File`],
//! [`OpenOptions`], [`Metadata`], and the `std::fs`-shaped helpers
//! [`read`], [`read_to_string`], [`write()`], [`metadata`],
//! [`symlink_metadata`], [`create_dir`], [`create_dir_all`],
//! [`remove_file`], [`remove_dir`] and [`rename`]; and on the blocking pool
//! (no io_uring op fits them) [`read_dir`], [`copy`], [`hard_link`],
//! [`symlink`], [`read_link`], [`canonicalize`], [`set_permissions`],
//! [`remove_dir_all`] and [`try_exists`].
//!
//! On io_uring each of the first group is a native op (`OPENAT`, `STATX`,
//! `READ`/`WRITE`, `RENAMEAT`, `UNLINKAT`, `MKDIRAT`), so a file read costs
//! no thread hop; on a kernel without an opcode, and on epoll (a regular
//! file is always "ready", so readiness cannot help), the plain syscall
//! runs on the blocking pool. The futures look the same either way.
//!
//! The helpers run on the current scheduler, as `coro::spawn` does: call
//! them from a task of an [`IoScheduler`]. Errors keep the kind the kernel
//! reported (`NotFound`, `AlreadyExists`, `PermissionDenied`, ...) and name
//! the operation and the path. The kernel's own `io::Error`, with its
//! `raw_os_error()`, is one step down: `e.get_ref()` is the path error
//! and its `source()` is the kernel's error.
//!
//! # Examples
//!
//! ```
//! use coro_io::fs;
//!
//! let sched = coro_io::IoScheduler::new(Default::default())?;
//! let dir = std::env::temp_dir().join(format!("coro-fs-doc-{}", std::process::id()));
//! let d = dir.clone();
//! coro_core::sync_wait(sched.spawn(async move {
//!     fs::create_dir_all(d.join("a/b")).await?;
//!     fs::write(d.join("a/b/hello.txt"), "hello").await?;
//!     fs::rename(d.join("a/b/hello.txt"), d.join("a/hi.txt")).await?;
//!     assert_eq!(fs::read_to_string(d.join("a/hi.txt")).await?, "hello");
//!     assert_eq!(fs::metadata(d.join("a/hi.txt")).await?.len(), 5);
//!     let e = fs::read(d.join("a/b/hello.txt")).await.unwrap_err();
//!     assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
//!     std::io::Result::Ok(())
//! }))??;
//! std::fs::remove_dir_all(&dir)?;
//! # std::io::Result::Ok(())
//! ```

mod file;
mod metadata;
mod options;
mod pool;

pub use file::File;
pub use metadata::Metadata;
pub use options::OpenOptions;
pub use pool::{
    DirEntry, ReadDir, canonicalize, copy, hard_link, read_dir, read_link, remove_dir_all,
    set_permissions, symlink, try_exists,
};

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::IoScheduler;
use crate::buf::{IoBuf, Slice};
use crate::op;

/// The current scheduler, or a panic naming `what`.
#[track_caller]
fn current(what: &str) -> IoScheduler {
    crate::ambient::current_or(
        what,
        "call it from a task, or open a File with an explicit scheduler \
         (File::open, OpenOptions::open_on)",
    )
}

/// `path` as the NUL-terminated string the kernel reads.
fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "path contains a NUL byte".to_owned(),
        )
    })
}

/// An error of a path operation: the kernel's error with the operation and
/// the path it was about. Reached through `io::Error::get_ref`/`source`;
/// the `io::Error` wrapping it keeps the kernel error's kind.
#[derive(Debug)]
struct PathError {
    op: &'static str,
    path: PathBuf,
    source: io::Error,
}

impl PathError {
    fn wrap(source: io::Error, op: &'static str, path: &Path) -> io::Error {
        io::Error::new(
            source.kind(),
            PathError {
                op,
                path: path.to_owned(),
                source,
            },
        )
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.op, self.path.display(), self.source)
    }
}

impl std::error::Error for PathError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Read the whole file at `path`.
///
/// # Errors
///
/// From opening or reading, naming the path.
///
/// # Cancel safety
///
/// Cancel safe (it changes nothing; a read finishing in the background is
/// discarded).
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn read(path: impl AsRef<Path>) -> io::Result<Vec<u8>> {
    let path = path.as_ref();
    let sched = current("coro::fs::read");
    let f = OpenOptions::new().read(true).open_on(&sched, path).await?;
    let err = |e| PathError::wrap(e, "read", path);
    // The size is a hint (the file may grow or shrink while it is read, and
    // a sparse or special file may claim far more than it holds): capped.
    let hint = f.metadata().await.map_err(err)?.len().min(64 << 20);
    let mut data = Vec::with_capacity(hint as usize + 1);
    loop {
        if data.len() == data.capacity() {
            data.reserve(data.capacity().clamp(8 * 1024, 1 << 20));
        }
        let at = data.len();
        let (res, tail) = f.read_at(Slice::new(data, at), at as u64).await;
        data = tail.into_inner();
        if res.map_err(err)? == 0 {
            return Ok(data);
        }
    }
}

/// Read the whole file at `path` as UTF-8.
///
/// # Errors
///
/// From [`read`]; `InvalidData` (naming the path) if it is not UTF-8.
///
/// # Cancel safety
///
/// As [`read`].
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn read_to_string(path: impl AsRef<Path>) -> io::Result<String> {
    let path = path.as_ref();
    let data = read(path).await?;
    String::from_utf8(data).map_err(|e| {
        PathError::wrap(
            io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
            "read_to_string",
            path,
        )
    })
}

/// Create or truncate the file at `path` and write `contents` to it.
///
/// # Errors
///
/// From opening or writing, naming the path.
///
/// # Cancel safety
///
/// Not cancel safe: a dropped `write` may leave the file created and
/// partly written.
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref();
    let sched = current("coro::fs::write");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open_on(&sched, path)
        .await?;
    let err = |e| PathError::wrap(e, "write", path);
    // The driver needs an owned buffer: one copy of the caller's bytes.
    let mut left = Slice::new(contents.as_ref().to_vec(), 0);
    while left.bytes_init() > 0 {
        let at = left.begin() as u64;
        let (res, rest) = f.write_at(left, at).await;
        left = rest;
        match res.map_err(err)? {
            0 => return Err(err(io::ErrorKind::WriteZero.into())),
            n => left.advance(n),
        }
    }
    Ok(())
}

/// The metadata of `path`, following symlinks (`stat`).
///
/// # Errors
///
/// From `statx`, naming the path.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    stat(path.as_ref(), true, "metadata").await
}

/// The metadata of `path` itself, not of a symlink's target (`lstat`).
///
/// # Errors
///
/// From `statx`, naming the path.
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn symlink_metadata(path: impl AsRef<Path>) -> io::Result<Metadata> {
    stat(path.as_ref(), false, "symlink_metadata").await
}

async fn stat(path: &Path, follow: bool, what: &'static str) -> io::Result<Metadata> {
    let sched = current(what);
    let err = |e| PathError::wrap(e, what, path);
    let c = cpath(path).map_err(err)?;
    op::statx(sched.driver(), c, follow).await.map_err(err)
}

/// Create the directory `path` (mode `0o777` before the umask).
///
/// # Errors
///
/// `AlreadyExists` if anything is there, `NotFound` if its parent is
/// missing, naming the path.
///
/// # Cancel safety
///
/// A dropped `create_dir` may still create the directory.
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn create_dir(path: impl AsRef<Path>) -> io::Result<()> {
    let path = path.as_ref();
    mkdir(&current("coro::fs::create_dir"), path)
        .await
        .map_err(|e| PathError::wrap(e, "create_dir", path))
}

async fn mkdir(sched: &IoScheduler, path: &Path) -> io::Result<()> {
    op::mkdir_at(sched.driver(), cpath(path)?, 0o777).await
}

/// Create `path` and every missing parent, as `mkdir -p`. A directory that
/// exists already (or appears meanwhile) is fine.
///
/// # Errors
///
/// `AlreadyExists` if `path` itself is something other than a directory,
/// `NotADirectory` if a parent is; the first other error, naming the
/// directory it was about.
///
/// # Cancel safety
///
/// A dropped `create_dir_all` may have created some of the directories.
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let sched = current("coro::fs::create_dir_all");
    let path = path.as_ref();
    // Walk up until a directory can be made (or exists), then come back
    // down making the ones that were missing.
    let mut missing = Vec::new();
    let mut at = path;
    loop {
        match make_dir(&sched, at).await {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => match at.parent() {
                Some(parent) => {
                    missing.push(at);
                    at = parent;
                }
                None => return Err(PathError::wrap(e, "create_dir_all", at)),
            },
            Err(e) => return Err(PathError::wrap(e, "create_dir_all", at)),
        }
    }
    for dir in missing.into_iter().rev() {
        make_dir(&sched, dir)
            .await
            .map_err(|e| PathError::wrap(e, "create_dir_all", dir))?;
    }
    Ok(())
}

/// `mkdir`, where an existing directory (or the empty path, the current
/// directory) counts as made.
async fn make_dir(sched: &IoScheduler, dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match mkdir(sched, dir).await {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let is_dir = op::statx(sched.driver(), cpath(dir)?, true)
                .await
                .is_ok_and(|m| m.is_dir());
            if is_dir { Ok(()) } else { Err(e) }
        }
        r => r,
    }
}

/// Remove the file (or symlink) at `path`.
///
/// # Errors
///
/// `NotFound`; `IsADirectory` for a directory (use [`remove_dir`]);
/// naming the path.
///
/// # Cancel safety
///
/// A dropped `remove_file` may still remove the file.
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn remove_file(path: impl AsRef<Path>) -> io::Result<()> {
    unlink(path.as_ref(), false, "remove_file").await
}

/// Remove the empty directory at `path`.
///
/// # Errors
///
/// `NotFound`; `DirectoryNotEmpty`; `NotADirectory`; naming the path.
///
/// # Cancel safety
///
/// A dropped `remove_dir` may still remove the directory.
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn remove_dir(path: impl AsRef<Path>) -> io::Result<()> {
    unlink(path.as_ref(), true, "remove_dir").await
}

async fn unlink(path: &Path, dir: bool, what: &'static str) -> io::Result<()> {
    let sched = current(what);
    let err = |e| PathError::wrap(e, what, path);
    let c = cpath(path).map_err(err)?;
    op::unlink_at(sched.driver(), c, dir).await.map_err(err)
}

/// Rename `from` to `to`, replacing `to` if it exists (`rename(2)`: both
/// on one file system).
///
/// # Errors
///
/// `NotFound` if `from` is missing; `CrossesDevices` across file
/// systems; naming both paths.
///
/// # Cancel safety
///
/// A dropped `rename` may still rename.
///
/// # Panics
///
/// Outside a task of an [`IoScheduler`].
pub async fn rename(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
    let (from, to) = (from.as_ref(), to.as_ref());
    let sched = current("coro::fs::rename");
    let both = format!("{} -> {}", from.display(), to.display());
    let err = |e| PathError::wrap(e, "rename", Path::new(&both));
    let (f, t) = (cpath(from).map_err(err)?, cpath(to).map_err(err)?);
    op::rename_at(sched.driver(), f, t).await.map_err(err)
}
