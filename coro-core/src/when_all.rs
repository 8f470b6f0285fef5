//! `when_all` and `try_when_all` over an iterator of futures, and the engine
//! they share with `when_any`: per-child wakers and a ready list, so that a
//! wake-up costs O(1) whatever the number of children.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::mem;
use std::ops::ControlFlow;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

// The ready list's atomics and lock: std's, or loom's in the model of
// `tests/loom.rs`, which compiles this file against them.
use crate::sync::{AtomicBool, AtomicUsize, Mutex, MutexGuard, Ordering};

use pin_project_lite::pin_project;

/// What the children's wakers share with the parent.
struct Shared {
    /// `queued[i]`: child `i` is in the ready list (or about to be); a second
    /// wake before the parent polls it is then free.
    queued: Box<[AtomicBool]>,
    inner: Mutex<ReadyList>,
}

struct ReadyList {
    /// Indexes of woken children, in wake order.
    list: Vec<usize>,
    /// The waker of the task that polls the parent future.
    parent: Option<Waker>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ReadyList> {
        // The only foreign code run under this lock is a waker's `clone` /
        // `will_wake`; if one panics, the list and the waker slot are still
        // consistent, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the parent's waker (dropped after the lock: its drop may
    /// run anything).
    fn release_parent(&self) {
        let parent = self.lock().parent.take();
        drop(parent);
    }

    fn schedule(&self, index: usize) {
        if self.queued[index].swap(true, Ordering::AcqRel) {
            return; // already in the list
        }
        let parent = {
            let mut ready = self.lock();
            let was_empty = ready.list.is_empty();
            ready.list.push(index);
            // A non-empty list means the parent was woken since it last
            // drained the list: one wake per batch is enough.
            if was_empty {
                ready.parent.clone()
            } else {
                None
            }
        };
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

/// The waker handed to one child: it knows its child's index.
struct ChildWaker {
    /// Only changed by the parent while it holds the sole reference (see `Engine::spare`).
    index: AtomicUsize,
    shared: Arc<Shared>,
}

impl Wake for ChildWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.shared.schedule(self.index.load(Ordering::Relaxed));
    }
}

pin_project! {
    /// One child: running, or gone (finished or dropped).
    #[project = ChildProj]
    enum Child<F> {
        Running { #[pin] fut: F },
        Gone,
    }
}

/// Pins element `i` of a pinned slice.
///
/// This is the only `unsafe` code of the crate. Without it every child would
/// need its own `Box`, which costs about half the time of `when_all` over
/// trivial futures (measured: 32 ns of 71 ns per child at 1,000 children).
#[allow(unsafe_code)]
fn pin_index<T>(slice: Pin<&mut [T]>, i: usize) -> Pin<&mut T> {
    // SAFETY: the elements of a pinned slice are pinned too: the slice lives in
    // a `Pin<Box<[T]>>` that is never resized, reallocated or moved out of, so
    // element `i` stays at its address until it is dropped in place (by
    // `Pin::set` or by the box's drop). We only hand out a pinned reference.
    unsafe { slice.map_unchecked_mut(|s| &mut s[i]) }
}

/// A child waker nobody else holds, with its `Waker` made once.
struct Spare {
    arc: Arc<ChildWaker>,
    waker: Waker,
}

/// The engine's reference to what its children's wakers share. Dropped
/// with the engine, also mid-flight (a timeout, a `select!`), it lets go
/// of the parent's waker: a child may have left a clone of its waker where
/// nothing forgets it (an `AtomicWaker`, another thread), and through it
/// the parent task would stay alive (tokio#4724). A field of its own, not
/// a `Drop` of the engine: that would make the borrow checker demand that
/// what the children borrow outlive the engine strictly.
struct SharedHandle(Arc<Shared>);

impl std::ops::Deref for SharedHandle {
    type Target = Arc<Shared>;
    fn deref(&self) -> &Arc<Shared> {
        &self.0
    }
}

impl Drop for SharedHandle {
    fn drop(&mut self) {
        // Another executor's waker may panic as it is dropped: not out of
        // this drop while unwinding (that aborts).
        let released = panic::catch_unwind(AssertUnwindSafe(|| self.0.release_parent()));
        if let Err(p) = released {
            if !std::thread::panicking() {
                panic::resume_unwind(p);
            }
        }
    }
}

/// Polls a set of children, only the woken ones after the first pass.
pub(crate) struct Engine<F> {
    /// First, so that it is dropped first: see [`SharedHandle`].
    shared: SharedHandle,
    children: Pin<Box<[Child<F>]>>,
    /// The waker given to child `i` while it is pending (reused for its next polls).
    wakers: Vec<Option<Waker>>,
    /// A child waker that no child kept, reused for the next child: children
    /// that are ready at once cost no waker allocation and no refcount traffic.
    spare: Option<Spare>,
    /// Scratch buffer swapped with the ready list.
    batch: Vec<usize>,
    /// The last pass ran the task's budget out (see `poll_pass`).
    starved: bool,
    /// Take turns going first on every pass where the task has no budget
    /// of ours (`when_all`; not `when_any`, whose ties go by order).
    turns_without_budget: bool,
    /// Then: the child index whose turn it is to go first (or the next
    /// one after it that is in the pass).
    lead: usize,
    started: bool,
    live: usize,
}

impl<F> Engine<F> {
    /// Number of children that have neither finished nor been dropped.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    /// Number of children given at construction.
    pub(crate) fn len(&self) -> usize {
        self.children.len()
    }

    /// Drops every child that is still running, in input order.
    pub(crate) fn drop_children(&mut self) {
        // Every child goes even if one's destructor panics (the rest would
        // otherwise live as long as this future); the first panic goes on
        // once all are gone.
        let mut first = None;
        for i in 0..self.children.len() {
            let mut child = pin_index(self.children.as_mut(), i);
            if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| child.set(Child::Gone))) {
                first.get_or_insert(p);
            }
        }
        for waker in &mut self.wakers {
            *waker = None;
        }
        self.live = 0;
        self.release_parent();
        if let Some(p) = first {
            panic::resume_unwind(p);
        }
    }

