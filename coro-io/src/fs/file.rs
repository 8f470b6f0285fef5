//! [`File`]: positional and sequential file I/O through the driver.
//!
//! io_uring runs the reads and writes natively; the epoll driver runs them
//! on the blocking pool (regular files are always "ready" for epoll, so
//! readiness cannot help).

use std::fmt;
use std::io::{self, SeekFrom};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncSeek, AsyncWrite};

use super::{Metadata, OpenOptions};
use crate::buf::{BufResult, IoBuf, IoBufMut, Slice};
use crate::driver::Handle;
use crate::op::{self, OpFuture, ReadAt, WriteAt};
use crate::scheduler::IoScheduler;
use crate::wake_list::WakeList;

/// The most one sequential read asks the kernel for, and the least (reads
/// smaller than this fetch ahead, so that small reads cost one op per
/// `READ_AHEAD` bytes, not one each).
const READ_MAX: usize = 1 << 20;
const READ_AHEAD: usize = 16 * 1024;
/// The most one `poll_write` takes (the rest is the caller's next call).
const WRITE_MAX: usize = 1 << 20;

/// An open file whose reads and writes go through an [`IoScheduler`].
///
/// Two ways to do I/O, which can be mixed:
///
/// - positional, with owned buffers: [`read_at`](File::read_at),
///   [`write_at`](File::write_at) (no cursor, no copy, any number at once
///   through `&self`);
/// - sequential, through the `futures_io` traits [`AsyncRead`],
///   [`AsyncWrite`] and [`AsyncSeek`] on a cursor the `File` keeps (so
///   `futures::io::{AsyncReadExt, AsyncWriteExt, BufReader, copy}` work).
///   Writes are write-behind, as in `tokio::fs::File`: `poll_write` copies
///   the bytes and starts the write, and its outcome is reported by the
///   next call; `flush` or
///   `close` (of `futures::io::AsyncWriteExt`) waits for it. Dropping a
///   `File` with a write in flight lets that write finish in the
///   background, but nobody learns whether it succeeded: flush first.
///   After a write to a file opened for appending, the cursor is at the
///   end of the file, as std's is.
///
/// The cursor is the `File`'s own: it starts where the fd's offset was
/// (0 for a file just opened; [`from_std`](File::from_std) keeps the std
/// file's), and every op names its offset, so the kernel's offset, which
/// a dup of the fd or a child that inherits it shares, stays where it
/// was. [`into_std`](File::into_std) hands the file back with the kernel's
/// offset set to the cursor. tokio's `File` moves the kernel's offset as
/// it goes.
///
/// A file without a position (a FIFO, a terminal, a socket: `lseek`
/// fails with `ESPIPE`) reads only what each read asks for, and a seek
/// fails with `ESPIPE`, as std's; bytes it received for a dropped read
/// are the next read's. As with tokio's `File`, one sequential op runs at
/// a time: on such a file a write waits for a dropped read that is still
/// waiting for input, and a read for a write the peer does not take
/// (read and write a terminal or socket from two tasks through two
/// handles instead).
///
/// The file is opened close-on-exec; it is closed when the `File` and
/// every op still using it are gone.
///
/// # Examples
///
/// ```
/// use coro_io::{IoScheduler, fs::File};
///
/// let sched = IoScheduler::new(Default::default())?;
/// let path = std::env::temp_dir().join(format!("coro-io-doc-{}", std::process::id()));
/// let s = sched.clone();
/// let p = path.clone();
/// let got = coro_core::sync_wait(sched.spawn(async move {
///     let f = File::create(&s, &p).await?;
///     let (res, _) = f.write_at(b"hello world".as_slice(), 0).await;
///     res?;
///     f.sync_all().await?;
///     let (res, buf) = f.read_at(Vec::with_capacity(5), 6).await;
///     res?;
///     std::io::Result::Ok(buf)
/// })).unwrap()?;
/// assert_eq!(got, b"world");
/// std::fs::remove_file(path)?;
/// # std::io::Result::Ok(())
/// ```
///
/// Sequentially, with the `futures` extension traits:
///
/// ```
/// use coro_io::fs::File;
/// use futures::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
///
/// let sched = coro_io::IoScheduler::new(Default::default())?;
/// let path = std::env::temp_dir().join(format!("coro-io-seq-doc-{}", std::process::id()));
/// let (s, p) = (sched.clone(), path.clone());
/// let lines = coro_core::sync_wait(sched.spawn(async move {
///     let mut f = File::create(&s, &p).await?;
///     f.write_all(b"one\ntwo\n").await?;
///     f.close().await?;
///     let mut lines = Vec::new();
///     let mut r = BufReader::new(File::open(&s, &p).await?);
///     let mut line = String::new();
///     while r.read_line(&mut line).await? > 0 {
///         lines.push(std::mem::take(&mut line));
///     }
///     std::io::Result::Ok(lines)
/// }))??;
/// assert_eq!(lines, ["one\n", "two\n"]);
/// std::fs::remove_file(path)?;
/// # std::io::Result::Ok(())
/// ```
pub struct File {
    fd: Arc<OwnedFd>,
    driver: Handle,
    /// Where a write still in flight at drop is finished.
    sched: IoScheduler,
    /// Behind a lock for the `&self` methods that must wait for a write
    /// in flight (`sync_all`, `set_len`); the `&mut self` paths reach it
    /// without locking (`Mutex::get_mut`).
    seq: Mutex<Seq>,
}

