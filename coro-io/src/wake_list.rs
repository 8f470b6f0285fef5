//! [`WakeList`]: every task waiting on one op, for ops that several tasks
//! may wait on at once (a shared stream's one receive or send in flight,
//! a file's write that `sync_all` waits for). An op keeps one waker
//! (io_uring's slot, as any future's): polled by two tasks in turn it
//! would keep only the last one's, and the first would never be woken.

use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

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
/// list.register(&Waker::from(a.clone()));
/// list.register(&Waker::from(b.clone()));
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
        let all = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        // All of them, also if one (another executor's) panics.
        crate::wake_all(all);
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
    pub fn register(&self, w: &Waker) {
        let mut v = self.list.0.lock().unwrap_or_else(|e| e.into_inner());
        if !v.iter().any(|x| x.will_wake(w)) {
            v.push(w.clone());
        }
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
        list.register(&Waker::from(Arc::new(Panics)));
        list.register(&Waker::from(counts.clone()));
        let woke = catch_unwind(AssertUnwindSafe(|| list.waker().wake_by_ref()));
        assert!(woke.is_err(), "the panic was lost");
        assert_eq!(counts.0.load(Ordering::SeqCst), 1);
        // The list is still usable, and empty.
        list.register(&Waker::from(counts.clone()));
        list.waker().wake_by_ref();
        assert_eq!(counts.0.load(Ordering::SeqCst), 2);
    }
}
