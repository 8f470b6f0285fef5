//! What every socket type is made of: the fd and its scheduler ([`Socket`]),
//! and for streams the owned-buffer I/O plus the buffered `futures_io`
//! adapter ([`Stream`]).

use coro_io::wake_list::{Evicted, WakeList, poll_shared};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use coro_io::buf::{BufResult, IoBuf, IoBufMut, Slice};
use coro_io::driver::RegisteredFd;
use coro_io::op::{self, OpFuture};
use coro_io::{IoScheduler, PollOp, PollStatus};
use socket2::SockRef;

/// An fd used with one scheduler's driver. Dropping it drops the driver's
/// registration first, then closes the fd ([`RegisteredFd`]; on io_uring
/// later if a held-up event loop has not submitted its receive yet).
pub(crate) struct Socket {
    /// `None` only in a stream whose socket a background flush took over
    /// (see `Stream`'s `Drop`), which is never used again.
    fd: Option<RegisteredFd>,
    sched: IoScheduler,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket").field("fd", &self.raw()).finish()
    }
}

impl Socket {
    pub(crate) fn new(sched: &IoScheduler, fd: OwnedFd) -> Socket {
        Socket {
            fd: Some(RegisteredFd::new(sched.driver(), fd)),
            sched: sched.clone(),
        }
    }

    /// The fd with its driver registration (and receive queue).
    pub(crate) fn registered(&self) -> &RegisteredFd {
        self.fd
            .as_ref()
            .expect("a socket holds its fd until it is consumed")
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.registered().as_fd()
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, RegisteredFd::raw)
    }

    pub(crate) fn sock_ref(&self) -> SockRef<'_> {
        SockRef::from(self.registered())
    }

    /// Move the fd (and its registration) into a new `Socket`, leaving
    /// this one empty.
    fn take(&mut self) -> Socket {
        Socket {
            fd: self.fd.take(),
            sched: self.sched.clone(),
        }
    }

    /// A retry loop's pause of `d` (then the syscall again), on the
    /// scheduler's timers; `Err` when the pause ended early because the
    /// scheduler can no longer wait: shut down (past the linger, during
    /// which pauses still work) or its loop gone. Its sleeps and polls then
    /// end at once, and a loop polled from outside it (another executor,
    /// `sync_wait` on a plain thread) would spin on `EAGAIN` until the peer
    /// made room, maybe for ever.
    pub(crate) async fn retry_pause(&self, d: Duration) -> io::Result<()> {
        let asked = self.sched.now();
        self.sched.sleep(d).await;
        let slept = self.sched.now().saturating_duration_since(asked) >= d;
        if !slept && self.sched.is_shutdown() {
            return Err(shut_down());
        }
        Ok(())
    }

    pub(crate) fn sched(&self) -> &IoScheduler {
        &self.sched
    }

    pub(crate) fn driver(&self) -> &coro_io::driver::Handle {
        self.sched.driver()
    }

    /// Give the fd up (unregistered from the driver).
    pub(crate) fn into_fd(mut self) -> OwnedFd {
        self.fd
            .take()
            .expect("a socket holds its fd until it is consumed")
            .into_fd()
    }

    /// Close through the driver, reporting the error `close(2)` gives.
    pub(crate) async fn close(mut self) -> io::Result<()> {
        match self.fd.take() {
            Some(fd) => fd.close().await,
            None => Ok(()),
        }
    }

    pub(crate) async fn poll(&self, op: PollOp, timeout: Option<Duration>) -> PollStatus {
        self.sched.poll(self.fd(), op, timeout).await
    }
}

/// Largest chunk one `poll_write` takes into the stream's write buffer.
const WRITE_CHUNK: usize = 64 * 1024;
/// Read buffer of the `AsyncRead` adapter: at least this much per recv...
const READ_MIN: usize = 4 * 1024;
/// ...and at most this much.
const READ_MAX: usize = 64 * 1024;

enum ReadState {
    /// `buf[pos..]` is received and not yet handed out.
    Idle {
        buf: Vec<u8>,
        pos: usize,
    },
    Busy(OpFuture<op::Recv<Vec<u8>>>),
    /// The receive failed, and no read has reported it yet (it completed
    /// for a `poll` or `peek`, see `poll_adapter_recv`).
    Failed(io::Error),
}

enum WriteState {
    Idle(Vec<u8>),
    /// Accepted bytes still being sent.
    Busy(OpFuture<op::Send<Slice<Vec<u8>>>>),
    /// That send failed while a reader moved it on (`push_writes`): for
    /// the next write or flush to report.
    Failed(io::Error),
}

/// The largest write buffer an idle adapter keeps for its next write: a
/// connection that once wrote 64 KiB at a time (a large response through
/// hyper) would otherwise keep that much for its life. Larger ones are
/// freed after their send, when an allocation costs little next to the
/// copy and the send of that many bytes.
const WRITE_KEEP: usize = 16 * 1024;

impl WriteState {
    /// Idle with `buf` for the next write, or with none if it is large.
    fn idle(buf: Vec<u8>) -> WriteState {
        if buf.capacity() > WRITE_KEEP {
            return WriteState::Idle(Vec::new());
        }
        WriteState::Idle(buf)
    }
}

/// Most bytes a lease read without the receive queue holds (as a lease
/// from the queue: one 16 KiB provided buffer).
const LEASE_MAX: usize = 16 * 1024;

/// What [`Stream::take_adapter`] hands over.
#[cfg(feature = "tls")]
#[derive(Default)]
pub(crate) struct TakenAdapter {
    /// `buf[pos..]`: received, not handed out.
    pub(crate) unread: Option<(Vec<u8>, usize)>,
    pub(crate) recv: Option<OpFuture<op::Recv<Vec<u8>>>>,
    pub(crate) send: Option<OpFuture<op::Send<Slice<Vec<u8>>>>>,
    /// The error of a send that failed with nobody to report it yet.
    pub(crate) send_failed: Option<io::Error>,
    /// The same for a receive.
    pub(crate) recv_failed: Option<io::Error>,
}

/// The `futures_io` adapter's read side and write side, each under its own
/// lock (uncontended unless two tasks share one side), so that `&Stream`
/// reads and writes, and a reader and a writer task can share a stream
/// (its split halves). Two tasks may also share one side (`&TcpStream`
/// has the impls): each side's op is polled with a waker that wakes every
/// task waiting on it, since an op keeps one waker and the second task's
/// poll would otherwise leave the first asleep for good.
struct Adapter {
    rd: Mutex<ReadState>,
    wr: Mutex<WriteState>,
    rd_wake: WakeList,
    wr_wake: WakeList,
}

/// The error of coro-net's own waits once their scheduler shut down.
pub(crate) fn shut_down() -> io::Error {
    io::Error::other("the i/o scheduler was shut down")
}

/// Whether `fd` has bytes (or the end, or an error) to read right now.
fn readable_now(fd: &RegisteredFd) -> bool {
    use rustix::event::{PollFd, PollFlags};
    let mut fds = [PollFd::new(fd, PollFlags::IN | PollFlags::RDHUP)];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

/// A connected stream socket (TCP or Unix).
pub(crate) struct Stream {
    // Declared first: in-flight adapter ops are dropped before the fd closes.
    /// Made on the adapter's first use, boxed: a stream read and written
    /// with owned buffers only (a server's connections, as a rule) carries
    /// 16 bytes for it, not both sides' state, and every idle
    /// connection's task holds its stream.
    adapter: OnceLock<Box<Adapter>>,
    pub(crate) sock: Socket,
    /// A Unix stream socket (a short read may leave bytes: see
    /// `op::Recv::unix_stream`).
    unix: bool,
}

/// How long a dropped stream (or write half) goes on sending what its
/// `AsyncWrite` adapter accepted.
const DROP_FINISH: Duration = Duration::from_secs(10);

/// [`Splittable::shutdown_write_later`](crate::split::Splittable) for a
/// stream type whose [`Stream`] `inner` gives: a detached task sends what
/// the adapter accepted, then shuts the write side down (bounded by
/// [`DROP_FINISH`]).
pub(crate) fn shutdown_write_later<S: Send + Sync + 'static>(
    owner: std::sync::Arc<S>,
    inner: fn(&S) -> &Stream,
) -> bool {
    let sched = inner(&owner).sock.sched.clone();
    let s2 = sched.clone();
    // Lingering: a scheduler shutting down lets it end first.
    sched.spawn_lingering(async move {
        let stream = inner(&owner);
        if s2
            .timeout(DROP_FINISH, stream.shutdown_write())
            .await
            .is_err()
        {
            // Given up: the send still in flight goes now. Left in the
            // adapter, the stream's own drop would start a second bound
            // for it (the socket held twice as long as said).
            stream.drop_adapter_send();
        }
    })
}

