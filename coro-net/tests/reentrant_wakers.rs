//! A stream shared by several tasks (`&TcpStream`'s `AsyncRead` and
//! `AsyncWrite`) polls its op with a waker that wakes them all, under the
//! stream's lock. Those tasks' wakers are foreign code: one that polls its
//! task right inside `wake` reaches the same stream, and must not find the
//! lock held by its own thread. On every driver configuration.
//!
//! A deadlock cannot fail a test by itself: each poll that could deadlock
//! runs on a helper thread, waited for at most [`BOUND`].

mod common;

use std::future::Future;
use std::io::Read;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use common::{pair, sched};
use coro_io::coop;
use coro_io::testing::Config;
use coro_net::tcp::TcpStream;
use futures_io::{AsyncRead, AsyncWrite};

coro_io::driver_tests!(
    a_read_with_the_budget_spent_wakes_no_reader_under_the_lock,
    a_flush_with_the_budget_spent_wakes_no_writer_under_the_lock,
    a_read_that_finds_the_waiter_list_full_wakes_no_one_under_the_lock,
);

const BOUND: Duration = Duration::from_secs(10);

/// A waker that, woken, reads from or flushes the same stream right there.
struct Reenters {
    stream: Arc<TcpStream>,
    write: bool,
    runs: AtomicUsize,
}

impl Wake for Reenters {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let mut cx = Context::from_waker(Waker::noop());
        let mut s = &*self.stream;
        if self.write {
            let _ = Pin::new(&mut s).poll_flush(&mut cx);
        } else {
            let _ = Pin::new(&mut s).poll_read(&mut cx, &mut [0; 64]);
        }
    }
}

/// Runs `poll` on a helper thread, inside a task budget already spent,
/// and fails if it does not return within [`BOUND`].
fn with_budget_spent(name: &str, poll: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        coop::budgeted(|| {
            for _ in 0..coop::BUDGET {
                coop::consume();
            }
            poll();
        });
        let _ = tx.send(());
    });
    match rx.recv_timeout(BOUND) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: deadlocked"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: the poll panicked"),
    }
}

/// One task waits in a read; another reads with its budget spent. The
/// budget's yield woke every reader of the stream while it held the
/// read side's lock: the first's waker, reading again inline, took that
/// lock a second time on the same thread.
fn a_read_with_the_budget_spent_wakes_no_reader_under_the_lock(cfg: Config) {
    let s = sched(cfg);
    let (ours, _peer) = pair(&s);
    let ours = Arc::new(ours);
    let waiter = Arc::new(Reenters {
        stream: ours.clone(),
        write: false,
        runs: AtomicUsize::new(0),
    });
    let w = Waker::from(waiter.clone());
    let mut r = &*ours;
    assert!(
        Pin::new(&mut r)
            .poll_read(&mut Context::from_waker(&w), &mut [0; 64])
            .is_pending()
    );
    let other = ours.clone();
    with_budget_spent("read", move || {
        let mut r = &*other;
        let got = Pin::new(&mut r).poll_read(&mut Context::from_waker(Waker::noop()), &mut [0; 64]);
        assert!(got.is_pending(), "nothing was sent: {got:?}");
    });
    drop(w);
    s.shutdown();
}

/// The same on the write side: one task waits in a flush of a send the
/// peer does not take; another flushes with its budget spent.
fn a_flush_with_the_budget_spent_wakes_no_writer_under_the_lock(cfg: Config) {
    let s = sched(cfg);
    let (ours, mut peer) = pair(&s);
    let ours = Arc::new(ours);
    let waiter = Arc::new(Reenters {
        stream: ours.clone(),
        write: true,
        runs: AtomicUsize::new(0),
    });
    let wk = Waker::from(waiter.clone());
    // Fill the peer's window until a flush waits: a send stays in flight.
    let mut w = &*ours;
    let chunk = vec![7u8; 64 * 1024];
    let mut waiting = false;
    for _ in 0..4096 {
        let mut cx = Context::from_waker(&wk);
        match Pin::new(&mut w).poll_write(&mut cx, &chunk) {
            Poll::Ready(Ok(_)) => continue,
            Poll::Ready(Err(e)) => panic!("write: {e}"),
            Poll::Pending => {}
        }
        if Pin::new(&mut w).poll_flush(&mut cx).is_pending() {
            waiting = true;
            break;
        }
    }
    if !waiting {
        // epoll: a write makes its syscall when polled, and no send stays
        // in flight for a flush to wait on (nothing to test). io_uring
        // keeps one in the kernel.
        assert!(
            cfg.kind() != coro_io::DriverKind::IoUring,
            "io_uring: no flush waited, with the peer reading nothing"
        );
        return;
    }
    let other = ours.clone();
    with_budget_spent("flush", move || {
        let mut w = &*other;
        // (Pending, unless the kernel found room for the rest meanwhile.)
        let _ = Pin::new(&mut w).poll_flush(&mut Context::from_waker(Waker::noop()));
    });
    // Let the send finish, so the stream's drop does not wait on it.
    peer.set_read_timeout(Some(BOUND)).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    drop(wk);
    std::thread::spawn(move || while matches!(peer.read(&mut sink), Ok(n) if n > 0) {});
    s.shutdown();
}

