//! Loom models of the thread pool's sleep/search/notify protocol and its
//! shutdown (`src/thread_pool/idle.rs`, compiled here against loom's
//! types: the same `Idle` and the same `park` the workers call).
//!
//! Work is counted, not run: a global queue and one stealable local queue
//! per worker, taken from in the order `thread_pool/worker.rs` looks
//! (local, then global, moving a batch of two and notifying as it does,
//! then, with more than one worker, the others' while searching). A unit
//! may hand work over as it runs (a task blocking in `sync_wait` moves
//! its LIFO slot to the local queue and notifies). A lost wake-up shows as
//! a deadlock (every thread parked while work waits), which loom reports.
//!
//! The small ones run in a plain `cargo test` (seconds); raise the bound
//! with `LOOM_MAX_PREEMPTIONS=3`.

use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

#[path = "../src/thread_pool/idle.rs"]
#[allow(dead_code, unreachable_pub)]
mod idle;

/// What `idle.rs` is written against, here loom's.
mod sync {
    pub(crate) use loom::sync::Mutex;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
}

use idle::{Idle, Parking, Waiting};

/// `std::thread::park`/`unpark` (a token, spurious returns allowed), built
/// on a condition variable: loom's own park does not model the token
/// faithfully.
struct Parker {
    token: Mutex<bool>,
    cv: Condvar,
}

impl Parker {
    fn park(&self) {
        let mut t = self.token.lock().unwrap();
        while !*t {
            t = self.cv.wait(t).unwrap();
        }
        *t = false;
    }
    fn unpark(&self) {
        *self.token.lock().unwrap() = true;
        self.cv.notify_one();
    }
}

/// A unit of work: plain, or one that hands a child unit over to its
/// worker's local queue as it runs and then blocks until another worker
/// ran that child (a task in `sync_wait` on a child that was in its
/// worker's LIFO slot: only another worker can run it), or one that
/// blocks in `sync_wait` on a child that suspended for good (registered,
/// never queued: only the shutdown's cancellation ends that wait).
const PLAIN: usize = 1;
const HANDS_OVER: usize = 2;
const CHILD: usize = 0;
const WAITS: usize = 3;

struct Pool {
    idle: Idle,
    /// The global queue (units of either kind, counted by kind).
    injected: [AtomicUsize; 4],
    /// Each worker's stealable queue: plain units (of a stolen batch) and
    /// handed-over children, counted apart.
    local: Vec<AtomicUsize>,
    children: Vec<AtomicUsize>,
    /// The handed-over child ran (the blocked parent waits for it).
    child_ran: Mutex<bool>,
    child_cv: Condvar,
    /// Units run.
    done: AtomicUsize,
    /// Shut down once this many ran (0: the test shuts down itself).
    shutdown_after: usize,
    /// Units the clean-up dropped (pushed after everyone left).
    dropped: AtomicUsize,
    /// The clean-up ran: a push from now on drops its unit itself.
    reaped: AtomicBool,
    shutdown: AtomicBool,
    leaving: AtomicBool,
    live: AtomicUsize,
    parkers: Vec<Parker>,
    /// As the pool's: workers between their block hooks, and per worker
    /// the times it blocked, the flag, and its `sync_wait` wake-up (set
    /// by whoever resolves its child, taken after the unblock hook).
    blocked_count: AtomicUsize,
    blocks: Vec<AtomicU64>,
    blocked: Vec<AtomicBool>,
    woken: Vec<AtomicBool>,
    /// The worker whose unit waits for the child.
    parent: AtomicUsize,
    /// The `WAITS` unit's child suspended (is in the registry).
    registered: AtomicBool,
    /// The stuck decision was taken: found units are dropped.
    cancelling: AtomicBool,
    /// Children the cancellation dropped.
    cancelled: AtomicUsize,
}

impl Parking for Pool {
    fn idle(&self) -> &Idle {
        &self.idle
    }
    fn has_visible_work(&self) -> bool {
        self.injected.iter().any(|q| q.load(Ordering::SeqCst) > 0)
            || self.local.iter().any(|q| q.load(Ordering::SeqCst) > 0)
            || self.children.iter().any(|q| q.load(Ordering::SeqCst) > 0)
    }
    fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }
    fn leaving(&self) -> &AtomicBool {
        &self.leaving
    }
    fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
    fn cancel_suspended_if_stuck(&self) {
        Pool::cancel_suspended_if_stuck(self);
    }
    fn unpark(&self, i: usize) {
        self.parkers[i].unpark();
    }
    fn wait_for_token(&self, index: usize) {
        while !self.idle.take_token(index) {
            self.parkers[index].park();
        }
    }
}

