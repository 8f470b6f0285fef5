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
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::scheduler::{Inner, IoScheduler};

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
        self.now_ns().saturating_add(nanos(d))
    }
    pub(crate) fn deadline_at(&self, t: Instant) -> u64 {
        nanos(t.saturating_duration_since(self.start))
    }
    /// Virtual clock only: move time forward.
    pub(crate) fn advance(&self, d: Duration) {
        let add = nanos(d);
        let _ = self
            .virtual_ns
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| {
                Some(v.saturating_add(add))
            });
    }
}

/// Pending timers, ordered by (deadline, id).
#[derive(Debug, Default)]
pub(crate) struct TimerQueue {
    map: BTreeMap<(u64, u64), Waker>,
    next_id: u64,
    /// Set by [`drain`](TimerQueue::drain) at shutdown: nothing fires any more.
    closed: bool,
}

impl TimerQueue {
    pub(crate) fn insert(&mut self, deadline: u64, waker: Waker) -> (u64, u64) {
        self.next_id += 1;
        let key = (deadline, self.next_id);
        self.map.insert(key, waker);
        key
    }
    /// Refresh the waker of a still-pending timer; false if it already fired.
    pub(crate) fn update(&mut self, key: (u64, u64), waker: &Waker) -> bool {
        match self.map.get_mut(&key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            None => false,
        }
    }
    pub(crate) fn remove(&mut self, key: (u64, u64)) {
        self.map.remove(&key);
    }
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
    /// The earliest finite deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.map
            .first_key_value()
            .map(|(k, _)| k.0)
            .filter(|&d| d != NEVER)
    }
    /// Remove every timer due at `now`, pushing its waker to `out`.
    pub(crate) fn expire(&mut self, now: u64, out: &mut Vec<Waker>) {
        while let Some(e) = self.map.first_entry() {
            if e.key().0 > now {
                break;
            }
            out.push(e.remove());
        }
    }
    /// Shutdown: wake everything.
    pub(crate) fn drain(&mut self, out: &mut Vec<Waker>) {
        self.closed = true;
        out.extend(std::mem::take(&mut self.map).into_values());
    }
    /// Whether the scheduler shut down (timers are no longer served).
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
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
    inner: Arc<Inner>,
    deadline: u64,
    key: Option<(u64, u64)>,
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
    pub(crate) fn new(inner: Arc<Inner>, deadline: u64) -> Sleep {
        Sleep {
            inner,
            deadline,
            key: None,
            saw_shutdown: false,
        }
    }
    /// The instant this sleep completes at (a far-future instant for "never").
    pub fn deadline(&self) -> Instant {
        self.inner.clock.instant_of(self.deadline)
    }
    /// Whether the deadline has passed (the next poll is `Ready`).
    pub fn is_elapsed(&self) -> bool {
        self.inner.clock.now_ns() >= self.deadline
    }
    fn reset_ns(&mut self, deadline: u64) {
        self.disarm();
        self.deadline = deadline;
    }
    fn disarm(&mut self) {
        if let Some(key) = self.key.take() {
            self.inner.timers().remove(key);
        }
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.deadline != NEVER && this.inner.clock.now_ns() >= this.deadline {
            this.disarm();
            return Poll::Ready(());
        }
        let mut timers = this.inner.timers();
        if timers.is_closed() {
            // The scheduler shut down: no timer will fire. A task of it is
            // cancelled by this wake-up (its scheduler drops it); anyone else
            // polling gets `Ready` next time instead of waiting forever.
            drop(timers);
            this.key = None;
            if std::mem::replace(&mut this.saw_shutdown, true) {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        match this.key {
            Some(key) if timers.update(key, cx.waker()) => {}
            _ => {
                let key = timers.insert(this.deadline, cx.waker().clone());
                let earliest = timers.next_deadline() == Some(this.deadline);
                drop(timers);
                this.key = Some(key);
                if earliest {
                    // The event loop may be asleep with a later timeout.
                    this.inner.wake_loop();
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
    /// # Cancel safety
    ///
    /// As cancel safe as the wrapped future; the timer is removed on drop.
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
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
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
/// # Cancel safety
///
/// [`tick`](Interval::tick) is cancel safe: a dropped `tick()` future does
/// not consume a tick.
#[derive(Debug)]
pub struct Interval {
    sleep: Sleep,
    period: u64,
}

impl Interval {
    pub(crate) fn new(inner: Arc<Inner>, period: Duration) -> Interval {
        assert!(!period.is_zero(), "interval period must be non-zero");
        let now = inner.clock.now_ns();
        Interval {
            sleep: Sleep::new(inner, now),
            period: nanos(period),
        }
    }

    /// The period.
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
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let due = self.sleep.deadline;
        let now = self.sleep.inner.clock.now_ns();
        // Next multiple of the period after `now` (skip missed ticks).
        let behind = now.saturating_sub(due);
        let steps = behind / self.period + 1;
        let next = due.saturating_add(steps.saturating_mul(self.period));
        self.sleep.reset_ns(next);
        Poll::Ready(self.sleep.inner.clock.instant_of(due))
    }
}

impl futures_core::Stream for Interval {
    type Item = Instant;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

/// Helper for `IoScheduler`: build a sleep until `deadline_ns`.
pub(crate) fn sleep_ns(sched: &IoScheduler, deadline: u64) -> Sleep {
    Sleep::new(sched.inner.clone(), deadline)
}
