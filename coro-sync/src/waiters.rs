//! [`Waiters`]: the FIFO waiter list under every primitive, which never
//! runs a caller's waker under its lock.
//!
//! A waker is the executor's code, and it may do anything: one that polls
//! its task right inside `wake`, or that owns the last reference to a task
//! whose future waits on the same list, takes the list's lock again; one
//! that panics must not stop a notification half-way. So the list takes
//! the wakers it notifies out under its lock and wakes them after it (all
//! of them, even past one that panicked: the first panic then goes on to
//! the caller, unless its thread is unwinding already; see
//! `coro_core::wake_all`); a waker a re-poll replaces, or a dropped waiter
//! leaves behind, is dropped after the lock too, and a waker is cloned
//! before the lock is taken. Nothing of the caller's runs under it.
//!
//! The semantics are event-listener's, which these primitives were first
//! built on: [`notify`](Waiters::notify)`(n)` makes sure the first `n`
//! waiters in the list are notified, counting those notified already whose
//! futures have not taken the notification yet;
//! [`notify_additional`](Waiters::notify_additional)`(n)` notifies `n` more.
//! A waiter is in the list from [`listen`](Waiters::listen) on, before its
//! first poll; a notified waiter dropped before it took its notification
//! passes it on to the next one, of the same kind.
//!
//! `notify` skips the lock when no waiter waits un-notified (the atomic
//! `unnotified`, and a `SeqCst` fence on each side: a waiter registers,
//! fences, then checks its condition; a notifier changes the condition,
//! fences, then reads the count), and the list is allocated at the first
//! `listen`, so a primitive nobody waits on costs no allocation and no
//! lock here.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use slab::Slab;

use crate::loom::atomic::{self, AtomicUsize, Ordering};
use crate::loom::{Arc, StdMutex, lock};

/// A waiter list; see the module documentation.
pub struct Waiters {
    inner: Lazy,
}

/// The list, shared with its waiters (a [`Waiter`] may outlive no borrow:
/// channel handles keep one next to an `Arc` of their state).
struct Inner {
    /// Waiters in `list` not notified yet: written under its lock, read
    /// without it by [`Waiters::notify`] to skip the lock when it is 0.
    unnotified: AtomicUsize,
    list: StdMutex<List>,
}

/// The waiters in order of arrival, linked through their slab keys. Every
/// notified waiter is ahead of every un-notified one, which begin at
/// `start`.
#[derive(Default)]
struct List {
    entries: Slab<Entry>,
    tail: Option<usize>,
    start: Option<usize>,
    notified: usize,
}

struct Entry {
    prev: Option<usize>,
    next: Option<usize>,
    state: State,
}

enum State {
    /// Registered, not polled yet.
    Idle,
    /// Polled: the waker to wake.
    Waiting(Waker),
    /// Notified, by `notify_additional` or by `notify`.
    Notified { additional: bool },
}

/// The wakers one call takes out of the list, woken after its lock.
#[derive(Default)]
struct Batch {
    first: Option<Waker>,
    /// The rest, allocated only for a second waker.
    rest: Vec<Waker>,
}

impl Batch {
    #[inline]
    fn push(&mut self, w: Waker) {
        if self.first.is_none() {
            self.first = Some(w);
        } else {
            self.rest.push(w);
        }
    }

    /// Wakes every waker; see the module documentation for panics.
    #[inline]
    fn wake(self) {
        let Some(first) = self.first else { return };
        if self.rest.is_empty() && !std::thread::panicking() {
            // Alone in its batch: a panic keeps no other asleep.
            first.wake();
        } else {
            coro_core::wake_all(core::iter::once(first).chain(self.rest));
        }
    }
}

impl List {
    fn unnotified(&self) -> usize {
        self.entries.len() - self.notified
    }

    fn push(&mut self) -> usize {
        let key = self.entries.insert(Entry {
            prev: self.tail,
            next: None,
            state: State::Idle,
        });
        if let Some(t) = self.tail {
            self.entries[t].next = Some(key);
        }
        self.tail = Some(key);
        if self.start.is_none() {
            self.start = Some(key);
        }
        key
    }

