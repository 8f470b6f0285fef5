//! Unix signals as futures: [`ctrl_c`] and a [`Signal`] stream of the
//! deliveries of one signal, on the current scheduler.
//!
//! The first listener of a signal installs a process-wide handler for it
//! (through `signal-hook-registry`, which chains any handler that was there
//! before). The handler does only what is safe in a signal handler: it
//! bumps the signal's delivery count and writes a byte to a pipe. Listeners
//! wait for that pipe through their scheduler's driver (a native poll on
//! io_uring) and compare counts, so every listener sees every delivery
//! after it was created, several deliveries between two polls are seen as
//! one (as with tokio), and nothing is lost while no one is polling.
//!
//! Once a handler is installed for a signal it stays for the life of the
//! process: after the first [`ctrl_c`], Ctrl-C no longer ends the program
//! by itself (the point: the program decides how to shut down).
//!
//! # Examples
//!
//! ```no_run
//! use coro_io::IoScheduler;
//!
//! let sched = IoScheduler::new(Default::default())?;
//! let h = sched.spawn(async {
//!     coro_io::signal::ctrl_c().await?;
//!     println!("Ctrl-C: shutting down");
//!     std::io::Result::Ok(())
//! });
//! coro_core::sync_wait(h).unwrap()?;
//! sched.shutdown();
//! # std::io::Result::Ok(())
//! ```
//!
//! A stream of SIGHUPs (say, to reload a configuration):
//!
//! ```no_run
//! use coro_io::signal::{SignalKind, signal};
//! use futures_util::StreamExt;
//!
//! # let sched = coro_io::IoScheduler::new(Default::default())?;
//! # let _h = sched.spawn(async {
//! let mut hups = signal(SignalKind::hangup())?;
//! while hups.next().await.is_some() {
//!     println!("reloading");
//! }
//! # std::io::Result::Ok(())
//! # });
//! # std::io::Result::Ok(())
//! ```

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::task::{Context, Poll};

use coro_sync::__private::{Waiter, Waiters};

use crate::IoScheduler;
use crate::driver::{Handle, Interest};
use crate::op::{self, OpFuture, PollFd};

/// Which signal (a Unix signal number with names for the usual ones).
///
/// # Examples
///
/// ```
/// use coro_io::signal::SignalKind;
/// assert_eq!(SignalKind::terminate().as_raw_value(), libc::SIGTERM);
/// assert_eq!(SignalKind::from_raw(libc::SIGUSR1), SignalKind::user_defined1());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// Any signal by number (`libc::SIGRTMIN() + 1`, say).
    pub const fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }
    /// The signal number.
    pub const fn as_raw_value(self) -> i32 {
        self.0
    }
    /// `SIGINT` (Ctrl-C).
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }
    /// `SIGTERM` (a polite request to stop: `kill`, systemd, Kubernetes).
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }
    /// `SIGHUP`.
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }
    /// `SIGQUIT`.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }
    /// `SIGUSR1`.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }
    /// `SIGUSR2`.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }
    /// `SIGCHLD`.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }
    /// `SIGPIPE`.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }
    /// `SIGALRM`.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }
    /// `SIGWINCH` (the terminal was resized).
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }
}

/// Signal numbers go up to this (Linux: 64 with the real-time ones).
const MAX_SIGNAL: usize = 65;

/// What the whole process shares: the pipe the handlers write to, each
/// signal's delivery count and handler state, and the waiter lists the
/// listeners wait on.
struct Globals {
    read: OwnedFd,
    write: OwnedFd,
    /// Deliveries of each signal, bumped by the handler.
    counts: [AtomicU64; MAX_SIGNAL],
    /// Which signals have our handler (or failed to get it: the error).
    installed: Mutex<[Option<Result<(), String>>; MAX_SIGNAL]>,
    /// Notified whenever a listener drained the pipe.
    delivered: Waiters,
}

