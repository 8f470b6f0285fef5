//! The configurations a user can pick, for tests: every driver, ring mode,
//! execution and thread strategy, so that each I/O test runs on all of them
//! (bugs live in the combinations). Used through
//! [`driver_tests!`](crate::driver_tests); not part of the stable API.

use std::fmt;
use std::time::Duration;

use crate::driver::Handle;
use crate::thread_pool::ThreadPoolOptions;
use crate::{
    DriverKind, ExecutionStrategy, IoScheduler, IoSchedulerOptions, RingMode, ThreadStrategy,
    UringOptions,
};

/// One configuration: a driver and, for io_uring, how its ring runs, with
/// the scheduler strategies around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Short name (`uring-plain-pool`), also the test module path.
    pub name: &'static str,
    /// The backend.
    pub driver: DriverKind,
    /// io_uring: how the ring runs completion work.
    pub ring: RingMode,
    /// io_uring: a kernel thread polls the submission queue.
    pub sqpoll: bool,
    /// Tasks run on a two-worker thread pool (else inline on the loop).
    pub pool: bool,
    /// `ThreadStrategy::Manual`, driven by a thread of the test harness.
    pub manual: bool,
    /// io_uring: a tiny submission queue (8 entries) and provided-buffer
    /// ring (2 buffers), so that every test also runs through the paths
    /// of a full SQ (entries staged in memory) and of a dry ring (the
    /// `ENOBUFS` fallback), which default sizes rarely reach.
    pub small_rings: bool,
}

const fn config(
    name: &'static str,
    driver: DriverKind,
    ring: RingMode,
    sqpoll: bool,
    pool: bool,
    manual: bool,
) -> Config {
    Config {
        name,
        driver,
        ring,
        sqpoll,
        pool,
        manual,
        small_rings: false,
    }
}

/// [`config`] with small rings (see [`Config::small_rings`]).
const fn small(c: Config) -> Config {
    Config {
        small_rings: true,
        ..c
    }
}

use DriverKind::{Epoll, IoUring};
use RingMode::{Auto, CoopTaskrun, DeferTaskrun, Plain};

impl Config {
    /// epoll, tasks on the loop thread.
    pub const EPOLL: Config = config("epoll", Epoll, Auto, false, false, false);
    /// epoll, tasks on a pool.
    pub const EPOLL_POOL: Config = config("epoll-pool", Epoll, Auto, false, true, false);
    /// epoll, driven by hand (`process_events` from another thread).
    pub const EPOLL_MANUAL: Config = config("epoll-manual", Epoll, Auto, false, false, true);
    /// epoll, driven by hand, tasks on a pool.
    pub const EPOLL_MANUAL_POOL: Config =
        config("epoll-manual-pool", Epoll, Auto, false, true, true);
    /// io_uring, single issuer with `DEFER_TASKRUN` (the default scheduler).
    pub const URING_DEFER: Config =
        config("uring-defer", IoUring, DeferTaskrun, false, false, false);
    /// io_uring with `COOP_TASKRUN`, tasks on the loop thread; small rings.
    pub const URING_COOP: Config = small(config(
        "uring-coop",
        IoUring,
        CoopTaskrun,
        false,
        false,
        false,
    ));
    /// io_uring with `COOP_TASKRUN`, tasks on a pool; small rings, so that
    /// pool workers' own submits also meet a full SQ and a dry ring.
    pub const URING_COOP_POOL: Config = small(config(
        "uring-coop-pool",
        IoUring,
        CoopTaskrun,
        false,
        true,
        false,
    ));
    /// A plain ring (as kernels before 5.19; no receive queue either, so
    /// the one-receive-op-per-read path stays tested),
    /// tasks on the loop thread.
    pub const URING_PLAIN: Config = config("uring-plain", IoUring, Plain, false, false, false);
    /// A plain ring, tasks on a pool (the default for pools).
    pub const URING_PLAIN_POOL: Config =
        config("uring-plain-pool", IoUring, Plain, false, true, false);
    /// SQPOLL (a kernel thread reads the submission queue), inline tasks.
    pub const URING_SQPOLL: Config = config("uring-sqpoll", IoUring, Plain, true, false, false);
    /// SQPOLL, tasks on a pool.
    pub const URING_SQPOLL_POOL: Config =
        config("uring-sqpoll-pool", IoUring, Plain, true, true, false);
    /// io_uring driven by hand.
    pub const URING_MANUAL: Config = config("uring-manual", IoUring, Auto, false, false, true);
    /// io_uring driven by hand, tasks on a pool.
    pub const URING_MANUAL_POOL: Config =
        config("uring-manual-pool", IoUring, Auto, false, true, true);
    /// `Manual` on an SQPOLL ring: the kernel's thread submits, while
    /// other threads than the driving one stage entries (wakers, drops,
    /// shutdown). (The matrix drives it from one background thread.)
    pub const URING_MANUAL_SQPOLL: Config =
        config("uring-manual-sqpoll", IoUring, Plain, true, false, true);

