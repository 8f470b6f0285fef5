//! read/write on any fd, positional file I/O, fsync, close.

use std::io;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::{opcode, types};

use super::{Op, OpFuture, OpKind, cvt, offered};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{Handle, Interest, Readiness};

/// `read(fd, buf)` at the fd's current position (pipes, sockets, ttys).
#[derive(Debug)]
pub struct Read<B> {
    fd: RawFd,
    buf: B,
}

/// Read into `buf` from a non-blocking pipe, socket or tty. `Ok(0)` is EOF.
///
/// # Cancel safety
///
/// See the [module docs](super): on io_uring read bytes may be lost.
pub fn read<B: IoBufMut>(driver: &Handle, fd: RawFd, buf: B) -> OpFuture<Read<B>> {
    OpFuture::new(driver, Read { fd, buf })
}

// SAFETY: its entry points into the buffer it owns (stable heap memory, `bytes_total` long).
unsafe impl<B: IoBufMut> Op for Read<B> {
    type Output = BufResult<usize, B>;
    const KIND: OpKind = OpKind::Recv;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let len = super::entry_len(self.buf.bytes_total());
        opcode::Read::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len)
            .offset(u64::MAX)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, Interest::Read)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let len = self.buf.bytes_total();
        // SAFETY: the buffer is valid for `len` bytes of writes; the fd
        // stays open while the op lives (`Op` contract).
        unsafe { super::sys::read(self.fd, self.buf.stable_mut_ptr(), len) }
    }
    fn complete(mut self, res: io::Result<usize>) -> Self::Output {
        if let Ok(n) = res {
            // SAFETY: the kernel initialised the first n bytes.
            unsafe { self.buf.set_init(n) };
        }
        (res, self.buf)
    }
}

/// `write(fd, buf)` at the fd's current position.
#[derive(Debug)]
pub struct Write<B> {
    fd: RawFd,
    buf: B,
}

/// Write the initialised bytes of `buf` to a non-blocking pipe, socket or tty.
///
/// # Cancel safety
///
/// On io_uring a dropped write may still have written.
pub fn write<B: IoBuf>(driver: &Handle, fd: RawFd, buf: B) -> OpFuture<Write<B>> {
    OpFuture::new(driver, Write { fd, buf })
}

// SAFETY: its entry points into the buffer it owns (stable heap memory, `bytes_init` long).
unsafe impl<B: IoBuf> Op for Write<B> {
    type Output = BufResult<usize, B>;
    const KIND: OpKind = OpKind::Send;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let len = super::entry_len(offered(self.buf.bytes_init()));
        opcode::Write::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .offset(u64::MAX)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, Interest::Write)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let len = offered(self.buf.bytes_init());
        // SAFETY: the buffer is valid for `len` bytes of reads; the fd
        // stays open while the op lives (`Op` contract).
        unsafe { super::sys::write(self.fd, self.buf.stable_ptr(), len) }
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        (res, self.buf)
    }
}

/// `pread(fd, buf, offset)` (regular files).
#[derive(Debug)]
pub struct ReadAt<B> {
    fd: RawFd,
    buf: B,
    offset: u64,
    owner: Option<Arc<OwnedFd>>,
}

/// Read into `buf` at `offset` of a regular file. epoll: on the blocking pool.
///
/// # Cancel safety
///
/// No file state changes. A dropped read that already started runs to
/// completion in the background (the bytes are discarded); on the
/// blocking pool (epoll) one whose job had not started yet never runs,
/// as the caller may close `fd` once the future is gone (one dropped just
/// as its job starts may still read `fd`). [`crate::fs::File`] keeps its
/// file open for its ops instead.
pub fn read_at<B: IoBufMut>(
    driver: &Handle,
    fd: RawFd,
    buf: B,
    offset: u64,
) -> OpFuture<ReadAt<B>> {
    OpFuture::new(
        driver,
        ReadAt {
            fd,
            buf,
            offset,
            owner: None,
        },
    )
}

// SAFETY: its entry points into the buffer it owns; it keeps the file open (`keep_alive`).
unsafe impl<B: IoBufMut> Op for ReadAt<B> {
    type Output = BufResult<usize, B>;
    const KIND: OpKind = OpKind::ReadAt;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let len = super::entry_len(self.buf.bytes_total());
        opcode::Read::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len)
            .offset(self.offset)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }
    fn skip_if_dropped(&self) -> bool {
        self.owner.is_none()
    }
    fn uring_native(&self, _: &crate::driver::probe::Features) -> bool {
        // io_uring reads an offset of -1 as "at the cursor": one above
        // `i64::MAX` goes the blocking way, which refuses it.
        i64::try_from(self.offset).is_ok()
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let len = self.buf.bytes_total();
        let off =
            i64::try_from(self.offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the buffer is valid for `len` bytes of writes.
        let r = cvt(unsafe { libc::pread(self.fd, self.buf.stable_mut_ptr().cast(), len, off) });
        if !unseekable(&r) {
            return r;
        }
        // SAFETY: as for `pread`.
        cvt(unsafe { libc::read(self.fd, self.buf.stable_mut_ptr().cast(), len) })
    }
    fn complete(mut self, res: io::Result<usize>) -> Self::Output {
        if let Ok(n) = res {
            // SAFETY: the kernel initialised the first n bytes.
            unsafe { self.buf.set_init(n) };
        }
        (res, self.buf)
    }
}