fn globals() -> io::Result<&'static Globals> {
    static GLOBALS: OnceLock<Globals> = OnceLock::new();
    // Only a success is kept: a pipe that could not be made (`EMFILE` in
    // a server at its fd limit) is tried again by the next call, rather
    // than failing every signal listener for the rest of the process.
    static MAKING: Mutex<()> = Mutex::new(());
    if let Some(g) = GLOBALS.get() {
        return Ok(g);
    }
    let _making = crate::lock(&MAKING);
    if let Some(g) = GLOBALS.get() {
        return Ok(g);
    }
    // The kernel's error as it is (`EMFILE`: its errno is what a caller
    // can act on; `io::Error` cannot carry both it and a message).
    let (read, write) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?;
    Ok(GLOBALS.get_or_init(|| Globals {
        read,
        write,
        counts: [const { AtomicU64::new(0) }; MAX_SIGNAL],
        installed: Mutex::new([const { None }; MAX_SIGNAL]),
        delivered: Waiters::new(),
    }))
}

/// Install our handler for `kind` once per process.
fn install(g: &'static Globals, kind: SignalKind) -> io::Result<()> {
    let sig = kind.0;
    let idx = usize::try_from(sig)
        .ok()
        .filter(|&i| i > 0 && i < MAX_SIGNAL)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("signal {sig} does not exist"),
            )
        })?;
    if signal_hook_registry::FORBIDDEN.contains(&sig) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {sig} cannot be handled (SIGKILL, SIGSTOP, SIGSEGV, SIGILL, SIGFPE)"),
        ));
    }
    let mut installed = crate::lock(&g.installed);
    let done = installed[idx].get_or_insert_with(|| {
        let count = &g.counts[idx];
        let pipe = &g.write;
        let byte = [sig as u8];
        let action = move || {
            count.fetch_add(1, Ordering::SeqCst);
            // A full pipe is fine: the count is what listeners read.
            let _ = rustix::io::write(pipe, &byte);
        };
        // SAFETY: the action is async-signal-safe: an atomic add and one
        // write(2) system call on a pipe that lives as long as the process
        // (the globals are never dropped); no allocation, lock or panic.
        match unsafe { signal_hook_registry::register(sig, action) } {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("cannot install a handler for signal {sig}: {e}")),
        }
    });
    done.clone().map_err(io::Error::other)
}

/// A stream of the deliveries of one signal after it was created.
///
/// Each item is one or more deliveries since the previous item (they
/// coalesce). Every `Signal` of the same kind sees every delivery. It reads
/// through the driver of the scheduler it was made on.
///
/// Unlike tokio's, the stream ends (`None`) once its scheduler shuts
/// down: a loop `while let Some(()) = sig.recv().await { .. }` ends then,
/// where a ported `loop { sig.recv().await; .. }` would spin. All signal
/// kinds share one pipe, so a delivery of any kind wakes every `Signal`
/// for a look at its own count (a `SIGCHLD` or `SIGWINCH` listener costs
/// a wake-up of the `SIGTERM` one each time, no more).
///
/// # Cancel safety
///
/// [`recv`](Signal::recv) is cancel safe: a delivery is only consumed by
/// the call that returns it.
pub struct Signal {
    kind: SignalKind,
    g: &'static Globals,
    driver: Handle,
    /// The count this listener has seen.
    seen: u64,
    listener: Option<Waiter>,
    pipe: Option<OpFuture<PollFd>>,
    /// Waits on the pipe that failed in a row (see `poll_recv`).
    failures: u16,
    /// The stream ended (see `recv`): it stays ended.
    ended: bool,
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("kind", &self.kind).finish()
    }
}

/// Listen for `kind` on the current scheduler.
///
/// # Errors
///
/// `InvalidInput` for a signal that does not exist or cannot be handled
/// (`SIGKILL`, `SIGSTOP`, `SIGSEGV`, `SIGILL`, `SIGFPE`); the error of
/// installing the handler, or the kernel's of making the process's signal
/// pipe on first use (`EMFILE` at the fd limit: a later call tries again).
///
/// # Panics
///
/// Outside a task (or event-loop turn) of an [`IoScheduler`]; use
/// [`Signal::new`] with a scheduler there.
#[track_caller]
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let sched = IoScheduler::current().unwrap_or_else(|| {
        panic!(
            "coro::signal::signal must be called from a task of an IoScheduler; \
             use Signal::new(&sched, kind) elsewhere"
        )
    });
    Signal::new(&sched, kind)
}

