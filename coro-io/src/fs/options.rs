//! [`OpenOptions`]: how to open a [`File`].

use std::io;
use std::path::Path;

use super::{File, PathError, cpath};
use crate::IoScheduler;
use crate::op;

/// Options and flags for opening a [`File`], as `std::fs::OpenOptions`.
///
/// The `open(2)` runs natively on io_uring (`IORING_OP_OPENAT`) and on the
/// blocking pool with epoll. Every file is opened close-on-exec.
///
/// # Examples
///
/// ```
/// use coro_io::fs::OpenOptions;
/// use futures::io::AsyncWriteExt;
///
/// let sched = coro_io::IoScheduler::new(Default::default())?;
/// let path = std::env::temp_dir().join(format!("coro-doc-options-{}", std::process::id()));
/// let p = path.clone();
/// coro_core::sync_wait(sched.spawn(async move {
///     let mut log = OpenOptions::new().append(true).create(true).open(&p).await?;
///     log.write_all(b"one\n").await?;
///     log.close().await?;
///     let mut log = OpenOptions::new().append(true).open(&p).await?;
///     log.write_all(b"two\n").await?;
///     log.close().await
/// }))??;
/// assert_eq!(std::fs::read(&path)?, b"one\ntwo\n");
/// std::fs::remove_file(path)?;
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    read: bool,
    write: bool,
    append: bool,
    truncate: bool,
    create: bool,
    create_new: bool,
    mode: u32,
    custom_flags: i32,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// No access at all yet (set at least one of `read`, `write`,
    /// `append`); files are created with mode `0o666` (before the umask).
    pub fn new() -> OpenOptions {
        OpenOptions {
            read: false,
            write: false,
            append: false,
            truncate: false,
            create: false,
            create_new: false,
            mode: 0o666,
            custom_flags: 0,
        }
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.read = read;
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.write = write;
        self
    }

    /// Open for appending (`O_APPEND`, implies writing): every write lands
    /// at the end of the file, and after a sequential write the cursor
    /// (where sequential reads go on) is the end of the file, as std's.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.append = append;
        self
    }

    /// Truncate an existing file to length 0 (needs `write`).
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.truncate = truncate;
        self
    }

    /// Create the file if it does not exist (needs `write` or `append`).
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.create = create;
        self
    }

    /// Create the file, failing with `AlreadyExists` if it exists
    /// (`O_CREAT | O_EXCL`, atomic; `create` and `truncate` are then
    /// ignored).
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.create_new = create_new;
        self
    }

    /// The permission bits of a created file (before the umask); default
    /// `0o666`.
    pub fn mode(&mut self, mode: u32) -> &mut OpenOptions {
        self.mode = mode;
        self
    }

    /// Further `open(2)` flags (`libc::O_NOFOLLOW`, `O_DIRECT`, ...); the
    /// access mode bits are ignored (use `read`/`write`).
    pub fn custom_flags(&mut self, flags: i32) -> &mut OpenOptions {
        self.custom_flags = flags;
        self
    }

    /// Open `path` with these options on the current scheduler.
    ///
    /// # Errors
    ///
    /// Whatever `open(2)` reports, with the path in the message (the kind
    /// is kept: `NotFound`, `AlreadyExists`, `PermissionDenied`, ...);
    /// `InvalidInput` for contradictory options (no access mode, or
    /// `truncate`/`create` without write access).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped after the file was opened for
    /// it, the file is closed (a file it created stays created).
    ///
    /// # Panics
    ///
    /// When polled outside a task of an [`IoScheduler`]; use
    /// [`open_on`](OpenOptions::open_on) there.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let sched = super::current("coro::fs::OpenOptions::open");
        self.open_on(&sched, path).await
    }

    /// [`open`](OpenOptions::open) on the scheduler `sched`, from any
    /// thread or executor.
    ///
    /// # Errors
    ///
    /// As [`open`](OpenOptions::open).
    ///
    /// # Cancel safety
    ///
    /// As [`open`](OpenOptions::open).
    pub async fn open_on(&self, sched: &IoScheduler, path: impl AsRef<Path>) -> io::Result<File> {
        let path = path.as_ref();
        let err = |e| PathError::wrap(e, "open", path);
        let flags = self.flags().map_err(err)?;
        let c = cpath(path).map_err(err)?;
        let fd = op::open_at(sched.driver(), c, flags, self.mode)
            .await
            .map_err(err)?;
        // Appending also when asked through `custom_flags`.
        Ok(File::from_fd(
            sched,
            fd,
            self.append || flags & libc::O_APPEND != 0,
        ))
    }

    /// The `open(2)` flags, or why there are none (the rules of std's).
    fn flags(&self) -> io::Result<i32> {
        let invalid = |msg: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, msg.to_owned()));
        let access = match (self.read, self.write, self.append) {
            (true, false, false) => libc::O_RDONLY,
            (false, true, false) => libc::O_WRONLY,
            (true, true, false) => libc::O_RDWR,
            (false, _, true) => libc::O_WRONLY | libc::O_APPEND,
            (true, _, true) => libc::O_RDWR | libc::O_APPEND,
            (false, false, false) => {
                return invalid("no access mode: set read, write or append");
            }
        };
        match (self.write, self.append) {
            (true, false) => {}
            (false, false) => {
                if self.truncate || self.create || self.create_new {
                    return invalid("creating or truncating a file needs write or append access");
                }
            }
            (_, true) => {
                if self.truncate && !self.create_new {
                    return invalid("truncate and append contradict each other");
                }
            }
        }
        let creation = match (self.create, self.truncate, self.create_new) {
            (_, _, true) => libc::O_CREAT | libc::O_EXCL,
            (true, true, false) => libc::O_CREAT | libc::O_TRUNC,
            (true, false, false) => libc::O_CREAT,
            (false, true, false) => libc::O_TRUNC,
            (false, false, false) => 0,
        };
        Ok(access | creation | (self.custom_flags & !libc::O_ACCMODE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_follow_std() {
        let new = OpenOptions::new;
        assert_eq!(new().read(true).flags().unwrap(), libc::O_RDONLY);
        assert_eq!(
            new()
                .write(true)
                .create(true)
                .truncate(true)
                .flags()
                .unwrap(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
        );
        assert_eq!(
            new().append(true).create_new(true).flags().unwrap(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_EXCL
        );
        // Custom flags cannot change the access mode.
        assert_eq!(
            new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_RDWR)
                .flags()
                .unwrap(),
            libc::O_RDONLY | libc::O_NOFOLLOW
        );
        for bad in [
            new().flags(),
            new().read(true).create(true).flags(),
            new().append(true).truncate(true).flags(),
        ] {
            assert_eq!(bad.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
    }
}