    /// Forgets the parent's waker once nothing can wake it any more, so that
    /// no `parent task -> this future -> waker -> parent task` cycle outlives
    /// the work (tokio#4724).
    fn release_parent(&mut self) {
        self.shared.release_parent();
    }
}

impl<F: Future> Engine<F> {
    pub(crate) fn new<I>(iter: I) -> Self
    where
        I: IntoIterator,
        I::Item: IntoFuture<IntoFuture = F>,
    {
        let children: Box<[Child<F>]> = iter
            .into_iter()
            .map(|f| Child::Running {
                fut: f.into_future(),
            })
            .collect();
        let n = children.len();
        let wakers = std::iter::repeat_with(|| None).take(n).collect();
        let queued = std::iter::repeat_with(|| AtomicBool::new(false))
            .take(n)
            .collect();
        Engine {
            children: Box::into_pin(children),
            wakers,
            shared: SharedHandle(Arc::new(Shared {
                queued,
                inner: Mutex::new(ReadyList {
                    list: Vec::new(),
                    parent: None,
                }),
            })),
            spare: None,
            batch: Vec::new(),
            starved: false,
            turns_without_budget: false,
            lead: 0,
            started: false,
            live: n,
        }
    }

    /// First call: polls every child in order. Later calls: polls the children
    /// woken since the previous call, each once. `on_ready` receives each
    /// output; `Break` stops the pass (the remaining woken children stay
    /// unpolled, the caller is expected to finish).
    ///
    /// If a child panics, the panic propagates after the children this pass
    /// had yet to poll are put back in the ready list (and the parent woken for
    /// them): the pass took them out of the list, and their `queued` flags stay
    /// set until they are polled, so otherwise they would never be polled again
    /// and their wake-ups would be ignored for good. A parent that catches the
    /// panic and polls again then finds the engine consistent.
    pub(crate) fn poll_pass(
        &mut self,
        cx: &mut Context<'_>,
        mut on_ready: impl FnMut(usize, F::Output) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut batch = mem::take(&mut self.batch);
        let old_parent = {
            let mut ready = self.shared.lock();
            let old = match &ready.parent {
                Some(w) if w.will_wake(cx.waker()) => None,
                _ => ready.parent.replace(cx.waker().clone()),
            };
            mem::swap(&mut ready.list, &mut batch);
            old
        };
        // Dropped after the lock: a waker's drop may run anything, panic
        // too. Then the batch goes back to the ready list first, or its
        // children (`queued` still set) would ignore their wake-ups for good.
        if let Err(p) = panic::catch_unwind(AssertUnwindSafe(|| drop(old_parent))) {
            let mut ready = self.shared.lock();
            batch.append(&mut ready.list);
            mem::swap(&mut ready.list, &mut batch);
            drop(ready);
            self.batch = batch;
            // Told to poll again for them (as after a child's panic): a
            // parent that catches the panic may wait for a wake-up first.
            cx.waker().wake_by_ref();
            panic::resume_unwind(p);
        }
        let first_pass = !self.started;
        self.started = true;
        // Wake order while the budget lasts. The children share it
        // (`coop`): one always ready wakes itself first every pass and,
        // polled first every pass, would spend all of it, leaving the
        // others none (a lock they were handed, a wake-up they were given,
        // would wait with them). So after a pass that ran it out, the batch
        // moves one place: children that wake themselves come back in the
        // order the pass polled them, so each leads in turn. (A rotation
        // growing with the pass count would add up to triangular offsets,
        // which skip some places.)
        if !first_pass && self.starved && batch.len() > 1 {
            batch.rotate_left(1);
        } else if !first_pass
            && batch.len() > 1
            && self.turns_without_budget
            && crate::coop::polled_elsewhere()
        {
            // Polled by another executor, the task has no budget of ours,
            // and that executor's own (tokio's) cannot be seen: a child
            // that spends it every pass would starve the others of it
            // (their channel or timer answering `Pending` for good). So the
            // children take turns on every pass, as in `tokio::join!`: by
            // index, since that executor may wake them in any order (tokio
            // wakes the ones its budget held back last first).
            batch.sort_unstable();
            let before = batch.partition_point(|&i| i < self.lead);
            batch.rotate_left(before);
            self.lead = batch[0] + 1;
        }
        // Position in this pass of the next child to poll: in `batch`, or (the
        // first pass, when `batch` is empty since no child could be woken yet)
        // the child index itself.
        let mut next = 0;
        let pass = panic::catch_unwind(AssertUnwindSafe(|| {
            let n = if first_pass {
                self.children.len()
            } else {
                batch.len()
            };
            while next < n {
                let i = if first_pass { next } else { batch[next] };
                next += 1;
                if let Some(out) = self.poll_child(i) {
                    if on_ready(i, out).is_break() {
                        return ControlFlow::Break(());
                    }
                }
            }
            ControlFlow::Continue(())
        }));
        let flow = match pass {
            Ok(flow) => flow,
            Err(payload) => {
                self.requeue_rest_of_pass(first_pass, &batch, next, cx);
                panic::resume_unwind(payload)
            }
        };
        self.starved = crate::coop::budget_spent();
        batch.clear();
        self.batch = batch;
        if self.live == 0 {
            self.release_parent();
        }
        flow
    }

