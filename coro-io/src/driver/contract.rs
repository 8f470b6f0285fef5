//! The contract between ops and drivers, in one place: what an op must
//! promise ([`Op`], an `unsafe trait`), how it waits on a readiness driver
//! ([`Readiness`], [`Interest`]), what a driver does with it (`Backend`), and
//! the per-op state a driver keeps in the op's future (`OpState`, with the
//! blocking-pool path both drivers share). Concrete ops live in
//! [`crate::op`]; the backends in `epoll.rs` and `uring.rs`.

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use super::DriverKind;

/// The direction(s) an fd must be ready for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (or hang-up / error).
    Read,
    /// Writable (or hang-up / error).
    Write,
    /// Either.
    ReadWrite,
}

impl Interest {
    /// Whether this includes readability.
    pub fn readable(self) -> bool {
        matches!(self, Interest::Read | Interest::ReadWrite)
    }
    /// Whether this includes writability.
    pub fn writable(self) -> bool {
        matches!(self, Interest::Write | Interest::ReadWrite)
    }
}

/// How an op runs on a readiness backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Try `attempt`; on `WouldBlock` wait until `fd` is ready for `Interest`.
    Fd(RawFd, Interest),
    /// Call `attempt` once, right away (close, shutdown): it never blocks.
    Now,
    /// `attempt` may block (regular files): run it on the blocking pool.
    Blocking,
}

/// Whether a syscall's error means it did nothing and may simply be made
/// again (`EAGAIN`: wait for readiness first; `EINTR`).
pub(crate) fn nothing_moved(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The interface every backend implements. See the module docs.
pub(crate) trait Backend: Send + Sync + 'static {
    /// Which backend this is (never `Auto`).
    fn kind(&self) -> DriverKind;
    /// Drive `state` towards completion; `Ready` carries the raw result
    /// (a byte count, an fd, poll revents).
    fn poll_op<T: Op>(
        &self,
        state: &mut OpState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>>;
    /// The op future is dropped while the op may be in flight: take ownership.
    fn drop_op<T: Op>(&self, state: &mut OpState<T>);
    /// Ask for the op to stop early, keeping the future: its next polls
    /// return its own result if it completed anyway (the data it moved is
    /// not lost), or `ECANCELED`. Ops on the blocking pool run to the end.
    fn cancel_op<T: Op>(&self, state: &mut OpState<T>);
    /// Wait up to `timeout` (`None` = until something happens) for events and
    /// wake the tasks they concern. Returns the number of events handled.
    fn park(&self, timeout: Option<Duration>) -> io::Result<usize>;
    /// Wake a concurrent or the next `park`. Any thread.
    fn unpark(&self);
    /// Ops whose memory the driver currently owns or waits on.
    fn in_flight(&self) -> usize;
    /// Shutdown: cancel everything in flight, wake every waiter, and wait for
    /// the kernel to release owned memory for at most `bound`. Terminal: an
    /// op that would wait after this fails with an error saying the driver was shut down, so
    /// nothing can wait on a driver nobody parks any more.
    fn cancel_all(&self, bound: Duration);
    /// Forget any registration of `fd` (called before it is closed): the
    /// epoll entry, the io_uring receive queue (and the bytes in it).
    fn release_fd(&self, fd: RawFd);
    /// [`release_fd`](Backend::release_fd), then close `fd`: at once, or
    /// (io_uring) once the kernel has read the entry of the fd's receive,
    /// if one was in the SQ. An entry the kernel has not read yet looks
    /// its fd up only when read: closed before, the number could name
    /// another socket by then (a receive armed on another connection).
    fn close_fd(&self, fd: std::os::fd::OwnedFd) {
        use std::os::fd::AsRawFd;
        self.release_fd(fd.as_raw_fd());
        drop(fd);
    }
    /// [`release_fd`](Backend::release_fd) for an fd that stays open with a
    /// new owner: nothing of the driver's may read from it any more once
    /// this returns (io_uring: the receive's cancel is submitted now).
    fn detach_fd(&self, fd: RawFd) {
        self.release_fd(fd)
    }
    /// Bytes `fd`'s receive queue holds that were not read yet; `None`
    /// if it has no queue (no read went through one).
    fn recv_buffered(&self, fd: RawFd) -> Option<usize> {
        let _ = fd;
        None
    }
    /// Whether stream reads go through the driver's receive queue
    /// ([`poll_recv`](Backend::poll_recv)) instead of one op per read.
    fn recv_queue(&self) -> bool {
        false
    }
    /// Read (or with `peek`, look at) the connected stream socket `fd`
    /// through its receive queue: bytes into `out`, `Ok(0)` at the end of
    /// the stream, `Pending` with `cx`'s waker kept until bytes arrive.
    /// Nothing is in flight on the caller's behalf, so a caller that stops
    /// polling loses nothing. Only where [`recv_queue`](Backend::recv_queue).
    fn poll_recv(
        &self,
        fd: RawFd,
        cx: &mut Context<'_>,
        out: &mut super::recv_queue::RecvOut<'_>,
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        let _ = (fd, cx, out, peek);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this driver has no receive queue",
        )))
    }
    /// Take the next received bytes of `fd` off its receive queue without
    /// copying them: the buffer they are in becomes the caller's until it
    /// gives it back (`Provided::give_back`, which the lease's drop calls). As
    /// [`poll_recv`](Backend::poll_recv) otherwise (nothing in flight on the
    /// caller's behalf). Only where [`recv_queue`](Backend::recv_queue).
    fn poll_recv_lease(
        &self,
        fd: RawFd,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<super::recv_queue::Leased>> {
        let _ = (fd, cx);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this driver has no receive queue",
        )))
    }
}

