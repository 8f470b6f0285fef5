//! A warning the library prints (`coro_io::report`, the path of every
//! warning of coro-io and coro-net) must not panic when stderr cannot be
//! written: a closed pipe (a `| head` that exited, a restarted journald)
//! or a full disk. `eprintln!` panics then, and the first `EMFILE` on
//! `accept` would have killed the accept loop with its one-time warning.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn a_warning_to_a_closed_stderr_does_not_panic() {
    if std::env::var_os("CORO_REPORT_CHILD").is_some() {
        coro_io::report("test", format_args!("a warning nobody can read"));
        coro_io::report("test", format_args!("and another"));
        return;
    }
    // A pipe whose read end is closed: writes fail with EPIPE (Rust
    // ignores SIGPIPE).
    let (r, w) = rustix::pipe::pipe().unwrap();
    drop(r);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_warning_to_a_closed_stderr_does_not_panic",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CORO_REPORT_CHILD", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(w))
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the child did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "{status}: {out}");
    assert!(out.contains("1 passed"), "{out}");
}
