//! [`Semaphore`]: a counting semaphore with multi-permit requests and `close`.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::Arc;
#[cfg(not(loom))]
use std::time::Instant;

use crate::waiters::{Waiter, Waiters};

use crate::error::{Closed, TryAcquireError};
use crate::loom::atomic::{AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
use crate::raw_mutex::STARVATION_BOUND;

const CLOSED: u64 = 1;
const PRIORITY: u64 = 1 << 1;
/// Registered waiters, bits 2..32: a release with none skips the wake-up
/// (and a fence and an atomic read less in the waiter list's `notify`).
const WAITER: u64 = 1 << 2;
const WAITER_MASK: u64 = 0xFFFF_FFFC;
/// Available permits, bits 32..64.
const SHIFT: u32 = 32;

/// A counting semaphore: [`acquire`](Semaphore::acquire) takes a permit, the
/// returned [`SemaphorePermit`] gives it back on drop.
///
/// [`acquire_many(k)`](Semaphore::acquire_many) takes `k` permits at once, all
/// or none. [`close`](Semaphore::close) fails current and future acquires.
/// libcoro: `coro::semaphore`.
///
/// # Fairness
///
/// Waiters are woken in FIFO order, and a woken waiter competes with newcomers
/// for about **1 ms** of waiting. (While an [`acquire_many`](Semaphore::acquire_many)
/// of more than one permit waits, a release wakes every waiter, as it cannot
/// tell whose request now fits: who gets the permits is then whoever runs
/// first, and a release costs a wake-up per waiter.) A waiter that has waited longer takes the
/// single *priority* slot: while it is held, the others may take only the
/// permits beyond its request (and none while its holder tries to take
/// them, for the instant of that attempt: a `try_acquire` then may be
/// refused), so the permits released meanwhile
/// accumulate until the priority waiter's request fits, however large. A
/// large request is therefore never starved by a stream of small ones. A
/// request for more than exists (available plus held out) never takes the
/// slot, and one that [`forget`](SemaphorePermit::forget) made impossible
/// gives it back: it would hold everyone up for good.
///
/// The slot is let go of when its holder is polled again (or dropped): an
/// `acquire` kept pending but not polled for a while (pinned across a
/// `select!` loop whose other arm runs long) keeps its request's permits
/// from the others meanwhile, as tokio's first waiter does. Bounded
/// [`mpsc`](crate::mpsc) channels take their slots from this semaphore: a
/// `send` or `reserve` kept that way holds back its one slot.
///
/// # Examples
///
/// ```
/// use coro_sync::Semaphore;
///
/// # futures::executor::block_on(async {
/// let s = Semaphore::new(2);
/// let a = s.acquire().await.unwrap();
/// let b = s.acquire().await.unwrap();
/// assert!(s.try_acquire().is_err());
/// drop(a);
/// let _c = s.acquire().await.unwrap();
/// # drop(b);
/// # });
/// ```
pub struct Semaphore {
    /// `permits << SHIFT | waiters * WAITER | PRIORITY | CLOSED`.
    state: AtomicU64,
    /// Registered waiters asking for more than one permit: while there are
    /// any, a release wakes every waiter instead of `k` of them.
    big_waiters: AtomicUsize,
    /// Permits in the semaphore's keeping: available plus held (out in
    /// permits, or lent to a bounded channel's queued values). Raised by
    /// `add_permits` before the permits appear, lowered by `forget`; it
    /// bounds what a release can bring the count to, so the count never
    /// wraps however permits come back.
    total: AtomicU64,
    acquire_ops: Waiters,
    priority_ops: Waiters,
    /// What the priority slot's holder asks for, while the slot is held:
    /// only that much is held back from the others (see `take`).
    /// `usize::MAX` (everything held back) until the holder has published
    /// its request and after it left: a stale value is never too small.
    priority_k: AtomicUsize,
    /// loom models: waiters never take the priority slot (see `starving`).
    #[cfg(loom)]
    no_priority: bool,
}

impl Semaphore {
    /// The most permits a semaphore can hold (`u32::MAX`).
    pub const MAX_PERMITS: usize = u32::MAX as usize;

    /// Creates a semaphore with `permits` permits.
    ///
    /// # Panics
    ///
    /// If `permits` exceeds [`Semaphore::MAX_PERMITS`].
    ///
    /// ```
    /// assert_eq!(coro_sync::Semaphore::new(3).available_permits(), 3);
    /// ```
    pub fn new(permits: usize) -> Self {
        assert!(
            permits <= Self::MAX_PERMITS,
            "too many permits for a Semaphore"
        );
        Self {
            state: AtomicU64::new((permits as u64) << SHIFT),
            big_waiters: AtomicUsize::new(0),
            total: AtomicU64::new(permits as u64),
            acquire_ops: Waiters::new(),
            priority_ops: Waiters::new(),
            priority_k: AtomicUsize::new(usize::MAX),
            #[cfg(loom)]
            no_priority: false,
        }
    }

    /// loom models only: a semaphore whose waiters never take the priority
    /// slot, so that a model can check the plain wake-ups alone (under loom
    /// every waiter is otherwise "starving" after one lost race).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn without_priority_for_loom(permits: usize) -> Self {
        Self {
            no_priority: true,
            ..Self::new(permits)
        }
    }

    /// loom models only: claim the priority slot for a request of `k`
    /// (as a starving waiter does); whether it was free.
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn claim_priority_for_loom(&self, k: usize) -> bool {
        let claimed = self
            .state
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                (s & (PRIORITY | CLOSED) == 0).then_some(s | PRIORITY)
            })
            .is_ok();
        if claimed {
            self.publish_priority_request(k);
        }
        claimed
    }

    /// loom models only: the holder of the priority slot takes its `k`
    /// permits (`true`), or gives the slot up without them (`None`).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn priority_take_for_loom(&self, k: Option<usize>) -> bool {
        match k {
            Some(k) => self.take(k, true).is_ok(),
            None => {
                self.leave_priority();
                true
            }
        }
    }

    /// loom models only: the request the priority slot's holder published
    /// (`None`: the slot is free).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn priority_request_for_loom(&self) -> Option<usize> {
        let held = self.state.load(Ordering::SeqCst) & PRIORITY != 0;
        held.then(|| self.priority_k.load(Ordering::SeqCst))
    }

    /// Permits available right now.
    ///
    /// ```
    /// let s = coro_sync::Semaphore::new(3);
    /// let _p = s.try_acquire_many(2).unwrap();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> usize {
        (self.state.load(Ordering::Acquire) >> SHIFT) as usize
    }

    /// Takes one permit without waiting.
    ///
    /// # Errors
    ///
    /// [`TryAcquireError::NoPermits`] if none is free (or a starved waiter has
    /// priority), [`TryAcquireError::Closed`] after [`close`](Semaphore::close).
    ///
    /// ```
    /// let s = coro_sync::Semaphore::new(1);
    /// let p = s.try_acquire().unwrap();
    /// assert!(s.try_acquire().is_err());
    /// # drop(p);
    /// ```
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `k` permits without waiting, all or none.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Semaphore::try_acquire).
    ///
    /// ```
    /// let s = coro_sync::Semaphore::new(3);
    /// assert!(s.try_acquire_many(4).is_err());
    /// assert_eq!(s.try_acquire_many(3).unwrap().permits(), 3);
    /// ```
    pub fn try_acquire_many(&self, k: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.take(k, false)?;
        Ok(SemaphorePermit {
            sem: self,
            permits: k,
        })
    }

    /// Waits for one permit.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the semaphore is or gets closed while waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `acquire()` future holds no permit, and a wake-up
    /// it received passes to the next waiter (no permit leaks, nobody hangs).
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let s = coro_sync::Semaphore::new(1);
    /// let p = s.acquire().await.unwrap();
    /// assert_eq!(p.permits(), 1);
    /// # });
    /// ```
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_many(1)
    }

    /// Waits for `k` permits and takes them all at once (never some of them).
    /// `k == 0` succeeds at once unless closed.
    ///
    /// A request for more than the semaphore holds (available plus held
    /// out) waits until [`add_permits`](Semaphore::add_permits) makes it
    /// possible, or forever; meanwhile it never takes the fairness
    /// priority (see [`Semaphore`]), so it holds up no one else.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the semaphore is or gets closed while waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Semaphore::acquire): nothing is held
    /// partially, and a dropped priority waiter gives the slot back.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let s = coro_sync::Semaphore::new(5);
    /// let p = s.acquire_many(3).await.unwrap();
    /// assert_eq!(s.available_permits(), 2);
    /// drop(p);
    /// assert_eq!(s.available_permits(), 5);
    /// # });
    /// ```
    pub fn acquire_many(&self, k: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            raw: RawAcquire::new(k),
        }
    }

    /// [`acquire_many`](Semaphore::acquire_many) on a semaphore in an `Arc`,
    /// returning an owned permit for `'static` tasks.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the semaphore is or gets closed while waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Semaphore::acquire).
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let s = Arc::new(coro_sync::Semaphore::new(3));
    /// let p = s.acquire_many_arc(2).await.unwrap();
    /// std::thread::spawn(move || drop(p)).join().unwrap();
    /// assert_eq!(s.available_permits(), 3);
    /// # });
    /// ```
    pub fn acquire_many_arc(self: &Arc<Self>, k: usize) -> AcquireArc {
        AcquireArc {
            sem: self.clone(),
            raw: RawAcquire::new(k),
        }
    }

    /// [`acquire`](Semaphore::acquire) returning an owned permit.
    ///
    /// # Errors
    ///
    /// [`Closed`] if the semaphore is or gets closed while waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`acquire`](Semaphore::acquire).
    ///
    /// ```
    /// use std::sync::Arc;
    /// # futures::executor::block_on(async {
    /// let s = Arc::new(coro_sync::Semaphore::new(1));
    /// let p = s.acquire_arc().await.unwrap();
    /// assert_eq!(p.permits(), 1);
    /// # });
    /// ```
    pub fn acquire_arc(self: &Arc<Self>) -> AcquireArc {
        self.acquire_many_arc(1)
    }

    /// [`try_acquire_many`](Semaphore::try_acquire_many) returning an owned permit.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Semaphore::try_acquire).
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(coro_sync::Semaphore::new(1));
    /// let p = s.try_acquire_many_arc(1).unwrap();
    /// assert!(s.try_acquire_many_arc(1).is_err());
    /// drop(p);
    /// ```
    pub fn try_acquire_many_arc(
        self: &Arc<Self>,
        k: usize,
    ) -> Result<SemaphorePermitArc, TryAcquireError> {
        self.take(k, false)?;
        Ok(SemaphorePermitArc {
            sem: self.clone(),
            permits: k,
        })
    }

    /// Adds `k` permits (also what dropping a permit does) and wakes waiters.
    ///
    /// # Panics
    ///
    /// If the permits available plus those held (taken and not yet
    /// returned or forgotten) would exceed [`Semaphore::MAX_PERMITS`]; the
    /// semaphore is then left as it was, and no other thread sees the
    /// excess meanwhile.
    ///
    /// ```
    /// let s = coro_sync::Semaphore::new(0);
    /// s.add_permits(2);
    /// assert_eq!(s.available_permits(), 2);
    /// ```
    pub fn add_permits(&self, k: usize) {
        if k == 0 {
            return;
        }
        // Checked against the permits held too, before the new count is
        // published: permits held now come back later with a plain add
        // (`release`), which must not carry out of the count's 32 bits.
        // Adding first and undoing on overflow would let other threads
        // see (and take from) a count that wrapped around for a moment.
        if self
            .total
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                (k <= Self::MAX_PERMITS - t as usize).then(|| t + k as u64)
            })
            .is_err()
        {
            panic!("too many permits for a Semaphore");
        }
        let prev = self.state.fetch_add((k as u64) << SHIFT, Ordering::SeqCst);
        self.wake_after_release(prev, k);
    }

    /// Permits taken out of this semaphore leave it for good.
    fn forget_held(&self, k: usize) {
        if k != 0 {
            self.total.fetch_sub(k as u64, Ordering::SeqCst);
            // A priority waiter may now ask for more than exists: it
            // re-checks, and steps back (`step_back_if_impossible`). Read
            // with a read-modify-write, as the waiter reads `total` after
            // its claim: each then sees the other's latest write (plain
            // loads could both read stale values, the store-buffer case).
            if self.state.fetch_or(0, Ordering::SeqCst) & PRIORITY != 0 {
                self.priority_ops.notify(1);
            }
        }
    }

    /// Returns permits that came out of this semaphore (cannot overflow:
    /// `total`, which `add_permits` keeps within `MAX_PERMITS`, counts
    /// them).
    #[inline]
    pub(crate) fn release(&self, k: usize) {
        if k != 0 {
            let prev = self.state.fetch_add((k as u64) << SHIFT, Ordering::SeqCst);
            self.wake_after_release(prev, k);
        }
    }

    #[inline]
    fn wake_after_release(&self, prev: u64, k: usize) {
        if prev & PRIORITY != 0 {
            // Beyond what the holder asks for, permits are the others' (see
            // `take`): wake them as without a holder.
            let available = (prev >> SHIFT) as usize + k;
            if available <= self.priority_k.load(Ordering::SeqCst) {
                self.priority_ops.notify(1);
                return;
            }
            crate::then_anyway(
                || self.priority_ops.notify(1),
                || self.wake_ordinary(prev, k),
            );
            return;
        }
        self.wake_ordinary(prev, k);
    }

    /// The waiters other than the priority holder, after a release of `k`.
    #[inline]
    fn wake_ordinary(&self, prev: u64, k: usize) {
        if prev & WAITER_MASK == 0 {
            // Nobody registered: a waiter that registers after our add sees
            // the permits when it re-checks (both are RMWs on `state`).
        } else if self.big_waiters.load(Ordering::SeqCst) > 0 {
            self.acquire_ops.notify(usize::MAX);
        } else {
            // `k` *more* waiters: a plain `notify(k)` counts listeners that
            // were notified but have not run yet towards `k`, so two releases
            // of one permit before the first woken waiter runs would wake only
            // that one, and the second permit would sit there while others
            // wait. Each released permit wakes one waiter that was not woken
            // yet; a waiter that then finds no permit (a newcomer took it)
            // listens again, and the permit's holder wakes someone on release.
            // Notifications made this way also pass on as "additional" when a
            // woken listener is dropped unused.
            self.acquire_ops.notify_additional(k);
        }
    }

    /// Closes the semaphore: every waiting and future `acquire` fails with
    /// [`Closed`]. Permits already held stay valid and may still be returned.
    ///
    /// ```
    /// # futures::executor::block_on(async {
    /// let s = coro_sync::Semaphore::new(0);
    /// s.close();
    /// assert!(s.acquire().await.is_err());
    /// # });
    /// ```
    pub fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::SeqCst);
        crate::then_anyway(
            || self.acquire_ops.notify(usize::MAX),
            || self.priority_ops.notify(usize::MAX),
        );
    }

    /// Returns `true` after [`close`](Semaphore::close).
    ///
    /// ```
    /// let s = coro_sync::Semaphore::new(0);
    /// s.close();
    /// assert!(s.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Takes `k` permits if possible. `priority` callers hold the priority slot
    /// and release it on success.
    #[inline]
    fn take(&self, k: usize, priority: bool) -> Result<(), TryAcquireError> {
        if priority {
            // The holder's request goes before its CAS can release the
            // slot: once the bit is clear another waiter may claim the slot
            // and publish its own request, which a reset after the release
            // would overwrite with "hold everything back". Meanwhile the
            // others are held back from everything (the caller wakes them
            // after a success, `publish_priority_request` after a failure).
            self.priority_k.store(usize::MAX, Ordering::SeqCst);
        }
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if s & CLOSED != 0 {
                return Err(TryAcquireError::Closed);
            }
            if k == 0 {
                // Takes nothing: the priority slot keeps nothing from it.
                return Ok(());
            }
            let available = (s >> SHIFT) as usize;
            // The priority slot's holder's request is held back from the
            // others; only what is beyond it may be taken meanwhile.
            let held_back = if !priority && s & PRIORITY != 0 {
                self.priority_k.load(Ordering::SeqCst)
            } else {
                0
            };
            if available < k.saturating_add(held_back) {
                if priority {
                    self.publish_priority_request(k);
                }
                return Err(TryAcquireError::NoPermits);
            }
            let mut new = s - ((k as u64) << SHIFT);
            if priority {
                new &= !PRIORITY;
            }
            match self
                .state
                .compare_exchange_weak(s, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Ok(()),
                Err(x) => s = x,
            }
        }
    }

    /// The priority slot was just claimed for `k` permits: from now on only
    /// those are held back, and waiters refused meanwhile (everything was
    /// held back until now) may take what is beyond them.
    fn publish_priority_request(&self, k: usize) {
        self.priority_k.store(k, Ordering::SeqCst);
        let s = self.state.fetch_add(0, Ordering::SeqCst);
        if s & PRIORITY != 0 && (s >> SHIFT) as usize > k {
            self.acquire_ops.notify(usize::MAX);
        }
    }

    /// Gives the priority slot up without acquiring, waking the others.
    /// Only its holder calls this (only the holder writes `priority_k`
    /// while the slot is held): the reset goes before the release, as in
    /// `take`.
    fn leave_priority(&self) {
        self.priority_k.store(usize::MAX, Ordering::SeqCst);
        let prev = self.state.fetch_and(!PRIORITY, Ordering::SeqCst);
        if prev & PRIORITY != 0 && prev >> SHIFT > 0 {
            self.acquire_ops.notify(usize::MAX);
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("available_permits", &self.available_permits())
            .field("closed", &self.is_closed())
            .finish()
    }
}