impl Drop for Stream {
    /// A send of bytes the `AsyncWrite` adapter accepted may still be in
    /// flight (on io_uring the adapter writes behind: `poll_write` returns
    /// once the send is in the kernel; on epoll it keeps none in flight).
    /// `write_all` then drop, without a flush, is how tokio code ends a
    /// response (tokio's `write_all` returns once the
    /// kernel has every byte): a detached task finishes that send, then
    /// closes the socket, so the peer gets every accepted byte before the
    /// end. Bounded by [`DROP_FINISH`]: a peer that never reads must not
    /// keep the socket (and the scheduler, which the task holds) for good.
    /// A scheduler's shutdown waits for it (at most 5 s: see
    /// `IoScheduler::spawn_lingering`), also for a stream dropped while
    /// the shutdown lingers; not once its clean-up began.
    fn drop(&mut self) {
        let busy = self.adapter.get_mut().is_some_and(|a| {
            let wr = a.wr.get_mut().unwrap_or_else(|e| e.into_inner());
            matches!(wr, WriteState::Busy(_))
        });
        // (Checked first: a refused task would drop `rest` here again.)
        if !busy || self.sock.fd.is_none() || !self.sock.sched.takes_lingering() {
            return;
        }
        let rest = Stream {
            adapter: std::mem::take(&mut self.adapter),
            sock: self.sock.take(),
            unix: self.unix,
        };
        let sched = rest.sock.sched.clone();
        // Lingering: a scheduler shutting down (`#[coro::main]` returning
        // right after the drop) lets it end first, as the kernel would
        // have sent those bytes after a tokio program's exit.
        self.sock.sched.spawn_lingering(async move {
            let flush = std::future::poll_fn(|cx| rest.poll_flush(cx));
            let _ = sched.timeout(DROP_FINISH, flush).await;
            // Given up (or done): the send goes with the adapter before
            // the socket closes, and no new task takes it on.
            drop(rest.into_socket());
        });
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("fd", &self.sock.raw())
            .finish()
    }
}

impl Stream {
    /// A TCP stream.
    pub(crate) fn new(sock: Socket) -> Stream {
        Stream {
            adapter: OnceLock::new(),
            sock,
            unix: false,
        }
    }

    /// A Unix stream.
    pub(crate) fn new_unix(sock: Socket) -> Stream {
        Stream {
            adapter: OnceLock::new(),
            sock,
            unix: true,
        }
    }

    /// The receive op for this stream's kind of socket.
    fn recv_op<B: IoBufMut>(&self, buf: B) -> op::Recv<B> {
        if self.unix {
            op::Recv::unix_stream(self.sock.raw(), buf)
        } else {
            op::Recv::stream(self.sock.raw(), buf)
        }
    }

    fn adapter(&self) -> &Adapter {
        self.adapter.get_or_init(|| {
            Box::new(Adapter {
                rd: Mutex::new(ReadState::Idle {
                    buf: Vec::new(),
                    pos: 0,
                }),
                wr: Mutex::new(WriteState::Idle(Vec::new())),
                rd_wake: WakeList::new(),
                wr_wake: WakeList::new(),
            })
        })
    }

    /// Take what the `futures_io` adapter holds, for a layer that takes
    /// the stream over (TLS after a plaintext exchange, as STARTTLS does):
    /// bytes received and not handed out yet (the peer's first TLS bytes
    /// may be among them), a receive in flight, and a send in flight of
    /// bytes the adapter accepted. The adapter is left empty.
    #[cfg(feature = "tls")]
    pub(crate) fn take_adapter(&self) -> TakenAdapter {
        let mut taken = TakenAdapter::default();
        let Some(a) = self.adapter.get() else {
            return taken;
        };
        let idle = ReadState::Idle {
            buf: Vec::new(),
            pos: 0,
        };
        match std::mem::replace(&mut *lock(&a.rd), idle) {
            ReadState::Idle { buf, pos } if pos < buf.len() => taken.unread = Some((buf, pos)),
            ReadState::Idle { .. } => {}
            ReadState::Busy(f) => taken.recv = Some(f),
            ReadState::Failed(e) => taken.recv_failed = Some(e),
        }
        match std::mem::replace(&mut *lock(&a.wr), WriteState::Idle(Vec::new())) {
            WriteState::Busy(f) => taken.send = Some(f),
            // A send that failed while a reader moved it on: the new
            // owner's writes fail with it, as they would have here.
            WriteState::Failed(e) => taken.send_failed = Some(e),
            WriteState::Idle(_) => {}
        }
        taken
    }

    /// Send what the `AsyncWrite` adapter accepted, then close through the
    /// driver. (Inherent `close` shadows `AsyncWriteExt::close`, so it must
    /// not lose accepted bytes either.)
    pub(crate) async fn close(self) -> io::Result<()> {
        let flushed = std::future::poll_fn(|cx| self.poll_flush(cx)).await;
        let closed = self.into_socket().close().await;
        flushed.and(closed)
    }

    /// The socket alone (the adapter's in-flight ops are dropped first).
    pub(crate) fn into_socket(mut self) -> Socket {
        drop(self.adapter.take());
        self.sock.take()
    }

