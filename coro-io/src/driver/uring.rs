//! The io_uring backend: native completions.
//!
//! # Slots
//!
//! Every submitted op owns one slot of a table; its `user_data` is the slot's
//! token (generation in the upper 32 bits, index + 1 in the lower). A slot
//! moves through
//!
//! ```text
//! Waiting --CQE--> Done --poll--> freed            (the future collects the result)
//! Waiting --drop--> Orphaned --CQE--> freed        (the driver owns the op box)
//! Done    --drop--> freed, Op::orphaned(result)    (e.g. an accepted fd is closed)
//! ```
//!
//! so an op's box (its buffer, `sockaddr`, `msghdr`) is freed only after the
//! kernel posted the op's own completion: never because a submit failed, the
//! SQ was full, or a cancel was issued (the kernel may still write into it
//! until then: freeing earlier is a use-after-free). A dropped future's op
//! gets an `ASYNC_CANCEL`; cancels that find the SQ full stay staged
//! with everything else and are never dropped (a lost cancel would leave
//! the op waiting, and its memory pinned, for good).
//!
//! # Submission
//!
//! `poll_op` stages its entry in memory (`State::pending`), not in the SQ.
//! The thread that parks the driver (the event loop) moves the staged
//! entries into the SQ right before it waits, so one `io_uring_enter`
//! submits a whole loop turn's worth and waits; when the SQ fills up it
//! enters to make room and goes on. A thread other than the parker that
//! serves the driver for its life (a pool worker polling op futures)
//! flushes and submits at once, so the loop need not be woken for its ops;
//! on a single-issuer ring (below) it wakes the loop instead, as only the
//! loop may enter, and so does a passing thread (a user's, a blocking
//! job's) with an op it starts on any ring but SQPOLL (whose kernel thread
//! submits): the kernel cancels a thread's requests when the thread exits,
//! and that op may outlive it.
//!
//! A future dropped while its entry is still staged simply takes the entry
//! back: the kernel never saw it, so there is nothing to cancel and no fd
//! it could touch after the caller closes (and reuses) the number. An entry
//! that is in the SQ but not consumed yet (possible only after a failed
//! enter) is submitted at once by the drop, for the same reason.
//!
//! # Task work
//!
//! A scheduler whose loop thread runs every task (`ThreadStrategy::Spawn`
//! with `ExecutionStrategy::Inline`) gets a single-issuer ring with
//! `IORING_SETUP_DEFER_TASKRUN` (Linux 6.1+): completions are processed when
//! the loop asks for them instead of by interrupting it, which is the main
//! per-request kernel cost of io_uring networking otherwise. The ring is
//! created disabled and enabled by the loop thread, which so becomes its
//! issuer. Other rings use `IORING_SETUP_COOP_TASKRUN` (5.19+). Both fall
//! back to a plain ring on older kernels.
//!
//! # Waiting
//!
//! `park(timeout)` is one `io_uring_enter(GETEVENTS | EXT_ARG)` with the
//! timeout in the argument (Linux 5.11+): timers cost no extra syscall or
//! SQE. Cross-thread wake-ups write an eventfd that a poll entry in the ring
//! watches.
//!
//! # Older kernels
//!
//! An op whose opcode the kernel lacks ([`Op::uring_native`] answers from
//! the probed [`Features`]: the file-system ops before Linux 5.15, say)
//! runs its syscall on the blocking pool, as the epoll driver runs regular
//! files; its future never notices the difference.
//!
//! Kernels that answer an op on an `O_NONBLOCK` fd with `-EAGAIN` instead of
//! waiting are handled: the slot waits for readiness with a poll entry, then
//! resubmits the op.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, squeue, types};

use super::notify::Notifier;
use super::probe::Features;
use super::recv_queue::{self, Arm, BufRing, Leased, StreamRx};
use super::{Backend, DriverKind, Interest, Readiness};
use super::{RingMode, UringOptions};
use crate::op::{BlockingOps, Held, Op, OpState};

/// How long the parker waits at most while fds wait to be closed
/// (`State::closing`).
const CLOSING_RECHECK: Duration = Duration::from_millis(1);

/// `user_data` of the eventfd poll that carries cross-thread wake-ups.
const WAKE_KEY: u64 = u64::MAX;
/// `user_data` of cancel requests (their own completions are ignored)
/// whose target may still be staged: they go in behind it.
const CANCEL_KEY: u64 = u64::MAX - 1;
/// `user_data` of cancel requests whose target is not staged (in the SQ or
/// consumed): they may go in ahead of anything staged (see `move_staged`).
const CANCEL_UNSTAGED_KEY: u64 = u64::MAX - 2;

/// An op whose future is gone, owned by the driver until its completion.
trait Orphan: Send {
    fn orphaned(&mut self, res: io::Result<usize>);
}

impl<T: Op> Orphan for T {
    fn orphaned(&mut self, res: io::Result<usize>) {
        Op::orphaned(self, res)
    }
}

/// Ops of dropped futures whose completions a turn reaped, with the
/// result they are told of (`Op::orphaned`: an fd opened or accepted for
/// nobody is closed), freed at the end of the turn, after the state lock
/// (a close may be slow: a FUSE file's flush waits for its daemon, and
/// every thread that starts an op needs the lock), each on its own: a
/// caller's buffer whose destructor panics must neither keep the others
/// from being freed nor unwind out of the turn (a scheduler's loop would
/// die of it).
struct Dead(Vec<DeadOp>);

/// An op of a dropped future, and the result to tell it of, if any.
type DeadOp = (Box<dyn Orphan>, Option<io::Result<usize>>);

/// An fd closed late ([`Backend::close_fd`]): closed when dropped with
/// the turn's other dead ops, after the state lock (a close may be slow).
struct LateClose(#[allow(dead_code)] std::os::fd::OwnedFd);

impl Orphan for LateClose {
    fn orphaned(&mut self, _: io::Result<usize>) {}
}

impl Drop for Dead {
    fn drop(&mut self) {
        for (mut op, res) in self.0.drain(..) {
            crate::survive("dropping the buffer of a finished op", || {
                if let Some(res) = res {
                    op.orphaned(res);
                }
                drop(op);
            });
        }
    }
}

/// What the slot's in-flight entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The op itself.
    Op,
    /// A readiness poll before resubmitting the op (the `-EAGAIN` path).
    Ready,
}

enum SlotState {
    Free,
    Waiting {
        waker: Option<Waker>,
        phase: Phase,
        /// The op must finish even if its future is dropped
        /// (`Op::finish_if_dropped`): shutdown waits for it first.
        finish: bool,
    },
    Done {
        res: io::Result<usize>,
        phase: Phase,
        /// The kernel said more is waiting on the socket
        /// (`IORING_CQE_F_SOCK_NONEMPTY`: data after a receive, Linux
        /// 5.19+; connections after an accept, 6.10+).
        more: bool,
    },
    Orphaned {
        op: Box<dyn Orphan>,
        phase: Phase,
        /// Left to finish (`Op::finish_if_dropped`: a file's write or
        /// sync whose future was dropped): shutdown waits for it instead
        /// of cancelling it, as epoll's waits for its pool jobs.
        finish: bool,
    },
    /// A stream socket's receive queue (`recv_queue.rs`): lives from the
    /// socket's first read until it was released and its receive ended.
    Stream(Box<StreamRx>),
}

struct Slot {
    generation: u32,
    state: SlotState,
}

#[derive(Default)]
struct State {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Entries staged for the next submission, oldest first.
    pending: Vec<squeue::Entry>,
    /// The eventfd poll is in the kernel (or staged by the parker).
    wake_armed: bool,
    /// The kernel refused a multishot poll (before Linux 5.13): re-arm a
    /// one-shot poll after each wake-up instead.
    wake_oneshot: bool,
    /// Set by `cancel_all` (shutdown): no new op is submitted after it.
    closed: bool,
    /// Per fd: the last stream read drained it (see `Op::drains`).
    drained: Vec<bool>,
    /// Entries ever moved into the SQ (wrapping): our SQ tail, so that
    /// `pushed - sq.len()` is how far the kernel has read.
    pushed: u32,
    /// Slots in use (Waiting, Done or Orphaned): counted here, under the
    /// lock that `alloc` and `release` hold anyway, not in an atomic that
    /// every op would pay for twice. (Stream slots are not ops in flight.)
    live: usize,
    /// The provided-buffer ring of the receive queues (`None`: the kernel
    /// lacks multishot receive, or the user turned it off).
    rx: Option<BufRing>,
    /// Per fd: the token of its receive queue's slot (0: none).
    streams: Vec<u64>,
    /// Fds whose owner let go of them ([`Backend::close_fd`]) while the
    /// kernel had not read the SQ up to the mark of their receive's end
    /// (where the queue stood then): closed by the reap that finds the
    /// kernel read that far, or
    /// with this state, after the ring (the state is declared after it in
    /// [`UringDriver`]).
    closing: Vec<(u32, std::os::fd::OwnedFd)>,
    /// Wakers a receive queue's full list let go of, woken by the next
    /// reap (see `read_queue`).
    evicted: Vec<Waker>,
}