/// The sequential-I/O state: the cursor, read-ahead, the op in flight.
struct Seq {
    /// The file offset where the next sequential op starts (read-ahead
    /// bytes not yet handed out lie just before it).
    pos: u64,
    /// Opened with `O_APPEND`: the kernel writes at the end, whatever the
    /// cursor says.
    append: bool,
    /// The file has no position (`lseek` says `ESPIPE`: a FIFO, a
    /// terminal, a socket). Bytes read from it cannot be read again, so
    /// it reads no more than asked (no read-ahead to lose), keeps what a
    /// dropped read received for the next read (a write or an `_at` op
    /// does not forget it), and cannot seek.
    stream: bool,
    /// An append write moved the cursor to the end of the file, whose
    /// size `pos` does not know yet (asked for when it matters).
    at_end: bool,
    /// Read-ahead: `ahead[head..]` are the bytes before `pos` not yet read.
    ahead: Vec<u8>,
    head: usize,
    busy: Busy,
    /// The tasks waiting on `busy` through `&self` (made on first use).
    waiters: Option<WakeList>,
    /// A write-behind that failed, until the sequential side (the next
    /// `write`, `read`, `seek`, `flush` or `close`) reported it; until
    /// then every `&self` method that comes after writes reports it too,
    /// so that none of them says the bytes are there (two tasks' `sync_all`
    /// on one file: the second would otherwise sync and answer `Ok`).
    write_failed: Option<io::Error>,
}

impl Seq {
    /// Finish the op in flight: a read leaves its bytes as read-ahead; a
    /// write is driven until all its bytes are written, and its failure
    /// kept in `write_failed`. Errors: a read-ahead's failure.
    fn poll_busy(
        &mut self,
        driver: &Handle,
        fd: &Arc<OwnedFd>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match &mut self.busy {
                Busy::Idle => return Poll::Ready(Ok(())),
                Busy::Read(op) => {
                    let (res, buf) = ready!(op.as_mut().poll(cx));
                    self.busy = Busy::Idle;
                    let n = res?;
                    self.pos += n as u64;
                    self.ahead = buf;
                    self.head = 0;
                    return Poll::Ready(Ok(()));
                }
                Busy::Write(op, base) => {
                    let base = *base;
                    let (res, mut rest) = ready!(op.as_mut().poll(cx));
                    self.busy = Busy::Idle;
                    let res = match res {
                        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
                        r => r,
                    };
                    match res {
                        Ok(n) => rest.advance(n),
                        Err(e) => {
                            // The cursor moved past these bytes when they
                            // were accepted: back to where writing stopped.
                            if !self.append {
                                self.pos = base + rest.begin() as u64;
                            }
                            self.write_failed = Some(e);
                            return Poll::Ready(Ok(()));
                        }
                    }
                    if rest.bytes_init() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    // A short write: the rest goes right after it.
                    self.start_write(driver, fd, rest, base);
                }
            }
        }
    }

    /// Write what is left of `bytes`, whose first byte belongs at `base`.
    fn start_write(
        &mut self,
        driver: &Handle,
        fd: &Arc<OwnedFd>,
        bytes: Slice<Vec<u8>>,
        base: u64,
    ) {
        // (A file without a position at offset 0, as its reads.)
        let at = if self.stream {
            0
        } else {
            base + bytes.begin() as u64
        };
        let op = op::write_at(driver, fd.as_raw_fd(), bytes, at).keep_alive(fd.clone());
        self.busy = Busy::Write(Box::pin(op), base);
        self.at_end = self.append;
    }
}

