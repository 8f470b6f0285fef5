//! [`TlsStream`]: rustls driven over a [`TcpStream`].
//!
//! All TLS state lives in the stream, behind one mutex that is never held
//! across an `await`: the rustls connection, the ciphertext received and
//! not yet given to rustls, and the one `recv` and one `send` op in flight
//! with the buffers they own. A future that reads or writes only drives
//! that state; dropping it leaves everything in place for the next call.
//! That is what makes reads lossless even on io_uring without its receive
//! queue, where a dropped plain-TCP `recv` op loses the bytes the kernel
//! already copied. (With the queue, rustls reads from it directly.)
//!
//! On epoll nothing is in flight between polls, so no op is needed:
//! ciphertext leaves straight from rustls' buffers (a non-blocking
//! `sendmsg` when the socket is writable), and is received into the
//! stream's own buffer when the socket is readable. On io_uring bulk data
//! skips one copy each way: ciphertext batches of 8 KiB and more are first
//! offered to the socket straight from rustls' buffers, and after a
//! receive that filled its buffer the next one is a non-blocking `recv`
//! straight into rustls' buffer. Only what the socket cannot take or give
//! at once goes through the driver's owned-buffer ops (and is copied).
//! All of it happens inside a poll, with the state locked, so cancel
//! safety is the same as for the ops.
//!
//! Several tasks may use one stream (`&self` methods, or `&TlsStream`'s
//! `futures_io` impls): each in-flight op wakes every task that waited on
//! it, through a small waker list. Writers take turns: the ciphertext goes
//! out in batches, one send op at a time; `write` and `write_all` encrypt
//! in the order they came (a place in line, [`Turn`]) and then wait for
//! the batch that carries their bytes, not for the stream to go idle, so
//! a task that writes without pause cannot starve another.

use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, BufRead, Write as _};
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use coro_io::buf::{self, BufResult, IoBuf, IoBufMut, Slice};
use coro_io::op::{self, OpFuture};
use rustls::pki_types::CertificateDer;
use rustls::{Connection, ProtocolVersion, SupportedCipherSuite};

use super::{TlsFailure, tls_error};
use crate::tcp::TcpStream;
use coro_io::wake_list::{Evicted, WakeList};

/// Ciphertext received per `recv` (a TLS record is at most ~16.7 KiB).
const RECV_BUF: usize = 32 * 1024;

thread_local! {
    /// epoll: receive buffers of connections waiting for input, per
    /// thread. A connection whose socket is empty gives its buffer back
    /// here and takes one when the socket is readable again, so an idle
    /// connection holds none (10,000 idle connections would hold 320 MiB)
    /// and a busy one costs no allocation per read.
    static SPARE_RECV: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare receive buffers a thread keeps at most (2 MiB).
const SPARE_RECV_MAX: usize = 64;

/// A receive buffer of `RECV_BUF` bytes, a spare one if the thread has one.
fn take_recv_buf() -> Vec<u8> {
    SPARE_RECV
        .try_with(|s| s.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(RECV_BUF))
}

/// Keep `buf` (empty) for the next connection that reads on this thread.
fn give_recv_buf(mut buf: Vec<u8>) {
    if buf.capacity() != RECV_BUF {
        return;
    }
    buf.clear();
    let _ = SPARE_RECV.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_RECV_MAX {
            s.push(buf);
        }
    });
}

/// Most plaintext one write encrypts before it is sent (rustls' own
/// default limit of buffered ciphertext is also 64 KiB).
const WRITE_CHUNK: usize = 64 * 1024;

/// Receives one poll of a read may make before it yields (see
/// `poll_read_locked`): 16 full receive buffers, 512 KiB.
const MAX_RECEIVES_PER_READ_POLL: u32 = 16;
/// How long a failed handshake may take to deliver its alert to the peer.
const ALERT_BOUND: Duration = Duration::from_secs(1);

/// A TLS connection (client or server side) over a [`TcpStream`], made by
/// [`TlsAcceptor::accept`](super::TlsAcceptor::accept) or
/// [`TlsConnector::connect`](super::TlsConnector::connect).
///
/// I/O comes two ways, as for `TcpStream`:
///
/// * owned buffers: [`read`](Self::read), [`write`](Self::write),
///   [`write_all`](Self::write_all), [`flush`](Self::flush),
///   [`shutdown`](Self::shutdown); all take `&self`, so one task may read
///   while another writes (share the stream with `Arc`);
/// * [`futures_io::AsyncRead`] + [`AsyncWrite`](futures_io::AsyncWrite),
///   on `TlsStream` and on `&TlsStream`.
///
/// Both go through the same state, so they can be mixed freely (unlike
/// `TcpStream`'s adapter, nothing is buffered twice).
///
/// **End of stream.** A read returns `Ok(0)` only after the peer's
/// `close_notify`. A peer that closes the TCP connection without one
/// (the data may have been truncated by an attacker) makes the read fail
/// with `ErrorKind::UnexpectedEof`. Dropping a `TlsStream` closes the
/// socket without `close_notify`: call [`shutdown`](Self::shutdown) first.
///
/// **Errors.** TLS protocol errors (bad records, alerts from the peer,
/// certificate problems) are `ErrorKind::InvalidData`, and the
/// `rustls::Error` is the `io::Error`'s [`source`](std::error::Error::source)
/// (see [`rustls_error`](super::rustls_error)). Socket errors keep their
/// kind. Once a read or a write failed, later ones fail the same way.
/// Plaintext that arrived before a bad record is read before the error.
/// A TLS error on the read side also fails later writes: rustls answers
/// it with a fatal alert (sent at once), and nothing may follow that.
///
/// # Examples
///
/// See the [module docs](super).
pub struct TlsStream {
    state: Mutex<State>,
    /// Tasks waiting for the in-flight `recv`.
    rd: WakeList,
    /// Tasks waiting for the in-flight `send`.
    wr: WakeList,
    info: Info,
    // Last: the ops in `state` are dropped (cancelled) before the fd closes.
    tcp: TcpStream,
}

struct State {
    conn: Connection,
    rx: Rx,
    tx: Tx,
    /// The TCP peer closed (a `recv` returned 0).
    tcp_eof: bool,
    /// The last receive filled its buffer: more is probably waiting, so
    /// the next one reads the socket directly (see [`DirectRecv`]).
    rx_more: bool,
    read_failed: Option<Sticky>,
    write_failed: Option<Sticky>,
    close_notify_sent: bool,
    tcp_write_shut: bool,
    /// Writers (`write`, `write_all`) waiting for their turn to encrypt:
    /// place in line and waker, first come first. See [`Turn`].
    line: VecDeque<(u64, Waker)>,
    next_place: u64,
    /// Ciphertext batches taken out of rustls so far, and how many of them
    /// the kernel took whole (equal when nothing is being sent). A write
    /// is flushed once the batch that carried its bytes has ended.
    batches_begun: u64,
    batches_ended: u64,
    /// Tasks the full lists of waiters (`rd`, `wr`) let go of while this
    /// was locked: woken when the lock is let go of (see [`Locked`]).
    evicted: Evicted,
}

