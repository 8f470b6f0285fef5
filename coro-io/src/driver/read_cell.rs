//! The word per fd that the epoll driver's read path checks without taking
//! the driver's table lock.
//!
//! A stream read needs two facts about its fd: the readiness token before
//! the syscall (so that an event racing the syscall is not slept through)
//! and, after it, whether the read drained the fd (so that the next read
//! waits for an event instead of making a syscall that can only say
//! `EAGAIN`). Under the table lock that was three lock/unlock pairs per
//! request on a keep-alive connection. Here both are atomics: the read
//! path loads the token and stores the drained mark with no lock, and
//! takes the lock only to sleep (to store its waker).
//!
//! Why that is safe: every decision made from a lock-free load is either
//! "try the syscall" (always allowed) or "sleep", and sleeping compares the
//! token again under the table lock, where the event side changes it. So a
//! stale load costs at most one extra syscall or one more trip round the
//! loop; it never makes a reader sleep past an event. Every write of the
//! state word happens under the table lock (registration, release, event),
//! so writers never race one another; only the drained mark is written
//! without it, by readers, and it is a hint checked against the word.
//! `coro-io/tests/loom_read_cell.rs` checks the encoding, and the protocol
//! with loom (this file is compiled there against loom's atomics).
//!
//! The word: the registration's generation in the upper 32 bits (odd while
//! the fd is registered: both registering and releasing add one), a read
//! sequence number bumped by each readable event (bits 1-31), and the
//! hang-up bit (bit 0: the peer hung up or the fd reported an error, so no
//! further edge will come, or urgent data arrived, after which a short read
//! does not mean the fd is empty: either way reads must always try).
//!
//! A short stream read is taken to mean "drained", as tokio does: true
//! for TCP but for urgent data (covered by the bit above); not for Unix
//! stream sockets, where a read also stops at a message that carried file
//! descriptors or credentials (`SCM_RIGHTS`, `SO_PASSCRED`), so their
//! reads (`op::Recv::unix_stream`) mark nothing.

use crate::sync::{AtomicU64, Ordering};

const HUP: u64 = 1;
const SEQ_ONE: u64 = 2;
const SEQ_MASK: u64 = 0xFFFF_FFFE;
const GEN_ONE: u64 = 1 << 32;

/// One fd's readiness word and drained mark. See the module docs.
#[derive(Debug, Default)]
pub(crate) struct ReadCell {
    word: AtomicU64,
    /// The word a stream read saw before it drained the fd (0: none; a
    /// registered word is never 0, its generation being odd).
    drained_at: AtomicU64,
}

impl ReadCell {
    /// The current word: the read token, compared again under the lock
    /// before sleeping.
    pub(crate) fn load(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    /// Whether `word` is that of a registered fd.
    pub(crate) fn registered(word: u64) -> bool {
        (word >> 32) & 1 == 1
    }

    /// The registration's generation (in the upper 32 bits of epoll's data).
    pub(crate) fn generation(word: u64) -> u32 {
        (word >> 32) as u32
    }

    /// Whether the peer hung up (or the fd reported an error).
    pub(crate) fn hup(word: u64) -> bool {
        word & HUP != 0
    }

    /// The read sequence number alone (for tokens of both directions).
    pub(crate) fn read_seq(word: u64) -> u32 {
        ((word & SEQ_MASK) >> 1) as u32
    }

    /// Whether a stream read drained the fd at `word` and nothing arrived
    /// since (`word` being current): the syscall would say `EAGAIN`.
    pub(crate) fn drained(&self, word: u64) -> bool {
        Self::registered(word)
            && !Self::hup(word)
            && self.drained_at.load(Ordering::Relaxed) == word
    }

    /// A stream read that started at `word` drained the fd (`Some`), or
    /// left bytes in it (`None`).
    pub(crate) fn mark_drained(&self, word: Option<u64>) {
        self.drained_at.store(word.unwrap_or(0), Ordering::Relaxed);
    }

    /// Registered (table lock held): a new, odd generation, no hang-up.
    pub(crate) fn register(&self) {
        self.next_generation(false);
    }

    /// Released (table lock held): a new, even generation, so that events
    /// and drained marks of the old registration match nothing.
    pub(crate) fn release(&self) {
        self.next_generation(true);
    }

    /// The generation after this one (registering and releasing both add
    /// one), with the hang-up bit cleared; `registered`: what it is now.
    /// The drained mark goes too: the generation wraps after 2^31
    /// registrations of the fd number, and a mark of the old one would
    /// then match again.
    fn next_generation(&self, registered: bool) {
        let w = self.word.load(Ordering::Relaxed);
        debug_assert_eq!(Self::registered(w), registered);
        self.drained_at.store(0, Ordering::Relaxed);
        self.word
            .store((w & !HUP).wrapping_add(GEN_ONE), Ordering::Release);
    }

    /// A readable event (table lock held): bump the sequence number, and
    /// note a hang-up.
    ///
    /// The sequence has 31 bits: 2^31 events after a mark was set, the
    /// word is the marked one again, and a reader would sleep on bytes
    /// already queued (for good on a back-pressured stream, whose next
    /// event waits for that read). Such a run needs no short read between
    /// (a consumer behind its producer for hours, reading full buffers) or
    /// no read at all (a connection that only sends for hours, its write
    /// events counted here while unread bytes wait). So each time the
    /// sequence reaches 0 or half-way, the mark is cleared: a mark set
    /// since the last such point (even from a word loaded a few events
    /// before it, by a reader that stored it late) is cleared at the next
    /// one, before the sequence can come back to its value. The cost is a
    /// branch per event and one extra `recv` per 2^30 events.
    pub(crate) fn readable(&self, hup: bool) {
        let w = self.word.load(Ordering::Relaxed);
        let seq = (w & SEQ_MASK).wrapping_add(SEQ_ONE) & SEQ_MASK;
        if seq & (SEQ_MASK >> 1) == 0 {
            self.drained_at.store(0, Ordering::Relaxed);
        }
        let hup = if hup { HUP } else { w & HUP };
        self.word
            .store((w & !(SEQ_MASK | HUP)) | seq | hup, Ordering::Release);
    }

    /// Test builds: as if readable events without a hang-up had brought
    /// the read sequence to `seq` (which the caller makes sure none of
    /// them would have crossed 0 or half-way: see [`readable`](Self::readable)).
    /// A wrap is otherwise 2^31 events away.
    #[cfg(test)]
    #[allow(dead_code)] // used by tests/loom_read_cell.rs only
    pub(crate) fn skip_events_to(&self, seq: u32) {
        let w = self.word.load(Ordering::Relaxed);
        let seq = (u64::from(seq) << 1) & SEQ_MASK;
        self.word.store((w & !SEQ_MASK) | seq, Ordering::Release);
    }
}
