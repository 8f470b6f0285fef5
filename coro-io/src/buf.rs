//! Owned buffers for completion-shaped I/O.
//!
//! An I/O operation takes its buffer **by value** and hands it back with the
//! result (`(io::Result<usize>, B)`, see [`BufResult`]). While the operation is
//! in flight the buffer belongs to the driver: with io_uring the kernel may
//! write into it until the completion arrives, even after the caller dropped
//! the future. That is why borrowed slices cannot be used here.
//!
//! Reads write at the **start** of the buffer, up to [`IoBuf::bytes_total`]
//! bytes (the capacity for `Vec<u8>` and `BytesMut`), then grow the initialised
//! length to the number of bytes read if it was shorter.
//!
//! # Examples
//!
//! ```
//! use coro_io::buf::IoBuf;
//!
//! let v: Vec<u8> = Vec::with_capacity(16);
//! assert_eq!(v.bytes_init(), 0);
//! assert_eq!(v.bytes_total(), 16);
//! let s: &'static [u8] = b"hello";
//! assert_eq!(s.bytes_init(), 5);
//! // A byte-string literal and a `String` are buffers to write too.
//! assert_eq!(b"hello".bytes_init(), 5);
//! assert_eq!(String::from("hi").bytes_init(), 2);
//! ```

use std::io;

pub use crate::driver::RecvLease;

/// The result of an owned-buffer operation: the outcome and the buffer back.
pub type BufResult<T, B> = (io::Result<T>, B);

/// A buffer that an I/O operation can read from (a `send`/`write` source).
///
/// # Safety
///
/// The pointer returned by [`stable_ptr`](IoBuf::stable_ptr) must stay valid
/// for [`bytes_init`](IoBuf::bytes_init) bytes and must not change when the
/// value is moved (heap storage or `'static` data), because the kernel may read
/// through it after the value moved into the driver. `bytes_init` is never
/// more than [`bytes_total`](IoBuf::bytes_total).
pub unsafe trait IoBuf: Send + 'static {
    /// Pointer to the first byte; stable across moves of `self`.
    fn stable_ptr(&self) -> *const u8;
    /// Number of initialised bytes (what a write sends).
    fn bytes_init(&self) -> usize;
    /// Total capacity in bytes (what a read may fill).
    fn bytes_total(&self) -> usize;
}

/// A buffer that an I/O operation can write into (a `recv`/`read` target).
///
/// # Safety
///
/// [`stable_mut_ptr`](IoBufMut::stable_mut_ptr) must be valid for writes of
/// [`bytes_total`](IoBuf::bytes_total) bytes and stable across moves.
pub unsafe trait IoBufMut: IoBuf {
    /// Mutable pointer to the first byte; stable across moves of `self`.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// Record that the first `n` bytes are initialised (grows the length to
    /// `n` if it was shorter; never shrinks it).
    ///
    /// # Safety
    ///
    /// The first `n` bytes must have been initialised and `n <= bytes_total()`.
    unsafe fn set_init(&mut self, n: usize);
}

// SAFETY: a Vec's heap pointer does not move when the Vec is moved; len/capacity are exact.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: the heap allocation is valid for `capacity` bytes of writes.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        if self.len() < n {
            // SAFETY: the caller guarantees the first `n <= capacity` bytes are initialised.
            unsafe { self.set_len(n) };
        }
    }
}

// SAFETY: a boxed slice's heap pointer is stable; it is always fully initialised.
unsafe impl IoBuf for Box<[u8]> {
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

// SAFETY: the boxed slice is valid for `len` bytes of writes.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, _n: usize) {}
}

// SAFETY: `'static` data never moves and is never freed.
unsafe impl IoBuf for &'static [u8] {
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

// SAFETY: `'static` data never moves and is never freed.
unsafe impl IoBuf for &'static str {
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

// SAFETY: `'static` data never moves and is never freed (a byte-string
// literal, `b"..."`, written without `.as_slice()`).
unsafe impl<const N: usize> IoBuf for &'static [u8; N] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        N
    }
    fn bytes_total(&self) -> usize {
        N
    }
}

// SAFETY: a String's heap pointer does not move when the String is moved;
// its length is its initialised bytes. Read-only: writing arbitrary bytes
// could break its UTF-8 invariant, so it is not `IoBufMut`.
unsafe impl IoBuf for String {
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

// SAFETY: `Bytes` points at shared heap (or static) storage that does not move with the handle.
unsafe impl IoBuf for bytes::Bytes {
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

// SAFETY: `BytesMut` owns heap storage that does not move with the handle.
unsafe impl IoBuf for bytes::BytesMut {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.len()
    }
    fn bytes_total(&self) -> usize {
        self.capacity()
    }
}

// SAFETY: the storage is valid for `capacity` bytes of writes.
unsafe impl IoBufMut for bytes::BytesMut {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        if self.len() < n {
            // SAFETY: the caller guarantees the first `n <= capacity` bytes are initialised.
            unsafe { self.set_len(n) };
        }
    }
}

/// The initialised bytes of `buf` as a slice (what a write would send).
///
/// For layers that transform bytes before they reach the kernel (TLS
/// encryption) and cannot use `unsafe` themselves.
///
/// # Examples
///
/// ```
/// let v = b"hello".to_vec();
/// assert_eq!(coro_io::buf::init_bytes(&v), b"hello");
/// ```
pub fn init_bytes<B: IoBuf>(buf: &B) -> &[u8] {
    let len = buf.bytes_init();
    if len == 0 {
        return &[];
    }
    // SAFETY: `IoBuf` guarantees `stable_ptr` is valid for `bytes_init`
    // initialised bytes; the shared borrow of `buf` keeps them alive and
    // unchanged for the returned lifetime.
    unsafe { std::slice::from_raw_parts(buf.stable_ptr(), len) }
}

