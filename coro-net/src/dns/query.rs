//! The lookup engine: one lookup on one lane, driven by the scheduler.
//!
//! The future itself drives c-ares, so no task or thread is involved:
//!
//! 1. on first poll it takes a lane and submits the request; c-ares reports
//!    the sockets it opens through the socket-state callback (the lane's
//!    table);
//! 2. every poll brings the watchers in line with that table (one
//!    [`op::poll_fd`] per socket, on the scheduler's driver) and arms a
//!    scheduler timer for `ares_timeout`;
//! 3. readiness goes to `ares_process_fds`, an expired timer to
//!    `ares_process_fd(BAD, BAD)`; c-ares then calls the completion
//!    callback, which stores the answer in the slot the future returns.
//!
//! Dropping the future before the answer cancels its queries in c-ares
//! (`ares_cancel` on its own channel: the completion callback runs with
//! `ECANCELLED` and is freed, c-ares closes the sockets and tells the
//! callback first) and returns the lane to the pool.

use std::future::Future;
use std::net::IpAddr;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use c_ares::{AddrInfoHints, AddressFamily, FdEventFlags, FdEvents, ProcessFlags};
use coro_io::driver::Interest;
use coro_io::op::{self, OpFuture, PollFd};
use coro_io::time::Sleep;

use super::lane::{self, Lane};
use super::{Error, Shared};

/// Iterations of the drive loop in one poll before yielding to other tasks.
const BUDGET: usize = 32;

/// On a paused clock (`start_paused`) a lookup ends with
/// [`Error::Timeout`] once `BOUND_FACTOR` × `timeout` × `tries` × servers
/// (and a second) have passed on the scheduler's clock: what `advance`
/// ends a lookup by, as tokio's timers would. c-ares times its tries on
/// the real clock, which a paused clock's sleeps never let it see. On a
/// running clock c-ares alone decides (a search list's names each get
/// their own tries: a bound could cut a slow lookup short).
const BOUND_FACTOR: u32 = 4;

/// What a lookup asks for.
#[derive(Debug)]
pub(crate) enum Request {
    /// Addresses of `host` (`ares_getaddrinfo`: hosts file, then DNS).
    Addrs { host: String, family: AddressFamily },
    /// Names of `ip` (`ares_gethostbyaddr`: hosts file, then PTR).
    Names(IpAddr),
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Answer {
    Addrs(Vec<IpAddr>),
    Names(Vec<String>),
}

type Slot = Arc<Mutex<Option<Result<Answer, Error>>>>;

fn take(slot: &Slot) -> Option<Result<Answer, Error>> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

fn put(slot: &Slot, r: Result<Answer, Error>) {
    *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
}

/// One watched socket.
#[derive(Debug)]
struct Watch {
    fd: RawFd,
    epoch: u64,
    read: bool,
    write: bool,
    /// `None` between a readiness report and the next poll.
    fut: Option<OpFuture<PollFd>>,
}

impl Watch {
    fn interest(&self) -> Interest {
        match (self.read, self.write) {
            (true, true) => Interest::ReadWrite,
            (false, true) => Interest::Write,
            _ => Interest::Read,
        }
    }