    fn remove(&mut self, key: usize) -> State {
        let e = self.entries.remove(key);
        if let Some(p) = e.prev {
            self.entries[p].next = e.next;
        }
        match e.next {
            Some(n) => self.entries[n].prev = e.prev,
            None => self.tail = e.prev,
        }
        if self.start == Some(key) {
            self.start = e.next;
        }
        if let State::Notified { .. } = e.state {
            self.notified -= 1;
        }
        // A burst of waiters leaves no large buffer behind once the list
        // empties (a slab cannot move entries whose keys waiters hold).
        if self.entries.is_empty() && self.entries.capacity() > 1024 {
            self.entries = Slab::new();
        }
        e.state
    }

    /// Notifies as the module documentation says, moving the wakers to
    /// wake into `batch`; returns how many waiters it notified.
    fn notify(&mut self, n: usize, additional: bool, batch: &mut Batch) -> usize {
        let want = if additional {
            n
        } else {
            n.saturating_sub(self.notified)
        };
        let mut count = 0;
        while count < want {
            let Some(key) = self.start else { break };
            let e = &mut self.entries[key];
            self.start = e.next;
            if let State::Waiting(w) =
                core::mem::replace(&mut e.state, State::Notified { additional })
            {
                batch.push(w);
            }
            self.notified += 1;
            count += 1;
        }
        count
    }
}

impl Inner {
    /// Publishes `list`'s count of un-notified waiters; call before its
    /// lock is released.
    fn publish(&self, list: &List) {
        self.unnotified.store(list.unnotified(), Ordering::Release);
    }
}

impl Default for Waiters {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Waiters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let waiting = self.inner.get().map(|i| lock(&i.list).entries.len());
        f.debug_struct("Waiters")
            .field("waiting", &waiting.unwrap_or(0))
            .finish()
    }
}

impl core::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Waiter")
            .field("registered", &self.key.is_some())
            .finish()
    }
}

impl Waiters {
    /// An empty list. It allocates nothing until the first
    /// [`listen`](Self::listen).
    pub fn new() -> Self {
        Self { inner: Lazy::new() }
    }

    /// Registers a waiter at the end of the list. It is in the list from
    /// here on, before its first poll: the caller checks its condition
    /// after this, and sleeps on the waiter only if it still fails.
    pub fn listen(&self) -> Waiter {
        let inner = self.inner.get_or_init().clone();
        let key = {
            let mut list = lock(&inner.list);
            let key = list.push();
            inner.publish(&list);
            key
        };
        // The registration is seen before the caller's check (module docs).
        atomic::fence(Ordering::SeqCst);
        Waiter {
            inner,
            key: Some(key),
            polled: false,
        }
    }

    /// Makes sure the first `n` waiters of the list are notified, counting
    /// those notified already that have not taken it yet (`usize::MAX`:
    /// every waiter). Returns how many it notified now.
    pub fn notify(&self, n: usize) -> usize {
        self.notify_with(n, false)
    }

    /// Notifies `n` more waiters, in order of arrival. Returns how many it
    /// notified.
    pub fn notify_additional(&self, n: usize) -> usize {
        self.notify_with(n, true)
    }

    #[inline]
    fn notify_with(&self, n: usize, additional: bool) -> usize {
        // The change the caller made is seen before the count is read
        // (module docs).
        atomic::fence(Ordering::SeqCst);
        let Some(inner) = self.inner.get() else {
            return 0;
        };
        if n == 0 || inner.unnotified.load(Ordering::Acquire) == 0 {
            return 0;
        }
        Self::notify_locked(inner, n, additional)
    }

    /// The rest of a notification, once someone waits: out of line, so
    /// that the check above stays small where it is inlined.
    #[inline(never)]
    fn notify_locked(inner: &Inner, n: usize, additional: bool) -> usize {
        let mut batch = Batch::default();
        let count = {
            let mut list = lock(&inner.list);
            let count = list.notify(n, additional, &mut batch);
            inner.publish(&list);
            count
        };
        batch.wake();
        count
    }
}

/// A registered waiter: a future that ends when it is notified. Dropping
/// it before it ended passes a notification it got on to the next waiter.
pub struct Waiter {
    inner: Arc<Inner>,
    /// `None` once it took its notification.
    key: Option<usize>,
    /// Whether a poll left a waker in the list.
    polled: bool,
}

