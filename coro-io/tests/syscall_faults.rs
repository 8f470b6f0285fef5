//! Error handlers that only a kernel short of memory, watches or threads
//! reaches, forced with `fault::fail_syscall`: each failure must reach
//! the caller as an error or be retried, never hang an op, lose a
//! wake-up or leak a thread or fd. The faults are process-wide, so this
//! binary's tests take turns (`serial`), and none of them but the
//! blocking-pool test uses the blocking pool (whose threads outlive a
//! test and would hide a failed spawn from the next).
#![cfg(feature = "fault-injection")]

use std::future::Future;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::Duration;

use coro_io::driver::Interest;
use coro_io::fault::{self, Syscall};
use coro_io::testing::{self, Config};
use coro_io::{IoScheduler, PollOp, PollStatus};

/// One test at a time (the faults are process-wide); the guard also turns
/// every fault off when the test ends, failed or not.
fn serial() -> impl Drop {
    static TURN: Mutex<()> = Mutex::new(());
    struct Off(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);
    impl Drop for Off {
        fn drop(&mut self) {
            for call in [
                Syscall::Enter,
                Syscall::EpollCtl,
                Syscall::EpollWait,
                Syscall::RegisterBufRing,
                Syscall::SpawnThread,
                Syscall::ForeignSubmit,
            ] {
                fault::fail_syscall(call, 0, 0, 0);
            }
        }
    }
    Off(TURN.lock().unwrap_or_else(|e| e.into_inner()))
}

/// `h`'s output, or a panic naming `what` if it takes more than 10 s
/// (bounded by a plain thread: a timer of the scheduler under test would
/// wake its loop and hide a lost wake-up).
fn within<T: Send + 'static>(h: coro_io::JoinHandle<T>, what: &str) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(coro_core::sync_wait(h));
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(r) => r.unwrap_or_else(|e| panic!("{what}: the task failed: {e}")),
        Err(_) => panic!("{what}: hung"),
    }
}

/// Once `count()` is at most `at_most`, or after five seconds: its last
/// value. (At most: a blocking-pool thread of an earlier test may exit
/// meanwhile; what a failure leaks shows as more.)
fn settled(count: impl Fn() -> usize, at_most: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = count();
        if n <= at_most || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Threads of this process that the scheduler or pool under test would
/// leave behind (by name: libtest's and other helpers come and go).
fn threads() -> usize {
    let dir = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    dir.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| {
            let name = name.trim_end();
            name == "coro-io" || name.starts_with("coro-pool") || name.starts_with("sysfault")
        })
        .count()
}

const EPOLL_CONFIGS: [Config; 4] = [
    Config::EPOLL,
    Config::EPOLL_POOL,
    Config::EPOLL_MANUAL,
    Config::EPOLL_MANUAL_POOL,
];

fn uring_configs() -> impl Iterator<Item = Config> {
    Config::ALL
        .into_iter()
        .filter(|c| c.driver == coro_io::DriverKind::IoUring)
}

#[test]
fn a_refused_epoll_registration_reaches_the_caller_and_the_fd_registers_later() {
    let _turn = serial();
    for cfg in EPOLL_CONFIGS {
        for errno in [libc::ENOSPC, libc::ENOMEM] {
            let s = cfg.sched();
            let (a, mut b) = UnixStream::pair().unwrap();
            let fd = a.as_raw_fd();
            fault::fail_syscall(Syscall::EpollCtl, 0, 1, errno);
            let s2 = s.clone();
            let got = within(
                s.spawn(async move { coro_io::op::poll_fd(s2.driver(), fd, Interest::Read).await }),
                "a wait whose registration failed",
            );
            assert_eq!(
                got.err().and_then(|e| e.raw_os_error()),
                Some(errno),
                "{cfg}: the registration's error, with its errno"
            );
            // Nothing half-registered stays behind: the next wait of the
            // same fd registers and is woken.
            let s2 = s.clone();
            let waiting = s.spawn(async move { s2.poll(&a, PollOp::Read, None).await });
            std::thread::sleep(Duration::from_millis(20));
            b.write_all(b"x").unwrap();
            assert_eq!(
                within(waiting, "the wait after"),
                PollStatus::Event,
                "{cfg}"
            );
            s.shutdown();
        }
    }
}