    // The hot paths borrow the socket's driver handle (no clone per op).
    pub(crate) async fn read<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        // An empty buffer reads nothing, at once, on every driver (a
        // zero-length `recv` of an empty socket would wait for data).
        if buf.bytes_total() == 0 {
            return (Ok(0), buf);
        }
        let fd = self.sock.registered();
        if fd.recv_queued() {
            if let Some(e) = injected_fault(op::OpKind::Recv) {
                return (Err(e), buf);
            }
            let res = std::future::poll_fn(|cx| fd.poll_recv_buf(cx, &mut buf, false)).await;
            return (res, buf);
        }
        if self.adapter_has_input() {
            return self.read_adapter(buf, None).await;
        }
        if fd.direct_io() {
            if let Some(e) = injected_fault(op::OpKind::Recv) {
                return (Err(e), buf);
            }
            // Unix stream reads stop short at passed fds (see `recv_op`).
            let drains = !self.unix;
            let res = std::future::poll_fn(|cx| fd.poll_read_direct(cx, &mut buf, drains)).await;
            return (res, buf);
        }
        let op = self.recv_op(buf);
        OpFuture::borrowed(self.sock.driver(), op).await
    }

    /// Whether the `AsyncRead` adapter holds bytes it read ahead (or an
    /// error for the next read).
    fn adapter_holds_bytes(&self) -> bool {
        self.adapter.get().is_some_and(|a| match &*lock(&a.rd) {
            ReadState::Idle { buf, pos } => *pos < buf.len(),
            ReadState::Busy(_) => false,
            ReadState::Failed(_) => true,
        })
    }

    /// Drop the `AsyncWrite` adapter's send in flight, if any (its bytes
    /// may not all have left).
    fn drop_adapter_send(&self) {
        let Some(a) = self.adapter.get() else {
            return;
        };
        let old = std::mem::replace(&mut *lock(&a.wr), WriteState::Idle(Vec::new()));
        // (Dropped after the lock: an op's drop may wake a task.)
        drop(old);
    }

    /// Whether the `AsyncRead` adapter has a receive in the kernel, which
    /// takes the bytes that arrive (io_uring; on epoll a receive makes its
    /// syscall only when polled, and the bytes wait in the socket).
    fn adapter_busy(&self) -> bool {
        !self.sock.registered().direct_io()
            && self
                .adapter
                .get()
                .is_some_and(|a| matches!(&*lock(&a.rd), ReadState::Busy(_)))
    }

    /// Wait until the `AsyncRead` adapter's receive in flight completed,
    /// keeping what it received (or its error) for the next read; `Ready`
    /// at once when it has none. Where that receive is in the kernel
    /// (io_uring without the receive queue) it takes the bytes that
    /// arrive, so the socket itself looks empty: `poll` and `peek` must
    /// wait for it, not for the socket.
    fn poll_adapter_recv(&self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(adapter) = self.adapter.get() else {
            return Poll::Ready(());
        };
        let mut evicted = Evicted::default();
        let mut rd = lock(&adapter.rd);
        let ReadState::Busy(fut) = &mut *rd else {
            return Poll::Ready(());
        };
        evicted.absorb(adapter.rd_wake.register(cx.waker()));
        let (res, buf) = ready!(poll_shared(cx, adapter.rd_wake.waker(), |rcx| Pin::new(
            &mut *fut
        )
        .poll(rcx)));
        *rd = match res {
            // (An end of stream leaves nothing to keep: the socket says it
            // again to the next read.)
            Ok(_) => ReadState::Idle { buf, pos: 0 },
            Err(e) => ReadState::Failed(e),
        };
        drop(rd);
        drop(evicted);
        Poll::Ready(())
    }

    /// Whether the `AsyncRead` adapter holds bytes it read ahead, or a
    /// read in flight: they come before the socket's. (With the driver's
    /// receive queue the adapter keeps nothing: the queue is its buffer.)
    fn adapter_has_input(&self) -> bool {
        self.adapter.get().is_some_and(|a| match &*lock(&a.rd) {
            ReadState::Idle { buf, pos } => *pos < buf.len(),
            ReadState::Busy(_) | ReadState::Failed(_) => true,
        })
    }

    /// A peek at the bytes the `AsyncRead` adapter read ahead (they come
    /// first): `None` when it holds none.
    fn peek_adapter<B: IoBufMut>(&self, buf: &mut B) -> Option<io::Result<usize>> {
        let adapter = self.adapter.get()?;
        match &*lock(&adapter.rd) {
            ReadState::Idle { buf: held, pos } if *pos < held.len() => {
                Some(Ok(coro_io::buf::fill(buf, &held[*pos..])))
            }
            // (The read after it reports the error itself.)
            ReadState::Failed(e) => Some(Err(match e.raw_os_error() {
                Some(errno) => io::Error::from_raw_os_error(errno),
                None => io::Error::new(e.kind(), e.to_string()),
            })),
            _ => None,
        }
    }

    /// An owned read served from the `AsyncRead` adapter (see
    /// [`adapter_has_input`](Self::adapter_has_input)): a `read_exact` of
    /// a header through the adapter, then `copy_bidirectional` (owned
    /// reads) lost the bytes the adapter had read behind the header.
    ///
    /// With a `timeout`, given up (`TimedOut`) at its end: losslessly,
    /// since the adapter keeps its receive in flight for the next read.
    async fn read_adapter<B: IoBufMut>(
        &self,
        mut buf: B,
        timeout: Option<Duration>,
    ) -> BufResult<usize, B> {
        let mut tmp = vec![0u8; buf.bytes_total().min(READ_MAX)];
        let mut deadline = timeout.map(|t| (t, self.sock.sched().sleep(t)));
        let res = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = self.poll_read(cx, &mut tmp) {
                return Poll::Ready(r);
            }
            let Some((t, sleep)) = deadline.as_mut() else {
                return Poll::Pending;
            };
            // Not before the read had its chance (see `coro_io::coop`).
            ready!(coro_io::coop::poll_proceed(cx));
            ready!(std::pin::Pin::new(sleep).poll(cx));
            Poll::Ready(Err(timed_out(*t)))
        })
        .await;
        match res {
            Ok(n) => (Ok(coro_io::buf::fill(&mut buf, &tmp[..n])), buf),
            Err(e) => (Err(e), buf),
        }
    }

    /// The next bytes received, without a copy where the driver keeps a
    /// receive queue; else read into a `Vec` of `max` (at least 1) bytes.
    pub(crate) async fn read_lease(&self, max: usize) -> io::Result<coro_io::buf::RecvLease> {
        let fd = self.sock.registered();
        if fd.recv_queued() {
            if let Some(e) = injected_fault(op::OpKind::Recv) {
                return Err(e);
            }
            return std::future::poll_fn(|cx| fd.poll_recv_lease(cx, max)).await;
        }
        // As the queue's leases: at most one provided buffer's worth (no
        // huge allocation per read, no capacity overflow).
        if self.adapter_has_input() {
            let (res, buf) = self
                .read_adapter(Vec::with_capacity(max.clamp(1, LEASE_MAX)), None)
                .await;
            return res.map(|_| buf.into());
        }
        let op = self.recv_op(Vec::with_capacity(max.clamp(1, LEASE_MAX)));
        let (res, buf) = OpFuture::borrowed(self.sock.driver(), op).await;
        res.map(|_| buf.into())
    }

    /// Receive without consuming (`MSG_PEEK`).
    pub(crate) async fn peek<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        if buf.bytes_total() == 0 {
            return (Ok(0), buf); // as `read`
        }
        let fd = self.sock.registered();
        if fd.recv_queued() {
            if !fd.recv_started() {
                return self.peek_socket(buf).await;
            }
            let res = std::future::poll_fn(|cx| fd.poll_recv_buf(cx, &mut buf, true)).await;
            return (res, buf);
        }
        // The adapter's receive in flight takes what arrives first (on
        // io_uring it is in the kernel): what it got comes first.
        if self.adapter_busy() {
            std::future::poll_fn(|cx| self.poll_adapter_recv(cx)).await;
        }
        if let Some(r) = self.peek_adapter(&mut buf) {
            return (r, buf);
        }
        let (res, buf) =
            op::recv_msg(self.sock.driver(), self.sock.raw(), buf, libc::MSG_PEEK).await;
        (res.map(|meta| meta.len), buf)
    }

    /// [`peek`](Self::peek) where the driver keeps a receive queue that no
    /// read has started yet: the socket still holds every byte, so peek
    /// there (`MSG_PEEK`), waiting with a readiness poll. Peeking through
    /// the queue would start its receive, which takes the bytes off the
    /// socket, where `into_std` or code that reads the fd itself would
    /// then miss them (as [`poll_socket`](Self::poll_socket) does not
    /// start it either). A read that starts the queue meanwhile (another
    /// task's) takes what arrives: the peek then looks at the queue (its
    /// readiness wait is bounded, 10 ms doubling to 1 s, so that it looks
    /// again even if that read's receive took the bytes its poll waited
    /// for).
    async fn peek_socket<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        use rustix::event::{PollFd, PollFlags};
        use rustix::net::RecvFlags;
        const LOOK_AGAIN: Duration = Duration::from_secs(1);
        let fd = self.sock.registered();
        let mut seen = Vec::new();
        let mut wait = Duration::from_millis(10);
        loop {
            // A pending socket error (a reset) would be taken by a peek,
            // which the kernel hands out once: the read after it would see
            // a clean end of the stream. The queue's receive keeps it for
            // the read (as for a peek after the queue started).
            let mut fds = [PollFd::new(fd, PollFlags::IN)];
            let zero = rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            let failed = matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
                && fds[0].revents().contains(PollFlags::ERR);
            if failed || fd.recv_started() {
                let res = std::future::poll_fn(|cx| fd.poll_recv_buf(cx, &mut buf, true)).await;
                return (res, buf);
            }
            // As much as `MSG_PEEK` into the caller's buffer would show:
            // what the socket holds (bytes that come after the count are
            // seen by the next peek), at least one byte (an empty buffer
            // would read as the end of the stream).
            let queued = rustix::io::ioctl_fionread(fd)
                .map_or(1 << 20, |n| usize::try_from(n).unwrap_or(usize::MAX));
            seen.clear();
            seen.reserve_exact(buf.bytes_total().min(queued).max(1));
            let flags = RecvFlags::PEEK | RecvFlags::DONTWAIT;
            match rustix::net::recv(fd, rustix::buffer::spare_capacity(&mut seen), flags) {
                Ok(_) => return (Ok(coro_io::buf::fill(&mut buf, &seen)), buf),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) if e == rustix::io::Errno::AGAIN => {}
                Err(e) => return (Err(e.into()), buf),
            }
            let ready = op::poll_fd(
                self.sock.driver(),
                self.sock.raw(),
                coro_io::driver::Interest::Read,
            );
            if let Ok(Err(e)) = self.sock.sched().timeout(wait, ready).await {
                return (Err(e), buf);
            }
            wait = (wait * 2).min(LOOK_AGAIN);
        }
    }

    /// Wait until the stream is ready for `op`. Where the driver keeps a
    /// receive queue, "readable" is the queue's answer: its receive takes
    /// arriving bytes off the socket, so a kernel poll would not see them
    /// (nor bytes an earlier short read left queued).
    pub(crate) async fn poll(&self, op: PollOp, timeout: Option<Duration>) -> PollStatus {
        // Bytes the `AsyncRead` adapter read ahead come first to any read:
        // readable now, whatever the socket holds.
        if op != PollOp::Write && self.adapter_holds_bytes() {
            return PollStatus::Event;
        }
        if op == PollOp::Write || !self.adapter_busy() {
            return self.poll_socket(op, timeout).await;
        }
        // The adapter's receive in flight ends the wait too: on io_uring
        // it is in the kernel and takes what arrives, so the socket itself
        // looks empty (a read returns what it got).
        let mut socket = std::pin::pin!(self.poll_socket(op, timeout));
        std::future::poll_fn(|cx| {
            if self.poll_adapter_recv(cx).is_ready() {
                return Poll::Ready(PollStatus::Event);
            }
            socket.as_mut().poll(cx)
        })
        .await
    }

    /// [`poll`](Self::poll) of the socket itself.
    async fn poll_socket(&self, op: PollOp, timeout: Option<Duration>) -> PollStatus {
        let fd = self.sock.registered();
        // Before any read went through the queue, the socket still holds
        // every byte: the kernel's answer is exact (and a poll does not
        // start the queue behind the back of code that reads the fd itself).
        if op == PollOp::Write || !fd.recv_started() {
            return self.sock.poll(op, timeout).await;
        }
        // A zero timeout asks "ready now?": the kernel's write answer is
        // taken now too (a submitted poll would lose to the due deadline).
        let write_wait = timeout.filter(|d| d.is_zero());
        let mut writable = std::pin::pin!(async {
            match op {
                PollOp::ReadWrite => self.sock.poll(PollOp::Write, write_wait).await,
                _ => std::future::pending().await,
            }
        });
        let mut deadline = std::pin::pin!(async {
            match timeout {
                Some(d) => self.sock.sched().sleep(d).await,
                None => std::future::pending().await,
            }
        });
        // The write side said "not now" (a zero timeout): the read side
        // still answers, at the deadline.
        let mut not_writable = false;
        std::future::poll_fn(|cx| {
            let mut one = [0u8; 1];
            // Data, the end of the stream or an error: a read returns at
            // once, which is what the kernel's POLLIN says too.
            if fd.poll_peek(cx, &mut one).is_ready() {
                return Poll::Ready(PollStatus::Event);
            }
            if !not_writable {
                match writable.as_mut().poll(cx) {
                    Poll::Ready(PollStatus::Timeout) => not_writable = true,
                    Poll::Ready(status) => return Poll::Ready(status),
                    Poll::Pending => {}
                }
            }
            // A spent budget made the checks above yield untried: the
            // deadline waits for the next poll (see `coro_io::coop`).
            ready!(coro_io::coop::poll_proceed(cx));
            ready!(deadline.as_mut().poll(cx));
            // Due (a zero timeout at once). Bytes the socket holds but the
            // queue has not received yet (its receive runs at the loop's
            // next turn) are readable too: a read gets them, as the
            // kernel's answer says (and `read_timeout`'s deadline checks).
            if readable_now(fd) {
                return Poll::Ready(PollStatus::Event);
            }
            Poll::Ready(PollStatus::Timeout)
        })
        .await
    }

    pub(crate) async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        // Checked here, not only inside: a future that finds nothing to do
        // still costs its poll on every write.
        if self.adapter.get().is_some() {
            if let Err(e) = self.flush_adapter().await {
                return (Err(e), buf);
            }
        }
        let fd = self.sock.registered();
        if fd.direct_io() {
            if let Some(e) = injected_fault(op::OpKind::Send) {
                return (Err(e), buf);
            }
            let bytes = coro_io::buf::init_bytes(&buf);
            let res = std::future::poll_fn(|cx| fd.poll_write_direct(cx, bytes)).await;
            return (res, buf);
        }
        OpFuture::borrowed(self.sock.driver(), op::Send::new(self.sock.raw(), buf)).await
    }

    /// Bytes the `AsyncWrite` adapter accepted go out before an owned
    /// write's (its docs promise them before any later write): finish its
    /// send first. Nothing to do for a stream that never used it.
    async fn flush_adapter(&self) -> io::Result<()> {
        if self.adapter.get().is_none() {
            return Ok(());
        }
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// `read` that gives up after `timeout` without losing data: at the
    /// deadline the receive is cancelled and its outcome awaited, so bytes
    /// the kernel delivered meanwhile are returned, not dropped.
    pub(crate) async fn read_timeout<B: IoBufMut>(
        &self,
        mut buf: B,
        timeout: Duration,
    ) -> BufResult<usize, B> {
        if buf.bytes_total() == 0 {
            return (Ok(0), buf); // as `read`
        }
        let fd = self.sock.registered();
        if fd.recv_queued() {
            if let Some(e) = injected_fault(op::OpKind::Recv) {
                return (Err(e), buf);
            }
            // Nothing is in flight between polls: giving up loses nothing.
            let mut deadline = std::pin::pin!(self.sock.sched().sleep(timeout));
            let res = std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = fd.poll_recv_buf(cx, &mut buf, false) {
                    return Poll::Ready(r);
                }
                // Not before the read had its chance (see `coro_io::coop`).
                ready!(coro_io::coop::poll_proceed(cx));
                ready!(deadline.as_mut().poll(cx));
                // Due. Bytes (or the end) the socket holds but the queue
                // has not received yet (its receive was armed by this very
                // read, or runs at the loop's next turn) are there: the
                // queue delivers them soon and wakes this read.
                if readable_now(fd) {
                    return Poll::Pending;
                }
                Poll::Ready(Err(timed_out(timeout)))
            })
            .await;
            return (res, buf);
        }
        if self.adapter_has_input() {
            // Bytes already read ahead (or a read of them in flight).
            return self.read_adapter(buf, Some(timeout)).await;
        }
        let mut recv = std::pin::pin!(OpFuture::new(self.sock.driver(), self.recv_op(buf)));
        let mut deadline = std::pin::pin!(self.sock.sched().sleep(timeout));
        let mut expired = false;
        let (res, buf) = std::future::poll_fn(|cx| {
            if let Poll::Ready(out) = recv.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            // Not before the receive had its chance (see `coro_io::coop`).
            ready!(coro_io::coop::poll_proceed(cx));
            if !expired && deadline.as_mut().poll(cx).is_ready() {
                expired = true;
                recv.as_mut().cancel();
                return recv.as_mut().poll(cx);
            }
            Poll::Pending
        })
        .await;
        match res {
            Err(e) if expired && e.raw_os_error() == Some(libc::ECANCELED) => {
                // The receive may never have run: on io_uring a cancel
                // takes back an entry still staged (a zero or past
                // deadline, on the loop's thread), where epoll tried the
                // read first. Bytes already there are the caller's: one
                // non-blocking try before giving up.
                let mut buf = buf;
                match self.recv_now(&mut buf) {
                    Ok(Some(n)) => (Ok(n), buf),
                    Ok(None) => (Err(timed_out(timeout)), buf),
                    Err(e) => (Err(e), buf),
                }
            }
            r => (r, buf),
        }
    }

    /// One non-blocking receive into `buf` (from its start): `None` when
    /// nothing is there (through a bounce buffer: this crate writes into
    /// an `IoBufMut` only with `coro_io::buf::fill`).
    fn recv_now<B: IoBufMut>(&self, buf: &mut B) -> io::Result<Option<usize>> {
        let mut tmp = vec![0u8; buf.bytes_total().min(READ_MAX)];
        match rustix::net::recv(
            self.sock.registered(),
            &mut tmp,
            rustix::net::RecvFlags::DONTWAIT,
        ) {
            Ok((n, _)) => Ok(Some(coro_io::buf::fill(buf, &tmp[..n]))),
            Err(e) if e == rustix::io::Errno::AGAIN => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Send all of `buf`. On epoll a hand-written future (one send loop,
    /// no op): an `async fn` holding both paths cost the echo server about
    /// 90 instructions a message in its state machine's set-up and drop.
    pub(crate) fn write_all<B: IoBuf>(
        &self,
        buf: B,
    ) -> WriteAll<'_, B, impl Future<Output = BufResult<(), B>> + '_> {
        if self.sock.registered().direct_io() {
            WriteAll::Direct {
                stream: self,
                buf: Some(buf),
                sent: 0,
                started: false,
            }
        } else {
            WriteAll::Op {
                fut: self.write_all_ops(buf),
            }
        }
    }

    /// `write_all` through send ops (io_uring), one after another.
    async fn write_all_ops<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let want = buf.bytes_init();
        let (res, buf) = self.write(buf).await;
        let n = match res {
            Ok(n) if n >= want => return (Ok(()), buf),
            Ok(0) if want > 0 => return (Err(write_zero()), buf),
            Ok(n) => n,
            Err(e) => return (Err(e), buf),
        };
        let mut rest = Slice::new(buf, n);
        while rest.bytes_init() > 0 {
            let (res, r) = self.write(rest).await;
            rest = r;
            match res {
                Ok(0) => return (Err(write_zero()), rest.into_inner()),
                Ok(n) => rest.advance(n),
                Err(e) => return (Err(e), rest.into_inner()),
            }
        }
        (Ok(()), rest.into_inner())
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            if let Some(a) = self.adapter.get() {
                if matches!(*lock(&a.wr), WriteState::Busy(_)) {
                    // Shutting the write side now would drop bytes the
                    // adapter accepted (their send would fail): say so.
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "bytes written through AsyncWrite are still being sent: \
                         flush (or close) before shutting the write side",
                    ));
                }
            }
        }
        self.sock.sock_ref().shutdown(how)
    }

    /// Shut the write side down once what the adapter accepted is sent.
    pub(crate) async fn shutdown_write(&self) -> io::Result<()> {
        self.flush_adapter().await?;
        self.shutdown(Shutdown::Write)
    }

    /// Bytes received and not handed out yet: by the `AsyncRead` adapter,
    /// or in the driver's receive queue.
    pub(crate) fn buffered_read(&self) -> usize {
        let adapter = match self.adapter.get().map(|a| lock(&a.rd)).as_deref() {
            Some(ReadState::Idle { buf, pos }) => buf.len() - pos,
            Some(ReadState::Busy(_) | ReadState::Failed(_)) | None => 0,
        };
        adapter + self.sock.registered().recv_buffered()
    }

    pub(crate) fn poll_read(
        &self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.push_writes(cx);
        if self.sock.registered().recv_queued() {
            // The driver's queue is the buffer (and keeps what a dropped
            // read left).
            return self.sock.registered().poll_recv(cx, out);
        }
        let adapter = self.adapter();
        // Declared before the lock: woken after it (see `Evicted`).
        let mut evicted = Evicted::default();
        let mut rd = lock(&adapter.rd);
        loop {
            match &mut *rd {
                ReadState::Idle { buf, pos } if *pos < buf.len() => {
                    let n = out.len().min(buf.len() - *pos);
                    out[..n].copy_from_slice(&buf[*pos..*pos + n]);
                    *pos += n;
                    return Poll::Ready(Ok(n));
                }
                ReadState::Idle { buf, .. } => {
                    if out.is_empty() {
                        return Poll::Ready(Ok(0));
                    }
                    let want = out.len().clamp(READ_MIN, READ_MAX);
                    let mut v = std::mem::take(buf);
                    v.clear();
                    if v.capacity() < want {
                        v = Vec::with_capacity(want);
                    }
                    *rd = ReadState::Busy(OpFuture::new(self.sock.driver(), self.recv_op(v)));
                }
                ReadState::Busy(fut) => {
                    evicted.absorb(adapter.rd_wake.register(cx.waker()));
                    let (res, buf) =
                        ready!(poll_shared(cx, adapter.rd_wake.waker(), |rcx| Pin::new(
                            &mut *fut
                        )
                        .poll(rcx)));
                    *rd = ReadState::Idle { buf, pos: 0 };
                    match res {
                        Ok(0) => return Poll::Ready(Ok(0)),
                        Ok(_) => continue,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                ReadState::Failed(_) => {
                    let idle = ReadState::Idle {
                        buf: Vec::new(),
                        pos: 0,
                    };
                    let ReadState::Failed(e) = std::mem::replace(&mut *rd, idle) else {
                        unreachable!("matched above")
                    };
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// Move the adapter's send in flight on (io_uring), where a reader
    /// waits: one that ended short (a kernel before Linux 5.19 does not
    /// finish a send whole) goes on only when polled, and a writer that
    /// wrote a request and reads the reply polls nothing else. Its
    /// outcome stays for the next write or flush. Not if another task
    /// holds the write side (it is polling it).
    fn push_writes(&self, cx: &mut Context<'_>) {
        let Some(adapter) = self.adapter.get() else {
            return;
        };
        let mut evicted = Evicted::default();
        let Ok(mut wr) = adapter.wr.try_lock() else {
            return;
        };
        if !matches!(*wr, WriteState::Busy(_)) {
            return;
        }
        if let Poll::Ready(Err(e)) = self.drain(adapter, &mut wr, cx, &mut evicted) {
            // For the next write or flush to report.
            *wr = WriteState::Failed(e);
        }
    }

    /// Send everything accepted so far.
    pub(crate) fn poll_flush(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Never used: nothing was accepted, nothing to send.
        let Some(adapter) = self.adapter.get() else {
            return Poll::Ready(Ok(()));
        };
        let mut evicted = Evicted::default();
        self.drain(adapter, &mut lock(&adapter.wr), cx, &mut evicted)
    }

    /// Finish the adapter's send in flight; the tasks a full list of
    /// waiters let go of go to `evicted` (woken by the caller after its
    /// lock of `wr`).
    fn drain(
        &self,
        adapter: &Adapter,
        wr: &mut WriteState,
        cx: &mut Context<'_>,
        evicted: &mut Evicted,
    ) -> Poll<io::Result<()>> {
        loop {
            if matches!(wr, WriteState::Failed(_)) {
                if let WriteState::Failed(e) = std::mem::replace(wr, WriteState::Idle(Vec::new())) {
                    return Poll::Ready(Err(e));
                }
            }
            let WriteState::Busy(fut) = wr else {
                return Poll::Ready(Ok(()));
            };
            evicted.absorb(adapter.wr_wake.register(cx.waker()));
            let (res, mut rest) = ready!(poll_shared(cx, adapter.wr_wake.waker(), |wcx| Pin::new(
                &mut *fut
            )
            .poll(wcx)));
            match res {
                Ok(n) if n > 0 || rest.bytes_init() == 0 => {
                    rest.advance(n);
                    if rest.bytes_init() == 0 {
                        *wr = WriteState::idle(rest.into_inner());
                        return Poll::Ready(Ok(()));
                    }
                    *wr = WriteState::Busy(self.send_behind(rest));
                }
                Ok(_) => {
                    *wr = WriteState::idle(rest.into_inner());
                    return Poll::Ready(Err(write_zero()));
                }
                Err(e) => {
                    *wr = WriteState::idle(rest.into_inner());
                    return Poll::Ready(Err(e));
                }
            }
        }
    }

    /// The adapter's send: on io_uring it may run behind the caller, so
    /// the kernel finishes it whole (a short completion would wait for a
    /// poll that may not come before the caller's next write).
    fn send_behind(&self, buf: Slice<Vec<u8>>) -> OpFuture<op::Send<Slice<Vec<u8>>>> {
        OpFuture::new(
            self.sock.driver(),
            op::Send::new(self.sock.raw(), buf).all(),
        )
    }

    pub(crate) fn poll_write(&self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let adapter = self.adapter();
        let mut evicted = Evicted::default();
        let mut wr = lock(&adapter.wr);
        ready!(self.drain(adapter, &mut wr, cx, &mut evicted))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Bytes are taken only with the send started: with the task's
        // budget spent the op below would wait unstarted (see
        // `coro_io::coop`), so yield before taking them instead.
        ready!(coro_io::coop::poll_proceed(cx));
        let WriteState::Idle(buf) = &mut *wr else {
            unreachable!("drained above");
        };
        let mut v = std::mem::take(buf);
        v.clear();
        let n = data.len().min(WRITE_CHUNK);
        v.extend_from_slice(&data[..n]);
        let mut fut = self.send_behind(Slice::new(v, 0));
        evicted.absorb(adapter.wr_wake.register(cx.waker()));
        let mut wcx = Context::from_waker(adapter.wr_wake.waker());
        match Pin::new(&mut fut).poll(&mut wcx) {
            // In flight (io_uring: in the kernel): the bytes are ours now;
            // flush (or the next write) reports them.
            Poll::Pending if self.sock.driver().kind() == coro_io::DriverKind::IoUring => {
                *wr = WriteState::Busy(fut);
                Poll::Ready(Ok(n))
            }
            // epoll: the socket is full and nothing is in flight (the op
            // runs only when polled, and the caller may next wait for a
            // reply instead of flushing): nothing taken, as tokio's. The
            // op's waker stays armed for the socket's room.
            Poll::Pending => Poll::Pending,
            Poll::Ready((Ok(sent), mut rest)) => {
                rest.advance(sent);
                if sent == 0 {
                    *wr = WriteState::idle(rest.into_inner());
                    return Poll::Ready(Err(write_zero()));
                }
                if rest.bytes_init() == 0 {
                    *wr = WriteState::idle(rest.into_inner());
                    return Poll::Ready(Ok(n));
                }
                // A short send: hand back only what went out; the caller
                // offers the rest again (nothing stays hidden in our buffer).
                *wr = WriteState::idle(rest.into_inner());
                Poll::Ready(Ok(sent))
            }
            // Nothing was accepted.
            Poll::Ready((Err(e), rest)) => {
                *wr = WriteState::idle(rest.into_inner());
                Poll::Ready(Err(e))
            }
        }
    }

    pub(crate) fn poll_close(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        match self.shutdown(Shutdown::Write) {
            // Another task sharing the stream started a send between the
            // flush and the shutdown: come back to flush that one too.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(e) if e.kind() != io::ErrorKind::NotConnected => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }
}

/// Lock a side of the adapter (its sections never panic midway: poison is
/// ignored).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pin_project_lite::pin_project! {
    /// The future of [`Stream::write_all`].
    #[project = WriteAllProj]
    pub(crate) enum WriteAll<'a, B, F> {
        /// epoll: direct sends until all of `buf` is sent.
        Direct {
            stream: &'a Stream,
            // `None` once the future returned it.
            buf: Option<B>,
            sent: usize,
            // The fault point was passed (test builds).
            started: bool,
        },
        /// io_uring: send ops.
        Op { #[pin] fut: F },
    }
}

impl<B: IoBuf, F: Future<Output = BufResult<(), B>>> Future for WriteAll<'_, B, F> {
    type Output = BufResult<(), B>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<BufResult<(), B>> {
        let (stream, buf, sent, started) = match self.project() {
            WriteAllProj::Op { fut } => return fut.poll(cx),
            WriteAllProj::Direct {
                stream,
                buf,
                sent,
                started,
            } => (*stream, buf, sent, started),
        };
        let Some(b) = buf.as_ref() else {
            panic!("`write_all` polled after it completed");
        };
        if !std::mem::replace(started, true) {
            if let Some(e) = injected_fault(op::OpKind::Send) {
                return Poll::Ready((Err(e), buf.take().expect("checked above")));
            }
        }
        let bytes = coro_io::buf::init_bytes(b);
        let fd = stream.sock.registered();
        let res = loop {
            if *sent >= bytes.len() {
                break Ok(());
            }
            // Bytes the `AsyncWrite` adapter accepted leave first (as
            // `write` does), also when it was first used after this
            // future was made.
            if stream.adapter.get().is_some() {
                if let Err(e) = ready!(stream.poll_flush(cx)) {
                    break Err(e);
                }
            }
            match ready!(fd.poll_write_direct(cx, &bytes[*sent..])) {
                Ok(0) => break Err(write_zero()),
                Ok(n) => *sent += n,
                Err(e) => break Err(e),
            }
        };
        Poll::Ready((res, buf.take().expect("checked above")))
    }
}

fn write_zero() -> io::Error {
    io::Error::new(io::ErrorKind::WriteZero, "the socket accepted no bytes")
}

/// A socket buffer size for socket2, which passes it on as a C `int`
/// with `as`: above `i32::MAX` it wrapped (`1 << 32` became 0, which the
/// kernel raises to its smallest buffer). The kernel caps sizes far
/// below `i32::MAX` (`rmem_max`/`wmem_max`), so this changes no answer.
pub(crate) fn clamp_size(size: usize) -> usize {
    size.min(i32::MAX as usize)
}

/// A linger for socket2, which casts its seconds to a C `int` with `as`:
/// `1 << 32` seconds became 0, a reset on close, the opposite of what was
/// asked. `i32::MAX` seconds (68 years) is as long as the kernel can wait.
pub(crate) fn clamp_linger(linger: Option<Duration>) -> Option<Duration> {
    linger.map(|d| d.min(Duration::from_secs(i32::MAX as u64)))
}

/// Add what was being done to an error, keeping its kind; the error
/// itself is kept inside (its OS error code stays reachable through
/// [`raw_os_error`](crate::raw_os_error)).
pub(crate) fn context(e: io::Error, what: impl fmt::Display) -> io::Error {
    io::Error::new(
        e.kind(),
        DoingWhat {
            what: what.to_string(),
            source: e,
        },
    )
}

/// An error with what was being done (`connect to 127.0.0.1:80: ...`).
/// Its text includes the wrapped error's, so it names no `source()`
/// (chain printers would show that text twice).
#[derive(Debug)]
pub(crate) struct DoingWhat {
    what: String,
    pub(crate) source: io::Error,
}

impl fmt::Display for DoingWhat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.source)
    }
}

impl std::error::Error for DoingWhat {}

/// The `futures_io` impls of a stream type, for the type and for a shared
/// reference to it (one docs text for all).
macro_rules! impl_futures_io {
    ($ty:ty) => {
        $crate::socket::impl_futures_io!(@one $ty);
        $crate::socket::impl_futures_io!(@one &$ty);
    };
    (@one $ty:ty) => {
        /// Buffered adapter over the owned-buffer ops (also on `&` the
        /// stream: a reader and a writer task may share one).
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: the in-flight `recv` and its buffer live in the
        /// stream, so dropping a read future (for example in a `select`)
        /// loses no bytes; the next read continues it. (Where the driver
        /// keeps a receive queue for the socket, io_uring on Linux 6.0+,
        /// the queue is the buffer.) Bytes this adapter read ahead come
        /// first to an owned-buffer `read`, `read_timeout`, `read_lease`
        /// or `peek` of the same stream, and `poll` says readable while
        /// it holds some.
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.inner.poll_read(cx, buf)
            }
        }

        /// Buffered adapter over the owned-buffer ops (also on `&` the
        /// stream).
        ///
        /// `poll_write` copies up to 64 KiB into the stream's buffer and
        /// starts sending it. It reports the bytes as written when the send
        /// completed at once, or on io_uring (the send still in flight in
        /// the kernel) as accepted: the stream then owns them and sends
        /// them before any later write. On epoll a send the socket cannot
        /// take at once takes nothing (`Pending` until it has room), as
        /// tokio's: nothing there would send it while the caller waits
        /// for a reply instead of flushing.
        /// `poll_flush` waits until everything accepted was sent;
        /// `poll_close` flushes, then shuts the write side down.
        ///
        /// # Cancel safety
        ///
        /// Cancel safe: accepted bytes are sent exactly once whether or not
        /// the future that wrote them is dropped. An error of a send that
        /// was in flight is reported by the next write or flush.
        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.inner.poll_write(cx, buf)
            }
            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.inner.poll_flush(cx)
            }
            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                self.inner.poll_close(cx)
            }
        }
    };
}
pub(crate) use impl_futures_io;

