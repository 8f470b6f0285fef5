//! Datagram receives that may end early without losing a datagram: at a
//! deadline (`recv_timeout`), or once the socket's read side was shut
//! down.
//!
//! Why the read side needs care: after `shutdown(Read)` a datagram socket
//! has no end of stream. The kernel answers a non-blocking receive with
//! `EAGAIN` for ever and reports the socket readable for ever, so a
//! receive through the driver would wait (epoll) or be resubmitted
//! (io_uring) without end. A blocking std socket answers `Ok(0)` there;
//! so do ours, once the datagrams queued before the shutdown are taken.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Poll, ready};
use std::time::Duration;

use coro_io::buf::{BufResult, IoBufMut};
use coro_io::op::{Op, OpFuture};
use rustix::net::{RecvFlags, SocketAddrAny};

use crate::socket::Socket;

/// Why a receive was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Its deadline passed.
    Deadline,
    /// The socket's read side was shut down.
    Shut,
}

/// The read side of a datagram socket, as far as our own `shutdown` asked
/// for it. Set before the `shutdown(2)` call: the readiness edge that call
/// makes (epoll), or the kernel's giving up on a receive it held
/// (io_uring), wakes each waiting receive, which then finds it set. A
/// receive stops on it only once the kernel reports the read side shut
/// (`POLLRDHUP`): one polled between the mark and the call, or after a
/// call that failed, waits on as before.
#[derive(Debug, Default)]
pub(crate) struct ReadShut(AtomicBool);

impl ReadShut {
    /// Shut the read side for `how` with `shutdown` (the syscall): a
    /// receive that would wait then ends.
    pub(crate) fn shut_down(
        &self,
        how: std::net::Shutdown,
        shutdown: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if how != std::net::Shutdown::Write {
            self.0.store(true, Ordering::SeqCst);
        }
        shutdown()
    }

    /// Our shutdown asked for it, and the kernel says the read side is shut.
    fn is_shut(&self, sock: &Socket) -> bool {
        use rustix::event::{PollFd, PollFlags};
        if !self.0.load(Ordering::SeqCst) {
            return false;
        }
        let mut fds = [PollFd::new(sock.registered(), PollFlags::RDHUP)];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        matches!(rustix::event::poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
            && fds[0].revents().contains(PollFlags::RDHUP)
    }
}

/// Receive one datagram with the op `make(buf)` makes, until `timeout`
/// and, with `shut`, until the read side was shut down: `Err(stop)` when
/// the receive was stopped and got nothing. The caller then takes what is
/// queued without waiting ([`after_stop`]; on io_uring the cancelled
/// receive may never have run: an entry still staged is taken back).
///
/// Lossless: a stopped receive is cancelled and its outcome awaited, so a
/// datagram the kernel delivered meanwhile is returned, not dropped; one
/// the kernel did not take stays queued.
pub(crate) async fn recv<B, X, T>(
    sock: &Socket,
    buf: B,
    timeout: Option<Duration>,
    shut: Option<&ReadShut>,
    make: impl FnOnce(B) -> OpFuture<T>,
) -> (Result<io::Result<X>, Stop>, B)
where
    T: Op<Output = BufResult<X, B>>,
{
    let (stop, (res, buf)) = recv_or_stop(sock, make(buf), timeout, shut).await;
    match (stop, res) {
        (Some(stop), Err(e)) if nothing_moved(&e) => (Err(stop), buf),
        (_, r) => (Ok(r), buf),
    }
}

/// What a stopped receive answers: what is queued, taken without waiting
/// ([`recv_now`], then `got(len, source)`); else `TimedOut`, or, after a
/// read shutdown, the end (`end()`).
pub(crate) fn after_stop<B: IoBufMut, Y>(
    sock: &Socket,
    buf: &mut B,
    stop: Stop,
    timeout: Option<Duration>,
    got: impl FnOnce(usize, Option<SocketAddrAny>) -> io::Result<Y>,
    end: impl FnOnce() -> io::Result<Y>,
) -> io::Result<Y> {
    match recv_now(sock, buf)? {
        Some((n, from)) => got(n, from),
        None => ended(stop, timeout, end),
    }
}

/// What a stopped receive that found nothing queued answers: `TimedOut`,
/// or, after a read shutdown, the end (`end()`).
fn ended<Y>(
    stop: Stop,
    timeout: Option<Duration>,
    end: impl FnOnce() -> io::Result<Y>,
) -> io::Result<Y> {
    match stop {
        Stop::Deadline => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("receive timed out after {:?}", timeout.unwrap_or_default()),
        )),
        Stop::Shut => end(),
    }
}

/// One receive without waiting (`MSG_DONTWAIT`), into `buf` through a
/// bounce buffer (this crate writes into an `IoBufMut` only with
/// `coro_io::buf::fill`): the length placed and the source, or `None` when
/// nothing is queued. Only after a stopped receive: a rare path.
fn recv_now<B: IoBufMut>(
    sock: &Socket,
    buf: &mut B,
) -> io::Result<Option<(usize, Option<SocketAddrAny>)>> {
    let mut tmp = vec![0u8; buf.bytes_total()];
    loop {
        return match rustix::net::recvfrom(sock.registered(), &mut tmp[..], RecvFlags::DONTWAIT) {
            Ok((n, _, from)) => Ok(Some((coro_io::buf::fill(buf, &tmp[..n]), from))),
            Err(e) if e == rustix::io::Errno::AGAIN => Ok(None),
            Err(e) if e == rustix::io::Errno::INTR => continue,
            Err(e) => Err(e.into()),
        };
    }
}

/// Poll `recv` to its outcome, or stop it at the deadline or the read
/// side's shutdown: cancel it and poll on for its outcome.
async fn recv_or_stop<T: Op>(
    sock: &Socket,
    mut recv: OpFuture<T>,
    timeout: Option<Duration>,
    shut: Option<&ReadShut>,
) -> (Option<Stop>, T::Output) {
    let mut deadline = pin!(timeout.map(|d| sock.sched().sleep(d)));
    let mut stop = None;
    let out = poll_fn(|cx| {
        if let Poll::Ready(out) = std::pin::Pin::new(&mut recv).poll(cx) {
            return Poll::Ready(out);
        }
        if stop.is_some() {
            return Poll::Pending;
        }
        // Not before the receive had its chance (see `coro_io::coop`).
        ready!(coro_io::coop::poll_proceed(cx));
        stop = if shut.is_some_and(|s| s.is_shut(sock)) {
            Some(Stop::Shut)
        } else if let Some(d) = deadline.as_mut().as_pin_mut() {
            d.poll(cx).is_ready().then_some(Stop::Deadline)
        } else {
            None
        };
        if stop.is_none() {
            return Poll::Pending;
        }
        std::pin::Pin::new(&mut recv).cancel();
        std::pin::Pin::new(&mut recv).poll(cx)
    })
    .await;
    (stop, out)
}

/// Whether a cancelled receive's error says it got nothing: called off,
/// nothing there (epoll's last try; a read-shut socket), or interrupted
/// (a receive the kernel handed to a worker thread, cancelled there).
fn nothing_moved(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED)
        || matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
        )
}
