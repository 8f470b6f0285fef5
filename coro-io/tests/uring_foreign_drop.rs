//! An op dropped by a thread other than the event loop's, on a ring only
//! the loop's thread may enter (io_uring `DEFER_TASKRUN`: a Spawn + Inline
//! scheduler), in the moment after the loop moved the op's entry into the
//! submission queue and before it entered the kernel. The owner then
//! closes the fd and the number goes to another file at once: the op must
//! not start on that file and take its data. Its own binary: the pause
//! that widens the moment is process-wide.
#![cfg(feature = "fault-injection")]

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use coro_io::driver::RegisteredFd;
use coro_io::fault;
use coro_io::op;
use coro_io::testing::Config;

/// The pause is process-wide: the tests take turns.
static PAUSE: Mutex<()> = Mutex::new(());

/// Makes `number` (just closed) name a fresh socket whose peer has sent
/// `mine`; returns that socket.
fn reuse_with_bytes(number: RawFd) -> (OwnedFd, UnixStream) {
    let (a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let a = OwnedFd::from(a);
    let other = if a.as_raw_fd() == number {
        a
    } else {
        // SAFETY: `number` is free (just closed, and no other thread of
        // this binary opens fds meanwhile: the tests take turns) and is
        // ours again as the duplicate; `a` stays open meanwhile.
        let fd = unsafe { libc::dup2(a.as_raw_fd(), number) };
        assert_eq!(fd, number, "dup2: {}", std::io::Error::last_os_error());
        // SAFETY: `fd` was just made by dup2 and nothing else owns it.
        unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
    };
    std::io::Write::write_all(&mut b, b"mine").unwrap();
    (other, b)
}

/// A stream of `h` (a driver with a receive queue), its peer, and its
/// fd's number.
fn queued_stream(h: &coro_io::driver::Handle) -> (RegisteredFd, UnixStream, RawFd) {
    let (a, b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    let number = a.as_raw_fd();
    let stream = RegisteredFd::new(h, a.into());
    assert!(
        stream.recv_queued(),
        "this configuration has a receive queue"
    );
    (stream, b, number)
}

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC)
        .unwrap()
}

/// Runs `stage`, which stages an entry from this thread, so that it is
/// in the loop's queue when this returns, with the loop pausing before
/// it enters (see `fault::delay_enter`): staged in the middle of a pause
/// (the queue then holds nothing of ours), the next pause begun comes
/// after the entry's move. Returns the pauses begun before that one.
fn stage_into_a_paused_queue(h: &coro_io::driver::Handle, stage: impl FnOnce()) -> u64 {
    // An idle loop pauses once per turn: wake it for a turn.
    let next_pause = |after: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while fault::enter_pauses() == after {
            assert!(Instant::now() < deadline, "the loop never paused");
            h.unpark();
            thread::sleep(Duration::from_millis(2));
        }
    };
    next_pause(fault::enter_pauses());
    thread::sleep(Duration::from_millis(20));
    let pauses = fault::enter_pauses();
    stage();
    next_pause(pauses);
    pauses
}

/// Whether `fd` is open in this process.
fn is_open(fd: RawFd) -> bool {
    rustix::io::fcntl_getfd(
        // SAFETY: only asks the kernel about the number, which these
        // tests (they take turns) do not hand to anyone.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
    )
    .is_ok()
}

/// After the loop's pause, `other` still holds the `mine` its peer wrote:
/// `who` took nothing of it.
fn expect_mine(other: &OwnedFd, who: &str) {
    thread::sleep(Duration::from_millis(600));
    let mut buf = [0u8; 16];
    let got = rustix::io::read(other, &mut buf);
    assert_eq!(
        got.map(|n| &buf[..n]),
        Ok(&b"mine"[..]),
        "{who} took another file's bytes"
    );
}

#[test]
fn an_op_dropped_off_the_loop_thread_never_starts_on_its_fds_next_file() {
    let _turn = PAUSE.lock().unwrap_or_else(|e| e.into_inner());
    let s = Config::URING_DEFER.sched();
    let h = s.driver().clone();
    fault::delay_enter(Some(Duration::from_millis(300)));
    for round in 0..5 {
        let (r, w) = pipe();
        let number = r.as_raw_fd();
        {
            let mut read = pin!(op::read(&h, number, Vec::with_capacity(64)));
            let mut cx = Context::from_waker(Waker::noop());
            // Staged from this thread: the loop is woken to submit it...
            assert!(read.as_mut().poll(&mut cx).is_pending(), "round {round}");
            // ...moves it into the queue, and pauses before entering.
            thread::sleep(Duration::from_millis(100));
        } // dropped here, off the loop thread
        drop(r);
        drop(w);
        // The number goes to another pipe, which gets bytes of its own.
        let (r2, w2) = pipe();
        let other = if r2.as_raw_fd() == number {
            r2
        } else {
            // SAFETY: `number` is free (just closed, and no other thread
            // of this binary opens fds meanwhile: the tests take turns)
            // and is ours again as the duplicate; `r2` stays open.
            let fd = unsafe { libc::dup2(r2.as_raw_fd(), number) };
            assert_eq!(fd, number, "dup2: {}", std::io::Error::last_os_error());
            // SAFETY: `fd` was just made by dup2 and nothing else owns it.
            unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) }
        };
        rustix::io::write(&w2, b"mine").unwrap();
        // The loop enters after its pause: a read started then on the
        // number would take these bytes.
        expect_mine(&other, &format!("round {round}: the dropped read"));
    }
    fault::delay_enter(None);
    s.shutdown();
}

