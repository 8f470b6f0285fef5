//! The futures behind `spawn` (registration of suspended tasks), `schedule()`
//! and `yield_now()`.

use super::*;

pin_project_lite::pin_project! {
    /// A pool task's future, registered in `Shared::registry` while suspended.
    pub(super) struct Tracked<F> {
        #[pin]
        fut: F,
        registration: Option<Registration>,
    }

    impl<F> PinnedDrop for Tracked<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(r) = this.project().registration.take() {
                r.shared.untrack(r.shard, r.key);
            }
        }
    }
}

/// Where a suspended task's waker sits in its pool's registry.
struct Registration {
    shared: Arc<Shared>,
    shard: usize,
    key: usize,
}

/// Register `waker` on the calling worker's shard. Pool tasks only ever run on
/// their own pool's workers, so the worker's pool is the task's pool.
#[cold]
fn register(waker: &Waker) -> Option<Registration> {
    LOCAL
        .try_with(|l| {
            let l = l.try_borrow().ok()?;
            let local = l.as_ref()?;
            let key = local.shared.registry.insert(local.index, waker);
            Some(Registration {
                shared: local.shared.clone(),
                shard: local.index,
                key,
            })
        })
        .ok()
        .flatten()
}

impl<F> Tracked<F> {
    pub(super) fn new(fut: F) -> Self {
        Tracked {
            fut,
            registration: None,
        }
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let poll = this.fut.poll(cx);
        // Register only once the task suspends: a task that finishes in its
        // first poll (most short tasks) never pays for the registry.
        if poll.is_pending() && this.registration.is_none() {
            *this.registration = register(cx.waker());
        }
        poll
    }
}

/// Future of [`ThreadPool::schedule`].
pub(super) struct Schedule {
    shared: Arc<Shared>,
    done: bool,
}

impl Schedule {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Schedule {
            shared,
            done: false,
        }
    }
}

impl Future for Schedule {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done || self.shared.terminated.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.done = true;
        let waker = cx.waker().clone();
        let on_worker = self.shared.is_current_worker();
        if on_worker {
            // We are polled by one of this pool's workers: waking now re-queues
            // the task behind the others (a self-wake goes to the local queue).
            waker.wake();
        } else {
            // Deliver the wake-up from a worker thread. If the pool terminates
            // before running it, dropping the task still wakes us (and the
            // next poll sees `terminated`), so this never hangs.
            let wake = WakeOnDrop(waker);
            let (r, h) = task_with(async move { drop(wake) }, |r: Runnable| drop(r));
            h.detach();
            self.shared.inject(r);
        }
        Poll::Pending
    }
}

/// Wakes its waker when dropped (run or cancelled alike).
struct WakeOnDrop(std::task::Waker);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        self.0.wake_by_ref();
    }
}