    /// The c-ares events for `revents` (an error is reported as whatever
    /// we wait for, so c-ares sees it on its next syscall).
    fn events(&self, revents: Option<u32>) -> FdEventFlags {
        const POLLIN: u32 = 0x001;
        const POLLPRI: u32 = 0x002;
        const POLLOUT: u32 = 0x004;
        const POLLERR: u32 = 0x008;
        const POLLHUP: u32 = 0x010;
        const POLLNVAL: u32 = 0x020;
        const POLLRDHUP: u32 = 0x2000;
        let rev = revents.unwrap_or(POLLERR);
        let mut f = FdEventFlags::empty();
        if self.read && rev & (POLLIN | POLLPRI | POLLERR | POLLHUP | POLLNVAL | POLLRDHUP) != 0 {
            f |= FdEventFlags::READ;
        }
        if self.write && rev & (POLLOUT | POLLERR | POLLHUP | POLLNVAL) != 0 {
            f |= FdEventFlags::WRITE;
        }
        if f.is_empty() {
            f = if self.read {
                FdEventFlags::READ
            } else {
                FdEventFlags::WRITE
            };
        }
        f
    }
}

/// A lookup in flight on its lane.
#[derive(Debug)]
struct Run {
    shared: Arc<Shared>,
    /// `Some` until `Drop` hands it back.
    lane: Option<Lane>,
    slot: Slot,
    watches: Vec<Watch>,
    timer: Option<Sleep>,
    /// When the lookup gives up, on a paused scheduler clock (see
    /// `BOUND_FACTOR`); the timer is armed for it when c-ares' next
    /// timeout comes later. `None` on a running clock.
    bound: Option<Instant>,
    /// The answer was taken: nothing left to cancel.
    finished: bool,
    /// Cleared when the lookup found no server to ask (see `put_lane`).
    keep_lane: bool,
}

impl Run {
    fn start(shared: &Arc<Shared>, req: Request) -> Result<Run, Error> {
        let mut lane = shared.take_lane()?;
        // The bound counts from before the query leaves (a test that waits
        // for the query, then advances, must find it set).
        let bound = shared.sched.is_paused().then(|| {
            let cfg = shared.config();
            let servers = u32::try_from(lane.servers).unwrap_or(u32::MAX);
            let d = cfg
                .timeout
                .saturating_mul(cfg.tries)
                .saturating_mul(servers)
                .saturating_mul(BOUND_FACTOR)
                .saturating_add(std::time::Duration::from_secs(1))
                // An `Instant` holds about 292 years from now, not more.
                .min(std::time::Duration::from_secs(100 * 365 * 86_400));
            // Beyond what an `Instant` holds: the clock's last instant (as
            // any sleep's there).
            let now = shared.sched.now();
            now.checked_add(d).unwrap_or(now)
        });
        let slot: Slot = Arc::new(Mutex::new(None));
        let s = slot.clone();
        match req {
            Request::Addrs { host, family } => {
                let hints = AddrInfoHints {
                    family: Some(family),
                    ..Default::default()
                };
                lane.channel.get_addrinfo(&host, None, &hints, move |r| {
                    let r = r.map_err(Error::from).map(|ai| {
                        let mut v: Vec<IpAddr> = Vec::new();
                        for ip in ai.nodes().filter_map(|n| n.ip_addr()) {
                            if !v.contains(&ip) {
                                v.push(ip);
                            }
                        }
                        Answer::Addrs(v)
                    });
                    put(&s, r);
                });
            }
            Request::Names(ip) => {
                lane.channel.get_host_by_address(&ip, move |r| {
                    let r = r.map_err(Error::from).map(|h| {
                        let mut v = vec![h.hostname().to_owned()];
                        for a in h.aliases() {
                            if !v.iter().any(|x| x == a) {
                                v.push(a.to_owned());
                            }
                        }
                        Answer::Names(v)
                    });
                    put(&s, r);
                });
            }
        }
        let mut run = Run {
            shared: shared.clone(),
            lane: Some(lane),
            slot,
            watches: Vec::new(),
            timer: None,
            bound,
            finished: false,
            keep_lane: true,
        };
        run.rearm_timer();
        Ok(run)
    }

    fn lane(&mut self) -> &mut Lane {
        self.lane.as_mut().expect("lane present until drop")
    }

    /// A scheduler timer for c-ares' next timeout, or the lookup's bound
    /// if that comes first.
    fn rearm_timer(&mut self) {
        let next = self.lane().channel.timeout(None);
        let sched = &self.shared.sched;
        let Some(bound) = self.bound else {
            self.timer = next.map(|d| sched.sleep(d));
            return;
        };
        let at = next
            .and_then(|d| sched.now().checked_add(d))
            .map_or(bound, |t| t.min(bound));
        self.timer = Some(sched.sleep_until(at));
    }

