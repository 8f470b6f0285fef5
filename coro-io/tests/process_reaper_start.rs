//! A child dropped while it runs is reaped when it exits, also if the
//! process-wide reaper could not start its thread at that moment (`EAGAIN`
//! at a thread limit) and the blocking pool could not start one either:
//! the failure is not kept, and the next dropped child starts the reaper,
//! which reaps both. Its own binary: the reaper and the blocking pool are
//! process-wide, and the pool must have no thread yet.
#![cfg(feature = "fault-injection")]

mod common;

use std::time::{Duration, Instant};

use common::{dropped_sleepers, reaped};
use coro_core::sync_wait;
use coro_io::IoScheduler;
use coro_io::fault::{self, Syscall};

fn dropped_child() -> u32 {
    dropped_sleepers(1, "0.2")[0]
}

#[test]
fn a_reaper_that_could_not_start_is_started_by_the_next_dropped_child() {
    let s = IoScheduler::new(Default::default()).unwrap();
    let s2 = s.clone();
    let pids = sync_wait(s.spawn(async move {
        // No thread can start: neither the reaper's nor the pool's.
        fault::fail_syscall(Syscall::SpawnThread, 0, u32::MAX, libc::EAGAIN);
        let first = dropped_child();
        fault::fail_syscall(Syscall::SpawnThread, 0, 0, 0);
        // The first has exited (a zombie until someone reaps it).
        s2.sleep(Duration::from_millis(400)).await;
        (first, dropped_child())
    }))
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(reaped(pids.0) && reaped(pids.1)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        reaped(pids.0),
        "the child dropped while no thread could start is a zombie"
    );
    assert!(reaped(pids.1), "the later child was not reaped");
    s.shutdown();
}