/// Copy as much of `src` as fits into the start of `buf` (up to
/// [`IoBuf::bytes_total`]), as a read would fill it, and record those
/// bytes as initialised. Returns how many were copied.
///
/// # Examples
///
/// ```
/// let mut v = Vec::with_capacity(4);
/// assert_eq!(coro_io::buf::fill(&mut v, b"hello"), 4);
/// assert_eq!(v, b"hell");
/// ```
pub fn fill<B: IoBufMut>(buf: &mut B, src: &[u8]) -> usize {
    let n = src.len().min(buf.bytes_total());
    if n == 0 {
        return 0;
    }
    // SAFETY: `IoBufMut` guarantees `stable_mut_ptr` is valid for writes of
    // `bytes_total >= n` bytes; `src` is a separate borrow, so the ranges
    // do not overlap. After the copy the first `n` bytes are initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), buf.stable_mut_ptr(), n);
        buf.set_init(n);
    }
    n
}

/// The initialised bytes of `B` from `begin` on: what is left to send after
/// a partial write, without copying. As a read target it is the inner
/// buffer after `begin`: `Slice::new(vec, vec.len())` reads into a `Vec`'s
/// spare capacity, appending to what it holds.
///
/// # Examples
///
/// ```
/// use coro_io::buf::{IoBuf, Slice};
///
/// let s = Slice::new(b"hello".to_vec(), 2);
/// assert_eq!(s.bytes_init(), 3);
/// assert_eq!(s.begin(), 2);
/// assert_eq!(s.into_inner(), b"hello");
///
/// // Appending: a read fills the spare capacity.
/// let mut v = Vec::with_capacity(8);
/// v.extend_from_slice(b"ab");
/// let mut tail = Slice::new(v, 2);
/// assert_eq!(tail.bytes_total(), 6);
/// coro_io::buf::fill(&mut tail, b"cd");
/// assert_eq!(tail.into_inner(), b"abcd");
/// ```
#[derive(Debug)]
pub struct Slice<B> {
    buf: B,
    begin: usize,
}

impl<B: IoBuf> Slice<B> {
    /// The bytes of `buf` from `begin` (clamped to its initialised length).
    pub fn new(buf: B, begin: usize) -> Slice<B> {
        let begin = begin.min(buf.bytes_init());
        Slice { buf, begin }
    }
    /// Where this slice starts in the inner buffer.
    pub fn begin(&self) -> usize {
        self.begin
    }
    /// Move the start on by `n` bytes (clamped to the end).
    pub fn advance(&mut self, n: usize) {
        self.begin = self.begin.saturating_add(n).min(self.buf.bytes_init());
    }
    /// The inner buffer, whole.
    pub fn into_inner(self) -> B {
        self.buf
    }
}

// SAFETY: the pointer is the inner buffer's stable pointer offset by
// `begin <= bytes_init`, so it stays in bounds and moves with nothing.
unsafe impl<B: IoBuf> IoBuf for Slice<B> {
    fn stable_ptr(&self) -> *const u8 {
        // `begin <= bytes_init`, so the offset stays inside the buffer (or one past it).
        self.buf.stable_ptr().wrapping_add(self.begin)
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init() - self.begin
    }
    fn bytes_total(&self) -> usize {
        // Saturating: a buffer that broke the contract (more initialised
        // than its capacity) must not make a read's length wrap.
        self.buf.bytes_total().saturating_sub(self.begin)
    }
}

// SAFETY: the pointer is the inner buffer's stable mutable pointer offset
// by `begin <= bytes_init <= bytes_total`, valid for writes of the
// `bytes_total - begin` bytes after it; `set_init(n)` marks the inner
// buffer's first `begin + n` bytes initialised, of which the first `begin`
// already were and the caller vouches for the `n` after them.
unsafe impl<B: IoBufMut> IoBufMut for Slice<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr().wrapping_add(self.begin)
    }
    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller's contract, shifted by `begin` (see above).
        unsafe { self.buf.set_init(self.begin + n) }
    }
}

/// Tests: a buffer that counts how many of its kind are alive, so a test
/// can check that the driver frees every buffer (and never one the kernel
/// may still use: live buffers never drop below ops in flight).
#[doc(hidden)]
#[derive(Debug)]
pub struct Counted<B> {
    buf: B,
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<B> Counted<B> {
    /// Wrap `buf`, counting it in `live` until it is dropped.
    pub fn new(buf: B, live: &std::sync::Arc<std::sync::atomic::AtomicUsize>) -> Self {
        live.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Counted {
            buf,
            live: live.clone(),
        }
    }
    /// The buffer.
    pub fn get(&self) -> &B {
        &self.buf
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        self.live.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

// SAFETY: delegates to the inner buffer, whose guarantees carry over (the
// wrapper moves, the inner buffer's storage does not).
unsafe impl<B: IoBuf> IoBuf for Counted<B> {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.buf.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.buf.bytes_total()
    }
}

// SAFETY: as above.
unsafe impl<B: IoBufMut> IoBufMut for Counted<B> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, n: usize) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.buf.set_init(n) }
    }
}