impl State {
    fn alloc(&mut self, state: SlotState) -> u64 {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    state: SlotState::Free,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        let slot = &mut self.slots[idx as usize];
        slot.state = state;
        ((slot.generation as u64) << 32) | (idx as u64 + 1)
    }

    fn get_mut(&mut self, token: u64) -> Option<&mut Slot> {
        let idx = (token & 0xFFFF_FFFF).checked_sub(1)? as usize;
        let slot = self.slots.get_mut(idx)?;
        (slot.generation == (token >> 32) as u32 && !matches!(slot.state, SlotState::Free))
            .then_some(slot)
    }

    /// Put `state` into the slot of `token` (which the caller owns).
    fn set(&mut self, token: u64, state: SlotState) {
        let idx = (token & 0xFFFF_FFFF) as usize - 1;
        self.slots[idx].state = state;
    }

    fn release(&mut self, token: u64) {
        self.free_slot(token);
        self.live -= 1;
    }

    fn free_slot(&mut self, token: u64) {
        let idx = (token & 0xFFFF_FFFF) as usize - 1;
        let slot = &mut self.slots[idx];
        slot.state = SlotState::Free;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(idx as u32);
    }

    /// The token of `fd`'s receive queue, made on first use.
    fn stream_token(&mut self, fd: RawFd) -> u64 {
        let i = fd as usize;
        if let Some(&t) = self.streams.get(i) {
            if t != 0 {
                return t;
            }
        }
        let t = self.alloc(SlotState::Stream(Box::new(StreamRx::new())));
        self.live -= 1; // not an op in flight
        if self.streams.len() <= i {
            self.streams.resize(i + 1, 0);
        }
        self.streams[i] = t;
        t
    }

    /// The receive queue of `token` and the buffer ring, borrowed together.
    fn stream(&mut self, token: u64) -> Option<(&mut StreamRx, &mut BufRing)> {
        let idx = (token & 0xFFFF_FFFF).checked_sub(1)? as usize;
        let slot = self.slots.get_mut(idx)?;
        if slot.generation != (token >> 32) as u32 {
            return None;
        }
        match (&mut slot.state, self.rx.as_mut()) {
            (SlotState::Stream(rx), Some(ring)) => Some((rx, ring)),
            _ => None,
        }
    }
}

thread_local! {
    /// This thread's number (see [`thread_mark`]); 0 until first asked.
    static THREAD_MARK: Cell<usize> = const { Cell::new(0) };
    /// The driver (its [`id`](UringDriver::id)) this thread serves until
    /// that driver's scheduler shuts down: its loop thread, its pool's
    /// workers (see [`UringDriver::may_enter`]). 0: none.
    static SERVES: Cell<usize> = const { Cell::new(0) };
}

/// A number for the calling thread that no other thread of the process
/// ever has, to recognise the parking thread cheaply. (Not an address,
/// such as a thread-local's: a thread started after another ended is
/// often given the same stack and thread-local block, and would pass for
/// it.)
fn thread_mark() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    THREAD_MARK.with(|m| {
        if m.get() == 0 {
            m.set(NEXT.fetch_add(1, Ordering::Relaxed));
        }
        m.get()
    })
}

/// A driver's mark for the threads that serve it for its life (see
/// [`UringDriver::may_enter`]): its [`id`](UringDriver::id), which no
/// other driver of the process ever has.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Server(usize);

impl Server {
    /// No driver (epoll's threads need no mark).
    pub(crate) const NONE: Server = Server(0);

    /// The calling thread serves this driver from now on.
    pub(crate) fn serve_here(self) {
        if self.0 != 0 {
            SERVES.with(|s| s.set(self.0));
        }
    }
}

/// The io_uring driver.
pub(crate) struct UringDriver {
    ring: IoUring,
    state: Mutex<State>,
    /// Held by the thread inside `park` (one parker at a time).
    parker: Mutex<()>,
    /// This driver's number, unique in the process (see [`Server`]).
    id: usize,
    /// `thread_mark()` of the last thread that parked (single issuer: of
    /// the thread that enabled the ring, the only one that may enter).
    parker_thread: AtomicUsize,
    /// Only the enabling thread may enter the kernel (`SINGLE_ISSUER`).
    single_issuer: bool,
    /// A kernel thread reads the SQ (`IORING_SETUP_SQPOLL`).
    sqpoll: bool,
    /// Cross-thread wake-ups (`unpark`).
    notifier: Notifier,
    features: Features,
    /// Ops whose opcode this kernel lacks, run on the blocking pool.
    blocking: BlockingOps,
}

impl std::fmt::Debug for UringDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringDriver")
            .field("sq_entries", &self.ring.params().sq_entries())
            .field("cq_entries", &self.ring.params().cq_entries())
            // `try_lock`: formatting must not wait on (or deadlock with) a
            // holder of the state lock.
            .field("in_flight", &self.state.try_lock().map(|s| s.live).ok())
            .field("features", &self.features)
            .finish()
    }
}

/// Say which step of the set-up failed and what that usually means.
fn setup_error(e: io::Error) -> io::Error {
    let hint = match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)",
        Some(libc::EPERM) => {
            "io_uring is not permitted (EPERM: a seccomp filter, a container policy, \
             or sysctl kernel.io_uring_disabled)"
        }
        Some(libc::ENOMEM) => "not enough locked memory for the rings (ENOMEM: RLIMIT_MEMLOCK)",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "out of file descriptors",
        Some(libc::EINVAL) => "the kernel rejected the ring parameters (EINVAL)",
        _ => "io_uring_setup failed",
    };
    io::Error::new(e.kind(), format!("io_uring unavailable: {hint}: {e}"))
}

