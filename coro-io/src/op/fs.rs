//! Path operations: open, statx, rename, unlink, mkdir.
//!
//! Each op owns its paths as `CString`s: the kernel reads them after the
//! submission, possibly after the future was dropped, so they live in the
//! op (on the heap from its submission on) until its completion. On io_uring they are native where the
//! kernel has the opcode ([`Features`]); on epoll, and on io_uring without
//! the opcode, the plain syscall runs on the blocking pool.
//!
//! Relative paths are resolved against the process's working directory
//! when the op runs.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::{opcode, types};
use rustix::fs::{AtFlags, CWD, Mode, OFlags, StatxFlags};

use super::{Op, OpFuture, OpKind};
use crate::driver::probe::Features;
use crate::driver::{Handle, Readiness};
use crate::fs::Metadata;

/// `openat(AT_FDCWD, path, flags | O_CLOEXEC, mode)`.
#[derive(Debug)]
pub struct OpenAt {
    path: CString,
    flags: i32,
    mode: u32,
}

/// Open `path` with `open(2)` `flags` (`O_CLOEXEC` is always added) and,
/// when a file is created, permission bits `mode`. Resolves to the new fd.
///
/// # Cancel safety
///
/// Cancel safe: if the future is dropped after the kernel opened the file
/// for it, the driver closes that fd (a file created by `O_CREAT` stays
/// created).
///
/// # Examples
///
/// ```
/// use coro_io::{op, driver::Handle, DriverKind};
///
/// let h = Handle::new(DriverKind::Auto)?;
/// let path = std::ffi::CString::new("/dev/null").unwrap();
/// let fd = futures::executor::block_on(async {
///     let mut open = std::pin::pin!(op::open_at(&h, path, libc::O_RDONLY, 0));
///     loop {
///         if let std::task::Poll::Ready(r) = futures::poll!(open.as_mut()) {
///             break r;
///         }
///         h.park(Some(std::time::Duration::from_millis(1))).unwrap();
///     }
/// })?;
/// drop(fd);
/// # std::io::Result::Ok(())
/// ```
pub fn open_at(driver: &Handle, path: CString, flags: i32, mode: u32) -> OpFuture<OpenAt> {
    OpFuture::new(
        driver,
        OpenAt {
            path,
            flags: flags | libc::O_CLOEXEC,
            mode,
        },
    )
}

// SAFETY: its entry points only into the path it owns (a CString's heap
// block, which stays put while the op lives) and names no fd (AT_FDCWD).
unsafe impl Op for OpenAt {
    type Output = io::Result<OwnedFd>;
    const KIND: OpKind = OpKind::OpenAt;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(self.flags)
            .mode(self.mode)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let fd = rustix::fs::openat(
            CWD,
            self.path.as_c_str(),
            OFlags::from_bits_retain(self.flags as u32),
            Mode::from_raw_mode(self.mode),
        )?;
        Ok(fd.into_raw_fd() as usize)
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        let fd = res?;
        // SAFETY: the kernel just created this fd for this op; nobody else owns it.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }
    fn orphaned(&mut self, res: io::Result<usize>) {
        if let Ok(fd) = res {
            // SAFETY: the fd was created for this op and its caller is gone: we own it.
            drop(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
    }
    fn uring_native(&self, features: &Features) -> bool {
        features.openat
    }
}

/// What [`statx`] asks for: the basic `stat` fields and the birth time.
const STATX_MASK: u32 = libc::STATX_BASIC_STATS | libc::STATX_BTIME;

/// `statx(dirfd, path, flags, STATX_BASIC_STATS | STATX_BTIME)`.
pub struct Statx {
    dirfd: RawFd,
    path: CString,
    flags: i32,
    /// Where the kernel writes (io_uring).
    buf: libc::statx,
    /// What the syscall returned (blocking path).
    got: Option<Metadata>,
    owner: Option<Arc<OwnedFd>>,
}

impl std::fmt::Debug for Statx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statx")
            .field("dirfd", &self.dirfd)
            .field("path", &self.path)
            .field("flags", &self.flags)
            .finish_non_exhaustive()
    }
}

