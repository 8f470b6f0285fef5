//! [`TaskGroup`]: structured spawning (libcoro's `task_group`, tokio's `JoinSet`).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use crate::scheduler::IoScheduler;
use crate::task::{JoinError, JoinHandle};

#[derive(Default)]
struct Done {
    ids: VecDeque<u64>,
    waker: Option<Waker>,
}

/// Reports a task's end (completion, panic or abort) to its group.
struct Notify {
    id: u64,
    done: Arc<Mutex<Done>>,
}

impl Drop for Notify {
    fn drop(&mut self) {
        let mut d = crate::lock(&self.done);
        d.ids.push_back(self.id);
        let w = d.waker.take();
        drop(d);
        if let Some(w) = w {
            w.wake();
        }
    }
}

/// A set of tasks spawned on one scheduler, joined in completion order.
/// Dropping the group aborts the tasks still running.
///
/// A finished task stays in the group, with its output, until it is
/// joined (as in tokio's `JoinSet`): a long-lived group that gets a task
/// per connection grows by one finished task per connection unless it is
/// reaped, with [`try_join_next`](TaskGroup::try_join_next) in the accept
/// loop, say. Tasks nobody joins are better spawned and detached.
///
/// # Examples
///
/// ```
/// use coro_io::{IoScheduler, TaskGroup};
///
/// let sched = IoScheduler::new(Default::default())?;
/// let mut group = TaskGroup::new(&sched);
/// for i in 0..3u32 {
///     group.spawn(async move { i * 10 });
/// }
/// let mut all: Vec<u32> =
///     coro_core::sync_wait(group.join_all()).into_iter().map(Result::unwrap).collect();
/// all.sort();
/// assert_eq!(all, [0, 10, 20]);
/// # std::io::Result::Ok(())
/// ```
pub struct TaskGroup<T> {
    sched: IoScheduler,
    tasks: HashMap<u64, JoinHandle<T>>,
    done: Arc<Mutex<Done>>,
    next_id: u64,
}

impl<T> fmt::Debug for TaskGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("len", &self.tasks.len())
            .finish()
    }
}

impl<T: Send + 'static> TaskGroup<T> {
    /// An empty group spawning on `sched`.
    pub fn new(sched: &IoScheduler) -> TaskGroup<T> {
        TaskGroup {
            sched: sched.clone(),
            tasks: HashMap::new(),
            done: Arc::default(),
            next_id: 0,
        }
    }

    /// Spawn `fut` into the group.
    pub fn spawn<F>(&mut self, fut: F)
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.next_id += 1;
        let id = self.next_id;
        let notify = Notify {
            id,
            done: self.done.clone(),
        };
        let h = self.sched.spawn(async move {
            let _notify = notify;
            fut.await
        });
        self.tasks.insert(id, h);
    }

    /// Tasks not joined yet.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task is left to join.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Abort every task still running (they will join as cancelled).
    pub fn abort_all(&self) {
        for h in self.tasks.values() {
            h.abort();
        }
    }

    /// Wait for the next task to finish; `None` when the group is empty.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `join_next` loses no result.
    pub async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        poll_fn(|cx| {
            loop {
                if self.tasks.is_empty() {
                    return Poll::Ready(None);
                }
                let mut d = crate::lock(&self.done);
                let Some(&id) = d.ids.front() else {
                    let old = d.waker.replace(cx.waker().clone());
                    drop(d);
                    // (A waker runs its own code when dropped: not under
                    // the lock the group's tasks take as they finish.)
                    drop(old);
                    return Poll::Pending;
                };
                drop(d);
                let Some(h) = self.tasks.get_mut(&id) else {
                    self.done
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .ids
                        .pop_front();
                    continue;
                };
                // The future ended; its handle resolves as soon as the task
                // stored the output (or the cancellation).
                return match Pin::new(h).poll(cx) {
                    Poll::Ready(r) => {
                        self.done
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .ids
                            .pop_front();
                        self.tasks.remove(&id);
                        Poll::Ready(Some(r))
                    }
                    Poll::Pending => Poll::Pending,
                };
            }
        })
        .await
    }

    /// The result of a task that has finished, if one has, without
    /// waiting. Results come in the order the tasks finished: `None` also
    /// while the earliest finished one not yet joined is still storing its
    /// output on another thread (a moment; it and the ones after it show
    /// on a later call).
    pub fn try_join_next(&mut self) -> Option<Result<T, JoinError>> {
        let mut cx = std::task::Context::from_waker(Waker::noop());
        let next = std::pin::pin!(self.join_next());
        match next.poll(&mut cx) {
            Poll::Ready(r) => r,
            Poll::Pending => None,
        }
    }

    /// Wait for every task; results in completion order.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping it drops the group, aborting what is left.
    pub async fn join_all(mut self) -> Vec<Result<T, JoinError>> {
        let mut out = Vec::with_capacity(self.tasks.len());
        while let Some(r) = self.join_next().await {
            out.push(r);
        }
        out
    }
}

impl<T> Drop for TaskGroup<T> {
    fn drop(&mut self) {
        for h in self.tasks.values() {
            h.abort_unwaited();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finished tasks are reaped without waiting, so a long-lived group
    /// stays as small as what still runs.
    #[test]
    fn try_join_next_reaps_finished_tasks() {
        let s = IoScheduler::new(Default::default()).unwrap();
        let mut g = TaskGroup::new(&s);
        assert!(g.try_join_next().is_none(), "empty");
        let gate = Arc::new(coro_sync::Event::new(false));
        let g2 = gate.clone();
        g.spawn(async move {
            g2.wait().await;
            0u32
        });
        for i in 1..=100u32 {
            g.spawn(async move { i });
        }
        let mut sum = 0;
        let t0 = std::time::Instant::now();
        while g.len() > 1 {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(20),
                "not reaped"
            );
            match g.try_join_next() {
                Some(r) => sum += r.unwrap(),
                None => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        assert_eq!(sum, 5050);
        assert!(g.try_join_next().is_none(), "the gated task still runs");
        gate.set();
        assert_eq!(coro_core::sync_wait(g.join_all()).len(), 1);
        s.shutdown();
    }
}
