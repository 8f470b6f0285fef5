//! The socket ops coro-net added (`accept_fd`, `recv_msg`), driven by hand
//! against a bare driver, on both drivers.

use std::future::Future;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use coro_io::driver::Handle;
use coro_io::op;
use coro_io::testing::Config;

struct Noop;
impl Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// Poll `fut` to completion, parking the driver between polls (bounded;
/// see `testing::block_on_driver`).
fn run<F: Future>(h: &Handle, fut: F) -> F::Output {
    coro_io::testing::block_on_driver(h, fut, Duration::from_secs(60))
}

coro_io::driver_tests!(
    drivers: accept_fd_takes_unix_connections,
    recv_msg_reports_truncation,
    recv_msg_truncating_on_a_stream_hands_back_no_stale_bytes,
    a_close_dropped_unpolled_leaves_no_registration_behind,
    a_cancelled_close_still_closes,
    an_op_woken_after_shutdown_fails_instead_of_waiting
);

/// `MSG_TRUNC` on a stream socket: the kernel discards the bytes it
/// counts and copies nothing, so the buffer's first `n` bytes must not be
/// whatever its spare capacity held (memory the `Vec` never initialised).
fn recv_msg_truncating_on_a_stream_hands_back_no_stale_bytes(cfg: Config) {
    let h = cfg.handle();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut b = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (a, _) = l.accept().unwrap();
    a.set_nonblocking(true).unwrap();
    std::io::Write::write_all(&mut b, b"hello").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let mut stale = vec![0xAAu8; 64];
    stale.clear(); // capacity 64 of old bytes, none of them the Vec's
    let (res, buf) = run(&h, op::recv_msg(&h, a.as_raw_fd(), stale, libc::MSG_TRUNC));
    assert_eq!(
        res.unwrap().len,
        5,
        "the bytes were counted (and discarded)"
    );
    assert!(
        buf == vec![0u8; 5] || buf == b"hello",
        "the buffer holds bytes nobody wrote: {buf:?}"
    );
    h.release_fd(a.as_raw_fd());
}

/// A `close` future dropped before its first poll closes the fd itself;
/// the driver must forget the fd all the same, or the next file with that
/// number is taken for one already watched (on epoll, its first wait
/// never ends: the kernel dropped the old file from the epoll set, and
/// the driver would not add the new one).
fn a_close_dropped_unpolled_leaves_no_registration_behind(cfg: Config) {
    let h = cfg.handle();
    for round in 0..3 {
        let (r, _w) = pipe();
        // Registered (on epoll): a read waited on it once.
        let mut read = pin!(op::read(&h, r.as_raw_fd(), Vec::with_capacity(8)));
        let w2 = Waker::from(Arc::new(Noop));
        assert!(
            read.as_mut()
                .poll(&mut Context::from_waker(&w2))
                .is_pending()
        );
        read.as_mut().cancel();
        let (res, _) = run(&h, read);
        assert!(res.is_err(), "round {round}: cancelled");
        drop(op::close(&h, r)); // never polled: closed here
        assert_eq!(
            h.registered_fds(),
            0,
            "round {round}: a registration outlived its fd"
        );
    }
}

/// `cancel` does not call a close off: polled on, the fd is closed once.
fn a_cancelled_close_still_closes(cfg: Config) {
    let h = cfg.handle();
    // This thread drives the driver: a close staged by it can be taken
    // back before it reaches the kernel.
    h.park(Some(Duration::ZERO)).unwrap();
    let (r, wr) = pipe();
    let mut close = pin!(op::close(&h, r));
    let w = Waker::from(Arc::new(Noop));
    let first = close.as_mut().poll(&mut Context::from_waker(&w));
    close.as_mut().cancel();
    let res = match first {
        Poll::Ready(res) => res,
        Poll::Pending => run(&h, close),
    };
    res.unwrap();
    // The pipe's only read end is gone: a write fails (asked of the pipe,
    // not of the number, which another test's thread may have taken). On
    // SQPOLL the kernel's thread lets the file go a moment after it
    // posted the close's completion: ask again for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut write = rustix::io::write(&wr, b"x");
    while write.is_ok() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        write = rustix::io::write(&wr, b"x");
    }
    assert_eq!(
        write,
        Err(rustix::io::Errno::PIPE),
        "the read end was left open"
    );
}

/// A receive that never waits in the kernel (`MSG_DONTWAIT`): with no
/// data, io_uring completes it with `EAGAIN` at once, and the driver then
/// waits for readiness and runs it again (as for an `O_NONBLOCK` file on
/// kernels that do not wait for those).
struct DontWaitRecv {
    fd: std::os::fd::RawFd,
    buf: Vec<u8>,
}