impl UringDriver {
    pub(crate) fn new(opts: &UringOptions, issuer: Issuer) -> io::Result<UringDriver> {
        if let Some(errno) = opts.inject_setup_error {
            return Err(setup_error(io::Error::from_raw_os_error(errno)));
        }
        let entries = opts.entries.clamp(2, 32_768).next_power_of_two();
        let build = |taskrun: Taskrun| {
            let mut b = IoUring::builder();
            b.setup_cqsize(entries.saturating_mul(4)).setup_clamp();
            if let Some(idle) = opts.sqpoll_idle {
                b.setup_sqpoll(u32::try_from(idle.as_millis()).unwrap_or(u32::MAX).max(1));
            }
            match taskrun {
                Taskrun::Deferred => {
                    // TASKRUN_FLAG makes the kernel say (IORING_SQ_TASKRUN)
                    // when deferred completions wait for an enter: a turn
                    // that does not block must then still enter, or I/O
                    // starves while tasks keep the loop busy.
                    b.setup_single_issuer()
                        .setup_defer_taskrun()
                        .setup_taskrun_flag()
                        .setup_r_disabled();
                }
                Taskrun::Coop => {
                    b.setup_coop_taskrun().setup_taskrun_flag();
                }
                Taskrun::Plain => {}
            }
            b.build(entries)
        };
        let wanted = wanted_modes(opts, issuer)?;
        let mut last = None;
        let mut made = None;
        for &t in wanted {
            match build(t) {
                Ok(r) => {
                    made = Some((r, t));
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
                Err(e) => return Err(setup_error(e)),
            }
        }
        let Some((ring, taskrun)) = made else {
            return Err(setup_error(
                last.unwrap_or_else(|| io::Error::other("no ring")),
            ));
        };
        if !ring.params().is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring unavailable: the kernel lacks IORING_FEAT_EXT_ARG (timed waits, Linux 5.11+)",
            ));
        }
        let mut features = Features::probe(&ring);
        if opts.inject_missing_fs_ops {
            features = features.without_fs_ops();
        }
        features.defer_taskrun = taskrun == Taskrun::Deferred;
        features.coop_taskrun = taskrun == Taskrun::Coop;
        // Multishot receive came with Linux 6.0, as did SEND_ZC (the probe
        // cannot see it: it is a flag of RECV). Registered before the ring
        // is enabled, as a single-issuer ring allows.
        let rx = if opts.multishot_recv && features.send_zc {
            register_buf_ring(&ring, opts.recv_buffers)
        } else {
            None
        };
        features.recv_multishot = rx.is_some();
        let notifier = Notifier::new()?;
        let d = UringDriver {
            ring,
            state: Mutex::new(State {
                rx,
                ..State::default()
            }),
            parker: Mutex::new(()),
            id: {
                // Not its address: a driver made after another was
                // dropped may get the same one, and the old one's threads
                // would pass for its servers.
                static NEXT: AtomicUsize = AtomicUsize::new(1);
                NEXT.fetch_add(1, Ordering::Relaxed)
            },
            parker_thread: AtomicUsize::new(0),
            single_issuer: taskrun == Taskrun::Deferred,
            sqpoll: opts.sqpoll_idle.is_some(),
            notifier,
            features,
            blocking: BlockingOps::default(),
        };
        Ok(d)
    }

    /// Single-issuer rings: make the calling thread the ring's issuer (the
    /// only one that enters the kernel from now on). Called by the
    /// scheduler's loop thread before its first turn; a no-op otherwise.
    pub(crate) fn enable_here(&self) -> io::Result<()> {
        if self.single_issuer {
            self.ring.submitter().register_enable_rings()?;
            self.parker_thread.store(thread_mark(), Ordering::Relaxed);
        }
        Ok(())
    }

    pub(crate) fn features(&self) -> &Features {
        &self.features
    }

    /// Ops started on the blocking pool so far (opcodes the kernel lacks).
    pub(crate) fn blocking_started(&self) -> u64 {
        self.blocking.started()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    /// Make sure the poll of the wake-up eventfd is in the kernel: a
    /// multishot poll, armed once, that completes on every `unpark`.
    ///
    /// Only the parking thread calls this, before it waits, and it submits
    /// the poll itself, under the state lock: so the poll is in the kernel
    /// whenever the parker blocks (a re-arm left staged would let it sleep
    /// through every later `unpark`), and its completion work is queued to
    /// the thread that waits for it, not to a pool worker whose submit
    /// happened to carry it (with `COOP_TASKRUN` a busy worker would hold
    /// every wake-up back).
    fn arm_wake(&self, st: &mut State) {
        if st.wake_armed {
            return;
        }
        let e = opcode::PollAdd::new(
            types::Fd(self.notifier.as_fd().as_raw_fd()),
            libc::POLLIN as u32,
        )
        .multi(!st.wake_oneshot)
        .build()
        .user_data(WAKE_KEY);
        st.pending.insert(0, e);
        st.wake_armed = true;
        self.flush(st);
        let _ = self.ring.submitter().submit();
    }

    /// Stage `entry` for the next submission.
    fn push(&self, st: &mut State, entry: squeue::Entry) {
        st.pending.push(entry);
    }

    /// Move staged entries into the SQ, entering the kernel to make room
    /// when it is full (callers are threads that may enter). A failed enter
    /// leaves the rest staged for the next turn.
    fn flush(&self, st: &mut State) {
        // Bounded: each round either empties the staging area or found the
        // SQ full and entered to let the kernel consume it.
        for _ in 0..64 {
            if !self.move_staged(st) || self.ring.submitter().submit().is_err() {
                return;
            }
        }
    }

    /// Push staged entries into the SQ in order until it is full. Returns
    /// whether some are left (the SQ filled up). A thread that may not
    /// start ops ([`may_start_ops`](Self::may_start_ops)) pushes only the
    /// cancels whose target is not staged ([`CANCEL_UNSTAGED_KEY`]): the
    /// ops staged with them (its own too) would become its requests, which
    /// the kernel cancels when it exits; they wait for the parker, and so
    /// does a cancel that must follow its staged target (shutdown's).
    fn move_staged(&self, st: &mut State) -> bool {
        let only_cancels = !self.may_start_ops();
        let mut moved = 0;
        let mut full = false;
        // SAFETY: the SQ is only touched under the state lock, which our
        // callers hold (they pass its guard's contents).
        let mut sq = unsafe { self.ring.submission_shared() };
        st.pending.retain(|e| {
            if full || (only_cancels && e.get_user_data() != CANCEL_UNSTAGED_KEY) {
                return true;
            }
            // SAFETY: the entry points into an op's heap box, or nothing.
            // The box is not freed before the entry's completion: while its
            // future lives, the future's drop hands it to the slot (or takes
            // a still-staged entry back) instead of freeing it; after that
            // the slot owns it until the completion. (A leaked future leaks
            // the box with it.)
            if unsafe { sq.push(e) }.is_err() {
                full = true;
                return true;
            }
            moved += 1;
            false
        });
        sq.sync();
        drop(sq);
        st.pushed = st.pushed.wrapping_add(moved as u32);
        full
    }

    /// Whether a cancel that may go ahead is still staged (see
    /// [`move_staged`](Self::move_staged)).
    fn cancel_staged(st: &State) -> bool {
        st.pending
            .iter()
            .any(|e| e.get_user_data() == CANCEL_UNSTAGED_KEY)
    }

    /// SQPOLL: wait until the kernel's SQ thread has read every entry moved
    /// into the SQ so far (at most a second).
    ///
    /// A dropped op's entry may still sit in the SQ, and its fd is about
    /// to be closed by its owner. Until the SQ thread has read the entry,
    /// the kernel has not looked the fd up: if the number were reused by
    /// then, the op would run on the new file (a dropped send writing into
    /// another connection). Once read, the request holds the file it found,
    /// so closing the number no longer matters. The drop blocks for as long
    /// as the SQ thread takes to reach the entry (waking it if it sleeps).
    /// (On a single-issuer ring a drop off the loop thread waits the same
    /// way for the loop's enter: `drop_op`, `release_stream`.)
    fn wait_sq_read(&self, st: MutexGuard<'_, State>) {
        let target = st.pushed;
        drop(st);
        self.wait_kernel_read(target, true);
    }

    /// Wait (at most a second) until the kernel has read the SQ up to
    /// entry number `target` (wrapping, as `State::pushed`). `poke`: enter
    /// to wake a sleeping SQ thread (SQPOLL); else another thread (the
    /// loop) submits and this one only waits.
    fn wait_kernel_read(&self, target: u32, poke: bool) {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if self.kernel_read(&self.state(), target) {
                return;
            }
            if Instant::now() >= deadline {
                crate::warn(format_args!(
                    "io_uring: the kernel did not read a cancel's entry within 1 s"
                ));
                return;
            }
            if poke {
                // Wakes the SQ thread if it went to sleep (no syscall if not).
                let _ = self.ring.submitter().submit();
                std::thread::yield_now();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    /// Whether the kernel has read the SQ up to entry number `target`
    /// (wrapping, as `State::pushed`).
    fn kernel_read(&self, st: &State, target: u32) -> bool {
        let left = self.unsubmitted(st);
        let read = st.pushed.wrapping_sub(left as u32);
        // Wrapping comparison: has the kernel's head reached `target`? Or
        // has it read everything staged: then ours too, also when entries
        // staged before ours were taken back (`drop_op`) and the head
        // stops short of a `target` counted with them.
        read.wrapping_sub(target) as i32 >= 0 || (left == 0 && st.pending.is_empty())
    }

    /// Entries in the SQ the kernel has not consumed yet. Takes the state
    /// guard because an SQ view writes its tail back when dropped.
    fn unsubmitted(&self, _st: &State) -> usize {
        // SAFETY: the state lock is held (the guard is our argument).
        let sq = unsafe { self.ring.submission_shared() };
        sq.len()
    }

    fn on_parker_thread(&self) -> bool {
        self.parker_thread.load(Ordering::Relaxed) == thread_mark()
    }

    /// What makes a thread one that serves this driver until its
    /// scheduler shuts down (see [`may_enter`](Self::may_enter)).
    pub(crate) fn server(&self) -> Server {
        Server(self.id())
    }

    fn id(&self) -> usize {
        self.id
    }

    /// Whether the calling thread may enter the kernel.
    fn may_enter(&self) -> bool {
        !self.single_issuer || self.on_parker_thread()
    }

    /// Whether the calling thread may submit an op it starts (one that may
    /// stay in the kernel): the parker; on a ring any thread may enter,
    /// also the threads that serve this driver for its life (the loop's,
    /// the pool's workers), and any thread on SQPOLL (whose kernel thread
    /// submits). Not a passing thread (a user's, a blocking job's): the
    /// kernel cancels the requests a thread submitted when that thread
    /// exits, so an op it submitted that outlives it (a send the
    /// `AsyncWrite` adapter left in flight, a receive queue's multishot
    /// receive) would fail with `ECANCELED`. Such a thread stages the op
    /// and wakes the parker, as every thread but the issuer does on a
    /// single-issuer ring. (Cancels it still submits itself where it may
    /// enter: they are urgent, and end in the kernel at once; the ops
    /// staged with them stay staged, see [`move_staged`](Self::move_staged).
    /// What a thread that may start ops moved into the SQ and has not
    /// entered yet goes in with such a cancel's enter: a window of a few
    /// instructions, or until the parker's next turn after an enter that
    /// left entries in the SQ, `EBUSY` say.)
    fn may_start_ops(&self) -> bool {
        self.on_parker_thread()
            || (!self.single_issuer
                && (self.sqpoll || SERVES.try_with(Cell::get).ok() == Some(self.id())))
    }

    /// After staging an op that may stay in the kernel: as
    /// [`submit_if_foreign`](Self::submit_if_foreign), but a thread that
    /// may not start ops ([`may_start_ops`](Self::may_start_ops)) leaves
    /// it to the parker. Called without the lock.
    fn submit_started(&self) {
        if self.on_parker_thread() {
            return;
        }
        if !self.may_start_ops() {
            self.unpark();
            return;
        }
        self.submit_if_foreign();
    }

    /// After staging from a thread other than the parker: submit now, so
    /// the loop needs no wake-up to see the entry (single issuer: wake it,
    /// it is the only one allowed to submit). Called without the lock.
    fn submit_if_foreign(&self) {
        if self.on_parker_thread() {
            return;
        }
        if self.single_issuer {
            self.unpark();
            return;
        }
        let staged = {
            let mut st = self.state();
            self.flush(&mut st);
            !st.pending.is_empty()
        };
        // Whatever failed (`EBUSY`, `EAGAIN` and `EINTR` too: they leave
        // entries unsubmitted) is left for the loop; make sure it looks:
        // blocked in its wait, it would not look at the queue again.
        #[cfg(feature = "fault-injection")]
        let failed = crate::fault::syscall(crate::fault::Syscall::ForeignSubmit).is_some();
        #[cfg(not(feature = "fault-injection"))]
        let failed = false;
        if failed || self.ring.submitter().submit().is_err() || staged {
            self.unpark();
        }
    }

    /// Move every available completion into its slot. Wakers go to `wake`,
    /// ops of dropped futures to `dead` (freed by the caller, unlocked).
    /// Returns the number of op completions and whether an `unpark` was
    /// among them.
    fn reap(&self, st: &mut State, wake: &mut Vec<Waker>, dead: &mut Vec<DeadOp>) -> (usize, bool) {
        let mut n = 0;
        let mut unparked = false;
        Self::take_returns(st);
        if !st.closing.is_empty() {
            self.close_read(st, dead);
        }
        if !st.evicted.is_empty() {
            wake.append(&mut st.evicted);
        }
        // SAFETY: the CQ is only touched under the state lock, which we hold.
        let mut cq = unsafe { self.ring.completion_shared() };
        cq.sync();
        for cqe in &mut cq {
            let token = cqe.user_data();
            if token == WAKE_KEY {
                if cqe.result() == -libc::EINVAL && !st.wake_oneshot {
                    st.wake_oneshot = true; // no multishot poll here
                }
                // A multishot poll ends without `F_MORE` (after a CQ
                // overflow, say): the parker arms a new one.
                if !io_uring::cqueue::more(cqe.flags()) {
                    st.wake_armed = false;
                }
                self.notifier.clear();
                unparked = true;
                continue;
            }
            if token == CANCEL_KEY || token == CANCEL_UNSTAGED_KEY {
                continue;
            }
            n += 1;
            let raw = cqe.result();
            if let Some((rx, ring)) = st.stream(token) {
                let flags = cqe.flags();
                let buffer = io_uring::cqueue::buffer_select(flags);
                let more = io_uring::cqueue::more(flags);
                let stop = rx.complete(ring, raw, buffer, more, wake);
                let free = rx.released && !rx.armed;
                if stop {
                    rx.cancelling = true;
                    self.cancel(st, token);
                }
                if free {
                    st.free_slot(token);
                }
                continue;
            }
            let res = if raw < 0 {
                Err(io::Error::from_raw_os_error(-raw))
            } else {
                Ok(raw as usize)
            };
            let Some(slot) = st.get_mut(token) else {
                // No op of ours completes twice (see `Op`'s contract); a
                // stray completion is skipped, not trusted: panicking here,
                // on the loop thread under the state lock, would lose the
                // wake-ups gathered so far.
                #[cfg(feature = "tracing")]
                tracing::warn!(token, "io_uring completion for no op in flight");
                continue;
            };
            match std::mem::replace(&mut slot.state, SlotState::Free) {
                SlotState::Waiting { waker, phase, .. } => {
                    let more = io_uring::cqueue::sock_nonempty(cqe.flags());
                    slot.state = SlotState::Done { res, phase, more };
                    wake.extend(waker);
                }
                SlotState::Orphaned { op, phase, .. } => {
                    dead.push((op, (phase == Phase::Op).then_some(res)));
                    st.release(token);
                }
                other => slot.state = other,
            }
        }
        drop(cq);
        (n, unparked)
    }

    /// Cancel every op whose slot `pick` chooses (at shutdown).
    fn cancel_where(&self, st: &mut State, pick: impl Fn(&SlotState) -> bool) {
        let tokens: Vec<u64> = st
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| pick(&s.state))
            .map(|(i, s)| ((s.generation as u64) << 32) | (i as u64 + 1))
            .collect();
        for t in tokens {
            self.cancel(st, t);
        }
    }

    /// Enter the ring and reap, while any slot is in a state `pending`
    /// chooses, until `deadline` (`None`: no bound). The caller holds the
    /// parker (at shutdown). A turn whose wakers panicked (a foreign
    /// executor's) does not end the reaping, or the ops still in the
    /// kernel would never be reaped and their waiters never woken: the
    /// first panic is kept in `panicked`, for the caller to resume once
    /// done.
    fn reap_while(
        &self,
        pending: impl Fn(&SlotState) -> bool,
        deadline: Option<Instant>,
        panicked: &mut Option<Box<dyn std::any::Any + Send>>,
    ) {
        loop {
            let left = {
                let st = self.state();
                // Fds waiting to be closed (`close_fd`) are closed by a
                // reap too: not left open for as long as handles keep the
                // shut-down driver.
                st.slots.iter().any(|s| pending(&s.state)) || !st.closing.is_empty()
            };
            let now = Instant::now();
            if !left || deadline.is_some_and(|d| now >= d) {
                return;
            }
            let step = Duration::from_millis(10);
            let wait = Some(deadline.map_or(step, |d| (d - now).min(step)));
            if let Err(p) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.park_inner(wait)))
            {
                panicked.get_or_insert(p);
            }
        }
    }

    /// The fds of `State::closing` the kernel no longer needs (it read
    /// the entries that could name them) go to `dead`, closed after the
    /// lock.
    #[cold]
    fn close_read(&self, st: &mut State, dead: &mut Vec<DeadOp>) {
        let mut i = 0;
        while i < st.closing.len() {
            if self.kernel_read(st, st.closing[i].0) {
                let (_, fd) = st.closing.swap_remove(i);
                dead.push((Box::new(LateClose(fd)), None));
            } else {
                i += 1;
            }
        }
    }

    /// Give the buffers that leases released back to the ring.
    fn take_returns(st: &mut State) {
        if let Some(ring) = st.rx.as_mut() {
            ring.take_returns();
        }
    }

    /// The entry that keeps `rx`'s data flowing, if one should be armed
    /// now: a receive whenever the queue has room, also after a read that
    /// found data (the next request is likely on its way), unless the
    /// ring ran dry for the socket (it would fail at once: a reader that
    /// waits arms when the queue is empty); a readiness poll only for a
    /// reader that waits (`waiting`).
    fn next_arm(
        rx: &mut StreamRx,
        ring: &BufRing,
        fd: RawFd,
        waiting: bool,
    ) -> Option<squeue::Entry> {
        let eager = !rx.reads_directly(ring) && !rx.ring_dry(ring);
        if !(rx.wants_arm() && (waiting || eager)) {
            return None;
        }
        Some(match rx.arm(ring) {
            Arm::Multi => opcode::RecvMulti::new(types::Fd(fd), recv_queue::BGID).build(),
            Arm::Poll => opcode::PollAdd::new(types::Fd(fd), poll_mask(Interest::Read)).build(),
        })
    }

    /// A read of `fd` through its receive queue, under the state lock:
    /// what every such read checks first (a queue at all, not shut down,
    /// the socket's slot, buffers that leases gave back to a socket the
    /// ring ran dry for), then `read`, then keeping data flowing
    /// ([`next_arm`](Self::next_arm)).
    fn read_queue<T>(
        &self,
        fd: RawFd,
        read: impl FnOnce(&mut StreamRx, &mut BufRing) -> Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let mut st = self.state();
        if st.rx.is_none() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this io_uring driver has no receive queue (multishot receive off)",
            )));
        }
        if st.closed {
            return Poll::Ready(Err(super::shut_down()));
        }
        let token = st.stream_token(fd);
        let Some((rx, ring)) = st.stream(token) else {
            return Poll::Ready(Err(io::Error::other("receive queue lost (driver bug)")));
        };
        if rx.starved() {
            // Buffers that leases released count for this read already: a
            // socket the ring ran dry for goes back to multishot receives
            // without waiting for the next reap.
            ring.take_returns();
        }
        let res = read(rx, ring);
        let mut evicted = rx.take_evicted();
        // Woken by the next reap, not here: this read may run under a
        // lock of its caller's (a stream's `futures_io` adapter), where a
        // waker that polls its task inline would reach for it again.
        let defer = !evicted.is_empty();
        let next = Self::next_arm(rx, ring, fd, res.is_pending());
        if defer {
            st.evicted.append(&mut evicted);
        }
        if let Some(entry) = next {
            self.push(&mut st, entry.user_data(token));
            drop(st);
            self.submit_started();
        } else {
            drop(st);
        }
        if defer {
            self.unpark();
        }
        res
    }

    /// Queue a cancel for the in-flight entry `token` (which may still be
    /// staged: the cancel goes behind it).
    fn cancel(&self, st: &mut State, token: u64) {
        let staged = st.pending.iter().any(|e| e.get_user_data() == token);
        self.push(st, Self::cancel_entry(token, !staged));
    }

    /// Queue a cancel for `token`, whose entry is known not to be staged
    /// (in the submission queue or consumed), ahead of everything staged:
    /// it reaches the kernel in the first round of submission, not behind
    /// a backlog that the bounded rounds of `settle_cancel` may not get
    /// through (then a direct send of this thread could deliver bytes
    /// to the op being cancelled).
    fn cancel_first(&self, st: &mut State, token: u64) {
        st.pending.insert(0, Self::cancel_entry(token, true));
    }

    /// `unstaged`: `token`'s entry is not staged (see
    /// [`CANCEL_UNSTAGED_KEY`]).
    fn cancel_entry(token: u64, unstaged: bool) -> squeue::Entry {
        let key = if unstaged {
            CANCEL_UNSTAGED_KEY
        } else {
            CANCEL_KEY
        };
        opcode::AsyncCancel::new(token).build().user_data(key)
    }

    /// Whether a non-waiting turn must still enter the kernel: entries to
    /// submit, or completions held back by a CQ overflow or deferred work.
    fn needs_enter(&self, _st: &State) -> bool {
        // SAFETY: the state lock is held (the guard is our argument).
        let sq = unsafe { self.ring.submission_shared() };
        !sq.is_empty() || sq.cq_overflow() || sq.taskrun()
    }

    /// One timed wait; `Ok` also for the expected "nothing happened" errors.
    /// `must_enter` (from [`needs_enter`](Self::needs_enter)) matters only
    /// for a zero wait.
    fn enter(&self, wait: Option<Duration>, must_enter: bool) -> io::Result<()> {
        let sub = self.ring.submitter();
        // Tests: the kernel refusing the enter (the entries stay queued).
        #[cfg(feature = "fault-injection")]
        let injected = crate::fault::syscall(crate::fault::Syscall::Enter);
        #[cfg(not(feature = "fault-injection"))]
        let injected = None;
        let r = match (injected, wait) {
            (Some(e), _) => Err(e),
            (None, Some(d)) if d.is_zero() => {
                if must_enter {
                    sub.submit().map(drop)
                } else {
                    Ok(())
                }
            }
            (None, Some(d)) => {
                let ts = types::Timespec::from(d.min(Duration::from_secs(86_400)));
                let args = types::SubmitArgs::new().timespec(&ts);
                sub.submit_with_args(1, &args).map(drop)
            }
            (None, None) => sub.submit_and_wait(1).map(drop),
        };
        match r {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            r => r,
        }
    }

    fn park_inner(&self, timeout: Option<Duration>) -> io::Result<usize> {
        if !self.single_issuer {
            self.parker_thread.store(thread_mark(), Ordering::Relaxed);
        } else if !self.on_parker_thread() {
            // Only the issuer may enter: everyone else just waits a little
            // (a scheduler never does this; a hand-driven Handle might).
            std::thread::sleep(
                timeout
                    .unwrap_or(Duration::from_millis(1))
                    .min(Duration::from_millis(1)),
            );
            return Ok(0);
        }
        let mut wake = Vec::new();
        let mut dead = Dead(Vec::new());
        let (mut n, unparked, must_enter, staged, closed, closing) = {
            let mut st = self.state();
            // Reap first: it may find the wake poll's completion, whose
            // re-arm must go into the kernel with this very submission.
            let (n, unparked) = self.reap(&mut st, &mut wake, &mut dead.0);
            self.arm_wake(&mut st);
            self.flush(&mut st);
            let closed = st.closed;
            (
                n,
                unparked,
                self.needs_enter(&st),
                !st.pending.is_empty(),
                closed,
                !st.closing.is_empty(),
            )
        };
        // An `unpark` found here cleared the notified flag: whatever it
        // announced (a queued task) must be looked at before blocking, or a
        // second `unpark` that saw the flag still set would be lost.
        // Entries still staged (more than a flush moves through a small
        // SQ) must not wait for a completion that only they could bring:
        // this turn does not block, and the next flushes the rest.
        // Closed: `cancel_all` waits for the parker's lock to reap; a
        // thread that parks again meanwhile must not block it.
        // Fds waiting to be closed (`close_fd`) until the kernel has read
        // the entries before them: an SQ thread reads on its own, with no
        // completion to end the wait, and a process may wait for the
        // close (a child for its stdin's end): look again soon.
        let wait = if n > 0 || unparked || !wake.is_empty() || staged || closed {
            Some(Duration::ZERO)
        } else if closing {
            Some(timeout.map_or(CLOSING_RECHECK, |t| t.min(CLOSING_RECHECK)))
        } else {
            timeout
        };
        let must_enter = must_enter || staged;
        // Tests: widen the window between the flush and the enter.
        #[cfg(feature = "fault-injection")]
        crate::fault::before_enter();
        let mut entered = self.enter(wait, must_enter);
        {
            let mut st = self.state();
            n += self.reap(&mut st, &mut wake, &mut dead.0).0;
            if entered
                .as_ref()
                .is_err_and(|e| e.raw_os_error() == Some(libc::EBADR))
            {
                // The kernel dropped completions: a CQ overflow could not
                // be stored (its memory ran out), and it says so once. If
                // the wake poll's last completion was among them, no poll
                // is armed and every later `unpark` would be lost: arm
                // another (a second one is harmless: each completion only
                // clears the eventfd). An op whose completion was lost
                // never completes; say so.
                st.wake_armed = false;
                entered = Err(io::Error::other(
                    "io_uring dropped completions (EBADR: the kernel could not keep a \
                     completion-queue overflow); ops whose completion was lost never finish",
                ));
            }
        }
        // The completions' wakers first: dropping a dead op may wake a
        // task too (an accept's late connection), and a waker that panics
        // there must not keep these from being woken.
        crate::wake_all(wake);
        drop(dead);
        entered.map(|()| n)
    }

    /// After a cancel was staged for an entry whose fd its owner may close
    /// (and the number be reused) as soon as we return: make sure the
    /// kernel reads what is in the SQ (after a failed enter it may sit
    /// there unconsumed). SQPOLL: wait for the SQ thread. Off the loop
    /// thread, send the cancel now (where this thread may enter).
    ///
    /// `now`: the cancelled op may still consume data (a dropped receive):
    /// submit the cancel before returning, not at the end of the loop's
    /// turn, where the thread may enter. Else a send of this thread's made
    /// as a direct syscall ([`Op::try_now`]) before the turn ends could
    /// deliver bytes that the dropped receive takes and loses with its
    /// buffer. (A direct receive, `Op::try_now` of a datagram receive,
    /// made meanwhile takes what is queued before the dropped one can; what
    /// arrives later the dropped one may still take, as it may without
    /// any direct call.) (A receive queue's end needs no such haste: its socket is
    /// being closed, or, for `into_fd`, it is submitted urgently anyway.)
    fn settle_cancel(&self, mut st: MutexGuard<'_, State>, now: bool) {
        if self.sqpoll {
            self.wait_sq_read(st);
            self.submit_if_foreign();
            return;
        }
        if self.may_enter() && (now || self.unsubmitted(&st) > 0) {
            // Bounded: an enter that fails leaves entries for the turn.
            for _ in 0..8 {
                self.flush(&mut st);
                let _ = self.ring.submitter().submit();
                if self.unsubmitted(&st) == 0 && (!now || !Self::cancel_staged(&st)) {
                    break;
                }
            }
        }
        drop(st);
        self.submit_if_foreign();
    }

    /// End `fd`'s receive queue (see [`Backend::release_fd`]); `urgent`:
    /// the cancel of its receive is in the kernel before this returns (on a
    /// single-issuer ring, off the loop thread, that waits for the loop).
    /// Returns `State::pushed` as it was when the receive's entry was
    /// found in the SQ or read (the mark the kernel must have read before
    /// the fd is closed), if it was.
    fn release_stream(&self, fd: RawFd, urgent: bool) -> Option<u32> {
        let mut st = self.state();
        // The fd number's next socket starts afresh: its first read is
        // not sent poll-first on this one's say-so.
        if let Some(d) = usize::try_from(fd).ok().and_then(|i| st.drained.get_mut(i)) {
            *d = false;
        }
        let token = st.streams.get_mut(fd as usize).map(std::mem::take)?;
        if token == 0 {
            return None;
        }
        let mut wake = Vec::new();
        let (rx, ring) = st.stream(token)?;
        rx.release(ring, &mut wake);
        if !rx.armed {
            st.free_slot(token);
        } else if let Some(i) = st.pending.iter().position(|e| e.get_user_data() == token) {
            // Still staged: the kernel never saw it.
            st.pending.remove(i);
            st.free_slot(token);
        } else {
            // The receive ends with its final completion, which frees the
            // slot; like a dropped op's, its entry must be read by the
            // kernel before the owner closes (and maybe reuses) the fd.
            let mark = st.pushed;
            if let Some((rx, _)) = st.stream(token) {
                if !rx.cancelling {
                    rx.cancelling = true;
                    self.cancel(&mut st, token);
                }
            }
            if urgent && self.may_enter() {
                // The owner keeps the fd (`into_fd`): stop taking its bytes
                // now, not at the end of the loop's turn.
                self.flush(&mut st);
                if self.ring.submitter().submit().is_err() || !st.pending.is_empty() {
                    // Left for the loop (see `submit_if_foreign`).
                    self.unpark();
                }
            } else if !self.may_enter() && !st.closed && (urgent || !self.sqpoll) {
                // Only the loop thread may enter this ring. Urgent: have it
                // submit the cancel (staged behind everything staged before
                // it) and wait, bounded, until the kernel has read it.
                // Otherwise, as for a dropped op (`drop_op`): the loop may
                // have moved the receive's entry into the queue without
                // entering yet, and the owner closes the fd when we return;
                // entered after that, the receive would be armed on
                // whatever socket took the number and take its bytes. Wait
                // until the kernel has read the entry (from then on it
                // holds its own file; the cancel follows).
                let target = if urgent {
                    st.pushed.wrapping_add(st.pending.len() as u32)
                } else {
                    st.pushed
                };
                drop(st);
                self.unpark();
                self.wait_kernel_read(target, false);
                crate::wake_all(wake);
                return Some(mark);
            }
            self.settle_cancel(st, false);
            crate::wake_all(wake);
            return Some(mark);
        }
        drop(st);
        crate::wake_all(wake);
        None
    }
}

