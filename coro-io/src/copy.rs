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

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Waker};

    use super::*;
    use crate::buf::{fill, init_bytes};
    use crate::coop;

    /// A stream whose reads always have one byte (until `left` runs out)
    /// and whose writes always complete: each counts against the budget,
    /// as a socket op that completes at once does.
    struct Eager {
        left: AtomicUsize,
        written: AtomicUsize,
    }

    impl Eager {
        fn new(bytes: usize) -> Eager {
            Eager {
                left: AtomicUsize::new(bytes),
                written: AtomicUsize::new(0),
            }
        }
    }

    impl ReadOwned for Eager {
        async fn read_owned<B: IoBufMut>(&self, mut buf: B) -> BufResult<usize, B> {
            coop::consume_budget().await;
            let some = self
                .left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            let n = if some { fill(&mut buf, b"x") } else { 0 };
            (Ok(n), buf)
        }
    }

    impl WriteOwned for Eager {
        async fn write_all_owned<B: IoBuf>(&self, buf: B) -> BufResult<(), B> {
            coop::consume_budget().await;
            let n = init_bytes(&buf).len();
            self.written.fetch_add(n, Ordering::Relaxed);
            (Ok(()), buf)
        }
        async fn shutdown_write(&self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Both directions always ready: they share one budget per task poll,
    /// and each must get some of it in every few polls. Always polling one
    /// first let it spend the whole budget until its source ended.
    #[test]
    fn both_directions_progress_when_both_are_always_ready() {
        let (a, b) = (Eager::new(10_000), Eager::new(10_000));
        let mut copy = pin!(copy_bidirectional(&a, &b));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..4 {
            assert!(coop::budgeted(|| copy.as_mut().poll(&mut cx)).is_pending());
        }
        let (to_b, to_a) = (
            b.written.load(Ordering::Relaxed),
            a.written.load(Ordering::Relaxed),
        );
        assert!(to_b > 0 && to_a > 0, "a to b: {to_b} bytes, b to a: {to_a}");
        let mut polls = 4;
        let r = loop {
            polls += 1;
            assert!(polls < 1_000, "the copy never ended");
            if let Poll::Ready(r) = coop::budgeted(|| copy.as_mut().poll(&mut cx)) {
                break r;
            }
        };
        assert_eq!(r.unwrap(), (10_000, 10_000));
    }
}