    /// After a panic in a pass, puts the children it had not polled yet back
    /// in the ready list. Later passes: `batch[next..]`, woken children whose
    /// flags are still set (so no waker added them to the list again). First
    /// pass: children `next..`, never polled, queued as if woken so that the
    /// next poll starts them.
    #[cold]
    fn requeue_rest_of_pass(
        &self,
        first_pass: bool,
        batch: &[usize],
        next: usize,
        cx: &Context<'_>,
    ) {
        let mut ready = self.shared.lock();
        if first_pass {
            for i in next..self.children.len() {
                if !self.shared.queued[i].swap(true, Ordering::AcqRel) {
                    ready.list.push(i);
                }
            }
        } else {
            ready.list.extend_from_slice(&batch[next..]);
        }
        let any = !ready.list.is_empty();
        drop(ready);
        // A non-empty list promises that the parent was woken since it last
        // took the list (wakers skip waking it otherwise): keep the promise.
        if any {
            cx.waker().wake_by_ref();
        }
    }

    fn poll_child(&mut self, i: usize) -> Option<F::Output> {
        let mut child = pin_index(self.children.as_mut(), i);
        let fut = match child.as_mut().project() {
            ChildProj::Running { fut } => fut,
            ChildProj::Gone => return None, // a stale wake
        };
        // An RMW, not a store: it acquires from a waker's `swap(true)` that
        // found the flag already set, so this poll sees what that waker saw.
        self.shared.queued[i].swap(false, Ordering::AcqRel);
        let poll = match &self.wakers[i] {
            Some(waker) => fut.poll(&mut Context::from_waker(waker)),
            None => {
                let spare = match self.spare.take() {
                    Some(spare) => {
                        spare.arc.index.store(i, Ordering::Relaxed);
                        spare
                    }
                    None => {
                        let arc = Arc::new(ChildWaker {
                            index: AtomicUsize::new(i),
                            shared: Arc::clone(&self.shared),
                        });
                        let waker = Waker::from(arc.clone());
                        Spare { arc, waker }
                    }
                };
                let poll = fut.poll(&mut Context::from_waker(&spare.waker));
                // Held by `spare.arc` and `spare.waker` only: no clone escaped,
                // so it can serve another child.
                if poll.is_ready() && Arc::strong_count(&spare.arc) == 2 {
                    self.spare = Some(spare);
                } else if poll.is_pending() {
                    self.wakers[i] = Some(spare.waker);
                }
                poll
            }
        };
        match poll {
            Poll::Ready(out) => {
                // Counted done before the child is dropped: a destructor
                // that panics loses `out`, but a parent that catches the
                // panic and polls again must not wait for this child.
                self.wakers[i] = None;
                self.live -= 1;
                child.set(Child::Gone);
                Some(out)
            }
            Poll::Pending => None,
        }
    }
}

