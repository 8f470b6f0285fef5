//! Loom models of a scheduler's lingering tasks against its shutdown
//! (`src/scheduler/linger.rs`, compiled here against loom's atomics).
//!
//! The shutdown is modelled as `Inner::linger` runs it: while tasks are
//! counted it runs turns (here: yields), then refuses new ones if none
//! is counted, and lingers on if one was counted meanwhile. A lingering
//! task is counted by its spawn (`spawn_lingering`, told "taken") and
//! stays counted until it is dropped; while it runs it may spawn another
//! (a stream it drops hands its last send to one). What must hold in every
//! interleaving: a task told "taken" is never closed out while it is
//! counted (the clean-up would cancel it unrun), and a lingering task can
//! always hand its own lingering work on.

use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread;

#[path = "../src/scheduler/linger.rs"]
#[allow(dead_code, unreachable_pub)]
mod linger;

/// What `linger.rs` is written against, here loom's.
mod sync {
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
}

use linger::LingerCount;

/// Loom with a preemption bound (3, unless `LOOM_MAX_PREEMPTIONS` says):
/// the shutdown's wait is a spin, which unbounded would be explored
/// without end.
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

struct World {
    count: LingerCount,
    /// Set by the shutdown once it has refused new tasks (its clean-up
    /// would cancel whatever is still counted).
    closed: AtomicBool,
}

/// The shutdown's linger, without the turns, the bound or the faults.
fn shutdown(w: &World) {
    loop {
        while w.count.any_left() {
            thread::yield_now();
        }
        if w.count.close_if_none() {
            w.closed.store(true, Ordering::SeqCst);
            return;
        }
    }
}

/// A lingering task that, while it runs, hands one more on; checks that
/// neither is closed out while counted. Returns whether the first was
/// taken.
fn lingering_task(w: &World) -> bool {
    if !w.count.enter() {
        // Refused: the shutdown's clean-up has begun; the spawner drops
        // the future (and what it owns) itself.
        return false;
    }
    assert!(
        !w.closed.load(Ordering::SeqCst),
        "a task told it was taken was closed out while counted"
    );
    // Its own lingering work (a stream it drops): while it is counted the
    // shutdown lingers, so this must be taken too.
    assert!(
        w.count.enter(),
        "a lingering task's own lingering work was refused"
    );
    assert!(!w.closed.load(Ordering::SeqCst));
    assert!(!w.count.leave(), "the second one is still counted");
    assert!(!w.closed.load(Ordering::SeqCst));
    w.count.leave();
    true
}

#[test]
fn a_task_taken_is_never_closed_out_while_counted() {
    model(|| {
        let w = Arc::new(World {
            count: LingerCount::new(),
            closed: AtomicBool::new(false),
        });
        let task = {
            let w = w.clone();
            thread::spawn(move || lingering_task(&w))
        };
        shutdown(&w);
        task.join().unwrap();
        // Closed, none left, and a late spawn is refused.
        assert!(w.count.is_closed() && !w.count.any_left());
        assert!(!w.count.enter());
    });
}

#[test]
fn two_spawners_and_the_shutdown() {
    model(|| {
        let w = Arc::new(World {
            count: LingerCount::new(),
            closed: AtomicBool::new(false),
        });
        let spawners: Vec<_> = (0..2)
            .map(|_| {
                let w = w.clone();
                thread::spawn(move || lingering_task(&w))
            })
            .collect();
        shutdown(&w);
        for s in spawners {
            s.join().unwrap();
        }
        assert!(w.count.is_closed() && !w.count.any_left());
    });
}

#[test]
fn a_forced_close_refuses_new_tasks_but_counts_the_old_ones_out() {
    model(|| {
        let w = Arc::new(World {
            count: LingerCount::new(),
            closed: AtomicBool::new(false),
        });
        assert!(w.count.enter());
        let forced = {
            let w = w.clone();
            thread::spawn(move || w.count.close())
        };
        // The task counted before, finishing while the shutdown gives up.
        let last = w.count.leave();
        forced.join().unwrap();
        assert!(last, "the only task counted is the last one out");
        assert!(w.count.is_closed() && !w.count.any_left() && !w.count.enter());
    });
}

#[test]
fn the_count_and_the_refusal_share_one_word() {
    model(|| {
        let c = LingerCount::new();
        assert!(!c.any_left() && !c.is_closed());
        assert!(c.enter() && c.enter());
        assert!(!c.close_if_none(), "two tasks are counted");
        assert!(!c.is_closed());
        assert!(!c.leave(), "one is left");
        assert!(c.leave(), "the last one");
        assert!(c.close_if_none());
        assert!(c.is_closed() && !c.enter());
        assert!(c.close_if_none(), "closed already");
    });
}
