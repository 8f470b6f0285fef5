//! The rest of `std::fs`, on the blocking pool: directory listing, copy,
//! links, permissions, recursive removal, canonical paths.
//!
//! None of these is a single io_uring op worth having (a directory listing
//! is `getdents64`, which io_uring lacks; `copy` is a loop of reads and
//! writes, or `copy_file_range`, that std already does well), so they run
//! std's own code on [`spawn_blocking`](crate::spawn_blocking)'s pool, on
//! either driver, as tokio's do. They need no scheduler: any executor can
//! await them. Errors keep the kind and name the operation and the path.
//!
//! Cancel safety: a dropped future lets the call finish in the background
//! (blocking code cannot be interrupted); what it did stays done.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{FileType, Permissions};
use std::io;
use std::path::{Path, PathBuf};

use super::PathError;
use crate::blocking::spawn_blocking;
use crate::task::JoinHandle;

/// Run `f` on the blocking pool; its error names `what` and `path`.
async fn on_pool<T, F>(what: &'static str, path: PathBuf, f: F) -> io::Result<T>
where
    F: FnOnce(&Path) -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    spawn_blocking(move || f(&path).map_err(|e| PathError::wrap(e, what, &path)))
        .await
        .map_err(io::Error::from)?
}

/// Copy the contents and permissions of `from` to `to` (created or
/// truncated); returns the bytes copied (`std::fs::copy`).
///
/// # Errors
///
/// `NotFound` if `from` is missing, `InvalidInput` if it is not a regular
/// file; naming both paths.
pub async fn copy(from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<u64> {
    let (from, to) = (from.as_ref().to_owned(), to.as_ref().to_owned());
    let both = PathBuf::from(format!("{} -> {}", from.display(), to.display()));
    on_pool("copy", both, move |_| std::fs::copy(&from, &to)).await
}

/// Make `link` a hard link to `original` (`std::fs::hard_link`).
///
/// # Errors
///
/// `AlreadyExists` if `link` exists; naming both paths.
pub async fn hard_link(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref().to_owned(), link.as_ref().to_owned());
    let both = PathBuf::from(format!("{} -> {}", link.display(), original.display()));
    on_pool("hard_link", both, move |_| {
        std::fs::hard_link(&original, &link)
    })
    .await
}

/// Make `link` a symbolic link to `original` (`std::os::unix::fs::symlink`).
///
/// # Errors
///
/// `AlreadyExists` if `link` exists; naming both paths.
pub async fn symlink(original: impl AsRef<Path>, link: impl AsRef<Path>) -> io::Result<()> {
    let (original, link) = (original.as_ref().to_owned(), link.as_ref().to_owned());
    let both = PathBuf::from(format!("{} -> {}", link.display(), original.display()));
    on_pool("symlink", both, move |_| {
        std::os::unix::fs::symlink(&original, &link)
    })
    .await
}

/// What the symbolic link at `path` points to (`std::fs::read_link`).
///
/// # Errors
///
/// `InvalidInput` if `path` is not a symlink; naming it.
pub async fn read_link(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    on_pool("read_link", path.as_ref().to_owned(), |p| {
        std::fs::read_link(p)
    })
    .await
}

/// The absolute path of `path` with every symlink, `.` and `..` resolved
/// (`std::fs::canonicalize`).
///
/// # Errors
///
/// `NotFound` if it does not exist; naming it.
pub async fn canonicalize(path: impl AsRef<Path>) -> io::Result<PathBuf> {
    on_pool("canonicalize", path.as_ref().to_owned(), |p| {
        std::fs::canonicalize(p)
    })
    .await
}

/// Set the permissions of `path` (`std::fs::set_permissions`).
///
/// # Errors
///
/// `NotFound`, `PermissionDenied`; naming the path.
pub async fn set_permissions(path: impl AsRef<Path>, perm: Permissions) -> io::Result<()> {
    on_pool("set_permissions", path.as_ref().to_owned(), move |p| {
        std::fs::set_permissions(p, perm)
    })
    .await
}

/// Remove the directory `path` with everything in it, not following
/// symlinks (`std::fs::remove_dir_all`).
///
/// # Errors
///
/// `NotFound` if it does not exist; the first error met, naming `path`.
pub async fn remove_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    on_pool("remove_dir_all", path.as_ref().to_owned(), |p| {
        std::fs::remove_dir_all(p)
    })
    .await
}

/// Whether `path` exists: `Ok(false)` only when it provably does not (a
/// permission error is an error, as `std::fs::exists`).
///
/// # Errors
///
/// Anything but "not found"; naming the path.
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    on_pool("try_exists", path.as_ref().to_owned(), |p| {
        std::fs::exists(p)
    })
    .await
}

/// How many entries one blocking call reads ahead.
const BATCH: usize = 32;

/// The entries of a directory, from [`read_dir`]: call
/// [`next_entry`](ReadDir::next_entry) until it returns `None`.
#[derive(Debug)]
pub struct ReadDir {
    state: ReadDirState,
}

