//! The one switch between `std` and `loom` types, so loom models exercise the
//! real code paths.

// `Arc` too, for the channels' shared state: a handle dropped on one thread
// may free state another thread just used, and loom only sees the
// synchronisation of that last drop through its own `Arc`.
#[cfg(loom)]
pub(crate) use loom::sync::{
    Arc, Mutex as StdMutex, RwLock as StdRwLock, RwLockReadGuard as StdRwLockReadGuard,
    RwLockWriteGuard as StdRwLockWriteGuard, atomic,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{
    Arc, Mutex as StdMutex, RwLock as StdRwLock, RwLockReadGuard as StdRwLockReadGuard,
    RwLockWriteGuard as StdRwLockWriteGuard, atomic,
};

/// Locks a `StdMutex`, ignoring poisoning: the state it protects is only ever
/// updated by short, non-panicking sections.
pub(crate) fn lock<T>(m: &StdMutex<T>) -> impl core::ops::DerefMut<Target = T> + '_ {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Read-locks a `StdRwLock`, ignoring poisoning: a writer that panicked (in a
/// caller's closure) still left a valid `T`, only perhaps a half-modified one,
/// which is what that caller asked for.
pub(crate) fn read<T>(l: &StdRwLock<T>) -> StdRwLockReadGuard<'_, T> {
    match l.read() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Write-locks a `StdRwLock`, ignoring poisoning (see [`read`]).
pub(crate) fn write<T>(l: &StdRwLock<T>) -> StdRwLockWriteGuard<'_, T> {
    match l.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
