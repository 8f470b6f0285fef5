//! Socket ops: accept, connect, recv/send, recvmsg/sendmsg, poll.

use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use io_uring::{opcode, types};

use super::addr::{Address, RawAddr};
use super::{Op, OpFuture, OpKind, cvt, offered};
use crate::buf::{BufResult, IoBuf, IoBufMut};
use crate::driver::{Handle, Interest, Readiness};

fn would_block_connect(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINPROGRESS) | Some(libc::EALREADY) | Some(libc::EAGAIN)
    )
}

/// Connections the kernel accepted for accept ops that were dropped
/// before they completed (io_uring: an accept runs in the kernel, so it
/// may take a connection for a future that is gone), kept for the
/// listener's next accept instead of closed: a `select!` loop that drops
/// an accept whenever another branch wins then resets no client.
///
/// A listener keeps one and hands it to its accept ops
/// ([`accept_keeping`], [`accept_fd_keeping`]), and takes from
/// it first in every accept.
///
/// A connection can land in the inbox while an accept of the listener
/// already waits in the kernel for the next one: such an accept waits on
/// the inbox too, through an [`InboxWait`], so that the connection is not
/// left until some other client comes.
///
/// It also remembers whether the listener's backlog was seen non-empty
/// (see [`accept_keeping`]).
#[derive(Debug, Default)]
pub struct AcceptInbox(
    std::sync::Mutex<Inbox>,
    /// More connections were waiting when the last accept ended: the
    /// next accept is tried at once, in the poll.
    std::sync::atomic::AtomicBool,
);

#[derive(Debug, Default)]
struct Inbox {
    fds: std::collections::VecDeque<OwnedFd>,
    /// Accepts waiting on the inbox, oldest first, by id.
    waiting: std::collections::VecDeque<(u64, std::task::Waker)>,
    last_id: u64,
}

/// An accept's place in the line of those waiting on an [`AcceptInbox`]
/// ([`AcceptInbox::wait`]); it leaves the line when dropped, and a
/// connection it was woken for goes to the next in line.
#[derive(Debug)]
pub struct InboxWait<'a> {
    inbox: &'a AcceptInbox,
    id: u64,
}

impl InboxWait<'_> {
    /// A connection kept in the inbox, taken for this accept; until there
    /// is one, this accept waits in line (woken when one is kept for it).
    pub fn poll_take(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<OwnedFd> {
        let mut g = crate::lock(&self.inbox.0);
        if let Some(fd) = g.fds.pop_front() {
            // Its waker, dropped after the lock (it may be the last
            // reference to a task whose drop reaches this inbox).
            let mine = g
                .waiting
                .iter()
                .position(|(id, _)| *id == self.id)
                .and_then(|i| g.waiting.remove(i));
            drop(g);
            drop(mine);
            return std::task::Poll::Ready(fd);
        }
        if self.id == 0 {
            g.last_id += 1;
            self.id = g.last_id;
        }
        let id = self.id;
        match g.waiting.iter_mut().find(|(i, _)| *i == id) {
            Some((_, w)) if w.will_wake(cx.waker()) => {}
            Some((_, w)) => {
                let old = std::mem::replace(w, cx.waker().clone());
                drop(g);
                drop(old);
            }
            None => g.waiting.push_back((id, cx.waker().clone())),
        }
        std::task::Poll::Pending
    }
}

impl Drop for InboxWait<'_> {
    fn drop(&mut self) {
        let (old, next) = {
            let mut g = crate::lock(&self.inbox.0);
            let old = g
                .waiting
                .iter()
                .position(|(id, _)| *id == self.id)
                .and_then(|i| g.waiting.remove(i));
            // A connection this one may have been woken for, and did not
            // take (its kernel accept won): the next in line gets it.
            let next = if g.fds.is_empty() {
                None
            } else {
                g.waiting.pop_front()
            };
            (old, next)
        };
        drop(old);
        if let Some((_, w)) = next {
            w.wake();
        }
    }
}

impl AcceptInbox {
    /// An empty inbox.
    pub fn new() -> AcceptInbox {
        AcceptInbox::default()
    }

    /// The oldest connection kept, if any.
    pub fn take(&self) -> Option<OwnedFd> {
        crate::lock(&self.0).fds.pop_front()
    }

