//! io_uring's receive queue for stream sockets: one multishot receive per
//! socket into a ring of provided buffers, and the bytes it delivered
//! queued in the socket's slot until a reader copies them out.
//!
//! # Why
//!
//! A single-shot receive makes the kernel arm a poll of the socket for
//! every read and tear it down again; a multishot receive (Linux 6.0+)
//! stays armed and posts one completion per arrival into a buffer the
//! kernel picks from a ring the application registered (`IORING_REGISTER_
//! PBUF_RING`, 5.19+). That is the kernel-side saving of io_uring
//! networking. It also makes a read lossless when its future is dropped:
//! received bytes wait in the queue, owned by the socket's slot, not by
//! the dropped future's buffer.
//!
//! # The protocol (all under the driver's state lock)
//!
//! * A socket's slot (`StreamRx`) is created by its first read and lives
//!   until its owner releases the fd (`Handle::release_fd`, which every
//!   `RegisteredFd` calls before closing) *and* the kernel posted the final
//!   completion of the receive it had armed (one without `F_MORE`): only
//!   then may the slot and its token be reused.
//! * At most one receive per socket is in the kernel (`armed`): re-arming
//!   waits for the previous one's final completion, so completions of one
//!   socket arrive in stream order and are queued in that order.
//! * A completion with data names a buffer (`F_BUFFER`): the buffer is the
//!   socket's until a reader consumed it, then it goes back to the ring.
//! * Backpressure: a socket that holds [`MAX_QUEUED`] bytes has its
//!   receive cancelled (the kernel keeps further data in the socket, as
//!   without a queue); a read that makes room re-arms it. Each completion
//!   takes a whole buffer, so a peer sending a byte at a time to a slow
//!   reader would pin one buffer per byte and run the ring dry for every
//!   other socket: when a socket holds [`MAX_CHUNKS`] buffers, its bytes
//!   are packed into as few buffers as they fill and the rest go back to
//!   the ring (a `peek` waiting for a header that came in many small
//!   pieces still sees it all).
//! * `ENOBUFS` (the ring ran dry: other sockets hold the buffers) ends the
//!   multishot receive; until some buffer came back to the ring, the
//!   socket is read readiness-style: a direct non-blocking `recv(2)` into
//!   the reader's buffer once the queue is empty, and a one-shot poll to
//!   wait (no buffer is held while it waits). Then it tries multishot
//!   again. `EINVAL` for a multishot receive (a kernel or seccomp policy
//!   without it) leaves that socket on the readiness path.
//! * End of stream and errors are queued after the data before them and
//!   reported once the data is read.

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::task::Waker;

use io_uring::types::BufRingEntry;

use crate::buf::IoBufMut;

/// The buffer group id of the ring (one ring per driver).
pub(super) const BGID: u16 = 0;
/// Bytes per provided buffer: one completion carries at most this much.
pub(super) const BUF_SIZE: usize = 16 * 1024;
/// A socket with this many bytes queued stops receiving until read.
pub(super) const MAX_QUEUED: usize = 256 * 1024;
/// A socket holding this many buffers has its bytes packed into fewer (as
/// many as [`MAX_QUEUED`] bytes fill); one that still holds this many is
/// full.
pub(super) const MAX_CHUNKS: usize = MAX_QUEUED / BUF_SIZE;

/// The provided buffers' memory, and the buffers that read leases let go
/// of: shared by the ring and every lease ([`RecvLease`](super::RecvLease)),
/// so that a lease needs neither the driver nor its lock, and keeps the
/// memory alive however long it lives (but not the driver: a lease inside
/// an op the driver holds makes no cycle).
pub(crate) struct Provided {
    /// `count * BUF_SIZE` bytes.
    mem: NonNull<u8>,
    layout: Layout,
    /// One bit per buffer: a lease released it, for the ring to take back
    /// at its next reap (or a starved socket's read). Atomics, not the
    /// driver's state lock: a lease may be dropped anywhere (also where
    /// that lock is held), and a release costs one atomic `or`.
    returned: Box<[AtomicU64]>,
    /// A hint that some bit of `returned` is set (saves the ring its scan
    /// while the ring has buffers; see `BufRing::take_returns`).
    returns_pending: AtomicBool,
}

// SAFETY: the memory is plain bytes; who may touch which buffer is decided
// by buffer ownership (the kernel's while in the ring, the queue's while
// queued, a lease's while leased), and the rest is atomics.
unsafe impl Send for Provided {}
// SAFETY: as for `Send`.
unsafe impl Sync for Provided {}

impl Provided {
    /// A lease let go of buffer `bid`: the ring takes it back at its next
    /// reap (or read of a socket the ring ran dry for); nothing happens to
    /// it if the driver is gone.
    pub(crate) fn give_back(&self, bid: u16) {
        let bit = 1u64 << (bid % 64);
        // Release: the lease's reads of the buffer happen before the ring
        // (its `Acquire` swap of this word) hands it to the kernel again.
        let was = self.returned[usize::from(bid / 64)].fetch_or(bit, Ordering::Release);
        debug_assert!(was & bit == 0, "buffer {bid} given back twice");
        self.returns_pending.store(true, Ordering::Release);
    }
}

impl Drop for Provided {
    fn drop(&mut self) {
        // SAFETY: allocated in `BufRing::new` with this layout; the last
        // owner is gone, and a ring the kernel might still write into
        // leaks its reference (`BufRing::leak`), so this never runs then.
        unsafe { dealloc(self.mem.as_ptr(), self.layout) };
    }
}

