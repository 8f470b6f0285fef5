//! The epoll backend: readiness, edge-triggered, one registration per fd.
//!
//! An op first tries its syscall. Only on `WouldBlock` is the fd registered
//! (`EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET`, once per fd, kept until the
//! fd is closed through the driver or [`Backend::release_fd`]), so a socket
//! that is read and written many times costs one `epoll_ctl` in its life, and
//! an op that succeeds at once costs none.
//!
//! Lost wake-ups are prevented with per-fd, per-direction sequence numbers:
//! an op reads the sequence before its syscall; if an event bumped it by the
//! time the op wants to sleep, it retries instead. A read takes its
//! sequence, and marks the fd drained after a short read, without the
//! table lock (`read_cell.rs`); the lock is taken to sleep.
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
use std::sync::{Mutex, MutexGuard, OnceLock, TryLockError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustix::event::epoll;

use super::notify::Notifier;
use super::read_cell::ReadCell;
use super::{Backend, DriverKind, Interest, Readiness};
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
    /// Each fd's read word (see `read_cell.rs`): the word is written under
    /// `table`, the drained mark by readers, without it.
    cells: Cells,
    /// Held by the thread parked in `epoll_wait` (one at a time; another
    /// thread that finds it taken returns at once). It keeps the list a
    /// turn collects its wakers in between turns, so a turn allocates
    /// nothing.
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
    /// The last id given to a bare poll that waited (see [`Waiter`]).
    last_poll_id: u64,
    /// Wakers a full list let go of ([`push_waker`](super::push_waker)),
    /// woken by the next `park` (which the wait that let go of them
    /// unparks): not by that wait itself, which may run under a lock of
    /// its caller's (a stream's `futures_io` adapter, a file's
    /// sequential state), where a waker that polls its task inline would
    /// reach for that lock again.
    evicted: Vec<Waker>,
}

/// Who waits on a registration.
enum Waiter<'a> {
    /// An op of the fd's owner (see `Slot::owned`): its waker joins the
    /// shared lists, deduplicated by task; the owner's fd is released
    /// before it closes, which empties them.
    Owner,
    /// A bare poll (`op::poll_fd`, `IoScheduler::poll`), known by an id
    /// kept in the op's token (0 until it first waits): a poll may watch
    /// an fd that lives for good (a signal pipe, an eventfd) and be
    /// dropped before any event, so its waker is kept apart, and dropping
    /// the op takes it out. In the shared lists it would stay until the
    /// next event, with the task it belongs to.
    Poll(&'a mut u64),
}

/// The table's part of an fd's state; its generation, read sequence,
/// hang-up and drained mark are in its [`ReadCell`].
#[derive(Debug, Default)]
struct Slot {
    write_seq: u32,
    /// An op other than a poll waited on this registration: the fd belongs
    /// to an owner that releases it before closing it (a socket).
    owned: bool,
    /// `IoScheduler::poll` calls of this fd in progress. The last one to
    /// end drops a registration that only polls made (`owned` unset): its
    /// fd is the caller's, who closes it without telling the driver.
    pollers: u32,
    readers: Vec<Waker>,
    writers: Vec<Waker>,
    /// Bare polls waiting: (id, interest, waker); see [`Waiter::Poll`].
    polls: Vec<(u64, Interest, Waker)>,
}

/// A token that changes whenever an event of `interest` arrives at a
/// registration whose read word is `word`, or the registration changes.
/// For reads it is the word itself (what the read path loads unlocked).
fn token(word: u64, write_seq: u32, interest: Interest) -> u64 {
    if interest == Interest::Read {
        return word;
    }
    let mut seq = 0u32;
    if interest.readable() {
        seq = seq.wrapping_add(ReadCell::read_seq(word));
    }
    seq = seq.wrapping_add(write_seq.wrapping_mul(0x9E37_79B9));
    (u64::from(ReadCell::generation(word)) << 32) | u64::from(seq)
}

