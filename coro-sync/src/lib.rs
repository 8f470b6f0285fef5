//! coro-sync: async synchronisation primitives for any executor.
//!
//! Coming: `Event`, `Latch`, `Mutex`, `SharedMutex`, `Semaphore`, `RingBuffer`,
//! `Queue`, `Condvar`, `Barrier` (see the project's DESIGN).