enum Phase {
    Start,
    Waiting {
        listener: Waiter,
        #[cfg(not(loom))]
        since: Instant,
    },
    Priority {
        listener: Waiter,
    },
    Done,
}

/// Progress of one acquire; the future owning it calls
/// [`RawAcquire::cancel`] from `Drop`.
struct RawAcquire {
    k: usize,
    phase: Phase,
}

impl RawAcquire {
    fn new(k: usize) -> Self {
        Self {
            k,
            phase: Phase::Start,
        }
    }

    /// Leaves the waiting state (registered counts, priority slot).
    #[inline]
    fn cancel(&mut self, sem: &Semaphore) {
        if !matches!(self.phase, Phase::Start | Phase::Done) {
            self.cancel_slow(sem);
        }
    }

    #[cold]
    fn cancel_slow(&mut self, sem: &Semaphore) {
        let phase = core::mem::replace(&mut self.phase, Phase::Done);
        self.unregister(sem);
        if let Phase::Priority { .. } = phase {
            sem.leave_priority();
        }
        // A wake-up the listener got but did not use passes on as it drops.
        drop(phase);
    }

    /// Undoes the registration made when the first attempt failed.
    fn unregister(&self, sem: &Semaphore) {
        sem.state.fetch_sub(WAITER, Ordering::SeqCst);
        if self.k > 1 {
            sem.big_waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Maps an attempt to the future's result; `None`: keep waiting.
    fn done(
        &mut self,
        sem: &Semaphore,
        r: Result<(), TryAcquireError>,
    ) -> Option<Result<(), Closed>> {
        let out = match r {
            Ok(()) => Ok(()),
            Err(TryAcquireError::Closed) => Err(Closed(())),
            Err(TryAcquireError::NoPermits) => return None,
        };
        match core::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Priority { .. } => {
                self.unregister(sem);
                // `take` cleared the priority slot on success; let the others
                // see what is left.
                if out.is_err() {
                    sem.leave_priority();
                } else if sem.available_permits() > 0 {
                    sem.acquire_ops.notify(usize::MAX);
                }
            }
            Phase::Waiting { .. } => self.unregister(sem),
            Phase::Start | Phase::Done => {}
        }
        Some(out)
    }

    /// A priority waiter whose request can no longer be met (`forget`
    /// took permits for good since it claimed the slot) gives the slot
    /// back and waits as before: holding it, it would keep every other
    /// acquirer waiting with it. Checked after each failed take, so a
    /// `forget` either sees the slot taken (and wakes us to come here) or
    /// lowered `total` before we look.
    fn step_back_if_impossible(&mut self, sem: &Semaphore) {
        if matches!(self.phase, Phase::Priority { .. })
            && self.k as u64 > sem.total.fetch_add(0, Ordering::SeqCst)
        {
            self.phase = Phase::Waiting {
                listener: sem.acquire_ops.listen(),
                #[cfg(not(loom))]
                since: Instant::now(),
            };
            sem.leave_priority();
        }
    }

    #[cfg(not(loom))]
    fn starving(&self, _sem: &Semaphore) -> bool {
        matches!(&self.phase, Phase::Waiting { since, .. } if since.elapsed() >= STARVATION_BOUND)
    }

    #[cfg(loom)]
    fn starving(&self, sem: &Semaphore) -> bool {
        !sem.no_priority
    }

    /// Counted against the task's budget (`coro_core::coop`; so are bounded
    /// channel sends, which acquire here): with permits always free, an
    /// acquire loop never waits otherwise. When it yields it did nothing
    /// this poll.
    #[inline]
    fn poll_acquire(&mut self, sem: &Semaphore, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        coro_core::coop::poll_counted(cx, |cx| self.poll_acquire_budgeted(sem, cx))
    }

    #[inline]
    fn poll_acquire_budgeted(
        &mut self,
        sem: &Semaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>> {
        if let Phase::Start = self.phase {
            match sem.take(self.k, false) {
                Ok(()) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(Ok(()));
                }
                Err(TryAcquireError::Closed) => {
                    self.phase = Phase::Done;
                    return Poll::Ready(Err(Closed(())));
                }
                Err(TryAcquireError::NoPermits) => {}
            }
        }
        self.poll_acquire_slow(sem, cx)
    }

    #[inline(never)]
    fn poll_acquire_slow(
        &mut self,
        sem: &Semaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), Closed>> {
        let k = self.k;
        loop {
            match &mut self.phase {
                Phase::Start => {
                    // Fast path: no waiting state to unwind.
                    match sem.take(k, false) {
                        Ok(()) => {
                            self.phase = Phase::Done;
                            return Poll::Ready(Ok(()));
                        }
                        Err(TryAcquireError::Closed) => {
                            self.phase = Phase::Done;
                            return Poll::Ready(Err(Closed(())));
                        }
                        Err(TryAcquireError::NoPermits) => {}
                    }
                    // Listen first, then register, then re-check: a release
                    // either sees the registration or we see its permits.
                    // A big request counts itself before it listens: a
                    // release that wakes `k` listeners (no big waiter seen)
                    // must not find ours among them, or it would spend a
                    // small waiter's wake-up on a request it cannot serve.
                    if k > 1 {
                        sem.big_waiters.fetch_add(1, Ordering::SeqCst);
                    }
                    let listener = sem.acquire_ops.listen();
                    sem.state.fetch_add(WAITER, Ordering::SeqCst);
                    self.phase = Phase::Waiting {
                        listener,
                        #[cfg(not(loom))]
                        since: Instant::now(),
                    };
                    if let Some(out) = self.done(sem, sem.take(k, false)) {
                        return Poll::Ready(out);
                    }
                }
                Phase::Waiting { listener, .. } => {
                    if Pin::new(listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if let Some(out) = self.done(sem, sem.take(k, false)) {
                        return Poll::Ready(out);
                    }
                    // Never for a request larger than what exists: it
                    // cannot be met, and everyone else would wait with it.
                    let claimed = self.starving(sem)
                        && k as u64 <= sem.total.load(Ordering::SeqCst)
                        && sem
                            .state
                            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |s| {
                                (s & (PRIORITY | CLOSED) == 0).then_some(s | PRIORITY)
                            })
                            .is_ok();
                    if claimed {
                        self.phase = Phase::Priority {
                            listener: sem.priority_ops.listen(),
                        };
                        sem.publish_priority_request(k);
                        if let Some(out) = self.done(sem, sem.take(k, true)) {
                            return Poll::Ready(out);
                        }
                        self.step_back_if_impossible(sem);
                    } else {
                        if let Phase::Waiting { listener, .. } = &mut self.phase {
                            *listener = sem.acquire_ops.listen();
                        }
                        if let Some(out) = self.done(sem, sem.take(k, false)) {
                            return Poll::Ready(out);
                        }
                    }
                }
                Phase::Priority { listener } => {
                    if Pin::new(&mut *listener).poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    *listener = sem.priority_ops.listen();
                    if let Some(out) = self.done(sem, sem.take(k, true)) {
                        return Poll::Ready(out);
                    }
                    self.step_back_if_impossible(sem);
                }
                Phase::Done => panic!("`acquire()` future polled after completion"),
            }
        }
    }
}

/// Future of [`Semaphore::acquire`] and [`Semaphore::acquire_many`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    raw: RawAcquire,
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<SemaphorePermit<'a>, Closed>;

