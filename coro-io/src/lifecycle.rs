//! A scheduler's tasks against its shutdown: the registry of suspended
//! tasks and the rules that make shutdown cancel every task exactly once,
//! never from inside a wake. Kept apart so that loom can check it
//! (`coro-io/tests/loom_shutdown.rs` compiles this file against loom's
//! types).
//!
//! * A task about to be polled looks at `closed` first: set, it is not
//!   polled but wakes itself, and that self-wake cancels it (a pool runs
//!   the tasks queued when shutdown began).
//! * A task whose poll returns `Pending` keeps its waker in the registry
//!   (the first time), then looks at `closed`: set, nothing will ever wake
//!   it, so it wakes itself, and that self-wake cancels it.
//! * Shutdown sets `closed`, then takes the registry and wakes every
//!   waker in it. Whichever of the two comes second sees the other: the
//!   registry's lock orders a first registration against the take, and a
//!   task registered earlier is in the registry when it is taken (a later
//!   poll of it runs after shutdown's wake reached it, or sees `closed`).
//! * Once `closed` is set a scheduled task is dropped (cancelled), but not
//!   inside an arbitrary wake: a waker may run under the lock of whatever
//!   woke it (event-listener, for one, notifies with its list locked) and the task's
//!   destructor takes that lock again. A self-wake comes from the end of
//!   the task's own poll, where nothing is held: it is dropped at once.
//!   Other wakes queue the task, and shutdown drops what is queued itself.
//! * A wake that began before shutdown finished may hand its task over
//!   after shutdown's last look at the queue (loom found it: the task was
//!   marked scheduled, then shutdown ran to its end, then the waker called
//!   the schedule function). So after `finished`, a task is handed to
//!   another thread to be dropped, and whoever queues a task re-checks
//!   `finished` after queueing it (a fence on each side: either shutdown's
//!   last look sees the task, or the waker sees `finished` and hands the
//!   queue over itself).
//!
//! The registry itself, [`Registry`], is shared with the thread pool,
//! whose termination also takes it and wakes every task in it (each is
//! then cancelled by the pool's own `terminated` flag, not by the rules
//! above); there it has one shard per worker, so that tasks suspending on
//! different workers do not contend for one lock. The loom model covers
//! the one-shard registry as the scheduler uses it.

use std::task::Waker;

use super::sync::{AtomicBool, Condvar, Mutex, MutexGuard, Ordering, fence};

/// What to do with a task that is being scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Queue it to run.
    Run,
    /// Shutting down, and dropping it here is safe: cancel it now.
    CancelNow,
    /// Shutting down, but this may be a wake from inside a lock: queue it
    /// for the shutdown to drop, then ask
    /// [`missed_by_shutdown`](Lifecycle::missed_by_shutdown).
    CancelLater,
    /// Shutdown is over and this may be a wake from inside a lock: have
    /// another thread drop it.
    CancelElsewhere,
}

/// The wakers of the tasks that suspended at least once and are alive, so
/// that shutdown can wake, and so cancel, each of them. A task registers
/// once (its waker is the same for its life) on a shard of its choosing
/// and unregisters when dropped.
pub(crate) struct Registry {
    shards: Box<[Mutex<slab::Slab<Waker>>]>,
}

impl Registry {
    pub(crate) fn new(shards: usize) -> Registry {
        Registry {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(slab::Slab::new()))
                .collect(),
        }
    }

    fn shard(&self, shard: usize) -> MutexGuard<'_, slab::Slab<Waker>> {
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keep `waker` on `shard`; the key names it for [`remove`](Registry::remove).
    pub(crate) fn insert(&self, shard: usize, waker: &Waker) -> usize {
        self.shard(shard).insert(waker.clone())
    }

    /// Forget an entry (gone already if [`take`](Registry::take) took it).
    pub(crate) fn remove(&self, shard: usize, key: usize) {
        self.shard(shard).try_remove(key);
    }

    /// Entries in every shard.
    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.shard(i).len()).sum()
    }

    /// A clone of every entry, to be woken by the caller outside the
    /// locks; the entries stay (each task still unregisters itself).
    #[allow(dead_code)] // the thread pool's; not in the loom model
    pub(crate) fn wakers(&self) -> Vec<Waker> {
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            out.extend(self.shard(i).iter().map(|(_, w)| w.clone()));
        }
        out
    }

    /// Take every entry out, to be woken by the caller outside the locks
    /// (a task dropped by that wake unregisters, which takes its shard's
    /// lock again).
    pub(crate) fn take(&self) -> Vec<Waker> {
        let mut out = Vec::new();
        for i in 0..self.shards.len() {
            let taken = std::mem::take(&mut *self.shard(i));
            out.extend(taken.into_iter().map(|(_, w)| w));
        }
        out
    }
}