enum Busy {
    Idle,
    Read(Pin<Box<OpFuture<ReadAt<Vec<u8>>>>>),
    /// A write-behind and the offset its buffer's first byte goes to.
    Write(Pin<Box<WriteOp>>, u64),
}

/// A sequential write: what is left of its buffer.
type WriteOp = OpFuture<WriteAt<Slice<Vec<u8>>>>;

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        let busy = match seq.busy {
            Busy::Idle => "idle",
            Busy::Read(_) => "reading",
            Busy::Write(..) => "writing",
        };
        f.debug_struct("File")
            .field("fd", &self.fd.as_raw_fd())
            .field("pos", &seq.pos)
            .field("busy", &busy)
            .finish_non_exhaustive()
    }
}

impl File {
    /// Open an existing file read-only.
    ///
    /// # Errors
    ///
    /// Whatever `open(2)` reports, naming the path.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped after the file was opened, it is closed.
    pub async fn open(sched: &IoScheduler, path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open_on(sched, path).await
    }

    /// Create (or truncate) a file for reading and writing.
    ///
    /// # Errors
    ///
    /// Whatever `open(2)` reports, naming the path.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the file may still be created, then closed.
    pub async fn create(sched: &IoScheduler, path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open_on(sched, path)
            .await
    }

    /// Wrap an already open std file. Its cursor starts at the std file's
    /// offset, as tokio's; a file opened for appending writes at its end.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use futures::io::AsyncWriteExt;
    ///
    /// let sched = coro_io::IoScheduler::new(Default::default())?;
    /// let path = std::env::temp_dir().join(format!("coro-io-from-std-{}", std::process::id()));
    /// let mut std_file = std::fs::File::create(&path)?;
    /// std_file.write_all(b"header\n")?;
    /// let s = sched.clone();
    /// let back = coro_core::sync_wait(sched.spawn(async move {
    ///     let mut f = coro_io::fs::File::from_std(&s, std_file);
    ///     f.write_all(b"body\n").await?;
    ///     f.into_std().await
    /// }))??;
    /// drop(back);
    /// assert_eq!(std::fs::read(&path)?, b"header\nbody\n");
    /// std::fs::remove_file(path)?;
    /// # std::io::Result::Ok(())
    /// ```
    pub fn from_std(sched: &IoScheduler, f: std::fs::File) -> File {
        let append =
            rustix::fs::fcntl_getfl(&f).is_ok_and(|fl| fl.contains(rustix::fs::OFlags::APPEND));
        File::from_fd(sched, OwnedFd::from(f), append)
    }

    /// A `File` of `fd`, its cursor at the fd's offset.
    pub(crate) fn from_fd(sched: &IoScheduler, fd: OwnedFd, append: bool) -> File {
        // Where the fd's offset is; `ESPIPE`: a file without a position
        // (and taken as one where the offset cannot be asked for at all,
        // an `O_PATH` fd: `into_std` then leaves it alone).
        let (pos, stream) = match rustix::fs::seek(&fd, rustix::fs::SeekFrom::Current(0)) {
            Ok(pos) => (pos, false),
            Err(_) => (0, true),
        };
        File {
            fd: Arc::new(fd),
            driver: sched.driver().clone(),
            sched: sched.clone(),
            seq: Mutex::new(Seq {
                pos,
                append,
                stream,
                at_end: false,
                ahead: Vec::new(),
                head: 0,
                busy: Busy::Idle,
                waiters: None,
                write_failed: None,
            }),
        }
    }

