//! Copying between streams with owned buffers: [`copy`] and
//! [`copy_bidirectional`] (a proxy's core), over any stream that reads and
//! writes owned buffers ([`ReadOwned`], [`WriteOwned`]: coro-net's TCP,
//! Unix and TLS streams).
//!
//! Each direction reads into one buffer and writes that same buffer out:
//! no copy in user space, one buffer of [`COPY_BUF`] per direction. For
//! `futures_io` types, `futures::io::copy` does the same job with a copy.

use std::future::Future;
use std::io;
use std::task::Poll;

use crate::buf::{BufResult, IoBuf, IoBufMut};

/// Bytes one direction of a copy reads at a time.
pub const COPY_BUF: usize = 64 * 1024;

/// A stream that reads into owned buffers.
pub trait ReadOwned: Sync {
    /// Read into `buf` (from its start, up to its capacity); `Ok(0)` at
    /// the end of the stream.
    fn read_owned<B: IoBufMut>(&self, buf: B) -> impl Future<Output = BufResult<usize, B>> + Send;
}

/// A stream that writes owned buffers.
pub trait WriteOwned: Sync {
    /// Write all of `buf`.
    fn write_all_owned<B: IoBuf>(&self, buf: B) -> impl Future<Output = BufResult<(), B>> + Send;
    /// End the stream in this direction (TCP: shut the write side down;
    /// TLS: close_notify), so that the peer reads its end.
    fn shutdown_write(&self) -> impl Future<Output = io::Result<()>> + Send;
}

/// Copy everything `from` yields until its end into `to`; the number of
/// bytes. `to` is not shut down (see [`copy_bidirectional`] for that).
///
/// # Errors
///
/// The first read or write error.
///
/// # Cancel safety
///
/// Not cancel safe: a dropped copy may have read bytes it did not write.
///
/// # Examples
///
/// ```
/// use coro_io::buf::{BufResult, IoBuf, IoBufMut};
/// use coro_io::copy::{ReadOwned, WriteOwned};
///
/// // A tiny in-memory source, for the example: coro-net's streams
/// // implement these traits.
/// struct Bytes(std::sync::Mutex<Vec<u8>>);
/// impl ReadOwned for Bytes {
///     async fn read_owned<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
///         let mut v = self.0.lock().unwrap();
///         let n = v.len().min(buf.bytes_total());
///         // SAFETY: `n` bytes fit in `buf` and are written just below.
///         unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), buf.stable_mut_ptr(), n); buf.set_init(n) };
///         v.drain(..n);
///         (Ok(n), buf)
///     }
/// }
/// struct Sink(std::sync::Mutex<Vec<u8>>);
/// impl WriteOwned for Sink {
///     async fn write_all_owned<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
///         // SAFETY: an IoBuf's first `bytes_init` bytes are initialised.
///         let s = unsafe { std::slice::from_raw_parts(buf.stable_ptr(), buf.bytes_init()) };
///         self.0.lock().unwrap().extend_from_slice(s);
///         (Ok(()), buf)
///     }
///     async fn shutdown_write(&self) -> std::io::Result<()> { Ok(()) }
/// }
/// let from = Bytes(std::sync::Mutex::new(vec![7; 100_000]));
/// let to = Sink(std::sync::Mutex::new(Vec::new()));
/// let n = coro_core::sync_wait(coro_io::copy::copy(&from, &to))?;
/// assert_eq!(n, 100_000);
/// assert_eq!(to.0.lock().unwrap().len(), 100_000);
/// # std::io::Result::Ok(())
/// ```
pub async fn copy<R, W>(from: &R, to: &W) -> io::Result<u64>
where
    R: ReadOwned + ?Sized,
    W: WriteOwned + ?Sized,
{
    let mut buf = Vec::with_capacity(COPY_BUF);
    let mut total = 0u64;
    loop {
        let (n, b) = from.read_owned(buf).await;
        let n = n?;
        if n == 0 {
            return Ok(total);
        }
        let (w, mut b) = to.write_all_owned(b).await;
        w?;
        total += n as u64;
        b.clear();
        buf = b;
    }
}

/// Copy both ways between `a` and `b` at once, until both directions
/// ended: each direction copies until its source ends, then ends its
/// destination ([`WriteOwned::shutdown_write`]) so the other side sees it.
/// Returns the bytes copied `a` to `b`, and `b` to `a`.
///
/// # Errors
///
/// The first error of either direction (the other is then dropped).
///
/// # Cancel safety
///
/// Not cancel safe: a dropped copy may have read bytes it did not write.
pub async fn copy_bidirectional<A, B>(a: &A, b: &B) -> io::Result<(u64, u64)>
where
    A: ReadOwned + WriteOwned + ?Sized,
    B: ReadOwned + WriteOwned + ?Sized,
{
    let a_to_b = async {
        let n = copy(a, b).await?;
        b.shutdown_write().await?;
        io::Result::Ok(n)
    };
    let b_to_a = async {
        let n = copy(b, a).await?;
        a.shutdown_write().await?;
        io::Result::Ok(n)
    };
    let (mut a_to_b, mut b_to_a) = (std::pin::pin!(a_to_b), std::pin::pin!(b_to_a));
    let (mut ab, mut ba) = (None, None);
    // The directions take turns going first: they share the task's budget
    // (see `coop`), and the one always polled first could spend all of it
    // while its source always has bytes, leaving the other none.
    let mut b_first = false;
    std::future::poll_fn(|cx| {
        b_first = !b_first;
        for dir in [b_first, !b_first] {
            if dir && ba.is_none() {
                if let Poll::Ready(r) = b_to_a.as_mut().poll(cx) {
                    ba = Some(r?);
                }
            }
            if !dir && ab.is_none() {
                if let Poll::Ready(r) = a_to_b.as_mut().poll(cx) {
                    ab = Some(r?);
                }
            }
        }
        match (ab, ba) {
            (Some(x), Some(y)) => Poll::Ready(Ok((x, y))),
            _ => Poll::Pending,
        }
    })
    .await
}
