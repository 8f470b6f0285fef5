//! Received bytes handed out without a copy: a lease on the buffer the
//! kernel put them in.

use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use super::recv_queue::Provided;
use crate::buf::IoBuf;

/// Bytes a stream received, read without copying them: on io_uring with a
/// receive queue they stay in the provided buffer the kernel chose, which
/// is the lease's until it is dropped (then the buffer goes back to the
/// kernel's ring); elsewhere they are in a `Vec` of their own.
///
/// It derefs to the bytes and is an [`IoBuf`], so it can be written
/// straight back out (an echo sends from the kernel's buffer, with no copy
/// in user space). Empty at the end of the stream.
///
/// Hold leases briefly: while one is held, its buffer is not in the
/// ring; a stream whose ring runs dry is read one `recv(2)` at a time
/// until buffers come back (correct, but slower).
///
/// Made by [`RegisteredFd::poll_recv_lease`](super::RegisteredFd::poll_recv_lease),
/// which a socket type wraps as a read (`coro_net`'s
/// `TcpStream::read_lease`, whose documentation shows an echo with it;
/// without a receive queue it makes one from a `Vec`, `From<Vec<u8>>`).
pub struct RecvLease {
    inner: Inner,
}

enum Inner {
    /// `len` bytes at `ptr` in provided buffer `bid` of `home`, the
    /// ring's memory (kept alive by the lease, the driver need not be).
    Ring {
        home: Arc<Provided>,
        bid: u16,
        ptr: NonNull<u8>,
        len: usize,
    },
    Owned(Vec<u8>),
}

// SAFETY: the bytes a `Ring` lease points to are its own until it gives the
// buffer back in `drop` (neither the kernel nor the receive queue touches a
// buffer that is out of the ring), and it only reads them; `Provided` is
// `Send + Sync`.
unsafe impl Send for RecvLease {}
// SAFETY: as for `Send`: shared access only reads.
unsafe impl Sync for RecvLease {}

impl RecvLease {
    /// A lease on provided buffer `bid` of `home`: only with what a
    /// driver's `poll_recv_lease` handed out (`Leased::Buf`), which
    /// promises that `len` bytes at `ptr` are initialised, lie in buffer
    /// `bid`, and stay untouched by the kernel and the driver until
    /// `home.give_back(bid)` (the buffer was taken off its stream's queue
    /// and is not in the ring).
    pub(crate) fn ring(home: Arc<Provided>, bid: u16, ptr: NonNull<u8>, len: usize) -> RecvLease {
        RecvLease {
            inner: Inner::Ring {
                home,
                bid,
                ptr,
                len,
            },
        }
    }

    /// Whether the bytes are in a buffer of the kernel's ring (not copied
    /// even once in user space); `false` for a lease read into a `Vec`.
    pub fn is_provided_buffer(&self) -> bool {
        matches!(self.inner, Inner::Ring { .. })
    }
}

impl Deref for RecvLease {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            // SAFETY: `len` initialised bytes at `ptr`, ours until `drop`
            // (the contract of `RecvLease::ring`).
            Inner::Ring { ptr, len, .. } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
            Inner::Owned(v) => v,
        }
    }
}

/// Bytes read into a buffer of their own (a read without a receive
/// queue; empty: the end of the stream).
impl From<Vec<u8>> for RecvLease {
    fn from(v: Vec<u8>) -> RecvLease {
        RecvLease {
            inner: Inner::Owned(v),
        }
    }
}

impl AsRef<[u8]> for RecvLease {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl Drop for RecvLease {
    fn drop(&mut self) {
        if let Inner::Ring { home, bid, .. } = &self.inner {
            home.give_back(*bid);
        }
    }
}

impl fmt::Debug for RecvLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvLease")
            .field("len", &self.len())
            .field("provided_buffer", &self.is_provided_buffer())
            .finish()
    }
}

// SAFETY: the bytes do not move when the lease moves (a ring buffer, or a
// `Vec`'s heap allocation), and stay valid until the lease is dropped,
// which an op that owns it does only after the kernel is done with them.
unsafe impl IoBuf for RecvLease {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.len()
    }
}