/// See the module docs.
pub(crate) struct Lifecycle {
    /// Shutdown began cancelling tasks.
    closed: AtomicBool,
    /// Shutdown's clean-up is over (set under `finished_lock`).
    finished: AtomicBool,
    finished_lock: Mutex<()>,
    finished_cv: Condvar,
    /// Wakers of the tasks that suspended at least once and are alive (one
    /// shard: a task registers once in its life, at its first suspension,
    /// too rarely for one lock to contend).
    suspended: Registry,
}

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle {
            closed: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            finished_lock: Mutex::new(()),
            finished_cv: Condvar::new(),
            suspended: Registry::new(1),
        }
    }

    /// Shutdown began cancelling tasks.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Tasks that suspended at least once and are alive.
    pub(crate) fn suspended(&self) -> usize {
        self.suspended.len()
    }

    /// A task's poll returned `Pending` (`key`: its registry entry, made on
    /// its first suspension). `true`: the scheduler is shutting down and
    /// nothing will wake the task: the caller wakes it, which cancels it.
    #[inline]
    pub(crate) fn on_pending(&self, key: &mut Option<usize>, waker: &Waker) -> bool {
        // The waker of a task is the same for its life: registered once,
        // so a task done in its first poll never takes the lock.
        if key.is_none() {
            *key = Some(self.suspended.insert(0, waker));
        }
        self.closed.load(Ordering::Acquire)
    }

    /// A task is dropped: forget its entry.
    pub(crate) fn on_drop(&self, key: Option<usize>) {
        if let Some(key) = key {
            // After shutdown took the registry, the entry is gone already.
            self.suspended.remove(0, key);
        }
    }

    /// A task is being scheduled; `woken_while_running`: by itself, from
    /// the end of its own poll.
    #[inline]
    pub(crate) fn verdict(&self, woken_while_running: bool) -> Verdict {
        if !self.closed.load(Ordering::Acquire) {
            Verdict::Run
        } else if woken_while_running {
            Verdict::CancelNow
        } else if self.finished.load(Ordering::Acquire) {
            Verdict::CancelElsewhere
        } else {
            Verdict::CancelLater
        }
    }

    /// After queueing a task on [`Verdict::CancelLater`]: `true` if
    /// shutdown may already have taken its last look at the queue, so the
    /// caller must hand what is queued to another thread to drop.
    pub(crate) fn missed_by_shutdown(&self) -> bool {
        // Pairs with the fence in `set_finished`.
        fence(Ordering::SeqCst);
        self.finished.load(Ordering::Relaxed)
    }

    /// Shutdown starts cancelling: the wakers of every suspended task (to
    /// wake, outside any lock, so that each is scheduled and cancelled), or
    /// `None` if another caller started already.
    pub(crate) fn close(&self) -> Option<Vec<Waker>> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return None;
        }
        // Taken out first: dropping a task unregisters it, which takes the
        // same lock.
        Some(self.suspended.take())
    }

    /// Shutdown's clean-up is over: wake the callers waiting for it. The
    /// caller then takes one last look at the queue.
    pub(crate) fn set_finished(&self) {
        {
            let _g = self.finished_lock.lock().unwrap_or_else(|e| e.into_inner());
            self.finished.store(true, Ordering::Release);
        }
        self.finished_cv.notify_all();
        // Pairs with the fence in `missed_by_shutdown`.
        fence(Ordering::SeqCst);
    }

    /// Block until [`set_finished`](Lifecycle::set_finished).
    pub(crate) fn wait_finished(&self) {
        let mut g = self.finished_lock.lock().unwrap_or_else(|e| e.into_inner());
        while !self.finished.load(Ordering::Acquire) {
            g = self.finished_cv.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}
