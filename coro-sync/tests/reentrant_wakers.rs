//! Wakers that run code of their own when woken or dropped, as hand-rolled
//! executors' wakers do: one that polls its task right inside `wake`, and
//! one that owns the last reference to a task (dropping it drops that
//! task's future). Either may reach the same primitive again while the
//! primitive is waking; that must neither deadlock nor lose a wake-up.
//!
//! A deadlock cannot fail a test by itself, so every case runs on a helper
//! thread and the test waits for it at most [`BOUND`]; a deadlocked helper
//! is left behind (the test process ends without it).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex, mpsc as std_mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use coro_sync::{
    Barrier, Condvar, Event, Latch, Mutex, Queue, RingBuffer, Semaphore, SharedMutex, broadcast,
    mpsc, oneshot, watch,
};

const BOUND: Duration = Duration::from_secs(10);

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A task whose waker polls it right there, inside `wake`.
struct Inline {
    future: StdMutex<Option<BoxFuture>>,
    /// Set by a wake that found the task being polled: poll once more.
    again: AtomicBool,
    done: AtomicBool,
}

impl Inline {
    fn new(f: impl Future<Output = ()> + Send + 'static) -> Arc<Self> {
        Arc::new(Self {
            future: StdMutex::new(Some(Box::pin(f))),
            again: AtomicBool::new(false),
            done: AtomicBool::new(false),
        })
    }

    fn run(self: &Arc<Self>) {
        let waker = Waker::from(self.clone());
        loop {
            self.again.store(false, Ordering::SeqCst);
            let Ok(mut slot) = self.future.try_lock() else {
                // Woken from inside its own poll: that poll goes round again.
                self.again.store(true, Ordering::SeqCst);
                return;
            };
            if let Some(f) = slot.as_mut() {
                if f.as_mut().poll(&mut Context::from_waker(&waker)).is_ready() {
                    *slot = None;
                    self.done.store(true, Ordering::SeqCst);
                }
            }
            drop(slot);
            if !self.again.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}

impl Wake for Inline {
    fn wake(self: Arc<Self>) {
        self.run();
    }
}

/// One poll of `f` with a waker that does nothing.
fn poll_noop<F: Future + ?Sized>(f: Pin<&mut F>) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs `case` on a helper thread and fails if it does not end within
/// [`BOUND`].
fn bounded(name: &str, case: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        case();
        let _ = tx.send(());
    });
    match rx.recv_timeout(BOUND) {
        Ok(()) => {}
        Err(std_mpsc::RecvTimeoutError::Timeout) => {
            panic!("{name}: deadlocked (no end within {BOUND:?})")
        }
        // The case panicked; its message is already printed.
        Err(std_mpsc::RecvTimeoutError::Disconnected) => panic!("{name}: the case failed"),
    }
}

/// Polls `task` once on an [`Inline`] waker (it must wait), runs `wake`,
/// and checks that the task ran to its end inside that call.
fn inline_case(
    name: &'static str,
    task: impl Future<Output = ()> + Send + 'static,
    wake: impl FnOnce() + Send + 'static,
) {
    bounded(name, move || {
        let t = Inline::new(task);
        t.run();
        assert!(
            !t.done.load(Ordering::SeqCst),
            "{name}: the task did not wait"
        );
        wake();
        assert!(
            t.done.load(Ordering::SeqCst),
            "{name}: the task was not run"
        );
    });
}

#[test]
fn an_inline_waker_finishing_an_event_wait() {
    let e = Arc::new(Event::new(false));
    let e2 = e.clone();
    inline_case("event", async move { e2.wait().await }, move || e.set());
}

#[test]
fn an_inline_waker_finishing_a_latch_wait() {
    let l = Arc::new(Latch::new(1));
    let l2 = l.clone();
    inline_case("latch", async move { l2.wait().await }, move || {
        l.count_down(1)
    });
}