    /// Whether the last accept saw more connections waiting.
    fn more_waiting(&self) -> bool {
        self.1.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn set_more_waiting(&self, more: bool) {
        self.1.store(more, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a connection is kept.
    pub fn is_empty(&self) -> bool {
        crate::lock(&self.0).fds.is_empty()
    }

    /// A place in the line of accepts waiting for a kept connection.
    pub fn wait(&self) -> InboxWait<'_> {
        InboxWait { inbox: self, id: 0 }
    }

    /// Keep `fd`, and wake the accept first in line for it (only that one:
    /// the others' kernel accepts go on).
    fn put(&self, fd: OwnedFd) {
        let first = {
            let mut g = crate::lock(&self.0);
            g.fds.push_back(fd);
            g.waiting.pop_front()
        };
        if let Some((_, w)) = first {
            w.wake();
        }
    }
}

/// What an accept op does with a connection accepted after its future
/// was dropped: without an inbox, close it; with one, keep it (`late`)
/// and hand it to the inbox when the driver drops the op, which is after
/// the driver's lock (the inbox wakes an accept waiting on it, and a
/// waker may call back into the driver).
#[derive(Debug)]
struct Orphans {
    inbox: Option<Arc<AcceptInbox>>,
    late: Option<OwnedFd>,
}

impl Orphans {
    /// An accept made at once, in the poll, where the listener's backlog
    /// was seen non-empty (see [`accept_keeping`]): `None` to submit it.
    /// What it finds says whether to go on so next time.
    fn try_now(&self, attempt: impl FnOnce() -> io::Result<usize>) -> Option<io::Result<usize>> {
        let inbox = self.inbox.as_ref().filter(|i| i.more_waiting())?;
        let r = attempt();
        // Taken: more may wait (a burst). Empty (or failing): through the
        // ring again, until a completion says more are waiting.
        inbox.set_more_waiting(r.is_ok());
        Some(r)
    }

    /// The kernel's completion said whether more connections wait.
    fn more_waiting(&self, more: bool) {
        if let Some(inbox) = &self.inbox {
            inbox.set_more_waiting(more);
        }
    }

    fn accepted(&mut self, res: io::Result<usize>) {
        if let (Ok(fd), Some(_)) = (accepted(res), &self.inbox) {
            self.late = Some(fd);
        }
    }
}

impl Drop for Orphans {
    fn drop(&mut self) {
        if let (Some(fd), Some(inbox)) = (self.late.take(), &self.inbox) {
            inbox.put(fd);
        }
    }
}

/// `accept4(fd)` with `SOCK_CLOEXEC | SOCK_NONBLOCK`.
#[derive(Debug)]
pub struct Accept {
    fd: RawFd,
    addr: RawAddr,
    orphans: Orphans,
}

impl Accept {
    /// `inbox`: where a connection accepted after the future was dropped
    /// goes (`None`: it is closed).
    fn new(fd: RawFd, inbox: Option<&Arc<AcceptInbox>>) -> Accept {
        Accept {
            fd,
            addr: RawAddr::empty(),
            orphans: Orphans {
                inbox: inbox.cloned(),
                late: None,
            },
        }
    }
}

/// Accept one connection on the listening socket `fd` (non-blocking,
/// close-on-exec). Resolves to the new socket and the peer address.
///
/// # Cancel safety
///
/// Cancel safe: if the future is dropped after the kernel accepted a
/// connection for it, the driver closes that socket (or keeps it in an
/// [`AcceptInbox`]: [`accept_keeping`]).
pub fn accept(driver: &Handle, fd: RawFd) -> OpFuture<Accept> {
    OpFuture::new(driver, Accept::new(fd, None))
}

/// [`accept`], keeping a connection accepted for a dropped future in
/// `inbox` for the next accept.
///
/// `fd` must be non-blocking (as every listener of coro-net is): on
/// io_uring, once a completion said more connections wait (Linux 6.10+),
/// the next ones are taken at once, in the poll, by a non-blocking
/// `accept4(2)`, as epoll does, until the backlog is empty. Through the
/// ring alone an accept loop would take one connection per turn of the
/// event loop, however many wait, while the connections it serves fill
/// each turn (a burst of clients would wait behind them); tried first
/// every time, an accept would cost a failed syscall whenever the backlog
/// is empty (a server that keeps up). Not on SQPOLL rings, whose point
/// is to submit without a syscall: there a burst is taken one per turn.
///
/// # Cancel safety
///
/// Cancel safe: nothing accepted is lost or closed.
pub fn accept_keeping(driver: &Handle, fd: RawFd, inbox: &Arc<AcceptInbox>) -> OpFuture<Accept> {
    OpFuture::new(driver, Accept::new(fd, Some(inbox)))
}

// SAFETY: its entry points into the `sockaddr` and length the op owns.
unsafe impl Op for Accept {
    type Output = io::Result<(OwnedFd, SocketAddr)>;
    const KIND: OpKind = OpKind::Accept;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        accept_sqe(self.fd, Some(&mut self.addr))
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, Interest::Read)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        accept_attempt(self.fd, Some(&mut self.addr))
    }
    fn try_now(&mut self) -> Option<io::Result<usize>> {
        let (fd, addr) = (self.fd, &mut self.addr);
        self.orphans.try_now(|| accept_attempt(fd, Some(addr)))
    }
    fn more_waiting(&mut self, more: bool) {
        self.orphans.more_waiting(more);
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        let fd = accepted(res)?;
        Ok((fd, self.addr.socket_addr()?))
    }
    fn orphaned(&mut self, res: io::Result<usize>) {
        self.orphans.accepted(res);
    }
}

/// The io_uring entry of `accept4(fd)`, writing the peer's address into
/// `addr` when given.
fn accept_sqe(fd: RawFd, addr: Option<&mut RawAddr>) -> io_uring::squeue::Entry {
    let (ptr, len) = match addr {
        Some(a) => (a.as_mut_ptr(), &mut a.len as *mut libc::socklen_t),
        None => (std::ptr::null_mut(), std::ptr::null_mut()),
    };
    opcode::Accept::new(types::Fd(fd), ptr, len)
        .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
        .build()
}