/// Whether a positioned read or write failed because the file has no
/// position (a FIFO, a pipe, a terminal: `/dev/stdin` in a pipeline). Such
/// a file is read and written in sequence instead, the offset ignored, as
/// io_uring's read and write do there (and std's `fs::read`), so both
/// drivers see the same file.
fn unseekable(r: &io::Result<usize>) -> bool {
    matches!(r, Err(e) if e.raw_os_error() == Some(libc::ESPIPE))
}

/// `pwrite(fd, buf, offset)` (regular files).
#[derive(Debug)]
pub struct WriteAt<B> {
    fd: RawFd,
    buf: B,
    offset: u64,
    owner: Option<Arc<OwnedFd>>,
}

/// Write `buf` at `offset` of a regular file. epoll: on the blocking pool.
///
/// # Cancel safety
///
/// A dropped write that already started runs to completion in the
/// background, so it may have written; on the blocking pool (epoll) one
/// whose job had not started yet never runs, as the caller may close `fd`
/// once the future is gone (one dropped just as its job starts may still
/// write to `fd`: keep it open a moment, or use [`crate::fs::File`],
/// which keeps its file open for its ops).
pub fn write_at<B: IoBuf>(driver: &Handle, fd: RawFd, buf: B, offset: u64) -> OpFuture<WriteAt<B>> {
    OpFuture::new(
        driver,
        WriteAt {
            fd,
            buf,
            offset,
            owner: None,
        },
    )
}

// SAFETY: its entry points into the buffer it owns; it keeps the file open (`keep_alive`).
unsafe impl<B: IoBuf> Op for WriteAt<B> {
    type Output = BufResult<usize, B>;
    const KIND: OpKind = OpKind::WriteAt;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let len = super::entry_len(self.buf.bytes_init());
        opcode::Write::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .offset(self.offset)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }
    fn skip_if_dropped(&self) -> bool {
        self.owner.is_none()
    }
    fn finish_if_dropped(&self) -> bool {
        // A `File`'s write (its owner keeps the file open): the bytes
        // were handed over, so they are written, as on the blocking pool.
        self.owner.is_some()
    }
    fn uring_native(&self, _: &crate::driver::probe::Features) -> bool {
        // io_uring reads an offset of -1 as "at the cursor": one above
        // `i64::MAX` goes the blocking way, which refuses it.
        i64::try_from(self.offset).is_ok()
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let len = self.buf.bytes_init();
        let off =
            i64::try_from(self.offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the buffer is valid for `len` bytes of reads.
        let r = cvt(unsafe { libc::pwrite(self.fd, self.buf.stable_ptr().cast(), len, off) });
        if !unseekable(&r) {
            return r;
        }
        // SAFETY: as for `pwrite`.
        cvt(unsafe { libc::write(self.fd, self.buf.stable_ptr().cast(), len) })
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        (res, self.buf)
    }
}

/// `fsync(fd)`.
#[derive(Debug)]
pub struct Fsync {
    fd: RawFd,
    owner: Option<Arc<OwnedFd>>,
}

/// Flush a file's data and metadata to the device. epoll: on the blocking pool.
///
/// # Cancel safety
///
/// A dropped fsync that already started runs to completion in the
/// background; on the blocking pool (epoll) one whose job had not started
/// yet never runs (as for [`write_at`]).
pub fn fsync(driver: &Handle, fd: RawFd) -> OpFuture<Fsync> {
    OpFuture::new(driver, Fsync { fd, owner: None })
}

// SAFETY: its entry points into no memory; it keeps the file open (`keep_alive`).
unsafe impl Op for Fsync {
    type Output = io::Result<()>;
    const KIND: OpKind = OpKind::Fsync;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        opcode::Fsync::new(types::Fd(self.fd)).build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Blocking
    }
    fn skip_if_dropped(&self) -> bool {
        self.owner.is_none()
    }
    fn finish_if_dropped(&self) -> bool {
        // A `File`'s sync, as its writes (see `WriteAt`).
        self.owner.is_some()
    }
    fn attempt(&mut self) -> io::Result<usize> {
        // SAFETY: fsync on a raw fd has no memory-safety preconditions.
        cvt(unsafe { libc::fsync(self.fd) } as isize)
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        res.map(|_| ())
    }
}

/// `close(fd)`.
#[derive(Debug)]
pub struct Close {
    /// Ours until the kernel or `attempt` takes it.
    fd: Option<OwnedFd>,
    raw: RawFd,
    /// An io_uring entry was built: once its completion comes, the kernel
    /// has taken the fd, whatever the result says.
    submitted: bool,
}

