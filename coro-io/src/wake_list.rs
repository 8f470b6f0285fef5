//! [`WakeList`]: every task waiting on one op, for ops that several tasks
//! may wait on at once (a shared stream's one receive or send in flight,
//! a file's write that `sync_all` waits for). An op keeps one waker
//! (io_uring's slot, as any future's): polled by two tasks in turn it
//! would keep only the last one's, and the first would never be woken.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

/// Wakers of the tasks waiting on one op; the op itself is polled with a
/// waker that wakes them all.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::task::{Wake, Waker};
/// use coro_io::wake_list::WakeList;
///
/// struct Flag(std::sync::atomic::AtomicBool);
/// impl Wake for Flag {
///     fn wake(self: Arc<Self>) {
///         self.0.store(true, std::sync::atomic::Ordering::SeqCst);
///     }
/// }
/// let list = WakeList::new();
/// let (a, b) = (Arc::new(Flag(false.into())), Arc::new(Flag(false.into())));
/// // Two tasks wait on one op: each registers, then polls the op with
/// // the list's waker (`Context::from_waker(list.waker())`).
/// drop(list.register(&Waker::from(a.clone())));
/// drop(list.register(&Waker::from(b.clone())));
/// list.waker().wake_by_ref(); // the op made progress
/// assert!(a.0.load(std::sync::atomic::Ordering::SeqCst));
/// assert!(b.0.load(std::sync::atomic::Ordering::SeqCst));
/// ```
pub struct WakeList {
    list: Arc<Wakers>,
    /// The waker to poll the op with.
    waker: Waker,
}

impl std::fmt::Debug for WakeList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeList").finish_non_exhaustive()
    }
}

impl Default for WakeList {
    fn default() -> Self {
        WakeList::new()
    }
}

#[derive(Default)]
struct Wakers(Mutex<Vec<Waker>>);

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() <= 1 {
            // One task waits (a stream used by one task, the usual case):
            // no copy of the list.
            let one = list.pop();
            drop(list);
            if let Some(w) = one {
                w.wake();
            }
            return;
        }
        // Drained, not taken: the list keeps its capacity, the mark a full
        // list is let go of at (see `register`; an emptied one would evict
        // at once), and the copy is only as long as the list.
        let all: Vec<Waker> = list.drain(..).collect();
        drop(list);
        // All of them, also if one (another executor's) panics.
        crate::wake_all(all);
    }
}

/// Poll an op with `shared`, the waker of a [`WakeList`] the task of `cx`
/// registered on, for every task on that list. The op does not yield
/// there on the budget (see [`coop`](crate::coop)): the caller holds the
/// lock those tasks share, and a yield of the op would wake the whole
/// list under it, whose wakers may run anything (another executor's may
/// poll its task right there, and reach for that lock). The task of `cx`
/// is counted instead, once, and yields with its own waker.
pub fn poll_shared<T>(
    cx: &mut Context<'_>,
    shared: &Waker,
    poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    crate::coop::poll_counted(cx, |_| {
        crate::coop::without_budget(|| poll(&mut Context::from_waker(shared)))
    })
}

/// Wakers a full [`WakeList`] let go of ([`WakeList::register`]): woken
/// when this is dropped. Hold it until after the locks held while
/// registering: a waker's wake, or its drop when it was the last clone,
/// may run anything (a task's destructor, which may take them again).
#[must_use = "dropping it wakes the tasks a full list let go of: drop it after the locks held"]
#[derive(Default)]
pub struct Evicted(Vec<Waker>);

impl Evicted {
    /// Whether there is no task to wake (the usual case: nothing was let
    /// go of).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Keep `other`'s wakers here too (to be woken with these).
    pub fn absorb(&mut self, mut other: Evicted) {
        if !other.0.is_empty() {
            self.0.append(&mut other.0);
        }
    }
}

impl std::fmt::Debug for Evicted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Evicted").field(&self.0.len()).finish()
    }
}