impl Waiting for Pool {
    fn workers(&self) -> usize {
        self.blocked.len()
    }
    fn any_blocked(&self) -> bool {
        self.blocked_count.load(Ordering::SeqCst) > 0
    }
    fn blocks(&self, i: usize) -> u64 {
        self.blocks[i].load(Ordering::SeqCst)
    }
    fn is_blocked(&self, i: usize) -> bool {
        self.blocked[i].load(Ordering::SeqCst)
    }
    fn is_woken(&self, i: usize) -> bool {
        self.woken[i].load(Ordering::SeqCst)
    }
}

fn take(q: &AtomicUsize) -> bool {
    q.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| w.checked_sub(1))
        .is_ok()
}

impl Pool {
    fn new(workers: usize, shutdown_after: usize) -> Arc<Pool> {
        Arc::new(Pool {
            shutdown_after,
            idle: Idle::new(workers),
            injected: Default::default(),
            local: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            children: (0..workers).map(|_| AtomicUsize::new(0)).collect(),
            child_ran: Mutex::new(false),
            child_cv: Condvar::new(),
            done: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            reaped: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            live: AtomicUsize::new(workers),
            parkers: (0..workers)
                .map(|_| Parker {
                    token: Mutex::new(false),
                    cv: Condvar::new(),
                })
                .collect(),
            blocked_count: AtomicUsize::new(0),
            blocks: (0..workers).map(|_| AtomicU64::new(0)).collect(),
            blocked: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            woken: (0..workers).map(|_| AtomicBool::new(false)).collect(),
            parent: AtomicUsize::new(0),
            registered: AtomicBool::new(false),
            cancelling: AtomicBool::new(false),
            cancelled: AtomicUsize::new(0),
        })
    }

    /// The child was run or dropped: wake its parent's `sync_wait` (the
    /// flag first, then the park's condition variable).
    fn resolve_child(&self) {
        self.woken[self.parent.load(Ordering::SeqCst)].store(true, Ordering::SeqCst);
        *self.child_ran.lock().unwrap() = true;
        self.child_cv.notify_all();
    }

    /// `Shared::cancel_suspended_if_stuck`: the suspended child, woken, is
    /// dropped (by the reaper, in the pool).
    fn cancel_suspended_if_stuck(&self) {
        if !idle::stuck(self) {
            return;
        }
        self.cancelling.store(true, Ordering::SeqCst);
        if self.registered.swap(false, Ordering::SeqCst) {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
            self.resolve_child();
        }
    }

    /// A unit in `sync_wait` on its child, as `coro_core::sync_wait` with
    /// the pool's hooks: count itself blocked, take the decision, wait
    /// for the wake-up, uncount, then take the wake-up.
    fn sync_wait(&self, index: usize) {
        self.blocks[index].fetch_add(1, Ordering::SeqCst);
        self.blocked[index].store(true, Ordering::SeqCst);
        self.blocked_count.fetch_add(1, Ordering::SeqCst);
        self.cancel_suspended_if_stuck();
        {
            let mut ran = self.child_ran.lock().unwrap();
            while !*ran {
                ran = self.child_cv.wait(ran).unwrap();
            }
        }
        self.blocked[index].store(false, Ordering::SeqCst);
        self.blocked_count.fetch_sub(1, Ordering::SeqCst);
        self.woken[index].store(false, Ordering::SeqCst);
    }

    fn notify(&self) {
        if let Some(i) = self.idle.notify() {
            self.unpark(i);
        }
    }

    /// A producer: make one unit visible, then notify; after the
    /// clean-up, drop what nobody will run (`inject`).
    fn push(&self, kind: usize) {
        self.injected[kind].fetch_add(1, Ordering::SeqCst);
        self.notify();
        if self.reaped.load(Ordering::SeqCst) {
            self.drop_queued();
        }
    }