/// Whether `opts` can be honoured for a ring entered by `issuer`
/// (`InvalidInput` saying why not).
pub(crate) fn check_options(opts: &UringOptions, issuer: Issuer) -> io::Result<()> {
    wanted_modes(opts, issuer).map(drop)
}

/// The ring modes to try, best first, for `opts` on a driver whose ring is
/// entered by `issuer` (a kernel that rejects one gets the next).
fn wanted_modes(opts: &UringOptions, issuer: Issuer) -> io::Result<&'static [Taskrun]> {
    const DEFER: &[Taskrun] = &[Taskrun::Deferred, Taskrun::Coop, Taskrun::Plain];
    const COOP: &[Taskrun] = &[Taskrun::Coop, Taskrun::Plain];
    const PLAIN: &[Taskrun] = &[Taskrun::Plain];
    if opts.plain_ring || opts.sqpoll_idle.is_some() {
        // The kernel takes no task-run flag together with SQPOLL.
        return Ok(PLAIN);
    }
    Ok(match (opts.ring_mode, issuer) {
        // Pool workers submit, so the kernel queues completion work to
        // them; with COOP_TASKRUN a worker busy computing holds it back
        // until its next kernel entry or timer tick (measured: a recv whose
        // worker spins completed 0.6-2.8 ms after its data arrived, against
        // 0.15 ms on a plain ring, at the same ping-pong throughput).
        (RingMode::Plain, _) | (RingMode::Auto, Issuer::Workers) => PLAIN,
        (RingMode::CoopTaskrun, _) | (RingMode::Auto, Issuer::AnyThread) => COOP,
        (RingMode::DeferTaskrun | RingMode::Auto, Issuer::LoopThread) => DEFER,
        (RingMode::DeferTaskrun, Issuer::AnyThread | Issuer::Workers) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "RingMode::DeferTaskrun needs a scheduler with ThreadStrategy::Spawn and \
                 ExecutionStrategy::Inline (one thread submits and waits)",
            ));
        }
    })
}

