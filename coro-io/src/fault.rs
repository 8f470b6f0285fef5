//! Fault injection for tests (feature `fault-injection`; nothing of it
//! exists without the feature).
//!
//! [`install`] a [`FaultPlan`] and, process-wide, op futures then see, at
//! random but reproducibly for a seed:
//!
//! * **transient** errors (`EINTR`, `EAGAIN`) before they run: the op layer
//!   must retry them, so callers never see them;
//! * **hard** errors before they run (`ENOMEM`, `ECANCELED`; for accepts
//!   also `EMFILE` and `ECONNABORTED`): they reach the caller, who must turn
//!   them into a clean error (or, for accept loops, back off and go on);
//! * **short writes**: a send or write offers the kernel half its bytes, as
//!   a full socket buffer would make it; callers that write everything must
//!   loop.
//!
//! Reads are never shortened: a short read of a stream socket means the
//! kernel had no more data (drivers rely on it, see
//! [`recv_stream`](crate::op::recv_stream)), so shortening one would not
//! simulate the kernel but break its contract.
//!
//! # Examples
//!
//! ```
//! use coro_io::fault::{self, FaultPlan};
//! fault::install(Some(FaultPlan { seed: 7, transient_per_mille: 500, ..Default::default() }));
//! let h = coro_io::driver::Handle::new(coro_io::DriverKind::Epoll)?;
//! let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK)?;
//! use std::os::fd::AsRawFd;
//! // Half the ops meet an injected EINTR first; the op layer retries them.
//! for _ in 0..20 {
//!     let (res, _) = futures::executor::block_on(coro_io::op::write(&h, w.as_raw_fd(), b"x".as_slice()));
//!     assert_eq!(res?, 1);
//! }
//! assert!(fault::counts().transient > 0);
//! fault::install(None);
//! # drop(r);
//! # std::io::Result::Ok(())
//! ```

use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::op::OpKind;

/// What to inject, in thousandths of the ops that start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// Seed of the (xorshift) sequence: the same seed gives the same faults
    /// for the same sequence of ops.
    pub seed: u64,
    /// `EINTR` / `EAGAIN` before an op runs (to be retried).
    pub transient_per_mille: u32,
    /// `ENOMEM` / `ECANCELED` (accept: also `EMFILE`, `ECONNABORTED`) before
    /// an op runs (to be reported).
    pub hard_per_mille: u32,
    /// A send or write offers half its bytes.
    pub short_write_per_mille: u32,
}

/// How many faults were injected since the last [`install`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Transient errors injected (and retried).
    pub transient: u64,
    /// Hard errors injected.
    pub hard: u64,
    /// Writes shortened.
    pub short_writes: u64,
}

struct State {
    plan: FaultPlan,
    rng: u64,
    counts: FaultCounts,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);
/// Whether a plan is installed (so ops skip the lock when none is).
static ON: AtomicBool = AtomicBool::new(false);

/// Start injecting by `plan` (`None`: stop). Resets the counts.
pub fn install(plan: Option<FaultPlan>) {
    ON.store(plan.is_some(), Ordering::SeqCst);
    *lock() = plan.map(|plan| State {
        rng: plan.seed | 1,
        plan,
        counts: FaultCounts::default(),
    });
}

/// The faults injected since the last [`install`] (zeros when none is).
pub fn counts() -> FaultCounts {
    lock().as_ref().map(|s| s.counts).unwrap_or_default()
}

fn lock() -> std::sync::MutexGuard<'static, Option<State>> {
    crate::lock(&STATE)
}

impl State {
    fn roll(&mut self) -> u32 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 1000) as u32
    }
}

/// Called as an op starts: an error to act as if the syscall returned it.
/// Also for I/O that bypasses the ops (a direct non-blocking syscall, as
/// the TLS stream makes), so that it sees the same faults.
pub fn before_op(kind: OpKind) -> Option<io::Error> {
    if !ON.load(Ordering::Relaxed) {
        return None;
    }
    let mut g = lock();
    let s = g.as_mut()?;
    let r = s.roll();
    if r < s.plan.transient_per_mille {
        s.counts.transient += 1;
        let errno = if s.roll() % 2 == 0 {
            libc::EINTR
        } else {
            libc::EAGAIN
        };
        return Some(io::Error::from_raw_os_error(errno));
    }
    if r < s.plan.transient_per_mille + s.plan.hard_per_mille {
        s.counts.hard += 1;
        let pick = s.roll() as usize;
        let errno = match kind {
            OpKind::Accept => [libc::ENOMEM, libc::EMFILE, libc::ECONNABORTED][pick % 3],
            _ => [libc::ENOMEM, libc::ECANCELED][pick % 2],
        };
        return Some(io::Error::from_raw_os_error(errno));
    }
    None
}

