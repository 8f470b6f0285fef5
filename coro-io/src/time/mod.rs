//! Timers: [`Sleep`], [`Timeout`], [`Interval`] and the per-scheduler timer
//! queue that feeds the driver's wait timeout.
//!
//! Created through the scheduler: [`IoScheduler::sleep`],
//! [`IoScheduler::sleep_until`], [`IoScheduler::timeout`],
//! [`IoScheduler::schedule_after`], [`IoScheduler::interval`].
//!
//! Deadlines are nanoseconds since the scheduler started, as `u64` with
//! saturating arithmetic (584 years of range): `Duration::MAX` means never,
//! an instant in the past means at once, and nothing overflows. One ordered
//! map per scheduler holds the pending timers (insert and cancel are
//! O(log n)); the earliest deadline is the event loop's wait timeout.
//!
//! With [`IoSchedulerOptions::start_paused`](crate::IoSchedulerOptions::start_paused)
//! the scheduler's clock is virtual: it only moves with
//! [`IoScheduler::advance`], so behaviour after days of uptime is testable in
//! microseconds.
//!
//! # Examples
//!
//! ```
//! use coro_io::IoScheduler;
//! use std::time::Duration;
//!
//! let sched = IoScheduler::new(Default::default())?;
//! let s = sched.clone();
//! let h = sched.spawn(async move {
//!     s.sleep(Duration::from_millis(1)).await;
//!     s.timeout(Duration::from_millis(1), std::future::pending::<()>()).await
//! });
//! assert!(coro_core::sync_wait(h).unwrap().is_err());
//! # std::io::Result::Ok(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

#[cfg(doc)]
use crate::IoScheduler;
use crate::driver::Handle;

/// A deadline that never comes.
pub(crate) const NEVER: u64 = u64::MAX;

/// Nanoseconds as `u64`, saturating.
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The scheduler's clock: real (monotonic since start) or virtual.
#[derive(Debug)]
pub(crate) struct Clock {
    start: Instant,
    paused: bool,
    virtual_ns: AtomicU64,
}

impl Clock {
    pub(crate) fn new(paused: bool) -> Clock {
        Clock {
            start: Instant::now(),
            paused,
            virtual_ns: AtomicU64::new(0),
        }
    }
    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }
    pub(crate) fn now_ns(&self) -> u64 {
        if self.paused {
            self.virtual_ns.load(Ordering::Acquire)
        } else {
            nanos(self.start.elapsed())
        }
    }
    pub(crate) fn now(&self) -> Instant {
        self.instant_of(self.now_ns())
    }
    pub(crate) fn instant_of(&self, ns: u64) -> Instant {
        // Far-future instants that do not fit: the latest representable.
        let mut d = Duration::from_nanos(ns);
        loop {
            if let Some(t) = self.start.checked_add(d) {
                return t;
            }
            d /= 2;
        }
    }
    pub(crate) fn deadline_after(&self, d: Duration) -> u64 {
        match nanos(d) {
            // Too long to tell from forever: never.
            NEVER => NEVER,
            // A finite wait ends, also at the end of the clock (a paused
            // clock advanced by `Duration::MAX`), where `NEVER` would
            // make it wait for good.
            n => self.now_ns().saturating_add(n).min(NEVER - 1),
        }
    }
    pub(crate) fn deadline_at(&self, t: Instant) -> u64 {
        // An instant is a finite time: it comes, also at the end of the
        // clock (a paused clock advanced by `Duration::MAX`, where `now()`
        // plus a few nanoseconds is `NEVER` or past it). One beyond what
        // the clock counts is its last instant, which a running clock
        // never reaches (584 years).
        let n = t.saturating_duration_since(self.start).as_nanos();
        u64::try_from(n).unwrap_or(u64::MAX).min(NEVER - 1)
    }
    /// Virtual clock only: move time forward. It stops short of `NEVER`:
    /// a timer due never must not come due (it would fire, find itself
    /// not due, re-register and fire again, every turn).
    pub(crate) fn advance(&self, d: Duration) {
        let add = nanos(d);
        let _ = self
            .virtual_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_add(add).min(NEVER - 1))
            });
    }
}

/// Key of a pending timer: (deadline, id).
pub(crate) type TimerKey = (u64, u64);

/// Pending timers, ordered by (deadline, id).
#[derive(Debug, Default)]
struct TimerQueue {
    map: BTreeMap<TimerKey, Waker>,
    next_id: u64,
    /// Set by [`Timers::drain`] at shutdown: nothing fires any more.
    closed: bool,
}

