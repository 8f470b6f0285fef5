//! The driver on its own: ops are polled by hand and `park` is called
//! directly, with no scheduler.

use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use coro_io::DriverKind;
use coro_io::driver::{Handle, Interest};
use coro_io::op;
use coro_io::testing::Config;

struct CountWaker(AtomicUsize);
impl Wake for CountWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn waker() -> (Arc<CountWaker>, Waker) {
    let c = Arc::new(CountWaker(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

/// Poll `fut` to completion, parking the driver between polls (bounded;
/// see `testing::block_on_driver`).
fn run<F: Future>(h: &Handle, fut: F) -> F::Output {
    coro_io::testing::block_on_driver(h, fut, Duration::from_secs(60))
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let (r, w) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
    )
    .unwrap();
    (r, w)
}

coro_io::driver_tests!(
    drivers: pipe_read_waits_then_completes,
    registered_fd_releases_before_it_closes,
    op_that_succeeds_at_once_registers_nothing,
    dropped_read_is_safe_and_waker_fires_for_the_next,
    tcp_accept_connect_send_recv,
    poll_fd_hangup,
    unpark_wakes_park,
    stale_event_after_release_is_ignored,
    close_releases_registration,
    send_with_room_completes_at_first_poll,
    send_on_a_full_blocking_socket_waits_without_blocking,
    dropped_recv_does_not_take_the_bytes_of_a_later_send,
    dropped_recv_behind_a_long_backlog_does_not_take_the_bytes_of_a_later_send,
    a_dropped_poll_keeps_no_waker_and_the_others_still_wait,
    a_waker_replaced_while_an_op_waits_is_dropped_after_the_drivers_lock,
    a_dropped_op_left_to_finish_lets_go_of_its_waker_after_the_drivers_lock,
    a_cancelled_op_lets_go_of_its_waker_after_the_drivers_lock,
    cancel_all_without_a_bound_returns_once_the_ops_are_cancelled,
    cancel_all_returns_while_another_thread_parks,
    a_waker_that_panics_at_the_drivers_drop_does_not_escape_it,
    a_vectored_send_of_more_than_iov_max_buffers_sends_the_first_ones,
    a_stream_released_wakes_every_reader_past_a_panicking_one,
);

/// A stream released (its `RegisteredFd` dropped) with two readers waiting
/// on its receive queue, the first with a waker that panics: the second
/// must be woken all the same (it was not, on io_uring: the wake-ups
/// stopped at the panic).
fn a_stream_released_wakes_every_reader_past_a_panicking_one(cfg: Config) {
    use coro_io::driver::RegisteredFd;
    struct Panics;
    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("this waker panics (on purpose)");
        }
    }
    let h = cfg.handle();
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let a = RegisteredFd::new(&h, OwnedFd::from(a));
    // The first read starts the queue where there is one; a second
    // shows the readers waiting on it.
    let panics = Waker::from(Arc::new(Panics));
    let _ = a.poll_recv(&mut Context::from_waker(&panics), &mut [0; 8]);
    if !a.recv_queued() {
        // No receive queue (epoll, and io_uring before Linux 6.0 or
        // without its setup): nothing waits on one.
        return;
    }
    assert!(
        a.poll_recv(&mut Context::from_waker(&panics), &mut [0; 8])
            .is_pending()
    );
    let (count, counts) = waker();
    assert!(
        a.poll_recv(&mut Context::from_waker(&counts), &mut [0; 8])
            .is_pending()
    );
    drop((panics, counts));
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(a)));
    assert_eq!(
        count.0.load(Ordering::SeqCst),
        1,
        "{}: the second reader was not woken",
        cfg.name
    );
}