/// `accept4(fd)`, now, writing the peer's address into `addr` when given.
fn accept_attempt(fd: RawFd, addr: Option<&mut RawAddr>) -> io::Result<usize> {
    let (ptr, len) = match addr {
        Some(a) => {
            a.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            (a.as_mut_ptr(), &mut a.len as *mut libc::socklen_t)
        }
        None => (std::ptr::null_mut(), std::ptr::null_mut()),
    };
    // SAFETY: `ptr`/`len` are null (the kernel writes no address) or point
    // at a `sockaddr_storage` and its length, owned by the op.
    let r = unsafe { libc::accept4(fd, ptr, len, libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK) };
    cvt(r as isize)
}

/// The socket an accept produced: ours to own (or to close, for a caller
/// that is gone).
fn accepted(res: io::Result<usize>) -> io::Result<OwnedFd> {
    let fd = res?;
    // SAFETY: the kernel just created this fd for the op; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `connect(fd, addr)` on a non-blocking socket.
#[derive(Debug)]
pub struct Connect {
    fd: RawFd,
    addr: RawAddr,
    started: bool,
}

/// Connect the non-blocking socket `fd` to `addr`.
///
/// # Cancel safety
///
/// Dropping it leaves the socket in an unspecified connecting state: close it.
pub fn connect(driver: &Handle, fd: RawFd, addr: SocketAddr) -> OpFuture<Connect> {
    OpFuture::new(
        driver,
        Connect {
            fd,
            addr: RawAddr::from_socket_addr(addr),
            started: false,
        },
    )
}

// SAFETY: its entry points into the `sockaddr` the op owns.
unsafe impl Op for Connect {
    type Output = io::Result<()>;
    const KIND: OpKind = OpKind::Connect;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        opcode::Connect::new(types::Fd(self.fd), self.addr.as_ptr(), self.addr.len).build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, Interest::Write)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        if self.started {
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: err/len are valid out-pointers for SO_ERROR.
            let r = unsafe {
                libc::getsockopt(
                    self.fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    &mut err as *mut _ as *mut _,
                    &mut len,
                )
            };
            cvt(r as isize)?;
            if err != 0 {
                return Err(io::Error::from_raw_os_error(err));
            }
        }
        // SAFETY: addr points at a valid sockaddr of length len owned by this op.
        let r = unsafe { libc::connect(self.fd, self.addr.as_ptr(), self.addr.len) };
        match cvt(r as isize) {
            Ok(_) => Ok(0),
            Err(e) if e.raw_os_error() == Some(libc::EISCONN) && self.started => Ok(0),
            Err(e) if would_block_connect(&e) => {
                self.started = true;
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(e),
        }
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        res.map(|_| ())
    }
}

/// `IORING_RECVSEND_POLL_FIRST` (Linux 5.19+; the driver sets it only there):
/// arm the readiness poll before trying the recv.
const RECVSEND_POLL_FIRST: u16 = 1;

/// `recv(fd, buf)`.
#[derive(Debug)]
pub struct Recv<B> {
    fd: RawFd,
    buf: B,
    /// A stream socket (TCP, Unix stream).
    stream: bool,
    /// A short read means the socket was drained (TCP; not Unix streams).
    short_means_drained: bool,
    /// io_uring: wait for data before the first attempt (`POLL_FIRST`).
    poll_first: bool,
}

/// Receive into `buf` (from its start, up to its capacity). `Ok(0)` is EOF.
///
/// # Cancel safety
///
/// See the [module docs](super): on io_uring received bytes may be lost.
pub fn recv<B: IoBufMut>(driver: &Handle, fd: RawFd, buf: B) -> OpFuture<Recv<B>> {
    OpFuture::new(
        driver,
        Recv {
            fd,
            buf,
            stream: false,
            short_means_drained: false,
            poll_first: false,
        },
    )
}

/// [`recv`] on a **TCP** socket (for a Unix stream socket, see
/// [`Recv::unix_stream`]), where a read that returns less than the
/// buffer's capacity means the socket was drained at that moment (but for
/// urgent data, which the epoll driver watches for). The drivers use that: the next
/// `recv_stream` on the fd waits for data first instead of trying a
/// syscall that would fail with `EAGAIN` (epoll: as long as no readiness
/// event arrived since; io_uring: `IORING_RECVSEND_POLL_FIRST`). Behaviour
/// is otherwise that of [`recv`].
///
/// # Cancel safety
///
/// As [`recv`].
pub fn recv_stream<B: IoBufMut>(driver: &Handle, fd: RawFd, buf: B) -> OpFuture<Recv<B>> {
    OpFuture::new(driver, Recv::stream(fd, buf))
}

impl<B: IoBufMut> Recv<B> {
    /// The op of [`recv_stream`], for [`OpFuture::borrowed`].
    pub fn stream(fd: RawFd, buf: B) -> Recv<B> {
        Recv {
            fd,
            buf,
            stream: true,
            short_means_drained: true,
            poll_first: false,
        }
    }