    /// Every scheduler configuration.
    pub const ALL: [Config; 14] = [
        Config::EPOLL,
        Config::EPOLL_POOL,
        Config::EPOLL_MANUAL,
        Config::EPOLL_MANUAL_POOL,
        Config::URING_DEFER,
        Config::URING_COOP,
        Config::URING_COOP_POOL,
        Config::URING_PLAIN,
        Config::URING_PLAIN_POOL,
        Config::URING_SQPOLL,
        Config::URING_SQPOLL_POOL,
        Config::URING_MANUAL,
        Config::URING_MANUAL_POOL,
        Config::URING_MANUAL_SQPOLL,
    ];

    /// The distinct bare drivers ([`handle`](Config::handle)): the
    /// scheduler strategies do not change a driver used without one.
    pub const DRIVERS: [Config; 5] = [
        Config::EPOLL,
        Config::URING_DEFER,
        Config::URING_COOP,
        Config::URING_PLAIN,
        Config::URING_SQPOLL,
    ];

    /// The configuration called `name` (its [`Display`](fmt::Display)),
    /// for child processes told which one to run.
    pub fn by_name(name: &str) -> Option<Config> {
        Config::ALL.into_iter().find(|c| c.name == name)
    }

    /// The backend (never `Auto`).
    pub fn kind(&self) -> DriverKind {
        self.driver
    }

    /// The io_uring settings of this configuration.
    /// (`DeferTaskrun` is asked for as `Auto`, which picks it wherever it
    /// applies, so that a test may build a scheduler of other strategies
    /// from these settings.)
    pub fn uring(&self) -> UringOptions {
        UringOptions {
            ring_mode: match self.ring {
                DeferTaskrun => Auto,
                mode => mode,
            },
            // Short, so that tests also see the SQ thread fall asleep and
            // be woken again.
            sqpoll_idle: self.sqpoll.then(|| Duration::from_millis(10)),
            // The inline plain-ring configuration stands for older kernels:
            // one receive op per read, so that path stays tested too.
            multishot_recv: self.sqpoll || self.pool || self.ring != Plain,
            entries: if self.small_rings {
                8
            } else {
                UringOptions::default().entries
            },
            recv_buffers: if self.small_rings {
                2
            } else {
                UringOptions::default().recv_buffers
            },
            ..Default::default()
        }
    }

    /// Scheduler options for this configuration.
    pub fn options(&self) -> IoSchedulerOptions {
        IoSchedulerOptions {
            driver: self.driver,
            thread_strategy: if self.manual {
                ThreadStrategy::Manual
            } else {
                ThreadStrategy::Spawn
            },
            execution: if self.pool {
                ExecutionStrategy::ThreadPool(ThreadPoolOptions {
                    thread_count: 2,
                    ..Default::default()
                })
            } else {
                ExecutionStrategy::Inline
            },
            uring: self.uring(),
            ..Default::default()
        }
    }

    /// A scheduler of this configuration. A `Manual` one is driven by a
    /// background thread (looping on `process_events(None)`, as a user's
    /// own thread would) that does not count as a handle: dropping the
    /// last handle, or `shutdown()`, stops it.
    ///
    /// # Panics
    ///
    /// If the scheduler cannot be created (io_uring unavailable).
    pub fn sched(&self) -> IoScheduler {
        self.sched_with(self.options())
    }

    /// [`sched`](Config::sched) with `opts` (whose driver, strategies,
    /// ring mode, SQPOLL and receive-queue switch are replaced by this
    /// configuration's; a thread pool's options, such as its size, are
    /// kept when both ask for a pool).
    ///
    /// # Panics
    ///
    /// As [`sched`](Config::sched).
    pub fn sched_with(&self, opts: IoSchedulerOptions) -> IoScheduler {
        let mine = self.options();
        let execution = match (mine.execution, opts.execution) {
            (ExecutionStrategy::ThreadPool(_), ExecutionStrategy::ThreadPool(p)) => {
                ExecutionStrategy::ThreadPool(p)
            }
            (mine, _) => mine,
        };
        let opts = IoSchedulerOptions {
            driver: mine.driver,
            thread_strategy: mine.thread_strategy,
            execution,
            // The configuration's ring; other io_uring settings (sizes)
            // are the caller's.
            uring: UringOptions {
                ring_mode: mine.uring.ring_mode,
                sqpoll_idle: mine.uring.sqpoll_idle,
                multishot_recv: mine.uring.multishot_recv && opts.uring.multishot_recv,
                ..opts.uring
            },
            ..opts
        };
        let s = IoScheduler::new(opts)
            .unwrap_or_else(|e| panic!("cannot create a {self} scheduler: {e}"));
        if self.manual {
            s.drive_in_background();
        }
        s
    }

    /// A bare driver (no scheduler) of this configuration's backend and
    /// ring mode. A `DeferTaskrun` ring is enabled for the calling thread,
    /// which must then be the one that parks it and polls its ops.
    ///
    /// # Panics
    ///
    /// If the driver cannot be created.
    pub fn handle(&self) -> Handle {
        self.handle_with(UringOptions::default())
    }