    /// Read into `buf` (from its start, up to its capacity) at `offset`.
    /// `Ok(0)` at end of file. Does not move the sequential cursor. A
    /// sequential write still in flight is waited for first, so that the
    /// read sees the bytes `write_all` took.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an offset above `i64::MAX` (a file's largest);
    /// the failure of that sequential write, or of one that failed before
    /// and that the sequential side (`write`, `flush`, ...) has not
    /// reported yet (nothing is read then); what `pread(2)` reports.
    ///
    /// # Cancel safety
    ///
    /// A dropped read finishes in the background (the file stays open until
    /// it did); the data is discarded. Dropped while it waits for the
    /// sequential write, nothing is read (the write goes on).
    pub async fn read_at<B: IoBufMut>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        if let Err(e) = file_offset(offset) {
            return (Err(e), buf);
        }
        if let Err(e) = self.settle(false).await {
            return (Err(e), buf);
        }
        op::read_at(&self.driver, self.fd.as_raw_fd(), buf, offset)
            .keep_alive(self.fd.clone())
            .await
    }

    /// Write the initialised bytes of `buf` at `offset`; may write fewer.
    /// Does not move the sequential cursor. It comes after the sequential
    /// op still in flight (a write is not overtaken; a read-ahead of the
    /// bytes it overwrites is forgotten, so sequential reads see them).
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an offset above `i64::MAX`; the failure of a
    /// sequential write still in flight, or of one not reported yet (see
    /// [`read_at`](Self::read_at); nothing is written then); what
    /// `pwrite(2)` reports.
    ///
    /// # Cancel safety
    ///
    /// A dropped write still completes in the background (a shutdown of
    /// the scheduler waits for it, at most 5 s), but nothing orders it
    /// before the file's later calls: await it where order matters.
    /// Dropped while it waits for the sequential op in flight, nothing is
    /// written (that op goes on).
    pub async fn write_at<B: IoBuf>(&self, buf: B, offset: u64) -> BufResult<usize, B> {
        if let Err(e) = file_offset(offset) {
            return (Err(e), buf);
        }
        if let Err(e) = self.settle(true).await {
            return (Err(e), buf);
        }
        self.forget_read_ahead(offset, offset.saturating_add(buf.bytes_init() as u64));
        op::write_at(&self.driver, self.fd.as_raw_fd(), buf, offset)
            .keep_alive(self.fd.clone())
            .await
    }

    /// Flush data and metadata to the device, after a sequential write
    /// still in flight (as tokio's: `write_all` then `sync_all` makes the
    /// bytes durable).
    ///
    /// # Errors
    ///
    /// The failure of that write, or of one not reported yet (see
    /// [`read_at`](Self::read_at); the `fsync` is then not made: two tasks'
    /// `sync_all` after a failed write both fail); whatever `fsync(2)`
    /// reports.
    ///
    /// # Cancel safety
    ///
    /// Dropped while it waits for the write in flight, nothing is synced
    /// (the write goes on); dropped after, the sync still completes in the
    /// background (not ordered before the file's later calls).
    pub async fn sync_all(&self) -> io::Result<()> {
        self.settle(false).await?;
        op::fsync(&self.driver, self.fd.as_raw_fd())
            .keep_alive(self.fd.clone())
            .await
    }

    /// What `statx(2)` says about the open file (a sequential write in
    /// flight is not waited for: `flush` first).
    ///
    /// # Errors
    ///
    /// Whatever `statx` reports.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        op::statx_fd(&self.driver, self.fd.as_raw_fd())
            .keep_alive(self.fd.clone())
            .await
    }

    /// Truncate or extend the file to `len` bytes (`ftruncate(2)`, on the
    /// blocking pool), after a sequential write still in flight (as
    /// tokio's). The cursor does not move.
    ///
    /// # Errors
    ///
    /// The failure of that write, or of one not reported yet (see
    /// [`read_at`](Self::read_at)); whatever `ftruncate` reports
    /// (`InvalidInput` for a file not open for writing).
    ///
    /// # Cancel safety
    ///
    /// Dropped while it waits for the write in flight, nothing is
    /// truncated (the write goes on); dropped after, the `set_len` still
    /// completes in the background (not ordered before the file's later
    /// calls: a `write_at` made after it may land first).
    pub async fn set_len(&self, len: u64) -> io::Result<()> {
        self.settle(true).await?;
        // Bytes cut off are not read from the read-ahead either.
        self.forget_read_ahead(len, u64::MAX);
        let fd = self.fd.clone();
        crate::blocking::spawn_blocking(move || rustix::fs::ftruncate(&*fd, len))
            .await
            .map_err(io::Error::from)?
            .map_err(io::Error::from)
    }

    /// Give the file back as a std file once the op in flight is done (a
    /// write-behind finished, its failure reported; on a file without a
    /// position also a dropped read still waiting for input), with the
    /// kernel's offset at this `File`'s cursor: the std file goes on where
    /// this one stopped, as tokio's `into_std`. Read-ahead is dropped; on a
    /// file without a position that is what a dropped read had received
    /// (read it first).
    ///
    /// # Errors
    ///
    /// The failure of the write in flight, or of one not reported yet
    /// (the file is then closed: `flush` first to keep it); `lseek`'s;
    /// `dup`'s, when a dropped positional op still holds the file (it is
    /// then handed back as a duplicate sharing the offset, and the
    /// original fd is closed when that op ends, which releases the
    /// process's POSIX record locks (`fcntl`) on the file, also those
    /// taken through the duplicate).
    ///
    /// # Cancel safety
    ///
    /// Dropped, the `File` is dropped (a write in flight still finishes).
    pub async fn into_std(mut self) -> io::Result<std::fs::File> {
        std::future::poll_fn(|cx| self.poll_busy(cx)).await?;
        self.resolve_end()?;
        let pos = self.logical_pos();
        let stream = self.s().stream;
        let fd = self.fd.clone();
        // Nothing in flight: the drop lets go of its clone and no more.
        drop(self);
        let fd = Arc::try_unwrap(fd).or_else(|shared| shared.try_clone())?;
        if !stream {
            rustix::fs::seek(&fd, rustix::fs::SeekFrom::Start(pos))?;
        }
        Ok(fd.into())
    }

    /// The sequential state, without locking (`&mut self`).
    fn s(&mut self) -> &mut Seq {
        self.seq.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    /// The sequential side waits for the op in flight: a write's failure
    /// (this one's or an earlier one's) is reported here, once; a
    /// read-ahead's only to a read (`for_read`: a write or seek after a
    /// dropped read is not that read's to fail).
    fn poll_busy_for(&mut self, cx: &mut Context<'_>, for_read: bool) -> Poll<io::Result<()>> {
        let File {
            fd, driver, seq, ..
        } = self;
        let seq = seq.get_mut().unwrap_or_else(PoisonError::into_inner);
        let read = ready!(seq.poll_busy(driver, fd, cx));
        if let Some(e) = seq.write_failed.take() {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(if for_read { read } else { Ok(()) })
    }

    fn poll_busy(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_busy_for(cx, false)
    }

    /// Write what is left of `bytes`, whose first byte belongs at `base`.
    fn start_write(&mut self, bytes: Slice<Vec<u8>>, base: u64) {
        let File {
            fd, driver, seq, ..
        } = self;
        let seq = seq.get_mut().unwrap_or_else(PoisonError::into_inner);
        seq.start_write(driver, fd, bytes, base);
    }

    /// Wait for a sequential write in flight and report its failure (and
    /// that of one that failed before, until the sequential side reported
    /// it): for the `&self` methods that must come after it, as tokio's
    /// do, but to every one of them, not only the first. With
    /// `reads`, for a read-ahead in flight too (for those that change
    /// bytes it may be reading; its failure is for the next sequential
    /// read, which reads again).
    async fn settle(&self, reads: bool) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            // Declared before the lock: woken after it (see `Evicted`).
            let mut evicted = crate::wake_list::Evicted::default();
            let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
            let failed = |seq: &Seq| match &seq.write_failed {
                Some(e) => Err(copy_error(e)),
                None => Ok(()),
            };
            match seq.busy {
                Busy::Idle => return Poll::Ready(failed(&seq)),
                Busy::Read(_) if !reads => return Poll::Ready(failed(&seq)),
                Busy::Read(_) | Busy::Write(..) => {}
            }
            // Tasks sharing the file may wait on this op together: it is
            // polled with a waker that wakes them all.
            let list = seq.waiters.get_or_insert_with(WakeList::new);
            evicted.absorb(list.register(cx.waker()));
            let all = list.waker().clone();
            // A read-ahead's failure is for the next sequential read,
            // which reads again; a write's stays for every later waiter.
            let _ = ready!(crate::wake_list::poll_shared(cx, &all, |all| {
                seq.poll_busy(&self.driver, &self.fd, all)
            }));
            Poll::Ready(failed(&seq))
        })
        .await
    }

    /// Forget the read-ahead if it holds bytes of `start..end`, which are
    /// about to change (a read-ahead in flight was waited for).
    fn forget_read_ahead(&self, start: u64, end: u64) {
        let mut seq = self.seq.lock().unwrap_or_else(PoisonError::into_inner);
        if seq.stream {
            // Received bytes: offsets do not name them.
            return;
        }
        let first = seq.pos - (seq.ahead.len() - seq.head) as u64;
        if start < seq.pos && first < end {
            seq.pos = first;
            seq.ahead.clear();
            seq.head = 0;
        }
    }

    /// After an append write the cursor is the end of the file, as the
    /// kernel's is after `write(2)` on an `O_APPEND` file.
    fn resolve_end(&mut self) -> io::Result<()> {
        if std::mem::take(&mut self.s().at_end) && !self.s().stream {
            self.s().pos = op::file_size(&self.fd)?;
            self.s().ahead.clear();
            self.s().head = 0;
        }
        Ok(())
    }

    /// The cursor as the caller sees it (before any unread read-ahead).
    fn logical_pos(&mut self) -> u64 {
        self.s().pos - (self.s().ahead.len() - self.s().head) as u64
    }

    /// Forget the read-ahead, moving the cursor back to what was read
    /// (not on a file without a position: its bytes are kept for the next
    /// read).
    fn drop_read_ahead(&mut self) {
        if self.s().stream {
            return;
        }
        self.s().pos = self.logical_pos();
        self.s().ahead.clear();
        self.s().head = 0;
    }
}