/// Who may enter the ring (chosen by whoever creates the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Issuer {
    /// Any thread may submit and park (a Manual inline scheduler, a bare
    /// Handle).
    AnyThread,
    /// A thread pool's workers submit (and any thread may park): tasks run
    /// on a pool.
    Workers,
    /// Only the thread that calls `enable_here` (a Spawn + Inline loop).
    LoopThread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taskrun {
    Deferred,
    Coop,
    Plain,
}

impl Backend for UringDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::IoUring
    }

    fn poll_op<T: Op>(
        &self,
        state: &mut OpState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if state.blocking.is_some() {
            return state.poll_blocking(cx, &self.blocking);
        }
        let native = |op: &mut Held<T>| op.get_mut().uring_native(&self.features);
        if state.token == 0 && state.op.as_mut().is_some_and(|op| !native(op)) {
            // The kernel has no opcode for it: the readiness drivers' way.
            return state.poll_blocking(cx, &self.blocking);
        }
        // A send that finds room in the socket buffer completes in the
        // syscall: cheaper than the ring's round trip, which costs the task
        // a second poll (and the op its box). Not with SQPOLL, whose point
        // is to submit without a syscall.
        if state.token == 0 && !state.cancel && !self.sqpoll {
            if let Some(r) = state.op.as_mut().and_then(|op| op.get_mut().try_now()) {
                match r {
                    Err(e) if super::nothing_moved(&e) => {}
                    r => return Poll::Ready(r),
                }
            }
        }
        // The kernel will hold pointers into the op: from here on it lives
        // on the heap (nothing to do after the first poll).
        let Some(op) = Held::on_heap(&mut state.op) else {
            return Poll::Ready(Err(io::Error::other("op polled after completion")));
        };
        if state.token == 0 {
            if let Some(fd) = op.closes_fd() {
                // A close ends the fd's receive queue first (as epoll drops
                // its registration), so a reused number starts afresh.
                self.release_fd(fd);
            }
        }
        let mut st = self.state();
        if state.token == 0 {
            if state.cancel {
                return Poll::Ready(Err(io::Error::from_raw_os_error(libc::ECANCELED)));
            }
            if st.closed {
                return Poll::Ready(Err(super::shut_down()));
            }
            if let Readiness::Fd(fd, Interest::Read) = op.readiness() {
                // RECVSEND_POLL_FIRST exists from Linux 5.19 (as OP_SOCKET).
                if self.features.socket && st.drained.get(fd as usize) == Some(&true) {
                    op.expect_empty();
                }
            }
            // No flags of the op's own: the driver counts on exactly one
            // completion per entry (see `Op`'s safety contract).
            let entry = op.sqe().clear_flags();
            let token = st.alloc(SlotState::Waiting {
                waker: Some(cx.waker().clone()),
                phase: Phase::Op,
                finish: op.finish_if_dropped(),
            });
            self.push(&mut st, entry.user_data(token));
            drop(st);
            state.token = token;
            self.submit_started();
            return Poll::Pending;
        }
        let token = state.token;
        let closed = st.closed;
        let Some(slot) = st.get_mut(token) else {
            return Poll::Ready(Err(io::Error::other("io_uring slot lost (driver bug)")));
        };
        match &mut slot.state {
            SlotState::Waiting { waker, .. } => {
                let old = match waker {
                    Some(w) if w.will_wake(cx.waker()) => None,
                    _ => waker.replace(cx.waker().clone()),
                };
                // The slot held the op's only copy: its drop may be the
                // last reference to a task, whose drop may reach this
                // driver (a stream it held): not under the lock.
                drop(st);
                drop(old);
                Poll::Pending
            }
            SlotState::Done { .. } => {
                let SlotState::Done { res, phase, more } =
                    std::mem::replace(&mut slot.state, SlotState::Free)
                else {
                    unreachable!()
                };
                if phase == Phase::Op {
                    op.more_waiting(more);
                }
                // Cancelled while it waited for readiness (the EAGAIN path
                // below): the op itself never ran.
                let res = if state.cancel && phase == Phase::Ready {
                    Err(io::Error::from_raw_os_error(libc::ECANCELED))
                } else {
                    res
                };
                let retry = match (&res, phase, op.readiness()) {
                    // Cancelled: whatever it got is the outcome.
                    _ if state.cancel => None,
                    // The kernel would not wait on this (O_NONBLOCK on an old
                    // kernel): wait for readiness, then resubmit.
                    (Err(e), Phase::Op, Readiness::Fd(fd, interest))
                        if e.raw_os_error() == Some(libc::EAGAIN) =>
                    {
                        Some((
                            Phase::Ready,
                            opcode::PollAdd::new(types::Fd(fd), poll_mask(interest)).build(),
                        ))
                    }
                    (Ok(_), Phase::Ready, _) => Some((Phase::Op, op.sqe().clear_flags())),
                    _ => None,
                };
                // Shut down (`cancel_all`): nothing would reap a resubmitted
                // entry, so the op fails as new ones do.
                let (retry, res) = if retry.is_some() && closed {
                    (None, Err(super::shut_down()))
                } else {
                    (retry, res)
                };
                match retry {
                    Some((phase, entry)) => {
                        slot.state = SlotState::Waiting {
                            waker: Some(cx.waker().clone()),
                            phase,
                            finish: op.finish_if_dropped(),
                        };
                        self.push(&mut st, entry.user_data(token));
                        drop(st);
                        self.submit_started();
                        Poll::Pending
                    }
                    None => {
                        if let (Ok(n), Readiness::Fd(fd, Interest::Read)) = (&res, op.readiness()) {
                            let i = fd as usize;
                            let d = op.drains(*n);
                            if d && st.drained.len() <= i {
                                st.drained.resize(i + 1, false);
                            }
                            if let Some(slot) = st.drained.get_mut(i) {
                                *slot = d;
                            }
                        }
                        st.release(token);
                        drop(st);
                        state.token = 0;
                        Poll::Ready(res)
                    }
                }
            }
            SlotState::Free | SlotState::Orphaned { .. } | SlotState::Stream(_) => {
                Poll::Ready(Err(io::Error::other(
                    "io_uring slot in a wrong state (driver bug)",
                )))
            }
        }
    }

    fn drop_op<T: Op>(&self, state: &mut OpState<T>) {
        if state.blocking.is_some() {
            state.abandon_blocking();
            return;
        }
        let token = std::mem::take(&mut state.token);
        let Some(op) = state.op.take().map(Held::into_box) else {
            return;
        };
        // The op's waker (the only copy: its drop may end a task whose
        // drop reaches this driver): dropped after the lock, which is
        // declared after it.
        let mut _waker: Option<Waker> = None;
        let mut st = self.state();
        let Some(slot) = st.get_mut(token) else {
            return;
        };
        let mut prev = std::mem::replace(&mut slot.state, SlotState::Free);
        if let SlotState::Waiting { waker, .. } = &mut prev {
            _waker = waker.take();
        }
        match prev {
            SlotState::Waiting { phase, .. } if op.finish_if_dropped() => {
                // Left to finish, staged or in the kernel: its completion
                // frees it (the op keeps its file open, so the fd number
                // cannot name another file meanwhile).
                st.set(
                    token,
                    SlotState::Orphaned {
                        op,
                        phase,
                        finish: true,
                    },
                );
            }
            SlotState::Waiting { phase, .. } => {
                if let Some(i) = st.pending.iter().position(|e| e.get_user_data() == token) {
                    // Still staged: the kernel never saw it. Take it back.
                    st.pending.remove(i);
                    st.release(token);
                    drop(st);
                    drop(op);
                    return;
                }
                st.set(
                    token,
                    SlotState::Orphaned {
                        op,
                        phase,
                        finish: false,
                    },
                );
                self.cancel_first(&mut st, token);
                if self.single_issuer && !self.sqpoll && !self.on_parker_thread() && !st.closed {
                    // Only the loop thread may enter this ring, and it may
                    // have moved our entry into the submission queue
                    // without entering yet. The owner may close the fd as
                    // soon as we return; entered after that, the op would
                    // start on whatever file took the number (and read its
                    // data into a buffer nobody reads). Wait, bounded,
                    // until the kernel has read our entry: from then on the
                    // op holds its own file.
                    // (Our entry is not staged, so it is among those moved
                    // into the queue so far: `pushed` is the mark to wait
                    // for; the cancel follows with the loop's next enter.)
                    let target = st.pushed;
                    drop(st);
                    self.unpark();
                    self.wait_kernel_read(target, false);
                    return;
                }
                self.settle_cancel(st, true);
            }
            SlotState::Done { res, phase, .. } => {
                st.release(token);
                drop(st);
                let mut op = op;
                if phase == Phase::Op {
                    Op::orphaned(&mut *op, res);
                }
            }
            other => slot.state = other,
        }
    }

    fn cancel_op<T: Op>(&self, state: &mut OpState<T>) {
        let token = state.token;
        if token == 0 {
            return; // never submitted: the next poll reports ECANCELED
        }
        // Dropped after the lock (see `drop_op`).
        let mut _waker: Option<Waker> = None;
        let mut st = self.state();
        let Some(slot) = st.get_mut(token) else {
            return;
        };
        if !matches!(slot.state, SlotState::Waiting { .. }) {
            return; // completed already: the next poll returns that
        }
        if let Some(i) = st.pending.iter().position(|e| e.get_user_data() == token) {
            // Still staged: the kernel never saw it. The next poll (whose
            // waker this is) finds it done.
            if let Some(SlotState::Waiting { waker, .. }) = st.get_mut(token).map(|s| &mut s.state)
            {
                _waker = waker.take();
            }
            st.pending.remove(i);
            st.set(
                token,
                SlotState::Done {
                    res: Err(io::Error::from_raw_os_error(libc::ECANCELED)),
                    phase: Phase::Op,
                    more: false,
                },
            );
            return;
        }
        self.cancel_first(&mut st, token);
        drop(st);
        self.submit_if_foreign();
    }

    fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let _g = match self.parker.try_lock() {
            Ok(g) => g,
            // A panic under it (a waker woken in a turn) poisoned it. It
            // guards no data: taking it as held would end every later
            // turn at once, and no completion would be reaped again.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(0), // another thread is parked here
        };
        self.park_inner(timeout)
    }

    fn unpark(&self) {
        self.notifier.notify();
    }

    fn in_flight(&self) -> usize {
        self.state().live + self.blocking.running()
    }

    fn recv_queue(&self) -> bool {
        self.features.recv_multishot
    }

    fn poll_recv(
        &self,
        fd: RawFd,
        cx: &mut Context<'_>,
        out: &mut recv_queue::RecvOut<'_>,
        peek: bool,
    ) -> Poll<io::Result<usize>> {
        self.read_queue(fd, |rx, ring| {
            let n = rx.copy_out(ring, out, peek);
            if peek && n > 0 && n < out.len() && rx.peek_goes_on_in_socket() {
                // What the socket holds comes after the queued bytes (see
                // `peek_goes_on_in_socket`). The end or an error is for a
                // later read to report, after these bytes: an error is
                // kept (the kernel hands a pending one out only once).
                let more = match recv_queue::recv_direct(fd, &mut out.after(n), true) {
                    Ok(k) => k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                    Err(e) => {
                        rx.saw_err(e);
                        0
                    }
                };
                Poll::Ready(Ok(n + more))
            } else if n > 0 || out.is_empty() {
                Poll::Ready(Ok(n))
            } else if let Some(end) = rx.take_end(peek) {
                Poll::Ready(end)
            } else if rx.reads_directly(ring) {
                // The ring is dry for this socket: read it readiness-style.
                match recv_queue::recv_direct(fd, out, peek) {
                    Ok(0) => {
                        rx.saw_eof();
                        Poll::Ready(Ok(0))
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        rx.add_waker(cx.waker());
                        Poll::Pending
                    }
                    r => Poll::Ready(r),
                }
            } else {
                rx.add_waker(cx.waker());
                Poll::Pending
            }
        })
    }

    fn poll_recv_lease(&self, fd: RawFd, cx: &mut Context<'_>) -> Poll<io::Result<Leased>> {
        self.read_queue(fd, |rx, ring| {
            if let Some(leased) = rx.take_front(ring) {
                Poll::Ready(Ok(leased))
            } else if let Some(end) = rx.take_end(false) {
                Poll::Ready(end.map(|_| Leased::End))
            } else if rx.reads_directly(ring) {
                Poll::Ready(Ok(Leased::Direct))
            } else {
                rx.add_waker(cx.waker());
                Poll::Pending
            }
        })
    }

    fn cancel_all(&self, bound: Duration) {
        // `None`: no bound (`Duration::MAX`, say) — wait as long as it takes.
        let deadline = Instant::now().checked_add(bound);
        // Writes and syncs that must finish (their future dropped, or kept
        // by a task the shutdown drops later) are let run first, for at
        // most half of it (and `FINISH_BOUND`): a write to a full pipe
        // nobody reads would never end, its file open meanwhile; the other
        // half is for reaping its cancel.
        let finish_by = Instant::now() + (bound / 2).min(super::FINISH_BOUND);
        let evicted = {
            let mut st = self.state();
            st.closed = true;
            self.cancel_where(&mut st, |s| in_kernel(s) && !left_to_finish(s));
            std::mem::take(&mut st.evicted)
        };
        // A thread parked without a bound (a bare handle's) holds the lock
        // below until a completion comes: wake it (it then sees `closed`
        // and parks no more without returning).
        self.unpark();
        let g = crate::lock(&self.parker);
        let mut panicked = None;
        // Wakers a full list let go of, if no reap comes to them (as
        // epoll's shutdown wakes them); a panicking one goes on once
        // everything is done, as a reap's does, not before the reaping.
        if let Err(p) =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::wake_all(evicted)))
        {
            panicked = Some(p);
        }
        self.reap_while(left_to_finish, Some(finish_by), &mut panicked);
        // The rest was cancelled above: only these are left to call off.
        self.cancel_where(&mut self.state(), left_to_finish);
        // Reap until every cancelled op's completion arrived (bounded):
        // waiting ops complete with ECANCELED and wake their futures (whose
        // tasks a closing scheduler drops, orphaning nothing new: their
        // slots are `Done`), orphans are freed.
        self.reap_while(in_kernel, deadline, &mut panicked);
        // Blocking-pool ops own their buffers on the pool thread; wait
        // (bounded) so that shutdown returns with nothing of ours running.
        self.blocking.wait_at_shutdown(deadline);
        drop(g);
        // A waker's panic goes on once everything is done.
        if let Some(p) = panicked {
            std::panic::resume_unwind(p);
        }
    }

    fn release_fd(&self, fd: RawFd) {
        let _ = self.release_stream(fd, false);
    }

    fn detach_fd(&self, fd: RawFd) {
        let _ = self.release_stream(fd, true);
    }

    fn close_fd(&self, fd: std::os::fd::OwnedFd) {
        // The fd's receive queue ends first; if its receive's entry had
        // been moved into the SQ, `release_stream` returns the mark the
        // kernel must have read before the fd may be closed, and waited
        // for it within a bound (an enter that keeps failing, a loop
        // thread held up for more than a second, a starved SQ thread):
        // past it, the number stays taken until the kernel has read that
        // far. (An op dropped in flight waited for its own entry in its
        // drop, within the same bound; past it, it is not tracked here.)
        // Else the fd is closed at once, as a drop promises (an op still
        // in the kernel holds the socket itself until its cancel ends).
        // The mark is where the queue stood when the receive was ended,
        // not the receive's own place in it: what was moved in with it
        // is waited for too (within the same bound, so it only matters
        // past it).
        let Some(target) = self.release_stream(fd.as_raw_fd(), false) else {
            drop(fd);
            return;
        };
        let mut st = self.state();
        if self.kernel_read(&st, target) {
            drop(st);
            drop(fd);
            return;
        }
        st.closing.push((target, fd));
        drop(st);
        // The loop's next enter gets the kernel to read; its reap closes.
        self.unpark();
    }

    fn recv_buffered(&self, fd: RawFd) -> Option<usize> {
        let mut st = self.state();
        match st.streams.get(fd as usize).copied() {
            Some(t) if t != 0 => st.stream(t).map(|(rx, _)| rx.queued()),
            _ => None,
        }
    }
}