    fn drop_queued(&self) {
        for q in self
            .injected
            .iter()
            .chain(&self.local)
            .chain(&self.children)
        {
            while take(q) {
                self.dropped.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// `begin_shutdown`.
    fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        for i in self.idle.wake_all() {
            self.unpark(i);
        }
        self.cancel_suspended_if_stuck();
    }

    /// `steal_global`: a unit, and a second one of the batch to the local
    /// queue (a worker that is not searching notifies for it).
    fn steal_global(&self, index: usize, searching: bool) -> Option<usize> {
        let kind = [WAITS, HANDS_OVER, PLAIN]
            .into_iter()
            .find(|&k| take(&self.injected[k]))?;
        if take(&self.injected[PLAIN]) {
            self.local[index].fetch_add(1, Ordering::SeqCst);
            if !searching {
                self.notify();
            }
        }
        Some(kind)
    }

    /// One unit of worker `j`'s local queue, if any.
    fn take_local(&self, j: usize) -> Option<usize> {
        if take(&self.local[j]) {
            Some(PLAIN)
        } else if take(&self.children[j]) {
            Some(CHILD)
        } else {
            None
        }
    }

    /// `find_task`: local queue, global queue, then the others'.
    fn find(&self, index: usize, searching: &mut bool) -> Option<usize> {
        if let Some(kind) = self.take_local(index) {
            return Some(kind);
        }
        if let Some(kind) = self.steal_global(index, *searching) {
            return Some(kind);
        }
        if self.local.len() == 1 {
            return None;
        }
        if !*searching {
            *searching = true;
            self.idle.start_searching();
        }
        (0..self.local.len())
            .filter(|&j| j != index)
            .find_map(|j| self.take_local(j))
    }

    /// A worker's life, as `run_worker` lives it.
    fn worker(&self, index: usize) {
        let mut searching = false;
        loop {
            match self.find(index, &mut searching) {
                Some(kind) => {
                    if searching {
                        searching = false;
                        if self.idle.stop_searching() {
                            self.notify();
                        }
                    }
                    if self.cancelling.load(Ordering::SeqCst) {
                        // Found after the decision: dropped, not run.
                        self.dropped.fetch_add(1, Ordering::SeqCst);
                        if kind == CHILD {
                            self.resolve_child();
                        }
                        continue;
                    }
                    if kind == HANDS_OVER {
                        // `hand_off_next`: the child goes to the local
                        // queue, and a free worker is woken to take it;
                        // this one blocks in `sync_wait` until the child
                        // ran.
                        self.parent.store(index, Ordering::SeqCst);
                        self.children[index].fetch_add(1, Ordering::SeqCst);
                        self.notify();
                        self.sync_wait(index);
                    }
                    if kind == WAITS {
                        // Its child ran earlier and suspended for good.
                        self.parent.store(index, Ordering::SeqCst);
                        self.registered.store(true, Ordering::SeqCst);
                        self.sync_wait(index);
                    }
                    if kind == CHILD {
                        self.resolve_child();
                    }
                    if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.shutdown_after {
                        // The last unit ran: `shutdown()`, as after the
                        // handles were awaited.
                        self.begin_shutdown();
                    }
                }
                None => {
                    if !idle::park(self, index, &mut searching) {
                        break;
                    }
                }
            }
        }
        if self.live.fetch_sub(1, Ordering::SeqCst) == 1 {
            // `terminate`: what is still queued is dropped, before and
            // after marking the pool reaped.
            self.drop_queued();
            self.reaped.store(true, Ordering::SeqCst);
            // As `terminate`'s (without it, a unit pushed as the pool
            // was reaped stays queued).
            loom::sync::atomic::fence(Ordering::SeqCst);
            self.drop_queued();
        }
    }
}

/// `workers` workers; `units` units (`kind`) pushed by `producers`
/// threads; then shutdown, by the worker that ran the last unit (`late`:
/// by the test, racing the producers). Every unit is run (or, late, run or dropped), and the protocol's
/// counts balance.
fn run(workers: usize, units: usize, producers: usize, kind: usize, late: bool) {
    // A unit that hands over makes two, and its child never goes
    // without it (it is pushed while its worker is busy).
    let per_unit = if kind == HANDS_OVER { 2 } else { 1 };
    let pool = Pool::new(workers, if late { 0 } else { units * per_unit });
    let ws: Vec<_> = (0..workers)
        .map(|i| {
            let p = pool.clone();
            thread::spawn(move || p.worker(i))
        })
        .collect();
    let ps: Vec<_> = (0..producers)
        .map(|k| {
            let p = pool.clone();
            let n = units / producers + usize::from(k < units % producers);
            thread::spawn(move || {
                for _ in 0..n {
                    p.push(kind);
                }
            })
        })
        .collect();
    if late {
        pool.begin_shutdown();
    }
    for p in ps {
        p.join().unwrap();
    }
    for w in ws {
        w.join().unwrap();
    }
    let (done, dropped) = (
        pool.done.load(Ordering::SeqCst),
        pool.dropped.load(Ordering::SeqCst),
    );
    if late {
        assert_eq!(
            done + dropped * per_unit,
            units * per_unit,
            "a unit lost ({done} run, {dropped} dropped; queued {:?} {:?})",
            pool.injected
                .iter()
                .map(|q| q.load(Ordering::SeqCst))
                .collect::<Vec<_>>(),
            pool.local
                .iter()
                .map(|q| q.load(Ordering::SeqCst))
                .collect::<Vec<_>>(),
        );
        assert_eq!(done % per_unit, 0, "a handed-over child was dropped");
    } else {
        assert_eq!((done, dropped), (units * per_unit, 0));
    }
    let cancelled = pool.cancelled.load(Ordering::SeqCst);
    if kind == WAITS {
        // Its child is cancelled exactly when the unit ran and waited.
        assert_eq!(cancelled, done, "the suspended child ({done} waited)");
    } else {
        // A queued or running child: the pool was never stuck.
        assert!(
            !pool.cancelling.load(Ordering::SeqCst),
            "took itself for stuck with work in hand"
        );
    }
    assert_eq!(pool.blocked_count.load(Ordering::SeqCst), 0);
    let (searching, sleeping, listed) = pool.idle.counts();
    assert_eq!(
        (searching, sleeping, listed),
        (0, 0, 0),
        "counts unbalanced"
    );
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    b.check(f);
}

/// One producer, two workers, two units: every unit is taken, nobody
/// sleeps through work, and the counts balance at the end.
#[test]
fn two_workers_one_producer_no_lost_wakeup() {
    model(|| run(2, 2, 1, PLAIN, false));
}

/// Two producers racing each other's notify against two workers going to
/// sleep. (Minutes in a debug build, 60 s in release: `scripts/check-deep`
/// runs it.)
#[test]
#[ignore = "slow; scripts/check-deep runs it"]
fn two_workers_two_producers_no_lost_wakeup() {
    model(|| run(2, 2, 2, PLAIN, false));
}

/// A single worker, which never searches: notify must wake it all the
/// same.
#[test]
fn one_worker_sleeps_and_is_woken() {
    model(|| run(1, 2, 1, PLAIN, false));
}

/// A unit that hands its child over and blocks until another worker ran
/// it, while shutdown begins: the worker inside it is not out of work, so
/// nobody may leave before the child ran (the other worker must be woken
/// for it, and must not leave while one is inside a task).
#[test]
fn shutdown_waits_for_work_a_running_task_hands_over() {
    model(|| run(2, 1, 1, HANDS_OVER, true));
}

/// A unit blocked in `sync_wait` on a child that suspended for good,
/// while shutdown begins: no worker is inside a task, so the pool must
/// cancel the child (ending the wait) and then leave: with a free worker
/// that parks (and races the block and the shutdown to decide), and with
/// none (the shutdown or the blocking worker decides).
#[test]
fn a_worker_waiting_on_a_suspended_child_does_not_hold_the_shutdown() {
    model(|| run(2, 1, 1, WAITS, true));
}

#[test]
fn a_lone_worker_waiting_on_a_suspended_child_does_not_hold_the_shutdown() {
    model(|| run(1, 1, 1, WAITS, true));
}

/// `leave_all` against `begin_shutdown`'s `wake_all`, on two listed
/// sleepers: it may decide that everyone sleeps only while they are
/// listed (and then wakes them itself), never from a count that
/// `wake_all` had not yet brought up to date (a worker it woke would then
/// run work while the others left).
#[test]
fn leave_all_never_decides_on_workers_wake_all_took() {
    model(|| {
        let idle = Arc::new(Idle::new(2));
        idle.sleep(0, false);
        idle.sleep(1, false);
        let leaving = AtomicBool::new(false);
        let shutdown = {
            let idle = idle.clone();
            thread::spawn(move || idle.wake_all())
        };
        let left = idle.leave_all(2, &leaving);
        let woken = shutdown.join().unwrap();
        match left {
            Some(all) => assert_eq!((all.len(), woken.len()), (2, 0), "decided on a stale count"),
            None => assert_eq!(woken.len(), 2),
        }
    });
}

/// Work pushed while shutdown begins: run, or dropped by the clean-up,
/// never left waiting with nobody to run or drop it.
#[test]
fn late_work_at_shutdown_is_run_or_dropped() {
    model(|| run(2, 1, 1, PLAIN, true));
}