/// An I/O operation that both drivers can run. See [`crate::driver`].
///
/// An op lives inside its future, and moves with it, until a completion
/// driver submits it: then the driver moves it to the heap first, so
/// pointers into `self` that [`sqe`](Op::sqe) hands to the kernel stay
/// valid until the completion. A readiness driver never boxes it: its
/// syscalls run inside `poll`, so no pointer outlives one call.
///
/// # Safety
///
/// The io_uring driver hands the entry [`sqe`](Op::sqe) returns to the
/// kernel as it is, and the kernel reads and writes the memory it names
/// until the op's completion arrives, whatever happens to the future in
/// between. An implementation must therefore return an entry that
///
/// * points only into memory owned by `self`: its own fields (a
///   `sockaddr`, `msghdr` or `iovec`; the op is on the heap before `sqe`
///   is called and never moves after), heap memory it owns (a `Vec`'s
///   block), or `'static` memory; nothing that `self` merely borrows and
///   nothing on a stack;
/// * describes no more memory than that: lengths within the buffers, and
///   writable memory only where the kernel writes;
/// * leaves that memory alone while in flight: `readiness`, `attempt`,
///   `drains` and `expect_empty` may be called meanwhile and must not
///   free, move or reallocate what the entry points to;
/// * names an fd the op may use (the caller keeps it open while the
///   future lives), and carries no `user_data` or flags of its own (the
///   driver clears an entry's flags: `IOSQE_CQE_SKIP_SUCCESS` would leave
///   the op without a completion, links would tie it to another op);
/// * completes exactly once: no multishot form (a multishot poll, receive
///   or accept keeps posting completions after the first, which ends the
///   op and frees its memory).
///
/// And [`attempt`](Op::attempt) must rebuild any pointer into `self` it
/// passes to a syscall (a `msghdr`'s) on each call: on a readiness driver
/// the op stays in its future, which may move between polls.
///
/// An op that breaks this lets safe code make the kernel write anywhere.
pub unsafe trait Op: std::marker::Send + 'static {
    /// What the future resolves to (usually a [`BufResult`](crate::buf::BufResult)).
    type Output;
    /// Which operation this is (for [`Metrics`](crate::Metrics) and tracing).
    const KIND: OpKind;
    /// Completion path: the io_uring entry for this op (`user_data` is set by
    /// the driver). Called only after the op was moved to the heap; again
    /// if the op is resubmitted (after an `EAGAIN` and a readiness poll).
    fn sqe(&mut self) -> io_uring::squeue::Entry;
    /// Readiness path: what to wait for before [`attempt`](Op::attempt).
    fn readiness(&self) -> Readiness;
    /// Readiness path: the non-blocking syscall. `Ok(n)` is the raw result
    /// (bytes, an fd, revents); `WouldBlock` waits for readiness again.
    /// The op may have moved since the last call (see the Safety section).
    fn attempt(&mut self) -> io::Result<usize>;
    /// Turn the raw result into the output, handing owned buffers back.
    fn complete(self, res: io::Result<usize>) -> Self::Output
    where
        Self: Sized;
    /// The result arrived after the future was dropped: release what it
    /// produced (an accepted fd is closed here).
    fn orphaned(&mut self, res: io::Result<usize>) {
        let _ = res;
    }
    /// Stream reads: whether a result of `n` bytes shows the fd had no more
    /// data at that moment (a short read). Drivers then let the next read
    /// of the fd wait for data before trying (see [`recv_stream`](crate::op::recv_stream)).
    fn drains(&self, n: usize) -> bool {
        let _ = n;
        false
    }
    /// Completion path: the previous read of this fd drained it; wait for
    /// data before the first attempt (only stream reads act on it).
    fn expect_empty(&mut self) {}
    /// Completion path: the op's syscall, made at once and without
    /// blocking, before the op is submitted (`None`, the default: never).
    /// For ops that usually succeed at once, where the syscall costs less
    /// than a trip through the ring and back to the waiting task: a send
    /// with room in the socket buffer. `WouldBlock` or `Interrupted`
    /// (nothing moved) submits the op as usual; any other result is the
    /// op's.
    fn try_now(&mut self) -> Option<io::Result<usize>> {
        None
    }
    /// Completion path: the kernel's completion said whether more was
    /// waiting on the socket when the op finished
    /// (`IORING_CQE_F_SOCK_NONEMPTY`; `false` where the kernel does not
    /// say). Called before [`complete`](Op::complete). An accept uses it
    /// to take the next connection at once ([`try_now`](Op::try_now)).
    fn more_waiting(&mut self, more: bool) {
        let _ = more;
    }
    /// The fd this op closes, so that the driver drops its registration
    /// (epoll) or receive queue (io_uring) first.
    fn closes_fd(&self) -> Option<RawFd> {
        None
    }
    /// Blocking path: whether a job whose future was dropped before it
    /// started is skipped instead of run. True for an op on an fd it does
    /// not keep open itself: once the future is gone its caller may close
    /// the fd, and the number may name another file by the time the job
    /// starts. Default: run it (the op holds what it needs).
    fn skip_if_dropped(&self) -> bool {
        false
    }
    /// Completion path: whether a future dropped before its op completed
    /// leaves the op to finish, neither taken back while staged nor
    /// cancelled in the kernel. For an op that keeps its own file open
    /// and whose effect its caller was promised (a `File`'s positional
    /// write or sync: "a dropped write still completes"); others are
    /// cancelled (a receive must not consume data nobody gets). Default:
    /// cancel.
    fn finish_if_dropped(&self) -> bool {
        false
    }
    /// Completion path: whether this kernel's io_uring has the opcode
    /// [`sqe`](Op::sqe) uses (see [`Features`](crate::driver::probe::Features)).
    /// When it has not, the io_uring driver runs [`attempt`](Op::attempt)
    /// on the blocking pool instead, as a readiness driver does for
    /// [`Readiness::Blocking`], so an op that answers `false` here must
    /// have `Readiness::Blocking`. Default: always native.
    fn uring_native(&self, features: &crate::driver::probe::Features) -> bool {
        let _ = features;
        true
    }
    /// Whether an `EINTR`/`EAGAIN` result means "nothing happened, run me
    /// again" (true for every op that fails that way without effect). Not
    /// so for `close`: the fd is gone whatever it reports, and running it
    /// again could close a number that already names another file.
    const RESTARTABLE: bool = true;
}