    /// [`stream`](Recv::stream) for a Unix stream socket, where a short
    /// read does not mean the socket is empty: a read stops at a message
    /// that carried file descriptors or credentials (`SCM_RIGHTS`,
    /// `SO_PASSCRED`) with bytes queued behind it, whose readiness edge
    /// the epoll driver has already seen. So the next read always tries
    /// its syscall.
    pub fn unix_stream(fd: RawFd, buf: B) -> Recv<B> {
        Recv {
            short_means_drained: false,
            ..Recv::stream(fd, buf)
        }
    }
}

// SAFETY: its entry points into the buffer it owns (stable heap memory, `bytes_total` long).
unsafe impl<B: IoBufMut> Op for Recv<B> {
    type Output = BufResult<usize, B>;
    const KIND: OpKind = OpKind::Recv;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let len = super::entry_len(self.buf.bytes_total());
        let prio = if self.poll_first {
            RECVSEND_POLL_FIRST
        } else {
            0
        };
        opcode::Recv::new(types::Fd(self.fd), self.buf.stable_mut_ptr(), len)
            .ioprio(prio)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, Interest::Read)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let len = self.buf.bytes_total();
        // SAFETY: the buffer is valid for `len` bytes of writes (IoBufMut
        // contract); the fd stays open while the op lives (`Op` contract).
        unsafe { super::sys::recv(self.fd, self.buf.stable_mut_ptr(), len, false) }
    }
    fn try_now(&mut self) -> Option<io::Result<usize>> {
        // `recv` (not `recv_stream`, whose reads wait as `drains` says): a
        // datagram already queued is taken in the poll, as `RecvFrom`'s.
        if self.stream {
            return None;
        }
        let len = self.buf.bytes_total();
        // SAFETY: as in `attempt`; `MSG_DONTWAIT`, since on io_uring the
        // socket need not be non-blocking.
        Some(unsafe { super::sys::recv(self.fd, self.buf.stable_mut_ptr(), len, true) })
    }
    fn complete(mut self, res: io::Result<usize>) -> Self::Output {
        if let Ok(n) = res {
            // SAFETY: the kernel initialised the first n bytes.
            unsafe { self.buf.set_init(n) };
        }
        (res, self.buf)
    }
    fn drains(&self, n: usize) -> bool {
        self.short_means_drained && n > 0 && n < self.buf.bytes_total()
    }
    fn expect_empty(&mut self) {
        self.poll_first = self.stream;
    }
}

/// `send(fd, buf, MSG_NOSIGNAL)`.
#[derive(Debug)]
pub struct Send<B> {
    fd: RawFd,
    buf: B,
    /// io_uring: make the syscall before submitting ([`Op::try_now`]).
    try_first: bool,
    /// io_uring: the kernel sends every byte before it completes.
    all: bool,
}

/// Send the initialised bytes of `buf`; may send fewer (returns the count).
///
/// # Cancel safety
///
/// See the [module docs](super): on io_uring a dropped send may have sent data.
pub fn send<B: IoBuf>(driver: &Handle, fd: RawFd, buf: B) -> OpFuture<Send<B>> {
    OpFuture::new(driver, Send::new(fd, buf))
}

impl<B: IoBuf> Send<B> {
    /// The op of [`send`], for [`OpFuture::borrowed`].
    pub fn new(fd: RawFd, buf: B) -> Send<B> {
        Send {
            fd,
            buf,
            try_first: true,
            all: false,
        }
    }

    /// On io_uring, once in the kernel, complete only when every byte is
    /// sent (or on an error: then with the count sent, if any), not with
    /// a short count a second op would have to go on from: for a send
    /// that runs behind its caller (a write-behind adapter), whose future
    /// nobody may poll again until the caller's next write. `MSG_WAITALL`
    /// on a stream socket (Linux 5.19 and later; an older kernel may
    /// still complete short). A send made before submitting
    /// ([`Op::try_now`]) may still be short, and so may one of a buffer
    /// above 2 GiB less a page (one entry asks for at most that).
    pub fn all(mut self) -> Send<B> {
        self.all = true;
        self
    }

    /// On io_uring, submit at once, without the send syscall it otherwise
    /// tries first: for a caller that just found the socket full, where
    /// that try could only say `EAGAIN`. (No effect on epoll, where the
    /// syscall is how a send runs.)
    ///
    /// # Examples
    ///
    /// ```
    /// use coro_io::op::{self, OpFuture};
    /// # let h = coro_io::driver::Handle::new(coro_io::DriverKind::Auto)?;
    /// # let (_r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK)?;
    /// # use std::os::fd::AsRawFd;
    /// let send = op::Send::new(w.as_raw_fd(), b"rest".as_slice()).submit_at_once();
    /// let fut = OpFuture::new(&h, send);
    /// # drop(fut);
    /// # std::io::Result::Ok(())
    /// ```
    pub fn submit_at_once(mut self) -> Send<B> {
        self.try_first = false;
        self
    }
}