impl Future for Waiter {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let Some(key) = this.key else {
            return Poll::Ready(());
        };
        // Cloned outside the lock: a clone is the executor's code too. The
        // first poll always needs it; a later one only with a new waker.
        let mut fresh = (!this.polled).then(|| cx.waker().clone());
        let old = loop {
            let mut list = lock(&this.inner.list);
            let state = &mut list.entries[key].state;
            match state {
                State::Notified { .. } => {
                    list.remove(key);
                    this.key = None;
                    return Poll::Ready(());
                }
                State::Waiting(w) if w.will_wake(cx.waker()) => return Poll::Pending,
                _ => {
                    if let Some(w) = fresh.take() {
                        let old = core::mem::replace(state, State::Waiting(w));
                        drop(list);
                        this.polled = true;
                        match old {
                            State::Waiting(old) => break old,
                            _ => return Poll::Pending,
                        }
                    }
                }
            }
            drop(list);
            fresh = Some(cx.waker().clone());
        };
        // The replaced waker may own a notified waiter of this list, whose
        // drop passes its notification on to this one (waking the new
        // waker): look once more, to answer `Ready` now rather than at the
        // next poll.
        drop(old);
        let mut list = lock(&this.inner.list);
        if let State::Notified { .. } = list.entries[key].state {
            list.remove(key);
            this.key = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut batch = Batch::default();
        let state = {
            let mut list = lock(&self.inner.list);
            let state = list.remove(key);
            if let State::Notified { additional } = state
                && list.start.is_some()
            {
                list.notify(1, additional, &mut batch);
            }
            self.inner.publish(&list);
            state
        };
        // A waker of its own (if it held one) goes after the lock; a
        // notified waiter holds none, and passed its notification on.
        drop(state);
        batch.wake();
    }
}

/// The list, allocated at the first `listen`: a `OnceLock`, whose `get`
/// is an `Acquire` load and whose initialisation ends with a `Release`
/// store (the fast path of `notify` relies on both, with its fence).
#[cfg(not(loom))]
struct Lazy(std::sync::OnceLock<Arc<Inner>>);

/// Under loom, the same made of loom's parts, so that the models take the
/// early way out of a `notify` before the first `listen` as production
/// does: a flag with the orderings of `OnceLock`'s state, and a lock that
/// makes a second initialiser wait for the first (as `OnceLock` does).
/// std's `OnceLock` only hands out the reference: a model runs on one OS
/// thread, and the loom lock keeps its initialisation to one at a time.
#[cfg(loom)]
struct Lazy {
    cell: std::sync::OnceLock<Arc<Inner>>,
    ready: atomic::AtomicBool,
    init: StdMutex<()>,
}

impl Inner {
    fn new() -> Self {
        Self {
            unnotified: AtomicUsize::new(0),
            list: StdMutex::new(List::default()),
        }
    }
}

#[cfg(not(loom))]
impl Lazy {
    fn new() -> Self {
        Self(std::sync::OnceLock::new())
    }
    fn get(&self) -> Option<&Arc<Inner>> {
        self.0.get()
    }
    fn get_or_init(&self) -> &Arc<Inner> {
        self.0.get_or_init(|| Arc::new(Inner::new()))
    }
}