/// Whether an `accept` error is about that one connection (skip it) and
/// not about the listener (Linux passes pending network errors of the new
/// socket through accept; see accept(2)).
pub(crate) fn accept_error_is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNABORTED
                | libc::EPROTO
                | libc::ENETDOWN
                | libc::ENOPROTOOPT
                | libc::EHOSTDOWN
                | libc::ENONET
                | libc::EHOSTUNREACH
                | libc::EOPNOTSUPP
                | libc::ENETUNREACH
                | libc::EPERM
                | libc::EINTR
        )
    )
}

/// Whether an `accept` error means "out of fds or memory": wait and retry.
pub(crate) fn accept_error_is_resource(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// `accept` (a future of the listener's accept loop), or `Err` with a
/// connection the listener's inbox kept, taken for this accept as soon as
/// there is one (the kernel accept is then dropped; whatever the kernel
/// accepted for it goes to the inbox too).
pub(crate) async fn or_inbox<T>(
    accept: impl std::future::Future<Output = T>,
    inbox: &coro_io::op::AcceptInbox,
) -> Result<T, OwnedFd> {
    let mut accept = std::pin::pin!(accept);
    let mut wait = inbox.wait();
    std::future::poll_fn(|cx| {
        if let Poll::Ready(r) = accept.as_mut().poll(cx) {
            return Poll::Ready(Ok(r));
        }
        wait.poll_take(cx).map(Err)
    })
    .await
}

/// The back-off of an accept loop that ran out of fds or memory, and
/// the listener's inbox of connections accepted for dropped accepts
/// (io_uring; see [`coro_io::op::AcceptInbox`]).
///
/// The back-off lives in the listener, not in each accept's future: a
/// `select!` loop whose other branch wins drops its accept and makes a
/// new one each turn, which would start the back-off over (a first try at
/// once, the shortest pause) and retry a failing listener at that loop's
/// rate.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    logged: std::sync::atomic::AtomicBool,
    /// An accept failed since the last connection taken: `state` holds a
    /// back-off (read first, so that a listener that never failed takes
    /// no lock per accept).
    failing: std::sync::atomic::AtomicBool,
    state: std::sync::Mutex<Backoff>,
    inbox: std::sync::Arc<coro_io::op::AcceptInbox>,
}