#[test]
fn failed_epoll_waits_are_retried_and_lose_no_wake_up() {
    let _turn = serial();
    for cfg in EPOLL_CONFIGS {
        for errno in [libc::EINTR, libc::EBADF] {
            let s = cfg.sched();
            let (a, mut b) = UnixStream::pair().unwrap();
            let s2 = s.clone();
            let waiting = s.spawn(async move { s2.poll(&a, PollOp::Read, None).await });
            std::thread::sleep(Duration::from_millis(20));
            // The loop is blocked in its wait now: the next three fail (a
            // hard error pauses the loop 10 ms each time), and the byte
            // written meanwhile must still wake the task.
            fault::fail_syscall(Syscall::EpollWait, 0, 3, errno);
            s.driver().unpark();
            b.write_all(b"x").unwrap();
            assert_eq!(
                within(waiting, "a wait across failed epoll_waits"),
                PollStatus::Event,
                "{cfg}"
            );
            fault::fail_syscall(Syscall::EpollWait, 0, 0, 0);
            s.shutdown();
        }
    }
}

/// Not on SQPOLL rings, where the kernel's thread submits whatever the
/// loop's enter does. On pool rings only the first wait goes through the
/// failing enters (workers submit the second themselves).
#[test]
fn failed_io_uring_enters_are_retried_and_lose_no_op() {
    let _turn = serial();
    for cfg in uring_configs().filter(|c| !c.sqpoll) {
        for errno in [libc::EBUSY, libc::EAGAIN, libc::EINTR, libc::ENOMEM] {
            let s = cfg.sched();
            let (a, mut b) = UnixStream::pair().unwrap();
            let (c, mut d) = UnixStream::pair().unwrap();
            let s2 = s.clone();
            let first = s.spawn(async move { s2.poll(&a, PollOp::Read, None).await });
            std::thread::sleep(Duration::from_millis(20));
            // The loop's next enters fail and submit nothing: the entries
            // staged meanwhile (a second wait) stay queued for a later one.
            fault::fail_syscall(Syscall::Enter, 0, 3, errno);
            let s2 = s.clone();
            let second = s.spawn(async move { s2.poll(&c, PollOp::Read, None).await });
            b.write_all(b"x").unwrap();
            d.write_all(b"y").unwrap();
            assert_eq!(
                within(first, "a wait in flight across failed enters"),
                PollStatus::Event,
                "{cfg} errno {errno}"
            );
            assert_eq!(
                within(second, "a wait submitted across failed enters"),
                PollStatus::Event,
                "{cfg} errno {errno}"
            );
            fault::fail_syscall(Syscall::Enter, 0, 0, 0);
            s.shutdown();
        }
    }
}

#[test]
fn a_refused_provided_buffer_ring_leaves_one_receive_per_read() {
    let _turn = serial();
    for cfg in Config::DRIVERS
        .into_iter()
        .filter(|c| c.uring().multishot_recv)
    {
        if cfg.driver != coro_io::DriverKind::IoUring {
            continue;
        }
        let queued = |refuse: bool| {
            if refuse {
                fault::fail_syscall(Syscall::RegisterBufRing, 0, 1, libc::ENOMEM);
            }
            let h = cfg.handle();
            fault::fail_syscall(Syscall::RegisterBufRing, 0, 0, 0);
            let (a, mut b) = UnixStream::pair().unwrap();
            a.set_nonblocking(true).unwrap();
            let reg = coro_io::driver::RegisteredFd::new(&h, a.into());
            b.write_all(b"ping").unwrap();
            // Read through whichever path the driver offers, parking it by
            // hand (a bare driver: nobody else does).
            let park = |cx: &mut std::task::Context<'_>| {
                h.park(Some(Duration::from_millis(1))).unwrap();
                cx.waker().wake_by_ref();
            };
            let mut out = [0u8; 8];
            let n = if reg.recv_queued() {
                futures::executor::block_on(std::future::poll_fn(|cx| {
                    let r = reg.poll_recv(cx, &mut out);
                    if r.is_pending() {
                        park(cx);
                    }
                    r
                }))
                .unwrap()
            } else {
                let mut recv = std::pin::pin!(coro_io::op::recv(&h, reg.raw(), vec![0u8; 8]));
                let (r, buf) = futures::executor::block_on(std::future::poll_fn(|cx| {
                    let r = recv.as_mut().poll(cx);
                    if r.is_pending() {
                        park(cx);
                    }
                    r
                }));
                let n = r.unwrap();
                out[..n].copy_from_slice(&buf[..n]);
                n
            };
            assert_eq!(&out[..n], b"ping", "{cfg}");
            reg.recv_queued()
        };
        assert!(queued(false), "{cfg}: the receive queue is on by default");
        assert!(!queued(true), "{cfg}: a refused ring leaves the queue off");
    }
}

