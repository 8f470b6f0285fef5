//! `coro_io::fs` on every driver configuration, and on io_uring also as on
//! a kernel without the file-system opcodes (fault injection): path
//! helpers, errors that name the path, sequential `File` I/O through the
//! `futures_io` traits, and dropped opens that must not leak their fd.

mod common;

use std::io::{self, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::time::{Duration, Instant};

use common::run;
use coro_io::fs::{self, File, OpenOptions};
use coro_io::testing::Config;
use coro_io::{DriverKind, IoScheduler};
use futures::io::{AsyncBufReadExt, AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufReader};

coro_io::driver_tests!(
    a_settle_with_the_budget_spent_wakes_no_waiter_under_the_lock,
    a_fifo_files_received_bytes_survive_a_seek_and_a_write,
    a_file_on_a_socket_reads_and_writes_past_its_first_op,
    a_file_on_a_socket_dropped_with_a_write_in_flight_sends_it_all,
    from_std_goes_on_at_the_std_files_offset_and_into_std_hands_it_back,
    a_shutdown_with_a_fifo_open_pending_is_prompt,
    a_write_that_cannot_finish_is_given_up_at_shutdown,
    a_write_awaited_outside_at_shutdown_still_lands,
    a_panicking_waker_at_shutdown_does_not_strand_a_write_awaited_outside,
    a_dropped_write_at_right_before_shutdown_still_lands,
    a_write_behind_failure_reaches_every_waiter_and_the_next_flush,
    a_dropped_read_aheads_failure_is_not_a_seeks_or_a_writes,
    path_helpers_round_trip,
    path_helpers_without_uring_fs_opcodes,
    errors_keep_the_kind_and_name_the_path,
    sequential_read_write_seek,
    append_and_write_behind_errors,
    dropped_open_leaks_no_fd,
    dropped_file_finishes_its_write,
    a_fifo_reads_and_writes_in_sequence,
    op_offsets_past_i64_max_are_refused,
    a_read_at_of_an_empty_nonblocking_fifo_does_not_spin,
    opening_a_fifo_waits_for_its_peer,
    set_len_and_sync_all_come_after_the_write_in_flight,
    a_dropped_write_at_still_writes,
    a_write_with_a_spent_budget_still_starts,
    positional_writes_and_set_len_do_not_read_stale_read_ahead,
    positional_ops_come_after_the_write_behind,
);

/// As `a_write_awaited_outside_at_shutdown_still_lands`, with one more
/// op in flight at shutdown: a poll whose waker panics. Shutdown cancels
/// it and wakes it as it reaps; the panic went up through the reaping and
/// skipped the rest of it (io_uring), so the write's completion was never
/// reaped and its waiter waited for ever.
fn a_panicking_waker_at_shutdown_does_not_strand_a_write_awaited_outside(cfg: Config) {
    struct Panics;
    impl std::task::Wake for Panics {
        fn wake(self: std::sync::Arc<Self>) {
            panic!("this waker fails");
        }
    }
    let s = cfg.sched();
    let d = dir("panicw", cfg);
    let (p, mut keep) = full_fifo(&d);
    let (s2, p2) = (s.clone(), p.clone());
    let f = run(&s, async move { open_read_write(&s2, &p2).await });
    let f = std::sync::Arc::new(f);
    let (started_tx, started) = std::sync::mpsc::channel();
    let (done_tx, done) = std::sync::mpsc::channel();
    let f2 = f.clone();
    let writer = std::thread::spawn(move || {
        let r = futures::executor::block_on(async {
            let mut w = pin!(f2.write_at(b"tail".as_slice(), 0));
            assert!(futures::poll!(w.as_mut()).is_pending(), "the pipe is full");
            started_tx.send(()).unwrap();
            w.await.0
        });
        let _ = done_tx.send(());
        r
    });
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    // An idle pipe's poll, waiting with a waker that panics.
    let (idle_r, _idle_w) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::NONBLOCK | rustix::pipe::PipeFlags::CLOEXEC,
    )
    .unwrap();
    let mut poll = Box::pin(coro_io::op::poll_fd(
        s.driver(),
        std::os::fd::AsRawFd::as_raw_fd(&idle_r),
        coro_io::driver::Interest::Read,
    ));
    let waker = std::task::Waker::from(std::sync::Arc::new(Panics));
    let polled = poll
        .as_mut()
        .poll(&mut std::task::Context::from_waker(&waker));
    assert!(polled.is_pending(), "{cfg}");
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drain(&mut keep, 64 * 1024 + 4)
    });
    // (The panic is the waker's; shutdown reports it and goes on.)
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.shutdown()));
    let got = reader.join().unwrap();
    assert_eq!(
        got.len(),
        64 * 1024 + 4,
        "{cfg}: the write in flight did not land"
    );
    assert!(
        done.recv_timeout(Duration::from_secs(10)).is_ok(),
        "{cfg}: the write landed, but its waiter was never woken"
    );
    assert_eq!(writer.join().unwrap().unwrap(), 4, "{cfg}");
    drop(poll);
    drop(f);
    std::fs::remove_dir_all(&d).unwrap();
}