impl Drop for UringDriver {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if st.slots.iter().any(|s| in_kernel(&s.state)) {
            // A waker it wakes may panic (`cancel_all` passes that on):
            // not out of a `Drop` (an abort while unwinding), and not
            // before the leaks below.
            crate::survive("cancelling the ring's ops at its drop", || {
                self.cancel_all(Duration::from_secs(1))
            });
        }
        // Ops whose completion never came may still be written by the kernel
        // while the ring shuts down asynchronously: leak them rather than free
        // memory the kernel may touch (an op's buffers, the provided
        // buffers).
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut receiving = false;
        for slot in st.slots.drain(..) {
            match slot.state {
                SlotState::Orphaned { op, .. } => std::mem::forget(op),
                SlotState::Stream(rx) if rx.armed => {
                    receiving = true;
                    std::mem::forget(rx);
                }
                _ => {}
            }
        }
        if let Some(ring) = st.rx.take() {
            if receiving {
                ring.leak();
            }
        }
    }
}

/// An op that must finish (see `SlotState::Waiting::finish`), running as
/// the op itself (one that waits for readiness before it runs again is
/// cancelled at once: nothing of it ran).
fn left_to_finish(state: &SlotState) -> bool {
    matches!(
        state,
        SlotState::Orphaned {
            finish: true,
            phase: Phase::Op,
            ..
        } | SlotState::Waiting {
            finish: true,
            phase: Phase::Op,
            ..
        }
    )
}