#[test]
fn an_inline_waker_taking_and_releasing_a_mutex() {
    let m = Arc::new(Mutex::new(0));
    let held = m.try_lock_arc().unwrap();
    let m2 = m.clone();
    inline_case("mutex", async move { *m2.lock().await += 1 }, move || {
        drop(held)
    });
    assert_eq!(*m.try_lock().unwrap(), 1);
}

#[test]
fn an_inline_waker_taking_and_releasing_a_shared_mutex() {
    bounded("shared mutex", || {
        let m = Arc::new(SharedMutex::new(0));
        let mut w = m.try_write().unwrap();
        let m2 = m.clone();
        let t = Inline::new(async move { assert_eq!(*m2.read().await, 1) });
        t.run();
        assert!(!t.done.load(Ordering::SeqCst), "the reader did not wait");
        *w += 1;
        drop(w);
        assert!(t.done.load(Ordering::SeqCst), "the reader was not run");
    });
}

#[test]
fn an_inline_waker_taking_and_releasing_a_semaphore_permit() {
    let s = Arc::new(Semaphore::new(0));
    let s2 = s.clone();
    inline_case(
        "semaphore",
        async move { drop(s2.acquire().await.unwrap()) },
        {
            let s = s.clone();
            move || s.add_permits(1)
        },
    );
    assert_eq!(s.available_permits(), 1);
}

#[test]
fn an_inline_waker_finishing_a_barrier() {
    let b = Arc::new(Barrier::new(2));
    let b2 = b.clone();
    inline_case(
        "barrier",
        async move {
            b2.wait().await;
        },
        move || {
            // The second arrival completes the barrier at its first poll.
            let mut arrive = Box::pin(b.wait());
            assert!(poll_noop(arrive.as_mut()).is_ready());
        },
    );
}

#[test]
fn an_inline_waker_woken_by_a_condvar() {
    let pair = Arc::new((Mutex::new(false), Condvar::new()));
    let p2 = pair.clone();
    inline_case(
        "condvar",
        async move {
            let (m, c) = &*p2;
            let mut g = m.lock().await;
            while !*g {
                g = c.wait(g).await;
            }
        },
        move || {
            let (m, c) = &*pair;
            *m.try_lock().unwrap() = true;
            c.notify_all();
        },
    );
}

#[test]
fn an_inline_waker_popping_a_queue() {
    let q = Arc::new(Queue::new());
    let q2 = q.clone();
    inline_case(
        "queue",
        async move { assert_eq!(q2.pop().await.unwrap(), 7) },
        move || q.push(7).unwrap(),
    );
}

#[test]
fn an_inline_waker_popping_a_ring_buffer() {
    let rb = Arc::new(RingBuffer::<u32, 2>::new());
    let rb2 = rb.clone();
    inline_case(
        "ring buffer",
        async move { assert_eq!(rb2.pop().await.unwrap(), 7) },
        move || rb.try_push(7).unwrap(),
    );
}

#[test]
fn an_inline_waker_receiving_from_an_mpsc_channel() {
    let (tx, mut rx) = mpsc::channel(1);
    inline_case(
        "mpsc",
        async move { assert_eq!(rx.recv().await, Some(7)) },
        move || tx.try_send(7).unwrap(),
    );
}

#[test]
fn an_inline_waker_receiving_from_a_oneshot_channel() {
    let (tx, rx) = oneshot::channel();
    inline_case(
        "oneshot",
        async move { assert_eq!(rx.await.unwrap(), 7) },
        move || tx.send(7).unwrap(),
    );
}

#[test]
fn an_inline_waker_receiving_from_a_broadcast_channel() {
    let (tx, mut rx) = broadcast::channel(2);
    inline_case(
        "broadcast",
        async move { assert_eq!(rx.recv().await.unwrap(), 7) },
        move || {
            tx.send(7).unwrap();
        },
    );
}

#[test]
fn an_inline_waker_seeing_a_watch_change() {
    let (tx, mut rx) = watch::channel(0);
    inline_case(
        "watch",
        async move {
            rx.changed().await.unwrap();
            assert_eq!(*rx.borrow(), 7);
        },
        move || tx.send(7).unwrap(),
    );
}

