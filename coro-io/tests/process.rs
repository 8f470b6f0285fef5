//! `coro_io::process` on every driver configuration: exit statuses, piped
//! streams both ways, waits raced against timeouts, kill, kill-on-drop and
//! background reaping, many children at once, clear spawn errors.

mod common;

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{reaped, run};
use coro_io::IoScheduler;
use coro_io::process::Command;
use coro_io::testing::Config;
use futures::io::{AsyncReadExt, AsyncWriteExt};

coro_io::driver_tests!(
    output_captures_both_streams_and_the_status,
    wait_with_output_reads_both_pipes_past_their_buffers,
    stdin_and_stdout_pipes_carry_a_megabyte,
    wait_raced_against_a_timeout_loses_nothing,
    kill_ends_a_child,
    dropped_children_are_reaped,
    many_children_at_once,
    spawn_errors_name_the_program,
    dropped_stdin_delivers_what_was_written,
    output_then_status_on_one_command,
    wait_after_shutdown_returns,
    wait_closes_a_piped_stdin,
    a_child_pipe_feeds_another_command,
    a_stdin_write_with_a_spent_budget_takes_nothing,
    a_stdin_write_reaches_the_child_while_the_parent_reads,
);

/// A task that spent its coop budget: `ChildStdin::poll_write` took the
/// bytes and reported them written with the write op never started, and
/// a parent that then waited for the child's answer waited for ever.
fn a_stdin_write_with_a_spent_budget_takes_nothing(cfg: Config) {
    use coro_io::coop;
    use futures::io::AsyncWrite;
    use std::pin::Pin;
    use std::task::{Context, Waker};
    let s = cfg.sched();
    let s2 = s.clone();
    run(&s, async move {
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let spent = {
            let mut cx = Context::from_waker(Waker::noop());
            coop::budgeted(|| {
                for _ in 0..coop::BUDGET {
                    coop::consume();
                }
                Pin::new(&mut stdin).poll_write(&mut cx, b"ping\n")
            })
        };
        assert!(
            spent.is_pending(),
            "{cfg}: took bytes it did not start writing: {spent:?}"
        );
        // A write that returned reaches the child with no further call
        // on stdin.
        stdin.write_all(b"ping\n").await.unwrap();
        let mut buf = [0u8; 5];
        s2.timeout(Duration::from_secs(5), stdout.read_exact(&mut buf))
            .await
            .expect("the child never got its input")
            .unwrap();
        assert_eq!(&buf, b"ping\n");
        drop(stdin);
        assert!(child.wait().await.unwrap().success());
    });
    s.shutdown();
}

/// More than the pipe holds, written while the child is not reading yet,
/// then the parent reads the answer without a flush (as tokio code does):
/// on epoll the last chunk found the pipe full, was reported written, and
/// nothing ran its write again while the parent waited on stdout.
fn a_stdin_write_reaches_the_child_while_the_parent_reads(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    run(&s, async move {
        let mut child = sh("sleep 0.3; head -c 100000 | wc -c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let writer = s2.spawn(async move {
            stdin.write_all(&[b'x'; 100_000]).await.unwrap();
            stdin
        });
        let mut out = String::new();
        s2.timeout(Duration::from_secs(10), stdout.read_to_string(&mut out))
            .await
            .expect("the last chunk never reached the child")
            .unwrap();
        assert_eq!(out.trim(), "100000", "{cfg}");
        drop(writer.await.unwrap());
        assert!(child.wait().await.unwrap().success());
    });
    s.shutdown();
}