    /// Watch exactly the sockets in the lane's table, with the interest
    /// c-ares asked for. A watcher whose socket went away (or whose fd number
    /// now names a newer socket) is dropped: on io_uring that cancels its
    /// poll, on epoll the callback already released the fd.
    fn sync_watches(&mut self) {
        let socks = self.lane.as_ref().expect("lane").socks.clone();
        let t = lane::lock(&socks);
        self.watches
            .retain(|w| t.list.iter().any(|s| s.fd == w.fd && s.epoch == w.epoch));
        for s in &t.list {
            match self.watches.iter_mut().find(|w| w.fd == s.fd) {
                Some(w) => {
                    if (w.read, w.write) != (s.read, s.write) {
                        w.read = s.read;
                        w.write = s.write;
                        w.fut = None;
                    }
                }
                None => self.watches.push(Watch {
                    fd: s.fd,
                    epoch: s.epoch,
                    read: s.read,
                    write: s.write,
                    fut: None,
                }),
            }
        }
    }

    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<Answer, Error>> {
        // A cheap Arc clone of the handle so the loop can borrow `self`.
        let shared = self.shared.clone();
        let driver = &shared.driver;
        for _ in 0..BUDGET {
            if let Some(r) = take(&self.slot) {
                self.finished = true;
                return Poll::Ready(r);
            }
            self.sync_watches();
            let mut events = Vec::new();
            for w in &mut self.watches {
                let interest = w.interest();
                let fut = w
                    .fut
                    .get_or_insert_with(|| op::poll_fd(driver, w.fd, interest));
                if let Poll::Ready(res) = Pin::new(fut).poll(cx) {
                    w.fut = None;
                    events.push(FdEvents::new(w.fd, w.events(res.ok())));
                }
            }
            // c-ares' timeouts only once the watches had their chance: with
            // the task's budget spent they yield untried (see
            // `coro_io::coop`), and the task runs again at once.
            let spent = coro_io::coop::budget_spent();
            let expired = match &mut self.timer {
                Some(t) if !spent => Pin::new(t).poll(cx).is_ready(),
                _ => false,
            };
            if spent && events.is_empty() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if events.is_empty() && !expired {
                return Poll::Pending;
            }
            if events.is_empty() && self.bound.is_some_and(|b| self.shared.sched.now() >= b) {
                // Dropping the run cancels its queries.
                return Poll::Ready(Err(Error::Timeout));
            }
            let ch = &mut self.lane().channel;
            if events.is_empty() {
                ch.process_fd(None, None);
            } else if let Err(e) = ch.process_fds(&events, ProcessFlags::empty()) {
                return Poll::Ready(Err(e.into()));
            }
            self.rearm_timer();
        }
        // Still busy: let other tasks run, come back at once.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // Watchers first (io_uring: cancels their polls), then the timer.
        self.watches.clear();
        self.timer = None;
        let Some(mut lane) = self.lane.take() else {
            return;
        };
        if !self.finished {
            // Ends this lane's queries: the completion callback runs now
            // (with ECANCELLED, into the slot nobody reads) and is freed;
            // idle sockets are closed, each reported to the callback first.
            lane.channel.cancel();
        }
        self.shared.put_lane(lane, self.keep_lane);
    }
}

/// The state machine behind [`Lookup`](super::Lookup).
#[derive(Debug)]
pub(crate) struct Query {
    shared: Arc<Shared>,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Not polled yet (lazy, like every future).
    Start(Request),
    /// Decided before any query (bad name, IP literal).
    Early(Result<Answer, Error>),
    Running(Run),
    Done,
}

impl Query {
    pub(crate) fn new(shared: Arc<Shared>, req: Request) -> Query {
        Query {
            shared,
            state: State::Start(req),
        }
    }

    pub(crate) fn early(shared: Arc<Shared>, r: Result<Answer, Error>) -> Query {
        Query {
            shared,
            state: State::Early(r),
        }
    }

    pub(crate) fn poll_answer(&mut self, cx: &mut Context<'_>) -> Poll<Result<Answer, Error>> {
        if let State::Early(_) | State::Start(_) = self.state {
            match std::mem::replace(&mut self.state, State::Done) {
                State::Early(r) => return Poll::Ready(r),
                State::Start(req) => {
                    if self.shared.sched.is_shutdown() {
                        return Poll::Ready(Err(Error::Shutdown));
                    }
                    match Run::start(&self.shared, req) {
                        Ok(run) => self.state = State::Running(run),
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                _ => unreachable!(),
            }
        }
        let State::Running(run) = &mut self.state else {
            return Poll::Ready(Err(Error::Other("lookup polled after completion".into())));
        };
        if self.shared.sched.is_shutdown() {
            // Its timers and pollers will never fire again.
            self.state = State::Done;
            return Poll::Ready(Err(Error::Shutdown));
        }
        let r = run.drive(cx);
        if let Poll::Ready(Err(Error::ConnectionRefused)) = r {
            run.keep_lane = false;
        }
        if r.is_ready() {
            // Drop the run now: the lane goes back to the pool.
            self.state = State::Done;
        }
        r
    }
}