/// More than `IOV_MAX` (1024) buffers in one direct vectored send: the
/// first 1024 go (the count says how far), as a `writev` caller expects,
/// rather than the whole call failing with `EMSGSIZE`. epoll only (the
/// direct calls are epoll's).
fn a_vectored_send_of_more_than_iov_max_buffers_sends_the_first_ones(cfg: Config) {
    use coro_io::driver::RegisteredFd;
    if cfg.kind() != DriverKind::Epoll {
        return;
    }
    let h = cfg.handle();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let a = RegisteredFd::new(&h, OwnedFd::from(a));
    let bytes = vec![7u8; 2000];
    let bufs: Vec<_> = bytes.chunks(1).map(std::io::IoSlice::new).collect();
    let (_c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    match a.poll_write_vectored_direct(&mut cx, &bufs) {
        Poll::Ready(Ok(n)) => assert_eq!(n, 1024, "{}: bytes sent", cfg.name),
        other => panic!("{}: {other:?}", cfg.name),
    }
    let mut got = vec![0; 1024];
    b.read_exact(&mut got).unwrap();
    assert!(got.iter().all(|&x| x == 7));
}

/// A driver dropped with an op in flight whose waker panics (its future
/// forgotten, which safe code may do: the slot keeps the waker): the drop
/// reaps the op, and the waker's panic came out of the driver's `Drop`
/// (an abort when that drop runs during an unwinding), skipping the rest
/// of it, which leaks what the kernel may still write into. It is a
/// warning now.
fn a_waker_that_panics_at_the_drivers_drop_does_not_escape_it(cfg: Config) {
    struct Panics;
    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("this waker panics (on purpose)");
        }
    }
    let h = cfg.handle();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let wk = Waker::from(Arc::new(Panics));
    let mut cx = Context::from_waker(&wk);
    // Borrowing the handle: an owning future would keep the driver alive.
    let recv = op::Recv::stream(a.as_raw_fd(), Vec::with_capacity(16));
    let mut fut = Box::pin(op::OpFuture::borrowed(&h, recv));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    std::mem::forget(fut);
    b.write_all(b"x").unwrap();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(h)));
    drop(a);
    assert!(dropped.is_ok(), "{}: the driver's drop panicked", cfg.name);
}