/// A pipeline: one child's stdout as the next one's stdin, as tokio's
/// `TryInto<Stdio>` gives. The fd is blocking again for the next child
/// (the only way before, a dup of the fd, kept `O_NONBLOCK`: `cat` read
/// `EAGAIN` and failed). A pipe holding bytes read ahead is refused.
fn a_child_pipe_feeds_another_command(cfg: Config) {
    let s = cfg.sched();
    run(&s, async move {
        let mut first = sh("sleep 0.2; echo hi")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = first.stdout.take().unwrap();
        let stdin = Stdio::try_from(out).unwrap();
        let got = Command::new("cat").stdin(stdin).output().await.unwrap();
        assert!(got.status.success(), "{cfg}: {got:?}");
        assert_eq!(got.stdout, b"hi\n", "{cfg}");
        assert!(first.wait().await.unwrap().success());
        // Taken in place: the pipe left behind reads as ended, so
        // `wait_with_output` still gets the status (it read fd -1: EBADF).
        let mut first = sh("echo hi").stdout(Stdio::piped()).spawn().unwrap();
        let fd = first.stdout.as_mut().unwrap().take_owned_fd().unwrap();
        let got = Command::new("cat")
            .stdin(Stdio::from(fd))
            .output()
            .await
            .unwrap();
        assert_eq!(got.stdout, b"hi\n", "{cfg}");
        let rest = first.wait_with_output().await.unwrap();
        assert!(rest.status.success(), "{cfg}");
        assert!(rest.stdout.is_empty(), "{cfg}");
        // Bytes read ahead would be lost: refused, and the pipe keeps
        // them; once they are read, it can be handed on.
        let mut second = sh("echo hello").stdout(Stdio::piped()).spawn().unwrap();
        let mut out = second.stdout.take().unwrap();
        let mut one = [0u8; 1];
        out.read_exact(&mut one).await.unwrap();
        let e = out.take_owned_fd().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{cfg}: {e}");
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"ello\n", "{cfg}");
        assert!(out.take_owned_fd().is_ok(), "{cfg}");
        assert!(second.wait().await.unwrap().success());
    });
    s.shutdown();
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]).stdin(Stdio::null());
    c
}

fn output_captures_both_streams_and_the_status(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    run(&s, async move {
        let out = sh("echo out; echo err >&2; exit 3").output().await.unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let st = sh("exit 0").status().await.unwrap();
        assert!(st.success());
        // Pidfd and pipe registrations are gone with their waits and pipes.
        assert_eq!(s2.metrics().registered_fds, 0);
    });
    s.shutdown();
}

fn stdin_and_stdout_pipes_carry_a_megabyte(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    run(&s, async move {
        let data: Vec<u8> = (0..(1 << 20) + 333u32).map(|i| (i % 253) as u8).collect();
        let mut child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let mut stdout = child.stdout.take().unwrap();
        // More than a pipe holds: writer and reader must run together.
        let feed = data.clone();
        let writer = s2.spawn(async move {
            for chunk in feed.chunks(10_000) {
                stdin.write_all(chunk).await.unwrap();
            }
            stdin.close().await.unwrap();
        });
        let mut got = Vec::new();
        stdout.read_to_end(&mut got).await.unwrap();
        writer.await.unwrap();
        assert!(got == data, "cat returned other bytes");
        assert!(child.wait().await.unwrap().success());
    });
    s.shutdown();
}

fn wait_raced_against_a_timeout_loses_nothing(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    run(&s, async move {
        // The child exits only once its stdin closes, so it is still
        // running when the timeout fires, however late this task runs (a
        // child that slept 200 ms could exit first on a loaded machine).
        let mut child = sh("read _; exit 7").stdin(Stdio::piped()).spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        assert!(child.try_wait().unwrap().is_none());
        // The wait loses to the timeout and is dropped: nothing is reaped.
        assert!(
            s2.timeout(Duration::from_millis(20), child.wait())
                .await
                .is_err()
        );
        assert!(child.try_wait().unwrap().is_none());
        // The child exits while the next wait is pending.
        let closer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(stdin);
        });
        let t = Instant::now();
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
        closer.join().unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        // Waiting again returns the same status.
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
    });
    s.shutdown();
}

fn kill_ends_a_child(cfg: Config) {
    let s = cfg.sched();
    run(&s, async {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let t = Instant::now();
        child.kill().await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
        // Killing an exited child is fine.
        child.start_kill().unwrap();
    });
    s.shutdown();
}