/// The read cells, by fd number, at stable addresses (so the read path
/// needs no lock to find one): chunks allocated on an fd's first
/// registration, from a directory sized at creation for every fd number
/// the process may ever open: the kernel's ceiling on any process's
/// `RLIMIT_NOFILE` (`fs.nr_open`), or the process's hard limit if above
/// it, at most 2^24. Sized by the hard limit alone, fds above it were
/// refused for the driver's life after the limit was raised (a server
/// that raises it at the top of `main`, after `#[coro::main]` made the
/// scheduler, or `prlimit` on a running one). The directory costs 16
/// bytes per 1,024 fds: 16 KiB at the kernel's default ceiling (2^20),
/// 256 KiB where the ceiling is raised to 2^24 or more (systems whose
/// init raises `fs.nr_open` to its maximum).
struct Cells {
    chunks: Box<[OnceLock<Box<[ReadCell; CELL_CHUNK]>>]>,
}

const CELL_CHUNK: usize = 1024;

impl std::fmt::Debug for Cells {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = self.chunks.iter().filter(|c| c.get().is_some()).count();
        f.debug_struct("Cells")
            .field("fds", &(self.chunks.len() * CELL_CHUNK))
            .field("chunks_made", &made)
            .finish()
    }
}

impl Cells {
    fn new(max_fds: usize) -> Cells {
        let n = max_fds.clamp(1, 1 << 24).div_ceil(CELL_CHUNK);
        Cells {
            chunks: (0..n).map(|_| OnceLock::new()).collect(),
        }
    }

    /// For every fd number the process may open, now or after raising
    /// its limit (see [`Cells`]).
    fn for_this_process() -> Cells {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let hard = limit
            .maximum
            .map_or(usize::MAX, |m| m.try_into().unwrap_or(usize::MAX));
        // Linux's default ceiling where `/proc` cannot say.
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(1 << 20);
        Cells::new(hard.max(ceiling))
    }

    /// The cell of `fd`, if it was ever registered.
    fn get(&self, fd: RawFd) -> Option<&ReadCell> {
        let i = usize::try_from(fd).ok()?;
        let chunk = self.chunks.get(i / CELL_CHUNK)?.get()?;
        Some(&chunk[i % CELL_CHUNK])
    }

    /// The cell of `fd`, made if need be.
    fn get_or_make(&self, fd: RawFd) -> io::Result<&ReadCell> {
        let i = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        let Some(chunk) = self.chunks.get(i / CELL_CHUNK) else {
            return Err(io::Error::other(format!(
                "coro-io epoll: fd {fd} is above the {} file descriptors this driver was \
                 sized for (when it was created: the kernel's ceiling on open files, \
                 fs.nr_open, or the RLIMIT_NOFILE hard limit if higher; at most 2^24): \
                 raise the ceiling before creating the scheduler",
                self.chunks.len() * CELL_CHUNK
            )));
        };
        let chunk = chunk.get_or_init(|| Box::new(std::array::from_fn(|_| ReadCell::default())));
        Ok(&chunk[i % CELL_CHUNK])
    }
}

impl Waiter<'_> {
    /// A bare poll's waiter if it has a `token` (its id), else the owner.
    fn of<'a>(token: &'a mut Option<&mut u64>) -> Waiter<'a> {
        match token {
            Some(t) => Waiter::Poll(t),
            None => Waiter::Owner,
        }
    }
}

impl Slot {
    /// Whether `who`'s first wait on a registration of this slot must
    /// check that the kernel still has it: only polls made it, and one of
    /// them is still counted (see `arm`). A new owner's first wait, or a
    /// new poll's; polls that are not `IoScheduler::poll` calls (a DNS
    /// watch, a signal pipe's) do not count, so their waits never pay.
    fn may_be_stale(&self, who: &Waiter<'_>) -> bool {
        !self.owned
            && self.pollers > 0
            && match who {
                Waiter::Owner => true,
                Waiter::Poll(id) => **id == 0,
            }
    }

    /// Keep `waker` until the fd is ready for `interest`; `last_poll_id`:
    /// the table's, for a poll's first wait. Returns a waker this replaced,
    /// to be dropped after the table's lock (a waker's drop may run
    /// anything: the last reference to a task whose poll this drops), and
    /// the wakers a full list let go of, to be woken by the next `park`
    /// (see [`push_waker`](super::push_waker) and `Table::evicted`).
    #[must_use]
    fn wait(
        &mut self,
        interest: Interest,
        waker: &Waker,
        who: Waiter<'_>,
        last_poll_id: &mut u64,
    ) -> (Option<Waker>, Vec<Waker>) {
        let id = match who {
            Waiter::Owner => {
                self.owned = true;
                let mut evicted = Vec::new();
                if interest.readable() {
                    super::push_waker(&mut self.readers, waker, &mut evicted);
                }
                if interest.writable() {
                    super::push_waker(&mut self.writers, waker, &mut evicted);
                }
                return (None, evicted);
            }
            Waiter::Poll(id) => id,
        };
        if *id == 0 {
            *last_poll_id += 1;
            *id = *last_poll_id;
        } else if let Some(e) = self.polls.iter_mut().find(|e| e.0 == *id) {
            e.1 = interest;
            if e.2.will_wake(waker) {
                return (None, Vec::new());
            }
            return (Some(std::mem::replace(&mut e.2, waker.clone())), Vec::new());
        }
        self.polls.push((*id, interest, waker.clone()));
        (None, Vec::new())
    }

