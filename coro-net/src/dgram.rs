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

use coro_io::buf::BufResult;
use coro_io::op::{Op, OpFuture};

use crate::socket::Socket;

/// Why a receive was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Deadline,
    Shut,
}

/// The read side of a datagram socket, as far as our own `shutdown` set
/// it. Set before the `shutdown(2)` call: the readiness edge that call
/// makes (epoll), or the kernel's giving up on a receive it held
/// (io_uring), wakes each waiting receive, which then finds it set.
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
        if how == std::net::Shutdown::Write {
            return shutdown();
        }
        let was = self.0.swap(true, Ordering::SeqCst);
        let r = shutdown();
        if r.is_err() {
            self.0.store(was, Ordering::SeqCst);
        }
        r
    }

    fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Receive one datagram with the op `make(buf)` makes, until `timeout`
/// (`TimedOut`) and, with `shut`, until the read side was shut down
/// (`None`: the caller takes what is still queued without waiting; see
/// [`recv_now`]).
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
) -> (Option<io::Result<X>>, B)
where
    T: Op<Output = BufResult<X, B>>,
{
    let (stop, (res, buf)) = recv_or_stop(sock, make(buf), timeout, shut).await;
    match (stop, res) {
        (Some(Stop::Deadline), Err(e)) if stopped(&e) => {
            let d = timeout.unwrap_or_default();
            let e = io::Error::new(
                io::ErrorKind::TimedOut,
                format!("receive timed out after {d:?}"),
            );
            (Some(Err(e)), buf)
        }
        // On io_uring the receive may never have run (a staged entry is
        // taken back): what is queued is the caller's, taken at once.
        (Some(Stop::Shut), Err(e)) if stopped(&e) => (None, buf),
        (_, r) => (Some(r), buf),
    }
}

/// One receive without waiting on a Unix datagram socket whose read side
/// is shut (the rare path: through a duplicate of the fd as a std socket,
/// into a bounce buffer): `Ok(None)` when nothing is queued.
pub(crate) fn recv_now<B: coro_io::buf::IoBufMut>(
    sock: &Socket,
    buf: &mut B,
) -> io::Result<Option<(usize, std::os::unix::net::SocketAddr)>> {
    let std_sock = std::os::unix::net::UnixDatagram::from(sock.fd().try_clone_to_owned()?);
    let mut tmp = vec![0u8; buf.bytes_total()];
    loop {
        return match std_sock.recv_from(&mut tmp) {
            Ok((n, from)) => Ok(Some((coro_io::buf::fill(buf, &tmp[..n]), from))),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e),
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
        stop = if shut.is_some_and(ReadShut::is_set) {
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
/// or (epoll's last try; a read-shut socket) nothing there.
fn stopped(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED) || e.kind() == io::ErrorKind::WouldBlock
}
