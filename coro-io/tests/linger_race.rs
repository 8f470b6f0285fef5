//! A lingering task spawned from another thread just as the shutdown
//! stops waiting for lingering tasks: `spawn_lingering` must refuse it or
//! run it to its end, never take it and then cancel it unrun (the peer of
//! a dropped stream would get a truncated body). Its own binary: the
//! pause that widens the window is process-wide.
#![cfg(feature = "fault-injection")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use coro_io::fault;
use coro_io::testing::Config;

/// Takes the pause away however the test ends.
struct NoPause;
impl Drop for NoPause {
    fn drop(&mut self) {
        fault::delay_after_linger(None);
    }
}

#[test]
fn a_lingering_task_taken_as_the_linger_ends_runs_to_its_end() {
    let _p = NoPause;
    // The shutdown waits this long between its linger and its clean-up;
    // the other thread spawns a quarter of the way into it.
    fault::delay_after_linger(Some(Duration::from_millis(400)));
    for cfg in Config::ALL {
        let sched = cfg.sched();
        let done = Arc::new(AtomicBool::new(false));
        let (s, d) = (sched.clone(), done.clone());
        let spawner = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let s2 = s.clone();
            s.spawn_lingering(async move {
                s2.sleep(Duration::from_millis(20)).await;
                d.store(true, Ordering::SeqCst);
            })
        });
        sched.shutdown();
        let taken = spawner.join().unwrap();
        assert!(
            !taken || done.load(Ordering::SeqCst),
            "{cfg}: the task was taken, then cancelled before it ran to its end"
        );
    }
}
