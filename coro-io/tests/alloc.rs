//! Allocations on the epoll driver's hot path: a read and a write of a
//! stream, and a loop turn that wakes a reader, allocate nothing once the
//! fd is registered (a busy server does them once per request; each
//! `malloc`/`free` pair showed up in its profile).
//!
//! Its own test binary: it installs a counting global allocator, which
//! counts per thread so that the harness's other threads do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use coro_io::DriverKind;
use coro_io::driver::Handle;
use coro_io::op;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call to the system allocator unchanged; the count
// is a const-initialised thread-local `Cell` (no allocation, no lock).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

struct Nop;
impl Wake for Nop {
    fn wake(self: Arc<Self>) {}
}

/// One request's worth of ops on a socket pair: the peer writes, the
/// reader waits for it (a loop turn wakes it), reads, and writes back.
fn round(
    h: &Handle,
    a: &std::os::unix::net::UnixStream,
    b: &std::os::unix::net::UnixStream,
    cx: &mut Context<'_>,
    buf: Vec<u8>,
) -> Vec<u8> {
    let mut read = pin!(op::recv_stream(h, a.as_raw_fd(), buf));
    assert!(read.as_mut().poll(cx).is_pending(), "nothing to read yet");
    let mut send = pin!(op::send(h, b.as_raw_fd(), b"ping".as_slice()));
    let Poll::Ready((res, _)) = send.as_mut().poll(cx) else {
        panic!("a send with room in the socket buffer completes at once")
    };
    assert_eq!(res.unwrap(), 4);
    let mut turns = 0;
    let buf = loop {
        if let Poll::Ready((res, buf)) = read.as_mut().poll(cx) {
            assert_eq!(res.unwrap(), 4);
            break buf;
        }
        turns += 1;
        assert!(turns < 100, "the read was never woken");
        h.park(Some(Duration::from_secs(5))).unwrap();
    };
    let mut reply = pin!(op::send(h, a.as_raw_fd(), b"pong".as_slice()));
    let Poll::Ready((res, _)) = reply.as_mut().poll(cx) else {
        panic!("a send with room in the socket buffer completes at once")
    };
    assert_eq!(res.unwrap(), 4);
    let mut drain = [0u8; 8];
    assert_eq!(rustix::io::read(b, &mut drain).unwrap(), 4);
    let mut buf = buf;
    buf.clear();
    buf
}

#[test]
fn epoll_stream_ops_and_turns_allocate_nothing_once_registered() {
    let h = Handle::new(DriverKind::Epoll).unwrap();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let waker = Waker::from(Arc::new(Nop));
    let mut cx = Context::from_waker(&waker);
    // Warm-up: registers `a` and sizes the driver's tables.
    let mut buf = Vec::with_capacity(64);
    for _ in 0..3 {
        buf = round(&h, &a, &b, &mut cx, buf);
    }
    let before = allocs();
    for _ in 0..100 {
        buf = round(&h, &a, &b, &mut cx, buf);
    }
    let n = allocs() - before;
    assert_eq!(
        n, 0,
        "{n} allocations in 100 rounds of recv, send and a loop turn"
    );
    h.release_fd(a.as_raw_fd());
    h.release_fd(b.as_raw_fd());
}