// SAFETY: its entry points into the buffer it owns (stable heap memory, `bytes_init` long).
unsafe impl<B: IoBuf> Op for Send<B> {
    type Output = BufResult<usize, B>;
    const KIND: OpKind = OpKind::Send;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let len = super::entry_len(offered(self.buf.bytes_init()));
        let all = if self.all { libc::MSG_WAITALL } else { 0 };
        opcode::Send::new(types::Fd(self.fd), self.buf.stable_ptr(), len)
            .flags(libc::MSG_NOSIGNAL | all)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, Interest::Write)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let len = offered(self.buf.bytes_init());
        // SAFETY: the buffer is valid for `len` bytes of reads (IoBuf
        // contract); the fd stays open while the op lives (`Op` contract).
        unsafe { super::sys::send(self.fd, self.buf.stable_ptr(), len, false) }
    }
    fn try_now(&mut self) -> Option<io::Result<usize>> {
        if !self.try_first {
            return None;
        }
        let len = offered(self.buf.bytes_init());
        // SAFETY: as in `attempt`; `MSG_DONTWAIT`, since on io_uring the
        // socket need not be non-blocking.
        Some(unsafe { super::sys::send(self.fd, self.buf.stable_ptr(), len, true) })
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        (res, self.buf)
    }
}

/// What both `recvmsg` ops own: the buffer, room for the source address,
/// and the `iovec` and `msghdr` that the kernel reads, which point into the
/// op (filled by `prepare` before each syscall; for the ring's entry
/// again once the op is on the heap, where the kernel may read them
/// after the poll) and its buffer.
#[derive(Debug)]
struct MsgIn<B> {
    fd: RawFd,
    buf: B,
    addr: RawAddr,
    iov: libc::iovec,
    msg: libc::msghdr,
}

// SAFETY: the raw pointers in iov/msg point into this same op (or its
// owned buffer) and are only used by the syscall; B is Send.
unsafe impl<B: std::marker::Send> std::marker::Send for MsgIn<B> {}

impl<B: IoBufMut> MsgIn<B> {
    fn new(fd: RawFd, buf: B) -> MsgIn<B> {
        // SAFETY: iovec and msghdr are plain old data; zero is valid (filled
        // by `prepare` before use).
        let (iov, msg) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        MsgIn {
            fd,
            buf,
            addr: RawAddr::empty(),
            iov,
            msg,
        }
    }

    fn prepare(&mut self) {
        self.addr.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        self.iov = libc::iovec {
            iov_base: self.buf.stable_mut_ptr().cast(),
            iov_len: self.buf.bytes_total(),
        };
        self.msg.msg_name = self.addr.as_mut_ptr().cast();
        self.msg.msg_namelen = self.addr.len;
        self.msg.msg_iov = &mut self.iov;
        self.msg.msg_iovlen = 1;
        self.msg.msg_flags = 0;
    }

    fn sqe(&mut self, flags: libc::c_int) -> io_uring::squeue::Entry {
        self.prepare();
        opcode::RecvMsg::new(types::Fd(self.fd), &mut self.msg)
            .flags(flags as u32)
            .build()
    }

    fn attempt(&mut self, flags: libc::c_int) -> io::Result<usize> {
        self.prepare();
        // SAFETY: msg points at iov/addr inside this op, iov at the owned buffer.
        cvt(unsafe { libc::recvmsg(self.fd, &mut self.msg, flags) })
    }

    /// After a result of `n`: the buffer holds what the kernel copied (with
    /// `MSG_TRUNC`, `n` may exceed it) and `addr` the source's length.
    fn received(&mut self, n: usize) {
        let filled = n.min(self.buf.bytes_total());
        // SAFETY: the kernel initialised the first `filled` bytes.
        unsafe { self.buf.set_init(filled) };
        self.addr.len = self.msg.msg_namelen;
    }
}

/// `recvmsg(fd)` with one buffer and the source address (UDP `recv_from`);
/// `A` is the address type reported (IP by default, any family with
/// [`recv_from_any`]).
#[derive(Debug)]
pub struct RecvFrom<B, A = SocketAddr> {
    inner: MsgIn<B>,
    _addr: PhantomData<fn() -> A>,
}

/// Receive one datagram into `buf`; resolves to its length and source.
///
/// # Cancel safety
///
/// On io_uring a dropped `recv_from` may lose the datagram.
pub fn recv_from<B: IoBufMut>(driver: &Handle, fd: RawFd, buf: B) -> OpFuture<RecvFrom<B>> {
    recv_from_as(driver, fd, buf)
}

/// [`recv_from`] for any address family (e.g. a Unix-domain datagram
/// socket): the source comes back as a `socket2::SockAddr`.
///
/// # Cancel safety
///
/// As [`recv_from`].
pub fn recv_from_any<B: IoBufMut>(
    driver: &Handle,
    fd: RawFd,
    buf: B,
) -> OpFuture<RecvFrom<B, socket2::SockAddr>> {
    recv_from_as(driver, fd, buf)
}

fn recv_from_as<B: IoBufMut, A: Address>(
    driver: &Handle,
    fd: RawFd,
    buf: B,
) -> OpFuture<RecvFrom<B, A>> {
    let inner = MsgIn::new(fd, buf);
    OpFuture::new(
        driver,
        RecvFrom {
            inner,
            _addr: PhantomData,
        },
    )
}

