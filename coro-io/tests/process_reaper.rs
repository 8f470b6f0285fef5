//! Children dropped while they run are reaped without a thread each: more
//! of them than the blocking pool has threads leave the pool free. Its own
//! binary: the blocking pool is process-wide.

mod common;

use std::time::{Duration, Instant};

use common::{dropped_sleepers, kill_all, reaped};
use coro_core::sync_wait;
use coro_io::IoScheduler;
use coro_io::blocking::{MAX_THREADS, spawn_blocking};
use coro_io::process::Command;
use std::process::Stdio;

#[test]
fn dropped_running_children_hold_no_blocking_thread() {
    let s = IoScheduler::new(Default::default()).unwrap();
    let n = MAX_THREADS + 8;
    let s2 = s.clone();
    let pids = sync_wait(s.spawn(async move {
        let pids = dropped_sleepers(n, "30");
        // The pool still takes work at once.
        let r = s2
            .timeout(Duration::from_secs(5), spawn_blocking(|| 7))
            .await;
        (pids, r.map(|j| j.unwrap()))
    }))
    .unwrap();
    let (pids, r) = pids;
    // Few of them hold an fd (a pidfd each, all of them, used to: a
    // service dropping many long-lived children ran out of fds).
    let pidfds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("pidfd"))
        .count();
    kill_all(&pids);
    assert_eq!(r.ok(), Some(7), "the blocking pool was full of reapers");
    assert!(
        pidfds <= 64,
        "{n} dropped running children hold {pidfds} pidfds"
    );
    // And every one of them is still reaped once it exits.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !pids.iter().all(|&p| reaped(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = pids.iter().filter(|&&p| !reaped(p)).count();
    assert_eq!(left, 0, "{left} dropped children were never reaped");
    s.shutdown();
}

/// Without pidfds (an old kernel, a sandbox): a wait still ends when the
/// child exits, a wait dropped by a timeout holds no thread, and a
/// dropped running child is still reaped when it exits.
#[cfg(feature = "fault-injection")]
#[test]
fn without_pidfds_waits_end_and_dropped_children_are_reaped() {
    coro_io::fault::no_pidfds(true);
    let s = IoScheduler::new(Default::default()).unwrap();
    let s2 = s.clone();
    let (quick, dropped) = sync_wait(s.spawn(async move {
        let mut quick = Command::new("sh")
            // Long enough that the 20 ms timeout below fires first even
            // when a loaded machine runs its timer late.
            .args(["-c", "sleep 1; exit 4"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        // A wait cut off by a timeout, then one that sees the exit.
        assert!(
            s2.timeout(Duration::from_millis(20), quick.wait())
                .await
                .is_err()
        );
        let status = s2
            .timeout(Duration::from_secs(10), quick.wait())
            .await
            .expect("the wait never saw the exit")
            .unwrap();
        assert_eq!(status.code(), Some(4));
        let dropped = Command::new("sh")
            .args(["-c", "sleep 0.2"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        // Waits cut off by a timeout hold no thread either: more of them
        // than the pool has threads, and the pool still takes work.
        let mut long = Vec::new();
        for _ in 0..MAX_THREADS + 8 {
            let mut c = Command::new("sleep")
                .arg("30")
                .stdin(Stdio::null())
                .spawn()
                .unwrap();
            assert!(
                s2.timeout(Duration::from_millis(1), c.wait())
                    .await
                    .is_err()
            );
            long.push(c);
        }
        let r = s2
            .timeout(Duration::from_secs(5), spawn_blocking(|| 7))
            .await;
        for c in &mut long {
            c.start_kill().unwrap();
        }
        for mut c in long {
            c.wait().await.unwrap();
        }
        assert_eq!(
            r.ok().map(|j| j.unwrap()),
            Some(7),
            "timed-out waits held the pool"
        );
        (quick.id(), dropped.id())
    }))
    .unwrap();
    coro_io::fault::no_pidfds(false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(reaped(quick) && reaped(dropped)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        reaped(quick) && reaped(dropped),
        "a child was left a zombie"
    );
    s.shutdown();
}
