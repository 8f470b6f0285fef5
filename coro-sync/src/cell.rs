//! The only module with `unsafe` blocks besides the guards' one-line `Deref`
//! impls: the data cells of [`Mutex`](crate::Mutex) and
//! [`SharedMutex`](crate::SharedMutex).
#![allow(unsafe_code)]

use core::cell::UnsafeCell;

/// Data guarded by an exclusive lock: `Sync` when `T: Send`, like `std::sync::Mutex`.
pub(crate) struct ExclusiveCell<T: ?Sized>(UnsafeCell<T>);

// SAFETY: the owning lock hands out access to one holder at a time, so sharing
// the cell between threads only ever moves a `T` between them.
unsafe impl<T: ?Sized + Send> Sync for ExclusiveCell<T> {}

/// Data guarded by a reader-writer lock: `Sync` when `T: Send + Sync`, like `std::sync::RwLock`.
pub(crate) struct SharedCell<T: ?Sized>(UnsafeCell<T>);

// SAFETY: readers share `&T` across threads (needs `T: Sync`), a writer gets
// `&mut T` on whichever thread holds the lock (needs `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for SharedCell<T> {}

macro_rules! cell_impl {
    ($name:ident) => {
        impl<T> $name<T> {
            pub(crate) const fn new(value: T) -> Self {
                Self(UnsafeCell::new(value))
            }

            pub(crate) fn into_inner(self) -> T {
                self.0.into_inner()
            }
        }

        impl<T: ?Sized> $name<T> {
            pub(crate) fn get_mut(&mut self) -> &mut T {
                self.0.get_mut()
            }

            /// # Safety
            /// The caller holds the lock (shared or exclusive) for the lifetime of the result.
            pub(crate) unsafe fn get(&self) -> &T {
                // SAFETY: the caller holds a lock, so no `&mut T` exists meanwhile.
                unsafe { &*self.0.get() }
            }

            /// # Safety
            /// The caller holds the lock exclusively for the lifetime of the result.
            #[allow(clippy::mut_from_ref)]
            pub(crate) unsafe fn get_mut_unchecked(&self) -> &mut T {
                // SAFETY: exclusive lock held: this is the only reference.
                unsafe { &mut *self.0.get() }
            }
        }
    };
}

cell_impl!(ExclusiveCell);
cell_impl!(SharedCell);
