//! `StopSource` / `StopToken`: cooperative cancellation.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

// std's, or loom's in the model of `tests/loom.rs`, which compiles
// this file against them.
use crate::sync::{AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};

struct State {
    stopped: AtomicBool,
    /// Live `StopSource` handles. When the last goes without a stop, no
    /// stop can come: pending `stopped()` futures let go of their wakers
    /// (a task that holds one would otherwise keep itself alive through
    /// its own waker, for ever).
    sources: AtomicUsize,
    waiters: Mutex<Waiters>,
}

#[derive(Default)]
struct Waiters {
    next_key: u64,
    wakers: BTreeMap<u64, Waker>,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, Waiters> {
        // No user code runs under this lock (wakers are called after it).
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The side that asks for a stop (C++ `std::stop_source`).
///
/// Cloning a source gives another handle to the same stop state. Tokens from
/// [`token`](StopSource::token) observe it.
///
/// # Examples
/// ```
/// use coro_core::StopSource;
///
/// let source = StopSource::new();
/// let token = source.token();
/// assert!(!token.stop_requested());
/// assert!(source.request_stop());
/// assert!(token.stop_requested());
/// coro_core::sync_wait(token.stopped()); // already stopped: ready at once
/// ```
pub struct StopSource {
    state: Arc<State>,
}

impl Clone for StopSource {
    fn clone(&self) -> Self {
        self.state.sources.fetch_add(1, Ordering::SeqCst);
        StopSource {
            state: self.state.clone(),
        }
    }
}

impl Drop for StopSource {
    fn drop(&mut self) {
        if self.state.sources.fetch_sub(1, Ordering::SeqCst) == 1
            && !self.state.stopped.load(Ordering::Acquire)
        {
            // No stop can come now. (A `stopped()` polled from here on
            // sees no source left, under the lock, and keeps no waker.
            // That relies on `request_stop` taking the lock after it sets
            // the flag: a stop that came first is seen there.)
            let wakers = std::mem::take(&mut self.state.lock().wakers);
            // Another executor's waker may panic as it is dropped: not out
            // of this drop while unwinding (that aborts).
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(wakers)));
            if let Err(p) = dropped {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(p);
                }
            }
        }
    }
}

impl StopSource {
    /// A new stop state, not stopped.
    ///
    /// # Examples
    /// ```
    /// assert!(!coro_core::StopSource::new().stop_requested());
    /// ```
    pub fn new() -> Self {
        StopSource {
            state: Arc::new(State {
                stopped: AtomicBool::new(false),
                sources: AtomicUsize::new(1),
                waiters: Mutex::new(Waiters::default()),
            }),
        }
    }

    /// A token observing this source.
    ///
    /// # Examples
    /// ```
    /// let source = coro_core::StopSource::new();
    /// let token = source.token();
    /// source.request_stop();
    /// assert!(token.stop_requested());
    /// ```
    pub fn token(&self) -> StopToken {
        StopToken {
            state: self.state.clone(),
        }
    }

    /// Requests a stop and wakes every pending [`StopToken::stopped`] future.
    /// Returns `true` if this call made the request, `false` if a stop had
    /// already been requested.
    ///
    /// # Panics
    ///
    /// If a waker panics (a foreign executor's): the others are woken
    /// first, then the first panic goes on to the caller (unless the
    /// caller's thread is unwinding already: see [`wake_all`](crate::wake_all)).
    ///
    /// # Examples
    /// ```
    /// let source = coro_core::StopSource::new();
    /// assert!(source.request_stop());
    /// assert!(!source.request_stop());
    /// ```
    pub fn request_stop(&self) -> bool {
        if self.state.stopped.swap(true, Ordering::AcqRel) {
            return false;
        }
        let wakers = std::mem::take(&mut self.state.lock().wakers);
        // A waker that panics must not leave the ones after it unwoken:
        // the stop is requested already, so nothing would wake them later.
        crate::wake_all(wakers.into_values());
        true
    }

    /// Whether a stop has been requested.
    ///
    /// # Examples
    /// ```
    /// let source = coro_core::StopSource::new();
    /// source.request_stop();
    /// assert!(source.stop_requested());
    /// ```
    pub fn stop_requested(&self) -> bool {
        self.state.stopped.load(Ordering::Acquire)
    }
}

impl Default for StopSource {
    fn default() -> Self {
        StopSource::new()
    }
}

impl fmt::Debug for StopSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopSource")
            .field("stop_requested", &self.stop_requested())
            .finish()
    }
}

