//! While the process-wide reaper cannot start its thread (`EAGAIN` at a
//! thread limit), blocking-pool jobs reap the children dropped while they
//! run, one job at a time for all of them: the pool's thread is not held
//! by each child for its life.
//! Its own binary: the reaper and the blocking pool are process-wide.
#![cfg(feature = "fault-injection")]

mod common;

use std::time::{Duration, Instant};

use common::{dropped_sleepers, kill_all, reaped};
use coro_core::sync_wait;
use coro_io::IoScheduler;
use coro_io::blocking::spawn_blocking;
use coro_io::fault::{self, Syscall};

/// The process's fds of event loops: rings, eventfds, epoll instances
/// (not the reaper's pidfds).
fn loop_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| {
            let l = l.to_string_lossy();
            l.contains("io_uring") || l.contains("eventfd") || l.contains("eventpoll")
        })
        .count()
}

#[test]
fn while_the_reaper_cannot_start_pool_jobs_reap_without_a_thread_per_child() {
    let before = loop_fds();
    let s = IoScheduler::new(Default::default()).unwrap();
    let s2 = s.clone();
    let pids = sync_wait(s.spawn(async move {
        // The pool has a thread; from now on no new thread starts.
        spawn_blocking(|| ()).await.unwrap();
        fault::fail_syscall(Syscall::SpawnThread, 0, u32::MAX, libc::EAGAIN);
        let pids = dropped_sleepers(8, "30");
        // The pool's one thread still runs another job while they live
        // (before, the first child's wait took it for 30 s).
        let r = s2
            .timeout(Duration::from_secs(5), spawn_blocking(|| 7))
            .await;
        (pids, r.ok().map(|j| j.unwrap()))
    }))
    .unwrap();
    let (pids, r) = pids;
    // The jobs reaping meanwhile hold no scheduler: the one the children
    // were dropped in is gone with its fds once shut down, while they run.
    s.shutdown();
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while loop_fds() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let held = loop_fds().saturating_sub(before);
    kill_all(&pids);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pids.iter().all(|&p| reaped(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = pids.iter().filter(|&&p| !reaped(p)).count();
    fault::fail_syscall(Syscall::SpawnThread, 0, 0, 0);
    assert_eq!(
        left, 0,
        "{left} children dropped while no thread could start are zombies"
    );
    assert_eq!(r, Some(7), "the pool's thread was held");
    assert_eq!(held, 0, "the reaping jobs kept the scheduler's fds");
}