/// The stream's state, locked; letting go of it wakes the tasks a full
/// list of waiters let go of meanwhile, after the lock (a waker's wake,
/// or drop, may run anything, this stream's own methods included).
struct Locked<'a>(Option<MutexGuard<'a, State>>);

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        self.0.as_ref().expect("held until dropped")
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        self.0.as_mut().expect("held until dropped")
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let evicted = self
            .0
            .as_mut()
            .filter(|st| !st.evicted.is_empty())
            .map(|st| std::mem::take(&mut st.evicted));
        drop(self.0.take());
        drop(evicted);
    }
}

enum Rx {
    /// `buf[pos..]` was received and not yet given to rustls.
    Idle {
        buf: Vec<u8>,
        pos: usize,
    },
    Busy(OpFuture<op::Recv<Vec<u8>>>),
}

enum Tx {
    Idle(Vec<u8>),
    /// epoll: a batch is going out straight from rustls' buffers, as the
    /// socket takes it (see [`ReadySend`]); epoll needs no owned buffer.
    Ready,
    /// Ciphertext being sent (what is left of it).
    Busy(OpFuture<op::Send<Slice<Vec<u8>>>>),
}

impl State {
    /// rustls rejected what the peer sent (a bad record, a fatal alert):
    /// reads fail from now on. Records before the bad one may have left
    /// plaintext: that is read first (`Ok(true)`, rustls took bytes), the
    /// error after it, as a socket's error comes after the bytes before
    /// it.
    fn packets_failed(&mut self, e: rustls::Error) -> Poll<io::Result<bool>> {
        let e = tls_error("TLS", e);
        self.read_failed = Some(Sticky::of(&e));
        if matches!(self.conn.reader().fill_buf(), Ok(b) if !b.is_empty()) {
            Poll::Ready(Ok(true))
        } else {
            Poll::Ready(Err(e))
        }
    }
}

/// An error that keeps coming back (the stream is broken for that direction).
#[derive(Clone)]
struct Sticky {
    kind: io::ErrorKind,
    msg: String,
    tls: Option<rustls::Error>,
    /// The OS error, to be found again through `raw_os_error`.
    os: Option<i32>,
}

impl Sticky {
    fn of(e: &io::Error) -> Sticky {
        let tls = e
            .get_ref()
            .and_then(|i| i.downcast_ref::<TlsFailure>())
            .map(|f| f.source.clone());
        Sticky {
            kind: e.kind(),
            msg: e.to_string(),
            tls,
            os: crate::raw_os_error(e),
        }
    }

    fn error(&self) -> io::Error {
        match &self.tls {
            Some(t) => io::Error::new(
                self.kind,
                TlsFailure {
                    context: "TLS connection failed earlier".into(),
                    source: t.clone(),
                },
            ),
            None => {
                let e = match self.os {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(self.kind, self.msg.clone()),
                };
                crate::socket::context(e, "failed earlier")
            }
        }
    }
}

/// Ciphertext of at least this many bytes is first offered to the socket
/// directly (a non-blocking `sendmsg` from rustls' own buffers) instead of
/// being copied into an owned buffer for a `send` op. Below it, the copy
/// is cheap and the op makes the same syscall (epoll; io_uring tries it
/// before submitting); above it, the copy costs more (64 KiB TLS echo:
/// docs/BENCHMARKS.md).
const DIRECT_SEND: usize = 8 * 1024;

/// The `io::Write` rustls' `write_tls` sends through when there is no op in
/// flight: `WouldBlock` for batches under `min` and when the socket is
/// full (the caller then falls back to an op, or on epoll to waiting for
/// the socket), never blocking, never `SIGPIPE`. `full`: the socket said
/// `EAGAIN` (so the op need not try again before it waits).
struct DirectSend<'a> {
    sock: std::os::fd::BorrowedFd<'a>,
    full: bool,
    /// Batches smaller than this are left to the op (`DIRECT_SEND`; 1
    /// on epoll, which sends everything directly).
    min: usize,
}