/// `cancel_all` from one thread while another parks (a bare handle driven
/// by hand): io_uring's took the parker's lock, which the parked thread
/// holds until a completion comes, and staged its cancels without waking
/// it: it waited for that thread's park to time out (for ever without a
/// bound). The park here has a 20 s bound, so that the old code fails
/// rather than hangs.
fn cancel_all_returns_while_another_thread_parks(cfg: Config) {
    let h = cfg.handle();
    let (r, _w) = pipe();
    let (_c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut fut = pin!(op::read(&h, r.as_raw_fd(), Vec::with_capacity(16)));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let canceller = {
        let h = h.clone();
        let done = done.clone();
        std::thread::spawn(move || {
            // Let the other thread park first.
            std::thread::sleep(Duration::from_millis(100));
            let t0 = std::time::Instant::now();
            h.cancel_all(Duration::from_secs(5));
            let took = t0.elapsed();
            done.store(true, Ordering::SeqCst);
            h.unpark(); // ends the loop below (not what is tested)
            took
        })
    };
    // This thread parks (the issuer of a single-issuer ring), as a hand
    // driven loop does, until the cancel is over.
    while !done.load(Ordering::SeqCst) {
        let _ = h.park(Some(Duration::from_secs(20)));
    }
    let took = canceller.join().unwrap();
    assert!(
        took < Duration::from_secs(10),
        "{}: cancel_all took {took:?}",
        cfg.name
    );
    // On a single-issuer ring only this thread may submit and reap the
    // cancel: a few more parks (each returns at once: closed).
    let t0 = std::time::Instant::now();
    loop {
        if let Poll::Ready((r, _)) = fut.as_mut().poll(&mut cx) {
            assert!(r.is_err(), "{}: the read was not cancelled", cfg.name);
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{}: never cancelled",
            cfg.name
        );
        let _ = h.park(Some(Duration::from_millis(10)));
    }
}

/// `cancel_all(Duration::MAX)` means "as long as it takes": no overflow
/// panic (it computed `now + bound`, and panicked with the driver half
/// closed), and it returns once the op in flight is cancelled.
fn cancel_all_without_a_bound_returns_once_the_ops_are_cancelled(cfg: Config) {
    let h = cfg.handle();
    let (r, _w) = pipe();
    let (c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut fut = pin!(op::read(&h, r.as_raw_fd(), Vec::with_capacity(16)));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    h.cancel_all(Duration::MAX);
    assert!(c.0.load(Ordering::SeqCst) > 0, "the read was not woken");
    assert!(matches!(
        fut.as_mut().poll(&mut cx),
        Poll::Ready((Err(_), _))
    ));
}

/// A receive dropped while in flight, then a send to its socket from the
/// same thread (on io_uring a direct syscall, before the loop's next
/// turn): the bytes are for the next receive, not lost with the dropped
/// one's buffer. The dropped receive's cancel must reach the kernel
/// before the send does.
fn dropped_recv_does_not_take_the_bytes_of_a_later_send(cfg: Config) {
    dropped_recv_then_a_late_send(cfg, &cfg.handle(), 0);
}

/// The same on a tiny ring (2 entries) with a long backlog staged in this
/// turn (reads of an idle pipe): the dropped receive's cancel was staged
/// behind the backlog and, with only a few rounds of submission before
/// the drop returned, was still staged when the send delivered its bytes.
fn dropped_recv_behind_a_long_backlog_does_not_take_the_bytes_of_a_later_send(cfg: Config) {
    let h = cfg.handle_with(coro_io::driver::UringOptions {
        entries: 2,
        multishot_recv: false,
        ..Default::default()
    });
    dropped_recv_then_a_late_send(cfg, &h, 3000);
    h.cancel_all(Duration::from_secs(5));
}

/// A receive in flight dropped with `backlog` reads of an idle pipe staged
/// after it, a send of "late" to its socket, and the next receive, which
/// must get it (bounded).
fn dropped_recv_then_a_late_send(cfg: Config, h: &Handle, backlog: usize) {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    let (idle, _idle_w) = pipe();
    let (_c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut staged = Vec::new();
    {
        let mut recv = pin!(op::recv(h, a.as_raw_fd(), Vec::with_capacity(8)));
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        // In the kernel now (io_uring), waiting for data.
        h.park(Some(Duration::ZERO)).unwrap();
        assert!(recv.as_mut().poll(&mut cx).is_pending());
        // Staged in this turn (this thread parks: nothing submits them).
        for _ in 0..backlog {
            let mut r = Box::pin(op::read(h, idle.as_raw_fd(), Vec::with_capacity(1)));
            assert!(r.as_mut().poll(&mut cx).is_pending());
            staged.push(r);
        }
    } // dropped
    let mut send = pin!(op::send(h, b.as_raw_fd(), b"late".as_slice()));
    if let Poll::Ready((res, _)) = send.as_mut().poll(&mut cx) {
        assert_eq!(res.unwrap(), 4);
    } else {
        let (res, _) = run(h, send);
        assert_eq!(res.unwrap(), 4);
    }
    // Bounded: a lost message would leave this receive waiting forever.
    let mut recv = pin!(op::recv(h, a.as_raw_fd(), Vec::with_capacity(8)));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let buf = loop {
        if let Poll::Ready((res, buf)) = recv.as_mut().poll(&mut cx) {
            assert_eq!(res.unwrap(), 4, "{}", cfg.name);
            break buf;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}: the bytes went to the dropped receive",
            cfg.name
        );
        h.park(Some(Duration::from_millis(10))).unwrap();
    };
    assert_eq!(buf, b"late");
}

/// A send that finds room in the socket buffer completes in its first
/// poll on every driver (epoll: the syscall; io_uring: `try_now` before
/// submitting), except io_uring with SQPOLL, which submits without a
/// syscall and so sends through the ring.
fn send_with_room_completes_at_first_poll(cfg: Config) {
    let h = cfg.handle();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let (_c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut send = pin!(op::send(&h, a.as_raw_fd(), b"ping".as_slice()));
    match send.as_mut().poll(&mut cx) {
        Poll::Ready((res, _)) => assert_eq!(res.unwrap(), 4),
        Poll::Pending => {
            assert!(cfg.sqpoll, "{}: a send with room waited", cfg.name);
            let (res, _) = run(&h, send);
            assert_eq!(res.unwrap(), 4);
        }
    }
    let mut got = [0u8; 8];
    assert_eq!(rustix::io::read(&b, &mut got).unwrap(), 4);
    assert_eq!(&got[..4], b"ping");
}

/// A send on a socket in blocking mode whose buffer is full must wait for
/// room through the driver, not block the thread in the syscall (io_uring
/// does not need non-blocking sockets, so its early try says
/// `MSG_DONTWAIT`).
fn send_on_a_full_blocking_socket_waits_without_blocking(cfg: Config) {
    let h = cfg.handle();
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    // Fill the buffer without blocking; then, off epoll (which needs
    // non-blocking fds, as always), back to blocking mode.
    a.set_nonblocking(true).unwrap();
    // Smaller and smaller writes, down to one byte: no room is left for
    // any send at all.
    let chunk = [7u8; 4096];
    let mut queued = 0;
    for size in [4096, 512, 64, 1] {
        while let Ok(n) = rustix::io::write(&a, &chunk[..size]) {
            queued += n;
        }
    }
    if cfg.kind() != DriverKind::Epoll {
        a.set_nonblocking(false).unwrap();
    }
    // A send that did block would give up after 10 s (and the test fail
    // on the time check) instead of hanging the test.
    a.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let (c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let started = std::time::Instant::now();
    let mut send = pin!(op::send(&h, a.as_raw_fd(), vec![1u8; 1024]));
    assert!(send.as_mut().poll(&mut cx).is_pending(), "{}", cfg.name);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{}: the poll blocked",
        cfg.name
    );
    // Make room: the send completes.
    let mut sink = vec![0u8; queued + 4096];
    let mut drained = 0;
    b.set_nonblocking(true).unwrap();
    while drained < queued {
        match rustix::io::read(&b, &mut sink[..]) {
            Ok(n) => drained += n,
            Err(_) => break,
        }
    }
    let (res, _) = run(&h, send);
    assert_eq!(res.unwrap(), 1024, "{}", cfg.name);
    drop(c);
}

fn pipe_read_waits_then_completes(cfg: Config) {
    let h = cfg.handle();
    let (r, w) = pipe();
    let (c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut fut = pin!(op::read(&h, r.as_raw_fd(), Vec::with_capacity(16)));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(c.0.load(Ordering::SeqCst), 0);
    rustix::io::write(&w, b"abc").unwrap();
    // One park delivers the readiness and wakes the op's waker.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while c.0.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the op's waker was never woken"
        );
        h.park(Some(Duration::from_secs(1))).unwrap();
    }
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready((Ok(3), buf)) => assert_eq!(buf, b"abc"),
        other => panic!("unexpected {other:?}"),
    }
}

fn op_that_succeeds_at_once_registers_nothing(cfg: Config) {
    let h = cfg.handle();
    let (r, w) = pipe();
    let (res, _) = run(&h, op::write(&h, w.as_raw_fd(), b"xy".as_slice()));
    assert_eq!(res.unwrap(), 2);
    let (res, buf) = run(&h, op::read(&h, r.as_raw_fd(), vec![0u8; 8]));
    assert_eq!(res.unwrap(), 2);
    assert_eq!(&buf[..2], b"xy");
    if cfg.kind() == DriverKind::Epoll {
        assert_eq!(
            h.registered_fds(),
            0,
            "no epoll_ctl when the syscall succeeds at once"
        );
    }
}

fn dropped_read_is_safe_and_waker_fires_for_the_next(cfg: Config) {
    let h = cfg.handle();
    let (r, w) = pipe();
    {
        let (_c, wk) = waker();
        let mut cx = Context::from_waker(&wk);
        let mut fut = Box::pin(op::read(&h, r.as_raw_fd(), vec![0u8; 8]));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
    }
    // On io_uring a dropped read may take bytes that arrive before its
    // cancel ran (its documented cancel safety): the cancel runs first
    // here. (With SQPOLL under load, the kernel's thread ran it late, and
    // the read below waited for the byte the dropped one took.)
    for _ in 0..500 {
        if h.in_flight() == 0 {
            break;
        }
        h.park(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(h.in_flight(), 0, "the dropped read was never cancelled");
    // The next read waits, and its waker fires when the byte comes.
    let (woken, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut next = Box::pin(op::read(&h, r.as_raw_fd(), vec![0u8; 8]));
    assert!(next.as_mut().poll(&mut cx).is_pending());
    rustix::io::write(&w, b"z").unwrap();
    for _ in 0..500 {
        if woken.0.load(Ordering::SeqCst) > 0 {
            break;
        }
        h.park(Some(Duration::from_millis(10))).unwrap();
    }
    assert!(
        woken.0.load(Ordering::SeqCst) > 0,
        "the next read's waker never fired"
    );
    let (res, buf) = run(&h, next);
    assert_eq!(res.unwrap(), 1);
    assert_eq!(buf[0], b'z');
    h.cancel_all(Duration::from_secs(1));
    assert_eq!(h.in_flight(), 0);
}

fn tcp_accept_connect_send_recv(cfg: Config) {
    let h = cfg.handle();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        b
    });
    let (sock, peer) = run(&h, op::accept(&h, l.as_raw_fd())).unwrap();
    assert!(peer.ip().is_loopback());
    let mut got = Vec::new();
    while got.len() < 4 {
        let (res, buf) = run(&h, op::recv(&h, sock.as_raw_fd(), Vec::with_capacity(4)));
        let n = res.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"ping");
    let (res, _) = run(&h, op::send(&h, sock.as_raw_fd(), b"pong".as_slice()));
    assert_eq!(res.unwrap(), 4);
    assert_eq!(&client.join().unwrap(), b"pong");
    // Connect from our side too.
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_nonblocking(true).unwrap();
    run(&h, op::connect(&h, s.as_raw_fd(), addr)).unwrap();
    let (acc, _) = run(&h, op::accept(&h, l.as_raw_fd())).unwrap();
    h.release_fd(acc.as_raw_fd());
    h.release_fd(sock.as_raw_fd());
    h.release_fd(l.as_raw_fd());
    h.release_fd(s.as_raw_fd());
    assert_eq!(h.registered_fds(), 0);
}

fn poll_fd_hangup(cfg: Config) {
    let h = cfg.handle();
    let (r, w) = pipe();
    let (_c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut fut = pin!(op::poll_fd(&h, r.as_raw_fd(), Interest::Read));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    drop(w);
    let revents = run(&h, fut).unwrap();
    assert_ne!(revents & libc::POLLHUP as u32, 0, "revents {revents:#x}");
}

/// A poll dropped before its fd had an event lets go of its waker (and
/// so of the task behind it) at once: an fd that lives for good, such as
/// the signal pipe every `Signal` listener polls, may see no event for
/// hours while listeners come and go. A second poll of the same fd by the
/// same task (the same waker) still waits and is woken.
fn a_dropped_poll_keeps_no_waker_and_the_others_still_wait(cfg: Config) {
    let h = cfg.handle();
    let (r, w) = pipe();
    let (count, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut kept = Box::pin(op::poll_fd(&h, r.as_raw_fd(), Interest::Read));
    assert!(kept.as_mut().poll(&mut cx).is_pending());
    for _ in 0..100 {
        let mut gone = Box::pin(op::poll_fd(&h, r.as_raw_fd(), Interest::Read));
        assert!(gone.as_mut().poll(&mut cx).is_pending());
        drop(gone);
    }
    // Reaping the dropped polls' cancellations (io_uring) must not wake
    // anyone either, nor leave a waker behind.
    h.park(Some(Duration::from_millis(10))).unwrap();
    let (other, other_wk) = waker();
    let mut gone = Box::pin(op::poll_fd(&h, r.as_raw_fd(), Interest::Read));
    assert!(
        gone.as_mut()
            .poll(&mut Context::from_waker(&other_wk))
            .is_pending()
    );
    drop(gone);
    drop(other_wk);
    h.park(Some(Duration::from_millis(10))).unwrap();
    assert_eq!(
        Arc::strong_count(&other),
        1,
        "{cfg}: the driver kept a dropped poll's waker"
    );
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    rustix::io::write(&w, b"x").unwrap();
    let revents = run(&h, kept).unwrap();
    assert_ne!(revents & libc::POLLIN as u32, 0, "revents {revents:#x}");
}

/// An op re-polled with another waker (a future handed to another task)
/// lets go of the old one after the driver's lock: the op held the only
/// copy, and its drop may end a task that held a stream of the same
/// driver, whose release takes that lock. On io_uring it was dropped
/// under the lock: the thread locked the driver twice (a deadlock).
fn a_waker_replaced_while_an_op_waits_is_dropped_after_the_drivers_lock(cfg: Config) {
    let h = cfg.handle();
    let (r, _w) = pipe();
    let mut fut = a_poll_whose_waker_holds_a_stream(&h, &r);
    bounded(&format!("{cfg}: a re-poll with a new waker"), move || {
        let (_c, other) = waker();
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&other))
                .is_pending()
        );
        drop(fut);
    });
    h.park(Some(Duration::from_millis(10))).unwrap();
}

/// A waker that owns a stream of the driver `h`: its last copy's drop
/// releases the stream, which takes the driver's lock.
fn holds_a_stream(h: &Handle) -> Waker {
    use coro_io::driver::RegisteredFd;
    struct Holds(#[allow(dead_code)] RegisteredFd);
    impl Wake for Holds {
        fn wake(self: Arc<Self>) {}
    }
    let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    Waker::from(Arc::new(Holds(RegisteredFd::new(h, OwnedFd::from(a)))))
}

/// A readiness poll of `r` (nothing to read), waiting under a waker that
/// holds a stream of `h` and of which the driver keeps the only copy.
fn a_poll_whose_waker_holds_a_stream(
    h: &Handle,
    r: &OwnedFd,
) -> std::pin::Pin<Box<op::OpFuture<op::PollFd>>> {
    let owner = holds_a_stream(h);
    let mut fut = Box::pin(op::poll_fd(h, r.as_raw_fd(), Interest::Read));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&owner))
            .is_pending()
    );
    fut
}