/// The kinds of operation, as counted by [`Metrics::pending_ops`](crate::Metrics::pending_ops).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// [`accept`](crate::op::accept) / [`accept_fd`](crate::op::accept_fd).
    Accept,
    /// [`connect`](crate::op::connect).
    Connect,
    /// [`recv`](crate::op::recv), [`recv_from`](crate::op::recv_from), [`recv_msg`](crate::op::recv_msg), [`read`](crate::op::read) on a socket or pipe.
    Recv,
    /// [`send`](crate::op::send), [`send_to`](crate::op::send_to), [`write()`](crate::op::write()).
    Send,
    /// [`poll_fd`](crate::op::poll_fd).
    Poll,
    /// [`read_at`](crate::op::read_at) (files).
    ReadAt,
    /// [`write_at`](crate::op::write_at) (files).
    WriteAt,
    /// [`fsync`](crate::op::fsync).
    Fsync,
    /// [`close`](crate::op::close).
    Close,
    /// [`open_at`](crate::op::open_at).
    OpenAt,
    /// [`statx`](crate::op::statx), [`statx_fd`](crate::op::statx_fd).
    Statx,
    /// [`rename_at`](crate::op::rename_at).
    RenameAt,
    /// [`unlink_at`](crate::op::unlink_at) (files and directories).
    UnlinkAt,
    /// [`mkdir_at`](crate::op::mkdir_at).
    MkdirAt,
}

