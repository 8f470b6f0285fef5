//! Loom models of a scheduler's shutdown racing its tasks' wake-ups
//! (`src/lifecycle.rs`, compiled here against loom's types).
//!
//! A task is modelled as async-task runs one: a state word (idle,
//! scheduled, running, woken while running, cancelled), a schedule
//! function that asks the lifecycle for its verdict and puts the task on
//! the run queue (pool) or the shutdown queue, and a future that never
//! completes and keeps no waker (like `pending()`): only the registry and
//! the self-wake can end it. Each model checks that, whatever the
//! interleaving, the task ends up cancelled exactly once, and never from
//! inside a wake that holds a lock.

use std::sync::Arc as StdArc;
use std::task::{Wake, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

#[path = "../src/lifecycle.rs"]
#[allow(dead_code, unreachable_pub)]
mod lifecycle;

/// What `lifecycle.rs` is written against, here loom's.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicBool, Ordering, fence};
    pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};
}

use lifecycle::{Lifecycle, Verdict};

const IDLE: usize = 0;
const SCHEDULED: usize = 1;
const RUNNING: usize = 2;
const RUNNING_WOKEN: usize = 3;
const CANCELLED: usize = 4;

struct World {
    life: Lifecycle,
    /// Inline execution: a wake from another thread queues the task on the
    /// loop's own queue, the one shutdown drains (no pool runs it later).
    inline: bool,
    task: AtomicUsize,
    /// Times the task was cancelled (dropped): must end at exactly 1.
    cancels: AtomicUsize,
    /// The pool's run queue and the scheduler's shutdown queue (each holds
    /// at most the one task: a count).
    run_queue: AtomicUsize,
    shutdown_queue: AtomicUsize,
    /// Tasks handed to another thread to drop (the blocking pool).
    elsewhere: AtomicUsize,
    /// The registry key of the task (its `Tracked::key`).
    key: Mutex<Option<usize>>,
    /// A lock some waker runs under (another library's waiter list): dropping the
    /// task while it is held would take it again.
    notify_lock: Mutex<()>,
    /// The thread inside that lock, waking the task.
    in_notify: Mutex<Option<thread::ThreadId>>,
}

