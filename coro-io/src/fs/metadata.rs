//! [`Metadata`]: what `statx(2)` says about a file.

use std::io;
use std::time::{Duration, SystemTime};

/// Information about a file: what [`metadata`](super::metadata),
/// [`symlink_metadata`](super::symlink_metadata) and
/// [`File::metadata`](super::File::metadata) return.
///
/// It is coro's own type, not `std::fs::Metadata` (which has no public
/// constructor), so that on io_uring it can be filled from the kernel's
/// `statx` completion without a trip through the blocking pool. It has the
/// accessors of std's that code commonly uses, and implements
/// [`std::os::unix::fs::MetadataExt`] for the rest of `stat`'s fields.
///
/// # Examples
///
/// ```
/// let sched = coro_io::IoScheduler::new(Default::default())?;
/// let m = coro_core::sync_wait(sched.spawn(coro_io::fs::metadata("/")))??;
/// assert!(m.is_dir());
/// assert!(!m.is_file());
/// assert!(m.modified().is_ok());
/// # std::io::Result::Ok(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// `stx_mask`: which fields the file system filled.
    pub(crate) mask: u32,
    pub(crate) mode: u32,
    pub(crate) size: u64,
    pub(crate) nlink: u64,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) ino: u64,
    pub(crate) dev: u64,
    pub(crate) rdev: u64,
    pub(crate) blksize: u64,
    pub(crate) blocks: u64,
    /// (seconds, nanoseconds) since the Unix epoch.
    pub(crate) atime: (i64, u32),
    pub(crate) mtime: (i64, u32),
    pub(crate) ctime: (i64, u32),
    pub(crate) btime: (i64, u32),
}

impl Metadata {
    /// The size of the file in bytes.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the file is empty (`len() == 0`).
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// Whether this is a symbolic link (only ever true for
    /// [`symlink_metadata`](super::symlink_metadata): the other calls
    /// follow links).
    pub fn is_symlink(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }

    /// The permissions, as std's type; like std's, its
    /// `PermissionsExt::mode` is the whole `st_mode`, file type bits
    /// included, so the two compare equal.
    pub fn permissions(&self) -> std::fs::Permissions {
        use std::os::unix::fs::PermissionsExt;
        std::fs::Permissions::from_mode(self.mode)
    }

    /// The last modification time.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the file system did not report it.
    pub fn modified(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_MTIME, self.mtime, "modification")
    }

    /// The last access time.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the file system did not report it.
    pub fn accessed(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_ATIME, self.atime, "access")
    }

    /// The creation (birth) time.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the file system does not record it (many do not,
    /// tmpfs before Linux 5.x among them), as std reports it.
    pub fn created(&self) -> io::Result<SystemTime> {
        self.time(libc::STATX_BTIME, self.btime, "creation")
    }

    fn time(&self, bit: u32, (sec, nsec): (i64, u32), what: &str) -> io::Result<SystemTime> {
        if self.mask & bit == 0 {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the {what} time is not available on this file system"),
            ));
        }
        let nsec = Duration::from_nanos(nsec.into());
        let t = if sec >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(sec.unsigned_abs()) + nsec)
        } else {
            SystemTime::UNIX_EPOCH
                .checked_sub(Duration::from_secs(sec.unsigned_abs()))
                .and_then(|t| t.checked_add(nsec))
        };
        t.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "file time out of range"))
    }
}

/// The raw `stat` fields, as for `std::fs::Metadata`.
impl std::os::unix::fs::MetadataExt for Metadata {
    fn dev(&self) -> u64 {
        self.dev
    }
    fn ino(&self) -> u64 {
        self.ino
    }
    fn mode(&self) -> u32 {
        self.mode
    }
    fn nlink(&self) -> u64 {
        self.nlink
    }
    fn uid(&self) -> u32 {
        self.uid
    }
    fn gid(&self) -> u32 {
        self.gid
    }
    fn rdev(&self) -> u64 {
        self.rdev
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn atime(&self) -> i64 {
        self.atime.0
    }
    fn atime_nsec(&self) -> i64 {
        self.atime.1.into()
    }
    fn mtime(&self) -> i64 {
        self.mtime.0
    }
    fn mtime_nsec(&self) -> i64 {
        self.mtime.1.into()
    }
    fn ctime(&self) -> i64 {
        self.ctime.0
    }
    fn ctime_nsec(&self) -> i64 {
        self.ctime.1.into()
    }
    fn blksize(&self) -> u64 {
        self.blksize
    }
    fn blocks(&self) -> u64 {
        self.blocks
    }
}