impl<F> fmt::Debug for Engine<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("children", &self.children.len())
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

/// Runs every future of `iter` concurrently and returns their outputs in input order.
///
/// The children are polled on the task that polls the returned future
/// (libcoro's `when_all`: nothing is spawned). The first poll starts every
/// child in order; after that, a wake-up polls only the child that was woken,
/// through a per-child waker and a ready list: a wake costs O(1), not O(n),
/// so 100,000 children finish in time linear in their number. The children
/// share one allocation; a child's waker is allocated only if it stays
/// pending.
///
/// For a fixed set of futures of different types, see [`when_all!`](crate::when_all!).
///
/// # Examples
/// ```
/// use coro_core::{sync_wait, when_all};
///
/// let futs = (1..=5u64).map(|x| async move { x + x });
/// assert_eq!(sync_wait(when_all(futs)), vec![2, 4, 6, 8, 10]);
/// ```
///
/// # Panics
/// A panic inside a child propagates out of `poll` to the awaiter; the other
/// children are dropped with the `WhenAll` future. An awaiter that catches the
/// panic and polls again finds the other children where they were (those
/// already woken are polled, those not yet started are started); the child
/// that panicked is polled again only once it is woken. Polling again after
/// the future returned `Ready` panics.
///
/// # Cancel safety
/// Dropping the future drops every child still running; outputs already
/// produced are dropped too.
#[doc(alias = "join_all")]
pub fn when_all<I>(iter: I) -> WhenAll<<I::Item as IntoFuture>::IntoFuture>
where
    I: IntoIterator,
    I::Item: IntoFuture,
{
    let mut engine = Engine::new(iter);
    engine.turns_without_budget = true;
    let outputs = std::iter::repeat_with(|| None).take(engine.len()).collect();
    WhenAll {
        engine,
        outputs,
        done: false,
    }
}

/// The future returned by [`when_all`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct WhenAll<F: Future> {
    engine: Engine<F>,
    outputs: Vec<Option<F::Output>>,
    done: bool,
}

