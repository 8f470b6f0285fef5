//! The one switch between `std` and `loom` types, so loom models exercise the
//! real code paths.

#[cfg(loom)]
pub(crate) use loom::sync::{Mutex as StdMutex, atomic};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex as StdMutex, atomic};

/// Locks a `StdMutex`, ignoring poisoning: the state it protects is only ever
/// updated by short, non-panicking sections.
pub(crate) fn lock<T>(m: &StdMutex<T>) -> impl core::ops::DerefMut<Target = T> + '_ {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}