/// Counts its wake-ups.
#[derive(Default)]
struct Counts(AtomicUsize);

impl Wake for Counts {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A list of an fd's waiting tasks that is full is let go of (its wakers
/// woken) by the wait that finds it so. Through the shared stream's
/// adapter, that wait holds the read side's lock: the wakers let go of
/// must not be woken under it (one that reads through the adapter inline
/// would take the lock a second time on its own thread).
fn a_read_that_finds_the_waiter_list_full_wakes_no_one_under_the_lock(cfg: Config) {
    if cfg.kind() == coro_io::DriverKind::IoUring && !cfg.uring().multishot_recv {
        // One receive op per read, each with its own waker: no shared
        // list of the fd's readers to fill.
        return;
    }
    let s = sched(cfg);
    if cfg.kind() == coro_io::DriverKind::IoUring && !s.driver().recv_queue() {
        // A kernel without multishot receive (before 6.0): as above.
        s.shutdown();
        return;
    }
    let (ours, _peer) = pair(&s);
    let ours = Arc::new(ours);
    // Reads polled once with a waker of their own and dropped leave their
    // wakers in the list, which is let go of when a waker comes to it
    // full: at least 32 held and no room for more (see `push_waker`). Its
    // room is a power of two, so that can only be when it holds 32, 64,
    // ...: after such an addition, wait for its wakers to be woken (by
    // the driver's next turn). Let go of with `n` held, it holds the one
    // that came then and has room for `2 n`, which tells how many more
    // fill it again.
    let read_once = |w: &Waker| {
        let mut read = std::pin::pin!(ours.read(vec![0u8; 16]));
        let got = read.as_mut().poll(&mut Context::from_waker(w));
        assert!(got.is_pending(), "nothing was sent");
    };
    let woken = |counts: &[Arc<Counts>]| {
        counts
            .iter()
            .filter(|c| c.0.load(Ordering::SeqCst) > 0)
            .count()
    };
    let mut counts: Vec<Arc<Counts>> = Vec::new();
    let n = loop {
        assert!(counts.len() < 5000, "{cfg}: the list was never let go of");
        let held = counts.len();
        let c = Arc::new(Counts::default());
        read_once(&Waker::from(c.clone()));
        counts.push(c);
        if held >= 32 && held.is_power_of_two() {
            // Generous: a busy machine may take long to run the loop's
            // turn, and a wake-up seen late would be taken for the next.
            let settle = |want: &dyn Fn(usize) -> bool| {
                let deadline = std::time::Instant::now() + Duration::from_secs(2);
                while !want(woken(&counts)) && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(2));
                }
            };
            settle(&|w| w > 0);
            if woken(&counts) > 0 {
                // Woken one by one: all of them, in time.
                settle(&|w| w >= held);
                assert_eq!(woken(&counts), held, "{cfg}: let go of with {held} held");
                break held;
            }
        }
    };
    let room = if n < 1024 { 2 * n } else { n };
    let held = 1;
    let waiter = Arc::new(Reenters {
        stream: ours.clone(),
        write: false,
        runs: AtomicUsize::new(0),
    });
    let reenters = Waker::from(waiter.clone());
    read_once(&reenters);
    let fillers: Vec<Arc<Counts>> = (held + 1..room).map(|_| Arc::default()).collect();
    for c in &fillers {
        read_once(&Waker::from(c.clone()));
    }
    // Not let go of while filling: the adapter's read is what finds it
    // full (else this would test nothing).
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(woken(&fillers), 0, "{cfg}: let go of while filling");
    assert_eq!(
        waiter.runs.load(Ordering::SeqCst),
        0,
        "{cfg}: let go of too early"
    );
    // The adapter's read adds its waker: the list is full, and let go of.
    let other = ours.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = &*other;
        let got = Pin::new(&mut r).poll_read(&mut Context::from_waker(Waker::noop()), &mut [0; 64]);
        let _ = tx.send(got.is_pending());
    });
    match rx.recv_timeout(BOUND) {
        Ok(pending) => assert!(pending, "{cfg}: nothing was sent"),
        Err(_) => panic!("{cfg}: the adapter's read deadlocked"),
    }
    // The waker let go of is woken all the same (by the driver's next
    // turn): it read again then.
    let deadline = std::time::Instant::now() + BOUND;
    while waiter.runs.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "{cfg}: never woken");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop((reenters, fillers));
    s.shutdown();
}