// Children live in a pinned box and outputs are moved, never pinned.
impl<F: Future> Unpin for WhenAll<F> {}

impl<F: Future> Future for WhenAll<F> {
    type Output = Vec<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(!this.done, "`when_all` future polled after it completed");
        if this.engine.live() > 0 {
            let outputs = &mut this.outputs;
            let _ = this.engine.poll_pass(cx, |i, out| {
                outputs[i] = Some(out);
                ControlFlow::Continue(())
            });
            if this.engine.live() > 0 {
                return Poll::Pending;
            }
        }
        this.done = true;
        let outputs = mem::take(&mut this.outputs);
        Poll::Ready(
            outputs
                .into_iter()
                .map(|o| o.expect("a child panicked as it finished: its output is lost"))
                .collect(),
        )
    }
}

impl<F: Future> fmt::Debug for WhenAll<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhenAll")
            .field("len", &self.engine.len())
            .field("running", &self.engine.live())
            .finish()
    }
}

/// Like [`when_all`] for futures returning `Result`: all `Ok` outputs in input
/// order, or the first `Err` (in completion order).
///
/// On the first `Err` every child still running is dropped (cancelled) before
/// the error is returned.
///
/// # Examples
/// ```
/// use coro_core::{sync_wait, try_when_all};
///
/// let ok = (1..=3).map(|x| async move { Ok::<_, String>(x) });
/// assert_eq!(sync_wait(try_when_all(ok)), Ok(vec![1, 2, 3]));
///
/// let futs = (1..=3).map(|x| async move { if x == 2 { Err(format!("bad {x}")) } else { Ok(x) } });
/// assert_eq!(sync_wait(try_when_all(futs)), Err("bad 2".to_string()));
/// ```
///
/// # Panics
/// As [`when_all`]: a child's panic propagates to the awaiter; polling after
/// completion panics.
///
/// # Cancel safety
/// Dropping the future drops every child still running.
#[doc(alias = "try_join_all")]
pub fn try_when_all<I, T, E>(iter: I) -> TryWhenAll<<I::Item as IntoFuture>::IntoFuture, T>
where
    I: IntoIterator,
    I::Item: IntoFuture<Output = Result<T, E>>,
{
    let mut engine = Engine::new(iter);
    engine.turns_without_budget = true;
    let outputs = std::iter::repeat_with(|| None).take(engine.len()).collect();
    TryWhenAll {
        engine,
        outputs,
        done: false,
    }
}

/// The future returned by [`try_when_all`].
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct TryWhenAll<F, T> {
    engine: Engine<F>,
    outputs: Vec<Option<T>>,
    done: bool,
}

// Children live in a pinned box and outputs are moved, never pinned.
impl<F, T> Unpin for TryWhenAll<F, T> {}

impl<F, T, E> Future for TryWhenAll<F, T>
where
    F: Future<Output = Result<T, E>>,
{
    type Output = Result<Vec<T>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        assert!(
            !this.done,
            "`try_when_all` future polled after it completed"
        );
        if this.engine.live() > 0 {
            let outputs = &mut this.outputs;
            let mut error = None;
            let _ = this.engine.poll_pass(cx, |i, out| match out {
                Ok(v) => {
                    outputs[i] = Some(v);
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    error = Some(e);
                    ControlFlow::Break(())
                }
            });
            if let Some(e) = error {
                this.done = true;
                this.engine.drop_children();
                this.outputs = Vec::new();
                return Poll::Ready(Err(e));
            }
            if this.engine.live() > 0 {
                return Poll::Pending;
            }
        }
        this.done = true;
        let outputs = mem::take(&mut this.outputs);
        Poll::Ready(Ok(outputs
            .into_iter()
            .map(|o| o.expect("a child panicked as it finished: its output is lost"))
            .collect()))
    }
}

impl<F, T> fmt::Debug for TryWhenAll<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TryWhenAll")
            .field("len", &self.engine.len())
            .field("running", &self.engine.live())
            .finish()
    }
}