impl Drop for Evicted {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        // All of them, also if one (another executor's) panics.
        crate::wake_all(std::mem::take(&mut self.0));
    }
}

impl WakeList {
    /// An empty list.
    pub fn new() -> WakeList {
        let list = Arc::new(Wakers::default());
        WakeList {
            waker: Waker::from(list.clone()),
            list,
        }
    }

    /// Add `w` (once) to the tasks woken when the op makes progress. Done
    /// before the op is polled, so a completion in between is not missed.
    ///
    /// The list is bounded as the drivers' lists of waiting tasks are: a
    /// full one is let go of (its tasks are woken, and those still waiting
    /// register again), so that ops polled with a new waker each time and
    /// dropped (a combinator rebuilt per loop, a foreign executor) do not
    /// grow it while the op makes no progress. The wakers let go of are
    /// woken when the returned [`Evicted`] is dropped: hold it until after
    /// any lock held here.
    pub fn register(&self, w: &Waker) -> Evicted {
        let mut evicted = Vec::new();
        let mut v = self.list.0.lock().unwrap_or_else(|e| e.into_inner());
        crate::driver::push_waker(&mut v, w, &mut evicted);
        drop(v);
        Evicted(evicted)
    }

    /// The waker to poll the op with: it wakes every task registered
    /// (all of them, also if one's waker panics; the panic goes on after).
    pub fn waker(&self) -> &Waker {
        &self.waker
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::atomic::{AtomicUsize, Ordering};

    use std::sync::Arc;
    use std::task::{Wake, Waker};

    use super::WakeList;

    struct Panics;
    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("this waker panics");
        }
    }

    #[derive(Default)]
    struct Counts(AtomicUsize);
    impl Wake for Counts {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// The tasks waiting on one op are all woken, also when the waker of
    /// one of them (another executor's) panics: the panic comes back to
    /// the op's waker's caller after the others woke.
    #[test]
    fn a_panicking_waker_keeps_no_other_task_asleep() {
        let list = WakeList::new();
        let counts = Arc::new(Counts::default());
        drop(list.register(&Waker::from(Arc::new(Panics))));
        drop(list.register(&Waker::from(counts.clone())));
        let woke = catch_unwind(AssertUnwindSafe(|| list.waker().wake_by_ref()));
        assert!(woke.is_err(), "the panic was lost");
        assert_eq!(counts.0.load(Ordering::SeqCst), 1);
        // The list is still usable, and empty.
        drop(list.register(&Waker::from(counts.clone())));
        list.waker().wake_by_ref();
        assert_eq!(counts.0.load(Ordering::SeqCst), 2);
    }

    /// Distinct wakers registered while the op makes no progress (each
    /// registering task then gone) do not pile up: a full list is let go
    /// of, its tasks woken when the `Evicted` is dropped, not before.
    #[test]
    fn a_full_list_is_let_go_of_and_its_tasks_woken_later() {
        let list = WakeList::new();
        let counts = Arc::new(Counts::default());
        let mut later = super::Evicted::default();
        for _ in 0..5000 {
            let w = Waker::from(Arc::new(Counts::default()));
            later.absorb(list.register(&w));
        }
        let kept = list.list.0.lock().unwrap().len();
        assert!(kept <= 2048, "{kept} wakers kept");
        // One that is still waiting: woken when let go of, not lost.
        let mut pending = super::Evicted::default();
        for _ in 0..5000 {
            pending.absorb(list.register(&Waker::from(counts.clone())));
            pending.absorb(list.register(&Waker::from(Arc::new(Counts::default()))));
        }
        assert_eq!(counts.0.load(Ordering::SeqCst), 0, "woken before the drop");
        drop(pending);
        assert!(
            counts.0.load(Ordering::SeqCst) > 0,
            "a task let go of was not woken"
        );
        drop(later);
    }
}