impl AsyncRead for File {
    /// Cancel safety: the read-ahead stays in the `File`; a dropped read
    /// loses nothing.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if out.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            let seq = this.s();
            let ahead = &seq.ahead[seq.head..];
            if !ahead.is_empty() {
                let n = ahead.len().min(out.len());
                out[..n].copy_from_slice(&ahead[..n]);
                seq.head += n;
                return Poll::Ready(Ok(n));
            }
            let was_reading = matches!(this.s().busy, Busy::Read(_));
            ready!(this.poll_busy_for(cx, true))?;
            this.resolve_end()?;
            if was_reading {
                // The read just finished: it got bytes (handed out above on
                // the next turn) or none, the end of the file.
                if this.s().ahead.is_empty() {
                    return Poll::Ready(Ok(0));
                }
                continue;
            }
            let mut buf = std::mem::take(&mut this.s().ahead);
            buf.clear();
            // Ahead of the caller only where the bytes can be read again.
            // (A read fills its buffer's capacity.)
            if this.s().stream {
                let want = out.len().min(READ_MAX);
                if buf.capacity() != want {
                    buf = Vec::with_capacity(want);
                }
            } else {
                buf.reserve(out.len().clamp(READ_AHEAD, READ_MAX));
            }
            this.s().head = 0;
            // A file without a position is read at offset 0: a socket
            // refuses any other (`ESPIPE`); pipes and terminals ignore it.
            let pos = if this.s().stream { 0 } else { this.s().pos };
            let op = op::read_at(&this.driver, this.fd.as_raw_fd(), buf, pos)
                .keep_alive(this.fd.clone());
            this.s().busy = Busy::Read(Box::pin(op));
        }
    }
}