/// `File::write_at` polled once and dropped: its docs say the write still
/// completes. On io_uring with tasks on the loop's thread the entry was
/// still staged and the drop took it back (the kernel never saw it); on
/// pool execution the drop cancelled it, maybe before it ran.
fn a_dropped_write_at_still_writes(cfg: Config) {
    let s = cfg.sched();
    let d = dir("dropped-write-at", cfg);
    let (s2, p) = (s.clone(), d.join("f"));
    run(&s, async move {
        let f = File::create(&s2, &p).await.unwrap();
        for i in 0..20u64 {
            let mut w = pin!(f.write_at(b"hello".as_slice(), i * 5));
            let _ = futures::poll!(w.as_mut());
        }
        // The writes finish on their own, in any order (on epoll, blocking
        // pool threads run them side by side): wait for all, bounded.
        let want = b"hello".repeat(20);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read(&p).unwrap() != want && Instant::now() < deadline {
            s2.sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(std::fs::read(&p).unwrap(), want, "{cfg}");
        drop(f);
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// A task that spent its coop budget of ops in this poll: `write_at`
/// and `sync_all` polled once and dropped, and a write-behind that
/// returned, still start (they used to yield on the budget before
/// starting: the dropped ones never ran, the write-behind waited for the
/// `File`'s next call).
fn a_write_with_a_spent_budget_still_starts(cfg: Config) {
    let s = cfg.sched();
    let d = dir("budget-write", cfg);
    let (s2, p, q) = (s.clone(), d.join("f"), d.join("g"));
    run(&s, async move {
        let f = File::create(&s2, &p).await.unwrap();
        let mut g = File::create(&s2, &q).await.unwrap();
        let spend = || {
            for _ in 0..coro_io::coop::BUDGET {
                coro_io::coop::consume();
            }
        };
        // Each in one poll of this task whose budget is spent.
        futures::future::poll_fn(|cx| {
            spend();
            let mut w = pin!(f.write_at(b"hello".as_slice(), 0));
            let _ = w.as_mut().poll(cx);
            spend();
            let mut y = pin!(f.sync_all());
            let _ = y.as_mut().poll(cx);
            spend();
            let _ = pin!(g.write_all(b"world")).as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        // Not a call on `f` or `g` from here: each write runs on its own.
        let deadline = Instant::now() + Duration::from_secs(10);
        let done =
            || std::fs::read(&p).unwrap() == b"hello" && std::fs::read(&q).unwrap() == b"world";
        while !done() && Instant::now() < deadline {
            s2.sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"hello", "{cfg}: write_at");
        assert_eq!(std::fs::read(&q).unwrap(), b"world", "{cfg}: write-behind");
        g.flush().await.unwrap();
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// Sequential reads fetch ahead; a `write_at` over bytes fetched and a
/// `set_len` that cuts them off are seen by the next sequential read (it
/// handed out the old bytes, as if the file had not changed).
fn positional_writes_and_set_len_do_not_read_stale_read_ahead(cfg: Config) {
    let s = cfg.sched();
    let d = dir("stale-ahead", cfg);
    let (s2, p) = (s.clone(), d.join("f"));
    run(&s, async move {
        let mut f = File::create(&s2, &p).await.unwrap();
        f.write_all(b"0123456789").await.unwrap();
        f.flush().await.unwrap();
        f.seek(SeekFrom::Start(0)).await.unwrap();
        let mut one = [0u8; 1];
        f.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"0");
        // A write outside the bytes fetched keeps them.
        let (r, _) = f.write_at(b"Z".as_slice(), 20).await;
        r.unwrap();
        let (r, _) = f.write_at(b"X".as_slice(), 1).await;
        r.unwrap();
        f.read_exact(&mut one).await.unwrap();
        assert_eq!(&one, b"X", "{cfg}: a stale read-ahead after write_at");
        f.set_len(3).await.unwrap();
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"2", "{cfg}: bytes cut off by set_len");
        assert_eq!(f.stream_position().await.unwrap(), 3);
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// `read_at` and `write_at` right after `write_all` (whose last write is
/// still in flight): the read sees the bytes, and the positional write
/// is not overtaken by the older one (on epoll both ran as blocking-pool
/// jobs side by side, in any order).
fn positional_ops_come_after_the_write_behind(cfg: Config) {
    let s = cfg.sched();
    let d = dir("positional-after", cfg);
    let (s2, p) = (s.clone(), d.join("f"));
    run(&s, async move {
        let mut f = File::create(&s2, &p).await.unwrap();
        for i in 0..40 {
            f.seek(SeekFrom::Start(0)).await.unwrap();
            f.write_all(&vec![b'A'; 256 << 10]).await.unwrap();
            let (r, got) = f.read_at(Vec::with_capacity(4), (256 << 10) - 4).await;
            r.unwrap();
            assert_eq!(got, b"AAAA", "{cfg}: round {i}: read_at missed the write");
            f.write_all(&vec![b'A'; 256 << 10]).await.unwrap();
            let (r, _) = f.write_at(vec![b'B'; 256 << 10], 256 << 10).await;
            r.unwrap();
            f.flush().await.unwrap();
            let all = std::fs::read(&p).unwrap();
            assert!(
                all[256 << 10..].iter().all(|&b| b == b'B'),
                "{cfg}: round {i}: the older write landed last"
            );
        }
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// `write_all` returns with its last write still in flight (write-behind);
/// `set_len` and `sync_all` come after it, as tokio's do: a truncate to 0
/// leaves an empty file (it used to race the write, which often landed
/// after it), and two tasks sharing the file both see `sync_all` through.
fn set_len_and_sync_all_come_after_the_write_in_flight(cfg: Config) {
    let s = cfg.sched();
    let d = dir("setlen", cfg);
    let (s2, p) = (s.clone(), d.join("f"));
    run(&s, async move {
        let data = pattern(256 << 10);
        let mut f = File::create(&s2, &p).await.unwrap();
        for i in 0..20 {
            f.write_all(&data).await.unwrap();
            f.set_len(0).await.unwrap();
            f.flush().await.unwrap();
            let len = std::fs::metadata(&p).unwrap().len();
            assert_eq!(
                len, 0,
                "{cfg}: round {i}: the write landed after the truncate"
            );
            f.seek(SeekFrom::Start(0)).await.unwrap();
        }
        f.write_all(&data).await.unwrap();
        let (a, b) = futures::join!(f.sync_all(), f.sync_all());
        a.unwrap();
        b.unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().len(), data.len() as u64);
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// The raw ops refuse an offset above `i64::MAX` as `fs::File` does: on
/// io_uring, -1 would mean "at the cursor" (a write over the file's start).
fn op_offsets_past_i64_max_are_refused(cfg: Config) {
    use std::os::fd::AsRawFd;
    let s = cfg.sched();
    let d = dir("bigoff", cfg);
    let p = d.join("f");
    std::fs::write(&p, b"0123456789").unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    let fd = f.as_raw_fd();
    let h = s.driver().clone();
    let (w, r) = run(&s, async move {
        let (w, _) = coro_io::op::write_at(&h, fd, b"x".to_vec(), u64::MAX).await;
        let (r, _) = coro_io::op::read_at(&h, fd, Vec::with_capacity(4), u64::MAX).await;
        (w.map_err(|e| e.kind()), r.map_err(|e| e.kind()))
    });
    assert_eq!(w, Err(io::ErrorKind::InvalidInput), "{cfg}: write_at");
    assert_eq!(r, Err(io::ErrorKind::InvalidInput), "{cfg}: read_at");
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b"0123456789",
        "{cfg}: nothing written"
    );
    drop(f);
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// `read_at` on an `O_NONBLOCK` FIFO with nothing in it: `EAGAIN` every
/// time on epoll's blocking pool. It must end (`WouldBlock`), not run
/// again and again. (io_uring's read waits for the FIFO's data instead:
/// there the test only checks that nothing spins on the pool.)
fn a_read_at_of_an_empty_nonblocking_fifo_does_not_spin(cfg: Config) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let s = cfg.sched();
    let d = dir("nbfifo", cfg);
    let p = d.join("fifo");
    mkfifo(&p);
    let r = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&p)
        .unwrap();
    // A writer that stays: reads see "no data yet", not the end.
    let w = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    let fd = r.as_raw_fd();
    let h = s.driver().clone();
    let h2 = h.clone();
    let before = h.blocking_ops();
    // epoll ends it (16 runs); io_uring's wait is cut short.
    let limit = if cfg.kind() == DriverKind::Epoll {
        Duration::from_secs(5)
    } else {
        Duration::from_millis(300)
    };
    let got = run(&s, async move {
        let read = coro_io::op::read_at(&h2, fd, Vec::with_capacity(8), 0);
        coro_io::timeout(limit, read)
            .await
            .ok()
            .map(|(res, _)| res.map_err(|e| e.kind()))
    });
    let jobs = h.blocking_ops() - before;
    assert!(
        jobs < 100,
        "{cfg}: {jobs} blocking-pool runs: the read spun"
    );
    if cfg.kind() == DriverKind::Epoll {
        assert_eq!(got, Some(Err(io::ErrorKind::WouldBlock)), "{cfg}: ends");
    } else if let Some(res) = got {
        assert_eq!(res, Err(io::ErrorKind::WouldBlock), "{cfg}");
    }
    drop((r, w));
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// `open(2)` of a FIFO for reading only or writing only waits until the
/// other end opens, as std's does: a reader whose writer comes late gets
/// the writer's bytes, not an empty file, and a writer whose reader comes
/// late writes, instead of failing with `ENXIO`. (io_uring tries an open
/// without blocking first, which on a FIFO does not wait for the writer;
/// the first read then does: io_uring's poll of the empty FIFO reports no
/// hang-up before a writer has come.)
fn opening_a_fifo_waits_for_its_peer(cfg: Config) {
    let s = cfg.sched();
    let d = dir("fifopeer", cfg);
    let p = d.join("fifo");
    mkfifo(&p);
    let late_writer = {
        let p = p.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::write(&p, b"late")
        })
    };
    let got = run(&s, fs::read(p.clone()));
    late_writer.join().unwrap().unwrap();
    assert_eq!(got.unwrap(), b"late", "{cfg}: read of a FIFO, writer late");
    // A FIFO of its own: on SQPOLL the kernel's thread puts its file
    // references late, so the first half's reading end could still count
    // as a reader, and the write find it gone (`EPIPE`).
    let p = d.join("fifo2");
    mkfifo(&p);
    let late_reader = {
        let p = p.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::read(&p)
        })
    };
    let wrote = run(&s, fs::write(p.clone(), b"early"));
    wrote.unwrap_or_else(|e| panic!("{cfg}: write to a FIFO, reader late: {e}"));
    assert_eq!(late_reader.join().unwrap().unwrap(), b"early", "{cfg}");
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// Make a FIFO at `p`, readable and writable by us.
fn mkfifo(p: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        p,
        rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
    )
    .unwrap();
}

/// A fresh directory for one test (removed by the caller).
fn dir(tag: &str, cfg: Config) -> PathBuf {
    let d = std::env::temp_dir().join(format!("coro-fs-{tag}-{}-{cfg}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// Every helper, checked against what `std::fs` sees. Returns how many
/// ops the driver ran on the blocking pool meanwhile.
async fn round_trip(s: IoScheduler, d: PathBuf) -> io::Result<u64> {
    let before = s.metrics().blocking_ops;
    let nested = d.join("a/b/c");
    fs::create_dir_all(&nested).await?;
    fs::create_dir_all(&nested).await?; // exists already: fine
    assert!(std::fs::metadata(&nested)?.is_dir());
    let data = pattern(300_000);
    let f = nested.join("data.bin");
    fs::write(&f, &data).await?;
    assert_eq!(std::fs::read(&f)?, data);
    assert_eq!(fs::read(&f).await?, data);
    let m = fs::metadata(&f).await?;
    assert_eq!((m.len(), m.is_file(), m.is_dir()), (300_000, true, false));
    let std_m = std::fs::metadata(&f)?;
    assert_eq!(m.modified()?, std_m.modified()?);
    assert_eq!(m.permissions(), std_m.permissions());
    assert!(fs::metadata(&nested).await?.is_dir());
    // Empty files and text.
    fs::write(d.join("empty"), b"").await?;
    assert_eq!(fs::read(d.join("empty")).await?, b"");
    fs::write(d.join("t.txt"), "héllo\n").await?;
    assert_eq!(fs::read_to_string(d.join("t.txt")).await?, "héllo\n");
    // A symlink: metadata follows it, symlink_metadata does not.
    std::os::unix::fs::symlink(&f, d.join("link"))?;
    assert!(fs::metadata(d.join("link")).await?.is_file());
    assert!(fs::symlink_metadata(d.join("link")).await?.is_symlink());
    // Rename over an existing file replaces it.
    fs::rename(d.join("t.txt"), d.join("empty")).await?;
    assert_eq!(std::fs::read(d.join("empty"))?, "héllo\n".as_bytes());
    assert!(!d.join("t.txt").exists());
    fs::remove_file(d.join("link")).await?;
    assert!(f.exists(), "removing a link keeps its target");
    fs::remove_file(&f).await?;
    fs::remove_dir(&nested).await?;
    assert!(!nested.exists());
    Ok(s.metrics().blocking_ops - before)
}

fn path_helpers_round_trip(cfg: Config) {
    let s = cfg.sched();
    let d = dir("rt", cfg);
    let pooled = run(&s, round_trip(s.clone(), d.clone())).unwrap();
    // io_uring has every opcode on the kernels coro runs on: nothing goes
    // to the blocking pool. epoll runs every file op there.
    match cfg.kind() {
        DriverKind::IoUring => assert_eq!(pooled, 0),
        _ => assert!(pooled > 10, "{pooled} blocking ops"),
    }
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// A file without a position (a FIFO; so are `/dev/stdin` in a pipeline
/// and a terminal): `fs::read` and `fs::write` work as std's do, on every
/// driver (epoll's positioned `pread`/`pwrite` fail there with `ESPIPE`;
/// io_uring ignores the offset).
fn a_fifo_reads_and_writes_in_sequence(cfg: Config) {
    let s = cfg.sched();
    let d = dir("fifo", cfg);
    let p = d.join("fifo");
    mkfifo(&p);
    // Into the FIFO from a thread, out of it with coro.
    let writer = {
        let p = p.clone();
        std::thread::spawn(move || std::fs::write(&p, pattern(100_000)))
    };
    let got = run(&s, fs::read(p.clone())).unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(got, pattern(100_000), "{cfg}");
    // Into it with coro, out of it from a thread. The reading end is open
    // before the write starts: the read end of the first half may still
    // count as a reader for a moment after its close (io_uring's kernel
    // threads put their file references late), so a reader that opened
    // later could find the write already failed with `EPIPE` (seen on
    // SQPOLL). Until a writer opens, a read finds end-of-file: read on to
    // the length.
    let reader = {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p)
            .unwrap();
        std::thread::spawn(move || {
            let (mut got, mut buf) = (Vec::new(), [0u8; 8192]);
            let t0 = std::time::Instant::now();
            while got.len() < 50_000 && t0.elapsed() < Duration::from_secs(30) {
                match f.read(&mut buf) {
                    Ok(0) => std::thread::sleep(Duration::from_millis(1)),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            got
        })
    };
    run(&s, fs::write(p.clone(), pattern(50_000))).unwrap();
    assert_eq!(reader.join().unwrap(), pattern(50_000), "{cfg}");
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// The same on an io_uring that lacks OPENAT/STATX/RENAMEAT/UNLINKAT/
/// MKDIRAT (as before Linux 5.15): those ops take the blocking pool and
/// nothing else changes. (On epoll the injection changes nothing.)
fn path_helpers_without_uring_fs_opcodes(cfg: Config) {
    let mut o = cfg.options();
    o.uring.inject_missing_fs_ops = true;
    let manual = matches!(o.thread_strategy, coro_io::ThreadStrategy::Manual);
    let s = IoScheduler::new(o).unwrap();
    if manual {
        let s = s.clone();
        std::thread::spawn(move || {
            while !s.is_shutdown() {
                s.process_events(Some(Duration::from_millis(10)));
            }
        });
    }
    let d = dir("noop", cfg);
    let pooled = run(&s, round_trip(s.clone(), d.clone())).unwrap();
    assert!(pooled > 10, "{pooled} blocking ops");
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

fn errors_keep_the_kind_and_name_the_path(cfg: Config) {
    let s = cfg.sched();
    let d = dir("err", cfg);
    let s2 = s.clone();
    let d2 = d.clone();
    run(&s, async move {
        let names = |e: &io::Error, p: &Path| {
            assert!(e.to_string().contains(&p.display().to_string()), "{e}");
        };
        let missing = d2.join("missing");
        for e in [
            fs::read(&missing).await.unwrap_err(),
            fs::metadata(&missing).await.unwrap_err(),
            fs::remove_file(&missing).await.unwrap_err(),
            fs::rename(&missing, d2.join("x")).await.unwrap_err(),
            File::open(&s2, &missing).await.unwrap_err(),
            fs::create_dir(missing.join("sub")).await.unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
            names(&e, &missing);
        }
        fs::write(d2.join("file"), b"x").await.unwrap();
        let e = fs::create_dir(d2.join("file")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        // create_dir_all over a file: not a directory, said so.
        let e = fs::create_dir_all(d2.join("file")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        let e = fs::create_dir_all(d2.join("file/below")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotADirectory, "{e}");
        let e = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(d2.join("file"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        fs::create_dir(d2.join("full")).await.unwrap();
        fs::write(d2.join("full/f"), b"x").await.unwrap();
        let e = fs::remove_dir(d2.join("full")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::DirectoryNotEmpty);
        let e = fs::remove_file(d2.join("full")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::IsADirectory);
        std::fs::write(d2.join("bad.txt"), [0xff, 0xfe]).unwrap();
        let e = fs::read_to_string(d2.join("bad.txt")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        names(&e, &d2.join("bad.txt"));
        let e = fs::read("a\0b").await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Contradictory options: a clear error before any syscall.
        let e = OpenOptions::new().open(d2.join("file")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

fn sequential_read_write_seek(cfg: Config) {
    let s = cfg.sched();
    let d = dir("seq", cfg);
    let (s2, p) = (s.clone(), d.join("f"));
    run(&s, async move {
        let data = pattern(3 << 20);
        let mut f = File::create(&s2, &p).await.unwrap();
        // Odd-sized writes, more than one op each for the big ones.
        let mut at = 0;
        for (i, len) in [1usize, 4095, 70_000, 2 << 20, 3]
            .iter()
            .cycle()
            .enumerate()
        {
            if at == data.len() {
                break;
            }
            let end = (at + len + i % 3).min(data.len());
            f.write_all(&data[at..end]).await.unwrap();
            at = end;
        }
        f.flush().await.unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), data);
        // Read it back through the cursor, in small and large reads.
        assert_eq!(f.seek(SeekFrom::Start(0)).await.unwrap(), 0);
        let mut small = [0u8; 7];
        f.read_exact(&mut small).await.unwrap();
        assert_eq!(small, data[..7]);
        let mut rest = Vec::new();
        f.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, data[7..]);
        assert_eq!(f.read(&mut small).await.unwrap(), 0, "end of file");
        // Seeks relative to the cursor (past unread read-ahead) and the end.
        f.seek(SeekFrom::Start(100)).await.unwrap();
        f.read_exact(&mut small).await.unwrap();
        assert_eq!(f.seek(SeekFrom::Current(-3)).await.unwrap(), 104);
        f.read_exact(&mut small).await.unwrap();
        assert_eq!(small, data[104..111]);
        assert_eq!(
            f.seek(SeekFrom::End(-5)).await.unwrap(),
            data.len() as u64 - 5
        );
        let mut tail = Vec::new();
        f.read_to_end(&mut tail).await.unwrap();
        assert_eq!(tail, data[data.len() - 5..]);
        let e = f.seek(SeekFrom::Current(-(4 << 20))).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // Offsets are signed to the kernel: past i64::MAX is refused.
        let e = f.seek(SeekFrom::Start(u64::MAX)).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        // A write after a read lands where the reader stopped, not where
        // the read-ahead got to.
        f.seek(SeekFrom::Start(10)).await.unwrap();
        f.read_exact(&mut small).await.unwrap();
        f.write_all(b"XYZ").await.unwrap();
        f.flush().await.unwrap();
        let got = std::fs::read(&p).unwrap();
        assert_eq!(&got[17..20], b"XYZ");
        assert_eq!(got[..17], data[..17]);
        assert_eq!(got[20..100], data[20..100]);
        // The positional API does not move the cursor.
        let (r, buf) = f.read_at(Vec::with_capacity(3), 17).await;
        assert_eq!((r.unwrap(), &buf[..]), (3, &b"XYZ"[..]));
        assert_eq!(f.stream_position().await.unwrap(), 20);
        // Lines through a BufReader.
        let mut w = File::create(&s2, p.with_extension("txt")).await.unwrap();
        w.write_all(b"one\ntwo\nthree").await.unwrap();
        w.close().await.unwrap();
        let r = BufReader::new(File::open(&s2, p.with_extension("txt")).await.unwrap());
        let lines: Vec<String> = futures::StreamExt::collect::<Vec<_>>(r.lines())
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(lines, ["one", "two", "three"]);
        // set_len and metadata.
        f.set_len(5).await.unwrap();
        assert_eq!(f.metadata().await.unwrap().len(), 5);
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

fn append_and_write_behind_errors(cfg: Config) {
    let s = cfg.sched();
    let d = dir("app", cfg);
    let (s2, p) = (s.clone(), d.join("log"));
    run(&s, async move {
        for line in ["one\n", "two\n"] {
            let mut f = OpenOptions::new()
                .append(true)
                .create(true)
                .open_on(&s2, &p)
                .await
                .unwrap();
            f.write_all(line.as_bytes()).await.unwrap();
            f.close().await.unwrap();
        }
        // After an append write the cursor is at the end, as std's.
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .open_on(&s2, &p)
            .await
            .unwrap();
        f.write_all(b"three\n").await.unwrap();
        f.flush().await.unwrap();
        let mut all = String::new();
        f.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "");
        assert_eq!(f.stream_position().await.unwrap(), 14);
        f.seek(SeekFrom::Start(0)).await.unwrap();
        f.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "one\ntwo\nthree\n");
        // The same when appending is asked for through `custom_flags`, or
        // comes with a std file.
        let mut f = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_APPEND)
            .open_on(&s2, &p)
            .await
            .unwrap();
        f.write_all(b"four\n").await.unwrap();
        assert_eq!(f.stream_position().await.unwrap(), 19);
        f.close().await.unwrap();
        let std_f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let mut f = File::from_std(&s2, std_f);
        f.write_all(b"five\n").await.unwrap();
        assert_eq!(f.stream_position().await.unwrap(), 24);
        // An offset no file can have is refused (io_uring would take -1
        // for "at the cursor").
        let (r, _) = f.read_at(Vec::with_capacity(4), u64::MAX).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let (r, _) = f.write_at(b"x".to_vec(), 1 << 63).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        f.close().await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "one\ntwo\nthree\nfour\nfive\n"
        );
        // The kernel's errno is reachable under the path context.
        let e = fs::remove_dir(&p).await.unwrap_err();
        let os = e
            .get_ref()
            .and_then(|pe| pe.source())
            .and_then(|k| k.downcast_ref::<io::Error>())
            .and_then(io::Error::raw_os_error);
        assert_eq!(os, Some(libc::ENOTDIR), "{e}");
        // A write to a read-only file fails: the write-behind reports it
        // no later than the flush, with the kernel's error.
        let mut ro = File::open(&s2, &p).await.unwrap();
        let r = async {
            ro.write_all(b"no").await?;
            ro.flush().await
        }
        .await;
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(std::fs::read(&p).unwrap(), b"one\ntwo\nthree\nfour\nfive\n");
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// How many of this process's fds are open on `path`.
fn fds_on(path: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t == path)
        .count()
}

/// Opens dropped at every point of their life: right after the first
/// poll (the kernel or the pool may already have opened the file) and
/// later. None leaves an fd open once the driver has settled.
fn dropped_open_leaks_no_fd(cfg: Config) {
    let s = cfg.sched();
    let d = dir("drop", cfg);
    let p = d.join("f");
    std::fs::write(&p, b"x").unwrap();
    let (s2, p2) = (s.clone(), p.clone());
    run(&s, async move {
        for i in 0..200u32 {
            let mut open = pin!(File::open(&s2, &p2));
            let _ = futures::poll!(open.as_mut());
            for _ in 0..i % 3 {
                s2.yield_now().await;
            }
            if i % 5 == 0 {
                // Sometimes it finishes: then the File closes it.
                let _ = futures::poll!(open.as_mut());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while (fds_on(&p) != 0 || s.driver().in_flight() != 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(fds_on(&p), 0, "fds left open on {}", p.display());
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// Outside a scheduler the helpers say what is wrong.
#[test]
fn helpers_outside_a_scheduler_panic_clearly() {
    let r = std::panic::catch_unwind(|| futures::executor::block_on(fs::read("/dev/null")));
    let msg = r.unwrap_err();
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("coro::fs::read"), "{msg}");
    assert!(msg.contains("IoScheduler"), "{msg}");
}

/// A `File` can be shared (positional I/O through `&File` from many tasks)
/// and moved between threads.
#[test]
fn file_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<File>();
}

/// A `File` dropped right after `write_all` returned, without `flush`:
/// the accepted bytes still reach the file (a detached task finishes the
/// write-behind), on every configuration.
fn dropped_file_finishes_its_write(cfg: Config) {
    let s = cfg.sched();
    let d = dir("dropw", cfg);
    let (s2, p) = (s.clone(), d.join("f"));
    let data = pattern(3 << 20);
    let want = data.clone();
    run(&s, async move {
        let mut f = File::create(&s2, &p).await.unwrap();
        f.write_all(&data).await.unwrap();
        drop(f);
    });
    let p = d.join("f");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&p).unwrap().len() < want.len() as u64 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        std::fs::read(&p).unwrap() == want,
        "the last write was lost"
    );
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// The blocking-pool helpers: a directory listing larger than one batch,
/// copy, links, permissions, canonical paths, recursive removal; errors
/// name their paths. They need no scheduler: awaited from a plain thread.
#[test]
fn pool_helpers_list_copy_link_and_remove() {
    use std::os::unix::fs::PermissionsExt;
    let d = std::env::temp_dir().join(format!("coro-fs-pool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    for i in 0..70 {
        std::fs::write(d.join(format!("f{i:02}")), [i as u8; 3]).unwrap();
    }
    futures::executor::block_on(async {
        let mut dir = fs::read_dir(&d).await.unwrap();
        let mut names = Vec::new();
        while let Some(e) = dir.next_entry().await.unwrap() {
            let t = e.file_type().await.unwrap();
            assert_eq!(t.is_dir(), e.file_name() == "sub", "{:?}", e.path());
            assert_eq!(e.path(), d.join(e.file_name()));
            names.push(e.file_name().into_string().unwrap());
        }
        assert!(
            dir.next_entry().await.unwrap().is_none(),
            "stays at the end"
        );
        names.sort();
        let mut want: Vec<String> = (0..70).map(|i| format!("f{i:02}")).collect();
        want.push("sub".into());
        assert_eq!(names, want);

        assert_eq!(fs::copy(d.join("f07"), d.join("sub/c")).await.unwrap(), 3);
        assert_eq!(std::fs::read(d.join("sub/c")).unwrap(), [7u8; 3]);
        fs::hard_link(d.join("f08"), d.join("sub/h")).await.unwrap();
        fs::symlink("../f09", d.join("sub/s")).await.unwrap();
        assert_eq!(
            fs::read_link(d.join("sub/s")).await.unwrap(),
            Path::new("../f09")
        );
        assert_eq!(
            fs::canonicalize(d.join("sub/s")).await.unwrap(),
            std::fs::canonicalize(d.join("f09")).unwrap()
        );
        fs::set_permissions(d.join("f10"), std::fs::Permissions::from_mode(0o600))
            .await
            .unwrap();
        assert_eq!(
            std::fs::metadata(d.join("f10"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert!(fs::try_exists(d.join("f11")).await.unwrap());
        assert!(!fs::try_exists(d.join("nope")).await.unwrap());

        let e = fs::read_dir(d.join("nope")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("nope"), "{e}");
        let e = fs::copy(d.join("nope"), d.join("x")).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("nope"), "{e}");
        let e = fs::hard_link(d.join("f01"), d.join("f02"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);

        fs::remove_dir_all(&d).await.unwrap();
        assert!(!d.exists());
        let e = fs::remove_dir_all(&d).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    });
}

/// `SeekFrom::End` on a block device is the device's size, as std's (its
/// `st_size` is 0, which `seek` used to report). On a loop device over a
/// 1 MiB file; skipped where none can be set up (`losetup` needs root).
#[test]
fn seek_from_end_of_a_block_device_is_its_size() {
    use std::process::Command;
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = Command::new("losetup").args(["-d", &self.0]).status();
        }
    }
    let img = std::env::temp_dir().join(format!("coro-io-blk-{}", std::process::id()));
    std::fs::File::create(&img)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let out = Command::new("losetup")
        .args(["-f", "--show"])
        .arg(&img)
        .output();
    std::fs::remove_file(&img).unwrap();
    let dev = match out {
        Ok(o) if o.status.success() => String::from_utf8(o.stdout).unwrap().trim().to_owned(),
        other => {
            eprintln!("skipped: no loop device ({other:?})");
            return;
        }
    };
    let _detach = Detach(dev.clone());
    let s = IoScheduler::new(Default::default()).unwrap();
    let s2 = s.clone();
    let got = run(&s, async move {
        let mut f = File::open(&s2, &dev).await.unwrap();
        let end = f.seek(SeekFrom::End(0)).await.unwrap();
        let back = f.seek(SeekFrom::End(-512)).await.unwrap();
        (end, back)
    });
    assert_eq!(got, (1 << 20, (1 << 20) - 512));
    s.shutdown();
}

/// A write-behind that fails (the file is open read-only: `EBADF`, while
/// `fsync` of such a file succeeds) is reported to every `&self` waiter
/// after it, not only the first, and still to the sequential side after
/// them: no caller is told the bytes are there.
fn a_write_behind_failure_reaches_every_waiter_and_the_next_flush(cfg: Config) {
    let s = cfg.sched();
    let d = dir("wfail", cfg);
    let (s2, p) = (s.clone(), d.join("ro"));
    std::fs::write(&p, b"").unwrap();
    run(&s, async move {
        let mut f = File::open(&s2, &p).await.unwrap();
        // Accepted (write-behind); it fails in the background.
        f.write_all(b"no").await.unwrap();
        let (a, b) = futures::join!(f.sync_all(), f.sync_all());
        assert_eq!(a.unwrap_err().raw_os_error(), Some(libc::EBADF));
        assert_eq!(b.unwrap_err().raw_os_error(), Some(libc::EBADF));
        let (r, _) = f.read_at(Vec::with_capacity(1), 0).await;
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EBADF));
        // The sequential side still learns it, once.
        assert_eq!(
            f.flush().await.unwrap_err().raw_os_error(),
            Some(libc::EBADF)
        );
        f.flush().await.unwrap();
        f.sync_all().await.unwrap();
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// A read dropped while its read-ahead was in flight, whose read then
/// fails (a directory: `EISDIR`): the next seek is not that read's to
/// fail; the next read reads again and reports its own error.
fn a_dropped_read_aheads_failure_is_not_a_seeks_or_a_writes(cfg: Config) {
    let s = cfg.sched();
    let d = dir("rfail", cfg);
    let s2 = s.clone();
    let d2 = d.clone();
    run(&s, async move {
        let mut f = File::open(&s2, &d2).await.unwrap();
        let mut b = [0u8; 8];
        {
            let mut read = pin!(f.read(&mut b));
            let _ = futures::poll!(read.as_mut());
        }
        // Give the read-ahead time to fail.
        s2.sleep(Duration::from_millis(20)).await;
        assert_eq!(f.seek(SeekFrom::Start(0)).await.unwrap(), 0);
        let e = f.read(&mut b).await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EISDIR), "{e}");
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// A `write_at` dropped after it started still completes, also when the
/// scheduler shuts down right after: the shutdown waits for it (bounded)
/// instead of cancelling it. Here it waits in the kernel for room in a
/// full FIFO, which a reader makes while the shutdown runs.
fn a_dropped_write_at_right_before_shutdown_still_lands(cfg: Config) {
    let s = cfg.sched();
    let d = dir("dropwat", cfg);
    let (p, mut keep) = full_fifo(&d);
    let (s2, p2) = (s.clone(), p.clone());
    run(&s, async move {
        let f = open_read_write(&s2, &p2).await;
        {
            let mut w = pin!(f.write_at(b"tail".as_slice(), 0));
            assert!(futures::poll!(w.as_mut()).is_pending(), "the pipe is full");
        }
        drop(f);
    });
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drain(&mut keep, 64 * 1024 + 4)
    });
    s.shutdown();
    let got = reader.join().unwrap();
    assert_eq!(
        got.len(),
        64 * 1024 + 4,
        "{cfg}: the dropped write did not land"
    );
    assert_eq!(&got[64 * 1024..], b"tail");
    std::fs::remove_dir_all(&d).unwrap();
}

/// An open of a FIFO without a peer blocks (on epoll, a pool thread in
/// `open(2)`; nothing can interrupt it). A shutdown does not wait for such
/// an op through its whole bound: the op's buffers are its job's, and a
/// read or an open need not finish.
fn a_shutdown_with_a_fifo_open_pending_is_prompt(cfg: Config) {
    use std::os::unix::fs::OpenOptionsExt;
    let s = cfg.sched();
    let d = dir("fifoshut", cfg);
    let p = d.join("fifo");
    mkfifo(&p);
    let p2 = p.clone();
    let reading = s.spawn(async move { fs::read(&p2).await });
    let started = Instant::now();
    while s.driver().in_flight() == 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    let t = Instant::now();
    s.shutdown();
    let took = t.elapsed();
    drop(reading);
    // Let the blocked open through (and its read end), as a peer would.
    let _peer = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&p);
    assert!(
        took < Duration::from_secs(2),
        "{cfg}: shutdown took {took:?}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// A FIFO at a fresh path in `d`, filled up through a read-write handle
/// (returned, non-blocking, to read it later): the next write waits.
fn full_fifo(d: &Path) -> (PathBuf, std::fs::File) {
    use std::io::Write;
    let p = d.join("fifo");
    mkfifo(&p);
    let mut keep = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&p)
        .unwrap();
    keep.write_all(&vec![b'x'; 64 * 1024]).unwrap();
    rustix::io::ioctl_fionbio(&keep, true).unwrap();
    (p, keep)
}

/// `p` opened for reading and writing on `s` (a FIFO: without waiting for
/// a peer).
async fn open_read_write(s: &IoScheduler, p: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open_on(s, p)
        .await
        .unwrap()
}

/// Read `keep` (non-blocking) until `want` bytes came or 10 s passed.
fn drain(keep: &mut std::fs::File, want: usize) -> Vec<u8> {
    use std::io::Read;
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = vec![0u8; 16 * 1024];
    while got.len() < want && Instant::now() < deadline {
        match keep.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{e}"),
        }
    }
    got
}

/// A dropped write that can never finish (a full FIFO nobody reads) holds
/// a shutdown for its bound only: then it is given up (cancelled on
/// io_uring, which closes the file: nothing keeps it open for good).
fn a_write_that_cannot_finish_is_given_up_at_shutdown(cfg: Config) {
    // On epoll the write is a blocking-pool job nothing can call off: the
    // shutdown leaves it to end (see `a_shutdown_with_a_fifo_open_pending_is_prompt`).
    if cfg.kind() == coro_io::DriverKind::Epoll {
        return;
    }
    let s = cfg.sched();
    let d = dir("stuckw", cfg);
    let (p, mut keep) = full_fifo(&d);
    let (s2, p2) = (s.clone(), p.clone());
    run(&s, async move {
        let f = open_read_write(&s2, &p2).await;
        let mut w = pin!(f.write_at(b"tail".as_slice(), 0));
        assert!(futures::poll!(w.as_mut()).is_pending(), "the pipe is full");
    });
    let t = Instant::now();
    s.shutdown();
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "{cfg}: shutdown took {took:?}"
    );
    drop(s);
    // Only the test's own handle is left on the FIFO.
    assert_eq!(
        fds_on(&p),
        1,
        "{cfg}: the given-up write kept its file open"
    );
    drop(drain(&mut keep, 64 * 1024));
    std::fs::remove_dir_all(&d).unwrap();
}

/// A write still awaited at the scheduler's shutdown, by a thread outside
/// it (its future is not the scheduler's to drop): the shutdown lets it
/// land, as a dropped one, instead of cancelling it.
fn a_write_awaited_outside_at_shutdown_still_lands(cfg: Config) {
    let s = cfg.sched();
    let d = dir("alivew", cfg);
    let (p, mut keep) = full_fifo(&d);
    let (s2, p2) = (s.clone(), p.clone());
    let f = run(&s, async move { open_read_write(&s2, &p2).await });
    let f = std::sync::Arc::new(f);
    let (started_tx, started) = std::sync::mpsc::channel();
    let f2 = f.clone();
    let writer = std::thread::spawn(move || {
        futures::executor::block_on(async {
            let mut w = pin!(f2.write_at(b"tail".as_slice(), 0));
            assert!(futures::poll!(w.as_mut()).is_pending(), "the pipe is full");
            started_tx.send(()).unwrap();
            w.await.0
        })
    });
    started.recv_timeout(Duration::from_secs(10)).unwrap();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drain(&mut keep, 64 * 1024 + 4)
    });
    s.shutdown();
    let got = reader.join().unwrap();
    assert_eq!(
        got.len(),
        64 * 1024 + 4,
        "{cfg}: the write in flight did not land"
    );
    assert_eq!(&got[64 * 1024..], b"tail");
    assert_eq!(writer.join().unwrap().unwrap(), 4, "{cfg}");
    drop(f);
    std::fs::remove_dir_all(&d).unwrap();
}

/// A `File` on a FIFO (a file without a position) opened for reading and
/// writing: a small read takes only what it asks for, a seek fails with
/// `ESPIPE` as std's, and a write loses none of the bytes waiting to be
/// read (they used to be read ahead and then thrown away by the seek or
/// the write, which assumed they could be read again).
fn a_fifo_files_received_bytes_survive_a_seek_and_a_write(cfg: Config) {
    let s = cfg.sched();
    let d = dir("fifo-rw", cfg);
    let p = d.join("fifo");
    mkfifo(&p);
    let (s2, p2) = (s.clone(), p.clone());
    run(&s, async move {
        // Read and write: the open does not wait for a peer.
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .open_on(&s2, &p2)
            .await
            .unwrap();
        let writer = std::thread::spawn(move || std::fs::write(&p2, b"hello world"));
        let mut got = [0u8; 5];
        f.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello", "{cfg}");
        writer.join().unwrap().unwrap();
        let e = f.stream_position().await.unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESPIPE), "{cfg}: {e}");
        f.write_all(b"!").await.unwrap();
        f.flush().await.unwrap();
        let mut rest = [0u8; 7];
        s2.timeout(Duration::from_secs(5), f.read_exact(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("{cfg}: bytes of the FIFO were lost"))
            .unwrap();
        assert_eq!(&rest, b" world!", "{cfg}");
    });
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// Code ported from tokio that writes a header through std, then the body
/// through a `File` made with `from_std`, then goes on with std: the body
/// goes after the header (the cursor starts at the std file's offset),
/// and `into_std` hands the file back with the kernel's offset after the
/// body.
fn from_std_goes_on_at_the_std_files_offset_and_into_std_hands_it_back(cfg: Config) {
    use std::io::{Seek, Write};
    let s = cfg.sched();
    let d = dir("from-std", cfg);
    let p = d.join("f");
    let (s2, p2) = (s.clone(), p.clone());
    run(&s, async move {
        let mut std_f = std::fs::File::create(&p2).unwrap();
        std_f.write_all(b"header\n").unwrap();
        let mut f = File::from_std(&s2, std_f);
        assert_eq!(f.stream_position().await.unwrap(), 7, "{cfg}");
        f.write_all(b"body\n").await.unwrap();
        let mut std_f = f.into_std().await.unwrap();
        assert_eq!(std_f.stream_position().unwrap(), 12, "{cfg}");
        std_f.write_all(b"tail\n").unwrap();
    });
    assert_eq!(std::fs::read(&p).unwrap(), b"header\nbody\ntail\n", "{cfg}");
    std::fs::remove_dir_all(&d).unwrap();
    s.shutdown();
}

/// A `File` over a socket (from `from_std`): reads and writes go on after
/// the first. A socket refuses any offset but 0 (`ESPIPE`) where the
/// driver passes one (io_uring), and the cursor of a file without a
/// position must not become one.
fn a_file_on_a_socket_reads_and_writes_past_its_first_op(cfg: Config) {
    use std::io::{Read, Write};
    let s = cfg.sched();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    b.write_all(b"hello").unwrap();
    let f = File::from_std(&s, std::fs::File::from(std::os::fd::OwnedFd::from(a)));
    let s2 = s.clone();
    let peer = std::thread::spawn(move || {
        let mut got = [0u8; 6];
        b.read_exact(&mut got).map(|()| got)
    });
    run(&s, async move {
        let mut f = f;
        let mut got = [0u8; 2];
        f.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"he", "{cfg}");
        let mut got = [0u8; 3];
        s2.timeout(Duration::from_secs(5), f.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{cfg}: the second read: {e}"));
        assert_eq!(&got, b"llo", "{cfg}");
        for part in [b"xyz", b"123"] {
            f.write_all(part).await.unwrap();
            f.flush()
                .await
                .unwrap_or_else(|e| panic!("{cfg}: a write: {e}"));
        }
    });
    assert_eq!(&peer.join().unwrap().unwrap(), b"xyz123", "{cfg}");
    s.shutdown();
}

/// A `File` over a socket dropped with a write in flight: the write is
/// finished in the background, its short parts' rests included (at offset
/// 0, as every op on a file without a position: a socket refuses any
/// other), so a slow peer gets every byte, then the end.
fn a_file_on_a_socket_dropped_with_a_write_in_flight_sends_it_all(cfg: Config) {
    use std::io::Read;
    const LEN: usize = 2 << 20;
    let s = cfg.sched();
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    // Small buffers: the socket takes each write in parts.
    rustix::net::sockopt::set_socket_send_buffer_size(&a, 4096).unwrap();
    let f = File::from_std(&s, std::fs::File::from(std::os::fd::OwnedFd::from(a)));
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match b.read(&mut buf) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("{e}"),
            }
            if got.len() % (256 * 1024) < 8192 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    run(&s, async move {
        let mut f = f;
        f.write_all(&pattern(LEN)).await.unwrap();
        // No flush: the last write is in flight.
        drop(f);
    });
    let got = reader.join().unwrap();
    assert_eq!(got.len(), LEN, "{cfg}: the dropped write's rest was lost");
    assert!(got == pattern(LEN), "{cfg}");
    s.shutdown();
}

/// A task waits in `sync_all` for a write-behind in flight (a full FIFO),
/// with a waker that, woken, calls `sync_all` on the same file right
/// there. Another `sync_all`, with its task's budget spent, polled the
/// write with the waiting tasks' shared waker under the file's lock: the
/// budget's yield woke them all there, and the first took that lock again
/// on the same thread.
fn a_settle_with_the_budget_spent_wakes_no_waiter_under_the_lock(cfg: Config) {
    use std::future::Future;
    use std::sync::Arc;
    use std::task::{Context, Wake, Waker};

    use futures::io::AsyncWrite;

    struct Reenters(Arc<File>);
    impl Wake for Reenters {
        fn wake(self: Arc<Self>) {
            let mut again = pin!(self.0.sync_all());
            let _ = again.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        }
    }

    let s = cfg.sched();
    let d = dir("settle", cfg);
    let (p, mut keep) = full_fifo(&d);
    let (s2, p2) = (s.clone(), p.clone());
    let mut f = run(&s, async move { open_read_write(&s2, &p2).await });
    // A write-behind that stays in flight: the pipe is full.
    let mut cx = Context::from_waker(Waker::noop());
    let accepted = pin!(&mut f).poll_write(&mut cx, b"tail");
    assert!(
        matches!(accepted, std::task::Poll::Ready(Ok(4))),
        "{accepted:?}"
    );
    let f = Arc::new(f);
    let waker = Waker::from(Arc::new(Reenters(f.clone())));
    let mut waiting = Box::pin({
        let f = f.clone();
        async move { f.sync_all().await }
    });
    assert!(
        waiting
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending(),
        "{cfg}: the write is in flight"
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let f2 = f.clone();
    std::thread::spawn(move || {
        coro_io::coop::budgeted(|| {
            for _ in 0..coro_io::coop::BUDGET {
                coro_io::coop::consume();
            }
            let mut other = pin!(f2.sync_all());
            let _ = other.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        });
        let _ = tx.send(());
    });
    assert!(
        rx.recv_timeout(Duration::from_secs(10)).is_ok(),
        "{cfg}: deadlocked (or the poll panicked)"
    );
    // Let the write land, so nothing waits at shutdown.
    let _ = drain(&mut keep, 64 * 1024 + 4);
    drop(waiting);
    s.shutdown();
}