/// A waker that owns a task's future: dropping the last copy of the waker
/// drops the future (a task whose executor has gone, or whose only
/// references are the wakers left in waiter lists).
struct Owns {
    future: StdMutex<Option<BoxFuture>>,
    woken: Arc<AtomicUsize>,
}

impl Wake for Owns {
    fn wake(self: Arc<Self>) {
        self.woken.fetch_add(1, Ordering::SeqCst);
    }
}

/// `owned` waits on the same list as `waiter`; `waiter` is polled with a
/// waker that owns `owned` and nothing else keeps `owned`. Waking the list
/// (`wake`) consumes that waker, which drops `owned`, whose waiter leaves
/// the list being woken.
fn owning_case<W: Future + Send + 'static>(
    name: &'static str,
    owned: impl Future<Output = ()> + Send + 'static,
    waiter: W,
    wake: impl FnOnce() + Send + 'static,
) {
    bounded(name, move || {
        let woken = Arc::new(AtomicUsize::new(0));
        let owner = Arc::new(Owns {
            future: StdMutex::new(Some(Box::pin(owned))),
            woken: woken.clone(),
        });
        let waker = Waker::from(owner.clone());
        let mut waiter = Box::pin(waiter);
        assert!(
            waiter
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        // Listening after `waiter`, so a wake-up of one goes to `waiter`.
        {
            let mut owned = owner.future.lock().unwrap();
            let owned = owned.as_mut().unwrap();
            assert!(poll_noop(owned.as_mut()).is_pending());
        }
        drop((owner, waker));
        wake();
        assert_eq!(woken.load(Ordering::SeqCst), 1, "{name}: not woken once");
        // Kept until here, so that only the list held the waker.
        drop(waiter);
    });
}

#[test]
fn a_waker_owning_an_event_waiter_is_dropped_by_the_set() {
    let e = Arc::new(Event::new(false));
    let (e2, e3) = (e.clone(), e.clone());
    owning_case(
        "event",
        async move { e2.wait().await },
        async move { e3.wait().await },
        move || e.set(),
    );
}

#[test]
fn a_waker_owning_a_mutex_waiter_is_dropped_by_the_unlock() {
    let m = Arc::new(Mutex::new(()));
    let held = m.try_lock_arc().unwrap();
    let (m2, m3) = (m.clone(), m.clone());
    owning_case(
        "mutex",
        async move { drop(m2.lock().await) },
        async move { drop(m3.lock().await) },
        move || drop(held),
    );
    assert!(m.try_lock().is_some(), "the mutex was left locked");
}

#[test]
fn a_waker_owning_a_queue_waiter_is_dropped_by_the_push() {
    let q = Arc::new(Queue::new());
    let (q2, q3) = (q.clone(), q.clone());
    owning_case(
        "queue",
        async move {
            let _ = q2.pop().await;
        },
        async move {
            let _ = q3.pop().await;
        },
        {
            let q = q.clone();
            move || q.push(1).unwrap()
        },
    );
}

/// A waker that alone owns an `acquire` of `s`, already waiting (first in
/// line).
fn owns_a_waiting_acquire(s: &Arc<Semaphore>) -> Waker {
    let s = s.clone();
    let mut owned: BoxFuture = Box::pin(async move { drop(s.acquire().await) });
    assert!(poll_noop(owned.as_mut()).is_pending());
    Waker::from(Arc::new(Owns {
        future: StdMutex::new(Some(owned)),
        woken: Arc::default(),
    }))
}

/// Re-polling a waiter with another waker must not drop the first waker
/// inside the list either: here it owns another waiter of the same list.
#[test]
fn a_replaced_waker_owning_a_semaphore_waiter() {
    bounded("semaphore re-poll", || {
        let s = Arc::new(Semaphore::new(0));
        let first = owns_a_waiting_acquire(&s);
        let mut waiter = Box::pin(s.acquire());
        let mut cx = Context::from_waker(&first);
        assert!(waiter.as_mut().poll(&mut cx).is_pending());
        drop(first);
        assert!(poll_noop(waiter.as_mut()).is_pending());
        s.add_permits(1);
        assert!(matches!(poll_noop(waiter.as_mut()), Poll::Ready(Ok(_))));
    });
}

thread_local! {
    static HELD: std::cell::RefCell<Option<coro_sync::MutexGuardArc<()>>> =
        const { std::cell::RefCell::new(None) };
}

/// A guard kept in a thread-local is released by the thread's exit, among
/// the other thread-locals' destructors, perhaps after ones the waiters
/// used (coro-sync kept a thread-local list of deferred wake-ups once; it
/// keeps none now, and this stays a guard): its waiter must still be
/// woken (and nothing may panic there: a panic in a thread-local's
/// destructor aborts the process).
#[test]
fn a_guard_released_by_a_thread_local_at_thread_exit_wakes_its_waiter() {
    bounded("thread exit", || {
        let m = Arc::new(Mutex::new(()));
        let woken = Arc::new(AtomicUsize::new(0));
        let (locked_tx, locked_rx) = std_mpsc::channel();
        let (go_tx, go_rx) = std_mpsc::channel::<()>();
        let holder = {
            let m = m.clone();
            std::thread::spawn(move || {
                // Registered first, so destroyed after thread-locals first
                // used below (destructors run in reverse order here).
                HELD.with(|h| *h.borrow_mut() = Some(m.try_lock_arc().unwrap()));
                // A wake-up first, as a thread that waited on coro-sync would.
                let e = Event::new(false);
                let mut w = Box::pin(e.wait());
                let _ = poll_noop(w.as_mut());
                e.set();
                locked_tx.send(()).unwrap();
                go_rx.recv().unwrap();
            })
        };
        locked_rx.recv().unwrap();
        let mut lock = Box::pin(m.lock());
        let waker = Waker::from(Arc::new(Owns {
            future: StdMutex::new(None),
            woken: woken.clone(),
        }));
        assert!(
            lock.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        go_tx.send(()).unwrap();
        holder.join().unwrap();
        assert_eq!(woken.load(Ordering::SeqCst), 1, "the waiter was not woken");
        assert!(
            lock.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_ready()
        );
    });
}

/// A notified waiter dropped unused passes its wake-up on, from inside its
/// drop: the next waiter's waker, which polls its task inline, must not run
/// while the list is locked.
#[test]
fn a_wake_up_passed_on_by_a_dropped_waiter_reaches_an_inline_waker() {
    bounded("passed on", || {
        let m = Arc::new(Mutex::new(()));
        let held = m.try_lock_arc().unwrap();
        let mut first = Box::pin(m.lock());
        assert!(poll_noop(first.as_mut()).is_pending());
        let m2 = m.clone();
        let next = Inline::new(async move { drop(m2.lock().await) });
        next.run();
        assert!(
            !next.done.load(Ordering::SeqCst),
            "the next waiter did not wait"
        );
        // The unlock wakes `first`, which goes without taking the lock.
        drop(held);
        assert!(!next.done.load(Ordering::SeqCst), "woken out of turn");
        drop(first);
        assert!(
            next.done.load(Ordering::SeqCst),
            "the wake-up was not passed on"
        );
    });
}

/// A waiter re-polled with a new waker drops its old one; here the old one
/// owns a notified waiter whose drop passes the wake-up on to the very
/// waiter being polled. That drop must come after the poll let go of its
/// own state (else the poll waits for itself).
#[test]
fn a_replaced_waker_whose_drop_passes_a_wake_up_back() {
    bounded("passed back", || {
        let s = Arc::new(Semaphore::new(0));
        let old = owns_a_waiting_acquire(&s);
        let mut waiter = Box::pin(s.acquire());
        assert!(
            waiter
                .as_mut()
                .poll(&mut Context::from_waker(&old))
                .is_pending()
        );
        drop(old);
        // The permit's wake-up goes to `owned`, first in line.
        s.add_permits(1);
        assert!(matches!(poll_noop(waiter.as_mut()), Poll::Ready(Ok(_))));
    });
}
