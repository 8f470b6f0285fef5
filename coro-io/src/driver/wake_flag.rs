//! The flag half of the drivers' cross-thread wake-up ([`notify`](super::notify)),
//! kept apart so that loom can check it (`coro-io/tests/loom_notify.rs`
//! compiles this file against loom's types).
//!
//! A wake [`raise`](WakeFlag::raise)s the flag and writes the eventfd only
//! if the flag was clear; the waiting side, once it saw the eventfd
//! readable, empties it and then [`lower`](WakeFlag::lower)s the flag. A
//! wake that finds the flag still set writes nothing: it counts on the
//! waiting side's look after `lower` to see what it published before
//! waking (a queued task, the shutdown flag, an earlier timer).

use crate::sync::{AtomicBool, Ordering};

#[derive(Debug)]
pub(crate) struct WakeFlag(AtomicBool);

impl WakeFlag {
    pub(crate) fn new() -> WakeFlag {
        WakeFlag(AtomicBool::new(false))
    }

    /// A wake: whether the caller must write the eventfd (the flag was
    /// clear). What the caller wrote before is published with it.
    pub(crate) fn raise(&self) -> bool {
        !self.0.swap(true, Ordering::SeqCst)
    }

    /// The eventfd was emptied: re-arm for the next wake. A swap, not a
    /// store: a `raise` that found the flag set (and so wrote nothing) is
    /// then ordered before this, so the caller's look after it sees what
    /// that wake published. After a plain store the look could read the
    /// old values and the loop block with the eventfd empty (never on
    /// x86, where both are `xchg`).
    pub(crate) fn lower(&self) {
        self.0.swap(false, Ordering::AcqRel);
    }
}
