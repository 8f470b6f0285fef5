//! The lock engine shared by [`Mutex`](crate::Mutex), `SharedMutex` (to queue
//! writers) and [`Condvar`](crate::Condvar).
//!
//! State word (`u64`):
//! - bit 0 `LOCKED`: someone holds the lock (or it is reserved by a hand-off);
//! - bit 1 `HANDOFF`: the last holder passed the lock, still `LOCKED`, to a
//!   starved waiter, who claims it by clearing this bit;
//! - bits 2..32: waiters registered in the normal (barging) phase;
//! - bits 32..64: starved waiters.
//!
//! Uncontended `lock` is one compare-exchange `0 -> LOCKED` and `unlock` one
//! compare-exchange `LOCKED -> 0`. Anything else in the word sends both to the
//! slow paths. A waiter always registers its listener *before* it publishes
//! itself in the word, and retries the lock after publishing, so an unlock
//! either sees the waiter (and notifies it) or the waiter sees the unlock.
//!
//! Fairness: a waiter competes with newcomers ("barging") until it has waited
//! [`STARVATION_BOUND`]. It then turns starved: newcomers and normal waiters
//! can no longer take the lock, and each unlock hands the lock over directly
//! (without ever releasing it) to a starved waiter, the one that has listened
//! longest first. Time a waiter spends behind starved waiters does not count
//! towards its own bound: no one barges then, so that wait is already fair,
//! and counting it would keep the lock in hand-off mode for good (a convoy).
//! Known gap: a waiter that began listening before the first of them
//! turned starved does not see that it waited behind them: once its
//! wait has reached the bound, its next lost race starves it (one more
//! hand-off period). Restarting its clock
//! on any starvation during its wait would be wrong the other way: it
//! would also forget the races it lost to newcomers before, and a waiter
//! could then lose to them without bound; telling the two apart needs the
//! hand-off periods' durations, which the mutex does not keep.

use core::future::Future;
use core::task::{Context, Poll};
#[cfg(not(loom))]
use std::time::{Duration, Instant};

use crate::waiters::{Waiter, Waiters};

use crate::loom::atomic::{AtomicU64, Ordering};

const LOCKED: u64 = 1;
const HANDOFF: u64 = 1 << 1;
const WAITER: u64 = 1 << 2;
const WAITER_MASK: u64 = 0xFFFF_FFFC;
const STARVED: u64 = 1 << 32;
const STARVED_MASK: u64 = !0xFFFF_FFFF;

/// How long a waiter may lose the lock to newcomers before the lock is handed
/// to it directly.
#[cfg(not(loom))]
pub(crate) const STARVATION_BOUND: Duration = Duration::from_millis(1);

pub(crate) struct RawMutex {
    state: AtomicU64,
    lock_ops: Waiters,
    starved_ops: Waiters,
    /// Loom models: waiters never starve, so that the ordinary wait (listen
    /// again, retry) is explored too; by default every waiter starves
    /// after one lost race there (see `starving`).
    #[cfg(loom)]
    pub(crate) never_starve: bool,
}

impl RawMutex {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU64::new(0),
            lock_ops: Waiters::new(),
            starved_ops: Waiters::new(),
            #[cfg(loom)]
            never_starve: false,
        }
    }

    #[inline]
    pub(crate) fn try_lock(&self) -> bool {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            || self.try_acquire(false)
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// The barging attempt: succeeds only when unlocked, not reserved and no
    /// waiter is starved. `registered` waiters drop their count on success.
    fn try_acquire(&self, registered: bool) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & (LOCKED | HANDOFF | STARVED_MASK) != 0 {
                return false;
            }
            let new = (s | LOCKED) - if registered { WAITER } else { 0 };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    /// A starved waiter claims a hand-off, or a free lock.
    fn try_acquire_starved(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let new = if s & HANDOFF != 0 {
                (s & !HANDOFF) - STARVED
            } else if s & LOCKED == 0 {
                (s | LOCKED) - STARVED
            } else {
                return false;
            };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(x) => s = x,
            }
        }
    }

    /// Releases the lock. The caller holds it.
    #[inline]
    pub(crate) fn unlock(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.unlock_slow();
        }
    }

    #[cold]
    fn unlock_slow(&self) {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            debug_assert!(
                s & LOCKED != 0 && s & HANDOFF == 0,
                "unlock of a free mutex"
            );
            let handoff = s & STARVED_MASK != 0;
            let new = if handoff { s | HANDOFF } else { s & !LOCKED };
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => {
                    if handoff {
                        self.starved_ops.notify(1);
                    } else if new & WAITER_MASK != 0 {
                        self.lock_ops.notify(1);
                    }
                    return;
                }
                Err(x) => s = x,
            }
        }
    }
}

/// Progress of one `lock()` call; the future owning it calls
/// [`RawLock::cancel`] from `Drop`.
#[derive(Default)]
pub(crate) struct RawLock {
    phase: Phase,
}

#[derive(Default)]
enum Phase {
    #[default]
    Start,
    Waiting {
        listener: Waiter,
        #[cfg(not(loom))]
        since: Instant,
        /// Starved waiters were there when this one last listened: until
        /// its next wake-up it waits behind their hand-offs, which does
        /// not count towards its bound (see the module docs).
        #[cfg(not(loom))]
        behind_starved: bool,
    },
    Starved {
        listener: Waiter,
    },
    Done,
}