#[derive(Debug, Default)]
struct Backoff {
    /// The next pause (zero: the first, [`BACKOFF_MIN`]).
    pause: Duration,
    /// Connection errors in a row ([`TRANSIENT_RUN`]).
    transient: u32,
    /// No accept is tried before this (a pause in progress, which an
    /// accept that was dropped meanwhile began).
    resume_at: Option<std::time::Instant>,
}

impl Backoff {
    /// Pause at `now`: how long for. One pause at a time, however many
    /// tasks accept on the listener: a failure during a pause waits out
    /// its rest (without doubling the next), so a burst of failures seen
    /// by many accepts counts once. After a quiet spell (no failure for
    /// twice the longest pause) the pauses start short again.
    fn begin(&mut self, now: std::time::Instant) -> Duration {
        match self.resume_at {
            Some(t) if t > now => return t - now,
            Some(t) if now.saturating_duration_since(t) > 2 * BACKOFF_MAX => {
                self.pause = Duration::ZERO;
            }
            _ => {}
        }
        let pause = self.pause.max(BACKOFF_MIN);
        self.pause = (pause * 2).min(BACKOFF_MAX);
        self.resume_at = Some(now + pause);
        pause
    }
}

/// First and longest pause after EMFILE and friends.
const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_millis(200);
/// "Transient" failures in a row after which the loop pauses too: a
/// connection's own error is skipped at once, but the same codes can also
/// come from the listener for good (`EPERM` from a security module's
/// denial, raised before any connection is taken), and retrying those
/// without a pause would spin a core.
const TRANSIENT_RUN: u32 = 16;