    /// An event came: the waiters it concerns go to `wake`.
    fn ready(&mut self, readable: bool, writable: bool, wake: &mut Vec<Waker>) {
        if readable {
            wake.append(&mut self.readers);
        }
        if writable {
            wake.append(&mut self.writers);
        }
        let mut i = 0;
        while i < self.polls.len() {
            let want = self.polls[i].1;
            if (readable && want.readable()) || (writable && want.writable()) {
                wake.push(self.polls.swap_remove(i).2);
            } else {
                i += 1;
            }
        }
    }

    /// The poll `id` is gone: its waker, if it still waits (to be dropped
    /// outside the table's lock).
    fn forget_poll(&mut self, id: u64) -> Option<Waker> {
        let i = self.polls.iter().position(|e| e.0 == id)?;
        Some(self.polls.swap_remove(i).2)
    }
}

/// What every registration asks for: both directions, peer hang-up,
/// urgent data, edge-triggered (one registration per fd for its life).
const INTEREST: epoll::EventFlags = epoll::EventFlags::IN
    .union(epoll::EventFlags::OUT)
    .union(epoll::EventFlags::RDHUP)
    .union(epoll::EventFlags::PRI)
    .union(epoll::EventFlags::ET);

/// The data of an fd's epoll registration: its generation (which events
/// of an older registration do not match) and its fd number.
fn epoll_key(generation: u32, idx: usize) -> u64 {
    (u64::from(generation) << 32) | idx as u64
}

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
    #[cfg(feature = "fault-injection")]
    if !matches!(ctl, Ctl::Delete) {
        if let Some(e) = crate::fault::syscall(crate::fault::Syscall::EpollCtl) {
            return Err(e);
        }
    }
    let r = match ctl {
        Ctl::Add(key) => epoll::add(epfd, fd, epoll::EventData::new_u64(key), INTEREST),
        Ctl::Modify(key) => epoll::modify(epfd, fd, epoll::EventData::new_u64(key), INTEREST),
        Ctl::Delete => epoll::delete(epfd, fd),
    };
    Ok(r?)
}

impl EpollDriver {
    pub(crate) fn new() -> io::Result<EpollDriver> {
        EpollDriver::with_cells(Cells::for_this_process())
    }

