//! Error types. Errors that concern a value hand it back.

use core::fmt;

/// The primitive was closed: returned by waits that can no longer succeed.
///
/// `Closed<T>` carries back the value that could not be delivered (for
/// [`RingBuffer::push`](crate::RingBuffer::push) and
/// [`Queue::push`](crate::Queue::push)); `Closed` (that is, `Closed<()>`) is
/// the plain signal used by [`Semaphore::acquire`](crate::Semaphore::acquire)
/// and the `pop` methods.
///
/// # Examples
///
/// ```
/// use coro_sync::Queue;
///
/// let q = Queue::new();
/// q.close();
/// let err = q.push(7).unwrap_err();
/// assert_eq!(err.into_inner(), 7);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Closed<T = ()>(pub T);

impl<T> Closed<T> {
    /// Returns the value that could not be delivered.
    ///
    /// ```
    /// assert_eq!(coro_sync::Closed(3).into_inner(), 3);
    /// ```
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Closed(..)")
    }
}

impl<T> fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("closed")
    }
}

impl<T> std::error::Error for Closed<T> {}

/// Why [`RingBuffer::try_push`](crate::RingBuffer::try_push) did not push; the
/// value comes back either way.
///
/// ```
/// use coro_sync::{PushError, RingBuffer};
///
/// let rb = RingBuffer::<u8, 1>::new();
/// rb.try_push(1).unwrap();
/// assert_eq!(rb.try_push(2), Err(PushError::Full(2)));
/// rb.close();
/// assert_eq!(rb.try_push(3).unwrap_err().into_inner(), 3);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushError<T> {
    /// The buffer is full.
    Full(T),
    /// The buffer was closed.
    Closed(T),
}

impl<T> PushError<T> {
    /// Returns the value that was not pushed.
    ///
    /// ```
    /// assert_eq!(coro_sync::PushError::Full(1).into_inner(), 1);
    /// ```
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(v) | Self::Closed(v) => v,
        }
    }

    /// Returns `true` for [`PushError::Closed`].
    ///
    /// ```
    /// assert!(coro_sync::PushError::Closed(1).is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("full"),
            Self::Closed(_) => f.write_str("closed"),
        }
    }
}

impl<T> std::error::Error for PushError<T> {}

/// Why a `try_pop` returned nothing.
///
/// ```
/// use coro_sync::{Queue, TryPopError};
///
/// let q = Queue::<u8>::new();
/// assert_eq!(q.try_pop(), Err(TryPopError::Empty));
/// q.close();
/// assert_eq!(q.try_pop(), Err(TryPopError::Closed));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryPopError {
    /// Nothing to pop right now.
    Empty,
    /// Closed and drained: nothing will ever come.
    Closed,
}

impl fmt::Display for TryPopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty"),
            Self::Closed => f.write_str("closed"),
        }
    }
}

impl std::error::Error for TryPopError {}

/// Why [`Semaphore::try_acquire`](crate::Semaphore::try_acquire) failed.
///
/// ```
/// use coro_sync::{Semaphore, TryAcquireError};
///
/// let s = Semaphore::new(0);
/// assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
/// s.close();
/// assert_eq!(s.try_acquire().unwrap_err(), TryAcquireError::Closed);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TryAcquireError {
    /// Not enough permits right now.
    NoPermits,
    /// The semaphore was closed.
    Closed,
}

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPermits => f.write_str("no permits available"),
            Self::Closed => f.write_str("closed"),
        }
    }
}

impl std::error::Error for TryAcquireError {}