#[cfg(loom)]
impl Lazy {
    fn new() -> Self {
        Self {
            cell: std::sync::OnceLock::new(),
            ready: atomic::AtomicBool::new(false),
            init: StdMutex::new(()),
        }
    }
    fn get(&self) -> Option<&Arc<Inner>> {
        if self.ready.load(Ordering::Acquire) {
            self.cell.get()
        } else {
            None
        }
    }
    fn get_or_init(&self) -> &Arc<Inner> {
        if let Some(inner) = self.get() {
            return inner;
        }
        let _init = lock(&self.init);
        if !self.ready.load(Ordering::Relaxed) {
            let _ = self.cell.set(Arc::new(Inner::new()));
            self.ready.store(true, Ordering::Release);
        }
        self.cell
            .get()
            .expect("set above or by an earlier initialiser")
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    #[derive(Default)]
    struct Counts(AtomicUsize);

    impl Wake for Counts {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(w: &mut Waiter, c: &Arc<Counts>) -> Poll<()> {
        let waker = Waker::from(c.clone());
        Pin::new(w).poll(&mut Context::from_waker(&waker))
    }

    fn woken(c: &Arc<Counts>) -> usize {
        c.0.load(Ordering::SeqCst)
    }

    #[test]
    fn a_waiter_repolled_with_another_waker_wakes_the_latest() {
        let list = Waiters::new();
        let mut w = list.listen();
        let (a, b) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
        assert!(poll(&mut w, &a).is_pending());
        assert!(poll(&mut w, &b).is_pending());
        assert_eq!(Arc::strong_count(&a), 1, "the replaced waker was kept");
        list.notify(1);
        assert_eq!(woken(&a), 0);
        assert_eq!(woken(&b), 1);
        assert!(poll(&mut w, &a).is_ready());
    }

    #[test]
    fn notify_counts_the_notified_and_notify_additional_does_not() {
        let list = Waiters::new();
        let cs: Vec<_> = (0..4).map(|_| Arc::new(Counts::default())).collect();
        let mut ws: Vec<_> = cs.iter().map(|_| list.listen()).collect();
        for (w, c) in ws.iter_mut().zip(&cs) {
            assert!(poll(w, c).is_pending());
        }
        assert_eq!(list.notify(1), 1);
        assert_eq!(list.notify(1), 0, "the first is notified already");
        assert_eq!(list.notify(2), 1);
        assert_eq!(list.notify_additional(1), 1);
        let counts: Vec<_> = cs.iter().map(woken).collect();
        assert_eq!(counts, [1, 1, 1, 0], "in order of arrival");
        assert_eq!(list.notify(usize::MAX), 1);
        assert_eq!(list.notify_additional(1), 0, "nobody is left");
    }

    #[test]
    fn a_notified_waiter_dropped_passes_its_notification_on() {
        let list = Waiters::new();
        let (a, b) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
        let (mut wa, mut wb) = (list.listen(), list.listen());
        assert!(poll(&mut wa, &a).is_pending());
        assert!(poll(&mut wb, &b).is_pending());
        list.notify(1);
        drop(wa);
        assert_eq!(woken(&b), 1);
        assert!(poll(&mut wb, &b).is_ready());
        // A waiter that took its notification passes nothing on.
        let (mut wc, mut wd) = (list.listen(), list.listen());
        assert!(poll(&mut wd, &b).is_pending());
        list.notify(1);
        assert!(poll(&mut wc, &a).is_ready());
        drop(wc);
        assert_eq!(woken(&b), 1);
        drop(wd);
        assert_eq!(Arc::strong_count(&b), 1, "a dropped waiter kept its waker");
    }

    #[test]
    fn a_waiter_notified_before_its_first_poll_is_ready() {
        let list = Waiters::new();
        let mut w = list.listen();
        assert_eq!(list.notify(1), 1);
        let a = Arc::new(Counts::default());
        assert!(poll(&mut w, &a).is_ready());
        assert!(poll(&mut w, &a).is_ready(), "it stays ready");
        assert_eq!(woken(&a), 0);
    }

    #[test]
    fn a_list_nobody_waited_on_allocates_nothing() {
        let list = Waiters::new();
        assert_eq!(list.notify(usize::MAX), 0);
        assert!(list.inner.get().is_none());
    }

    #[test]
    fn a_burst_of_waiters_leaves_no_large_buffer() {
        let list = Waiters::new();
        let ws: Vec<_> = (0..2000).map(|_| list.listen()).collect();
        drop(ws);
        let inner = list.inner.get().unwrap();
        assert!(lock(&inner.list).entries.capacity() <= 1024);
        // And the list still works.
        let (mut a, mut b) = (list.listen(), list.listen());
        let c = Arc::new(Counts::default());
        assert!(poll(&mut a, &c).is_pending());
        assert!(poll(&mut b, &c).is_pending());
        assert_eq!(list.notify(1), 1);
        assert!(poll(&mut a, &c).is_ready());
        assert!(poll(&mut b, &c).is_pending());
        assert_eq!(list.notify(1), 1);
        assert!(poll(&mut b, &c).is_ready());
        assert_eq!(woken(&c), 2);
    }

    mod model {
        //! The list against a plain model of the semantics in the module
        //! documentation, over random sequences of operations: which waker
        //! each notification wakes (each waiter is polled with either of two
        //! wakers, so re-polls replace them), and that the list keeps a
        //! waker exactly while its waiter waits un-notified, no longer.
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            Listen,
            Poll(usize, usize),
            Drop(usize),
            Notify(usize),
            NotifyAdditional(usize),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => Just(Op::Listen),
                3 => (0..8usize, 0..2usize).prop_map(|(i, k)| Op::Poll(i, k)),
                2 => (0..8usize).prop_map(Op::Drop),
                2 => (0..4usize).prop_map(Op::Notify),
                2 => (0..4usize).prop_map(Op::NotifyAdditional),
            ]
        }

        /// One waiter of the model.
        struct Model {
            id: usize,
            /// `None` until notified, then the kind of notification.
            notified: Option<bool>,
            /// Which of its two wakers the last poll left, if any.
            latest: Option<usize>,
        }

        type Wakers = [Arc<Counts>; 2];

        proptest! {
            #[test]
            fn the_list_behaves_as_its_model(ops in proptest::collection::vec(op(), 1..60)) {
                let list = Waiters::new();
                let mut real: Vec<(Waiter, Wakers)> = Vec::new();
                let mut model: Vec<Model> = Vec::new();
                let mut gone: Vec<Wakers> = Vec::new();
                let mut wakes: Vec<[usize; 2]> = Vec::new();
                for op in ops {
                    match op {
                        Op::Listen => {
                            let wakers = [Arc::new(Counts::default()), Arc::new(Counts::default())];
                            real.push((list.listen(), wakers));
                            model.push(Model { id: wakes.len(), notified: None, latest: None });
                            wakes.push([0, 0]);
                        }
                        Op::Poll(i, k) if i < real.len() => {
                            let (w, cs) = &mut real[i];
                            let ready = poll(w, &cs[k]).is_ready();
                            prop_assert_eq!(ready, model[i].notified.is_some());
                            if ready {
                                gone.push(real.remove(i).1);
                                model.remove(i);
                            } else {
                                model[i].latest = Some(k);
                            }
                        }
                        Op::Drop(i) if i < real.len() => {
                            gone.push(real.remove(i).1);
                            let m = model.remove(i);
                            if let Some(additional) = m.notified {
                                notify_model(&mut model, &mut wakes, 1, additional);
                            }
                        }
                        Op::Notify(n) => {
                            let m = notify_model(&mut model, &mut wakes, n, false);
                            prop_assert_eq!(list.notify(n), m);
                        }
                        Op::NotifyAdditional(n) => {
                            let m = notify_model(&mut model, &mut wakes, n, true);
                            prop_assert_eq!(list.notify_additional(n), m);
                        }
                        _ => {}
                    }
                    for ((_, cs), m) in real.iter().zip(&model) {
                        for (k, c) in cs.iter().enumerate() {
                            prop_assert_eq!(woken(c), wakes[m.id][k], "waiter {} waker {}", m.id, k);
                            let held = m.latest == Some(k) && m.notified.is_none();
                            prop_assert_eq!(Arc::strong_count(c), 1 + usize::from(held), "waiter {} waker {} kept", m.id, k);
                        }
                    }
                    for c in gone.iter().flatten() {
                        prop_assert_eq!(Arc::strong_count(c), 1, "a gone waiter's waker kept");
                    }
                }
            }
        }

        fn notify_model(
            model: &mut [Model],
            wakes: &mut [[usize; 2]],
            n: usize,
            additional: bool,
        ) -> usize {
            let notified = model.iter().filter(|m| m.notified.is_some()).count();
            let want = if additional {
                n
            } else {
                n.saturating_sub(notified)
            };
            let mut count = 0;
            for m in model.iter_mut().filter(|m| m.notified.is_none()).take(want) {
                m.notified = Some(additional);
                if let Some(k) = m.latest {
                    wakes[m.id][k] += 1;
                }
                count += 1;
            }
            count
        }
    }
}