impl TimerQueue {
    /// The earliest finite deadline, or `NEVER`.
    fn earliest(&self) -> u64 {
        self.map.first_key_value().map_or(NEVER, |(k, _)| k.0)
    }
}

/// A scheduler's timers: the queue behind a lock, and two numbers kept
/// beside it (written under the lock) that let the hot paths skip it:
/// the event loop reads `due` to learn whether any timer is due, and a
/// registered [`Sleep`] reads `fired` to learn whether its timer could
/// have fired, without reading the clock.
#[derive(Debug)]
pub(crate) struct Timers {
    queue: Mutex<TimerQueue>,
    /// The earliest finite deadline in the queue, or `NEVER`.
    due: AtomicU64,
    /// Every timer with a deadline at or before this was taken out of the
    /// queue and woken (the latest `now` expired); `u64::MAX` after
    /// shutdown. A timer with a later deadline that its owner has not
    /// removed is still in the queue, so its waker will be called.
    fired: AtomicU64,
}

/// What [`Timers::register`] did.
pub(crate) enum Registered {
    /// In the queue; `earliest`: it is the earliest deadline now.
    Armed { earliest: bool },
    /// The scheduler shut down: nothing fires any more.
    Closed,
}

impl Timers {
    pub(crate) fn new() -> Timers {
        Timers {
            queue: Mutex::new(TimerQueue::default()),
            due: AtomicU64::new(NEVER),
            fired: AtomicU64::new(0),
        }
    }
    fn lock(&self) -> MutexGuard<'_, TimerQueue> {
        crate::lock(&self.queue)
    }
    fn set_due(&self, q: &TimerQueue) {
        self.due.store(q.earliest(), Ordering::Release);
    }
    /// The earliest finite deadline (`NEVER`: none).
    pub(crate) fn due(&self) -> u64 {
        self.due.load(Ordering::Acquire)
    }
    /// Arm a timer, or refresh the waker of the one `key` names if it is
    /// still pending (`key` is set to the timer's key).
    pub(crate) fn register(
        &self,
        key: &mut Option<TimerKey>,
        deadline: u64,
        waker: &Waker,
    ) -> Registered {
        let mut q = self.lock();
        if q.closed {
            *key = None;
            return Registered::Closed;
        }
        if let Some(w) = key.and_then(|k| q.map.get_mut(&k)) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
            return Registered::Armed { earliest: false };
        }
        q.next_id += 1;
        let k = (deadline, q.next_id);
        q.map.insert(k, waker.clone());
        *key = Some(k);
        let earliest = deadline < self.due.load(Ordering::Relaxed);
        if earliest {
            self.due.store(deadline, Ordering::Release);
        }
        Registered::Armed { earliest }
    }
    pub(crate) fn remove(&self, key: TimerKey) {
        let mut q = self.lock();
        let waker = q.map.remove(&key);
        if waker.is_some() && key.0 == self.due.load(Ordering::Relaxed) {
            self.set_due(&q);
        }
        // After the lock: this may be the waker's last clone, and its drop
        // may run anything, this scheduler's timers included (a foreign
        // waker that owns its task drops the task's other sleeps).
        drop(q);
        drop(waker);
    }
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
    }
    /// Whether a timer with this deadline may have been taken out and
    /// woken (see `fired`).
    pub(crate) fn may_have_fired(&self, deadline: u64) -> bool {
        deadline <= self.fired.load(Ordering::Acquire)
    }
    /// Remove every timer due at `now`, pushing its waker to `out` (to be
    /// woken after this returns, without the lock).
    pub(crate) fn expire(&self, now: u64, out: &mut Vec<Waker>) {
        let mut q = self.lock();
        while let Some(e) = q.map.first_entry() {
            if e.key().0 > now {
                break;
            }
            out.push(e.remove());
        }
        self.set_due(&q);
        if now > self.fired.load(Ordering::Relaxed) {
            self.fired.store(now, Ordering::Release);
        }
    }
    /// Shutdown: take every timer, nothing fires any more.
    pub(crate) fn drain(&self, out: &mut Vec<Waker>) {
        let mut q = self.lock();
        q.closed = true;
        out.extend(std::mem::take(&mut q.map).into_values());
        self.due.store(NEVER, Ordering::Release);
        self.fired.store(u64::MAX, Ordering::Release);
    }
}

/// A scheduler's time, what its sleeps hold (not the scheduler): the
/// clock, the timers, and how to wake the scheduler's event loop when a
/// timer earlier than its wait's timeout is armed.
#[derive(Debug)]
pub(crate) struct Time {
    pub(crate) clock: Clock,
    pub(crate) timers: Timers,
    /// The driver the event loop waits in.
    driver: Handle,
    /// Which event loop this is (see [`crate::scheduler::runs_loop`]): the
    /// scheduler's address. Once the scheduler is gone, a new one may get
    /// the same address; then a sleep of the old one may skip waking the
    /// old driver, whose loop no longer runs anyway.
    loop_id: usize,
}