/// The provided-buffer ring: `count` buffers of [`BUF_SIZE`] bytes and the
/// ring of entries through which they are handed to the kernel.
pub(super) struct BufRing {
    /// `count` entries, page aligned (the kernel maps them); the tail is
    /// the `resv` field of entry 0.
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    /// The buffers themselves.
    mem: Arc<Provided>,
    count: u16,
    /// Our tail: entries published to the kernel so far (wrapping).
    tail: u16,
    /// Buffers in the ring as far as we know: published, and not yet named
    /// by a completion. A socket whose receive failed with `ENOBUFS` reads
    /// directly until this is above 0 again.
    in_ring: u32,
    /// Bytes [`move_bytes`](BufRing::move_bytes) moved (what packing cost).
    #[cfg(test)]
    moved: usize,
}

// SAFETY: the ring is plain memory shared with the kernel; the driver
// touches it only under its state lock.
unsafe impl Send for BufRing {}

impl BufRing {
    /// A ring of `count` buffers (a power of two, at most 32,768), every
    /// buffer published.
    pub(super) fn new(count: u16) -> io::Result<BufRing> {
        debug_assert!(count.is_power_of_two());
        let oom = || io::Error::new(io::ErrorKind::OutOfMemory, "provided-buffer ring");
        // Page-aligned: the kernel refuses (EINVAL) a ring that is not,
        // and pages are 16 or 64 KiB on some arm64 kernels.
        let page = rustix::param::page_size().max(4096);
        let entries_layout =
            Layout::from_size_align(count as usize * std::mem::size_of::<BufRingEntry>(), page)
                .map_err(|_| oom())?;
        // 16-byte alignment: zeroed memory that large comes straight from
        // `mmap` (pages committed only when first written); a larger
        // alignment would make the allocator zero, so commit, all of it.
        let mem_layout =
            Layout::from_size_align(count as usize * BUF_SIZE, 16).map_err(|_| oom())?;
        // SAFETY: both layouts have a non-zero size.
        let entries = NonNull::new(unsafe { alloc_zeroed(entries_layout) }.cast::<BufRingEntry>())
            .ok_or_else(oom)?;
        // SAFETY: as above. Zeroed: untouched pages are not committed, and
        // a reader never sees memory the kernel did not write.
        let Some(mem) = NonNull::new(unsafe { alloc_zeroed(mem_layout) }) else {
            // SAFETY: allocated just above with this layout.
            unsafe { dealloc(entries.as_ptr().cast(), entries_layout) };
            return Err(oom());
        };
        let mut ring = BufRing {
            entries,
            entries_layout,
            mem: Arc::new(Provided {
                mem,
                layout: mem_layout,
                returned: (0..usize::from(count).div_ceil(64))
                    .map(|_| AtomicU64::new(0))
                    .collect(),
                returns_pending: AtomicBool::new(false),
            }),
            count,
            tail: 0,
            in_ring: 0,
            #[cfg(test)]
            moved: 0,
        };
        for bid in 0..count {
            ring.put(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// The address the kernel is told (`io_uring_buf_reg::ring_addr`).
    pub(super) fn ring_addr(&self) -> u64 {
        self.entries.as_ptr() as u64
    }

    pub(super) fn count(&self) -> u16 {
        self.count
    }

    /// Buffer `bid`'s first `len` bytes, which a completion said the
    /// kernel wrote.
    pub(super) fn data(&self, bid: u16, len: usize) -> &[u8] {
        assert!(
            bid < self.count && len <= BUF_SIZE,
            "buffer {bid} out of range"
        );
        // SAFETY: in bounds (checked); the kernel wrote these bytes before
        // posting the completion that handed the buffer to us, and it does
        // not touch the buffer again until `give_back` publishes it.
        unsafe {
            std::slice::from_raw_parts(self.mem.mem.as_ptr().add(bid as usize * BUF_SIZE), len)
        }
    }

    /// Move `len` bytes from buffer `src` at `src_off` to buffer `dst` at
    /// `dst_off` (the ranges may overlap).
    fn move_bytes(&mut self, src: u16, src_off: usize, dst: u16, dst_off: usize, len: usize) {
        assert!(
            src < self.count
                && dst < self.count
                && src_off + len <= BUF_SIZE
                && dst_off + len <= BUF_SIZE,
            "move out of range"
        );
        #[cfg(test)]
        {
            self.moved += len;
        }
        let base = self.mem.mem.as_ptr();
        // SAFETY: both ranges are in bounds (checked); both buffers are a
        // socket queue's (taken off the ring by completions, not leased),
        // touched only under the driver's lock, which `&mut self` stands
        // for; `copy` allows the ranges to overlap.
        unsafe {
            std::ptr::copy(
                base.add(src as usize * BUF_SIZE + src_off),
                base.add(dst as usize * BUF_SIZE + dst_off),
                len,
            )
        };
    }

    /// Hand buffer `bid` back to the kernel.
    pub(super) fn give_back(&mut self, bid: u16) {
        self.put(bid);
        self.publish();
    }

    /// Hand back the buffers leases released since the last call, with one
    /// publish.
    pub(super) fn take_returns(&mut self) {
        // Cleared before the scan: a release that sets its bit after the
        // scan passed its word sets the flag again for the next call.
        //
        // The flag is only a hint: a release stores it plainly (no second
        // locked instruction per message), so in the memory model a scan
        // that read one release's flag may still miss another's bit (on a
        // machine without multi-copy atomicity). Such a bit is not lost:
        // whenever the ring looks empty the words are scanned without the
        // hint, and a relaxed load sees the bit eventually.
        let hinted = self.mem.returns_pending.load(Ordering::Relaxed)
            && self.mem.returns_pending.swap(false, Ordering::Acquire);
        if !hinted && self.in_ring > 0 {
            return;
        }
        let mut any = false;
        for w in 0..self.mem.returned.len() {
            if self.mem.returned[w].load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut bits = self.mem.returned[w].swap(0, Ordering::Acquire);
            while bits != 0 {
                let bid = (w * 64) as u16 + bits.trailing_zeros() as u16;
                bits &= bits - 1;
                self.put(bid);
                any = true;
            }
        }
        if any {
            self.publish();
        }
    }

    /// A completion named a buffer: the kernel took it out of the ring.
    pub(super) fn taken(&mut self) {
        self.in_ring = self.in_ring.saturating_sub(1);
    }

    /// Buffers in the ring as far as the completions seen so far tell.
    pub(super) fn in_ring(&self) -> u32 {
        self.in_ring
    }

    /// The memory leases share, and where buffer `bid`'s byte `off` is: for
    /// a lease, which reads it after the state lock is released (the
    /// buffer is the lease's until it is given back, so neither the kernel
    /// nor the queue touches it).
    fn lease_ptr(&self, bid: u16, off: usize) -> (Arc<Provided>, NonNull<u8>) {
        assert!(
            bid < self.count && off <= BUF_SIZE,
            "buffer {bid} out of range"
        );
        // SAFETY: in bounds of `mem` (checked above).
        let ptr = unsafe { self.mem.mem.add(bid as usize * BUF_SIZE + off) };
        (self.mem.clone(), ptr)
    }

    fn put(&mut self, bid: u16) {
        let idx = (self.tail & (self.count - 1)) as usize;
        // SAFETY: `idx < count`. The kernel reads entries only up to the
        // published tail, and the one at `tail` is free: the ring never
        // holds more than `count` buffers, because each id is put back
        // once per trip (taken by the kernel, then given back once:
        // `Provided::give_back` would catch a second give-back in debug
        // builds), so the entry this overwrites was consumed.
        let e = unsafe { &mut *self.entries.as_ptr().add(idx) };
        // SAFETY: `bid < count` (callers pass ids the kernel gave us or
        // the initial ones), so the address is inside `mem`.
        e.set_addr(unsafe { self.mem.mem.as_ptr().add(bid as usize * BUF_SIZE) } as u64);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.in_ring += 1;
    }

    /// Make the entries written so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: `entries` is the ring's first entry; its `resv` field is
        // the shared tail, a naturally aligned u16 the kernel reads with
        // acquire semantics.
        let tail = unsafe { &*BufRingEntry::tail(self.entries.as_ptr()).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }

    /// The kernel may still write into the buffers (a receive that never
    /// posted its final completion when the ring went away): never free
    /// them (the entries stay too, and the buffers' memory keeps the
    /// reference this ring held).
    pub(super) fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with these layouts; the driver drops
        // the ring only when no receive can use it any more (see `leak`).
        // (The buffers' memory goes with its last owner: see `Provided`.)
        unsafe { dealloc(self.entries.as_ptr().cast(), self.entries_layout) };
    }
}

/// Received bytes not read yet: in buffer `bid` of the ring, `len` bytes,
/// `off` of them read.
struct Chunk {
    bid: u16,
    len: u32,
    off: u32,
}

impl Chunk {
    fn bytes<'a>(&self, ring: &'a BufRing) -> &'a [u8] {
        &ring.data(self.bid, self.len as usize)[self.off as usize..]
    }
}