/// The metadata of `path`, following a final symlink unless `follow` is
/// false (then the link's own, as `lstat`).
///
/// # Cancel safety
///
/// Cancel safe: it changes nothing.
pub fn statx(driver: &Handle, path: CString, follow: bool) -> OpFuture<Statx> {
    let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
    OpFuture::new(driver, Statx::new(libc::AT_FDCWD, path, flags))
}

/// The metadata of the open file `fd` (`statx` with `AT_EMPTY_PATH`).
///
/// # Cancel safety
///
/// Cancel safe: it changes nothing.
pub fn statx_fd(driver: &Handle, fd: RawFd) -> OpFuture<Statx> {
    OpFuture::new(
        driver,
        Statx::new(fd, CString::default(), libc::AT_EMPTY_PATH),
    )
}

impl Statx {
    fn new(dirfd: RawFd, path: CString, flags: i32) -> Statx {
        Statx {
            dirfd,
            path,
            flags,
            // SAFETY: `statx` is plain old data (integers); zero is valid.
            buf: unsafe { std::mem::zeroed() },
            got: None,
            owner: None,
        }
    }
}

// SAFETY: its entry points into the path (a CString's heap block) and the
// `statx` buffer it owns (a field of the op, on the heap and never moved
// once submitted), the only memory the kernel writes; `dirfd` is AT_FDCWD
// or a file the caller (or `keep_alive`) keeps open.
unsafe impl Op for Statx {
    type Output = io::Result<Metadata>;
    const KIND: OpKind = OpKind::Statx;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let buf: *mut libc::statx = &mut self.buf;
        opcode::Statx::new(types::Fd(self.dirfd), self.path.as_ptr(), buf.cast())
            .flags(self.flags)
            .mask(STATX_MASK)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }
    fn skip_if_dropped(&self) -> bool {
        // Only `statx_fd` names an fd (a path needs none).
        self.flags & libc::AT_EMPTY_PATH != 0 && self.owner.is_none()
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let flags = AtFlags::from_bits_retain(self.flags as u32);
        let mask = StatxFlags::from_bits_retain(STATX_MASK);
        let st = if self.dirfd == libc::AT_FDCWD {
            rustix::fs::statx(CWD, self.path.as_c_str(), flags, mask)?
        } else {
            // SAFETY: the caller keeps the fd open while the op lives.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.dirfd) };
            rustix::fs::statx(fd, self.path.as_c_str(), flags, mask)?
        };
        self.got = Some(metadata_from_rustix(&st));
        Ok(0)
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        res?;
        Ok(match self.got {
            Some(m) => m,
            None => metadata_from_libc(&self.buf),
        })
    }
    fn uring_native(&self, features: &Features) -> bool {
        features.statx
    }
}

fn dev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

fn metadata_from_libc(st: &libc::statx) -> Metadata {
    let t = |t: &libc::statx_timestamp| (t.tv_sec, t.tv_nsec);
    Metadata {
        mask: st.stx_mask,
        mode: st.stx_mode.into(),
        size: st.stx_size,
        nlink: st.stx_nlink.into(),
        uid: st.stx_uid,
        gid: st.stx_gid,
        ino: st.stx_ino,
        dev: dev(st.stx_dev_major, st.stx_dev_minor),
        rdev: dev(st.stx_rdev_major, st.stx_rdev_minor),
        blksize: st.stx_blksize.into(),
        blocks: st.stx_blocks,
        atime: t(&st.stx_atime),
        mtime: t(&st.stx_mtime),
        ctime: t(&st.stx_ctime),
        btime: t(&st.stx_btime),
    }
}

fn metadata_from_rustix(st: &rustix::fs::Statx) -> Metadata {
    let t = |t: &rustix::fs::StatxTimestamp| (t.tv_sec, t.tv_nsec);
    Metadata {
        mask: st.stx_mask,
        mode: st.stx_mode.into(),
        size: st.stx_size,
        nlink: st.stx_nlink.into(),
        uid: st.stx_uid,
        gid: st.stx_gid,
        ino: st.stx_ino,
        dev: dev(st.stx_dev_major, st.stx_dev_minor),
        rdev: dev(st.stx_rdev_major, st.stx_rdev_minor),
        blksize: st.stx_blksize.into(),
        blocks: st.stx_blocks,
        atime: t(&st.stx_atime),
        mtime: t(&st.stx_mtime),
        ctime: t(&st.stx_ctime),
        btime: t(&st.stx_btime),
    }
}