/// The same moment for a stream's receive queue: the first read stages a
/// multishot receive; the stream is dropped (its fd closed) off the loop
/// thread after the loop moved that entry into the queue but before it
/// entered. Armed then, the receive would take the bytes of whatever
/// socket took the number.
#[test]
fn a_stream_dropped_off_the_loop_thread_never_receives_on_its_fds_next_socket() {
    let _turn = PAUSE.lock().unwrap_or_else(|e| e.into_inner());
    let s = Config::URING_DEFER.sched();
    let h = s.driver().clone();
    fault::delay_enter(Some(Duration::from_millis(300)));
    for round in 0..5 {
        let (stream, b, number) = queued_stream(&h);
        let mut out = [0u8; 16];
        let mut cx = Context::from_waker(Waker::noop());
        // Staged from this thread: the loop is woken to submit it...
        assert!(
            matches!(stream.poll_recv(&mut cx, &mut out), Poll::Pending),
            "round {round}"
        );
        // ...moves it into the queue, and pauses before entering.
        thread::sleep(Duration::from_millis(100));
        drop(stream); // off the loop thread; closes the fd
        drop(b);
        let (other, _peer) = reuse_with_bytes(number);
        // The loop enters after its pause.
        expect_mine(
            &other,
            &format!("round {round}: the dropped stream's receive"),
        );
    }
    fault::delay_enter(None);
    s.shutdown();
}

/// As above, with the loop held up for longer than a drop waits for the
/// kernel to read the receive's entry (1 s): the drop returns, and the fd
/// it owned must not be closed before the kernel has read the entry (its
/// number would then go to the next socket, on which the receive is
/// armed). The driver closes it itself once the kernel has.
#[test]
fn a_stream_dropped_while_the_loop_is_held_up_keeps_its_number_until_the_kernel_read() {
    let _turn = PAUSE.lock().unwrap_or_else(|e| e.into_inner());
    let s = Config::URING_DEFER.sched();
    let h = s.driver().clone();
    fault::delay_enter(Some(Duration::from_millis(1500)));
    for round in 0..2 {
        let (stream, b, number) = queued_stream(&h);
        let mut out = [0u8; 16];
        let mut cx = Context::from_waker(Waker::noop());
        // The loop moves the entry into the queue and pauses 1.5 s.
        let pauses = stage_into_a_paused_queue(&h, || {
            assert!(
                matches!(stream.poll_recv(&mut cx, &mut out), Poll::Pending),
                "round {round}"
            );
        });
        drop(stream); // off the loop thread: waits 1 s, then returns
        drop(b);
        if !is_open(number) {
            // Closed already: a new socket at the number must keep its
            // bytes when the loop enters after its pause.
            let (other, _peer) = reuse_with_bytes(number);
            expect_mine(
                &other,
                &format!("round {round}: the dropped stream's receive"),
            );
            continue;
        }
        // Still taken (by the driver), and not closed before the loop's
        // pause ends (the kernel reads the entry only in the enter after
        // it): the fd is open whenever that pause is seen not ended.
        loop {
            let still_open = is_open(number);
            if fault::enter_pauses_ended() > pauses {
                break;
            }
            assert!(
                still_open,
                "round {round}: closed before the kernel read the entry"
            );
            thread::sleep(Duration::from_millis(5));
        }
        // ...and closed once it has.
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_open(number) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the driver never closed the fd it took"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    fault::delay_enter(None);
    s.shutdown();
}

/// A drop closes its fd at once when nothing of that fd's is in the
/// kernel's queue, also while the loop is held up with others' entries
/// unread: a listener's port or a socket's path must be free again when
/// the drop returns (a server rebinding right after, a test expecting
/// `ECONNREFUSED`).
#[test]
fn a_socket_with_no_entry_in_the_queue_closes_at_once_while_the_loop_is_held_up() {
    let _turn = PAUSE.lock().unwrap_or_else(|e| e.into_inner());
    let s = Config::URING_DEFER.sched();
    let h = s.driver().clone();
    fault::delay_enter(Some(Duration::from_millis(600)));
    // Another socket's receive, staged from this thread: the loop moves
    // it into the queue and pauses before entering.
    let (r, _w) = UnixStream::pair().unwrap();
    r.set_nonblocking(true).unwrap();
    let mut read = pin!(op::recv(&h, r.as_raw_fd(), Vec::with_capacity(8)));
    let mut cx = Context::from_waker(Waker::noop());
    stage_into_a_paused_queue(&h, || assert!(read.as_mut().poll(&mut cx).is_pending()));
    let (a, _b) = UnixStream::pair().unwrap();
    let number = a.as_raw_fd();
    drop(RegisteredFd::new(&h, a.into()));
    assert!(!is_open(number), "the drop left the fd open");
    fault::delay_enter(None);
    s.shutdown();
}