/// Run `f` on another thread, bounded: the failure it looks for is a
/// deadlock of the thread that runs it.
fn bounded(what: &str, f: impl FnOnce() + Send + 'static) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} did not return"));
}

/// An op that must finish (a close), dropped while it waits, lets go of
/// its waker after the driver's lock (see the test above): on io_uring it
/// was dropped under it.
fn a_dropped_op_left_to_finish_lets_go_of_its_waker_after_the_drivers_lock(cfg: Config) {
    let h = cfg.handle();
    let (r, _w) = pipe();
    let owner = holds_a_stream(&h);
    let mut fut = Box::pin(op::close(&h, r));
    if fut
        .as_mut()
        .poll(&mut Context::from_waker(&owner))
        .is_ready()
    {
        return; // epoll: closed at once, nothing waits
    }
    drop(owner);
    bounded(&format!("{cfg}: dropping a waiting close"), move || {
        drop(fut)
    });
    h.park(Some(Duration::from_millis(10))).unwrap();
}

/// An op cancelled while its entry is still staged lets go of its waker
/// after the driver's lock: on io_uring it was overwritten under it.
fn a_cancelled_op_lets_go_of_its_waker_after_the_drivers_lock(cfg: Config) {
    let h = cfg.handle();
    let (r, _w) = pipe();
    let mut fut = a_poll_whose_waker_holds_a_stream(&h, &r);
    let (tx, rx) = std::sync::mpsc::channel();
    // Bounded: the failure is a deadlock of the thread that cancels.
    std::thread::spawn(move || {
        fut.as_mut().cancel();
        let _ = tx.send(fut);
    });
    let fut = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{cfg}: cancelling a waiting poll did not return"));
    let res = run(&h, fut);
    assert_eq!(
        res.map(|_| ()).unwrap_err().raw_os_error(),
        Some(libc::ECANCELED),
        "{cfg}"
    );
}