impl io::Write for DirectSend<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total = bufs.iter().map(|b| b.len()).sum::<usize>();
        if total < self.min {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Test builds: the faults the send op would meet (a transient one
        // sends this batch through the op instead; a short write offers
        // half of it).
        #[cfg(feature = "fault-injection")]
        let shortened = faulty_send(bufs)?;
        #[cfg(feature = "fault-injection")]
        let bufs = &shortened[..];
        use rustix::net::{SendAncillaryBuffer, SendFlags};
        loop {
            // rustix's direct syscall: libc's wrapper would also make it a
            // thread cancellation point, at two more calls per send.
            match rustix::net::sendmsg(
                self.sock,
                bufs,
                &mut SendAncillaryBuffer::default(),
                SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
            ) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    let e = io::Error::from(e);
                    if e.kind() == io::ErrorKind::WouldBlock {
                        self.full = true;
                    }
                    return Err(e);
                }
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `io::Write` rustls' `write_tls` sends through on epoll: a
/// non-blocking `sendmsg` of its queued records, straight from its
/// buffers, made when the socket is writable (`WouldBlock` until then,
/// with the waker of `cx` armed). Nothing is in flight between polls,
/// so nothing is copied into an owned buffer for an op.
struct ReadySend<'a, 'b, 'c> {
    fd: &'a coro_io::driver::RegisteredFd,
    cx: &'b mut Context<'c>,
}

impl io::Write for ReadySend<'_, '_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self.fd.poll_write_vectored_direct(self.cx, bufs) {
            Poll::Ready(Ok(0)) if bufs.iter().any(|b| !b.is_empty()) => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the socket accepted no bytes",
            )),
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Hand rustls' queued ciphertext to `out` until it holds none;
/// `Ok(true)` if `out` said `WouldBlock` first.
fn send_queued(conn: &mut Connection, out: &mut dyn io::Write) -> io::Result<bool> {
    while conn.wants_write() {
        match conn.write_tls(out) {
            // (rustls had nothing after all: no spin)
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// The `io::Read` rustls' `read_tls` reads through after a receive that
/// filled its buffer: one non-blocking `recv` straight into rustls' buffer.
/// `WouldBlock` when nothing is waiting (the caller then starts a `recv`
/// op); `full` tells whether this read filled what rustls offered.
struct DirectRecv<'a> {
    sock: std::os::fd::BorrowedFd<'a>,
    full: bool,
}

impl io::Read for DirectRecv<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "fault-injection")]
        if let Some(e) = coro_io::fault::before_op(coro_io::op::OpKind::Recv) {
            return Err(transient_is_would_block(e));
        }
        loop {
            match rustix::net::recv(self.sock, &mut *buf, rustix::net::RecvFlags::DONTWAIT) {
                Ok((n, _)) => {
                    self.full = n == buf.len();
                    return Ok(n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The `io::Read` rustls' `read_tls` reads through where the driver keeps
/// a receive queue for the socket: `WouldBlock` when it is empty (the
/// waker of `cx` is then kept by the driver).
struct QueuedRecv<'a, 'b, 'c> {
    fd: &'a coro_io::driver::RegisteredFd,
    cx: &'b mut Context<'c>,
}

impl io::Read for QueuedRecv<'_, '_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.fd.poll_recv(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// Fault injection for a direct send of `bufs`: an injected error, or the
/// slices that the (maybe shortened) send offers.
#[cfg(feature = "fault-injection")]
fn faulty_send<'a>(bufs: &'a [io::IoSlice<'a>]) -> io::Result<Vec<io::IoSlice<'a>>> {
    if let Some(e) = coro_io::fault::before_op(coro_io::op::OpKind::Send) {
        return Err(transient_is_would_block(e));
    }
    Ok(coro_io::fault::write_slices(bufs))
}

/// An injected transient error of a direct syscall did nothing: fall back
/// to the op (as `WouldBlock` does); a hard one stands.
#[cfg(feature = "fault-injection")]
fn transient_is_would_block(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock => io::ErrorKind::WouldBlock.into(),
        _ => e,
    }
}

/// What the handshake settled, kept so accessors can hand out references.
#[derive(Debug, Default)]
struct Info {
    alpn: Option<Vec<u8>>,
    server_name: Option<String>,
    peer_certs: Option<Vec<CertificateDer<'static>>>,
    version: Option<ProtocolVersion>,
    suite: Option<SupportedCipherSuite>,
}

/// A writer's place in the stream's line of writers (`State::line`),
/// taken when it has to wait to encrypt. Dropped (the write returned or
/// its future was dropped) it leaves the line, passing the turn on if it
/// was at the front. A pending write that is never polled again but not
/// dropped keeps the writers behind it waiting, as a queued lock acquire
/// does.
struct Turn<'a> {
    stream: &'a TlsStream,
    place: Option<u64>,
}

impl<'a> Turn<'a> {
    fn new(stream: &'a TlsStream) -> Turn<'a> {
        Turn {
            stream,
            place: None,
        }
    }

    /// Join the line (the first time) and keep the waker there current.
    /// Returns the waker it replaced, to be dropped after the stream's
    /// lock: the line held the writer's only copy, and its drop may be the
    /// last reference to a task whose drop uses this stream.
    #[must_use = "drop the replaced waker after the stream's lock"]
    fn wait(&mut self, st: &mut State, w: &Waker) -> Option<Waker> {
        match self.place {
            None => {
                let p = st.next_place;
                st.next_place += 1;
                st.line.push_back((p, w.clone()));
                self.place = Some(p);
                None
            }
            Some(p) => {
                let (_, x) = st.line.iter_mut().find(|(q, _)| *q == p)?;
                (!x.will_wake(w)).then(|| std::mem::replace(x, w.clone()))
            }
        }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let Some(p) = self.place.take() else {
            return;
        };
        let mut st = self.stream.lock();
        let Some(i) = st.line.iter().position(|(q, _)| *q == p) else {
            return;
        };
        // Its waker is dropped after the lock (see `wait`).
        let mine = st.line.remove(i);
        let next = (i == 0).then(|| self.stream.next_in_line(&st));
        drop(st);
        drop(mine);
        if let Some(w) = next {
            w.wake();
        }
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match &self.lock().conn {
            Connection::Client(_) => "client",
            Connection::Server(_) => "server",
        };
        f.debug_struct("TlsStream")
            .field("side", &side)
            .field("tcp", &self.tcp)
            .field("version", &self.info.version)
            .field("cipher_suite", &self.info.suite.map(|s| s.suite()))
            .field(
                "alpn",
                &self.info.alpn.as_deref().map(String::from_utf8_lossy),
            )
            .field("server_name", &self.info.server_name)
            .finish()
    }
}

impl TlsStream {
    pub(crate) fn new(tcp: TcpStream, conn: Connection) -> TlsStream {
        // Plaintext exchanged through the TCP stream's `futures_io` adapter
        // before (STARTTLS): bytes it received go to rustls first, and its
        // receive and send in flight become ours, so nothing is lost or
        // reordered.
        let taken = tcp.inner.take_adapter();
        let rx = match (taken.unread, taken.recv) {
            (Some((buf, pos)), _) => Rx::Idle { buf, pos },
            (None, Some(f)) => Rx::Busy(f),
            (None, None) => Rx::Idle {
                buf: Vec::new(),
                pos: 0,
            },
        };
        let tx = taken.send.map_or_else(|| Tx::Idle(Vec::new()), Tx::Busy);
        let batches_begun = u64::from(matches!(tx, Tx::Busy(_)));
        TlsStream {
            state: Mutex::new(State {
                conn,
                rx,
                tx,
                tcp_eof: false,
                rx_more: false,
                read_failed: taken.recv_failed.as_ref().map(Sticky::of),
                write_failed: taken.send_failed.as_ref().map(Sticky::of),
                close_notify_sent: false,
                tcp_write_shut: false,
                line: VecDeque::new(),
                next_place: 0,
                batches_begun,
                batches_ended: 0,
                evicted: Evicted::default(),
            }),
            rd: WakeList::new(),
            wr: WakeList::new(),
            info: Info::default(),
            tcp,
        }
    }

    fn lock(&self) -> Locked<'_> {
        Locked(Some(self.state.lock().unwrap_or_else(|e| e.into_inner())))
    }

    /// Run the handshake within `timeout`; `peer` names the other side in
    /// errors. On a TLS error the alert rustls queued is sent first (within
    /// a second), so the peer learns why.
    pub(crate) async fn handshake(&mut self, timeout: Duration, peer: &str) -> io::Result<()> {
        let sched = self.tcp.scheduler().clone();
        let res = match sched
            .timeout(timeout, poll_fn(|cx| self.poll_handshake(cx)))
            .await
        {
            Ok(r) => r,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("TLS handshake with {peer} timed out after {timeout:?}"),
                ));
            }
        };
        match res {
            Ok(()) => {
                let info = Info::of(&self.lock().conn);
                self.info = info;
                Ok(())
            }
            Err(e) => {
                if self.lock().conn.wants_write() {
                    let _ = sched.timeout(ALERT_BOUND, self.flush()).await;
                }
                Err(with_context(
                    e,
                    &format!("TLS handshake with {peer} failed"),
                ))
            }
        }
    }

    fn poll_handshake(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        loop {
            let sent = self.poll_send(&mut st, cx)?;
            if !st.conn.is_handshaking() {
                // Our last flight (client Finished, server tickets) must be out.
                return sent.map(Ok);
            }
            if !st.conn.wants_read() {
                if sent.is_pending() {
                    return Poll::Pending;
                }
                // Handshaking, nothing to send, and rustls takes no more
                // input: the peer sent close_notify mid-handshake
                // (RUSTSEC-2024-0336 made other stacks spin here).
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer sent close_notify before the handshake finished",
                )));
            }
            let fed = ready!(self.poll_recv(&mut st, cx))?;
            if !fed && st.tcp_eof {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed the connection before the handshake finished",
                )));
            }
        }
    }

    /// Send everything rustls has queued. `Ready(Ok)` once it is all with
    /// the kernel; `Pending` with the task registered on the send op.
    ///
    /// Its ops run without the task's budget (see `coro_io::coop`): they
    /// are polled with the stream's waker lists, under the state lock,
    /// where a budget yield would wake every waiting task with the lock
    /// held (and a write could take bytes whose send then waits
    /// unstarted). Reads and writes count against the budget once each,
    /// before they lock.
    fn poll_send(&self, st: &mut State, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        coro_io::coop::without_budget(|| self.poll_send_ops(st, cx))
    }

    fn poll_send_ops(&self, st: &mut State, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(f) = &st.write_failed {
            return Poll::Ready(Err(f.error()));
        }
        loop {
            match &mut st.tx {
                Tx::Busy(fut) => {
                    let evicted = self.wr.register(cx.waker());
                    st.evicted.absorb(evicted);
                    let mut wcx = Context::from_waker(self.wr.waker());
                    let Poll::Ready((res, mut rest)) = Pin::new(fut).poll(&mut wcx) else {
                        self.readers_push_sends(st);
                        return Poll::Pending;
                    };
                    match res {
                        Ok(n) if n > 0 || rest.bytes_init() == 0 => {
                            rest.advance(n);
                            st.tx = if rest.bytes_init() == 0 {
                                st.batches_ended += 1;
                                Tx::Idle(rest.into_inner())
                            } else {
                                Tx::Busy(OpFuture::new(
                                    self.tcp.inner.sock.driver(),
                                    op::Send::new(self.tcp.inner.sock.raw(), rest).all(),
                                ))
                            };
                        }
                        other => {
                            st.tx = Tx::Idle(rest.into_inner());
                            let e = other.err().unwrap_or_else(|| {
                                io::Error::new(
                                    io::ErrorKind::WriteZero,
                                    "the socket accepted no bytes",
                                )
                            });
                            st.write_failed = Some(Sticky::of(&e));
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                Tx::Ready => return self.poll_send_ready(st, cx),
                Tx::Idle(_) => {
                    if !st.conn.wants_write() {
                        return Poll::Ready(Ok(()));
                    }
                    // All rustls holds now goes out as one batch.
                    st.batches_begun += 1;
                    if self.tcp.inner.sock.registered().direct_io() {
                        st.tx = Tx::Ready;
                        continue;
                    }
                    // Large records go to the socket straight from rustls'
                    // buffer (no copy); what the socket does not take now,
                    // and small records, are copied and sent by an op.
                    let mut direct = DirectSend {
                        sock: self.tcp.inner.sock.fd(),
                        full: false,
                        min: DIRECT_SEND,
                    };
                    if let Err(e) = send_queued(&mut st.conn, &mut direct) {
                        st.write_failed = Some(Sticky::of(&e));
                        return Poll::Ready(Err(e));
                    }
                    if !st.conn.wants_write() {
                        st.batches_ended += 1;
                        return Poll::Ready(Ok(()));
                    }
                    let Tx::Idle(buf) = &mut st.tx else {
                        unreachable!("only this branch changes st.tx")
                    };
                    let mut v = std::mem::take(buf);
                    v.clear();
                    while st.conn.wants_write() {
                        // Writing into a Vec cannot fail.
                        st.conn.write_tls(&mut v)?;
                    }
                    // All of it, once in the kernel: a short completion
                    // would wait for a poll of this stream to go on, and
                    // the writer may be waiting for a reply instead.
                    let mut send = op::Send::new(self.tcp.inner.sock.raw(), Slice::new(v, 0)).all();
                    if direct.full {
                        send = send.submit_at_once();
                    }
                    st.tx = Tx::Busy(OpFuture::new(self.tcp.inner.sock.driver(), send));
                }
            }
        }
    }

    /// epoll: send the open batch (`Tx::Ready`) straight from rustls'
    /// buffers as the socket takes it; `Pending` with the task registered
    /// while the socket is full. No copy and no op: nothing of a direct
    /// send is in flight between polls, and what the socket has not taken
    /// stays with rustls, so a dropped future loses nothing.
    fn poll_send_ready(&self, st: &mut State, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let fail = |st: &mut State, e: io::Error| {
            st.write_failed = Some(Sticky::of(&e));
            st.tx = Tx::Idle(Vec::new());
            Poll::Ready(Err(e))
        };
        if let Some(e) = crate::socket::injected_fault(op::OpKind::Send) {
            return fail(st, e);
        }
        // The socket usually takes it all at once: try that first, and
        // join the list of waiting tasks (a lock and a waker clone) only
        // when it is full. The wait below tries again before it sleeps,
        // so a socket that drained in between is not slept through.
        let mut now = DirectSend {
            sock: self.tcp.inner.sock.fd(),
            full: false,
            min: 1,
        };
        if let Err(e) = send_queued(&mut st.conn, &mut now) {
            return fail(st, e);
        }
        if st.conn.wants_write() {
            let evicted = self.wr.register(cx.waker());
            st.evicted.absorb(evicted);
            let mut wcx = Context::from_waker(self.wr.waker());
            let mut out = ReadySend {
                fd: self.tcp.inner.sock.registered(),
                cx: &mut wcx,
            };
            match send_queued(&mut st.conn, &mut out) {
                Ok(true) => {
                    self.readers_push_sends(st);
                    return Poll::Pending;
                }
                Ok(false) => {}
                Err(e) => return fail(st, e),
            }
        }
        st.tx = Tx::Idle(Vec::new());
        st.batches_ended += 1;
        Poll::Ready(Ok(()))
    }

    /// A batch stays with the socket (or the kernel) after this poll:
    /// tasks parked in a read are woken with the writers when it moves, so
    /// that their poll sends the rest. A write may have returned `Ok(n)`
    /// for bytes rustls took and the socket did not (yet), and its task may
    /// now wait for a reply that another task reads, with no poll of this
    /// stream to come from the writer.
    fn readers_push_sends(&self, st: &mut State) {
        let evicted = self.wr.register(self.rd.waker());
        st.evicted.absorb(evicted);
    }

    /// Give rustls more ciphertext: what is left from the last `recv`, or a
    /// new `recv`. `Ready(Ok(true))` when rustls took bytes, `Ok(false)`
    /// when it wants none now (plaintext waiting, close_notify seen) or at
    /// TCP end of stream (then rustls knows it too).
    /// Its ops run without the task's budget, as for [`poll_send`](Self::poll_send).
    fn poll_recv(&self, st: &mut State, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        coro_io::coop::without_budget(|| self.poll_recv_ops(st, cx))
    }

    fn poll_recv_ops(&self, st: &mut State, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if let Some(f) = &st.read_failed {
            return Poll::Ready(Err(f.error()));
        }
        loop {
            match &mut st.rx {
                Rx::Idle { buf, pos } if *pos < buf.len() => {
                    let mut fed = false;
                    while *pos < buf.len() && st.conn.wants_read() {
                        let n = st.conn.read_tls(&mut &buf[*pos..])?;
                        if n == 0 {
                            break;
                        }
                        *pos += n;
                        fed = true;
                        if let Err(e) = st.conn.process_new_packets() {
                            return st.packets_failed(e);
                        }
                    }
                    return Poll::Ready(Ok(fed));
                }
                Rx::Idle { .. } if st.tcp_eof => {
                    // Tell rustls (it then reports a missing close_notify).
                    st.conn.read_tls(&mut io::empty())?;
                    return Poll::Ready(Ok(false));
                }
                Rx::Idle { .. } if !st.conn.wants_read() => return Poll::Ready(Ok(false)),
                Rx::Idle { .. } if self.tcp.inner.sock.registered().recv_queued() => {
                    // The driver queues what the socket received: rustls
                    // copies it straight into its own buffer (one copy, no
                    // owned buffer in between, nothing in flight to cancel).
                    let evicted = self.rd.register(cx.waker());
                    st.evicted.absorb(evicted);
                    let mut rcx = Context::from_waker(self.rd.waker());
                    let mut queued = QueuedRecv {
                        fd: self.tcp.inner.sock.registered(),
                        cx: &mut rcx,
                    };
                    match st.conn.read_tls(&mut queued) {
                        Ok(0) => st.tcp_eof = true,
                        Ok(_) => {
                            if let Err(e) = st.conn.process_new_packets() {
                                return st.packets_failed(e);
                            }
                            return Poll::Ready(Ok(true));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                        Err(e) => {
                            st.read_failed = Some(Sticky::of(&e));
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                Rx::Idle { .. } if st.rx_more => {
                    // Likely more waiting: let rustls read it from the
                    // socket into its own buffer (no copy from ours).
                    st.rx_more = false;
                    let mut direct = DirectRecv {
                        sock: self.tcp.inner.sock.fd(),
                        full: false,
                    };
                    match st.conn.read_tls(&mut direct) {
                        Ok(0) => st.tcp_eof = true,
                        Ok(_) => {
                            st.rx_more = direct.full;
                            if let Err(e) = st.conn.process_new_packets() {
                                return st.packets_failed(e);
                            }
                            return Poll::Ready(Ok(true));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => {
                            st.read_failed = Some(Sticky::of(&e));
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                Rx::Idle { buf, pos } if self.tcp.inner.sock.registered().direct_io() => {
                    // epoll: the same read into the owned buffer, made
                    // directly once the socket is readable (no op: nothing
                    // is in flight between polls, so nothing to cancel).
                    if buf.capacity() < RECV_BUF {
                        *buf = take_recv_buf();
                    }
                    buf.clear();
                    *pos = 0;
                    if let Some(e) = crate::socket::injected_fault(op::OpKind::Recv) {
                        st.read_failed = Some(Sticky::of(&e));
                        return Poll::Ready(Err(e));
                    }
                    let evicted = self.rd.register(cx.waker());
                    st.evicted.absorb(evicted);
                    let mut rcx = Context::from_waker(self.rd.waker());
                    // A TCP stream: a short read emptied the socket.
                    let fd = self.tcp.inner.sock.registered();
                    let Poll::Ready(res) = fd.poll_read_direct(&mut rcx, buf, true) else {
                        // Waiting for input: the buffer goes back to the
                        // thread's spares meanwhile.
                        give_recv_buf(std::mem::take(buf));
                        return Poll::Pending;
                    };
                    match res {
                        Ok(0) => st.tcp_eof = true,
                        Ok(n) => st.rx_more = n == buf.capacity(),
                        Err(e) => {
                            st.read_failed = Some(Sticky::of(&e));
                            return Poll::Ready(Err(e));
                        }
                    }
                }
                Rx::Idle { buf, .. } => {
                    let mut v = std::mem::take(buf);
                    v.clear();
                    if v.capacity() < RECV_BUF {
                        v = Vec::with_capacity(RECV_BUF);
                    }
                    st.rx = Rx::Busy(op::recv_stream(
                        self.tcp.inner.sock.driver(),
                        self.tcp.inner.sock.raw(),
                        v,
                    ));
                }
                Rx::Busy(fut) => {
                    let evicted = self.rd.register(cx.waker());
                    st.evicted.absorb(evicted);
                    let mut rcx = Context::from_waker(self.rd.waker());
                    let (res, buf) = ready!(Pin::new(fut).poll(&mut rcx));
                    st.rx_more = matches!(res, Ok(n) if n == buf.capacity());
                    st.rx = Rx::Idle { buf, pos: 0 };
                    match res {
                        Ok(0) => st.tcp_eof = true,
                        Ok(_) => {}
                        Err(e) => {
                            st.read_failed = Some(Sticky::of(&e));
                            return Poll::Ready(Err(e));
                        }
                    }
                }
            }
        }
    }

    /// Hand plaintext to `put` (which returns how much it took); `Ok(0)`
    /// after the peer's close_notify (or for an empty `cap`).
    fn poll_read_with(
        &self,
        cx: &mut Context<'_>,
        cap: usize,
        put: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        if cap == 0 {
            return Poll::Ready(Ok(0));
        }
        // Plaintext rustls holds makes a read complete without an op: count
        // it against the task's budget (see `coro_io::coop`) like one.
        ready!(coro_io::coop::poll_proceed(cx));
        let r = self.poll_read_locked(cx, put);
        if r.is_ready() {
            coro_io::coop::consume();
        }
        r
    }

    fn poll_read_locked(
        &self,
        cx: &mut Context<'_>,
        put: &mut dyn FnMut(&[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        let mut st = self.lock();
        // Records with no plaintext (session tickets, key updates) can
        // come without end from a hostile peer, each fed at once: after
        // this many receives in one poll the read yields (what came stays
        // in rustls), so that a timeout around it can fire and the thread
        // runs its other tasks.
        let mut receives_left = MAX_RECEIVES_PER_READ_POLL;
        loop {
            {
                let mut r = st.conn.reader();
                match r.fill_buf() {
                    Ok([]) => return Poll::Ready(Ok(0)),
                    Ok(chunk) => {
                        let n = put(chunk);
                        r.consume(n);
                        return Poll::Ready(Ok(n));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the TLS peer closed the connection without close_notify \
                             (the data may be truncated)",
                        )));
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            // What rustls wants to say (alerts, key update replies) goes out
            // while we wait for input; its errors belong to the writers.
            let _ = self.poll_send(&mut st, cx);
            if receives_left == 0 {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            receives_left -= 1;
            let fed = ready!(self.poll_recv(&mut st, cx));
            if st.read_failed.is_some() {
                // The fatal alert rustls queued for a bad record goes out
                // now (also when plaintext before it is read first), not
                // only if the caller writes again.
                let _ = self.poll_send(&mut st, cx);
            }
            let fed = fed?;
            if !fed && !st.tcp_eof && st.conn.wants_read() {
                // rustls took nothing but wants more: cannot happen; do not spin.
                return Poll::Ready(Err(io::Error::other("TLS read made no progress")));
            }
        }
    }

    /// Encrypt up to 64 KiB of `data` once earlier ciphertext is sent and
    /// it is this writer's turn, and start sending it. `Ok(n)`: rustls owns
    /// those bytes (they go out even if the send is still in flight when
    /// this returns); `batch` is then the batch that carries them, 0 if
    /// they are all sent already.
    ///
    /// `turn`: the caller's place in line (`write`, `write_all`); `None`
    /// (`poll_write`, which keeps no state between calls) encrypts only
    /// when no writer with a place waits.
    fn poll_write_inner(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
        turn: Option<&mut Turn<'_>>,
        batch: &mut u64,
    ) -> Poll<io::Result<usize>> {
        // A write that rustls and the socket take at once never waits: it
        // counts against the task's budget (see `coro_io::coop`), so a task
        // writing without pause still lets the others on its thread run.
        ready!(coro_io::coop::poll_proceed(cx));
        let r = self.poll_write_turn(cx, data, turn, batch);
        if r.is_ready() {
            coro_io::coop::consume();
        }
        r
    }

    fn poll_write_turn(
        &self,
        cx: &mut Context<'_>,
        data: &[u8],
        mut turn: Option<&mut Turn<'_>>,
        batch: &mut u64,
    ) -> Poll<io::Result<usize>> {
        // This writer's waker, taken out of the line when its turn comes:
        // dropped after the lock (declared first, dropped last), as in
        // `Turn::wait`.
        let mut left_line: Option<(u64, Waker)> = None;
        let mut st = self.lock();
        if st.close_notify_sent {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after the TLS stream was shut down",
            )));
        }
        if let Some(f) = st.read_failed.as_ref().filter(|f| f.tls.is_some()) {
            // The peer broke the TLS protocol or sent a fatal alert: the
            // connection is over, and no application data may follow the
            // alert rustls queued in answer (which this pushes on).
            let e = f.error();
            let _ = self.poll_send(&mut st, cx);
            return Poll::Ready(Err(e));
        }
        let idle = self.poll_send(&mut st, cx)?.is_ready();
        if data.is_empty() && idle {
            return Poll::Ready(Ok(0));
        }
        let place = turn.as_ref().and_then(|t| t.place);
        let first = st.line.front().map(|(p, _)| *p);
        if !idle || first.is_some_and(|f| Some(f) != place) {
            // Wait: for the send in flight (registered with it above), or
            // for the writers before this one (the one at the front is
            // woken when it is its turn, see `next_in_line`).
            match turn.as_mut() {
                Some(t) => {
                    let replaced = t.wait(&mut st, cx.waker());
                    drop(st);
                    drop(replaced);
                }
                None => {
                    let evicted = self.wr.register(cx.waker());
                    st.evicted.absorb(evicted);
                }
            }
            return Poll::Pending;
        }
        // This writer's turn: it leaves the line, and the next one in it is
        // woken once this is done (it may find the stream idle again).
        let next = match (place, turn.as_mut()) {
            (Some(_), Some(t)) => {
                left_line = st.line.pop_front();
                t.place = None;
                true
            }
            _ => false,
        };
        let res = st
            .conn
            .writer()
            .write(&data[..data.len().min(WRITE_CHUNK)])
            .and_then(|n| match n {
                0 => Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "rustls accepted no plaintext",
                )),
                n => Ok(n),
            });
        let res = match res {
            Ok(n) => match self.poll_send(&mut st, cx) {
                Poll::Ready(Err(e)) => Err(e),
                // All sent already: nothing to wait for.
                Poll::Ready(Ok(())) => {
                    *batch = 0;
                    Ok(n)
                }
                // Everything rustls held is in this batch or sent before.
                Poll::Pending => {
                    *batch = st.batches_begun;
                    Ok(n)
                }
            },
            Err(e) => Err(e),
        };
        if next {
            let w = self.next_in_line(&st);
            drop(st);
            drop(left_line);
            w.wake();
        }
        Poll::Ready(res)
    }

    /// Whom to wake when the front of the line changed: the writer now at
    /// the front, or (line empty) whoever waits on the send op, among them
    /// `poll_write` callers that yielded to the line.
    fn next_in_line(&self, st: &State) -> Waker {
        match st.line.front() {
            Some((_, w)) => w.clone(),
            None => self.wr.waker().clone(),
        }
    }

    /// Wait until batch `batch` was sent whole (`None`: what was written
    /// before this call, fixed at its first poll). Unlike waiting for the
    /// stream to go idle, this ends even while other tasks keep writing.
    fn poll_flush_to(&self, cx: &mut Context<'_>, batch: &mut Option<u64>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        // rustls may hold ciphertext not taken yet (what it says on its
        // own, while a send was in flight): the next batch takes it.
        // (What rustls holds while a direct batch is open is that batch.)
        let more = st.conn.wants_write() && !matches!(st.tx, Tx::Ready);
        let want = *batch.get_or_insert(st.batches_begun + u64::from(more));
        match self.poll_send(&mut st, cx) {
            Poll::Pending if st.batches_ended < want => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_flush_inner(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        self.poll_send(&mut st, cx)
    }

    fn poll_shutdown_inner(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.lock();
        if let Some(e) = st
            .read_failed
            .as_ref()
            .filter(|f| f.tls.is_some())
            .map(|f| f.error())
        {
            // The peer broke the protocol or sent a fatal alert: no clean
            // close (rustls sends no close_notify after its alert). The
            // alert it queued goes out, then the TCP write side shuts,
            // and the caller learns the connection failed.
            let _ = ready!(self.poll_send(&mut st, cx));
            if !st.tcp_write_shut {
                let _ = self.tcp.shutdown(Shutdown::Write);
                st.tcp_write_shut = true;
            }
            return Poll::Ready(Err(e));
        }
        if !st.close_notify_sent {
            st.conn.send_close_notify();
            st.close_notify_sent = true;
        }
        ready!(self.poll_send(&mut st, cx))?;
        if !st.tcp_write_shut {
            match self.tcp.shutdown(Shutdown::Write) {
                // Not marked done: a retry tries (and reports) it again.
                Err(e) if e.kind() != io::ErrorKind::NotConnected => {
                    return Poll::Ready(Err(e));
                }
                _ => st.tcp_write_shut = true,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Read decrypted bytes into `buf` (from its start, up to its
    /// capacity). `Ok(0)` is the end of the stream: the peer sent
    /// close_notify (or `buf` has no room).
    ///
    /// # Errors
    ///
    /// `UnexpectedEof` when the peer closed TCP without close_notify;
    /// `InvalidData` for TLS errors (a bad record, an alert); socket errors
    /// as they are.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe and lossless: the in-flight `recv`, its buffer and the
    /// ciphertext rustls has not decrypted yet belong to the stream, so a
    /// dropped read (a timeout, a `select`) loses nothing; the next read
    /// continues where it stopped. Bytes are only handed out by a read that
    /// returns.
    ///
    /// # Examples
    ///
    /// See the [module docs](super).
    pub async fn read<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
        let cap = buf.bytes_total();
        let res = poll_fn(|cx| self.poll_read_with(cx, cap, &mut |c| buf::fill(&mut buf, c))).await;
        (res, buf)
    }

    /// Encrypt and send up to 64 KiB of `buf`'s initialised bytes; returns
    /// how many, once their records are with the kernel.
    ///
    /// Writes from several tasks take turns in the order they came, and
    /// each returns once its own bytes are sent, also while other tasks
    /// keep writing.
    ///
    /// # Errors
    ///
    /// `BrokenPipe` after [`shutdown`](Self::shutdown); send errors
    /// (`EPIPE`, `ECONNRESET`) as they are.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe. A `write` dropped while it waits for earlier bytes
    /// to go out, or for its turn, accepted nothing (and gives its turn to
    /// the next writer); one dropped after it encrypted `buf`'s
    /// bytes cannot tell you so, and those bytes are still sent: by the
    /// kernel (io_uring), or as the socket takes them by the stream's next
    /// write, flush, read or shutdown, or by a read already waiting in
    /// another task. With none of these they wait in the stream, and
    /// dropping the stream drops them (call `shutdown` first). To race
    /// writes, use the `AsyncWrite` impl, whose `poll_write` reports
    /// accepted bytes at once.
    pub async fn write<B: IoBuf>(&self, buf: B) -> BufResult<usize, B> {
        let mut turn = Turn::new(self);
        let mut batch = 0;
        let data = buf::init_bytes(&buf);
        let res = poll_fn(|cx| self.poll_write_inner(cx, data, Some(&mut turn), &mut batch)).await;
        drop(turn);
        let res = match res {
            Ok(n) if batch == 0 => Ok(n),
            Ok(n) => {
                let mut to = Some(batch);
                poll_fn(|cx| self.poll_flush_to(cx, &mut to))
                    .await
                    .map(|()| n)
            }
            Err(e) => Err(e),
        };
        (res, buf)
    }

    /// Encrypt and send all of `buf`'s initialised bytes (64 KiB at a time).
    /// With other tasks writing, each chunk takes its turn as a
    /// [`write`](Self::write) does, so their writes may come between two
    /// chunks (never inside one).
    ///
    /// # Errors
    ///
    /// As for [`write`](Self::write); how much was sent before is not
    /// reported.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: a dropped `write_all` may have sent any prefix (and
    /// the chunk it had encrypted is still sent later, as for `write`).
    pub async fn write_all<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
        let mut off = 0;
        // A plain `&[u8]` (not `&B`) is what the polls hold, so the future
        // is `Send` for any buffer, `Sync` or not.
        let data: &[u8] = buf::init_bytes(&buf);
        let mut turn = Turn::new(self);
        // With nothing to write, "flushed" means what was written before.
        let mut batch = None;
        let res = loop {
            if off >= data.len() {
                drop(turn);
                if batch == Some(0) {
                    // The last chunk went out at once (and so did those
                    // before it, sent in order).
                    break Ok(());
                }
                break poll_fn(|cx| self.poll_flush_to(cx, &mut batch)).await;
            }
            let mut b = 0;
            match poll_fn(|cx| self.poll_write_inner(cx, &data[off..], Some(&mut turn), &mut b))
                .await
            {
                Ok(n) => {
                    off += n;
                    batch = Some(b);
                }
                Err(e) => break Err(e),
            }
        };
        (res, buf)
    }

    /// Wait until every byte written before this call is with the kernel
    /// (bytes other tasks write meanwhile are not waited for).
    ///
    /// # Errors
    ///
    /// The send error, if one failed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the bytes stay queued in the stream.
    pub async fn flush(&self) -> io::Result<()> {
        let mut batch = None;
        poll_fn(|cx| self.poll_flush_to(cx, &mut batch)).await
    }

    /// Send close_notify (after everything written before), then shut the
    /// TCP write half down. The peer's reads then return `Ok(0)`. Reading
    /// still works until the peer's own close_notify; writing fails with
    /// `BrokenPipe`. Calling it again only finishes sending.
    ///
    /// Everything written *before* comes first; a `write_all` of another
    /// task still in flight is not waited for: its next chunk fails with
    /// `BrokenPipe`, and the peer sees a clean close after the part sent.
    /// Shut down from the task that writes (or after its writes ended)
    /// where the peer must not take a cut message for a whole one (tokio's
    /// `shutdown` takes `&mut self`, so there the question cannot come up).
    ///
    /// # Errors
    ///
    /// A send error (the peer is gone), or the `shutdown(2)` error; after
    /// a TLS error (a bad record, a fatal alert) that error, as for reads
    /// and writes: no close_notify follows the alert, and the TCP write
    /// side is shut down all the same.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: close_notify is queued at the first poll and sent by a
    /// later shutdown, flush or read if this future is dropped.
    pub async fn shutdown(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_shutdown_inner(cx)).await
    }

    /// The ALPN protocol both sides agreed on (`None`: no ALPN).
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.info.alpn.as_deref()
    }

    /// Server side: the host name the client asked for (SNI), if it sent
    /// one. Client side: `None`.
    pub fn server_name(&self) -> Option<&str> {
        self.info.server_name.as_deref()
    }

    /// The peer's certificate chain, leaf first: the server's on the client
    /// side; on the server side the client's (mutual TLS), `None` if it
    /// sent none.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.info.peer_certs.as_deref()
    }

    /// The TLS version in use (`TLSv1_2` or `TLSv1_3`).
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.info.version
    }

    /// The cipher suite in use.
    pub fn negotiated_cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.info.suite
    }

    /// Whether this is the server side of the connection.
    pub fn is_server(&self) -> bool {
        matches!(self.lock().conn, Connection::Server(_))
    }

    /// The TCP stream underneath (for its address and socket options; do
    /// not read or write it: that would corrupt the TLS stream).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The remote address.
    ///
    /// # Errors
    ///
    /// `NotConnected` once the connection is gone.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }

    /// The local address.
    ///
    /// # Errors
    ///
    /// From `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

impl coro_io::copy::ReadOwned for TlsStream {
    fn read_owned<B: IoBufMut>(
        &self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<usize, B>> + Send {
        self.read(buf)
    }
}

impl coro_io::copy::WriteOwned for TlsStream {
    fn write_all_owned<B: IoBuf>(
        &self,
        buf: B,
    ) -> impl std::future::Future<Output = BufResult<(), B>> + Send {
        self.write_all(buf)
    }
    /// close_notify (TLS has no half-close of its own).
    fn shutdown_write(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        self.shutdown()
    }
}

impl Info {
    fn of(conn: &Connection) -> Info {
        Info {
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            server_name: match conn {
                Connection::Server(s) => s.server_name().map(str::to_owned),
                Connection::Client(_) => None,
            },
            peer_certs: conn.peer_certificates().map(|c| c.to_vec()),
            version: conn.protocol_version(),
            suite: conn.negotiated_cipher_suite(),
        }
    }
}

/// Put `what` in front of `e`'s message, keeping its kind and a rustls
/// error as its source.
fn with_context(e: io::Error, what: &str) -> io::Error {
    if let Some(f) = e.get_ref().and_then(|i| i.downcast_ref::<TlsFailure>()) {
        return io::Error::new(
            e.kind(),
            TlsFailure {
                context: what.to_owned(),
                source: f.source.clone(),
            },
        );
    }
    crate::socket::context(e, what)
}

macro_rules! impl_futures_io {
    ($($ty:ty),*) => {$(
        /// Decrypted bytes, through the same state as [`TlsStream::read`].
        ///
        /// # Cancel safety
        ///
        /// Cancel safe and lossless (see [`TlsStream::read`]).
        impl futures_io::AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                out: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let cap = out.len();
                self.poll_read_with(cx, cap, &mut |c| {
                    let n = c.len().min(out.len());
                    out[..n].copy_from_slice(&c[..n]);
                    n
                })
            }
        }

        /// `poll_write` encrypts up to 64 KiB once earlier bytes are with
        /// the kernel, starts sending them and reports them written: the
        /// stream owns them and sends them before any later write. It keeps
        /// no state between calls, so it takes no turn: it writes when no
        /// [`TlsStream::write`] or [`write_all`](TlsStream::write_all) of
        /// another task waits for one, so another task that keeps writing
        /// with those (to a peer that reads slowly) can hold it off for as
        /// long as it goes on: tasks that share a stream's write side should
        /// all use the owned methods, which take turns. `poll_flush` waits
        /// until everything was sent (the stream idle: another task's
        /// writes hold it off too); `poll_close` is
        /// [`TlsStream::shutdown`] (close_notify, then TCP write shutdown).
        ///
        /// # Cancel safety
        ///
        /// Cancel safe while the stream lives: accepted bytes are sent
        /// exactly once, and an error of a send that was in flight is
        /// reported by the next write or flush. Dropping the stream before
        /// a flush (or [`TlsStream::shutdown`]) may leave accepted bytes
        /// unsent; the peer sees the end without close_notify, so it can
        /// tell the stream was cut short.
        impl futures_io::AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                data: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_inner(cx, data, None, &mut 0)
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_flush_inner(cx)
            }
            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                self.poll_shutdown_inner(cx)
            }
        }
    )*};
}

impl_futures_io!(TlsStream, &TlsStream);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use coro_io::{DriverKind, IoScheduler, IoSchedulerOptions};

    use super::{Rx, TlsStream};
    use crate::tcp::{TcpListener, TcpStream};
    use crate::tls::{self, TlsAcceptor, TlsConnector};

    /// On epoll a connection that waits for input holds no receive
    /// buffer (it went back to the thread's spares): 10,000 idle TLS
    /// connections would otherwise hold 32 KiB each.
    #[test]
    fn an_idle_connection_holds_no_receive_buffer() {
        let s = IoScheduler::new(IoSchedulerOptions {
            driver: DriverKind::Epoll,
            ..Default::default()
        })
        .unwrap();
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = key.cert.der().clone();
        let pk = rustls::pki_types::PrivateKeyDer::Pkcs8(key.key_pair.serialize_der().into());
        let acceptor = TlsAcceptor::new(Arc::new(
            tls::server_config(vec![cert.clone()], pk).unwrap(),
        ));
        let connector = TlsConnector::new(Arc::new(tls::client_config([cert]).unwrap()));
        let s2 = s.clone();
        let held = coro_core::sync_wait(s.spawn(async move {
            let l = TcpListener::bind(&s2, "127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let server = s2.spawn(async move {
                let (tcp, _) = l.accept().await.unwrap();
                acceptor.accept(tcp).await.unwrap()
            });
            let tcp = TcpStream::connect(&s2, addr).await.unwrap();
            let client = connector.connect("localhost", tcp).await.unwrap();
            let server: TlsStream = server.await.unwrap();
            let (r, _) = client.write_all(b"x".to_vec()).await;
            r.unwrap();
            let (n, _) = server.read(Vec::with_capacity(8)).await;
            assert_eq!(n.unwrap(), 1);
            // A read that finds nothing: it waits, and is dropped.
            let mut read = std::pin::pin!(server.read(Vec::with_capacity(8)));
            let waker = futures::task::noop_waker();
            let mut cx = std::task::Context::from_waker(&waker);
            assert!(read.as_mut().poll(&mut cx).is_pending());
            let st = server.lock();
            match &st.rx {
                Rx::Idle { buf, .. } => buf.capacity(),
                Rx::Busy(_) => usize::MAX,
            }
        }))
        .unwrap();
        assert_eq!(held, 0, "an idle connection kept its receive buffer");
        s.shutdown();
    }
}
