//! The epoll backend: readiness, edge-triggered, one registration per fd.
//!
//! An op first tries its syscall. Only on `WouldBlock` is the fd registered
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET`, once per fd, kept until the
//! fd is closed through the driver or [`Driver::release_fd`]), so a socket
//! that is read and written many times costs one `epoll_ctl` in its life, and
//! an op that succeeds at once costs none.
//!
//! Lost wake-ups are prevented with per-fd, per-direction sequence numbers:
//! an op reads the sequence before its syscall; if an event bumped it by the
//! time the op wants to sleep, it retries instead.
//!
//! Registrations carry a generation in the upper 32 bits of the epoll data
//! (the fd in the lower 32), so an event queued for an fd number that was
//! released and reused is ignored.
//!
//! Why not the `polling` crate: its `wait` re-arms
//! its notifier with `epoll_ctl` and programs a timerfd on every call, i.e.
//! 2-3 extra syscalls per loop turn; here a turn is one `epoll_pwait` and the
//! eventfd is read only when a cross-thread wake actually happened.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustix::event::epoll;

use super::notify::Notifier;
use super::{Driver, DriverKind, Interest, Readiness};
use crate::op::{BlockingOps, Held, Op, OpKind, OpState};

const NOTIFY_KEY: u64 = u64::MAX;
const EVENTS_CAPACITY: usize = 1024;

/// The epoll driver.
#[derive(Debug)]
pub(crate) struct EpollDriver {
    epfd: OwnedFd,
    /// Cross-thread wake-ups (`unpark`).
    notifier: Notifier,
    table: Mutex<Table>,
    /// Held by the thread parked in `epoll_wait` (one at a time; another
    /// thread that finds it taken returns at once), with the wakers a turn
    /// collects: kept between turns, so a turn allocates nothing.
    parked: Mutex<Vec<Waker>>,
    blocking: BlockingOps,
}

#[derive(Debug, Default)]
struct Table {
    /// Indexed by fd number.
    slots: Vec<Slot>,
    registered: usize,
    /// Set by `cancel_all` (shutdown): no new waiter is stored after it.
    closed: bool,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    registered: bool,
    read_seq: u32,
    write_seq: u32,
    /// The read token seen before the last stream read that drained the
    /// fd: while the token is unchanged, no data arrived since.
    drained_at: Option<u64>,
    /// The peer hung up or the fd reported an error: no further edge will
    /// come, so reads must always try (they return the rest, then EOF).
    hup: bool,
    /// An op other than a poll waited on this registration: the fd belongs
    /// to an owner that releases it before closing it (a socket).
    owned: bool,
    /// `IoScheduler::poll` calls of this fd in progress. The last one to
    /// end drops a registration that only polls made (`owned` unset): its
    /// fd is the caller's, who closes it without telling the driver.
    pollers: u32,
    readers: Vec<Waker>,
    writers: Vec<Waker>,
}

impl Slot {
    /// A token that changes whenever an event of `interest` arrives or the
    /// registration changes.
    fn token(&self, interest: Interest) -> u64 {
        let mut seq = 0u32;
        if interest.readable() {
            seq = seq.wrapping_add(self.read_seq);
        }
        if interest.writable() {
            seq = seq.wrapping_add(self.write_seq.wrapping_mul(0x9E37_79B9));
        }
        ((self.generation as u64) << 32) | seq as u64
    }

    /// Keep `waker` until the fd is ready for `interest` (`owner`: see
    /// `owned`).
    fn wait(&mut self, interest: Interest, waker: &Waker, owner: bool) {
        self.owned |= owner;
        if interest.readable() {
            push_waker(&mut self.readers, waker);
        }
        if interest.writable() {
            push_waker(&mut self.writers, waker);
        }
    }
}

fn push_waker(list: &mut Vec<Waker>, w: &Waker) {
    if !list.iter().any(|x| x.will_wake(w)) {
        list.push(w.clone());
    }
}

/// What every registration asks for: both directions, peer hang-up,
/// edge-triggered (one registration per fd for its life).
const INTEREST: epoll::EventFlags = epoll::EventFlags::IN
    .union(epoll::EventFlags::OUT)
    .union(epoll::EventFlags::RDHUP)
    .union(epoll::EventFlags::ET);

/// The three `epoll_ctl` calls the table makes on an fd it was handed.
#[derive(Clone, Copy)]
enum Ctl {
    Add(u64),
    Modify(u64),
    Delete,
}

fn epoll_ctl(epfd: &OwnedFd, fd: RawFd, ctl: Ctl) -> io::Result<()> {
    // SAFETY: the borrow lives for this one syscall, and rustix only passes
    // the number to the kernel, which checks it: a stale fd makes the call
    // fail with EBADF/ENOENT, touching no memory. The contract of every
    // caller (ops and `release_fd` take a raw fd) is that the owner keeps
    // it open until the registration is released; coro's own owners do
    // (`RegisteredFd` releases, then closes; c-ares' fds are released in
    // its socket-state callback, before the close).
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    let r = match ctl {
        Ctl::Add(key) => epoll::add(epfd, fd, epoll::EventData::new_u64(key), INTEREST),
        Ctl::Modify(key) => epoll::modify(epfd, fd, epoll::EventData::new_u64(key), INTEREST),
        Ctl::Delete => epoll::delete(epfd, fd),
    };
    Ok(r?)
}

impl EpollDriver {
    pub(crate) fn new() -> io::Result<EpollDriver> {
        let epfd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let notifier = Notifier::new()?;
        epoll::add(
            &epfd,
            notifier.as_fd(),
            epoll::EventData::new_u64(NOTIFY_KEY),
            epoll::EventFlags::IN | epoll::EventFlags::ET,
        )?;
        Ok(EpollDriver {
            epfd,
            notifier,
            table: Mutex::new(Table::default()),
            parked: Mutex::new(Vec::new()),
            blocking: BlockingOps::default(),
        })
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        crate::lock(&self.table)
    }

    /// The readiness token of `fd` (None: not registered), and whether a
    /// stream read drained the fd with no readiness event since.
    ///
    /// With `arm`: if the fd is drained, the syscall would only say
    /// `EAGAIN`, so the waker is armed at once, under the same lock
    /// (`Ok(None)`: wait), instead of in a second call to [`arm`](Self::arm).
    fn token_or_arm(
        &self,
        fd: RawFd,
        interest: Interest,
        arm: Option<&Waker>,
        owner: bool,
    ) -> io::Result<Option<(Option<u64>, bool)>> {
        let mut t = self.table();
        let closed = t.closed;
        let Some(s) = t.slots.get_mut(fd as usize).filter(|s| s.registered) else {
            return Ok(Some((None, false)));
        };
        let tok = s.token(interest);
        let drained = !s.hup && s.drained_at == Some(tok);
        match arm {
            Some(waker) if drained => {
                if closed {
                    return Err(super::shut_down());
                }
                s.wait(interest, waker, owner);
                Ok(None)
            }
            _ => Ok(Some((Some(tok), drained))),
        }
    }

    /// Remember (or forget) that a read drained `fd` when its token was `seen`.
    fn set_drained(&self, fd: RawFd, seen: Option<u64>) {
        let mut t = self.table();
        if let Some(s) = t.slots.get_mut(fd as usize) {
            if s.registered {
                s.drained_at = seen;
            }
        }
    }

    /// After `WouldBlock`: sleep (Ok(true)) unless readiness changed since
    /// `seen` (Ok(false): try again).
    /// `owner`: the op is not a bare poll (see `Slot::owned`).
    fn arm(
        &self,
        fd: RawFd,
        interest: Interest,
        seen: Option<u64>,
        waker: &Waker,
        owner: bool,
    ) -> io::Result<bool> {
        let idx = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        let mut t = self.table();
        if t.closed {
            return Err(super::shut_down());
        }
        if t.slots.len() <= idx {
            t.slots.resize_with(idx + 1, Slot::default);
        }
        let was_registered = t.slots[idx].registered;
        if !was_registered {
            let key = ((t.slots[idx].generation as u64) << 32) | idx as u64;
            // Edge-triggered ADD reports the current state on the next wait,
            // so readiness that arrived after our syscall is not lost.
            match epoll_ctl(&self.epfd, fd, Ctl::Add(key)) {
                // The kernel still has this open file registered (an fd number
                // we were not told was closed, dup'd from a registered one):
                // take it over with our new key.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    epoll_ctl(&self.epfd, fd, Ctl::Modify(key))?
                }
                r => r?,
            }
            let slot = &mut t.slots[idx];
            slot.registered = true;
            slot.drained_at = None;
            slot.hup = false;
            t.registered += 1;
        } else if Some(t.slots[idx].token(interest)) != seen {
            return Ok(false);
        }
        t.slots[idx].wait(interest, waker, owner);
        Ok(true)
    }

    /// An `IoScheduler::poll` of `fd` begins.
    pub(crate) fn begin_poll(&self, fd: RawFd) {
        let Ok(idx) = usize::try_from(fd) else { return };
        let mut t = self.table();
        if t.slots.len() <= idx {
            t.slots.resize_with(idx + 1, Slot::default);
        }
        t.slots[idx].pollers += 1;
    }

    /// An `IoScheduler::poll` of `fd` ended (completed or dropped): the last
    /// one drops a registration that only polls made.
    pub(crate) fn end_poll(&self, fd: RawFd) {
        let Ok(idx) = usize::try_from(fd) else { return };
        let release = {
            let mut t = self.table();
            let Some(slot) = t.slots.get_mut(idx) else {
                return;
            };
            slot.pollers = slot.pollers.saturating_sub(1);
            slot.pollers == 0 && slot.registered && !slot.owned
        };
        if release {
            self.release_fd(fd);
        }
    }

    pub(crate) fn is_registered(&self, fd: RawFd) -> bool {
        let t = self.table();
        usize::try_from(fd)
            .ok()
            .and_then(|i| t.slots.get(i))
            .is_some_and(|s| s.registered)
    }

    /// Ops started on the blocking pool so far.
    pub(crate) fn blocking_started(&self) -> u64 {
        self.blocking.started()
    }

    /// Number of fds currently registered with epoll (for tests).
    pub(crate) fn registered(&self) -> usize {
        self.table().registered
    }

    fn dispatch(&self, events: &[epoll::Event], wake: &mut Vec<Waker>) -> usize {
        use epoll::EventFlags as F;
        let mut n = 0;
        let mut t = self.table();
        for ev in events {
            // Copied out: the kernel's layout of the event is packed.
            let (key, flags) = (ev.data.u64(), ev.flags);
            if key == NOTIFY_KEY {
                self.notifier.clear();
                continue;
            }
            let idx = (key & 0xFFFF_FFFF) as usize;
            let generation = (key >> 32) as u32;
            let Some(slot) = t.slots.get_mut(idx) else {
                continue;
            };
            if !slot.registered || slot.generation != generation {
                continue; // stale: the fd was released (and maybe reused)
            }
            n += 1;
            if flags.intersects(F::HUP | F::RDHUP | F::ERR) {
                slot.hup = true;
            }
            if flags.intersects(F::IN | F::ERR | F::HUP | F::RDHUP | F::PRI) {
                slot.read_seq = slot.read_seq.wrapping_add(1);
                wake.append(&mut slot.readers);
            }
            if flags.intersects(F::OUT | F::ERR | F::HUP) {
                slot.write_seq = slot.write_seq.wrapping_add(1);
                wake.append(&mut slot.writers);
            }
        }
        n
    }
}

/// The wait's timeout, clamped to one day per turn (the caller loops, and
/// a day in milliseconds fits the `int` of `epoll_pwait`); rustix rounds it
/// up to whole milliseconds, so a timer never wakes the loop early.
fn wait_timeout(d: Option<Duration>) -> Option<rustix::time::Timespec> {
    d.map(|d| {
        let d = d.min(Duration::from_secs(86_400));
        rustix::time::Timespec {
            tv_sec: d.as_secs() as i64,
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    })
}

impl Driver for EpollDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Epoll
    }

    fn poll_op<T: Op>(
        &self,
        state: &mut OpState<T>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        if state.blocking.is_some() {
            return state.poll_blocking(cx, &self.blocking);
        }
        let Some(op) = state.op.as_mut().map(Held::get_mut) else {
            return Poll::Ready(Err(io::Error::other("op polled after completion")));
        };
        match op.readiness() {
            Readiness::Blocking => state.poll_blocking(cx, &self.blocking),
            Readiness::Now => {
                if let Some(fd) = op.closes_fd() {
                    self.release_fd(fd);
                }
                Poll::Ready(op.attempt())
            }
            Readiness::Fd(fd, interest) => {
                let owner = T::KIND != OpKind::Poll;
                // Anything but a read needs the fd's token only if it must
                // wait (reads also need it to mark the fd drained): try
                // first, without the table lock. On `WouldBlock` the loop
                // reads the token and tries again before arming, so an
                // event between the two tries is not slept through.
                if interest != Interest::Read && !state.cancel {
                    match op.attempt() {
                        Err(e)
                            if matches!(
                                e.kind(),
                                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                            ) => {}
                        r => return Poll::Ready(r),
                    }
                }
                let mut first = true;
                loop {
                    // The last stream read drained the fd and nothing arrived
                    // since: the syscall would fail with EAGAIN, so wait.
                    let arm_now =
                        std::mem::take(&mut first) && interest == Interest::Read && !state.cancel;
                    let (seen, drained) =
                        match self.token_or_arm(fd, interest, arm_now.then(|| cx.waker()), owner) {
                            Ok(Some(t)) => t,
                            Ok(None) => return Poll::Pending,
                            Err(e) => return Poll::Ready(Err(e)),
                        };
                    match op.attempt() {
                        // Cancelled: one last attempt found nothing to do.
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && state.cancel => {
                            return Poll::Ready(Err(io::Error::from_raw_os_error(libc::ECANCELED)));
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            match self.arm(fd, interest, seen, cx.waker(), owner) {
                                Ok(true) => return Poll::Pending,
                                Ok(false) => continue,
                                Err(e) => return Poll::Ready(Err(e)),
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Ok(n) if interest == Interest::Read => {
                            let now = if op.drains(n) { seen } else { None };
                            if now.is_some() || drained {
                                self.set_drained(fd, now);
                            }
                            return Poll::Ready(Ok(n));
                        }
                        r => return Poll::Ready(r),
                    }
                }
            }
        }
    }

    fn drop_op<T: Op>(&self, state: &mut OpState<T>) {
        // Readiness ops own nothing the kernel touches between polls; a
        // blocking op finishes on its pool thread and frees itself there
        // (releasing what it produced for nobody: an opened fd).
        state.abandon_blocking();
        state.op = None;
    }

    fn cancel_op<T: Op>(&self, _state: &mut OpState<T>) {
        // Nothing runs between polls: the next poll makes one last attempt
        // and reports ECANCELED instead of waiting (`state.cancel`).
    }

    fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let mut wake = match self.parked.try_lock() {
            Ok(g) => g,
            // A waker panicked in an earlier turn: the list is still sound.
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(0), // another thread is parked here
        };
        wake.clear(); // what a panicking waker left
        let timeout = wait_timeout(timeout);
        // On the stack, uninitialised: 12 KiB (16 on targets where the
        // event is not packed) the kernel fills; no allocation and no
        // clearing per turn.
        let mut buf = [const { MaybeUninit::<epoll::Event>::uninit() }; EVENTS_CAPACITY];
        let events = match epoll::wait(&self.epfd, &mut buf[..], timeout.as_ref()) {
            Ok((events, _)) => &*events,
            Err(rustix::io::Errno::INTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let n = self.dispatch(events, &mut wake);
        // Woken with the table unlocked (a waker may run code that uses
        // the driver); another thread's `park` meanwhile returns at once,
        // as while this one waits.
        for w in wake.drain(..) {
            w.wake();
        }
        Ok(n)
    }

    fn unpark(&self) {
        self.notifier.notify();
    }

    fn in_flight(&self) -> usize {
        self.blocking.running()
    }

    fn cancel_all(&self, bound: Duration) {
        let mut wake = Vec::new();
        {
            let mut t = self.table();
            t.closed = true;
            for slot in t.slots.iter_mut() {
                wake.append(&mut slot.readers);
                wake.append(&mut slot.writers);
            }
        }
        for w in wake {
            w.wake();
        }
        // Blocking-pool ops own their buffers on the pool thread; wait (bounded)
        // so that shutdown returns with nothing of ours still running.
        let deadline = Instant::now() + bound;
        while self.blocking.running() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn release_fd(&self, fd: RawFd) {
        let Ok(idx) = usize::try_from(fd) else { return };
        let mut wake = Vec::new();
        {
            let mut t = self.table();
            let Some(slot) = t.slots.get_mut(idx) else {
                return;
            };
            if !slot.registered {
                return;
            }
            let _ = epoll_ctl(&self.epfd, fd, Ctl::Delete);
            slot.registered = false;
            slot.drained_at = None;
            slot.hup = false;
            slot.owned = false;
            slot.generation = slot.generation.wrapping_add(1);
            wake.append(&mut slot.readers);
            wake.append(&mut slot.writers);
            t.registered -= 1;
        }
        for w in wake {
            w.wake();
        }
    }
}