fn unpark_wakes_park(cfg: Config) {
    let h = cfg.handle();
    let h2 = h.clone();
    let t = std::thread::spawn(move || h2.unpark());
    // Without the unpark this would wait for a minute.
    let start = std::time::Instant::now();
    h.park(Some(Duration::from_secs(60))).unwrap();
    t.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
    // A second unpark with nobody parked makes the next park return at once.
    h.unpark();
    h.park(Some(Duration::from_secs(60))).unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
}

fn stale_event_after_release_is_ignored(cfg: Config) {
    let h = cfg.handle();
    let (r, w) = pipe();
    let (c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    let mut fut = pin!(op::read(&h, r.as_raw_fd(), vec![0u8; 4]));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    rustix::io::write(&w, b"1").unwrap(); // event queued for generation 0
    if cfg.kind() != DriverKind::Epoll {
        // Completion drivers keep no per-fd registration: release_fd is a
        // no-op and the in-flight read completes with the byte.
        h.release_fd(r.as_raw_fd());
        assert_eq!(c.0.load(Ordering::SeqCst), 0);
        assert!(matches!(run(&h, fut), (Ok(1), _)));
        return;
    }
    h.release_fd(r.as_raw_fd()); // wakes the waiter once (it must retry)
    let after_release = c.0.load(Ordering::SeqCst);
    assert_eq!(after_release, 1);
    h.park(Some(Duration::ZERO)).unwrap();
    // The queued event (if the kernel still delivered it) was for the old
    // generation: no further wake.
    assert_eq!(c.0.load(Ordering::SeqCst), after_release);
    // The op re-registers with a new generation and completes.
    assert!(matches!(
        fut.as_mut().poll(&mut cx),
        Poll::Ready((Ok(1), _))
    ));
}

fn close_releases_registration(cfg: Config) {
    let h = cfg.handle();
    let (r, w) = pipe();
    let (_c, wk) = waker();
    let mut cx = Context::from_waker(&wk);
    {
        let mut fut = pin!(op::read(&h, r.as_raw_fd(), vec![0u8; 4]));
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    run(&h, op::close(&h, r)).unwrap();
    run(&h, op::close(&h, w)).unwrap();
    assert_eq!(h.registered_fds(), 0);
}

/// `RegisteredFd`: dropping it, closing it and taking the fd back each end
/// the driver's registration (epoll keys it by fd number: a registration
/// left behind would be taken for the next fd with that number).
fn registered_fd_releases_before_it_closes(cfg: Config) {
    use coro_io::driver::RegisteredFd;
    let h = cfg.handle();
    let epoll = h.kind() == DriverKind::Epoll;
    // Registered by a read that has to wait, then ended three ways.
    for end in 0..3 {
        let (r, _w) = pipe();
        let r = RegisteredFd::new(&h, r);
        let (_c, wk) = waker();
        let mut cx = Context::from_waker(&wk);
        {
            let mut read = pin!(op::read(&h, r.raw(), Vec::with_capacity(8)));
            assert!(read.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(h.registered_fds(), usize::from(epoll), "end {end}");
        match end {
            0 => drop(r),
            1 => run(&h, r.close()).unwrap(),
            _ => drop(r.into_fd()),
        }
        assert_eq!(h.registered_fds(), 0, "end {end}");
    }
    // Let io_uring reap the cancelled reads (a park may return early:
    // bounded by time, not by a count).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.in_flight() > 0 && std::time::Instant::now() < deadline {
        h.park(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(h.in_flight(), 0);
}