/// Where a read copies to: `len` writable bytes at `ptr`, which may be
/// uninitialised (a `Vec`'s spare capacity), borrowed for `'a`.
pub(crate) struct RecvOut<'a> {
    ptr: *mut u8,
    len: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> RecvOut<'a> {
    /// Into a slice.
    pub(crate) fn slice(s: &'a mut [u8]) -> RecvOut<'a> {
        RecvOut {
            ptr: s.as_mut_ptr(),
            len: s.len(),
            _borrow: PhantomData,
        }
    }

    /// Into an owned buffer, from its start up to its capacity (as a
    /// receive op fills it); [`finish`](RecvOut::finish) records the bytes.
    pub(crate) fn buf<B: IoBufMut>(b: &'a mut B) -> RecvOut<'a> {
        RecvOut {
            ptr: b.stable_mut_ptr(),
            len: b.bytes_total(),
            _borrow: PhantomData,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The part from `at` on (`at <= len`).
    pub(crate) fn after(&mut self, at: usize) -> RecvOut<'_> {
        assert!(at <= self.len, "RecvOut::after out of range");
        RecvOut {
            // SAFETY: `at <= len`: in bounds of (or one past) the
            // writable bytes at `ptr`, which the shorter borrow keeps.
            ptr: unsafe { self.ptr.add(at) },
            len: self.len - at,
            _borrow: PhantomData,
        }
    }

    /// Where the bytes go, for a syscall that writes up to `len` of them.
    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }

    /// Copy as much of `src` as fits at offset `at`; returns how much.
    fn put(&mut self, at: usize, src: &[u8]) -> usize {
        let k = src.len().min(self.len - at);
        // SAFETY: `at + k <= len` bytes at `ptr` are writable for `'a`
        // (a borrowed slice or buffer); `src` is queue memory, disjoint.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(at), k) };
        k
    }
}

/// Record `n` bytes copied into `b` through [`RecvOut::buf`].
pub(crate) fn finish_buf<B: IoBufMut>(b: &mut B, n: usize) {
    debug_assert!(n <= b.bytes_total());
    // SAFETY: the receive queue wrote `n <= bytes_total` bytes from the
    // buffer's start (`RecvOut::put`), so they are initialised.
    unsafe { b.set_init(n) };
}

/// What a lease read found ([`Backend::poll_recv_lease`](super::Backend::poll_recv_lease)).
pub(crate) enum Leased {
    /// `len` bytes at `ptr` in provided buffer `bid` of `home`, taken off
    /// the queue: the caller's until it gives the buffer back
    /// ([`Provided::give_back`]).
    Buf {
        home: Arc<Provided>,
        bid: u16,
        ptr: NonNull<u8>,
        len: usize,
    },
    /// Nothing queued, and the socket is read directly for now (the ring
    /// ran dry for it): read into a buffer of the caller's.
    Direct,
    /// The end of the stream.
    End,
}

/// What ended the stream (reported after the data before it).
enum End {
    Eof,
    Err(io::Error),
}

/// One stream socket's receive queue (a slot of the io_uring driver).
pub(super) struct StreamRx {
    chunks: VecDeque<Chunk>,
    queued: usize,
    end: Option<End>,
    wakers: Vec<Waker>,
    /// Wakers a full `wakers` let go of (see `add_waker`).
    evicted: Vec<Waker>,
    /// A receive is in the kernel (or staged for it).
    pub(super) armed: bool,
    /// A cancel was sent for the armed receive.
    pub(super) cancelling: bool,
    /// The fd's owner released it: free the slot once `!armed`.
    pub(super) released: bool,
    /// The armed entry is a readiness poll, not a receive.
    polling: bool,
    /// The last multishot receive ended with `ENOBUFS`: until the ring
    /// has a buffer again ([`BufRing::in_ring`]), the socket is read
    /// directly (a multishot receive would fail at once again). Counted
    /// from the ring, not from buffers given back since the failure: a
    /// buffer given back between the kernel's failure and our reap of it
    /// must count too, or a lone socket would read directly for good.
    starved: bool,
    /// The kernel refused a multishot receive on this socket (`EINVAL`):
    /// read directly from then on.
    no_multishot: bool,
}

/// What entry to submit for a socket.
pub(super) enum Arm {
    /// A multishot receive from the ring.
    Multi,
    /// A one-shot readiness poll (the socket is read directly).
    Poll,
}

impl StreamRx {
    pub(super) fn new() -> StreamRx {
        StreamRx {
            chunks: VecDeque::new(),
            queued: 0,
            end: None,
            wakers: Vec::new(),
            evicted: Vec::new(),
            armed: false,
            cancelling: false,
            released: false,
            polling: false,
            starved: false,
            no_multishot: false,
        }
    }

    /// Copy queued bytes into `out` (`peek`: without consuming them).
    /// Buffers read to the end go back to the ring. Returns how many bytes
    /// were copied; 0 when nothing is queued.
    pub(super) fn copy_out(
        &mut self,
        ring: &mut BufRing,
        out: &mut RecvOut<'_>,
        peek: bool,
    ) -> usize {
        let mut n = 0;
        if peek {
            for c in &self.chunks {
                n += out.put(n, c.bytes(ring));
                if n == out.len {
                    break;
                }
            }
            return n;
        }
        while n < out.len {
            let Some(c) = self.chunks.front_mut() else {
                break;
            };
            let b = c.bytes(ring);
            let k = out.put(n, b);
            n += k;
            let done = k == b.len();
            c.off += k as u32;
            if done {
                if let Some(c) = self.chunks.pop_front() {
                    ring.give_back(c.bid);
                }
            }
        }
        self.queued -= n;
        n
    }

    /// Take the front chunk's unread bytes off the queue whole, buffer
    /// and all, for a lease: `(bid, where they start, how many)`. The
    /// buffer goes back to the ring only when the lease gives it back.
    pub(super) fn take_front(&mut self, ring: &BufRing) -> Option<Leased> {
        let c = self.chunks.pop_front()?;
        let len = (c.len - c.off) as usize;
        self.queued -= len;
        let (home, ptr) = ring.lease_ptr(c.bid, c.off as usize);
        Some(Leased::Buf {
            home,
            bid: c.bid,
            ptr,
            len,
        })
    }

    /// Bytes received and not read yet.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    /// The outcome once the queue holds no data: `Some(Ok(0))` at the end of
    /// the stream, the error that ended it (once; later reads see the end),
    /// or `None`: wait for more.
    pub(super) fn take_end(&mut self, peek: bool) -> Option<io::Result<usize>> {
        match self.end.take()? {
            End::Eof => {
                self.end = Some(End::Eof);
                Some(Ok(0))
            }
            End::Err(e) if peek => {
                let copy = match e.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(e.kind(), e.to_string()),
                };
                self.end = Some(End::Err(e));
                Some(Err(copy))
            }
            End::Err(e) => {
                self.end = Some(End::Eof);
                Some(Err(e))
            }
        }
    }

    /// Whether a reader should arm a receive now: none armed, the stream
    /// not ended, and room in the queue.
    pub(super) fn wants_arm(&self) -> bool {
        !self.armed && !self.released && self.end.is_none() && !self.full()
    }

    /// No room for more (see "Backpressure" in the module docs).
    fn full(&self) -> bool {
        self.queued >= MAX_QUEUED || self.chunks.len() >= MAX_CHUNKS
    }

    /// The last multishot receive ran the ring dry (see the field).
    pub(super) fn starved(&self) -> bool {
        self.starved
    }

    /// The ring ran dry for this socket and has no buffer yet: a multishot
    /// receive armed now would fail at once.
    pub(super) fn ring_dry(&self, ring: &BufRing) -> bool {
        self.starved && ring.in_ring() == 0
    }

    /// Whether the socket is read with a direct `recv(2)` now: no
    /// buffer came back since the ring ran dry for it (or the kernel
    /// refused multishot receives), nothing is queued, and no receive is
    /// in the kernel (so a direct read cannot overtake queued bytes).
    pub(super) fn reads_directly(&mut self, ring: &BufRing) -> bool {
        if self.starved && ring.in_ring() > 0 {
            self.starved = false;
        }
        (self.starved || self.no_multishot)
            && self.chunks.is_empty()
            && (!self.armed || self.polling)
    }

    /// Whether a peek that found queued bytes may go on into the socket:
    /// no receive is armed (none can take the kernel's bytes first, so
    /// they come after the queue's) and the stream has not ended. Else a
    /// peek loop waiting for more would never see any while nothing arms
    /// a receive (the ring ran dry: `next_arm` waits for the queue to
    /// empty, which a peek never does).
    pub(super) fn peek_goes_on_in_socket(&self) -> bool {
        !self.armed && self.end.is_none()
    }

    /// A direct read found the end of the stream.
    pub(super) fn saw_eof(&mut self) {
        self.end.get_or_insert(End::Eof);
    }

    /// The socket reported `e` (a peek past the queue took it: the
    /// kernel hands a pending error out once): it ends the stream, after
    /// the queued bytes.
    pub(super) fn saw_err(&mut self, e: io::Error) {
        self.end.get_or_insert(End::Err(e));
    }

    /// The entry to submit next; marks the slot armed.
    pub(super) fn arm(&mut self, ring: &BufRing) -> Arm {
        self.polling = self.reads_directly(ring);
        self.armed = true;
        if self.polling { Arm::Poll } else { Arm::Multi }
    }

    /// Remember `cx`'s waker (all readers waiting are woken on news). A
    /// full list is let go of first (see [`push_waker`](super::push_waker)):
    /// its wakers wait in `evicted`, to be woken in the driver's next
    /// turn (see `UringDriver::read_queue`).
    pub(super) fn add_waker(&mut self, w: &Waker) {
        super::push_waker(&mut self.wakers, w, &mut self.evicted);
    }

    /// The wakers a full list let go of, to wake once the lock is released.
    pub(super) fn take_evicted(&mut self) -> Vec<Waker> {
        std::mem::take(&mut self.evicted)
    }

    /// One completion of this socket's receive: `res` with the CQE's
    /// `buffer` id and whether more will follow. Wakers to call go to
    /// `wake`. Returns whether the queue should stop receiving
    /// (full: the caller cancels the receive).
    pub(super) fn complete(
        &mut self,
        ring: &mut BufRing,
        res: i32,
        buffer: Option<u16>,
        more: bool,
        wake: &mut Vec<Waker>,
    ) -> bool {
        if buffer.is_some() {
            ring.taken();
        }
        if std::mem::take(&mut self.polling) {
            // The readiness poll (one-shot) ended, whatever its result: the
            // readers try their direct read again.
            self.armed = false;
            self.cancelling = false;
            wake.append(&mut self.wakers);
            return false;
        }
        if let (Some(bid), true) = (buffer, res <= 0 || self.released) {
            // A buffer named by a completion without data for us (current
            // kernels name none there) goes straight back.
            ring.give_back(bid);
        }
        match res {
            n if n > 0 => {
                let n = n as usize;
                if let (Some(bid), false) = (buffer, self.released) {
                    self.chunks.push_back(Chunk {
                        bid,
                        len: n as u32,
                        off: 0,
                    });
                    self.queued += n;
                    if self.chunks.len() >= MAX_CHUNKS {
                        self.compact(ring);
                    }
                }
            }
            0 => {
                if self.end.is_none() {
                    self.end = Some(End::Eof);
                }
            }
            e if e == -libc::ENOBUFS => self.starved = true,
            // Not the stream's fault: the next read arms a new receive.
            e if e == -libc::ECANCELED || e == -libc::EINTR || e == -libc::EAGAIN => {}
            e if e == -libc::EINVAL && !self.no_multishot => {
                // A kernel (or a seccomp policy) without multishot receive
                // after all: this socket is read directly from now on.
                self.no_multishot = true;
            }
            e => {
                if self.end.is_none() {
                    self.end = Some(End::Err(io::Error::from_raw_os_error(-e)));
                }
            }
        }
        if !more {
            self.armed = false;
            self.cancelling = false;
        }
        wake.append(&mut self.wakers);
        self.armed && !self.cancelling && self.full()
    }

    /// Pack the queued bytes, in order, into as few buffers as they fill
    /// and give the buffers left empty back to the ring (see
    /// "Backpressure" in the module docs). The front buffer, which a
    /// reader may be partway through, and the full buffers after it stay
    /// where they are: only the bytes from the first buffer with room on
    /// move, so a packing costs at most about the bytes that arrived since
    /// the last (not the whole queue again for each small arrival).
    fn compact(&mut self, ring: &mut BufRing) {
        let full = |c: &Chunk| c.off == 0 && c.len as usize == BUF_SIZE;
        let first = 1 + self.chunks.iter().skip(1).take_while(|c| full(c)).count();
        let tail: usize = self
            .chunks
            .iter()
            .skip(first)
            .map(|c| (c.len - c.off) as usize)
            .sum();
        if tail.div_ceil(BUF_SIZE) >= self.chunks.len() - first {
            return; // nothing to free
        }
        // Bytes move only towards the front: everything before a source
        // byte (from `first` on) fits in the buffers before its own (each
        // holds at most `BUF_SIZE`), so the destination is an earlier
        // buffer, or the same one at a lower offset, and nothing is
        // overwritten unread.
        let (mut dst, mut at) = (first, 0usize);
        for src in first..self.chunks.len() {
            let Chunk { bid, len, off } = self.chunks[src];
            let (mut from, end) = (off as usize, len as usize);
            while from < end {
                if at == BUF_SIZE {
                    (dst, at) = (dst + 1, 0);
                }
                let k = (end - from).min(BUF_SIZE - at);
                if (dst, at) != (src, from) {
                    ring.move_bytes(bid, from, self.chunks[dst].bid, at, k);
                }
                (from, at) = (from + k, at + k);
            }
        }
        let used = dst + 1;
        for (i, c) in self.chunks.iter_mut().enumerate().take(used).skip(first) {
            c.off = 0;
            c.len = if i + 1 == used {
                at as u32
            } else {
                BUF_SIZE as u32
            };
        }
        for c in self.chunks.drain(used..) {
            ring.give_back(c.bid);
        }
    }

    /// The owner let go: give every queued buffer back and wake whoever
    /// still waits (they find the fd gone).
    pub(super) fn release(&mut self, ring: &mut BufRing, wake: &mut Vec<Waker>) {
        self.released = true;
        for c in self.chunks.drain(..) {
            ring.give_back(c.bid);
        }
        self.queued = 0;
        wake.append(&mut self.wakers);
    }
}