fn dropped_children_are_reaped(cfg: Config) {
    let s = cfg.sched();
    let (killed, finished) = run(&s, async {
        let killed = Command::new("sleep")
            .arg("30")
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let finished = sh("sleep 0.05").spawn().unwrap();
        (killed.id(), finished.id())
        // Both dropped here, neither waited for.
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(reaped(killed) && reaped(finished)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(reaped(killed), "kill_on_drop child {killed} still there");
    assert!(reaped(finished), "dropped child {finished} never reaped");
    s.shutdown();
}

fn many_children_at_once(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    run(&s, async move {
        let hs: Vec<_> = (0..24)
            .map(|i| {
                s2.spawn(async move {
                    let out = sh(&format!("echo {i}; exit {}", i % 4))
                        .output()
                        .await
                        .unwrap();
                    assert_eq!(out.stdout, format!("{i}\n").as_bytes());
                    assert_eq!(out.status.code(), Some(i % 4));
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    s.shutdown();
}

fn spawn_errors_name_the_program(cfg: Config) {
    let s = cfg.sched();
    run(&s, async {
        let e = Command::new("/nonexistent/coro-no-such-program")
            .spawn()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("coro-no-such-program"), "{e}");
        // A missing working directory fails the same way (ENOENT): the
        // error names it too (it named only `sh`, which exists).
        let e = Command::new("sh")
            .current_dir("/nonexistent/coro-no-such-dir")
            .spawn()
            .unwrap_err();
        assert!(e.to_string().contains("coro-no-such-dir"), "{e}");
    });
    s.shutdown();
}

#[test]
fn spawn_outside_a_scheduler_panics_clearly() {
    let r = std::panic::catch_unwind(|| Command::new("true").spawn().map(drop));
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("Command::spawn"), "{msg}");
    assert!(msg.contains("spawn_on"), "{msg}");
}

/// `spawn_on` works from a plain thread, waited for by another executor.
#[test]
fn spawn_on_from_a_plain_thread() {
    let s = IoScheduler::new(Default::default()).unwrap();
    let mut child = sh("exit 5").spawn_on(&s).unwrap();
    let st = futures::executor::block_on(child.wait()).unwrap();
    assert_eq!(st.code(), Some(5));
    s.shutdown();
}

/// `write_all` then drop (no flush, no close), as tokio code often does:
/// the child still reads every byte, then end of input.
fn dropped_stdin_delivers_what_was_written(cfg: Config) {
    let s = cfg.sched();
    run(&s, async {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 241) as u8).collect();
        let mut child = Command::new("wc")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&data).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200000");
    });
    s.shutdown();
}

/// `wait` with the piped stdin still held closes it first, as std's and
/// tokio's do: a child reading its input to the end (`cat`, `sort`)
/// exits, after reading what was written, instead of waiting for ever.
fn wait_closes_a_piped_stdin(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    run(&s, async move {
        let mut child = sh("wc -c >&2; exit 7")
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .as_mut()
            .unwrap()
            .write_all(&[b'x'; 100_000])
            .await
            .unwrap();
        let status = s2
            .timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("the child waited for the end of its input")
            .unwrap();
        assert_eq!(status.code(), Some(7));
        assert!(child.stdin.is_none());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        assert_eq!(err.trim(), "100000");
    });
    s.shutdown();
}

/// `output` supplies its pipes for that run only: a `status` after it on
/// the same `Command` inherits stdout again (a piped one, dropped by
/// `status`, would kill a writing child with SIGPIPE), and a stream the
/// caller set is kept.
fn output_then_status_on_one_command(cfg: Config) {
    let s = cfg.sched();
    run(&s, async {
        let mut c = Command::new("sh");
        c.args(["-c", "echo out; echo err >&2"])
            .stderr(Stdio::null());
        let out = c.output().await.unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"", "stderr was set to null by the caller");
        let mut c = sh("yes | head -c 1000000; exit 4");
        assert_eq!(c.output().await.unwrap().stdout.len(), 1_000_000);
        c.stdout(Stdio::null());
        assert_eq!(c.status().await.unwrap().code(), Some(4));
    });
    s.shutdown();
}

/// A child spawned on a scheduler that then shuts down can still be waited
/// for (from another executor): no error loop, no hang.
fn wait_after_shutdown_returns(cfg: Config) {
    let s = cfg.sched();
    let mut child = sh("sleep 0.3; exit 6").spawn_on(&s).unwrap();
    s.shutdown();
    let cpu = || rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let (t, cpu0) = (Instant::now(), cpu());
    let st = futures::executor::block_on(child.wait()).unwrap();
    assert_eq!(st.code(), Some(6));
    assert!(t.elapsed() < Duration::from_secs(5));
    // It waited, it did not spin on polls that fail at once.
    let used = cpu();
    let used_ms = (used.tv_sec - cpu0.tv_sec) * 1000 + (used.tv_nsec - cpu0.tv_nsec) / 1_000_000;
    assert!(used_ms < 100, "the wait burnt {used_ms} ms of CPU");
}

/// Threads of this process blocked in `waitid` now (what a blocking-pool
/// wait for a child does; idle pool threads, which other tests leave
/// behind and the pool reuses, do not count).
fn threads_in_waitid() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("syscall")).ok())
        .filter(|s| s.split_whitespace().next() == Some(&libc::SYS_waitid.to_string()))
        .count()
}