/// Whether the slot's entry is in the kernel (what shutdown waits for).
fn in_kernel(state: &SlotState) -> bool {
    match state {
        SlotState::Waiting { .. } | SlotState::Orphaned { .. } => true,
        SlotState::Stream(rx) => rx.armed,
        SlotState::Free | SlotState::Done { .. } => false,
    }
}

/// Register a ring of `count` provided buffers (rounded to a power of two)
/// as buffer group [`recv_queue::BGID`]; `None` if the kernel refuses.
fn register_buf_ring(ring: &IoUring, count: u16) -> Option<BufRing> {
    #[cfg(feature = "fault-injection")]
    if crate::fault::syscall(crate::fault::Syscall::RegisterBufRing).is_some() {
        return None;
    }
    let count = count.clamp(2, 32_768).next_power_of_two();
    let bufs = BufRing::new(count).ok()?;
    // SAFETY: the entries stay allocated (and at this address) as long as
    // the ring: the driver frees them only in its own drop, and leaks them
    // if a receive may still use them.
    let r = unsafe {
        ring.submitter().register_buf_ring_with_flags(
            bufs.ring_addr(),
            bufs.count(),
            recv_queue::BGID,
            0,
        )
    };
    r.ok().map(|()| bufs)
}

fn poll_mask(interest: Interest) -> u32 {
    let mut m = 0;
    if interest.readable() {
        m |= libc::POLLIN | libc::POLLRDHUP;
    }
    if interest.writable() {
        m |= libc::POLLOUT;
    }
    m as u16 as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_started_after_another_ended_is_not_taken_for_it() {
        // The second thread is usually given the first one's stack (and
        // thread-local block) back.
        let first = std::thread::spawn(thread_mark).join().unwrap();
        let second = std::thread::spawn(thread_mark).join().unwrap();
        assert_ne!(first, second);
        assert_eq!(thread_mark(), thread_mark());
    }

    #[test]
    fn a_driver_made_after_another_was_dropped_has_other_servers() {
        // A ring many threads may enter (not single-issuer), where the
        // serving mark decides who submits.
        let opts = UringOptions {
            ring_mode: RingMode::CoopTaskrun,
            ..UringOptions::default()
        };
        let Ok(first) = UringDriver::new(&opts, Issuer::Workers) else {
            return; // no io_uring here: nothing to check
        };
        // In a box, as in a scheduler: the allocator usually gives the
        // second driver the first one's place.
        let first = Box::new(first);
        first.server().serve_here();
        assert!(first.may_start_ops());
        drop(first);
        let second = Box::new(UringDriver::new(&opts, Issuer::Workers).unwrap());
        assert!(
            !second.may_start_ops(),
            "this thread served another driver, not this one"
        );
        SERVES.with(|s| s.set(0));
    }
}
