//! `Task<T>` and `LocalTask<T>`: lazy, type-erased futures.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A lazy, type-erased, `Send` future returning `T` (libcoro's `coro::task<T>`).
///
/// A `Task` owns a boxed future. Like every Rust future it is lazy: creating it
/// runs nothing; the body starts on the first poll (`.await`, [`sync_wait`],
/// [`when_all`], an executor's spawn). Use it to give a name to "some future
/// returning `T`", for example to put futures of different types in one `Vec`.
///
/// [`sync_wait`]: crate::sync_wait
/// [`when_all`]: fn@crate::when_all
///
/// # Examples
/// ```
/// use coro_core::{sync_wait, Task};
///
/// fn double(x: u64) -> Task<u64> {
///     Task::new(async move { x * 2 })
/// }
/// fn double_and_add_5(x: u64) -> Task<u64> {
///     Task::new(async move { double(x).await + 5 })
/// }
/// assert_eq!(sync_wait(double_and_add_5(2)), 9);
/// ```
///
/// # Cancel safety
/// Dropping a `Task` drops the future inside it at its current `.await`;
/// whether that loses work depends on that future.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct Task<T> {
    inner: Pin<Box<dyn Future<Output = T> + Send + 'static>>,
}

impl<T> Task<T> {
    /// Wraps `fut` in a task. Nothing runs until the task is polled.
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    ///
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let flag = ran.clone();
    /// let task = coro_core::Task::new(async move { flag.store(true, Ordering::SeqCst) });
    /// assert!(!ran.load(Ordering::SeqCst)); // lazy
    /// coro_core::sync_wait(task);
    /// assert!(ran.load(Ordering::SeqCst));
    /// ```
    pub fn new<F>(fut: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        Task {
            inner: Box::pin(fut),
        }
    }

    /// Turns this task into a [`LocalTask`] (which has no `Send` bound).
    ///
    /// # Examples
    /// ```
    /// let local: coro_core::LocalTask<u8> = coro_core::Task::new(async { 1 }).into_local();
    /// assert_eq!(coro_core::sync_wait(local), 1);
    /// ```
    pub fn into_local(self) -> LocalTask<T> {
        LocalTask { inner: self.inner }
    }
}

impl<T> Future for Task<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for Task<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task").finish_non_exhaustive()
    }
}

impl<T> From<Pin<Box<dyn Future<Output = T> + Send + 'static>>> for Task<T> {
    fn from(inner: Pin<Box<dyn Future<Output = T> + Send + 'static>>) -> Self {
        Task { inner }
    }
}

/// A lazy, type-erased future returning `T` that need not be `Send`.
///
/// The same as [`Task`] for futures that hold `Rc`, `RefCell` borrows and the
/// like across an `.await`; such a task stays on the thread that polls it.
///
/// # Examples
/// ```
/// use std::rc::Rc;
/// use coro_core::{sync_wait, LocalTask};
///
/// let shared = Rc::new(40);
/// let task = LocalTask::new(async move { *shared + 2 });
/// assert_eq!(sync_wait(task), 42);
/// ```
///
/// # Cancel safety
/// Dropping a `LocalTask` drops the future inside it at its current `.await`.
#[must_use = "futures do nothing unless you .await or poll them"]
pub struct LocalTask<T> {
    inner: Pin<Box<dyn Future<Output = T> + 'static>>,
}

impl<T> LocalTask<T> {
    /// Wraps `fut` in a task. Nothing runs until the task is polled.
    ///
    /// # Examples
    /// ```
    /// let task = coro_core::LocalTask::new(async { "hi" });
    /// assert_eq!(coro_core::sync_wait(task), "hi");
    /// ```
    pub fn new<F>(fut: F) -> Self
    where
        F: Future<Output = T> + 'static,
    {
        LocalTask {
            inner: Box::pin(fut),
        }
    }
}

impl<T> Future for LocalTask<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T> fmt::Debug for LocalTask<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalTask").finish_non_exhaustive()
    }
}

impl<T> From<Task<T>> for LocalTask<T> {
    fn from(task: Task<T>) -> Self {
        task.into_local()
    }
}

impl<T> From<Pin<Box<dyn Future<Output = T> + 'static>>> for LocalTask<T> {
    fn from(inner: Pin<Box<dyn Future<Output = T> + 'static>>) -> Self {
        LocalTask { inner }
    }
}