// SAFETY: the entry points into the buffer the op owns (it lives on the
// heap from its first poll until its completion).
unsafe impl op::Op for DontWaitRecv {
    type Output = std::io::Result<usize>;
    const KIND: op::OpKind = op::OpKind::Recv;
    fn sqe(&mut self) -> io_uring::squeue::Entry {
        let len = self.buf.capacity() as u32;
        io_uring::opcode::Recv::new(io_uring::types::Fd(self.fd), self.buf.as_mut_ptr(), len)
            .flags(libc::MSG_DONTWAIT)
            .build()
    }
    fn readiness(&self) -> coro_io::driver::Readiness {
        coro_io::driver::Readiness::Fd(self.fd, coro_io::driver::Interest::Read)
    }
    fn attempt(&mut self) -> std::io::Result<usize> {
        // SAFETY: `capacity` writable bytes at the buffer's pointer.
        let n = unsafe {
            libc::recv(
                self.fd,
                self.buf.as_mut_ptr().cast(),
                self.buf.capacity(),
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
    fn complete(self, res: std::io::Result<usize>) -> std::io::Result<usize> {
        res
    }
}

/// An op whose first round ended without effect (`EAGAIN`: io_uring then
/// waits for readiness and runs it again) and that is polled again only
/// after the driver shut down fails with the shut-down error instead of
/// waiting for a completion nobody reaps.
fn an_op_woken_after_shutdown_fails_instead_of_waiting(cfg: Config) {
    let h = cfg.handle();
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let recv = DontWaitRecv {
        fd: a.as_raw_fd(),
        buf: Vec::with_capacity(8),
    };
    let mut fut = pin!(op::OpFuture::new(&h, recv));
    let waker = Waker::from(Arc::new(Noop));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    // The `EAGAIN` completes and is reaped; the future is not polled.
    for _ in 0..3 {
        h.park(Some(Duration::from_millis(5))).unwrap();
    }
    h.cancel_all(Duration::from_secs(1));
    std::io::Write::write_all(&mut b, b"x").unwrap();
    let mut res = None;
    for _ in 0..100 {
        if let Poll::Ready(r) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            res = Some(r);
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let res = res.expect("the op still waits after the driver shut down");
    if let Err(e) = &res {
        let shut_down = e.to_string().contains("shut down");
        assert!(
            shut_down || e.raw_os_error() == Some(libc::ECANCELED),
            "{e}"
        );
    }
    h.release_fd(a.as_raw_fd());
}

fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC)
        .unwrap()
}

fn accept_fd_takes_unix_connections(cfg: Config) {
    let h = cfg.handle();
    let dir = std::env::temp_dir().join(format!("coro-io-acceptfd-{}-{cfg}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let l = UnixListener::bind(&dir).unwrap();
    l.set_nonblocking(true).unwrap();
    let c = UnixStream::connect(&dir).unwrap();
    let fd = run(&h, op::accept_fd(&h, l.as_raw_fd())).unwrap();
    let (res, _) = run(&h, op::send(&h, fd.as_raw_fd(), b"hi".as_slice()));
    assert_eq!(res.unwrap(), 2);
    let mut b = [0u8; 2];
    std::io::Read::read_exact(&mut &c, &mut b).unwrap();
    assert_eq!(&b, b"hi");
    h.release_fd(fd.as_raw_fd());
    h.release_fd(l.as_raw_fd());
    let _ = std::fs::remove_file(&dir);
}

fn recv_msg_reports_truncation(cfg: Config) {
    let h = cfg.handle();
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_nonblocking(true).unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    b.send_to(&[7u8; 100], a.local_addr().unwrap()).unwrap();
    b.send_to(&[8u8; 10], a.local_addr().unwrap()).unwrap();
    let (res, buf) = run(
        &h,
        op::recv_msg(&h, a.as_raw_fd(), Vec::with_capacity(16), libc::MSG_TRUNC),
    );
    let meta = res.unwrap();
    assert!(meta.truncated());
    assert_eq!(meta.len, 100, "MSG_TRUNC reports the full datagram length");
    assert_eq!(buf, vec![7u8; 16]);
    assert_eq!(meta.addr, Some(b.local_addr().unwrap()));
    let (res, buf) = run(
        &h,
        op::recv_msg(&h, a.as_raw_fd(), Vec::with_capacity(16), libc::MSG_TRUNC),
    );
    let meta = res.unwrap();
    assert!(!meta.truncated());
    assert_eq!((meta.len, buf), (10, vec![8u8; 10]));
    h.release_fd(a.as_raw_fd());
}