/// `renameat(AT_FDCWD, from, AT_FDCWD, to)`.
#[derive(Debug)]
pub struct RenameAt {
    from: CString,
    to: CString,
}

/// Rename `from` to `to`, replacing `to` if it exists (`rename(2)`).
///
/// # Cancel safety
///
/// A dropped rename may still happen (io_uring: unless the cancel reaches
/// it first; blocking pool: always).
pub fn rename_at(driver: &Handle, from: CString, to: CString) -> OpFuture<RenameAt> {
    OpFuture::new(driver, RenameAt { from, to })
}

// SAFETY: its entry points only into the two paths it owns (CString heap
// blocks) and names no fd (AT_FDCWD).
unsafe impl Op for RenameAt {
    type Output = io::Result<()>;
    const KIND: OpKind = OpKind::RenameAt;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        opcode::RenameAt::new(
            types::Fd(libc::AT_FDCWD),
            self.from.as_ptr(),
            types::Fd(libc::AT_FDCWD),
            self.to.as_ptr(),
        )
        .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }
    fn attempt(&mut self) -> io::Result<usize> {
        rustix::fs::renameat(CWD, self.from.as_c_str(), CWD, self.to.as_c_str())?;
        Ok(0)
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        res.map(drop)
    }
    fn uring_native(&self, features: &Features) -> bool {
        features.renameat
    }
}

/// `unlinkat(AT_FDCWD, path, 0 or AT_REMOVEDIR)`.
#[derive(Debug)]
pub struct UnlinkAt {
    path: CString,
    dir: bool,
}

/// Remove the file (or, with `dir`, the empty directory) `path`.
///
/// # Cancel safety
///
/// A dropped unlink may still happen.
pub fn unlink_at(driver: &Handle, path: CString, dir: bool) -> OpFuture<UnlinkAt> {
    OpFuture::new(driver, UnlinkAt { path, dir })
}

// SAFETY: its entry points only into the path it owns and names no fd.
unsafe impl Op for UnlinkAt {
    type Output = io::Result<()>;
    const KIND: OpKind = OpKind::UnlinkAt;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let flags = if self.dir { libc::AT_REMOVEDIR } else { 0 };
        opcode::UnlinkAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .flags(flags)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let flags = if self.dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(CWD, self.path.as_c_str(), flags)?;
        Ok(0)
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        res.map(drop)
    }
    fn uring_native(&self, features: &Features) -> bool {
        features.unlinkat
    }
}

/// `mkdirat(AT_FDCWD, path, mode)`.
#[derive(Debug)]
pub struct MkdirAt {
    path: CString,
    mode: u32,
}

/// Create the directory `path` with permission bits `mode` (before the
/// umask).
///
/// # Cancel safety
///
/// A dropped mkdir may still happen.
pub fn mkdir_at(driver: &Handle, path: CString, mode: u32) -> OpFuture<MkdirAt> {
    OpFuture::new(driver, MkdirAt { path, mode })
}

// SAFETY: its entry points only into the path it owns and names no fd.
unsafe impl Op for MkdirAt {
    type Output = io::Result<()>;
    const KIND: OpKind = OpKind::MkdirAt;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        opcode::MkDirAt::new(types::Fd(libc::AT_FDCWD), self.path.as_ptr())
            .mode(self.mode)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }
    fn attempt(&mut self) -> io::Result<usize> {
        rustix::fs::mkdirat(CWD, self.path.as_c_str(), Mode::from_raw_mode(self.mode))?;
        Ok(0)
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        res.map(drop)
    }
    fn uring_native(&self, features: &Features) -> bool {
        features.mkdirat
    }
}

impl super::file::KeepAlive for Statx {
    fn keep(&mut self, owner: Arc<OwnedFd>) {
        self.owner = Some(owner);
    }
}