/// Check that `sock` can be a listener: a stream (or sequenced-packet)
/// socket. A datagram socket handed over as a listener (any fd converts
/// to a std listener) would make every accept fail with `EOPNOTSUPP`,
/// which accept loops take for a connection's own error.
pub(crate) fn check_listener(sock: &Socket) -> io::Result<()> {
    let ty = sock.sock_ref().r#type()?;
    if ty == socket2::Type::STREAM || ty == socket2::Type::SEQPACKET {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a stream socket: it cannot accept connections",
        ))
    }
}

impl AcceptBackoff {
    /// Where the listener's accept ops keep what they accepted after their
    /// future was dropped; every accept takes from it first.
    pub(crate) fn inbox(&self) -> &std::sync::Arc<coro_io::op::AcceptInbox> {
        &self.inbox
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Backoff> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection was taken (by an accept, or from the inbox): the
    /// back-off ends.
    pub(crate) fn succeeded(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        // Read first: a listener that never failed writes nothing shared
        // per accept. Cleared under the lock, as the failures set it: the
        // flag then always says whether the state holds a back-off (a
        // failure racing this success could leave a pause begun with the
        // flag clear, which the other accepts would not wait out).
        if self.failing.load(Relaxed) {
            let mut st = self.state();
            if self.failing.swap(false, Relaxed) {
                *st = Backoff::default();
            }
        }
    }

    /// Run `attempt` until it yields a connection or an error about the
    /// listener itself; sleeps on the scheduler between resource failures
    /// (5 ms doubling to 200 ms) and logs the first one to stderr, and
    /// after 16 connection errors in a row also between those. The
    /// back-off goes on across accepts (see [`AcceptBackoff`]) until one
    /// takes a connection.
    pub(crate) async fn run<T, F, Fut>(
        &self,
        sock: &Socket,
        // Formatted only when an error is reported (not per accept).
        what: &(dyn std::fmt::Display + Sync),
        mut attempt: F,
    ) -> io::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = io::Result<T>>,
    {
        use std::sync::atomic::Ordering::Relaxed;
        let paused = |e| context(e, format_args!("accept on {what}"));
        loop {
            if self.failing.load(Relaxed) {
                // The rest of a pause an earlier accept began.
                let now = sock.sched().now();
                let resume_at = self.state().resume_at;
                if let Some(left) = resume_at.and_then(|t| t.checked_duration_since(now)) {
                    sock.retry_pause(left).await.map_err(paused)?;
                }
            }
            let pause = match attempt().await {
                Ok(v) => {
                    self.succeeded();
                    return Ok(v);
                }
                Err(e) if accept_error_is_transient(&e) => {
                    let mut st = self.state();
                    self.failing.store(true, Relaxed);
                    st.transient += 1;
                    // Maybe not the connections' errors but the
                    // listener's: pause as for a resource failure.
                    (st.transient >= TRANSIENT_RUN).then(|| st.begin(sock.sched().now()))
                }
                Err(e) if accept_error_is_resource(&e) => {
                    if !self.logged.swap(true, Relaxed) {
                        coro_io::report(
                            "coro-net",
                            format_args!(
                                "accept on {what} failed: {e}; pausing and retrying \
                                 (this is logged once per listener)"
                            ),
                        );
                    }
                    let mut st = self.state();
                    self.failing.store(true, Relaxed);
                    Some(st.begin(sock.sched().now()))
                }
                Err(e) => return Err(context(e, format_args!("accept on {what}"))),
            };
            if let Some(pause) = pause {
                sock.retry_pause(pause).await.map_err(paused)?;
            }
        }
    }
}

fn timed_out(timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("read timed out after {timeout:?}"),
    )
}