// SAFETY: its entry points into the `msghdr`, `iovec`, `sockaddr` and buffer the op owns.
unsafe impl<B: IoBufMut, A: Address> Op for RecvFrom<B, A> {
    type Output = BufResult<(usize, A), B>;
    const KIND: OpKind = OpKind::Recv;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        self.inner.sqe(0)
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.inner.fd, Interest::Read)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        self.inner.attempt(0)
    }
    fn try_now(&mut self) -> Option<io::Result<usize>> {
        // A datagram already queued is taken in the poll, as on epoll, not
        // one per turn of the event loop through the ring.
        Some(self.inner.attempt(libc::MSG_DONTWAIT))
    }
    fn complete(mut self, res: io::Result<usize>) -> Self::Output {
        let r = res.and_then(|n| {
            self.inner.received(n);
            let m = &self.inner;
            A::decode(&m.addr.storage, m.msg.msg_namelen).map(|a| (n, a))
        });
        (r, self.inner.buf)
    }
}

/// `sendmsg(fd)` with one buffer to an address (UDP `send_to`).
#[derive(Debug)]
pub struct SendTo<B> {
    fd: RawFd,
    buf: B,
    addr: RawAddr,
    iov: libc::iovec,
    msg: libc::msghdr,
}

// SAFETY: the raw pointers in iov/msg point into this same op (or its
// owned buffer) and are only used by the syscall; B is Send.
unsafe impl<B: std::marker::Send> std::marker::Send for SendTo<B> {}

/// Send `buf` as one datagram to `addr`.
///
/// # Cancel safety
///
/// On io_uring a dropped `send_to` may still send the datagram.
pub fn send_to<B: IoBuf>(
    driver: &Handle,
    fd: RawFd,
    buf: B,
    addr: SocketAddr,
) -> OpFuture<SendTo<B>> {
    // SAFETY: iovec and msghdr are plain old data; zero is valid (filled before use).
    let (iov, msg) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
    OpFuture::new(
        driver,
        SendTo {
            fd,
            buf,
            addr: RawAddr::from_socket_addr(addr),
            iov,
            msg,
        },
    )
}

impl<B: IoBuf> SendTo<B> {
    fn prepare(&mut self) {
        self.iov = libc::iovec {
            iov_base: self.buf.stable_ptr() as *mut _,
            iov_len: self.buf.bytes_init(),
        };
        self.msg.msg_name = self.addr.as_mut_ptr().cast();
        self.msg.msg_namelen = self.addr.len;
        self.msg.msg_iov = &mut self.iov;
        self.msg.msg_iovlen = 1;
    }
}

// SAFETY: its entry points into the `msghdr`, `iovec`, `sockaddr` and buffer the op owns.
unsafe impl<B: IoBuf> Op for SendTo<B> {
    type Output = BufResult<usize, B>;
    const KIND: OpKind = OpKind::Send;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        self.prepare();
        opcode::SendMsg::new(types::Fd(self.fd), &self.msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, Interest::Write)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        self.prepare();
        // SAFETY: msg points at iov/addr inside this op, iov at the owned buffer.
        cvt(unsafe { libc::sendmsg(self.fd, &self.msg, libc::MSG_NOSIGNAL) })
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        (res, self.buf)
    }
}

/// Wait until `fd` is ready (`poll(2)` semantics; any fd type).
#[derive(Debug)]
pub struct PollFd {
    fd: RawFd,
    interest: Interest,
}

/// Wait until `fd` is ready for `interest`. Resolves to the `poll(2)`
/// `revents` bits (`libc::POLLIN`, `POLLOUT`, `POLLHUP`, `POLLERR`, ...).
///
/// On epoll the wait registers `fd` with the driver, as every op that
/// waits does: call [`Handle::release_fd`] before closing `fd` (or close
/// it with [`close`](crate::op::close)), or the next file with that number
/// is taken for one the driver already watches and its first wait never
/// ends. ([`IoScheduler::poll`](crate::IoScheduler::poll) does that itself.)
///
/// # Cancel safety
///
/// Cancel safe: waiting consumes nothing.
pub fn poll_fd(driver: &Handle, fd: RawFd, interest: Interest) -> OpFuture<PollFd> {
    OpFuture::new(driver, PollFd { fd, interest })
}

/// `poll_fd`'s question answered now, without waiting or registering:
/// the `revents` bits, or `None` if `fd` is not ready.
pub(crate) fn poll_now(fd: RawFd, interest: Interest) -> io::Result<Option<u32>> {
    let mut p = PollFd { fd, interest };
    loop {
        return match p.attempt() {
            Ok(rev) => Ok(Some(rev as u32)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
        };
    }
}

impl PollFd {
    fn events(&self) -> libc::c_short {
        let mut ev = 0;
        if self.interest.readable() {
            ev |= libc::POLLIN | libc::POLLRDHUP;
        }
        if self.interest.writable() {
            ev |= libc::POLLOUT;
        }
        ev
    }
}

// SAFETY: its entry points into no memory.
unsafe impl Op for PollFd {
    type Output = io::Result<u32>;
    const KIND: OpKind = OpKind::Poll;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        opcode::PollAdd::new(types::Fd(self.fd), self.events() as u16 as u32).build()
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, self.interest)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        let mut p = libc::pollfd {
            fd: self.fd,
            events: self.events(),
            revents: 0,
        };
        // SAFETY: one valid pollfd, zero timeout.
        let n = cvt(unsafe { libc::poll(&mut p, 1, 0) } as isize)?;
        if n == 0 || p.revents == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(p.revents as u16 as usize)
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        res.map(|r| r as u32)
    }
}