impl Time {
    pub(crate) fn new(start_paused: bool, driver: Handle, loop_id: usize) -> Time {
        Time {
            clock: Clock::new(start_paused),
            timers: Timers::new(),
            driver,
            loop_id,
        }
    }

    /// A sleep until `deadline` (nanoseconds on this clock).
    pub(crate) fn sleep(self: &Arc<Self>, deadline: u64) -> Sleep {
        Sleep::new(self.clone(), deadline)
    }

    /// Wake the timers due at `now`; how many were woken.
    pub(crate) fn fire(&self, now: u64) -> usize {
        if now < self.timers.due() {
            return 0;
        }
        let mut wake = Vec::new();
        self.timers.expire(now, &mut wake);
        let n = wake.len();
        crate::wake_all(wake);
        n
    }

    /// A timer earlier than every other was armed: the event loop may be
    /// waiting with a later timeout, unless it is this thread's (it looks
    /// at the timers again before it waits).
    fn wake_loop(&self) {
        if !crate::scheduler::runs_loop(self.loop_id) {
            self.driver.unpark();
        }
    }
}

/// Future returned by [`IoScheduler::sleep`] and [`IoScheduler::sleep_until`].
///
/// # Shutdown
///
/// After [`IoScheduler::shutdown`] no timer fires: a task of that scheduler
/// waiting on a sleep is cancelled, and a sleep polled from elsewhere
/// completes (at its second poll) rather than waiting forever.
///
/// # Cancel safety
///
/// Cancel safe: dropping it removes its timer.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Sleep {
    time: Arc<Time>,
    deadline: u64,
    key: Option<TimerKey>,
    /// The waker the queued timer holds (with `key`).
    waker: Option<Waker>,
    /// Polled once after the scheduler shut down (see `poll`).
    saw_shutdown: bool,
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline_ns", &self.deadline)
            .field("armed", &self.key.is_some())
            .finish()
    }
}