    /// [`handle`](Config::handle) with other io_uring settings (`entries`),
    /// whose ring mode and SQPOLL are replaced by this configuration's.
    ///
    /// # Panics
    ///
    /// As [`handle`](Config::handle).
    pub fn handle_with(&self, uring: UringOptions) -> Handle {
        let mine = self.uring();
        let uring = UringOptions {
            ring_mode: mine.ring_mode,
            sqpoll_idle: mine.sqpoll_idle,
            multishot_recv: mine.multishot_recv && uring.multishot_recv,
            ..uring
        };
        let h = if self.ring == DeferTaskrun {
            Handle::for_loop_thread(self.driver, &uring).and_then(|h| {
                h.enable_here()?;
                Ok(h)
            })
        } else {
            Handle::with_options(self.driver, &uring)
        };
        h.unwrap_or_else(|e| panic!("cannot create a {self} driver: {e}"))
    }
}

/// Poll `fut` to completion on the bare driver `h`, parking it between
/// polls, and polling again only once the future's waker was woken, as an
/// executor would: a driver that completes an op without waking it fails
/// here instead of passing by a blind re-poll.
///
/// # Panics
///
/// If `fut` does not complete within `bound` (saying whether it was
/// ready by then but never woken).
pub fn block_on_driver<F: std::future::Future>(h: &Handle, fut: F, bound: Duration) -> F::Output {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let woken = Arc::new(Count(AtomicUsize::new(0)));
    let w = Waker::from(woken.clone());
    let mut cx = Context::from_waker(&w);
    let mut fut = std::pin::pin!(fut);
    let deadline = std::time::Instant::now() + bound;
    let mut seen = 0;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        loop {
            if std::time::Instant::now() >= deadline {
                let ready = fut.as_mut().poll(&mut cx).is_ready();
                panic!("not complete within {bound:?} (ready but never woken: {ready})");
            }
            h.park(Some(Duration::from_millis(10)))
                .unwrap_or_else(|e| panic!("park failed: {e}"));
            let now = woken.0.load(Ordering::SeqCst);
            if now != seen {
                seen = now;
                break;
            }
        }
    }
}

/// How many fds the process has open (`/proc/self/fd`).
///
/// # Panics
///
/// If `/proc/self/fd` cannot be read (every leak check would compare 0
/// with 0).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is needed to count fds")
        .count()
}

/// [`open_fds`], once it equals `expected` or after five seconds: a
/// `Manual` configuration's driving thread lets go of its scheduler (and
/// the driver's fds) a moment after `shutdown()` returned.
pub fn open_fds_settled(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let n = open_fds();
        if n == expected || std::time::Instant::now() >= deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// Send `bytes` on the Unix stream socket `to` with an fd attached
/// (`SCM_RIGHTS`; a pipe end, closed here once sent): the peer's read stops
/// short after them, before whatever is sent next.
///
/// # Panics
///
/// If the pipe cannot be made or the message not sent.
pub fn send_with_an_fd(to: impl std::os::fd::AsFd, bytes: &[u8]) {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use std::os::fd::AsFd;
    let (passed, _other) = rustix::pipe::pipe().expect("a pipe to pass");
    let fds = [passed.as_fd()];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    let iov = [std::io::IoSlice::new(bytes)];
    rustix::net::sendmsg(to, &iov, &mut control, SendFlags::empty()).expect("sendmsg with an fd");
}

/// While alive, this process can open no new fd: its soft limit on open
/// files (`RLIMIT_NOFILE`) is lowered to the lowest free fd number, so the
/// next fd made fails with `EMFILE`. Dropped, the limit is back. The limit
/// is process-wide: for a test binary of its own.
///
/// # Panics
///
/// If the limit cannot be set (or no fd can be made to find the lowest
/// free number).
///
/// # Examples
///
/// (Not run with the other doctests, which may share this process.)
///
/// ```no_run
/// let full = coro_io::testing::no_free_fds();
/// let e = std::fs::File::open("/").unwrap_err();
/// assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
/// drop(full);
/// assert!(std::fs::File::open("/").is_ok());
/// ```
#[must_use = "the limit is back as soon as this is dropped"]
#[derive(Debug)]
pub struct NoFreeFds {
    saved: rustix::process::Rlimit,
}

/// See [`NoFreeFds`].
pub fn no_free_fds() -> NoFreeFds {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let saved = getrlimit(Resource::Nofile);
    // `dup` returns the lowest free number.
    let probe = rustix::io::dup(std::io::stdin()).expect("an fd to find the lowest free number");
    let lowest = rustix::fd::AsRawFd::as_raw_fd(&probe) as u64;
    drop(probe);
    let lowered = Rlimit {
        current: Some(lowest),
        maximum: saved.maximum,
    };
    setrlimit(Resource::Nofile, lowered).expect("lowering RLIMIT_NOFILE");
    NoFreeFds { saved }
}

impl Drop for NoFreeFds {
    fn drop(&mut self) {
        let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, self.saved);
    }
}
