//! The count of a scheduler's lingering tasks and the shutdown's refusal
//! of new ones ([`IoScheduler::spawn_lingering`]), in one word. Kept apart
//! so that loom can check it (`coro-io/tests/loom_linger.rs` compiles this
//! file against loom's atomics).
//!
//! A lingering task (a dropped stream's last send) is counted from its
//! spawn until its future is dropped. The shutdown runs the scheduler on
//! while any is counted, then refuses new ones and cancels whatever is
//! still queued. The refusal must not come between a task being counted
//! (and its spawner told "taken") and that task running: the clean-up
//! would cancel it unrun. With the count and a refusal bit read and
//! written separately there is such a gap whichever comes first (read the
//! count, then refuse: a task counted in between is taken and cancelled;
//! refuse, then re-read: a lingering task's own lingering work, such as
//! the send of a stream it drops, is refused while the shutdown still
//! waits for it). In one word, the refusal is a compare-exchange from
//! "open, none counted": a task counted meanwhile makes it fail, and the
//! shutdown lingers on.
//!
//! [`IoScheduler::spawn_lingering`]: crate::IoScheduler::spawn_lingering

use crate::sync::{AtomicUsize, Ordering};

/// Set once the shutdown takes no more lingering tasks.
const CLOSED: usize = 1;
/// One counted task.
const ONE: usize = 2;

/// Lingering tasks counted in units of [`ONE`], and [`CLOSED`].
///
/// Every access is SeqCst: [`leave`](LingerCount::leave) is one half of a
/// store-then-load pair with the shutdown flag (the last task out wakes a
/// loop that waits for it; see `Lingering`'s drop), which only SeqCst
/// orders.
#[derive(Debug, Default)]
pub(crate) struct LingerCount(AtomicUsize);

impl LingerCount {
    /// Open, none counted.
    pub(crate) fn new() -> LingerCount {
        LingerCount(AtomicUsize::new(0))
    }

    /// Count one more task, unless the shutdown takes no more (`false`).
    pub(crate) fn enter(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| {
                (w & CLOSED == 0).then_some(w + ONE)
            })
            .is_ok()
    }

    /// A counted task is done; whether it was the last one counted.
    pub(crate) fn leave(&self) -> bool {
        let was = self.0.fetch_sub(ONE, Ordering::SeqCst);
        debug_assert!(was >= ONE, "a lingering task left without being counted");
        was & !CLOSED == ONE
    }

    /// Whether counted tasks are left.
    pub(crate) fn any_left(&self) -> bool {
        self.0.load(Ordering::SeqCst) >= ONE
    }

    /// Whether new tasks are refused.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.load(Ordering::SeqCst) & CLOSED != 0
    }

    /// Refuse new tasks whatever the count (a forced end: the shutdown's
    /// bound is up, its wait failed, or it does not linger at all); the
    /// counted ones are cancelled by the clean-up.
    pub(crate) fn close(&self) {
        self.0.fetch_or(CLOSED, Ordering::SeqCst);
    }

    /// Refuse new tasks if none is counted. `false`: one was counted
    /// since the caller saw none left (the shutdown lingers on, and still
    /// takes new ones). `true` also when they were refused already.
    pub(crate) fn close_if_none(&self) -> bool {
        match self
            .0
            .compare_exchange(0, CLOSED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(w) => w & CLOSED != 0,
        }
    }
}