    fn with_cells(cells: Cells) -> io::Result<EpollDriver> {
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
            cells,
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
    /// `EAGAIN`, so the waker is armed at once (`Ok(None)`: wait), unless
    /// an event came meanwhile.
    ///
    /// Reads take the token without the table lock (their fast path; see
    /// `read_cell.rs`), other directions under it.
    #[inline]
    fn token_or_arm(
        &self,
        fd: RawFd,
        interest: Interest,
        arm: Option<(&Waker, Waiter<'_>)>,
    ) -> io::Result<Option<(Option<u64>, bool)>> {
        if interest != Interest::Read {
            let t = self.table();
            let word = self.cells.get(fd).map_or(0, ReadCell::load);
            if !ReadCell::registered(word) {
                return Ok(Some((None, false)));
            }
            let write_seq = t.slots.get(fd as usize).map_or(0, |s| s.write_seq);
            return Ok(Some((Some(token(word, write_seq, interest)), false)));
        }
        let Some(cell) = self.cells.get(fd) else {
            return Ok(Some((None, false)));
        };
        let word = cell.load();
        if !ReadCell::registered(word) {
            return Ok(Some((None, false)));
        }
        let drained = cell.drained(word);
        match arm {
            Some((waker, who)) if drained => {
                if self.arm(fd, interest, Some(word), waker, who)? {
                    return Ok(None);
                }
                // An event since: try the syscall, with the new token.
                let word = cell.load();
                Ok(Some((Some(word), cell.drained(word))))
            }
            _ => Ok(Some((Some(word), drained))),
        }
    }

    /// An op that waits for `fd` to be ready for `interest`: try it, and
    /// wait (armed) while it would block.
    fn poll_fd_op<T: Op>(
        &self,
        state: &mut OpState<T>,
        cx: &mut Context<'_>,
        fd: RawFd,
        interest: Interest,
    ) -> Poll<io::Result<usize>> {
        let Some(op) = state.op.as_mut().map(Held::get_mut) else {
            return Poll::Ready(Err(io::Error::other("op polled after completion")));
        };
        // A bare poll waits under its own id (see `Waiter`).
        let token = (T::KIND == OpKind::Poll).then_some(&mut state.token);
        self.poll_io(cx, fd, interest, token, state.cancel, || {
            op.attempt().map(|n| (n, op.drains(n)))
        })
    }

    /// Read the connected stream socket `fd` into `out` without an op: a
    /// non-blocking `recv(2)`, `Pending` with the waker armed while it
    /// would block. What an op adds around it (its state, cancellation,
    /// the pending-op count) buys nothing here: nothing of a read is in
    /// flight between polls, so a dropped read has read nothing.
    #[inline]
    pub(crate) fn poll_read_direct(
        &self,
        fd: RawFd,
        cx: &mut Context<'_>,
        out: &mut super::recv_queue::RecvOut<'_>,
        short_read_drains: bool,
    ) -> Poll<io::Result<usize>> {
        let len = out.len();
        self.poll_io(cx, fd, Interest::Read, None, false, || {
            // SAFETY: `out` is writable for `len` bytes while borrowed; the
            // caller keeps `fd` open for the call (it reads through the
            // `RegisteredFd` that owns it).
            let n = unsafe { crate::op::sys::recv(fd, out.as_mut_ptr(), len, false) }?;
            // A short read emptied the socket, where the caller says so
            // (as `op::Recv::drains`).
            Ok((n, short_read_drains && n > 0 && n < len))
        })
    }

    /// Send `buf` (or its first part) on the connected stream socket `fd`
    /// without an op (`send(2)` with `MSG_NOSIGNAL`), `Pending` with the
    /// waker armed while it would block. As
    /// [`poll_read_direct`](Self::poll_read_direct): a dropped send that
    /// returned `Pending` sent nothing.
    pub(crate) fn poll_send_direct(
        &self,
        fd: RawFd,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let len = crate::op::offered(buf.len());
        self.poll_io(cx, fd, Interest::Write, None, false, || {
            // SAFETY: `buf` is initialised and borrowed for the call, and
            // `len <= buf.len()`; the caller keeps `fd` open for the call
            // (it sends through the `RegisteredFd` that owns it).
            let n = unsafe { crate::op::sys::send(fd, buf.as_ptr(), len, false) }?;
            Ok((n, false))
        })
    }

    /// [`poll_send_direct`](Self::poll_send_direct) of several buffers in
    /// order, in one `sendmsg(2)` (of more than `IOV_MAX`, the first
    /// `IOV_MAX`; the count sent is returned, as for `writev`).
    pub(crate) fn poll_send_vectored_direct(
        &self,
        fd: RawFd,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Test builds: a short send offers only the first part.
        #[cfg(feature = "fault-injection")]
        let shortened = crate::fault::write_slices(bufs);
        #[cfg(feature = "fault-injection")]
        let bufs = &shortened[..];
        self.poll_io(cx, fd, Interest::Write, None, false, || {
            Ok((crate::op::sys::sendmsg(fd, bufs)?, false))
        })
    }

    /// Run `attempt` (a syscall on `fd`: `Ok((n, drained))`, `drained`
    /// for a stream read that emptied the socket) until it does not block,
    /// waiting (armed) for `interest` while it would. `token`: a bare
    /// poll's id (see `Waiter`), `None` for the fd's owner. `cancel`: one
    /// last attempt, then `ECANCELED` instead of waiting.
    fn poll_io(
        &self,
        cx: &mut Context<'_>,
        fd: RawFd,
        interest: Interest,
        mut token: Option<&mut u64>,
        cancel: bool,
        mut attempt: impl FnMut() -> io::Result<(usize, bool)>,
    ) -> Poll<io::Result<usize>> {
        // Anything but a read needs the fd's token only if it must
        // wait (reads also need it to mark the fd drained): try
        // first, without the table lock. On `WouldBlock` the loop
        // reads the token and tries again before arming, so an
        // event between the two tries is not slept through.
        if interest != Interest::Read && !cancel {
            match attempt() {
                Err(e) if super::nothing_moved(&e) => {}
                r => return Poll::Ready(r.map(|(n, _)| n)),
            }
        }
        let mut first = true;
        loop {
            // The last stream read drained the fd and nothing arrived
            // since: the syscall would fail with EAGAIN, so wait.
            let arm_now = std::mem::take(&mut first) && interest == Interest::Read && !cancel;
            let (seen, drained) = match self.token_or_arm(
                fd,
                interest,
                arm_now.then(|| (cx.waker(), Waiter::of(&mut token))),
            ) {
                Ok(Some(t)) => t,
                Ok(None) => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            };
            match attempt() {
                // Cancelled: one last attempt found nothing to do.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && cancel => {
                    return Poll::Ready(Err(io::Error::from_raw_os_error(libc::ECANCELED)));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.arm(fd, interest, seen, cx.waker(), Waiter::of(&mut token)) {
                        Ok(true) => return Poll::Pending,
                        Ok(false) => continue,
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok((n, drains)) if interest == Interest::Read => {
                    let now = if drains { seen } else { None };
                    if now.is_some() || drained {
                        self.set_drained(fd, now);
                    }
                    return Poll::Ready(Ok(n));
                }
                r => return Poll::Ready(r.map(|(n, _)| n)),
            }
        }
    }

    /// The bare poll `id` of `fd` is gone (dropped or done): take its
    /// waker out, and drop it after the table's lock (a waker's drop may
    /// run anything: the last reference to a task).
    fn forget_poll(&self, fd: RawFd, id: u64) {
        let w = usize::try_from(fd)
            .ok()
            .and_then(|i| self.table().slots.get_mut(i)?.forget_poll(id));
        drop(w);
    }

    /// Remember (or forget) that a read drained `fd` when its token was `seen`.
    fn set_drained(&self, fd: RawFd, seen: Option<u64>) {
        if let Some(cell) = self.cells.get(fd) {
            cell.mark_drained(seen);
        }
    }

    /// After `WouldBlock`: sleep (Ok(true)) unless readiness changed since
    /// `seen` (Ok(false): try again). `who`: see [`Waiter`].
    fn arm(
        &self,
        fd: RawFd,
        interest: Interest,
        seen: Option<u64>,
        waker: &Waker,
        who: Waiter<'_>,
    ) -> io::Result<bool> {
        let idx = usize::try_from(fd).map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?;
        let mut t = self.table();
        if t.closed {
            return Err(super::shut_down());
        }
        let cell = self.cells.get_or_make(fd)?;
        if t.slots.len() <= idx {
            t.slots.resize_with(idx + 1, Slot::default);
        }
        let mut word = cell.load();
        if ReadCell::registered(word) && t.slots[idx].may_be_stale(&who) {
            // A registration only `IoScheduler::poll` calls made, one of
            // which is still counted: its fd is the caller's, closed
            // without telling us, and a poll leaked while it waited
            // (forgotten, or in a task kept alive by a cycle) never ends,
            // so the registration was never dropped. The number may name
            // another file now, which the kernel has no registration of:
            // waiting on the stale one would never see an event. Ask.
            let key = epoll_key(ReadCell::generation(word), idx);
            if let Err(e) = epoll_ctl(&self.epfd, fd, Ctl::Modify(key)) {
                if e.raw_os_error() != Some(libc::ENOENT) {
                    return Err(e);
                }
                cell.release();
                t.registered -= 1;
                word = cell.load();
            }
        }
        if !ReadCell::registered(word) {
            let generation = ReadCell::generation(word).wrapping_add(1);
            let key = epoll_key(generation, idx);
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
            cell.register();
            debug_assert_eq!(ReadCell::generation(cell.load()), generation);
            t.registered += 1;
        } else if Some(token(word, t.slots[idx].write_seq, interest)) != seen {
            return Ok(false);
        }
        let tt = &mut *t;
        let (old, mut evicted) = tt.slots[idx].wait(interest, waker, who, &mut tt.last_poll_id);
        let defer = !evicted.is_empty();
        if defer {
            tt.evicted.append(&mut evicted);
        }
        drop(t);
        drop(old);
        if defer {
            self.unpark();
        }
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
            slot.pollers == 0 && !slot.owned && self.is_registered(fd)
        };
        if release {
            self.release_fd(fd);
        }
    }

    pub(crate) fn is_registered(&self, fd: RawFd) -> bool {
        self.cells
            .get(fd)
            .is_some_and(|c| ReadCell::registered(c.load()))
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
        if !t.evicted.is_empty() {
            wake.append(&mut t.evicted);
        }
        for ev in events {
            // Copied out: the kernel's layout of the event is packed.
            let (key, flags) = (ev.data.u64(), ev.flags);
            if key == NOTIFY_KEY {
                self.notifier.clear();
                continue;
            }
            let idx = (key & 0xFFFF_FFFF) as usize;
            let generation = (key >> 32) as u32;
            let (Some(cell), Some(slot)) = (self.cells.get(idx as RawFd), t.slots.get_mut(idx))
            else {
                continue;
            };
            let word = cell.load();
            if !ReadCell::registered(word) || ReadCell::generation(word) != generation {
                continue; // stale: the fd was released (and maybe reused)
            }
            n += 1;
            // Also urgent data (`PRI`): a TCP read stops short at the
            // urgent mark with bytes still queued behind it, so a short
            // read no longer means the socket is empty (the drained
            // shortcut would sleep on them). Sticky, as a hang-up, for the
            // registration's life (one more `EAGAIN` read per wait then).
            let hup = flags.intersects(F::HUP | F::RDHUP | F::ERR | F::PRI);
            // (A hang-up or an error is readable: reads see the EOF or
            // the error.)
            let readable = flags.intersects(F::IN | F::ERR | F::HUP | F::RDHUP | F::PRI);
            let writable = flags.intersects(F::OUT | F::ERR | F::HUP);
            if readable {
                cell.readable(hup);
            }
            if writable {
                slot.write_seq = slot.write_seq.wrapping_add(1);
            }
            slot.ready(readable, writable, wake);
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

impl Backend for EpollDriver {
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
                let r = self.poll_fd_op(state, cx, fd, interest);
                if r.is_ready() && state.token != 0 {
                    // A bare poll that waited is done: its waker goes, if
                    // no event took it (see `Waiter::Poll`).
                    self.forget_poll(fd, state.token);
                }
                r
            }
        }
    }

    fn drop_op<T: Op>(&self, state: &mut OpState<T>) {
        // Readiness ops own nothing the kernel touches between polls; a
        // blocking op finishes on its pool thread and frees itself there
        // (releasing what it produced for nobody: an opened fd).
        state.abandon_blocking();
        // A bare poll that waited takes its waker out (see `Waiter::Poll`).
        if state.token != 0 {
            if let Some(Readiness::Fd(fd, _)) = state.op.as_mut().map(|op| op.get_mut().readiness())
            {
                self.forget_poll(fd, state.token);
            }
        }
        state.op = None;
    }

    fn cancel_op<T: Op>(&self, _state: &mut OpState<T>) {
        // Nothing runs between polls: the next poll makes one last attempt
        // and reports ECANCELED instead of waiting (`state.cancel`).
    }

    fn park(&self, timeout: Option<Duration>) -> io::Result<usize> {
        let mut parked = match self.parked.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(0), // another thread is parked here
        };
        let timeout = wait_timeout(timeout);
        // On the stack, uninitialised: 12 KiB (16 on targets where the
        // event is not packed) the kernel fills; no allocation and no
        // clearing per turn.
        let mut buf = [const { MaybeUninit::<epoll::Event>::uninit() }; EVENTS_CAPACITY];
        // Tests: the wait failing as the kernel's would (handled below).
        #[cfg(feature = "fault-injection")]
        let injected = crate::fault::syscall(crate::fault::Syscall::EpollWait)
            .map(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO));
        #[cfg(not(feature = "fault-injection"))]
        let injected = None;
        let waited = match injected {
            Some(errno) => Err(errno),
            None => epoll::wait(&self.epfd, &mut buf[..], timeout.as_ref()),
        };
        let events = match waited {
            Ok((events, _)) => &*events,
            Err(rustix::io::Errno::INTR) => return Ok(0),
            Err(e) => return Err(e.into()),
        };
        let mut wake = std::mem::take(&mut *parked);
        let n = self.dispatch(events, &mut wake);
        drop(parked);
        // Woken with no lock held (a waker may run code that uses the
        // driver, or park it from another thread).
        crate::wake_all(wake.drain(..));
        // The emptied list goes back for the next turn (unless another
        // thread parked meanwhile: then it is simply freed).
        if let Ok(mut parked) = self.parked.try_lock() {
            *parked = wake;
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
            wake.append(&mut t.evicted);
            for slot in t.slots.iter_mut() {
                slot.ready(true, true, &mut wake);
            }
        }
        crate::wake_all(wake);
        // A thread parked meanwhile (a bare handle's) learns of the close
        // now, not when its wait times out.
        self.unpark();
        // Blocking-pool ops own their buffers on the pool thread; wait (bounded)
        // so that shutdown returns with nothing of ours still running.
        // `None`: no bound (`Duration::MAX`, say) — wait as long as it takes.
        self.blocking
            .wait_at_shutdown(Instant::now().checked_add(bound));
    }

