//! Helpers shared by the integration tests that run bodies as tasks.
// Each test binary uses some of them.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use coro_core::sync_wait;
use coro_io::IoScheduler;

/// Run `body` as a task of `s` and wait for it, at most 20 s (a hang fails
/// the test instead of stalling the suite).
pub(crate) fn run<T: Send + 'static>(
    s: &IoScheduler,
    body: impl Future<Output = T> + Send + 'static,
) -> T {
    let h = s.spawn(body);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(sync_wait(h));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("test body did not finish within 20s")
        .expect("test body panicked")
}

/// Whether our child `pid` is gone: exited and reaped. A zombie keeps its
/// `/proc` entry; a reused pid, or a thread id, is not our child (its
/// parent, field 4 of `stat`, is someone else).
pub(crate) fn reaped(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // The fields after the command name, which is in parentheses.
    let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
    let ppid: u32 = after
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    ppid != std::process::id()
}

/// Spawn `n` children running `sleep secs` on the current scheduler and
/// drop them while they run (not killed: the reaper's to reap); their pids.
pub(crate) fn dropped_sleepers(n: usize, secs: &str) -> Vec<u32> {
    (0..n)
        .map(|_| {
            let child = coro_io::process::Command::new("sleep")
                .arg(secs)
                .stdin(std::process::Stdio::null())
                .spawn()
                .unwrap();
            child.id()
        })
        .collect()
}

/// `SIGKILL` every one of `pids` that still runs.
pub(crate) fn kill_all(pids: &[u32]) {
    for &pid in pids {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
}