impl Signal {
    /// Listen for `kind` through `sched`'s driver.
    ///
    /// # Errors
    ///
    /// As [`signal`].
    pub fn new(sched: &IoScheduler, kind: SignalKind) -> io::Result<Signal> {
        let g = globals()?;
        install(g, kind)?;
        let seen = g.counts[kind.0 as usize].load(Ordering::SeqCst);
        Ok(Signal {
            kind,
            g,
            driver: sched.driver().clone(),
            seen,
            listener: None,
            pipe: None,
            failures: 0,
            ended: false,
        })
    }

    /// Which signal this is.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    /// The next delivery; `None` once its scheduler has shut down, or if
    /// waiting for deliveries failed 1,024 times in a row with no delivery
    /// in between (a driver that keeps refusing the wait: ending the
    /// stream beats spinning on it). An ended stream stays ended.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn recv(&mut self) -> Option<()> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Poll for the next delivery (the `Stream` implementation).
    ///
    /// A delivery counts against the task's budget, as an op's result
    /// does (see [`coop`](crate::coop)): under a flood of signals, one
    /// always waiting, a task receiving them in a loop still yields.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.ended {
            return Poll::Ready(None);
        }
        std::task::ready!(crate::coop::poll_proceed(cx));
        let count = &self.g.counts[self.kind.0 as usize];
        loop {
            let now = count.load(Ordering::SeqCst);
            if now != self.seen {
                self.seen = now;
                self.failures = 0;
                self.listener = None;
                crate::coop::consume();
                return Poll::Ready(Some(()));
            }
            // Listen first, then look again: a drain that happened in
            // between has notified this listener.
            let Some(listener) = self.listener.as_mut() else {
                self.listener = Some(self.g.delivered.listen());
                continue;
            };
            if Pin::new(listener).poll(cx).is_ready() {
                self.listener = None;
                continue;
            }
            // Wait for the pipe ourselves too: some listener must read it.
            let pipe = self.pipe.get_or_insert_with(|| {
                op::poll_fd(&self.driver, self.g.read.as_raw_fd(), Interest::Read)
            });
            match Pin::new(pipe).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    // The op is spent either way: a later poll must not
                    // poll it again.
                    self.pipe = None;
                    self.failures = self.failures.saturating_add(1);
                    if crate::driver::is_shut_down(&e) || self.failures >= MAX_FAILURES {
                        // The driver shut down, or will not let us wait:
                        // the stream ends, for good.
                        self.ended = true;
                        return Poll::Ready(None);
                    }
                    // The wait itself failed on a running driver (no
                    // memory for the op, say): that is not the end of the
                    // stream. Try again at the next poll, after the other
                    // tasks had their turn.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Ok(_)) => {
                    self.failures = 0;
                    self.pipe = None;
                    drain(&self.g.read);
                    self.g.delivered.notify(usize::MAX);
                }
            }
        }
    }
}

/// Failed waits on the pipe in a row (each retried at the next poll)
/// after which a listener's stream ends: many, so that a passing shortage
/// (memory for an op) does not end it.
const MAX_FAILURES: u16 = 1024;

/// Empty the pipe (its bytes only wake listeners; counts carry the news).
fn drain(fd: impl AsFd) {
    let mut buf = [0u8; 64];
    while let Ok(n) = rustix::io::read(fd.as_fd(), &mut buf) {
        if n == 0 {
            break;
        }
    }
}

impl futures_core::Stream for Signal {
    type Item = ();
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut().poll_recv(cx)
    }
}