#[derive(Debug)]
enum ReadDirState {
    /// Entries read ahead, and the std iterator (`None` once exhausted).
    Idle(VecDeque<io::Result<DirEntry>>, Option<std::fs::ReadDir>),
    Busy(JoinHandle<(VecDeque<io::Result<DirEntry>>, Option<std::fs::ReadDir>)>),
}

/// List the directory `path` (`std::fs::read_dir`): entries come in
/// batches of 32 read on the blocking pool, in the order the file system
/// returns them, without `.` and `..`.
///
/// # Errors
///
/// `NotFound`, `NotADirectory`, `PermissionDenied`; naming the path.
///
/// # Examples
///
/// ```
/// # coro_core::sync_wait(async {
/// let mut dir = coro_io::fs::read_dir("/").await?;
/// let mut names = Vec::new();
/// while let Some(entry) = dir.next_entry().await? {
///     names.push(entry.file_name());
/// }
/// assert!(names.iter().any(|n| n == "proc"));
/// # std::io::Result::Ok(())
/// # }).unwrap();
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let iter = on_pool("read_dir", path.as_ref().to_owned(), |p| {
        std::fs::read_dir(p)
    })
    .await?;
    Ok(ReadDir {
        state: ReadDirState::Idle(VecDeque::new(), Some(iter)),
    })
}

impl ReadDir {
    /// The next entry, or `None` at the end.
    ///
    /// # Errors
    ///
    /// An entry the file system could not read (the listing goes on after
    /// it); a listing job that failed on the pool (the stream ends after
    /// it).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a batch being read is kept for the next call.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        loop {
            match &mut self.state {
                ReadDirState::Idle(ahead, iter) => {
                    if let Some(entry) = ahead.pop_front() {
                        return entry.map(Some);
                    }
                    let Some(mut iter) = iter.take() else {
                        return Ok(None);
                    };
                    self.state = ReadDirState::Busy(spawn_blocking(move || {
                        let batch: VecDeque<_> = iter
                            .by_ref()
                            .take(BATCH)
                            .map(|e| {
                                e.map(|entry| DirEntry {
                                    // Here, on the pool: from the listing's
                                    // type where the file system gives it,
                                    // else an `lstat`.
                                    file_type: entry.file_type().ok(),
                                    entry,
                                })
                            })
                            .collect();
                        let more = (batch.len() == BATCH).then_some(iter);
                        (batch, more)
                    }));
                }
                ReadDirState::Busy(h) => match h.await {
                    Ok((batch, more)) => self.state = ReadDirState::Idle(batch, more),
                    Err(e) => {
                        // The listing went with the job (it panicked, or the
                        // pool could not run it): the stream ends after this
                        // error, as std's would, rather than repeat it.
                        self.state = ReadDirState::Idle(VecDeque::new(), None);
                        return Err(io::Error::from(e));
                    }
                },
            }
        }
    }
}

/// One entry of a [`ReadDir`].
#[derive(Debug)]
pub struct DirEntry {
    entry: std::fs::DirEntry,
    /// Found while the batch was read (`None` if that failed).
    file_type: Option<FileType>,
}

impl DirEntry {
    /// The directory's path joined with the entry's name.
    pub fn path(&self) -> PathBuf {
        self.entry.path()
    }

    /// The entry's name, without its directory.
    pub fn file_name(&self) -> OsString {
        self.entry.file_name()
    }

    /// The entry's inode number (from the listing, no extra call).
    pub fn ino(&self) -> u64 {
        std::os::unix::fs::DirEntryExt::ino(&self.entry)
    }

    /// The entry's type, not following a symlink, as found while the
    /// listing was read (from the directory entry where the file system
    /// gives it, else an `lstat`); retried on the blocking pool if that
    /// failed.
    ///
    /// # Errors
    ///
    /// From `lstat`, naming the path.
    pub async fn file_type(&self) -> io::Result<FileType> {
        if let Some(t) = self.file_type {
            return Ok(t);
        }
        on_pool("file_type", self.entry.path(), |p| {
            std::fs::symlink_metadata(p).map(|m| m.file_type())
        })
        .await
    }

    /// The entry's metadata, not following a symlink (`lstat`), as
    /// [`symlink_metadata`](super::symlink_metadata).
    ///
    /// # Errors
    ///
    /// From `statx`, naming the path.
    ///
    /// # Panics
    ///
    /// Outside a task of an [`IoScheduler`](crate::IoScheduler).
    pub async fn metadata(&self) -> io::Result<super::Metadata> {
        super::symlink_metadata(self.entry.path()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing job that failed (it panicked here; or the pool could not
    /// run it) ends the stream after its error, as std's `ReadDir` does
    /// after one: a loop that skips failed entries must not spin on it.
    #[test]
    fn a_failed_listing_job_ends_the_stream() {
        let mut dir = ReadDir {
            state: ReadDirState::Busy(spawn_blocking(|| -> (VecDeque<_>, Option<_>) {
                panic!("the listing job failed")
            })),
        };
        let first = coro_core::sync_wait(dir.next_entry());
        assert!(first.is_err(), "{first:?}");
        let next = coro_core::sync_wait(dir.next_entry());
        assert!(matches!(next, Ok(None)), "{next:?}");
    }
}