    fn release_fd(&self, fd: RawFd) {
        let Ok(idx) = usize::try_from(fd) else { return };
        let mut wake = Vec::new();
        {
            let mut t = self.table();
            let (Some(cell), Some(slot)) = (self.cells.get(fd), t.slots.get_mut(idx)) else {
                return;
            };
            if !ReadCell::registered(cell.load()) {
                return;
            }
            let _ = epoll_ctl(&self.epfd, fd, Ctl::Delete);
            cell.release();
            slot.owned = false;
            slot.ready(true, true, &mut wake);
            t.registered -= 1;
        }
        crate::wake_all(wake);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::sync::Arc;
    use std::task::Wake;

    struct Nop;
    impl Wake for Nop {
        fn wake(self: Arc<Self>) {}
    }

    /// The directory covers every fd the process could open after
    /// raising its hard limit to the kernel's ceiling: sized by the hard
    /// limit alone, fds above it were refused for the driver's life.
    #[test]
    fn the_cell_directory_covers_the_kernels_ceiling_on_open_files() {
        let ceiling: usize = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let cells = Cells::for_this_process();
        let covered = cells.chunks.len() * CELL_CHUNK;
        assert!(
            covered >= ceiling.min(1 << 24),
            "{covered} fds covered, the ceiling is {ceiling}"
        );
        // An fd number just below the ceiling (far above this process's
        // limit) gets a cell.
        let fd = RawFd::try_from(ceiling.min(1 << 24) - 1).unwrap();
        assert!(cells.get_or_make(fd).is_ok());
    }

    #[test]
    fn an_fd_above_the_cell_directory_is_an_error_not_a_panic() {
        let d = EpollDriver::with_cells(Cells::new(CELL_CHUNK)).unwrap();
        let waker = Waker::from(Arc::new(Nop));
        // The duplicate below needs a soft limit above the directory.
        let want = CELL_CHUNK as u64 + 64;
        let lim = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if lim.current.is_some_and(|c| c < want) {
            if lim.maximum.is_some_and(|m| m < want) {
                eprintln!("skipped: the open-file hard limit is below {want}");
                return;
            }
            let raised = rustix::process::Rlimit {
                current: Some(want),
                maximum: lim.maximum,
            };
            rustix::process::setrlimit(rustix::process::Resource::Nofile, raised).unwrap();
        }
        let (r, _w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::NONBLOCK).unwrap();
        // Below the directory's end: registered.
        assert!(
            d.arm(r.as_raw_fd(), Interest::Read, None, &waker, Waiter::Owner)
                .unwrap()
        );
        assert!(d.is_registered(r.as_raw_fd()));
        // Above it (the open-file limit was raised after the driver was
        // made): a clear error, nothing registered.
        let high = rustix::io::fcntl_dupfd_cloexec(&r, CELL_CHUNK as RawFd + 10).unwrap();
        let e = d
            .arm(
                high.as_raw_fd(),
                Interest::Read,
                None,
                &waker,
                Waiter::Owner,
            )
            .unwrap_err();
        assert!(e.to_string().contains("sized for"), "{e}");
        assert!(!d.is_registered(high.as_raw_fd()));
        assert_eq!(d.registered(), 1);
        d.release_fd(r.as_raw_fd());
        assert_eq!(d.registered(), 0);
    }
}