impl RawLock {
    /// Counted against the task's budget (`coro_core::coop`): a task that
    /// takes a lock nobody holds in a loop never waits otherwise. When it
    /// yields it did nothing this poll (a hand-off it was woken for stays
    /// its own until the next).
    pub(crate) fn poll_lock(&mut self, raw: &RawMutex, cx: &mut Context<'_>) -> Poll<()> {
        coro_core::coop::poll_counted(cx, |cx| self.poll_lock_budgeted(raw, cx))
    }

    fn poll_lock_budgeted(&mut self, raw: &RawMutex, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.phase {
                Phase::Start => {
                    if raw.try_lock() {
                        self.phase = Phase::Done;
                        return Poll::Ready(());
                    }
                    let listener = raw.lock_ops.listen();
                    raw.state.fetch_add(WAITER, Ordering::SeqCst);
                    self.phase = Phase::Waiting {
                        listener,
                        #[cfg(not(loom))]
                        since: Instant::now(),
                        #[cfg(not(loom))]
                        behind_starved: raw.state.load(Ordering::Relaxed) & STARVED_MASK != 0,
                    };
                    if raw.try_acquire(true) {
                        self.phase = Phase::Done;
                        return Poll::Ready(());
                    }
                }
                Phase::Waiting { listener, .. } => {
                    if core::pin::Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if raw.try_acquire(true) {
                        self.phase = Phase::Done;
                        return Poll::Ready(());
                    }
                    #[cfg(not(loom))]
                    {
                        // Lost to the hand-off queue, not to a barger: that
                        // queue is FIFO and drains, so this wait is not
                        // starvation. Without this, waiting behind a long
                        // hand-off queue starves everyone else in turn and the
                        // lock never leaves the slow mode (a convoy). That
                        // includes a wait that began behind starved waiters
                        // and ends now that they are served: an unlock wakes
                        // an ordinary waiter only once none is starved.
                        let starved = raw.state.load(Ordering::Relaxed) & STARVED_MASK != 0;
                        if let Phase::Waiting {
                            since,
                            behind_starved,
                            ..
                        } = &mut self.phase
                        {
                            if starved || *behind_starved {
                                *since = Instant::now();
                            }
                            *behind_starved = starved;
                        }
                    }
                    if self.starving(raw) {
                        let listener = raw.starved_ops.listen();
                        raw.state
                            .fetch_add(STARVED.wrapping_sub(WAITER), Ordering::SeqCst);
                        self.phase = Phase::Starved { listener };
                        if raw.try_acquire_starved() {
                            self.phase = Phase::Done;
                            return Poll::Ready(());
                        }
                    } else {
                        if let Phase::Waiting { listener, .. } = &mut self.phase {
                            *listener = raw.lock_ops.listen();
                        }
                        if raw.try_acquire(true) {
                            self.phase = Phase::Done;
                            return Poll::Ready(());
                        }
                    }
                }
                Phase::Starved { listener } => {
                    if core::pin::Pin::new(&mut *listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if raw.try_acquire_starved() {
                        self.phase = Phase::Done;
                        return Poll::Ready(());
                    }
                    *listener = raw.starved_ops.listen();
                    if raw.try_acquire_starved() {
                        self.phase = Phase::Done;
                        return Poll::Ready(());
                    }
                }
                Phase::Done => panic!("`lock()` future polled after completion"),
            }
        }
    }

    #[cfg(not(loom))]
    fn starving(&self, _raw: &RawMutex) -> bool {
        matches!(&self.phase, Phase::Waiting { since, .. } if since.elapsed() >= STARVATION_BOUND)
    }

    /// Under loom time does not pass: a waiter starves after one lost race, so
    /// the models cover the hand-off path; or never, for a mutex made for
    /// the models of the ordinary path (`RawMutex::never_starve`).
    #[cfg(loom)]
    fn starving(&self, raw: &RawMutex) -> bool {
        !raw.never_starve
    }

    /// Withdraws a pending lock attempt (the future was dropped).
    pub(crate) fn cancel(&mut self, raw: &RawMutex) {
        match core::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Start | Phase::Done => {}
            Phase::Waiting { listener, .. } => {
                raw.state.fetch_sub(WAITER, Ordering::SeqCst);
                // A notification this listener got but did not use passes to the
                // next listener when it drops.
                drop(listener);
            }
            Phase::Starved { listener } => {
                let mut s = raw.state.load(Ordering::Relaxed);
                loop {
                    let mut new = s - STARVED;
                    let last = new & STARVED_MASK == 0;
                    if last && new & HANDOFF != 0 {
                        // The lock was handed to the starved set and we were its
                        // last member: release it for everyone else.
                        new &= !(HANDOFF | LOCKED);
                    }
                    match raw.state.compare_exchange_weak(
                        s,
                        new,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            if last && new & LOCKED == 0 && new & WAITER_MASK != 0 {
                                raw.lock_ops.notify(1);
                            }
                            break;
                        }
                        Err(x) => s = x,
                    }
                }
                drop(listener);
            }
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }
}