    #[inline]
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let sem = this.sem;
        this.raw.poll_acquire(sem, cx).map(|r| {
            r.map(|()| SemaphorePermit {
                sem,
                permits: this.raw.k,
            })
        })
    }
}

impl Drop for Acquire<'_> {
    #[inline]
    fn drop(&mut self) {
        self.raw.cancel(self.sem);
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("permits", &self.raw.k)
            .finish_non_exhaustive()
    }
}

/// Future of [`Semaphore::acquire_arc`] and [`Semaphore::acquire_many_arc`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct AcquireArc {
    sem: Arc<Semaphore>,
    raw: RawAcquire,
}

impl Future for AcquireArc {
    type Output = Result<SemaphorePermitArc, Closed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let k = this.raw.k;
        this.raw.poll_acquire(&this.sem, cx).map(|r| {
            r.map(|()| SemaphorePermitArc {
                sem: this.sem.clone(),
                permits: k,
            })
        })
    }
}

impl Drop for AcquireArc {
    fn drop(&mut self) {
        self.raw.cancel(&self.sem);
    }
}

impl fmt::Debug for AcquireArc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireArc")
            .field("permits", &self.raw.k)
            .finish_non_exhaustive()
    }
}

/// Permits taken from a [`Semaphore`] in an `Arc` (no lifetime: can move into
/// `'static` tasks); they go back on drop.
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermitArc {
    sem: Arc<Semaphore>,
    permits: usize,
}