impl World {
    fn cancel(&self) {
        assert_ne!(
            *self.in_notify.lock().unwrap(),
            Some(thread::current().id()),
            "a task was dropped inside a wake that holds a lock"
        );
        // Every write of the state is a read-modify-write, as in
        // async-task (loom 0.7 can let an RMW read past a plain store).
        let prev = self
            .task
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |_| Some(CANCELLED));
        assert_ne!(prev, Ok(CANCELLED), "cancelled twice");
        self.cancels.fetch_add(1, Ordering::SeqCst);
        self.life.on_drop(self.key.lock().unwrap().take());
    }

    /// The scheduler's schedule function (`Inner::schedule`).
    fn schedule(&self, woken_while_running: bool) {
        match self.life.verdict(woken_while_running) {
            Verdict::Run if self.inline => {
                // The loop's queue: shutdown may have taken its last look
                // at it since the verdict, so look again after queueing.
                self.shutdown_queue.fetch_add(1, Ordering::SeqCst);
                if self.life.missed_by_shutdown() {
                    self.hand_over_queued();
                }
            }
            Verdict::Run => {
                self.run_queue.fetch_add(1, Ordering::SeqCst);
            }
            Verdict::CancelNow => self.cancel(),
            Verdict::CancelLater => {
                self.shutdown_queue.fetch_add(1, Ordering::SeqCst);
                if self.life.missed_by_shutdown() {
                    self.hand_over_queued();
                }
            }
            Verdict::CancelElsewhere => {
                self.elsewhere.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    /// Hand every queued task to another thread to drop.
    fn hand_over_queued(&self) {
        while self
            .shutdown_queue
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.elsewhere.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// async-task's wake. An already scheduled task is "woken" by writing
    /// its state back unchanged, which publishes the waker's view of
    /// memory to the thread that will run it (async-task does the same).
    fn wake(&self) {
        let mut s = self.task.load(Ordering::SeqCst);
        loop {
            let next = match s {
                IDLE => SCHEDULED,
                RUNNING => RUNNING_WOKEN,
                SCHEDULED | RUNNING_WOKEN => s,
                _ => return,
            };
            match self
                .task
                .compare_exchange(s, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) if s == IDLE => return self.schedule(false),
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
    }

    /// Take the task off `queue` and run it once, if it is there.
    fn run_from(&self, queue: &AtomicUsize, waker: &Waker) {
        if queue
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_err()
        {
            return;
        }
        let started =
            self.task
                .compare_exchange(SCHEDULED, RUNNING, Ordering::SeqCst, Ordering::SeqCst);
        assert_eq!(started, Ok(SCHEDULED), "ran a task that was not scheduled");
        // `Tracked::poll`: not polled after shutdown began; else the
        // future (pending, keeping no waker), then the registry.
        let self_wake = self.life.is_closed() || {
            let mut key = self.key.lock().unwrap();
            self.life.on_pending(&mut key, waker)
        };
        if self_wake {
            self.wake();
        }
        // async-task's end of `run`.
        if let Err(now) =
            self.task
                .compare_exchange(RUNNING, IDLE, Ordering::SeqCst, Ordering::SeqCst)
        {
            assert_eq!(now, RUNNING_WOKEN);
            let r = self.task.compare_exchange(
                RUNNING_WOKEN,
                SCHEDULED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            assert!(r.is_ok());
            self.schedule(true);
        }
    }

    /// Drop what is queued for shutdown (`Inner::drop_queued`).
    fn drop_queued(&self) {
        while self
            .shutdown_queue
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.cancel();
        }
    }

    /// `Inner::finish`.
    fn finish(&self) {
        if let Some(wakers) = self.life.close() {
            self.drop_queued();
            for w in wakers {
                w.wake();
            }
            self.drop_queued();
            self.life.set_finished();
            self.drop_queued();
        }
    }
}

/// The task's waker: `World::wake` (a std waker over loom state).
struct TaskWaker(Arc<World>);

impl Wake for TaskWaker {
    fn wake(self: StdArc<Self>) {
        self.0.wake();
    }
}

/// A world whose task is scheduled (in the pool's queue), not yet run.
fn world() -> (Arc<World>, Waker) {
    world_with(false)
}

fn world_with(inline: bool) -> (Arc<World>, Waker) {
    let w = Arc::new(World {
        life: Lifecycle::new(),
        inline,
        task: AtomicUsize::new(SCHEDULED),
        cancels: AtomicUsize::new(0),
        run_queue: AtomicUsize::new(1),
        shutdown_queue: AtomicUsize::new(0),
        elsewhere: AtomicUsize::new(0),
        key: Mutex::new(None),
        notify_lock: Mutex::new(()),
        in_notify: Mutex::new(None),
    });
    let waker = Waker::from(StdArc::new(TaskWaker(w.clone())));
    (w, waker)
}

/// After everything: the pool runs what is queued (graceful pool
/// shutdown), then the task must be cancelled, once.
fn settle(w: &World, waker: &Waker) {
    while w.run_queue.load(Ordering::SeqCst) > 0 {
        w.run_from(&w.run_queue, waker);
    }
    // Nothing may be left in the shutdown queue: shutdown or the waker
    // that came too late took it.
    assert_eq!(
        w.shutdown_queue.load(Ordering::SeqCst),
        0,
        "a task was left queued after shutdown"
    );
    // The other thread drops what it was handed.
    while w
        .elsewhere
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        w.cancel();
    }
    let state = w.task.load(Ordering::SeqCst);
    assert_eq!(
        state, CANCELLED,
        "the task survived shutdown (state {state})"
    );
    assert_eq!(w.cancels.load(Ordering::SeqCst), 1);
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

/// The task suspended once (registered), was woken, and sits in the pool's
/// queue when shutdown runs; a worker runs it while shutdown cancels.
/// Whatever the order, it is cancelled exactly once.
#[test]
fn queued_task_races_shutdown() {
    model(|| {
        let (w, waker) = world();
        // First poll: suspended and registered.
        w.run_from(&w.run_queue, &waker);
        // Woken (by its I/O, say): back in the pool's queue.
        w.wake();
        let (w1, k1) = (w.clone(), waker.clone());
        let worker = thread::spawn(move || w1.run_from(&w1.run_queue, &k1));
        let w2 = w.clone();
        let stopper = thread::spawn(move || w2.finish());
        worker.join().unwrap();
        stopper.join().unwrap();
        settle(&w, &waker);
    });
}

/// A task that never ran yet is in the queue; a thread wakes it from
/// inside a lock (as a queue's notify does) while shutdown runs: the task
/// is never dropped inside that lock, and is cancelled exactly once.
#[test]
fn wake_under_a_lock_races_shutdown() {
    model(|| {
        let (w, waker) = world();
        w.run_from(&w.run_queue, &waker);
        let (w1, k1) = (w.clone(), waker.clone());
        let notifier = thread::spawn(move || {
            let _g = w1.notify_lock.lock().unwrap();
            *w1.in_notify.lock().unwrap() = Some(thread::current().id());
            k1.wake_by_ref();
            *w1.in_notify.lock().unwrap() = None;
        });
        let (w2, k2) = (w.clone(), waker.clone());
        let worker = thread::spawn(move || w2.run_from(&w2.run_queue, &k2));
        let w3 = w.clone();
        let stopper = thread::spawn(move || w3.finish());
        notifier.join().unwrap();
        worker.join().unwrap();
        stopper.join().unwrap();
        settle(&w, &waker);
    });
}

/// A task's first suspension races shutdown's taking of the registry: it
/// either is in what shutdown takes, or sees `closed` and cancels itself.
#[test]
fn first_suspension_races_shutdown() {
    model(|| {
        let (w, waker) = world();
        let (w1, k1) = (w.clone(), waker.clone());
        let worker = thread::spawn(move || w1.run_from(&w1.run_queue, &k1));
        let w2 = w.clone();
        let stopper = thread::spawn(move || w2.finish());
        worker.join().unwrap();
        stopper.join().unwrap();
        settle(&w, &waker);
    });
}

/// Inline execution: a suspended task is woken from another thread while
/// the loop runs shutdown. The waker's verdict ("run") may come before
/// shutdown and its push after shutdown's last look at the queue: the
/// waker must notice and hand the task over, or it is never dropped.
#[test]
fn foreign_wake_races_shutdown_of_an_inline_loop() {
    model(|| {
        let (w, waker) = world_with(true);
        w.run_from(&w.run_queue, &waker);
        let k1 = waker.clone();
        let foreign = thread::spawn(move || k1.wake_by_ref());
        let w2 = w.clone();
        let stopper = thread::spawn(move || w2.finish());
        foreign.join().unwrap();
        stopper.join().unwrap();
        settle(&w, &waker);
    });
}
