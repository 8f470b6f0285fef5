//! [`Waiters`]: the waiter list under every primitive, `event_listener`'s,
//! with the callers' wakers kept out of its lock.
//!
//! `event_listener` wakes a notified waiter's waker while it holds the
//! list's lock, and drops a replaced waker there too. A waker is the
//! executor's code, and it may do anything: one that polls its task right
//! inside `wake`, or that owns the last reference to a task whose future
//! waits on the same list, takes that lock again and deadlocks; one that
//! panics stops the notification half-way and leaves the list miscounted
//! (event-listener 5.4 marks the waiter notified without counting it: the
//! count later underflows, and the list's wake-ups reach nobody).
//!
//! So the list never sees a caller's waker. Each [`Waiter`] registers a
//! relay, a waker of ours that stays the same for the waiter's life (so
//! the list never replaces it) and whose `wake` only moves the caller's
//! current waker onto this thread's list of deferred wake-ups. Everything
//! here that may wake (a notification, and dropping a waiter, which passes
//! an unused wake-up on) runs inside [`deferring`], which wakes that list
//! once the list's lock is released: every waker in it, even after one
//! panicked (the first panic then goes on to the caller, unless its
//! thread is unwinding already; see `coro_core::wake_all`).
//!
//! The cost, measured against event-listener holding the wakers itself:
//! 340 to 400 more instructions per wait and wake-up (a relay's lock
//! twice, the thread-local list): some 30 % where every message is a
//! wake-up (docs/BENCHMARKS.md). A relay
//! is reused by the thread's next waiter, so waiting allocates no more
//! than before.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::task::Wake;

use event_listener::{Event, EventListener, IntoNotification};

use crate::loom::StdMutex;

/// A waiter list; see the module documentation.
pub struct Waiters(Event);

impl Default for Waiters {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Waiters").finish_non_exhaustive()
    }
}

impl core::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Waiter").finish_non_exhaustive()
    }
}

impl Waiters {
    /// An empty list.
    pub fn new() -> Self {
        Self(Event::new())
    }

    /// Registers a waiter. Like `event_listener`'s, it is in the list from
    /// here on, before its first poll.
    pub fn listen(&self) -> Waiter {
        Waiter {
            inner: Some(self.0.listen()),
            relay: None,
        }
    }

    /// `event_listener::Event::notify`, with the wakers woken after the
    /// list's lock is released.
    pub fn notify(&self, n: impl IntoNotification<Tag = ()>) -> usize {
        deferring(|| self.0.notify(n))
    }
}

/// A registered waiter: a future that ends when it is notified. Dropping
/// it before it ended passes a wake-up it got on to the next waiter.
pub struct Waiter {
    /// `None` only while dropping.
    inner: Option<EventListener>,
    /// The relay and the waker made of it, made at the first poll.
    relay: Option<(Arc<Relay>, Waker)>,
}

impl Future for Waiter {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let (relay, waker) = this.relay.get_or_insert_with(Relay::take);
        relay.set(cx.waker());
        let inner = this
            .inner
            .as_mut()
            .expect("a waiter is only emptied by its drop");
        Pin::new(inner).poll(&mut Context::from_waker(waker))
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let inner = self.inner.take();
        deferring(move || drop(inner));
        if let Some(relay) = self.relay.take() {
            Relay::give_back(relay);
        }
    }
}

/// What the list holds for a waiter: the caller's latest waker.
#[derive(Default)]
struct Relay {
    waker: StdMutex<Option<Waker>>,
}

impl Relay {
    /// A relay and its waker: this thread's spare, or a new one.
    fn take() -> (Arc<Relay>, Waker) {
        let spare = DEFERRED.try_with(|d| d.spare.take());
        spare.ok().flatten().unwrap_or_else(|| {
            let relay = Arc::new(Relay::default());
            let waker = Waker::from(relay.clone());
            (relay, waker)
        })
    }

    /// Keeps the relay of a waiter that went as this thread's spare, so
    /// that the next waiter here does not allocate one: the wait paths of
    /// the channels and locks make a waiter per wait. Only if no copy of
    /// it is left but these two: the list let go of its own as the waiter
    /// left it, and no other can be made.
    fn give_back((relay, waker): (Arc<Relay>, Waker)) {
        if Arc::strong_count(&relay) != 2 {
            return;
        }
        let old = crate::loom::lock(&relay.waker).take();
        // A spare there already is dropped: it holds no caller's waker.
        let _ = DEFERRED.try_with(|d| d.spare.replace(Some((relay, waker))));
        drop(old);
    }