/// A non-blocking `recv(2)` (with `peek`, `MSG_PEEK`) of `fd` into `out`.
pub(super) fn recv_direct(fd: RawFd, out: &mut RecvOut<'_>, peek: bool) -> io::Result<usize> {
    let flags = libc::MSG_DONTWAIT | if peek { libc::MSG_PEEK } else { 0 };
    loop {
        // SAFETY: `out` is `len` writable bytes for its lifetime (a borrowed
        // slice or buffer; the kernel writes them, they may start
        // uninitialised). `fd` is open: this is reached only through the
        // `RegisteredFd` that owns it, whose close comes after.
        let r = unsafe { libc::recv(fd, out.ptr.cast(), out.len, flags) };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl BufRing {
        /// What the kernel does: write `data` into buffer `bid`.
        fn kernel_writes(&mut self, bid: u16, data: &[u8]) {
            assert!(bid < self.count && data.len() <= BUF_SIZE);
            // SAFETY: in bounds; the test plays the kernel, nobody reads
            // the buffer meanwhile.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    self.mem.mem.as_ptr().add(bid as usize * BUF_SIZE),
                    data.len(),
                )
            };
        }

        /// Buffers published to the kernel and not yet taken (the test
        /// takes them in order, as the kernel does).
        fn published(&self) -> u16 {
            self.tail
        }

        /// The buffer id in ring entry `head` (what the kernel takes next
        /// when its head is there).
        fn entry_bid(&self, head: u16) -> u16 {
            let idx = (head & (self.count - 1)) as usize;
            // SAFETY: `idx < count`; the test plays the kernel.
            unsafe { (*self.entries.as_ptr().add(idx)).bid() }
        }
    }

    fn read(rx: &mut StreamRx, ring: &mut BufRing, len: usize, peek: bool) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let n = rx.copy_out(ring, &mut RecvOut::slice(&mut out), peek);
        out.truncate(n);
        out
    }

    #[test]
    fn bytes_come_out_in_order_across_buffers_and_every_buffer_goes_back() {
        let mut ring = BufRing::new(4).unwrap();
        let start = ring.published();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        assert!(matches!(rx.arm(&ring), Arm::Multi));
        ring.kernel_writes(0, b"hello ");
        rx.complete(&mut ring, 6, Some(0), true, &mut wake);
        ring.kernel_writes(1, b"world");
        rx.complete(&mut ring, 5, Some(1), true, &mut wake);
        assert_eq!(read(&mut rx, &mut ring, 8, true), b"hello wo", "peek");
        assert_eq!(ring.published(), start, "a peek gives nothing back");
        assert_eq!(read(&mut rx, &mut ring, 8, false), b"hello wo");
        assert_eq!(ring.published(), start + 1, "buffer 0 was read out");
        assert_eq!(read(&mut rx, &mut ring, 8, false), b"rld");
        assert_eq!(ring.published(), start + 2, "both buffers back");
        assert!(read(&mut rx, &mut ring, 8, false).is_empty());
        assert!(rx.take_end(false).is_none(), "no end yet: wait");
    }

    #[test]
    fn a_lease_takes_the_rest_of_the_front_buffer_and_gives_it_back_later() {
        let mut ring = BufRing::new(4).unwrap();
        let start = ring.published();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        rx.arm(&ring);
        ring.kernel_writes(0, b"hello ");
        rx.complete(&mut ring, 6, Some(0), true, &mut wake);
        ring.kernel_writes(1, b"world");
        rx.complete(&mut ring, 5, Some(1), true, &mut wake);
        // A copying read takes part of buffer 0; the lease takes the rest.
        assert_eq!(read(&mut rx, &mut ring, 2, false), b"he");
        let Some(Leased::Buf {
            home,
            bid,
            ptr,
            len,
        }) = rx.take_front(&ring)
        else {
            panic!("nothing leased");
        };
        // SAFETY: `len` bytes at `ptr` were written above and are the
        // test's until given back.
        let leased = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
        assert_eq!((bid, leased), (0, b"llo ".as_slice()));
        assert_eq!(rx.queued(), 5, "only buffer 1 is queued");
        assert_eq!(ring.published(), start, "the leased buffer is not back");
        let Some(Leased::Buf {
            bid: bid1,
            len: len1,
            ..
        }) = rx.take_front(&ring)
        else {
            panic!("nothing leased");
        };
        assert_eq!((bid1, len1), (1, 5));
        assert!(rx.take_front(&ring).is_none());
        assert_eq!(rx.queued(), 0);
        assert_eq!(ring.in_ring(), 2, "the kernel took two of four");
        // Given back from anywhere: the ring takes them at its next call.
        std::thread::scope(|t| {
            t.spawn(|| {
                home.give_back(1);
                home.give_back(0);
            });
        });
        assert_eq!(ring.published(), start, "not before the ring's next call");
        ring.take_returns();
        assert_eq!(ring.published(), start + 2, "both back");
        assert_eq!(ring.in_ring(), 4);
        ring.take_returns();
        assert_eq!(ring.published(), start + 2, "each only once");
    }

    #[test]
    fn a_given_back_buffer_whose_hint_was_missed_is_found_once_the_ring_looks_empty() {
        let mut ring = BufRing::new(2).unwrap();
        let start = ring.published();
        let home = ring.mem.clone();
        // The kernel took both buffers; a lease gives one back, but the
        // ring's scan is taken to have missed its hint (as the memory
        // model allows on a machine without multi-copy atomicity).
        ring.taken();
        ring.taken();
        home.give_back(1);
        home.returns_pending.store(false, Ordering::Relaxed);
        ring.take_returns();
        assert_eq!(
            ring.published(),
            start + 1,
            "scanned: the ring looked empty"
        );
        assert_eq!(ring.in_ring(), 1);
        // With a buffer in the ring, a missing hint saves the scan.
        home.give_back(0);
        home.returns_pending.store(false, Ordering::Relaxed);
        ring.take_returns();
        assert_eq!(ring.published(), start + 1, "not scanned without the hint");
        home.returns_pending.store(true, Ordering::Relaxed);
        ring.take_returns();
        assert_eq!(ring.published(), start + 2);
    }

    #[test]
    fn the_end_and_errors_come_after_the_data_before_them() {
        let mut ring = BufRing::new(2).unwrap();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        rx.arm(&ring);
        ring.kernel_writes(0, b"last");
        rx.complete(&mut ring, 4, Some(0), true, &mut wake);
        rx.complete(&mut ring, -libc::ECONNRESET, None, false, &mut wake);
        assert!(
            !rx.armed && !rx.wants_arm(),
            "an ended stream is not re-armed"
        );
        assert_eq!(read(&mut rx, &mut ring, 16, false), b"last");
        let e = rx.take_end(true).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET), "peek sees it");
        let e = rx.take_end(false).unwrap().unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ECONNRESET));
        assert_eq!(
            rx.take_end(false).unwrap().unwrap(),
            0,
            "then end of stream"
        );
    }

    #[test]
    fn a_dry_ring_reads_directly_until_a_buffer_comes_back() {
        let mut ring = BufRing::new(2).unwrap();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        assert!(!rx.reads_directly(&ring));
        rx.arm(&ring);
        // Another socket's receive took both buffers, then ours ran dry.
        ring.taken();
        ring.taken();
        rx.complete(&mut ring, -libc::ENOBUFS, None, false, &mut wake);
        assert!(
            rx.wants_arm() && rx.take_end(false).is_none(),
            "ENOBUFS is not an end"
        );
        assert!(rx.reads_directly(&ring), "the ring is dry: read directly");
        assert!(matches!(rx.arm(&ring), Arm::Poll), "and wait with a poll");
        assert!(
            rx.reads_directly(&ring),
            "a poll in flight does not stop direct reads"
        );
        rx.complete(&mut ring, libc::POLLIN as i32, None, false, &mut wake);
        assert!(!rx.armed, "the poll ended");
        assert!(
            matches!(rx.arm(&ring), Arm::Poll),
            "no buffer came back yet"
        );
        rx.complete(&mut ring, -libc::ECANCELED, None, false, &mut wake);
        ring.give_back(0);
        assert!(!rx.reads_directly(&ring), "a buffer came back");
        assert!(matches!(rx.arm(&ring), Arm::Multi), "multishot again");
        assert!(!rx.reads_directly(&ring), "never beside an armed receive");
    }

    #[test]
    fn a_buffer_back_before_the_failure_is_reaped_still_ends_direct_reads() {
        // The kernel ran dry; a lease gave a buffer back before the reap
        // saw the failure. The socket must not wait for yet another buffer
        // (a lone socket would read directly for good).
        let mut ring = BufRing::new(2).unwrap();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        rx.arm(&ring);
        ring.kernel_writes(0, b"a");
        rx.complete(&mut ring, 1, Some(0), true, &mut wake);
        ring.kernel_writes(1, b"b");
        rx.complete(&mut ring, 1, Some(1), true, &mut wake);
        let Some(Leased::Buf { home, bid, .. }) = rx.take_front(&ring) else {
            panic!("nothing leased");
        };
        home.give_back(bid);
        ring.take_returns();
        rx.complete(&mut ring, -libc::ENOBUFS, None, false, &mut wake);
        assert_eq!(read(&mut rx, &mut ring, 8, false), b"b");
        assert!(!rx.reads_directly(&ring), "a buffer is in the ring");
        assert!(matches!(rx.arm(&ring), Arm::Multi));
    }

    #[test]
    fn a_refused_multishot_receive_leaves_the_socket_on_direct_reads() {
        let mut ring = BufRing::new(2).unwrap();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        assert!(matches!(rx.arm(&ring), Arm::Multi));
        rx.complete(&mut ring, -libc::EINVAL, None, false, &mut wake);
        assert!(rx.take_end(false).is_none(), "not an end of the stream");
        ring.give_back(1);
        assert!(rx.reads_directly(&ring), "for good, buffers or not");
        assert!(matches!(rx.arm(&ring), Arm::Poll));
    }

    #[test]
    fn a_direct_read_gets_the_bytes_and_the_end() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        use std::io::Write;
        use std::os::fd::AsRawFd;
        (&b).write_all(b"direct").unwrap();
        let mut out = [0u8; 16];
        let n = recv_direct(a.as_raw_fd(), &mut RecvOut::slice(&mut out), true).unwrap();
        assert_eq!(&out[..n], b"direct", "peek");
        let n = recv_direct(a.as_raw_fd(), &mut RecvOut::slice(&mut out), false).unwrap();
        assert_eq!(&out[..n], b"direct");
        let e = recv_direct(a.as_raw_fd(), &mut RecvOut::slice(&mut out), false).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(b);
        assert_eq!(
            recv_direct(a.as_raw_fd(), &mut RecvOut::slice(&mut out), false).unwrap(),
            0
        );
    }

    #[test]
    fn a_full_queue_asks_for_the_receive_to_stop_and_resumes_when_read() {
        let mut ring = BufRing::new(32).unwrap();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        rx.arm(&ring);
        let per = MAX_QUEUED / BUF_SIZE;
        let mut stop = false;
        for bid in 0..per as u16 {
            stop = rx.complete(&mut ring, BUF_SIZE as i32, Some(bid), true, &mut wake);
        }
        assert!(stop, "at MAX_QUEUED the caller must cancel the receive");
        rx.cancelling = true;
        rx.complete(&mut ring, -libc::ECANCELED, None, false, &mut wake);
        assert!(!rx.wants_arm(), "full: no new receive");
        read(&mut rx, &mut ring, BUF_SIZE, false);
        assert!(rx.wants_arm(), "room again: receive again");
    }

    #[test]
    fn a_peer_trickling_bytes_pins_few_buffers_and_a_peek_sees_every_byte() {
        let mut ring = BufRing::new(64).unwrap();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        rx.arm(&ring);
        let sent: Vec<u8> = (0..200u8).collect();
        for (head, &b) in sent.iter().enumerate() {
            // The kernel takes the next buffer of the ring for each byte
            // (buffers given back join the ring behind the others).
            let bid = ring.entry_bid(head as u16);
            ring.kernel_writes(bid, &[b]);
            let stop = rx.complete(&mut ring, 1, Some(bid), true, &mut wake);
            assert!(!stop, "200 bytes are far from full");
            assert!(rx.chunks.len() < MAX_CHUNKS, "buffers packed");
        }
        assert_eq!(rx.queued(), 200);
        assert!(rx.chunks.len() < MAX_CHUNKS && ring.in_ring() > 64 - 16);
        assert_eq!(
            read(&mut rx, &mut ring, 300, true),
            sent,
            "peek: every byte, in order"
        );
        assert_eq!(read(&mut rx, &mut ring, 300, false), sent);
    }

    #[test]
    fn packing_keeps_the_bytes_in_order_across_buffers_and_a_read_front() {
        let mut ring = BufRing::new(32).unwrap();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        rx.arm(&ring);
        let piece = 3000;
        let mut sent = Vec::new();
        for bid in 0..MAX_CHUNKS as u16 {
            let data: Vec<u8> = (0..piece).map(|i| (i * 7 + bid as usize) as u8).collect();
            ring.kernel_writes(bid, &data);
            sent.extend_from_slice(&data);
            if bid == 0 {
                rx.complete(&mut ring, piece as i32, Some(bid), true, &mut wake);
                // The front is partly read before the others arrive.
                assert_eq!(read(&mut rx, &mut ring, 100, false), sent[..100]);
                continue;
            }
            assert!(!rx.complete(&mut ring, piece as i32, Some(bid), true, &mut wake));
        }
        let left = MAX_CHUNKS * piece - 100;
        assert_eq!(rx.queued(), left);
        assert_eq!(
            rx.chunks.len(),
            1 + (left - (piece - 100)).div_ceil(BUF_SIZE),
            "the front stays; the rest packed into full buffers"
        );
        assert_eq!(read(&mut rx, &mut ring, left + 10, false), sent[100..]);
        assert_eq!(ring.in_ring(), 32, "every buffer back");
    }

    /// Packing leaves full buffers where they are: once the queue holds
    /// full buffers, a small arrival moves only the small bytes.
    #[test]
    fn packing_moves_only_the_bytes_after_the_full_buffers() {
        let mut ring = BufRing::new(64).unwrap();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        rx.arm(&ring);
        let mut head = 0u16;
        let mut arrive = |rx: &mut StreamRx, ring: &mut BufRing, data: &[u8]| {
            let bid = ring.entry_bid(head);
            head += 1;
            ring.kernel_writes(bid, data);
            rx.complete(ring, data.len() as i32, Some(bid), true, &mut wake);
            bid
        };
        let full: Vec<u16> = (0..4)
            .map(|i| arrive(&mut rx, &mut ring, &vec![i as u8; BUF_SIZE]))
            .collect();
        for i in 0..40u8 {
            arrive(&mut rx, &mut ring, &[100 + i]);
        }
        let bids: Vec<u16> = rx.chunks.iter().map(|c| c.bid).collect();
        assert_eq!(bids[..4], full[..], "the full buffers stayed in place");
        assert!(
            ring.moved < 40 * MAX_CHUNKS,
            "{} bytes moved for 40 one-byte arrivals",
            ring.moved
        );
        assert!(rx.chunks.len() < MAX_CHUNKS);
        let mut want = Vec::new();
        for i in 0..4u8 {
            want.extend(std::iter::repeat_n(i, BUF_SIZE));
        }
        want.extend(100..140u8);
        assert_eq!(read(&mut rx, &mut ring, want.len() + 1, false), want);
    }

    #[test]
    fn a_released_queue_gives_its_buffers_back_and_drops_late_data() {
        let mut ring = BufRing::new(4).unwrap();
        let start = ring.published();
        let mut rx = StreamRx::new();
        let mut wake = Vec::new();
        rx.arm(&ring);
        rx.complete(&mut ring, 10, Some(0), true, &mut wake);
        rx.release(&mut ring, &mut wake);
        assert_eq!(ring.published(), start + 1);
        rx.complete(&mut ring, 10, Some(1), true, &mut wake);
        assert_eq!(ring.published(), start + 2, "late data goes straight back");
        rx.complete(&mut ring, -libc::ECANCELED, None, false, &mut wake);
        assert!(!rx.armed && !rx.wants_arm());
    }
}