impl SemaphorePermitArc {
    /// How many permits this guard holds.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(coro_sync::Semaphore::new(2));
    /// assert_eq!(s.try_acquire_many_arc(2).unwrap().permits(), 2);
    /// ```
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// Keeps the permits out of the semaphore for good.
    ///
    /// ```
    /// use std::sync::Arc;
    /// let s = Arc::new(coro_sync::Semaphore::new(2));
    /// s.try_acquire_many_arc(1).unwrap().forget();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn forget(mut self) {
        self.sem.forget_held(std::mem::take(&mut self.permits));
    }
}

impl Drop for SemaphorePermitArc {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for SemaphorePermitArc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermitArc")
            .field("permits", &self.permits)
            .finish()
    }
}

/// Permits taken from a [`Semaphore`]; they go back on drop.
#[must_use = "dropping the permit releases it at once"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

impl SemaphorePermit<'_> {
    /// How many permits this guard holds.
    ///
    /// ```
    /// let s = coro_sync::Semaphore::new(2);
    /// assert_eq!(s.try_acquire_many(2).unwrap().permits(), 2);
    /// ```
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// Keeps the permits out of the semaphore for good (they are not returned).
    ///
    /// ```
    /// let s = coro_sync::Semaphore::new(2);
    /// s.try_acquire().unwrap().forget();
    /// assert_eq!(s.available_permits(), 1);
    /// ```
    pub fn forget(mut self) {
        self.sem.forget_held(std::mem::take(&mut self.permits));
    }

    /// Keeps the permits out of the semaphore without forgetting them: the
    /// caller gives them back later with [`Semaphore::release`] (a bounded
    /// channel's slot, held by the value in it).
    pub(crate) fn keep_held(mut self) {
        self.permits = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    #[inline]
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish()
    }
}