    /// Keeps `waker` for the next wake-up. A waker it replaces is dropped
    /// here, outside every lock.
    fn set(&self, waker: &Waker) {
        let mut slot = crate::loom::lock(&self.waker);
        let old = match &*slot {
            Some(w) if w.will_wake(waker) => return,
            _ => slot.replace(waker.clone()),
        };
        drop(slot);
        drop(old);
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waker = crate::loom::lock(&self.waker).take();
        if let Some(w) = waker {
            defer(w);
        }
    }
}

struct Deferred {
    /// How many [`deferring`] calls are running on this thread.
    depth: Cell<usize>,
    wakers: RefCell<Vec<Waker>>,
    /// A relay no waiter uses, for the next one ([`Relay::give_back`]).
    spare: Cell<Option<(Arc<Relay>, Waker)>>,
}

impl Deferred {
    const fn new() -> Self {
        Self {
            depth: Cell::new(0),
            wakers: RefCell::new(Vec::new()),
            spare: Cell::new(None),
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static DEFERRED: Deferred = const { Deferred::new() };
}

// loom runs a model's threads on one OS thread: a `std` thread-local would
// be shared between them.
#[cfg(loom)]
loom::thread_local! {
    static DEFERRED: Deferred = Deferred::new();
}

/// Runs `f`; the wake-ups relayed meanwhile on this thread are delivered
/// when the outermost call returns (or unwinds), after every lock `f`
/// took is released.
///
/// On a thread that is exiting, after this module's thread-local is gone
/// (a lock guard or a sender kept in another thread-local, released by its
/// destructor), `f` runs as it is and relayed wake-ups are delivered at
/// once, under the list's lock: late in a thread's life, that beats a
/// panic in a thread-local destructor, which aborts the process.
fn deferring<R>(f: impl FnOnce() -> R) -> R {
    enum Batch {
        None,
        One(Waker),
        Many(Vec<Waker>),
    }
    struct Exit;
    impl Drop for Exit {
        fn drop(&mut self) {
            let batch = DEFERRED.try_with(|d| {
                d.depth.set(d.depth.get() - 1);
                if d.depth.get() > 0 {
                    return Batch::None;
                }
                let mut list = d.wakers.borrow_mut();
                match list.len() {
                    0 => Batch::None,
                    // The common batch: the list keeps its buffer.
                    1 => list.pop().map_or(Batch::None, Batch::One),
                    // Taken out first: a waker that polls its task here
                    // may notify again, and delivers its own.
                    _ => Batch::Many(core::mem::take(&mut *list)),
                }
            });
            match batch.unwrap_or(Batch::None) {
                Batch::None => {}
                // Alone in its batch: a panic keeps no other asleep.
                Batch::One(w) if !std::thread::panicking() => w.wake(),
                Batch::One(w) => coro_core::wake_all([w]),
                Batch::Many(mut batch) => {
                    coro_core::wake_all(batch.drain(..));
                    // Keep the emptied buffer for the next batch.
                    let _ = DEFERRED.try_with(|d| {
                        let mut list = d.wakers.borrow_mut();
                        if list.capacity() < batch.capacity() && list.is_empty() {
                            *list = batch;
                        }
                    });
                }
            }
        }
    }
    let entered = DEFERRED.try_with(|d| d.depth.set(d.depth.get() + 1));
    let _exit = entered.is_ok().then_some(Exit);
    f()
}

/// Wakes `w` at the end of the running [`deferring`] call, or now if none
/// runs on this thread.
fn defer(w: Waker) {
    let mut w = Some(w);
    let _ = DEFERRED.try_with(|d| {
        if d.depth.get() > 0 {
            d.wakers.borrow_mut().extend(w.take());
        }
    });
    if let Some(w) = w {
        w.wake();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counts(AtomicUsize);

    impl Wake for Counts {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_wake_up_inside_deferring_waits_for_its_end() {
        let c = Arc::new(Counts::default());
        deferring(|| {
            deferring(|| defer(Waker::from(c.clone())));
            assert_eq!(c.0.load(Ordering::SeqCst), 0, "woken inside");
        });
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        defer(Waker::from(c.clone()));
        assert_eq!(c.0.load(Ordering::SeqCst), 2, "outside, woken at once");
    }

    #[test]
    fn a_waiter_repolled_with_another_waker_wakes_the_latest() {
        let list = Waiters::new();
        let mut w = list.listen();
        let (a, b) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
        let poll = |w: &mut Waiter, c: &Arc<Counts>| {
            let waker = Waker::from(c.clone());
            Pin::new(w).poll(&mut Context::from_waker(&waker))
        };
        assert!(poll(&mut w, &a).is_pending());
        assert!(poll(&mut w, &b).is_pending());
        list.notify(1);
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
        assert_eq!(b.0.load(Ordering::SeqCst), 1);
        assert!(poll(&mut w, &a).is_ready());
    }
}
