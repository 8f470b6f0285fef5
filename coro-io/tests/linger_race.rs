//! A lingering task spawned from another thread just as the shutdown
//! stops waiting for lingering tasks: `spawn_lingering` must refuse it or
//! run it to its end, never take it and then cancel it unrun (the peer of
//! a dropped stream would get a truncated body); and taken, it must be
//! able to hand work to another lingering task (as it does when it drops
//! a stream with a send in flight). Its own binary: the pause that
//! widens the window is process-wide.
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

#[derive(Default)]
struct Seen {
    first_done: AtomicBool,
    second_taken: AtomicBool,
    second_done: AtomicBool,
}

#[test]
fn a_lingering_task_taken_as_the_linger_ends_runs_to_its_end() {
    let _p = NoPause;
    // The shutdown waits this long between seeing no lingering task left
    // and taking no more; the other thread spawns a quarter of the way
    // into it.
    fault::delay_after_linger(Some(Duration::from_millis(400)));
    let mut taken_somewhere = false;
    for cfg in Config::ALL {
        let sched = cfg.sched();
        let seen = Arc::new(Seen::default());
        let (s, v) = (sched.clone(), seen.clone());
        let spawner = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            let s2 = s.clone();
            // Whether this spawn comes while the shutdown runs (the
            // window the test is about), not before it began.
            let during = s.is_shutdown();
            let taken = s.spawn_lingering(async move {
                s2.sleep(Duration::from_millis(20)).await;
                let (s3, v2) = (s2.clone(), v.clone());
                let taken = s2.spawn_lingering(async move {
                    s3.sleep(Duration::from_millis(20)).await;
                    v2.second_done.store(true, Ordering::SeqCst);
                });
                v.second_taken.store(taken, Ordering::SeqCst);
                v.first_done.store(true, Ordering::SeqCst);
            });
            (during, taken)
        });
        sched.shutdown();
        // Not taken only if the spawner came after the pause (a loaded
        // machine): nothing to check then.
        let (during, taken) = spawner.join().unwrap();
        if taken {
            taken_somewhere |= during;
            assert!(
                seen.first_done.load(Ordering::SeqCst),
                "{cfg}: the task was taken, then cancelled before it ran to its end"
            );
            assert!(
                seen.second_taken.load(Ordering::SeqCst),
                "{cfg}: a lingering task's own lingering task was refused while the shutdown lingered"
            );
            assert!(
                seen.second_done.load(Ordering::SeqCst),
                "{cfg}: the second task was taken, then cancelled"
            );
        }
    }
    // Not one configuration taking a spawn made during the shutdown means
    // the pause was never reached: the test checked nothing.
    assert!(taken_somewhere, "no spawn came inside the pause");
}