impl AsyncWrite for File {
    /// Write-behind: takes up to 1 MiB of `data` and starts writing it;
    /// that write's failure is reported by the next sequential call
    /// (`write`, `read`, `seek`, `flush`, `close`), and, until then, by
    /// every `&self` method that comes after writes (`sync_all`,
    /// `set_len`, `read_at`, `write_at`). A failure of a dropped read's
    /// read-ahead is not a write's or a seek's.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_busy(cx))?;
        this.drop_read_ahead();
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = data.len().min(WRITE_MAX);
        // The read-ahead's allocation, once it is dropped (a file without a
        // position keeps its bytes).
        let mut buf = if this.s().head == this.s().ahead.len() {
            this.s().head = 0;
            std::mem::take(&mut this.s().ahead)
        } else {
            Vec::new()
        };
        buf.clear();
        buf.extend_from_slice(&data[..n]);
        let at = this.s().pos;
        if !this.s().append {
            this.s().pos += n as u64;
        }
        this.start_write(Slice::new(buf, 0), at);
        // Start it now (a completion driver submits on the first poll); its
        // outcome is for the next call.
        if let Poll::Ready(Err(e)) = this.poll_busy(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.s().busy, Busy::Read(_)) {
            return Poll::Ready(Ok(()));
        }
        this.poll_busy(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for File {
    /// `SeekFrom::End` asks the kernel for the size (`fstat`). A seek
    /// waits for a write in flight first, and reports its failure.
    fn poll_seek(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        to: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let this = self.get_mut();
        if this.s().stream {
            return Poll::Ready(Err(io::Error::from_raw_os_error(libc::ESPIPE)));
        }
        ready!(this.poll_busy(cx))?;
        this.resolve_end()?;
        let (base, delta) = match to {
            SeekFrom::Start(n) => (n, 0),
            SeekFrom::Current(d) => (this.logical_pos(), d),
            SeekFrom::End(d) => (op::file_size(&this.fd)?, d),
        };
        // The kernel's offsets are signed (`off_t`): past i64::MAX is no
        // offset (and -1 would mean "the file position" to io_uring).
        let new = match base.checked_add_signed(delta) {
            Some(new) if i64::try_from(new).is_ok() => new,
            _ => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("seek to {base} {delta:+}: outside 0..=i64::MAX"),
                )));
            }
        };
        this.drop_read_ahead();
        this.s().pos = new;
        Poll::Ready(Ok(new))
    }
}

