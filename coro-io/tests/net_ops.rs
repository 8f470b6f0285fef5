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

/// Poll `fut` to completion, parking the driver between polls (bounded).
fn run<F: Future>(h: &Handle, fut: F) -> F::Output {
    let w = Waker::from(Arc::new(Noop));
    let mut cx = Context::from_waker(&w);
    let mut fut = pin!(fut);
    for _ in 0..10_000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        h.park(Some(Duration::from_secs(5))).unwrap();
    }
    panic!("future did not complete");
}

coro_io::driver_tests!(
    drivers: accept_fd_takes_unix_connections,
    recv_msg_reports_truncation
);

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