/// `accept4(fd)` without the peer address (any socket family).
#[derive(Debug)]
pub struct AcceptFd {
    fd: RawFd,
    orphans: Orphans,
}

impl AcceptFd {
    /// As [`Accept::new`].
    fn new(fd: RawFd, inbox: Option<&Arc<AcceptInbox>>) -> AcceptFd {
        AcceptFd {
            fd,
            orphans: Orphans {
                inbox: inbox.cloned(),
                late: None,
            },
        }
    }
}

/// Accept one connection on the listening socket `fd` (non-blocking,
/// close-on-exec) without asking for the peer address, so it works for every
/// family (Unix-domain listeners included; [`accept`] only speaks IPv4/IPv6).
///
/// # Cancel safety
///
/// Cancel safe: if the future is dropped after the kernel accepted a
/// connection for it, the driver closes that socket (or keeps it in an
/// [`AcceptInbox`]: [`accept_fd_keeping`]).
pub fn accept_fd(driver: &Handle, fd: RawFd) -> OpFuture<AcceptFd> {
    OpFuture::new(driver, AcceptFd::new(fd, None))
}

/// [`accept_fd`], keeping a connection accepted for a dropped future in
/// `inbox` for the next accept. `fd` must be non-blocking: on io_uring
/// every accept is tried at once, in the poll, by a non-blocking
/// `accept4(2)` (as on epoll), so that a burst of clients is not taken
/// one per turn of the event loop. Unlike [`accept_keeping`]'s, tried
/// every time: the kernel says whether more connections wait only for
/// TCP accepts, not for a Unix-domain listener's, so an accept costs a
/// failed syscall whenever the backlog is empty. (Not on SQPOLL rings,
/// as for [`accept_keeping`].)
///
/// # Cancel safety
///
/// Cancel safe: nothing accepted is lost or closed.
pub fn accept_fd_keeping(
    driver: &Handle,
    fd: RawFd,
    inbox: &Arc<AcceptInbox>,
) -> OpFuture<AcceptFd> {
    OpFuture::new(driver, AcceptFd::new(fd, Some(inbox)))
}

// SAFETY: its entry points into no memory.
unsafe impl Op for AcceptFd {
    type Output = io::Result<OwnedFd>;
    const KIND: OpKind = OpKind::Accept;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        accept_sqe(self.fd, None)
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.fd, Interest::Read)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        accept_attempt(self.fd, None)
    }
    fn try_now(&mut self) -> Option<io::Result<usize>> {
        // Every time (see `accept_fd_keeping`): the kernel says whether
        // more connections wait only for TCP (inet) accepts.
        self.orphans.inbox.is_some().then(|| self.attempt())
    }
    fn complete(self, res: io::Result<usize>) -> Self::Output {
        accepted(res)
    }
    fn orphaned(&mut self, res: io::Result<usize>) {
        self.orphans.accepted(res);
    }
}

/// What [`recv_msg`] received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecvMeta {
    /// The raw `recvmsg` result: bytes received, or with `MSG_TRUNC` in the
    /// flags on a datagram socket, the datagram's full length (which may
    /// exceed the buffer; the buffer holds `len.min(capacity)` bytes).
    pub len: usize,
    /// The source address, when the kernel gave an IPv4/IPv6 one.
    pub addr: Option<SocketAddr>,
    /// The `msg_flags` the kernel returned (`libc::MSG_TRUNC` when the
    /// datagram did not fit, `MSG_CTRUNC`, ...).
    pub flags: libc::c_int,
}

impl RecvMeta {
    /// Whether the datagram was cut to fit the buffer (`MSG_TRUNC` in `msg_flags`).
    pub fn truncated(&self) -> bool {
        self.flags & libc::MSG_TRUNC != 0
    }
}

/// `recvmsg(fd, flags)` with one buffer, reporting the source address and
/// the returned `msg_flags` (datagram truncation).
#[derive(Debug)]
pub struct RecvMsg<B> {
    inner: MsgIn<B>,
    flags: libc::c_int,
}

/// Receive one message into `buf` with `recvmsg(2)` `flags` (for example
/// `libc::MSG_TRUNC` on a datagram socket, to learn a truncated datagram's
/// real length). Resolves to [`RecvMeta`].
///
/// # Cancel safety
///
/// On io_uring a dropped `recv_msg` may lose the message.
pub fn recv_msg<B: IoBufMut>(
    driver: &Handle,
    fd: RawFd,
    buf: B,
    flags: libc::c_int,
) -> OpFuture<RecvMsg<B>> {
    let mut buf = buf;
    if flags & libc::MSG_TRUNC != 0 {
        // With `MSG_TRUNC` a stream socket discards the bytes it counts
        // (nothing is copied), a datagram socket copies what fits: zeroed
        // first, the buffer's first `n` bytes are initialised either way.
        let (init, total) = (buf.bytes_init(), buf.bytes_total());
        // SAFETY: bytes `init..total` of the buffer are its own, writable.
        unsafe { std::ptr::write_bytes(buf.stable_mut_ptr().add(init), 0, total - init) };
    }
    let inner = MsgIn::new(fd, buf);
    OpFuture::new(driver, RecvMsg { inner, flags })
}

