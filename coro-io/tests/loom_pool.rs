//! Loom models of the thread pool's sleep/search/notify protocol
//! (`src/thread_pool/idle.rs`, compiled here against loom's types).
//!
//! Work is a counter; workers take from it, search, sleep and wake exactly
//! as the pool's workers do, with the same calls. A lost wake-up shows as a
//! deadlock (every thread parked while work waits), which loom reports.
//!
//! The small ones run in a plain `cargo test` (seconds); raise the bound
//! with `LOOM_MAX_PREEMPTIONS=3`.

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Arc, Condvar};
use loom::thread;

#[path = "../src/thread_pool/idle.rs"]
#[allow(dead_code, unreachable_pub)]
mod idle;

/// What `idle.rs` is written against, here loom's.
mod sync {
    pub(crate) use loom::sync::Mutex;
    pub(crate) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
}

use idle::Idle;

/// `std::thread::park`/`unpark` (a token, spurious returns allowed), built
/// on a condition variable: loom's own park does not model the token
/// faithfully.
struct Parker {
    token: loom::sync::Mutex<bool>,
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

struct Pool {
    idle: Idle,
    /// Queued work.
    work: AtomicUsize,
    /// Work done.
    done: AtomicUsize,
    /// All work is done: workers exit.
    finished: AtomicBool,
    parkers: Vec<Parker>,
}

impl Pool {
    fn new(workers: usize) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Idle::new(workers),
            work: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            parkers: (0..workers)
                .map(|_| Parker {
                    token: loom::sync::Mutex::new(false),
                    cv: Condvar::new(),
                })
                .collect(),
        })
    }

    fn unpark(&self, i: usize) {
        self.parkers[i].unpark();
    }

    /// A producer: make one unit of work visible, then notify.
    fn push(&self) {
        self.work.fetch_add(1, Ordering::SeqCst);
        if let Some(i) = self.idle.notify() {
            self.unpark(i);
        }
    }

    fn take(&self) -> bool {
        self.work
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |w| w.checked_sub(1))
            .is_ok()
    }

    /// A worker's life, as `thread_pool/worker.rs` lives it.
    fn worker(&self, index: usize, total: usize) {
        let mut searching = false;
        loop {
            if self.finished.load(Ordering::SeqCst) {
                return;
            }
            // Local queue, then (as a searcher) the others'.
            let mut found = self.take();
            if !found {
                if !searching {
                    searching = true;
                    self.idle.start_searching();
                }
                found = self.take();
            }
            if found {
                if searching {
                    searching = false;
                    if self.idle.stop_searching() {
                        if let Some(i) = self.idle.notify() {
                            self.unpark(i);
                        }
                    }
                }
                if self.done.fetch_add(1, Ordering::SeqCst) + 1 == total {
                    // The last unit: everyone may go (as at shutdown).
                    self.finished.store(true, Ordering::SeqCst);
                    for i in self.idle.wake_all() {
                        self.unpark(i);
                    }
                }
                continue;
            }
            // Park.
            self.idle.sleep(index, std::mem::take(&mut searching));
            if self.work.load(Ordering::SeqCst) > 0 || self.finished.load(Ordering::SeqCst) {
                if !self.idle.cancel_sleep(index) {
                    while !self.idle.take_token(index) {
                        self.parkers[index].park();
                    }
                }
                searching = true;
                continue;
            }
            while !self.idle.take_token(index) {
                self.parkers[index].park();
            }
            searching = true;
        }
    }
}

fn run(workers: usize, units: usize, producers: usize) {
    let pool = Pool::new(workers);
    let ws: Vec<_> = (0..workers)
        .map(|i| {
            let p = pool.clone();
            thread::spawn(move || p.worker(i, units))
        })
        .collect();
    let ps: Vec<_> = (0..producers)
        .map(|k| {
            let p = pool.clone();
            let n = units / producers + usize::from(k < units % producers);
            thread::spawn(move || {
                for _ in 0..n {
                    p.push();
                }
            })
        })
        .collect();
    for p in ps {
        p.join().unwrap();
    }
    for w in ws {
        w.join().unwrap();
    }
    assert_eq!(pool.done.load(Ordering::SeqCst), units);
    let (searching, sleeping, listed) = pool.idle.counts();
    assert_eq!((sleeping, listed), (0, 0), "searching {searching}");
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
    model(|| run(2, 2, 1));
}

/// Two producers racing each other's notify against two workers going to
/// sleep. (A few minutes in a debug build, 45 s in release:
/// `scripts/check-deep` runs it.)
#[test]
#[ignore = "slow; scripts/check-deep runs it"]
fn two_workers_two_producers_no_lost_wakeup() {
    model(|| run(2, 2, 2));
}

/// A single worker: notify must wake it even though no one ever searches.
#[test]
fn one_worker_sleeps_and_is_woken() {
    model(|| run(1, 2, 1));
}