/// Kills the child `pid` when dropped (a failed assertion leaves no
/// `sleep 30` behind).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// After its scheduler shut down, a child is waited for on the blocking
/// pool. A `wait()` dropped by a timeout must leave that wait to the next
/// call, not start another: a supervisor polling a long-lived child with
/// a timeout held one more pool thread per call until the child exited.
#[test]
fn waits_after_shutdown_cut_off_by_timeouts_share_one_pool_thread() {
    let a = IoScheduler::new(Default::default()).unwrap();
    let mut child = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn_on(&a)
        .unwrap();
    let _kill = KillOnDrop(child.id());
    a.shutdown();
    let b = IoScheduler::new(Default::default()).unwrap();
    let b2 = b.clone();
    let before = threads_in_waitid();
    let (mut child, grew) = run(&b, async move {
        for _ in 0..20 {
            assert!(
                b2.timeout(Duration::from_millis(5), child.wait())
                    .await
                    .is_err(),
                "sleep 30 exited"
            );
        }
        // The cut-off waits' jobs may still be on their way into waitid.
        let mut grew = 0;
        for _ in 0..50 {
            grew = grew.max(threads_in_waitid().saturating_sub(before));
            std::thread::sleep(Duration::from_millis(10));
        }
        child.start_kill().unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(9));
        (child, grew)
    });
    assert!(
        grew < 10,
        "20 cut-off waits left {grew} pool threads in waitid"
    );
    assert_eq!(child.try_wait().unwrap().unwrap().signal(), Some(9));
    b.shutdown();
}

/// A child that writes a megabyte to stdout and then a megabyte to
/// stderr: `wait_with_output` reads both pipes at once (a reader of one
/// after the other would leave the child blocked on the full second pipe,
/// and both waiting for ever).
fn wait_with_output_reads_both_pipes_past_their_buffers(cfg: Config) {
    let s = cfg.sched();
    let s2 = s.clone();
    run(&s, async move {
        let child = sh("head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2; exit 3")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = s2
            .timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("{cfg}: wait_with_output hung on the full pipes"))
            .unwrap();
        assert_eq!(out.status.code(), Some(3), "{cfg}");
        assert_eq!(out.stdout.len(), 1_000_000, "{cfg}");
        assert_eq!(out.stderr.len(), 1_000_000, "{cfg}");
    });
    s.shutdown();
}