/// Wait for Ctrl-C (`SIGINT`) on the current scheduler: the usual start of
/// a graceful shutdown. The first call installs the handler for good, so
/// Ctrl-C no longer ends the process by itself.
///
/// # Errors
///
/// When the handler cannot be installed (or the pipe made).
///
/// # Cancel safety
///
/// Cancel safe: dropping it misses nothing a later call would have seen
/// (a new call waits for the next Ctrl-C). A Ctrl-C that comes between
/// two calls is seen by neither (the handler stays installed, so it does
/// not end the process either): in a `select!` loop make one
/// [`signal`]`(`[`SignalKind::interrupt`]`())` before the loop and select
/// on its [`recv`](Signal::recv), as with tokio.
///
/// # Panics
///
/// Awaited outside a task (or event-loop turn) of an [`IoScheduler`].
/// Called in one, it listens from the call on (a Ctrl-C between the call
/// and the first poll counts); called outside, as tokio's may be, from
/// the first poll on, on the scheduler of the task that polls it.
///
/// # Examples
///
/// ```no_run
/// # let sched = coro_io::IoScheduler::new(Default::default())?;
/// # let _h = sched.spawn(async {
/// coro_io::signal::ctrl_c().await?;
/// # std::io::Result::Ok(())
/// # });
/// # std::io::Result::Ok(())
/// ```
#[track_caller]
pub fn ctrl_c() -> impl Future<Output = io::Result<()>> + Send + 'static {
    let sig = IoScheduler::current()
        .ok_or(())
        .map(|s| Signal::new(&s, SignalKind::interrupt()));
    async move {
        let sig = match sig {
            Ok(s) => s,
            // Made outside a task: the scheduler of the task awaiting it.
            Err(()) => match IoScheduler::current() {
                Some(s) => Signal::new(&s, SignalKind::interrupt()),
                None => panic!(
                    "coro::signal::ctrl_c was called and awaited outside a task of an IoScheduler"
                ),
            },
        };
        let mut sig = sig?;
        match sig.recv().await {
            Some(()) => Ok(()),
            None => Err(crate::driver::shut_down()),
        }
    }
}

/// Wait for any of `kinds` (`[interrupt(), terminate()]`, say); returns
/// the one that came. The usual "stop on Ctrl-C or SIGTERM".
///
/// # Errors
///
/// As [`signal`].
///
/// # Cancel safety
///
/// Cancel safe.
///
/// # Panics
///
/// As [`signal`].
#[track_caller]
pub fn any_of(
    kinds: &[SignalKind],
) -> impl Future<Output = io::Result<SignalKind>> + Send + 'static {
    let made: io::Result<Vec<Signal>> = kinds.iter().map(|&k| signal(k)).collect();
    async move {
        let mut sigs = made?;
        if sigs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "signal::any_of needs at least one signal",
            ));
        }
        std::future::poll_fn(|cx| {
            for s in &mut sigs {
                match s.poll_recv(cx) {
                    Poll::Ready(Some(())) => return Poll::Ready(Ok(s.kind())),
                    Poll::Ready(None) => return Poll::Ready(Err(crate::driver::shut_down())),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use super::*;

    /// A listener whose waker polls it right inside `wake`, as a
    /// hand-rolled executor's may.
    struct Inline {
        sig: Mutex<Signal>,
        got: AtomicBool,
    }

    impl Inline {
        fn poll(self: &Arc<Self>) {
            let waker = Waker::from(self.clone());
            // Woken from inside its own poll (by its own drain): that poll
            // looks again by itself.
            let Ok(mut sig) = self.sig.try_lock() else {
                return;
            };
            if sig.poll_recv(&mut Context::from_waker(&waker)).is_ready() {
                self.got.store(true, Ordering::SeqCst);
            }
        }
    }

    impl Wake for Inline {
        fn wake(self: Arc<Self>) {
            self.poll();
        }
    }

    /// Another listener's drain wakes every listener. One whose waker
    /// polls it there sees the delivery and drops its registration: that
    /// must not happen while the list of listeners is locked (it took the
    /// lock again: a deadlock, of every signal listener in the process).
    #[test]
    fn a_listener_whose_waker_polls_it_inline_sees_another_listeners_drain() {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let sched = IoScheduler::new(Default::default()).unwrap();
            // A real-time signal nothing here raises: the delivery below
            // is made by hand, as the handler and a drain would.
            let kind = SignalKind::from_raw(libc::SIGRTMIN() + 9);
            let l = Arc::new(Inline {
                sig: Mutex::new(Signal::new(&sched, kind).unwrap()),
                got: AtomicBool::new(false),
            });
            l.poll();
            assert!(!l.got.load(Ordering::SeqCst), "a delivery nobody made");
            let g = globals().unwrap();
            g.counts[kind.0 as usize].fetch_add(1, Ordering::SeqCst);
            g.delivered.notify(usize::MAX);
            let _ = tx.send(l.got.load(Ordering::SeqCst));
            drop(l);
            sched.shutdown();
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(got) => assert!(got, "the listener was not run by the drain's wake-up"),
            Err(e) => {
                panic!("the listener's thread did not answer (a deadlock, or it failed): {e}")
            }
        }
    }
}