impl Drop for File {
    /// A write-behind still in flight is finished by a detached task (the
    /// bytes were accepted: dropping the op could leave them unwritten, or
    /// a short write's rest); its outcome goes unreported. The
    /// scheduler's shutdown waits for it (at most 5 s, see
    /// [`IoScheduler::spawn_lingering`]), also for a `File` dropped while
    /// the shutdown lingers. Dropped once its clean-up has begun, the
    /// write in flight still lands (the clean-up waits for it as for any
    /// dropped write, bounded alike), but the rest of a short write is not
    /// written.
    fn drop(&mut self) {
        if !self.sched.takes_lingering() {
            // Nothing runs tasks any more (and a task refused here would
            // drop a `File` that lands here again).
            return;
        }
        if let Busy::Write(op, base) = std::mem::replace(&mut self.s().busy, Busy::Idle) {
            let (append, stream) = (self.s().append, self.s().stream);
            let mut rest = File {
                fd: self.fd.clone(),
                driver: self.driver.clone(),
                sched: self.sched.clone(),
                seq: Mutex::new(Seq {
                    pos: 0,
                    append,
                    // (The rest of a short write on a socket goes at
                    // offset 0 too.)
                    stream,
                    at_end: false,
                    ahead: Vec::new(),
                    head: 0,
                    busy: Busy::Write(op, base),
                    waiters: None,
                    write_failed: None,
                }),
            };
            // Lingering: the scheduler's shutdown lets it end first.
            self.sched.spawn_lingering(async move {
                let _ = std::future::poll_fn(|cx| rest.poll_busy(cx)).await;
            });
        }
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// An offset a file can have: a positioned op takes it as a signed 64-bit
/// number, and io_uring reads -1 (`u64::MAX`) as "at the file's cursor",
/// which would move the cursor a positioned op must leave alone.
fn file_offset(offset: u64) -> io::Result<i64> {
    i64::try_from(offset).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("file offset {offset} is above the largest a file can have (i64::MAX)"),
        )
    })
}

/// A copy of a kept error for one more caller (`io::Error` is not `Clone`):
/// the same OS error, or the same kind and message.
fn copy_error(e: &io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(e.kind(), e.to_string()),
    }
}