impl Sleep {
    fn new(time: Arc<Time>, deadline: u64) -> Sleep {
        Sleep {
            time,
            deadline,
            key: None,
            waker: None,
            saw_shutdown: false,
        }
    }
    /// The instant this sleep completes at (a far-future instant for "never").
    pub fn deadline(&self) -> Instant {
        self.time.clock.instant_of(self.deadline)
    }
    /// Whether the deadline has passed, by the scheduler's clock.
    ///
    /// A sleep already polled completes when the event loop fires its
    /// timer, which may be a moment after this turns true.
    pub fn is_elapsed(&self) -> bool {
        self.time.clock.now_ns() >= self.deadline
    }
    fn reset_ns(&mut self, deadline: u64) {
        self.disarm();
        self.deadline = deadline;
    }
    fn disarm(&mut self) {
        if let Some(key) = self.key.take() {
            self.waker = None;
            self.time.timers.remove(key);
        }
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let timers = &this.time.timers;
        // Armed with this waker and not fired: the timer wakes this task
        // when due, nothing to do (no lock, no clock read: an idle timer
        // polled beside every read of a connection costs one load).
        if this.key.is_some()
            && this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()))
            && !timers.may_have_fired(this.deadline)
        {
            return Poll::Pending;
        }
        if this.deadline != NEVER && this.time.clock.now_ns() >= this.deadline {
            // A due sleep counts against the task's budget, as an op does
            // (and as tokio's does): a loop over sleeps already due (a
            // pacing loop that fell behind) yields now and then instead of
            // keeping its thread for ever. It stays due: nothing is lost.
            std::task::ready!(crate::coop::poll_proceed(cx));
            crate::coop::consume();
            this.disarm();
            return Poll::Ready(());
        }
        match timers.register(&mut this.key, this.deadline, cx.waker()) {
            Registered::Closed => {
                // The scheduler shut down: no timer will fire. A task of it
                // is cancelled by this wake-up (its scheduler drops it);
                // anyone else polling gets `Ready` next time instead of
                // waiting forever.
                this.waker = None;
                if std::mem::replace(&mut this.saw_shutdown, true) {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
            }
            Registered::Armed { earliest } => {
                if !this.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    this.waker = Some(cx.waker().clone());
                }
                if earliest {
                    // The event loop may be asleep with a later timeout.
                    this.time.wake_loop();
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.disarm();
    }
}

/// The error of [`IoScheduler::timeout`]: the deadline passed first.
///
/// # Examples
///
/// ```
/// let e = coro_io::time::Elapsed::new();
/// assert_eq!(e.to_string(), "deadline has elapsed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(());

impl Elapsed {
    /// Make one (for tests and adapters).
    pub fn new() -> Elapsed {
        Elapsed(())
    }
}

impl Default for Elapsed {
    fn default() -> Self {
        Elapsed::new()
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for std::io::Error {
    fn from(e: Elapsed) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, e)
    }
}

pin_project_lite::pin_project! {
    /// Future returned by [`IoScheduler::timeout`].
    ///
    /// # Shutdown
    ///
    /// Polled from outside its scheduler after the scheduler shut down,
    /// the deadline ends early: `Err(Elapsed)` before the time passed (see
    /// [`IoScheduler::timeout`]).
    ///
    /// # Cancel safety
    ///
    /// As cancel safe as the wrapped future; the timer is removed on drop.
    ///
    /// # The cooperative budget
    ///
    /// The deadline is looked at after each poll of the wrapped future that
    /// started with some of the task's budget left ([`coop`](crate::coop)),
    /// also if the future spent it all (one that is always ready still
    /// times out). A future of several ops may yield part-way on the
    /// budget's account and then see its deadline pass at that poll, as
    /// with tokio's `timeout`; one op alone is always tried first.
    #[must_use = "futures do nothing unless you .await or poll them"]
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        fut: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    pub(crate) fn new(fut: F, sleep: Sleep) -> Timeout<F> {
        Timeout { fut, sleep }
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let had_budget = !crate::coop::budget_spent();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if !had_budget {
            // The task's budget was spent before: the future may have
            // yielded without trying, so the deadline waits for its chance
            // (the task runs again at once, with a fresh budget; see
            // `coop`).
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        // The future had a budget, and tried. It may have spent all of it
        // (a future always ready does, every poll): the deadline is looked
        // at anyway, or it would never be.
        // Without the budget: the future may have spent it this poll.
        match crate::coop::without_budget(|| Pin::new(this.sleep).poll(cx)) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A stream of ticks every `period`, from [`IoScheduler::interval`].
///
/// The first tick completes at once. **Missed ticks are skipped**: if the
/// consumer falls behind by more than a period, the next tick is the next
/// multiple of `period` (counted from the first tick) after now, so ticks
/// never burst to catch up and stay on the original phase.
///
/// Once its scheduler has shut down, ticks whose time has come when they
/// are polled still complete (by the clock), and so does the first one
/// polled before its time, which finds the timers closed (as a [`Sleep`]
/// does, instead of hanging); no tick after that one does: each would
/// complete at once, and a loop over them would spin a core. A task still
/// awaiting one then waits for ever; the [`Stream`](futures_core::Stream)
/// ends instead, so `while let Some(_) = interval.next().await` stops.
///
/// # Cancel safety
///
/// [`tick`](Interval::tick) is cancel safe: a dropped `tick()` future does
/// not consume a tick.
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: u64,
    /// Its scheduler shut down, and the tick that said so was taken.
    ended: bool,
}

impl Interval {
    pub(crate) fn new(time: &Arc<Time>, period: Duration) -> Interval {
        assert!(!period.is_zero(), "interval period must be non-zero");
        Interval {
            sleep: time.sleep(time.clock.now_ns()),
            period: nanos(period),
            ended: false,
        }
    }

    /// The period (one of 2^64 ns, about 584 years, or more is kept, and
    /// reported, as 2^64 - 1 ns).
    pub fn period(&self) -> Duration {
        Duration::from_nanos(self.period)
    }

    /// Wait for the next tick; returns its scheduled instant.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Poll for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if self.ended {
            return Poll::Pending; // its scheduler shut down: see the type's docs
        }
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.ended = self.sleep.saw_shutdown;
        let due = self.sleep.deadline;
        let now = self.sleep.time.clock.now_ns();
        // Next multiple of the period after `now` (skip missed ticks).
        let behind = now.saturating_sub(due);
        let steps = behind / self.period + 1;
        let next = due.saturating_add(steps.saturating_mul(self.period));
        // A finite period's next tick comes, also at the end of the clock
        // (as a finite sleep's deadline, see `deadline_after`).
        let next = if self.period == NEVER {
            NEVER
        } else {
            next.min(NEVER - 1)
        };
        self.sleep.reset_ns(next);
        Poll::Ready(self.sleep.time.clock.instant_of(due))
    }
}

impl futures_core::Stream for Interval {
    type Item = Instant;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        this.poll_tick(cx).map(Some)
    }
}