#[test]
fn a_refused_thread_fails_the_pool_and_the_scheduler_cleanly() {
    let _turn = serial();
    let base_threads = threads();
    let base_fds = testing::open_fds();
    // A pool whose second worker cannot start: an error, and the first
    // worker is gone again.
    fault::fail_syscall(Syscall::SpawnThread, 1, 1, libc::EAGAIN);
    let r = coro_io::ThreadPool::try_new(coro_io::ThreadPoolOptions {
        thread_count: 3,
        thread_name: "sysfault".to_owned(),
        ..Default::default()
    });
    assert_eq!(r.err().and_then(|e| e.raw_os_error()), Some(libc::EAGAIN));
    assert!(
        settled(threads, base_threads) <= base_threads,
        "pool workers left behind"
    );
    // A scheduler whose loop thread cannot start (after its pool's two
    // workers did): an error, with neither a thread nor an fd left.
    for cfg in [
        Config::EPOLL,
        Config::EPOLL_POOL,
        Config::URING_DEFER,
        Config::URING_PLAIN_POOL,
    ] {
        let skip = if cfg.pool { 2 } else { 0 };
        fault::fail_syscall(Syscall::SpawnThread, skip, 1, libc::EAGAIN);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(
                IoScheduler::new(cfg.options())
                    .err()
                    .and_then(|e| e.raw_os_error()),
            );
        });
        let got = rx.recv_timeout(Duration::from_secs(10));
        assert_eq!(
            got.expect("IoScheduler::new hung"),
            Some(libc::EAGAIN),
            "{cfg}"
        );
        assert!(
            settled(threads, base_threads) <= base_threads,
            "{cfg}: threads left behind"
        );
        assert!(
            settled(testing::open_fds, base_fds) <= base_fds,
            "{cfg}: fds left behind"
        );
    }
}

#[test]
fn a_blocking_job_with_no_thread_to_run_it_is_cancelled_not_lost() {
    let _turn = serial();
    // Only this test uses the blocking pool, so it has no thread yet: the
    // job's spawn is its only hope.
    let s = Config::EPOLL.sched();
    let path = std::env::temp_dir().join(format!("coro-syscall-faults-{}", std::process::id()));
    std::fs::write(&path, b"data").unwrap();
    fault::fail_syscall(Syscall::SpawnThread, 0, 2, libc::EAGAIN);
    // A file read (epoll runs it on the blocking pool) fails instead of
    // waiting for a thread that never comes.
    let p = path.clone();
    let read = s.spawn(async move { coro_io::fs::read(&p).await });
    assert!(within(read, "a file read with no blocking thread").is_err());
    let job = coro_io::blocking::spawn_blocking(|| 7);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(coro_core::sync_wait(job));
    });
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("a blocking job hung");
    assert!(got.unwrap_err().is_cancelled());
    // Threads again: the same calls work.
    fault::fail_syscall(Syscall::SpawnThread, 0, 0, 0);
    assert_eq!(
        coro_core::sync_wait(coro_io::blocking::spawn_blocking(|| 7)).unwrap(),
        7
    );
    let p = path.clone();
    let read = s.spawn(async move { coro_io::fs::read(&p).await });
    assert_eq!(within(read, "a file read").unwrap(), b"data");
    let _ = std::fs::remove_file(&path);
    s.shutdown();
}