/// The first part of `bufs` that a vectored send offers the kernel: as
/// [`write_len`] of their total length.
pub fn write_slices<'a>(bufs: &'a [io::IoSlice<'a>]) -> Vec<io::IoSlice<'a>> {
    let mut left = write_len(bufs.iter().map(|b| b.len()).sum());
    let mut out = Vec::with_capacity(bufs.len());
    for b in bufs {
        if left == 0 {
            break;
        }
        let n = b.len().min(left);
        out.push(io::IoSlice::new(&b[..n]));
        left -= n;
    }
    out
}

/// The length a send or write of `len` bytes offers the kernel (also for
/// direct syscalls, as [`before_op`]).
pub fn write_len(len: usize) -> usize {
    if !ON.load(Ordering::Relaxed) {
        return len;
    }
    let mut g = lock();
    let Some(s) = g.as_mut() else { return len };
    if len > 1 && s.roll() < s.plan.short_write_per_mille {
        s.counts.short_writes += 1;
        return len / 2;
    }
    len
}

/// A pause a test asks for at some point of the library's work (0: none).
struct Pause(std::sync::atomic::AtomicU64);

impl Pause {
    const fn none() -> Pause {
        Pause(std::sync::atomic::AtomicU64::new(0))
    }

    fn set(&self, d: Option<std::time::Duration>) {
        let us = d.map_or(0, |d| {
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
        });
        self.0.store(us, Ordering::SeqCst);
    }

    fn take(&self) {
        let us = self.0.load(Ordering::Relaxed);
        if us != 0 {
            std::thread::sleep(std::time::Duration::from_micros(us));
        }
    }
}

/// Between an io_uring event loop's move of its staged entries into the
/// submission queue and its enter.
static ENTER_PAUSE: Pause = Pause::none();

/// In a shutdown's linger, between seeing no lingering task left and
/// taking no more.
static LINGER_PAUSE: Pause = Pause::none();

/// Make every shutdown pause for `d` in its linger (the wait for
/// lingering tasks) between seeing none left and taking no more (`None`:
/// no pause): widens the window in which another thread spawns a
/// lingering task as the shutdown stops waiting for them.
pub fn delay_after_linger(d: Option<std::time::Duration>) {
    LINGER_PAUSE.set(d);
}

/// The pause [`delay_after_linger`] asked for.
pub(crate) fn after_linger() {
    LINGER_PAUSE.take();
}

/// Driver jobs on the blocking pool wait before they start (see
/// [`hold_pool_jobs`]).
static POOL_JOBS_HELD: AtomicBool = AtomicBool::new(false);

/// Make every io_uring event loop pause for `d` between moving its staged
/// entries into the submission queue and entering the kernel (`None`: no
/// pause): widens the window in which another thread sees an op in the
/// queue that the kernel has not read yet, for tests of what such a
/// thread may do then (drop the op, close its fd).
pub fn delay_enter(d: Option<std::time::Duration>) {
    ENTER_PAUSE.set(d);
}

/// Pauses [`delay_enter`] made loops begin so far: one begun after a
/// test staged an op is one whose queue holds that op's entry (the pause
/// comes after the move).
pub fn enter_pauses() -> u64 {
    ENTER_PAUSES.load(Ordering::SeqCst)
}

static ENTER_PAUSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Pauses [`delay_enter`] made loops end so far (each loop enters right
/// after its pause ends).
pub fn enter_pauses_ended() -> u64 {
    ENTER_PAUSES_ENDED.load(Ordering::SeqCst)
}

static ENTER_PAUSES_ENDED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The pause [`delay_enter`] asked for, taken by the loop.
pub(crate) fn before_enter() {
    if ENTER_PAUSE.0.load(Ordering::Relaxed) == 0 {
        return;
    }
    ENTER_PAUSES.fetch_add(1, Ordering::SeqCst);
    ENTER_PAUSE.take();
    ENTER_PAUSES_ENDED.fetch_add(1, Ordering::SeqCst);
}

/// Hold every op the drivers run on the blocking pool before it starts
/// until called with `false` (at most 10 s): a test can then drop the
/// op's future, close its fd and open another file while the job is held
/// before it runs.
pub fn hold_pool_jobs(on: bool) {
    POOL_JOBS_HELD.store(on, Ordering::SeqCst);
}

/// Where a pool job waits while [`hold_pool_jobs`] holds them.
pub(crate) fn before_pool_job() {
    if !POOL_JOBS_HELD.load(Ordering::Relaxed) {
        return;
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while POOL_JOBS_HELD.load(Ordering::SeqCst) && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Whether new child processes get no pidfd (see [`no_pidfds`]).
static NO_PIDFDS: AtomicBool = AtomicBool::new(false);

/// Spawn child processes without a pidfd from now on (`false`: with one
/// again), as on a kernel before 5.3 or in a sandbox that refuses
/// `pidfd_open`: their waits take the path that has no pidfd to poll.
pub fn no_pidfds(on: bool) {
    NO_PIDFDS.store(on, Ordering::SeqCst);
}

/// Whether [`no_pidfds`] is on.
pub(crate) fn pidfds_refused() -> bool {
    NO_PIDFDS.load(Ordering::Relaxed)
}

/// Make the next `n` submits that a thread other than an io_uring loop's
/// makes (an op polled on a pool worker, on a ring every thread may
/// enter) fail with `errno` before entering the kernel, as the kernel's
/// `EBUSY`, `EAGAIN` or `EINTR` would: the entries stay in the
/// submission queue for the loop to submit. (`fail_syscall` with
/// [`Syscall::ForeignSubmit`].)
pub fn fail_foreign_submits(n: u32, errno: i32) {
    fail_syscall(Syscall::ForeignSubmit, 0, n, errno);
}

/// A call into the kernel or the platform that a test can make fail (see
/// [`fail_syscall`]): the error handlers behind them are otherwise
/// reached only on a kernel short of memory or watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Syscall {
    /// An io_uring event loop's own `io_uring_enter` (its submit and
    /// wait): the kernel's `EBUSY`, `EAGAIN`, `EINTR`, or a hard error
    /// such as `EOWNERDEAD` from a dead SQPOLL thread. The entries stay
    /// in the submission queue, as when the kernel refuses them.
    Enter,
    /// `epoll_ctl` adding an fd to the epoll driver's table (`ENOSPC` past
    /// `max_user_watches`, `ENOMEM`, `EPERM` for a regular file).
    EpollCtl,
    /// The epoll driver's `epoll_wait`.
    EpollWait,
    /// The registration of io_uring's provided-buffer ring (a kernel
    /// before 5.19 or short of locked memory refuses it).
    RegisterBufRing,
    /// `std::thread::Builder::spawn` of coro-io's threads: pool workers,
    /// blocking-pool threads, an event loop's thread (`EAGAIN` past
    /// `RLIMIT_NPROC` or a cgroup's `pids.max`).
    SpawnThread,
    /// A submit from a thread other than an io_uring loop's (see
    /// [`fail_foreign_submits`]).
    ForeignSubmit,
}

const SYSCALLS: usize = 6;

/// Per [`Syscall`]: calls to let through first, calls to fail, the errno.
static SYSCALL_FAILS: Mutex<[(u32, u32, i32); SYSCALLS]> = Mutex::new([(0, 0, 0); SYSCALLS]);
/// Whether any [`fail_syscall`] is armed (so calls skip the lock when none is).
static SYSCALL_ARMED: AtomicBool = AtomicBool::new(false);

/// Make `count` calls of `call` fail with `errno`, process-wide, after
/// letting the next `skip` through (`count` 0: stop). A failed call does
/// not reach the kernel.
///
/// # Examples
///
/// ```
/// use coro_io::fault::{self, Syscall};
/// fault::fail_syscall(Syscall::SpawnThread, 0, 1, libc::EAGAIN);
/// let r = coro_io::ThreadPool::try_new(Default::default());
/// assert_eq!(r.err().and_then(|e| e.raw_os_error()), Some(libc::EAGAIN));
/// fault::fail_syscall(Syscall::SpawnThread, 0, 0, 0);
/// ```
pub fn fail_syscall(call: Syscall, skip: u32, count: u32, errno: i32) {
    let mut f = crate::lock(&SYSCALL_FAILS);
    f[call as usize] = (skip, count, errno);
    SYSCALL_ARMED.store(f.iter().any(|e| e.1 > 0), Ordering::SeqCst);
}

/// The error [`fail_syscall`] asked for this call of `call`, if any.
pub(crate) fn syscall(call: Syscall) -> Option<io::Error> {
    if !SYSCALL_ARMED.load(Ordering::Relaxed) {
        return None;
    }
    let mut f = crate::lock(&SYSCALL_FAILS);
    let e = &mut f[call as usize];
    if e.1 == 0 {
        return None;
    }
    if e.0 > 0 {
        e.0 -= 1;
        return None;
    }
    e.1 -= 1;
    Some(io::Error::from_raw_os_error(e.2))
}