/// Test builds: the hard fault an op of `kind` would meet as it starts,
/// for the reads and sends that are not ops (through io_uring's receive
/// queue; epoll's direct stream path); once per call, as for an op.
/// Transient faults are retries, which these paths do not need.
pub(crate) fn injected_fault(kind: coro_io::op::OpKind) -> Option<io::Error> {
    #[cfg(not(feature = "fault-injection"))]
    let _ = kind;
    #[cfg(feature = "fault-injection")]
    if let Some(e) = coro_io::fault::before_op(kind) {
        if !matches!(
            e.kind(),
            io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
        ) {
            return Some(e);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    /// Failures that several accepting tasks meet at once pause once: the
    /// back-off doubles per pause, not per failure (eight failures at once
    /// made it 200 ms), and starts short again after a quiet spell.
    #[test]
    fn the_accept_back_off_doubles_per_pause_and_forgets_a_quiet_spell() {
        let t0 = std::time::Instant::now();
        let mut b = Backoff::default();
        for _ in 0..8 {
            assert!(b.begin(t0) <= BACKOFF_MIN);
        }
        // The next failure, once that pause is over: twice as long.
        let t1 = t0 + BACKOFF_MIN;
        assert_eq!(b.begin(t1), 2 * BACKOFF_MIN);
        // Failing on: it grows to the longest.
        let mut t = t1;
        for _ in 0..10 {
            t += BACKOFF_MAX;
            b.begin(t);
        }
        assert_eq!(b.begin(t + BACKOFF_MAX), BACKOFF_MAX);
        // A second with no failure: short again.
        assert_eq!(b.begin(t + Duration::from_secs(2)), BACKOFF_MIN);
    }

    /// Every connection's task holds its stream: the `futures_io`
    /// adapter's state (two locks, a buffer or an op each) is made only for
    /// streams that use it, and asking about it does not make it.
    #[test]
    fn a_stream_carries_no_adapter_state_until_the_adapter_is_used() {
        // The adapter's 16 B, and 8 for the Unix flag (`recv_op`).
        assert!(
            std::mem::size_of::<Stream>() <= std::mem::size_of::<Socket>() + 24,
            "Stream is {} B, Socket {} B",
            std::mem::size_of::<Stream>(),
            std::mem::size_of::<Socket>()
        );
        let sched = IoScheduler::new(Default::default()).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let s = Stream::new(Socket::new(&sched, a.into()));
        let mut cx = Context::from_waker(Waker::noop());
        assert_eq!(s.buffered_read(), 0);
        assert!(s.poll_flush(&mut cx).is_ready());
        assert!(s.adapter.get().is_none());
        assert_eq!(
            s.poll_write(&mut cx, b"x").map(|r| r.ok()),
            Poll::Ready(Some(1))
        );
        assert!(s.adapter.get().is_some());
        drop(s);
        sched.shutdown();
    }

    /// A stream that once wrote 64 KiB at a time through its `AsyncWrite`
    /// keeps no more than `WRITE_KEEP` of write buffer once idle (10,000
    /// keep-alive connections after one large response each held 0.6-1.2
    /// GiB), on both drivers.
    #[test]
    fn an_idle_adapter_keeps_no_large_write_buffer() {
        for driver in [coro_io::DriverKind::Epoll, coro_io::DriverKind::Auto] {
            let sched = IoScheduler::new(coro_io::IoSchedulerOptions {
                driver,
                ..Default::default()
            })
            .unwrap();
            let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let s = Stream::new(Socket::new(&sched, a.into()));
            let reader =
                std::thread::spawn(move || std::io::copy(&mut &b, &mut std::io::sink()).unwrap());
            let data = vec![7u8; 64 * 1024];
            let mut sent = 0;
            while sent < data.len() {
                sent += coro_core::sync_wait(std::future::poll_fn(|cx| {
                    s.poll_write(cx, &data[sent..])
                }))
                .unwrap();
            }
            coro_core::sync_wait(std::future::poll_fn(|cx| s.poll_flush(cx))).unwrap();
            let kept = match &*lock(&s.adapter.get().unwrap().wr) {
                WriteState::Idle(v) => v.capacity(),
                _ => usize::MAX,
            };
            assert!(kept <= WRITE_KEEP, "{driver:?}: {kept} B kept");
            drop(s);
            assert_eq!(reader.join().unwrap(), 64 * 1024);
            sched.shutdown();
        }
    }

    /// An error that accept loops skip as a connection's own, coming back
    /// for good (a security module's `EPERM`): the loop pauses after a run
    /// of them instead of spinning, and still returns the connection that
    /// comes at last.
    #[test]
    fn a_run_of_connection_errors_pauses_the_accept_loop() {
        let sched = IoScheduler::new(Default::default()).unwrap();
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let sock = Socket::new(&sched, a.into());
        let backoff = AcceptBackoff::default();
        let mut calls = 0u32;
        let start = std::time::Instant::now();
        let got = coro_core::sync_wait(sched.spawn({
            let sched = sched.clone();
            async move {
                let _keep = sched;
                backoff
                    .run(&sock, &"test", || {
                        calls += 1;
                        let r = if calls <= 20 {
                            Err(io::Error::from_raw_os_error(libc::EPERM))
                        } else {
                            Ok(calls)
                        };
                        std::future::ready(r)
                    })
                    .await
            }
        }))
        .unwrap();
        assert_eq!(got.unwrap(), 21);
        // Pauses after the 16th error and each one after: 5, 10, 20, 40,
        // 80 ms, over 100 ms in all.
        assert!(
            start.elapsed() >= Duration::from_millis(100),
            "20 failures in {:?}: no pause",
            start.elapsed()
        );
        sched.shutdown();
    }
}