// SAFETY: its entry points into the `msghdr`, `iovec`, address and buffer the op owns.
unsafe impl<B: IoBufMut> Op for RecvMsg<B> {
    type Output = BufResult<RecvMeta, B>;
    const KIND: OpKind = OpKind::Recv;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        self.inner.sqe(self.flags)
    }
    fn readiness(&self) -> Readiness {
        Readiness::Fd(self.inner.fd, Interest::Read)
    }
    fn attempt(&mut self) -> io::Result<usize> {
        self.inner.attempt(self.flags | libc::MSG_DONTWAIT)
    }
    fn complete(mut self, res: io::Result<usize>) -> Self::Output {
        let r = res.map(|n| {
            self.inner.received(n);
            let m = &self.inner;
            let addr = if m.msg.msg_namelen == 0 {
                None
            } else {
                m.addr.socket_addr().ok()
            };
            RecvMeta {
                len: n,
                addr,
                flags: m.msg.msg_flags,
            }
        });
        (r, self.inner.buf)
    }
}

#[cfg(test)]
mod inbox_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Wake, Waker};

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn fd() -> OwnedFd {
        rustix::pipe::pipe().unwrap().0
    }

    fn waiting(inbox: &AcceptInbox) -> usize {
        crate::lock(&inbox.0).waiting.len()
    }

    /// Accepts that wait on the inbox and end another way (their kernel
    /// accept won, or they were dropped) leave no waker behind: a
    /// listener that never keeps a connection (epoll) must not collect
    /// one per accept.
    #[test]
    fn a_finished_wait_leaves_the_line() {
        let inbox = AcceptInbox::new();
        for _ in 0..100 {
            let (_c, w) = waker();
            let mut wait = inbox.wait();
            assert!(wait.poll_take(&mut Context::from_waker(&w)).is_pending());
            assert_eq!(waiting(&inbox), 1);
        }
        assert_eq!(waiting(&inbox), 0);
    }

    /// An accept that takes a kept connection out of turn lets go of its
    /// place's waker after the inbox's lock: it may be the last reference
    /// to a task holding another wait on the same inbox, whose drop takes
    /// that lock. It was dropped under it (a deadlock).
    #[test]
    fn a_wait_that_takes_a_connection_drops_its_waker_after_the_lock() {
        struct Holds(#[allow(dead_code)] std::sync::Mutex<Option<InboxWait<'static>>>);
        impl Wake for Holds {
            fn wake(self: Arc<Self>) {}
        }
        let inbox: &'static AcceptInbox = Box::leak(Box::new(AcceptInbox::new()));
        let (_ca, wa) = waker();
        let mut first = inbox.wait();
        assert!(first.poll_take(&mut Context::from_waker(&wa)).is_pending());
        let mut owned = inbox.wait();
        assert!(
            owned
                .poll_take(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        let owner = Waker::from(Arc::new(Holds(std::sync::Mutex::new(Some(owned)))));
        let mut taker = inbox.wait();
        assert!(
            taker
                .poll_take(&mut Context::from_waker(&owner))
                .is_pending()
        );
        drop(owner);
        inbox.put(fd()); // wakes `first`; `taker` comes first
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = taker.poll_take(&mut Context::from_waker(Waker::noop()));
            let _ = tx.send(got.is_ready());
        });
        let Ok(got) = rx.recv_timeout(std::time::Duration::from_secs(10)) else {
            // The deadlocked thread holds the lock: a drop would wait too.
            std::mem::forget(first);
            panic!("taking a kept connection did not return");
        };
        assert!(got);
        drop(first);
        assert_eq!(waiting(inbox), 0);
    }

    /// A kept connection wakes the first in line only; if that one ends
    /// without taking it, the next is woken; the one that takes it gets it.
    #[test]
    fn a_kept_connection_wakes_one_waiter_at_a_time() {
        let inbox = AcceptInbox::new();
        let (ca, wa) = waker();
        let (cb, wb) = waker();
        let mut a = inbox.wait();
        let mut b = inbox.wait();
        assert!(a.poll_take(&mut Context::from_waker(&wa)).is_pending());
        assert!(b.poll_take(&mut Context::from_waker(&wb)).is_pending());
        inbox.put(fd());
        assert_eq!(
            (ca.0.load(Ordering::SeqCst), cb.0.load(Ordering::SeqCst)),
            (1, 0)
        );
        drop(a); // its kernel accept won: the connection is the next one's
        assert_eq!(cb.0.load(Ordering::SeqCst), 1);
        assert!(b.poll_take(&mut Context::from_waker(&wb)).is_ready());
        drop(b);
        assert!(inbox.is_empty());
        assert_eq!(waiting(&inbox), 0);
    }
}