/// Close `fd` through the driver (drops its registration first).
///
/// The fd is closed exactly once whatever happens: after the scheduler
/// shut down (the driver refuses new ops) it is closed right here, and an
/// `EINTR` from the kernel (which on Linux has closed the fd all the same)
/// is a success, never a reason to close the number again.
///
/// # Cancel safety
///
/// If dropped before it was first polled, the fd is closed synchronously;
/// after that, it is closed exactly once either way. A close cannot be
/// called off: [`OpFuture::cancel`] does nothing to it.
pub fn close(driver: &Handle, fd: OwnedFd) -> OpFuture<Close> {
    use std::os::fd::AsRawFd;
    let raw = fd.as_raw_fd();
    // Now, not at the first poll: a future dropped unpolled closes the fd
    // itself, and a registration left behind would make the driver take
    // the next file with that number for one it already watches (on
    // epoll, that file's first wait would never end).
    driver.release_fd(raw);
    OpFuture::new(
        driver,
        Close {
            fd: Some(fd),
            raw,
            submitted: false,
        },
    )
}

// SAFETY: its entry points into no memory and names the fd it owns.
unsafe impl Op for Close {
    type Output = io::Result<()>;
    const KIND: OpKind = OpKind::Close;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        // The fd stays owned here until the kernel's completion says it took
        // it (`complete`/`orphaned`): an entry that never reached the kernel
        // (its future dropped while staged) closes it on drop instead.
        self.submitted = true;
        opcode::Close::new(types::Fd(self.raw)).build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Now
    }
    fn attempt(&mut self) -> io::Result<usize> {
        match self.fd.take() {
            // SAFETY: we own this fd; close it exactly once.
            Some(fd) => cvt(unsafe { libc::close(fd.into_raw_fd()) } as isize),
            None => Ok(0),
        }
    }
    fn complete(mut self, res: io::Result<usize>) -> Self::Output {
        let res = match self.fd.take() {
            // The kernel consumed the fd, whatever it reports (close never
            // leaves it open): forget it rather than close a reused number.
            Some(fd) if self.submitted => {
                let _ = fd.into_raw_fd();
                res
            }
            // The op never ran (the driver is shut down, or a fault was
            // injected before it started): the fd is still ours to close.
            Some(fd) => {
                // SAFETY: we own this fd; close it exactly once.
                cvt(unsafe { libc::close(fd.into_raw_fd()) } as isize)
            }
            None => res,
        };
        match res {
            // Linux releases the fd before it reports EINTR.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            r => r.map(|_| ()),
        }
    }
    fn orphaned(&mut self, _res: io::Result<usize>) {
        if let Some(fd) = self.fd.take() {
            let _ = fd.into_raw_fd();
        }
    }
    fn closes_fd(&self) -> Option<RawFd> {
        Some(self.raw)
    }
    /// A close whose future is dropped still runs, never cancelled: on a
    /// file with a flush step (FUSE, NFS) the kernel hands the close to a
    /// worker thread, and a cancel that reached it there would end it with
    /// `ECANCELED` and the fd still open, which nobody would then close
    /// (a `close(2)` of our own could not tell that result from a flush
    /// error after the fd was gone, and would close a reused number).
    /// Shutdown still cancels it after its grace (see `cancel_all`).
    fn finish_if_dropped(&self) -> bool {
        true
    }
    const RESTARTABLE: bool = false;
}

/// Ops that can hold the file they run on open until they finish, so that a
/// dropped op running in the background never sees a closed (or reused) fd.
pub(crate) trait KeepAlive {
    fn keep(&mut self, owner: Arc<OwnedFd>);
}

impl<B> KeepAlive for ReadAt<B> {
    fn keep(&mut self, owner: Arc<OwnedFd>) {
        self.owner = Some(owner);
    }
}

impl<B> KeepAlive for WriteAt<B> {
    fn keep(&mut self, owner: Arc<OwnedFd>) {
        self.owner = Some(owner);
    }
}

impl KeepAlive for Fsync {
    fn keep(&mut self, owner: Arc<OwnedFd>) {
        self.owner = Some(owner);
    }
}

/// The size of the open file: `fstat`'s, or a block device's (whose
/// `st_size` is 0) from the kernel, as `lseek(SEEK_END)` gives std's
/// `seek`. Not by `lseek` here: that moves the offset this open file may
/// share with others (a file from `fs::File::from_std`).
pub(crate) fn file_size(fd: impl std::os::fd::AsFd) -> io::Result<u64> {
    let st = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::BlockDevice {
        return Ok(st.st_size as u64);
    }
    // `BLKGETSIZE64`: `_IOR(0x12, 114, size_t)`; the kernel writes a u64.
    const BLKGETSIZE64: rustix::ioctl::Opcode = rustix::ioctl::opcode::read::<usize>(0x12, 114);
    // SAFETY: `BLKGETSIZE64` is a getter that writes one u64 (the device's
    // size in bytes) through its pointer argument, which `Getter` provides.
    let size =
        unsafe { rustix::ioctl::ioctl(fd, rustix::ioctl::Getter::<BLKGETSIZE64, u64>::new()) }?;
    Ok(size)
}