/// The side that observes a stop request (C++ `std::stop_token`). Cheap to clone.
///
/// # Examples
/// ```
/// use coro_core::{sync_wait, when_any, StopSource, Task};
///
/// let source = StopSource::new();
/// let token = source.token();
/// let worker = Task::new(async move {
///     token.stopped().await;
///     "stopped"
/// });
/// source.request_stop();
/// assert_eq!(sync_wait(worker), "stopped");
/// # let _ = when_any::<Vec<Task<()>>>;
/// ```
#[derive(Clone)]
pub struct StopToken {
    state: Arc<State>,
}

impl StopToken {
    /// Whether a stop has been requested.
    ///
    /// # Examples
    /// ```
    /// let source = coro_core::StopSource::new();
    /// assert!(!source.token().stop_requested());
    /// ```
    pub fn stop_requested(&self) -> bool {
        self.state.stopped.load(Ordering::Acquire)
    }

    /// Whether a stop was requested or still can be: `false` once every
    /// [`StopSource`] is dropped without requesting one (C++
    /// `stop_possible`).
    ///
    /// # Examples
    /// ```
    /// let source = coro_core::StopSource::new();
    /// let token = source.token();
    /// assert!(token.stop_possible());
    /// drop(source);
    /// assert!(!token.stop_possible());
    /// ```
    pub fn stop_possible(&self) -> bool {
        // The count first: a stop requested by the last source just before
        // it went is then seen by the second read.
        self.state.sources.load(Ordering::SeqCst) > 0 || self.stop_requested()
    }

    /// A future that completes once a stop is requested (at once if it already
    /// was). It does not borrow the token.
    ///
    /// If every [`StopSource`] is dropped without requesting a stop, the future
    /// never completes (see [`stop_possible`](Self::stop_possible)); it then
    /// keeps no waker, so a task that holds it is not kept alive by it.
    ///
    /// # Examples
    /// ```
    /// let source = coro_core::StopSource::new();
    /// let stopped = source.token().stopped();
    /// std::thread::spawn(move || source.request_stop());
    /// coro_core::sync_wait(stopped);
    /// ```
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future removes its registration; the stop
    /// state is unaffected.
    pub fn stopped(&self) -> Stopped {
        Stopped {
            state: self.state.clone(),
            key: None,
        }
    }
}

impl fmt::Debug for StopToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopToken")
            .field("stop_requested", &self.stop_requested())
            .finish()
    }
}

/// The future returned by [`StopToken::stopped`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Stopped {
    state: Arc<State>,
    key: Option<u64>,
}

impl Future for Stopped {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.stopped.load(Ordering::Acquire) {
            self.unregister();
            return Poll::Ready(());
        }
        let state = self.state.clone();
        let mut waiters = state.lock();
        // A waker this replaces or removes is dropped after the lock: its
        // drop may run anything (the last reference to a task holding
        // another `Stopped` of this source, whose drop takes the lock).
        let old;
        // Checked again under the lock: `request_stop` sets the flag before
        // taking the wakers under this lock, so no wake-up is lost.
        if state.stopped.load(Ordering::Acquire) {
            old = self.key.take().and_then(|key| waiters.wakers.remove(&key));
            drop(waiters);
            drop(old);
            return Poll::Ready(());
        }
        // No source left (checked under the lock, which the last source's
        // drop takes after counting itself out): no stop can come, and a
        // waker kept here would never be woken.
        if state.sources.load(Ordering::SeqCst) == 0 {
            old = self.key.take().and_then(|key| waiters.wakers.remove(&key));
            drop(waiters);
            drop(old);
            return Poll::Pending;
        }
        old = match self.key {
            Some(key) => match waiters.wakers.get_mut(&key) {
                Some(w) if w.will_wake(cx.waker()) => None,
                Some(w) => Some(std::mem::replace(w, cx.waker().clone())),
                None => waiters.wakers.insert(key, cx.waker().clone()),
            },
            None => {
                let key = waiters.next_key;
                waiters.next_key += 1;
                self.key = Some(key);
                waiters.wakers.insert(key, cx.waker().clone())
            }
        };
        drop(waiters);
        drop(old);
        Poll::Pending
    }
}

impl Stopped {
    fn unregister(&mut self) {
        if let Some(key) = self.key.take() {
            // The waker is dropped after the lock (see `poll`).
            let old = self.state.lock().wakers.remove(&key);
            drop(old);
        }
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl fmt::Debug for Stopped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stopped")
            .field(
                "stop_requested",
                &self.state.stopped.load(Ordering::Acquire),
            )
            .finish()
    }
}