impl OpKind {
    /// Every kind, in a fixed order.
    pub const ALL: [OpKind; 14] = [
        OpKind::Accept,
        OpKind::Connect,
        OpKind::Recv,
        OpKind::Send,
        OpKind::Poll,
        OpKind::ReadAt,
        OpKind::WriteAt,
        OpKind::Fsync,
        OpKind::Close,
        OpKind::OpenAt,
        OpKind::Statx,
        OpKind::RenameAt,
        OpKind::UnlinkAt,
        OpKind::MkdirAt,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// Per-kind counts of op futures that are waiting on their driver.
#[derive(Debug, Default)]
pub(crate) struct PendingOps([AtomicUsize; OpKind::ALL.len()]);

impl PendingOps {
    pub(crate) fn add(&self, k: OpKind) {
        self.0[k.index()].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn sub(&self, k: OpKind) {
        self.0[k.index()].fetch_sub(1, Ordering::Relaxed);
    }
    /// The non-zero counts.
    pub(crate) fn snapshot(&self) -> Vec<(OpKind, usize)> {
        OpKind::ALL
            .iter()
            .map(|&k| (k, self.0[k.index()].load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// Where an op lives: in its future, or on the heap once a completion
/// driver handed the kernel pointers into it (a stable address).
///
/// Kept inline until then, an op on a readiness driver costs no
/// allocation: a read and a write per request on epoll used to be two
/// `malloc`/`free` pairs, a percent of a busy server's CPU.
#[derive(Debug)]
pub(crate) enum Held<T> {
    /// In the future (moves with it).
    Here(T),
    /// On the heap (never moves again).
    Heap(Box<T>),
}

impl<T> Held<T> {
    pub(crate) fn get_mut(&mut self) -> &mut T {
        match self {
            Held::Here(op) => op,
            Held::Heap(op) => op,
        }
    }

    pub(crate) fn into_inner(self) -> T {
        match self {
            Held::Here(op) => op,
            Held::Heap(op) => *op,
        }
    }

    pub(crate) fn into_box(self) -> Box<T> {
        match self {
            Held::Here(op) => Box::new(op),
            Held::Heap(op) => op,
        }
    }

    /// The op in `held`, moved to the heap first if it is not there yet.
    pub(crate) fn on_heap(held: &mut Option<Held<T>>) -> Option<&mut T> {
        if let Some(Held::Here(_)) = held {
            let op = held.take().map(Held::into_box);
            *held = op.map(Held::Heap);
        }
        held.as_mut().map(Held::get_mut)
    }
}

/// The driver-side state of one op, owned by its [`OpFuture`].
///
/// `op` is `Some` until the driver takes it (blocking pool, cancelled op
/// parked in a slot) or the op completes; `token` is backend-specific
/// (io_uring: generation-tagged slot key, 0 = not submitted).
#[derive(Debug)]
pub(crate) struct OpState<T> {
    /// The op itself: inline until a completion driver submits it.
    pub(crate) op: Option<Held<T>>,
    /// Backend-specific: io_uring's slot key, epoll's id of a bare poll
    /// that waited; 0 until then ("not submitted").
    pub(crate) token: u64,
    pub(crate) blocking: Option<Arc<BlockingCell<T>>>,
    /// `OpFuture::cancel` was called: do not start or wait any more.
    pub(crate) cancel: bool,
}

impl<T: Op> OpState<T> {
    /// Run `attempt` on the blocking pool (readiness backends, and io_uring
    /// for opcodes the kernel lacks) and report through `cx` when it is
    /// done. Returns the result once available.
    pub(crate) fn poll_blocking(
        &mut self,
        cx: &mut Context<'_>,
        ops: &BlockingOps,
    ) -> Poll<io::Result<usize>> {
        if let Some(cell) = &self.blocking {
            let mut g = crate::lock(&cell.inner);
            if let Some((op, res)) = g.done.take() {
                drop(g);
                self.op = Some(op);
                self.blocking = None;
                return Poll::Ready(res);
            }
            let old = match &g.waker {
                Some(w) if w.will_wake(cx.waker()) => None,
                _ => g.waker.replace(cx.waker().clone()),
            };
            drop(g);
            // A caller's waker runs its own code when dropped: not under
            // the cell's lock, which the pool thread takes to finish.
            drop(old);
            return Poll::Pending;
        }
        let Some(op) = self.op.take() else {
            return Poll::Ready(Err(io::Error::other("op polled after completion")));
        };
        let cell = Arc::new(BlockingCell {
            inner: Mutex::new(BlockingInner {
                done: None,
                waker: Some(cx.waker().clone()),
                abandoned: false,
            }),
        });
        self.blocking = Some(cell.clone());
        ops.started.fetch_add(1, Ordering::Relaxed);
        ops.running.fetch_add(1, Ordering::AcqRel);
        let mut op = op;
        let must_finish = op.get_mut().finish_if_dropped().then(|| {
            ops.must_finish.fetch_add(1, Ordering::AcqRel);
            ops.must_finish.clone()
        });
        let job = PoolJob {
            op: Some(op),
            res: None,
            cell: Some(cell),
            running: ops.running.clone(),
            must_finish,
        };
        crate::blocking_run(Box::new(move || job.run()));
        Poll::Pending
    }

    /// The future is dropped while its op is on the blocking pool: the op
    /// runs to the end there, and what it produced goes to
    /// [`Op::orphaned`] (here if it is done already, else on the pool
    /// thread), as a completion driver does for an op it took over.
    pub(crate) fn abandon_blocking(&mut self) {
        let Some(cell) = self.blocking.take() else {
            return;
        };
        let mut g = crate::lock(&cell.inner);
        g.abandoned = true;
        let waker = g.waker.take();
        let done = g.done.take();
        drop(g);
        drop(waker);
        if let Some((mut op, res)) = done {
            op.get_mut().orphaned(res);
        }
    }
}

/// An op on its way through the blocking pool. Its drop hands the result
/// over, whatever happened to the job: it ran, its `attempt` panicked, or
/// the pool dropped it unrun (it could not start a thread). So the future
/// waiting for it always ends, and the driver's count of running ops
/// always comes back down.
struct PoolJob<T: Op> {
    op: Option<Held<T>>,
    res: Option<io::Result<usize>>,
    cell: Option<Arc<BlockingCell<T>>>,
    running: Arc<AtomicUsize>,
    /// Also counted among the ops a shutdown waits for to the end of its
    /// bound (see [`BlockingOps::wait_at_shutdown`]).
    must_finish: Option<Arc<AtomicUsize>>,
}

impl<T: Op> PoolJob<T> {
    /// Counted finished (before the result can be seen).
    fn count_finished(&self) {
        if let Some(m) = &self.must_finish {
            m.fetch_sub(1, Ordering::AcqRel);
        }
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    /// On a pool thread: the syscall, then (dropping `self`) the hand-over.
    /// Not for an op whose future was dropped before this started, if it
    /// asks so ([`Op::skip_if_dropped`]). (One dropped while this starts
    /// may still run: the check and the syscall's look-up of the fd are
    /// not one step.)
    fn run(mut self) {
        #[cfg(feature = "fault-injection")]
        crate::fault::before_pool_job();
        if let Some(op) = self.op.as_mut() {
            let op = op.get_mut();
            let dropped = || {
                self.cell
                    .as_ref()
                    .is_some_and(|c| crate::lock(&c.inner).abandoned)
            };
            self.res = Some(if op.skip_if_dropped() && dropped() {
                Err(io::Error::from_raw_os_error(libc::ECANCELED))
            } else {
                op.attempt()
            });
        }
    }
}

impl<T: Op> Drop for PoolJob<T> {
    fn drop(&mut self) {
        let (Some(mut op), Some(cell)) = (self.op.take(), self.cell.take()) else {
            return;
        };
        let res = self.res.take().unwrap_or_else(|| {
            Err(io::Error::other(if std::thread::panicking() {
                "the op panicked on the blocking pool"
            } else {
                "the blocking pool could not run the op (no thread could be started)"
            }))
        });
        let mut g = crate::lock(&cell.inner);
        let w = if g.abandoned {
            // Nobody will collect it: release what it produced (an
            // opened fd is closed) before counting it finished.
            drop(g);
            // Counted even if the op's drop panics (a caller's buffer
            // whose destructor does): a count left up holds every
            // shutdown for its whole bound.
            struct Finished<'a, T: Op>(&'a PoolJob<T>);
            impl<T: Op> Drop for Finished<'_, T> {
                fn drop(&mut self) {
                    self.0.count_finished();
                }
            }
            let _finished = Finished(self);
            op.get_mut().orphaned(res);
            drop(op);
            None
        } else {
            // Counted finished before the future can see the result, so
            // that its owner never finds it done and still in flight.
            self.count_finished();
            g.done = Some((op, res));
            let w = g.waker.take();
            drop(g);
            w
        };
        drop(cell);
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// A driver's account of the ops it ran on the blocking pool.
#[derive(Debug, Default)]
pub(crate) struct BlockingOps {
    /// Running now (their ops and buffers live on pool threads).
    running: Arc<AtomicUsize>,
    /// Of them, those that must finish when dropped (writes, syncs).
    must_finish: Arc<AtomicUsize>,
    /// Started since the driver was created.
    started: AtomicU64,
}

/// How long a shutdown waits for blocking-pool ops that need not finish
/// (reads, opens): the pool job owns their buffers, so waiting buys no
/// safety, only that a fast one is done when `shutdown` returns; a FIFO's
/// or a terminal's read, or the open of a FIFO without a peer, may block
/// until a peer comes, and would hold the shutdown for its whole bound.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(100);

impl BlockingOps {
    /// At shutdown: wait until no op of ours runs on the pool, at most
    /// until `deadline` (`None`: no bound) and [`super::FINISH_BOUND`] for
    /// writes and syncs, which were promised to land, and at most
    /// [`SHUTDOWN_GRACE`] for the rest. What still runs then is left to
    /// end on its own.
    pub(crate) fn wait_at_shutdown(&self, deadline: Option<Instant>) {
        let grace = Instant::now() + SHUTDOWN_GRACE;
        // Writes and syncs get at most `FINISH_BOUND` (a write to a pipe
        // nobody reads never ends; its job owns what it uses).
        let finish_by = Instant::now() + super::FINISH_BOUND;
        let deadline = Some(deadline.map_or(finish_by, |d| d.min(finish_by)));
        while self.running() > 0 {
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d)
                || (now >= grace && self.must_finish.load(Ordering::Acquire) == 0)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Ops running on the pool now.
    pub(crate) fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }
    /// Ops started on the pool so far.
    pub(crate) fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
}

/// Where a blocking-pool op leaves its result.
#[derive(Debug)]
pub(crate) struct BlockingCell<T> {
    inner: Mutex<BlockingInner<T>>,
}

#[derive(Debug)]
struct BlockingInner<T> {
    done: Option<(Held<T>, io::Result<usize>)>,
    waker: Option<Waker>,
    /// The future was dropped: the result is for nobody.
    abandoned: bool,
}
